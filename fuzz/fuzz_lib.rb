# frozen_string_literal: true

# Shared by fuzz/fuzz.rb (the driver) and fuzz/child.rb (one batch): random
# signatures, the C fixture they compile to, and random arguments.
#
# Everything is derived from one Random, so a batch seed reproduces the
# signatures, the C source and every argument.
module Fuzz
  # name => [C type, kind, bits, signed]
  TYPES = {
    int8: ["int8_t", :int, 8, true], uint8: ["uint8_t", :int, 8, false],
    int16: ["int16_t", :int, 16, true], uint16: ["uint16_t", :int, 16, false],
    int32: ["int32_t", :int, 32, true], uint32: ["uint32_t", :int, 32, false],
    int64: ["int64_t", :int, 64, true], uint64: ["uint64_t", :int, 64, false],
    long: ["long", :int, 64, true], ulong: ["unsigned long", :int, 64, false],
    size_t: ["size_t", :int, 64, false],
    float: ["float", :float, 32, true], double: ["double", :double, 64, true],
    bool: ["_Bool", :bool, 8, false],
    pointer: ["void *", :pointer, 64, false], string: ["const char *", :string, 64, false]
  }.freeze
  PARAM_TYPES = TYPES.keys.freeze
  RET_TYPES = (PARAM_TYPES + [:void]).freeze
  RET_STRINGS = ["", "fuzz", nil, "\\xff\\x01 bytes"].freeze

  Sig = Struct.new(:name, :params, :ret, :blocking)

  def self.signatures(rng, count)
    Array.new(count) do |i|
      n = rng.rand(1..20)
      # A quarter are attached with blocking: true (a separate stub path: the
      # arguments go through a call block, the call runs without the GVL).
      Sig.new("fz_#{i}", Array.new(n) { PARAM_TYPES.sample(random: rng) }, RET_TYPES.sample(random: rng), rng.rand(4).zero?)
    end
  end

  # Each function folds its arguments into a 64-bit hash (integers
  # sign-/zero-extended from their C type, floats by their bits, strings by
  # FNV-1a of their bytes, pointers by address) and returns it cast to the
  # return type; float/double returns add the first float argument so NaN,
  # infinities and -0.0 come back out. Void functions store the hash in
  # fz_last, read back through fz_last_hash().
  def self.c_source(sigs)
    out = +<<~C
      #include <stdint.h>
      #include <stddef.h>
      #include <string.h>
      static uint64_t fz_last;
      uint64_t fz_last_hash(void) { return fz_last; }
      static uint64_t mix(uint64_t h, uint64_t v, unsigned i) {
        h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
        return h * (2 * i + 1) + i;
      }
      static uint64_t hstr(const char *s) {
        if (!s) return 0x5eedULL;
        uint64_t h = 1469598103934665603ULL;
        while (*s) { h ^= (unsigned char)*s++; h *= 1099511628211ULL; }
        return h;
      }
      static uint64_t hdbl(double d) { uint64_t u; memcpy(&u, &d, 8); return u; }
      static uint64_t hflt(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
    C
    sigs.each do |s|
      params = s.params.each_with_index.map { |t, i| "#{TYPES[t][0]} p#{i}" }.join(", ")
      ret_c = s.ret == :void ? "void" : TYPES[s.ret][0]
      out << "#{ret_c} #{s.name}(#{params}) {\n  uint64_t h = #{s.name.delete_prefix("fz_").to_i * 7919 + 1}ULL;\n"
      first_float = nil
      s.params.each_with_index do |t, i|
        _, kind, _, signed = TYPES[t]
        v = case kind
            when :int then signed ? "(uint64_t)(int64_t)p#{i}" : "(uint64_t)p#{i}"
            when :bool then "(uint64_t)p#{i}"
            when :float then "hflt(p#{i})"
            when :double then "hdbl(p#{i})"
            when :string then "hstr(p#{i})"
            when :pointer then "(uint64_t)(uintptr_t)p#{i}"
            end
        first_float ||= "p#{i}" if %i[float double].include?(kind)
        out << "  h = mix(h, #{v}, #{i});\n"
      end
      out << case s.ret
             when :void then "  fz_last = h;\n"
             when :bool then "  return (h >> 7) & 1;\n"
             when :float then "  return (float)(int32_t)(h >> 32) / 7.0f#{" + #{first_float}" if first_float};\n"
             when :double then "  return (double)(int64_t)h / 3.0#{" + #{first_float}" if first_float};\n"
             when :pointer then "  return (void *)(uintptr_t)h;\n"
             when :string
               "  static const char *const s[] = {#{RET_STRINGS.map { |x| x ? "\"#{x}\"" : "NULL" }.join(", ")}};\n  return s[h % 4];\n"
             else "  return (#{TYPES[s.ret][0]})h;\n"
             end
      out << "}\n"
    end
    out
  end

  # --- arguments ---------------------------------------------------------------
  # Conversion objects shared by both sides.
  class Boom < StandardError; end

  class ToInt
    def initialize(v) = @v = v
    def to_int = @v
    def inspect = "ToInt(#{@v.inspect})"
  end

  class ToF
    def initialize(v) = @v = v
    def to_f = @v
    def inspect = "ToF(#{@v.inspect})"
  end

  class ToStr
    def initialize(v) = @v = v
    def to_str = @v
    def inspect = "ToStr(#{@v.inspect})"
  end

  class Raising
    def to_int = raise(Boom, "to_int")
    def to_f = raise(Boom, "to_f")
    def to_str = raise(Boom, "to_str")
    def to_ptr = raise(Boom, "to_ptr")
    def inspect = "Raising"
  end

  # Resolved per side: Pointer.new(address) of that side's namespace, or an
  # object whose to_ptr returns one.
  Ptr = Struct.new(:address) do
    def inspect = format("Ptr(0x%x)", address)
  end
  ToPtr = Struct.new(:address) do
    def inspect = format("ToPtr(0x%x)", address)
  end

  NAN_PAYLOAD = [0x7ff8dead00000001].pack("Q<").unpack1("D")
  NEG_NAN = [0xfff8000000000000].pack("Q<").unpack1("D")
  # A long String whose [1..] is a shared (non-embedded) substring.
  LONG = ("shared-substring-base-" * 4).freeze

  def self.rand_bytes(rng, max = 40)
    Array.new(rng.rand(0..max)) { rng.rand(1..255) }.pack("C*")
  end

  def self.rand_float(rng)
    case rng.rand(12)
    when 0 then [0.0, -0.0, Float::NAN, NAN_PAYLOAD, NEG_NAN, Float::INFINITY, -Float::INFINITY,
                 Float::MAX, -Float::MAX, Float::MIN, 5e-324, Float::EPSILON].sample(random: rng)
    when 1 then [rng.rand(0..(2**64 - 1))].pack("Q<").unpack1("D") # any bit pattern
    when 2 then rng.rand(-1000..1000)
    when 3 then [2**70, -(2**64), 2**1100, 3.4028235e38, 3.5e38, 1e-46].sample(random: rng)
    else (rng.rand - 0.5) * 10.0**rng.rand(-40..40)
    end
  end

  def self.rand_int(rng, bits, signed)
    lo = signed ? -(2**(bits - 1)) : 0
    hi = signed ? 2**(bits - 1) - 1 : 2**bits - 1
    case rng.rand(8)
    when 0 then [lo, hi, 0, -1, 1, lo + 1, hi - 1, 2**31 - 1, -(2**31), 2**32 - 1, 2**62, 2**63 - 1]
                .select { |v| v.between?(lo, hi) }.sample(random: rng)
    when 1 then rng.rand(0..127)
    else rng.rand(lo..hi)
    end
  end

  def self.valid_arg(rng, type)
    _, kind, bits, signed = TYPES[type]
    case kind
    when :int then rand_int(rng, bits, signed)
    when :float, :double then rand_float(rng)
    when :bool then rng.rand(2).zero?
    when :pointer
      case rng.rand(6)
      when 0 then nil
      when 1 then ToPtr.new(rng.rand(0..(2**63 - 1)))
      else Ptr.new(rng.rand(3).zero? ? rng.rand(0..(2**63 - 1)) : rng.rand(0..0xffff))
      end
    when :string
      case rng.rand(8)
      when 0 then nil
      when 1 then rand_bytes(rng).freeze
      when 2 then LONG[rng.rand(1..20)..]
      when 3 then ToStr.new(rand_bytes(rng))
      when 4 then "utf-8 \u00e9\u4e2d"
      else rand_bytes(rng)
      end
    end
  end

  def self.invalid_arg(rng, type)
    _, kind, bits, signed = TYPES[type]
    case kind
    when :int
      [2**bits, -(2**(bits - 1)) - 1, 2**32, -(2**31) - 1, 2**64, 2**64 - 1, -(2**63) - 1, 2**200, -(2**200),
       -1, -5, -(2**32), -(2**64), -(2**64) + 1, 2**62, -(2**62) - 1, -0.0, 3.0,
       1.5, -1.5, 1e30, -1e30, 2.0**63, 2.0**64, Float::NAN, Float::INFINITY, -Float::INFINITY,
       nil, true, false, "12", :sym, ToInt.new(5), ToInt.new(2**70), ToInt.new(-7), ToInt.new("x"),
       ToF.new(2.5), ToStr.new("3"), Raising.new, Object.new, Rational(7, 2), Complex(3, 0),
       rand_int(rng, bits, signed) * 2**rng.rand(1..70), rng.rand(-(2**100)..2**100)].sample(random: rng)
    when :float, :double
      [nil, true, "1.5", :sym, ToF.new(2.5), ToF.new("x"), ToInt.new(3), ToStr.new("1.0"), Raising.new,
       Object.new, Rational(1, 3), Complex(1, 0), Complex(1, 1), 2**2000, -(2**2000), Ptr.new(8)].sample(random: rng)
    when :bool
      [nil, 0, 1, "true", :true, 1.0, Object.new, Ptr.new(0)].sample(random: rng)
    when :pointer
      [1234, 0, -1, 2**64, 1.5, :sym, true, Object.new, Raising.new, ToStr.new("abc"), ToInt.new(5),
       "a string", "bytes\0with nul", LONG[1..], ToPtr.new(0)].sample(random: rng)
    when :string
      ["ab\0c", "\0", "x" * 30 + "\0", (LONG + "\0")[1..], "nul\0".freeze, :sym, 42, 1.5, true,
       ToStr.new(42), ToStr.new("ok"), ToStr.new("n\0ul"), ToStr.new(nil), Raising.new, Object.new,
       "abc".encode("UTF-16LE"), "abc".encode("UTF-32BE"), Ptr.new(0), Ptr.new(16)].sample(random: rng)
    end
  end
end
