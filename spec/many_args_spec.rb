# frozen_string_literal: true

require_relative "spec_helper"

RSpec.describe "many arguments, stack spills and ABI hygiene" do
  # Reference implementations of the fixture's order-sensitive functions.
  hash = lambda do |args|
    args.reduce(7) { |h, v| (h * 31 + v) & (2**64 - 1) }.then { |h| h >= 2**63 ? h - 2**64 : h }
  end
  weighted = ->(args) { args.each_with_index.sum { |v, i| v.to_f * (i + 1) } }

  { sum6_i64: 6, sum7_i64: 7, sum8_i64: 8, sum20_i64: 20 }.each do |name, n|
    describe "#{name} (#{n} x int64)" do
      it "passes every argument in order" do
        args = (1..n).to_a
        expect_same(name, *args, expect: hash.call(args))
        expect(jit_fn(name).call(*args)).to eq(hash.call(args))
      end

      it "passes reversed / negative / 64-bit arguments in order" do
        [(1..n).to_a.reverse, (1..n).map { |i| -i * 1_000_003 },
         (1..n).map { |i| i.odd? ? 2**63 - i : -2**63 + i }].each do |args|
          expect_same(name, *args, expect: hash.call(args))
        end
      end

      it "raises ArgumentError for wrong arity (like the ffi gem)" do
        expect_same_raise(name)
        expect_same_raise(name, *Array.new(n - 1, 1))
        expect_same_raise(name, *Array.new(n + 1, 1))
        expect { jit_fn(name).call(*Array.new(n - 1, 1)) }.to raise_error(ArgumentError)
        expect { jit_fn(name).call(*Array.new(n + 1, 1)) }.to raise_error(ArgumentError)
      end

      it "raises for a bad argument in the last (possibly stack) position" do
        expect_same_raise(name, *Array.new(n - 1, 1), nil)
        expect_same_raise(name, *Array.new(n - 1, 1), 2**64)
        expect_same_raise(name, *Array.new(n - 1, 1), "1")
      end

      it "the first bad argument decides the exception (left-to-right conversion)" do
        expect_same_raise(name, 2**64, nil, *Array.new(n - 2, 1))
        expect_same_raise(name, nil, 2**64, *Array.new(n - 2, 1))
      end

      it "calls to_int on the arguments left to right, once each" do
        log = []
        mk = lambda do |i|
          o = Object.new
          o.define_singleton_method(:to_int) { log << i; i }
          o
        end
        ffi_fn(name).call(*(1..n).map { |i| mk.call(i) })
        ffi_log = log.dup
        log.clear
        expect(jit_fn(name).call(*(1..n).map { |i| mk.call(i) })).to eq(hash.call((1..n).to_a))
        expect(log).to eq(ffi_log)
      end
    end
  end

  {
    mix6: %i[int64 double] * 3,
    mix8: %i[int64 double] * 4,
    mix15: %i[int64 double] * 7 + [:int64],
    sum15_dbl: [:double] * 15,
    dbl12_int8: FixtureSignatures::SIGS[:dbl12_int8][1]
  }.each do |name, types|
    describe "#{name} (#{types.size} args: #{types.tally.map { |t, c| "#{c} #{t}" }.join(", ")})" do
      it "passes every argument in order" do
        args = types.each_with_index.map { |t, i| t == :double ? i + 1.5 : i + 1 }
        expect_same(name, *args, expect: weighted.call(args))
      end

      it "passes reversed / negative arguments in order" do
        args = types.each_with_index.map { |t, i| t == :double ? -(types.size - i) - 0.25 : types.size - i }
        expect_same(name, *args, expect: weighted.call(args))
        args = types.each_with_index.map { |t, i| t == :double ? (i + 1) * 0.5 : -(i + 1) * 1000 }
        expect_same(name, *args, expect: weighted.call(args))
      end

      it "accepts Integers for double params and Floats for int params like the ffi gem" do
        args = types.each_with_index.map { |t, i| t == :double ? i + 1 : i + 1.75 }
        expect_same(name, *args)
      end

      it "raises ArgumentError for wrong arity" do
        expect_same_raise(name)
        expect_same_raise(name, *Array.new(types.size - 1, 1))
        expect_same_raise(name, *Array.new(types.size + 1, 1))
      end

      it "raises for a bad last argument" do
        expect_same_raise(name, *Array.new(types.size - 1, 1), nil)
        expect_same_raise(name, *Array.new(types.size - 1, 1), :sym)
      end
    end
  end

  describe "mixed20 (int8/uint16/float/double/pointer/string, both register files spill)" do
    ptr = Differential::Ptr
    good = [
      -3, 1.5, 60_000, 2.25, ptr.new(7), -0.5, "abcd", 8.0, 127, 0.25,
      1, -1.0, ptr.new(1000), 3.5, "x" * 100, 1e3, -128, 0.75, 65_535, -2.0
    ].freeze

    it "passes all 20 arguments in order (pinned value)" do
      want = [
        -3 * 1, 1.5 * 2, 60_000 * 3, 2.25 * 4, 7 * 5, -0.5 * 6, 4 * 7, 8.0 * 8, 127 * 9, 0.25 * 10,
        1 * 11, -1.0 * 12, 1000 * 13, 3.5 * 14, 100 * 15, 1e3 * 16, -128 * 17, 0.75 * 18, 65_535 * 19, -2.0 * 20
      ].sum.to_f
      expect_same(:mixed20, *good, expect: want)
    end

    it "truncates narrow stack-passed args like the ffi gem (int8 200, uint16 70000)" do
      args = good.dup
      args[16] = 200    # int8 on the stack
      args[18] = 70_000 # uint16 on the stack
      args[0] = -129    # int8 in a register
      expect_same(:mixed20, *args)
    end

    it "nil strings and NULL pointers" do
      args = good.dup
      args[4] = nil
      args[6] = nil
      args[12] = nil
      args[14] = nil
      expect_same(:mixed20, *args)
    end

    it "accepts the same arguments under alias types (:char, :ushort)" do
      expect_same(:mixed20_aliases, *good)
    end

    it "raises ArgumentError for 0, 19 and 21 arguments (argv calling form)" do
      expect_same_raise(:mixed20)
      expect_same_raise(:mixed20, *good[0, 19])
      expect_same_raise(:mixed20, *good, 1)
      expect { jit_fn(:mixed20).call(*good[0, 19]) }.to raise_error(ArgumentError)
      expect { jit_fn(:mixed20).call(*good, 1) }.to raise_error(ArgumentError)
    end

    [4, 6, 12, 14, 16, 17, 18, 19].each do |i|
      it "raises like the ffi gem for a bad argument at index #{i} (#{FixtureSignatures::MIXED20_ARGS[i]})" do
        args = good.dup
        args[i] = Differential::Plain.new
        expect_same_raise(:mixed20, *args)
        args[i] = :sym
        expect_same_raise(:mixed20, *args)
      end
    end

    it "works called through send, Method#call, and a block" do
      m = jit_fn(:mixed20)
      want = ffi_fn(:mixed20).call(*good.map { |a| a.is_a?(ptr) ? FFI::Pointer.new(a.address) : a })
      jit_args = good.map { |a| a.is_a?(ptr) ? FiddleJit::Pointer.new(a.address) : a }
      expect(m.call(*jit_args)).to eql(want)
      expect(m.receiver.__send__(:mixed20, *jit_args)).to eql(want)
      expect([1, 2].map { m.call(*jit_args) }).to eq([want, want])
    end
  end

  describe "re-entrancy: Ruby code running while arguments are converted" do
    # to_int / to_str hooks run in the middle of a stub's argument
    # conversion. A stub that keeps converted arguments anywhere but its own
    # stack frame (static scratch, thread-local buffers) breaks here.
    def hook(meth, &blk)
      o = Object.new
      o.define_singleton_method(meth, &blk)
      o
    end

    it "to_int calling the same function (nested call through the same stub)" do
      f = jit_fn(:sum6_i64)
      inner = hook(:to_int) { f.call(10, 20, 30, 40, 50, 60) == hash.call([10, 20, 30, 40, 50, 60]) ? 3 : -999 }
      expect(f.call(1, 2, inner, 4, 5, 6)).to eq(hash.call([1, 2, 3, 4, 5, 6]))
    end

    it "to_int calling the 20-argument function (nested argv-form call)" do
      f = jit_fn(:sum20_i64)
      inner = hook(:to_int) { f.call(*(101..120).to_a) == hash.call((101..120).to_a) ? 19 : -999 }
      args = (1..20).to_a
      args[18] = inner
      expect(f.call(*args)).to eq(hash.call((1..20).to_a))
    end

    it "to_str calling mixed20 from inside mixed20's conversion" do
      m = jit_fn(:mixed20)
      plain = [-3, 1.5, 60_000, 2.25, nil, -0.5, "abcd", 8.0, 127, 0.25,
               1, -1.0, nil, 3.5, "x" * 100, 1e3, -128, 0.75, 65_535, -2.0]
      want = m.call(*plain)
      nested = plain.dup
      nested[14] = hook(:to_str) { m.call(*plain) == want ? "x" * 100 : "WRONG" }
      expect(m.call(*nested)).to eql(want)
    end

    it "Fibers switching in the middle of argument conversion" do
      f = jit_fn(:sum8_i64)
      fibers = Array.new(3) do |k|
        Fiber.new do
          y = hook(:to_int) { Fiber.yield(:paused); 7 + k }
          f.call(1 + k, 2, 3, 4, 5, 6, y, 8)
        end
      end
      expect(fibers.map(&:resume)).to all(eq(:paused))
      # resume in reverse order, so the stubs' frames complete out of order
      results = fibers.reverse.map(&:resume).reverse
      expect(results).to eq(Array.new(3) { |k| hash.call([1 + k, 2, 3, 4, 5, 6, 7 + k, 8]) })
    end

    it "throw out of a to_int hook leaves the stub usable" do
      f = jit_fn(:sum7_i64)
      thrower = hook(:to_int) { throw :out, :thrown }
      3.times do
        expect(catch(:out) { f.call(1, 2, 3, 4, 5, 6, thrower) }).to eq(:thrown)
        expect(f.call(1, 2, 3, 4, 5, 6, 7)).to eq(hash.call((1..7).to_a))
      end
    end

    it "an exception raised by a hook propagates unchanged (differential)" do
      args = Array.new(20, 1)
      args[19] = Differential::RaisingConv.new
      expect_same_raise(:sum20_i64, *args)
      m20 = [-3, 1.5, 60_000, 2.25, nil, -0.5, "abcd", 8.0, 127, 0.25,
             1, -1.0, nil, 3.5, "x", 1e3, -128, 0.75, 65_535, Differential::RaisingConv.new]
      expect_same_raise(:mixed20, *m20)
      m20[19] = -2.0
      m20[14] = Differential::RaisingConv.new
      expect_same_raise(:mixed20, *m20)
      expect { jit_fn(:sum20_i64).call(*args) }.to raise_error(Differential::Boom)
    end
  end

  describe "stack alignment at the call (16 bytes, SysV)" do
    {
      stack_aligned0: [],
      stack_aligned7: Array.new(7, 1),
      stack_aligned8: Array.new(8, 1),
      stack_aligned9d: Array.new(9, 1.0),
      stack_aligned1s: Array.new(6, 1) + Array.new(9, 1.0),
      stack_aligned20: Array.new(20, 1)
    }.each do |name, args|
      it "#{name} (#{args.size} args)" do
        expect_same(name, *args, expect: 1)
        expect(jit_fn(name).call(*args)).to eq(1)
        # also from a deeper, differently aligned Ruby frame
        deep = ->(d) { d.zero? ? jit_fn(name).call(*args) : deep.call(d - 1) }
        expect(deep.call(3)).to eq(1)
        expect(deep.call(4)).to eq(1)
      end
    end
  end

  describe "caller-saved registers" do
    it "a callee that trashes every caller-saved GPR and XMM register" do
      f = jit_fn(:clobber_caller_saved)
      expect_same(:clobber_caller_saved, 41, expect: 42)
      results = (0...100).map { |i| f.call(i * 1_000_003) }
      expect(results).to eq((0...100).map { |i| i * 1_000_003 + 1 })
      x = 1.25
      y = f.call(-2**63)
      expect(y).to eq(-2**63 + 1)
      expect(x).to eq(1.25)
    end
  end
end
