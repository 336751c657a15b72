//! The w8a8 matrix product: int8 weights × int8 activations (dynamic or static scale),
//! `i32` accumulation per chunk, one rescale per row.

use super::{dot_row, fast, reference, ActQuant, Kernels, QuantI8, Weights};

/// Columns of the input vector quantized at a time by the w8a8 product: a chunk's i32
/// partial sum (≤ 512 · 127 · 127 < 2²⁴) converts to f32 exactly.
pub const W8A8_CHUNK: usize = 512;

/// `max|x|` when it is finite and non-zero, else `None` (all zeros, or a NaN/inf that
/// must propagate through f32). The dynamic int8 scale of `x` is `max|x| / 127`.
#[inline]
pub fn act_absmax(x: &[f32]) -> Option<f32> {
    let mut amax = 0.0f32;
    let mut finite = true;
    for &v in x {
        finite &= v.is_finite();
        amax = amax.max(v.abs());
    }
    if !finite || amax == 0.0 {
        return None;
    }
    Some(amax)
}

/// Quantizes `x` with `inv = 1 / scale`: `clamp(round_half_away(x · inv), -127, 127)`.
#[inline]
pub fn quantize_act(x: &[f32], inv: f32, out: &mut [i8]) {
    for (o, &v) in out.iter_mut().zip(x) {
        let r = libm::roundf(v * inv);
        *o = r.clamp(-127.0, 127.0) as i8;
    }
}

/// The w8a8 matrix-vector product: `out[r] = sw[r] · sx · Σ_chunks f32(Σ qw·qx)` (+ bias).
/// The integer dot products are exact, so both kernel sets give identical results.
pub(super) fn matvec_w8a8(
    k: Kernels,
    w: QuantI8<'_>,
    x: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    let cols = w.cols;
    let amax = match (w.act, k) {
        // The parser admits only finite bounds ≥ `I8S_MIN_XMAX`.
        (ActQuant::StaticI8 { xmax }, _) => Some(xmax),
        (_, Kernels::Reference) => act_absmax(x),
        (_, Kernels::Fast) => fast::act_absmax(x),
    };
    let Some(amax) = amax else {
        // All zeros (exact result 0) or non-finite input (propagate through f32).
        for (r, o) in out.iter_mut().enumerate() {
            *o = dot_row(k, Weights::I8(w), r, cols, x) + bias.map_or(0.0, |b| b[r]);
        }
        return;
    };
    let (sx, inv) = (amax / 127.0, 127.0 / amax);
    if k == Kernels::Fast && cols == 1 {
        // One column (an S5 block's `B̄` on a one-channel signal: aTENNuate's 16 kHz level):
        // one product per row, no per-row dot set-up. The same expressions as the general
        // path below, so the same bits.
        let mut qx = [0i8; 1];
        quantize_act(&x[..1], inv, &mut qx);
        let qx = qx[0] as i32;
        for ((o, &q), &s) in out.iter_mut().zip(w.q).zip(w.scale) {
            *o = (q as i32 * qx) as f32 * (s * sx);
        }
        if let Some(b) = bias {
            for (o, &b) in out.iter_mut().zip(b) {
                *o += b;
            }
        }
        return;
    }
    #[cfg(all(target_arch = "arm", tinyssm_arm_dsp))]
    if k == Kernels::Fast && cols <= W8A8_CHUNK && (inv * 65536.0).is_finite() {
        return fast::w8a8_dsp(w, x, inv, sx, bias, out);
    }
    #[cfg(target_arch = "x86_64")]
    if k == Kernels::Fast && cols <= fast::W8A8_X86_MAX_COLS && x.len() >= cols {
        // Where the CPU has AVX2, the input's quantization and widening run eight lanes
        // wide too (the same bits: `simd::with_avx2`).
        if let Some(t) = crate::simd::Avx2::detect() {
            return crate::simd::with_avx2(
                t,
                #[inline(always)]
                || fast::w8a8_x86(w, x, inv, sx, bias, out),
            );
        }
        return fast::w8a8_x86(w, x, inv, sx, bias, out);
    }
    let mut qx = [0i8; W8A8_CHUNK];
    for o in out.iter_mut() {
        *o = 0.0;
    }
    let mut c0 = 0;
    while c0 < cols {
        let m = (cols - c0).min(W8A8_CHUNK);
        match k {
            Kernels::Reference => quantize_act(&x[c0..c0 + m], inv, &mut qx[..m]),
            Kernels::Fast => fast::quantize_act(&x[c0..c0 + m], inv, &mut qx[..m]),
        }
        match k {
            Kernels::Reference => {
                for (r, o) in out.iter_mut().enumerate() {
                    let row = &w.q[r * cols + c0..r * cols + c0 + m];
                    *o += reference::dot_i8_i8(row, &qx[..m]) as f32;
                }
            }
            Kernels::Fast => fast::w8a8_chunk(w.q, cols, c0, &qx[..m], out),
        }
        c0 += m;
    }
    for (r, o) in out.iter_mut().enumerate() {
        *o *= w.scale[r] * sx;
        if let Some(b) = bias {
            *o += b[r];
        }
    }
}
