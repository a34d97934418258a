# frozen_string_literal: true

# Drop-in benchmark: one binding written against the ffi gem's API
# (`extend FFI::Library`, plain `require "ffi"`) run in two processes: under
# the ffi gem, and under fiddle_jit via `ruby -rfiddle_jit/ffi_shim`.
#
#   ruby bench/compat.rb          # or: rake bench:compat
#
# Environment: BENCH_TIME (seconds measured per item, default 2),
# BENCH_WARMUP (default 1), BENCH_ROUNDS (default 3: the two children
# alternate this many times and each cell is the best round, which keeps a
# noisy machine's load from favouring one side), BENCH_RUBYOPT (extra ruby flags for both
# children, e.g. "--yjit"). Prints a Markdown table; ratio > 1 means
# fiddle_jit is faster.

require "json"
require "open3"
require "rbconfig"

ITEMS = {
  "strlen(\"hello\")" => "L.strlen(S)",
  "labs(-5)" => "L.labs(-5)",
  "getpid()" => "L.getpid",
  "sqrt(2.0) (libm)" => "M.sqrt(2.0)",
  "crc32(0, buf, 64) (libz)" => "Z.crc32(0, BUF, 64)",
  "gettimeofday(tv, nil) (Struct.by_ref)" => "L.gettimeofday(TV, nil)",
  "abs(:seek_cur) (enum in and out)" => "L.abs_enum(:seek_cur)",
  "getenv(\"HOME\") (:strptr)" => "L.getenv_ptr(H)",
  "MemoryPointer.new(:int, 4)" => "FFI::MemoryPointer.new(:int, 4)",
  "tv[:tv_usec]" => "TV[:tv_usec]",
}.freeze

if (side = ENV["BENCH_COMPAT_CHILD"])
  require "ffi"
  require "benchmark/ips"

  class Timeval < FFI::Struct
    layout :tv_sec, :time_t, :tv_usec, :suseconds_t
  end

  module L
    extend FFI::Library
    ffi_lib FFI::Library::LIBC
    enum :whence, [:seek_set, 0, :seek_cur, :seek_end]
    attach_function :strlen, [:string], :size_t
    attach_function :labs, [:long], :long
    attach_function :getpid, [], :pid_t
    attach_function :gettimeofday, [Timeval.by_ref, :pointer], :int
    attach_function :abs_enum, :abs, [:whence], :whence
    attach_function :getenv_ptr, :getenv, [:string], :strptr
  end

  module M
    extend FFI::Library
    ffi_lib "m"
    attach_function :sqrt, [:double], :double
  end

  module Z
    extend FFI::Library
    ffi_lib ["z", "libz.so.1"]
    attach_function :crc32, [:ulong, :pointer, :uint], :ulong
  end

  S = "hello"
  H = "HOME"
  TV = Timeval.new
  BUF = FFI::MemoryPointer.new(:uchar, 64).tap { |b| b.put_bytes(0, "x" * 64) }
  backend = FFI.const_defined?(:FIDDLE_JIT, false) ? "fiddle_jit" : "ffi"
  abort "bench: expected #{side}, got #{backend}" unless backend == side

  time = Float(ENV.fetch("BENCH_TIME", "2"))
  warmup = Float(ENV.fetch("BENCH_WARMUP", "1"))
  results = ITEMS.to_h do |label, code|
    body = eval("-> { #{code} }") # rubocop:disable Security/Eval
    body.call
    GC.start
    report = Benchmark.ips(quiet: true) do |x|
      x.config(time: time, warmup: warmup)
      x.report(label) { |times| i = 0; while i < times; body.call; i += 1; end }
    end
    [label, report.entries.first.ips]
  end
  puts JSON.generate(results)
  exit
end

lib = File.expand_path("../lib", __dir__)
extra = ENV.fetch("BENCH_RUBYOPT", "").split
run = lambda do |side, *flags|
  out, err, status = Open3.capture3({ "BENCH_COMPAT_CHILD" => side }, RbConfig.ruby, *extra, *flags, __FILE__)
  abort "bench: #{side} child failed:\n#{err}" unless status.success?
  JSON.parse(out.lines.last)
end

rounds = Integer(ENV.fetch("BENCH_ROUNDS", "3"))
warn "[bench:compat] BENCH_TIME=#{ENV.fetch("BENCH_TIME", "2")} BENCH_ROUNDS=#{rounds} flags=#{extra.join(" ")}"
best = ->(a, b) { a.merge(b) { |_, x, y| [x, y].max } }
ffi = {}
jit = {}
rounds.times do
  ffi = best.call(ffi, run.call("ffi"))
  jit = best.call(jit, run.call("fiddle_jit", "-I", lib, "-rfiddle_jit/ffi_shim"))
end
puts "Same `extend FFI::Library` binding; ruby #{RUBY_VERSION} #{extra.join(" ")}; best of #{rounds} alternating rounds".rstrip
puts
puts "| call | ffi gem (i/s) | fiddle_jit/ffi (i/s) | ratio |"
puts "|---|---:|---:|---:|"
ITEMS.each_key do |label|
  a = ffi.fetch(label)
  b = jit.fetch(label)
  puts format("| %s | %.2fM | %.2fM | %.2fx |", label, a / 1e6, b / 1e6, b / a)
end
