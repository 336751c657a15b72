#!/usr/bin/env bash
# Objective quality (wide-band PESQ, STOI) of the streamed aTENNuate speech denoiser (BrainChip
# Inc., Apache-2.0, arXiv 2409.03377) in f32 and int8 (w8a8) form, on a synthetic noisy set built
# from the Free Spoken Digit Dataset (CC BY-SA 4.0) and on the four real recordings in
# $TINYSSM_DATA/atennuate, scored against the reference model's outputs. See
# scripts/atennuate_eval.py for the recipe and its caveats.
#
# Not run in CI: it takes minutes (about 250 s of test audio streamed once per variant; w8a8
# streams at ~2x real time on 2 cores).
# Needs: python3 with venv, PyPI through pip (the pinned scripts/atennuate-eval-requirements.txt;
# pesq compiles from source, so a C compiler and the Python headers too), cargo, and the data in
# $TINYSSM_DATA (default: shared/data beside the repository).
#
# Usage: scripts/atennuate-eval.sh [OUTDIR]   (default ${TINYSSM_CACHE:-~/.cache/tinyssm}/atennuate-eval)
# The venv lives in ${TINYSSM_CACHE:-~/.cache/tinyssm}/atennuate-eval-venv and is reused.
# Extra variants: TINYSSM_EVAL_EXTRA='name=TEMPLATE;name2=TEMPLATE2', each TEMPLATE a shell command
# with {in} and {out}; $TINYSSM_BIN (a snapshot of the release binary) and $TINYSSM_WEIGHTS are
# exported for it, e.g.
#   TINYSSM_EVAL_EXTRA='ref-kernels=$TINYSSM_BIN denoise $TINYSSM_WEIGHTS --reference-kernels --wav {in} --out-wav {out}'
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${TINYSSM_CACHE:-$HOME/.cache/tinyssm}
TINYSSM_DATA=$(cd "${TINYSSM_DATA:-$ROOT/../shared/data}" && pwd)
export TINYSSM_DATA
OUT=${1:-$CACHE/atennuate-eval}
VENV=$CACHE/atennuate-eval-venv
REQ=$ROOT/scripts/atennuate-eval-requirements.txt
EVAL=("$VENV/bin/python" "$ROOT/scripts/atennuate_eval.py")

timed() { local t=$SECONDS; echo "== $1" >&2; "${@:2}"; echo "== $1: $((SECONDS - t)) s" >&2; }

setup_venv() {
  if [ -x "$VENV/bin/python" ] && cmp -s "$REQ" "$VENV/requirements.txt"; then return; fi
  python3 -m venv "$VENV"
  # pesq's build needs these present (it is installed without build isolation).
  # shellcheck disable=SC2046
  "$VENV/bin/pip" install -q $(grep -E '^(numpy|cython|setuptools|wheel)==' "$REQ")
  "$VENV/bin/pip" install -q --no-build-isolation -r "$REQ"
  cp "$REQ" "$VENV/requirements.txt"
}

build_binary() {
  (cd "$ROOT" && cargo build --release --locked -q -p tinyssm-tools --bin tinyssm)
  # A private copy, so that a rebuild elsewhere cannot change the binary between variants.
  mkdir -p "$OUT/bin"
  cp "$ROOT/target/release/tinyssm" "$OUT/bin/tinyssm"
}

timed venv setup_venv
timed "cargo build" build_binary
export TINYSSM_BIN=$OUT/bin/tinyssm TINYSSM_WEIGHTS=$TINYSSM_DATA/atennuate/weights.pt

NAMES=(f32 w8a8)
TEMPLATES=('"$TINYSSM_BIN" denoise "$TINYSSM_WEIGHTS" --wav {in} --out-wav {out}'
           '"$TINYSSM_BIN" denoise "$TINYSSM_WEIGHTS" --w8a8 --wav {in} --out-wav {out}')
IFS=';' read -ra EXTRA <<< "${TINYSSM_EVAL_EXTRA:-}"
for v in "${EXTRA[@]}"; do
  [ -n "$v" ] || continue
  NAMES+=("${v%%=*}")
  TEMPLATES+=("${v#*=}")
done

timed "build set" "${EVAL[@]}" build "$OUT"
REAL=()
for i in "${!NAMES[@]}"; do
  timed "score ${NAMES[i]}" "${EVAL[@]}" score "$OUT" --name "${NAMES[i]}" --cmd "${TEMPLATES[i]}"
  REAL+=(--cmd "${NAMES[i]}=${TEMPLATES[i]}")
done
timed report "${EVAL[@]}" report "$OUT" "${NAMES[@]}" | tee "$OUT/report.md"
timed real "${EVAL[@]}" real --outdir "$OUT/real" "${REAL[@]}" | tee "$OUT/real.md"
