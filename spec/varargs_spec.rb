# frozen_string_literal: true

require_relative "spec_helper"

# Variadic functions through libc's snprintf, differential against the ffi
# gem: the same call shapes must format the same text.
RSpec.describe "variadic functions (:varargs)" do
  before(:all) do
    @fj = Module.new do
      extend FiddleJit::Library
      ffi_lib FiddleJit::Library::LIBC
      attach_function :snprintf, %i[pointer size_t string varargs], :int
    end
    @ffi = Module.new do
      extend FFI::Library
      ffi_lib FFI::Library::LIBC
      attach_function :snprintf, %i[pointer size_t string varargs], :int
    end
  end

  {
    "ints and strings" => ["%d %s %u", :int, -5, :string, "x", :uint, 7],
    "64-bit and narrow types" => ["%ld %lu %hhd %hd %c", :long, 2**40, :ulong, 2**64 - 1, :char, -3, :short, 300, :char, 65],
    "doubles and promoted floats" => ["%.3f %.3f %g", :double, 3.14159, :float, 2.5, :double, -0.0],
    "a pointer" => ["%p", :pointer, FFI::Pointer.new(0x1234)],
    "more doubles than xmm registers" => ["%g " * 10, *([:double, 1.25] * 10)],
    "more integers than registers" => ["%d " * 9, *([:int, 42] * 9)],
    "ints and doubles interleaved past both register files" =>
      ["%d %g " * 9, *([:int, 1, :double, 0.5] * 9)],
    "no variadic arguments" => ["plain"]
  }.each do |what, (fmt, *typed)|
    it "formats #{what} like the ffi gem" do
      fj_typed = typed.map { |v| v.is_a?(FFI::Pointer) ? FiddleJit::Pointer.new(v.address) : v }
      buf = FFI::MemoryPointer.new(512)
      n_ffi = @ffi.snprintf(buf, 512, fmt, *typed)
      expected = buf.read_string
      buf.clear
      n_fj = @fj.snprintf(FiddleJit::Pointer.new(buf.address), 512, fmt, *fj_typed)
      expect([n_fj, buf.read_string]).to eq([n_ffi, expected])
    end
  end

  it "caches one stub per call shape" do
    buf = FiddleJit::Pointer.new(FFI::MemoryPointer.new(64).address)
    before = FiddleJit::Native.arena_stats.first
    3.times { |i| @fj.snprintf(buf, 64, "%d %d", :int, i, :int, i) }
    grown = FiddleJit::Native.arena_stats.first - before
    3.times { |i| @fj.snprintf(buf, 64, "%d %d", :int, i, :int, i) }
    expect(FiddleJit::Native.arena_stats.first - before).to eq(grown)
  end

  it "treats a trailing type without a value as nil, like the ffi gem" do
    buf = FFI::MemoryPointer.new(64)
    ffi_error = (@ffi.snprintf(buf, 64, "%d", :int) rescue $!)
    expect(ffi_error).to be_a(TypeError)
    expect { @fj.snprintf(FiddleJit::Pointer.new(buf.address), 64, "%d", :int) }.to raise_error(TypeError)
  end

  it "treats missing fixed arguments as nil, like the ffi gem" do
    ffi_error = (@ffi.snprintf(nil) rescue $!)
    expect(ffi_error).to be_a(TypeError)
    expect { @fj.snprintf(nil) }.to raise_error(ffi_error.class)
  end

  it "raises the ffi gem's exception classes for bad variadic values and types" do
    buf = FFI::MemoryPointer.new(64)
    fj_buf = FiddleJit::Pointer.new(buf.address)
    [[:int, "str"], [:string, 5], [:double, nil]].each do |type, value|
      ffi_error = (@ffi.snprintf(buf, 64, "%d", type, value) rescue $!)
      expect { @fj.snprintf(fj_buf, 64, "%d", type, value) }.to raise_error(ffi_error.class)
    end
    ffi_error = (@ffi.snprintf(buf, 64, "%d", :no_such_type, 1) rescue $!)
    expect { @fj.snprintf(fj_buf, 64, "%d", :no_such_type, 1) }.to raise_error(ffi_error.class)
  end
end
