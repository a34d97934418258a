require "sassc"
puts SassC::Engine.new("$c: red;\n.a { .b { color: $c; } }", style: :compressed).render
begin
  SassC::Engine.new(".a { color: ", style: :compressed).render
rescue SassC::SyntaxError => e
  p e.class
end
p defined?(FiddleJit) ? :fiddle_jit : :ffi
