# frozen_string_literal: true

require_relative "spec_helper"

# Struct#[] and #[]= are native (a per-layout field table; numbers read and
# written in place, everything else through the Ruby field objects). These
# run every kind of field, name and value through both libraries.
RSpec.describe "Struct#[] / #[]= (differential against the ffi gem)" do
  def self.define(ns)
    inner = Class.new(ns::Struct) { layout :a, :int, :b, :char }
    klass = Class.new(ns::Struct) do
      layout :i8, :int8, :u8, :uint8, :i16, :int16, :u16, :uint16, :i32, :int32, :u32, :uint32,
             :i64, :int64, :u64, :uint64, :l, :long, :ul, :ulong, :f, :float, :d, :double,
             :p, :pointer, :b, :bool, :s, :string, :in, inner, :ints, [:int, 3], :chars, [:char, 8]
    end
    { klass: klass, inner: inner, ns: ns }
  end

  ACCESS_SIDES = Differential.per_namespace { |ns| define(ns) }

  def plain(value)
    case value
    when Array then value.map { |v| plain(v) }
    when Float then [:float, Differential.float_hex(value)]
    when FFI::Pointer then [:ptr, value.address]
    when FFI::Struct, FFI::Struct::InlineArray then [:obj, value.to_a] rescue [:obj, value.class.superclass.name]
    else
      if !FIDDLE_JIT_ORACLE_MODE && value.is_a?(FiddleJit::Pointer)
        [:ptr, value.address]
      elsif !FIDDLE_JIT_ORACLE_MODE && (value.is_a?(FiddleJit::Struct) || value.is_a?(FiddleJit::Struct::InlineArray))
        [:obj, value.to_a] rescue [:obj, value.class.superclass.name.sub("FiddleJit", "FFI")]
      else
        value
      end
    end
  end

  def error_class
    yield
    :no_error
  rescue StandardError => e
    e.class.name.sub("FiddleJit", "FFI")
  end

  def same(label, &block)
    expect_same_outcome_on(ACCESS_SIDES, label) { |side| plain(block.call(side)) }
  end

  ACCESS_INTS = %i[i8 u8 i16 u16 i32 u32 i64 u64 l ul].freeze
  ACCESS_VALUES = [0, 1, -1, 127, 128, 255, 256, -129, 65_535, 2**31 - 1, 2**31, -2**31, 2**32 - 1, 2**32,
            2**62 - 1, 2**62, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -2**63, 1.9, -1.9, nil, "1", :x,
            Differential::ToInt.new(5)].freeze

  ACCESS_INTS.each do |field|
    it "#{field}: []= then [] for every value (truncation, RangeError, TypeError)" do
      same("field #{field}") do |s|
        st = s[:klass].new
        ACCESS_VALUES.map do |v|
          st[field] = v
          [st[field], st.pointer.get_bytes(0, st.size)]
        rescue StandardError => e
          e.class
        end
      end
    end
  end

  %i[f d].each do |field|
    it "#{field}: Floats, Integers, Bignums, nil, to_f objects" do
      same("field #{field}") do |s|
        st = s[:klass].new
        [1.5, -0.0, Float::NAN, Float::INFINITY, 1e300, 3, -7, 2**70, nil, "1.5", Differential::ToF.new(2.5)].map do |v|
          r = (st[field] = v)
          [r.equal?(v), st[field]]
        rescue StandardError => e
          e.class
        end
      end
    end
  end

  it "other field kinds go through their Ruby semantics" do
    same("other kinds") do |s|
      st = s[:klass].new
      st[:p] = s[:ns]::Pointer.new(0x1234)
      st[:b] = true
      st[:in][:a] = 7
      st[:ints][1] = 9
      st[:chars] = "hey"
      [st[:p], st[:b], st[:in][:a], st[:ints].to_a, st[:chars].to_s, st[:s], error_class { st[:s] = "x" },
       error_class { st[:in] = 5 }, error_class { st[:chars] = "x" * 9 }, error_class { st[:ints] = [1] }]
    end
  end

  it "unknown names, Strings and other keys raise ArgumentError" do
    ["nope", :nope, "i8", 1, nil, 1.5].each do |name|
      same("name #{name.inspect}") { |s| s[:klass].new[name] }
      same("name= #{name.inspect}") { |s| s[:klass].new[name] = 1 }
    end
  end

  it "a struct over too little memory, NULL or freed memory raises (never crashes)" do
    same("short memory") { |s| s[:klass].new(s[:ns]::MemoryPointer.new(4))[:d] }
    same("short memory put") { |s| (s[:klass].new(s[:ns]::MemoryPointer.new(4))[:i64] = 1) }
    same("short memory ok field") { |s| s[:klass].new(s[:ns]::MemoryPointer.new(4))[:i8] }
    same("null") { |s| s[:klass].new(s[:ns]::Pointer::NULL)[:i32] }
    same("null put") { |s| (s[:klass].new(s[:ns]::Pointer::NULL)[:i32] = 1) }
  end

  it "[]= returns the assigned value; values and members agree" do
    same("values") do |s|
      st = s[:inner].new
      r = (st[:a] = 2**31 - 1)
      [r, st.values, st.members, st[:a], st[:b]]
    end
  end

  it "a subclass whose initialize skips super gets zeroed memory on first access" do
    same("lazy memory") do |s|
      k = Class.new(s[:ns]::Struct) do
        layout :a, :int, :b, :char
        def initialize; end # rubocop:disable Lint/MissingSuper
      end
      st = k.new
      r = [st.members, st[:a]]
      st[:b] = 7
      r + [st.values, st.pointer.size]
    end
    same("lazy memory, no layout") { |s| Class.new(s[:ns]::Struct) { def initialize; end }.new[:a] } # rubocop:disable Lint/MissingSuper
  end

  it "a repeated field name reads and writes its last field, in [] and values" do
    same("repeated name") do |s|
      st = Class.new(s[:ns]::Struct) { layout :a, :int, :a, :int }.new
      st.pointer.write_array_of_int([1, 2])
      r = [st[:a], st.values, st.members]
      st[:a] = 9
      r + [st.pointer.read_array_of_int(2)]
    end
  end

  it "every field of a 300-field struct is found by its name" do
    same("300 fields") do |s|
      st = Class.new(s[:ns]::Struct) { layout(*(0...300).flat_map { |i| [:"f#{i}", :uint16] }) }.new
      300.times { |i| st[:"f#{i}"] = i }
      [(0...300).map { |i| st[:"f#{i}"] }, st.pointer.read_array_of_uint16(300) == (0...300).to_a]
    end
  end

  it "new(pointer, *spec) lays the class out, then reads the memory" do
    same("spec at new") do |s|
      mem = s[:ns]::MemoryPointer.new(:int, 2).write_array_of_int([5, 6])
      st = Class.new(s[:ns]::Struct).new(mem, :a, :int, :b, :int)
      [st.members, st[:a], st[:b], st.class.size]
    end
  end

  unless FIDDLE_JIT_ORACLE_MODE
    it "a field type of the user's (struct_field_class) is read and written through its Field" do
      field = Class.new(FiddleJit::StructLayout::Field) do
        def get(ptr) = ptr.get_int32(offset) * 10
        def put(ptr, value) = ptr.put_int32(offset, value + 1)
      end
      type = Object.new
      type.define_singleton_method(:struct_field_class) { field }
      type.define_singleton_method(:size) { 4 }
      type.define_singleton_method(:alignment) { 4 }
      st = Class.new(FiddleJit::Struct) { layout :x, type }.new
      st[:x] = 4
      expect([st[:x], st.values, st.pointer.get_int32(0)]).to eq([50, [50], 5])
    end

    it "after MemoryPointer#free a struct's fields raise NullPointerError" do
      mem = FiddleJit::MemoryPointer.new(8)
      st = ACCESS_SIDES.fetch(FiddleJit)[:inner].new(mem)
      st[:a] = 1
      mem.free
      expect { st[:a] }.to raise_error(FiddleJit::NullPointerError)
      expect { st[:a] = 2 }.to raise_error(FiddleJit::NullPointerError)
    end

    it "a subclass overriding [] still wins over the native method" do
      k = Class.new(ACCESS_SIDES.fetch(FiddleJit)[:inner]) do
        layout :a, :int, :b, :char
        def [](name) = name == :twice ? super(:a) * 2 : super
      end
      st = k.new
      st[:a] = 21
      expect([st[:twice], st[:a]]).to eq([42, 21])
    end
  end
end
