# frozen_string_literal: true

require "fiddle_jit"
# Ruby's bundled Fiddle provides the C declaration parser (Fiddle::CParser)
# and its type codes; calls never go through Fiddle.
require "fiddle"
require "fiddle/cparser"

module FiddleJit
  # Fiddle::Importer's declaration syntax, compiled to fiddle_jit stubs:
  #
  #   require "fiddle_jit/importer"
  #   module LibC
  #     extend FiddleJit::Importer
  #     dlload "libc.so.6"
  #     typealias "uint", "unsigned int"
  #     extern "size_t strlen(const char *)"
  #     Timeval = struct(["long tv_sec", "long tv_usec"])
  #     extern "int gettimeofday(void *, void *)"
  #   end
  #   LibC.strlen("abc")                 #=> 3
  #   tv = LibC::Timeval.malloc
  #   LibC.gettimeofday(tv, nil); tv.tv_sec
  #
  # Each `extern` is an attach_function (FiddleJit::Library); `struct` and
  # `union` are FiddleJit::Struct/Union classes with Fiddle's accessors
  # (`s.x`, `s.x = 1`, `s["x"]`, `malloc`, `to_ptr`, `to_i`).
  #
  # Differences from Fiddle: `void *`/`char *` parameters take what a
  # fiddle_jit :pointer takes (nil, String, Pointer, Struct, `to_ptr`), not
  # Integer addresses; pointer results are FiddleJit::Pointer (use
  # `read_string` where Fiddle code calls `to_s`); variadic functions and
  # `bind` (callbacks) raise NotImplementedError.
  module Importer
    include Fiddle::CParser

    TYPES = {
      Fiddle::TYPE_VOID => :void, Fiddle::TYPE_VOIDP => :pointer,
      Fiddle::TYPE_CHAR => :char, -Fiddle::TYPE_CHAR => :uchar,
      Fiddle::TYPE_SHORT => :short, -Fiddle::TYPE_SHORT => :ushort,
      Fiddle::TYPE_INT => :int, -Fiddle::TYPE_INT => :uint,
      Fiddle::TYPE_LONG => :long, -Fiddle::TYPE_LONG => :ulong,
      Fiddle::TYPE_LONG_LONG => :long_long, -Fiddle::TYPE_LONG_LONG => :ulong_long,
      Fiddle::TYPE_FLOAT => :float, Fiddle::TYPE_DOUBLE => :double
    }.tap { |h| h[Fiddle::TYPE_CONST_STRING] = :string if defined?(Fiddle::TYPE_CONST_STRING) }.freeze

    def self.extended(mod)
      mod.extend(Library)
    end

    # Fiddle type code (from the parser) → fiddle_jit type name.
    def self.type_for(code, decl)
      TYPES.fetch(code) do
        if code == Fiddle::TYPE_VARIADIC
          raise NotImplementedError, "#{decl}: variadic functions are not supported by FiddleJit::Importer " \
                                     "(use FiddleJit::Library's :varargs)"
        end
        raise Fiddle::DLError, "#{decl}: unsupported type #{code}"
      end
    end

    def dlload(*libs)
      ffi_lib(*libs.map { |l| l.respond_to?(:to_path) ? l.to_path : l })
    end

    def typealias(alias_type, orig_type)
      type_alias[alias_type] = orig_type
    end

    # extern "ret name(args)": attaches name (singleton and instance method).
    def extern(signature, *_opts)
      name, ret, args = parse_signature(signature, type_alias)
      params = args.map { |a| Importer.type_for(a, signature) }
      attach_function(name.to_sym, params, Importer.type_for(ret, signature))
    end

    def struct(signature) = build_struct(signature, Importer::CStruct)
    def union(signature) = build_struct(signature, Importer::CUnion)

    # sizeof("int"), sizeof(StructClass), sizeof(Fiddle type code).
    def sizeof(type)
      case type
      when ::String then FiddleJit.type_size(Importer.type_for(parse_ctype(type, type_alias), type))
      when Integer then FiddleJit.type_size(Importer.type_for(type, type.to_s))
      else type.size
      end
    end

    # The address of a symbol as a Pointer (Fiddle's import_symbol).
    def import_symbol(name)
      address = nil
      ffi_libraries.find { |l| address = l.find_address(name.to_s) }
      raise Fiddle::DLError, "cannot find the symbol: #{name}" unless address

      Pointer.new(address)
    end

    def bind(*)
      raise NotImplementedError, "FiddleJit::Importer#bind: callbacks are not supported yet"
    end

    private

    def type_alias
      @type_alias ||= {}
    end

    def build_struct(signature, base)
      types, members = parse_struct_signature(signature, type_alias)
      spec = members.zip(types).flat_map do |member, type|
        t = type.is_a?(::Array) ? [Importer.type_for(type[0], member), type[1]] : Importer.type_for(type, member)
        [member.to_sym, t]
      end
      klass = Class.new(base)
      klass.layout(*spec)
      klass.define_member_accessors(members)
      klass
    end

    # Fiddle's struct API over a FiddleJit::Struct.
    module StructMethods
      def self.included(base)
        base.extend(ClassMethods)
      end

      # new(address or Pointer or nil)
      def initialize(pointer = nil)
        pointer = Pointer.new(pointer) if pointer.is_a?(Integer)
        super(pointer)
      end

      def to_i = pointer.address

      private

      def member_get(name)
        v = __jit_get(name)
        v.is_a?(FiddleJit::Struct::InlineArray) ? v.to_a : v
      end

      def member_set(name, value)
        field = self.class.__layout__[name] or raise ArgumentError, "No such field '#{name}'"
        if value.is_a?(::Array) && field.type.is_a?(Type::Array)
          arr = __jit_get(name)
          value.each_with_index { |v, i| arr[i] = v }
        else
          __jit_set(name, value)
        end
        value
      end

      module ClassMethods
        def malloc(_free = nil) = new
        def members = __layout__.members.map(&:to_s)

        # After layout: Fiddle's s.x / s.x = v / s["x"] over the layout's
        # own (generated) #[] and #[]=.
        def define_member_accessors(names)
          alias_method :__jit_get, :[]
          alias_method :__jit_set, :[]=
          private :__jit_get, :__jit_set
          define_method(:[]) { |name| member_get(name.to_sym) }
          define_method(:[]=) { |name, value| member_set(name.to_sym, value) }
          names.each do |m|
            sym = m.to_sym
            define_method(m) { member_get(sym) }
            define_method("#{m}=") { |v| member_set(sym, v) }
          end
        end
      end
    end

    class CStruct < FiddleJit::Struct
      include StructMethods
    end

    class CUnion < FiddleJit::Union
      include StructMethods
    end
  end
end
