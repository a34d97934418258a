# On Linux sys-proctable reads /proc in Ruby; its bindings for the other
# systems are ffi-gem code: their struct layouts load here up to the first
# type only those systems define, and must fail there the same way.
require "sys/proctable"
require "ffi" # (what the other systems' bindings load first)
begin
  FFI.find_type(:uintptr_t)
rescue TypeError
  # (The ffi gem 1.15's aarch64-linux types.conf has no uint32_t, uintptr_t...:
  # the layouts below would stop at other types.)
  abort "this ffi gem's platform types lack uintptr_t"
end
me = Sys::ProcTable.ps(pid: Process.pid)
p [me.pid == Process.pid, me.ppid == Process.ppid, me.uid == Process.uid, me.state, me.nlwp > 0]
p Sys::ProcTable.fields.size

%w[bsd/sys/dragonfly/sys/proctable/structs sunos/sys/proctable darwin/sys/proctable].each do |file|
  require file
rescue TypeError, LoadError => e
  p [file, e.class, e.message.lines.first.strip]
end
s = Sys::ProcTableStructs
p [s::Timeval.size, s::RTPrio.size, s::Rusage.size, s::Rusage.offset_of(:ru_maxrss), s::Sigset.size]
r = s::Rusage.new
r[:ru_utime][:tv_sec] = 1_000_000
r[:ru_maxrss] = 1234
p [r.utime.to_i, r.maxrss, s::Sigset.new.bits]
p s.enum_type(:lwpstat).symbols, s.enum_type(:procstat)[:SZOMB]
pt = Sys::ProcTable
p [pt::Timeval.size, pt.const_get(:ProcBsdInfo).size, pt.const_get(:ProcTaskInfo).size,
   pt.const_get(:ProcThreadInfo).size, pt.const_get(:ProcTaskAllInfo).size]
p defined?(FiddleJit) ? :fiddle_jit : :ffi
