# frozen_string_literal: true

require_relative "spec_helper"

# An FFI::Function given for a :pointer parameter (ethon passes its
# callbacks to curl_easy_setopt that way; issue 15): its code address, as in
# the ffi gem, where a Function is a Pointer whose address is taken without
# calling `to_ptr` — so neither a subclass's nor a singleton's override of
# `to_ptr` is called, and a freed Function still gives its (stale) address.
# Differential: the same outcome under the ffi gem and fiddle_jit.
RSpec.describe "a Function as a :pointer argument" do
  include Differential::Helpers

  # Per namespace: cb_call_int32 with its function pointer declared
  # :pointer (so C calls what it got), and id_pointer (what it got).
  def lib(ns)
    @libs ||= {}
    @libs[ns] ||= Module.new do
      extend ns::Library
      ffi_lib CALLBACK_FIXTURE_LIB, FIXTURE_LIB
      attach_function :call_int32, :cb_call_int32, %i[pointer int32], :int32
      attach_function :id_pointer, [:pointer], :pointer
    end
  end

  def doubler(ns) = ns::Function.new(:int32, [:int32]) { |x| x * 2 }

  # [what C computed through the pointer, whether it got the Function's address]
  def through_c(ns, fn, address: fn.address)
    [lib(ns).call_int32(fn, 21), lib(ns).id_pointer(fn).address == address]
  end

  it "gives the code address, which C can call" do
    outcome = expect_same_outcome("call_int32(Function)") { |ns| through_c(ns, doubler(ns)) }
    expect(outcome).to eq([42, true])
  end

  it "gives the address of a Function made from a Pointer (a C function pointer)" do
    outcome = expect_same_outcome("call_int32(Function.new(..., pointer))") do |ns|
      inner = doubler(ns) # alive (a local) until the block returns
      through_c(ns, ns::Function.new(:int32, [:int32], inner.to_ptr), address: inner.address)
    end
    expect(outcome).to eq([42, true])
  end

  it "gives a frozen Function's address" do
    outcome = expect_same_outcome("call_int32(frozen Function)") { |ns| through_c(ns, doubler(ns).freeze) }
    expect(outcome).to eq([42, true])
  end

  it "does not call a subclass's to_ptr" do
    outcome = expect_same_outcome("call_int32(Function subclass overriding to_ptr)") do |ns|
      sub = Class.new(ns::Function) { def to_ptr = raise(Differential::Boom, "to_ptr called") }
      fn = sub.new(:int32, [:int32]) { |x| x * 2 }
      [fn.is_a?(sub), *through_c(ns, fn)]
    end
    expect(outcome).to eq([true, 42, true])
  end

  it "does not call a singleton to_ptr" do
    outcome = expect_same_outcome("call_int32(Function with a singleton to_ptr)") do |ns|
      fn = doubler(ns)
      fn.define_singleton_method(:to_ptr) { raise Differential::Boom, "to_ptr called" }
      through_c(ns, fn)
    end
    expect(outcome).to eq([42, true])
  end

  it "gives a freed Function's address (C must not call it; neither library raises)" do
    outcome = expect_same_outcome("id_pointer(freed Function)") do |ns|
      fn = doubler(ns)
      address = fn.address
      fn.free
      [lib(ns).id_pointer(fn).address == address, address != 0]
    end
    expect(outcome).to eq([true, true])
  end

  it "takes a Function an object's to_ptr returns" do
    outcome = expect_same_outcome("call_int32(object whose to_ptr is a Function)") do |ns|
      fn = doubler(ns)
      holder = Object.new
      holder.define_singleton_method(:to_ptr) { fn }
      through_c(ns, holder, address: fn.address)
    end
    expect(outcome).to eq([42, true])
  end
end
