# frozen_string_literal: true

require_relative "spec_helper"
require "timeout"

# A callback that jumps out of its Ruby code — throw, break, return,
# Thread#kill, Timeout — or raises where no callback frame waits for the
# exception: the ffi gem lets the longjmp unwind the C frames; fiddle_jit
# never longjmps across C code, and continues the jump once the C function
# has returned. Either way Ruby sees what it would without the C frame.
# Each example runs the same code on both sides and compares (no timing:
# threads synchronise through Queues, and a Timeout's block never finishes
# by itself).
RSpec.describe "jumps out of callbacks" do
  let(:jit) { CallbackLibs.define(FiddleJit, CALLBACK_FIXTURE_LIB) }
  let(:ffi) { CallbackLibs.define(FFI, CALLBACK_FIXTURE_LIB) }
  # cb_call_without_gvl releases the GVL (as C extensions do) and calls its
  # callback from there.
  def without_gvl(ns)
    Module.new do
      extend ns::Library
      ffi_lib CALLBACK_FIXTURE_LIB
      callback :i2i, [:int], :int
      attach_function :cb_call_without_gvl, %i[i2i int], :int
    end
  end

  # The block's outcome with each library: [:ok, value] or [:raise, class name].
  def both(&blk)
    [[ffi, FFI], [jit, FiddleJit]].map do |lib, ns|
      [:ok, blk.call(lib, ns)]
    rescue Exception => e # rubocop:disable Lint/RescueException
      [:raise, e.class.name]
    end
  end

  def expect_same(expected = nil, &blk)
    theirs, ours = both(&blk)
    expect(ours).to eq(theirs)
    expect(ours).to eq(expected) if expected
    ours
  end

  describe "throw" do
    it "reaches its catch from a callback parameter, skipping the rest of the call" do
      expect_same([:ok, [42, []]]) do |lib|
        after = []
        r = catch(:out) do
          lib.cb_call_int32(->(_) { throw :out, 42 }, 1)
          after << :ran
        end
        [r, after]
      end
    end

    it "reaches its catch without a callback frame (Function to :pointer, a stored callback)" do
      expect_same([:ok, 9]) do |lib, ns|
        f = ns::Function.new(:int, [:int]) { |_| throw :out, 9 }
        catch(:out) { lib.cb_call_int32_raw(f, 1) and :after }
      end
      expect_same([:ok, "stored"]) do |lib|
        lib.cb_store(->(_) { throw :stored, "stored" })
        catch(:stored) { lib.cb_call_stored(1) and :after }
      end
    end

    it "through Function#call and a callback called without the GVL" do
      expect_same([:ok, 8]) { |_, ns| catch(:fc) { ns::Function.new(:int, [:int]) { |_| throw :fc, 8 }.call(1) } }
      expect_same([:ok, 3]) { |_, ns| catch(:w) { without_gvl(ns).cb_call_without_gvl(->(_) { throw :w, 3 }, 1) and :after } }
    end

    it "later callbacks of the same C call do not run once one has thrown" do
      expect_same([:ok, [:thrown, 4]]) do |lib|
        calls = 0
        r = catch(:o) { lib.cb_loop_int(->(i) { calls += 1; throw :o, :thrown if i == 3; 1 }, 100) }
        [r, calls]
      end
      expect_same([:ok, 10]) { |lib| lib.cb_loop_int(->(_) { 1 }, 10) } # and the next call runs normally
    end

    it "from a call nested in a callback: unwinds that callback too" do
      expect_same([:ok, [:thrown, []]]) do |lib, ns|
        log = []
        r = catch(:o) do
          lib.cb_call_int32(lambda do |_|
            f = ns::Function.new(:int, [:int]) { |_| throw :o, :thrown }
            lib.cb_call_int32_raw(f, 1)
            log << :outer_callback_went_on
            5
          end, 1)
          log << :after
        end
        [r, log]
      end
    end

    it "inside a Fiber, with and without a callback frame" do
      expect_same([:ok, [:a, :b]]) do |lib|
        Fiber.new do
          lib.cb_store(->(_) { throw :b, :b })
          [catch(:a) { lib.cb_call_int32(->(_) { throw :a, :a }, 1) }, catch(:b) { lib.cb_call_stored(1) }]
        end.resume
      end
    end

    it "under GC.stress: the thrown value and the throw itself stay alive" do
      # (fiddle_jit only: the ffi gem 1.15.5 raises NoMethodError from its
      # own code under GC.stress here)
      skip "the ffi gem fails this under GC.stress" if FIDDLE_JIT_ORACLE_MODE
      lib = jit
      GC.stress = true
      lib.cb_store(->(_) { throw :g2, "str" * 2 })
      got = [catch(:g) { lib.cb_call_int32(->(_) { throw :g, [1, 2, 3] }, 1) }, catch(:g2) { lib.cb_call_stored(1) }]
      GC.stress = false
      expect(got).to eq([[1, 2, 3], "strstr"])
    ensure
      GC.stress = false
    end
  end

  describe "break, next and return" do
    it "break from a block callback returns from the call with the break value" do
      expect_same([:ok, 7]) { |lib| lib.cb_call_int32(1) { |_| break 7 } }
    end

    it "return from a proc returns from the method that made it" do
      expect_same([:ok, :returned]) do |lib|
        m = Object.new
        m.define_singleton_method(:run) { lib.cb_call_int32(proc { |_| return :returned }, 1) and :not_returned }
        m.run
      end
    end

    it "next is the callback's result" do
      expect_same([:ok, 6]) { |lib| lib.cb_call_int32(3) { |x| next x * 2 } }
    end
  end

  describe "Thread#kill" do
    # Kills a thread while its callback sleeps; returns [status, code after
    # the C call ran?, ensure ran?].
    def kill_in_callback
      entered = Queue.new
      log = []
      t = Thread.new do
        yield(-> { entered << true; sleep })
        log << :after
      ensure
        log << :ensure
      end
      entered.pop
      t.kill
      t.join
      [t.status, log]
    end

    it "the thread dies (its ensure clauses run), with and without a callback frame" do
      expect_same([:ok, [false, [:ensure]]]) { |lib| kill_in_callback { |cb| lib.cb_call_int32(->(_) { cb.call }, 1) } }
      expect_same([:ok, [false, [:ensure]]]) do |lib|
        kill_in_callback do |cb|
          lib.cb_store(->(_) { cb.call })
          lib.cb_call_stored(1)
        end
      end
    end

    it "the thread dies when its callback was called without the GVL" do
      expect_same([:ok, [false, [:ensure]]]) do |_, ns|
        lib = without_gvl(ns)
        kill_in_callback { |cb| lib.cb_call_without_gvl(->(_) { cb.call }, 1) }
      end
    end
  end

  describe "Timeout" do
    it "raises Timeout::Error around a C function whose callback never returns" do
      expect_same([:raise, "Timeout::Error"]) { |lib| Timeout.timeout(0.05) { lib.cb_call_int32(->(_) { sleep }, 1) } }
      expect_same([:raise, "Timeout::Error"]) do |lib|
        lib.cb_store(->(_) { sleep })
        Timeout.timeout(0.05) { lib.cb_call_stored(1) }
      end
      expect_same([:raise, "Timeout::Error"]) do |_, ns|
        lib = without_gvl(ns)
        Timeout.timeout(0.05) { lib.cb_call_without_gvl(->(_) { sleep }, 1) }
      end
    end
  end

  describe "exceptions without a callback frame" do
    it "are raised once the C function returns (a Function passed as :pointer, a stored callback)" do
      expect_same([:raise, "IOError"]) do |lib, ns|
        lib.cb_call_int32_raw(ns::Function.new(:int, [:int]) { |_| raise IOError }, 1)
      end
      expect_same([:raise, "KeyError"]) do |lib|
        lib.cb_store(->(_) { raise KeyError })
        lib.cb_call_stored(1)
      end
    end

    it "from a call nested in a callback: that callback can rescue it" do
      expect_same([:ok, [5, [:rescued]]]) do |lib, ns|
        log = []
        r = lib.cb_call_int32(lambda do |_|
          lib.cb_call_int32_raw(ns::Function.new(:int, [:int]) { |_| raise IOError }, 1)
          log << :not_raised
          0
        rescue IOError
          log << :rescued
          5
        end, 1)
        [r, log]
      end
    end

    it "the exception object itself, with its backtrace" do
      err = Class.new(StandardError)
      raised = jit.cb_call_int32_raw(FiddleJit::Function.new(:int, [:int]) { |_| raise err, "mine" }, 1) rescue $!
      expect(raised).to be_a(err)
      expect(raised.message).to eq("mine")
      expect(raised.backtrace.join).to include("callback_jump_spec.rb")
    end
  end
end
