# frozen_string_literal: true

# Memory benchmark: fiddle_jit vs the ffi gem on memory-heavy calls.
#
#   ruby bench/memory.rb            # or: rake bench:memory
#
#   memset(ptr, 1, 64)          on a 64-byte MemoryPointer
#   memcpy(dst, src, 64)        between two MemoryPointers
#   gettimeofday(tv, nil)       into a Timeval struct (Timeval.by_ref parameter)
#   gettimeofday(tv, nil) :pointer  the same with a plain :pointer parameter
#   tv[:tv_usec]                Struct#[] read
#   tv[:tv_sec] = 1             Struct#[]= write
#   ptr.get_int32(4)            Pointer reader
#   MemoryPointer.new(:int, 4)  allocation (GC-owned memory)
#
# Each measurement is a bare `while` loop around the operation (generated
# code, no block or lambda call per iteration), so the ratio is that of the
# operations, not diluted by the loop.
#
# The development VM is shared and noisy, so every item is measured in
# BENCH_ROUNDS rounds (both sides in each) and each side's best round is
# reported: interference only ever slows a round down.
#
# Environment: BENCH_TIME (seconds measured per item and round, default 1),
# BENCH_WARMUP (default 0.5), BENCH_ROUNDS (default 3). Prints a Markdown
# table; ratio > 1 means fiddle_jit is faster.

require "benchmark/ips"
require "ffi"
$LOAD_PATH.unshift File.expand_path("../lib", __dir__)
require "fiddle_jit"

def env_float(name, default)
  Float(ENV.fetch(name, default.to_s))
rescue ArgumentError
  abort "bench: #{name}=#{ENV[name].inspect} is not a number"
end

BENCH_TIME = env_float("BENCH_TIME", 1)
BENCH_WARMUP = env_float("BENCH_WARMUP", 0.5)
BENCH_ROUNDS = Integer(ENV.fetch("BENCH_ROUNDS", "3"))
YJIT = !!(defined?(RubyVM::YJIT) && RubyVM::YJIT.enabled?)

# The same definitions in both namespaces.
def define(ns)
  timeval = Class.new(ns::Struct) { layout :tv_sec, :long, :tv_usec, :long }
  lib = Module.new do
    extend ns::Library
    ffi_lib "c"
    attach_function :memset, %i[pointer int size_t], :pointer
    attach_function :memcpy, %i[pointer pointer size_t], :pointer
    attach_function :gettimeofday, [timeval.by_ref, :pointer], :int
    attach_function :gettimeofday_ptr, :gettimeofday, %i[pointer pointer], :int
  end
  { lib: lib, timeval: timeval, src: ns::MemoryPointer.new(64), dst: ns::MemoryPointer.new(64), tv: timeval.new, ns: ns }
end

SIDES = { "fiddle_jit" => define(FiddleJit), "ffi" => define(FFI) }.freeze

# label => the operation, as code over the locals of `define`'s hash.
ITEMS = {
  "memset(ptr, 1, 64)" => "lib.memset(dst, 1, 64)",
  "memcpy(dst, src, 64)" => "lib.memcpy(dst, src, 64)",
  "gettimeofday(tv, nil)" => "lib.gettimeofday(tv, nil)",
  "gettimeofday(tv, nil) :pointer" => "lib.gettimeofday_ptr(tv, nil)",
  "tv[:tv_usec]" => "tv[:tv_usec]",
  "tv[:tv_sec] = 1" => "tv[:tv_sec] = 1",
  "ptr.get_int32(4)" => "dst.get_int32(4)",
  "MemoryPointer.new(:int, 4)" => "mp.new(:int, 4)",
}.freeze

# A benchmark-ips "times" proc: the side's objects in locals, then a bare
# while loop around exactly one operation.
def make_loop(side, code)
  eval(<<~RUBY, binding, "(memory bench: #{code})", 1) # rubocop:disable Security/Eval
    lib = side[:lib]; dst = side[:dst]; src = side[:src]; tv = side[:tv]; mp = side[:ns]::MemoryPointer
    proc do |times|
      i = 0
      while i < times
        #{code}
        i += 1
      end
    end
  RUBY
end

# Sanity: both sides do the same thing.
SIDES.each do |name, s|
  s[:lib].memset(s[:src], 7, 64)
  s[:lib].memcpy(s[:dst], s[:src], 64)
  abort "bench: #{name} memcpy failed" unless s[:dst].get_bytes(0, 64) == "\x07".b * 64
  abort "bench: #{name} gettimeofday failed" unless s[:lib].gettimeofday(s[:tv], nil).zero? && s[:tv][:tv_sec] >= Time.now.to_i - 2
end

warn "[bench] mode=#{YJIT ? "YJIT" : "interp"} BENCH_TIME=#{BENCH_TIME} BENCH_WARMUP=#{BENCH_WARMUP} BENCH_ROUNDS=#{BENCH_ROUNDS}"
rows = ITEMS.map do |label, code|
  loops = SIDES.to_h { |name, s| [name, make_loop(s, code)] }
  best = Hash.new(0.0)
  BENCH_ROUNDS.times do
    GC.start
    report = Benchmark.ips(BENCH_TIME, BENCH_WARMUP, true) do |x|
      loops.each { |name, body| x.report(name, &body) }
    end
    report.entries.each { |e| best[e.label] = [best[e.label], e.ips].max }
  end
  warn format("[bench] %-32s fiddle_jit %.2fM  ffi %.2fM", label, best["fiddle_jit"] / 1e6, best["ffi"] / 1e6)
  [label, best["fiddle_jit"], best["ffi"]]
end

def fmt(ips) = ips >= 1e6 ? format("%.2fM", ips / 1e6) : format("%.0fk", ips / 1e3)

puts
puts "Memory benchmark (#{YJIT ? "YJIT" : "interpreter"}, ruby #{RUBY_VERSION}, ffi #{FFI::VERSION}), " \
     "i/s, best of #{BENCH_ROUNDS} rounds of #{BENCH_TIME}s:"
puts
puts "| operation | fiddle_jit | ffi gem | fiddle_jit / ffi |"
puts "|---|---:|---:|---:|"
rows.each { |label, jit, ffi| puts "| `#{label}` | #{fmt(jit)} | #{fmt(ffi)} | #{format("%.2f", jit / ffi)}x |" }
