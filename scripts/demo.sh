#!/usr/bin/env bash
# The main job on the bundled default model and input: inspect the model, stream the input
# through it one step at a time, and print the result's shape and last step.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-models/demo-s4d.tssm}
INPUT=${2:-models/demo-s4d-input.csv}
OUT=${3:-target/demo-out.npy}
mkdir -p "$(dirname "$OUT")"
cargo build --release --locked -q -p tinyssm-tools --bin tinyssm
BIN=target/release/tinyssm
"$BIN" inspect "$MODEL"
"$BIN" run "$MODEL" --csv "$INPUT" --out "$OUT"
