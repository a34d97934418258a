# frozen_string_literal: true

require_relative "spec_helper"
require "timeout"

# Stubs are reclaimed once nothing can run them (their module was
# collected), never while a thread is inside one; re-attaching a name
# reuses its stub. Each scenario runs in a fresh child process
# (spec/fixtures/lifetime_child.rb) and measures what a loop leaves behind
# against a bound that does not grow with the number of iterations.
RSpec.describe "stub lifetime (child processes)" do
  before { skip "fiddle_jit's own machinery (arena, stub owners)" if FIDDLE_JIT_ORACLE_MODE }

  def run_child(scenario, timeout: 300)
    child = File.expand_path("fixtures/lifetime_child.rb", __dir__)
    out = +""
    IO.popen([RbConfig.ruby, child, scenario, FIXTURE_LIB, CALLBACK_FIXTURE_LIB], err: %i[child out]) do |io|
      # (bounds a hang, which is a failure; nothing here is timed)
      Timeout.timeout(timeout) { out = io.read }
    rescue Timeout::Error
      Process.kill(:KILL, io.pid)
      out << "\n[timed out after #{timeout}s]"
    end
    status = $?
    detail = status.signaled? ? "killed by signal #{status.termsig}" : "exit status #{status.exitstatus}"
    expect(status.success? && out.start_with?("OK")).to be(true), "#{scenario}: #{detail}\n#{out[0, 4000]}"
  end

  it "throwaway modules attaching functions leave no code, stub data or pinned objects behind" do
    run_child("modules")
  end

  it "re-attaching a name reuses its stub (one per distinct definition)" do
    run_child("reattach")
  end

  it "Function.new(type, params, pointer).call in a loop does not grow" do
    run_child("function_call")
  end

  it "a stub whose module is unreferenced survives while a thread is inside it (callback, blocking call)" do
    run_child("in_flight")
  end
end
