# aubio's generated binding (405 functions, structs returned by reference,
# a log callback) on a WAV file written here: clicks every 0.5 s over a
# 440 Hz tone.
require "aubio"
require "tmpdir"

RATE = 44_100
samples = Array.new(RATE * 3) do |i|
  tone = 0.2 * Math.sin(2 * Math::PI * 440 * i / RATE)
  click = (i % (RATE / 2)) < 64 ? 0.7 : 0.0
  ((tone + click) * 32_000).round.clamp(-32_768, 32_767)
end
data = samples.pack("s<*")
wav = "RIFF" + [36 + data.bytesize].pack("V") + "WAVEfmt " +
      [16, 1, 1, RATE, RATE * 2, 2, 16].pack("VvvVVvv") + "data" + [data.bytesize].pack("V") + data
dir = Dir.mktmpdir
path = File.join(dir, "clicks.wav")
File.binwrite(path, wav)

api = Aubio::Api
logged = []
api.aubio_log_set_function(proc { |level, message, _data| logged << [level, message.strip]; 0 }, nil)
src = api.new_aubio_source(File.join(dir, "missing.wav"), RATE, 512)
p src.is_a?(FFI::Pointer), src.null? # a Struct class as return type: a Pointer
p logged.map { |level, message| [level, message.sub(dir, "DIR")] }
api.aubio_log_reset

a = Aubio.open(path)
onsets = a.onsets.to_a
p onsets.size, onsets.first(3).map { |o| o[:s].round(3) }
a.close
a = Aubio.open(path)
p a.bpm.round(1)
a.close
a = Aubio.open(path, pitch_method: "yinfast")
p a.pitches.first(2).map { |h| [h[:pitch].round(1), h[:start]] }
a.close
begin
  a.onsets
rescue Aubio::AlreadyClosed => e
  p e.class
end
begin
  Aubio.open(File.join(dir, "missing.wav"))
rescue Aubio::FileNotFound => e
  p e.class
end

v = api.new_fvec(4)
4.times { |i| api.fvec_set_sample(v, i * 0.5, i) }
fvec = api::FvecT.new(v)
p fvec[:length], fvec[:data].read_array_of_float(4), api.fvec_mean(fvec), api.aubio_zero_crossing_rate(v)
p api.fvec_get_data(fvec).read_array_of_float(4) == fvec[:data].read_array_of_float(4)
api.del_fvec(v)
p api.aubio_miditofreq(69.0), api.aubio_bintomidi(10.0, 44_100.0, 1024.0).round(3)
p api.enum_type(:aubio_log_level)[:wrn]
begin
  api.new_aubio_source_apple_audio(path, RATE, 512)
rescue FFI::NotFoundError => e
  p e.message
end
FileUtils.rm_rf(dir)
p defined?(FiddleJit) ? :fiddle_jit : :ffi
