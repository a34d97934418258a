# frozen_string_literal: true

require_relative "spec_helper"

# Variadic functions written against the ffi gem (as ethon's
# curl_easy_setopt is), run under the ffi gem and under the drop-in: every
# kind of variadic argument the native VariadicInvoker#call converts
# (enums, DataConverters, callbacks, :buffer_in, Type objects), the return
# converter, errors, errno, new shapes from several threads, and GC.stress.
RSpec.describe "variadic functions under the drop-in (differential against the ffi gem)" do
  include ShimScripts

  PRELUDE = <<~'RUBY'
    require "ffi"
    module Doubled
      extend FFI::DataConverter
      native_type FFI::Type::INT
      def self.to_native(value, _ctx) = value * 2
      def self.from_native(value, _ctx) = value
    end
    module L
      extend FFI::Library
      ffi_lib FFI::Library::LIBC
      enum :opt, [:one, 1, :two, 2, :forty, 40]
      enum :count, [:zero, 0, :one_char, 1, :two_chars, 2]
      callback :cb, [:int], :int
      attach_function :snprintf, [:pointer, :size_t, :string, :varargs], :int
      attach_function :snprintf_counted, :snprintf, [:pointer, :size_t, :string, :varargs], :count
      attach_function :snprintf_opt, :snprintf, [:pointer, :opt, :string, :varargs], :int
      attach_function :open, [:string, :int, :varargs], :int
      attach_function :close, [:int], :int
    end
    BUF = FFI::MemoryPointer.new(:char, 128)
    def fmt(*args)
      n = L.snprintf(BUF, 128, *args)
      "#{n} #{BUF.read_string}"
    rescue StandardError => e
      "raised #{e.class}"
    end
  RUBY

  def same(body) = same_output(PRELUDE + body)

  it "converts enum, DataConverter and Type-object variadic arguments, and an enum return, like the ffi gem" do
    out = same(<<~'RUBY')
      puts fmt("%d %d %d", :opt, :two, :opt, 40, :opt, :forty)
      puts fmt("%d", :opt, :nope)
      puts fmt("%d %d", Doubled, 21, :int, 1)
      puts fmt("%d %.2f %ld", FFI::Type::INT, 7, FFI::Type::DOUBLE, 0.5, FFI::Type::Builtin::LONG, -3)
      p [L.snprintf_counted(BUF, 128, "x"), L.snprintf_counted(BUF, 128, "xyz")]
      # An enum fixed argument (the buffer size: 2, so "a" and the NUL).
      p L.snprintf_opt(BUF, :two, "abc")
      p BUF.read_string
    RUBY
    expect(out.lines.first).to eq("7 2 40 40\n")
  end

  it "passes callbacks, :buffer_in, :string and :pointer variadic arguments like the ffi gem" do
    out = same(<<~'RUBY')
      cb = proc { |x| x }
      fn = FFI::Function.new(:int, [:int]) { |x| x }
      puts fmt("%s", :pointer, nil)
      puts fmt("%s", :cb, nil)
      [cb, fn].each { |c| L.snprintf(BUF, 128, "%p", :cb, c); puts BUF.read_string != "(nil)" }
      puts fmt("%p", :cb, 5)
      mem = FFI::MemoryPointer.from_string("in buffer")
      puts fmt("%s|%s|%s", :buffer_in, mem, :string, "str", :pointer, mem)
      puts fmt("%s", :string, nil)
    RUBY
    expect(out).to include("23 in buffer|str|in buffer\n")
  end

  it "raises the ffi gem's exception classes for bad variadic calls" do
    same(<<~'RUBY')
      puts fmt("%d", :void, 1)
      # libffi rejects variadic types narrower than int that the ffi gem
      # does not promote: only :bool.
      puts fmt("%d", :bool, true)
      puts fmt("%d", :varargs, 1)
      puts fmt("%d", :no_such_type, 1)
      puts fmt("%d", :int)
      puts fmt("%d", :int, "x")
      puts fmt("%d", :int, 1, :int)
      puts((L.snprintf rescue "raised #{$!.class}"))
    RUBY
  end

  it "sets errno after a variadic call, and calls the function through its VariadicInvoker" do
    same(<<~'RUBY')
      p [L.open("/nonexistent/x", 0), FFI.errno == Errno::ENOENT::Errno]
      path = "/tmp/fiddle_jit_varargs_#{Process.pid}"
      fd = L.open(path, File::CREAT | File::WRONLY, :int, 0o640)
      p [fd >= 0, File.stat(path).mode & 0o777]
      L.close(fd)
      File.delete(path)
      invoker = L.attach_function :snprintf2, :snprintf, [:pointer, :size_t, :string, :varargs], :int
      p invoker.is_a?(FFI::VariadicInvoker)
      p invoker.call(BUF, 128, "%d-%s", :int, 3, :string, "z"), BUF.read_string
    RUBY
  end

  it "gives each thread's new call shapes the right stub" do
    same(<<~'RUBY')
      shapes = [%i[int], %i[double], %i[string int], %i[long double string], %i[opt int], %i[cb]]
      value = { int: 7, double: 1.5, string: "s", long: 2**40, opt: :two, cb: nil }
      conv = { int: "%d", double: "%.1f", string: "%s", long: "%ld", opt: "%d", cb: "%p" }
      threads = 4.times.map do |t|
        Thread.new do
          buf = FFI::MemoryPointer.new(:char, 128)
          shapes.rotate(t).map do |types|
            L.snprintf(buf, 128, types.map { conv[_1] }.join(","), *types.flat_map { [_1, value[_1]] })
            buf.read_string
          end
        end
      end
      puts threads.map(&:value).map(&:sort).uniq.inspect
    RUBY
  end

  # Not differential: the ffi gem 1.15.5 crashes at exit after this on
  # arm64 (under qemu).
  it "keeps converted variadic arguments alive under GC.stress" do
    out = run_script(PRELUDE + <<~'RUBY', "-I", lib_dir, "-rfiddle_jit/ffi_shim")
      GC.stress = true
      r = [fmt("%d %s", :int, 1, :string, "a" * 3), fmt("%p", :cb, proc { 1 }).match?(/\A\d+ 0x\h+\z/), fmt("%d", :opt, :one)]
      GC.stress = false
      p r
    RUBY
    expect(out).to eq(%(["5 1 aaa", true, "1 1"]\n))
  end
end
