# frozen_string_literal: true

require_relative "spec_helper"

# Pointers derived from others (`+`, `slice`, `[]`, `Pointer.new(ptr)`,
# `order`) keep what the ffi gem's keep: the access of their source (issue
# 2/7 item 1: a pointer derived from NULL has none, so `(NULL + 8).read_int`
# raises instead of reading address 8) and, beyond the ffi gem, its
# liveness (item 7: after `mp.free` every pointer into that memory is NULL,
# as the README promises for `mp` itself, instead of reading freed memory).
RSpec.describe "derived pointers" do
  include Differential::Helpers

  no_access = {
    "read_int" => ->(p) { p.read_int },
    "write_int" => ->(p) { p.write_int(1) },
    "get_int64" => ->(p) { p.get_int64(0) },
    "put_int64" => ->(p) { p.put_int64(0, 1) },
    "read_double" => ->(p) { p.read_double },
    "read_string" => ->(p) { p.read_string },
    "get_string" => ->(p) { p.get_string(0) },
    "put_string" => ->(p) { p.put_string(0, "a") },
    "read_array_of_int" => ->(p) { p.read_array_of_int(2) },
    "write_array_of_int" => ->(p) { p.write_array_of_int([1]) },
    "read_pointer" => ->(p) { p.read_pointer },
    "write_pointer" => ->(p) { p.write_pointer(nil) },
    "get_bytes" => ->(p) { p.get_bytes(0, 2) },
    "put_bytes" => ->(p) { p.put_bytes(0, "ab") },
    "read_bytes" => ->(p) { p.read_bytes(2) },
    "get(:int)" => ->(p) { p.get(:int, 0) },
    "get_array_of_string" => ->(p) { p.get_array_of_string(0, 1) },
    "order(:big).read_int" => ->(p) { p.order(:big).read_int },
    "slice(0, 16).read_int" => ->(p) { p.slice(0, 16).read_int },
    "(p + 8).read_int" => ->(p) { (p + 8).read_int },
    "p[1].read_int" => ->(p) { p[1].read_int },
    "Pointer.new(p).read_int" => ->(p) { p.class.new(p).read_int }
  }

  # [outcome class name, message] of +block+ on namespace +ns+.
  def raised(ns)
    yield
    [:ok, nil]
  rescue StandardError => e
    [Differential.exception_name(e, ns), e.message]
  end

  describe "from NULL (issue 2/7 item 1)" do
    no_access.each do |label, access|
      it "(NULL + 8).#{label} raises what the ffi gem raises, with its message" do
        ffi, jit = [FFI, FiddleJit].map { |ns| raised(ns) { access.call(ns::Pointer::NULL + 8) } }
        expect(ffi[0]).to eq("RuntimeError") # the oracle itself: not NullPointerError, the address is 8
        expect(jit).to eq(ffi)
      end
    end

    it "NULL.slice(8, 16) keeps no access, and says so at its own address" do
      ffi, jit = [FFI, FiddleJit].map { |ns| raised(ns) { ns::Pointer::NULL.slice(8, 16).read_int } }
      expect(jit).to eq(ffi)
      expect(jit).to eq(["RuntimeError", "invalid memory read at address=0x0000000000000008"])
    end

    it "zero-length arrays still read as []" do
      expect_same_outcome("(NULL + 8).read_array_of_int(0)") { |ns| (ns::Pointer::NULL + 8).read_array_of_int(0) }
    end

    it "other attributes behave as the ffi gem's" do
      expect_same_outcome("NULL + 8 attributes") do |ns|
        p = ns::Pointer::NULL + 8
        [p.address, p.null?, p.size, p == ns::Pointer.new(8), (p + 8).address]
      end
    end

    describe "structs over it (Struct#[] reads and writes in place for number fields)" do
      def structs(ns)
        @structs ||= {}
        @structs[ns] ||= begin
          inner = Class.new(ns::Struct) { layout :v, :int32, :d, :double }
          outer = Class.new(ns::Struct) { layout :a, :int32, :in, inner, :p, :pointer }
          [inner, outer]
        end
      end

      {
        "int field read" => ->(s, _o, null) { s.new(null + 8)[:v] },
        "int field write" => ->(s, _o, null) { s.new(null + 8)[:v] = 1 },
        "double field write" => ->(s, _o, null) { s.new(null + 8)[:d] = 1.5 },
        "nested struct field of S.new(NULL)" => ->(_s, o, null) { o.new(null)[:in][:v] },
        "nested struct field write of S.new(NULL)" => ->(_s, o, null) { o.new(null)[:in][:d] = 2.0 },
        "pointer field of S.new(NULL + 8)" => ->(_s, o, null) { o.new(null + 8)[:p] }
      }.each do |label, access|
        it label do
          ffi, jit = [FFI, FiddleJit].map { |ns| raised(ns) { access.call(*structs(ns), ns::Pointer::NULL) } }
          expect(jit).to eq(ffi)
          expect(jit[0]).to eq("RuntimeError").or eq("NS::NullPointerError")
        end
      end
    end

    it "a struct by value over it raises instead of being copied (the ffi gem segfaults)" do
      dl = Class.new(FiddleJit::Struct) { layout :d, :double, :l, :long }
      lib = Module.new do
        extend FiddleJit::Library
        ffi_lib FixtureBuild.build!(File.expand_path("fixtures/byvalue_fixture.c", __dir__),
                                    File.join(FixtureBuild::DIR, "libfjbyvalue.so"))
        attach_function :bv_take_dl, [dl.by_value], :double
      end
      expect { lib.bv_take_dl(dl.new(FiddleJit::Pointer::NULL + 8)) }
        .to raise_error(RuntimeError, /invalid memory read at address=0x0000000000000008/)
      expect(lib.bv_take_dl(dl.new.tap { |s| s[:d] = 1.5 })).to eq(3.0)
    end

    it "as a :pointer argument it is its address, as in the ffi gem" do
      expect_same(:id_pointer, Differential::Ptr.new(0)) # NULL itself
      expect(jit_fn(:id_pointer).call(FiddleJit::Pointer::NULL + 8).address).to eq(8)
      expect(ffi_fn(:id_pointer).call(FFI::Pointer::NULL + 8).address).to eq(8)
    end
  end

  describe "after the memory is freed (issue 2/7 item 7)" do
    derivations = {
      "slice(0, 64)" => ->(mp) { mp.slice(0, 64) },
      "slice(8, 8)" => ->(mp) { mp.slice(8, 8) },
      "mp + 8" => ->(mp) { mp + 8 },
      "mp[2]" => ->(mp) { mp[2] },
      "Pointer.new(mp)" => ->(mp) { FiddleJit::Pointer.new(mp) },
      "Pointer.new(:int, mp)" => ->(mp) { FiddleJit::Pointer.new(:int, mp) },
      "order(:big)" => ->(mp) { mp.order(:big) },
      "a slice of a slice" => ->(mp) { mp.slice(8, 32).slice(8, 8) },
      "(mp + 8) + 8" => ->(mp) { (mp + 8) + 8 }
    }

    derivations.each do |label, derive|
      it "#{label} reads and writes as NULL (NullPointerError), like mp" do
        mp = FiddleJit::MemoryPointer.new(:int, 16)
        derived = derive.call(mp)
        derived.write_int(7)
        expect(derived.read_int).to eq(7)
        mp.free
        expect(derived.address).to eq(0)
        expect(derived.null?).to be(true)
        expect { derived.read_int }.to raise_error(FiddleJit::NullPointerError, /invalid memory read at address=0x0{16}/)
        expect { derived.write_int(1) }.to raise_error(FiddleJit::NullPointerError, /invalid memory write/)
        expect { derived.get_bytes(0, 4) }.to raise_error(FiddleJit::NullPointerError)
      end
    end

    it "is NULL when passed to C (the stub reads the pointer's address)" do
      mp = FiddleJit::MemoryPointer.new(64)
      slice = mp.slice(16, 16)
      expect(jit_fn(:id_pointer).call(slice).address).to eq(mp.address + 16)
      mp.free
      expect(jit_fn(:id_pointer).call(slice).address).to eq(0)
    end

    it "a Struct over a slice reads as NULL" do
      s = Class.new(FiddleJit::Struct) { layout :v, :int32 }
      mp = FiddleJit::MemoryPointer.new(16)
      view = s.new(mp.slice(4, 4))
      view[:v] = 3
      mp.free
      expect { view[:v] }.to raise_error(FiddleJit::NullPointerError)
      expect { view[:v] = 1 }.to raise_error(FiddleJit::NullPointerError)
    end

    it "AutoPointer#free makes what was derived from it NULL too" do
      mp = FiddleJit::MemoryPointer.new(16)
      auto = FiddleJit::AutoPointer.new(FiddleJit::Pointer.new(mp.address), ->(_) {})
      inner = auto + 4
      expect(inner.address).to eq(mp.address + 4)
      auto.free
      expect(inner.null?).to be(true)
      expect { inner.read_int }.to raise_error(FiddleJit::NullPointerError)
    end

    it "pointers derived from other memory, and the memory's other users, are unaffected" do
      a = FiddleJit::MemoryPointer.new(16)
      b = FiddleJit::MemoryPointer.new(16)
      sb = b.slice(0, 8)
      sb.write_int(5)
      a.slice(0, 8)
      a.free
      expect(sb.read_int).to eq(5)
      expect(b.dup.read_int).to eq(5) # a dup owns a copy
    end

    it "survives derived pointers collected before, with or after the memory (GC, compaction)" do
      keep = []
      200.times do |i|
        mp = FiddleJit::MemoryPointer.new(64)
        slices = Array.new(20) { |j| mp.slice(j, 8) }
        keep << slices.last if (i % 10).zero?
        mp.free if i.even?
        GC.start if (i % 50).zero?
      end
      GC.compact if GC.respond_to?(:compact)
      GC.start
      keep.each { |s| expect(s.address).to eq(0).or be_positive }
    end
  end

  describe "frozen memory" do
    it "a pointer derived later keeps the source's read-only access, as in the ffi gem 1.16+" do
      mp = FiddleJit::MemoryPointer.new(16).freeze
      expect(mp.slice(0, 8).read_int).to eq(0)
      expect { mp.slice(0, 8).write_int(1) }.to raise_error(RuntimeError, /invalid memory write/)
    end
  end
end
