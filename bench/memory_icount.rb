# frozen_string_literal: true

# Instructions per operation for bench/memory.rb's calls and accessors,
# fiddle_jit vs the ffi gem, counted with valgrind's callgrind (immune to
# the machine's load). For each (side, operation) the same script runs twice
# under callgrind, with 0 and with N loop iterations; the difference ÷ N is
# the loop body, and the empty body (`nil`) is subtracted.
#
#   ruby bench/memory_icount.rb          # Markdown table on stdout
#
# Environment: ICOUNT_N (iterations, default 100000).

require "open3"
require "rbconfig"

N = Integer(ENV.fetch("ICOUNT_N", "100000"))

if ARGV[0] == "--child"
  require "ffi"
  $LOAD_PATH.unshift File.expand_path("../lib", __dir__)
  require "fiddle_jit"
  ns = ARGV[1] == "ffi" ? FFI : FiddleJit
  timeval = Class.new(ns::Struct) { layout :tv_sec, :long, :tv_usec, :long }
  lib = Module.new do
    extend ns::Library
    ffi_lib "c"
    attach_function :gettimeofday, [timeval.by_ref, :pointer], :int
    attach_function :gettimeofday_ptr, :gettimeofday, %i[pointer pointer], :int
  end
  tv = timeval.new
  dst = ns::MemoryPointer.new(64)
  n = Integer(ARGV[2])
  eval("i = 0; while i < n; #{ARGV[3]}; i += 1; end") # rubocop:disable Security/Eval
  exit 0
end

system("valgrind --version", out: File::NULL) or abort "memory_icount: valgrind is required"

ITEMS = {
  "gettimeofday(tv, nil)" => "lib.gettimeofday(tv, nil)",
  "gettimeofday(tv, nil) :pointer" => "lib.gettimeofday_ptr(tv, nil)",
  "tv[:tv_usec]" => "tv[:tv_usec]",
  "tv[:tv_sec] = 1" => "tv[:tv_sec] = 1",
  "ptr.get_int32(4)" => "dst.get_int32(4)",
}.freeze

def total(side, n, code)
  out, status = Open3.capture2e("valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                                RbConfig.ruby, __FILE__, "--child", side, n.to_s, code)
  abort "memory_icount: #{side} #{code} failed:\n#{out}" unless status.success?
  Integer(out[/Collected : (\d+)/, 1])
end

def per_iteration(side, code) = (total(side, N, code) - total(side, 0, code)).fdiv(N)

rows = ITEMS.map do |label, code|
  counts = %w[fiddle_jit ffi].to_h { |side| [side, per_iteration(side, code) - per_iteration(side, "nil")] }
  warn "[memory_icount] #{label}: #{counts.map { |k, v| "#{k} #{v.round}" }.join(", ")}"
  [label, counts["fiddle_jit"], counts["ffi"]]
end

puts "| operation (instructions per call, loop excluded) | fiddle_jit | ffi gem | ffi ÷ fiddle_jit |"
puts "|---|---:|---:|---:|"
rows.each { |label, jit, ffi| puts format("| `%s` | %.0f | %.0f | %.2f× |", label, jit, ffi, ffi / jit) }
