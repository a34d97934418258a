# frozen_string_literal: true

module FiddleJit
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
      # As the ffi gem's StructLayout.
      raise RuntimeError, "Struct size is zero" if size.zero? && !@fields.empty?

      StructLayout.new(@fields, size, @alignment, @union)
    end

    private

    def align(offset, align) = align + ((offset - 1) & ~(align - 1))
  end
end
