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
