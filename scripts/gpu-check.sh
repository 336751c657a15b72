#!/usr/bin/env bash
# The GPU checks of the CUDA backend, for a session lent a GPU machine (the device tool).
# Build here, carry the binaries, run there:
#
#   scripts/gpu-check.sh build          # here: release test/bench/CLI binaries -> gpu-carry/
#   (device run, carry ["gpu-carry"]):  bash scripts/gpu-check.sh run
#
# `run` finds libcuda (driver), libnvrtc.so.13 and libcublas.so.13 (pip nvidia-* packages of
# the machine's Python), then: the CUDA-backend test suite (every op vs the CPU reference
# on the GPU and on the emulator), the nvrtc test, the step-path tests (float and integer),
# `tinyssm verify --backend cuda` (scan path, then --path step) on every shipped model whose
# data is reachable (TINYSSM_DATA), --path step on the integer-only models (exact), and the
# kernel benchmarks; logs and the benchmark JSON go to $OUT (or gpu-out/).
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-}"
case "$mode" in
build)
    rm -rf gpu-carry && mkdir -p gpu-carry
    cargo build --release -p tinyssm-tools -p tinyssm-cuda --bins
    cp target/release/tinyssm target/release/tinyssm-cuda-bench gpu-carry/
    for t in cuda_backend nvrtc grad_check mamba_model s4d_model step_path step_int; do
        exe=$(cargo test --release -p tinyssm-cuda --test "$t" --no-run --message-format=json 2>/dev/null |
            python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable"): print(m["executable"])' | tail -1)
        cp "$exe" "gpu-carry/test-$t"
    done
    strip gpu-carry/* 2>/dev/null || true  # debug info would not fit the 64 MiB carry
    du -sh gpu-carry; ls -la gpu-carry
    ;;
run)
    out="${OUT:-gpu-out}"
    mkdir -p "$out"
    libs=$(python3 - <<'PY'
import glob, os, site, sys
dirs = set()
for base in site.getsitepackages() + [site.getusersitepackages()] + glob.glob("/opt/*/.venv/lib/python3*/site-packages"):
    for pat in ("libnvrtc.so.13", "libcublas.so.13", "libcublasLt.so.13"):
        for h in glob.glob(os.path.join(base, "nvidia", "**", pat), recursive=True):
            dirs.add(os.path.dirname(h))
print(":".join(sorted(dirs)))
PY
)
    export LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export TINYSSM_REQUIRE_NVRTC=1 TINYSSM_KERNEL_CACHE="$out/kernel-cache"
    nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv | tee "$out/gpu.txt" || true
    cd gpu-carry
    status=0
    for t in test-*; do
        echo "== $t" | tee -a "$out/tests.log"
        ./"$t" --nocapture --test-threads 1 >>"$out/tests.log" 2>&1 || { echo "FAILED: $t" | tee -a "$out/tests.log"; status=1; }
    done
    grep -E "skipped|FAILED|test result" "$out/tests.log" | tail -20
    if [ -n "${TINYSSM_DATA:-}" ] && [ -d "$TINYSSM_DATA" ]; then
        for m in fsdd-s4d:fsdd fsdd-mamba:fsdd ecg-rpeak:ecg basicmotions-s4d:basicmotions; do
            ./tinyssm verify "../models/${m%%:*}.tssm" --dataset "${m##*:}" --streams 64 --backend cuda 2>&1 | tee -a "$out/verify.log" || status=1
            # The step kernels, within the step tier of the core's reference step.
            ./tinyssm verify "../models/${m%%:*}.tssm" --dataset "${m##*:}" --streams 64 --backend cuda --path step 2>&1 | tee -a "$out/verify.log" || status=1
        done
        # Integer-only models: the integer step kernels, bit for bit against the core.
        for m in fsdd-s4d-int:fsdd fsdd-mamba-int:fsdd ecg-rpeak-int:ecg; do
            ./tinyssm verify "../models/${m%%:*}.tssm" --dataset "${m##*:}" --streams 64 --backend cuda --path step 2>&1 | tee -a "$out/verify.log" || status=1
        done
    else
        echo "TINYSSM_DATA not set: verify on shipped models not run" | tee -a "$out/verify.log"
    fi
    ./tinyssm-cuda-bench --json "$out/bench.json" 2>&1 | tee "$out/bench.log" || status=1
    exit $status
    ;;
*)
    echo "usage: $0 build|run" >&2
    exit 2
    ;;
esac
