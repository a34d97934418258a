# frozen_string_literal: true

# The first `-r` of every child bench/side_by_side.rb runs under callgrind
# (--instr-atstart=no): Ruby's boot so far ran uninstrumented; from here on
# instructions are counted, so the shim's `-r` and the measured script are.
# With BENCH_INSTR_AFTER_LOAD set the child starts it itself, later.
# BENCH_GC_OFF=1: GC disabled from here on (what a load costs apart from
# where Ruby's collections happen to fall).
require_relative "load_start"
GC.disable if ENV["BENCH_GC_OFF"] == "1"
require ENV.fetch("BENCH_CEXT")
FjBenchCext.callgrind_start unless ENV["BENCH_INSTR_AFTER_LOAD"]
