#!/usr/bin/env python3
"""PyTorch-checkpoint fixtures for RWKV v4, v5.1, v5.2 and v7: random state dicts with the
tensor names and shapes of released checkpoints (as rwkv.cpp's tiny test models have them),
saved by `torch.save` (f32, f16 or bf16), each also converted to an FP32 rwkv.cpp file by
rwkv.cpp's own converter. The test converts both with tinyssm and requires the same logits:
rwkv.cpp's converter is the reference for what a checkpoint's tensors mean in its files
(decay transforms, transposes, the v7 token-shift concatenation). (v6: gen_rwkv6.py.)

Usage (pinned versions in requirements.txt; rwkv.cpp at commit 4358e709):
    python tests/goldens/gen_rwkv_pth.py --rwkv-cpp /path/to/rwkv.cpp --out tests/fixtures/rwkv-pth
"""
import argparse
import os
import subprocess
import sys

import numpy as np
import torch

VOCAB, C, F, HS = 64, 32, 64, 16
H = C // HS


def make(version, rng, n_layer):
    def n(*shape, std=1.0):
        return torch.tensor(rng.normal(0.0, std, shape), dtype=torch.float32)

    def u(lo, hi, *shape):
        return torch.tensor(rng.uniform(lo, hi, shape), dtype=torch.float32)

    sd = {"emb.weight": n(VOCAB, C, std=0.5)}
    for i in range(n_layer):
        b = f"blocks.{i}."
        for ln in ("ln1", "ln2"):
            sd[b + ln + ".weight"] = 1 + n(C, std=0.2)
            sd[b + ln + ".bias"] = n(C, std=0.2)
        if i == 0:
            sd[b + "ln0.weight"] = 1 + n(C, std=0.2)
            sd[b + "ln0.bias"] = n(C, std=0.2)
        mats = ["receptance", "key", "value", "output"]
        if version == "v4":
            sd[b + "att.time_decay"] = u(-4, 2, C)
            sd[b + "att.time_first"] = u(-1, 1, C)
        elif version == "v5.1":
            sd[b + "att.time_decay"] = u(-4, 1, H)
            sd[b + "att.time_first"] = u(-1, 1, H)
        elif version == "v5.2":
            sd[b + "att.time_decay"] = u(-4, 1, H, HS)
            sd[b + "att.time_faaaa"] = u(-1, 1, H, HS)
            mats.append("gate")
        if version != "v7":
            for p in "kvr" + ("g" if version == "v5.2" else ""):
                sd[b + f"att.time_mix_{p}"] = u(0, 1, 1, 1, C)
            for p in "kr":
                sd[b + f"ffn.time_mix_{p}"] = u(0, 1, 1, 1, C)
        else:
            for p in "rwkvag":  # the order of released v7 checkpoints
                sd[b + f"att.x_{p}"] = u(0, 1, 1, 1, C)
            lora = {"w": 8, "a": 8, "v": 4, "g": 12}
            for p, r in lora.items():
                if p == "v" and i == 0:
                    continue  # layer 0 has no value residual
                if p != "g":
                    sd[b + f"att.{p}0"] = u(-1, 1, 1, 1, C)
                sd[b + f"att.{p}1"] = n(C, r, std=0.3)
                sd[b + f"att.{p}2"] = n(r, C, std=0.3)
            sd[b + "att.k_k"] = u(0.5, 1.5, 1, 1, C)
            sd[b + "att.k_a"] = u(0, 1, 1, 1, C)
            sd[b + "att.r_k"] = n(H, HS, std=0.5)
            sd[b + "ffn.x_k"] = u(0, 1, 1, 1, C)
        if version != "v4":
            sd[b + "att.ln_x.weight"] = 1 + n(C, std=0.2)
            sd[b + "att.ln_x.bias"] = n(C, std=0.2)
        for p in mats:
            sd[b + f"att.{p}.weight"] = n(C, C, std=C**-0.5)
        sd[b + "ffn.key.weight"] = n(F, C, std=C**-0.5)
        sd[b + "ffn.value.weight"] = n(C, F, std=F**-0.5)
        if version != "v7":
            sd[b + "ffn.receptance.weight"] = n(C, C, std=C**-0.5)
    sd["ln_out.weight"] = 1 + n(C, std=0.2)
    sd["ln_out.bias"] = n(C, std=0.2)
    sd["head.weight"] = n(VOCAB, C, std=C**-0.5)
    return sd


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rwkv-cpp", required=True, help="rwkv.cpp checkout (commit 4358e709)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rng = np.random.default_rng(7)
    conv = os.path.join(a.rwkv_cpp, "python", "convert_pytorch_to_ggml.py")
    # Each version in another stored dtype, to cover the checkpoint reader's dtypes.
    for version, dtype, n_layer in [
        ("v4", torch.float32, 1),
        ("v5.1", torch.float16, 1),
        ("v5.2", torch.bfloat16, 1),
        ("v7", torch.bfloat16, 2),
    ]:
        sd = {k: v.to(dtype) for k, v in make(version, rng, n_layer).items()}
        pth = os.path.join(a.out, f"rwkv-{version}.pth")
        torch.save(sd, pth)
        subprocess.run(
            [sys.executable, conv, pth, os.path.join(a.out, f"rwkv-{version}-FP32.bin"), "FP32"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        print(f"{version}: {len(sd)} tensors ({dtype})")


if __name__ == "__main__":
    main()
