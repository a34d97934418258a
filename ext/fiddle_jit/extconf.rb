# frozen_string_literal: true

# Writes a Makefile that builds the Rust crate with cargo. mkmf's
# create_makefile would produce an empty DLLIB for a crate with no C sources,
# and the rb_sys gem is not available offline, so the Makefile is ours.
#
#   make          cargo build --release, then copy the .so to
#                 lib/fiddle_jit/<major.minor>/fiddle_jit.so
#   make install  copy the .so to $(DESTDIR)$(sitearchdir)/fiddle_jit/<major.minor>/
#   make clean    remove the copied .so (cargo's cache is kept)
#
# The <major.minor> directory is where lib/fiddle_jit.rb looks, so one
# checkout (or one platform gem) holds a build per Ruby side by side.
require "rbconfig"
require "tmpdir"

ext_dir = __dir__
crate_dir = File.expand_path("../..", ext_dir)

# What building from source needs, checked before cargo runs so that a
# machine without it gets one message naming everything to install rather
# than a cargo or bindgen backtrace halfway through. (Platform gems ship the
# compiled extension and never run this file.)
module FiddleJitBuildTools
  module_function

  def executable?(cmd)
    return File.executable?(cmd) && !File.directory?(cmd) if cmd.include?(File::SEPARATOR)

    ENV.fetch("PATH", "").split(File::PATH_SEPARATOR).any? do |dir|
      path = File.join(dir, cmd)
      File.executable?(path) && !File.directory?(path)
    end
  end

  def output_of(*cmd)
    out = IO.popen(cmd, err: File::NULL, &:read)
    $?.success? ? out : nil
  rescue SystemCallError
    nil
  end

  # The newest rust-version among the crates in Cargo.lock, recorded as
  # Cargo.toml's own rust-version.
  def minimum_rust(crate_dir)
    File.read(File.join(crate_dir, "Cargo.toml"))[/^rust-version\s*=\s*"([\d.]+)"/, 1] || "1.88"
  end

  def rust_problem(crate_dir)
    minimum = minimum_rust(crate_dir)
    cargo = ENV["CARGO"] || "cargo"
    rustc = ENV["RUSTC"] || "rustc"
    wanted = "Rust #{minimum} or newer with cargo, from https://rustup.rs " \
             "(distribution packages may be older: Debian 12 has 1.63)"
    return "#{wanted}; no `#{cargo}` on PATH" unless executable?(cargo)

    version = output_of(rustc, "--version").to_s[/\Arustc (\d+\.\d+\.\d+)/, 1]
    return "#{wanted}; `#{rustc} --version` did not run" unless version
    return nil if Gem::Version.new(version) >= Gem::Version.new(minimum)

    "#{wanted}; found rustc #{version} (with rustup: `rustup update`)"
  end

  # Where clang-sys (bindgen's loader) looks, in the same order.
  def libclang_found?
    names = ["libclang.so", "libclang-*.so", "libclang.so.*", "libclang-*.so.*", "libclang.dylib"]
    in_dir = ->(dir) { names.any? { |n| !Dir.glob(File.join(dir, n)).empty? } }
    if (given = ENV["LIBCLANG_PATH"])
      return File.file?(given) || in_dir.call(given)
    end

    dirs = []
    llvm_config = ENV["LLVM_CONFIG_PATH"] || "llvm-config"
    if (prefix = output_of(llvm_config, "--prefix")&.lines&.first&.strip)
      dirs += %w[bin lib lib64].map { |d| File.join(prefix, d) }
    end
    dirs += ENV.fetch("LD_LIBRARY_PATH", "").split(File::PATH_SEPARATOR)
    globs = if RbConfig::CONFIG["host_os"].include?("darwin")
              xcode = output_of("xcode-select", "--print-path")&.strip
              dirs << File.join(xcode, "Toolchains/XcodeDefault.xctoolchain/usr/lib") if xcode
              %w[/usr/local/opt/llvm*/lib/llvm*/lib /Library/Developer/CommandLineTools/usr/lib
                 /Applications/Xcode.app/Contents/Developer/Toolchains/XcodeDefault.xctoolchain/usr/lib
                 /usr/local/opt/llvm*/lib /opt/homebrew/opt/llvm*/lib]
            else
              %w[/usr/local/llvm*/lib* /usr/local/lib*/*/* /usr/local/lib*/* /usr/local/lib* /usr/lib*/*/* /usr/lib*/* /usr/lib*]
            end
    (dirs + globs.flat_map { |g| Dir.glob(g) }).any? { |dir| File.directory?(dir) && in_dir.call(dir) }
  end

  def problems(crate_dir)
    darwin = RbConfig::CONFIG["host_os"].include?("darwin")
    found = []
    found << rust_problem(crate_dir)
    unless libclang_found?
      found << "libclang, which bindgen (through rb-sys) uses to read Ruby's headers " \
               "(Debian/Ubuntu: libclang-dev; Fedora: clang-devel; macOS: xcode-select --install; " \
               "or set LIBCLANG_PATH to the directory holding libclang)"
    end
    # rustc links the extension with the system C compiler driver.
    unless executable?("cc") || ENV.keys.any? { |k| k.match?(/\ACARGO_TARGET_.*_LINKER\z/) }
      found << "a C compiler and linker as `cc` (Debian/Ubuntu: gcc; Fedora: gcc; " \
               "macOS: xcode-select --install)"
    end
    header = File.join(RbConfig::CONFIG["rubyhdrdir"].to_s, "ruby.h")
    unless File.exist?(header)
      found << "Ruby's C headers, #{header} (Debian/Ubuntu: ruby-dev or ruby#{RUBY_VERSION[/\A\d+\.\d+/]}-dev; " \
               "Fedora: ruby-devel)"
    end
    make = ENV["MAKE"] || ENV["make"] || "make"
    found << "`#{make}` (Debian/Ubuntu: make)" unless darwin || executable?(make.split.first)
    found.compact
  end
end

# Keep in step with `rake native_gem` (README: Platforms).
PRECOMPILED = "x86_64-linux: Ruby 3.1, 3.3, 3.4; aarch64-linux: Ruby 3.1"

unless ENV["FIDDLE_JIT_SKIP_TOOL_CHECK"]
  missing = FiddleJitBuildTools.problems(crate_dir)
  unless missing.empty?
    abort <<~MSG
      fiddle_jit: building the native extension from source needs what this machine lacks:
      #{missing.map { |m| "  - #{m}" }.join("\n")}
      Install that and run `gem install fiddle_jit` again. The precompiled platform gems need none of it
      (#{PRECOMPILED}; this is Ruby #{RUBY_VERSION} on #{Gem::Platform.local}).
      FIDDLE_JIT_SKIP_TOOL_CHECK=1 skips this check.
    MSG
  end
end
dlext = RbConfig::CONFIG["DLEXT"]
ruby = RbConfig.ruby
ruby_minor = RUBY_VERSION[/\A\d+\.\d+/]
# Build output lives outside an installed gem so ~150 MB of cargo cache does
# not stay in the gem directory; in a checkout it stays in ./target
# (FIDDLE_JIT_TARGET_DIR overrides both). One subdirectory per Ruby and
# architecture: rb-sys's bindings, and so every crate above them, differ
# between Rubies, and a shared one would rebuild everything on each switch.
installing = !File.exist?(File.join(crate_dir, ".git"))
target_root = ENV["FIDDLE_JIT_TARGET_DIR"] ||
              (installing ? File.join(Dir.tmpdir, "fiddle_jit-cargo-#{Process.uid}") : File.join(crate_dir, "target"))
target_dir = File.join(target_root, "#{RbConfig::CONFIG["arch"]}-ruby#{ruby_minor}")

built = File.join(target_dir, "release", "libfiddle_jit.so")
File.write("Makefile", <<~MAKE)
  RUBY = #{ruby}
  CARGO ?= cargo
  CRATE_DIR = #{crate_dir}
  TARGET_DIR = #{target_dir}
  BUILT = #{built}
  DLLIB = fiddle_jit.#{dlext}
  RUBY_MINOR = #{ruby_minor}
  sitearchdir = #{RbConfig::CONFIG["sitearchdir"]}
  DESTDIR ?=

  all: $(DLLIB)

  $(DLLIB): FORCE
  \tcd "$(CRATE_DIR)" && RUBY="$(RUBY)" CARGO_TARGET_DIR="$(TARGET_DIR)" $(CARGO) build --release --lib
  \tcp "$(BUILT)" "$(DLLIB)"
  \tmkdir -p "$(CRATE_DIR)/lib/fiddle_jit/$(RUBY_MINOR)"
  \tcp "$(BUILT)" "$(CRATE_DIR)/lib/fiddle_jit/$(RUBY_MINOR)/$(DLLIB)"

  install: $(DLLIB)
  \tmkdir -p "$(DESTDIR)$(sitearchdir)/fiddle_jit/$(RUBY_MINOR)"
  \tcp "$(DLLIB)" "$(DESTDIR)$(sitearchdir)/fiddle_jit/$(RUBY_MINOR)/$(DLLIB)"

  clean:
  \trm -f "$(DLLIB)"

  distclean: clean
  \trm -f Makefile

  .PHONY: all install clean distclean FORCE
  FORCE:
MAKE
