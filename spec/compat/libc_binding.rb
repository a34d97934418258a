# frozen_string_literal: true

# An unmodified ffi-gem binding of libc. spec/compat_spec.rb runs it under
# the ffi gem and under fiddle_jit (ruby -rfiddle_jit/ffi_shim) and compares
# the output line by line.
require "ffi"

module CompatLibC
  extend FFI::Library
  ffi_lib FFI::Library::LIBC

  typedef :int, :fd_t

  class Timespec < FFI::Struct
    layout :tv_sec, :time_t, :tv_nsec, :long
  end

  # struct stat of glibc: x86-64's own layout, or the generic one of the
  # newer architectures (aarch64: 32-bit st_nlink and st_blksize).
  class Stat < FFI::Struct
    if FFI::Platform::ARCH == "aarch64"
      layout :st_dev, :dev_t, :st_ino, :ino_t, :st_mode, :mode_t, :st_nlink, :nlink_t,
             :st_uid, :uid_t, :st_gid, :gid_t, :st_rdev, :dev_t, :__pad1, :dev_t, :st_size, :off_t,
             :st_blksize, :blksize_t, :__pad2, :int, :st_blocks, :blkcnt_t,
             :st_atim, Timespec, :st_mtim, Timespec, :st_ctim, Timespec, :__reserved, [:int, 2]
    else
      layout :st_dev, :dev_t, :st_ino, :ino_t, :st_nlink, :nlink_t, :st_mode, :mode_t,
             :st_uid, :uid_t, :st_gid, :gid_t, :__pad0, :int, :st_rdev, :dev_t, :st_size, :off_t,
             :st_blksize, :blksize_t, :st_blocks, :blkcnt_t,
             :st_atim, Timespec, :st_mtim, Timespec, :st_ctim, Timespec, :__reserved, [:long, 3]
    end
  end

  class Passwd < FFI::Struct
    layout :pw_name, :string, :pw_passwd, :string, :pw_uid, :uid_t, :pw_gid, :gid_t,
           :pw_gecos, :string, :pw_dir, :string, :pw_shell, :string
  end

  class Timeval < FFI::Struct
    layout :tv_sec, :time_t, :tv_usec, :suseconds_t
  end

  # access(2) modes as a bitmask: X_OK=1, W_OK=2, R_OK=4.
  bitmask :access_mode, [:x_ok, :w_ok, :r_ok]
  enum :whence, [:seek_set, 0, :seek_cur, :seek_end]

  # A DataConverter: Ruby booleans as C ints.
  module Bool01
    extend FFI::DataConverter
    native_type FFI::Type::INT

    def self.to_native(value, _ctx) = value ? 1 : 0
    def self.from_native(value, _ctx) = value != 0
  end

  attach_function :stat, [:string, Stat.by_ref], :int
  attach_function :getpwnam, [:string], Passwd.by_ref
  attach_function :gettimeofday, [Timeval.by_ref, :pointer], :int
  attach_function :strerror, [:int], :string
  attach_function :snprintf, [:pointer, :size_t, :string, :varargs], :int
  attach_function :access, [:string, :access_mode], :int
  attach_function :open, [:string, :int], :fd_t
  attach_function :close, [:fd_t], :int
  attach_function :lseek, [:fd_t, :off_t, :whence], :off_t
  attach_function :getpid, [], :pid_t
  attach_function :getenv_ptr, :getenv, [:string], :strptr
  attach_function :abs_bool, :abs, [Bool01], Bool01
  attach_function :strtol, [:string, :pointer, :int], :long
  attach_variable :optind, :int
  attach_variable :c_opterr, :opterr, :int

  if FFI.const_defined?(:Function) && !ENV["COMPAT_SKIP_CALLBACKS"]
    callback :compare, [:pointer, :pointer], :int
    attach_function :qsort, [:pointer, :size_t, :size_t, :compare], :void
  end
end

L = CompatLibC
st = L::Stat.new
puts "stat /etc/passwd: #{L.stat("/etc/passwd", st)} regular=#{(st[:st_mode] & 0o170000) == 0o100000} " \
     "size_positive=#{st[:st_size].positive?} size=#{st[:st_size] == File.size("/etc/passwd")} " \
     "ino=#{st[:st_ino] == File.stat("/etc/passwd").ino} mtime=#{st[:st_mtim][:tv_sec] == File.mtime("/etc/passwd").to_i}"
puts "stat size: #{L::Stat.size} offsets=#{L::Stat.offsets.map(&:last).inspect}"
rc = L.stat("/nonexistent/compat", st)
puts "stat missing: #{rc} errno=#{FFI.errno} #{L.strerror(FFI.errno)}"
pw = L.getpwnam("root")
puts "getpwnam root: #{pw[:pw_name]} uid=#{pw[:pw_uid]} gid=#{pw[:pw_gid]} dir=#{pw[:pw_dir]} class=#{pw.class.name}"
puts "getpwnam nobody-xyz: #{L.getpwnam("nobody-xyz-compat").null?}"
tv = L::Timeval.new
puts "gettimeofday: #{L.gettimeofday(tv, nil)} close=#{(tv[:tv_sec] - Time.now.to_i).abs <= 2} usec_ok=#{tv[:tv_usec].between?(0, 999_999)}"
buf = FFI::MemoryPointer.new(:char, 64)
n = L.snprintf(buf, 64, "%d|%s|%.3f|%ld|%c", :int, 42, :string, "str", :double, 3.14159, :long, -(2**40), :char, 65)
puts "snprintf: #{n} #{buf.read_string.inspect}"
puts "strerror: #{(1..5).map { |e| L.strerror(e) }.inspect}"
puts "access r: #{L.access("/etc/passwd", [:r_ok])} rw-root-only-dir: #{L.access("/", :x_ok)} int=#{L.access("/etc/passwd", 4)}"
bm = L.enum_type(:access_mode)
puts "bitmask: #{bm[:r_ok, :x_ok]} #{bm[5].inspect} #{bm.to_native([:w_ok, :r_ok], nil)} #{bm.from_native(7, nil).inspect} #{bm.from_native(9, nil).inspect}"
fd = L.open("/etc/passwd", 0)
puts "lseek: #{L.lseek(fd, 0, :seek_end) == File.size("/etc/passwd")} #{L.lseek(fd, 3, :seek_set)} #{L.lseek(fd, 2, :seek_cur)} close=#{L.close(fd)}"
puts "getpid: #{L.getpid == Process.pid}"
ENV["COMPAT_VAR"] = "hello compat"
s, p = L.getenv_ptr("COMPAT_VAR")
puts "strptr: #{s.inspect} #{p.is_a?(FFI::Pointer)} #{p.null?} #{L.getenv_ptr("COMPAT_NOPE_VAR").then { |a, b| [a, b.null?] }.inspect}"
puts "data converter: #{L.abs_bool(true).inspect} #{L.abs_bool(false).inspect}"
endp = FFI::MemoryPointer.new(:pointer)
v = L.strtol("1234xyz", endp, 10)
puts "strtol: #{v} rest=#{endp.read_pointer.read_string.inspect}"
puts "optind: #{L.optind}"
L.optind = 7
puts "optind set: #{L.optind} opterr=#{L.c_opterr}"
L.optind = 1
puts "find_type: #{L.find_type(:fd_t).size} #{FFI.find_type(:pid_t).size} #{FFI.type_size(:off_t)} #{FFI::Type::UINT16.size}"
puts "platform: #{FFI::Platform::OS} #{FFI::Platform::ARCH} #{FFI::Platform::ADDRESS_SIZE} #{FFI::Platform::LONG_SIZE} " \
     "#{FFI::Platform::LIBSUFFIX} #{FFI::Platform.unix?} #{FFI::Platform::IS_LINUX} #{FFI::Library::LIBC} " \
     "#{FFI::Platform::BYTE_ORDER == FFI::Platform::LITTLE_ENDIAN}"
puts "map_library_name: #{%w[c m z libz.so.1 /x/libfoo.so].map { |n| FFI.map_library_name(n) }.inspect}"
if L.respond_to?(:qsort)
  ary = [5, 3, 9, 1, 7]
  mem = FFI::MemoryPointer.new(:int, ary.size)
  mem.write_array_of_int(ary)
  L.qsort(mem, ary.size, 4) { |a, b| a.read_int <=> b.read_int }
  puts "qsort: #{mem.read_array_of_int(ary.size).inspect}"
end

# Errors: classes and messages.
def report(label)
  yield
  puts "#{label}: no error"
rescue Exception => e # rubocop:disable Lint/RescueException
  msg = e.message.sub(/\A\w+: argument \d+ \(:?\w+\): /, "") # fiddle_jit prefixes function and argument
  msg = "" if e.is_a?(ArgumentError) && msg.include?("wrong number") # Ruby's and ffi's arity wording differ
  msg = msg.sub(/ \(got \w+\)\z/, "") # fiddle_jit names the rejected class
  msg = msg.lines.first.to_s.sub(/:.*/m, "") if e.is_a?(LoadError) && !e.is_a?(FFI::NotFoundError)
  # FFI::X is FiddleJit::X under fiddle_jit (constant aliases).
  puts "#{label}: #{e.class.name.sub("FiddleJit::", "FFI::")} #{msg}".rstrip
end

report("missing symbol") { L.attach_function :no_such_function_compat, [], :int }
report("unknown type") { L.attach_function :strlen, [:no_such_type], :size_t }
report("missing library") { Module.new.tap { |m| m.extend FFI::Library }.ffi_lib "no_such_library_compat" }
report("fallback library") { Module.new.tap { |m| m.extend FFI::Library }.ffi_lib ["no_such_library_compat", "c"] }
report("wrong arity") { L.strerror }
report("wrong type string") { L.stat(42, st) }
report("wrong type int") { L.strerror("x") }
report("bad pointer") { L.gettimeofday(tv, Object.new) }
report("bad enum") { L.lseek(0, 0, :nope) }
report("bad bitmask") { L.access("/", [:nope]) }
report("no library") { Module.new.tap { |m| m.extend FFI::Library }.attach_function :strlen, [:string], :size_t }
