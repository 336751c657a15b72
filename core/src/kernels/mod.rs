//! Numeric kernels. Every kernel has a plain scalar **reference** (sequential sums, `libm`
//! math) that stays the definition of what the model computes, and a **fast** variant
//! (multi-accumulator dot products that auto-vectorize, a polynomial `exp`) that is tested
//! against it (`tests` below and `tests/` at the workspace root).
//!
//! No kernel uses fused multiply-add: Rust never contracts `a * b + c`, so each variant
//! is bit-reproducible across targets with IEEE f32.

use half::f16;

mod w8a8;
mod weights;

pub mod fast;
pub mod reference;
#[cfg(test)]
mod tests;

use w8a8::matvec_w8a8;
pub use w8a8::{act_absmax, quantize_act, W8A8_CHUNK};
pub use weights::*;

/// Which kernel set a [`crate::Model`] steps with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kernels {
    /// Plain scalar reference kernels.
    Reference,
    /// Optimised kernels (the default), checked against [`Kernels::Reference`].
    #[default]
    Fast,
}

/// Dot of a weight row with `x`, in the chosen kernel set (f32 activations).
#[inline]
pub fn dot_row(k: Kernels, w: Weights<'_>, row: usize, cols: usize, x: &[f32]) -> f32 {
    let lo = row * cols;
    let r = Kernels::Reference;
    match w {
        Weights::F32(w) if k == r => reference::dot(&w[lo..lo + cols], x),
        Weights::F32(w) => fast::dot(&w[lo..lo + cols], x),
        Weights::F16(w) if k == r => reference::dot_f16(&w[lo..lo + cols], x),
        Weights::F16(w) => fast::dot_f16(&w[lo..lo + cols], x),
        Weights::Bf16(w) if k == r => reference::dot_bf16(&w[lo..lo + cols], x),
        Weights::Bf16(w) => fast::dot_bf16(&w[lo..lo + cols], x),
        Weights::I8(w) if k == r => reference::dot_i8(&w.q[lo..lo + cols], w.scale[row], x),
        Weights::I8(w) => fast::dot_i8(&w.q[lo..lo + cols], w.scale[row], x),
        Weights::I4(w) => {
            let g = w.groups_per_row();
            let (q, s) = (
                &w.q[row * g * 16..(row + 1) * g * 16],
                &w.scale[row * g..(row + 1) * g],
            );
            if k == r {
                reference::dot_i4(q, s, &x[..cols])
            } else {
                fast::dot_i4(q, s, &x[..cols])
            }
        }
        // Unreachable: a Q1.15 tensor is a vector (S4D's dA), never a matrix row, and
        // float steps refuse integer-only models before any kernel runs.
        Weights::Q15(_) | Weights::Int(_) => 0.0,
    }
}

/// `out[r] = W[r, :] · x (+ bias[r])` for a row-major `rows × cols` matrix.
/// The caller guarantees `w.len() == rows * cols`, `x.len() >= cols`,
/// `out.len() >= rows`; the model checks this once at parse.
pub fn matvec(
    k: Kernels,
    w: Weights<'_>,
    cols: usize,
    x: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    let x = &x[..cols];
    if let Weights::I8(q) = w {
        if q.act != ActQuant::Float && q.cols == cols {
            return matvec_w8a8(k, q, x, bias, out);
        }
    }
    if let (Kernels::Fast, Weights::F32(w)) = (k, w) {
        return fast::matvec_f32(w, cols, x, bias, out);
    }
    match bias {
        Some(b) => {
            for (r, (o, b)) in out.iter_mut().zip(b).enumerate() {
                *o = dot_row(k, w, r, cols, x) + b;
            }
        }
        None => {
            for (r, o) in out.iter_mut().enumerate() {
                *o = dot_row(k, w, r, cols, x);
            }
        }
    }
}

#[inline(always)]
pub fn exp(k: Kernels, x: f32) -> f32 {
    match k {
        Kernels::Reference => reference::exp(x),
        Kernels::Fast => fast::exp(x),
    }
}

/// softplus: the reference `x > 20 ? x : log1p(exp(x))` with `libm`; the fast kernels'
/// branch-free [`fast::softplus`].
#[inline]
pub fn softplus(k: Kernels, x: f32) -> f32 {
    match k {
        Kernels::Reference if x > 20.0 => x,
        Kernels::Reference => libm::log1pf(reference::exp(x)),
        Kernels::Fast => fast::softplus(x),
    }
}

/// SiLU: `x * sigmoid(x)`, computed as `x / (1 + exp(-x))`.
#[inline]
pub fn silu(k: Kernels, x: f32) -> f32 {
    match k {
        Kernels::Reference => x / (1.0 + reference::exp(-x)),
        Kernels::Fast => fast::silu(x),
    }
}

#[inline]
pub fn sigmoid(k: Kernels, x: f32) -> f32 {
    1.0 / (1.0 + exp(k, -x))
}

/// Exact (erf) GELU, as `torch.nn.GELU()`.
#[inline]
pub fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + libm::erff(x * core::f32::consts::FRAC_1_SQRT_2))
}

/// `1 / sqrt(mean(x²) + eps)`, the RMSNorm scale.
fn rms_scale(k: Kernels, x: &[f32], eps: f32) -> f32 {
    let ss = match k {
        Kernels::Reference => reference::dot(x, x),
        Kernels::Fast => fast::dot(x, x),
    };
    1.0 / libm::sqrtf(ss / x.len().max(1) as f32 + eps)
}

/// RMSNorm: `out = x * rsqrt(mean(x²) + eps) * w`.
pub fn rms_norm(k: Kernels, x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let inv = rms_scale(k, x, eps);
    for ((o, &xi), &wi) in out.iter_mut().zip(x).zip(w) {
        *o = wi * (xi * inv);
    }
}

/// In-place RMSNorm (used for the gated group norm).
pub fn rms_norm_inplace(k: Kernels, x: &mut [f32], w: &[f32], eps: f32) {
    let inv = rms_scale(k, x, eps);
    for (xi, &wi) in x.iter_mut().zip(w) {
        *xi = wi * (*xi * inv);
    }
}

/// LayerNorm with affine weight and bias (biased variance, as torch).
pub fn layer_norm(x: &[f32], w: &[f32], b: &[f32], eps: f32, out: &mut [f32]) {
    let n = x.len();
    if n == 0 {
        return;
    }
    let mut mean = 0.0f32;
    for &v in x {
        mean += v;
    }
    mean /= n as f32;
    let mut var = 0.0f32;
    for &v in x {
        let d = v - mean;
        var += d * d;
    }
    var /= n as f32;
    let inv = 1.0 / libm::sqrtf(var + eps);
    for (((o, &xi), &wi), &bi) in out.iter_mut().zip(x).zip(w).zip(b) {
        *o = (xi - mean) * inv * wi + bi;
    }
}

/// An element of a stored vector that a step loop reads one value at a time: f32 itself,
/// or f16 (format 1.6's compact Mamba-1 `A` and conv weights) converted exactly by
/// [`fast::f16_to_f32`] (integer operations, no `half` call per element: the compact
/// Mamba-1 step costs the Cortex-M4 a few instructions per `A` value). A loop generic
/// over it gives the bits of the f32 loop over the converted values.
pub trait Elem: Copy {
    /// The exact f32 value.
    fn get(self) -> f32;
}

impl Elem for f32 {
    #[inline(always)]
    fn get(self) -> f32 {
        self
    }
}

impl Elem for f16 {
    #[inline(always)]
    fn get(self) -> f32 {
        fast::f16_to_f32(self.to_bits())
    }
}

/// f16 → f32 for one element (used by embedding lookups).
#[inline]
pub fn f16_to_f32(x: f16) -> f32 {
    x.to_f32()
}
