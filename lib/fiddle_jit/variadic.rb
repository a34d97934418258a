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
  # stub, attached to a hidden module on first use. #call is native
  # (Native::VariadicCall, src/ruby/variadic.rs): it finds the shape's stub
  # by the identity of the types passed, converts the values that need it
  # and calls the stub; a new shape goes through #shape below. As the ffi
  # gem: missing fixed arguments are nil, and a trailing type without a
  # value passes nil.
  class VariadicInvoker < Native::VariadicCall
    NOT_VARIADIC = %w[void bool].freeze

    def initialize(library, name, c_name, address, fixed, ret, blocking)
      super()
      @library = library
      @name = name
      @c_name = c_name
      @address = address
      @fixed = fixed.dup.freeze
      @ret = ret
      @blocking = blocking
      fixed_resolved = fixed.map { |t| library.find_type(t) }
      @fixed_types = fixed_resolved.each_with_index.map do |t, i|
        library.__send__(:__ffi_long_param__, fixed[i], t) || library.__send__(:__variadic_native_type__, t, name)
      end
      @fixed_convs = fixed_resolved.map { |t| library.__send__(:__variadic_converter__, t) }
      @ret_type, @ret_conv = library.__send__(:__native_return_type__, library.find_type(ret), name)
      @holder = Module.new
      __setup(@fixed.size, @ret_conv, @holder)
    end

    # A copy's native half starts empty (new shapes cached again).
    def initialize_copy(other)
      super
      __setup(@fixed.size, @ret_conv, @holder)
    end

    def return_type = @library.find_type(@ret)
    def param_types = (@fixed + [:varargs]).map { |t| @library.find_type(t) }

    # Defines +mname+ on +mod+ calling this function (the ffi gem's #attach).
    def attach(mod, mname)
      invoker = self
      mod.define_singleton_method(mname) { |*args| invoker.call(*args) }
      mod.define_method(mname) { |*args| invoker.call(*args) }
      invoker
    end

    def inspect = "#<#{self.class} #{@name} (#{param_types.map(&:inspect).join(", ")}) -> #{return_type.inspect}>"

    private

    # The native #call's slow path, once per new shape of variadic +types+
    # (raising the ffi gem's errors for bad ones): [the stub's address, its
    # cfunc arity, the converter of each argument or nil].
    def shape(types)
      library = @library
      resolved = types.map { |t| library.find_type(t) }
      # (The ffi gem's libffi rejects :varargs here with an ArgumentError too.)
      if resolved.any? { |t| t.is_a?(Type::Builtin) && t.canonical == :varargs }
        raise ArgumentError, "#{@name}: :varargs is not a variadic argument type"
      end
      var_types = resolved.each_with_index.map do |t, i|
        library.__send__(:__ffi_long_param__, types[i], t) || library.__send__(:__variadic_native_type__, t, @name)
      end
      # Like the ffi gem, whose libffi rejects a type narrower than int it
      # does not promote (:bool).
      if (bad = var_types.find { |t| NOT_VARIADIC.include?(t) })
        raise ArgumentError, "#{@name}: :#{bad} is not a variadic argument type"
      end

      shape_name = "#{@name}(#{types.join(", ")})"
      signature = Library.native_signature(library, @fixed_types + var_types, @ret_type, (@fixed + types).map(&:to_s),
                                           fixed: @fixed.size, blocking: @blocking)
      # The same name and signature again (another Ractor, a racing
      # thread) gives the stub already attached.
      stub, = Native.attach_function(@holder, shape_name, @address, @c_name, signature)
      library.__send__(:__enum_symbols_for__, stub)
      [stub, @holder.method(shape_name).arity, @fixed_convs + resolved.map { |t| library.__send__(:__variadic_converter__, t) }]
    end
  end

  # Under the FFI namespace (ffi.rb, loaded first or later), FFI::VariadicInvoker is this class.
  ::FFI.const_set(:VariadicInvoker, VariadicInvoker) if defined?(::FFI::FIDDLE_JIT)
end
