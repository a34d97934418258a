# frozen_string_literal: true

require_relative "spec_helper"

# `blocking: true` releases the GVL around the C call, so other Ruby threads
# run while it sleeps. The measure is how far another thread gets while the
# call is in progress — thousands of iterations when the GVL is released,
# next to none when it is held — not wall-clock time.
RSpec.describe "blocking: true" do
  def progress_during(mod)
    counter = 0
    running = true
    started = Queue.new
    worker = Thread.new do
      started << true
      counter += 1 while running
    end
    started.pop
    Thread.pass
    before = counter
    expect(mod.usleep(300_000)).to eq(0)
    during = counter - before
    running = false
    worker.join
    during
  end

  let(:blocking) do
    Module.new do
      extend FiddleJit::Library
      ffi_lib FiddleJit::Library::LIBC
      attach_function :usleep, [:uint], :int, blocking: true
    end
  end

  let(:holding) do
    Module.new do
      extend FiddleJit::Library
      ffi_lib FiddleJit::Library::LIBC
      attach_function :usleep, [:uint], :int
    end
  end

  it "lets other threads run during the call, and not without it" do
    released = progress_during(blocking)
    held = progress_during(holding)
    expect(released).to be > 1000
    expect(held).to be < released / 10
  end

  it "honours @blocking = true set just before attach_function, once (like the ffi gem)" do
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
    t = Thread.new { blocking.usleep(30_000_000) }
    t.report_on_exception = false
    sleep 0.05 until t.status == "sleep" || !t.alive?
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    t.raise(RuntimeError, "stop")
    expect { t.join }.to raise_error(RuntimeError, "stop")
    # usleep returns early with EINTR when RUBY_UBF_IO signals the thread.
    expect(Process.clock_gettime(Process::CLOCK_MONOTONIC) - started).to be < 20
  end
end
