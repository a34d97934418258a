# frozen_string_literal: true

require_relative "spec_helper"
require "tmpdir"

RSpec.describe FiddleJit::Library do
  # A fresh anonymous module extended with FiddleJit::Library (or FFI::Library).
  def new_lib(ns = FiddleJit, &block)
    m = Module.new
    m.extend(ns::Library)
    m.module_eval(&block) if block
    m
  end

  # Run +block+ for both libraries and return [ffi_exception, jit_exception].
  def both_raise(&block)
    [FFI, FiddleJit].map do |ns|
      block.call(ns)
      nil
    rescue StandardError, ScriptError => e
      e
    end
  end

  describe "ffi_lib" do
    it 'loads "c" and attaches strlen' do
      m = new_lib { ffi_lib "c"; attach_function :strlen, [:string], :size_t }
      expect(m.strlen("hello")).to eq(5)
    end

    # The ffi gem 1.17's algorithm: a file dlopen finds too short (or not
    # ELF) is read as a GNU ld script, and the library its INPUT(...) or
    # GROUP ( ... ) names is loaded instead (issue 6/7: the loader's pattern
    # once captured the path with the message's quote).
    describe "GNU ld scripts" do
      include Differential::Helpers

      scripts = {
        "INPUT(libm.so.6)" => "/* GNU ld script */\nINPUT(libm.so.6)\n",
        "GROUP ( /abs/libm.so.6 AS_NEEDED ( ... ) )" =>
          "/* GNU ld script */\nOUTPUT_FORMAT(elf64-x86-64)\nGROUP ( #{Dir["/{usr/,}lib/*-linux-gnu/libm.so.6"].first} " \
          "AS_NEEDED ( /lib/x86_64-linux-gnu/libmvec.so.1 ) )\n",
        "no script (a file too short)" => "not a library\n"
      }
      scripts.each do |label, text|
        it "ffi_lib on a file holding #{label}" do
          Dir.mktmpdir("fj-ldscript") do |dir|
            path = File.join(dir, "libfjscript.so")
            File.write(path, text)
            expect_same_outcome("ffi_lib #{label}") do |ns|
              m = new_lib(ns) { ffi_lib path; attach_function :fabs, [:double], :double }
              m.fabs(-2.5)
            end
          end
        end
      end
    end

    it 'loads "m" (libm.so is a GNU ld script on Debian) and attaches sin' do
      m = new_lib { ffi_lib "m"; attach_function :sin, [:double], :double }
      [0.0, 0.5, 1.0, -2.0, 3.0].each { |x| expect(m.sin(x)).to eql(Math.sin(x)) }
    end

    it 'loads "libm.so.6"' do
      m = new_lib { ffi_lib "libm.so.6"; attach_function :cos, [:double], :double }
      expect(m.cos(0.0)).to eql(1.0)
      expect(m.cos(1.0)).to eql(Math.cos(1.0))
    end

    it "loads an absolute path" do
      m = new_lib { ffi_lib FIXTURE_LIB; attach_function :id_int32, [:int32], :int32 }
      expect(m.id_int32(-5)).to eq(-5)
    end

    it "loads the first loadable name of an Array of alternatives" do
      m = new_lib { ffi_lib ["does_not_exist_xyz", "libm.so.6"]; attach_function :cos, [:double], :double }
      expect(m.cos(0.0)).to eql(1.0)
    end

    it "loads several libraries and attaches from any of them" do
      m = new_lib do
        ffi_lib "c", "libm.so.6"
        attach_function :strlen, [:string], :size_t
        attach_function :cos, [:double], :double
      end
      expect(m.strlen("abc")).to eq(3)
      expect(m.cos(0.0)).to eql(1.0)
    end

    it "FiddleJit::Library::LIBC is usable with ffi_lib" do
      expect(FiddleJit::Library::LIBC).to eq(FFI::Library::LIBC)
      m = new_lib { ffi_lib FiddleJit::Library::LIBC; attach_function :strlen, [:string], :size_t }
      expect(m.strlen("four")).to eq(4)
    end

    it "raises LoadError naming every name/path tried for a missing library" do
      expect { new_lib { ffi_lib "does_not_exist_xyz" } }.to raise_error(LoadError) { |e|
        expect(e.message).to include("does_not_exist_xyz")
        expect(e.message).to include("libdoes_not_exist_xyz.so")
      }
    end

    # Beyond the ffi gem: without the development symlink ("libfoo.so"),
    # the highest "libfoo.so.N" of the library directories (LD_LIBRARY_PATH
    # first) loads; each directory is read once per process.
    it "falls back to the highest versioned file of the library directories" do
      Dir.mktmpdir do |dir|
        libm = FiddleJit::LibraryLoader.versioned_files("libm.so").first || skip("no libm.so.N")
        File.symlink(libm, File.join(dir, "libfjversioned.so.2"))
        File.symlink(libm, File.join(dir, "libfjversioned.so.10"))
        File.write(File.join(dir, "libfjversioned.so.1"), "not ELF")
        old = ENV.fetch("LD_LIBRARY_PATH", nil)
        ENV["LD_LIBRARY_PATH"] = [dir, old].compact.join(":")
        expect(FiddleJit::LibraryLoader.versioned_files("libfjversioned.so"))
          .to eq(%w[10 2 1].map { |v| File.join(dir, "libfjversioned.so.#{v}") })
        m = new_lib { ffi_lib "fjversioned"; attach_function :cos, [:double], :double }
        expect(m.cos(0.0)).to eq(1.0)
        expect(m.ffi_libraries.first.name).to eq(File.join(dir, "libfjversioned.so.10"))
      ensure
        ENV["LD_LIBRARY_PATH"] = old
      end
    end

    it "raises LoadError for a missing absolute path, naming it" do
      expect { new_lib { ffi_lib "/nonexistent/dir/libnope.so" } }.to raise_error(LoadError, %r{/nonexistent/dir/libnope\.so})
    end

    it "raises LoadError naming all alternatives of an Array when none loads" do
      expect { new_lib { ffi_lib %w[does_not_exist_a does_not_exist_b] } }.to raise_error(LoadError) { |e|
        expect(e.message).to include("does_not_exist_a")
        expect(e.message).to include("does_not_exist_b")
      }
    end

    it "raises like the ffi gem when attaching before ffi_lib" do
      f, j = both_raise { |ns| new_lib(ns) { attach_function :strlen, [:string], :size_t } }
      expect(f).to be_a(LoadError)
      expect(j).to be_a(f.class), "ffi raised #{f.class}: #{f.message}; fiddle_jit: #{j.inspect}"
    end

    it "raises like the ffi gem for ffi_lib with no names" do
      f, j = both_raise { |ns| new_lib(ns) { ffi_lib } }
      expect(f).to be_a(LoadError)
      expect(j).to be_a(f.class), "ffi raised #{f.class}: #{f.message}; fiddle_jit: #{j.inspect}"
    end
  end

  describe "attach_function" do
    it "raises FiddleJit::NotFoundError (a LoadError) naming the symbol and the library" do
      expect(FiddleJit::NotFoundError.ancestors).to include(LoadError)
      expect { new_lib { ffi_lib FIXTURE_LIB; attach_function :no_such_fn_xyz, [], :void } }
        .to raise_error(FiddleJit::NotFoundError) { |e|
          expect(e).to be_a(LoadError)
          expect(e.message).to include("no_such_fn_xyz")
          expect(e.message).to include(FIXTURE_LIB)
        }
    end

    it "NotFoundError for the rename form names the C symbol" do
      expect { new_lib { ffi_lib FIXTURE_LIB; attach_function :ruby_name, :c_missing_xyz, [], :int } }
        .to raise_error(FiddleJit::NotFoundError, /c_missing_xyz/)
    end

    it "supports the rename form attach_function(:ruby_name, :c_name, args, ret)" do
      m = new_lib { ffi_lib FIXTURE_LIB; attach_function :my_len, :str_len, [:string], :size_t }
      expect(m.my_len("abcdef")).to eq(6)
      expect(m.respond_to?(:str_len)).to be(false)
    end

    it "accepts a String as the C name in the rename form" do
      m = new_lib { ffi_lib FIXTURE_LIB; attach_function :my_len2, "str_len", [:string], :size_t }
      expect(m.my_len2("abc")).to eq(3)
    end

    it "returns a truthy value" do
      ret = nil
      new_lib { ffi_lib FIXTURE_LIB; ret = attach_function :id_int32, [:int32], :int32 }
      expect(ret).to be_truthy
    end

    it "defines a module function callable as M.fn" do
      m = new_lib { ffi_lib FIXTURE_LIB; attach_function :id_int16, [:int16], :int16 }
      expect(m.id_int16(-300)).to eq(-300)
      expect(m.singleton_methods).to include(:id_int16)
    end

    it "defines an instance method usable when the module is included, with the ffi gem's visibility" do
      j = new_lib { ffi_lib FIXTURE_LIB; attach_function :id_int16, [:int16], :int16 }
      f = new_lib(FFI) { ffi_lib FIXTURE_LIB; attach_function :id_int16, [:int16], :int16 }

      expect(j.instance_method(:id_int16)).to be_a(UnboundMethod)
      expect(j.private_instance_methods(false).include?(:id_int16))
        .to eq(f.private_instance_methods(false).include?(:id_int16))
      expect(j.public_instance_methods(false).include?(:id_int16))
        .to eq(f.public_instance_methods(false).include?(:id_int16))

      klass = Class.new do
        include j
        def call_it(x) = id_int16(x)
      end
      expect(klass.new.call_it(7)).to eq(7)
      expect(klass.new.__send__(:id_int16, -7)).to eq(-7)
    end

    it "works on a named module with `extend FiddleJit::Library` (the README form)" do
      stub_const("FjSpecNamedLib", Module.new)
      FjSpecNamedLib.module_eval do
        extend FiddleJit::Library
        ffi_lib FIXTURE_LIB
        attach_function :id_int8, [:int8], :int8
      end
      expect(FjSpecNamedLib.id_int8(200)).to eq(-56)
    end

    it "re-attaching the same name replaces the function" do
      m = new_lib do
        ffi_lib FIXTURE_LIB
        attach_function :f, :id_int8, [:int8], :int8
        attach_function :f, :id_int16, [:int16], :int16
      end
      expect(m.f(200)).to eq(200)
    end

    it "two modules attaching the same C symbol with different types are independent" do
      a = new_lib { ffi_lib FIXTURE_LIB; attach_function :id_int8, [:int8], :int8 }
      b = new_lib { ffi_lib FIXTURE_LIB; attach_function :id_int8, [:uint8], :uint8 }
      expect(a.id_int8(255)).to eq(-1)
      expect(b.id_int8(255)).to eq(255)
    end

    it "accepts every documented type symbol" do
      types = %i[bool char uchar int8 uint8 short ushort int16 uint16 int uint int32 uint32 long ulong
                 int64 uint64 long_long ulong_long size_t ssize_t intptr_t uintptr_t float double pointer string]
      types.each do |t|
        expect { new_lib { ffi_lib FIXTURE_LIB; attach_function :"f_#{t}", :do_nothing, [t], t } }
          .not_to raise_error, "attach_function with :#{t}"
      end
      expect { new_lib { ffi_lib FIXTURE_LIB; attach_function :f_void, :do_nothing, [], :void } }.not_to raise_error
    end

    describe "unknown types raise like the ffi gem" do
      {
        "argument" => [[:no_such_type], :int],
        "return" => [[:int], :no_such_type],
        "String type name" => [["int8"], :int]
      }.each do |where, (args, ret)|
        it "unknown #{where} type" do
          f, j = both_raise { |ns| new_lib(ns) { ffi_lib FIXTURE_LIB; attach_function :id_int8, args, ret } }
          expect(f).to be_a(TypeError) # pins the oracle
          expect(j).to be_a(f.class), "ffi raised #{f.class}: #{f.message}; fiddle_jit: #{j.inspect}"
        end
      end
    end
  end

  describe "ffi gem compatibility details" do
    it "`extend Library` on a Class behaves like the ffi gem" do
      f, j = both_raise { |ns| Class.new { extend ns::Library } }
      expect(j.class).to eq(f.class), "ffi: #{f.inspect}; fiddle_jit: #{j.inspect}"
    end

    it "`extend Library` on a non-Module object behaves like the ffi gem" do
      f, j = both_raise { |ns| Object.new.extend(ns::Library) }
      expect(j.class).to eq(f.class), "ffi: #{f.inspect}; fiddle_jit: #{j.inspect}"
    end

    it "accepts an options Hash (blocking: true) like the ffi gem" do
      f, j = both_raise do |ns|
        new_lib(ns) { ffi_lib FIXTURE_LIB; attach_function :str_len, [:string], :size_t, blocking: true }
      end
      expect(f).to be_nil
      expect(j).to be_nil, "fiddle_jit raised #{j.inspect}"
      m = new_lib { ffi_lib FIXTURE_LIB; attach_function :str_len, [:string], :size_t, blocking: true }
      expect(m.str_len("abc")).to eq(3)
    end

    # Mistakes found by a differential campaign against ffi 1.17.
    it "ffi_lib nil is the process itself, as in the ffi gem" do
      expect_same_outcome("ffi_lib nil") { |ns| new_lib(ns) { ffi_lib nil; attach_function :abs, [:int], :int }.abs(-3) }
    end

    it "unknown ffi_lib_flags, non-Array parameter types and non-Hash options behave like the ffi gem" do
      expect_same_outcome("ffi_lib_flags :nope") { |ns| new_lib(ns) { ffi_lib_flags :nope } }
      expect_same_outcome("ffi_lib_flags :now, :global") { |ns| new_lib(ns) { ffi_lib_flags :now, :global }.instance_variable_get(:@ffi_lib_flags) }
      [nil, :int, 5].each do |params|
        expect_same_outcome("attach_function :abs, #{params.inspect}, :int") do |ns|
          new_lib(ns) { ffi_lib "c"; attach_function :abs, params, :int }
        end
      end
      expect_same_outcome("options 5") { |ns| new_lib(ns) { ffi_lib "c"; attach_function :abs, [:int], :int, 5 }.abs(-2) }
    end

    it "a C name with a NUL byte is the ffi gem's ArgumentError, not a missing function" do
      expect_same_outcome("attach_function NUL") { |ns| new_lib(ns) { ffi_lib "c"; attach_function :x, "ab\0s", [:int], :int } }
      expect_same_outcome("attach_variable NUL") { |ns| new_lib(ns) { ffi_lib "c"; attach_variable :v, :"opt\0err", :int } }
    end

    it "any object names the method (its to_s), as in the ffi gem" do
      name = Object.new.tap { |o| o.define_singleton_method(:to_s) { "my_abs" } }
      expect_same_outcome("attach_function obj, :abs") { |ns| new_lib(ns) { ffi_lib "c"; attach_function name, :abs, [:int], :int }.my_abs(-2) }
    end

    it "DynamicLibrary.new opens like open; last_error is dlerror's message" do
      expect_same_outcome("DynamicLibrary.new") { |ns| ns::DynamicLibrary.new(FFI::Library::LIBC, 1).find_function("abs").nil? }
      expect_same_outcome("DynamicLibrary.new missing") { |ns| ns::DynamicLibrary.new("/nonexistent/libx.so", 1) }
      expect_same_outcome("last_error") { |ns| ns::DynamicLibrary.last_error.class }
    end

    it "function_names gives the C names attach_function looks up" do
      expect_same_outcome("function_names") { |ns| new_lib(ns).function_names(:abs, []) }
    end

    it "CURRENT_PROCESS resolves symbols already loaded in the process" do
      m = new_lib { ffi_lib FiddleJit::Library::CURRENT_PROCESS; attach_function :strlen, [:string], :size_t }
      expect(m.strlen("abcd")).to eq(4)
    end

    it "ignores a block passed to an attached function (like the ffi gem)" do
      f = new_lib(FFI) { ffi_lib FIXTURE_LIB; attach_function :id_int32, [:int32], :int32 }
      j = new_lib { ffi_lib FIXTURE_LIB; attach_function :id_int32, [:int32], :int32 }
      expect(j.id_int32(9) { raise "block called" }).to eq(f.id_int32(9) { raise "block called" })
    end

    it "attaches many functions to one module (stub memory grows)" do
      m = new_lib { ffi_lib FIXTURE_LIB }
      1000.times { |i| m.attach_function(:"f#{i}", :id_int32, [:int32], :int32) }
      expect((0...1000).step(37).map { |i| m.__send__(:"f#{i}", i * 3) }).to eq((0...1000).step(37).map { |i| i * 3 })
    end

    it "anonymous modules with attached functions can be garbage collected" do
      keep = new_lib { ffi_lib FIXTURE_LIB; attach_function :id_int64, [:int64], :int64 }
      200.times { new_lib { ffi_lib FIXTURE_LIB; attach_function :id_int64, [:int64], :int64 }.id_int64(1) }
      GC.start
      expect(keep.id_int64(-2**63)).to eq(-2**63)
      expect(new_lib { ffi_lib FIXTURE_LIB; attach_function :id_int8, [:int8], :int8 }.id_int8(-1)).to eq(-1)
    end

    it "is callable from several Ruby threads" do
      m = new_lib { ffi_lib FIXTURE_LIB; attach_function :sum6_i64, [:int64] * 6, :int64 }
      want = m.sum6_i64(1, 2, 3, 4, 5, 6)
      results = Array.new(4) { Thread.new { Array.new(2000) { m.sum6_i64(1, 2, 3, 4, 5, 6) }.uniq } }.map(&:value)
      expect(results).to all(eq([want]))
    end
  end

  describe "the differential harness itself" do
    it "attaches every fixture signature on the ffi gem (fixture sanity)" do
      bad = FixtureSignatures::SIGS.keys.filter_map do |name|
        err = Differential.ffi.attach(name)
        "#{name}: #{err.class}: #{err.message}" if err
      end
      expect(bad).to be_empty
    end

    it "attaches every fixture signature on fiddle_jit" do
      bad = FixtureSignatures::SIGS.keys.filter_map do |name|
        err = Differential.jit.attach(name)
        "#{name}: #{err.class}: #{err.message}" if err
      end
      expect(bad).to be_empty
    end
  end

  describe "methods of the extended module" do
    include ShimScripts

    # Library's own helpers live in every extended module's ancestry: an
    # attached function or a module method of the same name as one of them
    # must not break later attach_function calls (the ffi gem has only
    # generic_enum there).
    it "attach_function keeps working after attaching or defining methods with helper-like names" do
      out = same_output(<<~RUBY)
        require "ffi"
        module M
          extend FFI::Library
          ffi_lib FFI::Library::LIBC
          attach_function :signature, :getpid, [], :int
          attach_function :attached, :getppid, [], :int
          def self.conversion(*) = raise("the module's own method")
          def self.native_scalar(*) = raise("the module's own method")
          def self.find_function_address(*) = raise("the module's own method")
          enum :sign, [:minus, -1, :plus, 1]
          attach_function :abs, [:sign], :int
          attach_function :labs, [:long], :long
          attach_function :snprintf, [:pointer, :size_t, :string, :varargs], :int
        end
        buf = FFI::MemoryPointer.new(:char, 16)
        M.snprintf(buf, 16, "%d", :int, 42)
        p [M.signature == Process.pid, M.attached == Process.ppid, M.abs(:minus), M.labs(-3), buf.read_string]
      RUBY
      expect(out).to eq("[true, true, 1, 3, \"42\"]\n")
    end
  end
end
