# frozen_string_literal: true

# Attach cost and code size: how long attach_function takes for 1,000
# functions with distinct signatures and for 1,000 functions sharing four
# signatures (the shape of big bindings such as GObject or libcurl), for
# fiddle_jit and the ffi gem, and how many bytes of executable code each
# fiddle_jit stub takes.
#
#   ruby bench/attach.rb        (also: rake bench:attach)
#
# Besides wall-clock time (noisy on a shared machine) it counts instructions
# per attach_function with callgrind, deterministically: one child process
# under valgrind, the bench C extension's client requests around each batch
# of attaches (ATTACH_ICOUNT=0 skips this part).

$LOAD_PATH.unshift File.expand_path("../lib", __dir__)
require "fiddle_jit"
require "ffi"
require "etc"

COUNT = Integer(ENV.fetch("ATTACH_COUNT", "1000"))
TYPES = %i[int8 uint8 int16 uint16 int uint long ulong float double pointer string bool size_t].freeze

# COUNT distinct parameter lists: 1..4 parameters drawn in a fixed order.
def distinct_signatures(count)
  sigs = []
  (1..4).each do |n|
    TYPES.repeated_permutation(n) do |params|
      sigs << [params, TYPES[sigs.size % TYPES.size]]
      return sigs if sigs.size == count
    end
  end
  sigs
end

SHARED = [[[:int], :int], [%i[pointer size_t], :int], [%i[string], :size_t], [%i[pointer pointer int], :pointer]].freeze

def attach_all(library, signatures)
  mod = Module.new { extend library }
  mod.ffi_lib(library == FFI::Library ? FFI::Library::LIBC : FiddleJit::Library::LIBC)
  t = Process.clock_gettime(Process::CLOCK_MONOTONIC)
  signatures.each_with_index { |(params, ret), i| mod.attach_function(:"f#{i}", :abs, params, ret) }
  Process.clock_gettime(Process::CLOCK_MONOTONIC) - t
end

def best_of(runs, &block)
  Array.new(runs) { block.call }.min
end

distinct = distinct_signatures(COUNT)
shared = Array.new(COUNT) { |i| SHARED[i % SHARED.size] }
BATCHES = { "distinct signatures" => distinct, "4 shared signatures" => shared }.freeze

if ARGV[0] == "--icount-child"
  ENV["BENCH_QUIET"] = "1"
  require_relative "setup"
  GC.start
  GC.disable # collections would land in whichever batch they happen to hit
  BATCHES.each do |label, sigs|
    { "fiddle_jit" => FiddleJit::Library, "ffi" => FFI::Library }.each do |name, library|
      attach_all(library, sigs.first(4)) # warm: method caches, first stubs, arena chunk
      mod = Module.new { extend library }
      mod.ffi_lib(library::LIBC)
      FjBenchCext.callgrind_zero
      sigs.each_with_index { |(params, ret), i| mod.attach_function(:"f#{i}", :abs, params, ret) }
      FjBenchCext.callgrind_dump("#{name}|#{label}")
    end
  end
  exit 0
end
results = {}
BATCHES.each do |label, sigs|
  GC.start
  before = FiddleJit::Native.arena_stats.first
  fj = best_of(3) { attach_all(FiddleJit::Library, sigs) }
  bytes = (FiddleJit::Native.arena_stats.first - before) / 3.0 / sigs.size
  ffi = best_of(3) { attach_all(FFI::Library, sigs) }
  results[label] = [fj, ffi, bytes]
end

cpu = (File.read("/proc/cpuinfo")[/model name\s*:\s*(.*)/, 1] rescue nil) || "unknown CPU"
puts "## attach_function cost (#{COUNT} functions, best of 3)"
puts
puts "- date: #{Time.now.utc.strftime("%Y-%m-%d")}; machine: #{cpu} (#{Etc.nprocessors} cores); #{RUBY_DESCRIPTION}"
puts
puts "| signatures | fiddle_jit | ffi gem | ffi ÷ fiddle_jit | fiddle_jit code bytes per stub |"
puts "| :-- | ---: | ---: | ---: | ---: |"
results.each do |label, (fj, ffi, bytes)|
  puts format("| %s | %.1f ms (%.1f µs each) | %.1f ms | %.2f× | %.0f |", label, fj * 1e3, fj * 1e6 / COUNT, ffi * 1e3, ffi / fj, bytes)
end

# Instructions per attach_function (callgrind; see the header).
if ENV["ATTACH_ICOUNT"] != "0" && system("valgrind --version", out: File::NULL)
  require "open3"
  require "tmpdir"
  ENV["BENCH_QUIET"] = "1"
  require_relative "setup" # builds the bench C extension outside valgrind
  counts = Dir.mktmpdir("fiddle_jit-attach-icount") do |dir|
    out_file = File.join(dir, "callgrind.out")
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=#{out_file}", RbConfig.ruby, __FILE__, "--icount-child"]
    out, status = Open3.capture2e({ "ATTACH_COUNT" => COUNT.to_s }, *cmd)
    abort "attach: #{cmd.join(" ")} failed:\n#{out}" unless status.success?
    Dir[File.join(dir, "callgrind.out.*")].to_h do |file|
      text = File.read(file)
      [text[/^desc: Trigger: Client Request: (.*)$/, 1], Integer(text[/^(?:summary|totals): (\d+)/, 1])]
    end
  end
  puts
  puts "## Instructions per attach_function (callgrind, #{COUNT} functions; includes `:\"f\#{i}\"` and the loop)"
  puts
  puts "| signatures | fiddle_jit | ffi gem | ffi ÷ fiddle_jit |"
  puts "| :-- | ---: | ---: | ---: |"
  BATCHES.each_key do |label|
    fj = counts.fetch("fiddle_jit|#{label}").fdiv(COUNT)
    ffi = counts.fetch("ffi|#{label}").fdiv(COUNT)
    puts format("| %s | %.0f | %.0f | %.2f× |", label, fj, ffi, ffi / fj)
  end
end
