# frozen_string_literal: true

require_relative "spec_helper"
require "open3"

# aarch64 fetches instructions incoherently with data writes: code written
# through the arena's RW view must be cleaned to the point of unification
# (dc cvau), invalidated in the instruction cache (ic ivau) and followed by
# dsb ish; isb before it runs (src/emit/arena.rs, docs/aarch64.md).
#
# qemu-user models no cache, so running the code proves nothing: it keeps a
# stale translation of rewritten code even after a correct flush, and runs
# fresh code without one. What it can show is which instructions run, in
# order: with QEMU_LOG=in_asm it writes each block of guest code to stderr
# the first time it translates it. This checks that the flush sequence runs
# inside fiddle_jit.so after it is loaded and before a stub's first
# instruction does; it fails if the flush is removed.
RSpec.describe "aarch64 instruction cache maintenance" do
  ICACHE_CHILD = <<~'RUBY'
    $stderr.sync = true
    $stderr.puts "FJ-MARK load"
    require "fiddle_jit"
    module M; extend FiddleJit::Library; ffi_lib "c"; attach_function :strlen, [:string], :size_t; end
    text = File.readlines("/proc/self/maps").grep(/r-xp .*fiddle_jit\.so$/).first.split.first
    stub = M.instance_variable_get(:@fiddle_jit_functions)[:strlen].stub_address
    $stderr.puts "FJ-MARK attached #{text} #{stub.to_s(16)}"
    M.strlen("hello")
    $stderr.puts "FJ-MARK called"
  RUBY
  FLUSH = ["dc cvau", "dsb ish", "ic ivau", "dsb ish", "isb"].freeze

  it "runs dc cvau, ic ivau, dsb ish and isb in fiddle_jit.so before a new stub's first instruction" do
    skip "x86-64 fetches instructions coherently with data writes: there is no flush" unless
      RbConfig::CONFIG["host_cpu"].match?(/aarch64|arm64/)
    skip "compares nothing in oracle mode" if FIDDLE_JIT_ORACLE_MODE

    _, log, status = Open3.capture3({ "QEMU_LOG" => "in_asm" }, RbConfig.ruby, "-I", File.expand_path("../lib", __dir__),
                                    "-e", ICACHE_CHILD)
    expect(status.success?).to be(true), log[-3000..]
    skip "not running under qemu-user: nothing logs the instructions run (on hardware this is untested)" unless
      log.include?("IN:")

    lines = log.lines(chomp: true)
    at = ->(mark) { lines.index { |l| l.include?("FJ-MARK #{mark}") } or raise "no #{mark} marker in the log" }
    loaded = at.call("load")
    attached = at.call("attached")
    called = at.call("called")
    range, stub = lines[attached].split.values_at(2, 3)
    text = Range.new(*range.split("-").map { |h| h.to_i(16) }, true)
    stub = stub.to_i(16)

    # "0x0000005502e9e800:  d50b752a  ic       ivau, x10" => [address, "ic ivau, x10"]
    code = lines.each_with_index.filter_map do |l, i|
      m = l.match(/\A0x(\h+):\s+\h{8}\s+(.*?)\s*\z/) or next
      [i, m[1].to_i(16), m[2].squeeze(" ")]
    end
    op = ->(asm) { asm.split.first(2).join(" ").delete(",") }
    flush_lines = code.select { |i, addr, asm| i > loaded && text.cover?(addr) && FLUSH.include?(op.call(asm)) }
    # In program order from the first dc cvau (each block is logged once,
    # when it first runs): cleaning, barrier, invalidation, barrier, isb.
    ops = flush_lines.map { |_, _, asm| op.call(asm) }.drop_while { |o| o != "dc cvau" }
    expect(FLUSH.all? { |want| (ops = ops.drop_while { |o| o != want }).shift == want }).to be(true),
           "flush sequence #{FLUSH.inspect} not found in fiddle_jit.so's code run after load: #{flush_lines.inspect}"

    stub_translated = code.find { |_, addr, _| addr == stub }&.first
    expect(stub_translated).not_to be_nil, "the stub at #{stub.to_s(16)} never ran"
    expect(stub_translated).to be_between(attached, called)
    expect(flush_lines.find { |_, _, asm| op.call(asm) == "isb" }&.first).to be < stub_translated
  end
end
