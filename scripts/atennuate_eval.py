#!/usr/bin/env python3
"""Objective quality of the streamed aTENNuate speech denoiser: PESQ (wide-band) and STOI.

aTENNuate (arXiv 2409.03377) is BrainChip Inc.'s speech denoiser, Apache-2.0; its trained
weights and four real noisy recordings with the reference model's outputs are read from
$TINYSSM_DATA/atennuate. Clean speech comes from the Free Spoken Digit Dataset
($TINYSSM_DATA/fsdd, CC BY-SA 4.0). $TINYSSM_DATA defaults to the shared/data folder beside
the repository. Nothing here is copied into the repository.

Subcommands:
  build OUTDIR      deterministic synthetic set (fixed seed):
                      OUTDIR/test/{noisy,clean}/*.wav  >= 108 clips from the FSDD test split
                                                        (index 0-4): 6 speakers x {white, pink,
                                                        babble} x {0, 5, 10} dB SNR x 2
                      OUTDIR/calib/*.wav               36 noisy clips from the training split
                                                        (index 5-49) only, other noise seeds
                      OUTDIR/manifest.json             clip -> speaker, digits, noise, snr
  score OUTDIR --name NAME --cmd TEMPLATE
                    runs TEMPLATE (a shell command; {in} and {out} are replaced by the quoted
                    input and output paths) on every test clip, 2 at a time, into
                    OUTDIR/test/NAME/, then scores PESQ-wb and STOI of noisy and of NAME's
                    output against the clean clip; per-clip results to OUTDIR/NAME.json
  report OUTDIR NAME...
                    markdown table by noise x SNR: PESQ-wb and STOI of noisy and each NAME with
                    the improvement over noisy, and each NAME's signal-to-error ratio against
                    the first NAME (e.g. w8a8 against f32)
  real --cmd NAME=TEMPLATE ... [--outdir DIR]
                    runs each TEMPLATE on the four real recordings and scores each output (and
                    the noisy input, as a baseline) against the reference model's output
                    denoised/<same name>.wav: there is no clean signal, so these numbers say how
                    close an output is to the reference model, not how clean it is

Clip recipe: three utterances of one speaker joined with 0.2 s gaps, 0.3 s of silence before
and after, scaled to -25 dBFS RMS over the active speech (the utterances; FSDD is trimmed of
silence); noise scaled so that speech power over the active region / noise power over the whole
clip is the SNR; white = Gaussian, pink = white shaped to 1/f power in the FFT domain, babble =
8 talkers, each a chain of FSDD utterances of speakers other than the clip's (same split),
cut at a random offset. If a noisy clip would exceed full scale, noisy and clean are scaled
down together.

Caveat: FSDD is 8 kHz; the clean speech is upsampled with scipy.signal.resample_poly(x, 2, 1)
(polyphase, Kaiser-windowed FIR), so it is band-limited to 4 kHz with nothing between 4 and
8 kHz. Wide-band PESQ is thus scored on narrow-band speech: absolute scores are not comparable
to DNS-challenge or VoiceBank+DEMAND numbers, while improvements over noisy and differences
between variants still are meaningful.

Commands (scripts/atennuate-eval.sh runs them all in a venv made from
scripts/atennuate-eval-requirements.txt):
  python3 scripts/atennuate_eval.py build OUT
  python3 scripts/atennuate_eval.py score OUT --name f32 \\
      --cmd 'target/release/tinyssm denoise $TINYSSM_DATA/atennuate/weights.pt --wav {in} --out-wav {out}'
  python3 scripts/atennuate_eval.py score OUT --name w8a8 --cmd '... denoise --w8a8 ...'
  python3 scripts/atennuate_eval.py report OUT f32 w8a8
  python3 scripts/atennuate_eval.py real --outdir OUT/real --cmd 'f32=...' --cmd 'w8a8=...'
"""
import argparse
import json
import os
import shlex
import subprocess
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from pesq import pesq
from pystoi import stoi
from scipy.io import wavfile
from scipy.signal import resample_poly

SR = 16000
SEED = 2409_03377
NOISES = ("white", "pink", "babble")
SNRS = (0, 5, 10)
LEVEL_DBFS = -25.0
BABBLE_TALKERS = 8
DATA = Path(os.environ.get("TINYSSM_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
warnings.filterwarnings("ignore", category=wavfile.WavFileWarning)  # the reference WAVs' extra chunks


def read_wav(path):
    sr, x = wavfile.read(path)
    if x.dtype.kind == "i":
        x = x / float(np.iinfo(x.dtype).max + 1)
    return sr, np.asarray(x, dtype=np.float64)


def write_pcm16(path, x):
    wavfile.write(path, SR, np.round(np.clip(x, -1, 32767 / 32768) * 32768).astype(np.int16))


# ---------------------------------------------------------------- build

def fsdd_index():
    """{(speaker, split): [(digit, path)]}, split 'test' for index 0-4, 'train' for 5-49."""
    pools = {}
    for p in sorted((DATA / "fsdd" / "recordings").glob("*.wav")):
        digit, speaker, idx = p.stem.split("_")
        pools.setdefault((speaker, "test" if int(idx) < 5 else "train"), []).append((int(digit), p))
    return pools


_utt_cache = {}


def utterance(path):
    """An FSDD recording at 16 kHz (8 kHz -> 16 kHz with resample_poly(x, 2, 1))."""
    if path not in _utt_cache:
        sr, x = read_wav(path)
        assert sr == 8000, (path, sr)
        _utt_cache[path] = resample_poly(x, 2, 1)
    return _utt_cache[path]


def speech_clip(utts):
    """Join utterances with 0.2 s gaps and 0.3 s lead/tail; returns (signal, active mask)."""
    parts, mask = [np.zeros(int(0.3 * SR))], [np.zeros(int(0.3 * SR), bool)]
    for i, u in enumerate(utts):
        if i:
            parts.append(np.zeros(int(0.2 * SR)))
            mask.append(np.zeros(int(0.2 * SR), bool))
        parts.append(u)
        mask.append(np.ones(len(u), bool))
    parts.append(np.zeros(int(0.3 * SR)))
    mask.append(np.zeros(int(0.3 * SR), bool))
    return np.concatenate(parts), np.concatenate(mask)


def make_noise(kind, n, rng, babble_pool):
    if kind == "white":
        return rng.standard_normal(n)
    if kind == "pink":
        spec = np.fft.rfft(rng.standard_normal(n))
        f = np.fft.rfftfreq(n, 1 / SR)
        spec[1:] /= np.sqrt(f[1:])  # power ~ 1/f
        spec[0] = 0
        return np.fft.irfft(spec, n)
    noise = np.zeros(n)
    for _ in range(BABBLE_TALKERS):  # each talker: a chain of utterances, cut at a random offset
        chain, total = [], 0
        while total < 2 * n:
            u = utterance(babble_pool[rng.integers(len(babble_pool))])
            chain.append(u / np.sqrt(np.mean(u ** 2)))
            total += len(u)
        chain = np.concatenate(chain)
        start = rng.integers(len(chain) - n)
        noise += chain[start:start + n]
    return noise


def make_set(pools, split, rng, specs):
    """specs: [(name, speaker, noise, snr)] -> {name: (clean, noisy, meta)}."""
    out = {}
    for name, speaker, noise, snr in specs:
        own = pools[(speaker, split)]
        picks = [own[i] for i in rng.choice(len(own), 3, replace=False)]
        clean, active = speech_clip([utterance(p) for _, p in picks])
        clean *= 10 ** (LEVEL_DBFS / 20) / np.sqrt(np.mean(clean[active] ** 2))
        others = [p for (s, sp), lst in sorted(pools.items()) if sp == split and s != speaker for _, p in lst]
        n = make_noise(noise, len(clean), rng, others)
        n *= np.sqrt(np.mean(clean[active] ** 2) / np.mean(n ** 2) / 10 ** (snr / 10))
        noisy = clean + n
        peak = np.max(np.abs(noisy))
        scale = 0.99 / peak if peak > 0.99 else 1.0
        out[name] = (clean * scale, noisy * scale, dict(
            speaker=speaker, digits=[d for d, _ in picks], files=[p.name for _, p in picks],
            noise=noise, snr=snr, seconds=round(len(clean) / SR, 3), scaled_down=scale < 1))
    return out


def cmd_build(a):
    out = Path(a.outdir)
    pools = fsdd_index()
    speakers = sorted({s for s, _ in pools})
    test_specs = [(f"{s}_{n}_snr{snr:02d}_{k}", s, n, snr)
                  for s in speakers for n in NOISES for snr in SNRS for k in range(a.per_cell)]
    calib_specs = [(f"{s}_{n}_{k}", s, n, SNRS[(i + k) % len(SNRS)])
                   for i, s in enumerate(speakers) for n in NOISES for k in range(2)]
    test = make_set(pools, "test", np.random.default_rng([SEED, 0]), test_specs)
    calib = make_set(pools, "train", np.random.default_rng([SEED, 1]), calib_specs)
    for d in ("test/noisy", "test/clean", "calib"):
        (out / d).mkdir(parents=True, exist_ok=True)
    for name, (clean, noisy, _) in test.items():
        write_pcm16(out / "test/clean" / f"{name}.wav", clean)
        write_pcm16(out / "test/noisy" / f"{name}.wav", noisy)
    for name, (_, noisy, _) in calib.items():
        write_pcm16(out / "calib" / f"{name}.wav", noisy)
    manifest = dict(seed=SEED, sample_rate=SR, level_dbfs=LEVEL_DBFS,
                    test={k: v[2] for k, v in test.items()}, calib={k: v[2] for k, v in calib.items()})
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    secs = sum(m["seconds"] for m in manifest["test"].values())
    print(f"built {len(test)} test clips ({secs:.0f} s), {len(calib)} calibration clips in {out}; "
          f"{sum(m['scaled_down'] for m in manifest['test'].values())} scaled down to avoid clipping")


# ---------------------------------------------------------------- score

def run_all(template, jobs, pairs):
    """Run the shell TEMPLATE on each (in, out) pair, `jobs` at a time."""
    def one(pair):
        cmd = template.replace("{in}", shlex.quote(str(pair[0]))).replace("{out}", shlex.quote(str(pair[1])))
        r = subprocess.run(cmd, shell=True, capture_output=True, text=True)
        if r.returncode:
            sys.exit(f"failed ({r.returncode}): {cmd}\n{r.stderr}")
    t = time.time()
    with ThreadPoolExecutor(jobs) as ex:
        list(ex.map(one, pairs))
    return time.time() - t


def scores(ref, x):
    n = min(len(ref), len(x))
    ref, x = ref[:n], x[:n]
    try:
        p = float(pesq(SR, ref, x, "wb"))
    except Exception as e:  # pesq raises when it finds no utterance
        print(f"  PESQ failed: {e}", file=sys.stderr)
        p = float("nan")
    return p, float(stoi(ref, x, SR, extended=False))


def cmd_score(a):
    out = Path(a.outdir)
    manifest = json.loads((out / "manifest.json").read_text())
    dest = out / "test" / a.name
    dest.mkdir(parents=True, exist_ok=True)
    clips = sorted(manifest["test"])
    secs = run_all(a.cmd, a.jobs, [(out / "test/noisy" / f"{c}.wav", dest / f"{c}.wav") for c in clips])
    audio = sum(manifest["test"][c]["seconds"] for c in clips)
    print(f"{a.name}: denoised {len(clips)} clips ({audio:.0f} s of audio) in {secs:.1f} s with {a.jobs} jobs")
    res = {}
    for c in clips:
        clean = read_wav(out / "test/clean" / f"{c}.wav")[1]
        noisy = read_wav(out / "test/noisy" / f"{c}.wav")[1]
        sr, y = read_wav(dest / f"{c}.wav")
        assert sr == SR and len(y) == len(noisy), (c, sr, len(y), len(noisy))
        m = manifest["test"][c]
        (pn, sn), (py, sy) = scores(clean, noisy), scores(clean, y)
        res[c] = dict(noise=m["noise"], snr=m["snr"], pesq_noisy=pn, stoi_noisy=sn, pesq=py, stoi=sy)
    (out / f"{a.name}.json").write_text(json.dumps(dict(name=a.name, cmd=a.cmd, seconds=secs, clips=res), indent=1))
    print(f"{a.name}: scored -> {out / (a.name + '.json')}")


# ---------------------------------------------------------------- report

def ser_db(ref, x):
    return 10 * np.log10(np.sum(ref ** 2) / max(np.sum((x - ref) ** 2), 1e-30))


def cmd_report(a):
    out = Path(a.outdir)
    runs = [json.loads((out / f"{n}.json").read_text())["clips"] for n in a.names]
    clips = sorted(runs[0])
    rows = [(f"{n} {s} dB", [c for c in clips if runs[0][c]["noise"] == n and runs[0][c]["snr"] == s])
            for n in NOISES for s in SNRS] + [("all", clips)]
    head = (["set", "clips", "PESQ noisy"] + [f"PESQ {n} (Δ)" for n in a.names]
            + ["STOI noisy"] + [f"STOI {n} (Δ)" for n in a.names])
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for label, cs in rows:
        cells = [label, str(len(cs))]
        for metric, fmt in (("pesq", "{:.2f}"), ("stoi", "{:.3f}")):
            base = np.nanmean([runs[0][c][metric + "_noisy"] for c in cs])
            cells.append(fmt.format(base))
            for r in runs:
                v = np.nanmean([r[c][metric] for c in cs])
                cells.append(f"{fmt.format(v)} ({'+' if v >= base else ''}{fmt.format(v - base)})")
        print("| " + " | ".join(cells) + " |")
    print()
    for name, r in zip(a.names, runs):
        for metric in ("pesq", "stoi"):
            d = {c: r[c][metric] - r[c][metric + "_noisy"] for c in clips}
            worse = [c for c in clips if d[c] < 0]
            w = min(d, key=d.get)
            print(f"- {name}: {metric.upper()} below noisy on {len(worse)}/{len(clips)} clips"
                  + (f" (worst {d[w]:+.3f}: {w})" if worse else ""))
    ref_name = a.names[0]
    for name in a.names[1:]:
        num = den = 0.0
        per = {}
        for c in clips:
            ref = read_wav(out / "test" / ref_name / f"{c}.wav")[1]
            x = read_wav(out / "test" / name / f"{c}.wav")[1]
            num, den = num + np.sum(ref ** 2), den + np.sum((x - ref) ** 2)
            per[c] = ser_db(ref, x)
        w = min(per, key=per.get)
        print(f"- SER of {name} vs {ref_name}: {10 * np.log10(num / den):.1f} dB over the set "
              f"(per clip median {np.median(list(per.values())):.1f} dB, worst {per[w]:.1f} dB: {w})")


# ---------------------------------------------------------------- real

def cmd_real(a):
    variants = [tuple(s.split("=", 1)) for s in a.cmd]
    outdir = Path(a.outdir)
    files = sorted((DATA / "atennuate" / "noisy").glob("*.wav"))
    for name, template in variants:
        (outdir / name).mkdir(parents=True, exist_ok=True)
        secs = run_all(template, a.jobs, [(f, outdir / name / f.name) for f in files])
        print(f"{name}: denoised {len(files)} real recordings in {secs:.1f} s")
    print("\nAgainst the reference model's output (denoised/<name>.wav); no clean signal exists.\n")
    print("| recording | signal | PESQ-wb vs ref | STOI vs ref | SER vs ref (dB) |\n|---|---|---|---|---|")
    for f in files:
        sr, ref = read_wav(DATA / "atennuate" / "denoised" / f.name)
        for label, path in [("noisy", f)] + [(n, outdir / n / f.name) for n, _ in variants]:
            x = read_wav(path)[1]
            n = min(len(ref), len(x))
            p, s = scores(ref, x)
            print(f"| {f.stem} | {label} | {p:.2f} | {s:.3f} | {ser_db(ref[:n], x[:n]):.1f} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd_name", required=True)
    b = sub.add_parser("build")
    b.add_argument("outdir")
    b.add_argument("--per-cell", type=int, default=2, help="test clips per speaker x noise x SNR")
    s = sub.add_parser("score")
    s.add_argument("outdir")
    s.add_argument("--name", required=True)
    s.add_argument("--cmd", required=True, help="shell command with {in} and {out}")
    s.add_argument("--jobs", type=int, default=2)
    r = sub.add_parser("report")
    r.add_argument("outdir")
    r.add_argument("names", nargs="+")
    q = sub.add_parser("real")
    q.add_argument("--cmd", action="append", required=True, help="NAME=TEMPLATE, repeatable")
    q.add_argument("--outdir", default=str(Path(os.environ.get(
        "TINYSSM_CACHE", Path.home() / ".cache" / "tinyssm")) / "atennuate-eval" / "real"))
    q.add_argument("--jobs", type=int, default=2)
    a = ap.parse_args()
    {"build": cmd_build, "score": cmd_score, "report": cmd_report, "real": cmd_real}[a.cmd_name](a)


if __name__ == "__main__":
    main()
