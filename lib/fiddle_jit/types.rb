# frozen_string_literal: true

module FiddleJit
  # C type names as the ffi gem spells them, resolved to the fixed-width
  # names the native layer plans with. `long` and friends follow the host's
  # data model (LP64 on 64-bit Linux and macOS).
  module Types
    LONG = [0].pack("l!").bytesize == 8 ? :int64 : :int32
    ULONG = LONG == :int64 ? :uint64 : :uint32
    POINTER_SIZE = [0].pack("J").bytesize

    BUILTIN = {
      void: :void, bool: :bool,
      char: :int8, uchar: :uint8, int8: :int8, uint8: :uint8,
      short: :int16, ushort: :uint16, int16: :int16, uint16: :uint16,
      int: :int32, uint: :uint32, int32: :int32, uint32: :uint32,
      long: LONG, ulong: ULONG,
      int64: :int64, uint64: :uint64, long_long: :int64, ulong_long: :uint64,
      size_t: ULONG, ssize_t: LONG, intptr_t: LONG, uintptr_t: ULONG,
      float: :float, double: :double, float32: :float, float64: :double,
      pointer: :pointer, string: :string,
      buffer_in: :pointer, buffer_out: :pointer, buffer_inout: :pointer,
      # :strptr is a return type only, :varargs the last parameter only
      # (see Library#native_scalar).
      long_double: :long_double, strptr: :strptr, varargs: :varargs
    }.freeze

    SIZES = {
      void: 1, bool: 1, int8: 1, uint8: 1, int16: 2, uint16: 2, int32: 4, uint32: 4,
      int64: 8, uint64: 8, float: 4, double: 8, pointer: POINTER_SIZE, string: POINTER_SIZE,
      long_double: 16, strptr: POINTER_SIZE, varargs: 1
    }.freeze

    # Global typedefs (FFI.typedef): name => canonical Symbol or type object.
    GLOBAL_TYPEDEFS = {}

    # Builtin name => size, for the hot paths (MemoryPointer.new(:int)).
    BUILTIN_SIZES = BUILTIN.transform_values { |canonical| SIZES.fetch(canonical) }.freeze

    module_function

    # The canonical name for +type+, looking in +typedefs+ first; TypeError
    # (like the ffi gem) when unknown. As in the ffi gem, builtin types are
    # Symbols: the String "int" does not resolve.
    #
    # Scalars resolve to their canonical Symbol (also from Type::Builtin
    # objects, e.g. FFI::Type::INT32); Structs, enums, mapped types
    # (DataConverter) resolve to their type object.
    def resolve(type, typedefs = nil)
      found = (typedefs && typedefs[type]) || BUILTIN[type]
      return (found.is_a?(Type::Builtin) ? found.canonical : found) if found
      return type if type.is_a?(FunctionType)
      return type.canonical if type.is_a?(Type::Builtin)

      found = GLOBAL_TYPEDEFS[type]
      found ||= BUILTIN[PLATFORM_TYPEDEFS[type]] if type.is_a?(Symbol)
      found ||= type if struct_type?(type)
      found ||= Type::Mapped.new(type) if type.is_a?(DataConverter)
      raise TypeError, "unable to resolve type '#{type}'" unless found

      found.is_a?(Type::Builtin) ? found.canonical : found
    end

    # Struct classes and the type objects Struct.by_ref/by_value return:
    # resolved by attach_function itself, not by the native layer.
    def struct_type?(type)
      (type.is_a?(Class) && type < FiddleJit::Struct) || type.is_a?(FiddleJit::StructByReference) ||
        type.is_a?(FiddleJit::Type::Struct) || type.is_a?(FiddleJit::Enum) || type.is_a?(FiddleJit::Type::Mapped)
    end
  end

  # +obj+ made Ractor-shareable (deeply frozen), as the ffi gem 1.16+ makes
  # its types and layouts; only frozen when something it holds cannot be
  # shared (a Proc, say) or Ruby has no Ractors.
  def self.make_shareable(obj)
    return obj.freeze unless defined?(Ractor.make_shareable)

    Ractor.make_shareable(obj)
  rescue Ractor::Error
    obj.freeze
  end

  # Size in bytes of a C type, e.g. FiddleJit.type_size(:long) #=> 8; also
  # Struct classes and type objects (anything with a #size).
  def self.type_size(type)
    return type if type.is_a?(Integer)
    if type.is_a?(Symbol)
      size = Types::BUILTIN_SIZES[type]
      return size || Types::SIZES.fetch(Types.resolve(type))
    end
    return type.size if type.respond_to?(:size)

    Types::SIZES.fetch(Types.resolve(type))
  end

  Pointer.singleton_class.define_method(:size) { Types::POINTER_SIZE }
end
