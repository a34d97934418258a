# frozen_string_literal: true

module FiddleJit
  CURRENT_PROCESS = LibraryLoader::CURRENT_PROCESS

  # What attach_function returns: a description of the installed stub.
  AttachedFunction = ::Struct.new(:name, :c_name, :params, :return_type, :address, :stub_address, :code_bytes) do
    # The stub's machine code as readable assembly.
    def disassemble
      Native.disassemble(stub_address)
    end
  end

  # The errno the calling thread's last attached call left (saved by the
  # stub right after the C call, like the ffi gem's FFI.errno).
  def self.errno
    Native.errno
  end

  def self.errno=(value)
    Native.errno = value
  end

  # Assembly of the stub behind +mod+'s attached function +name+ (Symbol or
  # String), e.g. `puts FiddleJit.disassemble(LibC, :strlen)`.
  def self.disassemble(mod, name)
    fn = mod.instance_variable_get(:@fiddle_jit_functions)&.fetch(name.to_sym, nil)
    raise ArgumentError, "#{mod} has no function #{name} attached by fiddle_jit" unless fn

    fn.disassemble
  end

  # The ffi gem's FFI::Library: `extend FiddleJit::Library`, then
  # `ffi_lib` and `attach_function`.
  #
  #   module LibC
  #     extend FiddleJit::Library
  #     ffi_lib "c"
  #     attach_function :strlen, [:string], :size_t
  #   end
  #   LibC.strlen("hi") #=> 2
  module Library
    LIBC = LibraryLoader::LIBC
    CURRENT_PROCESS = LibraryLoader::CURRENT_PROCESS
    NO_OPTIONS = {}.freeze
    NO_TYPES = [].freeze
    # Builtin scalar type Symbols => the native layer's type name, for the
    # types that need no Ruby-side conversion: attach_function's common case
    # (every type such a Symbol, no module typedef shadowing it) goes
    # straight to the native layer without building type objects.
    # (What find_type + ffi_long_param/native_param_type give them, incl.
    # "long"/"ulong" where the ffi gem converts with NUM2LONG.)
    PLAIN_PARAMS = Types::BUILTIN.reject { |_, c| %i[void strptr varargs].include?(c) }
                                 .to_h { |t, c| [t, Type.ffi_long(t)&.name&.to_s || c.name] }.freeze
    PLAIN_RETURNS = PLAIN_PARAMS.merge(void: "void").freeze
    # The Resolved of each plain signature attached so far: option bits =>
    # return Symbol => first parameter Symbol => ... => SIGNATURE =>
    # Resolved (Symbol-keyed Hashes: an Array key would cost its #hash; the
    # leaf key is no type a caller could pass, and hashes as a special
    # constant). Main Ractor only. See #signature.
    PLAIN_SIGNATURES = {}
    SIGNATURE = true
    # A signature as attach_function uses it: its Native::Signature, what
    # converts each argument and the result (Native.attach_converting's;
    # nil for a plain one), whether any converts, and the types (resolved,
    # or a plain one's Symbols).
    Resolved = ::Struct.new(:signature, :conversions, :ret_conversion, :converts, :params, :ret)
    private_constant :PLAIN_SIGNATURES, :SIGNATURE, :Resolved
    # Type::LONG/ULONG's names => the native layer's (see #long_param_name).
    LONG_PARAM_NAMES = { long: "long", ulong: "ulong" }.freeze
    FLAGS = { global: DynamicLibrary::RTLD_GLOBAL, local: DynamicLibrary::RTLD_LOCAL,
              lazy: DynamicLibrary::RTLD_LAZY, now: DynamicLibrary::RTLD_NOW }.freeze

    def self.extended(mod)
      raise RuntimeError, "must only be extended by module" unless mod.is_a?(Module)
    end

    # Whether functions attached to +mod+ behave as the ffi gem's (its
    # messages, arity -1, attach_function returning an FFI::Function): a
    # property of the module, true for one extended with FFI::Library
    # (fiddle_jit/ffi), false for one extended with FiddleJit::Library,
    # whatever was required. Another module (Function#attach onto a plain
    # module) follows the namespace in use: ffi's once fiddle_jit/ffi is loaded.
    def self.ffi_compatible?(mod)
      return mod.__ffi_compatible__? if mod.is_a?(Library)

      defined?(::FFI::FIDDLE_JIT) ? true : false
    end

    # The signature Native.attach_function takes for a function attached to
    # +mod+ (src/ruby/attach.rs AttachSignature): +params+/+ret+ native type
    # names or struct descriptors, +labels+ the types as written (messages),
    # +fixed+ the fixed parameter count of a variadic call shape.
    def self.native_signature(mod, params, ret, labels, fixed: nil, blocking: false)
      options = (blocking ? Native::BLOCKING : 0) | (ffi_compatible?(mod) ? Native::FFI_COMPATIBLE : 0)
      Native::Signature.new(params, ret, labels, fixed, options)
    end

    def __ffi_compatible__? = false

    # Loads libraries: names ("c", "m", "libm.so.6"), paths, or Arrays of
    # fallback names (the first that loads is used).
    def ffi_lib(*names)
      raise LoadError, "library names list must not be empty" if names.empty?

      flags = @ffi_lib_flags || (DynamicLibrary::RTLD_LAZY | DynamicLibrary::RTLD_LOCAL)
      @ffi_libs = names.map { |name| LibraryLoader.open(name, flags) }
    end

    # Flags for later ffi_lib calls: any of :global, :local, :lazy, :now
    # (another is the ffi gem's TypeError).
    def ffi_lib_flags(*flags)
      @ffi_lib_flags = flags.inject(0) { |result, f| result | (FLAGS[f] or raise TypeError, "nil can't be coerced into Integer") }
    end

    # The C names attach_function looks +name+ up as: +name+, and for
    # :stdcall also the decorated names of its +arg_types+ (Type objects).
    def function_names(name, arg_types)
      return [name.to_s] unless @ffi_convention == :stdcall

      size = arg_types.sum { |t| (s = FiddleJit.type_size(t)) + ((4 - s) % 4) }
      [name.to_s, "_#{name}@#{size}", "#{name}@#{size}"]
    end

    def ffi_libraries
      libs = @ffi_libs
      raise LoadError, "no library specified" if libs.nil? || libs.empty?

      libs
    end

    # typedef(old, new): +old+ is a type name, a type object, a Struct, an
    # Enum or a DataConverter; `typedef :enum, :name, [...]` defines an enum.
    def typedef(old, add, info = nil)
      @ffi_typedefs ||= {}
      if old == :enum
        return add.is_a?(Array) ? enum(add) : enum(info, add)
      end

      # +add+ is the one name that may resolve differently now (cached
      # entries hold type objects, not names to look up again).
      cache = @ffi_type_cache
      if cache && !cache.frozen? then cache.delete(add)
      else @ffi_type_cache = nil
      end
      @ffi_param_infos = @ffi_return_infos = nil if @ffi_param_infos || @ffi_return_infos
      # A builtin name typedef'd to something else: no plain_signature.
      @ffi_shadows_builtin = true if PLAIN_RETURNS.key?(add)
      # (find_type of a FunctionType is the type itself.)
      type = @ffi_typedefs[add] = old.is_a?(FunctionType) ? old : find_type(old)
      __note_plain_typedef__(add, type)
      type
    end

    # callback(name, params, ret) / callback(params, ret): a C function
    # signature usable as a parameter or return type (see FiddleJit::Function).
    def callback(*args)
      case args.length
      when 3 then name, params, ret = args
      when 2 then params, ret = args
      else raise ArgumentError, "wrong number of arguments"
      end
      native_params = params.map { |t| Types.resolve(t, @ffi_typedefs) }
      ret_type = Types.resolve(ret, @ffi_typedefs)
      raise ArgumentError, "callbacks cannot have variadic parameters" if native_params.include?(:varargs)
      # As the ffi gem: C would get a pointer into a Ruby String it cannot own.
      raise TypeError, ":string is not allowed as return type of callbacks" if ret_type == :string

      type = FunctionType.__resolved(ret_type, native_params)
      typedef(type, name) if name
      type
    end

    # The type object for +type+: a Type::Builtin (e.g. Type::INT32 for
    # :int, like the ffi gem), or the Struct class / Enum / Type::Mapped.
    def find_type(type)
      return type if type.is_a?(Type::Builtin)

      if type.is_a?(Symbol)
        cache = @ffi_type_cache
        found = cache[type] if cache
        return found if found

        found = __find_type_uncached__(type)
        # Builtin names and this module's typedefs (reset by #typedef); not
        # the global ones (FFI.typedef may redefine them).
        return __remember_info__(:@ffi_type_cache, type, found)
      end
      __find_type_uncached__(type)
    end

    private def __find_type_uncached__(type)
      found = Type.builtin(Types.resolve(type, @ffi_typedefs))
      return found unless type.is_a?(Symbol) && found.is_a?(Type::Builtin) && %i[int64 uint64].include?(found.canonical)

      # The ffi gem's LONG/ULONG where it would find them (same native type).
      long = if @ffi_typedefs&.key?(type) then @ffi_typedefs[type]
             elsif Types::BUILTIN.key?(type) then Type.ffi_long(type)
             elsif Types::GLOBAL_TYPEDEFS.key?(type) then Types::GLOBAL_TYPEDEFS[type]
             else Type.ffi_long(type)
             end
      long.is_a?(Type::Builtin) && long.canonical == found.canonical ? long : found
    end

    # enum(:name, [:a, :b, 5, :c]) / enum([:a, :b]) / enum(:a, :b), each
    # optionally preceded by a native type (Type::UINT8...): defines a
    # FiddleJit::Enum (typedef'd as :name when named).
    def enum(*args) = generic_enum(Enum, *args)

    # bitmask(:name, [:a, :b, 4, :c]): flags (1, 2, 16) converted to and from
    # Arrays of Symbols (FiddleJit::Bitmask).
    def bitmask(*args) = generic_enum(Bitmask, *args)

    def enum_type(name) = (@ffi_enums.find(name) if defined?(@ffi_enums) && @ffi_enums)
    def enum_value(symbol) = (@ffi_enums.__map_symbol(symbol) if defined?(@ffi_enums) && @ffi_enums)

    # ffi_convention(:default | :stdcall): recorded like the ffi gem does. On
    # x86-64 there is one C calling convention; :stdcall only adds the
    # Windows decorated names (_f@N, f@N) to the symbol lookup, as in ffi.
    def ffi_convention(convention = nil)
      @ffi_convention ||= :default
      @ffi_convention = convention if convention
      @ffi_convention
    end

    # attach_variable(name, [c_name,] type): a C global as the module methods
    # +name+ and +name=+ (a Struct type gives the struct itself, read-only).
    # Returns the variable's Pointer.
    def attach_variable(mname, a1, a2 = nil)
      cname, type = a2 ? [a1, a2] : [mname.to_s, a1]
      address = nil
      ffi_libraries.find { |lib| address = lib.find_address(cname.to_s) }
      unless address
        # The ffi gem lists the library objects here (their #to_s), names
        # elsewhere; FiddleJit::Library names them in both.
        libs = __ffi_compatible__? ? ffi_libraries : ffi_libraries.map { |l| l.name || "[current process]" }
        raise NotFoundError.new(cname, libs)
      end

      pointer = Pointer.new(address)
      mname = mname.to_sym
      # As the ffi gem 1.16+: the variables live in @ffi_gsvars/@ffi_gvars
      # (which attached_variables reads, and Library#freeze makes shareable,
      # so the accessors also work in Ractors) and the accessors are `def`s.
      if type.is_a?(Class) && type < FiddleJit::Struct
        (@ffi_gsvars ||= {})[mname] = type.new(pointer)
        singleton_class.class_eval(<<~RUBY, __FILE__, __LINE__ + 1)
          def #{mname} = @ffi_gsvars[#{mname.inspect}]
        RUBY
      else
        holder = Class.new(FiddleJit::Struct)
        holder.layout(:gvar, find_type(type))
        (@ffi_gvars ||= {})[mname] = holder.new(pointer)
        singleton_class.class_eval(<<~RUBY, __FILE__, __LINE__ + 1)
          def #{mname} = @ffi_gvars[#{mname.inspect}][:gvar]
          def #{mname}=(value)
            @ffi_gvars[#{mname.inspect}][:gvar] = value
          end
        RUBY
      end
      pointer
    end

    # The attached functions by name: FFI::Function (VariadicInvoker for
    # variadic ones) with their #return_type and #param_types, as the ffi
    # gem 1.16+.
    def attached_functions
      functions = defined?(@fiddle_jit_functions) && @fiddle_jit_functions
      return {} unless functions

      @ffi_functions ||= {}
      unless __frozen_definitions__?
        functions.each_pair { |name, info| @ffi_functions[name] ||= __function_view__(info) }
      end
      functions.each_key.to_h { |name| [name, @ffi_functions[name]] }
    end

    # The attached variables by name: a Struct class, or the variable's Type.
    def attached_variables
      structs = (defined?(@ffi_gsvars) && @ffi_gsvars || {}).transform_values(&:class)
      scalars = (defined?(@ffi_gvars) && @ffi_gvars || {}).transform_values { |var| var.layout[:gvar].type }
      structs.merge(scalars)
    end

    # Makes what the module defined (enums, typedefs, functions, variables)
    # Ractor-shareable, so its functions work in every Ractor; returns nil
    # and leaves the module itself open, as the ffi gem 1.16+'s.
    def freeze
      attached_functions if defined?(@fiddle_jit_functions) # the views, made before sharing
      instance_variables.each { |name| FiddleJit.make_shareable(instance_variable_get(name)) }
      nil
    end

    # attach_function(name, [c_name,] params, return_type, options = {}):
    # defines +name+ as a singleton method and a public instance method (as
    # the ffi gem does) whose body is a JIT-emitted stub calling +c_name+
    # (default: +name+).
    def attach_function(name, func, args, returns = nil, options = nil)
      # The ffi gem defines the method `name.to_s` whatever +name+ is.
      name = name.to_s unless name.is_a?(Symbol) || name.is_a?(String)
      if returns && (func.is_a?(String) || func.is_a?(Symbol))
        c_name, params, ret = func.to_s, args, returns
      else
        c_name, params, ret, options = name.to_s, func, args, returns
      end
      # The ffi gem maps them: anything else is its NoMethodError.
      raise NoMethodError.new("undefined method `map' for #{params.inspect}", :map, receiver: params) unless params.is_a?(Array)

      # Like the ffi gem: `blocking: true`, or `@blocking = true` set just
      # before this call (reset by every attach_function).
      blocking = @blocking ? true : false
      @blocking = false if blocking
      blocking = options[:blocking] ? true : false if options.is_a?(Hash) && options.key?(:blocking)

      if params.last == :varargs || params.last == Type::VARARGS
        return __attach_variadic__(name, c_name, params[0...-1], ret, blocking)
      end

      # One path: the signature's types resolved once (see #signature);
      # arguments and results that convert (Enum, DataConverter, callback
      # types, ...) go through a native method in front of the stub
      # (Native.attach_converting), other functions are the stub itself.
      bits = (blocking ? Native::BLOCKING : 0) | (__ffi_compatible__? ? Native::FFI_COMPATIBLE : 0)
      sig = __signature__(params, ret, bits, name, !options.is_a?(Hash) || options.empty?)
      frame = !options.nil? && options.is_a?(Hash) && options[:callback_frame] ? true : false
      address = __find_function_address__(c_name, sig.params)
      stub, bytes = if sig.converts || frame
                      Native.attach_converting(self, name, address, c_name, sig.signature, sig.conversions,
                                               sig.ret_conversion, frame)
                    else
                      Native.attach_function(self, name.to_s, address, c_name, sig.signature)
                    end
      __enum_symbols_for__(stub)
      __attached__(name, c_name, params, ret, address, stub, bytes, sig.params, sig.ret)
    rescue ArgumentError, TypeError
      # A :void parameter or a :varargs result: as in the ffi gem, the
      # attach succeeds and calling raises (the ffi gem's ArgumentError; it
      # crashes calling a :varargs result).
      reason = __uncallable__(params, ret) or raise
      __attach_uncallable__(name, c_name, params, ret, reason)
    end

    private

    def __frozen_definitions__? = defined?(@ffi_functions) && @ffi_functions.frozen?

    # attached_functions' entry for an AttachedFunction.
    def __function_view__(info)
      fn = Function.__send__(:__pointer, info.address)
      fn.__send__(:setup_lazily, self, info.return_type, info.params)
      fn
    end

    # What attach_function returns. Under `require "fiddle_jit/ffi"` that is,
    # as in the ffi gem, an FFI::Function calling the C function (its types
    # resolved on first use: attaching pays nothing for a value callers
    # rarely keep); otherwise the AttachedFunction (stub address, size,
    # #disassemble), which FiddleJit.disassemble finds either way.
    # +resolved+/+ret_resolved+: the types as find_type gave them, when the
    # attach resolved them.
    def __attached__(name, c_name, params, ret, address, stub, bytes, resolved = params, ret_resolved = ret)
      name = name.to_sym
      info = AttachedFunction.new(name, c_name, params, ret, address, stub, bytes)
      (@fiddle_jit_functions ||= {})[name] = info
      views = @ffi_functions
      unless __ffi_compatible__?
        views.delete(name) if views && !views.frozen?
        return info
      end

      fn = Function.__send__(:__pointer, address)
      fn.__send__(:setup_lazily, self, ret_resolved, resolved)
      (@ffi_functions ||= {})[name] = fn unless views&.frozen?
      fn
    end

    # Why a function of these types cannot be called, or nil: the ffi gem
    # attaches those and raises when they are called.
    def __uncallable__(params, ret)
      ret = find_type(ret)
      return "Invalid return type: varargs" if ret.is_a?(Type::Builtin) && ret.canonical == :varargs

      Function.__send__(:uncallable, params.map { |param| find_type(param) })
    end

    # attach_function for uncallable types: the C function is looked up as
    # for any other, and the method raises the ffi gem's ArgumentError (its
    # arity's first).
    def __attach_uncallable__(name, c_name, params, ret, reason)
      address = __find_function_address__(c_name, params)
      Function.__send__(:define_uncallable, self, name, params.size, reason)
      __attached__(name, c_name, params, ret, address, nil, 0)
    end

    # Like the ffi gem, a function's integer parameters take the Symbols of
    # the enums this library had defined when it was attached.
    def __enum_symbols_for__(stub)
      enums = @ffi_enums
      Native.stub_enums(stub, enums.symbol_map) if enums
    end

    def generic_enum(klass, *args)
      native_type = args.first.is_a?(Type::Builtin) ? args.shift : nil
      name, values = if args[0].is_a?(Symbol) && args[1].is_a?(Array) then [args[0], args[1]]
                     elsif args[0].is_a?(Array) then [nil, args[0]]
                     else [nil, args]
                     end
      @ffi_enums ||= Enums.new
      @ffi_enums << (e = native_type ? klass.new(native_type, values, name) : klass.new(values, name))
      typedef(e, name) if name
      e
    end

    # A typedef naming a plain builtin (`typedef :pointer, :handle`, curl's
    # `typedef :int, :easy_code`) is a plain type too: +name+ => the native
    # type name, in @ffi_plain_typedefs. Signatures using one are kept per
    # module (@ffi_signatures, reset here, as every typedef may change what
    # a signature there means): the name means what this module's typedef
    # says.
    def __note_plain_typedef__(name, type)
      native = PLAIN_PARAMS[type.name] if type.is_a?(Type::Builtin)
      plain = @ffi_plain_typedefs ||= {}
      native ? plain[name] = native : plain.delete(name)
      @ffi_signatures = nil
    end

    # The Resolved of a signature. Made once per distinct signature and
    # option +bits+ and kept: in PLAIN_SIGNATURES when it is plain (only
    # plain builtin Symbols, see PLAIN_PARAMS; false there for other
    # Symbols, so no type is looked up again to learn that) and the module
    # has no plain typedef, else in this module's @ffi_signatures (reset by
    # #typedef) when its types are Symbols that resolve without the global
    # typedefs (which FFI.typedef may change), Modules (Struct classes,
    # DataConverters) or builtin Type objects. +plain+: whether the
    # attach_function options allow the plain form.
    def __signature__(params, ret, bits, name, plain)
      default = @ffi_convention.nil? || @ffi_convention == :default
      plain &&= default && !@ffi_shadows_builtin
      typedefs = @ffi_plain_typedefs
      shared = plain && (typedefs.nil? || typedefs.empty?)
      if shared
        found = PLAIN_SIGNATURES.dig(bits, ret, *params, SIGNATURE)
        return found if found

        plain = found.nil?
      end
      own = @ffi_signatures ||= {} if default
      found = own&.dig(bits, ret, *params, SIGNATURE)
      return found if found

      sig = (__plain_signature__(params, ret, bits, typedefs) if plain) || __resolved_signature__(params, ret, bits, name)
      __remember_signature__(shared, own, params, ret, bits, sig)
      sig
    rescue Ractor::IsolationError, FrozenError
      sig || (plain && __plain_signature__(params, ret, bits, typedefs)) || __resolved_signature__(params, ret, bits, name)
    end

    # Keeps +sig+ (see #signature); +shared+: PLAIN_SIGNATURES applies.
    def __remember_signature__(shared, own, params, ret, bits, sig)
      cacheable = __cacheable_type__?(ret) && params.all? { |t| __cacheable_type__?(t) }
      if shared && (sig.conversions.nil? || (ret.is_a?(Symbol) && params.all?(Symbol)))
        __trie_store__(PLAIN_SIGNATURES, bits, ret, params, sig.conversions.nil? ? sig : false)
      end
      __trie_store__(own, bits, ret, params, sig) if own && cacheable && !(shared && sig.conversions.nil?)
    end

    def __trie_store__(cache, bits, ret, params, value)
      leaf = [bits, ret, *params].inject(cache) { |node, key| node[key] ||= {} }
      leaf[SIGNATURE] = value
    end

    # The Resolved of a plain signature (Symbols only, each a plain builtin
    # or one of this module's plain +typedefs+; see PLAIN_PARAMS), else nil.
    # Its types stay the Symbols (no type objects built) and it converts
    # nothing.
    def __plain_signature__(params, ret, bits, typedefs)
      native_ret = PLAIN_RETURNS[ret] || typedefs&.[](ret) or return nil
      native_params = params.map { |t| PLAIN_PARAMS[t] || typedefs&.[](t) || (return nil) }
      params = params.dup.freeze
      Resolved.new(Native::Signature.new(native_params, native_ret, params, nil, bits), nil, nil, false, params, ret).freeze
    end

    # The Resolved of any signature: its types resolved (find_type), what
    # converts each argument and the result.
    def __resolved_signature__(params, ret, bits, name)
      infos = params.map { |t| __param_info__(t, name) }
      ret_resolved, ret_type, ret_conv = __return_info__(ret, name)
      conversions = infos.map { |info| info[2] }.freeze
      signature = Native::Signature.new(infos.map { |info| info[1] }, ret_type, params, nil, bits)
      Resolved.new(signature, conversions, ret_conv, (ret_conv || conversions.any?) ? true : false,
                   infos.map(&:first).freeze, ret_resolved).freeze
    end

    # [find_type's type, the native layer's parameter type, its conversion]
    # for parameter type +type+ as written, kept per module for the types
    # whose resolution the typedefs cannot change (see __cacheable_type__?;
    # #typedef forgets them all): a new signature of types seen before
    # resolves nothing again.
    def __param_info__(type, name)
      info = @ffi_param_infos&.[](type)
      return info if info

      resolved = find_type(type)
      info = [resolved, __long_param_name__(resolved) || __native_param_type__(resolved, name), __conversion__(resolved)].freeze
      __remember_info__(:@ffi_param_infos, type, info)
    end

    # [find_type's type, the native return type, what converts the result]
    # for return type +type+, kept like __param_info__'s.
    def __return_info__(type, name)
      info = @ffi_return_infos&.[](type)
      return info if info

      resolved = find_type(type)
      native, conv = __native_return_type__(resolved, name)
      conv = conv.converter if conv.is_a?(Type::Mapped)
      __remember_info__(:@ffi_return_infos, type, [resolved, native, conv].freeze)
    end

    # (Identity keys: Type::LONG and Type::INT64 are == but differ here.)
    def __remember_info__(ivar, type, info)
      return info unless __cacheable_type__?(type)

      cache = instance_variable_get(ivar) || instance_variable_set(ivar, {}.compare_by_identity)
      cache[type] = info
      info
    rescue FrozenError, Ractor::IsolationError
      info # a frozen module, another Ractor: uncached
    end

    def __cacheable_type__?(type)
      if type.is_a?(Symbol)
        typedefs = @ffi_typedefs
        typedefs ? typedefs.key?(type) || Types::BUILTIN.key?(type) : Types::BUILTIN.key?(type)
      else
        # Type objects (builtins, mapped, struct and callback types),
        # Struct.by_ref and enums resolve to themselves, whatever the
        # typedefs (Struct classes and DataConverters are Modules).
        type.is_a?(Module) || type.is_a?(Type) || type.is_a?(StructByReference) || type.is_a?(Enum)
      end
    end

    # Enums, Bitmasks, DataConverters (Type::Mapped) and callback types
    # convert (Struct.by_ref parameters do not: the stub checks their class,
    # see StructByReference#native_param).
    def __converter__?(type) = type.is_a?(Enum) || type.is_a?(Type::Mapped)

    # What converts an argument of +type+ (see Native.attach_converting),
    # or nil: a DataConverter itself rather than the Type::Mapped around it
    # (one method call less each way); an Enum or a FunctionType as it is.
    def __conversion__(type)
      case type
      when Type::Mapped then type.converter
      when Enum, FunctionType then type
      end
    end

    # "long"/"ulong" for a parameter the ffi gem types as long (find_type
    # gave Type::LONG/ULONG: :long, :size_t, :off_t...), which the native
    # layer converts with NUM2LONG/NUM2ULONG like ffi; else nil.
    def __long_param_name__(resolved) = (LONG_PARAM_NAMES[resolved.name] if resolved.is_a?(Type::Builtin))

    # The same, in the form VariadicInvoker calls it.
    def __ffi_long_param__(_written, resolved) = __long_param_name__(resolved)

    def __find_function_address__(c_name, param_types = NO_TYPES)
      libs = ffi_libraries
      c_name = c_name.to_s
      if @ffi_convention == :stdcall
        names = function_names(c_name, param_types)
        address = nil
        libs.find { |l| names.find { |n| address = l.find_address(n) } }
        return address if address
      else
        i = 0
        while (lib = libs[i])
          address = lib.find_address(c_name) and return address
          i += 1
        end
      end
      raise NotFoundError.new(c_name, libs.map { |l| l.name || "[current process]" })
    end

    # A variadic function: `printf("%d %s", :int, 5, :string, "x")`. Each
    # distinct shape of variadic types gets its own stub (see
    # VariadicInvoker); the public method is native
    # (Native.attach_variadic): it calls the invoker, which the module holds
    # in an instance variable (shareable after Library#freeze, so the
    # function also works in Ractors).
    def __attach_variadic__(name, c_name, fixed, ret, blocking)
      address = __find_function_address__(c_name)
      invoker = VariadicInvoker.new(self, name.to_sym, c_name, address, fixed, ret, blocking)
      Native.attach_variadic(self, name, invoker)
      info = AttachedFunction.new(name.to_sym, c_name, fixed + [:varargs], ret, address, nil, 0)
      (@fiddle_jit_functions ||= {})[name.to_sym] = info
      (@ffi_functions ||= {})[name.to_sym] = invoker
      # Under the FFI namespace, what the ffi gem returns.
      __ffi_compatible__? ? invoker : info
    end

    # Variadic (and fixed) arguments of a variadic function: callbacks are
    # function pointers, enums and mapped types their native type.
    def __variadic_native_type__(type, name)
      type.is_a?(FunctionType) ? "pointer" : __native_param_type__(type, name)
    end

    def __variadic_converter__(type)
      type.is_a?(FunctionType) || __converter__?(type) ? type : nil
    end

    # Struct classes are pointers (any :pointer value is accepted); a
    # Struct.by_ref is a pointer the stub checks is nil, a Pointer or an
    # instance of the struct class (TypeError otherwise); Struct.by_value is copied into
    # registers or stack slots by the stub (SysV classification).
    def __native_param_type__(type, name)
      case type
      when Symbol then __native_scalar__(type, name)
      when Type::Builtin then __native_scalar__(type.canonical, name)
      when Enum, Type::Mapped then __native_param_type__(type.native_type, name)
      when FunctionType then "pointer"
      when StructByReference then type.native_param
      when Class then "pointer"
      when Type::Struct then type.native_descriptor
      else raise TypeError, "#{name}: invalid parameter type #{type.inspect}"
      end
    end


    # [native return type, converter for the result or nil]. A Struct class
    # returns a plain Pointer (like the ffi gem); Struct.by_ref returns an
    # instance of the struct over the returned memory.
    def __native_return_type__(type, name)
      case type
      when Symbol, Type::Builtin
        canonical = type.is_a?(Symbol) ? type : type.canonical
        return ["pointer", StrPtr] if canonical == :strptr

        [__native_scalar__(canonical, name), nil]
      when Enum, Type::Mapped then [__native_return_type__(type.native_type, name)[0], type]
      when FunctionType, StructByReference then ["pointer", type]
      when Class then ["pointer", nil]
      when Type::Struct then [type.native_return_descriptor, nil]
      else raise TypeError, "#{name}: invalid return type #{type.inspect}"
      end
    end

    def __native_scalar__(canonical, name)
      case canonical
      when :strptr then "string" # a parameter: the ffi gem passes it as a :string
      when :varargs then raise TypeError, "#{name}: :varargs must be the last parameter type"
      else canonical.name # frozen, interned: no allocation per attach
      end
    end
  end
end
