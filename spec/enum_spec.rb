# frozen_string_literal: true

require_relative "spec_helper"

RSpec.describe "enums (differential against the ffi gem)" do
  def self.enum_module(ns)
    Module.new do
      extend ns::Library
      ffi_lib MEMORY_FIXTURE_LIB
      enum :color, [:red, :green, 5, :blue]
      const_set(:E2, enum(:x, :y))
      attach_function :fx_point_sum, [:pointer], :int
      ffi_lib "c"
      attach_function :abs_color, :abs, [:color], :color
      attach_function :abs_int, :abs, [:int], :color
      const_set(:S, Class.new(ns::Struct))
    end
  end

  MODS = Differential.per_namespace { |ns| enum_module(ns) }

  def self.struct_for(mod)
    # A named module so the struct finds the enum typedef (enclosing_module).
    name = "FjEnumSpec#{mod.singleton_class.ancestors.include?(FFI::Library) ? "Ffi" : "Jit"}"
    Object.const_set(name, mod) unless Object.const_defined?(name)
    mod::S.layout :c, :color, :n, :int
  end
  MODS.each_value { |m| struct_for(m) }

  def same(label, &block)
    expect_same_outcome_on(MODS, label, &block)
  end

  it "arguments and results convert through the enum" do
    same("abs") { |m| [m.abs_color(:blue), m.abs_color(:green), m.abs_color(-5), m.abs_color(3), m.abs_int(-6)] }
    same("abs unknown symbol") { |m| m.abs_color(:nope) }
    same("abs float") { |m| m.abs_color(1.5) }
    same("abs to_int") { |m| m.abs_color(Differential::ToInt.new(-6)) }
  end

  it "enum_type, enum_value and the Enum API" do
    same("api") do |m|
      e = m.enum_type(:color)
      [e.symbols, e[:blue], e[6], e[99], e.to_h, e.tag, m.enum_value(:green), m.enum_value(:y),
       m::E2.symbols, e.to_native(:red, nil), e.from_native(42, nil)]
    end
    same("duplicate key") { |m| m.enum(:dup, %i[a a]) }
  end

  it "struct fields of an enum type" do
    same("struct enum") do |m|
      s = m::S.new
      r = [s[:c]]
      s[:c] = :blue
      r << s[:c] << s.pointer.get_int(0)
      s[:c] = 5
      r << s[:c]
      s.pointer.put_int(0, 77)
      r + [s[:c], m::S.offsets, m::S.size]
    end
    same("struct enum bad") { |m| m::S.new[:c] = :nope }
  end

  # Functions of 0 to 7 parameters (Native.attach_converting): each
  # position converted or not, the result converted or not; a wrong
  # argument count raises ArgumentError, worded with the function's name in
  # a FiddleJit::Library module (whose method, native, has arity -1 like
  # the ffi gem's).
  it "converts exactly the enum positions of functions of 0 to 7 parameters" do
    expect_same_outcome("arities") do |ns|
      m = Module.new do
        extend ns::Library
        ffi_lib "c"
        enum :color, [:red, :green, 5, :blue, :page, 4096]
        # getpagesize() for no parameter; labs(long) for more, the surplus
        # integer arguments ignored (x86-64 SysV and AAPCS64 alike).
        attach_function :page_color, :getpagesize, [], :color
        (1..7).each do |n|
          attach_function :"first#{n}", :labs, [:color] + [:long] * (n - 1), :long
          attach_function :"last#{n}", :labs, [:long] * (n - 1) + [:color], :color
        end
      end
      [m.page_color] + (1..7).flat_map do |n|
        last_args = n == 1 ? [:green] : [-5] + [0] * (n - 2) + [:green]
        wrong = (begin; m.public_send(:"first#{n}"); rescue ArgumentError => e; e.class; end)
        [m.public_send(:"first#{n}", :blue, *[0] * (n - 1)), m.public_send(:"last#{n}", *last_args), wrong]
      end
    end
    jit = Module.new do
      extend FiddleJit::Library
      ffi_lib "c"
      enum :color, [:red]
      (1..7).each { |n| attach_function :"first#{n}", :labs, [:color] + [:long] * (n - 1), :long }
    end
    expect((1..7).map { |n| jit.method(:"first#{n}").arity }).to all(eq(-1))
    expect { jit.first2(:red) }.to raise_error(ArgumentError, "wrong number of arguments (given 1, expected 2) calling first2")
  end
end
