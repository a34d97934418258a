# frozen_string_literal: true

require_relative "spec_helper"
require "open3"
require "timeout"

# The two crashes the ffi gem's own suite (v1.17.0) found (issue 6/7), each
# reduced to a program written for the ffi gem. Each runs in a child
# process under the ffi gem and under `-rfiddle_jit/ffi_shim`; both must
# exit normally and print the same, expected, output.
RSpec.describe "crashes found by the ffi gem's own suite" do
  include ShimScripts

  # The callback fixture library is each script's ARGV[0].
  def same_output(script) = super(script, args: [CALLBACK_FIXTURE_LIB], timeout: 60)

  # fork_spec.rb "async thread dispatch works after forking" crashed 2 runs
  # in 6: parent and child both made a callback after the fork. The code
  # arena's memfd is shared by parent and child, and each kept its own fill
  # counter, so the child's thunk for its callback was written over the
  # parent's at the same offset: the parent's C thread then jumped through
  # the child's slot address (issue 13/7 item 4). Callbacks made before the
  # fork and reused never crashed; calling them from a foreign thread (the
  # dispatcher) only made the window wide.
  it "parent and child both make callbacks after a fork (fork_spec.rb)" do
    script = <<~'RUBY'
      require "ffi"
      module L
        extend FFI::Library
        ffi_lib ARGV[0]
        callback :cb, [:int], :int
        attach_function :cb_call_on_thread, [:cb, :int], :int, blocking: true
      end
      results = []
      8.times do |i|
        results << L.cb_call_on_thread(proc { |v| v + 1 }, i)
        pid = fork do
          ok = L.cb_call_on_thread(proc { |v| v * 2 }, i) == 2 * i && L.cb_call_on_thread(proc { |v| v - 1 }, i) == i - 1
          exit!(ok ? 44 : 1)
        end
        results << L.cb_call_on_thread(proc { |v| v + 100 }, i)
        results << Process.wait2(pid)[1].exitstatus
      end
      puts results.join(" ")
    RUBY
    expected = (0...8).flat_map { |i| [i + 1, i + 100, 44] }.join(" ")
    expect(same_output(script).strip).to eq(expected)
  end

  # variadic_spec.rb segfaulted at line 98 ("call variadic with callback
  # argument", or the example after it) when the whole suite ran in one
  # process, never alone: fork_spec.rb runs before it, and its children made
  # stubs and callbacks after the fork. Same cause as above: the children
  # wrote their code into the arena chunks they shared with the parent,
  # over code the parent had made at the same offsets (here the variadic
  # call's cached stub), so the parent's next call through it ran the
  # child's code. Ordered by a pipe, not by timing: the parent makes its
  # code, then the child makes other code, then the parent reuses its own
  # (before the fix: "wrong number of arguments (6 for 6)" from the child's
  # stub, or a segfault).
  it "the parent's code survives code its forked child makes (variadic_spec.rb in one process)" do
    script = <<~'RUBY'
      require "ffi"
      module L
        extend FFI::Library
        ffi_lib FFI::Library::LIBC
        callback :cmp, [:pointer, :pointer], :int
        attach_function :qsort, [:pointer, :size_t, :size_t, :cmp], :void
        attach_function :snprintf, [:pointer, :size_t, :string, :varargs], :int
      end
      def sorted(a)
        m = FFI::MemoryPointer.new(:int, a.size)
        m.write_array_of_int(a)
        L.qsort(m, a.size, 4, proc { |x, y| x.read_int <=> y.read_int })
        m.read_array_of_int(a.size).join(",")
      end
      def fmt(n)
        buf = FFI::MemoryPointer.new(:char, 64)
        L.snprintf(buf, 64, "%d-%s-%.1f", :int, n, :string, "x", :double, 1.5)
        buf.read_string
      end
      out = []
      3.times do |i|
        r, w = IO.pipe
        pid = fork do
          w.close
          r.read # until the parent has made (or reused) its code
          # The child's own code, of other signatures, where the parent's may be.
          L.attach_function :labs, [:long], :long
          twice = FFI::Function.new(:int, [:int]) { |v| v * 2 }
          buf = FFI::MemoryPointer.new(:char, 64)
          L.snprintf(buf, 64, "%s%s%s", :string, "a", :string, "b", :string, "c")
          ok = L.labs(-5) == 5 && twice.call(21) == 42 && buf.read_string == "abc" && sorted([2, 1]) == "1,2"
          exit!(ok ? 40 + i : 1)
        end
        r.close
        out << fmt(i) << sorted([3, 1, 2])
        w.close
        out << Process.wait2(pid)[1].exitstatus
        out << fmt(i + 10) << sorted([9, 7, 8])
      end
      puts out.join(" ")
    RUBY
    expected = (0...3).flat_map { |i| ["#{i}-x-1.5", "1,2,3", 40 + i, "#{i + 10}-x-1.5", "7,8,9"] }.join(" ")
    expect(same_output(script).strip).to eq(expected)
  end
end
