# frozen_string_literal: true

module FiddleJit
  # The ffi gem's FFI::Enum: symbols mapped to C int values.
  #
  #   module Lib
  #     extend FiddleJit::Library
  #     enum :color, [:red, :green, 5, :blue]   # red=0, green=5, blue=6
  #     attach_function :paint, [:color], :color
  #   end
  #
  # In signatures an enum is an :int converted by a thin Ruby wrapper; in a
  # struct layout it is an int field read as a Symbol.
  class Enum
    attr_reader :tag

    # Enum.new(info = nil, tag = nil), or Enum.new(native_type, info, tag)
    # with a Type (e.g. FFI::Type::UINT8) as the ffi gem allows.
    def initialize(*args)
      @native_type = args.first.is_a?(Type::Builtin) ? args.shift : nil
      info, tag = *args
      @tag = tag
      @kv_map = {}
      last_cst = nil
      value = 0
      (info || []).each do |i|
        case i
        when Symbol
          raise ArgumentError, "duplicate enum key" if @kv_map.key?(i)

          @kv_map[i] = value
          last_cst = i
          value += 1
        when Integer
          @kv_map[last_cst] = i
          value = i + 1
        end
      end
      @vk_map = @kv_map.invert
    end

    def native_type = @native_type || Type::INT32
    def size = native_type.size
    def alignment = native_type.alignment
    def symbols = @kv_map.keys

    def [](query)
      case query
      when Symbol then @kv_map[query]
      when Integer then @vk_map[query]
      end
    end
    alias find []

    def symbol_map = @kv_map
    alias to_h symbol_map
    alias to_hash symbol_map

    def to_native(val, _ctx = nil)
      @kv_map[val] || if val.is_a?(Integer)
                        val
                      elsif val.respond_to?(:to_int)
                        val.to_int
                      else
                        raise ArgumentError, "invalid enum value, #{val.inspect}"
                      end
    end

    def from_native(val, _ctx = nil) = @vk_map[val] || val

    # Struct field hook (see StructLayout.field_for).
    def struct_field_class = StructLayout::Enum
  end

  # All enums of a Library module (enum_type / enum_value lookups).
  class Enums
    # Symbol => value over all the enums, updated in place as enums are
    # added (the stubs' integer parameters look Symbols up in it).
    attr_reader :symbol_map

    def initialize
      @all_enums = []
      @tagged_enums = {}
      @symbol_map = {}
    end

    def <<(enum)
      @all_enums << enum
      @tagged_enums[enum.tag] = enum unless enum.tag.nil?
      @symbol_map.merge!(enum.symbol_map)
    end

    def find(query)
      @tagged_enums.fetch(query) { @all_enums.detect { |enum| enum.symbols.include?(query) } }
    end

    def __map_symbol(symbol) = @symbol_map[symbol]
  end
end
