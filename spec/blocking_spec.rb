# frozen_string_literal: true

require_relative "spec_helper"

# `blocking: true` releases the GVL around the C call, so other Ruby threads
# run while it is in progress. Observed from inside the C call, not timed: a
# C function waits until a Ruby thread changes a counter (it can only if the
# GVL is released), and another reports how much the counter changed while
# it slept (exactly zero when the GVL is held).
RSpec.describe "blocking: true" do
  let(:fixture) { FIXTURE_LIBS.fetch("blocking_fixture") }

  def watcher(blocking)
    lib = fixture
    Module.new do
      extend FiddleJit::Library
      ffi_lib lib
      attach_function :changes_during, %i[pointer uint], :int, blocking: blocking
      attach_function :wait_for_change, %i[pointer int], :int, blocking: blocking
    end
  end

  # Runs the block while another Ruby thread keeps incrementing the int at
  # the counter Pointer (it has incremented it at least once before).
  def with_counting_thread
    counter = FiddleJit::MemoryPointer.new(:int)
    running = true
    started = Queue.new
    t = Thread.new do
      counter.write_int(counter.read_int + 1)
      started << true
      counter.write_int(counter.read_int + 1) while running
    end
    started.pop
    yield counter
  ensure
    running = false
    t&.join
  end

  it "lets other threads run during the call" do
    with_counting_thread do |counter|
      expect(watcher(true).wait_for_change(counter, 60_000 * SLOWDOWN)).to eq(1)
    end
  end

  it "without it, no other thread runs during the call" do
    with_counting_thread do |counter|
      expect(watcher(false).changes_during(counter, 20_000)).to eq(0)
    end
  end

  it "honours @blocking = true set just before attach_function, once (like the ffi gem)" do
    skip "inspects fiddle_jit's stubs" if FIDDLE_JIT_ORACLE_MODE
    mod = Module.new do
      extend FiddleJit::Library
      ffi_lib FiddleJit::Library::LIBC
      @blocking = true
      attach_function :usleep, [:uint], :int
      attach_function :usleep_held, :usleep, [:uint], :int
    end
    expect(FiddleJit.disassemble(mod, :usleep)).to include("rb_thread_call_without_gvl")
    expect(FiddleJit.disassemble(mod, :usleep_held)).not_to include("rb_thread_call_without_gvl")
    expect(mod.instance_variable_get(:@blocking)).to be(false)
  end

  it "converts arguments, results and errno like a normal call" do
    mod = Module.new do
      extend FiddleJit::Library
      ffi_lib FiddleJit::Library::LIBC
      attach_function :strlen, [:string], :size_t, blocking: true
      attach_function :strtod, %i[string pointer], :double, blocking: true
      attach_function :close, [:int], :int, blocking: true
      attach_function :snprintf, %i[pointer size_t string varargs], :int, blocking: true
    end
    expect(mod.strlen("hello" * 10)).to eq(50)
    expect(mod.strtod("2.5", nil)).to eq(2.5)
    expect { mod.strlen(:sym) }.to raise_error(TypeError)
    expect(mod.close(-1)).to eq(-1)
    expect(FiddleJit.errno).to eq(Errno::EBADF::Errno)
    buf = FFI::MemoryPointer.new(256)
    mod.snprintf(FiddleJit::Pointer.new(buf.address), 256, "%d %g " * 5, *([:int, 7, :double, 0.5] * 5))
    expect(buf.read_string).to eq("7 0.5 " * 5)
  end

  it "is interruptible by Thread#raise like blocking IO" do
    waiting = Module.new do
      extend FiddleJit::Library
      ffi_lib FiddleJit::Library::LIBC
      attach_function :poll, %i[pointer ulong int], :int, blocking: true
    end
    # poll with no descriptors and no timeout: only a signal ends it (EINTR;
    # poll is never restarted), here the one Ruby's unblocking function sends.
    t = Thread.new { waiting.poll(nil, 0, -1) }
    t.report_on_exception = false
    Thread.pass until t.status == "sleep" # inside the C call, GVL released
    t.raise(RuntimeError, "stop")
    expect { t.join }.to raise_error(RuntimeError, "stop")
  end
end
