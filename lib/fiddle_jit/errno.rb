# frozen_string_literal: true

module FiddleJit
  # The C errno as the ffi gem's FFI::LastError exposes it.
  #
  # If the native layer saves errno right after each call
  # (`FiddleJit.errno`, the emitter's job), that value is used. Until then
  # this reads the calling thread's live errno through __errno_location(),
  # so it is only as fresh as the last C call that set it: Ruby code between
  # the call and FFI.errno may have changed it.
  module LastError
    # Holder for the __errno_location() stub (attached on first use).
    module Errno
      extend FiddleJit::Library
    end

    # errno's address for the calling thread (__errno_location() differs
    # between threads; the main thread's is cached).
    def self.location
      unless Errno.respond_to?(:__errno_location)
        Errno.ffi_lib(LibraryLoader::CURRENT_PROCESS)
        Errno.attach_function(:__errno_location, [], :pointer)
      end
      return Errno.__errno_location unless Thread.current == Thread.main

      @main_location ||= Errno.__errno_location
    end

    def self.error
      return FiddleJit.errno if FiddleJit.respond_to?(:errno)

      location.get_int32(0)
    end

    def self.error=(value)
      return FiddleJit.errno = value if FiddleJit.respond_to?(:errno=)

      location.put_int32(0, value)
    end
  end
end
