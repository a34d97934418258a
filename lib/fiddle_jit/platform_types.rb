# frozen_string_literal: true

require "rbconfig"

module FiddleJit
  module Types
    # Platform typedefs (the ffi gem reads these from its
    # platform/<arch>-<os>/types.conf). spec/platform_types_spec.rb checks
    # every entry of the host's table against sizeof/signedness probes
    # compiled by cc (on aarch64 inside the arm64 chroot).
    #
    # x86_64-linux (glibc, LP64): the ffi gem's names and types.
    X86_64_LINUX_TYPEDEFS = {
      __blkcnt64_t: :long, __blkcnt_t: :long, __blksize_t: :long, __clock_t: :long,
      __clockid_t: :int, __daddr_t: :int, __dev_t: :ulong, __fd_mask: :long,
      __fsblkcnt64_t: :ulong, __fsblkcnt_t: :ulong, __fsfilcnt64_t: :ulong, __fsfilcnt_t: :ulong,
      __fsword_t: :long, __gid_t: :uint, __id_t: :uint, __ino64_t: :ulong,
      __ino_t: :ulong, __int16_t: :short, __int32_t: :int, __int64_t: :long,
      __int8_t: :char, __intmax_t: :long, __intptr_t: :long, __key_t: :int,
      __loff_t: :long, __mode_t: :uint, __nlink_t: :ulong, __off64_t: :long,
      __off_t: :long, __pid_t: :int, __priority_which_t: :int, __quad_t: :long,
      __rlim64_t: :ulong, __rlim_t: :ulong, __rlimit_resource_t: :int, __rusage_who_t: :int,
      __sig_atomic_t: :int, __socklen_t: :uint, __ssize_t: :long, __suseconds_t: :long,
      __syscall_slong_t: :long, __syscall_ulong_t: :ulong, __time_t: :long, __timer_t: :pointer,
      __u_char: :uchar, __u_int: :uint, __u_long: :ulong, __u_quad_t: :ulong,
      __u_short: :ushort, __uid_t: :uint, __uint16_t: :ushort, __uint32_t: :uint,
      __uint64_t: :ulong, __uint8_t: :uchar, __uintmax_t: :ulong, __useconds_t: :uint,
      blkcnt_t: :long, blksize_t: :long, clock_t: :long, clockid_t: :int,
      daddr_t: :int, dev_t: :ulong, fd_mask: :long, fsblkcnt_t: :ulong,
      fsfilcnt_t: :ulong, gid_t: :uint, id_t: :uint, in_addr_t: :uint,
      in_port_t: :ushort, ino_t: :ulong, int16_t: :short, int32_t: :int,
      int64_t: :long, int8_t: :char, int_fast16_t: :long, int_fast32_t: :long,
      int_fast64_t: :long, int_fast8_t: :char, int_least32_t: :int, int_least64_t: :long,
      int_least8_t: :char, intmax_t: :long, intptr_t: :long, key_t: :int,
      loff_t: :long, mode_t: :uint, nlink_t: :ulong, off_t: :long,
      pid_t: :int, pthread_key_t: :uint, pthread_once_t: :int, pthread_t: :ulong,
      ptrdiff_t: :long, quad_t: :long, register_t: :long, rlim_t: :ulong,
      sa_family_t: :ushort, size_t: :ulong, socklen_t: :uint, ssize_t: :long,
      suseconds_t: :long, time_t: :long, timer_t: :pointer, u_char: :uchar,
      u_int: :uint, u_int16_t: :ushort, u_int32_t: :uint, u_int64_t: :ulong_long,
      u_int8_t: :uchar, u_long: :ulong, u_quad_t: :ulong, u_short: :ushort,
      uid_t: :uint, uint: :uint, uint16_t: :ushort, uint32_t: :uint,
      uint64_t: :ulong, uint8_t: :uchar, uint_fast16_t: :ulong, uint_fast32_t: :ulong,
      uint_fast64_t: :ulong, uint_fast8_t: :uchar, uint_least16_t: :ushort, uint_least32_t: :uint,
      uint_least64_t: :ulong, uint_least8_t: :uchar, uintmax_t: :ulong, uintptr_t: :ulong,
      ulong: :ulong, ushort: :ushort, wchar_t: :int,
      caddr_t: :pointer, # not from types.conf: the ffi gem adds it after loading that
    }.freeze

    # aarch64-linux (glibc, LP64): the same names. The ffi gem's aarch64
    # types.conf lacks some of them (intptr_t, uintptr_t, the uintN_t family,
    # wchar_t, ptrdiff_t...): those follow C; for the others its spelling is
    # kept (int64_t as long_long). Where the two ABIs differ:
    AARCH64_LINUX_TYPEDEFS = X86_64_LINUX_TYPEDEFS.merge(
      # the generic kernel `struct stat` has a 32-bit st_nlink and st_blksize
      __blksize_t: :int, blksize_t: :int, __nlink_t: :uint, nlink_t: :uint,
      # AAPCS64 makes wchar_t unsigned
      wchar_t: :uint,
      int64_t: :long_long
    ).freeze

    # Other platforms get the x86_64-linux table (no table of theirs exists
    # or is checked yet).
    PLATFORM_TYPEDEFS =
      if RbConfig::CONFIG["host_cpu"].match?(/\A(aarch64|arm64)/) && RbConfig::CONFIG["host_os"].include?("linux")
        AARCH64_LINUX_TYPEDEFS
      else
        X86_64_LINUX_TYPEDEFS
      end
  end
end
