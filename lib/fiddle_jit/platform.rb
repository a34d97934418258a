# frozen_string_literal: true

require "rbconfig"

module FiddleJit
  # The ffi gem's FFI::Platform: host OS/CPU facts and C type sizes (sizes
  # and alignments in bits, as ffi reports them).
  module Platform
    OS = case RbConfig::CONFIG["host_os"].downcase
         when /linux/ then "linux"
         when /darwin/ then "darwin"
         when /freebsd/ then "freebsd"
         when /netbsd/ then "netbsd"
         when /openbsd/ then "openbsd"
         when /dragonfly/ then "dragonflybsd"
         when /sunos|solaris/ then "solaris"
         when /mingw|mswin/ then "windows"
         else RbConfig::CONFIG["host_os"].downcase
         end
    OSVERSION = RbConfig::CONFIG["host_os"].gsub(/[^\d]/, "").to_i
    CPU = RbConfig::CONFIG["host_cpu"]
    ARCH = case CPU.downcase
           when /amd64|x86_64|x64/ then "x86_64"
           when /i\d86|x86|i86pc/ then "i386"
           when /ppc64|powerpc64/ then "powerpc64"
           when /ppc|powerpc/ then "powerpc"
           when /sparcv9|sparc64/ then "sparcv9"
           when /arm64|aarch64/ then "aarch64"
           when /^arm/ then OS == "darwin" ? "aarch64" : "arm"
           else CPU
           end

    IS_LINUX = OS == "linux"
    IS_MAC = OS == "darwin"
    IS_FREEBSD = OS == "freebsd"
    IS_NETBSD = OS == "netbsd"
    IS_OPENBSD = OS == "openbsd"
    IS_DRAGONFLYBSD = OS == "dragonfly"
    IS_SOLARIS = OS == "solaris"
    IS_WINDOWS = OS == "windows"
    IS_BSD = IS_MAC || IS_FREEBSD || IS_NETBSD || IS_OPENBSD || IS_DRAGONFLYBSD
    NAME = "#{ARCH}-#{OS}"
    # fiddle_jit ships no per-platform .conf files; kept for code that
    # builds paths from it.
    CONF_DIR = File.join(__dir__, "platform", NAME)

    LIBPREFIX = OS.match?(/windows|msys/) ? "" : (OS.include?("cygwin") ? "cyg" : "lib")
    LIBSUFFIX = case OS
                when /darwin/ then "dylib"
                when /windows|cygwin|msys/ then "dll"
                else "so"
                end
    if IS_LINUX && !RUBY_PLATFORM.include?("musl")
      GNU_LIBC = LibraryLoader::LIBC
      IS_GNU = "constant"
    else
      IS_GNU = nil
    end
    LIBC = LibraryLoader::LIBC

    LITTLE_ENDIAN = 1234
    BIG_ENDIAN = 4321
    BYTE_ORDER = [0x12345678].pack("I") == [0x12345678].pack("N") ? BIG_ENDIAN : LITTLE_ENDIAN

    # Sizes and alignments in bits.
    { INT8: :int8, INT16: :int16, INT32: :int32, INT64: :int64, LONG: :long, FLOAT: :float, DOUBLE: :double,
      ADDRESS: :pointer, LONG_DOUBLE: :long_double }.each do |name, type|
      _, size, align = Types::TABLE.fetch(type)
      const_set(:"#{name}_SIZE", size * 8)
      const_set(:"#{name}_ALIGN", align * 8)
    end

    def self.bsd? = IS_BSD
    def self.windows? = IS_WINDOWS
    def self.mac? = IS_MAC
    def self.solaris? = IS_SOLARIS
    def self.unix? = !IS_WINDOWS

    # Every constant Ractor-shareable (usable from any Ractor), as in the
    # ffi gem 1.16+.
    constants.each { |c| FiddleJit.make_shareable(const_get(c)) }
  end
end
