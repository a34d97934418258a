# frozen_string_literal: true

module FiddleJit
  # The native part (src/ruby/pointer.rs) defines the checked accessors for
  # the fixed-width names (get_int8 … get_uint64, get_long, get_ulong,
  # get_float32, get_float64, get_pointer, with put_/read_/write_ and the
  # *_array_of_* forms) and the ffi gem's short aliases of them (get_char,
  # get_int, get_double, ...), strings and bytes. This file adds the
  # methods that are simpler in Ruby.
  class Pointer
    # ffi's AbstractMemory LONG_MAX: the size of an unbounded pointer.
    LONG_MAX = (2**63) - 1
    private_constant :LONG_MAX

    def self.size = SIZE

    # The native constructors know the C type table and Struct classes;
    # sizes of other types come from here: typedef names, and as in the ffi
    # gem, any other object's #size (type objects; NoMethodError without).
    self.type_size_fallback = FiddleJit.make_shareable(->(type) { type.is_a?(Symbol) ? FiddleJit.type_size(type) : type.size })
    private_class_method :type_size_fallback=

    # The ffi gem's builtin types get/put has no accessor for.
    NO_ACCESSOR = %i[void strptr varargs buffer_in buffer_out buffer_inout].freeze
    private_constant :NO_ACCESSOR

    # Accessor suffix for a scalar type usable with get/put (Symbol, typedef
    # or Type::Builtin); ArgumentError "#{verb} type" (the ffi gem's words)
    # for anything else: unknown names, buffers, Structs, Enums...
    def self.accessor_for(type, verb = "undefined")
      canonical = Types.resolve(type)
      written = type.is_a?(Type::Builtin) ? type.name : type
      if !canonical.is_a?(Symbol) || NO_ACCESSOR.include?(canonical) || NO_ACCESSOR.include?(written)
        raise ArgumentError, "#{verb} type '#{type}'"
      end

      case canonical
      when :bool, :string then canonical
      else canonical == :float ? :float32 : (canonical == :double ? :float64 : canonical)
      end
    rescue TypeError
      raise ArgumentError, "#{verb} type '#{type}'"
    end

    # get(type, offset) / put(type, offset, value): by type name.
    def get(type, offset)
      case (suffix = Pointer.accessor_for(type))
      when :bool then get_uint8(offset) != 0
      when :string
        ptr = get_pointer(offset)
        ptr.null? ? nil : ptr.get_string(0)
      when :long_double then Native.long_double_unpack(get_bytes(offset, 16))
      else __send__(:"get_#{suffix}", offset)
      end
    end

    def put(type, offset, value)
      case (suffix = Pointer.accessor_for(type, "unsupported"))
      when :bool then put_uint8(offset, value ? 1 : 0)
      when :string then raise ArgumentError, "cannot put a :string; use put_string"
      when :long_double then put_bytes(offset, Native.long_double_pack(value))
      else __send__(:"put_#{suffix}", offset, value)
      end
      nil
    end

    def read(type) = get(type, 0)
    def write(type, value) = put(type, 0, value)

    def to_ptr = self
    def size_limit? = size != LONG_MAX

    NO_ORDER = Object.new.freeze
    private_constant :NO_ORDER

    # Byte order of the memory (no argument), or a view of it in +order+
    # (:little, :big or :network), like the ffi gem: a byte order other than
    # the host's gives a Pointer over the same memory whose multi-byte
    # scalars (ints, floats, pointers, their arrays, struct fields) are
    # byte-swapped; the host's order, or a non-Symbol (nil too), gives self.
    def order(order = NO_ORDER)
      return __swapped? ? :big : :little if NO_ORDER.equal?(order)

      swap =
        case order
        when :little then false
        when :big, :network then true
        when Symbol then raise ArgumentError, "unknown byte order"
        else false
        end
      return self unless swap

      view = slice(0, size)
      view.__send__(:__swap!)
      view
    end

    # Freezing memory makes it read-only, as in the ffi gem (writes raise
    # RuntimeError "invalid memory write"; pointers derived later, too).
    def freeze
      __readonly! unless frozen?
      super
    end

    # `char *` elements from the start (see get_array_of_string).
    def read_array_of_string(count = nil) = get_array_of_string(0, count)

    def read_string_length(len) = get_bytes(0, len)
    def read_string_to_null = get_string(0)
    def write_string_length(str, len) = put_bytes(0, str, 0, len)

    def write_string(str, len = nil)
      put_bytes(0, str, 0, len || str.bytesize)
    end

    def read_array_of_type(type, reader, length)
      ary = []
      size = FiddleJit.type_size(type)
      tmp = self
      length.times do |j|
        ary << tmp.__send__(reader)
        tmp += size unless j == length - 1 # avoid OOB
      end
      ary
    end

    def write_array_of_type(type, writer, ary)
      size = FiddleJit.type_size(type)
      ary.each_with_index do |val, i|
        break unless i < self.size

        __send__(writer, i * size, val)
      end
      self
    end
  end

  # Memory allocated (zeroed unless clear is false) and owned by the object:
  # freed when it is garbage-collected (unless autorelease is false) or by
  # #free. With a block, the memory is freed when the block returns.
  #
  #   FiddleJit::MemoryPointer.new(:int, 4)          # 16 zeroed bytes
  #   FiddleJit::MemoryPointer.new(64) { |buf| ... }  # freed after the block
  class MemoryPointer < Pointer
    # initialize(type_or_size, count = 1, clear = true) { |ptr| ... } and
    # from_string(str) (memory holding +str+ and a NUL; type_size 1, as the
    # ffi gem 1.16+) are native (src/ruby/pointer.rs).
  end

  # The ffi gem's Buffer (memory for :buffer_in/:buffer_out arguments). In
  # fiddle_jit it is a Pointer (so stubs unbox it inline) that owns its
  # memory like a MemoryPointer.
  class Buffer < Pointer
    def self.alloc_inout(size, count = 1, clear = true, &block) = new(size, count, clear, &block)
    def self.alloc_in(size, count = 1, clear = true, &block) = new(size, count, clear, &block)
    def self.alloc_out(size, count = 1, clear = true, &block) = new(size, count, clear, &block)

    # Sizes as MemoryPointer.new takes them; with a block, yields self (the
    # memory stays: the ffi gem frees only a Buffer's non-embedded storage).
    def initialize(size, count = 1, clear = true)
      __initialize_memory(size, count, clear)
      yield self if block_given?
    end

    def inspect = format("#<%s address=0x%016x size=%d>", self.class, address, size)
  end
end
