# frozen_string_literal: true

module FiddleJit
  # A Pointer whose memory is released by a proc (or the class's `release`
  # method) exactly once: when the AutoPointer is garbage-collected, or by an
  # explicit #free. Same API as the ffi gem's FFI::AutoPointer.
  #
  #   ptr = FiddleJit::AutoPointer.new(LibC.malloc(16), LibC.method(:free))
  #
  # Difference from the ffi gem: after #free the AutoPointer reads as NULL,
  # so a later access raises NullPointerError instead of touching released
  # memory.
  class AutoPointer < Pointer
    def initialize(ptr, proc = nil, &_block)
      # A Buffer is not a Pointer in the ffi gem (this is its Pointer.new's error).
      raise TypeError, "wrong argument type, expected Integer or FFI::Pointer" if ptr.is_a?(Buffer)
      raise TypeError, "Invalid pointer" if ptr.nil? || !ptr.is_a?(Pointer) ||
                                            ptr.is_a?(MemoryPointer) || ptr.is_a?(AutoPointer)

      super(ptr.type_size, ptr)
      @releaser = if proc
                    raise RuntimeError, "proc must be callable" unless proc.respond_to?(:call)

                    Releaser.new(ptr, proc)
                  else
                    # As the ffi gem 1.16+: `release` may be private.
                    raise RuntimeError, "no release method defined" unless self.class.respond_to?(:release, true)

                    Releaser.new(ptr, self.class.method(:release))
                  end
      ObjectSpace.define_finalizer(self, @releaser)
      self
    end

    # Releases the memory now; later calls do nothing. Returns nil (the ffi
    # gem's value).
    def free
      @releaser.free
      __invalidate unless frozen?
      nil
    end

    def autorelease=(autorelease)
      raise FrozenError, "can't modify frozen #{self.class}" if frozen?

      @releaser.autorelease = autorelease
    end

    def autorelease? = @releaser.autorelease

    # Holds the original pointer, not the AutoPointer, so it can be the
    # finalizer without keeping the AutoPointer alive.
    class Releaser
      attr_accessor :autorelease

      def initialize(ptr, proc)
        @ptr = ptr
        @proc = proc
        @autorelease = true
      end

      def free
        return unless @ptr

        release(@ptr)
        @autorelease = false
        @ptr = nil
        @proc = nil
      end

      def call(*_args)
        release(@ptr) if @autorelease && @ptr
      end

      def release(ptr) = @proc.call(ptr)
    end
  end
end
