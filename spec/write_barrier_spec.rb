# frozen_string_literal: true

require_relative "spec_helper"

# Pointer, Function, Struct, Type (and its subclasses) and DynamicLibrary objects are
# write-barrier protected (they age like Ruby's own objects): every VALUE
# their native data takes after creation is recorded with a write barrier.
# Each example stores a new (young) object into an old one, runs minor GCs
# only, and uses it again: without the barrier the minor GC can free it
# while the old object still holds it (the Function and memo examples then
# crash; in the others a stray reference happens to keep it alive on
# this Ruby, so they only check that the path stays valid).
RSpec.describe "write barriers of native objects" do
  def age(object)
    4.times { GC.start(full_mark: true, immediate_sweep: true) }
    expect(ObjectSpace.dump(object)).to include('"old":true')
    object
  end

  def minor_gcs
    3.times do
      Array.new(20_000) { Object.new } # (fills the heap with garbage to sweep)
      GC.start(full_mark: false, immediate_sweep: true)
    end
  end

  before(:all) { require "objspace" }

  it "Function#to_ptr's Pointer, made after the Function is old" do
    fn = age(FiddleJit::Function.new(:int, [:int]) { |x| x })
    id = fn.to_ptr.__id__
    minor_gcs
    expect([fn.to_ptr.__id__, fn.to_ptr.address]).to eq([id, fn.address])
  end

  it "a callback type's memo of a new Proc's Function (a frozen Proc: nothing else holds the Function)" do
    lib = Module.new do
      extend FiddleJit::Library
      ffi_lib CALLBACK_FIXTURE_LIB
      callback :i2i, [:int], :int
      attach_function :cb_call_int32, %i[i2i int], :int
    end
    type = age(lib.find_type(:i2i))
    pr = proc { |x| x * 3 }.freeze
    expect(lib.cb_call_int32(pr, 5)).to eq(15)
    minor_gcs
    expect(type.__callback_memo(pr).call(2)).to eq(6)
  end

  it "DynamicLibrary#find_function's Symbol, found after the library is old" do
    lib = age(FiddleJit::DynamicLibrary.open(nil, FiddleJit::DynamicLibrary::RTLD_LAZY))
    id = lib.find_function("strtol").__id__
    minor_gcs
    sym = lib.find_function("strtol")
    expect([sym.__id__, sym.inspect[/name=\w+/]]).to eq([id, "name=strtol"])
  end

  it "a Struct keeps the memory it views, when re-initialized while old" do
    klass = Class.new(FiddleJit::Struct) { layout :a, :int, :b, :double }
    s = age(klass.new)
    s.__send__(:initialize, FiddleJit::MemoryPointer.new(klass.size).tap { |m| m.put_int(0, 7) })
    minor_gcs
    s[:b] = 2.5
    expect([s[:a], s[:b], s.pointer.read_int]).to eq([7, 2.5, 7])
  end

  it "Pointer.new(pointer) keeps the Pointer it views, when re-initialized while old" do
    ptr = age(FiddleJit::Pointer.new(0))
    ptr.__send__(:initialize, FiddleJit::MemoryPointer.new(:int).write_int(42))
    minor_gcs
    expect(ptr.read_int).to eq(42)
  end
end
