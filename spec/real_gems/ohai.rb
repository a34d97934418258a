# On Linux, ohai reaches C through the ffi gem only by ffi-yajl (JSON of the
# collected data, hint files), whose FFI backend this selects.
ENV["FORCE_FFI_YAJL"] = "ffi"
require "ohai"
require "tmpdir"
require "json"
p FFI_Yajl::Parser.include?(FFI_Yajl::FFI::Parser), FFI_Yajl::Encoder.include?(FFI_Yajl::FFI::Encoder)

hints = Dir.mktmpdir
File.write(File.join(hints, "fiddle_jit.json"), '{"answer": 42, "list": [1, 2.5, "x", null, true], "nested": {"k": "v"}}')
File.write(File.join(hints, "empty.json"), "")
File.write(File.join(hints, "broken.json"), '{"answer": ')
Ohai::Config.ohai[:hints_path] = [hints]
Ohai::Log.level = :fatal # a broken hint file is logged with its (temporary) path
p Ohai::Hints.hint?("fiddle_jit"), Ohai::Hints.hint?("empty"), Ohai::Hints.hint?("missing")
p Ohai::Hints.hint?("broken")
begin
  FFI_Yajl::Parser.parse(File.read(File.join(hints, "broken.json")))
rescue FFI_Yajl::ParseError => e
  p e.message
end

o = Ohai::System.new
o.all_plugins(%w[os kernel platform])
p o[:os], o[:kernel][:name], o[:kernel][:release] == `uname -r`.strip, o[:platform].class
json = o.json_pretty_print(o[:kernel].to_hash.slice("name", "machine", "os"))
puts json
p FFI_Yajl::Parser.parse(json)
puts o.attributes_print("os")
all = o.json_pretty_print # everything the plugins collected
p FFI_Yajl::Parser.parse(all) == JSON.parse(all), JSON.parse(all).key?("kernel")
FileUtils.rm_rf(hints)
p defined?(FiddleJit) ? :fiddle_jit : :ffi
