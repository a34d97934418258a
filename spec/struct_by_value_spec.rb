# frozen_string_literal: true

require_relative "spec_helper"

BYVALUE_FIXTURE_LIB = FixtureBuild.build!(File.expand_path("fixtures/byvalue_fixture.c", __dir__),
                                          File.join(FixtureBuild::DIR, "libfjbyvalue.so")).freeze

# Structs by value, differential against the ffi gem: one struct shape per
# SysV classification (INTEGER, SSE, mixed, odd sizes, MEMORY), as
# arguments and as returns.
RSpec.describe "structs by value" do
  SHAPES = {
    i1: [[:a, :int32]],
    i2: [[:a, :int64], [:b, :int64]],
    c3: [[:a, :char], [:b, :char], [:c, :char]],
    f2: [[:x, :float], [:y, :float]],
    d2: [[:x, :double], [:y, :double]],
    mix: [[:i, :int32], [:f, :float], [:d, :double]],
    dl: [[:d, :double], [:l, :int64]],
    f3: [[:x, :float], [:y, :float], [:z, :float]],
    big: [[:a, :int64], [:b, :int64], [:c, :int64], [:d, :double]],
    s7: [[:s, [:char, 7]]]
  }.freeze
  ARGS = {
    i1: [-21], i2: [2**40, -3], c3: [1, -2, 3], f2: [1.5, -0.25], d2: [1e300, -2.5],
    mix: [7, 0.5, -1e-3], dl: [2.25, -(2**50)], f3: [1.0, 2.0, 3.5], big: [1, -2, 3, 4.5], s7: [65]
  }.freeze

  def self.define(namespace, library)
    Module.new do
      extend library
      ffi_lib BYVALUE_FIXTURE_LIB
      structs = SHAPES.to_h do |name, fields|
        [name, Class.new(namespace::Struct) { layout(*fields.flatten(1)) }]
      end
      const_set(:STRUCTS, structs)
      SHAPES.each do |name, fields|
        types = fields.map { |_, t| t.is_a?(Array) ? :char : t }
        make_params = name == :s7 ? [:char] : types
        attach_function :"bv_make_#{name}", make_params, structs[name].by_value
        ret = { f2: :float, f3: :float, d2: :double, mix: :double, dl: :double, big: :double, i2: :int64 }.fetch(name, :int)
        attach_function :"bv_take_#{name}", [structs[name].by_value], ret
      end
      attach_function :bv_after_regs, [:int64, :int64, :int64, :int64, :int64, structs[:i2].by_value, :int64], :int64
      attach_function :bv_three, [structs[:i2].by_value, structs[:i2].by_value, :int64, structs[:d2].by_value], :int64
      attach_function :bv_big_roundtrip, [:int32, structs[:big].by_value, :double], structs[:big].by_value
    end
  end

  before(:all) do
    @fj = self.class.define(FiddleJit, FiddleJit::Library)
    @ffi = self.class.define(FFI, FFI::Library)
  end

  def values(struct)
    struct.members.map { |m| v = struct[m]; v.respond_to?(:to_a) ? v.to_a : v }
  end

  SHAPES.each_key do |name|
    it "returns #{name} (#{SHAPES[name].map(&:last).inspect}) like the ffi gem, and passes it back" do
      fj = @fj.public_send(:"bv_make_#{name}", *ARGS[name])
      ffi = @ffi.public_send(:"bv_make_#{name}", *ARGS[name])
      expect(fj).to be_a(@fj::STRUCTS[name])
      expect(values(fj)).to eq(values(ffi))
      expect(@fj.public_send(:"bv_take_#{name}", fj)).to eq(@ffi.public_send(:"bv_take_#{name}", ffi))
    end
  end

  it "puts a struct on the stack when the registers run out" do
    fj_v = @fj::STRUCTS[:i2].new.tap { |s| s[:a] = 11; s[:b] = -13 }
    ffi_v = @ffi::STRUCTS[:i2].new.tap { |s| s[:a] = 11; s[:b] = -13 }
    expect(@fj.bv_after_regs(1, 2, 3, 4, 5, fj_v, 17)).to eq(@ffi.bv_after_regs(1, 2, 3, 4, 5, ffi_v, 17))
  end

  it "handles several structs filling registers faster than Ruby's arguments arrive" do
    args = ->(ns, mod) do
      x = mod::STRUCTS[:i2].new.tap { |s| s[:a] = 1; s[:b] = 2 }
      y = mod::STRUCTS[:i2].new.tap { |s| s[:a] = 3; s[:b] = 4 }
      w = mod::STRUCTS[:d2].new.tap { |s| s[:x] = 6.0; s[:y] = 7.0 }
      [x, y, 5, w]
    end
    expect(@fj.bv_three(*args.call(FiddleJit, @fj))).to eq(@ffi.bv_three(*args.call(FFI, @ffi)))
  end

  it "passes and returns a MEMORY-class struct through the hidden pointer, also with blocking: true" do
    fj_big = @fj.bv_make_big(1, 2, 3, 0.5)
    r = @fj.bv_big_roundtrip(3, fj_big, 4.0)
    expect(values(r)).to eq(values(@ffi.bv_big_roundtrip(3, @ffi.bv_make_big(1, 2, 3, 0.5), 4.0)))
    mod = Module.new do
      extend FiddleJit::Library
      ffi_lib BYVALUE_FIXTURE_LIB
    end
    big = fj_big.class
    mod.attach_function :bv_big_roundtrip, [:int32, big.by_value, :double], big.by_value, blocking: true
    mod.attach_function :bv_take_d2, [@fj::STRUCTS[:d2].by_value], :double, blocking: true
    expect(values(mod.bv_big_roundtrip(3, fj_big, 4.0))).to eq(values(r))
    expect(mod.bv_take_d2(@fj.bv_make_d2(1.0, 2.0))).to eq(4.0)
  end

  it "raises ArgumentError (the ffi gem's) for a value that is not memory, TypeError for NULL, IndexError for too little memory" do
    expect { @fj.bv_take_i2(5) }.to raise_error(ArgumentError, /bv_take_i2: argument 1/)
    [5, Object.new, { a: 1 }, [1, 2]].each do |v|
      expect { @ffi.bv_take_i2(v) }.to raise_error(ArgumentError)
      expect { @fj.bv_take_i2(v) }.to raise_error(ArgumentError)
    end
    expect { @fj.bv_take_i2(nil) }.to raise_error(TypeError)
    expect { @fj.bv_take_i2(FiddleJit::MemoryPointer.new(8)) }.to raise_error(IndexError)
    expect(@fj.bv_take_i2(FiddleJit::MemoryPointer.new(16).tap { |m| m.write_int64(5) })).to eq(15)
  end

  it "survives GC.stress while boxing struct returns" do
    GC.stress = true
    results = Array.new(20) { |i| @fj.bv_make_mix(i, 0.5, 1.0)[:i] }
    GC.stress = false
    expect(results).to eq((0...20).to_a)
  ensure
    GC.stress = false
  end
end

RSpec.describe "large structs by value" do
  SIZES = { odd: 1003, mib: 1 << 20 }.freeze

  def self.define(namespace, library)
    Module.new do
      extend library
      ffi_lib BYVALUE_FIXTURE_LIB
      structs = SIZES.transform_values { |n| Class.new(namespace::Struct) { layout :b, [:uint8, n] } }
      const_set(:STRUCTS, structs)
      const_set(:ATTACHED, [attach_function(:bv_odd_sum, [:int32, structs[:odd].by_value, :int32], :uint64),
                            attach_function(:bv_mib_sum, [structs[:mib].by_value], :uint64)])
    end
  end

  def filled(mod, name)
    s = mod::STRUCTS[name].new
    n = SIZES[name]
    s.pointer.put_bytes(0, Array.new(n) { |i| (i * 7 + 3) & 0xff }.pack("C*"))
    s
  end

  def weighted(n) = (0...n).sum { |i| ((i * 7 + 3) & 0xff) * ((i % 13) + 1) }

  it "passes them like the ffi gem, with code whose size does not grow with the struct's" do
    fj = self.class.define(FiddleJit, FiddleJit::Library)
    ffi = self.class.define(FFI, FFI::Library)
    expect(fj.bv_odd_sum(3, filled(fj, :odd), 5)).to eq(ffi.bv_odd_sum(3, filled(ffi, :odd), 5))
    expect(fj.bv_odd_sum(3, filled(fj, :odd), 5)).to eq((weighted(1003) * 3) + 5)
    expect(fj.bv_mib_sum(filled(fj, :mib))).to eq(ffi.bv_mib_sum(filled(ffi, :mib)))
    expect(fj.bv_mib_sum(filled(fj, :mib))).to eq(weighted(1 << 20))
    small, huge = fj::ATTACHED.map(&:code_bytes)
    expect(huge).to be < 1024
    expect(small).to be < 1024
  end

  it "refuses lengths and sizes C cannot hold with the ffi gem's RangeError" do
    [FiddleJit, FFI].each do |ns|
      array = ns == FFI ? FFI::ArrayType : FiddleJit::Type::Array
      expect { array.new(ns::Type::UINT8, 2**32) }
        .to raise_error(RangeError, /integer 4294967296 too big to convert to .unsigned int'/)
      expect(array.new(ns::Type::UINT8, 2**20).size).to eq(2**20)
    end
    # The ffi gem 1.17.0 raises the same, after half a minute of page
    # faults (it allocates per-byte bookkeeping): checked by hand only.
    expect { Class.new(FiddleJit::Struct) { layout :a, [:uint8, (2**31) - 8], :b, :int64 } }
      .to raise_error(RangeError, /integer 2147483648 too big to convert to .int'/)
  end
end

# The Struct a by-value return makes: as the ffi gem makes it, the class's
# `initialize` gets a new MemoryPointer holding the bytes (so one that needs
# the memory argument gets it, and one that skips super ends with its own
# zeroed memory, not a crash).
RSpec.describe "a struct returned by value" do
  it "is made through the class's initialize(memory) like the ffi gem's" do
    expect_same_outcome("ldiv into Struct subclasses") do |ns|
      skips_super = Class.new(ns::Struct) do
        layout :quot, :long, :rem, :long
        def initialize(*) = nil
      end
      takes_memory = Class.new(ns::Struct) do
        layout :quot, :long, :rem, :long
        def initialize(memory) = super
      end
      lib = Module.new do
        extend ns::Library
        ffi_lib ns::Library::LIBC
        attach_function :ldiv_skips, :ldiv, %i[long long], skips_super.by_value
        attach_function :ldiv_takes, :ldiv, %i[long long], takes_memory.by_value
      end
      a = lib.ldiv_skips(7, 2)
      b = lib.ldiv_takes(-7, 2)
      [a.class == skips_super, a[:quot], a[:rem], b.class == takes_memory, b[:quot], b[:rem], b.pointer.size]
    end
  end
end
