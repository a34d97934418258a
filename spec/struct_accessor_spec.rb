# frozen_string_literal: true

require_relative "spec_helper"

# Each laid-out Struct class gets its own machine-code #[] and #[]=
# (src/ruby/struct_accessors.rs, lower/struct_access.rs): number fields
# inline, everything else through the generic native methods. These check
# the inline paths and every way out of them against the ffi gem, and that
# the code goes when its class does.
RSpec.describe "JIT-emitted Struct#[] / #[]= (differential against the ffi gem)" do
  KINDS = %i[int8 uint8 int16 uint16 int32 uint32 int64 uint64 long ulong float double].freeze

  def self.define(ns)
    Class.new(ns::Struct) { layout(*KINDS.flat_map { |k| [k, k] }) }
  end

  ACCESSOR_SIDES = { FFI => define(FFI) }
  ACCESSOR_SIDES[FiddleJit] = define(FiddleJit) unless FIDDLE_JIT_ORACLE_MODE

  def same(label, &block)
    expect_same_outcome(label) { |ns| block.call(ns, ACCESSOR_SIDES.fetch(ns)) }
  end

  def outcome
    yield
  rescue StandardError => e
    e.class.name.sub("FiddleJit", "FFI")
  end

  LIMITS = [0, 1, -1, 127, -128, 128, 255, 256, 32_767, -32_768, 65_535, 65_536, 2**31 - 1, -2**31, 2**31,
            2**32 - 1, 2**32, -2**31 - 1, 2**62 - 1, -2**62, 2**62, -2**62 - 1, 2**63 - 1, -2**63, 2**63,
            2**64 - 1, 2**64, -2**63 - 1, 1.0, 1.9, -1.9, 2.5e9, Float::NAN, true, false, nil, "1", :x].freeze

  (KINDS - %i[float double]).each do |kind|
    it "#{kind}: each value written, read back and as bytes" do
      same(kind) do |_ns, klass|
        st = klass.new
        LIMITS.map { |v| outcome { [(st[kind] = v).equal?(v), st[kind], st.pointer.get_bytes(st.offset_of(kind), 8)] } }
      end
    end

    it "#{kind}: every bit pattern's extremes read back (Fixnum and Bignum boundaries)" do
      same("read #{kind}") do |_ns, klass|
        st = klass.new
        [[0xff] * 8, [0x80] + [0] * 7, [0] * 7 + [0x80], [0xff] * 7 + [0x7f], [0xff] * 7 + [0x3f],
         [0] * 7 + [0x40], [0] * 7 + [0xc0], [0xff] * 7 + [0xbf]].map do |bytes|
          st.pointer.put_bytes(st.offset_of(kind), bytes.pack("C*"))
          st[kind]
        end
      end
    end
  end

  %i[float double].each do |kind|
    it "#{kind}: flonums, heap Floats, NaN, infinities, -0.0, subnormals, Integers and others" do
      same(kind) do |_ns, klass|
        st = klass.new
        [1.5, 0.0, -0.0, 1e300, -1e-300, 5e-324, Float::NAN, -Float::NAN, Float::INFINITY, -Float::INFINITY,
         3.4e38, 1e39, 2**53 + 1, 3, -7, 2**70, 2**62, nil, true, "1.5", :x, 1r].map do |v|
          outcome { [(st[kind] = v).equal?(v), st[kind], st.pointer.get_bytes(st.offset_of(kind), st.class.size.clamp(0, 8))] }
        end
      end
    end
  end

  it ":pointer fields read inline as Pointers (NULL too) and are written as before" do
    same("pointer") do |ns, _|
      klass = Class.new(ns::Struct) { layout :n, :int, :p, :pointer, :q, :pointer }
      st = klass.new
      mem = ns::MemoryPointer.new(4)
      r = [st[:p].null?, st[:p].class.name.sub("FiddleJit", "FFI"), st[:p] == ns::Pointer::NULL]
      st[:p] = mem
      st[:q] = ns::Pointer.new(0x1234)
      r += [st[:p].address == mem.address, st[:q].address, st[:p].size == mem.size]
      st[:q] = nil
      r + [st[:q].null?, outcome { st[:q] = 5 }, outcome { st[:q] = "x" }, outcome { klass.new(ns::MemoryPointer.new(8))[:p] }]
    end
  end

  it ":string fields read inline (nil for NULL, the bytes up to the NUL) and refuse writes as before" do
    same("string") do |ns, _|
      klass = Class.new(ns::Struct) { layout :n, :int, :s, :string }
      st = klass.new
      text = ns::MemoryPointer.from_string("h\xC3\xA9llo\0rest")
      r = [st[:s]]
      st.pointer.put_pointer(st.offset_of(:s), text)
      s = st[:s]
      r + [s, s.encoding.to_s, s.frozen?, st[:s].equal?(s), outcome { st[:s] = "x" }, outcome { klass.new(ns::MemoryPointer.new(6))[:s] }]
    end
  end

  it "names: Symbols only (dynamic ones too); Strings, unknown names and others raise as in the ffi gem" do
    same("names") do |ns, _|
      dynamic = "dyn_#{rand(1 << 30)}"
      klass = Class.new(ns::Struct) { layout :a, :int, dynamic.to_sym, :double }
      st = klass.new
      st[dynamic.to_sym] = 2.5
      st[:a] = 4
      [st[dynamic.to_sym], st[:a]] +
        ["a", dynamic, :b, 1, nil, 1.5, Object.new].flat_map { |n| [outcome { st[n] }, outcome { st[n] = 1 }] }
    end
  end

  it "subclasses: with their own layout, theirs; the parent's stay right" do
    same("subclasses") do |ns, _|
      parent = Class.new(ns::Struct) { layout :a, :int, :b, :int }
      own = Class.new(parent) { layout :b, :int64, :a, :int8 }
      p = parent.new
      o = own.new
      p[:a] = 1
      o[:a] = 3
      o[:b] = 2**40
      [p.values, o.values, o.pointer.get_bytes(0, 9), outcome { o[:a] = 300 }, outcome { own.new(p.pointer)[:b] }]
    end
  end

  it "a struct over NULL, too-short or big-endian memory" do
    same("odd memory") do |ns, klass|
      short = klass.new(ns::MemoryPointer.new(5))
      null = klass.new(ns::Pointer::NULL)
      big = klass.new.order(:big)
      big[:int32] = 0x01020304
      big[:double] = 1.5
      [outcome { short[:int32] }, outcome { short[:int8] }, outcome { short[:int32] = 1 }, outcome { short[:int8] = 1 },
       outcome { null[:int32] }, outcome { null[:int32] = 1 }, big[:int32], big.pointer.get_bytes(big.offset_of(:int32), 4),
       big[:double]]
    end
  end

  # Writing through a frozen struct or into frozen memory raises from the
  # ffi gem 1.16 on (1.15.5 writes); reads go on.
  def since_ffi_116(what, now) = Differential::FfiChange.new(since: "1.16.0", change: what, now: now)

  it "a frozen struct's []= raises FrozenError; its [] reads" do
    frozen = since_ffi_116("writing a field of a frozen Struct raises FrozenError", FrozenError)
    %i[int32 double].each do |kind|
      expect_same_outcome("frozen #{kind}", ffi_changed: frozen) { |ns| ACCESSOR_SIDES.fetch(ns).new.freeze[kind] = 1 }
    end
    same("frozen read") { |_ns, klass| klass.new.tap { |st| st[:int32] = 5 }.freeze[:int32] }
  end

  it "frozen memory: []= raises RuntimeError, [] reads" do
    refuse = since_ffi_116("writes to frozen memory raise RuntimeError", RuntimeError)
    expect_same_outcome("frozen memory", ffi_changed: refuse) do |ns|
      ACCESSOR_SIDES.fetch(ns).new(ns::MemoryPointer.new(64).freeze)[:uint16] = 1
    end
    same("frozen memory read") { |ns, klass| klass.new(ns::MemoryPointer.new(64).freeze)[:uint16] }
  end

  it "re-laying out a class: new instances use the new layout, old ones keep theirs" do
    same("re-layout") do |ns, _|
      klass = Class.new(ns::Struct) { layout :a, :int, :b, :int }
      old = klass.new
      old[:b] = 7
      $stderr = StringIO.new # the deprecation warning
      begin
        klass.layout :b, :double, :c, :int8
      ensure
        $stderr = STDERR
      end
      fresh = klass.new
      fresh[:b] = 2.5
      fresh[:c] = -1
      [old[:b], fresh[:b], fresh[:c], outcome { fresh[:a] }, fresh.pointer.get_bytes(0, 9)]
    end
  end

  it "a struct of many number fields finds each by name (a search, not a chain)" do
    same("many fields") do |ns, _|
      st = Class.new(ns::Struct) { layout(*(0...40).flat_map { |i| [:"m#{i}", i.even? ? :int16 : :double] }) }.new
      40.times { |i| st[:"m#{i}"] = i }
      (0...40).map { |i| st[:"m#{i}"] }
    end
  end

  unless FIDDLE_JIT_ORACLE_MODE
    # The ffi gem 1.15 and 1.17 raise for a subclass without a layout of its
    # own; fiddle_jit reads it through the parent's, and so does the
    # parent's accessor.
    it "a subclass without a layout reads and writes through its parent's accessor" do
      parent = Class.new(FiddleJit::Struct) { layout :a, :int, :b, :double }
      bare = Class.new(parent)
      st = bare.new
      st[:a] = 7
      st[:b] = 0.5
      expect([st[:a], st[:b], st.values, bare.instance_method(:[]).owner]).to eq([7, 0.5, [7, 0.5], parent])
    end

    it "installs the class's own methods on its first access, but never over #[] / #[]= written in Ruby (here or in a module)" do
      plain = Class.new(FiddleJit::Struct) { layout :a, :int }
      expect(plain.instance_method(:[]).owner).to eq(FiddleJit::Struct)
      plain.new[:a]
      expect(plain.instance_method(:[]).owner).to eq(plain)
      expect(plain.instance_method(:[]=).owner).to eq(plain)
      expect(plain.instance_methods(false)).not_to include(:a)

      helpers = Module.new { def [](name) = name == :twice ? super(:a) * 2 : super }
      custom = Class.new(FiddleJit::Struct) do
        include helpers
        def []=(name, value)
          super(name, value + 1)
        end
        layout :a, :int
      end
      st = custom.new
      st[:a] = 20
      expect([st[:a], st[:twice], custom.instance_method(:[]).owner]).to eq([21, 42, helpers])
    end

    it "emits a class's code on its first access only, and none for a layout without inline fields" do
      before = FiddleJit::Native.struct_accessor_total
      numbers = Class.new(FiddleJit::Struct) { layout :a, :int }
      others = Class.new(FiddleJit::Struct) { layout :b, :bool, :n, Class.new(FiddleJit::Struct) { layout :x, :int } }
      expect(FiddleJit::Native.struct_accessor_total).to eq(before)
      numbers.new[:a] = 1
      expect([others.new[:b], others.new[:n][:x]]).to eq([false, 0])
      # numbers' and the nested class's (its [:x]); others has no inline field.
      expect(FiddleJit::Native.struct_accessor_total).to eq(before + 2)
      expect(others.new[:b]).to be(false)
      expect(FiddleJit::Native.struct_accessor_total).to eq(before + 2)
    end

    it "a Method taken before a re-layout still runs its accessor" do
      klass = Class.new(FiddleJit::Struct) { layout :a, :int }
      st = klass.new
      st[:a] = 9
      old = st.method(:[])
      $stderr = StringIO.new
      begin
        klass.layout :a, :double
      ensure
        $stderr = STDERR
      end
      GC.start
      expect([old.call(:a), klass.new.tap { |s| s[:a] = 1.5 }[:a]]).to eq([9, 1.5])
    end

    it "the code of collected struct classes is reused: live code stays bounded (child process)" do
      run_child_scenario("struct_accessor_child.rb", "classes", timeout: 300)
    end
  end
end
