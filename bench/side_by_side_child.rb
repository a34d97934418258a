# frozen_string_literal: true

# The measuring loops of the children of bench/real_gems.rb and
# bench/primitives.rb (one backend per process; results go to stdout as
# "RESULT\t..." lines for bench/side_by_side.rb). Loads nothing.
module SideBySideChild
  module_function

  def cpu_now = Process.clock_gettime(Process::CLOCK_PROCESS_CPUTIME_ID)

  def result(*fields)
    puts ["RESULT", *fields].join("\t")
  end

  # `op` (Ruby source) in a bare counted loop, compiled at the top level so
  # it sees the locals the setup code defined there.
  def loop_for(op)
    eval("lambda { |n| i = 0; while i < n; #{op}; i += 1; end }", TOPLEVEL_BINDING, "(loop: #{op})") # rubocop:disable Security/Eval
  end

  # Under callgrind: warm-up, then the counters zeroed around n iterations
  # (FjBenchCext from bench/callgrind_start.rb). GC is off in the window, so
  # the count does not depend on where a collection lands; the objects
  # allocated are reported instead.
  def icount(name, op, n)
    body = loop_for(op)
    body.call([n / 10, 3].max) # inline caches, lazily resolved types
    GC.start
    GC.disable
    allocated = GC.stat(:total_allocated_objects)
    FjBenchCext.callgrind_zero
    body.call(n)
    FjBenchCext.callgrind_dump(name)
    allocated = GC.stat(:total_allocated_objects) - allocated
    GC.enable
    result("icount", name, n, allocated)
  end

  # Ruby and C method calls per op (TracePoint :call/:c_call), and the
  # most frequent ones: deterministic, and names what the instructions are
  # spent on (callgrind sees only libruby's internals).
  # The loop's own `i < n` and `i += 1` (traced as Integer#< and Integer#+)
  # are subtracted.
  def calls(name, op, n, top: 12)
    counts = count_calls(op, n)
    count_calls("nil", n).each { |k, v| counts[k] -= v }
    counts.reject! { |_, v| v.zero? }
    listed = counts.sort_by { |k, v| [-v, k] }.first(top).map { |k, v| "#{k} #{short(v.fdiv(n))}" }
    result("calls", name, counts.values.sum.fdiv(n), listed.join(", "))
  end

  def count_calls(op, n)
    body = loop_for(op)
    body.call([n / 10, 3].max)
    counts = Hash.new(0)
    trace = TracePoint.new(:call, :c_call) { |tp| counts[method_name(tp)] += 1 }
    trace.enable { body.call(n) }
    counts
  end

  def short(x) = x.round(1).to_s.delete_suffix(".0")

  def method_name(tp)
    owner = tp.defined_class
    if owner.singleton_class?
      "#{owner.inspect[/\A#<Class:(.*)>\z/, 1]}.#{tp.method_id}"
    else
      "#{owner}##{tp.method_id}"
    end
  end

  # Ops per second of process CPU time: a warm-up of a tenth of `time`, then
  # doubling batches until `time` CPU seconds have passed.
  def cpu_ops(op, time)
    body = loop_for(op)
    warm_until = cpu_now + time / 10
    body.call(1) while cpu_now < warm_until
    GC.start
    iterations = 0
    batch = 1
    t0 = cpu_now
    loop do
      body.call(batch)
      iterations += batch
      elapsed = cpu_now - t0
      break if elapsed >= time

      batch *= 2 if elapsed < time / 4
    end
    iterations / (cpu_now - t0)
  end
end
