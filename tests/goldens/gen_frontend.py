#!/usr/bin/env python3
"""Audio front-end goldens from librosa (pinned in requirements.txt): log-mel features of a
deterministic synthetic signal (chirp + tones + noise), computed in float64 by librosa's STFT
(center=False) and librosa's mel filterbank, for several front-end configurations.

tinyssm's frame i covers samples [i*hop, i*hop + frame_len); librosa's frame i covers
[i*hop, i*hop + n_fft) with the window centred in it, so the signal given to librosa is
preceded by (n_fft - frame_len)//2 zeros: then both frames hold the same samples (the zero
padding's position changes only the phase, not |X|^2).

Usage: python tests/goldens/gen_frontend.py --out tests/fixtures/frontend
Writes per case <name>/: config.json, input.npy (float32 [T]), filters.npy (float32
[n_mels, n_fft/2+1]) and features.npy (float32 [frames, n_mels]).
"""
import argparse
import json
import os

import librosa
import numpy as np

CASES = [
    # 8 kHz speech-style: 25 ms Hann window, 10 ms hop, HTK mels, unit-peak filters.
    dict(name="sr8k-hann-htk", sample_rate=8000, frame_len=200, hop=80, n_fft=256, n_mels=40,
         f_min=20.0, f_max=4000.0, window="hann", mel_scale="htk", area_norm=False, log_eps=1e-6),
    # Window = FFT size, Hamming, Slaney scale with area normalisation.
    dict(name="sr8k-hamming-slaney", sample_rate=8000, frame_len=256, hop=128, n_fft=256,
         n_mels=32, f_min=0.0, f_max=3800.0, window="hamming", mel_scale="slaney",
         area_norm=True, log_eps=1e-4),
    # 16 kHz, 400-sample window in a 512 FFT, rectangular window.
    dict(name="sr16k-rect-htk", sample_rate=16000, frame_len=400, hop=160, n_fft=512,
         n_mels=64, f_min=60.0, f_max=7600.0, window="rectangular", mel_scale="htk",
         area_norm=False, log_eps=1e-3),
]

SCIPY_WINDOW = {"hann": "hann", "hamming": "hamming", "rectangular": "boxcar"}


def signal(sr, seconds, rng):
    t = np.arange(int(sr * seconds)) / sr
    chirp = 0.3 * np.sin(2 * np.pi * (100 * t + (0.45 * sr - 100) / (2 * seconds) * t**2))
    tones = 0.1 * np.sin(2 * np.pi * 440 * t) + 0.05 * np.sin(2 * np.pi * 1234.5 * t)
    return (chirp + tones + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    rng = np.random.default_rng(4)
    for c in CASES:
        d = os.path.join(a.out, c["name"])
        os.makedirs(d, exist_ok=True)
        y = signal(c["sample_rate"], 1.0, rng)
        lpad = (c["n_fft"] - c["frame_len"]) // 2
        rpad = c["n_fft"] - c["frame_len"] - lpad
        yp = np.concatenate([np.zeros(lpad), y.astype(np.float64), np.zeros(rpad)])
        stft = librosa.stft(yp, n_fft=c["n_fft"], hop_length=c["hop"], win_length=c["frame_len"],
                            window=SCIPY_WINDOW[c["window"]], center=False, dtype=np.complex128)
        power = np.abs(stft) ** 2
        fb = librosa.filters.mel(sr=c["sample_rate"], n_fft=c["n_fft"], n_mels=c["n_mels"],
                                 fmin=c["f_min"], fmax=c["f_max"], htk=c["mel_scale"] == "htk",
                                 norm="slaney" if c["area_norm"] else None, dtype=np.float64)
        feats = np.log(fb @ power + c["log_eps"]).T
        cfg = {k: v for k, v in c.items() if k != "name"}
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg, f, indent=1)
        np.save(os.path.join(d, "input.npy"), y)
        np.save(os.path.join(d, "filters.npy"), fb.astype(np.float32))
        np.save(os.path.join(d, "features.npy"), feats.astype(np.float32))
        print(f"{c['name']}: {feats.shape[0]} frames x {feats.shape[1]} mels")


if __name__ == "__main__":
    main()
