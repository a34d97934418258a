# frozen_string_literal: true

# The ffi gem's FFI namespace backed by fiddle_jit: unmodified ffi-gem
# binding code runs on JIT-emitted stubs.
#
#   require "fiddle_jit/ffi"
#   module LibC
#     extend FFI::Library
#     ffi_lib FFI::Library::LIBC
#     attach_function :strlen, [:string], :size_t
#   end
#
# Every FFI::X is the FiddleJit::X class or module itself (a constant alias),
# so reopening FFI::MemoryPointer etc. modifies the fiddle_jit class; only
# FFI::Library is a module of its own (including FiddleJit::Library), so the
# ffi gem's behaviour belongs to the modules extended with it. After
# this file, `require "ffi"` (from any gem) is a no-op: the bare feature
# "ffi.rb" is marked loaded (see ffi_namespace.rb). To make other gems load
# fiddle_jit when *they* require "ffi" first, start Ruby with
# `-rfiddle_jit/ffi_shim` (see README).

if defined?(::FFI) && !::FFI.const_defined?(:FIDDLE_JIT, false) &&
   (defined?(::FFI::Library) || $LOADED_FEATURES.any? { |f| f.end_with?("/ffi_c.so", "/ffi_c.bundle") })
  raise LoadError, "fiddle_jit/ffi: the ffi gem is already loaded (#{$LOADED_FEATURES.grep(%r{/ffi\.rb\z}).first || "ffi_c"}); " \
                   "fiddle_jit cannot replace it in the same process. Require \"fiddle_jit/ffi\" (or run Ruby with " \
                   "-rfiddle_jit/ffi_shim) before anything requires \"ffi\"."
end

require "fiddle_jit"
# The namespace itself (from its compiled binary, as fiddle_jit.rb loads the
# rest of the Ruby half).
FiddleJit.__require_own("ffi_namespace")
