# frozen_string_literal: true

require_relative "spec_helper"

# A Ruby callback that C stored earlier and calls from a function whose own
# parameters are not callbacks (libcurl's timer callback, called from
# curl_multi_* through ethon): an exception it raises is re-raised in the
# caller once that function returns, as the ffi gem does (issue 6/7; it was
# discarded with a warning). Differential against the ffi gem.
RSpec.describe "an exception in a stored callback" do
  include Differential::Helpers

  def lib(ns)
    @libs ||= {}
    @libs[ns] ||= Module.new do
      extend ns::Library
      ffi_lib CALLBACK_FIXTURE_LIB
      callback :int_cb, [:int], :int
      attach_function :cb_store, [:int_cb], :void
      attach_function :cb_call_stored, [:int], :int
    end
  end

  class StoredBoom < StandardError; end

  it "is raised by the function that called it" do
    expect_same_outcome("stored callback raises") do |ns|
      l = lib(ns)
      cb = proc { |x| raise StoredBoom, "x=#{x}" }
      l.cb_store(cb)
      l.cb_call_stored(7)
    ensure
      l&.cb_store(nil)
    end
  end

  it "leaves later calls working, and a callback that returns returns its value" do
    expect_same_outcome("stored callback recovers") do |ns|
      l = lib(ns)
      calls = []
      cb = proc { |x| calls << x; raise StoredBoom if x == 1; x * 2 }
      l.cb_store(cb)
      first = begin
        l.cb_call_stored(1)
      rescue StoredBoom
        :raised
      end
      result = [first, l.cb_call_stored(5), calls]
      l.cb_store(nil)
      result
    end
  end
end
