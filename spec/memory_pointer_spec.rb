# frozen_string_literal: true

require_relative "spec_helper"

# Differential specs for the memory API: every reader/writer is run on an
# FFI::MemoryPointer and a FiddleJit::MemoryPointer with the same values, and
# must give the same value or raise the same exception class.
RSpec.describe "Pointer / MemoryPointer memory API (differential against the ffi gem)" do
  # Comparable plain data: Pointers become [:ptr, address], Floats hex.
  def plain(value)
    case value
    when Array then value.map { |v| plain(v) }
    when Float then [:float, Differential.float_hex(value)]
    when FFI::Pointer then [:ptr, value.address, value.class.name.split("::").last]
    else
      if !FIDDLE_JIT_ORACLE_MODE && value.is_a?(FiddleJit::Pointer)
        [:ptr, value.address, value.class.name.split("::").last]
      else
        value
      end
    end
  end

  def same(label, &block)
    expect_same_outcome(label) { |ns| plain(block.call(ns)) }
  end

  INT_TYPES = {
    int8: 1, uint8: 1, int16: 2, uint16: 2, int32: 4, uint32: 4, int64: 8, uint64: 8, long: 8, ulong: 8,
    char: 1, uchar: 1, short: 2, ushort: 2, int: 4, uint: 4, long_long: 8, ulong_long: 8
  }.freeze
  FLOAT_TYPES = { float32: 4, float64: 8, float: 4, double: 8 }.freeze
  CANONICAL = %i[int8 uint8 int16 uint16 int32 uint32 int64 uint64 long ulong float32 float64].freeze
  SHORT_VALUES = [0, 1, -1, 127, 200, -129, 65_535, 2**31, -2**31 - 1, 2**32 - 1, 2**63, 2**64 - 1, 1.5, nil, "1"].freeze

  INT_TYPES.each do |type, size|
    values = CANONICAL.include?(type) ? Differential::INTEGER_ARGS + Differential::NON_INTEGER_ARGS : SHORT_VALUES
    describe ":#{type}" do
      values.each do |v|
        it "put_#{type}(0, #{v.inspect}) then get_#{type}(0)" do
          same("put/get #{type} #{v.inspect}") do |ns|
            m = ns::MemoryPointer.new(16)
            m.__send__(:"put_#{type}", 0, v)
            [m.__send__(:"get_#{type}", 0), m.get_bytes(0, 8)]
          end
        end
      end

      it "write_#{type}/read_#{type} and put/get at every offset" do
        same("offsets #{type}") do |ns|
          m = ns::MemoryPointer.new(16)
          (0..(16 - size)).map do |off|
            m.__send__(:"put_#{type}", off, off + 1)
            m.__send__(:"get_#{type}", off)
          end + [m.__send__(:"write_#{type}", 5).class.name.split("::").last, m.__send__(:"read_#{type}")]
        end
      end

      [-1, 16 - size + 1, 16, 2**40].each do |off|
        it "get_#{type}(#{off}) / put_#{type}(#{off}) out of bounds" do
          same("oob get #{type} #{off}") { |ns| ns::MemoryPointer.new(16).__send__(:"get_#{type}", off) }
          same("oob put #{type} #{off}") { |ns| ns::MemoryPointer.new(16).__send__(:"put_#{type}", off, 1) }
        end
      end

      it "arrays: put_array_of_#{type}/get_array_of_#{type}/read_array_of/write_array_of" do
        same("arrays #{type}") do |ns|
          m = ns::MemoryPointer.new(type, 4)
          m.__send__(:"put_array_of_#{type}", 0, [1, -2, 3, 120])
          a = m.__send__(:"get_array_of_#{type}", 0, 4)
          m.__send__(:"write_array_of_#{type}", [7, 8])
          [a, m.__send__(:"read_array_of_#{type}", 4), m.__send__(:"get_array_of_#{type}", size, 2), m.size, m.type_size]
        end
        same("array oob #{type}") { |ns| ns::MemoryPointer.new(type, 4).__send__(:"get_array_of_#{type}", size, 4) }
        same("array put oob #{type}") { |ns| ns::MemoryPointer.new(type, 4).__send__(:"put_array_of_#{type}", 0, [1] * 5) }
        same("array not an Array #{type}") { |ns| ns::MemoryPointer.new(type, 4).__send__(:"put_array_of_#{type}", 0, 5) }
        same("array bad element #{type}") { |ns| ns::MemoryPointer.new(type, 4).__send__(:"put_array_of_#{type}", 0, [1, nil]) }
        same("array negative count #{type}") { |ns| ns::MemoryPointer.new(type, 4).__send__(:"get_array_of_#{type}", 0, -1) }
      end

      it "NULL: get_#{type}/put_#{type} raise NullPointerError" do
        same("NULL get #{type}") { |ns| ns::Pointer::NULL.__send__(:"get_#{type}", 0) }
        same("NULL put #{type}") { |ns| ns::Pointer.new(0).__send__(:"put_#{type}", 0, 1) }
        same("NULL read array #{type}") { |ns| ns::Pointer::NULL.__send__(:"read_array_of_#{type}", 1) }
      end
    end
  end

  FLOAT_TYPES.each do |type, size|
    describe ":#{type}" do
      (Differential::FLOAT_ARGS + Differential::NON_FLOAT_ARGS).each do |v|
        it "put_#{type}(0, #{v.inspect}) then get_#{type}(0)" do
          same("put/get #{type} #{v.inspect}") do |ns|
            m = ns::MemoryPointer.new(8)
            m.__send__(:"put_#{type}", 0, v)
            [m.__send__(:"get_#{type}", 0), m.get_bytes(0, 8)]
          end
        end
      end

      it "arrays and bounds" do
        same("float arrays #{type}") do |ns|
          m = ns::MemoryPointer.new(size, 3)
          m.__send__(:"put_array_of_#{type}", 0, [1.5, -0.0, Float::INFINITY])
          [m.__send__(:"get_array_of_#{type}", 0, 3), m.__send__(:"get_#{type}", 0)]
        end
        same("float oob #{type}") { |ns| ns::MemoryPointer.new(size, 3).__send__(:"get_#{type}", size * 3) }
        same("float NULL #{type}") { |ns| ns::Pointer::NULL.__send__(:"get_#{type}", 0) }
      end
    end
  end

  describe ":pointer values" do
    [nil, 0, 5, 2**64 - 1, -1, 2**64, "ab", :sym, 1.5, Differential::Ptr.new(0x1234), Differential::ToPtr.new(0x55),
     Differential::Plain.new].each do |v|
      it "put_pointer(0, #{v.inspect}) then get_pointer(0)" do
        same("put_pointer #{v.inspect}") do |ns|
          m = ns::MemoryPointer.new(8)
          m.put_pointer(0, Differential.jit.ns == ns ? Differential.jit.resolve(v) : Differential.ffi.resolve(v))
          p = m.get_pointer(0)
          [p, p.size, p.null?, p.equal?(ns::Pointer::NULL)]
        end
      end
    end

    it "a MemoryPointer written into memory reads back as its address" do
      same("put_pointer(mp)") do |ns|
        m = ns::MemoryPointer.new(:pointer, 2)
        other = ns::MemoryPointer.new(4)
        m.write_array_of_pointer([other, nil])
        m.read_array_of_pointer(2).map { |p| p.address == other.address || p.null? }
      end
    end
  end

  it "has the short names as aliases of the fixed-width accessors" do
    same("alias original names") do |ns|
      %i[get_char put_uchar read_short write_ushort get_array_of_int put_array_of_uint read_array_of_long_long
         write_array_of_ulong_long get_float put_double].map { |m| ns::Pointer.instance_method(m).original_name }
    end
  end

  describe "strings and bytes" do
    it "put_string / get_string / read_string variants" do
      same("strings") do |ns|
        m = ns::MemoryPointer.new(16)
        m.put_string(0, "ab\0cd")
        [m.get_string(0), m.get_string(0, 4), m.get_string(0, 1), m.get_string(3), m.read_string, m.read_string(5),
         m.read_string(0), m.read_string_length(4), m.read_string_to_null, m.get_string(0).encoding.name,
         m.put_string(2, "xyz").class.name.split("::").last, m.get_bytes(0, 6)]
      end
    end

    it "get_string without a NUL stops at the end of the memory" do
      same("get_string no NUL") do |ns|
        m = ns::MemoryPointer.new(4)
        m.put_bytes(0, "abcd")
        [m.get_string(0), m.get_string(2), m.get_string(4)]
      end
    end

    [["put_string", ->(m) { m.put_string(0, "hello") }], ["put_string exact", ->(m) { m.put_string(0, "abcd") }],
     ["put_string at 2", ->(m) { m.put_string(2, "ab") }], ["put_string neg", ->(m) { m.put_string(-1, "") }],
     ["write_string", ->(m) { m.write_string("hello") }], ["write_string fits", ->(m) { m.write_string("abcd") }],
     ["write_string len", ->(m) { m.write_string("hello", 3) }],
     ["write_string_length", ->(m) { m.write_string_length("hello", 4) }],
     ["put_bytes", ->(m) { m.put_bytes(0, "hello") }], ["put_bytes idx", ->(m) { m.put_bytes(0, "hello", 2) }],
     ["put_bytes idx len", ->(m) { m.put_bytes(1, "hello", 1, 3) }],
     ["put_bytes bad idx", ->(m) { m.put_bytes(0, "hello", 6) }], ["put_bytes neg idx", ->(m) { m.put_bytes(0, "hi", -1) }],
     ["put_bytes too long", ->(m) { m.put_bytes(0, "hi", 0, 3) }], ["write_bytes", ->(m) { m.write_bytes("abc") }],
     ["write_bytes idx", ->(m) { m.write_bytes("abc", 1, 2) }], ["get_bytes", ->(m) { m.get_bytes(1, 3) }],
     ["get_bytes oob", ->(m) { m.get_bytes(2, 3) }], ["get_bytes neg", ->(m) { m.get_bytes(0, -1) }],
     ["read_bytes", ->(m) { m.read_bytes(4) }], ["read_bytes oob", ->(m) { m.read_bytes(5) }],
     ["get_string oob", ->(m) { m.get_string(5) }], ["get_string len oob", ->(m) { m.get_string(0, 5) }],
     ["put_string non-string", ->(m) { m.put_string(0, 5) }], ["put_bytes non-string", ->(m) { m.put_bytes(0, nil) }],
     ["read_string len oob", ->(m) { m.read_string(6) }],
     # The forms the native fast paths hand to the checked ones.
     ["read_string Float len", ->(m) { m.read_string(3.0) }], ["read_string 0.0", ->(m) { m.read_string(0.0) }],
     ["read_string false", ->(m) { m.read_string(false) }], ["read_string bignum", ->(m) { m.read_string(2**70) }],
     ["read_string to_int", ->(m) { m.read_string(Differential::ToInt.new(2)) }],
     ["read_string String len", ->(m) { m.read_string("3") }], ["read_string 2 args", ->(m) { m.read_string(1, 2) }],
     ["get_string nil len", ->(m) { m.get_string(1, nil) }], ["get_string String", ->(m) { m.get_string("0") }],
     ["get_string no args", ->(m) { m.get_string }], ["put_bytes no string", ->(m) { m.put_bytes(0) }],
     ["put_bytes Float offset", ->(m) { m.put_bytes(1.0, "ab") }],
     ["put_bytes to_str", ->(m) { m.put_bytes(0, Differential::ToStr.new("ab")) }]].each do |label, op|
      it "#{label} on a 4-byte MemoryPointer" do
        same(label) do |ns|
          m = ns::MemoryPointer.new(4)
          m.put_bytes(0, "wxyz")
          r = op.call(m)
          [r.is_a?(String) ? r : r.class.name.split("::").last, m.get_bytes(0, 4)]
        end
      end
    end

    it "get_array_of_string with and without a count" do
      same("get_array_of_string") do |ns|
        strs = %w[x yz].map { |s| ns::MemoryPointer.from_string(s) }
        a = ns::MemoryPointer.new(:pointer, 3)
        a.put_array_of_pointer(0, strs + [nil])
        full = ns::MemoryPointer.new(:pointer, 2)
        full.put_array_of_pointer(0, strs)
        [a.get_array_of_string(0), a.get_array_of_string(0, 2), a.get_array_of_string(0, 3), a.get_array_of_string(8),
         full.get_array_of_string(0)]
      end
      same("get_array_of_string oob") { |ns| ns::MemoryPointer.new(:pointer, 2).get_array_of_string(0, 3) }
      same("get_array_of_string NULL") { |ns| ns::Pointer::NULL.get_array_of_string(0) }
    end

    it "MemoryPointer.from_string" do
      same("from_string") do |ns|
        m = ns::MemoryPointer.from_string("abc")
        [m.size, m.get_bytes(0, 4), m.read_string, m.class.name.split("::").last]
      end
      same("from_string Symbol") { |ns| ns::MemoryPointer.from_string(:abc) }
      same("from_string Integer") { |ns| ns::MemoryPointer.from_string(1) }
    end

    it "MemoryPointer.new of typedefs and type objects, with and without a block" do
      same("MemoryPointer.new types") do |ns|
        [ns::MemoryPointer.new(:size_t, 2).size, ns::MemoryPointer.new(ns::Type::INT32).size,
         ns::MemoryPointer.new(:uint8, 2.0).size, ns::MemoryPointer.new(:short, 2, false).type_size,
         ns::MemoryPointer.new(:ushort, 3) { |m| [m.size, m.type_size] }.class.name.split("::").last]
      end
      same("MemoryPointer.new bad type") { |ns| ns::MemoryPointer.new(:no_such_type) }
      same("MemoryPointer.new bad count") { |ns| ns::MemoryPointer.new(:int, "2") }
      same("Pointer.new typedef") { |ns| ns::Pointer.new(:size_t, 0).type_size }
    end
  end

  describe "pointer arithmetic and attributes" do
    it "sizes, type_size, total, size_limit?" do
      same("sizes") do |ns|
        [ns::MemoryPointer.new(:int, 3), ns::MemoryPointer.new(:char, 3), ns::MemoryPointer.new(7),
         ns::MemoryPointer.new(:double), ns::Pointer.new(16), ns::Pointer.new(:int, 16), ns::Pointer::NULL]
          .map { |p| [p.size, p.total, p.type_size, p.size_limit?] }
      end
    end

    it "slice and + keep bounds" do
      same("slice") do |ns|
        m = ns::MemoryPointer.new(16)
        m.put_int(4, 42)
        s = m.slice(4, 8)
        q = m + 12
        [s.size, s.get_int(0), s.address - m.address, s.class.name.split("::").last, q.size, (m + 16).size, s.type_size]
      end
      same("slice oob read") { |ns| ns::MemoryPointer.new(16).slice(4, 8).get_int(8) }
      same("slice oob") { |ns| ns::MemoryPointer.new(16).slice(12, 8) }
      same("slice neg") { |ns| ns::MemoryPointer.new(16).slice(-1, 2) }
      same("plus oob") { |ns| ns::MemoryPointer.new(16) + 17 }
      same("plus neg") { |ns| ns::MemoryPointer.new(16) + -1 }
      same("plus neg unbounded") { |ns| ns::Pointer.new(0x1000) + -8 }
      same("plus then read oob") { |ns| (ns::MemoryPointer.new(16) + 14).get_int(0) }
    end

    it "[] steps by type_size" do
      same("[]") do |ns|
        m = ns::MemoryPointer.new(:int, 4)
        m.write_array_of_int([10, 20, 30, 40])
        [m[2].read_int, m[3].size, (m[2].address - m.address)]
      end
      same("[] oob") { |ns| ns::MemoryPointer.new(:int, 4)[5] }
    end

    it "Pointer.new(pointer) shares the bounds; Pointer.new(type, address) sets type_size" do
      same("Pointer.new(mp)") do |ns|
        m = ns::MemoryPointer.new(8)
        p = ns::Pointer.new(m)
        q = ns::Pointer.new(:double, m)
        [p.size, p.address == m.address, q.type_size, p.class.name.split("::").last]
      end
      same("Pointer.new(mp) oob") { |ns| ns::Pointer.new(ns::MemoryPointer.new(8)).get_int64(1) }
    end

    it "get/put/read/write by type name" do
      same("get/put") do |ns|
        m = ns::MemoryPointer.new(16)
        r = [m.put(:int, 0, 3), m.write(:uint8, 7)]
        m.put(:double, 8, 2.5)
        m.put(:bool, 4, true)
        r + [m.get(:int, 0), m.read(:uint8), m.get(:double, 8), m.get(:bool, 4), m.get(:uint8, 4), m.get(:long, 8)]
      end
      same("get :string") do |ns|
        m = ns::MemoryPointer.new(:pointer, 2)
        m.put_pointer(0, ns::MemoryPointer.from_string("hey"))
        [m.get(:string, 0), m.get(:string, 8)]
      end
      same("get unknown") { |ns| ns::MemoryPointer.new(8).get(:nope, 0) }
    end

    it "clear zeroes; dup and clone copy the memory" do
      same("clear/dup") do |ns|
        m = ns::MemoryPointer.new(:int, 2)
        m.write_array_of_int([5, 6])
        d = m.dup
        c = m.clone
        m.put_int(0, 9)
        r = [d.read_array_of_int(2), c.read_array_of_int(2), d.address == m.address, d.size, d.class.name.split("::").last]
        m.clear
        r + [m.read_array_of_int(2), m.slice(4, 4).dup.read_int]
      end
      same("dup unbounded") { |ns| ns::Pointer.new(16).dup }
    end

    it "MemoryPointer.new(Struct class) uses the struct size" do
      same("mp struct") do |ns|
        klass = Class.new(ns::Struct) { layout :a, :char, :b, :double }
        [ns::MemoryPointer.new(klass, 3).size, ns::MemoryPointer.new(klass).type_size]
      end
    end

    it "autorelease flags" do
      same("autorelease") do |ns|
        m = ns::MemoryPointer.new(4)
        a = m.autorelease?
        m.autorelease = false
        [a, m.autorelease?, ns::Pointer.new(16).autorelease?]
      end
    end

    it "order is little-endian" do
      same("order") { |ns| ns::MemoryPointer.new(4).order }
    end

    it "inspect shows the address (and the size of sized memory)" do
      m = FiddleJit::MemoryPointer.new(:int, 3)
      expect(m.inspect).to eq(format("#<%s address=0x%016x size=12>", m.class, m.address))
      expect(FiddleJit::Pointer.new(0x10).inspect).to eq("#<#{FiddleJit::Pointer} address=0x0000000000000010>")
    end

    it "NullPointerError is a RuntimeError" do
      expect(FiddleJit::NullPointerError.ancestors).to include(RuntimeError)
    end
  end

  # Mistakes a Ruby developer makes, each the ffi gem's exception class
  # (found by a differential campaign of such inputs against ffi 1.17).
  describe "bad arguments raise the ffi gem's exception" do
    it "array counts are checked as Ruby checks an Array's size, before the memory" do
      same("get_array_of_int32 count > ARY_MAX") { |ns| ns::MemoryPointer.new(16).get_array_of_int32(0, 2**62) }
      same("read_array_of_int count > ARY_MAX") { |ns| ns::MemoryPointer.new(16).read_array_of_int(2**61) }
      same("read_array_of_pointer(-1)") { |ns| ns::MemoryPointer.new(16).read_array_of_pointer(-1) }
      same("get_array_of_string(0, -1)") { |ns| ns::MemoryPointer.new(16).get_array_of_string(0, -1) }
      same("NULL.get_array_of_string(0, -1)") { |ns| ns::Pointer::NULL.get_array_of_string(0, -1) }
      same("get_array_of_string count beyond int") { |ns| ns::MemoryPointer.new(16).get_array_of_string(0, 2**31) }
    end

    # ffi 1.17's class (1.15.5, the host's oracle, memsets NULL and crashes).
    it "NULL.clear is a NullPointerError (the access check comes first)" do
      skip "the ffi gem #{FFI::VERSION} crashes" if FIDDLE_JIT_ORACLE_MODE && FFI::VERSION < "1.17"
      expect { FiddleJit::Pointer::NULL.clear }.to raise_error(FiddleJit::NullPointerError)
      struct = Class.new(FiddleJit::Struct) { layout :a, :int }
      expect { struct.new(FiddleJit::Pointer::NULL).clear }.to raise_error(FiddleJit::NullPointerError)
    end

    it "order(nil) and other non-Symbols give self" do
      same("order(nil)") { |ns| (m = ns::MemoryPointer.new(8)).order(nil).equal?(m) }
      same("order('big')") { |ns| (m = ns::MemoryPointer.new(8)).order("big").equal?(m) }
    end

    it "put_string takes a String only (no to_str)" do
      to_str = Differential::ToStr.new("abc")
      same("put_string(0, to_str)") { |ns| ns::MemoryPointer.new(8).put_string(0, to_str) }
      same("put_string(0, nil)") { |ns| ns::MemoryPointer.new(8).put_string(0, nil) }
    end

    it "[] converts the index as an unsigned long" do
      same("[1.5]") { |ns| (m = ns::MemoryPointer.new(:int, 4))[1.5].address - m.address }
      same("[nil]") { |ns| ns::MemoryPointer.new(:int, 4)[nil] }
      same("[-1]") { |ns| ns::MemoryPointer.new(:int, 4)[-1] }
      same("['1']") { |ns| ns::MemoryPointer.new(:int, 4)["1"] }
    end

    it "get/put by type: buffers, Structs and non-scalars are ArgumentErrors" do
      struct = ->(ns) { Class.new(ns::Struct) { layout :a, :int } }
      same("get(:buffer_in)") { |ns| ns::MemoryPointer.new(8).get(:buffer_in, 0) }
      same("put(:buffer_out)") { |ns| ns::MemoryPointer.new(8).put(:buffer_out, 0, nil) }
      same("get(Struct)") { |ns| ns::MemoryPointer.new(8).get(struct.call(ns), 0) }
      same("put(Struct)") { |ns| ns::MemoryPointer.new(8).put(struct.call(ns), 0, nil) }
      same("put(:nope)") { |ns| ns::MemoryPointer.new(8).put(:nope, 0, 1) }
      same("get(:varargs)") { |ns| ns::MemoryPointer.new(8).get(:varargs, 0) }
    end

    it "type sizes are an int, or an object's #size; Buffer counts convert like MemoryPointer's" do
      same("MemoryPointer.new(2**31)") { |ns| ns::MemoryPointer.new(2**31) }
      same("MemoryPointer.new(2**63)") { |ns| ns::MemoryPointer.new(2**63) }
      same("MemoryPointer.new(Object.new)") { |ns| ns::MemoryPointer.new(Object.new) }
      same("MemoryPointer.new(1.5)") { |ns| ns::MemoryPointer.new(1.5) }
      same("Pointer.new(2**31, 0)") { |ns| ns::Pointer.new(2**31, 0) }
      # The ffi gem's classes (its half-made Buffer then crashes the next GC,
      # so the oracle is not run).
      expect { FiddleJit::Buffer.new(nil) }.to raise_error(NoMethodError)
      expect { FiddleJit::Buffer.new(2**31) }.to raise_error(RangeError)
      expect { FiddleJit::Buffer.new(:int, "2") }.to raise_error(TypeError)
      expect { FiddleJit::Buffer.new(:int, Float::NAN) }.to raise_error(RangeError)
      expect { FiddleJit::Buffer.new(:int, nil) }.to raise_error(TypeError)
      same("Buffer.new(struct, 2)") do |ns|
        b = ns::Buffer.new(Class.new(ns::Struct) { layout :a, :int, :b, :double }, 2)
        [b.size, b.type_size]
      end
    end
  end
end
