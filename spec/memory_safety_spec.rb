# frozen_string_literal: true

require_relative "spec_helper"
require "rbconfig"
require "tmpdir"

# Bad input never crashes: the same exception class as the ffi gem (or the
# documented one); memory is released exactly once.
RSpec.describe "memory safety" do
  def run_child(mode, log = "/dev/null")
    lib_dir = File.expand_path("../lib", __dir__)
    out = IO.popen([RbConfig.ruby, File.expand_path("fixtures/memory_child.rb", __dir__), lib_dir,
                    MEMORY_FIXTURE_LIB, mode, log], err: %i[child out], &:read)
    expect($?.success?).to be(true), "child #{mode} failed:\n#{out}"
    out.lines.last.split
  end

  describe "bad input (differential)" do
    it "out-of-bounds reads and writes raise IndexError, NULL raises NullPointerError" do
      expect_same_outcome("oob read") { |ns| ns::MemoryPointer.new(8).get_int64(1) }
      expect_same_outcome("oob write") { |ns| ns::MemoryPointer.new(8).put_int32(6, 1) }
      expect_same_outcome("oob array write") { |ns| ns::MemoryPointer.new(:int, 2).write_array_of_int([1, 2, 3]) }
      expect_same_outcome("oob struct read") do |ns|
        Class.new(ns::Struct) { layout :a, :long, :b, :long }.new(ns::MemoryPointer.new(12))[:b]
      end
      expect_same_outcome("NULL read") { |ns| ns::Pointer::NULL.read_pointer }
      expect_same_outcome("NULL string") { |ns| ns::Pointer::NULL.read_string }
      expect_same_outcome("NULL struct") { |ns| Class.new(ns::Struct) { layout :a, :int }.new(ns::Pointer::NULL)[:a] = 1 }
    end

    it "a too-long string into a sized buffer raises IndexError and leaves the memory unchanged" do
      expect_same_outcome("too long") do |ns|
        m = ns::MemoryPointer.new(8)
        m.put_string(0, "x" * 8)
      end
      expect_same_outcome("too long, memory unchanged") do |ns|
        m = ns::MemoryPointer.new(8)
        begin
          m.write_string("y" * 9)
        rescue IndexError
          nil
        end
        m.read_bytes(8)
      end
      expect_same_outcome("char array too long") do |ns|
        Class.new(ns::Struct) { layout :name, [:char, 4] }.new[:name] = "abcde"
      end
    end

    it "AutoPointer argument checks" do
      expect_same_outcome("autopointer of MemoryPointer") { |ns| ns::AutoPointer.new(ns::MemoryPointer.new(4), proc {}) }
      expect_same_outcome("autopointer not callable") { |ns| ns::AutoPointer.new(ns::Pointer.new(16), 5) }
      expect_same_outcome("autopointer no release") { |ns| ns::AutoPointer.new(ns::Pointer.new(16)) }
      expect_same_outcome("managed struct no pointer") do |ns|
        k = Class.new(ns::ManagedStruct) { layout :a, :int }
        k.define_singleton_method(:release) { |_| nil }
        k.new
      end
      expect_same_outcome("managed struct no release") { |ns| Class.new(ns::ManagedStruct) { layout :a, :int }.new(ns::Pointer.new(16)) }
    end
  end

  unless FIDDLE_JIT_ORACLE_MODE
    describe "freed memory (fiddle_jit: NULL after free, unlike the ffi gem)" do
      it "a freed MemoryPointer raises NullPointerError instead of reading freed memory" do
        m = FiddleJit::MemoryPointer.new(8)
        m.write_int(5)
        expect(m.free).to equal(m)
        expect(m.null?).to be(true)
        expect(m.size).to eq(0)
        expect { m.read_int }.to raise_error(FiddleJit::NullPointerError)
        expect { m.write_int(1) }.to raise_error(FiddleJit::NullPointerError)
        expect { m.free }.to output(/non allocated pointer/).to_stderr
      end

      it "the block form frees the memory when the block ends, even when it raises" do
        kept = nil
        FiddleJit::MemoryPointer.new(:int, 2) do |p|
          p.write_array_of_int([1, 2])
          expect(p.read_array_of_int(2)).to eq([1, 2])
          kept = p
        end
        expect(kept.null?).to be(true)
        expect { kept.read_int }.to raise_error(FiddleJit::NullPointerError)
        expect { FiddleJit::MemoryPointer.new(4) { |p| kept = p; raise "boom" } }.to raise_error("boom")
        expect(kept.null?).to be(true)
      end

      it "a freed AutoPointer raises NullPointerError; release ran once" do
        calls = []
        ap = FiddleJit::AutoPointer.new(FiddleJit::Pointer.new(0x1000), ->(p) { calls << p.address })
        ap.free
        ap.free
        expect(calls).to eq([0x1000])
        expect(ap.null?).to be(true)
        expect { ap.read_int }.to raise_error(FiddleJit::NullPointerError)
      end

      it "negative MemoryPointer sizes raise ArgumentError (ffi wraps the size)" do
        expect { FiddleJit::MemoryPointer.new(-1) }.to raise_error(ArgumentError)
      end

      it "struct by value in a signature travels like its one int field (SysV INTEGER class)" do
        k = Class.new(FiddleJit::Struct) { layout :a, :int }
        mod = Module.new { extend FiddleJit::Library }
        mod.ffi_lib "c"
        mod.attach_function :abs, [k.by_value], :int
        expect(mod.abs(k.new.tap { |s| s[:a] = -42 })).to eq(42)
        expect { mod.abs(-42) }.to raise_error(ArgumentError) # the ffi gem's class: not memory
      end
    end

    describe "release exactly once (child process)" do
      it "AutoPointer (proc and release method) and ManagedStruct: by GC, by free, at exit" do
        Dir.mktmpdir do |dir|
          log = File.join(dir, "releases.log")
          after_gc, explicit_delta, errors, before_exit = run_child("autopointer", log).values_at(0, 1, 2, 3)
          lines = File.readlines(log).map(&:split)
          # 1200 collected or released at exit, 10 freed explicitly, 1 with
          # autorelease = false never released.
          expect(lines.size).to eq(1210)
          expect(lines.map(&:last).uniq.size).to eq(1210) # each allocation released once
          expect(lines.group_by(&:first).transform_values(&:size)).to eq("proc" => 510, "method" => 500, "managed" => 200)
          expect(after_gc.to_i).to be > 600 # most were collected by GC.start, not at exit
          expect(explicit_delta.to_i).to eq(10)
          expect(errors).to eq("FiddleJit::NullPointerError")
          expect(before_exit.to_i).to be >= after_gc.to_i + 10
        end
      end
    end

    describe "views keep their memory alive (child process)" do
      it "slices, +, Pointer.new(ptr), nested structs and inline arrays under GC.stress and GC.compact" do
        expect(run_child("gc")).to eq(["0"])
      end
    end

    describe "MemoryPointer memory is freed (child process)" do
      it "malloc's bytes in use do not grow over 1e6 allocations" do
        base, final, allocated = run_child("rss").map(&:to_i)
        # A leak keeps every byte allocated (about 800 MB); what stays may be
        # a small fraction of it (Ruby's own heap settling), whatever the machine.
        expect(final - base).to be < allocated / 50
      end
    end
  end
end
