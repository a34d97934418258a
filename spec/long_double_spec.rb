# frozen_string_literal: true

require_relative "spec_helper"
require "bigdecimal"

# :long_double (x87 80-bit on x86-64, IEEE binary128 on aarch64 Linux),
# differential against the ffi gem in the same process. What the oracle does, and so what fiddle_jit does:
#   * results (returns, callback arguments, struct fields, Pointer#get) are
#     BigDecimals built from C's "%.35Le" — NOT Floats: ffi 1.15.5 requires
#     bigdecimal and calls BigDecimal() on the formatted value, so values a
#     double cannot hold (1/3 to 64 bits, 1e4000) survive, and infinities
#     raise ArgumentError (BigDecimal() rejects "inf");
#   * arguments: Float through double, BigDecimal at full precision (strtold
#     of to_s("E")), anything else through NUM2DBL (Integer, to_f; TypeError
#     for String/nil).
RSpec.describe ":long_double (differential vs the ffi gem)" do
  lib = FIXTURE_LIBS.fetch("long_double_fixture")
  ld = :long_double
  signatures = [
    [:ld_identity, [ld], ld], [:ld_add, [ld, ld], ld], [:ld_from_int, [:int64], ld], [:ld_to_int, [ld], :int64],
    [:ld_to_float, [ld], :float], [:ld_third, [], ld], [:ld_one_plus_eps, [], ld], [:ld_huge, [], ld],
    [:ld_is_third, [ld], :int], [:ld_is_one_plus_eps, [ld], :int], [:ld_format, %i[pointer int] + [ld], :int],
    [:ld_mixed, [:int, :double, ld, :int64, :int, ld, :int, :int, :int, :double, :int, ld, :double, :double,
                 :double, :double, :double, :double, :double, ld], ld]
  ]
  bind = lambda do |namespace|
    Module.new do
      extend namespace::Library
      ffi_lib lib
      signatures.each { |name, params, ret| attach_function name, params, ret }
      attach_function :ld_identity_blocking, :ld_identity, [ld], ld, blocking: true
      callback :ld_cb, [ld, :int], ld
      callback :ld_cb_many, [:int, :int, :int, :int, :int, :int, :int, ld, :double], ld
      attach_function :ld_call, %i[ld_cb long_double], ld
      attach_function :ld_call_many, [:ld_cb_many], ld
    end
  end
  oracle = bind.call(FFI)
  # Bound at load time like the oracle. If attaching raises, every call
  # through subject_lib raises that error: the examples that need these
  # functions fail, the others still run, and the run is not aborted.
  subject_lib = begin
    bind.call(FiddleJit)
  rescue NotImplementedError, TypeError => e
    Class.new(BasicObject) { define_method(:method_missing) { |*| ::Kernel.raise e } }.new
  end
  libc = lambda do |namespace|
    Module.new do
      extend namespace::Library
      ffi_lib namespace::Library::LIBC
      attach_function :snprintf, %i[pointer size_t string varargs], :int
    end
  end
  oracle_libc = libc.call(FFI)
  subject_libc = libc.call(FiddleJit)

  # [class, value] or [exception class name, message]
  def outcome
    v = yield
    [v.class, v]
  rescue StandardError => e
    [e.class.name.sub(/\A(FFI|FiddleJit)::/, ""), e.message]
  end

  # Same class and value, or the same exception class with ffi's message
  # (FiddleJit::Library prefixes "fn: argument N (:type): "; under the FFI
  # namespace messages are exactly ffi's, see ffi_errors_spec.rb).
  define_method(:same) do |name, *args|
    want = outcome { oracle.public_send(name, *args) }
    got = outcome { subject_lib.public_send(name, *args) }
    detail = "#{name}(#{args.map(&:inspect).join(", ")}): ffi #{want.inspect}, fiddle_jit #{got.inspect}"
    if want[0].is_a?(String)
      expect(got[0]).to eq(want[0]), detail
      expect(got[1]).to end_with(want[1]), detail
    else
      expect(got).to eq(want), detail
    end
    got[1]
  end

  # What the C side's long double holds, as the oracle prints it ("%.35Le").
  format = if FFI::Platform::ARCH == "aarch64"
             { mantissa_bits: 113, third: "0.333333333333333333333333333333333317", # binary128
               huge_exponent: 4001, # 1e4000L is 0.100000000000000000000000000000000004e4001
               third_plus_one: "1.33333333333333333333333333333333327" }
           else
             { mantissa_bits: 64, third: "0.333333333333333333342368351437379204", # x87 80-bit
               huge_exponent: 4000, # 1e4000L is 0.999999999999999999996546387309962378e4000
               third_plus_one: "1.33333333333333333336947340574951681" }
           end
  third = BigDecimal(format[:third]) # the nearest long double to 1/3

  it "returns BigDecimals like the oracle (identity of Float, Integer and BigDecimal)" do
    expect(same(:ld_identity, 1.5)).to eq(BigDecimal("1.5"))
    [0.0, -2.25, 1e300, 5e-324, 2, -(2**40), 2**70, BigDecimal("0.1"), BigDecimal("-12345.678901234567890123"),
     Differential::ToF.new(0.75)].each { |v| same(:ld_identity, v) }
  end

  it "adds, and converts from and to integers" do
    # 2**70 + 1.25 needs 73 bits: x87 rounds the 1.25 away, binary128 keeps it
    expect(same(:ld_add, 1.25, 2**70)).to eq(BigDecimal(2**70) + (format[:mantissa_bits] >= 73 ? BigDecimal("1.25") : 0))
    expect(same(:ld_add, BigDecimal(2**62), 1.0)).to eq(BigDecimal((2**62) + 1))
    # 2**62 + 1 needs 63 bits: exact in a long double, not in a double.
    expect(same(:ld_from_int, (2**62) + 1)).to eq(BigDecimal((2**62) + 1))
    expect(same(:ld_to_int, BigDecimal((2**62) + 1))).to eq((2**62) + 1)
    expect(same(:ld_to_int, (2**62) + 1)).to eq(2**62) # an Integer goes through double, as in ffi
    expect(same(:ld_to_float, BigDecimal("0.1"))).to eq(0.10000000149011612)
  end

  it "keeps values a double cannot hold (#{format[:mantissa_bits]}-bit mantissa, 15-bit exponent)" do
    expect(same(:ld_third)).to eq(third)
    expect(same(:ld_is_third, third)).to eq(1)
    expect(same(:ld_is_third, 1.0 / 3)).to eq(0)
    eps = same(:ld_one_plus_eps)
    # 1 + LDBL_EPSILON (2**-63 or 2**-112), to the 36 digits ffi prints
    expect(((eps - 1) * (2**(format[:mantissa_bits] - 1))).round(1)).to eq(1)
    expect(same(:ld_is_one_plus_eps, eps)).to eq(1)
    expect(same(:ld_huge).exponent).to eq(format[:huge_exponent])
  end

  it "places long doubles in 16-aligned stack slots among register and stack arguments" do
    args = [1, 2.0, 3, 4, 5, 6, 7, 8, 9, 10.0, 11, 12, 13.0, 14.0, 15.0, 16.0, 17.0, 18.0, 19.0, 20]
    expect(same(:ld_mixed, *args)).to eq(args.each_with_index.sum { |v, i| v * (i + 1) })
    big = [1, 0.5, third, -(2**40), -5, BigDecimal("1e-30"), 7, 8, 9, 0.25, 11, BigDecimal("1e30"),
           13.0, 14.0, 15.0, 16.0, 17.0, 18.0, 19.0, third]
    same(:ld_mixed, *big)
  end

  it "lets C see the same value (C formats it with %.25Lg)" do
    [1.5, third, BigDecimal("0.1"), 2**64].each do |v|
      a = FFI::MemoryPointer.new(64)
      b = FiddleJit::MemoryPointer.new(64)
      oracle.ld_format(a, 64, v)
      subject_lib.ld_format(b, 64, v)
      expect(b.read_string).to eq(a.read_string)
    end
  end

  it "works with blocking: true (the value crosses the GVL-free call block)" do
    expect(subject_lib.ld_identity_blocking(third)).to eq(third)
    expect(subject_lib.ld_identity_blocking(-0.5)).to eq(BigDecimal("-0.5"))
  end

  it "raises like the oracle for bad arguments and unrepresentable results" do
    ["1.5", nil, Object.new, :sym, Differential::WrongConv.new].each do |bad|
      same(:ld_identity, bad)
    end
    expect { subject_lib.ld_identity("1.5") }.to raise_error(TypeError, /no implicit conversion to float from string/)
    expect(same(:ld_identity, Float::INFINITY)).to match(/inf/)
    expect { subject_lib.ld_identity(Float::NAN) }.to raise_error(ArgumentError)
    expect { subject_lib.ld_identity }.to raise_error(ArgumentError, /wrong number of arguments/)
  end

  it "formats variadic :long_double arguments through libc snprintf (%Lf, %Lg)" do
    [[:long_double, BigDecimal("0.1")], [:long_double, 2.5], [:long_double, third]].each do |type, v|
      a = FFI::MemoryPointer.new(96)
      b = FiddleJit::MemoryPointer.new(96)
      args = ["%d %.22Lf %s %Lg %f", :int, 7, type, v, :string, "x", type, 1e4, :double, 0.5]
      expect(subject_libc.snprintf(b, 96, *args)).to eq(oracle_libc.snprintf(a, 96, *args))
      expect(b.read_string).to eq(a.read_string)
    end
  end

  it "passes long doubles to and from callbacks (register and stack arguments)" do
    expect(same(:ld_call, proc { |x, n| x * n }, 1.5)).to eq(BigDecimal("4"))
    expect(same(:ld_call, proc { |x, _| x }, third).round(18)).to eq((third + 1).round(18))
    expect(same(:ld_call, proc { |_, _| BigDecimal(1) / 3 }, 0)).to eq(BigDecimal(format[:third_plus_one]))
    expect(same(:ld_call, proc { nil }, 1)).to eq(1)
    seen = nil
    same(:ld_call_many, proc { |*a| seen = a; a[7] * 3 })
    expect(seen[0, 7]).to eq([1, 2, 3, 4, 5, 6, 7])
    expect(seen[7]).to eq(third)
    expect(seen[8]).to eq(0.5)
  end

  it "reads and writes struct fields and Pointer#get/put(:long_double) like the oracle" do
    make = lambda do |ns|
      Class.new(ns::Struct) { layout :a, :int, :b, :long_double }
    end
    a = make.call(FFI)
    b = make.call(FiddleJit)
    expect([b.size, b.alignment, b.offset_of(:b)]).to eq([a.size, a.alignment, a.offset_of(:b)])
    x = a.new
    y = b.new
    [BigDecimal("0.1"), 3, -2.5, third].each do |v|
      x[:b] = v
      y[:b] = v
      expect(y[:b]).to eq(x[:b])
      expect(y.pointer.get(:long_double, 16)).to eq(x.pointer.get(:long_double, 16))
    end
    y.pointer.put(:long_double, 16, 1.25)
    expect(y[:b]).to eq(BigDecimal("1.25"))
    expect { y[:b] = "x" }.to raise_error(TypeError)
    expect { y.pointer.get(:long_double, 24) }.to raise_error(IndexError)
  end
end
