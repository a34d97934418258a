# frozen_string_literal: true

require_relative "spec_helper"

# Library features added for the ffi drop-in, differential against the ffi
# gem in-process (the FFI namespace itself is tested in child processes by
# spec/compat_spec.rb, since this process has the real ffi gem loaded).
RSpec.describe "ffi drop-in library features" do
  def both
    [FFI, FiddleJit].map { |ns| yield ns }
  end

  def lib(ns, &block)
    Module.new.tap do |m|
      m.extend ns::Library
      m.ffi_lib ns::Library::LIBC
      m.module_eval(&block)
    end
  end

  it "bitmask converts flags to and from Symbols like the ffi gem" do
    a, b = both do |ns|
      m = lib(ns) { bitmask :flags, [:a, :b, :c, 5, :d] }
      bm = m.enum_type(:flags)
      [bm[:a, :c], bm[:d], bm[19], bm.to_native([:a, :d], nil), bm.to_native(nil, nil), bm.from_native(35, nil),
       bm.symbols, m.enum_value(:c)]
    end
    expect(b).to eq(a)
    expect { FiddleJit::Bitmask.new([:a, :a]) }.to raise_error(ArgumentError)
  end

  it "bitmask and DataConverter arguments and returns" do
    a, b = both do |ns|
      conv = Module.new do
        extend ns::DataConverter
        native_type ns::Type::INT
        def self.to_native(v, _ctx) = Integer(v.to_s.delete("#"))
        def self.from_native(v, _ctx) = "##{v}"
      end
      m = lib(ns) do
        bitmask :bits, [:one, :two, :four]
        attach_function :abs, [conv], conv
        attach_function :labs_bits, :labs, [:bits], :bits
      end
      [m.abs("#-12"), m.labs_bits([:one, :four]), m.labs_bits(3)]
    end
    expect(b).to eq(a)
    expect(a).to eq(["#12", %i[one four], %i[one two]])
  end

  it "DataConverter and Bitmask struct fields" do
    a, b = both do |ns|
      conv = Module.new do
        extend ns::DataConverter
        native_type :uint16
        def self.to_native(v, _ctx) = v * 2
        def self.from_native(v, _ctx) = v / 2
      end
      m = lib(ns) { bitmask :bits, [:x, :y, :z] }
      mod = Module.new.tap { |mm| mm.extend ns::Library }
      mod.const_set(:Bits, m.enum_type(:bits))
      klass = Class.new(ns::Struct) { layout :c, conv, :pad, :uint16, :b, m.enum_type(:bits) }
      s = klass.new
      s[:c] = 21
      s[:b] = [:x, :z]
      [s[:c], s.pointer.get_uint16(0), s[:b], s.pointer.get_int32(4), klass.size]
    end
    expect(b).to eq(a)
  end

  it "attach_variable reads and writes C globals" do
    a, b = both do |ns|
      m = lib(ns) { attach_variable :optind, :int }
      before = m.optind
      m.optind = 11
      after = m.optind
      m.optind = before
      [before, after, m.optind]
    end
    expect(b).to eq(a)
    expect { lib(FiddleJit) { attach_variable :no_such_var_x, :int } }.to raise_error(FiddleJit::NotFoundError, /no_such_var_x/)
  end

  it "ffi_convention :stdcall is recorded and ignored on x86-64, as in the ffi gem" do
    a, b = both do |ns|
      m = lib(ns) do
        ffi_convention :stdcall
        attach_function :strlen, [:string], :size_t
      end
      [m.ffi_convention, m.strlen("abcd")]
    end
    expect(b).to eq(a)
  end

  it ":strptr returns [String, Pointer]" do
    ENV["FJ_STRPTR"] = "v1"
    a, b = both do |ns|
      m = lib(ns) { attach_function :getenv, [:string], :strptr }
      s, p = m.getenv("FJ_STRPTR")
      n, q = m.getenv("FJ_STRPTR_NOPE")
      [s, p.is_a?(ns::Pointer), p.null?, n, q.null?]
    end
    expect(b).to eq(a)
  end

  it "find_type returns Type objects; typedef :enum defines an enum" do
    a, b = both do |ns|
      e = nil
      m = lib(ns) { e = typedef :enum, :color, [:red, :green] }
      t = m.find_type(:int)
      [t.size, t.alignment, m.find_type(:size_t).size, e.symbols, e[:green], ns::Type::UINT64.size]
    end
    expect(b).to eq(a)
  end

  it "typedef'd builtin parameters and results convert as their builtin; a later typedef of the name wins" do
    a, b = both do |ns|
      m = lib(ns) do
        typedef :string, :text
        typedef :size_t, :length
        attach_function :strlen, [:text], :length
      end
      r = [m.strlen("four")]
      r << (begin; m.strlen(5); rescue StandardError => e; e.class; end)
      # The same written signature, retyped: no signature kept from before.
      m.typedef :pointer, :text
      m.attach_function :strlen, [:text], :length
      r << m.strlen(ns::MemoryPointer.from_string("abc"))
      r << (begin; m.strlen("abc"); rescue StandardError => e; e.class; end)
      # Another module's :text is its own.
      other = lib(ns) do
        typedef :int, :text
        attach_function :abs, [:text], :int
      end
      r << other.abs(-3)
    end
    expect(b).to eq(a)
  end

  it "a typedef of a struct or enum type resolves anew after the name is typedef'd again" do
    a, b = both do |ns|
      point = Class.new(ns::Struct) { layout :x, :long }
      other = Class.new(ns::Struct) { layout :x, :long }
      m = lib(ns) do
        typedef point.by_ref, :handle
        enum :sign, [:neg, -7, :pos, 7]
        attach_function :labs, [:handle], :long
        attach_function :abs, [:sign], :int
      end
      pt = point.new.tap { |p| p[:x] = -5 }
      ot = other.new.tap { |p| p[:x] = -6 }
      call = ->(f, v) { m.public_send(f, v) && :ok rescue $!.class }
      r = [call.(:labs, pt), call.(:labs, ot), m.abs(:neg)]
      m.typedef other.by_ref, :handle
      m.enum :sign, [:neg, -2, :pos, 2]
      m.attach_function :labs2, :labs, [:handle], :long
      m.attach_function :abs2, :abs, [:sign], :int
      r + [call.(:labs2, pt), call.(:labs2, ot), m.abs2(:neg), m.abs(:neg)]
    end
    expect(b).to eq(a)
  end

  it "DynamicLibrary#find_function: a frozen Symbol named as asked, nil for a missing name" do
    a, b = both do |ns|
      lib = ns::DynamicLibrary.open(nil, ns::DynamicLibrary::RTLD_LAZY)
      found = [lib.find_function("strlen"), lib.find_function("strlen"), lib.find_symbol("strlen")]
      found.map { |s| [s.class.name.split("::").last, s.address == found[0].address, s.inspect[/name=\w+/]] } +
        [lib.find_function("fj_no_such_function"), lib.find_function("fj_no_such_function")] +
        [:strlen, nil, 5, "str\0len"].map { |bad| (begin; lib.find_function(bad); rescue StandardError => e; [e.class, e.message]; end) } +
        [lib.find_function("strlen".b).address == found[0].address, lib.find_function("\xff".b)]
    end
    expect(b).to eq(a)
  end

  it "DynamicLibrary#find_function keeps what it found on the (frozen) library, per name and library" do
    lib = FiddleJit::DynamicLibrary.open(nil, FiddleJit::DynamicLibrary::RTLD_LAZY)
    other = FiddleJit::DynamicLibrary.open(nil, FiddleJit::DynamicLibrary::RTLD_LAZY)
    strlen = lib.find_function("strlen")
    expect(lib).to be_frozen
    expect([lib.find_function(+"strlen"), lib.find_variable("strlen")]).to all(equal(strlen))
    expect(other.find_function("strlen")).not_to equal(strlen)
    expect(lib.find_function("strnlen")).not_to equal(strlen)
    expect([strlen, strlen.instance_variable_get(:@name)]).to all(be_frozen)
    expect(Ractor.shareable?(strlen)).to be(true)
    GC.start
    expect(lib.find_function("strlen").inspect).to eq(strlen.inspect)
  end

  it "typed enums (enum Type::UINT8, ...)" do
    a, b = both do |ns|
      m = lib(ns) { enum ns::Type::UINT8, :small, [:s0, :s1] }
      e = m.enum_type(:small)
      klass = Class.new(ns::Struct) { layout :a, e, :b, :uint8 }
      s = klass.new
      s[:a] = :s1
      [e.native_type.size, klass.size, s[:a], s.pointer.get_uint8(0)]
    end
    expect(b).to eq(a)
  end
end
