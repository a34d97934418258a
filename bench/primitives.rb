# frozen_string_literal: true

# Instructions per operation, under callgrind, for the primitives real gems
# use around their C calls (issue [4/7]): ffi_lib, Struct, MemoryPointer,
# Pointer reads and writes, callbacks. The same code runs in one process
# under the ffi gem and one under fiddle_jit's drop-in
# (`ruby -I lib -rfiddle_jit/ffi_shim`); see bench/side_by_side.rb.
#
#   ruby bench/primitives.rb          # or: rake bench:primitives
#
# For each primitive: warm-up, GC.start, GC.disable, zero the counters,
# N iterations, dump (client requests from bench/cext). Per op = dump ÷ N −
# the empty loop's instructions per iteration. GC is off in the window (so
# a collection landing in it or not does not swing the count); objects
# allocated per op are reported instead, and, from a second process per
# side (TracePoint), the Ruby/C method calls per op and the most frequent.
#
# Environment:
#   PRIMITIVES_N=1           scale of the iteration counts
#   PRIMITIVES_ONLY=regex    only the rows whose label matches
#   BENCH_CALLGRIND_DIR=dir  keep the callgrind.out files (for callgrind_annotate)
#   BENCH_RUBYOPT="--yjit"   extra ruby flags for both children
# Writes bench/results-primitives.md.

# Run once per process, not measured. Everything is written against the
# ffi gem's API (`FFI::...`), as a gem would.
SETUP = <<~RUBY
  class Timeval < FFI::Struct
    layout :tv_sec, :long, :tv_usec, :long
  end
  # Sys::Filesystem's statvfs: 11 fields.
  class Statvfs < FFI::Struct
    layout :f_bsize, :ulong, :f_frsize, :ulong, :f_blocks, :ulong, :f_bfree, :ulong, :f_bavail, :ulong,
           :f_files, :ulong, :f_ffree, :ulong, :f_favail, :ulong, :f_fsid, :ulong, :f_flag, :ulong,
           :f_namemax, :ulong
  end
  # ffi-yajl's callback table: :pointer fields that get FFI::Functions.
  class Callbacks < FFI::Struct
    layout :cb_null, :pointer, :cb_int, :pointer
  end
  # One field of each kind the native accessors read inline.
  class Mixed < FFI::Struct
    layout :int_field, :int, :double_field, :double, :pointer_field, :pointer
  end
  # libc's ldiv_t: a struct returned by value.
  class Ldiv < FFI::Struct
    layout :quot, :long, :rem, :long
  end
  LibLoad = Module.new { extend FFI::Library }
  CbLib = Module.new do
    extend FFI::Library
    ffi_lib FFI::Library::LIBC
    callback :cmp, %i[pointer pointer], :int
    attach_function :qsort, [:pointer, :size_t, :size_t, :cmp], :void
    # ethon's curl_easy_setopt is attached the same way.
    attach_function :snprintf, %i[pointer size_t string varargs], :int
    # A :pointer parameter given an FFI::Function (ethon's curl_easy_setopt
    # of a callback); strnlen(p, 0) reads nothing.
    attach_function :strnlen, [:pointer, :size_t], :size_t
    attach_function :ldiv, %i[long long], Ldiv.by_value
    # ethon's curl attaches: enum and typedef'd pointer parameters.
    enum :mode, %i[mode_a mode_b]
    typedef :pointer, :handle
    attach_function :abs, [:mode], :int
  end
  tv = Timeval.new
  tv[:tv_sec] = 1
  tv[:tv_usec] = 2
  tv_mem = FFI::MemoryPointer.new(Timeval.size)
  ints = FFI::MemoryPointer.new(:int, 4)
  ints.write_array_of_int([4, 3, 2, 1])
  hello = FFI::MemoryPointer.from_string("hello world")
  buf = FFI::MemoryPointer.new(64)
  s16 = "0123456789abcdef"
  cmp = proc { |_a, _b| 0 }
  cb_fn = FFI::Function.new(:int, %i[pointer pointer], cmp)
  cbs = Callbacks.new
  mixed = Mixed.new
  stat = Statvfs.new
  mixed[:double_field] = 1.5
  mixed[:pointer_field] = hello
  sodium = ["sodium", "libsodium.so.18", "libsodium.so.23"]
RUBY

# [label, op, iterations]
PRIMITIVES = [
  ['`ffi_lib "c"`', 'LibLoad.ffi_lib "c"', 20],
  ['`ffi_lib "libm.so.6"` (exact soname)', 'LibLoad.ffi_lib "libm.so.6"', 20],
  ['`ffi_lib "m"` (libm.so is a linker script)', 'LibLoad.ffi_lib "m"', 20],
  ['`ffi_lib ["sodium", "libsodium.so.18", "libsodium.so.23"]` (rbnacl)', "LibLoad.ffi_lib sodium", 20],
  ['`ffi_lib "nosuchlibN"` → LoadError, rescued (a miss, as rb-inotify\'s `ffi_lib "inotify"`)',
   'begin; LibLoad.ffi_lib "nosuchlib#{i}"; rescue LoadError; end', 20],
  ["`Struct.new` (2 fields)", "Timeval.new", 2000],
  ["`Struct.new` (11 fields, statvfs)", "Statvfs.new", 1000],
  ["`Struct.new(pointer)`", "Timeval.new(tv_mem)", 2000],
  ["`Struct#[]`", "tv[:tv_usec]", 10_000],
  ["`Struct#[]=`", "tv[:tv_sec] = 1", 10_000],
  ["`Struct#[]` of an `:int` field", "mixed[:int_field]", 10_000],
  ["`Struct#[]=` of an `:int` field", "mixed[:int_field] = 1", 10_000],
  ["`Struct#[]` of a `:double` field", "mixed[:double_field]", 10_000],
  ["`Struct#[]` of a `:pointer` field", "mixed[:pointer_field]", 10_000],
  ["`Struct#[]` of the 11th field (sys-filesystem's statvfs)", "stat[:f_namemax]", 10_000],
  ["`Struct#members`", "tv.members", 5000],
  ["`Struct#values`", "tv.values", 5000],
  ["`Struct#to_ptr`", "tv.to_ptr", 10_000],
  ["`Struct#[]=` of an `FFI::Function` (ffi-yajl)", "cbs[:cb_int] = cb_fn", 5000],
  ["`MemoryPointer.new(:int, 4)`", "FFI::MemoryPointer.new(:int, 4)", 2000],
  ["`MemoryPointer.new(StructClass)`", "FFI::MemoryPointer.new(Timeval)", 2000],
  ['`MemoryPointer.from_string("0123456789abcdef")`', "FFI::MemoryPointer.from_string(s16)", 2000],
  ["`Pointer#read_string` (NUL-terminated)", "hello.read_string", 5000],
  ["`Pointer#read_string(5)`", "hello.read_string(5)", 5000],
  ["`Pointer#get_bytes(0, 11)`", "hello.get_bytes(0, 11)", 5000],
  ["`Pointer#put_bytes(0, 16 B)`", "buf.put_bytes(0, s16)", 5000],
  ["`Pointer#read_array_of_int(4)`", "ints.read_array_of_int(4)", 5000],
  ["`Function.new(:int, [:pointer, :pointer], proc)`", "FFI::Function.new(:int, %i[pointer pointer], cmp)", 500],
  ["`Function.new(:int, [:pointer, :long_long]) { }` (ffi-yajl)",
   "FFI::Function.new(:int, %i[pointer long_long]) { |_c, _v| 1 }", 500],
  ["`callback :cb, [:int], :int` (define the type)", "CbLib.callback :cb, [:int], :int", 500],
  ["`attach_function` with a `:cmp` callback parameter",
   "CbLib.attach_function :qsort, [:pointer, :size_t, :size_t, :cmp], :void", 200],
  ["`attach_function` with an enum parameter", "CbLib.attach_function :abs, [:mode], :int", 200],
  ["`attach_function` with a typedef'd pointer parameter", "CbLib.attach_function :strlen, [:handle], :size_t", 200],
  ["`attach_function :strlen, [:string], :size_t` (reference)", "CbLib.attach_function :strlen, [:string], :size_t", 200],
  ["call with a Proc for a `:cmp` parameter (`qsort` of 1 element)", "CbLib.qsort(ints, 1, 4, cmp)", 2000],
  ["call with an `FFI::Function` for a `:cmp` parameter", "CbLib.qsort(ints, 1, 4, cb_fn)", 2000],
  # glibc's qsort of 2 elements compares once: the row less the one above
  # is what C calling a Ruby callback costs (ffi-yajl's parse callbacks).
  ["call with an `FFI::Function` for a `:cmp` parameter, C calling it once (`qsort` of 2)",
   "CbLib.qsort(ints, 2, 4, cb_fn)", 2000],
  ['variadic call `snprintf(buf, 64, "%d %s", :int, 7, :string, "x")` (ethon\'s `curl_easy_setopt`)',
   'CbLib.snprintf(buf, 64, "%d %s", :int, 7, :string, "x")', 2000],
  ["call with an `FFI::Function` for a `:pointer` parameter (ethon)", "CbLib.strnlen(cb_fn, 0)", 5000],
  ["call returning a struct by value (`ldiv`)", "CbLib.ldiv(7, 2)", 2000],
  ["call with an enum parameter (`abs(:mode_b)`)", "CbLib.abs(:mode_b)", 5000],
].freeze

if ARGV[0] == "--child"
  require "ffi"
  require_relative "side_by_side_child"
  include SideBySideChild # rubocop:disable Style/MixinUsage
  mode, side = ARGV[1], ARGV[2]
  backend = defined?(FiddleJit) ? "fiddle_jit" : "ffi"
  abort "primitives: expected #{side}, got #{backend}" unless backend == side
  eval(SETUP, TOPLEVEL_BINDING, "(setup)") # rubocop:disable Security/Eval
  scale = Float(ENV.fetch("PRIMITIVES_N", "1"))
  only = ENV["PRIMITIVES_ONLY"] && Regexp.new(ENV["PRIMITIVES_ONLY"])
  icount("empty", "nil", 1000) if mode == "icount"
  PRIMITIVES.each_with_index do |(label, op, n), i|
    next if only && !only.match?(label)

    n = [(n * scale).round, 1].max
    mode == "icount" ? icount("p#{i}", op, n) : calls("p#{i}", op, [n, 500].min)
  end
  exit 0
end

require_relative "side_by_side"
include SideBySide # rubocop:disable Style/MixinUsage

check_fiddle_jit_built!
valgrind!
started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
cext_path # build it once, before the threads
counts = {} # side => { "p<i>" => [instructions per op, objects per op] }
calls = {}  # side => { "p<i>" => [calls per op, "top methods"] }
%w[ffi fiddle_jit].map do |side|
  Thread.new do
    dumps, lines = callgrind(side, __FILE__, ["--child", "icount", side], tag: "primitives")
    n = lines.to_h { |_, name, count, objects| [name, [Integer(count), Integer(objects)]] }
    empty = dumps.fetch("empty").fdiv(n.fetch("empty")[0])
    counts[side] = n.except("empty").to_h do |name, (count, objects)|
      [name, [dumps.fetch(name).fdiv(count) - empty, objects.fdiv(count)]]
    end
    calls[side] = run(side, __FILE__, ["--child", "calls", side]).to_h { |_, name, per_op, top| [name, [Float(per_op), top]] }
    warn "[primitives] #{side} done (#{(Process.clock_gettime(Process::CLOCK_MONOTONIC) - started).round} s)"
  end
end.each(&:join)

rows = PRIMITIVES.each_with_index.filter_map do |(label, _op, _n), i|
  f, fa = counts["ffi"]["p#{i}"]
  j, ja = counts["fiddle_jit"]["p#{i}"]
  next unless f && j

  mark = j < f ? "" : " **✗**"
  short = ->(x) { x.round(1).to_s.delete_suffix(".0") }
  [label, commas(f), commas(j), "#{format("%.2f×", f / j)}#{mark}", "#{short[fa]} / #{short[ja]}",
   "#{short[calls["ffi"]["p#{i}"][0]]} / #{short[calls["fiddle_jit"]["p#{i}"][0]]}"]
end
header = ["primitive", "ffi instr/op", "fiddle_jit instr/op", "ffi÷fiddle_jit", "objects/op ffi / fj", "calls/op ffi / fj"]
losses = rows.count { |r| r[3].include?("✗") }
details = PRIMITIVES.each_with_index.filter_map do |(label, _op, _n), i|
  f, = counts["ffi"]["p#{i}"]
  j, = counts["fiddle_jit"]["p#{i}"]
  next unless f && j && j >= f

  <<~MD
    - **#{label}**
      - ffi: #{calls["ffi"]["p#{i}"][1]}
      - fiddle_jit: #{calls["fiddle_jit"]["p#{i}"][1]}
  MD
end
report = <<~MD
  ## Primitives: instructions per operation (callgrind)

  - #{machine}
  - one process per side: `ruby` (ffi gem) and `ruby -I lib -rfiddle_jit/ffi_shim` (fiddle_jit), the same `FFI::` code
  - per op = instructions in N iterations (after warm-up, GC disabled) ÷ N − the empty loop; objects/op = Ruby objects allocated per op
  - ÷ > 1 = fiddle_jit executes fewer instructions; **✗** = not fewer than the ffi gem (#{losses} of #{rows.size})
  - calls/op: Ruby and C method calls per op (TracePoint :call/:c_call, in a separate process, the loop's own calls subtracted)
  - fiddle_jit caches a miss's directory scan per process (`LibraryLoader::VERSIONED`), so the miss row uses a new name every iteration

  #{table(header, rows, [":--"] + Array.new(header.size - 1, "---:"))}

  ### Where fiddle_jit is not fewer: the most frequent Ruby/C method calls per op

  #{details.empty? ? "(none)" : details.join}
  (run time: #{(Process.clock_gettime(Process::CLOCK_MONOTONIC) - started).round} s)
MD
puts report
File.write(File.join(__dir__, "results-primitives.md"),
           "# Primitive benchmark results\n\nReproduce with `rake bench:primitives` (or `ruby bench/primitives.rb`); see bench/README.md.\n\n#{report}")
