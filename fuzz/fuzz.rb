# frozen_string_literal: true

# Differential fuzzer: fiddle_jit vs the ffi gem on random signatures and
# random (valid and invalid) arguments. See docs/hardening.md.
#
#   rake fuzz                                  # short mode: 100k calls, <= 60 s
#   FUZZ_CALLS=1000000 FUZZ_TIME=900 rake fuzz # long mode
#   FUZZ_SEED=1234 rake fuzz                   # reproduce a run
#   FUZZ_BATCH=3 FUZZ_SEED=1234 rake fuzz      # rerun only batch 3
#   FUZZ_RUBY_FLAGS="--yjit --yjit-call-threshold=1" rake fuzz
#   FUZZ_GC=compact rake fuzz                  # GC.auto_compact + GC.compact every 1000 calls
#   FUZZ_GC=stress FUZZ_CALLS=2000 FUZZ_BATCH_CALLS=200 FUZZ_TIME=300 rake fuzz  # GC.stress: ~1 call per second
#
# Each batch (FUZZ_FUNCS functions, FUZZ_BATCH_CALLS calls) runs in a child
# process (fuzz/child.rb); a child killed by a signal is a crash, rerun with
# FUZZ_TRACE=1 to print the call that crashed. Exit status 1 on any mismatch
# or crash.
require "rbconfig"
require "json"
require "tmpdir"

seed = (ENV["FUZZ_SEED"] || Random.new_seed % 2**32).to_i
calls = (ENV["FUZZ_CALLS"] || 100_000).to_i
time_limit = (ENV["FUZZ_TIME"] || 60).to_f
per_batch = (ENV["FUZZ_BATCH_CALLS"] || 20_000).to_i
funcs = (ENV["FUZZ_FUNCS"] || 40).to_i
only = ENV["FUZZ_BATCH"]&.to_i
child = File.expand_path("child.rb", __dir__)
batches = (calls + per_batch - 1) / per_batch
deadline = Time.now.to_f + time_limit

puts "fuzz: seed=#{seed} calls=#{calls} (#{batches} batches of #{per_batch} calls over #{funcs} functions), " \
     "time limit #{time_limit}s; reproduce with FUZZ_SEED=#{seed}"
total = Hash.new(0)
crashes = []
mismatches = []
t0 = Time.now
Dir.mktmpdir("fiddle_jit-fuzz") do |tmp|
  batches.times do |b|
    next if only && b != only
    break if Time.now.to_f > deadline

    bseed = seed * 1000 + b
    n = [per_batch, calls - b * per_batch].min
    cmd = [RbConfig.ruby, *ENV["FUZZ_RUBY_FLAGS"]&.split, child, bseed.to_s, funcs.to_s, n.to_s, deadline.to_s, tmp]
    out = IO.popen(cmd, err: %i[child out], &:read)
    status = $?
    out.each_line do |line|
      if line.start_with?("STATS ")
        JSON.parse(line.delete_prefix("STATS ")).each { |k, v| total[k] += v }
      elsif line.start_with?("MISMATCH ")
        mismatches << line
        puts "batch #{b}: #{line}"
      end
    end
    next if status.success?

    why = status.signaled? ? "killed by signal #{status.termsig}" : "exit status #{status.exitstatus}"
    # Locate the call: rerun the batch with tracing, keep the last lines.
    trace = IO.popen({ "FUZZ_TRACE" => "1" }, [*cmd[0..-3], (Time.now.to_f + 120).to_s, tmp], err: %i[child out], &:read)
    crashes << "batch #{b} (seed #{bseed}) #{why}:\n#{out[-2000..] || out}\nlast traced calls:\n#{trace.lines.last(5).join}"
    puts "CRASH #{crashes.last}"
  end
end

summary = { seed: seed, calls: total["calls"], invalid_args: total["invalid"], raised: total["raised"],
            mismatches: total["mismatches"], crashes: crashes.size, seconds: (Time.now - t0).round(1) }
puts "fuzz: #{JSON.generate(summary)}"
exit(mismatches.empty? && crashes.empty? ? 0 : 1)
