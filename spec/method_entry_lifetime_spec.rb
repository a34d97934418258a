# frozen_string_literal: true

require_relative "spec_helper"

# The method entries of functions with converted parameters (callback and
# enum types) and of variadic functions
# (src/ruby/function/param_conversions.rs) are reclaimed like stubs: a child
# process (spec/fixtures/lifetime_child.rb) attaches many times and checks
# that the arena's live code stays within a bound independent of the count.
RSpec.describe "method entries of converting and variadic functions (child process)" do
  before { skip "fiddle_jit's own machinery (arena)" if FIDDLE_JIT_ORACLE_MODE }

  it "re-attaching a callback-parameter function, or attaching it in throwaway modules, leaves no entry code behind" do
    run_child_scenario("lifetime_child.rb", "callback_entries", FIXTURE_LIB, CALLBACK_FIXTURE_LIB, timeout: 300)
  end

  it "re-attaching an enum-parameter function, or attaching it or a variadic one in throwaway modules, leaves no entry code behind" do
    run_child_scenario("lifetime_child.rb", "converting_entries", FIXTURE_LIB, CALLBACK_FIXTURE_LIB, timeout: 300)
  end
end
