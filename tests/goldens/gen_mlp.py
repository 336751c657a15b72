"""Golden for the gated MLP block kind in a mixed stack, from the equations alone (NumPy,
float64), independent of the Rust code.

Model (written to tests/fixtures/mlp/stack/): an encoder (3 -> 8), three blocks from a
layer table [0, 1] that repeats (layers 0 and 2 are configuration 0, layer 1 is
configuration 1), a final RMSNorm and a decoder (8 -> 2).

  configuration 0: RMSNorm(eps 1e-5), SwiGLU, d_ffn 12
  configuration 1: LayerNorm(eps 1e-5, weight and bias), GeGLU (exact erf GELU), d_ffn 6

  block:  n = norm(x);  h = act(W_gate n) * (W_up n);  x = x + W_down h

Tensors are named as tinyssm names them (`layers.{l}.{role}`, globals by role). Run with
the pinned versions of requirements.txt:  python tests/goldens/gen_mlp.py
"""

import json
import math
import os

import numpy as np
from safetensors.numpy import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "fixtures", "mlp", "stack")
D_IN, D, D_OUT, EPS = 3, 8, 2, 1e-5
CONFIGS = [
    {"d_ffn": 12, "norm": "rms", "act": "silu"},
    {"d_ffn": 6, "norm": "layer", "act": "gelu"},
]
TABLE = [0, 1]
N_LAYERS = 3
STEPS = 6

rng = np.random.default_rng(20261205)


def f32(a):
    # Weights are stored as f32; the reference computes in float64 from those values.
    return np.asarray(a, dtype=np.float32)


def rms_norm(x, w):
    return x / np.sqrt(np.mean(x * x) + EPS) * w


def layer_norm(x, w, b):
    mu = np.mean(x)
    var = np.mean((x - mu) ** 2)
    return (x - mu) / np.sqrt(var + EPS) * w + b


def silu(x):
    return x / (1.0 + np.exp(-x))


def gelu(x):
    return 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


t = {
    "encoder.weight": f32(rng.normal(0, 0.5, (D, D_IN))),
    "encoder.bias": f32(rng.normal(0, 0.1, D)),
}
for l in range(N_LAYERS):
    c = CONFIGS[TABLE[l % len(TABLE)]]
    f = c["d_ffn"]
    t[f"layers.{l}.norm"] = f32(1.0 + rng.normal(0, 0.1, D))
    if c["norm"] == "layer":
        t[f"layers.{l}.norm.bias"] = f32(rng.normal(0, 0.1, D))
    t[f"layers.{l}.mlp.gate_proj"] = f32(rng.normal(0, 1 / math.sqrt(D), (f, D)))
    t[f"layers.{l}.mlp.up_proj"] = f32(rng.normal(0, 1 / math.sqrt(D), (f, D)))
    t[f"layers.{l}.mlp.down_proj"] = f32(rng.normal(0, 1 / math.sqrt(f), (D, f)))
t["norm_f"] = f32(1.0 + rng.normal(0, 0.1, D))
t["decoder.weight"] = f32(rng.normal(0, 0.5, (D_OUT, D)))
t["decoder.bias"] = f32(rng.normal(0, 0.1, D_OUT))

u = f32(rng.normal(0, 1.0, (STEPS, D_IN)))
W = {k: v.astype(np.float64) for k, v in t.items()}
ys = []
for s in range(STEPS):
    x = W["encoder.weight"] @ u[s].astype(np.float64) + W["encoder.bias"]
    for l in range(N_LAYERS):
        c = CONFIGS[TABLE[l % len(TABLE)]]
        p = f"layers.{l}."
        if c["norm"] == "rms":
            n = rms_norm(x, W[p + "norm"])
        else:
            n = layer_norm(x, W[p + "norm"], W[p + "norm.bias"])
        g = W[p + "mlp.gate_proj"] @ n
        act = silu(g) if c["act"] == "silu" else gelu(g)
        h = act * (W[p + "mlp.up_proj"] @ n)
        x = x + W[p + "mlp.down_proj"] @ h
    y = W["decoder.weight"] @ rms_norm(x, W["norm_f"]) + W["decoder.bias"]
    ys.append(y)

os.makedirs(OUT, exist_ok=True)
save_file(t, os.path.join(OUT, "model.safetensors"))
np.save(os.path.join(OUT, "input.npy"), u)
np.save(os.path.join(OUT, "expected.npy"), np.asarray(ys, dtype=np.float64))
# The checkpoint as `tinyssm convert` reads an explicit stack (tools/src/import/stack.rs):
# the header's StackConfig as serde writes it.
def block(c):
    norm = {"Rms": {"eps": EPS}} if c["norm"] == "rms" else {"Layer": {"eps": EPS}}
    act = "Silu" if c["act"] == "silu" else "Gelu"
    return {"Mlp": {"d_model": D, "d_ffn": c["d_ffn"], "norm": norm, "act": act}}


with open(os.path.join(OUT, "config.json"), "w") as fh:
    json.dump(
        {
            "architecture": "stack",
            "n_layers": N_LAYERS,
            "stack": {
                "stem": {"Encoder": {"d_input": D_IN}},
                "layers": {"blocks": [block(c) for c in CONFIGS], "table": TABLE},
                "head": {"norm": {"Rms": {"eps": EPS}}, "out": {"Decoder": {"d_output": D_OUT}}},
            },
        },
        fh,
        indent=1,
    )
    fh.write("\n")
print("wrote", OUT, "outputs", np.asarray(ys)[:2])
