require "gir_ffi"
GirFFI.setup :GLib
p GLib.get_major_version rescue p GLib::MAJOR_VERSION
p GLib.strcmp0("a", "b") rescue p $!.class
list = GLib::List.from(:gint32, [1, 2, 3])
p list.to_a
h = GLib::HashTable.from([:utf8, :gint32], { "a" => 1 })
p h.to_hash
p defined?(FiddleJit) ? :fiddle_jit : :ffi
