# frozen_string_literal: true

module FiddleJit
  # The method attach_function defines for a function with Enum, Bitmask or
  # DataConverter (Type::Mapped) parameters or result: a fixed-arity lambda
  # converting those arguments (#to_native) and the result (#from_native)
  # around the stub, which sits on a module of its own as
  # `__fiddle_jit_call` (an inline-cached call by a literal name).
  #
  # For `attach_function :paint, [:pointer, :color], :color` the lambda is
  #
  #   ->(a0, a1) { x = holder.__fiddle_jit_call(c0 ? c0.to_native(a0, nil) : a0, c1 ? c1.to_native(a1, nil) : a1)
  #                r ? r.from_native(x, nil) : x }
  #
  # with c0 nil: a test of a captured local per parameter, not a method call,
  # for a parameter that is not converted. One literal lambda per arity up
  # to MAX_LITERAL_ARITY, so such an attach compiles nothing (compiling a
  # factory costs ~200k instructions per new shape; ethon has several).
  # Wider ones get a factory compiled once per shape (arity, converted
  # positions, converted result) that makes the same lambda with only the
  # converted positions' calls.
  module ConvertingWrapper
    MAX_LITERAL_ARITY = 6
    LOCK = Mutex.new
    # shape (see .shape) => factory method name; main Ractor only.
    FACTORIES = {}
    # Wider signatures get the generic (splat) wrapper.
    MAX_SHAPED_ARITY = 32

    # The factories, one singleton method per shape.
    module Factories; end

    module_function

    # The wrapper lambda (Ractor-shareable where its converters are) for the
    # stub on +holder+ with +arg_convs+ (a converter or nil per parameter)
    # and +ret_conv+ (or nil). Makes +arg_convs+ and the converters shareable.
    def build(holder, arg_convs, ret_conv)
      FiddleJit.make_shareable(arg_convs)
      FiddleJit.make_shareable(ret_conv) if ret_conv
      body = if arg_convs.size <= MAX_LITERAL_ARITY
               literal(holder, arg_convs, ret_conv)
             elsif arg_convs.size <= MAX_SHAPED_ARITY
               Factories.__send__(factory(arg_convs, ret_conv), holder, arg_convs, ret_conv)
             else
               generic(holder, arg_convs, ret_conv)
             end
      FiddleJit.make_shareable(body)
    end

    # rubocop:disable Layout/LineLength
    def literal(holder, convs, r)
      c0, c1, c2, c3, c4, c5 = convs
      case convs.size
      when 0 then -> { x = holder.__fiddle_jit_call; r ? r.from_native(x, nil) : x }
      when 1 then ->(a0) { x = holder.__fiddle_jit_call(c0 ? c0.to_native(a0, nil) : a0); r ? r.from_native(x, nil) : x }
      when 2 then ->(a0, a1) { x = holder.__fiddle_jit_call(c0 ? c0.to_native(a0, nil) : a0, c1 ? c1.to_native(a1, nil) : a1); r ? r.from_native(x, nil) : x }
      when 3
        lambda do |a0, a1, a2|
          x = holder.__fiddle_jit_call(c0 ? c0.to_native(a0, nil) : a0, c1 ? c1.to_native(a1, nil) : a1, c2 ? c2.to_native(a2, nil) : a2)
          r ? r.from_native(x, nil) : x
        end
      when 4
        lambda do |a0, a1, a2, a3|
          x = holder.__fiddle_jit_call(c0 ? c0.to_native(a0, nil) : a0, c1 ? c1.to_native(a1, nil) : a1, c2 ? c2.to_native(a2, nil) : a2,
                                       c3 ? c3.to_native(a3, nil) : a3)
          r ? r.from_native(x, nil) : x
        end
      when 5
        lambda do |a0, a1, a2, a3, a4|
          x = holder.__fiddle_jit_call(c0 ? c0.to_native(a0, nil) : a0, c1 ? c1.to_native(a1, nil) : a1, c2 ? c2.to_native(a2, nil) : a2,
                                       c3 ? c3.to_native(a3, nil) : a3, c4 ? c4.to_native(a4, nil) : a4)
          r ? r.from_native(x, nil) : x
        end
      else
        lambda do |a0, a1, a2, a3, a4, a5|
          x = holder.__fiddle_jit_call(c0 ? c0.to_native(a0, nil) : a0, c1 ? c1.to_native(a1, nil) : a1, c2 ? c2.to_native(a2, nil) : a2,
                                       c3 ? c3.to_native(a3, nil) : a3, c4 ? c4.to_native(a4, nil) : a4, c5 ? c5.to_native(a5, nil) : a5)
          r ? r.from_native(x, nil) : x
        end
      end
    end
    # rubocop:enable Layout/LineLength

    def factory(arg_convs, ret_conv)
      # The shape as an Integer: arity, converted result, a bit per converted parameter.
      shape = arg_convs.size << 1 | (ret_conv ? 1 : 0)
      arg_convs.each_with_index { |c, i| shape |= 1 << (i + 8) if c }
      FACTORIES[shape] || LOCK.synchronize do
        FACTORIES[shape] ||= begin
          method = :"w#{FACTORIES.size}"
          Factories.module_eval(factory_source(method, arg_convs, ret_conv ? true : false), __FILE__, __LINE__)
          method
        end
      end
    end

    def factory_source(method, arg_convs, converts_result)
      args = Array.new(arg_convs.size) { |i| "a#{i}" }
      actuals = args.each_with_index.map { |a, i| arg_convs[i] ? "c#{i}.to_native(#{a}, nil)" : a }
      call = "holder.__fiddle_jit_call(#{actuals.join(", ")})"
      call = "r.from_native(#{call}, nil)" if converts_result
      locals = arg_convs.each_index.select { |i| arg_convs[i] }.map { |i| "c#{i} = convs[#{i}]\n" }
      "def self.#{method}(holder, convs, r)\n#{locals.join}lambda { |#{args.join(", ")}| #{call} }\nend"
    end

    def generic(holder, convs, ret_conv)
      lambda do |*args|
        args = args.each_with_index.map { |a, i| (c = convs[i]) ? c.to_native(a, nil) : a }
        r = holder.__fiddle_jit_call(*args)
        ret_conv ? ret_conv.from_native(r, nil) : r
      end
    end
  end
end
