# kakasi picks Fiddle unless told otherwise; its FFI binding is what this runs.
module Kakasi
  IMPL = :ffi
end
require "kakasi"
p Kakasi::Lib.singleton_class.include?(FFI::Library)
p Kakasi.kakasi("-JH", "漢字かな交じり文")
p Kakasi.kakasi("-Ja -Ha -Ka", "日本語のテキスト、カタカナ")
# kakasi.rb passes the NUL runs it splits on to C as strings too
begin
  Kakasi.kakasi("-JH", "東京\0大阪")
rescue ArgumentError => e
  p e.class, e.message
end
s = Kakasi.kakasi("-Ka", "カタカナ".encode("EUC-JP"))
p s, s.encoding
p defined?(FiddleJit) ? :fiddle_jit : :ffi
