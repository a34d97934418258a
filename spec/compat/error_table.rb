# frozen_string_literal: true

# Bad inputs to an ffi-gem binding, one line per case ("case: class: message"),
# plus the inspect strings of FFI objects. spec/ffi_errors_spec.rb runs this
# file under the ffi gem and under fiddle_jit/ffi and compares the output
# (addresses masked).
require "ffi"

module L
  extend FFI::Library
  ffi_lib FFI::Library::LIBC
  INTS = %i[int8 uint8 int16 uint16 int32 uint32 int64 uint64 long ulong size_t char uchar short int uint]
  (INTS + %i[float double bool string pointer]).each { |t| attach_function :"f_#{t}", :abs, [t], :int }
  enum :color, [:red, :green]
  attach_function :f_enum, :abs, [:color], :int
  attach_function :f_two, :abs, [:int, :int], :int
  attach_function :f_zero, :getpid, [], :int
  attach_function :f_argv, :abs, [:int] * 16, :int
  attach_function :f_varargs, :printf, [:string, :varargs], :int
  class A < FFI::Struct; layout :x, :int; end
  class B < FFI::Struct; layout :x, :int; end
  attach_function :f_byref, :abs, [A.by_ref], :int
  attach_function :f_byval, :abs, [A.by_value], :int
  callback :cb, [:int], :int
  attach_function :f_cb, :abs, [:cb], :int
end
def show(label)
  yield
  puts "#{label}: no error"
rescue Exception => e
  puts "#{label}: #{e.class.name.sub(/\AFiddleJit::/, "FFI::")}: #{e.message}"
end
bad = { "String" => "12", "nil" => nil, "Object" => Object.new.tap { |o| def o.inspect = "obj" ; def o.to_s = "obj" }, "2**64" => 2**64, "-2**64" => -2**64,
        "2**100" => 2**100, "true" => true, "Symbol" => :sym, "NaN" => Float::NAN, "Inf" => Float::INFINITY, "1e30" => 1e30, "Array" => [1] }
(L::INTS + %i[float double bool]).each do |t|
  bad.each { |k, v| show("#{t}(#{k})") { L.send(:"f_#{t}", v) } }
end
{ "Integer" => 5, "Object" => bad["Object"], "Symbol" => :sym, "NUL" => "a\0b", "true" => true, "Float" => 1.5 }.each do |k, v|
  show("string(#{k})") { L.f_string(v) }
end
{ "Integer" => 5, "Object" => bad["Object"], "Symbol" => :sym, "true" => true, "Float" => 1.5, "Struct B" => L::B.new }.each do |k, v|
  show("pointer(#{k})") { L.f_pointer(v) }
end
show("enum(:blue)") { L.f_enum(:blue) }
show("enum(String)") { L.f_enum("red") }
show("enum(nil)") { L.f_enum(nil) }
show("arity 0 for 2") { L.f_two }
show("arity 1 for 2") { L.f_two(1) }
show("arity 3 for 2") { L.f_two(1, 2, 3) }
show("arity 1 for 0") { L.f_zero(1) }
show("arity 15 for 16") { L.f_argv(*[1] * 15) }
show("arity 17 for 16") { L.f_argv(*[1] * 17) }
show("varargs no args") { L.f_varargs }
show("varargs odd") { L.f_varargs("x", :int) }
show("varargs bad type") { L.f_varargs("x", :nosuch, 1) }
show("varargs bad value") { L.f_varargs("%d", :int, "x") }
show("byref wrong struct") { L.f_byref(L::B.new) }
show("byval wrong struct") { L.f_byval(L::B.new) }
show("cb Integer") { L.f_cb(5) }
show("cb String") { L.f_cb("x") }
show("missing lib") { Module.new { extend FFI::Library; ffi_lib "fj_no_such_lib_xyz" } }
show("missing libs") { Module.new { extend FFI::Library; ffi_lib ["fj_no_such_a", "fj_no_such_b"] } }
show("missing lib path") { Module.new { extend FFI::Library; ffi_lib "/nonexistent/libx.so" } }
show("missing fn") { Module.new { extend FFI::Library; ffi_lib FFI::Library::LIBC; attach_function :fj_no_such_fn, [], :int } }
show("missing fn renamed") { Module.new { extend FFI::Library; ffi_lib FFI::Library::LIBC; attach_function :x, :fj_no_such_fn, [], :int } }
show("no ffi_lib") { Module.new { extend FFI::Library; attach_function :fj_no_such_fn2, [], :int } }
show("unknown type") { Module.new { extend FFI::Library; ffi_lib FFI::Library::LIBC; attach_function :abs, [:nosuch], :int } }
show("unknown ret") { Module.new { extend FFI::Library; ffi_lib FFI::Library::LIBC; attach_function :abs, [:int], :nosuch } }
show("missing var") { Module.new { extend FFI::Library; ffi_lib FFI::Library::LIBC; attach_variable :fj_no_such_var, :int } }
show("cb arity") { L.f_cb }
show("varargs arity") { L.f_varargs }
p L.method(:f_two).arity, L.method(:f_zero).arity, L.method(:f_argv).arity
# inspect/to_s name the FFI classes (addresses are masked by the spec)
p FFI::Pointer.new(16), FFI::MemoryPointer.new(4), FFI::Pointer::NULL, FFI::Type::INT32, FFI::Type::DOUBLE
puts FFI::Pointer.new(32).to_s, FFI::MemoryPointer.new(8).to_s
p FFI::AutoPointer.new(FFI::Pointer.new(8), proc {})
p L.ffi_libraries.first
# size_t (ffi: long) parameters of a function that also takes a callback
module L2
  extend FFI::Library
  ffi_lib FFI::Library::LIBC
  callback :cmp, %i[pointer pointer], :int
  attach_function :qsort, %i[pointer size_t size_t cmp], :void
end
show("qsort(String count)") { L2.qsort(nil, "x", 4, proc { 0 }) }
show("qsort(nil size)") { L2.qsort(nil, 0, nil, proc { 0 }) }
show("qsort(Integer base)") { L2.qsort(5, 0, 0, proc { 0 }) }
show("qsort(Integer callback)") { L2.qsort(nil, 0, 0, 5) }
show("qsort(arity)") { L2.qsort(nil, 0, 0) }
# Type objects: ffi's LONG/ULONG for long, size_t, off_t...; FFI::Type::LONG as a parameter type
p L.find_type(:size_t), L.find_type(:long), L.find_type(:int64), FFI.find_type(:off_t), FFI::Type::LONG, FFI::Type::ULONG
module L3
  extend FFI::Library
  ffi_lib FFI::Library::LIBC
  typedef :ssize_t, :my_ssize
  attach_function :labs_obj, :labs, [FFI::Type::LONG], FFI::Type::LONG
  attach_function :labs_td, :labs, [:my_ssize], :long
end
show("Type::LONG(String)") { L3.labs_obj("x") }
show("typedef ssize_t(nil)") { L3.labs_td(nil) }
p L3.labs_obj(-7), L3.labs_td(-8)
# Types the ffi gem attaches but cannot call: a :void parameter (ArgumentError
# when called), and a :strptr parameter, which it passes as a :string
module L4
  extend FFI::Library
  ffi_lib FFI::Library::LIBC
  attach_function :getpid_void, :getpid, [:void], :int
  attach_function :abs_int_void, :abs, [:int, :void], :int
  attach_function :strlen_strptr, :strlen, [:strptr], :size_t
end
show("void param()") { L4.getpid_void }
show("void param(nil)") { L4.getpid_void(nil) }
show("int, void param(1, 2)") { L4.abs_int_void(1, 2) }
show("void param, instance") { Object.new.extend(L4).getpid_void(1) }
p L4.strlen_strptr("four")
show("Function#dup") { FFI::Function.new(:int, [:int]) { |x| x }.dup }
show("Function#clone") { FFI::Function.new(:int, [:int], FFI::DynamicLibrary.open(nil, 0).find_function("abs")).clone }
