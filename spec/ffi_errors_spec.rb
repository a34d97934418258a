# frozen_string_literal: true

require_relative "spec_helper"
require "open3"

# Issue 4/7 item 7: under `require "fiddle_jit/ffi"` exception classes AND
# messages are the ffi gem's. spec/compat/error_table.rb (an unmodified
# ffi-gem binding of libc) feeds a table of bad inputs — String/nil/Object/
# Symbol/Array/true/huge Integers/NaN/Inf to every integer type, to :float,
# :double and :bool; Integer/Object/Symbol/true/Float/NUL to :string and
# :pointer; a Symbol not in an enum; wrong arity for 0-, 1-, 2-, 16-argument
# (argv form) and callback functions; bad varargs; the wrong Struct class for
# Struct.by_ref; non-callables for callbacks; missing libraries, functions,
# variables; unknown types — and prints the inspect strings of FFI objects.
# The output must be identical under both (addresses masked).
RSpec.describe "ffi-identical errors and inspect strings under fiddle_jit/ffi (separate processes)" do
  lib_dir = File.expand_path("../lib", __dir__)
  table = File.expand_path("compat/error_table.rb", __dir__)

  def run(*args)
    out, err, status = Open3.capture3(RbConfig.ruby, *args)
    raise "ruby #{args.join(" ")} failed:\n#{err}" unless status.success?

    out.gsub(/0x\h+/, "0xADDR")
  end

  # Changes the ffi gem made since an older oracle (Debian's 1.15.5 on Ruby
  # 3.1): its output is rewritten to what the ffi gem prints from then on.
  FFI_CHANGES = [
    ["1.16.0", "a LoadError ends every dlerror line with \".\" and adds \"Searched in <system library path>\"",
     lambda do |out|
       lines = out.lines
       lines.each_with_index.map do |line, i|
         next line unless line.include?("Could not open library ") && !line.chomp.end_with?(".")
         next line if lines[i + 1]&.start_with?("Could not open library ")

         "#{line.chomp}.\nSearched in <system library path>\n"
       end.join
     end],
    ["1.16.0", "Type#inspect names builtin types \"Builtin::INT32\" (was \"Builtin:INT32\")",
     ->(out) { out.gsub("#<FFI::Type::Builtin:", "#<FFI::Type::Builtin::") }]
  ].freeze

  def oracle_output(table)
    FFI_CHANGES.reduce(run(table)) do |out, (since, _what, rewrite)|
      Gem::Version.new(FFI::VERSION) < Gem::Version.new(since) ? rewrite.call(out) : out
    end
  end

  it "prints the same class and message for every bad input as the ffi gem" do
    oracle = oracle_output(table)
    ours = run("-I", lib_dir, "-rfiddle_jit/ffi_shim", table)
    expect(ours.lines.size).to be > 250
    oracle.lines.zip(ours.lines).each { |want, got| expect(got).to eq(want) }
    expect(ours.lines.size).to eq(oracle.lines.size)
    # Spot checks that the table really is what it claims to be.
    expect(ours).to include("long(String): TypeError: no implicit conversion of String into Integer\n")
    expect(ours).to include("int64(String): TypeError: no implicit conversion from string\n")
    expect(ours).to include("bool(nil): TypeError: wrong argument type  (expected a boolean parameter)\n")
    expect(ours).to include("arity 1 for 2: ArgumentError: wrong number of arguments (1 for 2)\n")
    expect(ours).to include("arity 17 for 16: ArgumentError: wrong number of arguments (17 for 16)\n")
    expect(ours).to include("byref wrong struct: TypeError: wrong argument type L::B (expected L::A)\n")
    expect(ours).to match(/^missing lib: LoadError: Could not open library 'fj_no_such_lib_xyz': .*\.\nCould not open library 'libfj_no_such_lib_xyz.so': /)
    expect(ours).to include("#<FFI::MemoryPointer address=0xADDR size=4>\n")
  end

  it "keeps the richer \"fn: argument N (:type): \" prefix for FiddleJit::Library without the FFI namespace" do
    out = run("-I", lib_dir, "-rfiddle_jit", "-e", <<~'RUBY')
      module L; extend FiddleJit::Library; ffi_lib FiddleJit::Library::LIBC; attach_function :abs, [:int], :int; end
      begin; L.abs("x"); rescue TypeError => e; puts e.message; end
      begin; L.abs; rescue ArgumentError => e; puts e.message; end
      p L.method(:abs).arity
    RUBY
    expect(out).to eq("abs: argument 1 (:int): no implicit conversion of String into Integer\n" \
                      "wrong number of arguments (given 0, expected 1)\n1\n")
  end

  it "gives attached functions arity -1 like the ffi gem; wrapped ones (enum, by_ref, callbacks) raise the same classes" do
    script = <<~'RUBY'
      module L
        extend FFI::Library
        ffi_lib FFI::Library::LIBC
        enum :color, [:red, :green]
        class A < FFI::Struct; layout :x, :int; end
        callback :cb, [:int], :int
        attach_function :abs, [:int], :int
        attach_function :f_enum, :abs, [:color], :int
        attach_function :f_byref, :abs, [A.by_ref], :int
        attach_function :f_cb, :abs, [:cb], :int
      end
      p L.method(:abs).arity
      [-> { L.f_enum }, -> { L.f_enum(:red, 1) }, -> { L.f_byref }, -> { L.f_cb(proc {}, 1) }].each do |c|
        c.call
      rescue => e
        p e.class
      end
    RUBY
    oracle = run("-rffi", "-e", script)
    ours = run("-I", lib_dir, "-rfiddle_jit/ffi", "-e", script)
    expect(ours).to eq(oracle)
    expect(ours).to eq("-1\n#{"ArgumentError\n" * 4}")
  end
end
