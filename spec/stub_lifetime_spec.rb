# frozen_string_literal: true

require_relative "spec_helper"

# Stubs are reclaimed once nothing can run them (their module was
# collected), never while a thread is inside one; re-attaching a name
# reuses its stub. Each scenario runs in a fresh child process
# (spec/fixtures/lifetime_child.rb) and measures what a loop leaves behind
# against a bound that does not grow with the number of iterations.
RSpec.describe "stub lifetime (child processes)" do
  before { skip "fiddle_jit's own machinery (arena, stub owners)" if FIDDLE_JIT_ORACLE_MODE }

  def run_child(scenario)
    run_child_scenario("lifetime_child.rb", scenario, FIXTURE_LIB, CALLBACK_FIXTURE_LIB, timeout: 300)
  end

  it "attaching to a frozen module raises FrozenError like the ffi gem, before or after its first stub" do
    [FFI, FiddleJit].each do |ns|
      fresh = Module.new.freeze
      used = Module.new
      ns::Function.new(:int, [:int], ns::Pointer.new(0x1000)).attach(used, "f")
      used.freeze
      [fresh, used].each do |mod|
        expect { ns::Function.new(:int, [:int], ns::Pointer.new(0x1000)).attach(mod, "g") }.to raise_error(FrozenError)
      end
    end
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
