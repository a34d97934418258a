# frozen_string_literal: true

module FiddleJit
  CURRENT_PROCESS = LibraryLoader::CURRENT_PROCESS

  # What attach_function returns: a description of the installed stub.
  AttachedFunction = Struct.new(:name, :c_name, :params, :return_type, :address, :code_bytes)

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
    FLAGS = { global: DynamicLibrary::RTLD_GLOBAL, local: DynamicLibrary::RTLD_LOCAL,
              lazy: DynamicLibrary::RTLD_LAZY, now: DynamicLibrary::RTLD_NOW }.freeze

    def self.extended(mod)
      raise RuntimeError, "must only be extended by module" unless mod.is_a?(Module)
    end

    # Loads libraries: names ("c", "m", "libm.so.6"), paths, or Arrays of
    # fallback names (the first that loads is used).
    def ffi_lib(*names)
      raise LoadError, "library names list must not be empty" if names.empty?

      flags = @ffi_lib_flags || (DynamicLibrary::RTLD_LAZY | DynamicLibrary::RTLD_LOCAL)
      @ffi_libs = names.map { |name| LibraryLoader.open(name, flags) }
    end

    # Flags for later ffi_lib calls: any of :global, :local, :lazy, :now.
    def ffi_lib_flags(*flags)
      @ffi_lib_flags = flags.map { |f| FLAGS.fetch(f) { raise ArgumentError, "unknown ffi_lib flag #{f.inspect}" } }.inject(0, :|)
    end

    def ffi_libraries
      raise LoadError, "no library specified" if !defined?(@ffi_libs) || @ffi_libs.nil? || @ffi_libs.empty?

      @ffi_libs
    end

    def typedef(old, add)
      @ffi_typedefs ||= {}
      @ffi_typedefs[add] = find_type(old)
    end

    # callback(name, params, ret) / callback(params, ret): a C function
    # signature usable as a parameter or return type (see FiddleJit::Function).
    def callback(*args)
      raise ArgumentError, "wrong number of arguments" unless [2, 3].include?(args.length)

      name, params, ret = args.length == 3 ? args : [nil, *args]
      native_params = params.map { |t| find_type(t) }
      ret_type = find_type(ret)
      # As the ffi gem: C would get a pointer into a Ruby String it cannot own.
      raise TypeError, ":string is not allowed as return type of callbacks" if ret_type == :string

      type = FunctionType.new(ret_type, native_params)
      typedef(type, name) if name
      type
    end

    def find_type(type)
      Types.resolve(type, @ffi_typedefs)
    end

    # attach_function(name, [c_name,] params, return_type, options = {}):
    # defines +name+ as a singleton method and a public instance method (as
    # the ffi gem does) whose body is a JIT-emitted stub calling +c_name+
    # (default: +name+).
    def attach_function(name, func, args, returns = nil, options = nil)
      if returns && (func.is_a?(String) || func.is_a?(Symbol))
        c_name, params, ret = func.to_s, args, returns
      else
        c_name, params, ret, options = name.to_s, func, args, returns
      end
      raise TypeError, "parameter types must be an Array (got #{params.class})" unless params.is_a?(Array)
      options ||= {}

      param_types = params.map { |t| find_type(t) }
      ret_type = find_type(ret)
      lib = ffi_libraries.find { |l| l.find_function(c_name) }
      raise NotFoundError.new(c_name, ffi_libraries.map { |l| l.name || "[current process]" }) unless lib

      address = lib.find_function(c_name)
      bytes = Function.attach_address(self, name, address, param_types, ret_type, params.map(&:to_s),
                                      frame: options[:callback_frame] ? true : false)
      AttachedFunction.new(name.to_sym, c_name, params, ret, address, bytes)
    end
  end
end
