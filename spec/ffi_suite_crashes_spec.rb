# frozen_string_literal: true

require_relative "spec_helper"
require "open3"
require "timeout"

# The two crashes the ffi gem's own suite (v1.17.0) found (issue 6/7), each
# reduced to a program written for the ffi gem. Each runs in a child
# process under the ffi gem and under `-rfiddle_jit/ffi_shim`; both must
# exit normally and print the same, expected, output.
RSpec.describe "crashes found by the ffi gem's own suite" do
  def lib_dir = File.expand_path("../lib", __dir__)

  def run_script(script, *ruby_args, timeout: 60)
    out, status = Timeout.timeout(timeout) { Open3.capture2e(RbConfig.ruby, *ruby_args, "-e", script, CALLBACK_FIXTURE_LIB) }
    raise "ruby #{ruby_args.join(" ")} died (#{status}):\n#{out[0, 3000]}" unless status.success?

    out
  end

  def same_output(script)
    oracle = run_script(script)
    expect(run_script(script, "-I", lib_dir, "-rfiddle_jit/ffi_shim")).to eq(oracle)
    oracle
  end

  # fork_spec.rb "async thread dispatch works after forking" crashed 2 runs
  # in 6: parent and child both made a callback after the fork. The code
  # arena's memfd is shared by parent and child, and each kept its own fill
  # counter, so the child's thunk for its callback was written over the
  # parent's at the same offset: the parent's C thread then jumped through
  # the child's slot address (issue 13/7 item 4). Callbacks made before the
  # fork and reused never crashed; calling them from a foreign thread (the
  # dispatcher) only made the window wide.
  it "parent and child both make callbacks after a fork (fork_spec.rb)" do
    script = <<~'RUBY'
      require "ffi"
      module L
        extend FFI::Library
        ffi_lib ARGV[0]
        callback :cb, [:int], :int
        attach_function :cb_call_on_thread, [:cb, :int], :int, blocking: true
      end
      results = []
      8.times do |i|
        results << L.cb_call_on_thread(proc { |v| v + 1 }, i)
        pid = fork do
          ok = L.cb_call_on_thread(proc { |v| v * 2 }, i) == 2 * i && L.cb_call_on_thread(proc { |v| v - 1 }, i) == i - 1
          exit!(ok ? 44 : 1)
        end
        results << L.cb_call_on_thread(proc { |v| v + 100 }, i)
        results << Process.wait2(pid)[1].exitstatus
      end
      puts results.join(" ")
    RUBY
    expected = (0...8).flat_map { |i| [i + 1, i + 100, 44] }.join(" ")
    expect(same_output(script).strip).to eq(expected)
  end
end
