# frozen_string_literal: true

# Function's wrapper builders for functions with callback parameters or a
# callback return, loaded (by function.rb) on the first such attach rather
# than at require time.
module FiddleJit
  class Function
    class << self
      private

      def factory_source(method, n, cb_indexes, returns_callback)
        last_cb = cb_indexes.last
        formals = (0...n).map { |i| i == last_cb ? "a#{i} = ::FiddleJit::Function::UNSET" : "a#{i}" }
        lines = ["def self.#{method}(holder, message, types, ret_type)"]
        cb_indexes.each_with_index { |i, k| lines << "  t#{i} = types[#{k}]" }
        lines << "  lambda do |#{[*formals, "&blk"].join(", ")}|"
        if last_cb
          lines << "    if ::FiddleJit::Function::UNSET.equal?(a#{last_cb})"
          lines << "      raise ::ArgumentError, message unless blk"
          lines << "      a#{last_cb} = blk"
          lines << "    end"
        end
        cb_indexes.each do |i|
          lines << "    f#{i} = ::FiddleJit::Function.for_callback(t#{i}, a#{i})"
        end
        actuals = (0...n).map { |i| cb_indexes.include?(i) ? "(::FiddleJit::Function === f#{i} ? f#{i}.to_ptr : f#{i})" : "a#{i}" }
        lines << "    frame = ::FiddleJit::Native.callback_frame_push"
        lines << "    begin"
        lines << "      r = holder.__fiddle_jit_call(#{actuals.join(", ")})"
        lines << "    ensure"
        lines << "      e = ::FiddleJit::Native.callback_frame_pop(frame)"
        lines << "    end"
        lines << "    raise e if e"
        # f<i> are still referenced here: the Functions lived through the call.
        lines << "    #{cb_indexes.map { |i| "f#{i}" }.join(" && ")}" unless cb_indexes.empty?
        lines << (returns_callback ? "    ::FiddleJit::Function.from_native(ret_type, r)" : "    r")
        lines << "  end"
        lines << "end"
        lines.join("\n")
      end

      def wrapper_body(mod, hidden, name, params, cb_indexes, ret_type)
        arity = params.length
        last_cb = cb_indexes.last
        lambda do |args, blk|
          args.insert(last_cb, blk) if blk && last_cb && args.length == arity - 1
          unless args.length == arity
            raise ArgumentError, Function.send(:arity_message, mod, args.length, arity, name)
          end

          # The stub gets each Function's cached Pointer (its inline fast
          # path); `fns` keeps the Functions alive until C has returned.
          fns = cb_indexes.map do |i|
            fn = Function.for_callback(params[i], args[i])
            args[i] = fn.is_a?(Function) ? fn.to_ptr : fn
            fn
          end
          frame = Native.callback_frame_push
          begin
            result = mod.__send__(hidden, *args)
          ensure
            exc = Native.callback_frame_pop(frame)
          end
          raise exc if exc

          fns.clear # (a use after the call: the Functions were live throughout)

          ret_type ? Function.from_native(ret_type, result) : result
        end
      end
    end
  end
end
