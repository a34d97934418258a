# frozen_string_literal: true

module FiddleJit
  # The ffi gem's FFI::DataConverter: a custom type converting Ruby values to
  # and from a native type.
  #
  #   module Bool01
  #     extend FiddleJit::DataConverter
  #     native_type :int
  #     def self.to_native(value, _ctx) = value ? 1 : 0
  #     def self.from_native(value, _ctx) = value != 0
  #   end
  #   attach_function :isatty, [:int], Bool01
  #
  # In signatures the stub is attached for the native type and a thin Ruby
  # wrapper converts (like enums); in struct layouts a field of the native
  # type is converted on get/put.
  module DataConverter
    def native_type(type = nil)
      if type
        @native_type = Type.builtin(Types.resolve(type))
      else
        native_type = defined?(@native_type) && @native_type
        raise NotImplementedError, "native_type method not overridden and no native_type set" unless native_type

        native_type
      end
    end

    def to_native(value, _ctx) = value
    def from_native(value, _ctx) = value
  end

  class Type
    # The Type object for a canonical scalar name (shared instances: the
    # constants below).
    def self.builtin(canonical)
      return canonical unless canonical.is_a?(Symbol)

      BUILTINS.fetch(canonical) { raise TypeError, "unable to resolve type '#{canonical}'" }
    end

    BUILTINS = Types::SIZES.keys.to_h { |c| [c, Builtin.new(c, c)] }.freeze

    # The ffi gem's LONG/ULONG: the same 64-bit integers as INT64/UINT64 to
    # fiddle_jit (== by canonical type), but objects of their own that
    # inspect as ffi's and that make attach_function convert like ffi
    # (NUM2LONG; see Library#__ffi_long_param__).
    LONGS = { long: Builtin.new(:long, Types::LONG), ulong: Builtin.new(:ulong, Types::ULONG) }.freeze

    # The ffi gem's `long` types: :long/:ulong and the builtin and platform
    # typedefs of them (size_t, ssize_t, off_t, time_t...).
    LONG_NAMES = { long: :long, ulong: :ulong, size_t: :ulong, ssize_t: :long,
                   intptr_t: :long, uintptr_t: :ulong }.freeze

    # LONG/ULONG for a name the ffi gem types as long (no module typedefs),
    # else nil.
    def self.ffi_long(name)
      key = Types::BUILTIN.key?(name) ? LONG_NAMES[name] : LONG_NAMES[Types::PLATFORM_TYPEDEFS[name]]
      key && LONGS[key]
    end

    # The ffi gem's FFI::Type::* / FFI::NativeType::* constants.
    {
      VOID: :void, BOOL: :bool, INT8: :int8, SCHAR: :int8, CHAR: :int8, UINT8: :uint8, UCHAR: :uint8,
      INT16: :int16, SHORT: :int16, SSHORT: :int16, UINT16: :uint16, USHORT: :uint16,
      INT32: :int32, INT: :int32, SINT: :int32, UINT32: :uint32, UINT: :uint32,
      INT64: :int64, LONG_LONG: :int64, SLONG_LONG: :int64, UINT64: :uint64, ULONG_LONG: :uint64,
      FLOAT32: :float, FLOAT: :float, FLOAT64: :double, DOUBLE: :double, LONGDOUBLE: :long_double,
      POINTER: :pointer, STRING: :string, BUFFER_IN: :pointer, BUFFER_OUT: :pointer, BUFFER_INOUT: :pointer,
      VARARGS: :varargs
    }.each { |const, canonical| const_set(const, BUILTINS.fetch(canonical)) }
    LONG = SLONG = LONGS[:long]
    ULONG = LONGS[:ulong]

    # A DataConverter used as a type (FFI::Type::Mapped).
    class Mapped < Type
      attr_reader :converter

      def initialize(converter)
        %i[native_type to_native from_native].each do |m|
          raise NoMethodError, "#{m} method not implemented" unless converter.respond_to?(m)
        end
        @converter = converter
        self.__footprint__ = 56 # the ffi gem's MappedType: a Type and the converter
        freeze
      end

      def native_type = Type.builtin(Types.resolve(@converter.native_type))
      def size = native_type.size
      def alignment = native_type.alignment
      def to_native(value, ctx = nil) = @converter.to_native(value, ctx)
      def from_native(value, ctx = nil) = @converter.from_native(value, ctx)
      def struct_field_class = StructLayout::Mapped
      def ==(other) = other.is_a?(Mapped) && other.converter.equal?(@converter)
      def inspect = "#<FiddleJit::Type::Mapped #{@converter.inspect}>"
    end
  end

  # The ffi gem's :strptr return type: [String or nil, Pointer].
  module StrPtr
    def self.from_native(ptr, _ctx = nil) = [ptr.null? ? nil : ptr.get_string(0), ptr]
  end

  # The ffi gem's FFI::Bitmask: symbols are bit flags; a value converts to
  # and from an Array of Symbols.
  #
  #   bitmask :flags, [:read, :write, :exec, 4, :big]   # 1, 2, 4, 16
  class Bitmask < Enum
    def initialize(*args)
      @native_type = args.first.is_a?(Type::Builtin) ? args.shift : Type::INT
      # As the ffi gem 1.16+: masks of a signed type (the top bit included)
      # read back without a negative remainder and write as that type.
      @signed = [Type::INT8, Type::INT16, Type::INT32, Type::INT64].any? { |t| t.equal?(@native_type) }
      info, @tag = *args
      @kv_map = {}
      unless info.nil?
        last_cst = nil
        value = 0
        info.each do |i|
          case i
          when Symbol
            raise ArgumentError, "duplicate bitmask key" if @kv_map.key?(i)

            @kv_map[i] = 1 << value
            last_cst = i
            value += 1
          when Integer
            raise ArgumentError, "bitmask index should be positive" if i.negative?

            @kv_map[last_cst] = 1 << i
            value = i + 1
          end
        end
      end
      @vk_map = @kv_map.invert
    end

    def [](*query)
      flat_query = query.flatten
      unless flat_query.all? { |o| o.is_a?(Symbol) } || flat_query.all? { |o| o.is_a?(Integer) || o.respond_to?(:to_int) }
        raise ArgumentError, "query should be homogeneous, #{query.inspect}"
      end

      case flat_query[0]
      when Symbol
        flat_query.inject(0) { |val, o| (v = @kv_map[o]) ? val | v : val }
      when Integer, ->(o) { o.respond_to?(:to_int) }
        val = flat_query.inject(0) { |mask, o| mask | o.to_int }
        @kv_map.select { |_, v| v & val != 0 }.keys
      end
    end

    def to_native(query, _ctx = nil)
      return 0 if query.nil?

      res = [query].flatten.inject(0) do |val, o|
        case o
        when Symbol
          v = @kv_map[o]
          raise ArgumentError, "invalid bitmask value, #{o.inspect}" unless v

          val | v
        when Integer then val | o
        when ->(obj) { obj.respond_to?(:to_int) } then val | o.to_int
        else raise ArgumentError, "invalid bitmask value, #{o.inspect}"
        end
      end
      bits = @native_type.size * 8
      res = -(-res & ((1 << bits) - 1)) if @signed && res >= (1 << (bits - 1))
      res
    end

    def from_native(val, _ctx = nil)
      flags = @kv_map.select { |_, v| v & val != 0 }
      list = flags.keys
      val &= (1 << (@native_type.size * 8)) - 1 if @signed # as unsigned, of the type's width
      remainder = val ^ flags.values.reduce(0, :|)
      list.push remainder unless remainder.zero?
      list
    end
  end

  # As in the ffi gem, an AutoPointer subclass is a DataConverter: as a
  # return type it wraps the returned pointer in the subclass (released by
  # its `release`); as a parameter it passes the pointer.
  class AutoPointer
    extend DataConverter

    def self.native_type
      raise RuntimeError, "no release method defined for #{inspect}" unless respond_to?(:release, true)

      Type::POINTER
    end

    def self.from_native(val, _ctx) = new(val)
  end
end
