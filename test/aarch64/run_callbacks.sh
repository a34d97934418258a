#!/bin/sh
# aarch64 checks that run on an x86-64 host under qemu-user:
#  1. reverse trampolines: `cargo test harness_blobs` emits them,
#     test/aarch64/callbacks.c calls them with real C arguments;
#  2. the AAPCS64 planner against gcc: `cargo test gcc_harness_plans` writes
#     the planned locations, test/aarch64/plan_vs_gcc.c checks gcc's calls
#     put every byte there;
#  3. (only if the Rust target aarch64-unknown-linux-gnu is installed) the
#     code arena's own tests, cross-compiled: memfd double mapping, icache
#     flush, running installed code.
# Each C harness is built at -O0 and -O2. Exits non-zero on any failure.
# Needs: gcc-aarch64-linux-gnu, libc6-dev-arm64-cross, qemu-user.
set -eu
cd "$(dirname "$0")/../.."
root=$(pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
qemu="qemu-aarch64 -L /usr/aarch64-linux-gnu"

FIDDLE_JIT_AARCH64_OUT="$out" cargo test --release --lib --quiet -- \
    backend::aarch64_callback::tests::harness_blobs abi::aapcs64::tests::gcc_harness_plans --exact
for f in callbacks_blobs.h plans.h; do
    test -s "$out/$f" || { echo "run_callbacks.sh: cargo test did not write $f" >&2; exit 1; }
done

for harness in callbacks plan_vs_gcc; do
    for opt in O0 O2; do
        aarch64-linux-gnu-gcc -$opt -std=c11 -Wall -Wextra -Werror -I"$out" \
            -o "$out/$harness-$opt" "test/aarch64/$harness.c"
        $qemu "$out/$harness-$opt"
    done
done

if rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu; then
    mkdir -p "$out/arena/src"
    cp Cargo.lock "$out/arena/"
    cat >"$out/arena/Cargo.toml" <<EOF
[package]
name = "arena_check"
version = "0.0.0"
edition = "2021"
[dependencies]
libc = "0.2"
dynasmrt = "5.1"
EOF
    printf '#[path = "%s/src/emit/arena.rs"]\npub mod arena;\n' "$root" >"$out/arena/src/lib.rs"
    (cd "$out/arena" &&
        CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
        CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="$qemu" \
        CARGO_TARGET_DIR="$out/arena/target" \
        cargo test --offline --quiet --target aarch64-unknown-linux-gnu --lib)
else
    echo "run_callbacks.sh: skipping the arena under qemu (rustup target add aarch64-unknown-linux-gnu to run it)"
fi
echo "run_callbacks.sh: all aarch64 checks passed"
