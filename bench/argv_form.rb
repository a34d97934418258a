# frozen_string_literal: true

# Cost of the argv cfunc form that `require "fiddle_jit/ffi"` uses for
# attached functions (so arity errors are worded like the ffi gem's, and
# arity is -1 as in ffi) against the fixed-arity form FiddleJit::Library
# uses. Same functions attached both ways in one process, measured in
# alternating rounds; ratio > 1 means the argv form is slower.
#
#   ruby -Ilib bench/argv_form.rb     # BENCH_TIME (default 1), BENCH_ROUNDS (default 3)

require "fiddle_jit"
require "benchmark/ips"

def bind(argv_form)
  Module.new do
    extend FiddleJit::Library
    # What FFI::Library answers (lib/fiddle_jit/ffi.rb): the ffi gem's behaviour.
    define_singleton_method(:__ffi_compatible__?) { argv_form }
    ffi_lib FiddleJit::Library::LIBC
    attach_function :strlen, [:string], :size_t
    attach_function :labs, [:long], :long
    attach_function :getpid, [], :int
    attach_function :copysign, %i[double double], :double
    attach_function :memchr, %i[pointer int size_t], :pointer
  end
end

FIXED = bind(false)
ARGV_FORM = bind(true)
raise "forms not as expected" unless FIXED.method(:labs).arity == 1 && ARGV_FORM.method(:labs).arity == -1

BUF = FiddleJit::MemoryPointer.new(16)
S = "hello"
CALLS = {
  "strlen(\"hello\")" => "strlen(S)",
  "labs(-5)" => "labs(-5)",
  "getpid()" => "getpid",
  "copysign(1.5, -1.0)" => "copysign(1.5, -1.0)",
  "memchr(buf, 0, 16)" => "memchr(BUF, 0, 16)"
}.freeze

# One method per call and form with the call written out in its loop.
module Loops; end
CALLS.each_with_index do |(_, call), i|
  { fixed: "FIXED", argv: "ARGV_FORM" }.each do |form, mod|
    Loops.module_eval("def self.#{form}_#{i}(n) = (j = 0; while j < n; #{mod}.#{call}; j += 1; end)", __FILE__, __LINE__)
  end
end

time = Float(ENV.fetch("BENCH_TIME", "1"))
rounds = Integer(ENV.fetch("BENCH_ROUNDS", "3"))
best = Hash.new { |h, k| h[k] = {} }
rounds.times do
  CALLS.each_with_index do |(label, _), i|
    %i[fixed argv].each do |form|
      loop_method = Loops.method(:"#{form}_#{i}")
      report = Benchmark.ips(quiet: true) do |x|
        x.config(time: time, warmup: 0.5)
        x.report(form.to_s) { |n| loop_method.call(n) }
      end
      ips = report.entries.first.ips
      best[label][form] = [best[label][form] || 0, ips].max
    end
  end
end
puts "| call | fixed arity (i/s) | argv form (i/s) | fixed/argv |"
puts "|---|---:|---:|---:|"
best.each do |label, r|
  puts format("| %s | %.2fM | %.2fM | %.2fx |", label, r[:fixed] / 1e6, r[:argv] / 1e6, r[:fixed] / r[:argv])
end
