# frozen_string_literal: true

# Instructions per call, counted with valgrind's callgrind: deterministic,
# so it can be compared across commits and is immune to machine load.
#
#   ruby bench/icount.rb          # table on stdout, also written to bench/RESULTS*.md (one per Ruby)
#
# One process runs under callgrind. For every (contender, function) it runs
# the same loop as bench/run.rb: a short warm-up, then CALLGRIND_ZERO_STATS,
# N iterations, CALLGRIND_DUMP_STATS (client requests made by the bench C
# extension). Instructions per call = dump total ÷ N − the empty loop's
# instructions per iteration. The floor is the C extension's empty arity-1
# method (`noop1`): Ruby's method dispatch alone.
#
# Besides bench/setup.rb's functions, `strlen` of two longer Strings: 40
# bytes (a heap String on Ruby 3.1, embedded in a larger slot from 3.2 on)
# and 1000 bytes (a heap String everywhere). The table also lists each
# fiddle_jit stub's size: instruction bytes + literal pool bytes
# (`FiddleJit.disassemble`).
#
# Environment: ICOUNT_N (iterations per measurement, default 20000).

require "rbconfig"
require "etc"
require "open3"
require "tmpdir"

N = Integer(ENV.fetch("ICOUNT_N", "20000"))

# Rows of this table only; the same shape as setup.rb's FUNCTIONS.
LONG_STRINGS = [40, 1000].map do |n|
  { fn: "strlen", label: "strlen(#{n} bytes)", setup: "s = \"x\" * #{n}", args: "s", expect: n }
end.freeze

def icount_functions
  FUNCTIONS + LONG_STRINGS
end

if ARGV[0] == "--child"
  ENV["BENCH_QUIET"] = "1"
  require_relative "setup"
  measure = lambda do |name, body|
    body.call(100) # warm inline caches
    GC.start # every measurement starts from the same heap state
    FjBenchCext.callgrind_zero
    body.call(N)
    FjBenchCext.callgrind_dump(name)
  end
  measure.call("empty", make_loop("nil", "", "nil"))
  measure.call("floor", make_loop(FLOOR[:recv], FLOOR[:setup], FLOOR[:call]))
  icount_functions.each do |func|
    CONTENDERS.each do |contender, (recv, template)|
      body = make_loop(recv_code(recv, func), setup_code(func, contender), call_code(template, func, contender))
      measure.call("#{contender}|#{func[:label]}", body)
    end
  end
  exit 0
end

require_relative "setup" # builds and sanity-checks once, outside valgrind
LONG_STRINGS.each do |func|
  CONTENDERS.each do |name, (recv, template)|
    got = make_once(recv_code(recv, func), setup_code(func, name), call_code(template, func, name)).call
    abort "icount: #{name} #{func[:label]} returned #{got.inspect}, expected #{func[:expect]}" unless got == func[:expect]
  end
end

# "code + pool" bytes of fiddle_jit's stub for +func+, from the disassembly's header.
def stub_bytes(func)
  return "—" unless defined?(J)

  header = FiddleJit.disassemble(J, func[:fn]).lines.first.to_s
  code, pool = header.match(/(\d+) code \+ (\d+) literal pool/)&.captures
  code ? "#{code} + #{pool}" : "—"
end
system("valgrind --version", out: File::NULL) or abort "icount: valgrind is required (apt-get install valgrind)"

totals = Dir.mktmpdir("fiddle_jit-icount") do |dir|
  out_file = File.join(dir, "callgrind.out")
  cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=#{out_file}", "--collect-atstart=yes",
         RbConfig.ruby, __FILE__, "--child"]
  warn "[icount] running one process under callgrind (N=#{N})"
  out, status = Open3.capture2e({ "ICOUNT_N" => N.to_s }, *cmd)
  abort "icount: #{cmd.join(" ")} failed:\n#{out}" unless status.success?
  Dir[File.join(dir, "callgrind.out.*")].to_h do |file|
    text = File.read(file)
    name = text[/^desc: Trigger: Client Request: (.*)$/, 1] or next [file, nil]
    [name, Integer(text[/^(?:summary|totals): (\d+)/, 1])]
  end.compact
end
abort "icount: no client-request dumps found (is the C extension built with valgrind/callgrind.h?)" unless totals["empty"]

per_iter = ->(name) { totals.fetch(name).fdiv(N) }
empty = per_iter["empty"]
floor = per_iter["floor"] - empty
counts = icount_functions.to_h do |func|
  [func[:label], CONTENDERS.keys.to_h { |name| [name, per_iter["#{name}|#{func[:label]}"] - empty] }]
end

names = CONTENDERS.keys
fmt = ->(x) { format("%.0f", x) }
ratio = ->(a, b) { a && b ? format("%.2f×", b / a) : "—" }
header = ["function", *names, "fiddle_jit − floor", "C ext − floor", "ffi ÷ fiddle_jit", "C ext ÷ fiddle_jit",
          "stub bytes (code + pool)"]
rows = icount_functions.map do |func|
  c = counts[func[:label]]
  ["`#{func[:label]}`", *names.map { |n| fmt[c[n]] }, fmt[c["fiddle_jit"] - floor], fmt[c["C ext"] - floor],
   ratio[c["fiddle_jit"], c["ffi"]], ratio[c["fiddle_jit"], c["C ext"]], stub_bytes(func)]
end
floor_row = ["`#{FLOOR[:label]}` (floor)", *names.map { "—" }, "—", "—", "—", "—", "—"]
floor_row[names.index("C ext") + 1] = fmt[floor]
rows << floor_row

cpu = (File.read("/proc/cpuinfo")[/model name\s*:\s*(.*)/, 1] rescue nil) || "unknown CPU"
table = [header, [":--", *Array.new(header.size - 1, "---:")], *rows].map { |r| "| #{r.join(" | ")} |" }.join("\n")
report = <<~MD
  ## Instructions per call (callgrind)

  - date: #{Time.now.utc.strftime("%Y-%m-%d")}; machine: #{cpu} (#{Etc.nprocessors} cores); #{RUBY_DESCRIPTION}
  - per call = instructions in N=#{N} loop iterations ÷ N − the empty loop (#{fmt[empty]} per iteration); includes the C function's own work
  - lower is better; "÷ fiddle_jit" > 1 means fiddle_jit executes fewer instructions

  #{table}
MD
puts report
# One file per Ruby and CPU: bench/RESULTS.md for the host's Ruby 3.1 on
# x86-64 (the figures the docs quote), RESULTS-ruby<X.Y>-<cpu>.md otherwise
# (`rake bench:icount:rubies` runs this in the other Rubies' chroots).
minor = RUBY_VERSION[/\A\d+\.\d+/]
host_cpu = RbConfig::CONFIG["host_cpu"]
out = minor == "3.1" && host_cpu == "x86_64" ? "RESULTS.md" : "RESULTS-ruby#{minor}-#{host_cpu}.md"
File.write(File.join(__dir__, out),
           "# fiddle_jit benchmark results\n\nReproduce with `rake bench:icount` (or `ruby bench/icount.rb`).\n\n#{report}")
