#!/bin/sh
# test.sh: everything CI checks, from a fresh Debian 12 machine with a Rust toolchain (as root).
#   1. installs the packages the interop/end-to-end tests use (strongSwan, BIRD, iproute2, ...)
#   2. cargo fmt --check, cargo clippy --all-targets -D warnings
#   3. the whole test suite: unit, property, known-answer, in-memory pairs, interop and
#      end-to-end tests in network namespaces (skipped with a message when not root)
set -eu
cd "$(dirname "$0")/.."

sh scripts/install-deps.sh

# rustfmt/clippy ship with the toolchain here; add them if a minimal toolchain lacks them.
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  rustup component add rustfmt clippy
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test"
cargo test --workspace --all-targets
echo "== cargo test --doc"
cargo test --workspace --doc
