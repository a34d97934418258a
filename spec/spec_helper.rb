# frozen_string_literal: true

# Spec helper for fiddle_jit.
#
# Every spec file starts with `require_relative "spec_helper"`, so no .rspec
# file is needed. Run the suite from the repository root:
#
#   rspec spec                       # or: rake spec (builds the extension first)
#
# What this file does:
#   * puts ../lib on the load path and requires "fiddle_jit" (the subject) and
#     "ffi" (the oracle: Debian's ruby-ffi 1.15.5);
#   * builds every spec/fixtures/*.c into its own .so in
#     spec/fixtures/build/<arch>-ruby<major.minor>/
#     with the system `cc -shared -fPIC -O1` when the .so is missing or older
#     than the .c (fixture.c → libfjfixture.so as FIXTURE_LIB,
#     callback_fixture.c → CALLBACK_FIXTURE_LIB, memory_fixture.c →
#     MEMORY_FIXTURE_LIB);
#   * loads spec/support/*.rb (the differential helper `expect_same`).
#
# Oracle self-check: FIDDLE_JIT_SPEC_ORACLE=1 rspec spec
#   runs the whole suite with FiddleJit aliased to FFI, which checks that the
#   specs themselves describe the ffi gem's behaviour (every spec must pass in
#   that mode). Useful before the extension builds.

$LOAD_PATH.unshift File.expand_path("../lib", __dir__)

require "rbconfig"
require "fileutils"
require "ffi"

module FixtureBuild
  # One directory per architecture and Ruby: chroots of other Debian
  # releases share this checkout, and a library built against a newer glibc
  # would not load on the host.
  DIR = File.expand_path("fixtures/build/#{RbConfig::CONFIG["arch"]}-ruby#{RUBY_VERSION[/\A\d+\.\d+/]}", __dir__)
  SRC = File.expand_path("fixtures/fixture.c", __dir__)
  LIB = File.join(DIR, "libfjfixture.so")

  # Builds spec/fixtures/<name>.c into build/lib<name>.so (fixture.c keeps
  # its historical name libfjfixture.so) when missing or stale.
  def self.build!(src = SRC, lib = nil)
    base = File.basename(src, ".c")
    lib ||= File.join(DIR, base == "fixture" ? "libfjfixture.so" : "lib#{base}.so")
    return lib if File.exist?(lib) && File.mtime(lib) >= File.mtime(src)

    FileUtils.mkdir_p(DIR)
    cc = ENV["CC"] || "cc"
    # Build to a private name and rename, so concurrent spec runs never load a
    # half-written library.
    tmp = File.join(DIR, "#{File.basename(lib, ".so")}.#{Process.pid}.so.tmp")
    cmd = [cc, "-shared", "-fPIC", "-O1", "-o", tmp, src, "-lpthread", "-ldl"]
    out = IO.popen(cmd, err: %i[child out], &:read)
    unless $?.success?
      File.delete(tmp) if File.exist?(tmp)
      abort "spec_helper: building the fixture library failed:\n  #{cmd.join(" ")}\n#{out}"
    end
    File.rename(tmp, lib)
    lib
  end

  # Every spec/fixtures/*.c, built: { "fixture" => path, "callback_fixture" => path }.
  def self.build_all!
    Dir[File.expand_path("fixtures/*.c", __dir__)].sort.to_h { |src| [File.basename(src, ".c"), build!(src)] }
  end
end

# How many times slower than native this Ruby runs: `rake arm64` sets
# FIDDLE_JIT_SLOWDOWN for Ruby under qemu-user. It scales the hang guards
# (Timeout around child processes and waits, so a deadlock still fails)
# and the fuzzer's volume, never a value an example asserts.
SLOWDOWN = Integer(ENV.fetch("FIDDLE_JIT_SLOWDOWN", "1"))

FIXTURE_LIBS = FixtureBuild.build_all!.freeze
FIXTURE_LIB = FIXTURE_LIBS.fetch("fixture").freeze
CALLBACK_FIXTURE_LIB = FIXTURE_LIBS.fetch("callback_fixture").freeze
MEMORY_FIXTURE_LIB = FIXTURE_LIBS.fetch("memory_fixture").freeze

if ENV["FIDDLE_JIT_SPEC_ORACLE"] == "1"
  # Self-check mode: the subject *is* the oracle.
  FiddleJit = FFI unless defined?(FiddleJit)
  FIDDLE_JIT_ORACLE_MODE = true
else
  require "fiddle_jit"
  FIDDLE_JIT_ORACLE_MODE = false
end

Dir[File.expand_path("support/**/*.rb", __dir__)].sort.each { |f| require f }
FFI_FOLLOWED_VERSION = Differential::FOLLOWED_VERSION

RSpec.configure do |config|
  config.include Differential::Helpers
  config.include ChildScenario
  config.expect_with(:rspec) { |c| c.syntax = :expect }
  config.disable_monkey_patching!
  config.order = :defined
end
