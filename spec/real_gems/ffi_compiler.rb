# ffi-compiler's workflow: a gem's C sources built by CompileTask into
# <arch>-<os>/lib<name>.so next to them, found at load by Loader.find.
require "ffi-compiler/compile_task"
require "tmpdir"

root = Dir.mktmpdir
Dir.mkdir(File.join(root, "ext"))
Dir.mkdir(File.join(root, "lib"))
File.write(File.join(root, "ext", "hello.c"), <<~C)
  #include <string.h>
  struct point { int x; double y; };
  int hello_add(int a, int b) { return a + b; }
  long hello_len(const char *s) {
  #ifdef HAVE_STRLEN
    return (long)strlen(s);
  #else
    return -1;
  #endif
  }
  double hello_sum(const struct point *p) { return p->x + p->y; }
  int hello_apply(int (*f)(int), int v) { return f(v); }
C
File.write(File.join(root, "lib", "hello.rb"), <<~RUBY)
  require "ffi-compiler/loader"
  module Hello
    extend FFI::Library
    LIBRARY = FFI::Compiler::Loader.find("hello")
    ffi_lib LIBRARY
    class Point < FFI::Struct
      layout :x, :int, :y, :double
    end
    callback :unary, [:int], :int
    attach_function :add, :hello_add, [:int, :int], :int
    attach_function :len, :hello_len, [:string], :long
    attach_function :sum, :hello_sum, [Point.by_ref], :double
    attach_function :apply, :hello_apply, [:unary, :int], :int
  end
RUBY

platform = FFI::Compiler::Platform.system
# (platform.name is FFI::Platform.name, a class name; CompileTask only matches it against /linux/)
p [platform.arch, platform.os, platform.name =~ /linux/, platform.mac?, platform.map_library_name("hello")]
Rake::FileUtilsExt.verbose_flag = false # rake would echo commands naming the temporary directory
Dir.chdir(root) do
  task = FFI::Compiler::CompileTask.new("ext/hello") do |t|
    p t.have_func?("strlen"), t.have_header?("string.h"), t.have_func?("fiddle_jit_no_such_function")
  end
  Rake::Task[:default].invoke
  p task.name, task.ext_dir
end
require File.join(root, "lib", "hello")
p Hello::LIBRARY.delete_prefix(root)
p Hello.add(2, 3), Hello.len("fiddle"), Hello.apply(->(v) { v * 7 }, 6)
pt = Hello::Point.new
pt[:x] = 2
pt[:y] = 0.5
p Hello.sum(pt)
begin
  FFI::Compiler::Loader.find("fiddle_jit_no_such_library", File.join(root, "lib")) # searches lib/ and the gem root
rescue LoadError => e
  p e.message
end
FileUtils.rm_rf(root)
p defined?(FiddleJit) ? :fiddle_jit : :ffi
