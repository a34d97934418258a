require "childprocess"
# childprocess ships posix_spawn's struct sizes and flags for a few
# platforms only (x86_64-linux, i386-linux, macOS, Solaris); elsewhere
# (aarch64-linux) `posix_spawn = true` logs a warning and falls back to
# fork+exec, which never calls through ffi. There the sizes come from the
# gem's own generator (childprocess/tools/generator.rb, run in a scratch
# directory that goes first on the load path), so posix_spawn runs.
platform_file = "childprocess/unix/platform/#{ChildProcess.platform_name}.rb"
unless $LOAD_PATH.any? { |dir| File.exist?(File.join(dir, platform_file)) }
  require "childprocess/tools/generator"
  require "tmpdir"
  dir = Dir.mktmpdir("childprocess-platform")
  generator = ChildProcess::Tools::Generator.new
  generator.instance_variable_set(:@out, File.join(dir, platform_file))
  stdout = $stdout
  $stdout = File.open(File::NULL, "w") # it reports each size it measures
  Dir.chdir(dir) { generator.generate }
  $stdout = stdout
  $LOAD_PATH.unshift dir
end
ChildProcess.posix_spawn = true
r, w = IO.pipe
pr = ChildProcess.build("echo", "hi from child")
pr.io.stdout = w
pr.start; w.close; pr.wait
p r.read, pr.exit_code
p defined?(FiddleJit) ? :fiddle_jit : :ffi
