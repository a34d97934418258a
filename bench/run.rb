# frozen_string_literal: true

# Side-by-side benchmark: fiddle_jit vs the ffi gem vs Fiddle vs a hand-written
# C extension, plus an empty C method as the dispatch floor.
#
#   ruby bench/run.rb            # interpreter
#   ruby --yjit bench/run.rb     # YJIT
#
# Environment: see bench/setup.rb and bench/README.md.

require_relative "setup"

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

# The floor is measured inside every row's run, right after fiddle_jit, so
# each fiddle_jit/floor ratio compares two numbers taken under the same
# machine load (a once-per-run floor drifted by ±15 % on shared machines).
floor_label = "floor #{FLOOR[:label]}"
floor_loop = make_loop(FLOOR[:recv], FLOOR[:setup], FLOOR[:call])

ips = {} # [function label, contender] => i/s
row_floor = {} # function label => floor i/s in that row's run
IPS_FUNCTIONS = FUNCTIONS.reject { |f| f[:icount_only] }
IPS_FUNCTIONS.each do |func|
  items = CONTENDERS.to_h do |name, (recv, template)|
    ["#{name} #{func[:label]}", make_loop(recv_code(recv, func), setup_code(func, name), call_code(template, func, name))]
  end
  first, *rest = items.to_a
  res = measure([first, [floor_label, floor_loop], *rest].to_h)
  CONTENDERS.each_key { |name| ips[[func[:label], name]] = res.fetch("#{name} #{func[:label]}") }
  row_floor[func[:label]] = res.fetch(floor_label)
end
floor_ips = row_floor.values.sort[row_floor.size / 2]

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
  - BENCH_TIME=#{BENCH_TIME}s BENCH_WARMUP=#{BENCH_WARMUP}s; floor = C ext `#{FLOOR[:label]}` (empty arity-1 C method), measured in every row's run (median #{fmt_ips(floor_ips)} i/s); fiddle_jit/floor uses the same row's floor
  - cells are iterations/second (higher is better); ratios are i/s ÷ i/s (> 1 means fiddle_jit is faster)
MD

cols = ["function", "fiddle_jit", "ffi", "Fiddle", "C ext", "fiddle_jit/ffi", "fiddle_jit/C ext", "fiddle_jit/floor"]
rows = IPS_FUNCTIONS.map do |func|
  v = ->(name) { ips[[func[:label], name]] }
  [
    "`#{func[:label]}`",
    fmt_ips(v["fiddle_jit"]), fmt_ips(v["ffi"]), fmt_ips(v["Fiddle"]), fmt_ips(v["C ext"]),
    fmt_ratio(v["fiddle_jit"], v["ffi"]), fmt_ratio(v["fiddle_jit"], v["C ext"]), fmt_ratio(v["fiddle_jit"], row_floor[func[:label]]),
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
