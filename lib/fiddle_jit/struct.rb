# frozen_string_literal: true

# The struct family: types (and struct types), layouts, the layout builder,
# then Struct, Union and ManagedStruct here.
require_relative "type"
require_relative "struct_layout"
require_relative "struct_layout_builder"

module FiddleJit
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
  # #[]/#[]= (fields looked up in the layout's native table) are native too,
  # and each laid-out class gets its own machine-code #[]/#[]= for its
  # number fields and pointer and string reads on its first access
  # (src/ruby/struct_accessors.rs).
  class Struct
    # +pointer+: the memory to view (any Pointer: MemoryPointer, a returned
    # Pointer, a slice...); default a new zeroed MemoryPointer of #size.
    #
    # #initialize is native (src/ruby/struct_memory.rs) when no spec is
    # given and the class chain has a layout; everything else comes here,
    # through the `initialize` hook registered below.
    private def __initialize__(pointer = nil, *spec)
      self.class.layout(*spec) unless spec.empty?
      layout = self.class.__layout__
      pointer = MemoryPointer.new(layout.size, 1, true) if pointer.nil?
      __set_memory__(pointer, layout.native_table)
    end

    # What the native Struct#[]/#[]=/#values/#initialize leave to Ruby
    # (src/ruby/struct_memory.rs `Hooks`): shareable, so any Ractor runs them.
    StructFieldTable.__send__(
      :__hooks__,
      Ractor.make_shareable(->(field, ptr) { field.get(ptr) }),
      Ractor.make_shareable(->(field, ptr, value) { field.put(ptr, value) }),
      Ractor.make_shareable(->(struct, *args) { struct.__send__(:__initialize__, *args) })
    )

    def initialize_copy(other)
      super
      # As the ffi gem: a copy of a struct over NULL is over NULL too.
      return __set_memory__(other.pointer, self.class.__layout__.native_table) if other.pointer.null?

      size = other.size
      __set_memory__(MemoryPointer.new(size, 1, false).__copy_from__(other.pointer, size),
                     self.class.__layout__.native_table)
    end

    def size = self.class.size
    def alignment = self.class.alignment
    alias align alignment
    def offset_of(name) = self.class.offset_of(name)
    # #members, #values, #pointer, #to_ptr, #null?, #[] and #[]= are native.
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
        mod = enclosing_module # (once per layout, not per field)
        if spec[0].is_a?(Hash)
          spec[0].each { |name, type| builder.add(name, find_field_type(type, mod), nil) }
        else
          array_layout(builder, spec, mod)
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

      # `layout :cb, callback([:int], :void)` inside the class body: an
      # anonymous callback type (protected, as in the ffi gem).
      def callback(params, ret)
        mod = enclosing_module
        ret_type = find_type(ret, mod)
        # As the ffi gem (and Library#callback).
        raise TypeError, ":string is not allowed as return type of callbacks" if ret_type == Type::STRING

        FunctionType.new(ret_type, params.map { |t| find_type(t, mod) })
      end

      def enclosing_module
        path = name or return nil # an anonymous class (no NoMethodError to rescue)
        mod = path.split("::")[0..-2].inject(Object) { |obj, c| obj.const_get(c) }
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

      def array_layout(builder, spec, mod)
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
          builder.add(name, find_field_type(type, mod), offset)
        end
      end
    end
  end

  # A Struct whose fields all start at offset 0.
  class Union < Struct
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
