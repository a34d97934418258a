# frozen_string_literal: true

require_relative "spec_helper"

# Where the ffi gem lacks a typedef C has (intptr_t and uintptr_t with
# Debian's ffi 1.15.5 on aarch64-linux), its side attaches the builtin that
# a C probe says is the same type (Differential.oracle_type): the ffi gem
# still decides every value and exception, and the pinned boundaries
# (`expect:`) come from C (INTPTR_MIN, UINTPTR_MAX in the fixture).
RSpec.describe "integer types (differential vs the ffi gem)" do
  FixtureSignatures::INT_TYPES.each do |type, (bits, signed)|
    describe ":#{type} identity (id_#{type})" do
      min = signed ? -2**(bits - 1) : 0
      max = signed ? 2**(bits - 1) - 1 : 2**bits - 1

      it "round-trips its boundaries #{min} and #{max}" do
        expect_same(:"id_#{type}", min, expect: min)
        expect_same(:"id_#{type}", max, expect: max)
      end

      (Differential::INTEGER_ARGS + [min - 1, max + 1]).uniq.each do |v|
        it "given Integer #{v}" do
          expect_same(:"id_#{type}", v)
        end
      end

      Differential::NON_INTEGER_ARGS.each do |v|
        it "given #{v.inspect} (#{v.class})" do
          expect_same(:"id_#{type}", v)
        end
      end

      it "given a Pointer" do
        expect_same(:"id_#{type}", Differential::Ptr.new(0x1234))
      end

      it "with wrong arity raises like the ffi gem (ArgumentError)" do
        expect_same_raise(:"id_#{type}")
        expect_same_raise(:"id_#{type}", 1, 2)
      end
    end
  end

  describe "narrow truncation rules pinned to the oracle" do
    # These pin what the ffi gem does so a change of oracle is noticed.
    it "int8 200 => -56, 255 => -1, 256 => 0, -129 => 127" do
      expect_same(:id_int8, 200, expect: -56)
      expect_same(:id_int8, 255, expect: -1)
      expect_same(:id_int8, 256, expect: 0)
      expect_same(:id_int8, -129, expect: 127)
    end

    it "int8 accepts anything that fits a C int and truncates (2**31-1 => -1)" do
      expect_same(:id_int8, 2**31 - 1, expect: -1)
    end

    it "uint8 -1 => 255, uint16 -1 => 65535, uint32 -1 => 4294967295, uint64 -1 => 2**64-1" do
      expect_same(:id_uint8, -1, expect: 255)
      expect_same(:id_uint16, -1, expect: 65_535)
      expect_same(:id_uint32, -1, expect: 2**32 - 1)
      expect_same(:id_uint64, -1, expect: 2**64 - 1)
    end

    it "Floats are truncated toward zero (1.5 => 1, -1.5 => -1)" do
      expect_same(:id_int32, 1.5, expect: 1)
      expect_same(:id_int32, -1.5, expect: -1)
      expect_same(:id_int64, -1.5, expect: -1)
    end

    it "to_int is honoured" do
      expect_same(:id_int32, Differential::ToInt.new(5), expect: 5)
    end
  end

  describe "boundary constants returned from C" do
    FixtureSignatures::INT_CONSTANTS.each do |name, (type, value)|
      it "#{name} => #{value} as :#{type}" do
        expect_same(name, expect: value)
        expect(jit_fn(name).call).to be_a(Integer)
      end
    end
  end

  describe "narrow returns with garbage in the upper bits of rax" do
    FixtureSignatures::GARBAGE_RETURNS.each do |name, (type, value)|
      it "#{name} as :#{type} => #{value.inspect}" do
        expect_same(name, expect: value)
        expect(jit_fn(name).call).to eql(value)
      end
    end
  end

  describe "narrow arguments are extended by the caller" do
    {
      int8: [0, 1, -1, 127, -128, 200, 255, 256],
      uint8: [0, 1, 127, 128, 255, -1, 256],
      int16: [0, -1, 32_767, -32_768, 40_000, 65_535],
      uint16: [0, 1, 32_768, 65_535, -1, 65_536]
    }.each do |type, values|
      values.each do |v|
        it "widen_#{type}(#{v}) (C callee)" do
          expect_same(:"widen_#{type}", v)
        end

        it "raw_edi_of_#{type}(#{v}): the stub fills all 32 bits of edi" do
          expect_same(:"raw_edi_of_#{type}", v)
        end

        it "raw_stack_of_#{type}(#{v}): a stack-passed narrow arg is extended to 32 bits" do
          # Not differential: libffi writes only the narrow bytes of a stack
          # slot and leaves garbage above them, so the oracle's 32-bit value is
          # undefined. fiddle_jit must store the value the oracle truncates
          # +v+ to, sign/zero-extended to (at least) 32 bits.
          skip Differential::ORACLE_STACK_SKIP if FIDDLE_JIT_ORACLE_MODE
          want = ffi_fn(:"id_#{type}").call(v)
          expect(jit_fn(:"raw_stack_of_#{type}").call(11, 22, 33, 44, 55, 66, v)).to eql(want)
        end
      end
    end

    { char: [-1, 127, -128, 200], uchar: [255, 128, -1], short: [-1, -32_768, 65_535],
      ushort: [65_535, 32_768, -1] }.each do |type, values|
      values.each do |v|
        it "raw_edi_of_#{type}(#{v})" do
          expect_same(:"raw_edi_of_#{type}", v)
        end
      end
    end

    it "pins the oracle: int8 -1 arrives as 0xffffffff, uint8 255 as 0x000000ff" do
      expect_same(:raw_edi_of_int8, -1, expect: -1)
      expect_same(:raw_edi_of_uint8, 255, expect: 255)
      expect_same(:raw_edi_of_int16, -2, expect: -2)
      expect_same(:raw_edi_of_uint16, 65_535, expect: 65_535)
    end

    [true, false].each do |b|
      it "bool #{b}: widen_bool / raw_edi_of_bool / raw_stack_of_bool" do
        expect_same(:widen_bool, b, expect: b ? 1 : 0)
        expect_same(:raw_edi_of_bool, b, expect: b ? 1 : 0)
      end

      it "raw_stack_of_bool(#{b}): a stack-passed bool is zero-extended to 32 bits" do
        skip Differential::ORACLE_STACK_SKIP if FIDDLE_JIT_ORACLE_MODE
        expect(jit_fn(:raw_stack_of_bool).call(1, 2, 3, 4, 5, 6, b)).to eql(b ? 1 : 0)
      end
    end

    [0, -1, 2**31 - 1, -2**31].each do |v|
      it "widen_int32(#{v})" do
        expect_same(:widen_int32, v, expect: v)
      end
    end

    [0, 2**32 - 1, 2**31, -1].each do |v|
      it "widen_uint32(#{v})" do
        expect_same(:widen_uint32, v)
      end
    end
  end
end
