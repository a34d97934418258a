# frozen_string_literal: true

require_relative "spec_helper"

# Callbacks (C calls Ruby) with structs by value as parameters and as
# returns, one struct per SysV class, differential against the ffi gem.
RSpec.describe "callbacks with structs by value" do
  CBV_SHAPES = {
    i1: [:a, :int32],
    i2: [:a, :int64, :b, :int64],
    d2: [:x, :double, :y, :double],
    f2: [:x, :float, :y, :float],
    mix: [:i, :int32, :f, :float, :d, :double],
    big: [:a, :int64, :b, :int64, :c, :int64, :d, :double]
  }.freeze

  def self.define(ns)
    Module.new do
      extend ns::Library
      ffi_lib FIXTURE_LIBS.fetch("byvalue_callback_fixture")
      s = CBV_SHAPES.to_h { |name, layout| [name, Class.new(ns::Struct) { layout(*layout) }] }
      const_set(:S, s)
      callback :p_i1, [:int32, s[:i1].by_value, :double], :double
      callback :p_i2, [s[:i2].by_value, :int64], :double
      callback :p_d2, [:double, s[:d2].by_value, :int32], :double
      callback :p_f2, [s[:f2].by_value], :double
      callback :p_mix, [:int64, s[:mix].by_value, s[:i2].by_value], :double
      callback :p_big, [:int32, s[:big].by_value, :double], :double
      callback :p_spilled, [:int64, :int64, :int64, :int64, :int64, s[:i2].by_value, :int64], :double
      attach_function :cbv_pass_i1, [:p_i1, :int32], :double
      attach_function :cbv_pass_i2, [:p_i2, :int64, :int64], :double
      attach_function :cbv_pass_d2, [:p_d2, :double, :double], :double
      attach_function :cbv_pass_f2, [:p_f2, :float, :float], :double
      attach_function :cbv_pass_mix, [:p_mix, :int32, :float, :double], :double
      attach_function :cbv_pass_big, [:p_big, :int64, :double], :double
      attach_function :cbv_pass_spilled, [:p_spilled, :int64], :double

      callback :r_i1, [:int32], s[:i1].by_value
      callback :r_i2, [:int64], s[:i2].by_value
      callback :r_d2, [:double], s[:d2].by_value
      callback :r_f2, [], s[:f2].by_value
      callback :r_mix, [:int32, :double], s[:mix].by_value
      callback :r_big, [:int64, :double], s[:big].by_value
      callback :both, [s[:mix].by_value, s[:d2].by_value], s[:big].by_value
      attach_function :cbv_ret_i1, [:r_i1, :int32], :int64
      attach_function :cbv_ret_i2, [:r_i2, :int64], :int64
      attach_function :cbv_ret_d2, [:r_d2, :double], :double
      attach_function :cbv_ret_f2, [:r_f2], :double
      attach_function :cbv_ret_mix, [:r_mix, :int32, :double], :double
      attach_function :cbv_ret_big, [:r_big, :int64, :double], :double
      attach_function :cbv_both_mix, [:both, :int32], :double
    end
  end

  before(:all) do
    @fj = self.class.define(FiddleJit)
    @ffi = self.class.define(FFI)
  end

  # Runs the block with each binding; expects equal results, returns them.
  def both
    results = [@fj, @ffi].map { |mod| yield mod }
    expect(results[0]).to eq(results[1])
    results[0]
  end

  def fields(struct) = struct.members.map { |m| struct[m] }

  it "passes one INTEGER eightbyte, with scalars around it" do
    seen = both do |m|
      got = nil
      r = m.cbv_pass_i1(->(k, v, h) { got = [v.class, k, fields(v), h]; v[:a] * 1.0 + k }, -21)
      [got[0] == m::S[:i1], got[1..], r]
    end
    expect(seen).to eq([true, [7, [-21], 0.5], -28.0])
  end

  it "passes two INTEGER eightbytes" do
    expect(both { |m| m.cbv_pass_i2(->(v, k) { (v[:a] * 3 + v[:b] + k).to_f }, 2**40, -3) }).to eq(2.0**40 * 3 + 6)
  end

  it "passes SSE eightbytes (doubles, then two floats in one)" do
    expect(both { |m| m.cbv_pass_d2(->(h, v, k) { v[:x] * 10 + v[:y] + h + k }, 1.5, -2.5) }).to eq(15.75)
    expect(both { |m| m.cbv_pass_f2(->(v) { v[:x] * 10 + v[:y] }, 1.5, -0.25) }).to eq(14.75)
  end

  it "passes mixed INTEGER+SSE structs next to other structs" do
    r = both { |m| m.cbv_pass_mix(->(k, v, w) { k + v[:i] * 100 + v[:f] * 10 + v[:d] + w[:a] * 1000 + w[:b] }, 7, 0.5, -1e-3) }
    expect(r).to be_within(1e-9).of(5 + 700 + 5 - 1e-3 - 1000 - 2)
  end

  it "passes a MEMORY-class struct (copied from the caller's stack)" do
    r = both { |m| m.cbv_pass_big(->(k, v, h) { k + v[:a] + v[:b] * 10 + v[:c] * 100 + v[:d] + h }, 3, 0.25) }
    expect(r).to eq(4 + 3 + 60 + 900 + 0.25 + 1.5)
  end

  it "passes a struct on the stack after the integer registers" do
    expect(both { |m| m.cbv_pass_spilled(->(*a) { a[5][:a] * 100 + a[5][:b] * 10 + a[6] + a[0] }, 4) }).to eq(457.0)
  end

  it "gives the block a copy: it stays valid and writable after the call" do
    kept = nil
    @fj.cbv_pass_i2(->(v, _k) { kept = v; 0.0 }, 11, 12)
    GC.start
    expect(fields(kept)).to eq([11, 12])
    kept[:a] = 5
    expect(kept[:a]).to eq(5)
  end

  it "returns structs of each class from the block" do
    r = both do |m|
      s = m::S
      [
        m.cbv_ret_i1(->(k) { s[:i1].new.tap { |x| x[:a] = k - 1 } }, -4),
        m.cbv_ret_i2(->(k) { s[:i2].new.tap { |x| x[:a] = k; x[:b] = -k } }, 2**30),
        m.cbv_ret_d2(->(k) { s[:d2].new.tap { |x| x[:x] = k; x[:y] = k / 4 } }, 2.0),
        m.cbv_ret_f2(-> { s[:f2].new.tap { |x| x[:x] = 1.5; x[:y] = 0.25 } }),
        m.cbv_ret_mix(->(i, d) { s[:mix].new.tap { |x| x[:i] = i; x[:f] = 0.5; x[:d] = d } }, 3, 0.125),
        m.cbv_ret_big(->(a, d) { s[:big].new.tap { |x| x[:a] = a; x[:b] = a + 1; x[:c] = a + 2; x[:d] = d } }, 5, 0.5)
      ]
    end
    expect(r).to eq([-15, 2**30 * 1000 - 2**30, 20.5, 15.25, 305.125, 5 + 60 + 700 + 0.5])
  end

  it "returns zeros for nil or a non-struct result, like the ffi gem" do
    r = both do |m|
      [m.cbv_ret_i2(->(_) {}, 1), m.cbv_ret_d2(->(_) { 42 }, 1.0), m.cbv_ret_big(->(_, _) {}, 1, 1.0),
       m.cbv_ret_mix(->(_, _) { "x" }, 1, 1.0)]
    end
    expect(r).to eq([0, 0.0, 0.0, 0.0])
  end

  it "takes and returns structs in the same callback" do
    r = both do |m|
      m.cbv_both_mix(lambda { |v, w|
        m::S[:big].new.tap { |x| x[:a] = v[:i]; x[:b] = (v[:f] * 2).to_i; x[:c] = w[:x].to_i; x[:d] = v[:d] + w[:y] }
      }, 10)
    end
    expect(r).to eq(10 + 3 + 3 + 6.25)
  end

  it "takes Functions made with Function.new and struct by value types" do
    r = both do |m|
      ns = m == @fj ? FiddleJit : FFI
      ret = ns::Function.new(m::S[:d2].by_value, [:double]) { |k| m::S[:d2].new.tap { |x| x[:x] = k; x[:y] = -k } }
      arg = ns::Function.new(:double, [m::S[:i2].by_value, :int64]) { |v, k| (v[:a] - v[:b] + k).to_f }
      [m.cbv_ret_d2(ret, 3.0), m.cbv_pass_i2(arg, 10, 4)]
    end
    expect(r).to eq([27.0, 15.0])
  end

  it "calls such a Function from Ruby with Function#call" do
    r = both do |m|
      ns = m == @fj ? FiddleJit : FFI
      f = ns::Function.new(m::S[:big].by_value, [m::S[:mix].by_value, :int]) do |v, k|
        m::S[:big].new.tap { |b| b[:a] = v[:i] * k; b[:b] = v[:f].to_i; b[:c] = 7; b[:d] = v[:d] }
      end
      v = m::S[:mix].new
      v[:i] = 3
      v[:f] = 2.5
      v[:d] = -0.5
      out = f.call(v, 4)
      [out.class == m::S[:big], fields(out)]
    end
    expect(r).to eq([true, [12, 2, 7, -0.5]])
  end

  it "propagates an exception raised in the block to the caller, for arguments and returns" do
    [@fj, @ffi].each do |m|
      expect { m.cbv_pass_big(->(*) { raise ArgumentError, "boom" }, 1, 1.0) }.to raise_error(ArgumentError, "boom")
      expect { m.cbv_ret_big(->(*) { raise IndexError, "bang" }, 1, 1.0) }.to raise_error(IndexError, "bang")
      expect { m.cbv_ret_mix(->(*) { raise IndexError, "bang" }, 1, 1.0) }.to raise_error(IndexError, "bang")
    end
  end
end
