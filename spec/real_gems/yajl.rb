require "ffi_yajl"
p FFI_Yajl::Parser.parse('{"a":[1,2.5,"x",null,true]}')
p FFI_Yajl::Encoder.encode({"b" => [1, 2.5, "y", nil]})
p defined?(FiddleJit) ? :fiddle_jit : :ffi
