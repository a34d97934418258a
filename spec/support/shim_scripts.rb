# frozen_string_literal: true

require "open3"
require "timeout"

# Programs written for the ffi gem, run in fresh processes: once under the
# ffi gem (the oracle) and once under `ruby -rfiddle_jit/ffi_shim`.
module ShimScripts
  def lib_dir = File.expand_path("../../lib", __dir__)

  # Runs +script+ (with +args+ as its ARGV) in a fresh process; killed after
  # +timeout+ seconds (a deadlock shows up as a failure, not as a hung
  # suite); a crash or non-zero exit raises with the output.
  def run_script(script, *ruby_args, args: [], timeout: 30)
    Open3.popen3(RbConfig.ruby, *ruby_args, "-e", script, *args) do |stdin, stdout, stderr, wait|
      stdin.close
      out = err = nil
      begin
        Timeout.timeout(timeout * SLOWDOWN) do
          out = stdout.read
          err = stderr.read
        end
      rescue Timeout::Error
        Process.kill(:KILL, wait.pid)
        raise "timed out after #{timeout * SLOWDOWN}s (a deadlock?) running: ruby #{ruby_args.join(" ")}"
      end
      raise "ruby #{ruby_args.join(" ")} failed (#{wait.value}):\n#{err}\n#{out}" unless wait.value.success?

      out
    end
  end

  # The output under the ffi gem, after checking that fiddle_jit prints
  # exactly the same.
  def same_output(script, **opts)
    oracle = run_script(script, **opts)
    ours = run_script(script, "-I", lib_dir, "-rfiddle_jit/ffi_shim", **opts)
    expect(ours).to eq(oracle)
    oracle
  end
end
