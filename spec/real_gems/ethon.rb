require "ethon"
require "tmpdir"
file = File.join(Dir.mktmpdir, "ethon_test.txt")
File.write(file, "hello from file")
e = Ethon::Easy.new(url: "file://#{file}")
e.perform
p [e.return_code, e.response_body, e.response_code]
m = Ethon::Multi.new
2.times { m.add(Ethon::Easy.new(url: "file://#{file}")) }
m.perform
p Ethon::Curl.version
p defined?(FiddleJit) ? :fiddle_jit : :ffi
