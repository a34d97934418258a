# frozen_string_literal: true

require_relative "spec_helper"

# The Function a callable passed for a callback parameter becomes, and the
# ffi gem's cache of it on the callable (@__ffi_callback__ for its first
# callback type, the Hash @__ffi_callback_table__ for others), which gems
# can see. fiddle_jit makes the common case (a new Proc, a type without
# options whose callables need no adapting) natively
# (src/ruby/function/callback_lookup.rs) and the rest in Ruby
# (Function.new_for_callback); both must leave what the ffi gem leaves.
RSpec.describe "callback Functions cached on the callable" do
  include Differential::Helpers

  # qsort with comparators of several callback types.
  def sorter(ns)
    Module.new do
      extend ns::Library
      ffi_lib "c"
      int_box = Class.new(ns::Struct) { layout :v, :int }
      const_set(:IntBox, int_box)
      callback :cmp, %i[pointer pointer], :int
      callback :cmp2, %i[pointer pointer], :int
      callback :cmp_boxes, [int_box.by_ref, int_box.by_ref], :int
      attach_function :qsort, %i[pointer size_t size_t cmp], :void
      attach_function :qsort2, :qsort, %i[pointer size_t size_t cmp2], :void
      attach_function :qsort_boxes, :qsort, %i[pointer size_t size_t cmp_boxes], :void
      attach_function :qsort_with_options, :qsort,
                      [:pointer, :size_t, :size_t, ns::FunctionType.new(:int, %i[pointer pointer], blocking: false)],
                      :void
    end
  end

  def ints(ns, *values) = ns::MemoryPointer.new(:int, values.size).write_array_of_int(values)

  # What the ffi gem lets a gem see of the cache on +callable+.
  def cache_of(ns, callable)
    first = callable.instance_variable_get(:@__ffi_callback__)
    table = callable.instance_variable_get(:@__ffi_callback_table__)
    [callable.instance_variables.sort, first.class == ns::Function, table&.size, table&.values&.map { |f| f.class == ns::Function }]
  end

  def by_value = proc { |a, b| a.read_int <=> b.read_int }

  def cached(callable) = callable.instance_variable_get(:@__ffi_callback__)

  # A sorter and an unsorted buffer.
  def sorter_and_buffer(ns) = [sorter(ns), ints(ns, 3, 1, 2)]

  # A sorter, a buffer it sorted with a new Proc, and the Proc.
  def sorted_with_new_proc(ns)
    m, buf = sorter_and_buffer(ns)
    pr = by_value
    m.qsort(buf, 3, 4, pr)
    [m, buf, pr]
  end

  it "a new Proc: its Function in @__ffi_callback__, the same one the next time" do
    expect_same_outcome("new Proc") do |ns|
      m, buf, pr = sorted_with_new_proc(ns)
      fn = cached(pr)
      m.qsort(buf, 3, 4, pr)
      m.qsort(buf, 3, 4, &pr)
      [cache_of(ns, pr), cached(pr).equal?(fn), buf.read_array_of_int(3)]
    end
  end

  it "a new Proc or block each call: each gets its own Function" do
    expect_same_outcome("new Procs") do |ns|
      m, buf = sorter_and_buffer(ns)
      procs = Array.new(3) { by_value }
      procs.each { |pr| m.qsort(buf, 3, 4, pr) }
      ascending = buf.read_array_of_int(3)
      2.times { m.qsort(buf, 3, 4) { |a, b| b.read_int <=> a.read_int } }
      [procs.map { |pr| cache_of(ns, pr) }, procs.map { |pr| cached(pr).address }.uniq.size, ascending,
       buf.read_array_of_int(3)]
    end
  end

  it "a Proc passed for a second callback type: that type's Function in @__ffi_callback_table__" do
    expect_same_outcome("second type") do |ns|
      m, buf, pr = sorted_with_new_proc(ns)
      first = cached(pr)
      m.qsort2(ints(ns, 9, 8), 2, 4, pr)
      second = pr.instance_variable_get(:@__ffi_callback_table__).values.first
      m.qsort2(buf, 3, 4, pr)
      m.qsort(buf, 3, 4, pr)
      [cache_of(ns, pr), cached(pr).equal?(first),
       pr.instance_variable_get(:@__ffi_callback_table__).values.first.equal?(second), first.address == second.address]
    end
  end

  it "a Method and an object with #call: cached on them" do
    expect_same_outcome("Method and #call") do |ns|
      m, buf = sorter_and_buffer(ns)
      comparator = Class.new do
        def compare(a, b) = b.read_int <=> a.read_int
        def call(a, b) = a.read_int <=> b.read_int
      end.new
      meth = comparator.method(:compare)
      m.qsort(buf, 3, 4, meth)
      descending = buf.read_array_of_int(3)
      m.qsort(buf, 3, 4, comparator)
      [cache_of(ns, meth), cache_of(ns, comparator), descending, buf.read_array_of_int(3)]
    end
  end

  it "a callback type whose callables are adapted (Struct.by_ref parameters), and one with options" do
    expect_same_outcome("adapted and options") do |ns|
      m = sorter(ns)
      boxes = ints(ns, 3, 1, 2)
      by_box = proc { |a, b| a[:v] <=> b[:v] }
      m.qsort_boxes(boxes, 3, 4, by_box)
      sorted_boxes = boxes.read_array_of_int(3)
      buf = ints(ns, 6, 5, 4)
      with_options = by_value
      m.qsort_with_options(buf, 3, 4, with_options)
      fn = cached(with_options)
      m.qsort_with_options(buf, 3, 4, with_options)
      [cache_of(ns, by_box), sorted_boxes, cache_of(ns, with_options), buf.read_array_of_int(3),
       cached(with_options).equal?(fn)]
    end
  end

  context "fiddle_jit-specific" do
    before { skip "fiddle_jit-only behaviour" if FIDDLE_JIT_ORACLE_MODE }

    it "the Function knows its callback type and is the type's memo" do
      m, _, pr = sorted_with_new_proc(FiddleJit)
      fn = cached(pr)
      type = m.find_type(:cmp)
      expect([fn.__callback_type.equal?(type), type.__callback_memo(pr).equal?(fn), fn.__callable.equal?(pr)])
        .to eq([true, true, true])
      expect(FiddleJit::Function.for_callback(type, pr)).to equal(fn)
    end

    # (The ffi gem 1.15.5 and 1.17 raise FrozenError setting the cache.)
    it "a frozen Proc: called, nothing cached on it, the type's memo gives the same Function again" do
      m = sorter(FiddleJit)
      buf = ints(FiddleJit, 3, 1, 2)
      pr = by_value.freeze
      m.qsort(buf, 3, 4, pr)
      type = m.find_type(:cmp)
      fn = type.__callback_memo(pr)
      m.qsort(buf, 3, 4, pr)
      expect([pr.instance_variables, buf.read_array_of_int(3), fn.class]).to eq([[], [1, 2, 3], FiddleJit::Function])
      expect(type.__callback_memo(pr)).to equal(fn)
    end

    it "Function.for_callback makes and caches one the same way" do
      type = sorter(FiddleJit).find_type(:cmp)
      pr = by_value
      fn = FiddleJit::Function.for_callback(type, pr)
      expect([cached(pr).equal?(fn), fn.__callback_type.equal?(type),
              FiddleJit::Function.for_callback(type, pr).equal?(fn)]).to eq([true, true, true])
    end

    it "an old Proc keeps the Function made for it through minor GCs (write barriers)" do
      require "objspace"
      m = sorter(FiddleJit)
      pr = by_value
      4.times { GC.start(full_mark: true, immediate_sweep: true) }
      expect(ObjectSpace.dump(pr)).to include('"old":true')
      m.qsort(ints(FiddleJit, 2, 1), 2, 4, pr)
      other = by_value # (takes the type's memo, so only the Proc holds its Function)
      m.qsort(ints(FiddleJit, 2, 1), 2, 4, other)
      3.times do
        Array.new(20_000) { Object.new }
        GC.start(full_mark: false, immediate_sweep: true)
      end
      buf = ints(FiddleJit, 5, 4, 6)
      m.qsort(buf, 3, 4, pr)
      expect([buf.read_array_of_int(3), cached(pr).__callable.equal?(pr)])
        .to eq([[4, 5, 6], true])
    end
  end
end
