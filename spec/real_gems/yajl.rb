# ffi-yajl picks its C extension when it loads; FORCE_FFI_YAJL=ffi makes it
# use its FFI backend, which is what this compares.
ENV["FORCE_FFI_YAJL"] = "ffi"
require "ffi_yajl"
p FFI_Yajl::Parser.parse('{"a":[1,2.5,"x",null,true],"n":{"d":-3e2,"s":"\u00e9"}}')
p FFI_Yajl::Parser.parse('{"a":1}', symbolize_keys: true)
p FFI_Yajl::Encoder.encode({"b" => [1, 2.5, "y", nil], "c" => {"t" => true}})
p FFI_Yajl::Encoder.encode([1, {"x" => "y"}], pretty: true)
begin
  FFI_Yajl::Parser.parse('{"a":')
rescue FFI_Yajl::ParseError => e
  p [e.class, e.message.lines.first.strip]
end
p FFI_Yajl::Parser.ancestors.include?(FFI_Yajl::FFI::Parser)
p defined?(FiddleJit) ? :fiddle_jit : :ffi
