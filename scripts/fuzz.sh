#!/usr/bin/env bash
# Fuzz campaigns with cargo-fuzz (libFuzzer, nightly Rust, AddressSanitizer) over every
# target in fuzz/fuzz_targets/, each starting from its committed corpus (fuzz/corpus/<t>/).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]   each target for SECONDS (default 300)
#   TINYSSM_FUZZ_MERGE=1 scripts/fuzz.sh …  afterwards minimise (cmin) the new inputs into
#                                           fuzz/corpus/<t>/ (commit them)
#   TINYSSM_FUZZ_SEED=N scripts/fuzz.sh …   a fixed libFuzzer seed (CI: reproducible runs;
#                                           campaigns leave it random to explore)
#
# New inputs go to a scratch corpus under the fuzz target dir, so a run leaves the
# repository unchanged unless asked to merge. A crash stops the script with libFuzzer's
# report and the reproducer in fuzz/artifacts/<t>/. Prints each target's execution count.
# Installs the nightly toolchain and cargo-fuzz (pinned) when they are missing. The fuzz
# build's target dir is TINYSSM_FUZZ_TARGET_DIR (default: $HOME/.cache/tinyssm/fuzz-target),
# outside the clone, so later runs rebuild incrementally.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-300}
shift || true
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
    mapfile -t targets < <(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v '^tinyssm-fuzz$')
fi
rustup toolchain list | grep -q '^nightly' \
    || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null 2>&1 \
    || [ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo-fuzz" ] \
    || cargo install cargo-fuzz --version 0.13.2 --locked
tdir=${TINYSSM_FUZZ_TARGET_DIR:-$HOME/.cache/tinyssm/fuzz-target}
mkdir -p "$tdir"
cargo +nightly fuzz build -O --target-dir "$tdir"
for t in "${targets[@]}"; do
    scratch="$tdir/corpus/$t"
    mkdir -p "$scratch"
    log="$tdir/$t.log"
    cargo +nightly fuzz run -O --target-dir "$tdir" "$t" "$scratch" "corpus/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=4096 -malloc_limit_mb=1024 -timeout=20 \
        ${TINYSSM_FUZZ_SEED:+-seed="$TINYSSM_FUZZ_SEED"} -print_final_stats=1 >"$log" 2>&1 \
        || { tail -40 "$log"; echo "fuzz target $t failed (log: $log)" >&2; exit 1; }
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    echo "fuzz $t: ${runs:-?} executions in ${secs}s, no crash"
    # The .pth corpus stays its one seed (a 36 KB archive): its merged corpus grows to
    # hundreds of such archives (12 MB), too much to commit.
    if [ "${TINYSSM_FUZZ_MERGE:-0}" = 1 ] && [ "$t" != pth ]; then
        min="$tdir/min/$t"
        rm -rf "$min"
        mkdir -p "$min"
        cargo +nightly fuzz run -O --target-dir "$tdir" "$t" "$min" "corpus/$t" "$scratch" -- \
            -merge=1 >"$log.merge" 2>&1
        rm -f "corpus/$t"/*
        cp "$min"/* "corpus/$t"/
        echo "fuzz $t: corpus minimised to $(ls "corpus/$t" | wc -l) inputs"
    fi
done
