# frozen_string_literal: true

require_relative "spec_helper"

# Structs as :pointer, Struct.by_ref and Struct-class arguments. The stubs
# unbox a Struct inline (its native data names the Pointer it views), so
# these check every kind of struct object against the ffi gem: plain
# structs, unions, ManagedStructs, user subclasses with their own
# initialize, structs over slices and byte-swapped views, wrong struct
# classes (TypeError for Struct.by_ref) and objects that only look like
# structs.
RSpec.describe "Struct arguments (differential against the ffi gem)" do
  def self.define(ns)
    point = Class.new(ns::Struct) { layout :x, :int, :y, :int }
    other = Class.new(ns::Struct) { layout :x, :int, :y, :int }
    union = Class.new(ns::Union) { layout :x, :int, :l, :long }
    # A subclass that redeclares the layout (the ffi gem does not inherit
    # layouts of anonymous classes) and has its own initialize.
    sub = Class.new(point) do
      layout :x, :int, :y, :int
      attr_reader :tag

      def initialize(x, y, tag = :made)
        super()
        self[:x] = x
        self[:y] = y
        @tag = tag
      end
    end
    managed = Class.new(ns::ManagedStruct) do
      layout :x, :int, :y, :int
      def self.release(ptr) = ptr.class # the memory is static in the fixture
    end
    mod = Module.new do
      extend ns::Library
      ffi_lib MEMORY_FIXTURE_LIB
      attach_function :sum_ptr, :fx_point_sum, [:pointer], :int
      attach_function :sum_ref, :fx_point_sum, [point.by_ref], :int
      attach_function :sum_in, :fx_point_sum, [point.in], :int
      attach_function :sum_cls, :fx_point_sum, [point], :int
      attach_function :sum_two, :fx_point_sum, [point.by_ref], :int
      attach_function :static_point, :fx_static_point, [], :pointer
    end
    { point: point, other: other, union: union, sub: sub, managed: managed, mod: mod, ns: ns }
  end

  ARG_SIDES = Differential.per_namespace { |ns| define(ns) }

  def same(label, &block) = expect_same_outcome_on(ARG_SIDES, label, &block)

  def point(s, x, y)
    s[:point].new.tap { |p| p[:x] = x; p[:y] = y }
  end

  LooksLikeStruct = Struct.new(:ptr) do
    def to_ptr = ptr
  end

  %i[sum_ptr sum_ref sum_in sum_cls].each do |fn|
    it "#{fn}: a Struct, nil and a Struct over a slice" do
      same("#{fn} struct") do |s|
        mem = s[:ns]::MemoryPointer.new(:int, 6)
        mem.put_array_of_int(0, [1, 2, 30, 40, 500, 600])
        over_slice = s[:point].new(mem.slice(8, 8))
        [s[:mod].__send__(fn, point(s, 3, 4)), s[:mod].__send__(fn, nil), s[:mod].__send__(fn, over_slice),
         s[:mod].__send__(fn, s[:point].new(mem + 16))]
      end
    end

    it "#{fn}: a subclass with its own initialize, a ManagedStruct, a dup" do
      same("#{fn} subclass") do |s|
        sub = s[:sub].new(5, 6)
        managed = s[:managed].new(s[:mod].static_point)
        copy = point(s, 7, 8).dup
        [s[:mod].__send__(fn, sub), sub.tag, s[:mod].__send__(fn, copy),
         (s[:mod].__send__(fn, managed) if fn != :sum_ref && fn != :sum_in)] # another class for by_ref
      end
    end

    it "#{fn}: a Struct over a byte-swapped view passes the same address" do
      same("#{fn} order") do |s|
        mem = s[:ns]::MemoryPointer.new(8)
        mem.put_int(0, 1)
        mem.put_int(4, 2)
        s[:mod].__send__(fn, s[:point].new(mem.order(:big)))
      end
    end
  end

  it "a :pointer or Struct-class parameter takes any struct, union, MemoryPointer or to_ptr object" do
    %i[sum_ptr sum_cls].each do |fn|
      same("#{fn} anything") do |s|
        o = s[:other].new.tap { |p| p[:x] = 10; p[:y] = 20 }
        u = s[:union].new.tap { |p| p[:x] = 9 }
        m = s[:ns]::MemoryPointer.new(:int, 2).tap { |p| p.write_array_of_int([1, 1]) }
        [s[:mod].__send__(fn, o), s[:mod].__send__(fn, u), s[:mod].__send__(fn, m),
         s[:mod].__send__(fn, LooksLikeStruct.new(m)), s[:mod].__send__(fn, s[:managed].new(s[:mod].static_point))]
      end
    end
  end

  [
    ["another Struct class", ->(s) { s[:other].new }],
    ["a MemoryPointer", ->(s) { s[:ns]::MemoryPointer.new(:int, 2) }],
    ["a Struct's Pointer", ->(s) { s[:point].new.pointer }],
    ["a Union", ->(s) { s[:union].new }],
    ["a ManagedStruct", ->(s) { s[:managed].new(s[:mod].static_point) }],
    ["a to_ptr object", ->(s) { LooksLikeStruct.new(s[:point].new.pointer) }],
    ["a String", ->(_s) { "12345678" }],
    ["an Integer", ->(_s) { 1 }],
    ["a Symbol", ->(_s) { :x }],
    ["false", ->(_s) { false }],
    ["a plain Object", ->(_s) { Object.new }],
  ].each do |what, make|
    it "Struct.by_ref parameters refuse #{what} with TypeError (like the ffi gem)" do
      %i[sum_ref sum_in sum_two].each do |fn|
        same("#{fn} #{what}") { |s| s[:mod].__send__(fn, make.call(s)) }
      end
    end
  end

  [
    ["a plain Object", ->(_s) { Object.new }],
    ["a Symbol", ->(_s) { :x }],
    ["true", ->(_s) { true }],
    ["a Float", ->(_s) { 1.5 }],
    ["a to_ptr returning nil", ->(_s) { LooksLikeStruct.new(nil) }],
  ].each do |what, make|
    it ":pointer parameters refuse #{what} (ArgumentError like the ffi gem)" do
      same(":pointer #{what}") { |s| s[:mod].sum_ptr(make.call(s)) }
    end
  end

  PrivateToPtr = Struct.new(:ptr) do
    private def to_ptr = ptr
  end
  RaisingToPtr = Struct.new(:ptr) do
    def to_ptr = raise(IOError, "to_ptr failed")
  end
  MissingToPtr = Struct.new(:ptr) do
    def respond_to_missing?(name, include_private = false) = name == :to_ptr || super
    def method_missing(name, *args) = name == :to_ptr ? ptr : super
  end

  it ":pointer parameters call a public or method_missing to_ptr, not a private one, and let what it raises through" do
    same(":pointer to_ptr kinds") do |s|
      m = s[:ns]::MemoryPointer.new(:int, 2).tap { |p| p.write_array_of_int([3, 4]) }
      [s[:mod].sum_ptr(MissingToPtr.new(m)), s[:mod].sum_ptr(LooksLikeStruct.new(m))]
    end
    same(":pointer private to_ptr") { |s| s[:mod].sum_ptr(PrivateToPtr.new(s[:ns]::MemoryPointer.new(8))) }
    same(":pointer raising to_ptr") { |s| s[:mod].sum_ptr(RaisingToPtr.new(nil)) }
  end

  unless FIDDLE_JIT_ORACLE_MODE
    let(:jit) { ARG_SIDES.fetch(FiddleJit) }

    it "by_ref errors name the function, the argument and both classes" do
      expect { jit[:mod].sum_ref(jit[:other].new) }
        .to raise_error(TypeError, /sum_ref: argument 1 \(:#{Regexp.escape(jit[:point].to_s)}\.by_ref\): wrong argument type #{Regexp.escape(jit[:other].inspect)} \(expected #{Regexp.escape(jit[:point].inspect)}\)/)
    end

    it "a Struct over freed memory passes NULL (not the freed address)" do
      mem = FiddleJit::MemoryPointer.new(:int, 2).tap { |p| p.write_array_of_int([2, 3]) }
      s = jit[:point].new(mem)
      expect(jit[:mod].sum_ptr(s)).to eq(5)
      mem.free
      expect(jit[:mod].sum_ptr(s)).to eq(-1)
      expect(jit[:mod].sum_ref(s)).to eq(-1)
    end

    it "an allocated but uninitialized Struct passes NULL; a field access allocates its memory (as the ffi gem)" do
      s = jit[:point].allocate
      expect(jit[:mod].sum_ptr(s)).to eq(-1)
      expect(s.pointer).to be_nil
      expect(s[:x]).to eq(0)
      expect(s.pointer.size).to eq(jit[:point].size)
      oracle = ARG_SIDES.fetch(FFI)[:point].allocate
      expect(oracle[:x]).to eq(0)
      expect(oracle.pointer.size).to eq(ARG_SIDES.fetch(FFI)[:point].size)
    end

    it "the stub's inline Struct path survives GC.compact and GC.stress" do
      structs = Array.new(200) { |i| point(jit, i, 1) }
      GC.compact if GC.respond_to?(:compact)
      expect(structs.map { |p| jit[:mod].sum_ref(p) }).to eq(Array.new(200) { |i| i + 1 })
      GC.stress = true
      begin
        3.times { |i| expect(jit[:mod].sum_ptr(point(jit, i, 2))).to eq(i + 2) }
      ensure
        GC.stress = false
      end
    end
  end
end
