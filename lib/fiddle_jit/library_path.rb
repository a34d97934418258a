# frozen_string_literal: true

module FiddleJit
  # A library name with an optional ABI version and directory (the ffi gem
  # 1.16+'s FFI::LibraryPath): `ffi_lib LibraryPath.new("m", abi_number: 6)`
  # loads "libm.so.6"; `FFI.map_library_name` accepts one too.
  class LibraryPath
    attr_reader :name, :abi_number, :root

    def initialize(name, abi_number: nil, root: nil)
      @name = name
      @abi_number = abi_number
      @root = root
    end

    # A LibraryPath as is, "c" as the C library's name, a bare name as a
    # LibraryPath, anything else (a path, nil) unchanged.
    def self.wrap(value)
      return value if value.is_a?(self)
      return LibraryLoader::LIBC if value == "c"
      return new(value) if value && File.basename(value) == value

      value
    end

    def full_name
      prefix = Platform::LIBPREFIX
      suffix = Platform::LIBSUFFIX
      if abi_number
        if Platform.windows? then "#{prefix}#{name}-#{abi_number}.#{suffix}"
        elsif Platform.mac? then "#{prefix}#{name}.#{abi_number}.#{suffix}"
        else "#{prefix}#{name}.#{suffix}.#{abi_number}"
        end
      else
        lib = name.start_with?(prefix) ? name : prefix + name
        pattern = Platform.windows? || Platform.mac? ? /\.#{suffix}$/ : /\.so($|\.[1234567890]+)/
        lib.match?(pattern) ? lib : "#{lib}.#{suffix}"
      end
    end

    def to_s = root ? File.join(root, full_name) : full_name
  end

  # The platform's file name for a library name or LibraryPath ("m" =>
  # "libm.so"), as the ffi gem 1.16+'s FFI.map_library_name.
  def self.map_library_name(lib) = LibraryPath.wrap(lib).to_s
end
