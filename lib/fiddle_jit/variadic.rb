# frozen_string_literal: true

module FiddleJit
  # A variadic C function (the ffi gem's FFI::VariadicInvoker): what
  # attach_function returns for `[..., :varargs]` under the FFI namespace,
  # and what the attached method calls.
  #
  #   printf = LibC.attached_functions[:printf]
  #   printf.call("%d %s\n", :int, 5, :string, "x")
  #
  # Each distinct shape of variadic types (`[:int, :string]`) gets its own
  # stub, attached to a hidden module on first use; the shapes seen are
  # cached unless the invoker was made shareable (Library#freeze), in which
  # case the hidden module's methods are the cache.
  class VariadicInvoker
    def initialize(library, name, c_name, address, fixed, ret, blocking)
      @library = library
      @name = name
      @c_name = c_name
      @address = address
      @fixed = fixed.dup.freeze
      @ret = ret
      @blocking = blocking
      fixed_resolved = fixed.map { |t| library.find_type(t) }
      @fixed_types = fixed_resolved.each_with_index.map do |t, i|
        library.__send__(:ffi_long_param, fixed[i], t) || library.__send__(:variadic_native_type, t, name)
      end
      @fixed_convs = fixed_resolved.map { |t| library.__send__(:variadic_converter, t) }
      @ret_type, @ret_conv = library.__send__(:native_return_type, library.find_type(ret), name)
      @holder = Module.new
      @shapes = {}
    end

    def return_type = @library.find_type(@ret)
    def param_types = (@fixed + [:varargs]).map { |t| @library.find_type(t) }

    # call(fixed..., type, value, type, value...): as the ffi gem, missing
    # fixed arguments are nil and a trailing type without a value passes nil.
    def call(*args)
      fixed = @fixed.size
      args += [nil] * (fixed - args.size) if args.size < fixed
      pairs = args.drop(fixed).each_slice(2).map { |type, value| [type, value] }
      stub, convs = shape(pairs.map(&:first))
      values = args.first(fixed) + pairs.map(&:last)
      if convs.any?
        values = values.each_with_index.map do |v, i|
          c = convs[i]
          next v unless c

          c.is_a?(FunctionType) ? Function.for_callback(c, v) : c.to_native(v)
        end
      end
      result = @holder.__send__(stub, *values)
      @ret_conv ? @ret_conv.from_native(result, nil) : result
    end

    # Defines +mname+ on +mod+ calling this function (the ffi gem's #attach).
    def attach(mod, mname)
      invoker = self
      mod.define_singleton_method(mname) { |*args| invoker.call(*args) }
      mod.define_method(mname) { |*args| invoker.call(*args) }
      invoker
    end

    def inspect = "#<#{self.class} #{@name} (#{param_types.map(&:inspect).join(", ")}) -> #{return_type.inspect}>"

    private

    # [the hidden stub's name, the converter of each value (or nil)].
    def shape(types)
      found = @shapes[types]
      return found if found

      library = @library
      resolved = types.map { |t| library.find_type(t) }
      var_types = resolved.each_with_index.map do |t, i|
        library.__send__(:ffi_long_param, types[i], t) || library.__send__(:variadic_native_type, t, @name)
      end
      raise ArgumentError, "#{@name}: :void is not a variadic argument type" if var_types.include?("void")

      shape_name = "#{@name}(#{types.join(", ")})"
      unless @holder.respond_to?(shape_name)
        signature = Library.native_signature(library, @fixed_types + var_types, @ret_type, (@fixed + types).map(&:to_s),
                                             fixed: @fixed.size, blocking: @blocking)
        stub, = Native.attach_function(@holder, shape_name, @address, @c_name, signature)
        library.__send__(:enum_symbols_for, stub)
      end
      entry = [shape_name.to_sym, @fixed_convs + resolved.map { |t| library.__send__(:variadic_converter, t) }].freeze
      @shapes[types.dup.freeze] = entry unless @shapes.frozen?
      entry
    end
  end

  # Under the FFI namespace (ffi.rb, loaded first or later), FFI::VariadicInvoker is this class.
  ::FFI.const_set(:VariadicInvoker, VariadicInvoker) if defined?(::FFI::FIDDLE_JIT)
end
