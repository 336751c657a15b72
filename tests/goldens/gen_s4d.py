"""Golden outputs for S4D sensor models, computed in CONVOLUTION mode from the S4D paper's
equations ("On the Parameterization and Initialization of Diagonal State Space Models",
arXiv 2206.11893), independently of the recurrent step under test.

Per channel h and mode n: A = -exp(log_A_real) + i*A_imag, dt = exp(log_dt),
ZOH kernel K[h, l] = 2 * Re( sum_n C[h,n] * (exp(dt*A) - 1) / A * exp(dt*A*l) ),
y = causal_conv(u, K) (by FFT, float64) + D * u. The block wraps this as in the
state-spaces/s4 example model: encoder, per layer (LayerNorm before or after), S4D,
GELU, 1x1 output projection (+GLU), residual; optional final LayerNorm; a per-step head.

Run from the repository root with the pinned versions of tests/goldens/requirements.txt:
    python tests/goldens/gen_s4d.py
Writes tests/fixtures/s4d/<variant>/{config.json, model.safetensors, input.npy, expected.npy}.
"""

import json
import math
import os
import shutil

import numpy as np
import torch
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "fixtures", "s4d")
T = 200

VARIANTS = [
    ("s4d-glu-prenorm", dict(d_input=3, d_model=16, d_state=16, n_layers=2, d_output=4, prenorm=True,
                             output="glu", final_norm=True, head="classification")),
    ("s4d-linear-postnorm", dict(d_input=1, d_model=8, d_state=8, n_layers=3, d_output=1, prenorm=False,
                                 output="linear", final_norm=False, head="regression")),
    ("s4d-glu-postnorm", dict(d_input=2, d_model=32, d_state=64, n_layers=2, d_output=5, prenorm=False,
                              output="glu", final_norm=False, head="classification")),
]


def make_params(cfg, g):
    H, N2, L = cfg["d_model"], cfg["d_state"] // 2, cfg["n_layers"]
    out = 2 * H if cfg["output"] == "glu" else H
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)
    u = lambda *s: torch.rand(*s, generator=g, dtype=torch.float64)
    p = {
        "encoder.weight": r(H, cfg["d_input"]) / math.sqrt(cfg["d_input"]),
        "encoder.bias": 0.1 * r(H),
        "decoder.weight": r(cfg["d_output"], H) / math.sqrt(H),
        "decoder.bias": 0.1 * r(cfg["d_output"]),
    }
    for i in range(L):
        k = f"s4_layers.{i}"
        p[f"norms.{i}.weight"] = 1 + 0.2 * r(H)
        p[f"norms.{i}.bias"] = 0.1 * r(H)
        p[f"{k}.D"] = r(H)
        p[f"{k}.kernel.C"] = 0.5 * r(H, N2, 2)
        p[f"{k}.kernel.log_dt"] = u(H) * (math.log(0.1) - math.log(0.001)) + math.log(0.001)
        p[f"{k}.kernel.log_A_real"] = math.log(0.5) + 0.3 * r(H, N2)
        p[f"{k}.kernel.A_imag"] = math.pi * torch.arange(N2, dtype=torch.float64).repeat(H, 1) + 0.1 * r(H, N2)
        p[f"{k}.output_linear.0.weight"] = r(out, H, 1) / math.sqrt(H)
        p[f"{k}.output_linear.0.bias"] = 0.1 * r(out)
    if cfg["final_norm"]:
        p["norm_f.weight"] = 1 + 0.2 * r(H)
        p["norm_f.bias"] = 0.1 * r(H)
    # The model as stored is float32; compute the reference from exactly those values.
    return {k: v.float().double() for k, v in p.items()}


def s4d_kernel(p, k, L):
    dt = torch.exp(p[f"{k}.kernel.log_dt"])                                # (H)
    A = -torch.exp(p[f"{k}.kernel.log_A_real"]) + 1j * p[f"{k}.kernel.A_imag"]  # (H, N2)
    C = torch.view_as_complex(p[f"{k}.kernel.C"].contiguous())             # (H, N2)
    dtA = A * dt[:, None]
    Cd = C * (torch.exp(dtA) - 1.0) / A
    l = torch.arange(L, dtype=torch.float64)
    return 2 * torch.einsum("hn,hnl->hl", Cd, torch.exp(dtA[:, :, None] * l)).real  # (H, L)


def causal_conv(u, K):
    """u: (L, H), K: (H, L) -> (L, H), y[t] = sum_{s<=t} K[t-s] u[s], via FFT of length 2L."""
    L = u.shape[0]
    uf = torch.fft.rfft(u.T, n=2 * L)
    kf = torch.fft.rfft(K, n=2 * L)
    return torch.fft.irfft(uf * kf, n=2 * L)[:, :L].T


def layer_norm(x, w, b, eps):
    return torch.nn.functional.layer_norm(x, (x.shape[-1],), w, b, eps)


def forward_conv(cfg, p, u):
    eps = cfg["norm_eps"]
    x = u @ p["encoder.weight"].T + p["encoder.bias"]
    L = x.shape[0]
    for i in range(cfg["n_layers"]):
        k = f"s4_layers.{i}"
        z = layer_norm(x, p[f"norms.{i}.weight"], p[f"norms.{i}.bias"], eps) if cfg["prenorm"] else x
        y = causal_conv(z, s4d_kernel(p, k, L)) + z * p[f"{k}.D"]
        y = torch.nn.functional.gelu(y)
        W = p[f"{k}.output_linear.0.weight"][:, :, 0]
        y = y @ W.T + p[f"{k}.output_linear.0.bias"]
        if cfg["output"] == "glu":
            y = torch.nn.functional.glu(y, dim=-1)
        x = y + x
        if not cfg["prenorm"]:
            x = layer_norm(x, p[f"norms.{i}.weight"], p[f"norms.{i}.bias"], eps)
    if cfg["final_norm"]:
        x = layer_norm(x, p["norm_f.weight"], p["norm_f.bias"], eps)
    return x @ p["decoder.weight"].T + p["decoder.bias"]


def forward_recurrent(cfg, p, u):
    """Sanity check only: step-by-step complex diagonal recurrence, float64."""
    eps = cfg["norm_eps"]
    H = cfg["d_model"]
    hs = [torch.zeros(H, cfg["d_state"] // 2, dtype=torch.complex128) for _ in range(cfg["n_layers"])]
    outs = []
    for t in range(u.shape[0]):
        x = u[t] @ p["encoder.weight"].T + p["encoder.bias"]
        for i in range(cfg["n_layers"]):
            k = f"s4_layers.{i}"
            z = layer_norm(x, p[f"norms.{i}.weight"], p[f"norms.{i}.bias"], eps) if cfg["prenorm"] else x
            dt = torch.exp(p[f"{k}.kernel.log_dt"])
            A = -torch.exp(p[f"{k}.kernel.log_A_real"]) + 1j * p[f"{k}.kernel.A_imag"]
            C = torch.view_as_complex(p[f"{k}.kernel.C"].contiguous())
            dA = torch.exp(A * dt[:, None])
            dB = (dA - 1.0) / A
            hs[i] = dA * hs[i] + dB * z[:, None]
            y = 2 * (C * hs[i]).sum(-1).real + p[f"{k}.D"] * z
            y = torch.nn.functional.gelu(y)
            y = y @ p[f"{k}.output_linear.0.weight"][:, :, 0].T + p[f"{k}.output_linear.0.bias"]
            if cfg["output"] == "glu":
                y = torch.nn.functional.glu(y, dim=-1)
            x = y + x
            if not cfg["prenorm"]:
                x = layer_norm(x, p[f"norms.{i}.weight"], p[f"norms.{i}.bias"], eps)
        if cfg["final_norm"]:
            x = layer_norm(x, p["norm_f.weight"], p["norm_f.bias"], eps)
        outs.append(x @ p["decoder.weight"].T + p["decoder.bias"])
    return torch.stack(outs)


def main():
    os.makedirs(OUT, exist_ok=True)
    for i, (name, c) in enumerate(VARIANTS):
        cfg = dict(architecture="s4d", norm_eps=1e-5, **c)
        g = torch.Generator().manual_seed(2000 + i)
        p = make_params(cfg, g)
        tt = torch.arange(T, dtype=torch.float64)[:, None]
        ch = torch.arange(cfg["d_input"], dtype=torch.float64)[None, :]
        u = (torch.sin(0.07 * tt * (ch + 1)) + 0.5 * torch.sin(0.31 * tt + ch)
             + 0.2 * torch.randn(T, cfg["d_input"], generator=g, dtype=torch.float64))
        u = u.float().double()
        y = forward_conv(cfg, p, u)
        yr = forward_recurrent(cfg, p, u)
        d = os.path.join(OUT, name)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg, f, indent=1)
        save_file({k: v.float().contiguous() for k, v in p.items()}, os.path.join(d, "model.safetensors"))
        np.save(os.path.join(d, "input.npy"), u.numpy().astype(np.float32))
        np.save(os.path.join(d, "expected.npy"), y.numpy().astype(np.float32))
        print(f"{name}: out {tuple(y.shape)} |y| max {y.abs().max():.3f}, "
              f"conv vs recurrent max diff {(y - yr).abs().max():.2e}")


if __name__ == "__main__":
    main()
