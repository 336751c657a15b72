#!/usr/bin/env bash
# Runs the reference implementation of aTENNuate (PyPI `attenuate` 0.1.1: BrainChip Inc.,
# Apache-2.0, github.com/Brainchip-Inc/aTENNuate, arXiv 2409.03377) on the four shared noisy
# recordings, and prints how its output compares with the stored reference outputs
# ($TINYSSM_DATA/atennuate/denoised) and with tinyssm's streamed output (f32 and --w8a8):
# see tests/goldens/atennuate_reference.py.
#
# Not run in CI: it installs torch (PyPI's wheel with its CUDA runtime packages, ~5.6 GB) into
# a venv at ${TINYSSM_CACHE:-$HOME/.cache/tinyssm}/atennuate-ref-venv, made once and reused,
# from the pins in tests/goldens/atennuate-reference-requirements.txt. Needs python3 (3.11).
#
#   scripts/atennuate-reference.sh [OUT_DIR]
#
# Data: $TINYSSM_DATA (default ../shared/data). OUT_DIR (default: a new temporary directory)
# receives the package's outputs (NAME.wav) and tinyssm's (NAME.tinyssm.wav,
# NAME.tinyssm-w8a8.wav), all 32-bit float WAVs.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${TINYSSM_DATA:-../shared/data}
OUT=${1:-$(mktemp -d)}
VENV=${TINYSSM_CACHE:-$HOME/.cache/tinyssm}/atennuate-ref-venv
REQ=tests/goldens/atennuate-reference-requirements.txt

if ! cmp -s "$REQ" "$VENV/requirements.installed"; then
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  # --no-deps: the file pins the whole environment (see its header for why).
  "$VENV/bin/pip" install --no-cache-dir --no-deps --only-binary :all: -q -r "$REQ"
  cp "$REQ" "$VENV/requirements.installed"
fi

cargo build --release --locked -q -p tinyssm-tools --bin tinyssm
echo "outputs: $OUT"
HF_HUB_OFFLINE=1 "$VENV/bin/python" tests/goldens/atennuate_reference.py \
  "$DATA/atennuate" "$OUT" target/release/tinyssm
