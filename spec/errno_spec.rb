# frozen_string_literal: true

require_relative "spec_helper"
require "open3"

RSpec.describe "errno after attached calls" do
  before(:all) do
    @fj = Module.new do
      extend FiddleJit::Library
      ffi_lib FiddleJit::Library::LIBC
      attach_function :close, [:int], :int
      attach_function :chdir, [:string], :int
      attach_function :strtod, %i[string pointer], :double
    end
    @ffi = Module.new do
      extend FFI::Library
      ffi_lib FFI::Library::LIBC
      attach_function :close, [:int], :int
      attach_function :chdir, [:string], :int
    end
  end

  it "reports the errno a failing call left, like FFI.errno" do
    expect(@ffi.close(-1)).to eq(-1)
    ffi_errno = FFI.errno
    expect(@fj.close(-1)).to eq(-1)
    expect(FiddleJit.errno).to eq(ffi_errno).and eq(Errno::EBADF::Errno)
    @ffi.chdir("/nonexistent/fiddle_jit")
    @fj.chdir("/nonexistent/fiddle_jit")
    expect(FiddleJit.errno).to eq(FFI.errno).and eq(Errno::ENOENT::Errno)
  end

  it "keeps the value saved right after the call when Ruby code changes errno later" do
    @fj.close(-1)
    File.exist?("/nonexistent/fiddle_jit/errno") # sets errno to ENOENT inside Ruby
    Dir.glob("/nonexistent/*")
    expect(FiddleJit.errno).to eq(Errno::EBADF::Errno)
  end

  it "saves errno after calls returning doubles too" do
    FiddleJit.errno = 0
    expect(@fj.strtod("1e999", nil)).to eq(Float::INFINITY)
    expect(FiddleJit.errno).to eq(Errno::ERANGE::Errno)
  end

  it "is per thread" do
    @fj.close(-1)
    other = Thread.new do
      @fj.chdir("/nonexistent/fiddle_jit")
      FiddleJit.errno
    end.value
    expect(other).to eq(Errno::ENOENT::Errno)
    expect(FiddleJit.errno).to eq(Errno::EBADF::Errno)
  end

  # glibc runs malloc and stdio unlocked until a process's first thread
  # (__libc_single_threaded, never set back): a thread started to check
  # errno's offset made every C library slower in every process.
  it "starts no thread: a process stays as single-threaded as Ruby left it" do
    read_flag = <<~RUBY
      require "fiddle"
      address = Fiddle::Handle::DEFAULT["__libc_single_threaded"] rescue (puts "none"; exit)
      puts Fiddle::Pointer.new(address)[0]
    RUBY
    use = <<~RUBY
      require "fiddle_jit"
      m = Module.new { extend FiddleJit::Library; ffi_lib FiddleJit::Library::LIBC; attach_function :close, [:int], :int }
      m.close(-1)
      raise "errno" unless FiddleJit.errno == Errno::EBADF::Errno
    RUBY
    lib = File.expand_path("../lib", __dir__)
    plain, = Open3.capture2(RbConfig.ruby, "-e", read_flag)
    skip "no __libc_single_threaded here" if plain.strip == "none"
    ours, status = Open3.capture2(RbConfig.ruby, "-I", lib, "-e", use + read_flag)
    expect(status).to be_success
    expect(ours).to eq(plain)
  end

  it "LastError defines no constants, like FFI::LastError: code reopening it sees the top-level ones" do
    expect(FiddleJit::LastError.constants).to eq(FFI::LastError.constants)
    expect(FiddleJit::LastError.module_eval("Errno")).to equal(::Errno)
    @fj.close(-1)
    expect(FiddleJit::LastError.error).to eq(Errno::EBADF::Errno)
  end

  it "can be set, like FFI.errno=" do
    FiddleJit.errno = 42
    expect(FiddleJit.errno).to eq(42)
  end
end
