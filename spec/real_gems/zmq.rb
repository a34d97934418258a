require "ffi-rzmq"
ctx = ZMQ::Context.new
a = ctx.socket(ZMQ::PAIR); b = ctx.socket(ZMQ::PAIR)
p a.bind("inproc://t"), b.connect("inproc://t")
p a.send_string("hello zmq")
s = +""; p b.recv_string(s), s
p LibZMQ.version
a.close; b.close; ctx.terminate
p defined?(FiddleJit) ? :fiddle_jit : :ffi
