#!/bin/sh
# The source gem on a machine that cannot build it (a fresh chroot with no
# Rust, libclang, C compiler or Ruby headers): `gem install` must fail in
# extconf.rb, within seconds, with its one message naming what to install,
# not a cargo or bindgen error. Then the same with a rustc that is too old.
#
#   sh spec/installed/source_gem_without_tools.sh GEM_FILE
set -eu
gem_file=$1
fail() { echo "source_gem_without_tools: FAIL: $*" >&2; exit 1; }
! command -v cargo > /dev/null 2>&1 || fail "cargo is on PATH"

work=$(mktemp -d /tmp/fiddle_jit-source.XXXXXX)
cp "$gem_file" "$work/"
cd "$work"
export GEM_HOME="$work/gem_home"
unset RUBYOPT RUBYLIB

# install LABEL EXPECTED-LINE...: gem install must fail and print each line.
install() {
  label=$1; shift
  if gem install --local --no-document "./$(basename "$gem_file")" > out.txt 2>&1; then
    cat out.txt; fail "$label: gem install succeeded"
  fi
  for expected in "fiddle_jit: building the native extension from source needs what this machine lacks:" \
                  "Install that and run \`gem install fiddle_jit\` again." "$@"; do
    grep -qF -- "$expected" out.txt || { cat out.txt; fail "$label: no line '$expected'"; }
  done
  for unexpected in "Compiling" "error[E" "panicked" "cargo:warning" "No such file or directory - cargo"; do
    ! grep -qF -- "$unexpected" out.txt || { cat out.txt; fail "$label: '$unexpected' in the output"; }
  done
  echo "source_gem_without_tools: $label: gem install failed as expected; extconf.rb said:"
  sed -n '/^fiddle_jit: building/,/FIDDLE_JIT_SKIP_TOOL_CHECK/p' out.txt | sed 's/^/  | /'
}

install "no Rust" \
  "- Rust 1.88 or newer with cargo, from https://rustup.rs" "no \`cargo\` on PATH" \
  "- libclang" "- a C compiler and linker as \`cc\`" "- Ruby's C headers" "- \`make\`"

# A distribution's rustc that predates what the crates need.
mkdir -p old-rust
printf '#!/bin/sh\necho "rustc 1.63.0"\n' > old-rust/rustc
printf '#!/bin/sh\necho "cargo 1.65.0"\n' > old-rust/cargo
chmod +x old-rust/rustc old-rust/cargo
export PATH="$work/old-rust:$PATH"
install "rustc 1.63" "found rustc 1.63.0"
