# frozen_string_literal: true

# The ffi gem's FFI namespace on fiddle_jit's classes (loaded by
# lib/fiddle_jit/ffi.rb, which says how).
module FFI
  # Marks this FFI module as fiddle_jit's (see the LoadError check in ffi.rb).
  FIDDLE_JIT = true
  # The ffi gem version whose API and behaviour this follows (the current
  # line; gems compare it before using newer features).
  VERSION = "1.17.0"

  CURRENT_PROCESS = USE_THIS_PROCESS_AS_LIBRARY = FiddleJit::CURRENT_PROCESS

  Platform = FiddleJit::Platform
  PlatformError = Class.new(LoadError) unless const_defined?(:PlatformError, false)
  # FiddleJit::Library with the ffi gem's behaviour: a module extended with
  # it gets the ffi gem's messages, arity -1 and attach_function's return
  # value (FiddleJit::Library.ffi_compatible?); one extended with
  # FiddleJit::Library keeps fiddle_jit's, even after this file.
  module Library
    include FiddleJit::Library

    def self.extended(mod) = FiddleJit::Library.extended(mod)

    def __ffi_compatible__? = true
  end
  LibraryPath = FiddleJit::LibraryPath
  DynamicLibrary = FiddleJit::DynamicLibrary
  NotFoundError = FiddleJit::NotFoundError
  NullPointerError = FiddleJit::NullPointerError
  LastError = FiddleJit::LastError

  # Memory: one class hierarchy (Pointer is also ffi's AbstractMemory).
  AbstractMemory = FiddleJit::Pointer
  Pointer = FiddleJit::Pointer
  MemoryPointer = FiddleJit::MemoryPointer
  Buffer = FiddleJit::Buffer
  AutoPointer = FiddleJit::AutoPointer

  Struct = FiddleJit::Struct
  Union = FiddleJit::Union
  ManagedStruct = FiddleJit::ManagedStruct
  StructLayout = FiddleJit::StructLayout
  StructLayoutBuilder = FiddleJit::StructLayoutBuilder
  StructByReference = FiddleJit::StructByReference
  StructByValue = FiddleJit::StructByValue
  ArrayType = FiddleJit::Type::Array

  Enum = FiddleJit::Enum
  Enums = FiddleJit::Enums
  Bitmask = FiddleJit::Bitmask
  DataConverter = FiddleJit::DataConverter

  # FFI::Type (Type::Builtin, Type::INT32 …, Type::Mapped, Type::Struct,
  # Type::Array) and the NativeType constants.
  Type = FiddleJit::Type
  module NativeType
    %i[VOID BOOL INT8 UINT8 INT16 UINT16 INT32 UINT32 INT64 UINT64 LONG ULONG FLOAT32 FLOAT64
       LONGDOUBLE POINTER STRING BUFFER_IN BUFFER_OUT BUFFER_INOUT VARARGS].each do |c|
      const_set(c, FiddleJit::Type.const_get(c))
    end
  end

  # The ffi gem's FFI::TYPE_* constants: the same objects as FFI::Type::*.
  %i[VOID BOOL INT8 UINT8 INT16 UINT16 INT32 UINT32 INT64 UINT64 LONG ULONG FLOAT32 FLOAT64
     LONGDOUBLE POINTER STRING BUFFER_IN BUFFER_OUT BUFFER_INOUT VARARGS].each do |c|
    const_set(:"TYPE_#{c}", FiddleJit::Type.const_get(c))
  end

  # Callbacks come from another branch: alias them when they exist.
  %i[Function CallbackInfo FunctionType FunctionInfo].each do |c|
    const_set(c, FiddleJit.const_get(c)) if FiddleJit.const_defined?(c, false)
  end
  # VariadicInvoker is loaded on first use (variadic.rb sets FFI's alias).
  if FiddleJit.autoload?(:VariadicInvoker)
    autoload :VariadicInvoker, FiddleJit.autoload?(:VariadicInvoker)
  else
    VariadicInvoker = FiddleJit::VariadicInvoker
  end
  if FiddleJit.const_defined?(:Function, false) && FiddleJit::Type.const_defined?(:Function, false).!
    FiddleJit::Type.const_set(:Function, FiddleJit.const_defined?(:FunctionType, false) ? FiddleJit::FunctionType : FiddleJit::Function)
  end

  # Global typedefs: the builtin names and the platform's types.conf names.
  TypeDefs = FiddleJit::Types::GLOBAL_TYPEDEFS
  # (What Type.builtin(Types.resolve(name)) gives for these names, without
  # resolve's general checks: each is a builtin name or maps to one.)
  builtins = FiddleJit::Type::BUILTINS
  FiddleJit::Types::BUILTIN.each do |name, canonical|
    TypeDefs[name] ||= FiddleJit::Type.ffi_long(name) || builtins.fetch(canonical)
  end
  FiddleJit::Types::PLATFORM_TYPEDEFS.each do |name, target|
    TypeDefs[name] ||= FiddleJit::Type.ffi_long(name) || builtins.fetch(FiddleJit::Types::BUILTIN.fetch(target))
  end

  class << self
    # The ffi gem 1.16+'s helper (its compat.rb): Ractor.make_shareable
    # where Ruby has it, else freeze.
    if defined?(Ractor.make_shareable)
      def make_shareable(obj) = Ractor.make_shareable(obj)
    else
      def make_shareable(obj) = obj.freeze
    end

    def typedef(old, add)
      TypeDefs[add] = find_type(old)
    end
    alias add_typedef typedef

    def find_type(name, type_map = nil)
      return name if name.is_a?(FiddleJit::Type)

      found = type_map&.fetch(name, nil)
      found ||= TypeDefs[name] if name.is_a?(Symbol)
      found ||= FiddleJit::Types.resolve(name)
      FiddleJit::Type.builtin(found)
    end

    def type_size(type) = FiddleJit.type_size(find_type(type))

    # The platform's file name for a library name (or LibraryPath), as the
    # ffi gem 1.16+.
    def map_library_name(lib) = FiddleJit.map_library_name(lib)

    def errno = LastError.error
    def errno=(error)
      LastError.error = error
    end
  end

  module Library
    FlagsMap = FLAGS
  end

  # FFI::X is FiddleJit::X (one class object, whose #name Ruby fixed when
  # it was defined), so under this namespace the strings users see from
  # #inspect/#to_s are rewritten to the ffi gem's class names instead:
  # `#<FFI::MemoryPointer address=0x... size=8>`. `klass.name` stays
  # "FiddleJit::..." (overriding Module#name would not reach Ruby's own
  # messages, which use the real constant path).
  module FFINames
    def inspect = super.gsub("#<FiddleJit::", "#<FFI::")
  end
  # Pointer#to_s is its inspect in the ffi gem.
  module FFIPointerToS
    def to_s = inspect
  end
  module FFILibraryToS
    def to_s = super.sub("#<FiddleJit::", "#<FFI::")
    def inspect = "#{to_s.delete_suffix(">")} @name=#{(name || "[current process]").inspect}>"
  end
  [FiddleJit::Pointer, FiddleJit::DynamicLibrary, FiddleJit::Type, FiddleJit::Type::Builtin, FiddleJit::Type::Mapped,
   FiddleJit::Type::Struct, FiddleJit::Type::Array, FiddleJit::Enum, FiddleJit::StructByReference,
   FiddleJit::StructByValue, FiddleJit::StructLayout::Field, FiddleJit::Buffer].each { |c| c.prepend(FFINames) }
  %i[Function FunctionType].each do |c|
    FiddleJit.const_get(c).prepend(FFINames) if FiddleJit.const_defined?(c, false)
  end
  FiddleJit::Pointer.prepend(FFIPointerToS)
  FiddleJit::DynamicLibrary.prepend(FFILibraryToS)
  private_constant :FFINames, :FFIPointerToS, :FFILibraryToS

  # The ffi gem's FFI::IO: an IO over a file descriptor, and reading from an
  # IO into native memory (returns the byte count, -1 at EOF).
  module IO
    def self.for_fd(fd, mode = "r") = ::IO.for_fd(fd, mode)

    def self.native_read(io, buf, len)
      tmp = io.read(len)
      return -1 unless tmp

      buf.put_bytes(0, tmp)
      tmp.length
    end
  end
end

# From now on `require "ffi"`, whoever asks, finds "ffi.rb" loaded: the
# feature is provided under its bare name, as Ruby provides its built-in
# features ("enumerator.so"), which `require "ffi"` matches wherever the
# ffi gem is on $LOAD_PATH. (No directory is put on $LOAD_PATH for it:
# one there would be searched, and stat'ed by RubyGems, on every later
# require. Through FiddleJit.__provide_feature: a push onto
# $LOADED_FEATURES would make the next require realpath every loaded
# feature.)
FiddleJit.__provide_feature("ffi.rb") unless $LOADED_FEATURES.include?("ffi.rb") || $LOADED_FEATURES.frozen?
