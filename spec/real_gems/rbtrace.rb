# rbtrace's tracer side: SysV message queues through the ffi gem (the traced
# process's side is a C extension). A private queue needs no other process.
require "rbtrace/rbtracer"

module SysV
  extend FFI::Library
  ffi_lib FFI::Library::LIBC
  attach_function :msgctl, [:int, :int, :pointer], :int
end
IPC_PRIVATE = 0
IPC_CREAT = 0o1000
IPC_RMID = 0

p MsgQ::EventMsg.size, MsgQ::EventMsg.offset_of(:buf), MsgQ::EventMsg::BUF_SIZE
q = MsgQ.msgget(IPC_PRIVATE, IPC_CREAT | 0o600)
p q >= 0
MsgQ::EventMsg.send_cmd(q, "hello")
MsgQ::EventMsg.send_cmd(q, "\x92\xA4eval\xA31+1".b)
p MsgQ::EventMsg.recv_cmd(q).delete("\0")
msg = MsgQ::EventMsg.recv_cmd(q, false)
p msg.bytesize, msg.delete("\0")
p MsgQ::EventMsg.recv_cmd(q, false)
p SysV.msgctl(q, IPC_RMID, nil)
begin
  MsgQ::EventMsg.send_cmd(q, "gone")
rescue SystemCallError => e
  p e.class
end
p FFI::LastError.exception, FFI::LastError.error == Errno::EINVAL::Errno
begin
  RBTracer.new(2**22 + 12345) # above pid_max: no such process
rescue ArgumentError => e
  p e.message
end
p defined?(FiddleJit) ? :fiddle_jit : :ffi
