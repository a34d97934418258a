# frozen_string_literal: true

module FiddleJit
  class Struct
    # Fixed-size memory views of struct arrays: `[:int, 4]` fields.
    class InlineArray
      include Enumerable

      def initialize(memory, field)
        @memory = memory
        @field = field
      end

      def size = @field.type.length

      def [](index) = element(index).get(@memory)
      def []=(index, value)
        element(index).put(@memory, value)
      end

      def each
        return enum_for(:each) unless block_given?

        size.times { |i| yield self[i] }
        self
      end

      def to_a = each.to_a
      def to_ptr = @memory.slice(@field.offset, @field.size)

      private

      # A zero-length array (the last field: C's flexible array member) is
      # not bounds-checked, as in the ffi gem.
      def element(index)
        index = InlineArray.int_index(index)
        raise IndexError, "index #{index} out of bounds" unless index >= 0 && (size.zero? || index < size)

        StructLayout.element_field(@field, index)
      end

      INT_RANGE = (-2**31...2**31)
      private_constant :INT_RANGE

      # +index+ converted as the ffi gem's NUM2INT: Integers in the `int`
      # range, Floats truncated, else implicit conversion (TypeError).
      def self.int_index(index)
        index = case index
                when Integer then index
                when Float then index.to_i
                when nil then raise TypeError, "no implicit conversion from nil to integer"
                else Integer.try_convert(index) || raise(TypeError, "no implicit conversion of #{index.class} into Integer")
                end
        raise RangeError, "integer #{index} too big to convert to `int'" unless INT_RANGE.cover?(index)

        index
      end
    end
  end

  # The fields of a Struct class: name → Field (offset, type, get/put).
  # Frozen and, like the ffi gem 1.16+'s, Ractor-shareable (with its
  # fields and their types) when everything it refers to can be.
  class StructLayout < Type
    attr_reader :fields, :field_map, :native_table

    def initialize(fields, size, alignment, union = false)
      @fields = fields.freeze
      @field_map = fields.to_h { |f| [f.name, f] }.freeze
      @size = size
      @alignment = alignment
      @union = union
      # What the native Struct#[]/#[]= look fields up in (src/ruby/struct_memory.rs):
      # number fields are accessed in place, the others through Field#get/#put
      # (the hooks struct.rb registers).
      @native_table = StructFieldTable.build(
        @field_map, fields.map { |f| [f.name, f.offset, StructLayout.native_kind(f), f] }, size
      )
      self.__native_table__ = @native_table # (read natively by Struct.new)
      # The ffi gem's StructLayout: its header plus a field pointer and an
      # ffi_type element per field.
      self.__footprint__ = 64 + (16 * fields.size)
      FiddleJit.make_shareable(self)
    end

    def union? = @union

    # How the native Struct#[]/#[]= access a field: a Number's accessor
    # suffix, "pointer" for a plain :pointer field, "string" for a :string
    # one (read natively, written through the Field), nil (through the
    # Field's get/put) for the others and for Field subclasses.
    def self.native_kind(field)
      if field.is_a?(Number) then field.suffix.to_s
      elsif field.instance_of?(Pointer) then "pointer"
      elsif field.instance_of?(StructLayout::String) then "string"
      end
    end

    # Every scalar of the layout as [canonical type name, absolute offset],
    # an inline array's as [name, offset, count, stride]: nested structs and
    # arrays flattened (see StructByValue).
    def native_leaves(base = 0)
      @fields.flat_map { |f| StructLayout.leaves(f.type, base + f.offset) }
    end

    def self.leaves(type, offset)
      case type
      when Type::Builtin then [[type.canonical.to_s, offset]]
      when Type::Struct then type.struct_class.layout.native_leaves(offset)
      when Type::Array
        # One run [name, offset, count, stride] per scalar of the element:
        # an array of a million bytes is one leaf, not a million.
        step = type.element.size
        leaves(type.element, offset).flat_map do |name, off, count = 1, stride = 0|
          if count == 1
            [[name, off, type.length, step]]
          else
            (0...type.length).map { |i| [name, off + (i * step), count, stride] }
          end
        end
      when StructByReference then [["pointer", offset]]
      else raise NotImplementedError, "no native layout for field type #{type.inspect}"
      end
    end

    def members = @fields.map(&:name)
    def offsets = @fields.map { |f| [f.name, f.offset] }
    def offset_of(name) = self[name].offset
    def [](name) = @field_map[name]
    def to_a = @fields.dup

    # A field's value accessors. Subclasses implement get(ptr)/put(ptr, value)
    # where ptr is the struct's Pointer.
    #
    # Hook for new field types (e.g. callbacks): a type object that responds
    # to `struct_field_class` (plus `size` and `alignment`) is laid out like
    # any other type and its field is `type.struct_field_class.new(name,
    # offset, type)`.
    class Field
      attr_reader :name, :offset, :type

      def initialize(name, offset, type)
        @name = Field.field_name(name)
        @offset = offset
        @type = type
        self.__footprint__ = 40 # the ffi gem's StructField
      end

      def size = type.size
      def alignment = type.alignment
      def inspect = "#<#{self.class} #{name.inspect} offset=#{offset} size=#{size}>"

      # A field's name as the ffi gem's StructField keeps it: a Symbol, from
      # a Symbol or a String (TypeError otherwise).
      def self.field_name(name)
        case name
        when ::Symbol then name
        when ::String then name.to_sym
        else raise TypeError, "wrong argument type #{name.class} (expected Symbol/String)"
        end
      end
    end

    # Integer and floating-point fields: the Pointer accessor for the type.
    class Number < Field
      # [accessor suffix, getter, setter] per canonical type: made once, so
      # a field costs one instance variable and no Symbol built from a String.
      def self.accessors(canonical)
        suffix = FiddleJit::Pointer.accessor_for(canonical)
        [suffix, :"get_#{suffix}", :"put_#{suffix}"].freeze
      end
      ACCESSORS = Types::SIZES.keys.filter_map do |canonical|
        [canonical, accessors(canonical)]
      rescue ArgumentError
        nil
      end.to_h.freeze
      private_constant :ACCESSORS
      private_class_method :accessors

      def initialize(name, offset, type)
        super
        @accessors = ACCESSORS.fetch(type.canonical) { Number.__send__(:accessors, type.canonical) }
      end

      def suffix = @accessors[0]

      # Only for what the native Struct#[]/#[]= do not access in place
      # (byte-swapped or bounded memory, non-Fixnum values...).
      def get(ptr) = ptr.public_send(@accessors[1], offset)
      def put(ptr, value) = ptr.public_send(@accessors[2], offset, value)
    end

    # long double: BigDecimal reads, Float/Integer/BigDecimal writes (ffi's
    # rules, converted natively; see runtime/long_double.rs).
    class LongDouble < Field
      def get(ptr) = Native.long_double_unpack(ptr.get_bytes(offset, 16))
      def put(ptr, value) = ptr.put_bytes(offset, Native.long_double_pack(value))
    end

    class Bool < Field
      def get(ptr) = ptr.get_uint8(offset) != 0
      def put(ptr, value) = ptr.put_uint8(offset, value ? 1 : 0)
    end

    class Pointer < Field
      def get(ptr) = ptr.get_pointer(offset)

      def put(ptr, value) = ptr.put_pointer(offset, value)
    end

    # `char *` fields: read as a String (nil for NULL); not writable (like ffi).
    class String < Field
      def get(ptr)
        str = ptr.get_pointer(offset)
        str.null? ? nil : str.get_string(0)
      end

      def put(_ptr, _value) = raise(ArgumentError, "Cannot set :string fields")
    end

    class InnerStruct < Field
      def get(ptr) = type.struct_class.new(ptr.slice(offset, size))

      def put(ptr, value)
        raise TypeError, "wrong value type (expected #{type.struct_class})" unless value.is_a?(type.struct_class)

        ptr.slice(offset, size).__copy_from__(value.pointer, size)
      end
    end

    # Inline arrays: read as an InlineArray (a CharArray for char/uchar
    # elements); only char arrays are assignable, from a String (like ffi).
    class Array < Field
      def char_array?
        type.element.is_a?(Type::Builtin) && %i[int8 uint8].include?(type.element.canonical)
      end

      def get(ptr)
        (char_array? ? CharArray : FiddleJit::Struct::InlineArray).new(ptr, self)
      end

      def put(ptr, value)
        raise NotImplementedError, "cannot set array field" unless char_array? && value.is_a?(::String)

        len = type.length
        if value.bytesize < len
          ptr.put_string(offset, value)
        elsif value.bytesize == len
          ptr.put_bytes(offset, value)
        else
          raise IndexError, "String is longer (#{value.bytesize} bytes) than the char array (#{len} bytes)"
        end
      end
    end

    # A pointer to a struct (Struct.by_ref as a field type).
    class StructPointer < Field
      def get(ptr) = type.from_native(ptr.get_pointer(offset))
      def put(ptr, value) = ptr.put_pointer(offset, type.to_native(value))
    end

    # A function pointer (a callback type, FunctionType#struct_field_class):
    #
    #   class Ops < FiddleJit::Struct
    #     layout :compare, callback([:int, :int], :int), :arg, :int
    #   end
    #   ops[:compare] = ->(a, b) { a <=> b }   # stores a C function pointer
    #   ops[:compare]                          # => FiddleJit::Function (nil if NULL)
    #
    # A Proc stored is turned into a Function that the struct's memory keeps
    # alive (like the ffi gem's struct references) until the field is
    # overwritten or the memory is collected.
    class Callback < Field
      # A Function, also over NULL (null? true), as the ffi gem's field reads
      # (a callback-returning C function's NULL is nil: Function.from_native).
      def get(ptr) = Function.__new(type.__signature, ptr.get_pointer(offset), type.options)

      def put(ptr, value)
        unless value.nil? || value.is_a?(Function) || value.respond_to?(:call)
          raise TypeError, "wrong type (expected Proc or Function)"
        end

        fn = Function.for_callback(type, value)
        ptr.put_pointer(offset, fn)
        refs = ptr.instance_variable_get(:@__fiddle_jit_field_functions__) ||
               ptr.instance_variable_set(:@__fiddle_jit_field_functions__, {})
        refs[offset] = fn
      end
    end

    # A :strptr field, as the ffi gem's (a mapped type over a pointer):
    # read as [String or nil, Pointer], written as a pointer.
    class StrPtr < Field
      def get(ptr) = FiddleJit::StrPtr.from_native(ptr.get_pointer(offset))
      def put(ptr, value) = ptr.put_pointer(offset, value)
    end

    # An enum field: an int read as its Symbol (the Integer when unknown),
    # written from a Symbol or an Integer (the ffi gem's typedef'd enums).
    class Enum < Field
      def initialize(name, offset, type)
        super
        @native = type.native_type.canonical
      end

      def get(ptr) = type.from_native(@native == :int32 ? ptr.get_int32(offset) : ptr.get(@native, offset))
      def put(ptr, value) = ptr.put(@native, offset, type.to_native(value))
    end

    # A field of a mapped (DataConverter) type: its native field, converted.
    class Mapped < Field
      def initialize(name, offset, type)
        super
        @native = StructLayout.field_for(name, offset, type.native_type)
      end

      def get(ptr) = type.from_native(@native.get(ptr), nil)
      def put(ptr, value) = @native.put(ptr, type.to_native(value, nil))
    end

    # Pointer types the ffi gem has no struct field for.
    NOT_FIELD_TYPES = %i[buffer_in buffer_out buffer_inout].freeze
    private_constant :NOT_FIELD_TYPES

    def self.invalid_field_type(type) = raise(TypeError, "invalid struct field type #{type.inspect}")
    private_class_method :invalid_field_type

    # The field class for +type+ at +offset+.
    def self.field_for(name, offset, type)
      klass =
        case type
        when Type::Builtin
          case type.canonical
          when :bool then Bool
          when :pointer then NOT_FIELD_TYPES.include?(type.name) ? invalid_field_type(type) : Pointer
          when :string then String
          when :strptr then StrPtr
          when :void, :varargs then invalid_field_type(type)
          when :long_double then LongDouble
          else Number
          end
        when Type::Struct then InnerStruct
        when Type::Array then Array
        when StructByReference then StructPointer
        else
          invalid_field_type(type) unless type.respond_to?(:struct_field_class)

          type.struct_field_class
        end
      klass.new(name, offset, type)
    end

    # Element accessor of an inline array (a Field at the element's offset).
    def self.element_field(array_field, index)
      elem = array_field.type.element
      field_for(array_field.name, array_field.offset + (index * elem.size), elem)
    end

    # An inline array of char/uchar: #to_s is the bytes up to the first NUL.
    class CharArray < FiddleJit::Struct::InlineArray
      def to_s
        bytes = @memory.get_bytes(@field.offset, size)
        nul = bytes.index("\0")
        nul ? bytes[0, nul] : bytes
      end
      alias to_str to_s
    end
  end
end
