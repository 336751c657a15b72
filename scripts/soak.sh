#!/usr/bin/env bash
# Soak run (not part of CI): the shipped models stepped 10^8 times (integer-only, shared)
# and 10^7 times (float and w8a8, shared) on real data and adversarial inputs (full-scale
# square waves, silence, white noise), checking finite outputs, bounded state and
# fast-vs-reference agreement at checkpoints. Prints a Markdown table (RELIABILITY.md).
#
#   scripts/soak.sh [--int-steps N] [--float-steps N] [--checkpoints K] [--window W] [MODEL...]
#
# Default models: every models/*.tssm. Reads real data from TINYSSM_DATA (../shared/data).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${TINYSSM_DATA:=$(pwd)/../shared/data}"
export TINYSSM_DATA
opts=()
models=()
while [ $# -gt 0 ]; do
  case "$1" in
    --*) opts+=("$1" "$2"); shift 2 ;;
    *) models+=("$1"); shift ;;
  esac
done
[ ${#models[@]} -gt 0 ] || models=(models/*.tssm)
cargo build --release --locked -q -p tinyssm-tools --example soak
exec target/release/examples/soak "${opts[@]}" "${models[@]}"
