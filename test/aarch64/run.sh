#!/usr/bin/env bash
# The emulated aarch64 suite: emit every stub of src/backend/aarch64_tests.rs's
# table on this host, cross-compile test/aarch64/harness.c, and run it under
# qemu-user (Debian: gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$(mktemp -d "${TMPDIR:-/tmp}/fiddle_jit-aarch64.XXXXXX")
[ -n "${KEEP:-}" ] || trap 'rm -rf "$out"' EXIT
FIDDLE_JIT_AARCH64_OUT="$out" cargo test --release --lib --quiet backend::aarch64_tests::write_harness_inputs >/dev/null
aarch64-linux-gnu-gcc -O1 -std=gnu11 -Wall -Wextra -Werror -o "$out/harness" test/aarch64/harness.c -lm
if [ "$(uname -m)" = aarch64 ]; then
  "$out/harness" "$out"
else
  qemu-aarch64 -L /usr/aarch64-linux-gnu "$out/harness" "$out"
fi
