#!/usr/bin/env bash
# The full test suite, from a fresh machine with a Rust toolchain (rustup): installs what
# it needs, then formatting, lints (host and no_std Cortex-M), the no_std build, and all tests.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR=never
: "${TINYSSM_DATA:=$(pwd)/../shared/data}"
export TINYSSM_DATA
# Property tests draw their cases from a fixed seed here, so a suite run is reproducible
# (a failure reruns as it failed); scripts/proptest-seeds.sh explores other seeds.
: "${PROPTEST_RNG_SEED:=20261206}"
export PROPTEST_RNG_SEED

step() { printf '\n== %s\n' "$*"; }

step "toolchain components and targets"
rustup component add rustfmt clippy >/dev/null 2>&1 || true
rustup target add thumbv7em-none-eabihf thumbv6m-none-eabi thumbv8m.main-none-eabihf

# Debian packages: a C++ compiler (the CUDA kernel emulator is built from the kernel
# sources by g++), venv support for the NVRTC install below, and qemu-system-arm (the
# firmware runs on emulated Cortex-M4F, M7, M33 and M0 boards in tests/tests/qemu_fsdd.rs).
# gcc (with g++) and nm (binutils, with gcc) build and check the instruction-counting QEMU
# plugin (tests/tests/qemu_insn_count.rs); its API declarations are in the repository
# (firmware/qemu-plugin/qemu_plugin_api.h), so no QEMU development package is needed.
apt_install() {
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
    else
        sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
    fi
}
step "system packages (g++, gcc, binutils, python3-venv, qemu-system-arm)"
need=()
command -v g++ >/dev/null 2>&1 || need+=(g++)
command -v gcc >/dev/null 2>&1 || need+=(gcc)
command -v nm >/dev/null 2>&1 || need+=(binutils)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)
command -v qemu-system-arm >/dev/null 2>&1 || need+=(qemu-system-arm)
if [ "${#need[@]}" -gt 0 ]; then apt_install "${need[@]}"; fi

# defmt-print decodes the defmt output of the imu image under QEMU (tests/tests/qemu_imu.rs);
# a pinned version, installed once (about two minutes) and then found on PATH.
step "defmt-print (cargo install, pinned)"
command -v defmt-print >/dev/null 2>&1 \
    || [ -x "${CARGO_HOME:-$HOME/.cargo}/bin/defmt-print" ] \
    || cargo install defmt-print --version 1.2.0 --locked

# NVRTC 13.0 (no GPU needed) so the nvrtc test compiles every CUDA kernel for sm_90; the
# test fails, rather than skips, when NVRTC cannot be loaded (TINYSSM_REQUIRE_NVRTC=1).
step "NVRTC 13.0 (pip nvidia-cuda-nvrtc) in target/nvrtc-venv"
if [ ! -x target/nvrtc-venv/bin/pip ]; then python3 -m venv target/nvrtc-venv; fi
target/nvrtc-venv/bin/pip install -q 'nvidia-cuda-nvrtc==13.0.*'
NVRTC_LIB="$(target/nvrtc-venv/bin/python - <<'PY'
import glob, os, nvidia
for base in nvidia.__path__:
    hits = glob.glob(os.path.join(base, "**", "libnvrtc.so.13"), recursive=True)
    if hits:
        print(os.path.dirname(hits[0]))
        break
PY
)"
[ -n "$NVRTC_LIB" ] || { echo "libnvrtc.so.13 not found in the nvidia-cuda-nvrtc package" >&2; exit 1; }
export LD_LIBRARY_PATH="$NVRTC_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export TINYSSM_REQUIRE_NVRTC=1
# Compiled kernels are cached per run, not in the user's home.
export TINYSSM_KERNEL_CACHE="$(pwd)/target/kernel-cache"

step "cargo fmt --check"
cargo fmt --all -- --check

step "clippy (host, all targets)"
cargo clippy --workspace --all-targets --locked -- -D warnings

# The CLI and library without the batch crate (tinyssm-cuda): convert, calibrate, run,
# inspect, eval and generate build, lint clean and pass their tests with the `cuda`
# feature off; train and verify then say in one line that they need it.
step "tinyssm-tools without the cuda feature"
cargo build -p tinyssm-tools --no-default-features --locked
cargo clippy -p tinyssm-tools --no-default-features --all-targets --locked -- -D warnings
cargo test -p tinyssm-tools --no-default-features --locked

step "clippy tinyssm-core on thumbv7em-none-eabihf (no_std)"
cargo clippy -p tinyssm-core --target thumbv7em-none-eabihf --no-default-features --locked -- -D warnings
cargo clippy -p tinyssm-core --target thumbv7em-none-eabihf --features defmt --locked -- -D warnings

step "tinyssm-core with one block kind (cargo features block-*, as firmware builds it): clippy on thumbv7em, unit tests on the host"
cargo clippy -p tinyssm-core --target thumbv7em-none-eabihf --no-default-features --features block-s4d --locked -- -D warnings
cargo test -p tinyssm-core --no-default-features --features block-s4d --lib --locked

step "no_std builds: thumbv7em-none-eabihf (Cortex-M4F/M7), thumbv8m.main-none-eabihf (Cortex-M33) and thumbv6m-none-eabi (Cortex-M0)"
cargo build -p tinyssm-core --target thumbv7em-none-eabihf --release --locked
cargo build -p tinyssm-core --target thumbv8m.main-none-eabihf --release --locked
cargo build -p tinyssm-core --target thumbv6m-none-eabi --release --locked
# A Cortex-M33 with the DSP extension: the SMLAD kernels (core/build.rs reads the flag).
RUSTFLAGS="-C target-feature=+dsp" cargo build -p tinyssm-core --target thumbv8m.main-none-eabihf \
    --release --locked --target-dir target/thumbv8m-dsp

step "firmware workspace (firmware/, its own .cargo/config.toml): fmt, clippy per target, release build"
# clippy once per target (the board only changes the linker script; the imu image is for
# mps2-an386 only, so the other targets skip it); the default board's
# build here is the one tests/tests/qemu_fsdd.rs reuses, which builds the other boards itself.
(cd firmware && cargo fmt --all -- --check \
    && cargo clippy --release --all-targets --locked -- -D warnings \
    && TINYSSM_BOARD=mps2-an505 cargo clippy --release --all-targets --locked \
        --target thumbv8m.main-none-eabihf --workspace --exclude tinyssm-fw-imu -- -D warnings \
    && TINYSSM_BOARD=microbit cargo clippy --release --all-targets --locked \
        --target thumbv6m-none-eabi --workspace --exclude tinyssm-fw-imu -- -D warnings \
    && cargo build --release --locked)

# The real-board image (Arduino Nano 33 BLE, nRF52840): its own workspace, so that its
# HAL's cortex-m-rt `device` feature stays out of the QEMU images. Built, not run (that
# needs the board and a debug probe; see firmware/README.md).
step "firmware/apps/nano33ble (own workspace): fmt, clippy, release build"
(cd firmware/apps/nano33ble && cargo fmt -- --check \
    && cargo clippy --release --all-targets --locked -- -D warnings \
    && cargo build --release --locked)

step "tests"
# The QEMU tests (tests/tests/qemu_*.rs) fail, rather than skip, without qemu-system-arm
# (and, for the plugin test, gcc and nm; for qemu_imu, defmt-print).
export TINYSSM_REQUIRE_QEMU=1
cargo test --workspace --locked

step "benchmarks compile (run them with: cargo bench -p tinyssm-bench)"
cargo bench -p tinyssm-bench --no-run --locked

# A bounded fuzz run: every cargo-fuzz target for 30 s from its committed corpus (3.5
# minutes; installs nightly and cargo-fuzz when missing), with a fixed seed so that CI runs
# are reproducible (campaigns explore with random seeds: scripts/fuzz.sh 300). The corpora
# are also replayed on stable by tests/tests/fuzz_corpus.rs above.
step "fuzz (scripts/fuzz.sh 30)"
TINYSSM_FUZZ_SEED=1 ./scripts/fuzz.sh 30

step "done"
