# frozen_string_literal: true

# Side-by-side benchmark: fiddle_jit vs the ffi gem vs Fiddle vs a hand-written
# C extension, plus an empty C method as the dispatch floor.
#
#   ruby bench/run.rb            # interpreter
#   ruby --yjit bench/run.rb     # YJIT
#
# Environment:
#   BENCH_TIME=2              seconds measured per item (benchmark-ips :time)
#   BENCH_WARMUP=1            seconds of warmup per item (benchmark-ips :warmup)
#   BENCH_SKIP_FIDDLE_JIT=1   leave out the fiddle_jit column (extension not built)
#
# See bench/README.md.

require "rbconfig"
require "open3"
require "time"
require "etc"
require "benchmark/ips"
require "ffi"
require "fiddle"

BENCH_DIR = __dir__
ROOT = File.expand_path("..", BENCH_DIR)
BUILD_DIR = File.join(BENCH_DIR, "build")
FIXTURE_SRC = File.join(BENCH_DIR, "fixture", "bench_fixture.c")
FIXTURE_LIB = File.join(BUILD_DIR, "libfjbench.so")
CEXT_DIR = File.join(BENCH_DIR, "cext")
CEXT_SRCS = [File.join(CEXT_DIR, "fj_bench_cext.c"), File.join(CEXT_DIR, "extconf.rb")].freeze
CEXT_SO = File.join(BUILD_DIR, "fj_bench_cext.#{RbConfig::CONFIG['DLEXT']}")

def env_float(name, default)
  Float(ENV.fetch(name, default.to_s))
rescue ArgumentError
  abort "bench: #{name}=#{ENV[name].inspect} is not a number"
end

BENCH_TIME = env_float("BENCH_TIME", 2)
BENCH_WARMUP = env_float("BENCH_WARMUP", 1)
SKIP_FIDDLE_JIT = !["", "0", "false", "no"].include?(ENV.fetch("BENCH_SKIP_FIDDLE_JIT", "").strip.downcase)
YJIT = !!(defined?(RubyVM::YJIT) && RubyVM::YJIT.enabled?)

def log(msg)
  warn "[bench] #{msg}"
end

# ---------------------------------------------------------------------------
# Build the fixture library and the C extension (only when sources are newer)
# ---------------------------------------------------------------------------

def stale?(target, sources)
  !File.exist?(target) || sources.any? { |s| File.mtime(s) > File.mtime(target) }
end

def run_cmd!(*cmd)
  out, status = Open3.capture2e(*cmd)
  return if status.success?

  warn out
  abort "bench: command failed (#{status.exitstatus}): #{cmd.join(' ')} (in #{Dir.pwd})"
end

def build!
  Dir.mkdir(BUILD_DIR) unless Dir.exist?(BUILD_DIR)

  if stale?(FIXTURE_LIB, [FIXTURE_SRC])
    log "building #{FIXTURE_LIB}"
    run_cmd!(ENV.fetch("CC", "cc"), "-O2", "-shared", "-fPIC", "-o", FIXTURE_LIB, FIXTURE_SRC)
  end

  return unless stale?(CEXT_SO, CEXT_SRCS)

  log "building #{CEXT_SO}"
  Dir.chdir(BUILD_DIR) do
    run_cmd!(RbConfig.ruby, File.join(CEXT_DIR, "extconf.rb"))
    run_cmd!(ENV.fetch("MAKE", "make"))
  end
  # make may skip relinking if only extconf.rb changed; make the mtime check settle.
  File.utime(Time.now, Time.now, CEXT_SO) if File.exist?(CEXT_SO)
end

build!
require CEXT_SO

# ---------------------------------------------------------------------------
# Contenders
# ---------------------------------------------------------------------------

# ffi gem
module F
  extend FFI::Library
  ffi_lib "c"
  attach_function :strlen, [:string], :size_t
  attach_function :getpid, [], :int
  ffi_lib "m"
  attach_function :sin, [:double], :double
  ffi_lib FIXTURE_LIB
  attach_function :add, %i[int int], :int
  attach_function :sum6, %i[long long long long long long], :long
end

# fiddle_jit (same API as the ffi gem)
FIDDLE_JIT_VERSION =
  if SKIP_FIDDLE_JIT
    log "BENCH_SKIP_FIDDLE_JIT set: skipping the fiddle_jit column"
    nil
  else
    begin
      $LOAD_PATH.unshift File.expand_path("../lib", __dir__)
      require "fiddle_jit"
      if defined?(FFI::Library) && FiddleJit::Library.equal?(FFI::Library)
        abort "bench: FiddleJit::Library is FFI::Library -- fiddle_jit replaced the ffi gem, cannot compare"
      end

      module J
        extend FiddleJit::Library
        ffi_lib "c"
        attach_function :strlen, [:string], :size_t
        attach_function :getpid, [], :int
        ffi_lib "m"
        attach_function :sin, [:double], :double
        ffi_lib FIXTURE_LIB
        attach_function :add, %i[int int], :int
        attach_function :sum6, %i[long long long long long long], :long
      end
      defined?(FiddleJit::VERSION) ? FiddleJit::VERSION : "?"
    rescue ScriptError, StandardError => e
      where = e.is_a?(LoadError) ? "" : "\n  " + (e.backtrace || []).first(3).join("\n  ")
      abort "bench: fiddle_jit failed to load or attach (#{e.class}: #{e.message})#{where}\n" \
            "Build it first (`rake compile`), or run with BENCH_SKIP_FIDDLE_JIT=1 to leave out that column."
    end
  end

# Fiddle
FIDDLE_LIBM =
  begin
    Fiddle::Handle::DEFAULT["sin"] && Fiddle::Handle::DEFAULT
  rescue Fiddle::DLError
    Fiddle.dlopen("libm.so.6")
  end
FIDDLE_FIXTURE = Fiddle.dlopen(FIXTURE_LIB)
FIDDLE_FNS = {
  strlen: Fiddle::Function.new(Fiddle::Handle::DEFAULT["strlen"], [Fiddle::TYPE_VOIDP], Fiddle::TYPE_SIZE_T),
  add: Fiddle::Function.new(FIDDLE_FIXTURE["add"], [Fiddle::TYPE_INT] * 2, Fiddle::TYPE_INT),
  sin: Fiddle::Function.new(FIDDLE_LIBM["sin"], [Fiddle::TYPE_DOUBLE], Fiddle::TYPE_DOUBLE),
  sum6: Fiddle::Function.new(FIDDLE_FIXTURE["sum6"], [Fiddle::TYPE_LONG] * 6, Fiddle::TYPE_LONG),
  getpid: Fiddle::Function.new(Fiddle::Handle::DEFAULT["getpid"], [], Fiddle::TYPE_INT),
}.freeze

# name => [receiver expression, call template]; every loop body is `r.<call>(args)`.
CONTENDERS = {
  "fiddle_jit" => ["J", "r.%<fn>s(%<args>s)"],
  "ffi" => ["F", "r.%<fn>s(%<args>s)"],
  "Fiddle" => ["FIDDLE_FNS[:%<fn>s]", "r.call(%<args>s)"],
  "C ext" => ["FjBenchCext", "r.%<fn>s(%<args>s)"],
}.reject { |name, _| name == "fiddle_jit" && SKIP_FIDDLE_JIT }.freeze

FUNCTIONS = [
  { fn: "strlen", label: 'strlen("hello")', setup: 's = "hello"', args: "s", expect: 5 },
  { fn: "add", label: "add(1,2)", setup: "", args: "1, 2", expect: 3 },
  { fn: "sin", label: "sin(1.0)", setup: "x = 1.0", args: "x", expect: Math.sin(1.0) },
  { fn: "sum6", label: "sum6(1..6)", setup: "", args: "1, 2, 3, 4, 5, 6", expect: 21 },
  { fn: "getpid", label: "getpid()", setup: "", args: "", expect: Process.pid },
].freeze

FLOOR = { recv: "FjBenchCext", setup: 's = "hello"', call: "r.noop1(s)", label: 'noop1("hello")' }.freeze

# A benchmark-ips "times" lambda: locals set up once, then a bare while loop
# around exactly one call, so that every contender's loop has the same shape.
def make_loop(recv, setup, call)
  eval(<<~RUBY, TOPLEVEL_BINDING, "(bench loop: #{call})", 1) # rubocop:disable Security/Eval
    lambda do |times|
      r = #{recv}
      #{setup}
      i = 0
      while i < times
        #{call}
        i += 1
      end
      nil
    end
  RUBY
end

def make_once(recv, setup, call)
  eval(<<~RUBY, TOPLEVEL_BINDING, "(bench check: #{call})", 1) # rubocop:disable Security/Eval
    lambda do
      r = #{recv}
      #{setup}
      #{call}
    end
  RUBY
end

def call_code(template, func)
  format(template, fn: func[:fn], args: func[:args])
end

def recv_code(recv, func)
  format(recv, fn: func[:fn])
end

# ---------------------------------------------------------------------------
# Sanity check: every contender returns the same (expected) value
# ---------------------------------------------------------------------------

FUNCTIONS.each do |func|
  results = CONTENDERS.to_h do |name, (recv, template)|
    value =
      begin
        make_once(recv_code(recv, func), func[:setup], call_code(template, func)).call
      rescue StandardError => e
        abort "bench: sanity check: #{name} #{func[:label]} raised #{e.class}: #{e.message}"
      end
    [name, value]
  end
  next if results.values.all? { |v| v.eql?(func[:expect]) }

  detail = results.map { |name, v| "#{name}=#{v.inspect} (#{v.class})" }.join(", ")
  abort "bench: sanity check failed for #{func[:label]}: expected #{func[:expect].inspect}; got #{detail}"
end
log "sanity check passed (#{CONTENDERS.keys.join(', ')} agree on all #{FUNCTIONS.size} functions)"

# ---------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------

def measure(items)
  GC.start
  report = Benchmark.ips do |x|
    x.config(time: BENCH_TIME, warmup: BENCH_WARMUP)
    items.each { |label, loop| x.report(label, &loop) }
  end
  report.entries.to_h { |e| [e.label, e.ips] }
end

mode = YJIT ? "YJIT" : "interp"
log "mode=#{mode} BENCH_TIME=#{BENCH_TIME} BENCH_WARMUP=#{BENCH_WARMUP}"

floor_label = "floor #{FLOOR[:label]}"
floor_ips = measure(floor_label => make_loop(FLOOR[:recv], FLOOR[:setup], FLOOR[:call]))[floor_label]

ips = {} # [function label, contender] => i/s
FUNCTIONS.each do |func|
  items = CONTENDERS.to_h do |name, (recv, template)|
    ["#{name} #{func[:label]}", make_loop(recv_code(recv, func), func[:setup], call_code(template, func))]
  end
  res = measure(items)
  CONTENDERS.each_key { |name| ips[[func[:label], name]] = res.fetch("#{name} #{func[:label]}") }
end

# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------

def fmt_ips(v)
  return "—" if v.nil?

  if v >= 1e6 then format("%.2fM", v / 1e6)
  elsif v >= 1e3 then format("%.1fk", v / 1e3)
  else format("%.0f", v)
  end
end

def fmt_ratio(a, b)
  return "—" if a.nil? || b.nil? || b.zero?

  format("%.2f×", a / b)
end

cpu = File.foreach("/proc/cpuinfo").grep(/^model name/).first.to_s.split(":", 2)[1].to_s.strip
cpu = RbConfig::CONFIG["host_cpu"] if cpu.empty?

header = <<~MD
  ## fiddle_jit benchmark — #{mode}

  - ruby: `#{RUBY_DESCRIPTION}`
  - YJIT: #{YJIT ? 'on' : 'off'}
  - CPU: #{cpu} (#{Etc.nprocessors} cores)
  - date: #{Time.now.utc.iso8601}
  - versions: fiddle_jit #{FIDDLE_JIT_VERSION || '(skipped)'}, ffi #{FFI::VERSION}, fiddle #{Fiddle::VERSION}, benchmark-ips #{Benchmark::IPS::VERSION}
  - BENCH_TIME=#{BENCH_TIME}s BENCH_WARMUP=#{BENCH_WARMUP}s; floor = C ext `#{FLOOR[:label]}` (empty arity-1 C method) at #{fmt_ips(floor_ips)} i/s
  - cells are iterations/second (higher is better); ratios are i/s ÷ i/s (> 1 means fiddle_jit is faster)
MD

cols = ["function", "fiddle_jit", "ffi", "Fiddle", "C ext", "fiddle_jit/ffi", "fiddle_jit/C ext", "fiddle_jit/floor"]
rows = FUNCTIONS.map do |func|
  v = ->(name) { ips[[func[:label], name]] }
  [
    "`#{func[:label]}`",
    fmt_ips(v["fiddle_jit"]), fmt_ips(v["ffi"]), fmt_ips(v["Fiddle"]), fmt_ips(v["C ext"]),
    fmt_ratio(v["fiddle_jit"], v["ffi"]), fmt_ratio(v["fiddle_jit"], v["C ext"]), fmt_ratio(v["fiddle_jit"], floor_ips),
  ]
end
rows << ["`#{FLOOR[:label]}` (floor)", "—", "—", "—", fmt_ips(floor_ips), "—", "—", "—"]

widths = cols.each_index.map { |i| ([cols[i]] + rows.map { |r| r[i] }).map(&:length).max }
line = ->(cells) { "| " + cells.each_with_index.map { |c, i| i.zero? ? c.ljust(widths[i]) : c.rjust(widths[i]) }.join(" | ") + " |" }
sep = "|" + widths.each_with_index.map { |w, i| i.zero? ? ":#{'-' * (w + 1)}" : "#{'-' * (w + 1)}:" }.join("|") + "|"
table = ([line[cols], sep] + rows.map { |r| line[r] }).join("\n") + "\n"

output = "#{header}\n#{table}"
puts
puts output

results_path = File.join(BENCH_DIR, "results-#{YJIT ? 'yjit' : 'interp'}.md")
File.write(results_path, output)
log "wrote #{results_path}"
