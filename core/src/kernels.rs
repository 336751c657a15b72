//! Numeric kernels. Every kernel has a plain scalar **reference** (sequential sums, `libm`
//! math) that stays the definition of what the model computes, and a **fast** variant
//! (multi-accumulator dot products that auto-vectorize, a polynomial `exp`) that is tested
//! against it (`tests` below and `tests/` at the workspace root).
//!
//! No kernel uses fused multiply-add: Rust never contracts `a * b + c`, so each variant
//! is bit-reproducible across targets with IEEE f32.

use half::f16;

/// Which kernel set a [`crate::Model`] steps with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kernels {
    /// Plain scalar reference kernels.
    Reference,
    /// Optimised kernels (the default), checked against [`Kernels::Reference`].
    #[default]
    Fast,
}

/// A borrowed weight matrix or vector in its stored dtype.
#[derive(Debug, Clone, Copy)]
pub enum Weights<'a> {
    F32(&'a [f32]),
    F16(&'a [f16]),
}

impl Weights<'_> {
    pub fn len(&self) -> usize {
        match self {
            Weights::F32(w) => w.len(),
            Weights::F16(w) => w.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Elements `start..start + len`, or `None` when out of range.
    pub fn slice(&self, start: usize, len: usize) -> Option<Self> {
        let r = start..start.checked_add(len)?;
        Some(match self {
            Weights::F32(w) => Weights::F32(w.get(r)?),
            Weights::F16(w) => Weights::F16(w.get(r)?),
        })
    }
}

/// Scalar reference kernels.
pub mod reference {
    use half::f16;

    /// Sequential dot product.
    pub fn dot(a: &[f32], b: &[f32]) -> f32 {
        let mut acc = 0.0f32;
        for (x, y) in a.iter().zip(b) {
            acc += x * y;
        }
        acc
    }

    /// Sequential dot product with f16 weights.
    pub fn dot_f16(a: &[f16], b: &[f32]) -> f32 {
        let mut acc = 0.0f32;
        for (x, y) in a.iter().zip(b) {
            acc += x.to_f32() * y;
        }
        acc
    }

    pub fn exp(x: f32) -> f32 {
        libm::expf(x)
    }
}

/// Optimised kernels.
pub mod fast {
    use half::f16;

    /// Dot product with 16 independent accumulators held as four 4-lane groups (SSE/NEON
    /// registers on hosts; keeps the FPU pipeline full on Cortex-M), combined pairwise at
    /// the end. Written on `[f32; 4]` groups so that the compiler emits full-width vector
    /// loads and arithmetic rather than pairs.
    #[inline]
    pub fn dot(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (a, b) = (&a[..n], &b[..n]);
        let mut acc = [[0.0f32; 4]; 4];
        let (a4, ta) = a.as_chunks::<4>();
        let (b4, tb) = b.as_chunks::<4>();
        let (a16, ra) = a4.as_chunks::<4>();
        let (b16, rb) = b4.as_chunks::<4>();
        for (x, y) in a16.iter().zip(b16) {
            madd4(&mut acc[0], &x[0], &y[0]);
            madd4(&mut acc[1], &x[1], &y[1]);
            madd4(&mut acc[2], &x[2], &y[2]);
            madd4(&mut acc[3], &x[3], &y[3]);
        }
        for (x, y) in ra.iter().zip(rb) {
            madd4(&mut acc[0], x, y);
        }
        let mut tail = 0.0f32;
        for (x, y) in ta.iter().zip(tb) {
            tail += x * y;
        }
        hsum(&acc) + tail
    }

    /// Pairwise sum of the accumulators. Kept out of line: inlined, its lane pairing leads
    /// the compiler to split the accumulators into half-width vectors.
    #[inline(never)]
    fn hsum(acc: &[[f32; 4]; 4]) -> f32 {
        let mut v = [0.0f32; 4];
        for (j, vj) in v.iter_mut().enumerate() {
            *vj = (acc[0][j] + acc[1][j]) + (acc[2][j] + acc[3][j]);
        }
        (v[0] + v[1]) + (v[2] + v[3])
    }

    #[inline(always)]
    fn madd4(acc: &mut [f32; 4], x: &[f32; 4], y: &[f32; 4]) {
        acc[0] += x[0] * y[0];
        acc[1] += x[1] * y[1];
        acc[2] += x[2] * y[2];
        acc[3] += x[3] * y[3];
    }

    /// Dot product with f16 weights, converted in blocks.
    #[inline]
    pub fn dot_f16(a: &[f16], b: &[f32]) -> f32 {
        use half::slice::HalfFloatSliceExt;
        const BLK: usize = 64;
        let n = a.len().min(b.len());
        let mut buf = [0.0f32; BLK];
        let mut total = 0.0f32;
        let mut i = 0;
        while i < n {
            let m = (n - i).min(BLK);
            a[i..i + m].convert_to_f32_slice(&mut buf[..m]);
            total += dot(&buf[..m], &b[i..i + m]);
            i += m;
        }
        total
    }

    /// exp(x) by range reduction to [-ln2/2, ln2/2] and a degree-6 polynomial.
    /// Max relative error ≈ 2e-7 over [-87, 88] (tested against `libm::expf`);
    /// returns 0 below -87.33 and +inf above 88.72. Branch-free so loops vectorize.
    #[inline(always)]
    pub fn exp(x: f32) -> f32 {
        const LOG2E: f32 = core::f32::consts::LOG2_E;
        const LN2_HI: f32 = 0.693_145_75;
        const LN2_LO: f32 = 1.428_606_8e-6;
        const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23
        let xc = x.clamp(-87.33, 88.72);
        let t = xc * LOG2E;
        let k = t + ROUND; // round to nearest: the integer sits in k's low mantissa bits
        let n = k - ROUND;
        // n as an integer by bit arithmetic (no float-to-int cast, so loops vectorize).
        let ni = k.to_bits().wrapping_sub(ROUND.to_bits()) as i32;
        let r = (xc - n * LN2_HI) - n * LN2_LO;
        // Taylor coefficients of exp on the reduced range.
        let p = 1.0
            + r * (1.0
                + r * (0.5
                    + r * (0.166_666_67
                        + r * (0.041_666_668 + r * (0.008_333_334 + r * 0.001_388_889)))));
        let bits = (ni.wrapping_add(127) as u32) << 23;
        let y = p * f32::from_bits(bits);
        let y = if x < -87.33 { 0.0 } else { y };
        let y = if x > 88.72 { f32::INFINITY } else { y };
        if x.is_nan() {
            x
        } else {
            y
        }
    }
}

/// Dot of a weight row with `x`, in the chosen kernel set.
#[inline]
pub fn dot_row(k: Kernels, w: Weights<'_>, row: usize, cols: usize, x: &[f32]) -> f32 {
    let lo = row * cols;
    match (k, w) {
        (Kernels::Reference, Weights::F32(w)) => reference::dot(&w[lo..lo + cols], x),
        (Kernels::Reference, Weights::F16(w)) => reference::dot_f16(&w[lo..lo + cols], x),
        (Kernels::Fast, Weights::F32(w)) => fast::dot(&w[lo..lo + cols], x),
        (Kernels::Fast, Weights::F16(w)) => fast::dot_f16(&w[lo..lo + cols], x),
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

/// softplus with the reference threshold: `x > 20 ? x : log1p(exp(x))`.
#[inline]
pub fn softplus(k: Kernels, x: f32) -> f32 {
    if x > 20.0 {
        x
    } else {
        libm::log1pf(exp(k, x))
    }
}

/// SiLU: `x * sigmoid(x)`, computed as `x / (1 + exp(-x))`.
#[inline]
pub fn silu(k: Kernels, x: f32) -> f32 {
    x / (1.0 + exp(k, -x))
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

/// f16 → f32 for one element (used by embedding lookups).
#[inline]
pub fn f16_to_f32(x: f16) -> f32 {
    x.to_f32()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    #[test]
    fn fast_exp_matches_libm() {
        let mut worst = 0.0f32;
        let mut x = -87.0f32;
        while x < 88.0 {
            let r = libm::expf(x);
            let f = fast::exp(x);
            let rel = ((f - r) / r).abs();
            worst = worst.max(rel);
            x += 0.0137;
        }
        assert!(worst < 4e-7, "worst relative error {worst}");
        assert_eq!(fast::exp(-200.0), 0.0);
        assert_eq!(fast::exp(200.0), f32::INFINITY);
        assert!(fast::exp(f32::NAN).is_nan());
        assert_eq!(fast::exp(0.0), 1.0);
    }

    proptest! {
        #[test]
        fn fast_dot_matches_reference(v in proptest::collection::vec((-10.0f32..10.0, -10.0f32..10.0), 0..200)) {
            let a: Vec<f32> = v.iter().map(|p| p.0).collect();
            let b: Vec<f32> = v.iter().map(|p| p.1).collect();
            let r = reference::dot(&a, &b);
            let f = fast::dot(&a, &b);
            let mag: f32 = a.iter().zip(&b).map(|(x, y)| (x * y).abs()).sum();
            prop_assert!((r - f).abs() <= 1e-5 * mag.max(1.0), "{} vs {}", r, f);
            let a16: Vec<f16> = a.iter().map(|&x| f16::from_f32(x)).collect();
            let r16 = reference::dot_f16(&a16, &b);
            let f16d = fast::dot_f16(&a16, &b);
            prop_assert!((r16 - f16d).abs() <= 1e-5 * mag.max(1.0));
        }

        #[test]
        fn fast_exp_relative_error(x in -87.0f32..88.0) {
            let r = libm::expf(x);
            prop_assert!(((fast::exp(x) - r) / r).abs() < 4e-7);
        }
    }
}
