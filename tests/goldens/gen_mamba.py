"""Golden logits for Mamba-1 and Mamba-2 from HF `transformers`' pure-PyTorch CPU path.

Builds tiny random-init models (seeded), perturbs every parameter so each term of the
computation matters, saves each with `save_pretrained` (config.json + model.safetensors),
and records the logits at every position of one forward pass over a random token sequence.

Run from the repository root with the pinned versions of tests/goldens/requirements.txt:
    python tests/goldens/gen_mamba.py
Writes tests/fixtures/hf/<variant>/{config.json, model.safetensors, input_ids.npy, logits.npy}.
"""

import json
import os
import shutil

import numpy as np
import torch
import transformers
from transformers import Mamba2Config, Mamba2ForCausalLM, MambaConfig, MambaForCausalLM

OUT = os.path.join(os.path.dirname(__file__), "..", "fixtures", "hf")
T = 56

VARIANTS = [
    ("mamba1-s8-k4-tied", "mamba1", dict(vocab_size=96, hidden_size=32, state_size=8, num_hidden_layers=2,
        conv_kernel=4, expand=2, use_bias=False, use_conv_bias=True, time_step_rank="auto",
        tie_word_embeddings=True)),
    ("mamba1-s16-k3-bias-untied", "mamba1", dict(vocab_size=80, hidden_size=32, state_size=16,
        num_hidden_layers=2, conv_kernel=3, expand=2, use_bias=True, use_conv_bias=True, time_step_rank=6,
        tie_word_embeddings=False)),
    ("mamba1-s32-k4-noconvbias", "mamba1", dict(vocab_size=64, hidden_size=24, state_size=32,
        num_hidden_layers=2, conv_kernel=4, expand=2, use_bias=False, use_conv_bias=False,
        time_step_rank="auto", tie_word_embeddings=False)),
    ("mamba2-g1-s16-k4", "mamba2", dict(vocab_size=96, hidden_size=32, state_size=16, num_hidden_layers=2,
        conv_kernel=4, expand=2, n_groups=1, num_heads=8, head_dim=8, use_bias=False, use_conv_bias=True,
        tie_word_embeddings=False, chunk_size=16)),
    ("mamba2-g2-s32-k3-bias-tied", "mamba2", dict(vocab_size=72, hidden_size=32, state_size=32,
        num_hidden_layers=2, conv_kernel=3, expand=2, n_groups=2, num_heads=4, head_dim=16, use_bias=True,
        use_conv_bias=True, tie_word_embeddings=True, chunk_size=16)),
    ("mamba2-g2-s16-k4-clamp", "mamba2", dict(vocab_size=64, hidden_size=32, state_size=16,
        num_hidden_layers=2, conv_kernel=4, expand=2, n_groups=2, num_heads=8, head_dim=8, use_bias=False,
        use_conv_bias=False, tie_word_embeddings=False, time_step_limit=(0.02, 0.15), chunk_size=16)),
]


def perturb(model, gen):
    """Move every parameter away from its structured init so a bug in any term shows."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=gen)
            if name.endswith("A_log"):
                p.copy_(torch.log(torch.rand(p.shape, generator=gen) * 8 + 0.5))
            elif name.endswith("dt_bias") or name.endswith("dt_proj.bias"):
                # softplus(dt) spread over ~0.005 .. 0.5
                dt = torch.exp(torch.rand(p.shape, generator=gen) * (np.log(0.5) - np.log(0.005)) + np.log(0.005))
                p.copy_(dt + torch.log(-torch.expm1(-dt)))
            elif name.endswith(".D"):
                p.copy_(r * 0.5 + 1.0)
            elif "norm" in name and p.dim() == 1:
                p.copy_(1.0 + 0.2 * r)
            elif "embeddings" in name or "lm_head" in name:
                p.copy_(r * 0.5)
            elif name.endswith("bias"):
                p.copy_(r * 0.1)
            elif p.dim() >= 2:
                fan_in = p.shape[1] * (p.shape[2] if p.dim() > 2 else 1)
                p.copy_(r * 1.2 / np.sqrt(fan_in))
            else:
                p.copy_(p + 0.1 * r)


def main():
    torch.manual_seed(0)
    os.makedirs(OUT, exist_ok=True)
    for i, (name, kind, kw) in enumerate(VARIANTS):
        gen = torch.Generator().manual_seed(1000 + i)
        if kind == "mamba1":
            model = MambaForCausalLM(MambaConfig(**kw))
        else:
            model = Mamba2ForCausalLM(Mamba2Config(**kw))
        model = model.float().eval()
        perturb(model, gen)
        if kw.get("tie_word_embeddings"):
            model.tie_weights()
        d = os.path.join(OUT, name)
        shutil.rmtree(d, ignore_errors=True)
        model.save_pretrained(d, safe_serialization=True)
        gc = os.path.join(d, "generation_config.json")
        if os.path.exists(gc):
            os.remove(gc)
        ids = torch.randint(0, kw["vocab_size"], (1, T), generator=gen)
        with torch.no_grad():
            logits = model(ids, use_cache=False).logits[0].float().numpy()
        np.save(os.path.join(d, "input_ids.npy"), ids[0].numpy().astype(np.int64))
        np.save(os.path.join(d, "logits.npy"), logits.astype(np.float32))
        # Cross-check: the model's own cached step path (token by token) agrees.
        step = None
        try:
            with torch.no_grad():
                out = model(ids[:, :1], use_cache=True)
                cache = out.cache_params
                rows = [out.logits[0, -1]]
                for t in range(1, T):
                    out = model(ids[:, t:t + 1], cache_params=cache, use_cache=True,
                                cache_position=torch.tensor([t]))
                    cache = out.cache_params
                    rows.append(out.logits[0, -1])
                step = torch.stack(rows).numpy()
        except Exception as e:  # noqa: BLE001 - report and continue: this is only a cross-check
            print(f"{name}: cached step cross-check unavailable: {e}")
        msg = f"{name}: logits {logits.shape}, |logit| max {np.abs(logits).max():.2f} std {logits.std():.2f}"
        if step is not None:
            msg += f", full-vs-step max diff {np.abs(step - logits).max():.2e}"
        print(msg)
    with open(os.path.join(OUT, "versions.json"), "w") as f:
        json.dump({"torch": torch.__version__, "transformers": transformers.__version__,
                   "numpy": np.__version__}, f, indent=1)


if __name__ == "__main__":
    main()
