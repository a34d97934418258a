# frozen_string_literal: true

module FiddleJit
  # A C function pointer (the ffi gem's FFI::Function).
  #
  #   add = FiddleJit::Function.new(:int, [:int, :int]) { |a, b| a + b }
  #   add.address            # what C calls; pass it (or add itself) as :pointer
  #   FiddleJit::Function.new(:int, [:int, :int], some_pointer).call(1, 2)
  #
  # A Function made from a Proc/Method/block keeps it alive (GC-marked and
  # pinned) for as long as the Function object lives; keep the Function (or,
  # for callbacks made from a Proc by a callback parameter, the Proc)
  # referenced for as long as C may call it.
  class Function
    NO_OPTIONS = {}.freeze

    # A signature as Function.new uses it: the resolved types, their names
    # for the native layer, whether a callable needs #adapt, the frozen
    # [ret, params] pair each of its Functions holds, and the callback types
    # parsed once for its callbacks (Native::CallbackTypes).
    Signature = ::Struct.new(:ret, :params, :native_params, :native_ret, :adapt, :types, :callback_types)
    # Signatures of builtin type Symbols: return Symbol => { first param
    # Symbol => { ... nil => Signature } }. Builtin Symbols resolve the same whatever
    # typedefs exist; main Ractor only (the Hash is not shareable).
    SIGNATURES = {}
    self.__signatures = SIGNATURES

    # new(return_type, param_types, proc_or_pointer = nil, options = {}, &block)
    # is native (src/ruby/function/constructor.rs): a block stands in for
    # the callable, a Hash before it is the options; a Proc or Pointer for
    # a signature seen before, without options, is made there in one call,
    # anything else by +new_resolving+. A subclass's +new+ makes instances
    # of the subclass.
    class << self
      # The Signature for +ret+ and +params+ (cached for builtin Symbols).
      def __signature(ret, params)
        ret = Types.resolve(ret)
        params = params.map { |t| Types.resolve(t) }
        # (Types.resolve gives a builtin's canonical Symbol.) A :void
        # parameter is no parameter for C (`int f(void)`): the
        # callback's Ruby callable gets nil in its place (as the ffi gem
        # passes), and #call raises the ffi gem's ArgumentError.
        native_params = params.filter_map { |t| native_param(t) unless t == :void }.freeze
        native_ret = native_param(ret)
        Signature.new(ret, params.freeze, native_params, native_ret, adapt?(params, ret), [ret, params].freeze,
                      Native::CallbackTypes.new(native_params, native_ret).freeze).freeze
      end

      # Function.new with the types resolved (+sig+ a Signature).
      def __new(sig, callable, options)
        # The Pointer or callable is kept alive natively (the ffi gem's
        # rbParent), the types too: no instance variables, each a
        # generic-ivar table entry on this T_DATA object.
        fn = if callable.is_a?(Pointer) # (a Function too)
               __pointer_from(callable, sig.types)
             else
               unless callable.is_a?(Proc) || callable.respond_to?(:call)
                 raise TypeError, "wrong argument type #{callable.class}, expected pointer or proc"
               end

               adapted = sig.adapt ? adapt(callable, sig.params, sig.ret) : callable
               __callback(sig.native_params, sig.native_ret, adapted, sig.types, callable)
             end
        fn.__send__(:setup_options, options) unless options.empty?
        fn
      end

      # The native layer's name for a resolved type.
      def native_name(type)
        case type
        when Symbol then type.name # (frozen, interned)
        when FunctionType, StructByReference then "pointer"
        when Type::Builtin then type.canonical.to_s
        when Enum, Type::Mapped then native_name(type.native_type)
        when Class then type < FiddleJit::Struct ? "pointer" : type.to_s
        else type.to_s
        end
      end

      # What a parameter of callback type +type+ passes for +value+: a
      # Function made from a Proc/Method/block (cached on it, so the same
      # Proc always yields the same C address and lives as long as the Proc).
      # Native (__for_callback: the type's memo, nil and Pointers as they
      # are, the ffi gem's cache on the callable, a new Function for a Proc
      # when nothing below needs Ruby; false when new_for_callback must make
      # it).
      def for_callback(type, value)
        fn = __for_callback(type, value)
        fn == false ? new_for_callback(type, value) : fn
      end

      # A new Function for callable +value+ of callback type +type+, kept in
      # the ffi gem's cache on the callable: the Function of its first
      # callback type in @__ffi_callback__, those of other types in the Hash
      # @__ffi_callback_table__ (which keep them alive as long as the
      # callable), and in the type's memo (the last callable and its
      # Function, kept alive until the next: a callback C stored from a
      # temporary Proc lives until then). (The common case, a new Proc for a
      # type without options, is made the same way natively:
      # src/ruby/function/callback_lookup.rs, `make`.)
      def new_for_callback(type, value)
        fn = __new(type.__signature, value, type.options)
        # (Held natively: an instance variable on this T_DATA object would be
        # a generic-ivar table entry.)
        fn.__callback_type = type
        unless value.frozen?
          first = value.instance_variable_get(:@__ffi_callback__)
          if first.nil?
            value.instance_variable_set(:@__ffi_callback__, fn)
          else
            table = value.instance_variable_get(:@__ffi_callback_table__) ||
                    value.instance_variable_set(:@__ffi_callback_table__, {}.compare_by_identity)
            table[type] = fn
          end
        end
        type.__callback_memo!(value, fn)
        fn
      end

      # A C function pointer returned as a callback type: a Function, or nil.
      def from_native(type, pointer)
        return nil if pointer.nil? || pointer.null?

        __new(type.__signature, pointer, type.options)
      end

      # Attaches the C function at +address+ to +mod+ as +name+. Signatures
      # with callback parameters or a callback return get a native method
      # (Native.attach_converting) in front of the stub: it turns a block or
      # Procs/Methods into Functions, opens a callback frame and re-raises
      # an exception a callback raised once C has returned.
      #
      # +frame+ forces it for a function without callback types that may
      # call callbacks C stored earlier, so their exceptions are re-raised
      # too.
      # Returns [stub address, code bytes].
      def attach_address(mod, name, address, params, ret, labels, frame: false, blocking: false)
        name = name.to_s
        native_params = params.map { |t| native_param(t) }
        native_ret = ret.is_a?(Type::Struct) ? ret.native_return_descriptor : native_name(ret)
        callbacks = params.map { |t| t if t.is_a?(FunctionType) }
        ret_callback = ret if ret.is_a?(FunctionType)
        signature = Library.native_signature(mod, native_params, native_ret, labels, blocking: blocking)
        return Native.attach_function(mod, name, address, name, signature) unless frame || ret_callback || callbacks.any?

        Native.attach_converting(mod, name, address, name, signature, callbacks, ret_callback, frame)
      end

      private

      # Function.new once its arguments are sorted out, when the native
      # fast path did not make it (options, types resolved for the first
      # time, callables to check or adapt).
      def new_resolving(ret, params, callable, options = NO_OPTIONS)
        __new(cached_signature(ret, params), callable, options)
      end

      def cached_signature(ret, params)
        cache = begin
          SIGNATURES
        rescue Ractor::IsolationError
          return __signature(ret, params)
        end
        # A trie of Symbol-keyed Hashes (an Array key would cost its
        # recursion-guarded #hash and #eql?), the Signature under nil,
        # walked natively.
        sig = __signature_in(cache, ret, params)
        return sig if sig

        sig = __signature(ret, params)
        if Types::BUILTIN.key?(ret) && params.all? { |t| Types::BUILTIN.key?(t) }
          node = (cache[ret] ||= {})
          params.each { |t| node = (node[t] ||= {}) }
          node[nil] = sig
        end
        sig
      end

      # Whether a callable for these (resolved) types needs #adapt.
      def adapt?(params, ret)
        params.any? { |t| t == :void || adapted_type?(t) } || adapted_type?(ret)
      end

      def void_param?(t) = t == :void || (t.is_a?(Type::Builtin) && t.canonical == :void)

      # Why a function of these (resolved) types cannot be called from
      # Ruby, or nil (the ffi gem's messages; see Library#__uncallable__).
      def uncallable(params)
        "Invalid parameter type: 0" if params.any? { |t| void_param?(t) }
      end

      # Defines +name+ on +mod+ (singleton and instance method) raising what
      # the ffi gem raises calling a function it cannot call: its arity's
      # ArgumentError first, then +reason+ (see also
      # Library#__attach_uncallable__).
      def define_uncallable(mod, name, arity, reason)
        body = lambda do |*args|
          raise ArgumentError, "wrong number of arguments (#{args.size} for #{arity})" unless args.size == arity

          raise ArgumentError, reason
        end
        mod.define_singleton_method(name, &body)
        mod.define_method(name, &body)
      end

      def adapted_type?(t)
        t.is_a?(FunctionType) || t.is_a?(Enum) || t.is_a?(Type::Mapped) || t.is_a?(StructByReference) ||
          t.is_a?(Type::Struct)
      end

      # A parameter for the native layer: a struct by value is its
      # descriptor (the stub copies it into registers or stack slots).
      def native_param(type)
        type.is_a?(Type::Struct) ? type.native_descriptor : native_name(type)
      end

      # Callback-typed parameters of the callback arrive as Functions;
      # a callback-typed return may be a Proc.
      # Wraps +callable+ so it sees Ruby values for callback, enum and
      # mapped-type parameters and may return them (like the ffi gem).
      # Struct.ptr / Struct.by_ref parameters arrive as instances of the
      # struct class, as in the ffi gem (a bare Struct class as a callback
      # parameter stays a Pointer there, and here).
      def adapt(callable, params, ret)
        conv_params = params.each_index.select { |i| adapted_type?(params[i]) }
        voids = params.each_index.select { |i| params[i] == :void }
        return callable if conv_params.empty? && voids.empty? && !adapted_type?(ret)

        lambda do |*args|
          voids.each { |i| args.insert(i, nil) }
          conv_params.each do |i|
            t = params[i]
            args[i] = case t
                      when FunctionType then Function.from_native(t, args[i])
                      when Type::Struct then struct_from_bytes(t.struct_class, args[i])
                      else t.from_native(args[i], nil)
                      end
          end
          result = callable.call(*args)
          case ret
          when FunctionType then Function.for_callback(ret, result)
          when Enum, Type::Mapped, StructByReference then ret.to_native(result, nil)
          when Type::Struct then struct_bytes(ret.struct_class, result)
          else result
          end
        end
      end

      # A struct by value argument of a callback: a new instance holding a
      # copy of the bytes C passed (the native layer hands them as a String).
      def struct_from_bytes(klass, bytes)
        s = klass.new
        s.pointer.put_bytes(0, bytes)
        s
      end

      # A struct by value result of a callback: the bytes of any Struct
      # instance (zero-padded to the return type's size), as the ffi gem
      # copies a returned Struct; anything else returns zeros (nil here).
      def struct_bytes(klass, result)
        return nil unless result.is_a?(FiddleJit::Struct)

        pointer = result.pointer
        return nil if pointer.nil? || pointer.null?

        size = [klass.size, result.class.size].min
        pointer.get_bytes(0, size)
      end
    end

    # The result and parameter types as the ffi gem 1.16+ reports them:
    # Type objects (Type::INT32 for :int), a Struct.by_ref as a Type::Mapped
    # of its StructByReference.
    def return_type = Function.ffi_type(types[0])
    def param_types = types[1].map { |t| Function.ffi_type(t) }

    def self.ffi_type(type)
      case type
      when StructByReference then Type::Mapped.new(type)
      else Type.builtin(type)
      end
    end

    # Frozen as any object (a Function's memory is not writable anyway),
    # with its Pointer (#to_ptr, native) made and frozen first, as the ffi
    # gem's Function is itself a frozen Pointer.
    def freeze
      to_ptr.freeze
      FiddleJit.make_shareable(types) # (held natively: Ractor.make_shareable does not see it)
      @invoker ||= build_invoker unless freed? # what #call needs, made while it may still be
      Kernel.instance_method(:freeze).bind_call(self)
    end

    # Calls the function (C or Ruby-backed, always through its C address).
    # An exception raised by a callback during the call is re-raised here.
    # Enum and DataConverter (Type::Mapped) parameters and result are
    # converted as in attached functions.
    def call(*args, &blk)
      invoker = @invoker || build_invoker
      @param_convs&.each_with_index { |c, i| args[i] = c.to_native(args[i], nil) if c && i < args.length }
      frame = Native.callback_frame_push
      begin
        result = invoker.call(*args, &blk)
      ensure
        exc = Native.callback_frame_pop(frame)
      end
      raise exc if exc

      @return_conv ? @return_conv.from_native(result, nil) : result
    end

    # Defines +name+ on +mod+ (singleton and instance method, like
    # attach_function) calling this function. The module keeps it alive.
    def attach(mod, name)
      # (A frozen receiver first: the ffi gem 1.17 checks that before the type.)
      raise FrozenError.new("can't modify frozen #{mod.class}: #{mod.inspect}", receiver: mod) if mod.frozen?
      raise RuntimeError, "trying to attach function to non-module" unless mod.is_a?(Module)

      ret, params = types
      if (reason = Function.__send__(:uncallable, params))
        Function.__send__(:define_uncallable, mod, name, params.size, reason)
      else
        labels = params.map { |t| t.is_a?(FunctionType) ? "callback" : t.to_s }
        Function.attach_address(mod, name, address, params, ret, labels,
                                blocking: @options&.[](:blocking) ? true : false)
      end
      attached = mod.instance_variable_get(:@__fiddle_jit_functions__) || {}
      attached[name.to_s] = self
      mod.instance_variable_set(:@__fiddle_jit_functions__, attached)
      self
    end

    # Releases the trampoline now (C must not call it afterwards), and
    # forgets this Function in the callback caches so a later call with the
    # same Proc gets a fresh one.
    def free
      native_free
      KEPT.delete(self)
      type = __callback_type
      type&.__callback_memo_forget(self)
      callable = __parent
      if callable && !callable.frozen?
        callable.remove_instance_variable(:@__ffi_callback__) if callable.instance_variable_get(:@__ffi_callback__).equal?(self)
        callable.instance_variable_get(:@__ffi_callback_table__)&.delete_if { |_, f| f.equal?(self) }
      end
      self
    end

    def null? = address.zero?

    # (#== is native: src/ruby/function.rs.)
    def eql?(other) = other.is_a?(Function) && other.address == address
    def hash = address.hash
    def +(other) = to_ptr + other
    # As in the ffi gem, where a Function is a Pointer to its code, Pointer's
    # memory methods read it: through #to_ptr, a read-only Pointer of the
    # ffi gem's sizes (LONG_MAX bytes for a C function, 48 for a callback).
    # Most find it natively (src/ruby/pointer.rs, `receiver`); these check
    # their receiver's type, so they call it on #to_ptr. (Not
    # get_array_of_string: a C function's code holds no `char *`s.)
    __on_to_ptr(%i[size total type_size order size_limit? slice [] clear put_string write_bytes])

    # autorelease = false (the ffi gem's way to hand C a callback it keeps):
    # this Function, its trampoline and its callable live until #free or
    # autorelease = true, whether Ruby still references them or not.
    KEPT = {}.compare_by_identity
    private_constant :KEPT

    def autorelease=(autorelease)
      autorelease ? KEPT.delete(self) : KEPT[self] = true
    end

    def autorelease?
      !KEPT.key?(self)
    rescue Ractor::IsolationError # (another Ractor keeps nothing: main Ractor only)
      true
    end
    alias autorelease autorelease?

    # As the ffi gem: a Function is not copied (dup, clone).
    def initialize_copy(_other)
      raise RuntimeError, "cannot duplicate function instances"
    end

    def inspect
      ret, params = types
      kind = __callable ? "callback" : "pointer"
      name = ->(t) { t.is_a?(Type::Builtin) ? t.canonical : t }
      format("#<FiddleJit::Function %s (%s) -> %s address=0x%016x>", kind, params.map(&name).join(", "),
             name.call(ret), address)
    end

    private :native_free

    private

    # The types and options of a Function made by __pointer (no callable:
    # Function.__new hands a callable or Pointer to the native constructor,
    # which keeps it alive).
    def setup(ret, params, options, _callable)
      self.__types = [ret, params]
      setup_options(options) unless options.empty?
    end

    def setup_options(options)
      @options = options
    end

    # attach_function's return value under the FFI namespace: the library
    # resolves the (builtin) type names when the Function is first used, so
    # attaching pays nothing for a value callers rarely keep. Held in the
    # native types slot until then: no instance variable (on a T_DATA
    # object each is a generic-ivar table entry, which every collection
    # marks through a hash lookup).
    # ([library, return type, parameter types]: three entries where the
    # resolved types are two.)
    def setup_lazily(library, ret, params)
      self.__types = [library, ret, params]
    end

    # [return type, parameter types], resolved.
    def types
      types = __types
      return types unless types&.size == 3

      library, ret, params = types
      setup(library.find_type(ret), params.map { |t| library.find_type(t) }, {}, nil)
      __types
    end

    def build_invoker
      raise RuntimeError, "Function#call after free" if freed?

      ret, params = types
      mod = Module.new
      if (reason = Function.__send__(:uncallable, params))
        Function.__send__(:define_uncallable, mod, :call, params.size, reason)
        return @invoker = mod
      end
      labels = params.map { |t| t.is_a?(FunctionType) ? "callback" : t.to_s }
      Function.attach_address(mod, "call", address, params, ret, labels,
                              blocking: @options&.[](:blocking) ? true : false)
      mapped = ->(t) { t.is_a?(Enum) || t.is_a?(Type::Mapped) ? t : nil }
      convs = params.map(&mapped)
      @param_convs = convs.any? ? convs : nil
      @return_conv = mapped.call(ret)
      @invoker = mod
    end
  end
end
