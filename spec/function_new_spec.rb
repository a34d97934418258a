# frozen_string_literal: true

require_relative "spec_helper"

# Function.new (native in fiddle_jit: src/ruby/function/constructor.rs),
# differential against the ffi gem: its argument forms, on subclasses, and
# the exceptions for bad arguments. Signatures of builtin Symbols take the
# native fast path once seen (each example makes its Functions twice, so
# the second is made there); options, Type objects and first-seen
# signatures take the Ruby path.
RSpec.describe "Function.new" do
  include Differential::Helpers

  # [made an instance of +klass+ exactly, what calling it returns] for each
  # of the two Functions +make+ returns.
  def made(klass, args, &make)
    Array.new(2) { make.call }.map { |f| [f.instance_of?(klass), f.call(*args)] }
  end

  it "takes a block, a Proc, a Method, an object with #call, or a Pointer to call" do
    expect_same_outcome("Function.new callables") do |ns|
      add = ->(a, b) { a + b }
      callable = Object.new
      def callable.call(a, b) = a * b
      fn = ns::Function.new(:int, %i[int int], add)
      [made(ns::Function, [2, 3]) { ns::Function.new(:int, %i[int int]) { |a, b| a - b } },
       made(ns::Function, [2, 3]) { ns::Function.new(:int, %i[int int], add) },
       made(ns::Function, [2, 3]) { ns::Function.new(:int, %i[int int], add.method(:call)) },
       made(ns::Function, [2, 3]) { ns::Function.new(:int, %i[int int], callable) },
       made(ns::Function, [2, 3]) { ns::Function.new(:int, %i[int int], fn) },
       made(ns::Function, [2, 3]) { ns::Function.new(:int, %i[int int], ns::Pointer.new(fn.address)) },
       made(ns::Function, [2, 3]) { ns::Function.new(ns::Type::INT32, [ns::Type::INT32, :int]) { |a, b| a << b } }]
    end
  end

  it "takes options after the callable, or before a block (a Hash, keywords, nil for none)" do
    expect_same_outcome("Function.new options") do |ns|
      add = ->(a, b) { a + b }
      [made(ns::Function, [4, 5]) { ns::Function.new(:int, %i[int int], { blocking: false }) { |a, b| a * b } },
       made(ns::Function, [4, 5]) { ns::Function.new(:int, %i[int int], blocking: false) { |a, b| a - b } },
       made(ns::Function, [4, 5]) { ns::Function.new(:int, %i[int int], {}) { |a, b| a | b } },
       made(ns::Function, [4, 5]) { ns::Function.new(:int, %i[int int], add, { blocking: false }) },
       made(ns::Function, [4, 5]) { ns::Function.new(:int, %i[int int], add, blocking: false) },
       made(ns::Function, [4, 5]) { ns::Function.new(:int, %i[int int], add, {}) },
       made(ns::Function, [4, 5]) { ns::Function.new(:int, %i[int int], add, nil) },
       made(ns::Function, [4, 5]) { ns::Function.new(:int, %i[int int], nil) { |a, b| a & b } }]
    end
  end

  it "on a subclass makes instances of the subclass, in every form" do
    expect_same_outcome("Function.new on a subclass") do |ns|
      sub = Class.new(ns::Function)
      add = ->(a, b) { a + b }
      fn = sub.new(:int, %i[int int], add)
      [made(sub, [6, 7]) { sub.new(:int, %i[int int]) { |a, b| a - b } },
       made(sub, [6, 7]) { sub.new(:int, %i[int int], add) },
       made(sub, [6, 7]) { sub.new(:int, %i[int int], { blocking: false }) { |a, b| a * b } },
       made(sub, [6, 7]) { sub.new(:int, %i[int int], add, blocking: false) },
       made(sub, [6, 7]) { sub.new(:int, %i[int int], fn) },
       made(sub, [6, 7]) { sub.new(:int, %i[int8 int16]) { |a, b| a + b } },
       made(ns::Function, [6, 7]) { ns::Function.new(:int, %i[int int], fn) }]
    end
  end

  # What each call raises, or returns.
  def outcomes(fn, *arg_lists)
    arg_lists.map do |args|
      fn.call(*args)
    rescue ArgumentError => e
      [e.class, e.message]
    end
  end

  it "takes :void parameters: C calls it as int f(void), the Ruby callable gets nil there, #call raises the ffi gem's errors" do
    expect_same_outcome("Function.new with :void parameters") do |ns|
      got = []
      none = ns::Function.new(:int, [:void]) { |*a| got << a; 42 }
      one = ns::Function.new(:int, %i[int void]) { |a, b| got << [a, b]; a * 2 }
      # Calling their C addresses through Functions without the :void.
      [ns::Function.new(:int, [], none.to_ptr).call, ns::Function.new(:int, [:int], one.to_ptr).call(21), got,
       none.null?, outcomes(none, [], [1]), outcomes(one, [1], [1, 2]),
       outcomes(ns::Function.new(:int, [:void], none.to_ptr), [], [nil])]
    end
  end

  {
    "too few arguments" => ->(ns) { ns::Function.new(:int) },
    "too many arguments" => ->(ns) { ns::Function.new(:int, [], nil, {}, 1) },
    "a block and a fourth argument" => ->(ns) { ns::Function.new(:int, [], proc { 1 }, {}) { 2 } },
    "neither a callable nor a block" => ->(ns) { ns::Function.new(:int, []) },
    "nil and no block" => ->(ns) { ns::Function.new(:int, [], nil, {}) },
    "false" => ->(ns) { ns::Function.new(:int, [], false) },
    "an Integer" => ->(ns) { ns::Function.new(:int, [], 5) },
    "a String" => ->(ns) { ns::Function.new(:int, [], "x") },
    "an unknown type" => ->(ns) { ns::Function.new(:nope, []) { 1 } },
    "parameters not an Array" => ->(ns) { ns::Function.new(:int, 5) { 1 } },
    "nil parameters" => ->(ns) { ns::Function.new(:int, nil) { 1 } }
  }.each do |what, make|
    it "raises the ffi gem's exception for #{what}" do
      raised = expect_same_outcome("Function.new: #{what}") { |ns| make.call(ns) }
      expect(raised).to be_a(StandardError)
    end
  end
end
