# frozen_string_literal: true

# An unmodified ffi-gem binding of libm (see libc_binding.rb).
require "ffi"
# long double results are BigDecimals. From Ruby 3.4 on bigdecimal is a
# bundled gem, which the ffi gem's own rb_require cannot load, so an ffi
# user there requires it first (fiddle_jit would load it either way).
require "bigdecimal"

module CompatLibM
  extend FFI::Library
  ffi_lib ["m", "libm.so.6"]

  typedef :double, :real
  typedef :float, :realf

  # Which libm function to run, as an enum converted both ways.
  enum :op, [:op_sin, :op_cos, 5, :op_tan]

  class DivResult < FFI::Struct
    layout :quot, :int, :rem, :int
  end

  attach_function :sin, [:real], :real
  attach_function :cos, [:real], :real
  attach_function :pow, [:real, :real], :real
  attach_function :sqrtf, [:realf], :realf
  attach_function :floor, [:double], :double
  attach_function :frexp, [:double, :pointer], :double
  attach_function :modf, [:double, :pointer], :double
  attach_function :ldexp, [:double, :int], :double
  attach_function :ilogb, [:double], :int
  attach_function :lround, [:double], :long
  attach_function :nan, [:string], :double
  attach_function :hypot, [:double, :double], :double
  attach_function :fma, [:double, :double, :double], :double
  # long double: BigDecimal results (ffi 1.15.5), x87 80-bit precision.
  attach_function :sqrtl, [:long_double], :long_double
  attach_function :ldexpl, [:long_double, :int], :long_double
  attach_function :fmal, [:long_double, :long_double, :long_double], :long_double
end

M = CompatLibM
fmt = ->(x) { x.nan? ? "nan" : format("%.17g", x) }
puts "sin/cos: #{fmt[M.sin(1.0)]} #{fmt[M.cos(0.5)]} #{fmt[M.sin(0)]}"
puts "pow: #{fmt[M.pow(2, 10)]} #{fmt[M.pow(2.5, -1.5)]}"
puts "sqrtf: #{fmt[M.sqrtf(2.0)]}"
puts "floor: #{fmt[M.floor(-2.5)]} #{fmt[M.floor(1e300)]}"
exp = FFI::MemoryPointer.new(:int)
puts "frexp: #{fmt[M.frexp(48.0, exp)]} exp=#{exp.read_int}"
ip = FFI::MemoryPointer.new(:double)
puts "modf: #{fmt[M.modf(3.75, ip)]} int=#{fmt[ip.read_double]}"
puts "ldexp: #{fmt[M.ldexp(0.75, 4)]} ilogb=#{M.ilogb(1024.0)} lround=#{M.lround(-2.5)} nan=#{fmt[M.nan("")]}"
puts "hypot/fma: #{fmt[M.hypot(3, 4)]} #{fmt[M.fma(2, 3, 4)]}"
puts "long double: #{M.sqrtl(2).inspect} #{M.ldexpl(1.5, 16000).exponent} #{M.fmal(M.sqrtl(2), M.sqrtl(2), -2).inspect}"
op = M.enum_type(:op)
puts "enum: #{op.symbols.inspect} #{op[:op_tan]} #{op[5].inspect} #{M.enum_value(:op_cos)}"
r = M::DivResult.new
r[:quot] = 7
r[:rem] = -1
puts "struct: #{r[:quot]} #{r[:rem]} size=#{M::DivResult.size} members=#{M::DivResult.members.inspect}"
puts "find_type: #{M.find_type(:real).size} #{M.find_type(:realf).size}"
begin
  M.sin("x")
rescue TypeError => e
  puts "sin(\"x\"): TypeError"
end
