#!/usr/bin/env bash
# aTENNuate's denoiser (int8 w8a8 with its 18 smallest matrices f32, format 1.7) on the Cortex-M7 under QEMU (mps2-an500):
# instructions per second of audio and where they go. A benchmark, not a test (nothing
# here passes or fails on a number); not run in CI.
#
#   TINYSSM_DATA=../shared/data scripts/denoise-bench.sh
#
# 1. `cargo test --release -p tinyssm-tests --test qemu_denoise` converts the network,
#    cuts the 1 s excerpt into firmware/target/denoise/ and checks the device's bits;
# 2. builds the denoise image once per kernel set (TINYSSM_FW_NET_RUNS) and runs it under
#    QEMU with the insn_count plugin (firmware/qemu-plugin): the span between the image's
#    markers (the whole stream: feed every sample, then finish), and exclusive counts in
#    the image's largest functions (up to 60 ranges; what LTO left out-of-line);
# 3. prints a table per kernel set: instructions per second of audio, against the
#    real-time budget of a 480 MHz STM32H7 at one instruction per cycle, and the top
#    functions' shares. Reports in firmware/target/insn-count/denoise-*.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export TINYSSM_DATA="${TINYSSM_DATA:-$root/../shared/data}"
cargo test -q --release -p tinyssm-tests --test qemu_denoise -- --nocapture >&2
make -s -C firmware/qemu-plugin OUT="$root/firmware/target/qemu-plugin"
plugin="$root/firmware/target/qemu-plugin/libinsn_count.so"
outdir="$root/firmware/target/insn-count"
mkdir -p "$outdir"
work="$root/firmware/target/denoise"
elf="$root/firmware/target/thumbv7em-none-eabihf/release/denoise"
for runs in reference fast; do
    span=$([ $runs = reference ] && echo net_ref || echo net_fast)
    (cd firmware && TINYSSM_BOARD=mps2-an500 TINYSSM_FW_NET_RUNS=$runs \
        TINYSSM_FW_NET_BLOB="$work/atennuate-w8a8-small4096.tssm" TINYSSM_FW_NET_INPUT="$work/input.f32" \
        cargo build -q --release --locked -p tinyssm-fw-denoise --target thumbv7em-none-eabihf)
    cp "$elf" "$outdir/denoise-$runs.elf"
    args=$(nm --defined-only -S "$elf" | python3 -c '
import sys
begin, end, funcs = {}, {}, []
for line in sys.stdin:
    w = line.split()
    if w[-1].startswith("tinyssm_begin_"):
        begin[w[-1][len("tinyssm_begin_"):]] = int(w[0], 16) & ~1
    elif w[-1].startswith("tinyssm_span_"):
        end[w[-1][len("tinyssm_span_"):]] = int(w[0], 16) & ~1
    elif len(w) == 4 and w[2] in "tT":
        funcs.append((int(w[1], 16), int(w[0], 16) & ~1, w[3]))
out = []
for k, e in sorted(end.items()):
    s, b = k.split("__", 1)
    if s == sys.argv[2] or s.startswith("op"):
        out.append(f",span={s}:{begin[b]:#x}-{e:#x}")
for i, (size, lo, name) in enumerate(sorted(funcs, reverse=True)[:60]):
    out.append(f",range=f{i}:{lo:#x}-{lo + size:#x}")
    print(f"f{i} {name}", file=open(sys.argv[1], "a"))
print("".join(out), end="")
' "$outdir/denoise-$runs.names.tmp" "$span")
    mv "$outdir/denoise-$runs.names.tmp" "$outdir/denoise-$runs.names"
    timeout 1200 qemu-system-arm -cpu cortex-m7 -machine mps2-an500 -nographic \
        -semihosting-config enable=on,target=native \
        -plugin "$plugin,out=$outdir/denoise-$runs.count$args" \
        -kernel "$elf" >"$outdir/denoise-$runs.log" 2>&1 || {
        cat "$outdir/denoise-$runs.log" >&2
        exit 1
    }
    size -A "$elf" >"$outdir/denoise-$runs.size"
done
cargo build -q --release --locked -p tinyssm-tools --bin tinyssm
"$root/target/release/tinyssm" inspect --json "$work/atennuate-w8a8-small4096.tssm" >"$outdir/denoise-net.json"
python3 - "$outdir" <<'PY'
import json, re, subprocess, sys
outdir = sys.argv[1]
net = json.load(open(f"{outdir}/denoise-net.json"))
for runs in ["reference", "fast"]:
    names = dict(l.split(None, 1) for l in open(f"{outdir}/denoise-{runs}.names"))
    span, ranges, total, ops = None, [], 0, {}
    for line in open(f"{outdir}/denoise-{runs}.count"):
        w = line.split()
        if w[0] == "span" and w[1].startswith("op"):
            ops[int(w[1][2:])] = int(w[w.index("sum") + 1])
        elif w[0] == "span":
            span = dict(zip(w[4::2], map(int, w[5::2])))
        elif w[0] == "range":
            ranges.append((int(w[w.index("insns") + 1]), names[w[1]].strip()))
        elif w[0] == "total":
            total = int(w[1])
    log = open(f"{outdir}/denoise-{runs}.log").read()
    samples = int(re.search(r"run \w+ samples (\d+)", log).group(1))
    ram = re.search(r"ram .*", log).group(0)
    secs = samples / 16000
    per_s = span["sum"] / secs
    print(f"\n### {runs} kernels: {span['sum']:,} instructions for {samples} samples "
          f"({secs:.2f} s of audio): {per_s / 1e6:,.0f} M instructions per second of audio "
          f"= {per_s / 480e6:.2f}x the real-time budget of a 480 MHz Cortex-M7 at 1 insn/cycle")
    print(f"{ram}")
    sizes = {l.split()[0]: int(l.split()[1]) for l in open(f"{outdir}/denoise-{runs}.size") if l.startswith(".")}
    print(f"flash .text {sizes.get('.text', 0):,} B + .rodata {sizes.get('.rodata', 0):,} B; "
          f"RAM .data {sizes.get('.data', 0):,} B + .bss {sizes.get('.bss', 0):,} B (+ stack)")
    levels = net["levels"]
    print("\n| level | MACs per s of audio | instructions per s of audio (its operations' own work) | share | instructions per MAC |")
    print("|---|---:|---:|---:|---:|")
    period = net["period"]
    for l, (c, f) in enumerate(levels):
        n = sum(v for i, v in ops.items() if net["ops"][i][1] == l) / secs
        macs = net["level_macs"][l] * 16000 / period
        print(f"| {c} ch @ {16000 / f:g} Hz | {macs / 1e6:,.1f} M | {n / 1e6:,.1f} M | {100 * n * secs / span['sum']:.1f}% | {n / max(macs, 1):.2f} |")
    kinds = {}
    for i, v in ops.items():
        kinds[net["ops"][i][0]] = kinds.get(net["ops"][i][0], 0) + v
    inside = sum(ops.values())
    print(f"\nby operation kind: " + ", ".join(f"{k} {100 * v / span['sum']:.1f}%" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1]))
          + f"; outside the operations (stream driver, markers, output) {100 * (span['sum'] - inside) / span['sum']:.1f}%")
    print("\n| function (exclusive instructions, whole run) | instructions | share of the stream |")
    print("|---|---:|---:|")
    for n, name in sorted(ranges, reverse=True)[:15]:
        if n == 0:
            break
        dem = subprocess.run(["c++filt", "-p", name], capture_output=True, text=True).stdout.strip() or name
        print(f"| `{dem[:90]}` | {n:,} | {100 * n / span['sum']:.1f}% |")
PY
