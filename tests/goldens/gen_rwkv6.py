#!/usr/bin/env python3
"""RWKV v6 ("Finch") goldens: a random-weight v6 model with the real checkpoint tensor names
and shapes, saved as a PyTorch `.pth` state dict (bf16, as released RWKV checkpoints are),
converted to rwkv.cpp's FP32 and FP16 files by rwkv.cpp's own converter, plus the logits of
an independent float64 numpy reference of the v6 recurrence written from the paper's
equations (arXiv 2404.05892, section 4: data-dependent token shift via low-rank `time_maa_*`
terms, data-dependent decay, per-head matrix state with bonus `u`, group norm, SiLU gate).

Usage (pinned versions in requirements.txt; rwkv.cpp at commit 4358e709):
    python tests/goldens/gen_rwkv6.py --rwkv-cpp /path/to/rwkv.cpp --out tests/fixtures/rwkv6

Writes: rwkv6-tiny.pth, rwkv6-tiny-FP32.bin, rwkv6-tiny-FP16.bin, tokens.npy (int32 [T]) and
logits.npy (float32 [T, vocab]: the reference's logits after each token, from the empty state).

Also rwkv6-tiny-{Q4_0,Q4_1,Q5_0,Q5_1,Q8_0}.bin: the FP32 file with the tensors rwkv.cpp's
quantizer selects (2-D, not emb/head; here also rows a multiple of 32) block-quantized by
gguf-py's implementation of ggml's formats, and logits-<type>.npy: the reference run on the
weights gguf-py dequantizes from them.
"""
import argparse
import os
import subprocess
import sys

import struct

import numpy as np
import torch
from gguf.quants import dequantize, quantize
from gguf.constants import GGMLQuantizationType as QT

VOCAB, C, H, N_LAYER, L_MIX, L_DECAY = 64, 32, 2, 2, 8, 16
S = C // H
F = int((C * 3.5) // 32 * 32)  # the v6 FFN width rule
GN_EPS = 64e-5  # group-norm eps of v6 (1e-5 * head_size_divisor**2, divisor 8)
LN_EPS = 1e-5


def make_state_dict(rng):
    def n(*shape, std=1.0):
        return torch.tensor(rng.normal(0.0, std, shape), dtype=torch.float32)

    def u(lo, hi, *shape):
        return torch.tensor(rng.uniform(lo, hi, shape), dtype=torch.float32)

    sd = {"emb.weight": n(VOCAB, C, std=0.5)}
    for i in range(N_LAYER):
        b = f"blocks.{i}."
        if i == 0:
            sd[b + "ln0.weight"] = 1 + n(C, std=0.2)
            sd[b + "ln0.bias"] = n(C, std=0.2)
        for ln in ("ln1", "ln2"):
            sd[b + ln + ".weight"] = 1 + n(C, std=0.2)
            sd[b + ln + ".bias"] = n(C, std=0.2)
        # Shapes as in released v6 checkpoints.
        sd[b + "att.time_maa_x"] = u(0, 1, 1, 1, C)
        for p in "wkvrg":
            sd[b + f"att.time_maa_{p}"] = u(0, 1, 1, 1, C)
        sd[b + "att.time_maa_w1"] = n(C, 5 * L_MIX, std=0.3)
        sd[b + "att.time_maa_w2"] = n(5, L_MIX, C, std=0.3)
        sd[b + "att.time_decay"] = u(-5, 0.5, 1, 1, C)
        sd[b + "att.time_decay_w1"] = n(C, L_DECAY, std=0.3)
        sd[b + "att.time_decay_w2"] = n(L_DECAY, C, std=0.3)
        sd[b + "att.time_faaaa"] = u(-1, 1, H, S)
        for p in ("receptance", "key", "value", "gate", "output"):
            sd[b + f"att.{p}.weight"] = n(C, C, std=C**-0.5)
        sd[b + "att.ln_x.weight"] = 1 + n(C, std=0.2)
        sd[b + "att.ln_x.bias"] = n(C, std=0.2)
        sd[b + "ffn.time_maa_k"] = u(0, 1, 1, 1, C)
        sd[b + "ffn.time_maa_r"] = u(0, 1, 1, 1, C)
        sd[b + "ffn.key.weight"] = n(F, C, std=C**-0.5)
        sd[b + "ffn.receptance.weight"] = n(C, C, std=C**-0.5)
        sd[b + "ffn.value.weight"] = n(C, F, std=F**-0.5)
    sd["ln_out.weight"] = 1 + n(C, std=0.2)
    sd["ln_out.bias"] = n(C, std=0.2)
    sd["head.weight"] = n(VOCAB, C, std=C**-0.5)
    # Released checkpoints are bf16; the reference uses the bf16 values exactly.
    return {k: v.to(torch.bfloat16) for k, v in sd.items()}


def layer_norm(x, w, b, eps):
    mu = x.mean()
    var = ((x - mu) ** 2).mean()
    return (x - mu) / np.sqrt(var + eps) * w + b


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


class Reference:
    """The v6 recurrence, one token at a time, in float64."""

    def __init__(self, sd):
        self.p = {k: v.to(torch.float64).numpy() for k, v in sd.items()}
        self.att_prev = [np.zeros(C) for _ in range(N_LAYER)]
        self.ffn_prev = [np.zeros(C) for _ in range(N_LAYER)]
        self.wkv = [np.zeros((H, S, S)) for _ in range(N_LAYER)]  # [head, key, value]

    def time_mix(self, i, x):
        p, b = self.p, f"blocks.{i}.att."
        dx = self.att_prev[i] - x
        self.att_prev[i] = x
        xxx = x + dx * p[b + "time_maa_x"].reshape(C)
        lo = np.tanh(xxx @ p[b + "time_maa_w1"]).reshape(5, L_MIX)
        m = np.einsum("il,ilc->ic", lo, p[b + "time_maa_w2"])  # [5, C]: w, k, v, r, g
        mixed = {}
        for j, q in enumerate("wkvrg"):
            mixed[q] = x + dx * (p[b + f"time_maa_{q}"].reshape(C) + m[j])
        r = p[b + "receptance.weight"] @ mixed["r"]
        k = p[b + "key.weight"] @ mixed["k"]
        v = p[b + "value.weight"] @ mixed["v"]
        gl = p[b + "gate.weight"] @ mixed["g"]
        g = gl * sigmoid(gl)
        d = p[b + "time_decay"].reshape(C) + np.tanh(mixed["w"] @ p[b + "time_decay_w1"]) @ p[
            b + "time_decay_w2"
        ]
        w = np.exp(-np.exp(d))
        u = p[b + "time_faaaa"].reshape(H, S)
        y = np.zeros(C)
        for h in range(H):
            sl = slice(h * S, (h + 1) * S)
            kv = np.outer(k[sl], v[sl])  # [key, value]
            st = self.wkv[i][h]
            y[sl] = r[sl] @ (u[h][:, None] * kv + st)
            self.wkv[i][h] = kv + w[sl][:, None] * st
        # group norm: one LayerNorm per head, then the affine ln_x
        gn = np.concatenate(
            [layer_norm(y[h * S : (h + 1) * S], 1.0, 0.0, GN_EPS) for h in range(H)]
        )
        gn = gn * p[b + "ln_x.weight"] + p[b + "ln_x.bias"]
        return p[b + "output.weight"] @ (gn * g)

    def channel_mix(self, i, x):
        p, b = self.p, f"blocks.{i}.ffn."
        dx = self.ffn_prev[i] - x
        self.ffn_prev[i] = x
        xk = x + dx * p[b + "time_maa_k"].reshape(C)
        xr = x + dx * p[b + "time_maa_r"].reshape(C)
        k = np.maximum(p[b + "key.weight"] @ xk, 0.0) ** 2
        return sigmoid(p[b + "receptance.weight"] @ xr) * (p[b + "value.weight"] @ k)

    def step(self, token):
        p = self.p
        x = layer_norm(p["emb.weight"][token], p["blocks.0.ln0.weight"], p["blocks.0.ln0.bias"], LN_EPS)
        for i in range(N_LAYER):
            b = f"blocks.{i}."
            x = x + self.time_mix(i, layer_norm(x, p[b + "ln1.weight"], p[b + "ln1.bias"], LN_EPS))
            x = x + self.channel_mix(i, layer_norm(x, p[b + "ln2.weight"], p[b + "ln2.bias"], LN_EPS))
        x = layer_norm(x, p["ln_out.weight"], p["ln_out.bias"], LN_EPS)
        return p["head.weight"] @ x


# rwkv.cpp data type codes
RWKV_TYPES = {"Q4_0": 2, "Q4_1": 3, "Q5_0": 7, "Q5_1": 8, "Q8_0": 9}


def read_rwkv_cpp(path):
    """Header and [(name, PyTorch-order shape, float32 array)] of an FP32 rwkv.cpp file."""
    b = open(path, "rb").read()
    header = list(struct.unpack_from("<6I", b, 0))
    pos, out = 24, []
    while pos < len(b):
        nd, kl, dt = struct.unpack_from("<3i", b, pos)
        pos += 12
        dims = struct.unpack_from(f"<{nd}i", b, pos)
        pos += 4 * nd
        name = b[pos : pos + kl].decode()
        pos += kl
        assert dt == 0
        n = int(np.prod(dims))
        arr = np.frombuffer(b, dtype="<f4", count=n, offset=pos).reshape(tuple(reversed(dims)))
        pos += 4 * n
        out.append((name, arr))
    return header, out


def write_quantized(src, dst, qname):
    """Rewrites an FP32 rwkv.cpp file with rwkv.cpp's choice of tensors block-quantized.
    Returns {name: dequantized float32 array} for the quantized tensors."""
    header, tensors = read_rwkv_cpp(src)
    header[1] = 101  # quantized types need file version 101
    header[5] = RWKV_TYPES[qname]
    qt = getattr(QT, qname)
    deq = {}
    with open(dst, "wb") as f:
        f.write(struct.pack("<6I", *header))
        for name, arr in tensors:
            quant = arr.ndim == 2 and name not in ("emb.weight", "head.weight") and arr.shape[-1] % 32 == 0
            data, code = arr, 0
            if quant:
                data, code = quantize(arr, qt), RWKV_TYPES[qname]
                deq[name] = dequantize(data, qt).reshape(arr.shape)
            key = name.encode()
            f.write(struct.pack("<3i", arr.ndim, len(key), code))
            f.write(struct.pack(f"<{arr.ndim}i", *reversed(arr.shape)))
            f.write(key)
            f.write(np.ascontiguousarray(data).tobytes())
    return deq


def with_dequantized(sd, deq):
    """The state dict with the dequantized values (file layout back to checkpoint layout)."""
    out = dict(sd)
    for name, arr in deq.items():
        t = torch.tensor(arr, dtype=torch.float64)
        if ".time_maa_w1" in name or ".time_decay_w" in name:
            t = t.T  # rwkv.cpp's converter transposed these
        assert tuple(t.shape) == tuple(sd[name].shape), name
        out[name] = t
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rwkv-cpp", required=True, help="rwkv.cpp checkout (commit 4358e709)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=6)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rng = np.random.default_rng(a.seed)
    sd = make_state_dict(rng)
    pth = os.path.join(a.out, "rwkv6-tiny.pth")
    torch.save(sd, pth)
    conv = os.path.join(a.rwkv_cpp, "python", "convert_pytorch_to_ggml.py")
    for dt in ("FP32", "FP16"):
        dst = os.path.join(a.out, f"rwkv6-tiny-{dt}.bin")
        subprocess.run([sys.executable, conv, pth, dst, dt], check=True, stdout=subprocess.DEVNULL)
    tokens = rng.integers(0, VOCAB, size=24).astype(np.int32)
    ref = Reference(sd)
    logits = np.stack([ref.step(int(t)) for t in tokens])
    np.save(os.path.join(a.out, "tokens.npy"), tokens)
    np.save(os.path.join(a.out, "logits.npy"), logits.astype(np.float32))
    for q in RWKV_TYPES:
        deq = write_quantized(
            os.path.join(a.out, "rwkv6-tiny-FP32.bin"), os.path.join(a.out, f"rwkv6-tiny-{q}.bin"), q
        )
        ref = Reference(with_dequantized(sd, deq))
        lq = np.stack([ref.step(int(t)) for t in tokens])
        np.save(os.path.join(a.out, f"logits-{q}.npy"), lq.astype(np.float32))
        print(f"{q}: {len(deq)} tensors quantized, max |logit - float| {np.abs(lq - logits).max():.3f}")
    print(f"wrote {a.out}: {len(tokens)} steps, |logits| max {np.abs(logits).max():.3f}")


if __name__ == "__main__":
    main()
