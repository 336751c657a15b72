#!/usr/bin/env bash
# The main job: the shipped spoken-digit model (models/fsdd-s4d.tssm, S4D on its own log-mel
# front end) hears a real recording one sample at a time and names the digit at the clip's
# last frame; then the whole FSDD test split through the core. Data: $TINYSSM_DATA
# (default ../shared/data), see ../shared/data/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${TINYSSM_DATA:-../shared/data}
MODEL=${1:-models/fsdd-s4d.tssm}
CLIP=${2:-$DATA/fsdd/recordings/7_theo_0.wav}
OUT=${3:-target/demo-out.npy}
mkdir -p "$(dirname "$OUT")"
cargo build --release --locked -q -p tinyssm-tools --bin tinyssm
BIN=target/release/tinyssm
"$BIN" inspect "$MODEL"
NAME=$(basename "$CLIP")
echo "--- $NAME: a test-split recording of the digit ${NAME%%_*}; the model says:"
"$BIN" run "$MODEL" --wav "$CLIP" --out "$OUT"
echo "--- FSDD test split, every clip through the core (the Mamba model and both int8 w8a8 models beside it):"
TINYSSM_DATA="$DATA" "$BIN" eval "$MODEL" models/fsdd-mamba.tssm models/fsdd-s4d-int8.tssm models/fsdd-mamba-int8.tssm --dataset fsdd --split test
