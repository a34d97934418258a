require "ffi"
require "ffi/bit_masks"
module Lib
  extend FFI::Library
  extend FFI::BitMasks
  bit_mask :flags, { read: 0x1, write: 0x2, exec: 0x4 }
  ffi_lib FFI::Library::LIBC
  attach_function :abs, [:flags], :flags
end
p Lib.abs({ read: true, exec: true })
p defined?(FiddleJit) ? :fiddle_jit : :ffi
