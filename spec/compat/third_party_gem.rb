# frozen_string_literal: true

# Stands for another gem's unmodified source: it requires "ffi" and binds.
require "ffi"

module ThirdPartyGem
  extend FFI::Library
  ffi_lib FFI::Library::LIBC
  attach_function :strlen, [:string], :size_t
end

backend = FFI.const_defined?(:FIDDLE_JIT, false) ? "fiddle_jit" : "ffi"
ffi_c = $LOADED_FEATURES.any? { |f| f.include?("ffi_c") }
puts "backend=#{backend} ffi_c=#{ffi_c} strlen=#{ThirdPartyGem.strlen("hello")} version=#{FFI::VERSION}"
