# frozen_string_literal: true

require_relative "spec_helper"
require "timeout"

# Callbacks (C calling Ruby through JIT-emitted reverse trampolines) and
# function pointers, differential against the ffi gem where the two are
# meant to agree: values, and exception classes.
RSpec.describe "callbacks" do
  def self.jit_only!
    before { skip "fiddle_jit-only behaviour" if FIDDLE_JIT_ORACLE_MODE }
  end

  let(:jit) { CallbackLibs.define(FiddleJit, CALLBACK_FIXTURE_LIB) }
  let(:ffi) { CallbackLibs.define(FFI, CALLBACK_FIXTURE_LIB) }

  # Runs the block with each side's library; both must return the same value
  # or raise the same exception class.
  def same(&blk)
    outcome = lambda do |lib, ns|
      v = blk.call(lib, ns)
      v = [:pointer, v.address] if v.respond_to?(:address) && !v.is_a?(Integer)
      v = [:float, [v].pack("G")] if v.is_a?(Float)
      [:ok, v]
    rescue StandardError => e
      [:raise, e.class.name.sub(/\A(FFI|FiddleJit)::/, "")]
    end
    theirs = outcome.call(ffi, FFI)
    ours = outcome.call(jit, FiddleJit)
    expect(ours).to eq(theirs)
    ours
  end

  describe "every scalar type as argument and return value" do
    values = {
      int8: [-128, 127, 0], uint8: [0, 255], int16: [-32_768, 32_767], uint16: [65_535],
      int32: [-2**31, 2**31 - 1], uint32: [2**32 - 1, 0], int64: [-2**63, 2**63 - 1, 2**62, -2**62 - 1],
      uint64: [2**64 - 1, 2**63], float: [1.5, -0.0, Float::INFINITY], double: [0.1, -1e300, Float::NAN, 5e-324],
      bool: [true, false]
    }
    values.each do |type, vals|
      vals.each do |v|
        it "#{type}: #{v.inspect} goes to Ruby and back" do
          seen = nil
          r = same { |lib| lib.public_send(:"cb_call_#{type}", ->(x) { seen = x }, v) }
          expect(seen).to eql(v) unless v.is_a?(Float) && v.nan?
          # The callback returned its argument: C hands it back unchanged
          # (floats compared bit for bit, so -0.0 and NaN count).
          expect(r).to eq([:ok, v.is_a?(Float) ? [:float, [v].pack("G")] : v])
        end
      end
    end

    it "pointer: the callback gets a Pointer and may return one, nil or another object" do
      same { |lib, ns| lib.cb_call_pointer(->(p) { p }, ns::Pointer.new(0x1234)) }
      same { |lib, ns| lib.cb_call_pointer(->(p) { p.address }, ns::Pointer.new(0x10)) }
      same { |lib, ns| lib.cb_call_pointer(->(p) { p.class.name.sub(/\A\w+::/, "") }, ns::Pointer.new(0x10)) }
      same { |lib| lib.cb_call_pointer(->(p) { nil }, nil) }
      same { |lib| lib.cb_call_pointer(->(p) { p.null? }, nil) }
    end

    it "narrow return values are truncated like the ffi gem's" do
      same { |lib| lib.cb_call_int8(->(_) { 300 }, 1) }
      same { |lib| lib.cb_call_uint8(->(_) { -1 }, 1) }
      same { |lib| lib.cb_call_uint16(->(_) { 70_000 }, 1) }
      same { |lib| lib.cb_call_int32(->(_) { 2.9 }, 1) }
      same { |lib| lib.cb_call_double(->(_) { 3 }, 1.0) }
      same { |lib| lib.cb_call_bool(->(_) { 1 }, true) }
      same { |lib| lib.cb_call_int64(->(_) { nil }, 1) }
    end

    it ":string arguments arrive as ASCII-8BIT Strings, NULL as nil" do
      got = []
      same { |lib| lib.cb_call_string(->(s) { got << [s, s&.encoding]; s ? s.bytesize : -1 }, "héllo") }
      same { |lib| lib.cb_call_string(->(s) { s.nil? ? 7 : 0 }, nil) }
      expect(got.uniq).to eq([["h\xC3\xA9llo".b, Encoding::ASCII_8BIT]])
    end

    it ":string is rejected as a callback return type, like the ffi gem" do
      expect { Module.new { extend FiddleJit::Library; callback :bad, [], :string } }.to raise_error(TypeError)
      expect { Module.new { extend FFI::Library; callback :bad, [], :string } }.to raise_error(TypeError)
    end

    it "23 arguments: registers and stack, all types" do
      got = []
      r = same do |lib|
        lib.cb_call_many(lambda do |*a|
          got << a.map { |x| x.respond_to?(:address) ? x.address : x }
          a[0] + a[1] + a[8] + a[17] + a[21] + a[22]
        end)
      end
      expect(r[1]).to eq([:float, [-8 + 200 + 0.5 + 9.25 - 7 + 65_535].pack("G")])
      expect(got[0]).to eq(got[1])
      expect(got[0]).to eq([-8, 200, -1600, 60_000, -32, 4_000_000_000, -6_400_000_000_000, 18_000_000_000_000_000_000,
                            0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5, 9.25, true, 0x1234, "many", -7, 65_535])
    end

    it "void callbacks with no arguments" do
      n = 0
      same { |lib| lib.cb_call_void(-> { n += 1 }, 5) }
      expect(n).to eq(10)
    end
  end

  describe "what a callback parameter accepts" do
    it "a Proc, a lambda, a Method, a block, a Function, nil" do
      same { |lib| lib.cb_call_int32(proc { |x| x * 2 }, 21) }
      same { |lib| lib.cb_call_int32(21) { |x| x + 1 } }
      same { |lib| lib.cb_call_int32(10.method(:+), 5) }
      same { |lib, ns| lib.cb_call_int32(ns::Function.new(:int32, [:int32]) { |x| -x }, 5) }
      same { |lib| lib.cb_get_null }
    end

    it "wrapped functions are also instance methods, and check their arity" do
      same { |lib| Object.new.extend(lib).cb_call_int32(5) { |x| x * 2 } }
      same { |lib| Object.new.extend(lib).cb_get_doubler.call(4) }
      same { |lib| lib.cb_call_int32(1) }
      same { |lib| lib.cb_call_int32(->(x) { x }, 1, 2) }
    end

    it "a Function made from another keeps it alive (the ffi gem's rbParent), and its frozen to_ptr is frozen" do
      same do |_lib, ns|
        outer = ns::Function.new(:int32, [:int32], ns::Function.new(:int32, [:int32]) { |x| x * 3 })
        GC.start
        [outer.call(4), outer.freeze.to_ptr.frozen?]
      end
    end

    it "anything else raises TypeError" do
      same { |lib| lib.cb_call_int32(42, 5) }
      same { |lib| lib.cb_call_int32("str", 5) }
      # (An object whose #respond_to? raises: that exception.)
      same { |lib| lib.cb_call_int32(Class.new { def respond_to?(*) = raise(IOError, "no") }.new, 5) }
    end

    it "the same Proc yields the same C address every time" do
      pr = ->(x) { x }
      jit.cb_store(pr)
      a = FiddleJit::Function.for_callback(jit.find_type(:i2i), pr).address unless FIDDLE_JIT_ORACLE_MODE
      expect(jit.cb_identity_fn(pr).address).to eq(a) if a
      expect(jit.cb_call_stored(9)).to eq(9)
    end

    it "a lambda with the wrong arity raises ArgumentError in the caller" do
      same { |lib| lib.cb_call_int32(->(a, b) { a }, 5) }
    end
  end

  describe "exceptions" do
    it "propagate to the caller of the outer C function with their class" do
      same { |lib| lib.cb_call_int32(->(_) { raise ArgumentError, "no" }, 1) }
      same { |lib| lib.cb_call_double(->(_) { raise IOError }, 1.0) }
      same { |lib| lib.cb_call_void(-> { raise Differential::Boom }, 3) }
    end

    it "the exception object itself is re-raised, with its message and backtrace" do
      err = Class.new(StandardError)
      e = (jit.cb_call_int32(->(_) { raise err, "from Ruby" }, 1) rescue $!)
      expect(e).to be_a(err)
      expect(e.message).to eq("from Ruby")
      expect(e.backtrace.join).to include("callback_spec.rb")
    end

    it "a wrong return type raises TypeError/RangeError in the caller, not a crash" do
      same { |lib| lib.cb_call_int32(->(_) { "str" }, 1) }
      same { |lib| lib.cb_call_int32(->(_) { 2**40 }, 1) }
      same { |lib| lib.cb_call_double(->(_) { :sym }, 1.0) }
      same { |lib| lib.cb_call_uint64(->(_) { -1 }, 1) }
    end

    it "qsort with a raising comparator: the exception propagates and the buffer is intact" do
      same do |lib|
        buf = lib.cb_ints_new(100, 3)
        begin
          lib.qsort(buf, 100, 4) { |_, _| raise KeyError }
        ensure
          lib.cb_ints_free(buf)
        end
      end
    end

    it "Function#call re-raises too" do
      same { |_, ns| ns::Function.new(:int, [:int]) { |_| raise IndexError }.call(1) }
    end

    context "fiddle_jit-specific" do
      jit_only!

      it "callback_frame: true re-raises for functions without callback parameters" do
        lib = Module.new do
          extend FiddleJit::Library
          ffi_lib CALLBACK_FIXTURE_LIB
          callback :i2i, [:int], :int
          attach_function :cb_store, [:i2i], :void
          attach_function :cb_call_stored, [:int], :int, callback_frame: true
        end
        pr = ->(_) { raise EncodingError }
        lib.cb_store(pr)
        expect { lib.cb_call_stored(1) }.to raise_error(EncodingError)
      end

      # (the ffi gem clears the pending exception when a later callback of the
      # same call succeeds, so this loop would not raise there)
      it "after a raise C gets zeros and later calls of the same outer call do not run Ruby" do
        calls = 0
        expect { jit.cb_loop_int(->(i) { calls += 1; raise "stop" if i == 3; 1 }, 100) }.to raise_error(RuntimeError, "stop")
        expect(calls).to eq(4)
        expect(jit.cb_loop_int(->(_) { 1 }, 10)).to eq(10)
      end

      it "an exception waiting for C to return is re-raised under GC.stress, and the thread lets it go once raised" do
        held = -> { Thread.current[:__fiddle_jit_callback_exceptions] || [] }
        err = Class.new(StandardError)
        # (GC.stress from the raise until the exception is back in Ruby.)
        e = begin
          jit.cb_loop_int(->(i) { i == 2 ? (GC.stress = true; raise err, "at #{i}") : 1 }, 4)
        rescue err => raised
          raised
        ensure
          GC.stress = false
        end
        expect([e.class, e.message]).to eq([err, "at 2"])
        expect(held.call).to be_empty
        # Nested: the inner call's exception is its own; the outer call
        # still returns.
        inner = ->(_) { (jit.cb_call_int32(->(_) { raise IOError, "inner" }, 1) rescue $!).message == "inner" ? 7 : 0 }
        expect(jit.cb_loop_int(inner, 3)).to eq(21)
        expect(held.call).to be_empty
      end

      # (throw, break, Thread#kill and Timeout: spec/callback_jump_spec.rb)
    end
  end

  describe "qsort (libc) with a Ruby comparator" do
    it "sorts 1000 ints like the ffi gem" do
      ours = CallbackLibs.qsort_check(jit, 1000)
      theirs = CallbackLibs.qsort_check(ffi, 1000)
      expect(ours).to eq(theirs)
      expect(ours[0]).to eq(1)
    end

    it "works with a Function passed to a plain :pointer parameter" do
      buf = jit.cb_ints_new(500, 11)
      cmp = FiddleJit::Function.new(:int, %i[pointer pointer]) { |a, b| jit.cb_read_int(a) <=> jit.cb_read_int(b) }
      jit.qsort_raw(buf, 500, 4, cmp)
      expect(jit.cb_ints_sorted(buf, 500)).to eq(1)
      jit.cb_ints_free(buf)
    end
  end

  describe "function pointers" do
    it "a C function pointer returned as a callback type is a callable Function" do
      same { |lib| lib.cb_get_doubler.call(21) }
      same { |lib, ns| lib.cb_get_doubler.is_a?(ns::Function) }
      same { |lib, ns| lib.cb_get_doubler.is_a?(ns::Pointer) }
    end

    it "Function.new(ret, params, pointer): call and attach" do
      same { |lib, ns| ns::Function.new(:int, [:int], lib.cb_get_doubler).call(8) }
      same do |lib, ns|
        m = Module.new
        ns::Function.new(:int, [:int], ns::Pointer.new(lib.cb_get_doubler.address)).attach(m, "dbl")
        [m.dbl(4), Object.new.extend(m).dbl(5)]
      end
    end

    it "a Ruby Function round-trips through C and is called back" do
      same do |lib, ns|
        f = ns::Function.new(:int, [:int]) { |x| x + 100 }
        g = lib.cb_identity_fn(f)
        [g.address == f.address, g.call(1), f.call(2)]
      end
    end

    it "a callback returning a callback (Proc or Function) and one receiving a C function" do
      same { |lib| lib.cb_call_made(-> { ->(x) { x * 7 } }, 3) }
      same { |lib| lib.cb_call_made(-> { lib.cb_get_doubler }, 3) }
      same { |lib, ns| lib.cb_pass_doubler(->(f, x) { [f.class == ns::Function, f.call(x)] ? f.call(x) + 1 : 0 }, 5) }
    end

    it "Function.new rejects what is neither callable nor a pointer" do
      same { |_, ns| ns::Function.new(:int, [:int], 42) }
    end

    it "Function#to_ptr / address, usable as a :pointer argument" do
      f = FiddleJit::Function.new(:int32, [:int32]) { |x| x * 3 }
      expect(f.to_ptr.address).to eq(f.address)
      expect(f.address).not_to eq(0)
      expect(jit.cb_call_int32_raw(f, 5)).to eq(15)
      expect(jit.cb_call_int32_raw(f.to_ptr, 6)).to eq(18)
    end
  end

  describe "lifetime" do
    jit_only!

    it "Functions are recycled by GC; the trampoline is emitted once per signature" do
      GC.start
      before = FiddleJit::Native.callback_stats
      200.times { |i| FiddleJit::Function.new(:int32, [:int32]) { |x| x + i } }
      GC.start
      GC.start
      live, quarantined, tramps = FiddleJit::Native.callback_stats
      expect(live).to be < before[0] + 200
      expect(quarantined).to be > before[1]
      expect(tramps).to be <= before[2] + 1
      # Once a signature's quarantine is full, each new callback reuses the
      # oldest freed slot: creating and freeing in a loop adds no code.
      (FiddleJit::Native::CALLBACK_QUARANTINE + 1).times { |i| FiddleJit::Function.new(:int32, [:int32]) { |x| x + i }.free }
      code_before = FiddleJit::Native.arena_stats[0]
      500.times { |i| FiddleJit::Function.new(:int32, [:int32]) { |x| x + i }.free }
      expect(FiddleJit::Native.arena_stats[0] - code_before).to eq(0)
    end

    it "C calling a freed callback gets zeros and a warning, not the next callback created" do
      f = FiddleJit::Function.new(:int32, [:int32]) { |x| x + 1 }
      jit.cb_store(f)
      expect(jit.cb_call_stored(1)).to eq(2)
      f.free
      g = FiddleJit::Function.new(:int32, [:int32]) { |x| x * 100 }
      expect(g.address).not_to eq(f.address)
      expect { expect(jit.cb_call_stored(3)).to eq(0) }.to output(/Function was freed/).to_stderr_from_any_process
      expect(g.call(3)).to eq(300)
    end

    it "a freed callback's address never serves a callback of another signature" do
      f = FiddleJit::Function.new(:int32, [:int32]) { |x| x }
      stale = f.address
      f.free
      others = Array.new(FiddleJit::Native::CALLBACK_QUARANTINE * 2) { FiddleJit::Function.new(:double, [:double]) { |x| x } }
      expect(others.map(&:address)).not_to include(stale)
      others.each(&:free)
    end

    it "a freed callback Function is not reused for its Proc" do
      pr = ->(x) { x + 1 }
      expect(jit.cb_call_int32(pr, 1)).to eq(2)
      FiddleJit::Function.for_callback(jit.find_type(:i2i), pr).free
      expect(jit.cb_call_int32(pr, 2)).to eq(3)
      expect(FiddleJit::Function.for_callback(jit.find_type(:i2i), pr).freed?).to be(false)
    end

    it "free releases the trampoline; calling a freed Function raises, C pointers must not be kept" do
      f = FiddleJit::Function.new(:int32, [:int32]) { |x| x }
      f.free
      expect(f.freed?).to be(true)
      expect { f.call(1) }.to raise_error(RuntimeError)
      expect { FiddleJit::Function.new(:int, [:int], FiddleJit::Pointer.new(8)).free }.to raise_error(RuntimeError)
    end
  end

  describe "volume" do
    it "a callback called 1e6 times from C" do
      expect(jit.cb_loop_int(->(i) { i & 1 }, 1_000_000)).to eq(500_000)
      n = 0
      jit.cb_loop_void(-> { n += 1 }, 1_000_000)
      expect(n).to eq(1_000_000)
    end
  end

  describe "threads" do
    it "from a C-created pthread: run by the dispatcher thread, the C thread waits for the result" do
      seen = []
      pr = ->(x) { seen << Thread.current; x * 2 }
      [jit, ffi].each do |lib|
        seen.clear
        expect(lib.cb_thread_start(pr, 10, 5)).to eq(0)
        expect(lib.cb_thread_join).to eq((10..14).sum * 2)
        expect(seen.size).to eq(5)
        expect(seen).not_to include(Thread.current)
      end
    end

    it "from Ruby threads concurrently" do
      threads = 4.times.map { |k| Thread.new { 20.times.map { jit.cb_call_int32(->(x) { Thread.pass; x + k }, 1) }.sum } }
      expect(threads.map(&:value)).to eq(4.times.map { |k| 20 * (1 + k) })
    end

    context "fiddle_jit-specific" do
      jit_only!

      it "from a Ruby thread that released the GVL (rb_thread_call_without_gvl): re-acquires it" do
        lib = Module.new do
          extend FiddleJit::Library
          ffi_lib CALLBACK_FIXTURE_LIB
          callback :i2i, [:int], :int
          attach_function :cb_call_without_gvl, %i[i2i int], :int
        end
        th = nil
        expect(lib.cb_call_without_gvl(->(x) { th = Thread.current; GC.start; x * 5 }, 9)).to eq(45)
        expect(th).to eq(Thread.current)
        expect { lib.cb_call_without_gvl(->(_) { raise NameError }, 1) }.to raise_error(NameError)
      end

      it "an exception in a pthread callback is reported and C gets 0" do
        expect do
          jit.cb_thread_start(->(x) { raise "in pthread" if x == 1; x }, 0, 3)
          expect(jit.cb_thread_join).to eq(0 + 0 + 2)
        end.to output(/in pthread/).to_stderr
      end
    end
  end

  describe "GC (child process)" do
    def run_child(scenario, timeout: 120)
      child = File.expand_path("fixtures/callback_child.rb", __dir__)
      cmd = [RbConfig.ruby, child, scenario, CALLBACK_FIXTURE_LIB]
      cmd << "oracle" if FIDDLE_JIT_ORACLE_MODE
      out = +""
      IO.popen(cmd, err: %i[child out]) do |io|
        Timeout.timeout(timeout * SLOWDOWN) { out = io.read }
      rescue Timeout::Error
        Process.kill(:KILL, io.pid)
        out << "\n[timed out after #{timeout * SLOWDOWN}s]"
      end
      [$?, out]
    end

    {
      "stress" => "callbacks with boxed arguments (Bignum, Float, String, Pointer) under GC.stress",
      "stress_qsort" => "qsort with a block comparator under GC.stress",
      "compact" => "a callback stored by C, GC.compact (also inside callbacks), then called again",
      "churn" => "thousands of short-lived Functions with GC: slots recycled, stored ones still work",
      "pthread_stress" => "callbacks from a C-created pthread and the main thread under GC.stress",
      "dispatcher_start" => "a thread creating its first callback while another starts the dispatcher thread"
    }.each do |scenario, what|
      it "#{scenario}: #{what}" do
        status, out = run_child(scenario)
        detail = status.signaled? ? "killed by signal #{status.termsig}" : "exit status #{status.exitstatus}"
        expect(status.success? && out.start_with?("OK")).to be(true), "#{scenario}: #{detail}\n#{out[0, 4000]}"
      end
    end
  end
end
