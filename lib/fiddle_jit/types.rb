# frozen_string_literal: true

module FiddleJit
  # C type names as the ffi gem spells them, resolved to the fixed-width
  # names the native layer plans with. `long` and friends follow the host's
  # data model (LP64 on 64-bit Linux and macOS).
  module Types
    # The C type table (src/types.rs `TYPE_NAMES`, per target): every type
    # name as the ffi gem spells it => [canonical name the native layer
    # plans with, size, alignment]. :strptr is a return type only, :varargs
    # the last parameter only (see Library#__native_scalar__).
    TABLE = Native::C_TYPES

    # name => canonical name
    BUILTIN = TABLE.transform_values(&:first).freeze
    # canonical name => size / alignment
    SIZES = TABLE.filter_map { |name, (canonical, size, _)| [name, size] if name == canonical }.to_h.freeze
    ALIGNMENTS = TABLE.filter_map { |name, (canonical, _, align)| [name, align] if name == canonical }.to_h.freeze

    LONG = BUILTIN.fetch(:long)
    ULONG = BUILTIN.fetch(:ulong)
    POINTER_SIZE = SIZES.fetch(:pointer)

    # Global typedefs (FFI.typedef): name => canonical Symbol or type object.
    GLOBAL_TYPEDEFS = {}

    # Builtin name => size, for the hot paths (MemoryPointer.new(:int)).
    BUILTIN_SIZES = TABLE.transform_values { |(_, size, _)| size }.freeze

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
end
