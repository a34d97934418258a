#!/bin/sh
# Installs a fiddle_jit platform gem as a user would and runs it; meant for a
# fresh chroot with no Rust toolchain (rake user_install_check runs it with
# `script/chroot run --fresh --no-toolchain NAME`).
#
#   sh spec/installed/user_install.sh GEM_FILE PLATFORM CHECKOUT
#
# 1. asserts that nothing able to build the extension is there: no cargo,
#    rustc, C compiler, linker, make, libclang or Ruby headers;
# 2. `gem install --local` into a scratch GEM_HOME (timed) from a scratch
#    directory outside CHECKOUT;
# 3. runs spec/installed/smoke.rb there with rspec: the gem's provenance,
#    libc/libm calls, structs, a qsort callback, ffi-gem errors, and two
#    Debian gems written for the ffi gem through -rfiddle_jit/ffi_shim.
set -eu
gem_file=$1 platform=$2 checkout=$3
here=$(cd "$(dirname "$0")" && pwd)
fail() { echo "user_install: FAIL: $*" >&2; exit 1; }

for tool in cargo rustc rustup cc gcc clang c++ ld make; do
  if command -v "$tool" > /dev/null 2>&1; then fail "$tool is on PATH ($(command -v "$tool"))"; fi
done
[ ! -e /root/.cargo/bin/cargo ] || fail "the host's rustup toolchain is visible at /root/.cargo"
libclang=$(find /usr/lib /usr/local/lib /lib -name 'libclang*.so*' 2> /dev/null | head -1)
[ -z "$libclang" ] || fail "libclang is installed ($libclang)"
hdr=$(ruby -rrbconfig -e 'print File.join(RbConfig::CONFIG["rubyhdrdir"], "ruby.h")')
[ ! -e "$hdr" ] || fail "Ruby's headers are installed ($hdr)"
echo "user_install: $(ruby -v) on $(uname -m): no cargo, rustc, cc, ld, make, libclang or ruby.h"

work=$(mktemp -d /tmp/fiddle_jit-user.XXXXXX)
cp "$gem_file" "$here/smoke.rb" "$work/"
cd "$work"
export GEM_HOME="$work/gem_home" FIDDLE_JIT_PLATFORM="$platform" FIDDLE_JIT_CHECKOUT="$checkout"
unset RUBYOPT RUBYLIB
start=$(date +%s%N)
gem install --local --no-document "./$(basename "$gem_file")"
end=$(date +%s%N)
echo "user_install: gem install took $(( (end - start) / 1000000 )) ms"

rspec --format progress smoke.rb
echo "user_install: $(basename "$gem_file") works on $(ruby -e 'print RUBY_VERSION') ($platform)"
