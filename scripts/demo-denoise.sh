#!/usr/bin/env bash
# Second demo: aTENNuate's trained speech denoiser ($TINYSSM_DATA/atennuate/weights.pt,
# BrainChip, Apache-2.0, arXiv 2409.03377) imported into the core's multi-rate network
# engine, streaming a real noisy recording one sample at a time into a clean WAV aligned
# with the input. Data: $TINYSSM_DATA (default ../shared/data).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${TINYSSM_DATA:-../shared/data}
CLIP=${1:-$DATA/atennuate/noisy/clnsp1_train_69005_1_snr15_tl-21_fileid_158.wav}
OUT=${2:-target/denoised.wav}
mkdir -p "$(dirname "$OUT")"
cargo build --release --locked -q -p tinyssm-tools --bin tinyssm
target/release/tinyssm denoise "$DATA/atennuate/weights.pt" --wav "$CLIP" --out-wav "$OUT"
