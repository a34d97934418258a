# frozen_string_literal: true

# Memory benchmark: fiddle_jit vs the ffi gem on memory-heavy calls.
#
#   ruby bench/memory.rb            # or: rake bench:memory
#
#   memset(ptr, 1, 64)          on a 64-byte MemoryPointer
#   memcpy(dst, src, 64)        between two MemoryPointers
#   gettimeofday(tv, nil)       into a Timeval struct (Timeval.by_ref parameter)
#   tv[:tv_usec]                Struct#[] read
#   tv[:tv_sec] = 1             Struct#[]= write
#   ptr.get_int32(4)            Pointer reader
#   MemoryPointer.new(:int, 4)  allocation (GC-owned memory)
#
# Environment: BENCH_TIME (seconds measured per item, default 2),
# BENCH_WARMUP (default 1). Prints a Markdown table; ratio > 1 means
# fiddle_jit is faster.

require "benchmark/ips"
require "ffi"
$LOAD_PATH.unshift File.expand_path("../lib", __dir__)
require "fiddle_jit"

def env_float(name, default)
  Float(ENV.fetch(name, default.to_s))
rescue ArgumentError
  abort "bench: #{name}=#{ENV[name].inspect} is not a number"
end

BENCH_TIME = env_float("BENCH_TIME", 2)
BENCH_WARMUP = env_float("BENCH_WARMUP", 1)
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
  end
  { lib: lib, timeval: timeval, src: ns::MemoryPointer.new(64), dst: ns::MemoryPointer.new(64), tv: timeval.new, ns: ns }
end

SIDES = { "fiddle_jit" => define(FiddleJit), "ffi" => define(FFI) }.freeze

ITEMS = {
  "memset(ptr, 1, 64)" => ->(s) { l = s[:lib]; d = s[:dst]; -> { l.memset(d, 1, 64) } },
  "memcpy(dst, src, 64)" => ->(s) { l = s[:lib]; d = s[:dst]; src = s[:src]; -> { l.memcpy(d, src, 64) } },
  "gettimeofday(tv, nil)" => ->(s) { l = s[:lib]; tv = s[:tv]; -> { l.gettimeofday(tv, nil) } },
  "tv[:tv_usec]" => ->(s) { tv = s[:tv]; -> { tv[:tv_usec] } },
  "tv[:tv_sec] = 1" => ->(s) { tv = s[:tv]; -> { tv[:tv_sec] = 1 } },
  "ptr.get_int32(4)" => ->(s) { d = s[:dst]; -> { d.get_int32(4) } },
  "MemoryPointer.new(:int, 4)" => ->(s) { mp = s[:ns]::MemoryPointer; -> { mp.new(:int, 4) } },
}.freeze

# Sanity: both sides do the same thing.
SIDES.each do |name, s|
  s[:lib].memset(s[:src], 7, 64)
  s[:lib].memcpy(s[:dst], s[:src], 64)
  abort "bench: #{name} memcpy failed" unless s[:dst].get_bytes(0, 64) == "\x07".b * 64
  abort "bench: #{name} gettimeofday failed" unless s[:lib].gettimeofday(s[:tv], nil).zero? && s[:tv][:tv_sec] >= Time.now.to_i - 2
end

warn "[bench] mode=#{YJIT ? "YJIT" : "interp"} BENCH_TIME=#{BENCH_TIME} BENCH_WARMUP=#{BENCH_WARMUP}"
rows = ITEMS.map do |label, make|
  GC.start
  report = Benchmark.ips do |x|
    x.config(time: BENCH_TIME, warmup: BENCH_WARMUP)
    SIDES.each do |name, s|
      body = make.call(s)
      x.report("#{name} #{label}") { |times| i = 0; while i < times; body.call; i += 1; end }
    end
  end
  ips = report.entries.to_h { |e| [e.label, e.ips] }
  [label, ips["fiddle_jit #{label}"], ips["ffi #{label}"]]
end

def fmt(ips) = ips >= 1e6 ? format("%.2fM", ips / 1e6) : format("%.0fk", ips / 1e3)

puts
puts "Memory benchmark (#{YJIT ? "YJIT" : "interpreter"}, ruby #{RUBY_VERSION}, ffi #{FFI::VERSION}), i/s:"
puts
puts "| operation | fiddle_jit | ffi gem | fiddle_jit / ffi |"
puts "|---|---:|---:|---:|"
rows.each { |label, jit, ffi| puts "| `#{label}` | #{fmt(jit)} | #{fmt(ffi)} | #{format("%.2f", jit / ffi)}x |" }
