# frozen_string_literal: true

# `ruby -rfiddle_jit/ffi_shim app.rb` (or RUBYOPT=-rfiddle_jit/ffi_shim):
# every later `require "ffi"`, in the application or in any gem, gets
# fiddle_jit's FFI namespace instead of the ffi gem.
require_relative "ffi"
