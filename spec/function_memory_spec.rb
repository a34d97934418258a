# frozen_string_literal: true

require_relative "spec_helper"

# A Function is a Pointer to its code (in the ffi gem, whose Function is an
# AbstractMemory): Pointer's memory methods read it, through #to_ptr in
# fiddle_jit (src/ruby/pointer.rs `receiver`, Function.__on_to_ptr). Writes
# there crash the ffi gem; fiddle_jit's #to_ptr of a Function is read-only,
# so they raise.
RSpec.describe "a Function as memory" do
  include Differential::Helpers

  def functions(ns)
    c = ns::Function.new(:size_t, [:string], ns::DynamicLibrary.open(nil, 0).find_function("strlen"))
    cb = ns::Function.new(:int, [:int]) { |x| x }
    [c, cb]
  end

  it "has the ffi gem's size, order and bounds: LONG_MAX bytes of a C function, 48 of a callback" do
    expect_same_outcome("Function size") do |ns|
      functions(ns).map { |f| [f.size, f.total, f.type_size, f.order, f.size_limit?, f.null?] }
    end
  end

  it "reads its code: what a Pointer to the same address reads" do
    expect_same_outcome("Function reads") do |ns|
      functions(ns).map do |f|
        code = ns::Pointer.new(f.address)
        [f.get_bytes(0, 8) == code.get_bytes(0, 8), f.read_uint8 == code.read_uint8,
         f.get_array_of_uint8(1, 3) == code.get_array_of_uint8(1, 3), f.read_bytes(4) == code.read_bytes(4),
         (f + 2).address - f.address, f.slice(1, 4).address - f.address, f[1].address - f.address]
      end
    end
  end

  it "raises on writes (where the ffi gem writes into the code and crashes)" do
    functions(FiddleJit).each do |f|
      before = FiddleJit::Pointer.new(f.address).get_bytes(0, 4)
      [-> { f.write_uint8(0x90) }, -> { f.put_bytes(0, "\x90") }, -> { f.write_pointer(nil) },
       -> { f.put_string(0, "x") }, -> { f.write_bytes("x") }, -> { f.clear }].each do |write|
        expect(&write).to raise_error(RuntimeError, /invalid memory write/)
      end
      expect(FiddleJit::Pointer.new(f.address).get_bytes(0, 4)).to eq(before)
    end
  end

  it "is read as its code by a Pointer method bound to it, not as a Pointer's fields" do
    functions(FiddleJit).each do |f|
      get = FiddleJit::Pointer.instance_method(:get_uint8).bind(f)
      expect(get.call(0)).to eq(FiddleJit::Pointer.new(f.address).get_uint8(0))
      expect { FiddleJit::Pointer.instance_method(:put_uint8).bind(f).call(0, 1) }
        .to raise_error(RuntimeError, /invalid memory write/)
    end
  end
end
