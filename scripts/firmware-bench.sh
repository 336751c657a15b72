#!/usr/bin/env bash
# Instruction counts of the firmware on QEMU (Cortex-M4F, mps2-an386): builds the
# insn_count plugin (gcc), the bench images (firmware/apps/bench), runs each one under
# qemu-system-arm with the plugin counting every marker span, and prints the tables that
# BENCHMARKS.md keeps ("Cortex-M (QEMU instruction counts)").
#
#   scripts/firmware-bench.sh [IMAGE...]     # default: bench-kernels and every model image
#
# Needs gcc, nm (binutils), python3, qemu-system-arm (Debian's 7.2 has plugin support) and
# the thumbv7em-none-eabihf target; the model images need $TINYSSM_DATA/fsdd (default
# ../shared/data). Raw plugin reports and semihosting output land in
# firmware/target/insn-count/. A benchmark, not a test: nothing here passes or fails on
# a number.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
: "${TINYSSM_DATA:=$root/../shared/data}"
export TINYSSM_DATA

images=("$@")
if [ "${#images[@]}" -eq 0 ]; then
    images=(bench-kernels bench-fsdd-s4d bench-fsdd-s4d-int8 bench-fsdd-s4d-int
        bench-fsdd-mamba bench-fsdd-mamba-int8 bench-fsdd-mamba-int
        bench-fsdd-s4d-small bench-fsdd-s4d-small-int8)
fi

make -s -C firmware/qemu-plugin OUT="$root/firmware/target/qemu-plugin"
plugin="$root/firmware/target/qemu-plugin/libinsn_count.so"
(cd firmware && cargo build --release --locked -p tinyssm-fw-bench)
elfdir="$root/firmware/target/thumbv7em-none-eabihf/release"
outdir="$root/firmware/target/insn-count"
mkdir -p "$outdir"

# Span arguments from the symbol table: begin markers tinyssm_begin_<B>, end markers
# tinyssm_span_<S>__<B> (Thumb symbols carry bit 0; the plugin wants instruction addresses).
span_args() {
    nm --defined-only "$1" | python3 -c '
import sys
begin, end = {}, {}
for line in sys.stdin:
    w = line.split()
    if len(w) == 3 and w[2].startswith("tinyssm_begin_"):
        begin[w[2][len("tinyssm_begin_"):]] = int(w[0], 16) & ~1
    elif len(w) == 3 and w[2].startswith("tinyssm_span_"):
        end[w[2][len("tinyssm_span_"):]] = int(w[0], 16) & ~1
for k, e in sorted(end.items()):
    s, b = k.split("__", 1)
    if b not in begin:
        sys.exit(f"no begin marker tinyssm_begin_{b} for tinyssm_span_{k}")
    print(f",span={s}:{begin[b]:#x}-{e:#x}", end="")
'
}

for img in "${images[@]}"; do
    elf="$elfdir/$img"
    args=$(span_args "$elf")
    echo "== $img" >&2
    timeout 600 qemu-system-arm -cpu cortex-m4 -machine mps2-an386 -nographic \
        -semihosting-config enable=on,target=native \
        -plugin "$plugin,out=$outdir/$img.count$args" \
        -kernel "$elf" >"$outdir/$img.log" 2>&1 || {
        echo "$img: qemu-system-arm failed:" >&2
        cat "$outdir/$img.log" >&2
        exit 1
    }
    size -A "$elf" >"$outdir/$img.size"
done

python3 - "$outdir" "${images[@]}" <<'PY'
import sys, re
outdir, images = sys.argv[1], sys.argv[2:]

def spans(img):
    d = {}
    for line in open(f"{outdir}/{img}.count"):
        w = line.split()
        if w[0] == "span":
            d[w[1]] = dict(zip(w[4::2], map(int, w[5::2])))
        elif w[0] == "total":
            d["_total"] = int(w[1])
    return d

def log(img):
    d = {}
    for line in open(f"{outdir}/{img}.log"):
        w = line.split()
        if len(w) == 2 and re.fullmatch(r"[a-z_]+", w[0]) and w[1].isdigit():
            d[w[0]] = int(w[1])
        if w and w[0] == "pass":
            d.setdefault("passes", []).append(w[1:])
    return d

def statics(img):
    sec = {}
    for line in open(f"{outdir}/{img}.size"):
        w = line.split()
        if len(w) == 3 and w[1].isdigit():
            sec[w[0]] = int(w[1])
    return sum(sec.get(s, 0) for s in (".data", ".bss", ".uninit")), sec.get(".text", 0), sec.get(".rodata", 0)

def fmt(n):
    return f"{n:,}"

if "bench-kernels" in images:
    s = spans("bench-kernels")
    print("\n### matvec kernels (one call each; instructions include the call and the markers)\n")
    print("| kernel | kernels | 256×256 insns | insns/MAC | 768×768 insns | insns/MAC |")
    print("|---|---|---|---|---|---|")
    for key, name, ks in [("f32_ref", "f32 weights, f32 activations", "Reference"),
                          ("f32_fast", "f32 weights, f32 activations", "Fast"),
                          ("w8a8_ref", "int8 weights, dynamic int8 activations (w8a8)", "Reference"),
                          ("w8a8_fast", "int8 weights, dynamic int8 activations (w8a8)", "Fast"),
                          ("w8a8s_fast", "int8 weights, static int8 activation scale (w8a8, int8s)", "Fast"),
                          ("i8r", "integer-only `matvec_i8r` (int8 × i16, per-row requant)", "—")]:
        row = [name, ks]
        for n in (256, 768):
            v = s[f"{key}_{n}"]["sum"]
            row += [fmt(v), f"{v / (n * n):.3f}"]
        print("| " + " | ".join(row) + " |")

models = [i for i in images if i != "bench-kernels"]
if models:
    print("\n### spoken-digit models on one FSDD clip (every `step_sample` call)\n")
    print("| model | kernels | samples (s of audio) | frames | insns / model step (frame sample: mean, min–max) | insns / other sample (mean) | insns / s of audio | × real time on 80 MHz at 1 insn/cycle |")
    print("|---|---|---|---|---|---|---|---|")
    ram = []
    for img in models:
        s, l = spans(img), log(img)
        rate, samples = l["sample_rate"], l["samples"]
        secs = samples / rate
        for p in l.get("passes", []):
            k = p[0]
            clip, fr, sa = s[f"clip_{k}"], s[f"frame_{k}"], s[f"sample_{k}"]
            per_s = clip["sum"] / secs
            print(f"| {img[6:]} | {k} | {fmt(samples)} ({secs:.3f} s) | {fr['count']} | "
                  f"{fmt(round(fr['sum'] / fr['count']))} ({fmt(fr['min'])}–{fmt(fr['max'])}) | "
                  f"{sa['sum'] / sa['count']:.0f} | {per_s / 1e6:.2f} M | {80e6 / per_s:.2f} |")
        st, text, rodata = statics(img)
        ram.append((img[6:], st, l["buffer_bytes"], l["stack_high_water_bytes"], text, rodata))
    print("\n### RAM and flash per model image\n")
    print("| model | static RAM (.data+.bss, ELF) | of which state+scratch+out | stack high-water | RAM total | .text | .rodata (model blob + clip) |")
    print("|---|---|---|---|---|---|---|")
    for name, st, buf, stack, text, rodata in ram:
        print(f"| {name} | {fmt(st)} | {fmt(buf)} | {fmt(stack)} | {fmt(st + stack)} | {fmt(text)} | {fmt(rodata)} |")
PY
