# frozen_string_literal: true

require_relative "spec_helper"
require "open3"
require "timeout"

# Regressions found by running the ffi gem's own spec suite against the shim
# (see docs/compatibility.md). Each example is a small program
# written for the ffi gem. It runs twice, in separate processes: under the
# ffi gem (the oracle) and under `ruby -rfiddle_jit/ffi_shim`. Both runs must
# print the same output, and that output must be the expected one.
RSpec.describe "ffi gem behaviours found by its own spec suite" do
  include ShimScripts

  it "FFI::TYPE_* are the builtin types (FFI::Type::*)" do
    out = same_output(<<~RUBY)
      require "ffi"
      p FFI.constants.grep(/\\ATYPE_/).sort
      p [FFI::TYPE_INT8.size, FFI::TYPE_UINT16.size, FFI::TYPE_UINT64.alignment, FFI::TYPE_FLOAT32.size, FFI::TYPE_FLOAT64.size]
      p FFI::TYPE_INT32.equal?(FFI::Type::INT32), FFI::TYPE_POINTER.equal?(FFI::Type::POINTER)
      m = FFI::MemoryPointer.new(FFI::TYPE_UINT32, 3)
      m.write_array_of_type(FFI::TYPE_UINT32, :put_uint32, [10, 227, 32])
      p m.size, m.read_array_of_type(FFI::TYPE_UINT32, :read_uint32, 3)
    RUBY
    expect(out.lines[1]).to eq("[1, 2, 8, 4, 8]\n")
    expect(out.lines.last).to eq("[10, 227, 32]\n")
  end

  it "FFI::Function.new(..., blocking: true) releases the GVL while C blocks" do
    # The reader blocks in read(2) until the main thread writes: with the GVL
    # held the main thread never runs again (the run times out).
    out = same_output(<<~RUBY, timeout: 20)
      require "ffi"
      module L
        extend FFI::Library
        ffi_lib FFI::Library::LIBC
        attach_function :pipe, [:pointer], :int
      end
      fds = FFI::MemoryPointer.new(:int, 2)
      L.pipe(fds)
      r, w = fds.read_array_of_int(2)
      read = FFI::Function.new(:ssize_t, [:int, :pointer, :size_t], L.ffi_libraries.first.find_function("read"), blocking: true)
      buf = FFI::MemoryPointer.new(1)
      reader = Thread.new { read.call(r, buf, 1) }
      Thread.pass until reader.status == "sleep" || reader.status == false
      IO.for_fd(w, autoclose: false).syswrite("x")
      p reader.value, buf.read_string(1)
    RUBY
    expect(out).to eq("1\n\"x\"\n")
  end

  it "a Struct.ptr / Struct.by_ref callback parameter arrives as a struct instance" do
    out = same_output(<<~RUBY)
      require "ffi"
      class E < FFI::Struct
        layout :v, :int
      end
      module Q
        extend FFI::Library
        ffi_lib FFI::Library::LIBC
        callback :cmp, [E.ptr, E.ptr], :int
        callback :cmp_ref, [E.by_ref, E.by_ref], :int
        attach_function :qsort, [:pointer, :size_t, :size_t, :cmp], :void
        attach_function :qsort_ref, :qsort, [:pointer, :size_t, :size_t, :cmp_ref], :void
      end
      %i[qsort qsort_ref].each do |m|
        arr = FFI::MemoryPointer.new(:int, 4)
        arr.write_array_of_int([3, 1, 4, 2])
        classes = []
        Q.send(m, arr, 4, 4) { |a, b| classes << a.class.name << b.class.name; a[:v] <=> b[:v] }
        p [m, arr.read_array_of_int(4), classes.uniq]
      end
    RUBY
    expect(out).to eq("[:qsort, [1, 2, 3, 4], [\"E\"]]\n[:qsort_ref, [1, 2, 3, 4], [\"E\"]]\n")
  end

  it "integer parameters take the Symbols of the library's enums (also variadic ones)" do
    out = same_output(<<~RUBY)
      require "ffi"
      module En
        extend FFI::Library
        ffi_lib FFI::Library::LIBC
        attach_function :labs_before, :labs, [:long], :long # no enums yet: no lookup
        enum :color, [:red, 5, :green, 7]
        attach_function :abs, [:int], :int
        attach_function :labs, [:long], :long
        attach_function :snprintf, [:pointer, :size_t, :string, :varargs], :int
        bitmask :flags, [:a, :b, :c]
        enum :later, [:late, 11] # joins the same enums, so abs sees it too
      end
      p En.abs(:red), En.labs(:green), En.abs(:late), En.abs(:c), En.abs(-3)
      buf = FFI::MemoryPointer.new(32)
      En.snprintf(buf, 32, "%d %u", :int, :green, :uint, :red)
      p buf.read_string
      [-> { En.abs(:nope) }, -> { En.labs_before(:red) }].each do |f|
        p f.call
      rescue => e
        p e.class
      end
    RUBY
    expect(out).to eq("5\n7\n11\n4\n3\n\"7 5\"\nTypeError\nTypeError\n")
  end

  it "float and double parameters take the Symbols of the library's enums too" do
    out = same_output(<<~RUBY)
      require "ffi"
      module EnF
        extend FFI::Library
        ffi_lib "libm.so.6"
        enum :side, [:four, 4, :nine, 9]
        attach_function :sqrt, [:double], :double
        attach_function :sqrtf, [:float], :float
      end
      p EnF.sqrt(:nine), EnF.sqrtf(:four)
      [-> { EnF.sqrt(:nope) }, -> { EnF.sqrtf("4") }].each do |f|
        p f.call
      rescue => e
        p e.class
      end
    RUBY
    expect(out).to eq("3.0\n2.0\nTypeError\nTypeError\n")
  end

  it "Function.new with a struct-by-value return calls through (the callback-capable path)" do
    out = same_output(<<~RUBY)
      require "ffi"
      class DivT < FFI::Struct
        layout :quot, :int, :rem, :int
      end
      libc = FFI::DynamicLibrary.open(FFI::Library::LIBC, FFI::DynamicLibrary::RTLD_LAZY)
      div = FFI::Function.new(DivT.by_value, [:int, :int], libc.find_function("div"))
      r = div.call(7, 2)
      p r.class, r[:quot], r[:rem]
    RUBY
    expect(out).to eq("DivT\n3\n1\n")
  end

  it "a callback type with :varargs is rejected with ArgumentError" do
    out = same_output(<<~RUBY)
      require "ffi"
      begin
        Module.new { extend FFI::Library; callback :cb, [:int, :varargs], :long }
      rescue ArgumentError => e
        puts e.message
      end
    RUBY
    expect(out).to eq("callbacks cannot have variadic parameters\n")
  end

  it "a callback with a struct by value parameter or return is created on x86-64 and aarch64 (NotImplementedError " \
     "elsewhere), never failing on attach" do
    s = Class.new(FiddleJit::Struct) { layout :a, :int, :b, :double }
    lib = Module.new do
      extend FiddleJit::Library
      ffi_lib FiddleJit::Library::LIBC
      callback :takes, [s.by_value], :void
      callback :gives, [], s.by_value
      attach_function :qsort, [:pointer, :size_t, :size_t, :takes], :void
    end
    if RUBY_PLATFORM.start_with?("x86_64", "aarch64")
      expect(FiddleJit::Function.new(:void, [s.by_value]) { |_| }.address).not_to eq(0)
      expect(FiddleJit::Function.new(s.by_value, []) { s.new }.address).not_to eq(0)
      expect(lib.qsort(FiddleJit::MemoryPointer.new(:int, 1), 0, 4) { |_| }).to be_nil
    else
      expect { FiddleJit::Function.new(:void, [s.by_value]) { |_| } }.to raise_error(NotImplementedError, /struct/)
      expect { FiddleJit::Function.new(s.by_value, []) { s.new } }.to raise_error(NotImplementedError, /struct/)
      expect { lib.qsort(FiddleJit::MemoryPointer.new(:int, 1), 0, 4) { |_| } }.to raise_error(NotImplementedError)
    end
  end

  it "an AutoPointer subclass works as a return and parameter type; AutoPointer.new(Buffer) raises TypeError" do
    out = same_output(<<~RUBY)
      require "ffi"
      class CAP < FFI::AutoPointer
        def self.release(ptr) = nil
      end
      class NoRelease < FFI::AutoPointer; end
      m = Module.new do
        extend FFI::Library
        ffi_lib FFI::Library::LIBC
        attach_function :calloc, [:size_t, :size_t], CAP
        attach_function :free, [CAP], :void
      end
      r = m.calloc(1, 8)
      p r.class, r.null?, r.read_long
      m.free(r)
      [-> { Module.new { extend FFI::Library; ffi_lib FFI::Library::LIBC; attach_function :calloc, [:size_t, :size_t], NoRelease } },
       -> { FFI::AutoPointer.new(FFI::Buffer.new(:int)) }, -> { FFI::AutoPointer.new(FFI::Buffer.new(:int), proc {}) },
       -> { FFI::AutoPointer.new(FFI::MemoryPointer.new(:int), proc {}) }].each do |f|
        f.call
      rescue => e
        p e.class
      end
    RUBY
    expect(out).to eq("CAP\nfalse\n0\nRuntimeError\nTypeError\nTypeError\nTypeError\n")
  end

  it "a Struct subclass whose initialize does not call super gets memory on first field access" do
    out = same_output(<<~RUBY)
      require "ffi"
      class NoSuper < FFI::Struct
        layout :a, :int, :b, :long_long
        def initialize(a, b)
          self[:a] = a
          self[:b] = b
        end
      end
      s = NoSuper.new(7, 1 << 40)
      p s[:a], s[:b], s.pointer.size, s.pointer.get_int(0)
    RUBY
    expect(out).to eq("7\n#{1 << 40}\n16\n7\n")
  end

  it "zero-length arrays: only as the last field, and then not bounds-checked" do
    out = same_output(<<~RUBY)
      require "ffi"
      begin
        Class.new(FFI::Struct) { layout :data, [:char, 0], :count, :int }
      rescue TypeError => e
        puts e.message
      end
      flex = Class.new(FFI::Struct) { layout :count, :int, :data, [:long, 0] }
      s = flex.new(FFI::MemoryPointer.new(64))
      s[:data][0] = 11
      s[:data][3] = 44
      p flex.size, s[:data][0], s[:data][3], s[:data].size, s[:data].to_a, s.pointer.get_long(8 + 3 * 8)
      fixed = Class.new(FFI::Struct) { layout :count, :int, :data, [:long, 1] }
      begin
        fixed.new[:data][1] = 1
      rescue IndexError
        puts "IndexError"
      end
    RUBY
    expect(out).to eq("type of field 0 has zero size\n8\n11\n44\n0\n[]\n44\nIndexError\n")
  end

  it "callbacks from foreign threads run on a new \"FFI Callback Runner\" thread each, via \"FFI Callback Dispatcher\"" do
    out = same_output(<<~RUBY)
      require "ffi"
      module T
        extend FFI::Library
        ffi_lib FFI::Library::LIBC # pthread_* live in libc (glibc 2.34+)
        callback :start, [:pointer], :pointer
        attach_function :pthread_create, [:pointer, :pointer, :start, :pointer], :int
        attach_function :pthread_join, [:ulong, :pointer], :int, blocking: true
      end
      threads = []
      start = FFI::Function.new(:pointer, [:pointer]) { |_| threads << Thread.current; nil }
      2.times do
        tid = FFI::MemoryPointer.new(:ulong)
        T.pthread_create(tid, nil, start, nil)
        T.pthread_join(tid.read_ulong, nil)
      end
      p Thread.list.map(&:name).include?("FFI Callback Dispatcher")
      p threads.map(&:name), threads.uniq.size, threads.include?(Thread.current)
    RUBY
    expect(out).to eq("true\n[\"FFI Callback Runner\", \"FFI Callback Runner\"]\n2\nfalse\n")
  end

  it "attach_function returns an FFI::Function that calls the C function (enums converted)" do
    out = same_output(<<~RUBY)
      require "ffi"
      module M
        extend FFI::Library
        ffi_lib FFI::Library::LIBC
        typedef :int, :myint
        class S < FFI::Struct
          layout :c, :char
        end
        enum :e, [:x, 3]
        callback :cmp, [:pointer, :pointer], :int
        FNS = [attach_function(:abs, [:int], :int), attach_function(:labs2, :labs, [:myint], :long),
               attach_function(:qsort, [:pointer, :size_t, :size_t, :cmp], :void),
               attach_function(:abs3, :abs, [:e], :e), attach_function(:strlen_s, :strlen, [S.in], :size_t)]
      end
      p M::FNS.map { |f| f.instance_of?(FFI::Function) }
      p M::FNS[0].call(-5), M::FNS[1].call(-6), M::FNS[3].call(:x), M::FNS[3].call(-3), M.abs3(:x)
    RUBY
    expect(out).to eq("[true, true, true, true, true]\n5\n6\n:x\n:x\n:x\n")
  end
end
