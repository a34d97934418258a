require "get_process_mem"
m = GetProcessMem.new
p m.bytes > 0, m.mb.class
p defined?(FiddleJit) ? :fiddle_jit : :ffi
