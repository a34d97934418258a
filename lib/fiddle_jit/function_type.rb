# frozen_string_literal: true

module FiddleJit
  # A C function signature used as a type: what `callback` defines in a
  # Library (the ffi gem's FFI::FunctionType / FFI::CallbackInfo). As a
  # parameter type it takes a Proc, Method, block, Function, Pointer or nil;
  # as a return type it yields a Function (nil for NULL).
  class FunctionType < Type
    NO_OPTIONS = {}.freeze

    # (A Type is typed data: each instance variable is a generic-ivar table
    # entry, so the resolved types live in the one Signature, held natively
    # (#__signature, src/ruby/footprint.rs), size and alignment are methods,
    # and empty options are not stored.)
    # From types already through Types.resolve (Library#callback; resolving
    # again would give the same values): no second resolve per type.
    def self.__resolved(ret, params)
      type = allocate
      type.__send__(:__init_resolved, ret, params)
      type
    end

    def initialize(return_type, param_types, options = NO_OPTIONS)
      ret = Types.resolve(return_type)
      raise TypeError, "wrong argument type #{param_types.class} (expected Array)" unless param_types.is_a?(::Array)

      params = param_types.map { |t| Types.resolve(t) }
      # What Function.new needs for a callback of this type (cached per
      # builtin signature): the resolved types and their native names.
      self.__signature = Function.__send__(:cached_signature, ret, params)
      @options = options unless options.empty?
      # The ffi gem's FunctionType: its header and an ffi_type* and a VALUE per parameter.
      self.__footprint__ = 96 + (16 * params.size)
      # Frozen and shareable as the ffi gem 1.16+'s (the wrappers of
      # functions taking it reach it through a constant, from any Ractor).
      freeze_shareable
    end

    def options = @options || NO_OPTIONS

    # The result and parameter types as Type objects (Type::INT32 for :int),
    # as the ffi gem 1.16+ returns them.
    def return_type = Type.builtin(__signature.ret)
    def param_types = __signature.params.map { |t| Type.builtin(t) }
    alias result_type return_type

    def to_s = "callback(#{__signature.params.join(", ")}) -> #{__signature.ret}"

    def inspect = "#<FiddleJit::FunctionType #{self}>"

    # In a struct layout, a function pointer field (StructLayout::Callback).
    def size = Types::POINTER_SIZE
    def alignment = Types::POINTER_SIZE
    def struct_field_class = StructLayout::Callback

    private

    def __init_resolved(ret, params)
      self.__signature = Function.__send__(:cached_signature, ret, params)
      self.__footprint__ = 96 + (16 * params.size)
      freeze_shareable
    end

    # Made shareable as make_shareable would, without its walk when the
    # Signature already is (builtin types: frozen Symbols and Strings). The
    # Signature is held natively, out of make_shareable's sight: it is made
    # shareable first.
    def freeze_shareable
      sig = __signature
      FiddleJit.make_shareable(sig) unless sig.params.all?(Symbol) && sig.ret.is_a?(Symbol)
      defined?(@options) ? FiddleJit.make_shareable(self) : freeze
    end
  end
  CallbackInfo = FunctionType
end
