"""Golden for the S5 block kind, from the papers' equations alone (NumPy, float64),
independent of the Rust code: the outputs come from the convolution form (explicit powers
of the discretised modes, or aTENNuate's kernel formula), not from a recurrence.

Model (written to tests/fixtures/s5/stack/): an encoder (3 -> 6), three S5 blocks of P = 5
complex modes, one per configuration (layer table [0, 1, 2]), a final LayerNorm and a
decoder (6 -> 2).

  configuration 0, aTENNuate (arXiv 2409.03377, attenuate/model.py `SSMLayer`): parameters
      A = (log_A_real, A_imag), log_dt, real B [P, H], real C [H, P]; dt = exp(log_dt),
      kernel K[n, l] = exp(-dt softplus(log_A_real) l) cos(dt A_imag l), B_hat = B dt;
      y = C (K * (B_hat x)) (causal convolution); then LayerNorm, SiLU; no residual, no D.
  configuration 1, S5 (arXiv 2208.04933) with zero-order hold: Lambda (complex, P),
      log_step, complex B~ [P, H] and C~ [H, P], D [H]:
      lambda = exp(Lambda dt), B_bar = (lambda - 1) / Lambda B~;
      y = Re(C~ sum_l lambda^l B_bar n[t-l]) + D n on n = LayerNorm(x); GELU; residual.
  configuration 2, S5 with the bilinear transform: lambda = (1 + dt Lambda/2)/(1 - dt Lambda/2),
      B_bar = dt / (1 - dt Lambda/2) B~; no norm, no activation; D; residual.

The blob stores the discretised terms (`s5.lambda` [P, 2] as (re, im); `s5.B` [P, H] real or
[2P, H] with rows (Re, Im) per mode; `s5.C` [H, P] real or [H, 2P] with columns
(Re C~, -Im C~) per mode), which this script computes and writes; `s5_params.safetensors`
holds the raw parameters and the expected discretisation for the converter's own test.
Run with the pinned versions of requirements.txt:  python tests/goldens/gen_s5.py
"""

import json
import math
import os

import numpy as np
from safetensors.numpy import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "fixtures", "s5", "stack")
D_IN, H, P, D_OUT, EPS = 3, 6, 5, 2, 1e-5
STEPS = 48

rng = np.random.default_rng(20261206)


def f32(a):
    return np.asarray(a, dtype=np.float32)


def softplus(x):
    return np.log1p(np.exp(x))


def layer_norm(x, w, b):
    mu = np.mean(x)
    var = np.mean((x - mu) ** 2)
    return (x - mu) / np.sqrt(var + EPS) * w + b


def silu(x):
    return x / (1.0 + np.exp(-x))


def gelu(x):
    return 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def complex_c_cols(c):
    """[H, P] complex -> [H, 2P] real with columns (Re C, -Im C) per mode."""
    out = np.empty((c.shape[0], 2 * c.shape[1]))
    out[:, 0::2], out[:, 1::2] = c.real, -c.imag
    return out


def complex_b_rows(b):
    """[P, H] complex -> [2P, H] real with rows (Re B, Im B) per mode."""
    out = np.empty((2 * b.shape[0], b.shape[1]))
    out[0::2], out[1::2] = b.real, b.imag
    return out


def pairs(z):
    return np.stack([z.real, z.imag], -1)


# ---- raw parameters (stored f32; everything below computes in float64 from them)
raw = {}
# aTENNuate: its own initialisation's shape (A_real 0.5 before softplus^-1, A_imag = pi n),
# perturbed, and dt spread so some modes decay within the sequence and some do not.
raw["l0.A"] = f32(np.stack([np.log(np.expm1(0.5)) + rng.normal(0, 0.3, P),
                            math.pi * np.arange(P) * 0.2 + rng.normal(0, 0.05, P)], -1))
raw["l0.log_dt"] = f32(np.linspace(np.log(0.02), np.log(0.5), P))
raw["l0.B"] = f32(rng.normal(0, 1 / math.sqrt(H), (P, H)))
raw["l0.C"] = f32(rng.normal(0, math.sqrt(2 / P), (H, P)))
for l in (1, 2):
    raw[f"l{l}.Lambda"] = f32(np.stack([-np.exp(rng.normal(-1.0, 0.5, P)),
                                        rng.normal(0, 1.0, P)], -1))
    raw[f"l{l}.log_step"] = f32(rng.uniform(np.log(0.05), np.log(0.5), P))
    raw[f"l{l}.B"] = f32(rng.normal(0, 1 / math.sqrt(2 * H), (P, H, 2)))
    raw[f"l{l}.C"] = f32(rng.normal(0, 1 / math.sqrt(2 * P), (H, P, 2)))
    raw[f"l{l}.D"] = f32(rng.normal(0, 0.5, H))
R = {k: v.astype(np.float64) for k, v in raw.items()}


def cplx(a):
    return a[..., 0] + 1j * a[..., 1]


# ---- discretisation
disc = {}
dt0 = np.exp(R["l0.log_dt"])
a0 = -dt0 * softplus(R["l0.A"][:, 0])
w0 = dt0 * R["l0.A"][:, 1]
disc[0] = dict(lam=np.exp(a0 + 1j * w0), B=R["l0.B"] * dt0[:, None], C=R["l0.C"])
for l, how in ((1, "zoh"), (2, "bilinear")):
    lam_c = cplx(R[f"l{l}.Lambda"])
    dt = np.exp(R[f"l{l}.log_step"])
    b = cplx(R[f"l{l}.B"])
    if how == "zoh":
        lam = np.exp(lam_c * dt)
        bbar = ((lam - 1.0) / lam_c)[:, None] * b
    else:
        den = 1.0 - dt * lam_c / 2.0
        lam = (1.0 + dt * lam_c / 2.0) / den
        bbar = (dt / den)[:, None] * b
    disc[l] = dict(lam=lam, B=bbar, C=cplx(R[f"l{l}.C"]), D=R[f"l{l}.D"])

# ---- the model's tensors
t = {
    "encoder.weight": f32(rng.normal(0, 0.7, (H, D_IN))),
    "encoder.bias": f32(rng.normal(0, 0.1, H)),
}
t["layers.0.norm"] = f32(1.0 + rng.normal(0, 0.1, H))
t["layers.0.norm.bias"] = f32(rng.normal(0, 0.1, H))
t["layers.0.s5.lambda"] = f32(pairs(disc[0]["lam"]))
t["layers.0.s5.B"] = f32(disc[0]["B"])
t["layers.0.s5.C"] = f32(disc[0]["C"])
t["layers.1.norm"] = f32(1.0 + rng.normal(0, 0.1, H))
t["layers.1.norm.bias"] = f32(rng.normal(0, 0.1, H))
for l in (1, 2):
    t[f"layers.{l}.s5.lambda"] = f32(pairs(disc[l]["lam"]))
    t[f"layers.{l}.s5.B"] = f32(complex_b_rows(disc[l]["B"]))
    t[f"layers.{l}.s5.C"] = f32(complex_c_cols(disc[l]["C"]))
    t[f"layers.{l}.D"] = f32(disc[l]["D"])
t["norm_f"] = f32(1.0 + rng.normal(0, 0.1, H))
t["norm_f.bias"] = f32(rng.normal(0, 0.1, H))
t["decoder.weight"] = f32(rng.normal(0, 0.5, (D_OUT, H)))
t["decoder.bias"] = f32(rng.normal(0, 0.1, D_OUT))
W = {k: v.astype(np.float64) for k, v in t.items()}

# ---- the reference forward pass, layer by layer over the whole sequence
u = f32(rng.normal(0, 1.0, (STEPS, D_IN)))
x = u.astype(np.float64) @ W["encoder.weight"].T + W["encoder.bias"]  # [T, H]
ls = np.arange(STEPS)

# Layer 0 (aTENNuate), from the reference's kernel formula with the raw parameters.
K = np.exp(a0[:, None] * ls) * np.cos(w0[:, None] * ls)  # [P, T]
v = x @ disc[0]["B"].T  # [T, P]
conv = np.array([[np.dot(K[n, : s + 1][::-1], v[: s + 1, n]) for n in range(P)] for s in range(STEPS)])
y = conv @ disc[0]["C"].T  # [T, H]
x = np.array([silu(layer_norm(y[s], W["layers.0.norm"], W["layers.0.norm.bias"])) for s in range(STEPS)])

# Layers 1 and 2 (S5), from explicit powers of the discretised modes.
for l in (1, 2):
    d = disc[l]
    n = (np.array([layer_norm(x[s], W["layers.1.norm"], W["layers.1.norm.bias"]) for s in range(STEPS)])
         if l == 1 else x)
    v = n @ d["B"].T  # [T, P] complex
    powers = d["lam"][None, :] ** ls[:, None]  # [T, P]
    hs = np.array([(powers[: s + 1][::-1] * v[: s + 1]).sum(0) for s in range(STEPS)])
    y = (hs @ d["C"].T).real + n * d["D"]
    if l == 1:
        y = gelu(y)
    x = x + y

ys = np.array([W["decoder.weight"] @ layer_norm(x[s], W["norm_f"], W["norm_f.bias"]) + W["decoder.bias"]
               for s in range(STEPS)])

os.makedirs(OUT, exist_ok=True)
save_file(t, os.path.join(OUT, "model.safetensors"))
np.save(os.path.join(OUT, "input.npy"), u)
np.save(os.path.join(OUT, "expected.npy"), ys)
expect = {}
for l in (0, 1, 2):
    expect[f"l{l}.lambda"] = pairs(disc[l]["lam"])
    expect[f"l{l}.B"] = disc[l]["B"] if l == 0 else complex_b_rows(disc[l]["B"])
save_file({**raw, **{f"expected.{k}": v for k, v in expect.items()}},
          os.path.join(OUT, "s5_params.safetensors"))


def block(norm, act, complex_bc, d_skip, residual):
    return {"S5": {"d_model": H, "n_modes": P, "complex_b": complex_bc, "complex_c": complex_bc,
                   "d_skip": d_skip, "norm": norm, "act": act, "residual": residual}}


with open(os.path.join(OUT, "config.json"), "w") as fh:
    json.dump(
        {
            "architecture": "stack",
            "n_layers": 3,
            "stack": {
                "stem": {"Encoder": {"d_input": D_IN}},
                "layers": {
                    "blocks": [
                        block({"Post": {"eps": EPS}}, "Silu", False, False, False),
                        block({"Pre": {"eps": EPS}}, "Gelu", True, True, True),
                        block("None", "None", True, True, True),
                    ],
                    "table": [0, 1, 2],
                },
                "head": {"norm": {"Layer": {"eps": EPS}}, "out": {"Decoder": {"d_output": D_OUT}}},
            },
        },
        fh,
        indent=1,
    )
    fh.write("\n")
print("wrote", OUT, "outputs", ys[:2])
