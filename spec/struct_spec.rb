# frozen_string_literal: true

require_relative "spec_helper"

# Struct/Union layouts against the C compiler (offsetof/sizeof/alignof from
# spec/fixtures/memory_fixture.c) and the ffi gem, field access
# differentially, and round trips through C functions.
RSpec.describe "Struct and Union" do
  def self.define_structs(ns)
    s = {}
    s[:inner] = Class.new(ns::Struct) { layout :a, :char, :b, :int }
    s[:mixed] = Class.new(ns::Struct) { layout :c, :char, :d, :double, :s, :short, :p, :pointer }
    inner = s[:inner]
    s[:nested] = Class.new(ns::Struct) { layout :tag, :char, :in, inner, :ll, :long_long, :f, :float }
    s[:with_array] = Class.new(ns::Struct) { layout :name, [:char, 16], :vals, [:int, 4], :tail, :short }
    s[:union] = Class.new(ns::Union) { layout :c, :char, :d, :double, :arr, [:int, 3] }
    union = s[:union]
    s[:has_union] = Class.new(ns::Struct) { layout :tag, :char, :u, union, :tail, :char }
    s[:packed] = Class.new(ns::Struct) do
      packed
      layout :a, :char, :b, :int, :c, :short
    end
    s[:point] = Class.new(ns::Struct) { layout :x, :int, :y, :int }
    s[:scalars] = Class.new(ns::Struct) do
      layout :i8, :int8, :u8, :uint8, :i16, :int16, :u16, :uint16, :i32, :int32, :u32, :uint32,
             :i64, :int64, :u64, :uint64, :l, :long, :ul, :ulong, :f, :float, :d, :double, :p, :pointer, :b, :bool
    end
    s[:tail_pad] = Class.new(ns::Struct) { layout :d, :double, :c, :char }
    s[:chars] = Class.new(ns::Struct) { layout :a, :char, :b, [:char, 3] }
    s
  end

  STRUCTS = Differential.per_namespace { |ns| define_structs(ns) }

  def structs(ns) = STRUCTS.fetch(ns)

  def self.fixture_module(ns)
    Module.new do
      extend ns::Library
      ffi_lib MEMORY_FIXTURE_LIB
      attach_function :fx_layout, %i[string string], :long
      attach_function :fx_fill_mixed, %i[pointer char double short pointer], :void
      attach_function :fx_sum_mixed, [:pointer], :double
      attach_function :fx_fill_nested, %i[pointer char char int long_long float], :void
      attach_function :fx_sum_nested, [:pointer], :long_long
      attach_function :fx_fill_with_array, %i[pointer string int], :void
      attach_function :fx_with_array_check, [:pointer], :long
      attach_function :fx_fill_scalars, [:pointer], :void
      attach_function :fx_check_scalars, [:pointer], :int
      attach_function :fx_fill_union_int, %i[pointer int int int], :void
      attach_function :fx_union_double, [:pointer], :double
      attach_function :fx_fill_has_union, [:pointer], :void
      attach_function :fx_packed_sum, [:pointer], :int
      attach_function :fx_point_sum, [:pointer], :int
      attach_function :fx_fill_bytes, %i[buffer_out size_t int], :void
      attach_function :fx_sum_bytes, %i[buffer_in size_t], :long
      attach_function :fx_write_greeting, %i[pointer size_t], :void
      attach_function :fx_fill_ints, %i[pointer int], :void
    end
  end

  FIX = Differential.per_namespace { |ns| fixture_module(ns) }

  def fix(ns = FiddleJit) = FIX.fetch(ns)

  def plain(value)
    case value
    when Array then value.map { |v| plain(v) }
    when Float then [:float, Differential.float_hex(value)]
    when FFI::Pointer, FFI::Struct, FFI::Struct::InlineArray then [:obj, value.class.name&.split("::")&.last]
    else
      if !FIDDLE_JIT_ORACLE_MODE && [FiddleJit::Pointer, FiddleJit::Struct, FiddleJit::Struct::InlineArray].any? { |k| value.is_a?(k) }
        [:obj, value.class.name&.split("::")&.last]
      else
        value
      end
    end
  end

  def same(label, &block)
    expect_same_outcome(label) { |ns| plain(block.call(ns, structs(ns))) }
  end

  describe "layout matches the C compiler and the ffi gem" do
    %i[inner mixed nested with_array union has_union packed point scalars tail_pad chars].each do |name|
      it "#{name}: offsets, size and alignment" do
        klass = structs(FiddleJit)[name]
        c_name = name.to_s
        expect(klass.size).to eq(fix.fx_layout(c_name, nil))
        expect(klass.alignment).to eq(fix.fx_layout(c_name, "__align")) unless name == :packed
        klass.members.each do |member|
          expect([member, klass.offset_of(member)]).to eq([member, fix.fx_layout(c_name, member.to_s)])
        end
        same("layout #{name}") { |_ns, s| [s[name].size, s[name].alignment, s[name].offsets, s[name].members] }
      end
    end

    it "explicit offsets, hash layouts, aligned and Struct.size=" do
      same("explicit offsets") do |ns|
        k = Class.new(ns::Struct) { layout :a, :char, 4, :b, :int, 12, :c, :char }
        [k.offsets, k.size]
      end
      same("hash layout") do |ns|
        k = Class.new(ns::Struct) { layout(a: :char, b: :double, c: [:short, 3]) }
        [k.offsets, k.size, k.alignment]
      end
      same("packed 2") do |ns|
        k = Class.new(ns::Struct) do
          packed 2
          layout :a, :char, :b, :int, :c, :double
        end
        [k.offsets, k.size]
      end
      same("aligned") do |ns|
        k = Class.new(ns::Struct) do
          aligned 8
          layout :a, :char, :b, :char
        end
        [k.offsets, k.size, k.alignment]
      end
      same("size=") do |ns|
        k = Class.new(ns::Struct)
        k.size = 32
        k.layout :a, :int
        [k.size, (k.size = 4 rescue $!.class)]
      end
      same("pointer to struct field") do |ns, s|
        point = s[:point]
        k = Class.new(ns::Struct) { layout :c, :char, :pt, point.by_ref, :n, :int }
        [k.offsets, k.size]
      end
    end

    it "typedefs of the enclosing Library module" do
      same("typedef field") do |ns|
        mod = Module.new { extend ns::Library }
        mod.typedef :uint16, :word
        Object.const_set(:"FjSpecTypedefs#{ns.name}", mod)
        k = Class.new(ns::Struct)
        mod.const_set(:S, k)
        k.layout :a, :char, :w, :word
        s = k.new
        s[:w] = 70_000
        [k.offsets, k.size, s[:w]]
      end
    end

    it "bad field types raise TypeError like the ffi gem" do
      same("bad field") { |ns| Class.new(ns::Struct) { layout :a, :nope } }
      same("void field") { |ns| Class.new(ns::Struct) { layout :a, :void } }
    end
  end

  describe "field access (differential)" do
    it "scalars: every type round-trips, values convert like the Pointer writers" do
      same("scalars") do |_ns, s|
        v = s[:scalars].new
        v[:i8] = 200
        v[:u8] = -1
        v[:i16] = -3
        v[:u16] = 65_535
        v[:i32] = -(2**31)
        v[:u32] = 2**32 - 1
        v[:i64] = -(2**63)
        v[:u64] = 2**64 - 1
        v[:l] = -5
        v[:ul] = 5
        v[:f] = 1.1
        v[:d] = -0.0
        v[:p] = nil
        v[:b] = true
        v.values + [v.members, v[:p].null?]
      end
      %i[i8 u32 i64 f b].each do |field|
        [nil, "1", 2**64, 1.5, :sym].each do |bad|
          same("scalars #{field} = #{bad.inspect}") do |_ns, s|
            v = s[:scalars].new
            v[field] = bad
            v[field]
          end
        end
      end
    end

    it "unknown fields raise ArgumentError" do
      same("unknown get") { |_ns, s| s[:point].new[:z] }
      same("unknown set") { |_ns, s| s[:point].new[:z] = 1 }
      same("string key") { |_ns, s| s[:point].new["x"] }
    end

    it "pointer fields accept nil, Pointers, addresses and to_ptr; not Strings" do
      [nil, 5, "a", 1.5, 2**64].each do |v|
        same("pointer field #{v.inspect}") do |_ns, s|
          m = s[:mixed].new
          m[:p] = v
          m[:p].address
        end
      end
      same("pointer field struct") do |_ns, s|
        m = s[:mixed].new
        pt = s[:point].new
        m[:p] = pt
        m[:p].address == pt.pointer.address
      end
    end

    it "nested structs are views; assignment copies; wrong class is a TypeError" do
      same("nested") do |_ns, s|
        n = s[:nested].new
        n[:in][:b] = 77
        other = s[:inner].new
        other[:a] = 5
        n[:in] = other
        other[:a] = 6
        [n[:in][:a], n[:in][:b], n[:in].class == s[:inner], n[:in].size]
      end
      same("nested wrong") { |_ns, s| s[:nested].new[:in] = 1 }
      same("nested other struct") { |_ns, s| s[:nested].new[:in] = s[:point].new }
    end

    it "inline arrays: InlineArray and CharArray" do
      same("inline arrays") do |_ns, s|
        w = s[:with_array].new
        w[:name] = "hello"
        w[:vals][1] = 5
        w[:vals][3] = -1
        vals = w[:vals]
        [w[:name].to_s, w[:name].to_str, w[:name].size, w[:name][0], vals.to_a, vals.size, vals[1],
         vals.map { |x| x * 2 }, vals.to_ptr.size, vals.class.name.split("::").last, w[:name].class.name.split("::").last]
      end
      same("char array exact") do |_ns, s|
        w = s[:with_array].new
        w[:name] = "0123456789abcdef"
        w[:name].to_s
      end
      same("char array too long") { |_ns, s| s[:with_array].new[:name] = "0123456789abcdefg" }
      same("int array set") { |_ns, s| s[:with_array].new[:vals] = [1, 2] }
      same("inline index oob") { |_ns, s| s[:with_array].new[:vals][4] }
      same("inline index neg") { |_ns, s| s[:with_array].new[:vals][-1] }
      same("array of structs") do |ns, s|
        point = s[:point]
        k = Class.new(ns::Struct) { layout :n, :int, :pts, [point, 3] }
        v = k.new
        v[:pts][2][:y] = 9
        [k.size, v[:pts][2][:y], v[:pts][2].pointer.address - v.pointer.address, v[:pts][2].class == point]
      end
    end

    it "unions overlay their fields" do
      same("union") do |_ns, s|
        u = s[:union].new
        u[:d] = 1.0
        r = [u[:arr].to_a, u[:c]]
        u[:c] = 1
        r + [u[:arr][0] & 0xff, u.size]
      end
    end

    it ":string fields read C strings and cannot be set" do
      same("string field") do |ns|
        k = Class.new(ns::Struct) { layout :s, :string, :n, :int }
        v = k.new
        r = [v[:s]]
        v.pointer.put_pointer(0, ns::MemoryPointer.from_string("text"))
        r << v[:s]
        r << (begin; v[:s] = "x"; rescue StandardError => e; e.class.name; end)
      end
    end

    it "Struct.new(pointer), pointer/to_ptr, clear, dup, null?" do
      same("struct new pointer") do |ns, s|
        m = ns::MemoryPointer.new(:int, 2)
        m.write_array_of_int([3, 4])
        pt = s[:point].new(m)
        pt2 = pt.dup
        pt2[:x] = 30
        r = [pt[:x], pt[:y], pt2[:x], pt.pointer == m, pt.to_ptr == m, pt2.pointer == m, pt.null?]
        pt.clear
        r + [m.read_array_of_int(2), pt2.values]
      end
      bad_memory = Differential::FfiChange.new(since: "1.16.0", change: "Struct.new with a non-memory argument raises " \
                                                                          "TypeError (it raised ArgumentError)",
                                               now: TypeError)
      expect_same_outcome("struct new bad", ffi_changed: bad_memory) { |ns| structs(ns)[:point].new("x") }
      expect_same_outcome("struct new Integer", ffi_changed: bad_memory) { |ns| structs(ns)[:point].new(16) }
      same("struct new too small") { |ns, s| s[:point].new(ns::MemoryPointer.new(4))[:y] }
      same("struct new NULL") { |ns, s| s[:point].new(ns::Pointer::NULL)[:x] }
      same("struct no layout") { |ns| Class.new(ns::Struct).new }
      same("default memory") { |_ns, s| [s[:point].new.pointer.class.name.split("::").last, s[:point].new.pointer.size] }
    end

    it "user-defined initialize calling super" do
      same("user initialize") do |ns|
        k = Class.new(ns::Struct) do
          layout :x, :int, :y, :int
          define_method(:initialize) do |x = 1, y = 2|
            super()
            self[:x] = x
            self[:y] = y
          end
        end
        [k.new.values, k.new(5, 6).values]
      end
    end

    it "by_ref / ptr / in / out / by_value / val / alloc_in" do
      same("type objects") do |_ns, s|
        k = s[:point]
        [k.by_ref.equal?(k.ptr), k.in.equal?(k.out), k.by_value.equal?(k.val), k.alloc_in.class == k, k.alloc_out.size]
      end
    end
  end

  describe "round trips through C" do
    it "fills and reads mixed-alignment structs" do
      m = structs(FiddleJit)[:mixed].new
      fix.fx_fill_mixed(m, 7, 2.5, -300, FiddleJit::Pointer.new(0xabc))
      expect([m[:c], m[:d], m[:s], m[:p].address]).to eq([7, 2.5, -300, 0xabc])
      m[:c] = 1
      m[:d] = 0.25
      m[:s] = 10
      expect(fix.fx_sum_mixed(m)).to eq(11.25)
      expect(fix.fx_sum_mixed(m.pointer)).to eq(11.25)
    end

    it "nested structs" do
      n = structs(FiddleJit)[:nested].new
      fix.fx_fill_nested(n, 1, 2, 3, 2**40, 5.5)
      expect([n[:tag], n[:in][:a], n[:in][:b], n[:ll], n[:f]]).to eq([1, 2, 3, 2**40, 5.5])
      n[:in][:b] = 100
      expect(fix.fx_sum_nested(n)).to eq(1 + 2 + 100 + 2**40 + 5)
    end

    it "inline arrays" do
      w = structs(FiddleJit)[:with_array].new
      fix.fx_fill_with_array(w, "abc", 10)
      expect([w[:name].to_s, w[:vals].to_a, w[:tail]]).to eq(["abc", [10, 11, 12, 13], -7])
      w[:name] = "hello"
      w[:vals][0] = 0
      expect(fix.fx_with_array_check(w)).to eq(5000 + 0 + 11 + 12 + 13 - 7)
    end

    it "every scalar type, both directions" do
      s = structs(FiddleJit)[:scalars].new
      fix.fx_fill_scalars(s)
      expect(s.values).to eq([-8, 200, -16_000, 60_000, -2_000_000_000, 4_000_000_000, -(2**63) + 1, 2**64 - 2,
                              -123_456_789_012, 123_456_789_012, 1.5, -2.25, FiddleJit::Pointer.new(0x1234), true])
      copy = structs(FiddleJit)[:scalars].new
      s.members.each { |m| copy[m] = s[m] }
      expect(fix.fx_check_scalars(copy)).to eq(1)
      copy[:u8] = 1
      expect(fix.fx_check_scalars(copy)).to eq(0)
    end

    it "unions and structs containing unions" do
      u = structs(FiddleJit)[:union].new
      u[:d] = 3.0
      expect(fix.fx_union_double(u)).to eq(3.0)
      fix.fx_fill_union_int(u, 1, 2, 3)
      expect(u[:arr].to_a).to eq([1, 2, 3])
      h = structs(FiddleJit)[:has_union].new
      fix.fx_fill_has_union(h)
      expect([h[:tag], h[:u][:d], h[:tail]]).to eq(["t".ord, 6.5, "z".ord])
    end

    it "packed structs" do
      p = structs(FiddleJit)[:packed].new
      p[:a] = 1
      p[:b] = 1000
      p[:c] = -3
      expect(fix.fx_packed_sum(p)).to eq(998)
    end

    it "buffers and MemoryPointers as :buffer_in/:buffer_out/:pointer" do
      buf = FiddleJit::Buffer.alloc_out(16)
      fix.fx_fill_bytes(buf, 16, 3)
      expect(buf.get_array_of_uint8(0, 16)).to eq((3...19).to_a)
      expect(fix.fx_sum_bytes(buf, 16)).to eq((3...19).sum)
      mp = FiddleJit::MemoryPointer.new(:int, 5)
      fix.fx_fill_ints(mp, 5)
      expect(mp.read_array_of_int(5)).to eq([0, 1, 4, 9, 16])
      greeting = FiddleJit::MemoryPointer.new(32)
      fix.fx_write_greeting(greeting, 32)
      expect(greeting.read_string).to eq("hello from C")
      expect(fix.fx_sum_bytes(FiddleJit::Buffer.alloc_in(4).tap { |b| b.put_bytes(0, "\x01\x02\x03\x04") }, 4)).to eq(10)
    end
  end

  describe "structs in signatures" do
    unless FIDDLE_JIT_ORACLE_MODE
      let(:timeval) { Class.new(FiddleJit::Struct) { layout :tv_sec, :long, :tv_usec, :long } }

      it "gettimeofday into a Timeval (Struct.by_ref and Struct class parameters)" do
        tv = timeval
        mod = Module.new do
          extend FiddleJit::Library
          ffi_lib "c"
          attach_function :gettimeofday, [tv.by_ref, :pointer], :int
          attach_function :gettimeofday_cls, :gettimeofday, [tv, :pointer], :int
        end
        t = tv.new
        before = Time.now.to_i
        expect(mod.gettimeofday(t, nil)).to eq(0)
        expect(t[:tv_sec]).to be_between(before, Time.now.to_i)
        expect(t[:tv_usec]).to be_between(0, 999_999)
        t2 = tv.new
        expect(mod.gettimeofday_cls(t2, nil)).to eq(0)
        expect(t2[:tv_sec]).to be >= before
      end

      it "Struct.by_ref returns wrap the returned pointer; a Struct class return is a Pointer" do
        point = structs(FiddleJit)[:point]
        mod = Module.new do
          extend FiddleJit::Library
          ffi_lib MEMORY_FIXTURE_LIB
          attach_function :fx_static_point, [], point.by_ref
          attach_function :null_point, :fx_null_point, [], point.ptr
          attach_function :raw_point, :fx_static_point, [], point
          attach_function :fx_point_sum, [point.in], :int
        end
        pt = mod.fx_static_point
        expect(pt).to be_a(point)
        expect([pt[:x], pt[:y]]).to eq([3, 4])
        pt[:x] = 10
        expect(mod.fx_point_sum(pt)).to eq(14)
        expect(mod.fx_point_sum(nil)).to eq(-1)
        pt[:x] = 3
        expect(mod.raw_point).to be_a(FiddleJit::Pointer)
        expect(mod.raw_point.address).to eq(pt.pointer.address)
        null = mod.null_point
        expect(null).to be_a(point)
        expect(null.null?).to be(true)
        expect { null[:x] }.to raise_error(FiddleJit::NullPointerError)
        includer = Class.new { include mod }.new
        expect(includer.fx_static_point[:y]).to eq(4)
      end

      it "matches the ffi gem for by-ref returns (NULL gives a struct over NULL)" do
        same("by_ref return") do |ns, s|
          point = s[:point]
          mod = Module.new do
            extend ns::Library
            ffi_lib MEMORY_FIXTURE_LIB
            attach_function :fx_static_point, [], point.by_ref
            attach_function :fx_null_point, [], point.by_ref
          end
          [mod.fx_static_point.values, mod.fx_null_point.class == point, mod.fx_null_point.pointer.null?]
        end
      end

      it "Struct.by_value.native_descriptor flattens the layout for the emitter (vs offsetof)" do
        nested = structs(FiddleJit)[:nested]
        inner = fix.fx_layout("nested", "in")
        leaves = [["int8", fix.fx_layout("nested", "tag")], ["int8", inner + fix.fx_layout("inner", "a")],
                  ["int32", inner + fix.fx_layout("inner", "b")], ["int64", fix.fx_layout("nested", "ll")],
                  ["float", fix.fx_layout("nested", "f")]]
        expect(nested.by_value.native_descriptor)
          .to eq(["struct", fix.fx_layout("nested", nil), fix.fx_layout("nested", "__align"), leaves])
        with_array = structs(FiddleJit)[:with_array].by_value.native_descriptor
        # Inline arrays as runs [name, offset, count, stride].
        expect(with_array[3]).to eq([["int8", fix.fx_layout("with_array", "name"), 16, 1],
                                     ["int32", fix.fx_layout("with_array", "vals"), 4, 4],
                                     ["int16", fix.fx_layout("with_array", "tail")]])
      end

      it "typedefs of struct types work in signatures" do
        point = structs(FiddleJit)[:point]
        mod = Module.new do
          extend FiddleJit::Library
          ffi_lib MEMORY_FIXTURE_LIB
          typedef point.by_ref, :point_ptr
          attach_function :fx_static_point, [], :point_ptr
          attach_function :fx_point_sum, [:point_ptr], :int
        end
        expect(mod.fx_point_sum(mod.fx_static_point)).to eq(7)
      end
    end
  end

  # Mistakes in layouts and field values, each the ffi gem's exception
  # class (found by a differential campaign against ffi 1.17).
  describe "bad layouts and field values (differential)" do
    def layout(ns, *spec, union: false) = Class.new(union ? ns::Union : ns::Struct) { layout(*spec) }

    it "field names are Symbols or Strings (kept as Symbols)" do
      expect_same_outcome("layout 1, :int") { |ns| layout(ns, 1, :int) }
      expect_same_outcome("layout 'a', :int") { |ns| layout(ns, "a", :int, "b", :int).members }
      expect_same_outcome("'a' field by Symbol") { |ns| layout(ns, "a", :int).new.tap { |s| s[:a] = 3 }[:a] }
      expect_same_outcome("layout a: :int, 'b' => :int") { |ns| layout(ns, { a: :int, "b" => :int }).members }
    end

    it "buffer, varargs and void fields are invalid; :strptr reads [String, Pointer]" do
      %i[buffer_in buffer_out buffer_inout varargs void].each do |type|
        expect_same_outcome("layout :a, :#{type}") { |ns| layout(ns, :a, :int, :b, type) }
      end
      expect_same_outcome(":strptr field") do |ns|
        s = layout(ns, :a, :strptr, :b, :int).new
        null = s[:a]
        s.pointer.put_pointer(0, ns::MemoryPointer.from_string("hi"))
        [null[0], null[1].null?, s[:a][0], s.members]
      end
    end

    it "a struct of size zero is a RuntimeError; a flexible array member at the end is not" do
      expect_same_outcome("layout :a, [:int, 0]") { |ns| layout(ns, :a, [:int, 0]) }
      expect_same_outcome("union :a, [:int, 0]") { |ns| layout(ns, :a, [:int, 0], union: true) }
      expect_same_outcome("flexible array") { |ns| layout(ns, :n, :int, :data, [:int, 0]).size }
    end

    it "a copy of a struct over NULL is over NULL; StructByValue of a non-Struct is a TypeError" do
      expect_same_outcome("dup over NULL") { |ns| layout(ns, :a, :int).new(ns::Pointer::NULL).dup.pointer.address }
      expect_same_outcome("dup") { |ns| s = layout(ns, :a, :int).new.tap { |x| x[:a] = 4 }; d = s.dup; s[:a] = 5; d[:a] }
      expect_same_outcome("StructByValue.new(Object)") { |ns| ns::StructByValue.new(Object) }
      expect_same_outcome("StructByValue.new(1)") { |ns| ns::StructByValue.new(1) }
    end

    it "inline array indexes convert as an int (TypeError, RangeError; Floats truncated) before the bounds check" do
      [nil, "0", :a, 1.5, 2**31, 2**64, -1, 3].each do |i|
        expect_same_outcome("[:int, 3][#{i.inspect}]") { |ns| layout(ns, :a, [:int, 3]).new[:a][i] }
        expect_same_outcome("[:char, 4][#{i.inspect}] = 1") { |ns| layout(ns, :a, [:char, 4]).new[:a][i] = 1 }
      end
    end

    it "a callback field takes nil, a Function or a callable (TypeError otherwise)" do
      cb = ->(ns) { Module.new { extend ns::Library }.callback(:cb, [:int], :int) }
      [FFI::Pointer.new(8), 5, "x"].each do |v|
        expect_same_outcome("callback field = #{v.inspect}") do |ns|
          value = v.is_a?(FFI::Pointer) ? ns::Pointer.new(8) : v
          layout(ns, :f, cb.call(ns)).new[:f] = value
        end
      end
      expect_same_outcome("callback field = nil") { |ns| layout(ns, :f, cb.call(ns)).new.tap { |s| s[:f] = nil }.pointer.get_pointer(0).null? }
    end
  end
end
