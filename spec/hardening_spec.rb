# frozen_string_literal: true

require_relative "spec_helper"
require "open3"

# Hardening scenarios, each in a fresh child process
# (spec/fixtures/hardening_child.rb) so that /proc/self/maps and the arena
# statistics describe only the scenario, and a crash is a failure report.
RSpec.describe "hardening (child processes)" do
  def run_child(scenario, env: {}, timeout: 60)
    run_child_scenario("hardening_child.rb", scenario, FIXTURE_LIB, CALLBACK_FIXTURE_LIB, env: env, timeout: timeout)
  end

  before { skip "fiddle_jit's own machinery (arena, stubs, hooks)" if FIDDLE_JIT_ORACLE_MODE }

  it "W^X: after 3000 attachments and 300 callbacks no mapping is writable and executable; the arena's " \
     "r-x and rw- views match arena_stats, only the chunk being filled is writable, within the per-stub budget" do
    run_child("wx")
  end

  it "threads: concurrent attach_function in 4 threads while 5 threads call stubs (incl. blocking: true and qsort callbacks)" do
    run_child("threads")
  end

  it "fork: stubs, blocking calls, callbacks, Functions and new attachments work in a forked child" do
    run_child("fork")
  end

  it "fork: parent and child both attach after the fork, and each keeps running its own stubs" do
    run_child("fork_attach")
  end

  it "executable memory denied (FIDDLE_JIT_TEST_DENY_EXECMEM=1): attach_function and Function.new raise " \
     "NotImplementedError naming the cause, no crash" do
    out = run_child("deny_execmem", env: { "FIDDLE_JIT_TEST_DENY_EXECMEM" => "1" })
    expect(out).to include("cannot map executable memory")
  end

  it "GC.compact and GC.auto_compact during calls, callbacks and struct access" do
    run_child("gc_compact")
  end
end
