# frozen_string_literal: true

require_relative "spec_helper"
require "tmpdir"

# lib/fiddle_jit/source_cache.rb: fiddle_jit's own files from cached
# instruction sequences, used only while a file's source is unchanged.
RSpec.describe "FiddleJit::SourceCache" do
  before { skip "fiddle_jit's loader" if FIDDLE_JIT_ORACLE_MODE }

  around do |example|
    Dir.mktmpdir("fiddle_jit_source_cache") do |dir|
      @dir = dir
      example.run
    end
  end

  let(:cache_path) { File.join(@dir, "lib.iseq") }

  def part(name, source)
    File.join(@dir, "#{name}.rb").tap { |file| File.write(file, source) }
  end

  # The value +file+'s code returns, loaded through +cache+, which
  # compiles its source (or does not).
  def load_with(cache, file, compiles:)
    if compiles
      expect(RubyVM::InstructionSequence).to receive(:compile).once.and_call_original
    else
      expect(RubyVM::InstructionSequence).not_to receive(:compile)
    end
    cache.compiled(file).eval
  end

  def cache_of(*files)
    FiddleJit::SourceCache.new(cache_path).tap { |cache| files.each { |f| cache.compiled(f) } }.save
  end

  it "loads a cached file's binary while its source is unchanged" do
    file = part("a", "# frozen_string_literal: true\n[__FILE__, \"x\".frozen?, 6 * 7]\n")
    cache_of(file)
    expect(load_with(FiddleJit::SourceCache.new(cache_path), file, compiles: false)).to eq([file, true, 42])
  end

  it "compiles a file again once its source differs from the cached one" do
    file = part("b", "1 + 1\n")
    cache_of(file)
    File.write(file, "2 + 2\n")
    expect(load_with(FiddleJit::SourceCache.new(cache_path), file, compiles: true)).to eq(4)
  end

  it "ignores a cache file it cannot read" do
    File.binwrite(cache_path, "not a cache")
    expect(load_with(FiddleJit::SourceCache.new(cache_path), part("c", ":ok\n"), compiles: true)).to eq(:ok)
  end

  it "makes a file it loads a feature, so a later require of it loads nothing" do
    file = part("d", "$fiddle_jit_source_cache_loads = ($fiddle_jit_source_cache_loads || 0) + 1\n")
    cache = FiddleJit::SourceCache.new(cache_path)
    expect(cache.require(file)).to be true
    expect(require(file)).to be false
    expect(cache.require(file)).to be false
    expect($fiddle_jit_source_cache_loads).to eq(1)
  end

  it "is off with FIDDLE_JIT_ISEQ_CACHE=0" do
    so = $LOADED_FEATURES.find { |f| f.end_with?("/fiddle_jit.so") }
    expect(FiddleJit::SourceCache.for_extension(so)).to be_a(FiddleJit::SourceCache)
    ENV["FIDDLE_JIT_ISEQ_CACHE"] = "0"
    expect(FiddleJit::SourceCache.for_extension(so)).to be_nil
  ensure
    ENV.delete("FIDDLE_JIT_ISEQ_CACHE")
  end

  it "loads fiddle_jit's files as features, none compiled from source once cached" do
    script = <<~RUBY
      compiled = []
      TracePoint.new(:script_compiled) { |t| compiled << t.instruction_sequence.path }.enable
      require "fiddle_jit"
      p [require("fiddle_jit/struct"), require("fiddle_jit/library"),
         compiled.grep(%r{/lib/fiddle_jit/(struct|library|function|pointer)\\.rb\\z})]
    RUBY
    lib = File.expand_path("../lib", __dir__)
    2.times { system(RbConfig.ruby, "-I", lib, "-e", "require 'fiddle_jit'", exception: true) } # the cache written
    out = IO.popen([RbConfig.ruby, "-I", lib, "-e", script], &:read)
    expect(out).to eq("[false, false, []]\n")
  end
end
