require "sys/filesystem"
s = Sys::Filesystem.stat("/")
p [s.path, s.block_size > 0, s.blocks > 0, s.base_type.class]
p Sys::Filesystem.mounts.first.class
p defined?(FiddleJit) ? :fiddle_jit : :ffi
