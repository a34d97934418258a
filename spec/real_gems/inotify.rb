require "rb-inotify"
require "tmpdir"
dir = Dir.mktmpdir
n = INotify::Notifier.new
events = []
n.watch(dir, :create, :delete) { |e| events << [e.name, e.flags.sort] }
File.write(File.join(dir, "a.txt"), "x")
File.delete(File.join(dir, "a.txt"))
n.process
p events
p defined?(FiddleJit) ? :fiddle_jit : :ffi
