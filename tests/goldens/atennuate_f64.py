"""aTENNuate's Denoiser (github.com/Brainchip-Inc/aTENNuate, attenuate/model.py, Apache-2.0)
re-computed in float64 with NumPy, from the shared `weights.pt`, to tell which of two f32
computations of the same network is closer to the exact one: the reference's (FFT
convolutions in f32: `denoised/*.wav`) or tinyssm's streamed recurrence.

No torch: the checkpoint's pickle is read with a restricted unpickler that builds NumPy
arrays from the zip's storages (float32, little-endian). The forward pass follows
`Denoiser.forward` / `denoise_single` line by line; each SSMLayer is the causal
convolution with its kernel `K[n, l] = exp(-dt softplus(A_re) l) cos(dt A_im l)`, done as
an FFT convolution in float64 (relative error ~1e-13 here, far below either f32 result).

    python tests/goldens/atennuate_f64.py $TINYSSM_DATA/atennuate NAME [ours.wav]

prints the SER of the reference output (and of `ours.wav`, a float WAV of tinyssm's
output, if given) against the float64 result: over the whole file and its first and last
100 ms.

    python tests/goldens/atennuate_f64.py $TINYSSM_DATA/atennuate --ends OUT_DIR

writes, for each of the four shared recordings, the float64 result's first and last
100 ms (1,600 + 1,600 samples) to OUT_DIR/NAME.ends.npy (the committed
tests/fixtures/atennuate/: what `tests/tests/atennuate.rs` compares the streamed ends
with, where the reference's own f32 error is near the 60 dB bound). Pinned versions:
requirements.txt (numpy).
"""

import pickle
import sys
import wave
import zipfile

import numpy as np


def load_state_dict(path):
    z = zipfile.ZipFile(path)
    root = z.namelist()[0].split("/")[0]
    pkl = [n for n in z.namelist() if n.endswith("data.pkl")][0]

    class Storage:
        def __init__(self, key):
            self.data = np.frombuffer(z.read(f"{root}/data/{key}"), dtype="<f4")

    def rebuild(storage, offset, size, stride, *rest):
        return np.lib.stride_tricks.as_strided(
            storage.data[offset:], shape=tuple(size), strides=tuple(4 * s for s in stride)
        ).copy()

    class U(pickle.Unpickler):
        def find_class(self, mod, name):
            if name == "_rebuild_tensor_v2":
                return rebuild
            if name == "OrderedDict":
                import collections
                return collections.OrderedDict
            if name == "FloatStorage":
                return "float"
            raise pickle.UnpicklingError(f"{mod}.{name} not allowed")

        def persistent_load(self, pid):
            assert pid[0] == "storage" and pid[1] == "float", pid
            return Storage(pid[2])

    return {k: v.astype(np.float64) for k, v in U(z.open(pkl)).load().items()}


def read_wav(path):
    with wave.open(path) as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float64) / 32768.0


def read_float_wav(path):
    # IEEE float WAV (format 3): find the data chunk.
    b = open(path, "rb").read()
    i = 12
    while i < len(b):
        cid, n = b[i : i + 4], int.from_bytes(b[i + 4 : i + 8], "little")
        if cid == b"data":
            return np.frombuffer(b[i + 8 : i + 8 + n], "<f4").astype(np.float64)
        i += 8 + n + (n & 1)
    raise ValueError("no data chunk")


def softplus(x):
    return np.log1p(np.exp(x))


def ssm(x, p, W):
    """SSMLayer: x [c_in, L] -> [c_out, L], causal convolution via float64 FFT."""
    A, B, C, log_dt = W[p + ".A"], W[p + ".B"], W[p + ".C"], W[p + ".log_dt"]
    L = x.shape[-1]
    dt = np.exp(log_dt)
    l = np.arange(L)
    K = np.exp(-dt[:, None] * softplus(A[:, 0])[:, None] * l) * np.cos(dt[:, None] * A[:, 1][:, None] * l)
    u = (B * dt[:, None]) @ x  # [P, L]
    n = 2 * L
    conv = np.fft.irfft(np.fft.rfft(u, n) * np.fft.rfft(K, n), n)[:, :L]
    return C @ conv


def conv3(x, p, W):
    w, b = W[p + ".weight"][:, 0, :], W[p + ".bias"]
    xp = np.pad(x, ((0, 0), (1, 1)))
    return w[:, 0:1] * xp[:, :-2] + w[:, 1:2] * xp[:, 1:-1] + w[:, 2:3] * xp[:, 2:] + b[:, None]


def layer_norm(x, p, W):
    mu = x.mean(0, keepdims=True)
    var = ((x - mu) ** 2).mean(0, keepdims=True)
    return (x - mu) / np.sqrt(var + 1e-5) * W[p + ".layer_norm.weight"][:, None] + W[p + ".layer_norm.bias"][:, None]


def silu(x):
    return x / (1.0 + np.exp(-x))


def block(x, p, W, act=True):
    c = x.shape[0]
    i = 0
    if c > 1:
        x = conv3(x, f"{p}.0", W)
        i = 1
    x = ssm(x, f"{p}.{i}", W)
    if act:
        if c > 1:
            x = layer_norm(x, f"{p}.{i + 1}", W)
        x = silu(x)
    return x


def down(x, w):
    c, d, r = w.shape
    xr = x.reshape(c, -1, r)  # (c, t, r)
    return np.einsum("ctr,cdr->dt", xr, w)


def up(x, w):
    c, d, r = w.shape
    return np.einsum("ct,cdr->dtr", x, w).reshape(d, -1)


def forward(x, W):
    x = x[None, :]
    skips = []
    depth = 0
    while f"down_ssms.{depth}.1.weight" in W:
        depth += 1
    for i in range(depth):
        skips.append(x)
        x = block(x, f"down_ssms.{i}.0", W)
        x = down(x, W[f"down_ssms.{i}.1.weight"])
    for j in range(2):
        x = block(x, f"hid_ssms.{j}", W)
    for i in reversed(range(depth)):
        x = up(x, W[f"up_ssms.{i}.0.weight"]) + skips[i]
        x = block(x, f"up_ssms.{i}.1", W)
    x = block(x, "last_ssms.0", W)
    x = block(x, "last_ssms.1", W, act=False)
    return x[0]


def ser(got, want):
    return 10 * np.log10(np.sum(want**2) / max(np.sum((got - want) ** 2), 1e-300))


FILES = [
    "audioset_realrec_babycry_2x43exdQ5bo",
    "clnsp1_train_69005_1_snr15_tl-21_fileid_158",
    "clnsp44_wind_97396_2_snr14_tl-26_fileid_271",
    "ms_realrec_headset_cafe_spk2_3",
]


def exact(d, name, W):
    x = read_wav(f"{d}/noisy/{name}.wav")
    pad = 256 - len(x) % 256
    return forward(np.pad(x, (0, pad)), W)[: len(x)]


def main():
    d, name = sys.argv[1], sys.argv[2]
    if name == "--ends":
        import os
        W = load_state_dict(f"{d}/weights.pt")
        os.makedirs(sys.argv[3], exist_ok=True)
        for f in FILES:
            y = exact(d, f, W)
            np.save(os.path.join(sys.argv[3], f"{f}.ends.npy"), np.concatenate([y[:1600], y[-1600:]]))
            ref = read_float_wav(f"{d}/denoised/{f}.wav")
            print(f"{f}: reference vs float64 {ser(ref, y):.1f} dB (first 100 ms {ser(ref[:1600], y[:1600]):.1f}, "
                  f"last {ser(ref[-1600:], y[-1600:]):.1f})")
        return
    W = load_state_dict(f"{d}/weights.pt")
    y = exact(d, name, W)
    n = 1600
    cands = [("reference (f32 FFT)", read_float_wav(f"{d}/denoised/{name}.wav"))]
    if len(sys.argv) > 3:
        cands.append(("tinyssm", read_float_wav(sys.argv[3])))
    for what, got in cands:
        print(
            f"{name}: {what} vs float64: SER {ser(got, y):.1f} dB, first 100 ms {ser(got[:n], y[:n]):.1f}, "
            f"last 100 ms {ser(got[-n:], y[-n:]):.1f}"
        )


if __name__ == "__main__":
    main()
