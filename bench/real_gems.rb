# frozen_string_literal: true

# Real gems written for the ffi gem (Debian packages, installed by
# script/setup), run unmodified under the ffi gem and under fiddle_jit's
# drop-in (`ruby -I lib -rfiddle_jit/ffi_shim`): workloads where the gem's
# own Ruby code around the C calls matters, and the cost of loading each gem.
#
#   ruby bench/real_gems.rb           # or: rake bench:real_gems
#
# Every measurement runs in its own process per side:
# - CPU time: per round, one process per gem and side (ffi, fiddle_jit;
#   the next round fiddle_jit first, so linear drift cancels) runs each
#   workload for REAL_GEMS_TIME seconds of process CPU time
#   (CLOCK_PROCESS_CPUTIME_ID); a cell is the median over the rounds.
# - Instructions (deterministic): REAL_GEMS_LAYOUTS processes per gem and
#   side under callgrind, each with a different environment size (so a
#   different stack and memory layout: libsass's count, for one, moves by
#   ±0.5% with it, the same way on both sides); each workload is warmed up,
#   then GC.start, GC.disable, zero the counters, N iterations, dump (client
#   requests from bench/cext). Per op = dump ÷ N − the empty loop's
#   instructions per iteration, the median over the layouts. GC is off in
#   that window so the count does not depend on where a collection lands;
#   objects allocated per op are reported beside it (the CPU-time column
#   includes GC).
# - Load cost: CPU time and instructions from the first `-r`
#   (bench/load_start.rb; Ruby's boot before it, the same on both sides, is
#   not measured, and runs uninstrumented under callgrind) to the end of the
#   gem's `require`, each minus a process that requires nothing (no shim
#   either), so fiddle_jit's own loading counts against it just as the ffi
#   gem's does. Each load sample (the ROUNDS × LOAD_SAMPLES CPU ones, the
#   REAL_GEMS_LOAD_PHASES callgrind ones) has its collections at another
#   phase (BENCH_GC_PHASE, see bench/load_start.rb), the phases spread evenly
#   over GC_PHASE_RANGE; a cell is their median.
#
# Environment:
#   REAL_GEMS_ROUNDS=5       alternated rounds for CPU time
#   REAL_GEMS_TIME=0.25      CPU seconds per workload per process
#   REAL_GEMS_ICOUNT=1       scale of the callgrind iteration counts (0 = skip callgrind)
#   REAL_GEMS_JOBS=2         callgrind processes run in parallel (counts do not depend on it)
#   REAL_GEMS_LAYOUTS=3      callgrind processes per gem and side for the workloads (environment
#                            sizes 0, 64, 128, ... bytes apart), their median per workload
#   REAL_GEMS_ONLY=rbnacl,sassc   only these gems
#   REAL_GEMS_LOAD_SAMPLES=3 load-only processes per gem, side and round for the load CPU time
#   REAL_GEMS_LOAD_PHASES=3  callgrind load processes per gem and side, each at another GC phase (their median)
#   REAL_GEMS_LOAD_ICOUNT=1  0 = no instruction count for loading (the gems' loads are most
#                            of the instructions callgrind runs through)
#   REAL_GEMS_QUICK=1        ROUNDS=3, TIME=0.1, ICOUNT=0.25, LOAD_SAMPLES=1, LOAD_ICOUNT=0, LAYOUTS=1, LOAD_PHASES=1
#   BENCH_CALLGRIND_DIR=dir  keep the callgrind.out files (for callgrind_annotate)
#   BENCH_RUBYOPT="--yjit"   extra ruby flags for every child
# Writes bench/results-real-gems.md.

# name: the Debian/rubygems name; load: what "load cost" measures (the
# gem's require, plus GirFFI.setup, gir_ffi's real start-up step); setup:
# once per process, not measured; workloads: [label, op, iterations under
# callgrind, check] — check: false where the result differs between runs.
GEMS = [
  { name: "ffi", load: 'require "ffi"', workloads: [] },
  { name: "rbnacl", load: 'require "rbnacl"',
    setup: <<~RUBY,
      msg16 = ("a" * 16).b
      msg64 = ("b" * 64).b
      box = RbNaCl::SecretBox.new(("k" * 32).b)
      nonce = ("n" * 24).b
    RUBY
    workloads: [
      ["`RbNaCl::Hash.sha256` of 16 B", "RbNaCl::Hash.sha256(msg16)", 1000],
      ["`RbNaCl::SecretBox#encrypt` of 64 B", "box.encrypt(nonce, msg64)", 600],
      ["`RbNaCl::Hash.blake2b` of 16 B", "RbNaCl::Hash.blake2b(msg16)", 600],
    ] },
  { name: "ffi-yajl", load: 'require "ffi_yajl"', env: { "FORCE_FFI_YAJL" => "ffi" },
    setup: <<~RUBY,
      abort "ffi-yajl: not the ffi backend" unless defined?(FFI_Yajl::FFI::Parser)
      json = '{"a":[1,2.5,"x",null,true],"b":{"c":"d"}}'
      doc = { "b" => [1, 2.5, "y", nil], "c" => { "d" => true } }
    RUBY
    workloads: [
      ["`FFI_Yajl::Parser.parse` (ffi backend, 11 values)", "FFI_Yajl::Parser.parse(json)", 30],
      ["`FFI_Yajl::Encoder.encode` (ffi backend, 8 values)", "FFI_Yajl::Encoder.encode(doc)", 100],
    ] },
  { name: "sys-filesystem", load: 'require "sys/filesystem"',
    workloads: [
      ['`Sys::Filesystem.stat("/")`', 'Sys::Filesystem.stat("/")', 400, false], # free blocks change
      ["`Sys::Filesystem.mounts` (getmntent loop)", "Sys::Filesystem.mounts.size", 30],
    ] },
  { name: "ruby-magic", load: 'require "magic"',
    setup: 'db = Magic::Database.new(:mime_type); pdf = "%PDF-1.4 hello"',
    workloads: [["`Magic::Database#buffer` (mime type)", "db.buffer(pdf)", 40]] },
  { name: "ethon", load: 'require "ethon"',
    setup: <<~RUBY,
      require "tmpdir"
      file = File.join(Dir.mktmpdir("real_gems_ethon"), "body.txt")
      File.write(file, "hello from file")
      file_url = "file://" + file
      easy = Ethon::Easy.new
      params = { a: 1, b: "x y" }
      headers = { "X-A" => "1" }
    RUBY
    workloads: [
      ["`Ethon::Easy#http_request` (GET, params + headers; no transfer)",
       'easy.reset; easy.http_request("http://example.com/x", :get, params: params, headers: headers); easy.url', 40],
      ["`Ethon::Easy#perform` of a file:// URL", "easy.reset; easy.url = file_url; easy.perform; easy.response_body", 50],
    ] },
  { name: "rb-inotify", load: 'require "rb-inotify"',
    setup: <<~RUBY,
      require "tmpdir"
      watched = File.join(Dir.mktmpdir("real_gems_inotify"), "f")
      File.write(watched, "x")
      notifier = INotify::Notifier.new
      notifier.watch(File.dirname(watched), :attrib) {}
    RUBY
    workloads: [["touch + `INotify::Notifier#read_events` + `Event#flags`",
                 "File.utime(0, 0, watched); notifier.read_events.map(&:flags)", 40]] },
  { name: "ffi-libarchive", load: 'require "ffi-libarchive"',
    setup: <<~RUBY,
      write_tar = lambda do
        out = +""
        Archive.write_open_memory(out, Archive::COMPRESSION_NONE, Archive::FORMAT_TAR) do |ar|
          ar.add_entry { |e| e.pathname = "hello.txt"; e.mode = 0o644; e.filetype = Archive::Entry::FILE; "hello" }
        end
        out
      end
      read_tar = lambda do |tar|
        r = []
        Archive.read_open_memory(tar) { |ar| ar.each_entry { |e| r << [e.pathname, e.size, ar.read_data] } }
        r
      end
      tar = write_tar.call
    RUBY
    workloads: [
      ["`Archive.write_open_memory` + `add_entry` (tar, 1 file)", "write_tar.call.bytesize", 100],
      ["`Archive.read_open_memory` + `each_entry` + `read_data`", "read_tar.call(tar)", 40],
    ] },
  { name: "ffi-rzmq", load: 'require "ffi-rzmq"',
    setup: <<~RUBY,
      ctx = ZMQ::Context.new
      zout = ctx.socket(ZMQ::PAIR); zin = ctx.socket(ZMQ::PAIR)
      zout.bind("inproc://bench"); zin.connect("inproc://bench")
      zbuf = +""
      # Closed before the finalizers run: on Ruby 3.4 the context's
      # finalizer (zmq_ctx_term) can run while a socket is open and then
      # blocks for ever, under either gem.
      at_exit { zout.close; zin.close; ctx.terminate }
    RUBY
    workloads: [["`ZMQ::Socket#send_string` + `#recv_string` (inproc)",
                 'zout.send_string("hello zmq"); zin.recv_string(zbuf); zbuf', 300]] },
  { name: "ffi-bit-masks", load: 'require "ffi/bit_masks"',
    setup: <<~RUBY,
      BitLib = Module.new do
        extend FFI::Library
        extend FFI::BitMasks
        bit_mask :flags, { read: 0x1, write: 0x2, exec: 0x4 }
        ffi_lib FFI::Library::LIBC
        attach_function :abs, [:flags], :flags
      end
      flags_in = { read: true, exec: true }
    RUBY
    workloads: [["`abs(flags)` through a `bit_mask` type (Hash in and out)", "BitLib.abs(flags_in)", 1000]] },
  { name: "gir_ffi", load: 'require "gir_ffi"; GirFFI.setup :GLib',
    workloads: [
      ["`GLib::List.from(:gint32, [1, 2, 3]).to_a`", "GLib::List.from(:gint32, [1, 2, 3]).to_a", 100],
      ['`GLib::HashTable.from([:utf8, :gint32], {"a" => 1}).to_hash`',
       'GLib::HashTable.from([:utf8, :gint32], { "a" => 1 }).to_hash', 80],
    ] },
  { name: "ruby-vips", load: 'require "vips"',
    setup: "vips_image = Vips::Image.black(4, 4) + [1]",
    workloads: [["`Vips::Image#max(x: true, y: true)` of a 4×4 image (GValues in and out)",
                 "vips_image.max(x: true, y: true)", 60]] },
  { name: "sassc", load: 'require "sassc"',
    setup: 'scss = "$c: red;\n.a { .b { color: $c; } }"',
    workloads: [["`SassC::Engine#render` (3-line SCSS)", "SassC::Engine.new(scss, style: :compressed).render", 6]] },
].freeze

# ---------------------------------------------------------------------------
# Child: `real_gems.rb --child (time|icount|calls) GEM`, under one backend.
# ---------------------------------------------------------------------------

if ARGV[0] == "--child"
  require_relative "side_by_side_child"
  include SideBySideChild # rubocop:disable Style/MixinUsage
  mode, gem_name = ARGV[1], ARGV[2]
  gem = GEMS.find { |g| g[:name] == gem_name }
  eval(gem[:load], TOPLEVEL_BINDING, "(load #{gem_name})") if gem # rubocop:disable Security/Eval
  loaded_cpu = cpu_now - $bench_first_r_cpu # rubocop:disable Style/GlobalVars
  if defined?(FjBenchCext) # under callgrind: loaded by bench/callgrind_start.rb
    ENV["BENCH_INSTR_AFTER_LOAD"] ? FjBenchCext.callgrind_start : FjBenchCext.callgrind_dump("load")
  end
  result("load", loaded_cpu)
  exit 0 if gem.nil? || mode == "load"

  backend = defined?(FiddleJit) ? "fiddle_jit" : "ffi"
  abort "real_gems: expected #{ENV["REAL_GEMS_SIDE"]}, got #{backend}" unless backend == ENV["REAL_GEMS_SIDE"]
  eval(gem[:setup], TOPLEVEL_BINDING, "(setup #{gem_name})") if gem[:setup] # rubocop:disable Security/Eval
  scale = Float(ENV.fetch("REAL_GEMS_ICOUNT", "1"))
  icount("empty", "nil", 1000) if mode == "icount"
  gem[:workloads].each_with_index do |(_, op, n, check), i|
    n = [(n * scale).round, 1].max
    case mode
    when "icount" then icount("w#{i}", op, n)
    when "calls" then calls("w#{i}", op, n)
    else
      value = eval(op, TOPLEVEL_BINDING) # rubocop:disable Security/Eval
      shown = check == false ? "-" : value.inspect.gsub(/0x\h+/, "0x")[0, 200].gsub(/\s/, " ")
      result("ops", "w#{i}", cpu_ops(op, Float(ENV.fetch("REAL_GEMS_TIME"))), shown)
    end
  end
  exit 0
end

# ---------------------------------------------------------------------------
# Parent
# ---------------------------------------------------------------------------

require_relative "side_by_side"
include SideBySide # rubocop:disable Style/MixinUsage

quick = ENV["REAL_GEMS_QUICK"] == "1"
ROUNDS = Integer(ENV.fetch("REAL_GEMS_ROUNDS", quick ? "3" : "5"))
TIME = ENV.fetch("REAL_GEMS_TIME", quick ? "0.1" : "0.25")
ICOUNT = ENV.fetch("REAL_GEMS_ICOUNT", quick ? "0.25" : "1")
JOBS = Integer(ENV.fetch("REAL_GEMS_JOBS", "2"))
LOAD_ICOUNT = ENV.fetch("REAL_GEMS_LOAD_ICOUNT", quick ? "0" : "1") != "0"
LOAD_SAMPLES = Integer(ENV.fetch("REAL_GEMS_LOAD_SAMPLES", quick ? "1" : "3"))
LAYOUTS = Integer(ENV.fetch("REAL_GEMS_LAYOUTS", quick ? "1" : "3"))
LOAD_PHASES = Integer(ENV.fetch("REAL_GEMS_LOAD_PHASES", quick ? "1" : "3"))
# Load sample j of n allocates j * GC_PHASE_RANGE / n objects before its
# first `-r` (bench/load_start.rb). Ruby collects every few thousand
# allocations at that point of a process, so the n samples' collections fall
# at points spread over about three collection intervals of the load: where
# a gem's `require` starts relative to the collector's schedule (at boot, or
# after whatever an application loaded first) is arbitrary, and a load's
# figure moves with it by several percent either way. (Only load samples: a
# workload's count, with GC off, moves with the heap's layout instead, see
# LAYOUTS.)
GC_PHASE_RANGE = 12_000
gc_phase = lambda do |j, n|
  objects = j * GC_PHASE_RANGE / n
  objects.zero? ? {} : { "BENCH_GC_PHASE" => objects.to_s }
end
only = ENV["REAL_GEMS_ONLY"]&.split(",")
check_fiddle_jit_built!
started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
log = ->(msg) { warn "[real_gems] #{msg}" }

gems = GEMS.select { |g| only.nil? || only.include?(g[:name]) }
# A gem (or its C library) that does not load under the ffi gem is left out.
gems = gems.select do |g|
  ok = system(g.fetch(:env, {}), RbConfig.ruby, "-e", g[:load], out: File::NULL, err: File::NULL)
  log.call("#{g[:name]}: does not load under the ffi gem, skipped") unless ok
  ok
end
baseline = { name: "baseline", workloads: [] }
# (Under callgrind: +instructions+, or mode "icount".)
child = lambda do |side, g, mode, extra_env = {}, instructions: false|
  env = { "REAL_GEMS_SIDE" => side, "REAL_GEMS_TIME" => TIME, "REAL_GEMS_ICOUNT" => ICOUNT }
  env["BENCH_INSTR_AFTER_LOAD"] = "1" unless LOAD_ICOUNT
  env.merge!(g.fetch(:env, {}), extra_env)
  args = ["--child", mode, g[:name]]
  # The baseline process loads nothing: no shim either.
  run_side = g.equal?(baseline) ? "ffi" : side
  if mode == "icount" || instructions
    layout = env.fetch("REAL_GEMS_LAYOUT", "").size / 64
    tag = "real_gems-#{g[:name]}#{"-gc_off" if env["BENCH_GC_OFF"]}#{"-layout#{layout}" if layout.positive?}" \
          "#{"-phase#{env["BENCH_GC_PHASE"]}" if env["BENCH_GC_PHASE"]}"
    callgrind(run_side, __FILE__, args, env: env, tag: tag)
  else
    [nil, run(run_side, __FILE__, args, env: env)]
  end
end

# CPU time: alternated rounds.
ops = Hash.new { |h, k| h[k] = [] }       # [gem, side, wi] => [ops/s per round]
load_cpu = Hash.new { |h, k| h[k] = [] }  # [gem, side] => [seconds per round]
shown = {}                                # [gem, side, wi] => result inspect
log.call("CPU time: #{ROUNDS} rounds × #{gems.size} gems × 2 sides, #{TIME} s per workload")
ROUNDS.times do |round|
  sides = round.even? ? %w[ffi fiddle_jit] : %w[fiddle_jit ffi]
  # Sample k of round r is sample r + k * ROUNDS of all: each round's spread
  # over the whole range.
  load_sample = lambda do |side, g, k|
    env = gc_phase[round + (k * ROUNDS), ROUNDS * LOAD_SAMPLES]
    Float(child.call(side, g, "load", env)[1].assoc("load")[1])
  end
  LOAD_SAMPLES.times { |k| load_cpu[["baseline", "ffi"]] << load_sample.call("ffi", baseline, k) }
  gems.each do |g|
    sides.each do |side|
      _, lines = child.call(side, g, "time")
      lines.each do |kind, *rest|
        case kind
        when "load" then nil # (a load sample at phase 0 of every round: the load-only processes below)
        when "ops"
          ops[[g[:name], side, rest[0]]] << Float(rest[1])
          shown[[g[:name], side, rest[0]]] ||= rest[2]
        end
      end
    end
    # Load-only processes, alternated the same way (a load is short: one
    # sample per round would leave the median to the noise).
    LOAD_SAMPLES.times { |k| sides.each { |side| load_cpu[[g[:name], side]] << load_sample.call(side, g, k) } }
  end
  log.call("round #{round + 1}/#{ROUNDS} done (#{(Process.clock_gettime(Process::CLOCK_MONOTONIC) - started).round} s)")
end

# Instructions: one callgrind process per gem and side, REAL_GEMS_JOBS at a time.
icount = {}   # [gem, side, wi] => instructions per op
allocs = {}   # [gem, side, wi] => objects allocated per op
load_ins = Hash.new { |h, k| h[k] = [] } # [gem, side] => instructions from the first -r to loaded, per layout
load_ins_gc_off = {} # the same, with GC disabled from the first -r
if Float(ICOUNT).positive?
  valgrind!
  cext_path # build it once, before the threads
  # [gem, side, kind, k]: the workload processes (:workload, layout k), and (LOAD_ICOUNT)
  # load-only ones per gem and side: with GC disabled (:gc_off), whose count does not depend
  # on where collections fall, and at GC phases 1...LOAD_PHASES (:phase; the first layout's
  # workload process is phase 0). The load count is the median of the phases'.
  jobs = gems.product(%w[ffi fiddle_jit], [:workload], (0...LAYOUTS).to_a)
  if LOAD_ICOUNT
    jobs += [[baseline, "ffi", :workload, 0], [baseline, "ffi", :gc_off, 0]] + gems.product(%w[ffi fiddle_jit], [:gc_off], [0])
    jobs += gems.product(%w[ffi fiddle_jit], [:phase], (1...LOAD_PHASES).to_a)
  end
  log.call("callgrind: #{jobs.size} processes, #{JOBS} at a time (REAL_GEMS_ICOUNT=#{ICOUNT})")
  queue = Queue.new
  jobs.each { |j| queue << j }
  done = Queue.new
  JOBS.times.map do
    Thread.new do
      while (job = (queue.pop(true) rescue nil))
        g, side, kind, k = job
        done << [*job, *case kind
                        when :workload then child.call(side, g, "icount", { "REAL_GEMS_LAYOUT" => "x" * (64 * k) })
                        when :gc_off then child.call(side, g, "load", { "BENCH_GC_OFF" => "1" }, instructions: true)
                        else child.call(side, g, "load", gc_phase[k, LOAD_PHASES], instructions: true)
                        end]
      end
    end
  end.each(&:join)
  per_layout = Hash.new { |h, k| h[k] = [] } # [gem, side, wi] => per op, one per layout
  until done.empty?
    g, side, kind, k, dumps, lines = done.pop
    if LOAD_ICOUNT && (kind != :workload || k.zero?)
      kind == :gc_off ? load_ins_gc_off[[g[:name], side]] = dumps["load"] : load_ins[[g[:name], side]] << dumps["load"]
    end
    next unless kind == :workload
    n = lines.select { |k, *| k == "icount" }.to_h { |_, name, count, objects| [name, [Integer(count), Integer(objects)]] }
    next if g[:workloads].empty?

    empty = dumps.fetch("empty").fdiv(n.fetch("empty")[0])
    g[:workloads].each_index do |i|
      count, objects = n.fetch("w#{i}")
      per_layout[[g[:name], side, "w#{i}"]] << dumps.fetch("w#{i}").fdiv(count) - empty
      allocs[[g[:name], side, "w#{i}"]] = objects.fdiv(count)
    end
  end
  per_layout.each { |key, counts| icount[key] = median(counts) }
  log.call("callgrind done (#{(Process.clock_gettime(Process::CLOCK_MONOTONIC) - started).round} s)")
end

# Method calls per op (TracePoint), one more process per gem and side.
calls = {} # [gem, side, wi] => [calls per op, "top methods"]
calls_scale = Float(ICOUNT).positive? ? ICOUNT : "0.25"
gems.product(%w[ffi fiddle_jit]).each do |g, side|
  _, lines = child.call(side, g, "calls", { "REAL_GEMS_ICOUNT" => calls_scale })
  lines.each { |kind, name, per_op, top| calls[[g[:name], side, name]] = [Float(per_op), top] if kind == "calls" }
end
log.call("method calls done (#{(Process.clock_gettime(Process::CLOCK_MONOTONIC) - started).round} s)")

# ---------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------

fmt_ops = lambda do |x|
  if x >= 1e6 then format("%.2fM", x / 1e6)
  elsif x >= 1e3 then format("%.1fk", x / 1e3)
  else format("%.0f", x)
  end
end
ratio = ->(x) { format("%.2f×", x) }
cpu_ratios = []
ins_ratios = []
mismatches = []
rows = gems.flat_map do |g|
  g[:workloads].each_with_index.map do |(label, *), i|
    key = ->(side) { [g[:name], side, "w#{i}"] }
    f = median(ops[key["ffi"]])
    j = median(ops[key["fiddle_jit"]])
    cpu_ratios << j / f
    mismatches << "#{g[:name]}: #{label}" if shown[key["ffi"]] != shown[key["fiddle_jit"]]
    row = [g[:name], label, fmt_ops[f], fmt_ops[j], ratio[j / f]]
    if icount.empty?
      row
    else
      fi = icount[key["ffi"]]
      ji = icount[key["fiddle_jit"]]
      ins_ratios << fi / ji
      row + [commas(fi), commas(ji), ratio[fi / ji], "#{format("%.3g", allocs[key["ffi"]])} / #{format("%.3g", allocs[key["fiddle_jit"]])}"]
    end + ["#{calls[key["ffi"]][0].round} / #{calls[key["fiddle_jit"]][0].round}"]
  end
end
header = ["gem", "workload", "ffi ops/s", "fiddle_jit ops/s", "fiddle_jit/ffi (CPU)"]
header += ["ffi instr/op", "fiddle_jit instr/op", "ffi÷fiddle_jit (instr)", "objects/op ffi / fj"] unless icount.empty?
header << "calls/op ffi / fj"
geo = ["**geometric mean**", "", "", "", "**#{ratio[geomean(cpu_ratios)]}**"]
geo += ["", "", "**#{ratio[geomean(ins_ratios)]}**", ""] unless icount.empty?
geo << ""
workload_table = table(header, rows + [geo], %w[:-- :--] + Array.new(header.size - 2, "---:"))

# Where fiddle_jit executes more instructions (by over 2 %; without
# callgrind: runs slower): the methods called most per op.
losing = gems.flat_map do |g|
  g[:workloads].each_with_index.filter_map do |(label, *), i|
    key = ->(side) { [g[:name], side, "w#{i}"] }
    loses = if icount.empty? then median(ops[key["fiddle_jit"]]) < median(ops[key["ffi"]])
            else icount[key["fiddle_jit"]] > icount[key["ffi"]] * 1.02
            end
    next unless loses

    <<~MD
      - **#{g[:name]}: #{label}**
        - ffi (#{calls[key["ffi"]][0].round} calls/op): #{calls[key["ffi"]][1]}
        - fiddle_jit (#{calls[key["fiddle_jit"]][0].round} calls/op): #{calls[key["fiddle_jit"]][1]}
    MD
  end
end

base_cpu = median(load_cpu[["baseline", "ffi"]])
load_ins = load_ins.transform_values { |counts| median(counts) }
base_ins = load_ins[["baseline", "ffi"]]
base_ins_gc_off = load_ins_gc_off[["baseline", "ffi"]]
load_rows = gems.map do |g|
  f = median(load_cpu[[g[:name], "ffi"]]) - base_cpu
  j = median(load_cpu[[g[:name], "fiddle_jit"]]) - base_cpu
  row = [g[:name], "`#{g[:load]}`", format("%.1f", f * 1e3), format("%.1f", j * 1e3), ratio[f / j]]
  next row if load_ins.empty?

  [[load_ins, base_ins], [load_ins_gc_off, base_ins_gc_off]].reduce(row) do |r, (counts, base)|
    fi = (counts[[g[:name], "ffi"]] - base).to_f
    ji = (counts[[g[:name], "fiddle_jit"]] - base).to_f
    r + [format("%.1f", fi / 1e6), format("%.1f", ji / 1e6), ratio[fi / ji]]
  end
end
load_header = ["gem", "load", "ffi CPU ms", "fiddle_jit CPU ms", "ffi÷fiddle_jit (CPU)"]
unless load_ins.empty?
  load_header += ["ffi M instr", "fiddle_jit M instr", "ffi÷fiddle_jit (instr)",
                  "ffi M instr, GC off", "fiddle_jit M instr, GC off", "ffi÷fiddle_jit (instr, GC off)"]
end
load_table = table(load_header, load_rows, %w[:-- :--] + Array.new(load_header.size - 2, "---:"))

elapsed = (Process.clock_gettime(Process::CLOCK_MONOTONIC) - started).round
report = <<~MD
  ## Real gems: workloads

  - #{machine}
  - each gem runs unmodified in its own processes: `ruby` (ffi gem) and `ruby -I lib -rfiddle_jit/ffi_shim` (fiddle_jit)
  - CPU: median of #{ROUNDS} alternated rounds (ffi, fiddle_jit / fiddle_jit, ffi, …), #{TIME} s of process CPU time per workload per process; ops/s > 1 ratio = fiddle_jit faster
  #{icount.empty? ? "- callgrind: skipped (REAL_GEMS_ICOUNT=0)" : "- instr/op: callgrind, N iterations after warm-up (REAL_GEMS_ICOUNT=#{ICOUNT}) with GC disabled, minus the empty loop, the median of #{LAYOUTS} process#{LAYOUTS == 1 ? "" : "es"} per side with environments 64 bytes apart (memory layout moves a C library's count by up to ±0.5%); includes the C library's own work; ÷ > 1 = fiddle_jit executes fewer; objects/op = Ruby objects allocated per op (GC.stat), the GC cost the CPU column pays"}
  - calls/op: Ruby and C method calls per op (TracePoint :call/:c_call, a separate process, the loop's own calls subtracted)
  #{mismatches.empty? ? "- every workload returned the same value on both sides" : "- **results differ between the sides:** #{mismatches.join("; ")}"}

  #{workload_table}

  ### Where fiddle_jit executes more instructions: the most frequent Ruby/C method calls per op (TracePoint :call/:c_call)

  #{losing.empty? ? "(none)" : losing.join}
  ## Real gems: load cost

  From the first `-r`, after Ruby's own boot, to the end of the load line, minus a process that loads nothing (#{format("%.1f", base_cpu * 1e3)} ms CPU#{base_ins ? ", #{format("%.1f", base_ins / 1e6)} M instructions" : ""}); fiddle_jit's own loading (the shim) is inside its column as the ffi gem's is inside its. CPU: median of #{ROUNDS} rounds × #{LOAD_SAMPLES} processes per side. Instructions: median of #{LOAD_PHASES} processes per side. A collection marks the whole heap, so one more or fewer, or one landing later in a larger heap, moves a load's figure by a few percent either way: each CPU and callgrind load process first allocates another number of objects, evenly spread over 0–#{GC_PHASE_RANGE} (before the first `-r`, not measured), so their collections fall at other points of the load, over about three collection intervals. GC off: one more process per side with GC disabled from the first `-r` (each side's own work, apart from collections). ÷ > 1 = fiddle_jit loads faster. In the `ffi` row the ffi gem also pays rubygems finding and activating the ffi gem, which a gem depending on it has done already; the shim is found on `-I lib`.

  #{load_table}

  (run time: #{elapsed} s)
MD
puts report
File.write(File.join(__dir__, "results-real-gems.md"),
           "# Real-gem benchmark results\n\nReproduce with `rake bench:real_gems` (or `ruby bench/real_gems.rb`); see bench/README.md.\n\n#{report}")
