# frozen_string_literal: true

# Writes a Makefile that builds the Rust crate with cargo. mkmf's
# create_makefile would produce an empty DLLIB for a crate with no C sources,
# and the rb_sys gem is not available offline, so the Makefile is ours.
#
#   make          cargo build --release, then copy lib/fiddle_jit/fiddle_jit.so
#   make install  copy the .so to $(DESTDIR)$(sitearchdir)/fiddle_jit/
#   make clean    remove the copied .so (cargo's cache is kept)
require "rbconfig"
require "tmpdir"

ext_dir = __dir__
crate_dir = File.expand_path("../..", ext_dir)
dlext = RbConfig::CONFIG["DLEXT"]
ruby = RbConfig.ruby
# Build output lives outside an installed gem so ~150 MB of cargo cache does
# not stay in the gem directory; in a checkout it stays in ./target.
installing = !File.exist?(File.join(crate_dir, ".git"))
target_dir = ENV["FIDDLE_JIT_TARGET_DIR"] ||
             (installing ? File.join(Dir.tmpdir, "fiddle_jit-cargo-#{Process.uid}") : File.join(crate_dir, "target"))

built = File.join(target_dir, "release", "libfiddle_jit.so")
File.write("Makefile", <<~MAKE)
  RUBY = #{ruby}
  CARGO ?= cargo
  CRATE_DIR = #{crate_dir}
  TARGET_DIR = #{target_dir}
  BUILT = #{built}
  DLLIB = fiddle_jit.#{dlext}
  sitearchdir = #{RbConfig::CONFIG["sitearchdir"]}
  DESTDIR ?=

  all: $(DLLIB)

  $(DLLIB): FORCE
  \tcd "$(CRATE_DIR)" && RUBY="$(RUBY)" CARGO_TARGET_DIR="$(TARGET_DIR)" $(CARGO) build --release --lib
  \tcp "$(BUILT)" "$(DLLIB)"
  \tmkdir -p "$(CRATE_DIR)/lib/fiddle_jit"
  \tcp "$(BUILT)" "$(CRATE_DIR)/lib/fiddle_jit/$(DLLIB)"

  install: $(DLLIB)
  \tmkdir -p "$(DESTDIR)$(sitearchdir)/fiddle_jit"
  \tcp "$(DLLIB)" "$(DESTDIR)$(sitearchdir)/fiddle_jit/$(DLLIB)"

  clean:
  \trm -f "$(DLLIB)"

  distclean: clean
  \trm -f Makefile

  .PHONY: all install clean distclean FORCE
  FORCE:
MAKE
