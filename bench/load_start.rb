# frozen_string_literal: true

# The first `-r` of every child bench/side_by_side.rb runs (under callgrind
# through bench/callgrind_start.rb): what comes before it, Ruby's own boot,
# is the same on both sides and is not measured.
#
# BENCH_GC_PHASE=N allocates N short-lived objects first. Ruby collects
# after a number of allocations, so the collections of what follows (a
# gem's `require`) fall at other points of it: bench/real_gems.rb gives each
# of its load samples another phase and takes their median, so a load's
# figure does not rest on where its collections happen to fall in one
# process.
Array.new(Integer(ENV["BENCH_GC_PHASE"])) { Object.new } if ENV["BENCH_GC_PHASE"]
# Process CPU time at this point: a child reports its load from here.
$bench_first_r_cpu = Process.clock_gettime(Process::CLOCK_PROCESS_CPUTIME_ID) # rubocop:disable Style/GlobalVars
