# frozen_string_literal: true

require_relative "spec_helper"
require "open3"

RSpec.describe "stub inspection" do
  let(:mod) do
    Module.new do
      extend FiddleJit::Library
      ffi_lib FiddleJit::Library::LIBC
      attach_function :strlen, [:string], :size_t
      attach_function :labs, [:long], :long
    end
  end

  it "disassembles a stub, naming the C function it calls and its slow-path thunk" do
    text = FiddleJit.disassemble(mod, :strlen)
    expect(text).to include("fiddle_jit stub for strlen")
    if RbConfig::CONFIG["host_cpu"].match?(/aarch64|arm64/)
      # ldr x16, <pool> ; blr x16 (yaxpeax-arm's syntax)
      call = text.lines.index { |l| l.match?(/\sldr x16, \$\+0x\h+  ; strlen$/) }
      expect(call).not_to be_nil, text
      expect(text.lines[call + 1]).to match(/\sblr x16$/)
    else
      expect(text).to match(/call\s+qword ptr \[[0-9A-Fa-f]+h?\]\s+; strlen/)
    end
    expect(text).not_to include(".inst")
    expect(text).to include("fiddle_jit thunk arg_cstr")
    expect(text).to include("rb_ull2inum") # size_t results beyond Fixnum range
    expect(text.lines.grep(/\A0x/).size).to be > 10
  end

  it "keeps the hot path first: the C call comes before any thunk call" do
    lines = FiddleJit.disassemble(mod, :labs).lines
    c_call = lines.index { |l| l.include?("; labs") }
    thunk = lines.index { |l| l.include?("thunk") }
    expect(c_call).to be < thunk
  end

  it "is reachable from the AttachedFunction attach_function returns" do
    fn = mod.attach_function :abs, [:int], :int
    expect(fn.disassemble).to include("fiddle_jit stub for abs")
    expect(fn.code_bytes).to be_between(16, 256)
  end

  it "raises ArgumentError for a name that was not attached" do
    expect { FiddleJit.disassemble(mod, :nope) }.to raise_error(ArgumentError, /nope/)
  end

  it "writes /tmp/perf-<pid>.map entries when FIDDLE_JIT_PERF_MAP=1" do
    script = <<~RUBY
      $LOAD_PATH.unshift #{File.expand_path("../lib", __dir__).dump}
      require "fiddle_jit"
      module M; extend FiddleJit::Library; ffi_lib "c"; attach_function :strlen, [:string], :size_t; end
      map = File.read("/tmp/perf-\#{Process.pid}.map")
      File.delete("/tmp/perf-\#{Process.pid}.map")
      stub = M.instance_variable_get(:@fiddle_jit_functions)[:strlen].stub_address
      print map.lines.grep(/fiddle_jit:strlen/).first.split[0].to_i(16) == stub ? "ok" : map
    RUBY
    out, status = Open3.capture2e({ "FIDDLE_JIT_PERF_MAP" => "1" }, RbConfig.ruby, "-e", script)
    expect(status.success? && out == "ok").to be(true), out
  end

  it "writes no perf map by default" do
    script = <<~RUBY
      $LOAD_PATH.unshift #{File.expand_path("../lib", __dir__).dump}
      require "fiddle_jit"
      module M; extend FiddleJit::Library; ffi_lib "c"; attach_function :strlen, [:string], :size_t; end
      print File.exist?("/tmp/perf-\#{Process.pid}.map") ? "map" : "none"
    RUBY
    out, = Open3.capture2e({ "FIDDLE_JIT_PERF_MAP" => nil }, RbConfig.ruby, "-e", script)
    expect(out).to eq("none")
  end
end
