# frozen_string_literal: true

require_relative "spec_helper"
require "open3"

# Published gems written for the ffi gem (Debian packages: rb-inotify,
# ethon/libcurl, rbnacl/libsodium, sys-filesystem, ffi-yajl,
# ffi-libarchive, ffi-bit-masks, ffi-rzmq/libzmq, childprocess, sassc,
# magic/libmagic, spoon, get_process_mem, gir_ffi/GObject, sys-proctable,
# rbtrace, gssapi/MIT Kerberos, libnotify, kakasi, nfnetlink, nfqueue,
# ffi-compiler, ohai, aubio, ruby-vips/libvips), run unmodified: each script in
# spec/real_gems/ runs once under the ffi gem and once with
# `-rfiddle_jit/ffi_shim`, and must print the same thing (apart from the
# last line, which names the backend).
RSpec.describe "unmodified gems that use the ffi gem" do
  LIB = File.expand_path("../lib", __dir__)

  def run(script, *flags)
    out, status = Open3.capture2e(RbConfig.ruby, *flags, script)
    [status.success?, out]
  end

  Dir[File.expand_path("real_gems/*.rb", __dir__)].sort.each do |script|
    name = File.basename(script, ".rb")
    it "#{name} behaves the same on fiddle_jit as on the ffi gem" do
      ok_ffi, out_ffi = run(script)
      skip "#{name}: the gem or its C library is not installed (#{out_ffi.lines.first&.strip})" unless ok_ffi

      ok_fj, out_fj = run(script, "-I", LIB, "-rfiddle_jit/ffi_shim")
      expect(ok_fj).to be(true), out_fj
      expect(out_ffi.lines.last.strip).to eq(":ffi")
      expect(out_fj.lines.last.strip).to eq(":fiddle_jit")
      expect(out_fj.lines[0...-1]).to eq(out_ffi.lines[0...-1])
    end
  end
end
