# frozen_string_literal: true

require_relative "spec_helper"

# Functions whose arguments or result convert (Enum, Bitmask, DataConverter,
# callback types) go through one native method in front of the stub
# (src/ruby/function/param_conversions.rs): an exact Enum converts from its
# maps natively, anything else through #to_native/#from_native.
RSpec.describe "converted parameters and results (differential against the ffi gem)" do
  def self.library(ns)
    Module.new do
      extend ns::Library
      ffi_lib "c"
      enum :color, [:red, :green, 5, :blue]
      const_set(:LEADING, enum(:leading, [7, :seven]))
      bitmask :flags, [:read, :write, 4, :big]
      const_set(:Twice, Module.new do
        extend ns::DataConverter
        native_type :long
        def self.to_native(value, _ctx) = value.nil? ? raise(IOError, "no value") : value * 2
        def self.from_native(value, _ctx) = "r#{value}"
      end)
      attach_function :abs_color, :abs, [:color], :color
      attach_function :abs_leading, :abs, [:leading], :int
      attach_function :labs_flags, :labs, [:flags], :flags
      attach_function :labs_twice, :labs, [self::Twice], self::Twice
      attach_function :labs_mixed, :labs, [:color, :long, :flags], :long
      ffi_lib CALLBACK_FIXTURE_LIB
      callback :i2i, [:int], :int
      attach_function :cb_color, :cb_call_int32, [:i2i, :color], :color
      ffi_lib "c"
      attach_function :snprintf_color, :snprintf, [:pointer, :color, :string, :varargs], :color
      attach_function :snprintf_twice, :snprintf, %i[pointer size_t string varargs], self::Twice
    end
  end

  CONVERSION_MODS = Differential.per_namespace { |ns| library(ns) }

  def outcome(label, &blk) = expect_same_outcome_on(CONVERSION_MODS, label, &blk)

  it "converts enum arguments as Enum#to_native: Symbols, Integers, #to_int, nil of a leading value" do
    to_int = Object.new.tap { |o| o.define_singleton_method(:to_int) { -5 } }
    outcome("enum arguments") do |m|
      [m.abs_color(:blue), m.abs_color(:red), m.abs_color(-9), m.abs_color(2**31 - 1), m.abs_color(to_int),
       m.abs_leading(nil), m.abs_leading(:seven)]
    end
  end

  it "raises Enum#to_native's ArgumentError for an unknown Symbol or a value it cannot convert" do
    outcome("unknown symbol") { |m| m.abs_color(:purple) }
    outcome("a String") { |m| m.abs_color("red") }
    outcome("nil") { |m| m.abs_color(nil) }
    outcome("a Float") { |m| m.abs_color(1.5) }
  end

  it "converts enum results, an unknown value as the Integer" do
    outcome("enum results") { |m| [m.abs_color(-6), m.abs_color(5), m.abs_color(0), m.abs_color(-1)] }
  end

  it "converts bitmasks and DataConverters both ways, and propagates their exceptions" do
    outcome("bitmask") { |m| [m.labs_flags(%i[read big]), m.labs_flags(0), m.labs_flags(-3), m.labs_flags(:write)] }
    outcome("bitmask error") { |m| m.labs_flags(:nope) }
    outcome("data converter") { |m| m.labs_twice(-21) }
    outcome("data converter error") { |m| m.labs_twice(nil) }
    outcome("mixed") { |m| [m.labs_mixed(:green, 3, [:read]), m.labs_mixed(-7, 0, nil)] }
  end

  it "honours a subclass's or a singleton's #to_native/#from_native" do
    outcome("overridden enums") do |m|
      ns = m.singleton_class.ancestors.include?(FFI::Library) ? FFI : FiddleJit
      sub = Class.new(ns::Enum) do
        def to_native(val, ctx = nil) = val == :any ? 11 : super
        def from_native(val, ctx = nil) = [:sub, super]
      end.new(%i[a b])
      single = ns::Enum.new(%i[a b])
      def single.to_native(val, _ctx = nil) = val == :any ? 12 : super
      lib = Module.new do
        extend ns::Library
        ffi_lib "c"
        attach_function :sub_abs, :abs, [sub], sub
        attach_function :single_abs, :abs, [single], single
      end
      [lib.sub_abs(:any), lib.sub_abs(:b), lib.single_abs(:any), lib.single_abs(:b)]
    end
  end

  it "converts an enum next to a callback, a block standing in for the callback" do
    outcome("callback and enum") do |m|
      [m.cb_color(proc { |x| -x }, :blue), m.cb_color(:green) { |x| x + 1 }]
    end
    outcome("callback raising") { |m| m.cb_color(:green) { |_x| raise IOError, "in callback" } }
  end

  it "attaches converting, callback and variadic functions in a Class extended with Library, as in a Module" do
    outcome_in_class = lambda do |ns|
      klass = Class.new do
        extend ns::Library
        ffi_lib "c"
        enum :color, [:red, :green, 5, :blue]
        callback :compare, %i[pointer pointer], :int
        attach_function :abs_color, :abs, [:color], :color
        attach_function :qsort, %i[pointer size_t size_t compare], :void
        attach_function :snprintf, %i[pointer size_t string varargs], :int
      end
      ints = ns::MemoryPointer.new(:int, 3).write_array_of_int([3, 1, 2])
      klass.qsort(ints, 3, 4) { |a, b| a.read_int <=> b.read_int }
      buf = ns::MemoryPointer.new(16)
      [klass.abs_color(-6), klass.new.abs_color(:blue), ints.read_array_of_int(3),
       klass.new.snprintf(buf, 16, "%d", :int, 42), buf.read_string]
    end
    expect_same_outcome("in a Class", &outcome_in_class)
  end

  it "converts variadic functions' enum and DataConverter arguments and results, fixed and variadic, as the ffi gem" do
    outcome("variadic enums") do |m|
      buf = m::MemoryPointer.new(:char, 32)
      [m.snprintf_color(buf, :blue, "%d %d %ld", :color, :green, :color, 3, :long, 9), buf.read_string,
       m.snprintf_color(buf, 6, ""), m.snprintf_color(buf, 32, "%d", :color, nil)]
    end
    outcome("variadic converters") do |m|
      buf = m::MemoryPointer.new(:char, 32)
      [m.snprintf_twice(buf, 32, "%ld", m::Twice, 21), buf.read_string]
    end
    outcome("variadic unknown enum Symbol") { |m| m.snprintf_color(m::MemoryPointer.new(8), 8, "%d", :color, :nope) }
    outcome("variadic converter raising") { |m| m.snprintf_twice(m::MemoryPointer.new(8), 8, "%ld", m::Twice, nil) }
  end

  it "words arity errors as the ffi gem in an FFI module" do
    outcome("arity") { |m| m.abs_color }
    outcome("arity with a callback") { |m| m.cb_color }
  end

  it "attaching the same converting function again keeps one stub and one method entry" do
    skip "fiddle_jit's own machinery" if FIDDLE_JIT_ORACLE_MODE
    m = CONVERSION_MODS.fetch(FiddleJit)
    before = FiddleJit::Native.owned_stubs(m)
    first = m.method(:abs_color)
    50.times { m.attach_function :abs_color, :abs, [:color], :color }
    expect(FiddleJit::Native.owned_stubs(m)).to eq(before)
    expect(m.abs_color(-6)).to eq(:blue)
    m.attach_function :abs_color, :labs, [:color], :long
    expect([m.abs_color(:blue), first.call(-6)]).to eq([6, :blue])
  end
end
