# frozen_string_literal: true

require_relative "spec_helper"

# Pointer#order: the ffi gem 1.15.5 returns a view of the same memory whose
# integer accessors are byte-swapped (its floats and pointers are not
# swapped, and neither are ours). Every example runs on both libraries.
RSpec.describe "Pointer#order (differential against the ffi gem)" do
  def plain(value)
    case value
    when Array then value.map { |v| plain(v) }
    when Float then [:float, Differential.float_hex(value)]
    when FFI::Pointer then [:ptr, value.address, value.size, value.class.name.split("::").last]
    else
      if !FIDDLE_JIT_ORACLE_MODE && value.is_a?(FiddleJit::Pointer)
        [:ptr, value.address, value.size, value.class.name.split("::").last]
      else
        value
      end
    end
  end

  def same(label, &block)
    expect_same_outcome(label) { |ns| plain(block.call(ns)) }
  end

  ORDER_INTS = %i[int8 uint8 int16 uint16 int32 uint32 int64 uint64 long ulong char uchar short ushort int uint
            long_long ulong_long].freeze
  ORDER_VALUES = [0, 1, -1, 0x0102, 0x01020304, -2, 2**31 - 1, 0x0102030405060708, 2**63 - 1, -2**63].freeze

  ORDER_INTS.each do |type|
    it "#{type}: put/get through order(:big) and order(:network) swap bytes" do
      same("order #{type}") do |ns|
        m = ns::MemoryPointer.new(16)
        big = m.order(:big)
        ORDER_VALUES.map do |v|
          big.__send__(:"put_#{type}", 0, v)
          out = [m.get_bytes(0, 8), big.__send__(:"get_#{type}", 0), m.__send__(:"get_#{type}", 0)]
          m.order(:network).__send__(:"write_#{type}", v)
          out + [m.get_bytes(0, 8), big.__send__(:"read_#{type}")]
        rescue RangeError => e
          e.class
        end
      end
    end

    it "#{type}: arrays through order(:big)" do
      same("order arrays #{type}") do |ns|
        m = ns::MemoryPointer.new(32)
        big = m.order(:big)
        big.__send__(:"put_array_of_#{type}", 0, [1, 2, 3, 0x7f])
        [m.get_bytes(0, 32), big.__send__(:"get_array_of_#{type}", 0, 4), m.__send__(:"read_array_of_#{type}", 2),
         big.__send__(:"write_array_of_#{type}", [5]).class.name.split("::").last, big.__send__(:"read_array_of_#{type}", 1)]
      end
    end
  end

  it "floats, doubles and pointers are stored unswapped (as the ffi gem does)" do
    same("order floats") do |ns|
      m = ns::MemoryPointer.new(16)
      big = m.order(:big)
      big.put_float(0, 1.5)
      a = [m.get_bytes(0, 4), big.get_float(0)]
      big.put_double(0, -2.25)
      b = [m.get_bytes(0, 8), big.get_double(0), big.read_double]
      big.put_pointer(0, ns::Pointer.new(0x0102))
      a + b + [m.get_bytes(0, 8), big.get_pointer(0), big.read_pointer]
    end
  end

  it "order with no argument, identity for the host order, errors" do
    same("order identity") do |ns|
      m = ns::MemoryPointer.new(8)
      big = m.order(:big)
      [m.order, big.order, m.order(:little).equal?(m), m.order("big").equal?(m), big.equal?(m),
       big.order(:big).equal?(big), big.order(:big).order, big.order(:little).equal?(big),
       big.address == m.address, big.size, big.class.name.split("::").last, (big + 2).order, big.slice(0, 4).order, big[1].order,
       big.dup.order, big.type_size]
    end
    %i[host foo].each do |bad|
      same("order #{bad}") { |ns| ns::MemoryPointer.new(8).order(bad) }
    end
    same("order no-arg") { |ns| ns::MemoryPointer.new(8).order(:big).order(:network).order }
  end

  it "bytes and strings are not swapped; bounds still apply" do
    same("order bytes") do |ns|
      big = ns::MemoryPointer.new(8).order(:big)
      big.put_string(0, "abc")
      big.put_bytes(4, "xy")
      [big.get_string(0), big.get_bytes(0, 8), big.read_string(3)]
    end
    same("order oob") { |ns| ns::MemoryPointer.new(4).order(:big).get_int32(2) }
    same("order oob put") { |ns| ns::MemoryPointer.new(4).order(:big).put_int64(0, 1) }
    same("order null") { |ns| ns::Pointer::NULL.order(:big).get_int32(0) }
  end

  it "a Struct over byte-swapped memory reads and writes swapped fields" do
    same("order struct") do |ns|
      klass = Class.new(ns::Struct) { layout :a, :int32, :b, :int16, :c, :uint8, :d, :int64 }
      m = ns::MemoryPointer.new(klass.size)
      s = klass.new(m.order(:big))
      s[:a] = 0x01020304
      s[:b] = -2
      s[:c] = 7
      s[:d] = 0x0102030405060708
      [m.get_bytes(0, klass.size), s[:a], s[:b], s[:c], s[:d], s.values, klass.new(m)[:a]]
    end
  end
end
