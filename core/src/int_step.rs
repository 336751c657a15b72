//! The integer-only step ([`crate::Compute::Int`], format 1.3): S4D and Mamba sensor models with
//! no floating-point operation anywhere in the step, for cores without an FPU.
//!
//! # Number formats
//! A raw integer `r` in a site with `f` fraction bits stands for `r · 2^-f`. Every site's
//! `f` is chosen at conversion from calibration data and stored in the model's integer
//! plans ([`crate::Role::IntPlan`], [`crate::Role::IntLayerPlan`]; indices in [`plan`]).
//!
//! | what | type | fraction bits |
//! |------|------|---------------|
//! | input vectors, front-end features | `i16` | `plan::G_IN_FRAC` |
//! | residual stream (every layer) | `i16` | `plan::G_RESID_FRAC` |
//! | norm outputs, matrix outputs, nonlinearity inputs/outputs | `i16` | per site |
//! | norm weights, conv weights | `i16` | per tensor |
//! | biases of a matrix | `i32` | the matrix's accumulator (row scale × input) |
//! | norm biases | `i32` | the norm's output |
//! | S4D `dA` | `i32` | 30 (`DA_FRAC`) |
//! | S4D `C·dB`, `D`; Mamba `A`, `D` | `i32` | per tensor (largest value below 2^22 / 2^30) |
//! | recurrent states: S4D modes | `i32` | per layer, from the bound `(max i16 input + rounding) / (1 − max|dA|)`: no input saturates them |
//! | recurrent states: Mamba SSM | `i32` | per layer, calibrated with 2× headroom |
//! | Mamba conv history | `i16` in `i32` slots | the conv input's |
//! | Mamba `dt` | `i32` | 24 (Q7.24, [`softplus_q24`]) |
//! | decays `exp(dt·A)` | `i32` | 31 ([`fixed::exp_neg_q31`]) |
//! | outputs | `i32` | `plan::G_OUT_FRAC` ([`crate::Model::int_io`]) |
//!
//! Matrices are [`crate::DType::I8R`]: int8 weights per output row, `i32` accumulation of
//! `i8 · i16` products, then one rounding requantization per row into the output site's
//! format. The converter bounds `Σ|q| · 2^15 + |bias| < 2^31` per row, so the accumulator
//! never wraps for any input. Everything rounds to nearest (ties away from zero) once and
//! saturates when narrowing.
//!
//! Norms: mean and variance in `i64`/`u64` (the mean rounded to the input's LSB), the
//! inverse square root from [`fixed::rsqrt`] (< 1 LSB of a Q31 mantissa), `eps` stored in
//! the plan at `2·f_in + 16` fraction bits.
//!
//! A corrupt plan can give wrong outputs but never a panic or an out-of-range access:
//! every shift goes through [`shift_round`], which accepts any amount.

use crate::error::{FormatError, StepError};
use crate::fixed;
use crate::kernels::{Kernels, QuantI8R};

/// Length of the model-global integer plan.
pub const GLOBAL_PLAN_LEN: usize = 16;
/// Length of a layer's integer plan.
pub const LAYER_PLAN_LEN: usize = 16;
/// Fraction bits of the S4D `dA` tensor.
pub const DA_FRAC: i32 = 30;
/// Fraction bits of Mamba's `dt` (the output of [`softplus_q24`]).
pub const DT_FRAC: i32 = 24;
/// Largest `d_state` of an integer-only model (bounds the `i64` state sums).
pub const MAX_INT_D_STATE: u32 = 256;
/// Largest vector length of an integer-only model (bounds the norms' `u64` sums).
pub const MAX_INT_WIDTH: u32 = 4096;
/// Version of the plan layout (`plan::G_VERSION`).
pub const PLAN_VERSION: i32 = 1;

/// Indices into the integer plans. `G_*`: the global plan; `L_*`: every layer's plan;
/// `S4D_*` / `M_*`: the architecture's own layer entries.
pub mod plan {
    pub const G_VERSION: usize = 0;
    pub const G_IN_FRAC: usize = 1;
    pub const G_RESID_FRAC: usize = 2;
    pub const G_NORMF_FRAC: usize = 3;
    /// `norm_eps · 2^(2·G_RESID_FRAC + 16)`.
    pub const G_NORMF_EPS: usize = 4;
    pub const G_NORMF_W_FRAC: usize = 5;
    pub const G_OUT_FRAC: usize = 6;
    pub const G_FILTER_FRAC: usize = 7;

    /// Output of the layer's norm.
    pub const L_NORM_FRAC: usize = 0;
    /// `norm_eps · 2^(2·f_in + 16)`, `f_in` the norm input's fraction bits.
    pub const L_NORM_EPS: usize = 1;
    pub const L_NORM_W_FRAC: usize = 2;

    pub const S4D_H_FRAC: usize = 3;
    pub const S4D_CB_FRAC: usize = 4;
    pub const S4D_D_FRAC: usize = 5;
    /// GELU input and output (the output linear's input).
    pub const S4D_GELU_FRAC: usize = 6;
    /// GLU gate rows of the output linear (sigmoid input).
    pub const S4D_GATE_FRAC: usize = 7;

    /// `x` rows of in_proj (the conv input and history).
    pub const M_X_FRAC: usize = 3;
    /// `z` rows of in_proj (SiLU gate input and output).
    pub const M_Z_FRAC: usize = 4;
    pub const M_CONVW_FRAC: usize = 5;
    /// Conv output: SiLU input and output, x_proj's input, the scan input `u`.
    pub const M_SILU_FRAC: usize = 6;
    pub const M_DTIN_FRAC: usize = 7;
    pub const M_B_FRAC: usize = 8;
    pub const M_C_FRAC: usize = 9;
    /// dt_proj output (softplus input).
    pub const M_SP_FRAC: usize = 10;
    pub const M_A_FRAC: usize = 11;
    pub const M_H_FRAC: usize = 12;
    pub const M_D_FRAC: usize = 13;
    /// The scan output `y` before the gate (an `i32` site).
    pub const M_Y_FRAC: usize = 14;
    /// Gated output (out_proj's input).
    pub const M_O_FRAC: usize = 15;
}

/// The bounds the integer step's sums rely on: vectors of at most [`MAX_INT_WIDTH`] values
/// (the norms' `u64` sums), at most [`MAX_INT_D_STATE`] states per channel (the `i64`
/// state sums). Each integer block kind checks its widest vector and state with this.
pub(crate) fn check_widths(width: u32, d_state: u32) -> Result<(), FormatError> {
    if width > MAX_INT_WIDTH {
        return Err(FormatError::BadConfig(
            "compute int: widths must be at most 4096",
        ));
    }
    if d_state > MAX_INT_D_STATE {
        return Err(FormatError::BadConfig(
            "compute int: d_state must be at most 256",
        ));
    }
    Ok(())
}

/// i32 elements holding `n` packed i16 values.
pub(crate) const fn half(n: usize) -> usize {
    n.div_ceil(2)
}

/// The fixed-point formats of an integer-only model's input and output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntIo {
    /// Input vector values are `round(x · 2^input_frac)` (saturated to `i16`).
    pub input_frac: u32,
    /// Output `o` stands for `o · 2^-output_frac`.
    pub output_frac: u32,
}

// ------------------------------------------------------------------------------------------
// Arithmetic helpers
// ------------------------------------------------------------------------------------------

/// `v · 2^-s`, rounded to nearest (ties away from zero) for `s > 0`, a saturating left
/// shift for `s < 0`. Total for every `s`.
#[inline]
pub fn shift_round(v: i64, s: i32) -> i64 {
    shift_round_inline(v, s)
}

/// [`shift_round`], always inlined: for inner loops whose shift is loop-invariant (the
/// direction test then leaves the loop). The integer Mamba scan needs it: without it the
/// scan costs 8% more instructions on the Cortex-M4 (3.49 M → 3.82 M per frame of
/// fsdd-mamba-int, `scripts/firmware-bench.sh`).
#[inline(always)]
pub(crate) fn shift_round_inline(v: i64, s: i32) -> i64 {
    if s >= 0 {
        fixed::round_shr_i64(v, s.unsigned_abs().min(64))
    } else {
        fixed::sat_shl_i64(v, s.unsigned_abs().min(63))
    }
}

/// A plan entry as a fraction-bit count, clamped to `0..=max`.
#[inline]
pub(crate) fn frac(p: &[i32], i: usize, max: i32) -> i32 {
    p.get(i).copied().unwrap_or(0).clamp(0, max)
}

/// Nonlinearity input fraction bits (the `fixed` functions take `0..=15`).
#[inline]
pub(crate) fn nl(f: i32) -> u32 {
    f.clamp(0, 15) as u32
}

/// `Σ w·x` with wrapping `i32` accumulation in the chosen kernel set (the SIMD dots of
/// [`crate::kernels::fast`] give the reference's exact sum).
#[inline]
pub(crate) fn dot(k: Kernels, w: &[i8], x: &[i16]) -> i32 {
    match k {
        Kernels::Reference => crate::kernels::reference::dot_i8_i16(w, x),
        Kernels::Fast => crate::kernels::fast::dot_i8_i16(w, x),
    }
}

/// The integer matrix-vector product: for each row `r`,
/// `emit(r, round((Σ q·x + bias[r]) · mult_r · 2^-rshift_r))`.
pub fn matvec_i8r(
    k: Kernels,
    w: &QuantI8R<'_>,
    x: &[i16],
    bias: Option<&[i32]>,
    mut emit: impl FnMut(usize, i64),
) -> Result<(), StepError> {
    let cols = w.cols;
    if x.len() != cols || w.q.len() != w.rows() * cols || bias.is_some_and(|b| b.len() != w.rows())
    {
        return Err(StepError::Internal);
    }
    if cols == 0 {
        return Err(StepError::Internal);
    }
    #[cfg(all(target_arch = "arm", tinyssm_arm_dsp))]
    if k == Kernels::Fast && cols <= 128 {
        return matvec_i8r_packed::<64>(w, x, bias, emit);
    }
    #[cfg(all(target_arch = "arm", tinyssm_arm_dsp))]
    if k == Kernels::Fast && cols <= 2 * PACK_WORDS {
        return matvec_i8r_packed::<PACK_WORDS>(w, x, bias, emit);
    }
    for (r, (row, rq)) in w.q.chunks_exact(cols).zip(w.rq.chunks_exact(2)).enumerate() {
        let mut acc = dot(k, row, x);
        if let Some(b) = bias {
            acc = acc.wrapping_add(b[r]);
        }
        emit(r, shift_round(acc as i64 * rq[0] as i64, rq[1]));
    }
    Ok(())
}

/// Packed activation words on the stack of [`matvec_i8r_packed`] for up to 512 columns.
#[cfg(all(target_arch = "arm", tinyssm_arm_dsp))]
const PACK_WORDS: usize = 256;

/// [`matvec_i8r`]'s `Kernels::Fast` path on Cortex-M with the DSP extension: `x` put in
/// `SMLAD` pair order once, three rows a pass (`crate::simd::dot_rows3_packed`); the
/// same sums as the reference (exact wrapping i32), so the same outputs.
#[cfg(all(target_arch = "arm", tinyssm_arm_dsp))]
fn matvec_i8r_packed<const N: usize>(
    w: &QuantI8R<'_>,
    x: &[i16],
    bias: Option<&[i32]>,
    mut emit: impl FnMut(usize, i64),
) -> Result<(), StepError> {
    let cols = x.len();
    if cols > 2 * N {
        return Err(StepError::Internal);
    }
    // `N` packed words on the stack: 64 (256 bytes) for the small matrices of
    // microcontroller models, so that neither the zeroing nor the stack is a chunk's.
    let mut xs = [0u32; N];
    let groups = crate::simd::pack_i16(x, &mut xs);
    let (xs, tail) = (&xs[..2 * groups], &x[4 * groups..]);
    // The columns past the last whole group (none when `cols` is a multiple of 4).
    let tail_dot = |row: &[i8]| {
        let mut t = 0i32;
        if !tail.is_empty() {
            for (&a, &b) in row[4 * groups..].iter().zip(tail) {
                t = t.wrapping_add(a as i32 * b as i32);
            }
        }
        t
    };
    let rows = w.rows();
    let mut finish = |r: usize, row: &[i8], d: i32| {
        let mut acc = d.wrapping_add(tail_dot(row));
        if let Some(b) = bias {
            acc = acc.wrapping_add(b[r]);
        }
        emit(
            r,
            shift_round(acc as i64 * w.rq[2 * r] as i64, w.rq[2 * r + 1]),
        );
    };
    let mut r = 0;
    while r + 3 <= rows {
        let d = crate::simd::dot_rows3_packed(&w.q[r * cols..], cols, xs, groups);
        for (j, d) in d.into_iter().enumerate() {
            let i = r + j;
            finish(i, &w.q[i * cols..(i + 1) * cols], d);
        }
        r += 3;
    }
    while r < rows {
        let row = &w.q[r * cols..(r + 1) * cols];
        finish(r, row, crate::simd::dot_row_packed(row, xs, groups));
        r += 1;
    }
    Ok(())
}

/// [`matvec_i8r`] into `i16` outputs (saturated).
pub(crate) fn linear16(
    k: Kernels,
    w: &QuantI8R<'_>,
    x: &[i16],
    bias: Option<&[i32]>,
    out: &mut [i16],
) -> Result<(), StepError> {
    if out.len() != w.rows() {
        return Err(StepError::Internal);
    }
    matvec_i8r(k, w, x, bias, |r, v| out[r] = fixed::saturate_i16(v))
}

/// Integer LayerNorm (`bias = Some`) or RMSNorm (`bias = None`, no mean):
/// `out = (x − μ) / sqrt(var + eps) · w (+ b)`. `x` has `fx` fraction bits, `w` `fw`,
/// `out` and `b` `fo`; `eps` is at `2·fx + 16`. LayerNorm's mean `μ` is rounded to an LSB
/// of `x` (ties away from zero) and the variance is taken about that rounded mean, so
/// against the exact-mean norm an output may differ by up to half an input LSB's worth,
/// `0.5·2^-fx · |w| / sqrt(var + eps)`, plus the variance's `+d²` (`|d| ≤ 0.5 LSB`) bias;
/// against this definition the error is ≤ 1 output LSB (tests `norms_match_f64`,
/// `norm_int_within_its_bound`).
#[allow(clippy::too_many_arguments)]
pub fn norm_int(
    x: &[i16],
    w: &[i16],
    b: Option<&[i32]>,
    eps: i32,
    fx: i32,
    fw: i32,
    fo: i32,
    out: &mut [i16],
) -> Result<(), StepError> {
    let n = x.len();
    if n == 0 || w.len() != n || out.len() != n || b.is_some_and(|b| b.len() != n) {
        return Err(StepError::Internal);
    }
    let mean = if b.is_some() {
        let sum: i64 = x.iter().map(|&v| v as i64).sum();
        // round(sum / n), ties away from zero
        let q = (sum.unsigned_abs() + n as u64 / 2) / n as u64;
        if sum < 0 {
            -(q as i64)
        } else {
            q as i64
        }
    } else {
        0
    };
    // |x - mean| < 2^16, so each square < 2^32 and the sum < 2^44 (n ≤ 4096).
    let ss: u64 = x
        .iter()
        .map(|&v| {
            let c = (v as i64 - mean).unsigned_abs();
            c * c
        })
        .sum();
    let v = ((ss << 16) + n as u64 / 2) / n as u64 + eps.max(0) as u64;
    let (m, e) = fixed::rsqrt(v, (2 * fx + 16).clamp(0, 255) as u32);
    let s = fx + fw + 31 - e - fo;
    for (i, o) in out.iter_mut().enumerate() {
        let c = x[i] as i64 - mean;
        let p = c * w[i] as i64; // < 2^31
        let mut y = shift_round(p * m as i64, s); // p · m < 2^62
        if let Some(b) = b {
            y = y.saturating_add(b[i] as i64);
        }
        *o = fixed::saturate_i16(y);
    }
    Ok(())
}

/// `softplus(x)` of a `Q(15-f).f` input (`frac` clamped to `0..=15`) in Q7.24 (i32, ≥ 0):
/// `max(x, 0) + ln2 · log2(1 + exp(-|x|))`, the log in Q24 from [`fixed::log2_u64`].
/// Measured max error over all `i16` inputs for `frac` 0..=15: see the test
/// `softplus_q24_exhaustive`: 0.85 LSB of Q24 (5.1e-8), asserted ≤ 0.9 LSB.
pub fn softplus_q24(x: i16, frac: u32) -> i32 {
    let frac = frac.min(15);
    let ax = -(x.unsigned_abs() as i32);
    let e = fixed::exp_neg_q31(ax, frac) as u64; // exp(-|x|) in Q0.31
                                                 // log2((2^31 + e) · 2^-31) in Q24: log2_u64 gives log2(v) in Q7.24.
    let l = fixed::log2_u64((1u64 << 31) + e) as i64 - (31i64 << 24);
    let ln = fixed::round_shr_i64(l * LN2_Q31, 31);
    let pos = if x > 0 { (x as i64) << (24 - frac) } else { 0 };
    fixed::saturate_i32(pos + ln)
}

/// `ln 2` in Q0.31.
const LN2_Q31: i64 = 1_488_522_236;

/// Splits `n` packed i16 values off the front of an i32 scratch slice.
pub(crate) fn take16<'s>(buf: &mut &'s mut [i32], n: usize) -> Result<&'s mut [i16], StepError> {
    let k = half(n);
    if buf.len() < k {
        return Err(StepError::Internal);
    }
    let (a, b) = core::mem::take(buf).split_at_mut(k);
    *buf = b;
    let v: &mut [i16] = bytemuck::cast_slice_mut(a);
    v.get_mut(..n).ok_or(StepError::Internal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn softplus_f64(x: f64) -> f64 {
        if x > 20.0 {
            x
        } else {
            libm::log1p(libm::exp(x))
        }
    }

    #[test]
    fn softplus_q24_exhaustive() {
        let mut worst_all = 0f64;
        for f in 0..=15u32 {
            let mut worst = 0f64;
            for x in i16::MIN..=i16::MAX {
                let xr = x as f64 / (1u64 << f) as f64;
                let want = (softplus_f64(xr) * (1u64 << 24) as f64).min(i32::MAX as f64);
                let got = softplus_q24(x, f) as f64;
                worst = worst.max((got - want).abs());
            }
            std::println!("softplus_q24 frac {f:2}: max error {worst:.3} LSB of Q24");
            worst_all = worst_all.max(worst);
        }
        assert!(worst_all <= 0.9, "{worst_all}");
    }

    #[test]
    fn shift_round_both_ways() {
        assert_eq!(shift_round(5, 1), 3);
        assert_eq!(shift_round(-5, 1), -3);
        assert_eq!(shift_round(3, -2), 12);
        assert_eq!(shift_round(i64::MAX, -1), i64::MAX);
        assert_eq!(shift_round(i64::MIN, -70), i64::MIN);
        assert_eq!(shift_round(1, 200), 0);
    }

    /// [`norm_int`]'s definition in f64, in output LSBs (saturated): LayerNorm centres on
    /// the mean rounded to an LSB of `x` (ties away from zero) and takes the variance about
    /// that rounded mean, as the integer code does; RMSNorm has no mean.
    #[allow(clippy::too_many_arguments)]
    fn norm_f64(
        x: &[i16],
        w: &[i16],
        b: Option<&[i32]>,
        eps_real: f64,
        fx: i32,
        fw: i32,
        fo: i32,
    ) -> Vec<f64> {
        let n = x.len() as f64;
        let mean_lsb = match b {
            Some(_) => {
                let sum: i64 = x.iter().map(|&v| v as i64).sum();
                (sum as f64 / n).abs().round().copysign(sum as f64)
            }
            None => 0.0,
        };
        let c: Vec<f64> = x
            .iter()
            .map(|&v| (v as f64 - mean_lsb) / 2f64.powi(fx))
            .collect();
        let var = c.iter().map(|v| v * v).sum::<f64>() / n;
        let inv = 1.0 / (var + eps_real).sqrt();
        (0..x.len())
            .map(|i| {
                let mut y = c[i] * inv * (w[i] as f64 / 2f64.powi(fw));
                if let Some(b) = b {
                    y += b[i] as f64 / 2f64.powi(fo);
                }
                (y * 2f64.powi(fo)).clamp(-32768.0, 32767.0)
            })
            .collect()
    }

    /// LayerNorm and RMSNorm against f64 on random vectors.
    #[test]
    fn norms_match_f64() {
        let mut seed = 0x1234_5678_u64;
        let mut rnd = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut worst = 0f64;
        for case in 0..400 {
            let n = 1 + (rnd() % 100) as usize;
            let fx = 8 + (rnd() % 6) as i32;
            let amp = 1 + rnd() % 32767;
            let x: Vec<i16> = (0..n)
                .map(|_| ((rnd() % (2 * amp + 1)) as i64 - amp as i64) as i16)
                .collect();
            let w: Vec<i16> = (0..n).map(|_| (rnd() % 8192) as i16 + 1024).collect();
            let (fw, fo) = (12, 11);
            let layer = case % 2 == 0;
            let b: Vec<i32> = (0..n).map(|_| (rnd() % 2001) as i32 - 1000).collect();
            let eps_real = 1e-5f64;
            let eps = (eps_real * 2f64.powi(2 * fx + 16)).round() as i32;
            let mut out = std::vec![0i16; n];
            norm_int(&x, &w, layer.then_some(&b[..]), eps, fx, fw, fo, &mut out).unwrap();
            let want = norm_f64(&x, &w, layer.then_some(&b[..]), eps_real, fx, fw, fo);
            for i in 0..n {
                let err = (out[i] as f64 - want[i]).abs();
                worst = worst.max(err);
                assert!(err <= 1.0, "case {case} i {i}: {} vs {}", out[i], want[i]);
            }
        }
        std::println!("norm_int: max error against its definition {worst:.3} LSB");
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// The integer matrix-vector product against its real-valued definition: each
        /// output is `acc · mult · 2^-rshift` rounded once (error ≤ 0.5 LSB, exactly
        /// computable here in f64 since `|acc · mult| < 2^62` is formed exactly in i128).
        #[test]
        fn matvec_i8r_is_the_rounded_exact_product(
            rows in 1usize..12,
            cols in 1usize..70,
            seed in any::<u64>(),
            rshift in 20i32..50,
        ) {
            let mut s = seed | 1;
            let mut rnd = || { s ^= s << 13; s ^= s >> 7; s ^= s << 17; s };
            let q: Vec<i8> = (0..rows * cols).map(|_| (rnd() % 255) as i8).map(|v| v.max(-127)).collect();
            let x: Vec<i16> = (0..cols).map(|_| rnd() as i16).collect();
            let bias: Vec<i32> = (0..rows).map(|_| (rnd() % 2_000_001) as i32 - 1_000_000).collect();
            let mut rq = Vec::new();
            for _ in 0..rows {
                rq.push((1 << 30) + (rnd() % (1 << 30)) as i32);
                rq.push(rshift);
            }
            let w = QuantI8R { q: &q, rq: &rq, cols };
            let mut out = std::vec![0i64; rows];
            matvec_i8r(Kernels::Fast, &w, &x, Some(&bias), |r, v| out[r] = v).unwrap();
            let mut out_ref = std::vec![0i64; rows];
            matvec_i8r(Kernels::Reference, &w, &x, Some(&bias), |r, v| out_ref[r] = v).unwrap();
            prop_assert_eq!(&out, &out_ref);
            for r in 0..rows {
                let acc: i128 = q[r * cols..(r + 1) * cols].iter().zip(&x).map(|(&a, &b)| a as i128 * b as i128).sum::<i128>() + bias[r] as i128;
                let p = acc * rq[2 * r] as i128;
                let d = 1i128 << rshift;
                // round half away from zero
                let want = if p >= 0 { (p + d / 2) / d } else { -((-p + d / 2) / d) };
                prop_assert_eq!(out[r] as i128, want);
            }
        }

        /// LayerNorm / RMSNorm against f64 within 1 LSB plus the mean's rounding share.
        #[test]
        fn norm_int_within_its_bound(
            n in 1usize..200,
            seed in any::<u64>(),
            fx in 6i32..14,
            amp in 1u64..32767,
            layer in any::<bool>(),
        ) {
            let mut s = seed | 1;
            let mut rnd = || { s ^= s << 13; s ^= s >> 7; s ^= s << 17; s };
            let x: Vec<i16> = (0..n).map(|_| ((rnd() % (2 * amp + 1)) as i64 - amp as i64) as i16).collect();
            let w: Vec<i16> = (0..n).map(|_| (rnd() % 16384) as i16 - 4096).collect();
            let b: Vec<i32> = (0..n).map(|_| (rnd() % 4001) as i32 - 2000).collect();
            let (fw, fo) = (12, 11);
            let eps_real = 1e-5f64;
            let eps = (eps_real * 2f64.powi(2 * fx + 16)).round() as i32;
            let mut out = std::vec![0i16; n];
            norm_int(&x, &w, layer.then_some(&b[..]), eps, fx, fw, fo, &mut out).unwrap();
            let want = norm_f64(&x, &w, layer.then_some(&b[..]), eps_real, fx, fw, fo);
            for i in 0..n {
                prop_assert!((out[i] as f64 - want[i]).abs() <= 1.0, "i {}: {} vs {}", i, out[i], want[i]);
            }
        }

        /// Any plan values, tensors and states: the helpers never panic (overflow checks on).
        #[test]
        fn helpers_are_total(v in any::<i64>(), s in any::<i32>(), x in any::<i16>(), f in any::<u32>()) {
            let _ = shift_round(v, s);
            let _ = softplus_q24(x, f);
        }
    }

    #[test]
    fn matvec_i8r_rounds_once() {
        // 2 rows × 3 cols, multiplier 2^30 with rshift 31 = scale 0.5.
        let q = [1i8, 2, 3, -1, -2, -3];
        let rq = [1 << 30, 31, 1 << 30, 30];
        let w = QuantI8R {
            q: &q,
            rq: &rq,
            cols: 3,
        };
        let x = [10i16, 20, 31];
        let mut out = [0i64; 2];
        matvec_i8r(Kernels::Reference, &w, &x, Some(&[1, 0]), |r, v| out[r] = v).unwrap();
        // row 0: 10+40+93+1 = 144 → 72; row 1: -143 · 1 = -143
        assert_eq!(out, [72, -143]);
        assert!(matvec_i8r(Kernels::Fast, &w, &x[..2], None, |_, _| {}).is_err());
    }
}
