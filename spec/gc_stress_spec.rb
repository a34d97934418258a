# frozen_string_literal: true

require_relative "spec_helper"
require "timeout"

# GC.stress runs in a child process (spec/fixtures/gc_stress_child.rb): in
# the RSpec process, with ~2000 examples on the heap, every forced GC costs
# milliseconds; in a fresh process it is an order of magnitude cheaper, and a
# segfault is reported as a failure instead of killing the whole run.
RSpec.describe "GC.stress (child process)" do
  def run_child(scenario, ruby_flags: [], timeout: 60)
    child = File.expand_path("fixtures/gc_stress_child.rb", __dir__)
    cmd = [RbConfig.ruby, *ruby_flags, child, scenario, FIXTURE_LIB]
    cmd << "oracle" if FIDDLE_JIT_ORACLE_MODE
    out = +""
    IO.popen(cmd, err: %i[child out]) do |io|
      Timeout.timeout(timeout * SLOWDOWN) { out = io.read }
    rescue Timeout::Error
      Process.kill(:KILL, io.pid)
      out << "\n[timed out after #{timeout * SLOWDOWN}s]"
    end
    [$?, out]
  end

  {
    "minor_strings" => "2000 calls with fresh String arguments, a minor GC on every allocation",
    "full_strings" => "fresh String arguments and :string results, a full GC on every allocation",
    "to_str_keepalive" => "strings produced by to_str stay alive while the next argument is converted",
    "mixed20" => "20 arguments incl. two to_str strings (argv form) under GC stress",
    "boxed_returns" => "heap Float, Pointer and String results under GC stress"
  }.each do |scenario, what|
    it "#{scenario}: #{what}" do
      status, out = run_child(scenario)
      detail = status.signaled? ? "killed by signal #{status.termsig}" : "exit status #{status.exitstatus}"
      expect(status.success? && out.start_with?("OK")).to be(true), "#{scenario}: #{detail}\n#{out[0, 4000]}"
    end
  end

  def self.yjit_available?
    system(RbConfig.ruby, "--yjit", "-e", "exit(defined?(RubyVM::YJIT) && RubyVM::YJIT.enabled? ? 0 : 1)",
           out: File::NULL, err: File::NULL)
  end

  [[], %w[--yjit --yjit-call-threshold=1]].each do |flags|
    it "hot_loop: 3000 iterations of compiled call sites incl. error paths #{flags.empty? ? "(interpreter)" : "(#{flags.join(" ")})"}" do
      skip "this ruby has no YJIT" if flags.any? && !self.class.yjit_available?
      status, out = run_child("hot_loop", ruby_flags: flags)
      detail = status.signaled? ? "killed by signal #{status.termsig}" : "exit status #{status.exitstatus}"
      expect(status.success? && out.start_with?("OK")).to be(true), "hot_loop #{flags.join(" ")}: #{detail}\n#{out[0, 4000]}"
    end
  end
end
