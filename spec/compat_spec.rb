# frozen_string_literal: true

require_relative "spec_helper"
require "open3"

# Drop-in compatibility: the same unmodified ffi-gem binding scripts
# (spec/compat/*_binding.rb, each doing `require "ffi"`) run once under the
# ffi gem and once under fiddle_jit through the documented shim
# (`ruby -rfiddle_jit/ffi_shim`), in separate processes; stdout must match.
RSpec.describe "ffi gem drop-in (require \"fiddle_jit/ffi\")" do
  LIB_DIR = File.expand_path("../lib", __dir__)
  COMPAT_DIR = File.expand_path("compat", __dir__)

  def run_ruby(*args, env: {})
    out, err, status = Open3.capture3(env, RbConfig.ruby, *args)
    raise "ruby #{args.join(" ")} failed (#{status.exitstatus}):\n#{err}\n#{out}" unless status.success?

    [out, err]
  end

  # Callbacks (FFI::Function, `callback`) come from another branch; until
  # they exist the qsort part of the libc binding is skipped on both sides.
  let(:env) { FiddleJit.const_defined?(:Function, false) ? {} : { "COMPAT_SKIP_CALLBACKS" => "1" } }

  %w[libc libm libz].each do |name|
    it "runs the #{name} binding with the same output as the ffi gem" do
      script = File.join(COMPAT_DIR, "#{name}_binding.rb")
      oracle, = run_ruby(script, env: env)
      ours, err = run_ruby("-I", LIB_DIR, "-rfiddle_jit/ffi_shim", script, env: env)
      expect(err).to eq("")
      expect(ours.lines).to eq(oracle.lines)
      expect(ours.lines.size).to be > 8
    end
  end

  describe "loading" do
    let(:third_party) { File.join(COMPAT_DIR, "third_party_gem.rb") }

    it "ruby -rfiddle_jit/ffi_shim: an unmodified file's require \"ffi\" gets fiddle_jit" do
      out, = run_ruby("-I", LIB_DIR, "-rfiddle_jit/ffi_shim", third_party)
      expect(out).to eq("backend=fiddle_jit ffi_c=false strlen=5 version=#{FFI_FOLLOWED_VERSION}\n")
    end

    it "RUBYOPT=-I lib/fiddle_jit/shim: the same, without -r" do
      out, = run_ruby(third_party, env: { "RUBYOPT" => "-I#{File.join(LIB_DIR, "fiddle_jit", "shim")} -I#{LIB_DIR}" })
      expect(out).to eq("backend=fiddle_jit ffi_c=false strlen=5 version=#{FFI_FOLLOWED_VERSION}\n")
    end

    it "without the shim the same file uses the ffi gem (the oracle)" do
      out, = run_ruby(third_party)
      expect(out).to eq("backend=ffi ffi_c=true strlen=5 version=#{FFI::VERSION}\n")
    end

    it "require \"ffi\" after require \"fiddle_jit/ffi\" does not load the ffi gem" do
      out, = run_ruby("-I", LIB_DIR, "-e", 'require "fiddle_jit/ffi"; p require("ffi"); require_relative ARGV[0]', third_party)
      expect(out).to eq("false\nbackend=fiddle_jit ffi_c=false strlen=5 version=#{FFI_FOLLOWED_VERSION}\n")
    end

    it "require \"ffi\" stays a no-op with the ffi gem activated, and nothing is added to $LOAD_PATH" do
      out, = run_ruby("-I", LIB_DIR, "-e", <<~'RUBY')
        before = $LOAD_PATH.dup
        require "fiddle_jit/ffi"
        added = $LOAD_PATH - before
        gem "ffi" # the ffi gem's lib directory on $LOAD_PATH, as when a gem depending on it is activated
        p added, require("ffi"), require("ffi.rb"), $LOADED_FEATURES.grep(/ffi_c/), FFI.const_defined?(:FIDDLE_JIT)
      RUBY
      expect(out).to eq("[]\nfalse\nfalse\n[]\ntrue\n")
    end

    it "require \"fiddle_jit/ffi\" after the ffi gem raises a clear LoadError" do
      out, = run_ruby("-I", LIB_DIR, "-e", 'require "ffi"; begin; require "fiddle_jit/ffi"; rescue LoadError => e; puts e.message; end')
      expect(out).to match(/fiddle_jit\/ffi: the ffi gem is already loaded .*Require "fiddle_jit\/ffi" .* before/)
    end
  end

  describe "the FFI namespace" do
    def ffi_eval(code)
      out, = run_ruby("-I", LIB_DIR, "-rfiddle_jit/ffi", "-e", code)
      out
    end

    it "aliases the fiddle_jit classes, so reopening FFI classes changes them" do
      out = ffi_eval(<<~RUBY)
        class FFI::MemoryPointer
          def self.from_compat(s) = from_string(s.upcase)
        end
        p FFI::MemoryPointer.equal?(FiddleJit::MemoryPointer), FiddleJit::MemoryPointer.from_compat("ab").read_string
        p FFI::Struct.equal?(FiddleJit::Struct), FFI::Library.include?(FiddleJit::Library), FFI::Pointer::NULL.null?
        p FFI::Type::INT32.size, FFI::Type::UINT8.alignment, FFI::Type::INT.is_a?(FFI::Type), FFI::NativeType::INT64.size
        p FFI::VERSION, FFI::Platform::LONG_DOUBLE_SIZE, FFI::Platform::CPU, FFI::Platform::NAME, FFI::Platform.mac?
        p FFI::TypeDefs[:socklen_t].size, FFI.find_type(:in_addr_t).size, FFI::Library::FlagsMap[:now]
      RUBY
      expect(out).to eq(<<~OUT)
        true
        "AB"
        true
        true
        true
        4
        1
        true
        8
        "#{FFI_FOLLOWED_VERSION}"
        128
        #{FFI::Platform::CPU.inspect}
        #{FFI::Platform::NAME.inspect}
        false
        4
        4
        2
      OUT
    end

    it "FFI.typedef adds global typedefs; DynamicLibrary finds functions and variables as Pointers" do
      out = ffi_eval(<<~RUBY)
        FFI.typedef :uint32, :compat_u32
        module LC; extend FFI::Library; ffi_lib FFI::Library::LIBC; attach_function :abs, [:compat_u32], :int; end
        p LC.abs(7), FFI.type_size(:compat_u32)
        lib = FFI::DynamicLibrary.open(FFI::Library::LIBC, FFI::DynamicLibrary::RTLD_LAZY)
        p lib.find_function("strlen").is_a?(FFI::Pointer), lib.find_variable("environ").null?, lib.find_variable("nope_x"), lib.name
        p FFI::DynamicLibrary.open(nil, FFI::DynamicLibrary::RTLD_LAZY).name
      RUBY
      expect(out).to eq("7\n4\ntrue\nfalse\nnil\n\"libc.so.6\"\n\"[current process]\"\n")
    end

    it "the ffi gem's behaviour is the module's: a FiddleJit::Library module attached after it keeps its own" do
      out = ffi_eval(<<~RUBY)
        module Ffi; extend FFI::Library; ffi_lib "c"; R = attach_function :abs, [:int], :int; end
        module Jit; extend FiddleJit::Library; ffi_lib "c"; R = attach_function :abs, [:int], :int; end
        module Ffi2; extend FFI::Library; ffi_lib "c"; attach_function :abs, [:int], :int; end
        p Ffi::R.class, Jit::R.class, Ffi.method(:abs).arity, Jit.method(:abs).arity, Ffi2.method(:abs).arity
        [Ffi, Jit].each { |m| begin; m.abs("x"); rescue TypeError => e; puts e.message; end }
        [Ffi, Jit].each { |m| begin; m.abs; rescue ArgumentError => e; puts e.message; end }
      RUBY
      expect(out).to eq(<<~OUT)
        FiddleJit::Function
        FiddleJit::AttachedFunction
        -1
        1
        -1
        no implicit conversion of String into Integer
        abs: argument 1 (:int): no implicit conversion of String into Integer
        wrong number of arguments (0 for 1)
        wrong number of arguments (given 0, expected 1)
      OUT
    end

    it "FFI.errno reads and writes errno" do
      out = ffi_eval(<<~RUBY)
        module LC; extend FFI::Library; ffi_lib "c"; attach_function :close, [:int], :int; end
        p LC.close(987_654), FFI.errno
        FFI.errno = 0
        p FFI.errno
      RUBY
      expect(out).to eq("-1\n9\n0\n")
    end
  end
end
