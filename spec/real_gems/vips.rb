require "vips"
require "digest"
require "stringio"

# One line per check: a label and the value, or the exception's class and
# first line (without libvips' temp-image numbers).
def show(label)
  value = begin
    yield
  rescue => e
    [e.class, e.message.lines.first.to_s.split(/ "temp-/).first.strip]
  end
  puts "#{label}: #{value.inspect}"
end

Vips.cache_set_max 0 # every call builds its operation
Vips.concurrency_set 2

show("version") { [Vips.version(0) >= 8, Vips.at_least_libvips?(8, 9)] }
show("suffixes") { Vips.get_suffixes.include?(".png") }

# construction, properties, enum conversions
black = Vips::Image.black(4, 3, bands: 2)
show("black") { [black.inspect, black.size, black.bands, black.format, black.interpretation, black.coding] }
show("black to_a") { black.to_a }
arr = Vips::Image.new_from_array [[1, 2, 3], [4, 5, 6]], 2, 1
show("matrix") { [arr.inspect, arr.scale, arr.offset, arr.to_a] }
show("1d array") { Vips::Image.new_from_array([1.5, -2.5]).to_a }
show("bad array") { Vips::Image.new_from_array [[1, 2], [3]] }
show("enum nick") { [GObject::GValue.from_nick(Vips::BAND_FORMAT_TYPE, :float), GObject::GValue.to_nick(Vips::INTERPRETATION_TYPE, 22)] }
show("bad nick") { GObject::GValue.from_nick(Vips::BAND_FORMAT_TYPE, :nonsense) }
show("complex?") { [Vips::Image.complex?(:dpcomplex), Vips::Image.float?(:uchar), Vips::Image.float?(:double)] }

# arithmetic and operator overloads
img = Vips::Image.new_from_array([[1, 2], [3, 4]]).cast(:uchar)
show("ops") { [(img + 1).to_a, (img * 2 - [1]).to_a, (img / 2).to_a, (img % 3).to_a, (img**2).to_a] }
show("bitwise") { [(img & 1).to_a, (img | 8).to_a, (img ^ 3).to_a, (img << 1).to_a, (img >> 1).to_a] }
show("relational") { [(img == 2).to_a, (img < 3).to_a, (img >= 3).to_a, (img != 4).to_a] }
show("unary") { [(-img).to_a, (+img).to_a, (~img).to_a, img.abs.to_a, (img - 10).abs.to_a] }
show("image op image") { [(img + img).to_a, (img * img).format, (img.cast(:float) / img).to_a] }
show("math") { [img.exp.to_a.flatten.map { |x| x.round(3) }, img.log10.format, img.floor.to_a, img.math(:cos).format] }
show("linear") { [img.linear(2, 1).to_a, img.linear([1], [0.5]).to_a] }
show("ifthenelse") { (img > 2).ifthenelse(img, [9]).to_a }

# optional inputs and outputs
show("avg") { [img.avg, img.deviate.round(6), img.min, img.max] }
show("max x y") { img.max(x: true, y: true) }
show("maxpos minpos") { [img.maxpos, img.minpos] }
show("min size") { img.min(size: 2, x_array: true, y_array: true) }
show("stats") { img.stats.to_a }
show("hist_find") { img.hist_find.to_a.flatten.first(6) }
show("hist bands") { img.bandjoin(img + 1).hist_find(band: 1).to_a }
show("getpoint") { [img.getpoint(1, 1), img.bandjoin(255)[1].getpoint(0, 0)] }
show("percent") { img.percent(50) }

# bands, formats, interpretations
rgb = Vips::Image.black(2, 2, bands: 3).copy(interpretation: :srgb) + [10, 20, 30]
show("rgb") { [rgb.inspect, rgb.bandsplit.map(&:avg), rgb.extract_band(1).avg] }
show("bandjoin") { [rgb.bandjoin(255).bands, Vips::Image.bandjoin([img, img, img]).bands, rgb.bandmean.avg] }
show("cast") { [rgb.cast(:float).format, rgb.cast("short").format, rgb.cast(:uchar, shift: true).format] }
show("colourspace") { [rgb.colourspace(:b_w).interpretation, rgb.colourspace(:lab).format] }
# (add_alpha calls vips_addalpha through :varargs without the NULL that ends
# its options: libvips 8.15 and later read garbage there.)
show("alpha") { [rgb.has_alpha?] + (Vips.at_least_libvips?(8, 15) ? [] : [rgb.add_alpha.bands, rgb.add_alpha.has_alpha?]) }
show("flip rot") { [img.fliphor.to_a, img.rot(:d90).to_a, img.rot90.to_a] }
show("embed crop") { [img.embed(1, 1, 4, 4).to_a, img.crop(0, 1, 2, 1).to_a, img.embed(0, 0, 3, 2, extend: :copy).to_a] }
show("resize") { [img.resize(2, kernel: :nearest).to_a, img.affine([2, 0, 0, 2], interpolate: Vips::Interpolate.new(:nearest)).size] }
show("interpolate") { [Vips::Interpolate.new(:bicubic).get("nickname"), Vips::Interpolate.new("bilinear").class] }
show("complex") { [img.cast(:float).complex(:polar).format, img.bandjoin(img).polar.format] }
show("conv") { img.conv(Vips::Image.new_from_array([[1, 1], [1, 1]], 4), precision: :integer).to_a }

# metadata and GObject properties
show("fields") { img.get_fields }
show("get") { [img.get("width"), img.get("xres"), img.get("format"), img.get_typeof("width") == GObject::GINT_TYPE, img.get_typeof("nonexistent")] }
show("get missing") { img.get("nonexistent") }
tagged = img.mutate do |m|
  m.set_type! GObject::GINT_TYPE, "my-int", 42
  m.set_type! GObject::GDOUBLE_TYPE, "my-double", 2.5
  m.set_type! GObject::GSTR_TYPE, "my-string", "hello"
  m.set_type! Vips::REFSTR_TYPE, "my-refstr", "ref"
  m.set_type! Vips::ARRAY_INT_TYPE, "my-ints", [1, -2, 3]
  m.set_type! Vips::ARRAY_DOUBLE_TYPE, "my-doubles", [0.5, 1.5]
  m.set_type! Vips::BLOB_TYPE, "my-blob", "\x00\x01\xff".b
  m.set_type! GObject::GUINT64_TYPE, "my-u64", 2**40
  m.set_type! Vips::INTERPRETATION_TYPE, "my-enum", :srgb
  m.set_type! Vips::ARRAY_IMAGE_TYPE, "my-images", [img, img + 1]
  m.set! "my-int", 43
  m.remove! "my-double"
  m.draw_rect! 255, 0, 0, 1, 1
  m.draw_line! 9, 0, 1, 1, 1
end
show("tagged get") { %w[my-int my-string my-refstr my-ints my-doubles my-blob my-u64 my-enum].map { |n| tagged.get(n) } }
show("tagged images") { tagged.get("my-images").map(&:to_a) }
show("tagged fields") { [tagged.get_fields.grep(/^my-/), tagged.get_typeof("my-double"), tagged.to_a] }
show("not mutable") { img.draw_rect! 1, 0, 0, 1, 1 }
show("mutable elsewhere") { img.mutate { |m| m.copy } }
# GObject reference counts: the ManagedStruct's AutoPointer unrefs when freed
refs = ->(o) { Vips::Image::Struct.new(o.ptr)[:parent][:parent][:ref_count] }
copied = img.copy
show("refs") { refs[copied] } # img's count depends on when the GC collects what was made from it
GObject.g_object_ref(copied)
copied.to_ptr.free
show("refs after free") { refs[copied] }
in_mutate = nil
img.mutate { |m| in_mutate = [refs[m], refs[m.image]] }
show("refs in mutate") { in_mutate }

# introspection: callbacks given struct pointers, struct fields of all kinds
introspect = Vips::Introspect.get("max")
show("introspect") { introspect.args.map { |a| [a[:arg_name], a[:flags], GObject.g_type_name(a[:gtype])] } }
show("introspect outputs") { [introspect.required_input.map { |a| a[:arg_name] }, introspect.optional_output.keys] }
max_op = Vips::Operation.new("max")
pspec = max_op.get_pspec("x")
show("pspec") { [pspec.class, pspec[:name], pspec[:flags], GObject.g_type_name(pspec[:owner_type]), GObject.g_param_spec_get_blurb(pspec)] }
show("no pspec") { [max_op.get_pspec("nope"), Vips.vips_error_buffer] }
Vips.vips_error_clear
op = Vips::Operation.new "black"
op.set "width", 3, nil, 0, GObject::GINT_TYPE, false
show("op props") { [op.get("width"), op.get_typeof("bands") == GObject::GINT_TYPE, op.get_typeof("nope")] }

# errors
show("no operation") { Vips::Image.no_such_operation(1) }
show("bad argument count") { Vips::Image.black(1) }
show("bad option") { Vips::Image.black(1, 1, no_such_option: 2) }
show("bad enum") { img.cast(:nonsense) }
show("bad type") { img.add("a string") }
show("bad band") { img.extract_band(5) }
show("bad area") { img.crop(0, 0, 5, 5) }
show("bad buffer") { Vips::Image.new_from_buffer("not an image", "") }
show("bad file") { Vips::Image.new_from_file("/nonexistent/x.png") }
show("unsupported signal") { img.signal_connect(:nope) {} }
# arguments the C functions' parameter types refuse: the ffi gem's exceptions
show("bool from int") { img.set_progress 1 }
show("bool from nil") { img.set_kill nil }
show("pointer from symbol") { Vips.vips_image_new_from_memory(:x, 1, 1, 1, 1, 0) }
show("int from string") { Vips::Image.black("a", 1) }
show("int too big") { Vips::Image.black(2**40, 1) }
show("int from bignum") { Vips::Image.black(2**70, 1) }
show("int from float") { Vips::Image.black(1.7, 1).width }
show("double from nil") { img.linear(nil, 1) }
show("uint64 from negative") { img.mutate { |m| m.set_type! GObject::GUINT64_TYPE, "u", -1 }.get("u") }
show("string from int") { img.mutate { |m| m.set_type! GObject::GSTR_TYPE, "s", 5 } }
show("string with NUL") { img.mutate { |m| m.set_type! GObject::GSTR_TYPE, "s", "a\0b" } }
show("int from string in fetch") { Vips::Region.new(img).fetch("a", 0, 1, 1) }
show("string from symbol") { img.get_typeof(:width) }
show("int from string in target") { Vips::Target.new_to_descriptor("x") }
show("error buffer") { Vips.vips_error_buffer }

# memory in and out
bytes = img.write_to_memory
show("write_to_memory") { [bytes.bytesize, bytes.bytes, bytes.encoding] }
show("new_from_memory") { Vips::Image.new_from_memory(bytes, 2, 2, 1, :uchar).to_a }
ptr = FFI::MemoryPointer.new(:double, 4).write_array_of_double([0.5, 1.5, 2.5, 3.5])
show("new_from_memory ptr") { Vips::Image.new_from_memory(ptr, 2, 1, 2, :double).to_a }
show("unknown size") { Vips::Image.new_from_memory(FFI::Pointer.new(ptr.address), 1, 1, 1, :uchar) }
show("new_from_memory_copy") { Vips::Image.new_from_memory_copy(bytes, 1, 4, 1, "uchar").to_a }
show("region") { r = Vips::Region.new(img); [r.fetch(0, 0, 2, 2).bytes, r.width, r.height] }
show("copy_memory") { img.copy_memory.to_a }

# formatted buffers, and the custom source/target callbacks
%w[.png .jpg .tif .pgm .webp].each do |suffix|
  show("buffer #{suffix}") do
    buf = rgb.write_to_buffer(suffix)
    back = Vips::Image.new_from_buffer(buf, "")
    [buf.encoding, back.size, back.bands, back.format, back.avg.round]
  end
end
show("buffer options") { rgb.write_to_buffer(".png", compression: 9) == rgb.write_to_buffer(".png[compression=9]") }
png = rgb.write_to_buffer(".png")
chunks = []
finished = false
target = Vips::TargetCustom.new
target.on_write { |chunk| chunks << chunk.dup; chunk.bytesize }
target.on_finish { finished = true }
show("target") { rgb.write_to_target(target, ".png"); [chunks.join == png, finished] }
io = StringIO.new(png)
source = Vips::SourceCustom.new
source.on_read { |length| io.read(length) }
source.on_seek { |offset, whence| io.seek(offset, whence); io.pos }
show("source") { Vips::Image.new_from_source(source, "").then { |im| [im.size, im.bands, im.avg.round] } }
show("source nick") { [source.nick, source.filename] }
show("memory source") { Vips::Image.new_from_source(Vips::Source.new_from_memory(png), "").avg.round }
# a sequential load: libvips' worker threads call on_read, in no Ruby thread
big = (Vips::Image.xyz(300, 200) % 256).cast(:uchar)
big_png = big.write_to_buffer(".png")
big_io = StringIO.new(big_png)
read_threads = []
big_source = Vips::SourceCustom.new
big_source.on_read { |length| read_threads << Thread.current; big_io.read(length) }
show("sequential source") do
  im = Vips::Image.new_from_source(big_source, "", access: :sequential)
  [im.size, im.avg, read_threads.size > 1, read_threads.any? { |t| t != Thread.main }]
end
bad_source = Vips::SourceCustom.new
bad_source.on_read { |_| raise "bad read" } # ruby-vips rescues it and prints "read: bad read"
show("raising source") { Vips::Image.new_from_source(bad_source, "") }
show("threads") { 3.times.map { |i| Thread.new { 10.times.map { (big + i).avg }.uniq } }.map(&:value) }
mem_target = Vips::Target.new_to_memory
rgb.write_to_target(mem_target, ".png")
show("memory target") { mem_target.get("blob") == png }

# a GLib log handler (a Proc for a callback parameter) catching GObject's
# warning (a critical in newer GLib)
logged = []
log_handler = proc { |domain, level, message, _| logged << [domain, level, message] }
log_levels = GLib::LOG_LEVEL_WARNING | GLib::LOG_LEVEL_CRITICAL | GLib::LOG_FLAG_FATAL | GLib::LOG_FLAG_RECURSION
handler_id = GLib.g_log_set_handler("GLib-GObject", log_levels, log_handler, nil)
show("bad size") { Vips::Image.black(-1, 1) }
GLib.g_log_remove_handler("GLib-GObject", handler_id)
show("logged") { logged }

# progress signals (eval is rate-limited by time: not shown)
progress = []
tall = Vips::Image.black(64, 256)
tall.set_progress true
tall.signal_connect(:preeval) { |pr| progress << [:pre, pr[:percent]] }
tall.signal_connect("posteval") { |pr| progress << [:post, pr[:percent], pr[:tpels], pr[:npels]] }
show("progress avg") { tall.avg }
show("progress") { progress }
killed = Vips::Image.black(64, 256)
killed.set_progress true
killed.set_kill true
show("killed") { killed.avg }
killed.set_kill false
show("revived") { killed.avg }
raising = Vips::Image.black(8, 8)
raising.set_progress true
raising.signal_connect(:preeval) { |pr| raise ArgumentError, "from preeval at #{pr[:percent]}" }
show("raising handler") { raising.avg }
show("after raise") { raising.avg }

# operation introspection over every class (nested vips_type_map callbacks)
out = StringIO.new
begin
  $stdout = out
  Vips::Yard.generate
ensure
  $stdout = STDOUT
end
show("yard") { [out.string.lines.size > 1000, Digest::SHA256.hexdigest(out.string)] }
GC.start
show("after gc") { [img.avg, tagged.get("my-int")] }
p defined?(FiddleJit) ? :fiddle_jit : :ffi
