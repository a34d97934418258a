# frozen_string_literal: true

# Callback benchmark: C calling Ruby through fiddle_jit's JIT-emitted
# reverse trampolines vs the ffi gem's libffi closures vs Fiddle::Closure.
#
#   ruby bench/callbacks.rb          (or: rake bench:callbacks)
#
# Rows:
#   noop callback   — C calls a `void (*)(void)` Ruby callback N times
#   int→int         — C calls an `int (*)(int)` identity callback N times
#   floor           — (column) C calling rb_proc_call_with_block directly: the
#                     cost CRuby itself charges per Proc call from C
#   qsort 100k ints — libc qsort with a Ruby comparator that reads both ints
#                     through an attached C function (same work everywhere)
#
# Rounds interleave the contenders (a loaded machine slows all of them
# alike); each cell is the best round. Environment:
#   BENCH_TIME=3   seconds measured per contender and row, over all rounds
#   BENCH_ROUNDS=5
#   BENCH_N=200000 callback invocations per loop measurement
#   BENCH_SORT_N=100000

require "rbconfig"
require "open3"
require "ffi"
require "fiddle"

ROOT = File.expand_path("..", __dir__)
$LOAD_PATH.unshift File.join(ROOT, "lib")
require "fiddle_jit"

BUILD_DIR = File.join(__dir__, "build", "#{RbConfig::CONFIG["arch"]}-ruby#{RUBY_VERSION[/\A\d+\.\d+/]}")
SRC = File.join(__dir__, "fixture", "callback_bench.c")
LIB = File.join(BUILD_DIR, "libfjcbbench.so")
BENCH_TIME = Float(ENV.fetch("BENCH_TIME", "3"))
ROUNDS = Integer(ENV.fetch("BENCH_ROUNDS", "5"))
N = Integer(ENV.fetch("BENCH_N", "200000"))
SORT_N = Integer(ENV.fetch("BENCH_SORT_N", "100000"))
YJIT = !!(defined?(RubyVM::YJIT) && RubyVM::YJIT.enabled?)

if !File.exist?(LIB) || File.mtime(LIB) < File.mtime(SRC)
  Dir.mkdir(BUILD_DIR) unless Dir.exist?(BUILD_DIR)
  out, st = Open3.capture2e(ENV.fetch("CC", "cc"), "-O2", "-shared", "-fPIC", "-o", LIB, SRC)
  abort "bench: building #{LIB} failed:\n#{out}" unless st.success?
end

def define_lib(ns)
  Module.new do
    extend ns::Library
    ffi_lib LIB, "c"
    callback :noop, [], :void
    callback :i2i, [:int], :int
    callback :cmp, %i[pointer pointer], :int
    attach_function :cbb_loop_void, %i[noop long], :void
    attach_function :cbb_loop_int, %i[i2i long], :long
    attach_function :cbb_fill, %i[pointer size_t uint32], :void
    attach_function :cbb_alloc, [:size_t], :pointer
    attach_function :cbb_read_int, [:pointer], :int
    attach_function :cbb_sorted, %i[pointer size_t], :int
    attach_function :qsort, [:pointer, :size_t, :size_t, :cmp], :void
    attach_function :cbb_floor_void, %i[uintptr_t long], :void
    attach_function :cbb_floor_int, %i[uintptr_t long], :long
  end
end

JIT = define_lib(FiddleJit)
FFIL = define_lib(FFI)

# Fiddle: Fiddle::Function for the C side, Fiddle::Closure::BlockCaller for Ruby.
module FiddleSide
  H = Fiddle.dlopen(LIB)
  LIBC = Fiddle.dlopen(nil)
  T = Fiddle
  LOOP_VOID = T::Function.new(H["cbb_loop_void"], [T::TYPE_VOIDP, T::TYPE_LONG], T::TYPE_VOID)
  LOOP_INT = T::Function.new(H["cbb_loop_int"], [T::TYPE_VOIDP, T::TYPE_LONG], T::TYPE_LONG)
  READ_INT = T::Function.new(H["cbb_read_int"], [T::TYPE_VOIDP], T::TYPE_INT)
  QSORT = T::Function.new(LIBC["qsort"], [T::TYPE_VOIDP, T::TYPE_SIZE_T, T::TYPE_SIZE_T, T::TYPE_VOIDP], T::TYPE_VOID)
  NOOP = T::Closure::BlockCaller.new(T::TYPE_VOID, []) {}
  ID = T::Closure::BlockCaller.new(T::TYPE_INT, [T::TYPE_INT]) { |x| x }
  CMP = T::Closure::BlockCaller.new(T::TYPE_INT, [T::TYPE_VOIDP, T::TYPE_VOIDP]) do |a, b|
    READ_INT.call(a) <=> READ_INT.call(b)
  end
end

noop = -> {}
id = ->(x) { x }
noop_value = Fiddle.dlwrap(noop)
id_value = Fiddle.dlwrap(id)
jit_buf = JIT.cbb_alloc(SORT_N)
ffi_buf = FFIL.cbb_alloc(SORT_N)
fid_buf = jit_buf.address
jit_cmp = ->(a, b) { JIT.cbb_read_int(a) <=> JIT.cbb_read_int(b) }
ffi_cmp = ->(a, b) { FFIL.cbb_read_int(a) <=> FFIL.cbb_read_int(b) }

def sort_checked(lib, buf, &sort)
  lib.cbb_fill(buf, SORT_N, 42)
  t = Process.clock_gettime(Process::CLOCK_MONOTONIC)
  sort.call
  dt = Process.clock_gettime(Process::CLOCK_MONOTONIC) - t
  abort "bench: qsort did not sort" unless lib.cbb_sorted(buf, SORT_N) == 1
  dt
end

# [row label, unit divisor, unit label, { contender => -> { seconds for one op } }]
ROWS = [
  ["noop callback", N, "ns/callback", {
    "fiddle_jit" => -> { t = now; JIT.cbb_loop_void(noop, N); now - t },
    "ffi" => -> { t = now; FFIL.cbb_loop_void(noop, N); now - t },
    "Fiddle::Closure" => -> { t = now; FiddleSide::LOOP_VOID.call(FiddleSide::NOOP, N); now - t },
    "floor" => -> { t = now; JIT.cbb_floor_void(noop_value, N); now - t }
  }],
  ["int→int callback", N, "ns/callback", {
    "fiddle_jit" => -> { t = now; JIT.cbb_loop_int(id, N); now - t },
    "ffi" => -> { t = now; FFIL.cbb_loop_int(id, N); now - t },
    "Fiddle::Closure" => -> { t = now; FiddleSide::LOOP_INT.call(FiddleSide::ID, N); now - t },
    "floor" => -> { t = now; JIT.cbb_floor_int(id_value, N); now - t }
  }],
  ["qsort #{SORT_N / 1000}k ints", 1e-6, "ms/sort", {
    "fiddle_jit" => -> { sort_checked(JIT, jit_buf) { JIT.qsort(jit_buf, SORT_N, 4, &jit_cmp) } },
    "ffi" => -> { sort_checked(FFIL, ffi_buf) { FFIL.qsort(ffi_buf, SORT_N, 4, ffi_cmp) } },
    "Fiddle::Closure" => lambda {
      sort_checked(JIT, jit_buf) { FiddleSide::QSORT.call(fid_buf, SORT_N, 4, FiddleSide::CMP) }
    }
  }]
].freeze

def now = Process.clock_gettime(Process::CLOCK_MONOTONIC)

CONTENDERS = ["fiddle_jit", "ffi", "Fiddle::Closure", "floor"].freeze
results = Hash.new { |h, k| h[k] = Hash.new(Float::INFINITY) }
ROWS.each do |label, _, unit, fns|
  sort = unit == "ms/sort"
  # Warm up (and emit trampolines); a Fiddle sort takes seconds, so the
  # qsort row runs 2 rounds and warms up only the fast contenders.
  fns.each { |c, f| f.call unless sort && c == "Fiddle::Closure" }
  rounds = sort ? [ROUNDS, 2].min : ROUNDS
  budget = BENCH_TIME / rounds
  rounds.times do
    CONTENDERS.each do |c|
      next unless fns.key?(c)

      spent = 0.0
      loop do
        dt = fns.fetch(c).call
        results[label][c] = dt if dt < results[label][c]
        spent += dt
        break if spent >= budget
      end
    end
  end
  warn "[bench] #{label}: " + fns.keys.map { |c| "#{c} #{(results[label][c] * 1e3).round(2)} ms" }.join(", ")
end

fmt = ->(v) { v >= 100 ? v.round.to_s : format("%.1f", v) }
puts
$stderr.flush
puts "Callbacks, #{RUBY_DESCRIPTION}#{YJIT ? " (YJIT)" : ""}; best of #{ROUNDS} interleaved rounds " \
     "(qsort: 2), BENCH_TIME=#{BENCH_TIME}, N=#{N}"
puts
puts "| row | unit | fiddle_jit | ffi | Fiddle::Closure | floor | fiddle_jit/ffi | fiddle_jit/Fiddle | floor/fiddle_jit |"
puts "|---|---|---:|---:|---:|---:|---:|---:|---:|"
ROWS.each do |label, div, unit, fns|
  v = fns.keys.to_h { |c| [c, results[label][c] * (unit.start_with?("ns") ? 1e9 / div : 1e3)] }
  floor = v["floor"]
  puts "| #{label} | #{unit} | #{fmt.(v["fiddle_jit"])} | #{fmt.(v["ffi"])} | #{fmt.(v["Fiddle::Closure"])} | " \
       "#{floor ? fmt.(floor) : "—"} | #{format("%.2f×", v["ffi"] / v["fiddle_jit"])} | " \
       "#{format("%.2f×", v["Fiddle::Closure"] / v["fiddle_jit"])} | #{floor ? format("%.2f", floor / v["fiddle_jit"]) : "—"} |"
end
puts
puts "Ratios > 1 mean fiddle_jit is faster. floor: C calling rb_proc_call_with_block directly in a loop"
puts "(no FFI, no rb_protect, no GVL check) — what CRuby itself charges per call of a Proc from C;"
puts "floor/fiddle_jit = 1.00 would mean the FFI layer adds nothing."
