#!/bin/sh
# Runs the aarch64 reverse trampolines under qemu-user: emits them with
# `cargo test harness_blobs`, cross-compiles test/aarch64/callbacks.c with
# gcc-aarch64-linux-gnu and runs it with qemu-aarch64. Exits non-zero on any
# failure. Needs: gcc-aarch64-linux-gnu, libc6-dev-arm64-cross, qemu-user.
set -eu
cd "$(dirname "$0")/../.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

FIDDLE_JIT_AARCH64_OUT="$out" cargo test --release --lib --quiet -- emit::aarch64_callback::tests::harness_blobs --exact
test -s "$out/callbacks_blobs.h" || { echo "run_callbacks.sh: cargo test wrote no blobs" >&2; exit 1; }

aarch64-linux-gnu-gcc -O2 -std=c11 -Wall -Wextra -Werror -I"$out" \
    -o "$out/callbacks" test/aarch64/callbacks.c
# -O0 as well: a different register/stack allocation in the calling code.
aarch64-linux-gnu-gcc -O0 -std=c11 -Wall -Wextra -Werror -I"$out" \
    -o "$out/callbacks-O0" test/aarch64/callbacks.c

qemu-aarch64 -L /usr/aarch64-linux-gnu "$out/callbacks"
qemu-aarch64 -L /usr/aarch64-linux-gnu "$out/callbacks-O0"
