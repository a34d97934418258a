# frozen_string_literal: true

# One fuzz batch, run in its own process by fuzz/fuzz.rb (so a crash is a
# report, not the end of the run):
#
#   ruby fuzz/child.rb BATCH_SEED FUNCTIONS CALLS DEADLINE_UNIX [TMPDIR]
#
# Generates FUNCTIONS signatures from BATCH_SEED, compiles their C fixture
# with the system cc, attaches every one through the ffi gem (the oracle)
# and fiddle_jit, then makes CALLS calls with the same random arguments on
# both sides. Prints one "MISMATCH {json}" line per disagreement (first 20)
# and a final "STATS {json}". FUZZ_TRACE=1 prints each call to stderr before
# making it (used to locate a crash).
$LOAD_PATH.unshift File.expand_path("../lib", __dir__)
require "json"
require "tmpdir"
require "ffi"
require "fiddle_jit"
require_relative "fuzz_lib"

seed, nfuncs, ncalls, deadline = ARGV[0].to_i, ARGV[1].to_i, ARGV[2].to_i, ARGV[3].to_f
tmp = ARGV[4] || Dir.mktmpdir("fiddle_jit-fuzz")
trace = ENV["FUZZ_TRACE"] == "1"
$VERBOSE = nil # Bignum-out-of-Float-range warnings are not findings

rng = Random.new(seed)
sigs = Fuzz.signatures(rng, nfuncs)
src = File.join(tmp, "fuzz_#{seed}.c")
lib = File.join(tmp, "libfuzz_#{seed}.so")
File.write(src, Fuzz.c_source(sigs))
out = IO.popen([ENV["CC"] || "cc", "-shared", "-fPIC", "-O1", "-o", lib, src], err: %i[child out], &:read)
abort "cc failed:\n#{out}" unless $?.success?

sides = [FFI, FiddleJit].map do |ns|
  m = Module.new
  m.extend(ns::Library)
  m.ffi_lib lib
  m.attach_function :fz_last_hash, [], :uint64
  sigs.each { |s| m.attach_function s.name.to_sym, s.params, s.ret, blocking: s.blocking }
  [ns, m]
end

def resolve(ns, arg)
  case arg
  when Fuzz::Ptr then ns::Pointer.new(arg.address)
  when Fuzz::ToPtr
    ptr = ns::Pointer.new(arg.address)
    o = Object.new
    o.define_singleton_method(:to_ptr) { ptr }
    o
  else arg
  end
end

def normalize(ns, v)
  case v
  when Float then [:Float, [v].pack("G").unpack1("H*")]
  when Integer then [:Integer, v]
  when String then [:String, v.b, v.encoding.name]
  when nil, true, false then v
  when ns::Pointer then [:Pointer, v.address, v.class == ns::Pointer]
  else [:Other, v.class.name]
  end
end

def outcome(ns, mod, sig, args)
  real = args.map { |a| resolve(ns, a) }
  v = mod.__send__(sig.name, *real)
  v = [:void, v, mod.fz_last_hash] if sig.ret == :void
  [:ok, normalize(ns, v)]
rescue StandardError, ScriptError => e
  name = e.class.name.to_s.sub(/\A(FFI|FiddleJit)::/, "NS::")
  [:raise, name, e.message]
end

def show(a)
  case a
  when Float then "#{a.inspect}(0x#{[a].pack("G").unpack1("H*")})"
  when String then "#{a.inspect}(#{a.encoding}#{", frozen" if a.frozen?})"
  else a.inspect
  end
end

gc = ENV["FUZZ_GC"]
GC.auto_compact = true if gc == "compact"
GC.stress = true if gc == "stress"
stats = Hash.new(0)
shown = 0
t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)
ncalls.times do |i|
  break if (i & 63).zero? && Time.now.to_f > deadline

  GC.compact if gc == "compact" && (i % 1000).zero?
  sig = sigs.sample(random: rng)
  args = sig.params.map { |t| Fuzz.valid_arg(rng, t) }
  invalid = rng.rand(100) < (ENV["FUZZ_INVALID_PCT"] || 20).to_i
  if invalid
    rng.rand(1..2).times do
      k = rng.rand(args.size)
      args[k] = Fuzz.invalid_arg(rng, sig.params[k])
    end
  end
  if rng.rand(1000).zero? # wrong arity
    invalid = true
    rng.rand(2).zero? ? args.pop : args.push(1)
  end
  warn "#{i}: #{sig.name}(#{sig.params.join(", ")}) -> #{sig.ret} with #{args.map { |a| show(a) }.join(", ")}" if trace
  (ffi_ns, ffi_mod), (jit_ns, jit_mod) = sides
  want = outcome(ffi_ns, ffi_mod, sig, args)
  got = outcome(jit_ns, jit_mod, sig, args)
  stats[:calls] += 1
  stats[:invalid] += 1 if invalid
  stats[:raised] += 1 if want[0] == :raise
  next if want[0..1] == got[0..1]

  stats[:mismatches] += 1
  next if (shown += 1) > 20

  puts "MISMATCH " + JSON.generate(
    seed: seed, call: i, function: sig.name, params: sig.params, ret: sig.ret, blocking: sig.blocking,
    args: args.map { |a| show(a) }, ffi: want.map(&:to_s), fiddle_jit: got.map(&:to_s)
  )
end
GC.stress = false
stats[:seconds] = (Process.clock_gettime(Process::CLOCK_MONOTONIC) - t0).round(2)
puts "STATS " + JSON.generate(stats)
File.delete(src, lib) unless ENV["FUZZ_KEEP"] == "1"
