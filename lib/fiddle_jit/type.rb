# frozen_string_literal: true

module FiddleJit
  # Type objects used by struct layouts (field types) and signatures: the
  # ffi gem's FFI::Type class and its subclasses. Instances are frozen (and
  # so Ractor-shareable) native objects whose size memsize_of reports, as
  # the ffi gem's (see src/ruby/footprint.rs). Also the struct types of
  # signatures: StructByValue and StructByReference (the ffi gem's
  # struct_by_reference.rb).
  class Type
    attr_reader :size, :alignment

    # The RangeError Ruby's NUM2INT / NUM2UINT raise (the ffi gem converts
    # with them), worded as the running Ruby words it.
    def self.check_c_range(value, ctype, max)
      return value if value <= max

      quote = RUBY_VERSION >= "3.4" ? "'" : "`"
      raise RangeError, "integer #{value} too big to convert to #{quote}#{ctype}'"
    end

    # FFI::Type.new(native_type_code) or FFI::Type.new(type), as the ffi gem:
    # an Integer code (in C int range) gives a type of void's size and
    # alignment, a Type copies that type's; anything else is ArgumentError.
    def initialize(value)
      case value
      when Type
        @size = value.size
        @alignment = value.alignment
      when Integer
        raise ArgumentError, "wrong type" unless value.bit_length < 64 # a Fixnum, as FIXNUM_P
        raise RangeError, "integer #{value} too big to convert to `int'" unless value.bit_length < 32

        @size = @alignment = 1
      else
        raise ArgumentError, "wrong type"
      end
      self.__footprint__ = 16 # the ffi gem's Type: a native type code and an ffi_type*
      freeze
    end

    def inspect = format("#<%s::0x%014x size=%d alignment=%d>", self.class, __id__, size, alignment)

    # A builtin C scalar (:int, :double, :pointer, :string, :bool...).
    class Builtin < Type
      attr_reader :name, :canonical

      def initialize(name, canonical)
        @name = name
        @canonical = canonical
        @size = Types::SIZES.fetch(canonical)
        @alignment = Types::ALIGNMENTS.fetch(canonical)
        self.__footprint__ = 112 # the ffi gem's BuiltinType: a Type and its name
        freeze
      end

      def native_type = self
      def ==(other) = other.is_a?(Builtin) && other.canonical == canonical
      alias eql? ==
      def hash = canonical.hash
      # "Builtin::INT32" as the ffi gem 1.17 prints it (1.15: "Builtin:INT32").
      def inspect = "#<#{Builtin}::#{INSPECT_NAMES.fetch(name) { name.to_s.upcase }} size=#{size} alignment=#{alignment}>"
      INSPECT_NAMES = { float: "FLOAT32", double: "FLOAT64", long_double: "LONGDOUBLE" }.freeze # the ffi gem's
    end

    # An inline array field: `[:int, 4]`.
    class Array < Type
      attr_reader :element, :length

      def initialize(element, length)
        raise ArgumentError, "array length must be a non-negative Integer" unless length.is_a?(Integer) && length >= 0

        Type.check_c_range(length, "unsigned int", 0xffff_ffff)

        @element = element
        @length = length
        self.__footprint__ = 48
        freeze
      end

      def size = element.size * length
      def alignment = element.alignment
      def inspect = "#<FiddleJit::Type::Array #{element.inspect}[#{length}]>"
    end

    # A struct embedded by value (a nested struct field, Struct.by_value).
    class Struct < Type
      attr_reader :struct_class

      def initialize(struct_class)
        # (The ffi gem's TypeError too, from the class's missing layout.)
        unless struct_class.is_a?(Class) && struct_class < FiddleJit::Struct
          raise TypeError, "wrong type (expected subclass of FiddleJit::Struct)"
        end

        @struct_class = struct_class
        self.__footprint__ = 48
        freeze
      end

      def size = struct_class.size
      def alignment = struct_class.alignment
      def inspect = "#<FiddleJit::Type::Struct #{struct_class}>"

      # The struct by value for the native layer (parameters, returns,
      # callbacks): ["struct", size, alignment, leaves] with every scalar
      # leaf (nested structs and inline arrays flattened) as [canonical type
      # name, byte offset]. This is Rust's `CType::Struct(StructType {
      # fields, size, align })` with `StructType::scalars()` already applied
      # (src/ruby/attach.rs `parse_type`).
      def native_descriptor
        ["struct", size, alignment, struct_class.layout.native_leaves]
      end

      # As a return type: the class to build the result as, appended.
      def native_return_descriptor = native_descriptor << struct_class
    end
  end

  # Struct.by_value / Struct.val: a struct passed or returned by value
  # (Type::Struct#native_descriptor). A struct field of this type is embedded.
  class StructByValue < Type::Struct
    def layout = struct_class.layout
    def inspect = "#<FiddleJit::StructByValue #{struct_class}>"
  end

  # Struct.by_ref / Struct.ptr / Struct.in / Struct.out: a pointer to a
  # struct. In a signature it is passed as a :pointer and, as a return type,
  # wrapped into a new instance of the struct class (like the ffi gem).
  class StructByReference
    attr_reader :struct_class

    def initialize(struct_class)
      unless struct_class.is_a?(Class) && struct_class < FiddleJit::Struct
        raise TypeError, "wrong type (expected subclass of FiddleJit::Struct)"
      end

      @struct_class = struct_class
      @native_param = ["pointer", struct_class].freeze
    end

    def native_type = :pointer

    # The parameter type for the native layer: a pointer the stub accepts
    # only as nil, a Pointer or an instance of the struct class (checked
    # inline against the class; subclasses via the slow path).
    attr_reader :native_param

    def size = Types::POINTER_SIZE
    def alignment = Types::POINTER_SIZE

    def to_native(value, _ctx = nil)
      return Pointer::NULL if value.nil?
      raise TypeError, "wrong argument type #{value.class} (expected #{@struct_class})" unless @struct_class === value

      value.pointer
    end

    def from_native(value, _ctx = nil) = @struct_class.new(value)
    def inspect = "#<FiddleJit::StructByReference #{struct_class}>"
    # How argument errors name the parameter: "gettimeofday: argument 1 (:Timeval.by_ref)".
    def to_s = "#{struct_class}.by_ref"
  end
end
