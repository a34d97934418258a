# frozen_string_literal: true

require_relative "spec_helper"

RSpec.describe "FiddleJit::Pointer and :pointer" do
  ptr = Differential::Ptr

  describe "FiddleJit::Pointer" do
    it ".new(addr).address == addr" do
      [0, 1, 0x1234, 0xdead_beef, 2**47 - 1, 2**63 - 16].each do |addr|
        expect(FiddleJit::Pointer.new(addr).address).to eq(addr)
      end
    end

    it "#null?" do
      expect(FiddleJit::Pointer.new(0).null?).to be(true)
      expect(FiddleJit::Pointer.new(8).null?).to be(false)
      expect(FiddleJit::MemoryPointer.new(4).null?).to be(false)
      # A Function (a Pointer subclass with data of its own) is refused.
      fn = FiddleJit::Function.new(:int, []) { 1 }
      expect { FiddleJit::Pointer.instance_method(:null?).bind_call(fn) }.to raise_error(TypeError)
    end

    # What DynamicLibrary#find_function builds (FFI::DynamicLibrary::Symbol).
    it ".__frozen_at(address, name): a frozen instance, memory writable, the name frozen" do
      klass = FiddleJit::DynamicLibrary::Symbol
      mem = FiddleJit::MemoryPointer.new(8)
      name = +"strlen"
      sym = klass.__frozen_at(mem.address, name)
      expect(sym).to be_a(klass)
      expect(sym.frozen?).to be(true)
      expect([sym.address, sym.size, sym.type_size]).to eq([mem.address, FiddleJit::Pointer.new(1).size, 1])
      sym.put_int32(0, 7)
      expect(mem.get_int32(0)).to eq(7)
      expect(sym.instance_variable_get(:@name)).to be(name)
      expect(name.frozen?).to be(true)
      expect(sym.inspect).to eq(format("#<FiddleJit::DynamicLibrary::Symbol name=strlen address=0x%016x>", mem.address))
    end

    it "NULL is a null Pointer" do
      expect(FiddleJit::Pointer::NULL).to be_a(FiddleJit::Pointer)
      expect(FiddleJit::Pointer::NULL.null?).to be(true)
      expect(FiddleJit::Pointer::NULL.address).to eq(0)
    end

    it "#== compares addresses" do
      expect(FiddleJit::Pointer.new(16) == FiddleJit::Pointer.new(16)).to be(true)
      expect(FiddleJit::Pointer.new(16) == FiddleJit::Pointer.new(17)).to be(false)
      expect(FiddleJit::Pointer::NULL == FiddleJit::Pointer.new(0)).to be(true)
    end

    it "#== nil is true only for a NULL pointer (like the ffi gem)" do
      expect(FiddleJit::Pointer::NULL == nil).to eq(FFI::Pointer::NULL == nil) # rubocop:disable Style/NilComparison
      expect(FiddleJit::Pointer.new(16) == nil).to eq(FFI::Pointer.new(16) == nil) # rubocop:disable Style/NilComparison
    end

    it "#+ returns a new Pointer offset by n bytes" do
      base = FiddleJit::Pointer.new(0x1000)
      moved = base + 0x24
      expect(moved).to be_a(FiddleJit::Pointer)
      expect(moved.address).to eq(0x1024)
      expect(base.address).to eq(0x1000)
    end

    it "#inspect contains the hex address" do
      expect(FiddleJit::Pointer.new(0x1234abcd).inspect).to match(/0x0*1234abcd/i)
      expect(FiddleJit::Pointer::NULL.inspect).to match(/0x0+\b|0x0\b/)
    end
  end

  describe "differential: Pointer API edge cases" do
    unsigned_addresses = Differential::FfiChange.new(
      since: "1.16.0", change: "Pointer.new reads an Integer address as unsigned (NUM2ULL)", now: 2**63
    )
    [0, 1, 2**63 - 1, -16, -1, 2**63, 2**64 - 1, 2**64, nil, 1.5, "16", :sym,
     Differential::ToInt.new(32)].each do |v|
      it "Pointer.new(#{v.inspect}).address" do
        change = unsigned_addresses.dup.tap { |c| c.now = v } if [2**63, 2**64 - 1].include?(v)
        expect_same_outcome("Pointer.new(#{v.inspect}).address", ffi_changed: change) { |ns| ns::Pointer.new(v).address }
      end
    end

    [16, nil, "16", Object.new].each do |v|
      change = unless v.nil?
                 Differential::FfiChange.new(since: "1.16.0", change: "Pointer#== is false for a non-pointer " \
                                                                      "(it raised ArgumentError)", now: false)
               end
      it "Pointer.new(16) == #{v.inspect}" do
        expect_same_outcome("Pointer.new(16) == #{v.inspect}", ffi_changed: change) { |ns| ns::Pointer.new(16) == v }
      end

      it "NULL == #{v.inspect}" do
        expect_same_outcome("NULL == #{v.inspect}", ffi_changed: change) { |ns| ns::Pointer::NULL == v }
      end
    end

    [0, 8, 2**31, nil, 1.5, "1", Differential::ToInt.new(4)].each do |v|
      it "(Pointer.new(0x1000) + #{v.inspect}).address" do
        expect_same_outcome("(Pointer.new(0x1000) + #{v.inspect}).address") { |ns| (ns::Pointer.new(0x1000) + v).address }
      end
    end

    it "#to_i is the address" do
      expect_same_outcome("Pointer.new(0x1234).to_i") { |ns| ns::Pointer.new(0x1234).to_i }
    end

    it "NULL is frozen (and so Ractor-shareable), unlike the ffi gem's (docs/compatibility.md)" do
      expect(FFI::Pointer::NULL.frozen?).to be(false)
      expect(FiddleJit::Pointer::NULL.frozen?).to be(true)
      expect(Ractor.shareable?(FiddleJit::Pointer::NULL)).to be(true)
    end
  end

  describe ":pointer returns" do
    it "are FiddleJit::Pointer" do
      r = jit_fn(:id_pointer).call(FiddleJit::Pointer.new(0x1234))
      expect(r).to be_a(FiddleJit::Pointer)
      expect(r.address).to eq(0x1234)
    end

    it "NULL returns a Pointer that is null? (like the ffi gem)" do
      r = jit_fn(:str_null_ptr).call
      expect(r).to be_a(FiddleJit::Pointer)
      expect(r.null?).to be(true)
      expect(ffi_fn(:str_null_ptr).call).to be_a(FFI::Pointer).and be_null
    end

    it "a non-NULL C pointer (a static string)" do
      r = jit_fn(:str_static_ptr).call
      expect(r.null?).to be(false)
      expect(jit_fn(:ptr_first_byte).call(r)).to eq("h".ord)
    end

    it "round-trips through id_pointer" do
      [0, 1, 0x7fff_ffff_f000, 0xdead_beef_cafe, 2**63 - 16].each do |addr|
        expect(jit_fn(:id_pointer).call(FiddleJit::Pointer.new(addr)).address).to eq(addr)
      end
    end

    it "pointer arithmetic in C agrees" do
      expect(jit_fn(:ptr_offset).call(FiddleJit::Pointer.new(1000), 24).address).to eq(1024)
      expect(jit_fn(:ptr_offset).call(FiddleJit::Pointer.new(1000), -1000).null?).to be(true)
      expect(jit_fn(:ptr_diff).call(FiddleJit::Pointer.new(1000), FiddleJit::Pointer.new(24))).to eq(976)
    end
  end

  describe ":pointer arguments" do
    it "accept nil as NULL" do
      expect(jit_fn(:is_null).call(nil)).to eq(1)
    end

    it "accept a Pointer" do
      expect(jit_fn(:is_null).call(FiddleJit::Pointer::NULL)).to eq(1)
      expect(jit_fn(:is_null).call(FiddleJit::Pointer.new(8))).to eq(0)
    end

    it "accept objects responding to to_ptr" do
      obj = Object.new
      def obj.to_ptr = FiddleJit::Pointer.new(0x4242)
      expect(jit_fn(:id_pointer).call(obj).address).to eq(0x4242)
    end
  end

  describe "differential: :pointer parameters" do
    [
      nil, ptr.new(0), ptr.new(0x1234), ptr.new(2**63 - 16), Differential::ToPtr.new(0x5678),
      Differential::ToPtr.new(0), 0, 0x1234, -1, 2**64, 1.5, :sym, true, false,
      Differential::Plain.new, [], Differential::ToInt.new(5), Differential::ToStr.new("x"),
      Differential::RaisingConv.new, Differential::WrongConv.new
    ].each do |v|
      it "id_pointer(#{v.inspect})" do
        expect_same(:id_pointer, v)
      end

      it "is_null(#{v.inspect})" do
        expect_same(:is_null, v)
      end
    end

    it "a String is passed as a pointer to its bytes" do
      s = +"Abc"
      expect_same(:ptr_first_byte, s, expect: "A".ord)
      expect_same(:ptr_first_byte, "Z" * 1000, expect: "Z".ord)
      expect_same(:is_null, s, expect: 0)
      # same String object => same buffer address on both sides
      expect_same(:id_pointer, s)
    end

    it "a String with an embedded NUL is fine as :pointer (no C-string check)" do
      s = +"a\0b"
      expect_same(:ptr_first_byte, s, expect: "a".ord)
      expect_same(:is_null, s, expect: 0)
      expect_same(:id_pointer, s)
    end

    it "a shared substring is passed in place (same address on both sides)" do
      big = "0123456789" * 10
      sub = big[10, 50]
      expect_same(:ptr_first_byte, sub, expect: "0".ord)
      expect_same(:id_pointer, sub)
    end

    it "frozen and UTF-16LE Strings as :pointer" do
      expect_same(:ptr_first_byte, "frozen")
      expect_same(:ptr_first_byte, "hi".encode("UTF-16LE"), expect: "h".ord)
      expect_same(:ptr_first_byte, +"")
    end

    it "pins the oracle: an Integer is not a valid :pointer (ArgumentError)" do
      expect(Differential.ffi.call(:id_pointer, [0x1234])[1]).to be_a(ArgumentError)
    end

    it "ptr_offset / ptr_diff" do
      expect_same(:ptr_offset, ptr.new(1000), 24, expect: FFI::Pointer.new(1024))
      expect_same(:ptr_offset, nil, 8)
      expect_same(:ptr_diff, ptr.new(1000), ptr.new(24), expect: 976)
      expect_same(:ptr_diff, nil, ptr.new(24))
      expect_same_raise(:ptr_diff, ptr.new(1), 5)
    end

    it "NULL returns" do
      expect_same(:str_null_ptr)
      expect_same(:id_pointer, nil)
    end

    it "wrong arity" do
      expect_same_raise(:id_pointer)
      expect_same_raise(:id_pointer, nil, nil)
    end
  end
end
