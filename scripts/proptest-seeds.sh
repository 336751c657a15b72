#!/usr/bin/env bash
# Runs the property tests under many RNG seeds (the suite, scripts/test.sh, uses one fixed
# seed so that CI is reproducible). A failing seed is printed with the command that
# reruns it; proptest also records the shrunk case under the crate's proptest-regressions/,
# which is committed with the fix so the suite replays it from then on.
#
#   scripts/proptest-seeds.sh [FIRST_SEED] [COUNT]      (default: a random start, 20 seeds)
set -euo pipefail
cd "$(dirname "$0")/.."
: "${TINYSSM_DATA:=$(pwd)/../shared/data}"
export TINYSSM_DATA
first="${1:-}"; [ -n "$first" ] || first=$RANDOM$RANDOM
count="${2:-20}"

# The test targets that hold `proptest!` blocks.
targets=(
  "-p tinyssm-core --lib"
  "-p tinyssm-tools --test import"
  "-p tinyssm-tests --test streaming"
  "-p tinyssm-tests --test format_fuzz"
  "-p tinyssm-tests --test quantization"
  "-p tinyssm-tests --test frontend"
)
for t in "${targets[@]}"; do
  # shellcheck disable=SC2086
  cargo test --locked $t --no-run -q
done
failed=0
for ((seed = first; seed < first + count; seed++)); do
  for t in "${targets[@]}"; do
    # shellcheck disable=SC2086
    if ! PROPTEST_RNG_SEED=$seed cargo test --locked -q $t >/tmp/proptest-seed.$$ 2>&1; then
      echo "FAILED: PROPTEST_RNG_SEED=$seed cargo test $t"
      grep -E "minimal failing input|panicked at" /tmp/proptest-seed.$$ | head -5
      failed=1
    fi
  done
  echo "seed $seed done"
done
rm -f /tmp/proptest-seed.$$
exit $failed
