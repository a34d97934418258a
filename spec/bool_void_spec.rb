# frozen_string_literal: true

require_relative "spec_helper"

RSpec.describe ":bool and :void (differential vs the ffi gem)" do
  describe ":bool identity (id_bool)" do
    [true, false].each do |v|
      it "round-trips #{v}" do
        expect_same(:id_bool, v, expect: v)
      end
    end

    [nil, 0, 1, 2, -1, 1.0, "true", "", :true, Differential::Plain.new, [],
     Differential::ToInt.new(1), Differential::ToStr.new("x"), Differential::Ptr.new(1)].each do |v|
      it "given #{v.inspect} (#{v.class}) raises like the ffi gem (TypeError)" do
        expect_same_raise(:id_bool, v)
      end
    end

    it "with wrong arity raises like the ffi gem" do
      expect_same_raise(:id_bool)
      expect_same_raise(:id_bool, true, false)
    end
  end

  describe ":bool returns" do
    it "reads only al: al=1 with garbage above is true, al=0 with garbage above is false" do
      expect_same(:ret_bool_garbage_true, expect: true)
      expect_same(:ret_bool_garbage_false, expect: false)
      expect(jit_fn(:ret_bool_garbage_true).call).to be(true)
      expect(jit_fn(:ret_bool_garbage_false).call).to be(false)
    end
  end

  describe ":void" do
    it "do_nothing returns nil and runs the C function" do
      before = jit_fn(:nothing_count).call
      expect_same(:do_nothing, expect: nil)
      expect(jit_fn(:do_nothing).call).to be_nil
      # expect_same ran it once per side, then once more above
      expect(jit_fn(:nothing_count).call).to eq(before + 3)
    end

    it "set_global / get_global" do
      [0, 42, -7, 2**31 - 1, -2**31].each do |v|
        expect_same(:set_global, v, expect: nil)
        expect_same(:get_global, expect: v)
      end
    end

    it "set_global truncates like the ffi gem" do
      expect_same_raise(:set_global, 2**31)
      expect_same(:set_global, 2**31 - 1)
      expect_same(:get_global)
      expect_same_raise(:set_global, nil)
      expect_same(:get_global)
    end

    it "wrong arity raises like the ffi gem" do
      expect_same_raise(:do_nothing, 1)
      expect_same_raise(:set_global)
      expect_same_raise(:set_global, 1, 2)
      expect_same_raise(:get_global, 1)
    end
  end
end
