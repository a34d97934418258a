# frozen_string_literal: true

# An unmodified ffi-gem binding of zlib (libz.so.1; see libc_binding.rb).
require "ffi"

module CompatZlib
  extend FFI::Library
  ffi_lib ["z", "libz.so.1"]

  typedef :ulong, :uLong
  typedef :uint, :uInt
  typedef :pointer, :Bytef

  enum :z_status, [:ok, 0, :stream_end, 1, :need_dict, 2,
                   :errno, -1, :stream_error, -2, :data_error, -3, :mem_error, -4, :buf_error, -5,
                   :version_error, -6]

  # A z_stream, to check layout/size (sizeof(z_stream) is 112 on LP64).
  class ZStream < FFI::Struct
    layout :next_in, :pointer, :avail_in, :uInt, :total_in, :uLong,
           :next_out, :pointer, :avail_out, :uInt, :total_out, :uLong,
           :msg, :string, :state, :pointer, :zalloc, :pointer, :zfree, :pointer, :opaque, :pointer,
           :data_type, :int, :adler, :uLong, :reserved, :uLong
  end

  attach_function :zlibVersion, [], :string
  attach_function :crc32, [:uLong, :buffer_in, :uInt], :uLong
  attach_function :adler32, [:uLong, :Bytef, :uInt], :uLong
  attach_function :compressBound, [:uLong], :uLong
  attach_function :compress, [:buffer_out, :pointer, :buffer_in, :uLong], :z_status
  attach_function :compress2, [:buffer_out, :pointer, :buffer_in, :uLong, :int], :z_status
  attach_function :uncompress, [:buffer_out, :pointer, :buffer_in, :uLong], :z_status
  attach_function :zError, [:int], :string
  attach_function :deflateInit_, [ZStream.by_ref, :int, :string, :int], :z_status
  attach_function :deflateEnd, [ZStream.by_ref], :z_status
end

Z = CompatZlib
puts "version: #{Z.zlibVersion.match?(/\A1\.\d+/)}"
data = ("fiddle_jit compat " * 40).b
puts "crc32: #{Z.crc32(0, data, data.bytesize)} #{Z.crc32(0, nil, 0)} adler32: #{Z.adler32(1, data, data.bytesize)}"
bound = Z.compressBound(data.bytesize)
out = FFI::MemoryPointer.new(:uchar, bound)
len = FFI::MemoryPointer.new(:ulong)
len.write_ulong(bound)
puts "compress: #{Z.compress(out, len, data, data.bytesize).inspect} smaller=#{len.read_ulong < data.bytesize}"
clen = len.read_ulong
compressed = out.read_bytes(clen)
back = FFI::MemoryPointer.new(:uchar, data.bytesize)
blen = FFI::MemoryPointer.new(:ulong)
blen.write_ulong(data.bytesize)
puts "uncompress: #{Z.uncompress(back, blen, compressed, clen).inspect} #{blen.read_ulong} same=#{back.read_bytes(blen.read_ulong) == data}"
small = FFI::MemoryPointer.new(:uchar, 8)
slen = FFI::MemoryPointer.new(:ulong)
slen.write_ulong(8)
puts "uncompress small: #{Z.uncompress(small, slen, compressed, clen).inspect}"
slen.write_ulong(8)
puts "uncompress garbage: #{Z.uncompress(small, slen, "not zlib data", 13).inspect}"
puts "compress2 bad level: #{Z.compress2(out, len.write_ulong(bound) && len, data, data.bytesize, 42).inspect}"
puts "zError: #{Z.zError(-3).inspect} #{Z.zError(Z.enum_value(:buf_error)).inspect}"
zs = Z::ZStream.new
puts "z_stream: size=#{Z::ZStream.size} init=#{Z.deflateInit_(zs, 6, Z.zlibVersion, Z::ZStream.size).inspect} " \
     "state=#{!zs[:state].null?} end=#{Z.deflateEnd(zs).inspect}"
puts "bad version: #{Z.deflateInit_(Z::ZStream.new, 6, "0.0", Z::ZStream.size).inspect}"
