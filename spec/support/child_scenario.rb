# frozen_string_literal: true

require "timeout"

# Specs whose scenarios run in a fresh child process (a script under
# spec/fixtures that prints "OK <detail>" and exits 0, or prints what went
# wrong): a crash or a hang is a failure report, not a dead RSpec.
module ChildScenario
  # Runs spec/fixtures/+script+ with +args+ and expects "OK"; returns its
  # output. +timeout+ (times SLOWDOWN) only bounds a hang (a failure):
  # nothing is timed.
  def run_child_scenario(script, *args, env: {}, timeout: 60)
    path = File.expand_path("../fixtures/#{script}", __dir__)
    out = +""
    IO.popen(env, [RbConfig.ruby, path, *args], err: %i[child out]) do |io|
      Timeout.timeout(timeout * SLOWDOWN) { out = io.read }
    rescue Timeout::Error
      Process.kill(:KILL, io.pid)
      out << "\n[timed out after #{timeout * SLOWDOWN}s]"
    end
    status = $?
    detail = status.signaled? ? "killed by signal #{status.termsig}" : "exit status #{status.exitstatus}"
    expect(status.success? && out.start_with?("OK")).to be(true), "#{args.first}: #{detail}\n#{out[0, 4000]}"
    out
  end
end
