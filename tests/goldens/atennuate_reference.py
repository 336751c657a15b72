"""Run the reference implementation of aTENNuate on the four shared noisy recordings and
compare its output with the stored reference outputs and with tinyssm's streamed output.

The reference is the PyPI package `attenuate` 0.1.1 (aTENNuate, BrainChip Inc., Apache-2.0;
github.com/Brainchip-Inc/aTENNuate; paper arXiv 2409.03377). Its own code does the work:
`Denoiser.from_pretrained` loads the shared `weights.pt` (its hub download is replaced by the
local path; HF_HUB_OFFLINE=1 keeps the hub client offline too), each file is read with
`librosa.load(sr=16000)` as the package's `denoise` reads it, and denoised on its own with
`Denoiser.denoise_single` under `torch.no_grad()` in eval mode: it appends 256 - len % 256
zeros (a whole 256 when the length is already a multiple of 256, as for 10 s at 16 kHz),
runs the FFT-convolution network over the whole file, and crops back; no normalisation.

For each file it writes OUT_DIR/NAME.wav (the package's output, float WAV) and prints
signal-to-error ratios in dB, SER(ref, x) = 10 log10(sum ref^2 / sum (ref - x)^2), of
  (1) the package's output against the shared `denoised/NAME.wav`;
  (2) tinyssm's f32 output against the package's output: whole file, first and last 100 ms;
  (3) tinyssm's `--w8a8` output against the package's output: whole file.
OURS is either the tinyssm binary (run here into OUT_DIR/NAME.tinyssm.wav and
OUT_DIR/NAME.tinyssm-w8a8.wav, its messages into .log files beside them) or a directory
that already holds files named so.

Run it through scripts/atennuate-reference.sh (which pins the environment:
tests/goldens/atennuate-reference-requirements.txt), or directly:

    HF_HUB_OFFLINE=1 python tests/goldens/atennuate_reference.py \
        $TINYSSM_DATA/atennuate OUT_DIR target/release/tinyssm
"""

import os
import subprocess
import sys
import warnings
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"  # before the package imports huggingface_hub

import attenuate.model
import librosa
import numpy as np
import soundfile as sf
import torch

RATE = 16000
EDGE = RATE // 10  # 100 ms
WIDTHS = [11, 11, 8, 8, 8]  # table columns


def ser_db(ref, x):
    ref, x = np.asarray(ref, np.float64), np.asarray(x, np.float64)
    err = np.sum((ref - x) ** 2)
    return float("inf") if err == 0 else 10 * np.log10(np.sum(ref**2) / err)


def load_reference(weights):
    # from_pretrained() calls hf_hub_download(...) and loads what it returns with torch.load
    # and load_state_dict; hand it the shared checkpoint instead of the hub's copy.
    attenuate.model.hf_hub_download = lambda repo_id, filename: str(weights)
    warnings.filterwarnings("ignore", "You are using `torch.load`", FutureWarning)
    model = attenuate.Denoiser()
    model.eval()
    model.from_pretrained("PeaBrane/aTENNuate")
    return model


def read_float(path):
    x, rate = sf.read(path, dtype="float32")
    assert rate == RATE and x.ndim == 1, path
    return x


def main(data, out, ours):
    data, out, ours = Path(data), Path(out), Path(ours)
    out.mkdir(parents=True, exist_ok=True)
    model = load_reference(data / "weights.pt")
    print(f"weights {data / 'weights.pt'}; torch {torch.__version__}, numpy {np.__version__}")
    heads = ["pkg/shared", "f32 whole", "first", "last", "w8a8"]
    print(f"{'file (SER dB)':52}" + "".join(f"{h:>{w}}" for h, w in zip(heads, WIDTHS)))
    for noisy_path in sorted((data / "noisy").glob("*.wav")):
        name = noisy_path.stem
        noisy = librosa.load(noisy_path, sr=RATE)[0]
        with torch.no_grad():
            pkg = model.denoise_single(torch.from_numpy(noisy)[None])[0].numpy()
        sf.write(out / f"{name}.wav", pkg, RATE, subtype="FLOAT")

        shared = read_float(data / "denoised" / f"{name}.wav")
        ours_out = {}
        for variant, flags in (("tinyssm", []), ("tinyssm-w8a8", ["--w8a8"])):
            path = out / f"{name}.{variant}.wav"
            if ours.is_dir():
                path = ours / path.name
            else:
                cmd = [str(ours), "denoise", str(data / "weights.pt"), "--wav", str(noisy_path),
                       "--out-wav", str(path), *flags]
                with open(out / f"{name}.{variant}.log", "w") as log:
                    subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=True)
            if path.exists():
                ours_out[variant] = read_float(path)
                assert len(ours_out[variant]) == len(pkg), path

        f32, w8a8 = ours_out.get("tinyssm"), ours_out.get("tinyssm-w8a8")
        cols = [ser_db(shared, pkg), np.nan, np.nan, np.nan, np.nan]
        if f32 is not None:
            cols[1] = ser_db(pkg, f32)
            cols[2] = ser_db(pkg[:EDGE], f32[:EDGE])
            cols[3] = ser_db(pkg[-EDGE:], f32[-EDGE:])
        if w8a8 is not None:
            cols[4] = ser_db(pkg, w8a8)
        print(f"{name:52}" + "".join(f"{c:{w}.1f}" for c, w in zip(cols, WIDTHS)))


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
