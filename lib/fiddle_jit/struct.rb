# frozen_string_literal: true

module FiddleJit
  # Type objects used by struct layouts (field types) and signatures: the
  # ffi gem's FFI::Type class and its subclasses. Instances are frozen (and
  # so Ractor-shareable) native objects whose size memsize_of reports, as
  # the ffi gem's (see src/ruby/footprint.rs).
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

  # Struct.by_ref of a ManagedStruct-like class: results are wrapped into an
  # AutoPointer released by the class's `release`.
  class ManagedStructConverter < StructByReference
    def initialize(struct_class)
      super
      raise NoMethodError, "release() not implemented for class #{struct_class}" unless struct_class.respond_to?(:release, true)

      @method = struct_class.method(:release)
    end

    def from_native(ptr, _ctx = nil) = struct_class.new(AutoPointer.new(ptr, @method))
  end

  # Struct.by_value / Struct.val: a struct passed or returned by value
  # (Type::Struct#native_descriptor). A struct field of this type is embedded.
  class StructByValue < Type::Struct
    def layout = struct_class.layout
    def inspect = "#<FiddleJit::StructByValue #{struct_class}>"
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
      # number fields are accessed in place, the others through Field#get/#put.
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
        @name = name
        @offset = offset
        @type = type
        self.__footprint__ = 40 # the ffi gem's StructField
      end

      def size = type.size
      def alignment = type.alignment
      def inspect = "#<#{self.class} #{name.inspect} offset=#{offset} size=#{size}>"
    end

    # Integer and floating-point fields: the Pointer accessor for the type.
    class Number < Field
      attr_reader :suffix

      def initialize(name, offset, type)
        super
        @suffix = suffix = FiddleJit::Pointer.accessor_for(type.canonical)
        # Specialised per field: a direct call with a literal offset.
        singleton_class.class_eval(<<~RUBY, __FILE__, __LINE__ + 1)
          def get(ptr) = ptr.get_#{suffix}(#{offset})
          def put(ptr, value) = ptr.put_#{suffix}(#{offset}, value)
        RUBY
      end
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

    # The field class for +type+ at +offset+.
    def self.field_for(name, offset, type)
      klass =
        case type
        when Type::Builtin
          case type.canonical
          when :bool then Bool
          when :pointer then Pointer
          when :string then String
          when :void then raise TypeError, "invalid struct field type :void"
          when :long_double then LongDouble
          else Number
          end
        when Type::Struct then InnerStruct
        when Type::Array then Array
        when StructByReference then StructPointer
        else
          raise TypeError, "invalid struct field type #{type.inspect}" unless type.respond_to?(:struct_field_class)

          type.struct_field_class
        end
      klass.new(name, offset, type)
    end

    # Element accessor of an inline array (a Field at the element's offset).
    def self.element_field(array_field, index)
      elem = array_field.type.element
      field_for(array_field.name, array_field.offset + (index * elem.size), elem)
    end
  end

  # Computes offsets, size and alignment the way the C ABI (and the ffi gem's
  # StructLayoutBuilder) does: each field at the next multiple of its
  # alignment (or of `packed`), size rounded up to the struct's alignment.
  class StructLayoutBuilder
    attr_reader :size, :alignment

    def initialize
      @size = 0
      @alignment = 1
      @min_alignment = 1
      @packed = false
      @union = false
      @fields = []
    end

    def size=(size)
      @size = size if size > @size
    end

    def alignment=(align)
      @alignment = align if align > @alignment
      @min_alignment = align
    end

    attr_writer :union

    def union? = @union

    def packed=(packed)
      if packed.is_a?(Integer)
        @alignment = packed
        @packed = packed
      else
        @packed = packed ? 1 : 0
      end
    end

    def add(name, type, offset = nil)
      if offset.nil? || offset == -1
        offset = @union ? 0 : align(@size, @packed ? [@packed, type.alignment].min : [@min_alignment, type.alignment].max)
      end
      field = StructLayout.field_for(name, offset, type)
      @fields << field
      @alignment = [@alignment, field.alignment].max unless @packed
      @size = [@size, field.size + (@union ? 0 : field.offset)].max
      self
    end

    def build
      # As the ffi gem: only the last field may have size 0 (a flexible array).
      @fields.each_with_index do |f, i|
        raise TypeError, "type of field #{i} has zero size" if f.size.zero? && i < @fields.length - 1
      end
      size = Type.check_c_range(@packed ? @size : align(@size, @alignment), "int", 0x7fff_ffff)
      StructLayout.new(@fields, size, @alignment, @union)
    end

    private

    def align(offset, align) = align + ((offset - 1) & ~(align - 1))
  end

  # The ffi gem's FFI::Struct: a view of C struct memory through a layout.
  #
  #   class Timeval < FiddleJit::Struct
  #     layout :tv_sec, :long, :tv_usec, :long
  #   end
  #   tv = Timeval.new          # zeroed memory owned by the struct
  #   tv[:tv_sec] = 5
  #
  # Instances are native objects (src/ruby/struct_memory.rs) holding their
  # Pointer, so stubs unbox a Struct argument inline; #pointer/#to_ptr and
  # #[]/#[]= (fields looked up in the layout's native table) are native too.
  class Struct
    # +pointer+: the memory to view (any Pointer: MemoryPointer, a returned
    # Pointer, a slice...); default a new zeroed MemoryPointer of #size.
    #
    # #initialize is native (src/ruby/struct_memory.rs) when no spec is
    # given and the class chain has a layout; everything else comes here.
    private def __initialize__(pointer = nil, *spec)
      self.class.layout(*spec) unless spec.empty?
      layout = self.class.__layout__
      pointer = MemoryPointer.new(layout.size, 1, true) if pointer.nil?
      __set_memory__(pointer, layout.native_table)
    end

    # Zeroed memory for a struct whose subclass initialize did not call
    # super (called by #[] / #[]= on first use, as the ffi gem allocates).
    private def __lazy_memory__
      layout = self.class.__layout__
      __set_memory__(MemoryPointer.new(layout.size, 1, true), layout.native_table)
    end

    def initialize_copy(other)
      super
      size = other.size
      __set_memory__(MemoryPointer.new(size, 1, false).__copy_from__(other.pointer, size),
                     self.class.__layout__.native_table)
    end

    def null? = pointer.null?
    def size = self.class.size
    def alignment = self.class.alignment
    alias align alignment
    def offset_of(name) = self.class.offset_of(name)
    # #members, #values, #pointer, #to_ptr, #[] and #[]= are native.
    def offsets = self.class.offsets
    def layout = self.class.layout

    def clear
      pointer.clear
      self
    end

    # The byte order of the memory (:little or :big) or, given an order, a
    # copy of this struct viewing the same memory in that order (the ffi
    # gem's Struct#order; see Pointer#order).
    def order(*order)
      return pointer.order if order.empty?

      view = dup
      view.__send__(:__set_memory__, pointer.order(*order), self.class.__layout__.native_table)
      view
    end

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
        raise IndexError, "index #{index} out of bounds" unless index.is_a?(Integer) && index >= 0 && (size.zero? || index < size)

        StructLayout.element_field(@field, index)
      end
    end

    class << self
      def size
        return @layout.size if defined?(@layout) && @layout
        return @size if defined?(@size)

        superclass.respond_to?(:size) ? superclass.size : 0
      end

      def size=(size)
        raise ArgumentError, "Size already set" if defined?(@size) || defined?(@layout)

        @size = size
      end

      def alignment = __layout__.alignment
      def members = __layout__.members
      def offsets = __layout__.offsets
      def offset_of(name) = __layout__.offset_of(name)

      # The layout, walking up to a superclass that defined one.
      def __layout__
        klass = self
        while klass.is_a?(Class) && klass <= FiddleJit::Struct
          layout = klass.instance_variable_get(:@layout)
          return layout if layout

          klass = klass.superclass
        end
        raise RuntimeError, "no Struct layout configured for #{self}"
      end

      def in = ptr(:in)
      def out = ptr(:out)
      def ptr(_flags = :inout) = (@ref_data_type ||= StructByReference.new(self))
      def by_ref(flags = :inout) = ptr(flags)
      def val = (@val_data_type ||= StructByValue.new(self))
      def by_value = val
      def auto_ptr = (@managed_type ||= ManagedStructConverter.new(self))

      # Memory for one struct (a zeroed MemoryPointer), like the ffi gem's
      # Struct.alloc_in/alloc_out/alloc_inout (also taking a count).
      def alloc_inout(count = 1, clear = true) = new(MemoryPointer.new(size, count, clear))
      alias alloc_in alloc_inout
      alias alloc_out alloc_inout

      # layout(:name, type[, offset], ...) or layout(name: type, ...).
      # Types: builtin names and typedefs (of the enclosing Library module),
      # Struct classes (nested by value), [type, count] inline arrays,
      # Struct.by_ref pointers, Struct.by_value.
      def layout(*spec)
        return @layout if spec.empty? && defined?(@layout)
        return __layout__ if spec.empty?

        if defined?(@layout) && @layout
          warn "[DEPRECATION] Struct layout is already defined for class #{inspect}. " \
               "Redefinition as in #{caller(1, 1).first} will be disallowed in ffi-2.0."
        end

        builder = StructLayoutBuilder.new
        builder.union = self < Union
        builder.packed = @packed if defined?(@packed)
        builder.alignment = @min_alignment if defined?(@min_alignment)
        if spec[0].is_a?(Hash)
          spec[0].each { |name, type| builder.add(name, find_field_type(type), nil) }
        else
          array_layout(builder, spec)
        end
        builder.size = @size if defined?(@size) && @size > builder.size
        cspec = builder.build
        @layout = cspec unless self == FiddleJit::Struct
        @size = cspec.size
        cspec
      end

      protected

      def packed(packed = 1)
        @packed = packed
      end
      alias pack packed

      def aligned(alignment = 1)
        @min_alignment = alignment
      end
      alias align aligned

      def enclosing_module
        mod = name.split("::")[0..-2].inject(Object) { |obj, c| obj.const_get(c) }
        mod if mod.respond_to?(:find_type) && (mod.is_a?(FiddleJit::Library) || mod < FiddleJit::Struct)
      rescue StandardError
        nil
      end

      def find_field_type(type, mod = enclosing_module)
        if type.is_a?(Class) && type < FiddleJit::Struct
          Type::Struct.new(type)
        elsif type.is_a?(::Array)
          Type::Array.new(find_field_type(type[0], mod), type[1])
        elsif type.is_a?(StructByReference) || type.is_a?(Type::Struct) || type.is_a?(Type::Builtin) ||
              type.respond_to?(:struct_field_class)
          type
        elsif type.is_a?(DataConverter)
          Type::Mapped.new(type)
        else
          find_type(type, mod)
        end
      end

      def find_type(type, mod = enclosing_module)
        found = mod&.find_type(type) if mod.is_a?(FiddleJit::Library)
        found ||= Types.resolve(type)
        found.is_a?(Symbol) ? Type::Builtin.new(type, found) : find_field_type(found, nil)
      end

      private

      def array_layout(builder, spec)
        i = 0
        while i < spec.size
          name, type = spec[i, 2]
          i += 2
          if spec[i].is_a?(Integer)
            offset = spec[i]
            i += 1
          else
            offset = nil
          end
          builder.add(name, find_field_type(type), offset)
        end
      end
    end
  end

  class StructLayout
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

  # A Struct whose fields all start at offset 0.
  class Union < Struct
  end

  # A Struct over memory released by the class's `release(pointer)` when
  # garbage-collected (an AutoPointer), like the ffi gem's ManagedStruct.
  class ManagedStruct < Struct
    def initialize(pointer = nil)
      # `release` may be private (the ffi gem 1.16+); the message names the
      # instance, as the ffi gem's does.
      raise NoMethodError, "release() not implemented for class #{self}" unless self.class.respond_to?(:release, true)
      raise ArgumentError, "Must supply a pointer to memory for the Struct" unless pointer

      super(AutoPointer.new(pointer, self.class.method(:release)))
    end
  end
end
