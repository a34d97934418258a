# frozen_string_literal: true

# Shared by bench/run.rb (benchmark-ips) and bench/icount.rb (callgrind):
# builds the fixture library and the C extension, defines every contender
# and function, and checks that all contenders agree before anything is
# timed.
#
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
require "fileutils"
require "open3"
require "time"
require "etc"
require "benchmark/ips"
require "ffi"
require "fiddle"

BENCH_DIR = __dir__
ROOT = File.expand_path("..", BENCH_DIR)
# One directory per architecture and Ruby (chroots share this checkout).
BUILD_DIR = File.join(BENCH_DIR, "build", "#{RbConfig::CONFIG["arch"]}-ruby#{RUBY_VERSION[/\A\d+\.\d+/]}")
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
  warn "[bench] #{msg}" unless ENV["BENCH_QUIET"]
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
  FileUtils.mkdir_p(BUILD_DIR)

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
  attach_function :ptr_first, [:pointer], :long
  attach_function :struct_first, :ptr_first, [:pointer], :long
  attach_function :str_ret, [], :string
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
        attach_function :ptr_first, [:pointer], :long
        attach_function :struct_first, :ptr_first, [:pointer], :long
        attach_function :str_ret, [], :string
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
  ptr_first: Fiddle::Function.new(FIDDLE_FIXTURE["ptr_first"], [Fiddle::TYPE_VOIDP], Fiddle::TYPE_LONG),
  struct_first: Fiddle::Function.new(FIDDLE_FIXTURE["ptr_first"], [Fiddle::TYPE_VOIDP], Fiddle::TYPE_LONG),
  str_ret: Fiddle::Function.new(FIDDLE_FIXTURE["str_ret"], [], Fiddle::TYPE_VOIDP),
}.freeze

# The pointer argument for ptr_first, each contender's native way: 42 in a
# long-sized buffer.
PTR_ARG = {}
PTR_ARG["ffi"] = FFI::MemoryPointer.new(:long).tap { |m| m.write_long(42) }
PTR_ARG["Fiddle"] = Fiddle::Pointer.new(PTR_ARG["ffi"].address)
PTR_ARG["C ext"] = FjBenchCext.buf(42)
PTR_ARG["fiddle_jit"] = FiddleJit::Pointer.new(PTR_ARG["ffi"].address) unless SKIP_FIDDLE_JIT

# The struct_first argument: a Struct { long v } holding 42 for fiddle_jit
# and ffi (a :pointer parameter; the struct's memory is passed); Fiddle and
# the C extension, which have no such Struct, pass their PTR_ARG.
STRUCT_ARG = {
  "ffi" => Class.new(FFI::Struct) { layout :v, :long }.new.tap { |s| s[:v] = 42 },
  "Fiddle" => PTR_ARG["Fiddle"],
  "C ext" => PTR_ARG["C ext"],
}
STRUCT_ARG["fiddle_jit"] = Class.new(FiddleJit::Struct) { layout :v, :long }.new.tap { |s| s[:v] = 42 } unless SKIP_FIDDLE_JIT
FjBenchCext.singleton_class.alias_method(:struct_first, :ptr_first)

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
  # Only in bench/icount.rb (instructions per call), to keep run.rb short:
  { fn: "ptr_first", label: "ptr_first(ptr)", setup: 'p = PTR_ARG["%<name>s"]', args: "p", expect: 42, icount_only: true },
  { fn: "struct_first", label: "ptr_first(struct)", setup: 'p = STRUCT_ARG["%<name>s"]', args: "p", expect: 42,
    icount_only: true },
  { fn: "str_ret", label: "str_ret()", setup: "", args: "", expect: "hello", icount_only: true,
    fiddle_result: "r.call.to_s" },
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

def call_code(template, func, name = nil)
  return func[:fiddle_result] if name == "Fiddle" && func[:fiddle_result]

  format(template, fn: func[:fn], args: func[:args])
end

def setup_code(func, name)
  format(func[:setup], name: name)
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
        make_once(recv_code(recv, func), setup_code(func, name), call_code(template, func, name)).call
      rescue StandardError => e
        abort "bench: sanity check: #{name} #{func[:label]} raised #{e.class}: #{e.message}"
      end
    [name, value]
  end
  next if results.values.all? { |v| v == func[:expect] && v.class == func[:expect].class }

  detail = results.map { |name, v| "#{name}=#{v.inspect} (#{v.class})" }.join(", ")
  abort "bench: sanity check failed for #{func[:label]}: expected #{func[:expect].inspect}; got #{detail}"
end
log "sanity check passed (#{CONTENDERS.keys.join(', ')} agree on all #{FUNCTIONS.size} functions)"

