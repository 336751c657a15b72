#!/usr/bin/env bash
# Second demo: aTENNuate's trained speech denoiser ($TINYSSM_DATA/atennuate/weights.pt,
# BrainChip, Apache-2.0, arXiv 2409.03377) converted to a model blob (format 1.7: a
# multi-rate network) and streamed by the core one sample at a time over a real noisy
# recording into a clean WAV aligned with the input. Data: $TINYSSM_DATA (default
# ../shared/data).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${TINYSSM_DATA:-../shared/data}
CLIP=${1:-$DATA/atennuate/noisy/clnsp1_train_69005_1_snr15_tl-21_fileid_158.wav}
OUT=${2:-target/denoised.wav}
mkdir -p "$(dirname "$OUT")"
cargo build --release --locked -q -p tinyssm-tools --bin tinyssm
target/release/tinyssm convert "$DATA/atennuate/weights.pt" -o target/atennuate.tssm
target/release/tinyssm run target/atennuate.tssm --wav "$CLIP" --out-wav "$OUT"
