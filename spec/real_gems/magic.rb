require "magic"
p Magic.guess_string_mime_type("%PDF-1.4 hello")
p Magic.guess_file_mime_type("/bin/sh")
p defined?(FiddleJit) ? :fiddle_jit : :ffi
