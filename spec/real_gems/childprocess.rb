require "childprocess"
ChildProcess.posix_spawn = true
r, w = IO.pipe
pr = ChildProcess.build("echo", "hi from child")
pr.io.stdout = w
pr.start; w.close; pr.wait
p r.read, pr.exit_code
p defined?(FiddleJit) ? :fiddle_jit : :ffi
