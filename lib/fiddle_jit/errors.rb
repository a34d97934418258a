# frozen_string_literal: true

module FiddleJit
  # A symbol is not in any of a module's libraries (the ffi gem's
  # FFI::NotFoundError, also a LoadError).
  class NotFoundError < LoadError
    def initialize(function, *libraries)
      super("Function '#{function}' not found in [#{libraries.flatten.join(", ")}]")
    end
  end
end
