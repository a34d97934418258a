# frozen_string_literal: true

# The callback fixture library attached through a given namespace (FFI, the
# oracle, or FiddleJit), with the same declarations on both sides, for
# spec/callback_spec.rb and spec/fixtures/callback_child.rb.
module CallbackLibs
  SCALARS = %i[int8 uint8 int16 uint16 int32 uint32 int64 uint64 float double bool pointer].freeze

  def self.define(ns, path)
    Module.new do
      extend ns::Library
      ffi_lib path
      SCALARS.each do |t|
        callback :"cb_#{t}", [t], t
        attach_function :"cb_call_#{t}", [:"cb_#{t}", t], t
      end
      callback :s2i, [:string], :int
      attach_function :cb_call_string, %i[s2i string], :int
      callback :v2v, [], :void
      attach_function :cb_call_void, %i[v2v int], :int
      callback :many, %i[int8 uint8 int16 uint16 int32 uint32 int64 uint64 double double double double
                         double double double double double float bool pointer string int8 uint16], :double
      attach_function :cb_call_many, [:many], :double
      callback :i2i, [:int], :int
      attach_function :cb_loop_int, %i[i2i long], :long
      attach_function :cb_loop_void, %i[v2v long], :void
      attach_function :cb_store, [:i2i], :void
      attach_function :cb_call_stored, [:int], :int
      attach_function :cb_get_doubler, [], :i2i
      attach_function :cb_get_null, [], :i2i
      attach_function :cb_identity_fn, [:i2i], :i2i
      callback :maker, [], :i2i
      attach_function :cb_call_made, %i[maker int], :int
      callback :takes_fn, %i[i2i int], :int
      attach_function :cb_pass_doubler, %i[takes_fn int], :int
      attach_function :cb_thread_start, %i[i2i int int], :int
      attach_function :cb_thread_done, [], :int
      attach_function :cb_thread_result, [], :int
      # pthread_join with the GVL released, so the dispatcher can run the
      # pthread's callbacks meanwhile: waits for them without polling.
      attach_function :cb_thread_join, :cb_thread_result, [], :int, blocking: true
      attach_function :cb_ints_new, %i[size_t uint32], :pointer
      attach_function :cb_ints_get, %i[pointer size_t], :int
      attach_function :cb_read_int, [:pointer], :int
      attach_function :cb_ints_sorted, %i[pointer size_t], :int
      attach_function :cb_ints_free, [:pointer], :void
      callback :cmp, %i[pointer pointer], :int
      attach_function :qsort, [:pointer, :size_t, :size_t, :cmp], :void
      # The same C functions with plain :pointer parameters.
      attach_function :cb_call_int32_raw, :cb_call_int32, %i[pointer int32], :int32
      attach_function :qsort_raw, :qsort, %i[pointer size_t size_t pointer], :void
    end
  end

  # Sorts +n+ pseudo-random ints with a Ruby comparator; returns
  # [sorted?, first, last, comparator calls].
  def self.qsort_check(lib, n, seed: 7)
    buf = lib.cb_ints_new(n, seed)
    calls = 0
    lib.qsort(buf, n, 4) do |a, b|
      calls += 1
      lib.cb_read_int(a) <=> lib.cb_read_int(b)
    end
    [lib.cb_ints_sorted(buf, n), lib.cb_ints_get(buf, 0), lib.cb_ints_get(buf, n - 1), calls]
  ensure
    lib.cb_ints_free(buf) if buf
  end
end
