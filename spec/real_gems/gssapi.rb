# MIT GSSAPI without a Kerberos realm: names, OIDs and buffers work; getting
# credentials fails with the library's own status text (paths fixed below).
require "tmpdir"
ENV["KRB5_CONFIG"] = "/dev/null"
ENV["KRB5CCNAME"] = "FILE:#{Dir.tmpdir}/fiddle_jit_no_such_ccache"
ENV["KRB5_KTNAME"] = "FILE:#{Dir.tmpdir}/fiddle_jit_no_such_keytab"
require "gssapi"
require "gssapi/extensions"
L = GSSAPI::LibGSSAPI

def status(&blk)
  blk.call
rescue GSSAPI::GssApiError => e
  p e.class, e.message
end

min = FFI::MemoryPointer.new :OM_uint32
buf = L::ManagedGssBufferDesc.new
p L.gss_oid_to_str(min, L::GSS_C_NT_HOSTBASED_SERVICE, buf.pointer), buf.value
oid = L::GssOID.new(L::GSS_C_NT_EXPORT_NAME)
p oid[:length], oid[:elements].read_bytes(oid[:length]).bytes
g = GSSAPI::Simple.new("example.com", "HTTP")
name = g.instance_variable_get(:@int_svc_name)
p name.class, name.null?
out = L::ManagedGssBufferDesc.new
type = FFI::MemoryPointer.new :pointer
p L.gss_display_name(min, name, out.pointer, type), out.value, out.length
p L::GssOID.new(type.read_pointer)[:length]
p L.gss_export_name(min, name, L::ManagedGssBufferDesc.new.pointer).to_s(16) # GSS_S_NAME_NOT_MN
status { g.init_context }
status { g.accept_context("x") }
status { g.acquire_credentials }
principal = GSSAPI::Simple.new("example.com", "HTTP/example.com@EXAMPLE.COM", "#{Dir.tmpdir}/fiddle_jit_keytab")
p principal.instance_variable_get(:@int_svc_name).class
u = L::UnManagedGssBufferDesc.new
u.value = "abc"
p u.length, u.value
begin
  u[:length]
rescue NoMethodError => e
  p e.class
end
p L::GSS_C_EMPTY_BUFFER.length, L::GSS_C_EMPTY_BUFFER.value
p L::GssIOVBufferDesc.size, L::GssChannelBindingsStruct.size, L::GssChannelBindingsStruct.offset_of(:application_data)
p L.respond_to?(:gss_wrap_iov), L.respond_to?(:gss_wrap_aead)
g = name = principal = nil
GC.start
p defined?(FiddleJit) ? :fiddle_jit : :ffi
