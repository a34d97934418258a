# No desktop session: showing fails the same way (false) on every machine.
ENV["DBUS_SESSION_BUS_ADDRESS"] = "unix:path=/nonexistent/fiddle_jit_bus"
ENV.delete("DISPLAY")
require "libnotify"
abort "libnotify.so is not installed" unless Libnotify::API.method_defined?(:notify_init)
n = Libnotify.new(summary: "hello", body: "world", timeout: 1.5, urgency: :critical, icon_path: "/nonexistent.png")
p [n.summary, n.body, n.timeout, n.urgency, n.icon_path, n.append, n.transient]
p n.notify_init("fiddle_jit"), Libnotify::FFI.notify_init("fiddle_jit")
p n.show!
p n.update(body: "again", transient: true, timeout: 2)
p n.close
n.urgency = :bogus
begin
  n.show
rescue => e
  p e.class, e.message
end
p Libnotify::FFI.enum_type(:urgency).to_h
Libnotify::FFI.notify_uninit
n = nil
GC.start
p defined?(FiddleJit) ? :fiddle_jit : :ffi
