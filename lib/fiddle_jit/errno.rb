# frozen_string_literal: true

module FiddleJit
  # The C errno as the ffi gem's FFI::LastError exposes it: the value the
  # calling thread's last attached call left (saved by the stub right after
  # the C call, see FiddleJit.errno).
  #
  # Like the ffi gem's, this module defines no constants: gems reopen it
  # (rbtrace: `module FFI::LastError ... Errno::constants`), and a nested
  # constant would shadow the top-level one of the same name there.
  module LastError
    def self.error = FiddleJit.errno

    def self.error=(value)
      FiddleJit.errno = value
    end
  end
end
