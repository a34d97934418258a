# frozen_string_literal: true

require_relative "spec_helper"
require "tmpdir"

# fiddle_jit's own Ruby files from the binaries of their compiled
# instruction sequences (src/ruby/own_files.rs: FiddleJit.__load_cached and
# __require_own), used only while a file's source, path and Ruby are the
# ones the binary was made for; lib/fiddle_jit/source_cache.rb compiles and
# writes them.
RSpec.describe "fiddle_jit's own files from instruction binaries" do
  before { skip "fiddle_jit's loader" if FIDDLE_JIT_ORACLE_MODE }

  around do |example|
    Dir.mktmpdir("fiddle_jit_source_cache") do |dir|
      @dir = dir
      example.run
    end
  end

  let(:key) { "this ruby" }

  def part(name, source)
    File.join(@dir, "#{name}.rb").tap { |file| File.write(file, source) }
  end

  def binary_of(file) = File.join(@dir, "iseq", "#{File.basename(file, ".rb")}.bin")

  # Compiles +file+ (evaluating it) and writes its binary.
  def compile(file)
    expect(RubyVM::InstructionSequence).to receive(:compile).once.and_call_original
    expect(FiddleJit::SourceCache.load(file, binary_of(file), key)).to be true
    RSpec::Mocks.space.proxy_for(RubyVM::InstructionSequence).reset
  end

  def load_cached(file, path: file, key: self.key) = FiddleJit.__load_cached(path, binary_of(file), key)

  before { require File.expand_path("../lib/fiddle_jit/source_cache", __dir__) }

  it "evaluates a file from its binary while its source is unchanged, compiling nothing" do
    file = part("a", "# frozen_string_literal: true\n$fj_iseq_test = [__FILE__, \"x\".frozen?, 6 * 7]\n")
    compile(file)
    $fj_iseq_test = nil
    expect(RubyVM::InstructionSequence).not_to receive(:compile)
    expect(load_cached(file)).to be true
    expect($fj_iseq_test).to eq([file, true, 42])
  ensure
    $fj_iseq_test = nil
  end

  it "has no binary once the source differs, under another key or at another path" do
    file = part("b", "1 + 1\n")
    compile(file)
    expect(load_cached(file, key: "another ruby")).to be false
    moved = part("b2", "1 + 1\n")
    FileUtils.cp(binary_of(file), binary_of(moved))
    expect(load_cached(moved)).to be false
    File.write(file, "2 + 2\n")
    expect(load_cached(file)).to be false
  end

  it "has no binary in a file it cannot read, a foreign or truncated one, or one Ruby rejects" do
    file = part("c", ":ok\n")
    expect(load_cached(file)).to be false # none written
    compile(file)
    good = File.binread(binary_of(file))
    [good[0, good.size - 40], "not a cache", good.sub(/YARB.*/m, "YARB garbage")].each do |bad|
      File.binwrite(binary_of(file), bad)
      expect(load_cached(file)).to be false
    end
  end

  it "makes a file it loads a feature, so a later require of it loads nothing" do
    file = part("d", "$fj_iseq_loads = ($fj_iseq_loads || 0) + 1\n")
    compile(file)
    expect(require(file)).to be false
    expect($fj_iseq_loads).to eq(1)
  ensure
    $fj_iseq_loads = nil
  end

  it "does not load one of fiddle_jit's files twice" do
    expect(FiddleJit.__require_own("struct")).to be false
  end

  def compiled_in_child(env, code)
    script = <<~RUBY
      compiled = []
      TracePoint.new(:script_compiled) { |t| compiled << t.instruction_sequence.path }.enable
      #{code}
      p compiled.grep(%r{/lib/fiddle_jit/(struct|library|function|pointer|ffi_namespace|source_cache)\\.rb\\z}).map { File.basename(_1) }.sort
    RUBY
    lib = File.expand_path("../lib", __dir__)
    2.times { system(env, RbConfig.ruby, "-I", lib, "-e", "require 'fiddle_jit/ffi'", exception: true) } # the binaries written
    IO.popen(env, [RbConfig.ruby, "-I", lib, "-e", script], &:read)
  end

  it "loads fiddle_jit's files as features, none compiled from source once their binaries exist" do
    out = compiled_in_child({}, 'require "fiddle_jit/ffi"; p [require("fiddle_jit/struct"), require("fiddle_jit/library")]')
    expect(out).to eq("[false, false]\n[]\n")
  end

  it "compiles every file with FIDDLE_JIT_ISEQ_CACHE=0" do
    out = compiled_in_child({ "FIDDLE_JIT_ISEQ_CACHE" => "0" }, 'require "fiddle_jit/ffi"')
    expect(out).to eq(%w[ffi_namespace.rb function.rb library.rb pointer.rb struct.rb].inspect + "\n")
  end
end
