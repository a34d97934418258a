# frozen_string_literal: true

require_relative "spec_helper"

# Function pointers in struct layouts, differential against the ffi gem.
RSpec.describe "callbacks in struct fields" do
  def self.binding_for(ns)
    Module.new do
      extend ns::Library
      ffi_lib FIXTURE_LIBS.fetch("struct_callback_fixture")
      callback :binary, %i[int int], :int
      ops = Class.new(ns::Struct)
      const_set(:Ops, ops)
      ops.class_exec(find_type(:binary)) do |binary|
        layout :binary, binary, :scale, callback([:double], :double), :arg, :int
      end
      attach_function :sc_call_binary, [:pointer, :int], :int
      attach_function :sc_call_scale, %i[pointer double], :double
      attach_function :sc_fill_c, [:pointer], :void
    end
  end

  before(:all) do
    @fj = self.class.binding_for(FiddleJit)
    @ffi = self.class.binding_for(FFI)
  end

  it "stores Procs and lambdas that C then calls" do
    results = [@fj, @ffi].map do |mod|
      ops = mod::Ops.new
      ops[:binary] = ->(a, b) { a * 10 + b }
      ops[:scale] = proc { |x| x * 2.5 }
      ops[:arg] = 4
      [mod.sc_call_binary(ops, 2), mod.sc_call_scale(ops, 2.0)]
    end
    expect(results[0]).to eq(results[1])
    expect(results[0]).to eq([42, 5.0])
  end

  it "reads a function pointer C stored as a callable Function, and NULL as a Function over NULL" do
    fj_ops = @fj::Ops.new
    expect([fj_ops[:binary].class, fj_ops[:binary].null?]).to eq([FiddleJit::Function, true])
    expect([@ffi::Ops.new[:binary].class, @ffi::Ops.new[:binary].null?]).to eq([FFI::Function, true])
    @fj.sc_fill_c(fj_ops)
    fn = fj_ops[:binary]
    expect(fn).to be_a(FiddleJit::Function)
    expect(fn.call(7, 2)).to eq(5)
    ffi_ops = @ffi::Ops.new
    @ffi.sc_fill_c(ffi_ops)
    expect(fn.call(7, 2)).to eq(ffi_ops[:binary].call(7, 2))
  end

  it "keeps the stored callback alive through GC and compaction" do
    ops = @fj::Ops.new
    ops[:binary] = ->(a, b) { a - b }
    ops[:arg] = 50
    GC.start
    GC.compact if GC.respond_to?(:compact)
    GC.start
    expect(@fj.sc_call_binary(ops, 8)).to eq(42)
  end

  it "accepts nil and Functions, and rejects other values like the ffi gem" do
    ops = @fj::Ops.new
    ops[:binary] = FiddleJit::Function.new(:int, %i[int int]) { |a, b| a + b }
    ops[:arg] = 1
    expect(@fj.sc_call_binary(ops, 2)).to eq(3)
    ops[:binary] = nil
    expect(@fj.sc_call_binary(ops, 2)).to eq(-1)
    ffi_error = begin
      @ffi::Ops.new[:binary] = 42
    rescue StandardError => e
      e
    end
    expect(ffi_error).to be_a(TypeError)
    expect { ops[:binary] = 42 }.to raise_error(ffi_error.class)
  end

  describe "as the ffi gem (separate processes)" do
    include ShimScripts

    it "a NULL callback field reads as a Function over NULL; a callback return of NULL is nil" do
      out = same_output(<<~RUBY)
        require "ffi"
        module L
          extend FFI::Library
          ffi_lib FFI::Library::LIBC
          callback :cb, [:int], :int
          attach_function :getenv_cb, :getenv, [:string], :cb
          class S < FFI::Struct; layout :f, :cb; end
        end
        s = L::S.new
        p [s[:f].is_a?(FFI::Function), s[:f].null?]
        s[:f] = proc { |x| x * 2 }
        p [s[:f].null?, s[:f].call(21)]
        s[:f] = nil
        p [s[:f].is_a?(FFI::Function), s[:f].null?, L.getenv_cb("FIDDLE_JIT_NO_SUCH_VARIABLE")]
      RUBY
      expect(out).to eq("[true, true]\n[false, 42]\n[true, true, nil]\n")
    end

    it "Function#autorelease= and #autorelease? as the ffi gem's" do
      out = same_output(<<~RUBY)
        require "ffi"
        f = FFI::Function.new(:int, [:int]) { |x| x }
        p [f.autorelease?, (f.autorelease = false), f.autorelease?, (f.autorelease = true), f.autorelease?]
      RUBY
      expect(out).to eq("[true, false, false, true, true]\n")
    end
  end

  # The ffi gem's autorelease = false keeps only the closure's memory (C
  # calling it after Ruby dropped the Function reaches a collected Proc);
  # fiddle_jit keeps the Function and its Proc until #free or autorelease =
  # true.
  it "autorelease = false keeps a callback callable after Ruby drops it (fiddle_jit)" do
    f = FiddleJit::Function.new(:int, %i[int int]) { |a, b| a - b }
    f.autorelease = false
    address = f.address
    f = nil
    GC.start
    GC.compact if GC.respond_to?(:compact)
    expect(FiddleJit::Function.new(:int, %i[int int], FiddleJit::Pointer.new(address)).call(7, 2)).to eq(5)
  end
end
