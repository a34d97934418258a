# frozen_string_literal: true

# Differential testing: call the same fixture function through the ffi gem
# (the oracle) and through fiddle_jit with the same arguments, and require the
# same outcome:
#
#   * the same value: Integers by value, Floats bit-exactly (so NaN == NaN and
#     -0.0 != 0.0), Strings by bytes AND encoding, Pointers by address (and
#     each side must return its own Pointer class), true/false/nil by identity;
#   * or the same exception class (FFI::X on the oracle side matches
#     FiddleJit::X). Messages are shown in the failure output but not compared.
#
#   expect_same(:id_int8, 200)                 # both must agree
#   expect_same(:id_int8, 200, expect: -56)    # ...and the oracle must say -56
#
# Arguments that must be per-library objects are written as markers and
# resolved separately for each side: Differential::Ptr.new(addr) becomes
# FFI::Pointer.new(addr) / FiddleJit::Pointer.new(addr); Differential::ToPtr
# becomes an object whose #to_ptr returns that side's Pointer.
module Differential
  NOT_GIVEN = Object.new.freeze

  # Reason used to skip fiddle_jit-only expectations in oracle self-check mode.
  ORACLE_STACK_SKIP = "libffi (the oracle) leaves the upper bytes of narrow stack-passed " \
                      "arguments undefined, so this expectation is fiddle_jit-only"

  # Raised from the conversion-hook objects below; both libraries must let it
  # propagate unchanged.
  class Boom < StandardError; end

  # --- argument markers / conversion objects ---------------------------------
  Ptr = Struct.new(:address) do
    def inspect = format("Ptr(0x%x)", address)
  end

  ToPtr = Struct.new(:address) do
    def inspect = format("ToPtr(0x%x)", address)
  end

  # Objects implementing implicit conversions. They are shared by both sides.
  class ToInt
    def initialize(value) = @value = value
    def to_int = @value
    def inspect = "ToInt(#{@value.inspect})"
  end

  class ToF
    def initialize(value) = @value = value
    def to_f = @value
    def inspect = "ToF(#{@value.inspect})"
  end

  class ToStr
    def initialize(value) = @value = value
    def to_str = @value
    def inspect = "ToStr(#{@value.inspect})"
  end

  class RaisingConv
    def to_int = raise(Boom, "to_int")
    def to_f = raise(Boom, "to_f")
    def to_str = raise(Boom, "to_str")
    def to_ptr = raise(Boom, "to_ptr")
    def inspect = "RaisingConv"
  end

  # to_int / to_str / to_ptr returning the wrong class
  class WrongConv
    def to_int = "not an int"
    def to_f = "not a float"
    def to_str = 42
    def to_ptr = 42
    def inspect = "WrongConv"
  end

  class Plain
    def inspect = "Plain"
  end

  # --- the two sides ----------------------------------------------------------
  class Side
    attr_reader :ns, :label

    def initialize(ns, label)
      @ns = ns
      @label = label
      @attached = {}
      @lib_error = nil
      @mod = nil
    end

    # The module functions are attached to; created on first use.
    def mod
      return @mod if @mod || @lib_error

      m = Module.new
      m.extend(ns::Library)
      m.ffi_lib FIXTURE_LIB
      @mod = m
    rescue StandardError, ScriptError => e
      @lib_error = e
      nil
    end

    # Attach +name+ (see FixtureSignatures) once; returns nil or the exception.
    def attach(name)
      return @attached[name] if @attached.key?(name)

      c_name, args, ret = FixtureSignatures::SIGS.fetch(name)
      if ns == FFI
        args = args.map { |t| Differential.oracle_type(t) }
        ret = Differential.oracle_type(ret)
      end
      @attached[name] =
        begin
          m = mod or raise @lib_error
          if c_name == name
            m.attach_function(name, args, ret)
          else
            m.attach_function(name, c_name, args, ret)
          end
          nil
        rescue StandardError, ScriptError => e
          e
        end
    end

    def resolve(arg)
      case arg
      when Ptr then ns::Pointer.new(arg.address)
      when ToPtr
        ptr = ns::Pointer.new(arg.address)
        o = Object.new
        o.define_singleton_method(:to_ptr) { ptr }
        o.define_singleton_method(:inspect) { "ToPtr(0x#{arg.address.to_s(16)})" }
        o
      else arg
      end
    end

    # => [:ok, value] | [:raise, exception] | [:attach_error, exception]
    def call(name, args)
      err = attach(name)
      return [:attach_error, err] if err

      real = args.map { |a| resolve(a) }
      [:ok, @mod.__send__(name, *real)]
    rescue StandardError, ScriptError, NoMemoryError, SystemStackError => e
      [:raise, e]
    end

    # Comparable form of a value returned by this side.
    def normalize(value)
      case value
      when Float then [:Float, Differential.float_hex(value)]
      when Integer then [:Integer, value]
      when String then [:String, value.b, value.encoding.name]
      when nil, true, false then value
      when ns::Pointer then [:Pointer, value.address]
      else [:Other, value.class.name, value.inspect]
      end
    end

    def normalize_outcome(outcome)
      kind, payload = outcome
      case kind
      when :ok then [:ok, normalize(payload)]
      when :raise then [:raise, Differential.exception_name(payload, ns)]
      else [:attach_error, Differential.exception_name(payload, ns)]
      end
    end
  end

  def self.float_hex(f) = [f].pack("G").unpack1("H*")

  # The type the oracle attaches for +type+: itself, or, where the ffi gem
  # lacks a typedef C has (Debian's ffi 1.15.5 on aarch64-linux has no
  # intptr_t/uintptr_t), the builtin integer C says is the same type
  # (spec/support/c_types.rb), so the ffi gem still decides every value and
  # exception.
  def self.oracle_type(type)
    return type unless type.is_a?(Symbol)

    @oracle_types ||= {}
    @oracle_types.fetch(type) do
      @oracle_types[type] = begin
        FFI.find_type(type)
        type
      rescue TypeError
        CTypes.builtin_for(type)
      end
    end
  end

  # The ffi gem line fiddle_jit follows. Where the oracle installed next to a
  # Ruby is older (Debian's ffi 1.15.5 on Ruby 3.1) and the ffi gem changed
  # a behaviour since, a spec names the change with an FfiChange.
  FOLLOWED_VERSION = "1.17.0"

  # A behaviour the ffi gem changed in version +since+ (+change+ says what);
  # +now+ is the outcome from then on: a value, or an exception class.
  FfiChange = Struct.new(:since, :change, :now, keyword_init: true) do
    def oracle_predates? = Gem::Version.new(FFI::VERSION) < Gem::Version.new(since)

    def normalized_now
      if now.is_a?(Class) && now <= Exception
        [:raise, now.name]
      else
        [:ok, Differential.jit.normalize(now)]
      end
    end

    def to_s = "ffi #{since}: #{change}"
  end

  # FFI::NotFoundError and FiddleJit::NotFoundError compare equal.
  def self.exception_name(e, ns)
    name = e.class.name || e.class.inspect
    prefix = "#{ns.name}::"
    name.start_with?(prefix) ? "NS::#{name.delete_prefix(prefix)}" : name
  end

  # What +build+ makes for each namespace a differential spec compares:
  # FFI always, FiddleJit unless the run checks only the oracle
  # (FIDDLE_JIT_ORACLE_MODE). { namespace => built }.
  def self.per_namespace(&build)
    sides = { FFI => build.call(FFI) }
    sides[FiddleJit] = build.call(FiddleJit) unless FIDDLE_JIT_ORACLE_MODE
    sides
  end

  def self.ffi = (@ffi ||= Side.new(FFI, "ffi"))
  def self.jit = (@jit ||= Side.new(FiddleJit, "fiddle_jit"))

  def self.describe_value(v)
    case v
    when Float then "#{v.inspect} (Float 0x#{float_hex(v)})"
    when String then "#{v.inspect} (#{v.encoding}, #{v.bytesize} bytes#{", frozen" if v.frozen?})"
    when nil, true, false, Integer then v.inspect
    else
      if v.respond_to?(:address) then "#{v.class}(address=0x#{v.address.to_s(16)})"
      else "#{v.inspect} (#{v.class})"
      end
    end
  end

  def self.describe_outcome(outcome)
    kind, payload = outcome
    case kind
    when :ok then "=> #{describe_value(payload)}"
    when :raise then "raised #{payload.class}: #{payload.message}"
    else "attach_function failed: #{payload.class}: #{payload.message}"
    end
  end

  def self.describe_call(name, args)
    sig = FixtureSignatures::SIGS[name]
    shown = args.map(&:inspect).join(", ")
    shown = "#{shown[0, 300]}..." if shown.size > 300
    "#{name}(#{shown})  [#{sig[1].inspect} => #{sig[2].inspect}]"
  end

  module Helpers
    # expect_same_outcome with each side's entry of +sides+ (per_namespace)
    # handed to the block instead of the namespace.
    def expect_same_outcome_on(sides, label, &block)
      expect_same_outcome(label) { |ns| block.call(sides.fetch(ns)) }
    end

    # Call +name+ on both libraries with +args+ and require the same outcome.
    # +expect:+ additionally pins the oracle's value (guards the fixture/spec
    # itself). Returns fiddle_jit's raw result.
    def expect_same(name, *args, expect: NOT_GIVEN)
      f = Differential.ffi.call(name, args)
      if f[0] == :attach_error
        raise "spec bug: the ffi gem cannot attach #{name}: #{f[1].class}: #{f[1].message}"
      end

      j = Differential.jit.call(name, args)
      fn = Differential.ffi.normalize_outcome(f)
      jn = Differential.jit.normalize_outcome(j)
      call = Differential.describe_call(name, args)
      expect(jn).to eq(fn), lambda {
        "#{call}\n  ffi (oracle): #{Differential.describe_outcome(f)}\n" \
          "  fiddle_jit:   #{Differential.describe_outcome(j)}"
      }
      unless expect.equal?(NOT_GIVEN)
        want = [:ok, Differential.ffi.normalize(expect)]
        expect(fn).to eq(want), lambda {
          "spec bug: oracle disagrees with the pinned value\n  #{call}\n" \
            "  ffi (oracle): #{Differential.describe_outcome(f)}\n  pinned:       #{Differential.describe_value(expect)}"
        }
      end
      j[1]
    end

    # Run the block once with FFI and once with FiddleJit (the namespace is
    # yielded) and require the same normalized outcome, e.g.
    #   expect_same_outcome("Pointer.new(nil)") { |ns| ns::Pointer.new(nil) }
    #
    # +ffi_changed:+ (a Differential::FfiChange) names a change the ffi gem
    # made: with an oracle older than it (Debian's 1.15.5 on Ruby 3.1),
    # fiddle_jit must show the newer behaviour and the oracle the old one.
    def expect_same_outcome(label, ffi_changed: nil)
      outcomes = [Differential.ffi, Differential.jit].map do |side|
        [:ok, yield(side.ns)]
      rescue StandardError, ScriptError => e
        [:raise, e]
      end
      f, j = outcomes
      fn = Differential.ffi.normalize_outcome(f)
      jn = Differential.jit.normalize_outcome(j)
      if ffi_changed&.oracle_predates?
        now = ffi_changed.normalized_now
        expect(fn).not_to eq(now), "spec bug: the ffi gem #{FFI::VERSION} already does what #{ffi_changed} says " \
                                   "came later (#{label})"
        expect(jn).to eq(now), lambda {
          "#{label}\n  ffi #{ffi_changed.since}+ (#{ffi_changed.change}): #{now.inspect}\n" \
            "  fiddle_jit:   #{Differential.describe_outcome(j)}"
        }
        return j[1]
      end
      expect(jn).to eq(fn), lambda {
        "#{label}\n  ffi (oracle): #{Differential.describe_outcome(f)}\n" \
          "  fiddle_jit:   #{Differential.describe_outcome(j)}"
      }
      j[1]
    end

    # Both libraries must raise, and the same class.
    def expect_same_raise(name, *args)
      f = Differential.ffi.call(name, args)
      expect(f[0]).to eq(:raise), "spec bug: oracle did not raise for #{Differential.describe_call(name, args)}: " \
                                  "#{Differential.describe_outcome(f)}"
      expect_same(name, *args)
    end

    def jit_fn(name)
      err = Differential.jit.attach(name)
      raise err if err

      Differential.jit.mod.method(name)
    end

    def ffi_fn(name)
      err = Differential.ffi.attach(name)
      raise err if err

      Differential.ffi.mod.method(name)
    end
  end

  # --- shared value lists --------------------------------------------------------
  NAN_PAYLOAD = [0x7ff8000000000123].pack("Q>").unpack1("G")
  SNAN = [0x7ff0000000000001].pack("Q>").unpack1("G")
  NEG_NAN = [0xfff8000000000000].pack("Q>").unpack1("G")

  INTEGER_ARGS = [
    0, 1, -1, 127, 128, -128, -129, 200, 255, 256, -255, -256,
    32_767, 32_768, -32_768, -32_769, 65_535, 65_536,
    2**31 - 1, 2**31, -2**31, -2**31 - 1, 2**32 - 1, 2**32, -2**32,
    2**62 - 1, 2**62, -2**62, -2**62 - 1, # Fixnum / Bignum boundary
    2**63 - 1, 2**63, -2**63, -2**63 - 1, 2**64 - 1, 2**64, -2**64,
    2**100, -2**100
  ].freeze

  NON_INTEGER_ARGS = [
    1.5, -1.5, 0.0, -0.0, 255.9, 1e20, -1e20, 2.0**63, 2.0**64, -2.0**63,
    Float::NAN, Float::INFINITY, -Float::INFINITY, Rational(7, 2),
    nil, "1", :a, Plain.new, true, false, [], [1],
    ToInt.new(5), ToInt.new(300), ToInt.new(2**64), ToInt.new(2.5), ToF.new(2.5), ToStr.new("1"),
    RaisingConv.new, WrongConv.new
  ].freeze

  FLOAT_ARGS = [
    0.0, -0.0, 1.0, -2.25, 1.5, 0.1, 1.0 / 3, 123_456.789,
    Float::MAX, -Float::MAX, Float::MIN, Float::MIN / 2, 5e-324,
    1e300, -1e300, 1e-300, 1e38, 3.4028234663852886e38, 3.5e38, -3.5e38,
    1.401298464324817e-45, 1e-46, 1.1754943508222875e-38,
    1.0000000596046448, # rounds differently as float
    Float::NAN, NEG_NAN, NAN_PAYLOAD, SNAN, Float::INFINITY, -Float::INFINITY
  ].freeze

  NON_FLOAT_ARGS = [
    0, 1, -1, 2**53 + 1, 2**62 - 1, 2**62, 2**63, 2**64, -2**64, 2**100, -2**100, 2**1100,
    Rational(1, 3), nil, "1.0", :a, true, false, Plain.new, [],
    ToF.new(2.5), ToF.new(7), ToInt.new(3), ToStr.new("1.0"), RaisingConv.new, WrongConv.new
  ].freeze
end
