# frozen_string_literal: true

require_relative "spec_helper"

RSpec.describe "floating-point types (differential vs the ffi gem)" do
  %i[float double].each do |type|
    describe ":#{type} identity (id_#{type})" do
      Differential::FLOAT_ARGS.each do |v|
        it "given Float #{v.inspect} (0x#{Differential.float_hex(v)})" do
          expect_same(:"id_#{type}", v)
        end
      end

      Differential::NON_FLOAT_ARGS.each do |v|
        label = v.is_a?(Integer) && v.bit_length > 70 ? "2**#{v.bit_length - 1}" : v.inspect
        it "given #{label} (#{v.class})" do
          expect_same(:"id_#{type}", v)
        end
      end

      it "given a Pointer" do
        expect_same(:"id_#{type}", Differential::Ptr.new(16))
      end

      it "with wrong arity raises like the ffi gem" do
        expect_same_raise(:"id_#{type}")
        expect_same_raise(:"id_#{type}", 1.0, 2.0)
      end
    end
  end

  describe "pinned oracle values" do
    it "keeps -0.0 and NaN bit-exact through :double" do
      expect_same(:id_double, -0.0, expect: -0.0)
      expect_same(:id_double, Differential::NAN_PAYLOAD, expect: Differential::NAN_PAYLOAD)
    end

    it "rounds to single precision through :float" do
      expect_same(:id_float, 0.1, expect: 0.10000000149011612)
      expect_same(:id_float, 1e300, expect: Float::INFINITY)
      expect_same(:id_float, 1e-300, expect: 0.0)
    end

    it "converts Integers and Bignums" do
      expect_same(:id_double, 1, expect: 1.0)
      expect_same(:id_double, 2**64, expect: 18_446_744_073_709_551_616.0)
      expect_same(:id_double, 2**100, expect: 2.0**100)
    end
  end

  describe "boundary constants returned from C" do
    FixtureSignatures::FLOAT_CONSTANTS.each do |name, (type, value)|
      it "#{name} as :#{type} => #{value.inspect}" do
        expect_same(name, expect: value)
        expect(jit_fn(name).call).to be_a(Float)
      end
    end

    it "returns heap floats (non-flonum) that survive GC" do
      vals = Array.new(200) { jit_fn(:ret_dbl_huge).call }
      GC.start
      expect(vals).to all(eql(1e300))
      tiny = jit_fn(:ret_dbl_tiny).call
      GC.start
      expect(tiny).to eql(1e-300)
    end
  end

  describe "float promotions" do
    [0.1, 1.0 / 3, 1.5, -0.0, 1e300, 3.5e38, Float::NAN, Float::INFINITY, 16_777_217.0].each do |v|
      it "float_to_double(#{v.inspect})" do
        expect_same(:float_to_double, v)
      end

      it "double_to_float(#{v.inspect})" do
        expect_same(:double_to_float, v)
      end
    end

    [[0.1, 0.2], [1, 2], [1.5, -1.5], [3.0e38, 3.0e38], [2**24, 1], [1e-45, 1e-45]].each do |a, b|
      it "add_float(#{a.inspect}, #{b.inspect})" do
        expect_same(:add_float, a, b)
      end

      it "add_double(#{a.inspect}, #{b.inspect})" do
        expect_same(:add_double, a, b)
      end
    end

    it "pins float_to_double(0.1) and add_float(0.1, 0.2)" do
      expect_same(:float_to_double, 0.1, expect: 0.10000000149011612)
      expect_same(:add_float, 0.1, 0.2, expect: 0.30000001192092896)
    end

    [[1, 0.5, 2, 0.25], [-128, 1.5, -3, 2.5], [200, 1e20, 2**31 - 1, -0.0]].each do |args|
      it "int_float_mix(#{args.map(&:inspect).join(", ")}): gpr/xmm assignment" do
        expect_same(:int_float_mix, *args)
      end
    end

    it "mixes bad arguments: the first bad argument decides the exception" do
      expect_same_raise(:int_float_mix, nil, 1.0, 1, 1.0)
      expect_same_raise(:int_float_mix, 1, nil, 1, 1.0)
      expect_same_raise(:int_float_mix, 1, 1.0, 1, nil)
      expect_same_raise(:int_float_mix, 2**40, nil, 1, 1.0)
    end
  end
end
