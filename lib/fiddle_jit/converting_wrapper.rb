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
  #   c1 = convs[1]
  #   lambda { |a0, a1| r.from_native(holder.__fiddle_jit_call(a0, c1.to_native(a1, nil)), nil) }
  #
  # made by a factory compiled once per shape (arity, converted positions,
  # converted result), so an attach costs a factory call, not a compile.
  # (Loaded with the rest: from SourceCache's binary, cheaper than
  # compiling this file on first use.)
  module ConvertingWrapper
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
      body = if arg_convs.size > MAX_SHAPED_ARITY
               generic(holder, arg_convs, ret_conv)
             else
               Factories.__send__(factory(arg_convs, ret_conv), holder, arg_convs, ret_conv)
             end
      FiddleJit.make_shareable(body)
    end

    def factory(arg_convs, ret_conv)
      # The shape as an Integer: arity, converted result, a bit per converted parameter.
      shape = arg_convs.size << 1 | (ret_conv ? 1 : 0)
      i = 0
      while i < arg_convs.size
        shape |= 1 << (i + 8) if arg_convs[i]
        i += 1
      end
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
