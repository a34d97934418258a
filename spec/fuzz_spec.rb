# frozen_string_literal: true

require_relative "spec_helper"
require "timeout"
require "json"

# The short mode of the differential fuzzer (fuzz/fuzz.rb, `rake fuzz`):
# 100k calls on random signatures with random valid and invalid arguments,
# fiddle_jit against the ffi gem, each batch in a child process. A fixed seed
# keeps the suite deterministic; `rake fuzz` alone uses a fresh seed.
#
# Under emulation (SLOWDOWN > 1, see spec_helper.rb) the same seed gives the
# same 5 batches of 40 signatures, each called SLOWDOWN times fewer times.
RSpec.describe "differential fuzzer (short mode)" do
  calls = 100_000 / SLOWDOWN
  batch_calls = 20_000 / SLOWDOWN

  it "#{calls} random calls on 200 signatures agree with the ffi gem (values bit-exact, exception classes) " \
     "and never crash" do
    skip "compares fiddle_jit with the ffi gem" if FIDDLE_JIT_ORACLE_MODE
    env = { "FUZZ_CALLS" => calls.to_s, "FUZZ_BATCH_CALLS" => batch_calls.to_s, "FUZZ_FUNCS" => "40",
            "FUZZ_TIME" => (55 * SLOWDOWN).to_s, "FUZZ_SEED" => ENV.fetch("FUZZ_SEED", "20261127") }
    out = +""
    IO.popen(env, [RbConfig.ruby, File.expand_path("../fuzz/fuzz.rb", __dir__)], err: %i[child out]) do |io|
      Timeout.timeout(90 * SLOWDOWN) { out = io.read }
    rescue Timeout::Error
      Process.kill(:KILL, io.pid)
      out << "\n[timed out]"
    end
    expect($?.success?).to be(true), out[-6000..] || out
    summary = JSON.parse(out[/^fuzz: (\{.*\})$/, 1])
    expect(summary["calls"]).to be >= calls
  end
end
