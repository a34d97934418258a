# frozen_string_literal: true

require_relative "spec_helper"
require "open3"

# FFI::IO under `require "fiddle_jit/ffi"`, compared with the ffi gem: the
# same script runs in two processes and must print the same lines.
RSpec.describe "FFI::IO (differential vs the ffi gem, separate processes)" do
  script = <<~'RUBY'
    r, w = IO.pipe
    io = FFI::IO.for_fd(r.fileno, "r")
    io.autoclose = false
    puts io.class, io.fileno == r.fileno
    out = FFI::IO.for_fd(w.fileno, "w")
    out.autoclose = false
    out.write("hello, native"); out.flush; w.close
    buf = FFI::MemoryPointer.new(:char, 32)
    p FFI::IO.native_read(io, buf, 5), buf.read_string(5)
    p FFI::IO.native_read(io, buf, 100), buf.read_string(8)
    p FFI::IO.native_read(io, buf, 4)                       # EOF
    small = FFI::MemoryPointer.new(:char, 2)
    File.open(RbConfig.ruby) do |f|
      FFI::IO.native_read(f, small, 10)
    rescue => e
      puts e.class.name.sub(/\A(FFI|FiddleJit)::/, "")
    end
    begin
      FFI::IO.for_fd(-1)
    rescue => e
      puts e.class
    end
    p FFI::IO.for_fd(w.fileno + 1000) rescue puts $!.class
    p FFI::IO.method(:for_fd).arity, FFI::IO.method(:native_read).arity
  RUBY

  def run(*flags, code)
    out, err, status = Open3.capture3(RbConfig.ruby, *flags, "-e", code)
    raise "ruby failed: #{err}" unless status.success?

    out
  end

  it "for_fd and native_read behave like the ffi gem's" do
    oracle = run("-rffi", script)
    ours = run("-I", File.expand_path("../lib", __dir__), "-rfiddle_jit/ffi", script)
    expect(ours).to eq(oracle)
    expect(ours.lines.first).to eq("IO\n")
    expect(ours).to include("5\n\"hello\"\n8\n\", native\"\n-1\n")
  end
end
