# frozen_string_literal: true

require_relative "spec_helper"
require "open3"
require "timeout"

# FFI code used from non-main Ractors (issue 6/7): attached functions run in
# any Ractor, the runtime they call is shared safely, libraries, layouts,
# types, memory and Functions can be made shareable, callbacks run in the
# Ractor that made them — as the ffi gem 1.16+ does. The scenarios
# (spec/fixtures/ractor_child.rb) run in a child process under
# `-rfiddle_jit/ffi_shim` and under the ffi gem; fiddle_jit must give the
# ffi gem 1.17's results, and an oracle of the 1.16+ line must agree.
RSpec.describe "Ractors" do
  CHILD = File.expand_path("fixtures/ractor_child.rb", __dir__)

  # What the ffi gem 1.17 gives (checked against it on Ruby 3.3 and 3.4).
  EXPECTED = {
    "labs" => "3",
    "strlen" => "4",
    "null result" => "true",
    "string result" => "false",
    "raises TypeError in the Ractor" => "raised TypeError",
    "errno" => "true",
    "memory" => "[7, 8]",
    "struct by_ref" => "true",
    "struct class from main" => "5",
    "enum function of a frozen module" => ":two",
    "enum_value of a frozen module" => "3",
    "variable of a frozen module" => "true",
    "variadic function of a frozen module" => '"42-x"',
    "callback (a block)" => "[1, 2, 3]",
    "callback (FFI::Function made in the Ractor)" => "15",
    "callback from a foreign thread runs in its Ractor" => "[10, true]",
    "callback from a foreign thread in a Ractor, after one in the main Ractor" => "[10, true]",
    "shareable Function passed in" => "42",
    "shareable MemoryPointer" => "[11, true]",
    "shareable Struct" => "-34",
    "shareable DynamicLibrary" => "true",
    "DynamicLibrary opened in the Ractor" => "true",
    "Library constants" => "[String, TrueClass, String]",
    # The ffi gem 1.16+: new libraries cannot be made in a Ractor.
    "new FFI::Library module in the Ractor" => "raised Ractor::IsolationError"
  }.freeze

  # Deliberate differences (docs/compatibility.md): fiddle_jit's NULL is
  # frozen, so shareable; the ffi gem's constant is not readable from a
  # non-main Ractor.
  DIFFERENT = { "Pointer::NULL" => { "fiddle_jit" => "true", "ffi" => "raised Ractor::IsolationError" } }.freeze

  def self.results(*ruby_args)
    @results ||= {}
    @results[ruby_args] ||= begin
      out, status = Timeout.timeout(120) do
        Open3.capture2e(RbConfig.ruby, *ruby_args, CHILD, CALLBACK_FIXTURE_LIB, *EXPECTED.keys, *DIFFERENT.keys)
      end
      raise "ractor_child.rb #{ruby_args.join(" ")} failed (#{status}):\n#{out}" unless status.success?

      out.lines.grep(/: /).to_h { |l| l.chomp.split(": ", 2) }
    end
  end

  def jit = self.class.results("-I", File.expand_path("../lib", __dir__), "-rfiddle_jit/ffi_shim")
  def oracle = self.class.results
  def oracle_follows_117? = Gem::Version.new(FFI::VERSION) >= Gem::Version.new("1.16.0")

  EXPECTED.each do |name, want|
    it "#{name}: #{want}" do
      expect(jit.fetch(name)).to eq(want)
      # Debian's ffi 1.15.5 (Ruby 3.1) predates Ractor support (ffi 1.16.0,
      # "Make FFI Ractor compatible"): most of its methods are Ractor-unsafe
      # (and a few scenarios hang it), so it is not run there.
      expect(oracle.fetch(name)).to eq(want) if oracle_follows_117?
    end
  end

  DIFFERENT.each do |name, want|
    it "#{name}: #{want["fiddle_jit"]} (the ffi gem: #{want["ffi"]})" do
      expect(jit.fetch(name)).to eq(want["fiddle_jit"])
      expect(oracle.fetch(name)).to eq(want["ffi"]) if oracle_follows_117?
    end
  end

  # A FunctionType holds its Signature natively (src/ruby/footprint.rs),
  # where make_shareable's walk does not reach: it is made shareable with
  # the type, so a Ractor making a Function of it reads only shareable
  # objects.
  it "a callback type over Enum and Struct types is shareable, with its signature" do
    point = Class.new(FiddleJit::Struct) { layout :x, :int }
    m = Module.new do
      extend FiddleJit::Library
      enum :small, %i[zero one]
      callback :cb, [:small, point.by_ref], :small
    end
    type = m.find_type(:cb)
    expect([Ractor.shareable?(type), Ractor.shareable?(type.__signature)]).to eq([true, true])
  end
end
