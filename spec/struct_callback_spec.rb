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

  it "reads a function pointer C stored as a callable Function, and NULL as nil" do
    fj_ops = @fj::Ops.new
    expect(fj_ops[:binary]).to be_nil
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
end
