require "spoon"
pid = Spoon.spawnp("true")
Process.wait(pid)
p $?.exitstatus
p defined?(FiddleJit) ? :fiddle_jit : :ffi
