# frozen_string_literal: true

# Shared by bench/real_gems.rb and bench/primitives.rb: run one script in
# separate processes under the ffi gem and under fiddle_jit's drop-in
# (`ruby -I lib -rfiddle_jit/ffi_shim`, as a user would run it), either
# plainly (CPU time) or under valgrind's callgrind (instructions, split
# into named sections by client requests from the bench C extension).
#
# Only the parent process loads this file; the children load nothing but
# the code they measure (and, under callgrind, bench/cext).

require "etc"
require "open3"
require "rbconfig"
require "tmpdir"
require "fileutils"

module SideBySide
  ROOT = File.expand_path("..", __dir__)
  LIB = File.join(ROOT, "lib")
  # Flags that select the backend. The ffi side is plain `ruby`: every
  # `require "ffi"` loads the ffi gem.
  SIDES = {
    "ffi" => [],
    "fiddle_jit" => ["-I", LIB, "-rfiddle_jit/ffi_shim"],
  }.freeze
  # Extra ruby flags for both sides (e.g. "--yjit").
  RUBYOPT = ENV.fetch("BENCH_RUBYOPT", "").split.freeze

  module_function

  def check_fiddle_jit_built!
    so = File.join(LIB, "fiddle_jit", RUBY_VERSION[/\A\d+\.\d+/], "fiddle_jit.#{RbConfig::CONFIG["DLEXT"]}")
    abort "bench: #{so} is missing: build fiddle_jit first (rake compile)" unless File.exist?(so)
  end

  # The bench C extension (CALLGRIND_ZERO_STATS / CALLGRIND_DUMP_STATS_AT as
  # Ruby methods), built by bench/setup.rb when stale.
  def cext_path
    @cext_path ||= begin
      ENV["BENCH_QUIET"] = "1"
      # setup.rb creates bench/build/<arch-ruby> with Dir.mkdir (no parents).
      FileUtils.mkdir_p(File.join(__dir__, "build"))
      require_relative "setup"
      CEXT_SO
    end
  end

  def valgrind!
    system("valgrind --version", out: File::NULL) or abort "bench: valgrind is required (apt-get install valgrind)"
  end

  # Runs `ruby -r bench/load_start.rb <side flags> script *args`; returns the lines of stdout that
  # start with "RESULT\t", split on tabs (without the tag).
  def run(side, script, args, env: {})
    cmd = [RbConfig.ruby, *RUBYOPT, "-r#{File.join(__dir__, "load_start.rb")}", *SIDES.fetch(side), script, *args]
    out, err, status = Open3.capture3(env, *cmd)
    abort "bench: #{side} child failed: #{cmd.join(" ")}\n#{err}#{out}" unless status.success?
    results(out)
  end

  def results(out)
    out.lines.grep(/\ARESULT\t/).map { |l| l.chomp.split("\t").drop(1) }
  end

  # Runs the child under callgrind; returns { dump name => instructions }
  # for every CALLGRIND_DUMP_STATS_AT(name) it made (FjBenchCext.callgrind_dump),
  # and the child's RESULT lines. Ruby's boot runs uninstrumented; the first
  # dump counts from bench/callgrind_start.rb, the first `-r`. With
  # BENCH_CALLGRIND_DIR set, the callgrind.out files are kept there for
  # callgrind_annotate (one subdirectory per tag).
  def callgrind(side, script, args, env: {}, tag: nil)
    keep = ENV["BENCH_CALLGRIND_DIR"]
    dir = keep ? File.join(File.expand_path(keep), [tag, side].compact.join("-")) : Dir.mktmpdir("fiddle_jit-callgrind")
    FileUtils.rm_rf(dir) if keep
    FileUtils.mkdir_p(dir)
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=#{File.join(dir, "callgrind.out")}",
           "--instr-atstart=no", *(keep ? ["--compress-strings=no", "--compress-pos=no"] : []), RbConfig.ruby, *RUBYOPT, "-r#{File.join(__dir__, "callgrind_start.rb")}",
           *SIDES.fetch(side), script, *args]
    out, err, status = Open3.capture3(env.merge("BENCH_CEXT" => cext_path), *cmd)
    abort "bench: #{side} child failed under callgrind: #{cmd.join(" ")}\n#{err[-4000..] || err}#{out}" unless status.success?
    dumps = Dir[File.join(dir, "callgrind.out.*")].filter_map do |file|
      text = File.read(file, 4096)
      name = text[/^desc: Trigger: Client Request: (.*)$/, 1] or next
      [name, Integer(File.read(file)[/^(?:summary|totals): (\d+)/, 1])]
    end.to_h
    [dumps, results(out)]
  ensure
    FileUtils.rm_rf(dir) if dir && !keep
  end

  def median(xs)
    s = xs.sort
    s.size.odd? ? s[s.size / 2] : (s[s.size / 2 - 1] + s[s.size / 2]) / 2.0
  end

  def geomean(xs)
    Math.exp(xs.sum { |x| Math.log(x) } / xs.size)
  end

  def table(header, rows, align)
    [header, align, *rows].map { |r| "| #{r.join(" | ")} |" }.join("\n")
  end

  def machine
    cpu = (File.read("/proc/cpuinfo")[/model name\s*:\s*(.*)/, 1] rescue nil) || "unknown CPU"
    commit = `git -C #{ROOT} rev-parse --short HEAD 2>/dev/null`.strip
    dirty = `git -C #{ROOT} status --porcelain -- lib src 2>/dev/null`.strip.empty? ? "" : " (+ uncommitted lib/src changes)"
    ffi = `#{RbConfig.ruby} -e 'require "ffi"; print FFI::VERSION'`.strip
    "#{Time.now.utc.strftime("%Y-%m-%d")}; #{cpu} (#{Etc.nprocessors} cores); #{RUBY_DESCRIPTION}; " \
      "ffi gem #{ffi}; fiddle_jit #{commit}#{dirty}#{RUBYOPT.empty? ? "" : "; ruby flags #{RUBYOPT.join(" ")}"}"
  end

  # "1234567" → "1,234,567"
  def commas(n)
    n.round.to_s.reverse.scan(/\d{1,3}/).join(",").reverse
  end
end
