#!/usr/bin/env bash
# The full test suite, from a fresh machine with a Rust toolchain (rustup): installs what
# it needs, then formatting, lints (host and no_std Cortex-M), the no_std build, and all tests.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR=never
: "${TINYSSM_DATA:=$(pwd)/../shared/data}"
export TINYSSM_DATA

step() { printf '\n== %s\n' "$*"; }

step "toolchain components and targets"
rustup component add rustfmt clippy >/dev/null 2>&1 || true
rustup target add thumbv7em-none-eabihf thumbv6m-none-eabi

step "cargo fmt --check"
cargo fmt --all -- --check

step "clippy (host, all targets)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "clippy tinyssm-core on thumbv7em-none-eabihf (no_std)"
cargo clippy -p tinyssm-core --target thumbv7em-none-eabihf --no-default-features --locked -- -D warnings
cargo clippy -p tinyssm-core --target thumbv7em-none-eabihf --features defmt --locked -- -D warnings

step "no_std builds: thumbv7em-none-eabihf (Cortex-M4F/M7) and thumbv6m-none-eabi (Cortex-M0)"
cargo build -p tinyssm-core --target thumbv7em-none-eabihf --release --locked
cargo build -p tinyssm-core --target thumbv6m-none-eabi --release --locked

step "tests"
cargo test --workspace --locked

step "benchmarks compile (run them with: cargo bench -p tinyssm-bench)"
cargo bench -p tinyssm-bench --no-run --locked

step "done"
