# frozen_string_literal: true

require_relative "spec_helper"
require "objspace"
require "stringio"

# Behaviours of the ffi gem 1.17 that users (and its own suite) rely on,
# each checked against the ffi gem installed next to this Ruby (issue 6/7
# "Drop-in II"). Where Debian's ffi 1.15.5 (Ruby 3.1) predates a behaviour,
# an FfiChange names the ffi release that introduced it and the spec
# checks fiddle_jit does what 1.17 does while 1.15.5 does not.
RSpec.describe "ffi gem 1.17 behaviours" do
  include Differential::Helpers

  def self.change(since, what, now) = Differential::FfiChange.new(since: since, change: what, now: now)
  def change(...) = self.class.change(...)

  # A struct class per namespace, defined once.
  def int_struct(ns)
    @int_struct ||= {}
    @int_struct[ns] ||= Class.new(ns::Struct) { layout :v, :int32 }
  end

  # The outcome of +block+ as [exception class name, message] or [:ok, value].
  def outcome(ns)
    [:ok, yield]
  rescue StandardError => e
    [Differential.exception_name(e, ns), e.message]
  end

  describe "Struct#order" do
    it "is the memory's byte order, and a struct viewing it in another order" do
      expect_same_outcome("Struct#order") do |ns|
        s = int_struct(ns).new
        s.pointer.write_bytes("\x01\x02\x03\x04")
        big = s.order(:big)
        net = s.order(:network)
        little = s.order(:little)
        [s.order, big[:v], net[:v], little[:v], big.order, big.class == s.class, little.equal?(s), s[:v]]
      end
    end

    it "rejects other Symbols like Pointer#order" do
      expect_same_outcome("Struct#order(:middle)") { |ns| int_struct(ns).new.order(:middle) }
    end
  end

  describe "MemoryPointer.from_string" do
    it "has type_size 1 and holds the bytes and a NUL" do
      expect_same_outcome("from_string") do |ns|
        m = ns::MemoryPointer.from_string("abc")
        [m.type_size, m.size, m.read_string, m.get_uint8(3)]
      end
    end

    it "raises TypeError for nil and takes to_str objects" do
      expect_same_outcome("from_string(nil)") { |ns| ns::MemoryPointer.from_string(nil) }
      expect_same_outcome("from_string(to_str)") do |ns|
        ns::MemoryPointer.from_string(Differential::ToStr.new("xy")).read_string
      end
    end
  end

  it "warns on a layout redefined, naming the class and the caller" do
    expect_same_outcome("layout redefinition warning") do |ns|
      err = StringIO.new
      old = $stderr
      $stderr = err
      begin
        Class.new(ns::Struct) do
          layout :a, :int
          layout :a, :int
        end
      ensure
        $stderr = old
      end
      err.string.sub(/#<Class:0x\h+>/, "CLASS").sub(/as in .*:\d+:in/, "as in FILE:in")
    end
  end

  it "refuses a struct callback field returning :string (TypeError), accepts others" do
    expect_same_outcome("callback field :string") do |ns|
      Class.new(ns::Struct) { layout :f, callback(%i[int int], :string) }
    end
    expect_same_outcome("callback field :int") do |ns|
      k = Class.new(ns::Struct) { layout :f, callback(%i[int int], :int), :x, :int }
      [k.size, k.offset_of(:x)]
    end
  end

  it "reads zero-length arrays from NULL as [] (and still raises for one element)" do
    expect_same_outcome("NULL arrays of 0") do |ns|
      n = ns::Pointer::NULL
      [n.read_array_of_uint(0), n.get_array_of_int64(0, 0), n.read_array_of_pointer(0), n.write_array_of_int([]).null?]
    end
    expect_same_outcome("NULL.read_array_of_uint(1)") { |ns| ns::Pointer::NULL.read_array_of_uint(1) }
  end

  it "AutoPointer#free twice: the release runs once, free returns nil" do
    expect_same_outcome("AutoPointer#free twice") do |ns|
      calls = []
      a = ns::AutoPointer.new(ns::Pointer.new(0x10), ->(p) { calls << p.address })
      [a.free, a.free, calls]
    end
  end

  it "Function#attach to a frozen non-module: FrozenError (its @ffi_functions is set first)" do
    frozen = change("1.16.0", "Function#attach records the function in the receiver's @ffi_functions first", FrozenError)
    expect_same_outcome("attach(5, name)", ffi_changed: frozen) do |ns|
      ns::Function.new(:int, [:int]) { |x| x }.attach(5, "x")
    end
    expect_same_outcome("attach(Object.new, name)") { |ns| ns::Function.new(:int, [:int]) { |x| x }.attach(Object.new, "x") }
  end

  it "FunctionType.new with parameters that are not an Array: TypeError" do
    expect_same_outcome("FunctionType.new(:int, 5)") { |ns| ns::FunctionType.new(:int, 5) }
  end

  it "finds a private `release` (AutoPointer and ManagedStruct)" do
    private_release = change("1.16.0", "AutoPointer/ManagedStruct find a private release", [1, 1])
    expect_same_outcome("private release", ffi_changed: private_release) do |ns|
      released = []
      auto = Class.new(ns::AutoPointer) do
        define_singleton_method(:release) { |_p| released << :auto }
        private_class_method :release
      end
      managed = Class.new(ns::ManagedStruct) do
        layout :a, :int
        define_singleton_method(:release) { |_p| released << :managed }
        private_class_method :release
      end
      auto.new(ns::Pointer.new(0x10)).free
      managed.new(ns::Pointer.new(0x20)).pointer.free
      [released.count(:auto), released.count(:managed)]
    end
  end

  it "sets @__ffi_callback__ on a Proc passed as a callback, the same Function each time" do
    expect_same_outcome("@__ffi_callback__") do |ns|
      m = Module.new do
        extend ns::Library
        ffi_lib "c"
        callback :cmp, %i[pointer pointer], :int
        attach_function :qsort, %i[pointer size_t size_t cmp], :void
      end
      buf = ns::MemoryPointer.new(:int, 3).write_array_of_int([3, 1, 2])
      pr = proc { |a, b| a.read_int <=> b.read_int }
      m.qsort(buf, 3, 4, pr)
      fn = pr.instance_variable_get(:@__ffi_callback__)
      m.qsort(buf, 3, 4, &pr)
      [fn.is_a?(ns::Function), pr.instance_variable_get(:@__ffi_callback__).equal?(fn), buf.read_array_of_int(3)]
    end
  end

  describe "Function#== (Pointer#== in the ffi gem)" do
    def function(ns) = ns::Function.new(:int, [:int]) { |x| x }

    it "nil equals only a NULL Function; Functions and Pointers by address" do
      expect_same_outcome("Function#==") do |ns|
        f = function(ns)
        g = ns::Function.new(:int, [:int], f)
        [f == nil, f == f, f == g, g == f, f == ns::Pointer.new(f.address), f == ns::Pointer.new(f.address + 1),
         f == function(ns), ns::Function.new(:int, [], ns::Pointer::NULL) == nil]
      end
    end

    it "is false for anything else, even an object with the same #address" do
      change = change("1.16.0", "Pointer#== is false for a non-pointer (it raised ArgumentError)", [false, false])
      expect_same_outcome("Function#== non-pointer", ffi_changed: change) do |ns|
        f = function(ns)
        same_address = Struct.new(:address).new(f.address)
        [f == f.address, f == same_address]
      end
    end
  end

  it "FFI.make_shareable (the ffi gem's helper)" do
    shareable = change("1.16.0", "FFI.make_shareable", true)
    expect_same_outcome("make_shareable", ffi_changed: shareable) do |ns|
      s = ns.make_shareable([+"a", { b: [1] }])
      Ractor.shareable?(s)
    end
  end

  describe "FFI::Type.new" do
    it "is a class whose subclasses are the type objects" do
      expect_same_outcome("Type classes") do |ns|
        [ns::Type.is_a?(Class), ns::Type::Builtin < ns::Type, ns::Type::Mapped < ns::Type, ns::Type::Array < ns::Type,
         ns::Type::Struct < ns::Type, ns::FunctionType < ns::Type, ns::Type::INT32.is_a?(ns::Type)]
      end
    end

    it "takes a native type code (void's size) or a Type (a copy), frozen" do
      frozen = change("1.16.0", "Type.new returns a frozen (Ractor-shareable) Type", [1, 1, true, 4, 4, true])
      expect_same_outcome("Type.new", ffi_changed: frozen) do |ns|
        code = ns::Type.new(5)
        copy = ns::Type.new(ns::Type::INT32)
        [code.size, code.alignment, code.frozen?, copy.size, copy.alignment, copy.frozen?]
      end
    end

    [Integer, :int, 1.5, nil, "int", 2**40, 2**70, -1].each do |arg|
      it "Type.new(#{arg.inspect})" do
        expect_same_outcome("Type.new(#{arg.inspect})") { |ns| ns::Type.new(arg).size }
      end
    end
  end

  it "ObjectSpace.memsize_of counts the native part of types, layouts and fields" do
    sizes = change("1.16.0", "memsize_of of FFI objects", true)
    expect_same_outcome("memsize_of", ffi_changed: sizes) do |ns|
      base = ObjectSpace.memsize_of(Object.new)
      conv = Module.new do
        extend ns::DataConverter
        def self.native_type = self::NATIVE
      end
      conv.const_set(:NATIVE, ns::Type::INT32)
      small = Class.new(ns::Struct) { layout :a, :pointer }
      large = Class.new(ns::Struct) { layout :a, :pointer, :b, :pointer, :c, :char, :i, :int }
      quiet = StringIO.new # (ffi 1.15.5 warns on reading a layout)
      stderr, $stderr = $stderr, quiet
      type = ObjectSpace.memsize_of(ns::Type.new(42))
      mapped = ObjectSpace.memsize_of(ns::Type::Mapped.new(conv))
      builtin = ObjectSpace.memsize_of(ns::Type::Builtin::CHAR)
      fn0 = ObjectSpace.memsize_of(ns::FunctionType.new(:int, []))
      fn1 = ObjectSpace.memsize_of(ns::FunctionType.new(:int, [:char]))
      layout_small = ObjectSpace.memsize_of(small.layout)
      [type > base, mapped > type, builtin > mapped, fn0 > base, fn1 > fn0, layout_small > base,
       ObjectSpace.memsize_of(large.layout) > layout_small, ObjectSpace.memsize_of(small.layout[:a]) > base].all?
    ensure
      $stderr = stderr if stderr
    end
  end

  it "attached_functions and attached_variables" do
    reveal = change("1.16.0", "Library#attached_functions / #attached_variables", true)
    expect_same_outcome("attached_functions", ffi_changed: reveal) do |ns|
      s = int_struct(ns)
      m = Module.new do
        extend ns::Library
        ffi_lib "c"
        attach_function :labs, [:long], :long
        attach_function :strlen, [:string], :size_t
        attach_function :printf, %i[string char varargs], :int
        attach_function :gettimeofday, [s.by_ref, :pointer], :int
        attach_variable :timezone, :long
        attach_variable :tz_struct, :timezone, s
      end
      f = m.attached_functions
      tv = f[:gettimeofday].param_types[0]
      [f.keys == %i[labs strlen printf gettimeofday], f[:labs].return_type == ns::Type::LONG, f[:strlen].param_types == [ns::Type::STRING],
       f[:printf].param_types == [ns::Type::STRING, ns::Type::CHAR, ns::Type::VARARGS],
       f[:printf].return_type == ns::Type::INT32, tv.is_a?(ns::Type::Mapped), tv.converter.is_a?(ns::StructByReference),
       m.attached_variables == { tz_struct: s, timezone: ns::Type::LONG },
       Module.new { extend ns::Library }.attached_functions == {}].all?
    end
  end

  it "FFI::LibraryPath and map_library_name with an ABI number or a root" do
    path = change("1.16.0", "FFI::LibraryPath", true)
    expect_same_outcome("LibraryPath", ffi_changed: path) do |ns|
      lp = ns.const_get(:LibraryPath)
      m = Module.new do
        extend ns::Library
        ffi_lib lp.new("m", abi_number: 6)
        attach_function :fabs, [:double], :double
      end
      [lp.new("foo", abi_number: 6).to_s == "libfoo.so.6", lp.new("foo", root: "/x").to_s == "/x/libfoo.so",
       ns.map_library_name(lp.new("m", abi_number: 6)) == "libm.so.6", ns.map_library_name("c") == ns::Library::LIBC,
       m.fabs(-2.5) == 2.5].all?
    end
  end

  describe "frozen memory" do
    refuse = change("1.16.0", "writes to frozen memory raise RuntimeError", RuntimeError)
    {
      "write_int" => ->(m) { m.write_int(1) },
      "put_pointer" => ->(m) { m.put_pointer(0, nil) },
      "put_bytes" => ->(m) { m.put_bytes(0, "a") },
      "put_string" => ->(m) { m.put_string(0, "a") },
      "write_array_of_int" => ->(m) { m.write_array_of_int([1]) },
      "slice(0, 4).write_int" => ->(m) { m.slice(0, 4).write_int(1) },
      "(m + 0).write_int" => ->(m) { (m + 0).write_int(1) },
      "order(:big).write_int" => ->(m) { m.order(:big).write_int(1) }
    }.each do |label, write|
      it "refuses #{label}" do
        expect_same_outcome("frozen #{label}", ffi_changed: refuse) { |ns| write.call(ns::MemoryPointer.new(8).freeze) }
      end
    end

    it "says 'invalid memory write' at the address" do
      expect(FiddleJit::MemoryPointer.new(8).freeze.then { |m| outcome(FiddleJit) { m.write_int(1) } }.last)
        .to match(/\Ainvalid memory write at address=0x\h{16}\z/)
    end

    it "still reads, and a frozen struct's fields are FrozenError, its frozen memory RuntimeError" do
      expect_same_outcome("frozen read") { |ns| ns::MemoryPointer.new(8).freeze.read_int }
      frozen_struct = change("1.16.0", "writing a field of a frozen Struct raises FrozenError", FrozenError)
      expect_same_outcome("frozen struct", ffi_changed: frozen_struct) { |ns| int_struct(ns).new.freeze[:v] = 1 }
      expect_same_outcome("frozen struct memory", ffi_changed: refuse) do |ns|
        s = int_struct(ns).new
        s.pointer.freeze
        s[:v] = 1
      end
    end
  end

  it "signed bitmasks with the top bit set read back without a remainder" do
    signed = change("1.16.0", "signed bitmasks with the most significant bit",
                    [-125, %i[a b top], -2**31 + 3, %i[a b top], 131])
    expect_same_outcome("signed bitmask", ffi_changed: signed) do |ns|
      m = Module.new do
        extend ns::Library
        bitmask ns::Type::INT8, :flags8, [:a, :b, :top, 7]
        bitmask ns::Type::INT, :flags32, [:a, :b, :top, 31]
        bitmask ns::Type::UINT8, :flags8u, [:a, :b, :top, 7]
      end
      # What a C function returning the int8/int32 mask gives: negative.
      f8, f32, u8 = m.enum_type(:flags8), m.enum_type(:flags32), m.enum_type(:flags8u)
      [f8.to_native(%i[a b top], nil), f8.from_native(-125, nil),
       f32.to_native(%i[a b top], nil), f32.from_native(-2**31 + 3, nil), u8.to_native(%i[a b top], nil)]
    end
  end

  it "FunctionType#return_type and #param_types are Type objects" do
    types = change("1.16.0", "FunctionType#return_type/#param_types return Types", true)
    expect_same_outcome("FunctionType types", ffi_changed: types) do |ns|
      f = ns::FunctionType.new(:int, %i[char ulong])
      f.return_type == ns::Type::Builtin::INT && f.param_types == [ns::Type::Builtin::CHAR, ns::Type::Builtin::ULONG]
    end
  end

  it "Pointer.new(:uint8, 2**64 - 1)" do
    max = change("1.16.0", "Pointer.new reads addresses as unsigned", [2**64 - 1, 1])
    expect_same_outcome("Pointer.new(:uint8, max)", ffi_changed: max) do |ns|
      p = ns::Pointer.new(:uint8, 2**64 - 1)
      [p.address, p.type_size]
    end
  end

  describe "read_array_of_string" do
    strings = ->(ns) { %w[a bb ccc].map { |s| ns::MemoryPointer.from_string(s) } }
    exposed = change("1.17.0", "Pointer#read_array_of_string", [%w[a bb ccc], %w[a bb], ["a", "bb", "ccc", nil]])

    it "reads up to the first NULL, or count elements" do
      expect_same_outcome("read_array_of_string", ffi_changed: exposed) do |ns|
        list = ns::MemoryPointer.new(:pointer, 4).write_array_of_pointer(strings.call(ns))
        [list.read_array_of_string, list.read_array_of_string(2), list.read_array_of_string(4)]
      end
    end

    it "raises IndexError out of bounds" do
      oob = change("1.17.0", "Pointer#read_array_of_string", IndexError)
      expect_same_outcome("read_array_of_string oob", ffi_changed: oob) do |ns|
        ns::MemoryPointer.new(:pointer, 2).read_array_of_string(3)
      end
    end
  end
end
