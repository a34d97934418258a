# frozen_string_literal: true

# `require "ffi"` when this directory is first on $LOAD_PATH (ruby
# -rfiddle_jit/ffi_shim, or RUBYOPT=-I<gem>/lib/fiddle_jit/shim): loads
# fiddle_jit's FFI namespace instead of the ffi gem.
require_relative "../ffi"
