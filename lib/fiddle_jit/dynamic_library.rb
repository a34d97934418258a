# frozen_string_literal: true

module FiddleJit
  # The ffi gem's DynamicLibrary API on top of the native one
  # (src/ruby/library.rs: open, find_address → Integer or nil, name).
  class DynamicLibrary
    RTLD_NOLOAD = 4
    RTLD_DEEPBIND = 8
    RTLD_NODELETE = 0x1000
    RTLD_FIRST = 0
    RTLD_MEMBER = 0
    RTLD_BINDING_MASK = 3
    RTLD_LOCATION_MASK = 0x100
    RTLD_ALL_MASK = 0x110f

    # A symbol's address as a Pointer (the ffi gem's
    # FFI::DynamicLibrary::Symbol).
    class Symbol < Pointer
      def inspect = format("#<%s name=%s address=0x%016x>", self.class, @name, address)
      attr_writer :name
    end

    # DynamicLibrary.new(name, flags) is open(name, flags), as in the ffi gem.
    def self.new(name, flags) = open(name, flags)

    alias __native_name name
    private :__native_name

    # The path it was opened with; "[current process]" for open(nil, ...).
    def name = __native_name || "[current process]"

    # find_function, find_symbol, find_variable: native (src/ruby/library.rs),
    # the same frozen Symbol for each name found before.
  end
end
