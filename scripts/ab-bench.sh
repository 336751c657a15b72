#!/usr/bin/env bash
# Interleaved A/B runs of the criterion step benchmarks: a revision (A) against the working
# tree (B), each built in its own git worktree and target dir, then run alternately N times
# (A, B, A, B, …) so that both see the same machine noise. Prints every run's estimate per
# benchmark and, per benchmark, the median of each side and their ratio B/A.
#
#   scripts/ab-bench.sh REV [N] [FILTER]
#     REV     the baseline revision (e.g. HEAD~1, a commit hash)
#     N       runs per side (default 5)
#     FILTER  criterion filter (default: the S4D sensor, Mamba-1 d256 and RWKV tiny groups)
#
# A benchmark, not a test: nothing here passes or fails on a number. Single-threaded
# (RAYON_NUM_THREADS=1); run it on a quiet machine. Output: target/ab-bench/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
rev=${1:?usage: scripts/ab-bench.sh REV [N] [FILTER]}
n=${2:-5}
filter=${3:-'s4d_h64_n64_l4|mamba1_d256_l4|rwkv_tiny'}
out="$root/target/ab-bench"
mkdir -p "$out"
: "${TINYSSM_DATA:=$root/../shared/data}"
export TINYSSM_DATA RAYON_NUM_THREADS=1

wt="$out/worktree-a"
rm -rf "$wt"
git worktree prune
git worktree add --detach "$wt" "$rev" >/dev/null

build() { # dir target-dir -> path of the step bench executable
    (cd "$1" && CARGO_TARGET_DIR="$2" cargo bench -p tinyssm-bench --bench step --no-run \
        --message-format=json 2>/dev/null) |
        python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "step":
        print(m["executable"])
' | tail -1
}
echo "building A ($rev) and B (working tree)…" >&2
exe_a=$(build "$wt" "$out/target-a")
exe_b=$(build "$root" "$root/target")
[ -x "$exe_a" ] && [ -x "$exe_b" ] || { echo "bench build failed" >&2; exit 1; }

run() { # side exe i
    # Criterion runs from the package directory (the benchmarks read models relative to it).
    (cd "$([ "$1" = A ] && echo "$wt" || echo "$root")/bench" &&
        CRITERION_HOME="$out/criterion-$1" "$2" --bench --warm-up-time 1 --measurement-time 3 --noplot "$filter" 2>/dev/null) |
        awk -v side="$1" -v i="$3" '
            (/^[^ ].*time:/ || /time: *\[/) && !/%/ {
                line = $0
                if (line ~ /^[^ ]/) { name = $1 }
                sub(/.*\[/, "", line); split(line, t, " ")
                v = t[3]; u = t[4]
                f = (u == "ns") ? 1e-3 : (u == "ms") ? 1e3 : (u == "s") ? 1e6 : 1
                printf "%s %s %s %.4f\n", side, i, name, v * f
                next
            }
            /^[^ ]/ { name = $1 }
        '
}
: >"$out/runs.txt"
for i in $(seq 1 "$n"); do
    echo "run $i/$n" >&2
    run A "$exe_a" "$i" | tee -a "$out/runs.txt"
    run B "$exe_b" "$i" | tee -a "$out/runs.txt"
done
git worktree remove --force "$wt"

python3 - "$out/runs.txt" "$rev" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    side, _, name, us = line.split()
    runs.setdefault(name, {"A": [], "B": []})[side].append(float(us))
print(f"\n| benchmark | A = {sys.argv[2]}: median µs (runs) | B = working tree: median µs (runs) | B/A |")
print("|---|---|---|---|")
for name, r in runs.items():
    if not r["A"] or not r["B"]:
        continue
    a, b = statistics.median(r["A"]), statistics.median(r["B"])
    fmt = lambda xs: ", ".join(f"{x:.1f}" for x in xs)
    print(f"| {name} | {a:.1f} ({fmt(r['A'])}) | {b:.1f} ({fmt(r['B'])}) | {b / a:.3f} |")
PY
