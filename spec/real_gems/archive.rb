require "ffi-libarchive"
require "tmpdir"
dir = Dir.mktmpdir
path = File.join(dir, "t.tar.gz")
Archive.write_open_filename(path, Archive::COMPRESSION_GZIP, Archive::FORMAT_TAR) do |ar|
  ar.new_entry do |e|
    e.pathname = "hello.txt"; e.mode = 0o644; e.filetype = Archive::Entry::FILE; e.size = 5
    ar.write_header(e); ar.write_data("hello")
  end
end
Archive.read_open_filename(path) do |ar|
  ar.each_entry { |e| p [e.pathname, e.size, ar.read_data] }
end
p defined?(FiddleJit) ? :fiddle_jit : :ffi
