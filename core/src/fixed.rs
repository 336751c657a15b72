//! Fixed-point arithmetic for the integer-only compute mode.
//!
//! Everything in this module except [`quantize_multiplier`], [`QFormat::to_real`] and
//! [`QFormat::from_real`] (marked **conversion time only**) is pure integer arithmetic: no
//! `f32`/`f64` value, constant or call appears in it, so a step built from these functions
//! executes no floating-point instruction (on a core without an FPU: calls no soft-float
//! routine). The tables below are computed by `const fn` integer arithmetic at compile time.
//!
//! Every function is total: any input gives a defined output, and no operation can
//! overflow (tests run with overflow checks on) or panic (table reads use `get`, divisions
//! go through [`NonZeroU64`]).
//!
//! # Q formats
//!
//! A raw integer `r` in format `Qm.n` stands for the real number `r · 2^-n`; `m` integer
//! bits plus `n` fraction bits plus the sign bit fill the container. A per-tensor
//! power-of-two scale *is* the choice of `n`; an arbitrary real scale is carried as an
//! integer multiplier and shift (see [`requantize_i16`]). The formats used here:
//!
//! | what | container | format | range | LSB |
//! |------|-----------|--------|-------|-----|
//! | activations (nonlinearity inputs, and outputs of [`silu`], [`gelu`], [`softplus`]) | `i16` | `Q(15-f).f`, `f = frac` in `0..=15` (default [`ACT`]: Q3.12) | `[-2^(15-f), 2^(15-f))` | `2^-f` |
//! | probabilities and gates ([`sigmoid`], [`tanh`], [`exp_neg`] outputs) | `i16` | Q0.15 ([`UNIT`]) | `[-1, 1 - 2^-15]` (1.0 saturates to 32767) | `2^-15` |
//! | decay arguments (`Δ·A`, input of [`exp_neg_q31`]) | `i32` | `Q(31-f).f`, typically Q7.24 ([`DECAY_ARG`]) | `[-128, 128)` | `2^-24` |
//! | decays ([`exp_neg_q31`] output) | `i32` | Q0.31 ([`DECAY`]) | `[0, 1 - 2^-31]` | `2^-31` |
//! | logarithms ([`log2_u64`], [`ln_u64`], [`log2_q`]) | `i32` | Q7.24 ([`LOG`]) | `[-128, 128)` | `2^-24` |
//! | requantize multipliers, [`rsqrt`] mantissas | `i32` | Q0.31, normalised to `[2^30, 2^31)` | `[0.5, 1)` | `2^-31` |
//! | accumulators | `i32` / `i64` | product of the operands' formats | | |
//!
//! # Rounding
//!
//! Every rounding step in this module is **round to nearest, ties away from zero**
//! (`2.5 → 3`, `-2.5 → -3`), and every narrowing **saturates** to the target range.
//! The one exception is [`rsqrt`], whose mantissa is rounded toward zero (floor), which keeps
//! it exactly monotone.

use core::num::NonZeroU64;

// ------------------------------------------------------------------------------------------
// Q formats
// ------------------------------------------------------------------------------------------

/// A signed fixed-point format: `bits`-bit container, `frac` fraction bits. Raw `r`
/// stands for `r · 2^-frac`; the format is written `Q(bits-1-frac).frac`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QFormat {
    /// Container width in bits, sign included (8, 16, 32 or 64).
    pub bits: u8,
    /// Fraction bits.
    pub frac: u8,
}

/// Default activation format: `i16` Q3.12, range `[-8, 8)`, LSB `2^-12`.
pub const ACT: QFormat = QFormat::new(16, 12);
/// Probabilities and gates: `i16` Q0.15.
pub const UNIT: QFormat = QFormat::new(16, 15);
/// Decay argument `Δ·A`: `i32` Q7.24.
pub const DECAY_ARG: QFormat = QFormat::new(32, 24);
/// Decays `exp(Δ·A)`: `i32` Q0.31.
pub const DECAY: QFormat = QFormat::new(32, 31);
/// Logarithms: `i32` Q7.24.
pub const LOG: QFormat = QFormat::new(32, 24);

impl QFormat {
    /// A `bits`-bit container with `frac` fraction bits (`bits` clamped to `2..=64`, `frac`
    /// to `0..bits`).
    pub const fn new(bits: u8, frac: u8) -> Self {
        let bits = if bits < 2 {
            2
        } else if bits > 64 {
            64
        } else {
            bits
        };
        let frac = if frac >= bits { bits - 1 } else { frac };
        QFormat { bits, frac }
    }
    /// Integer bits, sign excluded: the `m` of `Qm.n`.
    pub const fn int_bits(self) -> u8 {
        self.bits - 1 - self.frac
    }
    /// Smallest raw value, `-2^(bits-1)`.
    pub const fn min_raw(self) -> i64 {
        i64::MIN >> (64 - self.bits as u32)
    }
    /// Largest raw value, `2^(bits-1) - 1`.
    pub const fn max_raw(self) -> i64 {
        i64::MAX >> (64 - self.bits as u32)
    }
    /// **Conversion time only** (uses `f64`): the real value of raw `r`.
    pub fn to_real(self, r: i64) -> f64 {
        libm::ldexp(r as f64, -(self.frac as i32))
    }
    /// **Conversion time only** (uses `f64`): the nearest raw value to `x` (ties away from
    /// zero), saturated to the container; NaN gives 0.
    pub fn from_real(self, x: f64) -> i64 {
        let r = libm::round(libm::ldexp(x, self.frac as i32));
        if r.is_nan() {
            0
        } else if r <= self.min_raw() as f64 {
            self.min_raw()
        } else if r >= self.max_raw() as f64 {
            self.max_raw()
        } else {
            r as i64
        }
    }
}

// ------------------------------------------------------------------------------------------
// Saturating, rounding helpers
// ------------------------------------------------------------------------------------------

/// Saturate to `i8`.
#[inline]
pub const fn saturate_i8(x: i64) -> i8 {
    if x < i8::MIN as i64 {
        i8::MIN
    } else if x > i8::MAX as i64 {
        i8::MAX
    } else {
        x as i8
    }
}

/// Saturate to `i16`.
#[inline]
pub const fn saturate_i16(x: i64) -> i16 {
    if x < i16::MIN as i64 {
        i16::MIN
    } else if x > i16::MAX as i64 {
        i16::MAX
    } else {
        x as i16
    }
}

/// Saturate to `i32`.
#[inline]
pub const fn saturate_i32(x: i64) -> i32 {
    if x < i32::MIN as i64 {
        i32::MIN
    } else if x > i32::MAX as i64 {
        i32::MAX
    } else {
        x as i32
    }
}

/// `x · 2^-s` rounded to nearest, ties away from zero; any `s` (`s ≥ 65` gives 0).
#[inline(always)]
pub const fn round_shr_i64(x: i64, s: u32) -> i64 {
    if s == 0 {
        return x;
    }
    if s > 64 {
        return 0;
    }
    if s == 64 {
        // |x| · 2^-64 ≤ 1/2, equal only for i64::MIN: a tie, rounded away from zero.
        return if x == i64::MIN { -1 } else { 0 };
    }
    let q = x >> s; // floor
    let r = (x as u64) & ((1u64 << s) - 1); // x - q·2^s, in [0, 2^s)
    let half = 1u64 << (s - 1);
    if r > half || (r == half && x >= 0) {
        q + 1
    } else {
        q
    }
}

/// `x · 2^-s` rounded to nearest, ties away from zero; any `s`.
#[inline]
pub const fn round_shr_i32(x: i32, s: u32) -> i32 {
    saturate_i32(round_shr_i64(x as i64, s))
}

/// `x · 2^-s` for unsigned `x`, rounded to nearest, ties up (away from zero); any `s`.
#[inline]
pub const fn round_shr_u64(x: u64, s: u32) -> u64 {
    if s == 0 {
        x
    } else if s > 64 {
        0
    } else if s == 64 {
        x >> 63
    } else {
        (x >> s) + ((x >> (s - 1)) & 1)
    }
}

/// `x · 2^s`, saturated to `i32`; any `s`.
#[inline]
pub const fn sat_shl_i32(x: i32, s: u32) -> i32 {
    if x == 0 {
        0
    } else if s >= 31 {
        if x < 0 {
            i32::MIN
        } else {
            i32::MAX
        }
    } else if x > (i32::MAX >> s) {
        i32::MAX
    } else if x < (i32::MIN >> s) {
        i32::MIN
    } else {
        x << s
    }
}

/// `x · 2^s`, saturated to `i64`; any `s`.
#[inline]
pub const fn sat_shl_i64(x: i64, s: u32) -> i64 {
    if x == 0 {
        0
    } else if s >= 63 {
        if x < 0 {
            i64::MIN
        } else {
            i64::MAX
        }
    } else if x > (i64::MAX >> s) {
        i64::MAX
    } else if x < (i64::MIN >> s) {
        i64::MIN
    } else {
        x << s
    }
}

/// Saturating `a + b` (any common Q format).
#[inline]
pub const fn sat_add_i16(a: i16, b: i16) -> i16 {
    a.saturating_add(b)
}

/// Saturating `a - b` (any common Q format).
#[inline]
pub const fn sat_sub_i16(a: i16, b: i16) -> i16 {
    a.saturating_sub(b)
}

/// Saturating `a + b` (any common Q format).
#[inline]
pub const fn sat_add_i32(a: i32, b: i32) -> i32 {
    a.saturating_add(b)
}

/// Product of two `i16` values with `frac` fraction bits each, in the same format:
/// `round(a·b · 2^-frac)`, ties away from zero, saturated (`frac` clamped to `0..=30`).
#[inline]
pub const fn mul_q(a: i16, b: i16, frac: u32) -> i16 {
    let frac = if frac > 30 { 30 } else { frac };
    saturate_i16(round_shr_i64(a as i64 * b as i64, frac))
}

/// Q0.31 product `round(a·b · 2^-31)`, ties away from zero, saturated
/// (`i32::MIN · i32::MIN` gives `i32::MAX`).
#[inline]
pub const fn mul_q31(a: i32, b: i32) -> i32 {
    saturate_i32(round_shr_i64(a as i64 * b as i64, 31))
}

/// Unsigned `n / d` rounded to nearest (ties up); `d == 0` gives `u64::MAX`.
#[inline]
fn round_div_u64(n: u64, d: u64) -> u64 {
    match NonZeroU64::new(d) {
        Some(nz) => n.saturating_add(d >> 1) / nz,
        None => u64::MAX,
    }
}

// ------------------------------------------------------------------------------------------
// Requantization: Q31 fixed-point multiplier with rounding shift
// ------------------------------------------------------------------------------------------

/// `acc · multiplier · 2^-(31 + shift)`, rounded once to nearest (ties away from zero),
/// saturated to `i32`. The product is formed exactly in `i64` (`|acc·multiplier| ≤ 2^62`),
/// so the result is the correctly rounded value for every input; `multiplier` is meant to be
/// a Q0.31 value in `[2^30, 2^31)` from [`quantize_multiplier`], but any `i32` (negative
/// included) and any `shift` are accepted.
#[inline]
pub const fn requantize_i32(acc: i32, multiplier: i32, shift: u8) -> i32 {
    saturate_i32(round_shr_i64(
        acc as i64 * multiplier as i64,
        31 + shift as u32,
    ))
}

/// [`requantize_i32`] saturated to `i16` (a real scale applied to an accumulator, giving an
/// `i16` activation). Exact: equals the correctly rounded, saturated real result.
#[inline]
pub const fn requantize_i16(acc: i32, multiplier: i32, shift: u8) -> i16 {
    saturate_i16(round_shr_i64(
        acc as i64 * multiplier as i64,
        31 + shift as u32,
    ))
}

/// [`requantize_i32`] saturated to `i8`. Exact: equals the correctly rounded, saturated
/// real result.
#[inline]
pub const fn requantize_i8(acc: i32, multiplier: i32, shift: u8) -> i8 {
    saturate_i8(round_shr_i64(
        acc as i64 * multiplier as i64,
        31 + shift as u32,
    ))
}

/// **Conversion time only** (uses `f64`; runs on the host when a model is converted,
/// never in a step): the `(multiplier, shift)` pair for a real scale in `(0, 1)`, with
/// `scale ≈ multiplier · 2^-(31 + shift)`, `multiplier` in `[2^30, 2^31)`, relative error
/// at most `2^-31`. Scales that round up to 1 give `(i32::MAX, 0)`. Scales so small that
/// `shift` would pass 255 get `shift = 255` (every [`requantize_i32`] result is 0 from shift
/// 33 on, so this changes nothing). `None` for a scale that is not finite, `≤ 0` or `≥ 1`.
pub fn quantize_multiplier(scale: f64) -> Option<(i32, u8)> {
    if !scale.is_finite() || scale <= 0.0 || scale >= 1.0 {
        return None;
    }
    let (mant, exp) = libm::frexp(scale); // scale = mant · 2^exp, mant in [0.5, 1), exp ≤ 0
    let m = libm::round(mant * 2_147_483_648.0) as i64; // in [2^30, 2^31]
    let (m, exp) = if m >= 1 << 31 {
        (1i64 << 30, exp + 1)
    } else {
        (m, exp)
    };
    if exp > 0 {
        return Some((i32::MAX, 0));
    }
    let shift = (-(exp as i64)).min(255) as u8;
    Some((m as i32, shift))
}

// ------------------------------------------------------------------------------------------
// exp: 2^x by table + polynomial
// ------------------------------------------------------------------------------------------

/// `ln 2` in Q0.32.
const LN2_Q32: u64 = 2_977_044_472;
/// `log2 e` in Q1.30.
const LOG2E_Q30: u64 = 1_549_082_005;
/// `log2 e` in Q1.31.
const LOG2E_Q31: i64 = 3_098_164_009;
/// `2^32 / 6` and `2^32 / 24`, rounded.
const INV6_Q32: u64 = 715_827_883;
const INV24_Q32: u64 = 178_956_971;

/// `2^(k/64)` in Q1.31 for `k` in `0..64` (values in `[2^31, 2^32)`), computed at compile
/// time: `2^(1/64)` by six integer square roots of 2 in Q62, then repeated multiplication.
static EXP2_TABLE: [u32; 64] = exp2_table();

const fn exp2_table() -> [u32; 64] {
    let mut c: u128 = 2 << 62; // 2 in Q62
    let mut i = 0;
    while i < 6 {
        c = (c << 62).isqrt(); // sqrt in Q62
        i += 1;
    }
    let mut t = [0u32; 64];
    let mut v: u128 = 1 << 62;
    let mut k = 0;
    while k < 64 {
        t[k] = ((v + (1 << 30)) >> 31) as u32;
        v = (v * c + (1 << 61)) >> 62;
        k += 1;
    }
    t
}

/// `2^t` for `t` in Q32 (`i64`): returns `(m, n)` with `2^t ≈ m · 2^-31 · 2^n`, `m` in
/// `[2^31, 2^32]` (Q1.31), `n = floor(t)`. Relative error about `2^-31`.
#[inline]
fn exp2_q32(t: i64) -> (u64, i64) {
    let n = t >> 32;
    let f = (t as u64) & 0xFFFF_FFFF; // fraction, Q0.32
    let hi = (f >> 26) as usize; // top 6 bits: table index
    let r = f & 0x03FF_FFFF; // rest, < 1/64 in Q32
                             // e^y - 1 for y = r·ln2 < ln2/64, to fourth order (next term < 2^-40), in Q32.
    let y = (r * LN2_Q32 + (1 << 31)) >> 32;
    let y2 = (y * y + (1 << 31)) >> 32;
    let y3 = (y2 * y + (1 << 31)) >> 32;
    let y4 = (y2 * y2 + (1 << 31)) >> 32;
    let excess = y
        + ((y2 + 1) >> 1)
        + ((y3 * INV6_Q32 + (1 << 31)) >> 32)
        + ((y4 * INV24_Q32 + (1 << 31)) >> 32);
    let base = match EXP2_TABLE.get(hi) {
        Some(&b) => b as u64,
        None => 1 << 31,
    };
    (base + ((base * excess + (1 << 31)) >> 32), n)
}

/// `2^t` for `t ≤ 0` in Q32 (positive `t` is treated as 0), as an unsigned value with
/// `out_frac` (`≤ 31`) fraction bits, rounded to nearest.
#[inline]
fn exp2_neg_to(t: i64, out_frac: u32) -> u64 {
    let t = if t > 0 { 0 } else { t };
    let (m, n) = exp2_q32(t);
    // value · 2^out = m · 2^(n - 31 + out); n ≤ 0, out ≤ 31, so this is a right shift.
    let s = 31 - out_frac.min(31) as i64 - n; // ≥ 0, ≤ 2^31 + 31
    round_shr_u64(m, s.min(65) as u32)
}

/// `-|x| · k · log2 e` in Q32, for `|x| = ax ≤ 2^15` with `frac ≤ 15` fraction bits and
/// `k` in `{1, 2}`.
#[inline]
fn neg_log2e_arg(ax: u64, frac: u32, k: u64) -> i64 {
    let p = ax * k * LOG2E_Q30; // ≤ 2^16 · 2^30.5
                                // p is in Q(frac + 30); Q32 needs a shift by 2 - frac.
    let t = if frac <= 2 {
        p << (2 - frac)
    } else {
        round_shr_u64(p, frac - 2)
    };
    -(t as i64)
}

/// `e^-|x|` in Q0.31 (`[0, 2^31]`) for `x` with `frac ≤ 15` fraction bits.
#[inline]
fn exp_neg_abs_q31(x: i16, frac: u32, k: u64) -> u64 {
    exp2_neg_to(neg_log2e_arg(x.unsigned_abs() as u64, frac, k), 31)
}

/// `exp(x)` for `x ≤ 0`: input `Q(15-f).f` with `f = frac` (clamped to `0..=15`), output
/// Q0.15. Positive `x` is treated as 0; `exp(0) = 1` saturates to 32767.
///
/// Measured max error over all `i16` inputs and every `frac` in `0..=15`: **0.50 LSB**
/// (`1.5e-5`), asserted `≤ 0.51 LSB` (`fixed::tests::exp_neg_exhaustive`).
pub fn exp_neg(x: i16, frac: u32) -> i16 {
    let frac = frac.min(15);
    let x = if x > 0 { 0 } else { x };
    let t = neg_log2e_arg(x.unsigned_abs() as u64, frac, 1);
    saturate_i16(exp2_neg_to(t, 15) as i64)
}

/// `exp(x)` for `x ≤ 0` at high precision, for decays `exp(Δ·A)`: input `i32` with `frac`
/// fraction bits (clamped to `0..=31`; Q7.24 is [`DECAY_ARG`]), output Q0.31 ([`DECAY`]).
/// Positive `x` is treated as 0; `exp(0) = 1` saturates to `i32::MAX`.
///
/// Measured max error (Q7.24 input: every input in `[-2^22, 0]`, then every 61st down to
/// `i32::MIN`; other `frac`s sampled likewise): **1.93 LSB** of Q0.31 (`9.0e-10`), asserted `≤ 2.5 LSB`
/// (`fixed::tests::exp_neg_q31_dense`).
pub fn exp_neg_q31(x: i32, frac: u32) -> i32 {
    let frac = frac.min(31);
    if x >= 0 {
        return i32::MAX;
    }
    // Below -100 the result is below 2^-144: zero in Q0.31.
    let x = if frac <= 24 && (x as i64) < -(100i64 << frac) {
        -(100i64 << frac)
    } else {
        x as i64
    };
    let p = x * LOG2E_Q31; // |p| < 2^63 (|x| ≤ 100·2^24 or ≤ 2^31 with frac ≥ 25)
    let t = if frac == 0 {
        p.saturating_mul(2)
    } else {
        round_shr_i64(p, frac - 1)
    };
    saturate_i32(exp2_neg_to(t, 31).min(i32::MAX as u64) as i64)
}

// ------------------------------------------------------------------------------------------
// sigmoid, tanh, SiLU
// ------------------------------------------------------------------------------------------

/// `sigmoid(x)` with `out_frac ≤ 31` fraction bits: `1/(1+e)` for `x ≥ 0`, `e/(1+e)` for
/// `x < 0`, with `e = exp(-|x|)` in Q0.31 and one rounded division.
#[inline]
fn sigmoid_to(x: i16, frac: u32, out_frac: u32) -> u64 {
    let frac = frac.min(15);
    let out_frac = out_frac.min(31);
    let e = exp_neg_abs_q31(x, frac, 1); // ≤ 2^31
    let d = (1u64 << 31) + e;
    let num = if x >= 0 {
        1u64 << (31 + out_frac)
    } else {
        e << out_frac
    };
    round_div_u64(num, d)
}

/// `sigmoid(x) = 1/(1+exp(-x))`: input `Q(15-f).f` (`frac` clamped to `0..=15`), output
/// Q0.15 (1.0 saturates to 32767).
///
/// Measured max error over all `i16` inputs and every `frac`: **0.50 LSB** (`1.5e-5`),
/// asserted `≤ 0.51 LSB` (`fixed::tests::sigmoid_exhaustive`).
pub fn sigmoid(x: i16, frac: u32) -> i16 {
    saturate_i16(sigmoid_to(x, frac, 15) as i64)
}

/// `tanh(x)`: input `Q(15-f).f` (`frac` clamped to `0..=15`), output Q0.15 (1.0
/// saturates to 32767; -1.0 is -32768). Computed as `(1-e)/(1+e)` with `e = exp(-2|x|)`, sign restored.
///
/// Measured max error over all `i16` inputs and every `frac`: **0.50 LSB** (`1.5e-5`),
/// asserted `≤ 0.51 LSB` (`fixed::tests::tanh_exhaustive`).
pub fn tanh(x: i16, frac: u32) -> i16 {
    let frac = frac.min(15);
    let e = exp_neg_abs_q31(x, frac, 2); // ≤ 2^31
    let r = round_div_u64(((1u64 << 31) - e.min(1 << 31)) << 15, (1u64 << 31) + e) as i64;
    saturate_i16(if x < 0 { -r } else { r })
}

/// `SiLU(x) = x · sigmoid(x)`: input and output `Q(15-f).f` (`frac` clamped to `0..=15`),
/// saturated. The sigmoid is formed in Q0.31, the product rounded once.
///
/// Measured max error over all `i16` inputs and every `frac`: **0.50 LSB** (`2^-f`
/// times that), asserted `≤ 0.51 LSB` (`fixed::tests::silu_exhaustive`).
pub fn silu(x: i16, frac: u32) -> i16 {
    let s = sigmoid_to(x, frac, 31) as i64; // ≤ 2^31
    saturate_i16(round_shr_i64(x as i64 * s, 31))
}

// ------------------------------------------------------------------------------------------
// log2 / ln: bit-by-bit squaring
// ------------------------------------------------------------------------------------------

/// Fraction bits of `log2(m)` for a Q1.30 mantissa `m` in `[2^30, 2^31)` (`[1, 2)`),
/// `bits ≤ 32`, truncated: square, and each time the square reaches 2 emit a 1 and halve.
#[inline]
fn log2_mantissa(m: u64, bits: u32) -> u64 {
    let mut m = m.clamp(1 << 30, (1 << 31) - 1);
    let mut r = 0u64;
    let mut i = 0;
    while i < bits.min(32) {
        m = (m * m + (1 << 29)) >> 30; // < 2^32
        r <<= 1;
        if m >= 1 << 31 {
            m >>= 1;
            r |= 1;
        }
        i += 1;
    }
    r
}

/// `log2(v)` for `v ≥ 1` in Q`bits` (`bits ≤ 30`), rounded to nearest; `v = 0` is
/// treated as 1.
#[inline]
fn log2_fixed(v: u64, bits: u32) -> u64 {
    let bits = bits.min(30);
    let v = v.max(1);
    let mut e = 63 - v.leading_zeros() as u64; // floor(log2 v)
    let m = if e > 30 {
        round_shr_u64(v, (e - 30) as u32)
    } else {
        v << (30 - e)
    };
    let m = if m >= 1 << 31 {
        e += 1;
        1 << 30
    } else {
        m
    };
    // Two guard bits, then round.
    let f = round_shr_u64(log2_mantissa(m, bits + 2), 2);
    (e << bits) + f
}

/// `log2(v)` of a positive integer, in Q7.24 ([`LOG`]). `v = 0` gives `i32::MIN` (`-∞`).
///
/// Measured max error (every `v < 2^20`, then dense samples of every bit length):
/// **0.52 LSB** (`3.1e-8`), asserted `≤ 0.55 LSB` (`fixed::tests::log2_dense`).
pub fn log2_u64(v: u64) -> i32 {
    if v == 0 {
        return i32::MIN;
    }
    log2_fixed(v, 24) as i32 // ≤ 64 · 2^24
}

/// `log2(v · 2^-frac)` of a positive fixed-point value, in Q7.24, saturated; `v = 0` gives
/// `i32::MIN`. Error as [`log2_u64`].
pub fn log2_q(v: u64, frac: u32) -> i32 {
    if v == 0 {
        return i32::MIN;
    }
    let l = log2_fixed(v, 24) as i64 - ((frac.min(255) as i64) << 24);
    saturate_i32(l)
}

/// `ln(v)` of a positive integer, in Q7.24 ([`LOG`]). `v = 0` gives `i32::MIN` (`-∞`).
///
/// Measured max error (every `v < 2^20`, then dense samples of every bit length):
/// **0.56 LSB** (`3.3e-8`), asserted `≤ 0.6 LSB` (`fixed::tests::ln_dense`).
pub fn ln_u64(v: u64) -> i32 {
    if v == 0 {
        return i32::MIN;
    }
    let l = log2_fixed(v, 30); // Q30, < 2^36
    let (e, f) = (l >> 30, l & ((1 << 30) - 1));
    let q32 = e * LN2_Q32 + round_shr_u64(f * LN2_Q32, 30); // ln v in Q32, < 2^38
    round_shr_u64(q32, 8) as i32
}

// ------------------------------------------------------------------------------------------
// softplus
// ------------------------------------------------------------------------------------------

/// `softplus(x) = ln(1 + exp(x))`: input and output `Q(15-f).f` (`frac` clamped to
/// `0..=15`), saturated. Computed as `max(x, 0) + ln 2 · log2(1 + exp(-|x|))`.
///
/// Measured max error over all `i16` inputs and every `frac`: **0.50 LSB** (`2^-f` times
/// that), asserted `≤ 0.51 LSB` (`fixed::tests::softplus_exhaustive`).
pub fn softplus(x: i16, frac: u32) -> i16 {
    let frac = frac.min(15);
    let e = exp_neg_abs_q31(x, frac, 1); // ≤ 2^31
    let bits = frac + 8;
    // log2(1 + e) = log2((2^31 + e) as Q31) - 31, in Q(bits): in [0, 2^bits].
    let l2 = log2_fixed((1u64 << 31) + e, bits).saturating_sub(31u64 << bits);
    // ln(1 + e) in Q(frac): l2 · ln2 · 2^-(bits + 32 - frac).
    let ln = round_shr_u64(l2 * LN2_Q32, bits + 32 - frac) as i64;
    let pos = if x > 0 { x as i64 } else { 0 };
    saturate_i16(pos + ln)
}

// ------------------------------------------------------------------------------------------
// GELU (erf form): table of the normal CDF, linear interpolation
// ------------------------------------------------------------------------------------------

/// Table steps per unit of `x`.
const PHI_STEPS_LOG2: u32 = 6;
/// Entries for `x = k/64`, `k` in `0..=6·64`; beyond 6 the CDF is 1 (error < 1e-9).
const PHI_LEN: usize = (6 << PHI_STEPS_LOG2) + 1;
/// `1/sqrt(2π)` in Q62.
const INV_SQRT_2PI_Q62: i128 = 1_839_796_536_686_825_613;

/// `Φ(k/64)` (the standard normal CDF) in Q0.31, computed at compile time.
static PHI_TABLE: [u32; PHI_LEN] = phi_table();

const fn phi_table() -> [u32; PHI_LEN] {
    let mut t = [0u32; PHI_LEN];
    let mut k = 0;
    while k < PHI_LEN {
        t[k] = phi_entry(k as i128);
        k += 1;
    }
    t
}

/// `Φ(x)` for `x = k/64 ≤ 6`: `1/2 + S/sqrt(2π)` with the Taylor series
/// `S = Σ (-1)^n x^(2n+1) / (2^n n! (2n+1))`, summed in Q64 with `i128` (largest term below
/// 2^26, so at least 38 correct fraction bits survive the cancellation).
const fn phi_entry(k: i128) -> u32 {
    let mut term: i128 = k << (64 - PHI_STEPS_LOG2); // x^(2n+1) / (2^n n!) in Q64
    let mut sum: i128 = 0;
    let mut n: i128 = 0;
    while term != 0 && n < 1000 {
        let c = term / (2 * n + 1);
        if n % 2 == 0 {
            sum += c;
        } else {
            sum -= c;
        }
        term = term * k * k / ((2 << (2 * PHI_STEPS_LOG2)) * (n + 1));
        n += 1;
    }
    let s32 = (sum + (1 << 31)) >> 32; // Q32
    let v = (1i128 << 30) + ((s32 * INV_SQRT_2PI_Q62 + (1 << 62)) >> 63); // Q31
    if v < 0 {
        0
    } else if v > 1 << 31 {
        1 << 31
    } else {
        v as u32
    }
}

/// `GELU(x) = x · Φ(x)` (the exact, erf form `x/2 · (1 + erf(x/√2))`): input and output
/// `Q(15-f).f` (`frac` clamped to `0..=15`), saturated. `Φ` comes from a 385-entry
/// compile-time table at steps of 1/64 over `[0, 6]` with linear interpolation (`Φ(-x) =
/// 1 - Φ(x)`), the product rounded once.
///
/// Measured max error over all `i16` inputs: **0.54 LSB** at `frac = 12` (Q3.12,
/// `1.3e-4`), **0.73 LSB** at `frac = 15` (`2.2e-5`), asserted `≤ 0.75 LSB` over every
/// `frac` (`fixed::tests::gelu_exhaustive`).
pub fn gelu(x: i16, frac: u32) -> i16 {
    let frac = frac.min(15);
    let ax = x.unsigned_abs() as u64;
    let pos = (ax << (24 + PHI_STEPS_LOG2)) >> frac; // table position in Q24
    let idx = (pos >> 24) as usize;
    let w = pos & 0xFF_FFFF;
    let phi = match (PHI_TABLE.get(idx), PHI_TABLE.get(idx + 1)) {
        (Some(&a), Some(&b)) => {
            let (a, b) = (a as u64, b as u64);
            a + ((b.saturating_sub(a) * w + (1 << 23)) >> 24)
        }
        _ => 1 << 31,
    };
    let phi = phi.min(1 << 31);
    let phi = if x < 0 { (1 << 31) - phi } else { phi } as i64;
    saturate_i16(round_shr_i64(x as i64 * phi, 31))
}

// ------------------------------------------------------------------------------------------
// rsqrt: normalisation + seed table + Newton–Raphson + exact integer correction
// ------------------------------------------------------------------------------------------

/// Seeds `1/sqrt(M)` in Q1.31 at the midpoints of 16 segments of `M` in `[1, 2)`
/// (entries 0..16) and of `[2, 4)` (16..32), computed at compile time by integer square
/// roots.
static RSQRT_SEED: [u32; 32] = rsqrt_seed();

const fn rsqrt_seed() -> [u32; 32] {
    let mut t = [0u32; 32];
    let mut i = 0;
    while i < 16 {
        let d = 33 + 2 * i as u128; // segment midpoint: d/32 in [1, 2), d/16 in [2, 4)
        t[i] = ((1u128 << 67) / d).isqrt() as u32; // sqrt(2^62 · 32/d)
        t[i + 16] = ((1u128 << 66) / d).isqrt() as u32; // sqrt(2^62 · 16/d)
        i += 1;
    }
    t
}

/// Reciprocal square root of `v · 2^-frac` (`frac` clamped to `0..=255`), as a
/// normalised mantissa and exponent: returns `(m, e)` with
/// `1/sqrt(v · 2^-frac) ≈ m · 2^-31 · 2^e`, `m` in `[2^30, 2^31)` — a multiplier for
/// [`requantize_i32`] once `e` is folded into the shift. For RMSNorm/LayerNorm pass the
/// mean of squares (plus eps) of `Q(15-f).f` activations as `v` with `frac = 2f`.
/// `v = 0` is treated as 1 (the caller adds eps).
///
/// `m` is `floor(2^31 / sqrt(M))` exactly for the normalised `M = v · 2^-k` in `[1, 4)`
/// (exact except for one dropped bit when `v ≥ 2^63` and `frac` is odd), so the error is
/// below 1 LSB of `m` (relative `< 2^-30`) and the function is exactly monotone.
/// Measured max error (every `v < 2^20`, dense samples of every bit length, several
/// `frac`): **1.00 LSB** of `m` (`9.3e-10` relative), asserted `≤ 1 LSB`
/// (`fixed::tests::rsqrt_dense`).
pub fn rsqrt(v: u64, frac: u32) -> (i32, i32) {
    let v = v.max(1);
    let frac = frac.min(255) as i64;
    let l = 63 - v.leading_zeros() as i64; // floor(log2 v)
    let e = l - frac; // v · 2^-frac = (v / 2^l) · 2^e
    let odd = e & 1 != 0;
    let top = if odd { 63 } else { 62 };
    // M in Q62: [1, 2) for even e, [2, 4) for odd e (then e - 1 is even).
    let m62 = if l <= top { v << (top - l) } else { v >> 1 };
    let e2 = if odd { e - 1 } else { e };
    let idx = ((m62 >> (top - 4)) & 15) as usize + if odd { 16 } else { 0 };
    let mut y = match RSQRT_SEED.get(idx) {
        Some(&s) => s as u64,
        None => 1 << 30,
    };
    let m31 = m62 >> 31; // Q31, in [2^31, 2^33)
    let mut i = 0;
    while i < 3 {
        // y ← y · (3 - M·y²) / 2, all in Q31.
        let y2 = y.saturating_mul(y) >> 31;
        let my2 = m31.saturating_mul(y2) >> 31;
        let t = (3u64 << 31).saturating_sub(my2);
        y = y.saturating_mul(t) >> 32;
        i += 1;
    }
    // Exact correction to floor(2^31 / sqrt(M)): the largest y with y²·M ≤ 2^124.
    let lim: u128 = 1 << 124;
    let m = m62 as u128;
    let mut j = 0;
    while j < 8 && y > 0 && (y as u128 * y as u128) * m > lim {
        y -= 1;
        j += 1;
    }
    j = 0;
    while j < 8 && ((y + 1) as u128 * (y + 1) as u128) * m <= lim {
        y += 1;
        j += 1;
    }
    let mut ex = -(e2 / 2);
    if y >= 1 << 31 {
        y >>= 1;
        ex += 1;
    }
    let y = y.max(1 << 30);
    (y as i32, ex as i32)
}

/// Reciprocal square root of `v · 2^-frac_in` as an unsigned value with `frac_out`
/// fraction bits (clamped to `0..=63`), rounded to nearest, saturated to `u32`.
/// Error: at most 0.5 output LSB plus [`rsqrt`]'s `2^-30` relative.
pub fn rsqrt_q(v: u64, frac_in: u32, frac_out: u32) -> u32 {
    let (m, e) = rsqrt(v, frac_in);
    let s = e as i64 - 31 + frac_out.min(63) as i64;
    let r = if s >= 0 {
        if s >= 32 {
            u64::MAX
        } else {
            (m as u64) << s
        }
    } else {
        round_shr_u64(m as u64, (-s).min(65) as u32)
    };
    r.min(u32::MAX as u64) as u32
}

// ------------------------------------------------------------------------------------------
// The tables, for bit-exact ports
// ------------------------------------------------------------------------------------------

/// The compile-time lookup tables of this module, for ports of these functions that must
/// reproduce them bit for bit (the verification step kernels of the CUDA crate upload them
/// rather than re-derive them): `exp2` is `2^(k/64)` in Q1.31 (`k` in `0..64`, used by
/// [`exp_neg`], [`exp_neg_q31`], [`sigmoid`], [`silu`], [`softplus`]), `phi` is `Φ(k/64)`
/// in Q0.31 (`k` in `0..=384`, [`gelu`]), `rsqrt_seed` the 32 Q1.31 seeds of [`rsqrt`].
pub fn tables() -> (
    &'static [u32; 64],
    &'static [u32; PHI_LEN],
    &'static [u32; 32],
) {
    (&EXP2_TABLE, &PHI_TABLE, &RSQRT_SEED)
}

// ------------------------------------------------------------------------------------------
// Probe for the soft-float symbol check
// ------------------------------------------------------------------------------------------

/// Calls every step-time function of this module once and folds the results. A firmware
/// image whose only use of the core is this function (kept by `#[inline(never)]`) lets a
/// symbol check prove that the integer path references no soft-float routine
/// (`__aeabi_f*`, `__aeabi_d*`); see QUANTIZATION-FIXED.md.
#[inline(never)]
pub fn integer_only_probe(x: i16, acc: i32, v: u64, frac: u32) -> i64 {
    let (m, e) = rsqrt(v, frac);
    let parts: [i64; 20] = [
        sat_add_i16(x, x) as i64,
        sat_sub_i16(x, 1) as i64,
        mul_q(x, x, frac) as i64,
        mul_q31(acc, acc) as i64,
        round_shr_i32(acc, frac) as i64,
        sat_shl_i32(acc, frac) as i64,
        requantize_i8(acc, m, frac as u8) as i64,
        requantize_i16(acc, m, frac as u8) as i64,
        exp_neg(x, frac) as i64,
        exp_neg_q31(acc, frac) as i64,
        sigmoid(x, frac) as i64,
        tanh(x, frac) as i64,
        silu(x, frac) as i64,
        softplus(x, frac) as i64,
        gelu(x, frac) as i64,
        log2_u64(v) as i64,
        ln_u64(v) as i64,
        log2_q(v, frac) as i64,
        m as i64 ^ e as i64,
        rsqrt_q(v, frac, 16) as i64,
    ];
    let mut h: i64 = 0;
    for p in parts {
        h = h.wrapping_mul(31).wrapping_add(p);
    }
    h
}

// ------------------------------------------------------------------------------------------
// Tests: exhaustive / dense error measurement against f64 references, proptests
// ------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::println;

    fn pow2(k: i32) -> f64 {
        libm::ldexp(1.0, k)
    }

    /// Max |err| in output LSBs of `f` over all `i16` inputs and every `frac` in
    /// `0..=15`, against `reference` (real in, real out) rounded into the output format
    /// (`out_frac` of `None`: same as the input's) and saturated to `i16`. Also checks
    /// monotonicity when `monotone`. Returns the worst error for each `frac`.
    fn exhaustive(
        name: &str,
        f: fn(i16, u32) -> i16,
        reference: fn(f64) -> f64,
        out_frac: Option<u32>,
        monotone: bool,
        bound: f64,
    ) -> [f64; 16] {
        let mut worst = [0.0f64; 16];
        for frac in 0..=15u32 {
            let of = out_frac.unwrap_or(frac);
            let mut prev = i16::MIN;
            for raw in i16::MIN..=i16::MAX {
                let got = f(raw, frac);
                let want = (reference(raw as f64 * pow2(-(frac as i32))) * pow2(of as i32))
                    .clamp(i16::MIN as f64, i16::MAX as f64);
                let err = (got as f64 - want).abs();
                if err > worst[frac as usize] {
                    worst[frac as usize] = err;
                }
                if monotone {
                    assert!(got >= prev, "{name} not monotone at {raw} (frac {frac})");
                }
                prev = got;
            }
            println!(
                "{name:>9} frac={frac:2} (Q{}.{frac} -> Q{}.{of}): max |err| = {:.4} LSB = {:.3e}",
                15 - frac,
                15 - of,
                worst[frac as usize],
                worst[frac as usize] * pow2(-(of as i32))
            );
        }
        let max = worst.iter().cloned().fold(0.0, f64::max);
        println!("{name:>9} over all frac: max |err| = {max:.4} LSB (bound {bound} LSB)");
        assert!(max <= bound, "{name}: {max} LSB > bound {bound}");
        worst
    }

    #[test]
    fn exp_neg_exhaustive() {
        exhaustive(
            "exp_neg",
            exp_neg,
            |x| libm::exp(x.min(0.0)),
            Some(15),
            true,
            0.51,
        );
    }

    #[test]
    fn sigmoid_exhaustive() {
        exhaustive(
            "sigmoid",
            sigmoid,
            |x| 1.0 / (1.0 + libm::exp(-x)),
            Some(15),
            true,
            0.51,
        );
    }

    #[test]
    fn tanh_exhaustive() {
        exhaustive("tanh", tanh, libm::tanh, Some(15), true, 0.51);
    }

    #[test]
    fn silu_exhaustive() {
        exhaustive(
            "silu",
            silu,
            |x| x / (1.0 + libm::exp(-x)),
            None,
            false,
            0.51,
        );
    }

    #[test]
    fn softplus_exhaustive() {
        exhaustive(
            "softplus",
            softplus,
            |x| x.max(0.0) + libm::log1p(libm::exp(-x.abs())),
            None,
            true,
            0.51,
        );
    }

    #[test]
    fn gelu_exhaustive() {
        let w = exhaustive(
            "gelu",
            gelu,
            |x| 0.5 * x * libm::erfc(-x * core::f64::consts::FRAC_1_SQRT_2),
            None,
            false,
            0.75,
        );
        assert!(w[12] <= 0.54, "gelu Q3.12: {} LSB", w[12]);
    }

    /// Deterministic 64-bit generator for dense sampling.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0 ^ (self.0 >> 29)
        }
    }

    /// Samples of `u64`: every value below 2^20, then for every bit length 21..=64 the
    /// smallest and largest values and `per_len` pseudo-random ones.
    fn u64_samples(per_len: usize) -> impl Iterator<Item = u64> {
        let mut g = Lcg(12345);
        let mut extra = std::vec::Vec::new();
        for len in 21..=64u32 {
            let lo = 1u64 << (len - 1); // values in [lo, 2lo)
            extra.push(lo);
            extra.push(lo + (lo - 1));
            for _ in 0..per_len {
                extra.push(lo + g.next() % lo);
            }
        }
        (1u64..1 << 20).chain(extra)
    }

    #[test]
    fn exp_neg_q31_dense() {
        let bound = 2.5;
        let mut worst_all = 0.0f64;
        for frac in [0u32, 8, 16, 20, 24, 28, 31] {
            let mut worst = 0.0f64;
            let mut check = |x: i32| {
                let got = exp_neg_q31(x, frac) as f64;
                let want =
                    (libm::exp(x as f64 * pow2(-(frac as i32))) * pow2(31)).min(i32::MAX as f64);
                worst = worst.max((got - want).abs());
            };
            let mut prev = i32::MAX;
            let dense_lo = if frac == 24 { -(1 << 22) } else { -(1 << 16) };
            for x in (dense_lo..=0).rev() {
                check(x);
                let y = exp_neg_q31(x, frac);
                assert!(y <= prev, "exp_neg_q31 not monotone at {x} (frac {frac})");
                prev = y;
            }
            let step = if frac == 24 { 61 } else { 997 };
            let mut x = dense_lo as i64;
            while x >= i32::MIN as i64 {
                check(x as i32);
                x -= step;
            }
            check(i32::MIN);
            check(i32::MAX);
            println!(
                "exp_neg_q31 frac={frac:2} (Q{}.{frac} -> Q0.31): max |err| = {worst:.4} LSB = {:.3e}",
                31 - frac,
                worst * pow2(-31)
            );
            worst_all = worst_all.max(worst);
        }
        println!("exp_neg_q31 over all frac: max |err| = {worst_all:.4} LSB (bound {bound} LSB)");
        assert!(worst_all <= bound);
    }

    #[test]
    fn log2_dense() {
        let bound = 0.55;
        let mut worst = 0.0f64;
        let mut prev = i32::MIN;
        for v in u64_samples(20_000) {
            let got = log2_u64(v);
            if v < 1 << 20 {
                assert!(got >= prev, "log2 not monotone at {v}");
                prev = got;
            }
            let want = libm::log2(v as f64) * pow2(24);
            worst = worst.max((got as f64 - want).abs());
        }
        assert_eq!(log2_u64(0), i32::MIN);
        assert_eq!(log2_u64(1), 0);
        assert_eq!(log2_u64(u64::MAX), 64 << 24);
        assert_eq!(log2_q(1 << 12, 12), 0);
        println!(
            "log2_u64 (u64 -> Q7.24): max |err| = {worst:.4} LSB = {:.3e} (bound {bound} LSB)",
            worst * pow2(-24)
        );
        assert!(worst <= bound);
    }

    #[test]
    fn ln_dense() {
        let bound = 0.6;
        let mut worst = 0.0f64;
        let mut prev = i32::MIN;
        for v in u64_samples(20_000) {
            let got = ln_u64(v);
            if v < 1 << 20 {
                assert!(got >= prev, "ln not monotone at {v}");
                prev = got;
            }
            let want = libm::log(v as f64) * pow2(24);
            worst = worst.max((got as f64 - want).abs());
        }
        assert_eq!(ln_u64(0), i32::MIN);
        assert_eq!(ln_u64(1), 0);
        println!(
            "ln_u64 (u64 -> Q7.24): max |err| = {worst:.4} LSB = {:.3e} (bound {bound} LSB)",
            worst * pow2(-24)
        );
        assert!(worst <= bound);
    }

    #[test]
    fn rsqrt_dense() {
        let bound = 1.0;
        let mut worst_all = 0.0f64;
        for frac in [0u32, 1, 24, 31, 62, 63, 255] {
            let mut worst = 0.0f64;
            for v in u64_samples(5_000) {
                let (m, e) = rsqrt(v, frac);
                assert!((1 << 30..=i32::MAX).contains(&m), "rsqrt({v}) mantissa {m}");
                let want = 1.0 / libm::sqrt(v as f64) * pow2(frac as i32 / 2);
                let want = if frac % 2 == 1 {
                    want * core::f64::consts::SQRT_2
                } else {
                    want
                };
                let want_m = want * pow2(31 - e);
                worst = worst.max((m as f64 - want_m).abs());
            }
            println!("rsqrt frac={frac:3} (u64 -> Q0.31 mantissa): max |err| = {worst:.4} LSB of m (rel {:.3e})", worst * pow2(-30));
            worst_all = worst_all.max(worst);
        }
        assert_eq!(rsqrt(0, 0), rsqrt(1, 0));
        assert_eq!(rsqrt(1, 0), (1 << 30, 1)); // 1.0 = 2^30 · 2^-31 · 2^1
        assert_eq!(rsqrt(4, 0), (1 << 30, 0)); // 0.5
        assert_eq!(rsqrt_q(1 << 24, 24, 16), 1 << 16); // rsqrt(1.0) = 1.0 in Q16
        assert_eq!(rsqrt_q(4 << 24, 24, 16), 1 << 15);
        assert_eq!(rsqrt_q(1, 200, 16), u32::MAX);
        println!("rsqrt over all frac: max |err| = {worst_all:.4} LSB of m (bound {bound} LSB)");
        assert!(worst_all <= bound);
    }

    #[test]
    fn tables_and_constants() {
        for (k, &t) in EXP2_TABLE.iter().enumerate() {
            let want = libm::exp2(k as f64 / 64.0) * pow2(31);
            assert!((t as f64 - want).abs() <= 0.5 + 1e-6, "exp2 table {k}");
        }
        for (k, &t) in PHI_TABLE.iter().enumerate() {
            let x = k as f64 / 64.0;
            let want = 0.5 * libm::erfc(-x * core::f64::consts::FRAC_1_SQRT_2) * pow2(31);
            assert!(
                (t as f64 - want).abs() <= 1.0,
                "phi table {k}: {t} vs {want}"
            );
        }
        assert!((LN2_Q32 as f64 - core::f64::consts::LN_2 * pow2(32)).abs() <= 0.5);
        assert!((LOG2E_Q30 as f64 - core::f64::consts::LOG2_E * pow2(30)).abs() <= 0.5);
        assert!((LOG2E_Q31 as f64 - core::f64::consts::LOG2_E * pow2(31)).abs() <= 0.5);
        let inv = 1.0 / libm::sqrt(2.0 * core::f64::consts::PI) * pow2(62);
        assert!((INV_SQRT_2PI_Q62 as f64 - inv).abs() <= inv * 1e-15);
    }

    #[test]
    fn edge_cases() {
        for frac in [0, 12, 15, 16, 100, u32::MAX] {
            for x in [i16::MIN, -1, 0, 1, i16::MAX] {
                let _ = (
                    exp_neg(x, frac),
                    sigmoid(x, frac),
                    tanh(x, frac),
                    silu(x, frac),
                    softplus(x, frac),
                    gelu(x, frac),
                    mul_q(x, x, frac),
                );
            }
            for x in [i32::MIN, -1, 0, 1, i32::MAX] {
                let _ = (
                    exp_neg_q31(x, frac),
                    round_shr_i32(x, frac),
                    sat_shl_i32(x, frac),
                );
            }
            for v in [0, 1, u64::MAX] {
                let _ = (rsqrt(v, frac), rsqrt_q(v, frac, frac), log2_q(v, frac));
            }
        }
        assert_eq!(exp_neg(0, 12), i16::MAX);
        assert_eq!(exp_neg(i16::MIN, 12), 11); // e^-8 = 10.99 LSB
        assert_eq!(exp_neg(i16::MIN, 15), 12055); // e^-1
        assert_eq!(sigmoid(0, 12), 1 << 14);
        assert_eq!(tanh(0, 12), 0);
        assert_eq!(tanh(i16::MIN, 12), i16::MIN); // -1.0
        assert_eq!(tanh(i16::MAX, 12), i16::MAX); // 1.0 saturated
        assert_eq!(exp_neg_q31(0, 24), i32::MAX);
        assert_eq!(exp_neg_q31(i32::MIN, 24), 0);
        assert_eq!(round_shr_i64(5, 1), 3);
        assert_eq!(round_shr_i64(-5, 1), -3);
        assert_eq!(round_shr_i64(-4, 1), -2);
        assert_eq!(round_shr_i64(i64::MIN, 64), -1);
        assert_eq!(round_shr_i64(i64::MAX, 64), 0);
        assert_eq!(mul_q31(i32::MIN, i32::MIN), i32::MAX);
        assert_eq!(requantize_i8(i32::MAX, i32::MAX, 0), i8::MAX);
        assert_eq!(ACT.int_bits(), 3);
        assert_eq!(UNIT.max_raw(), i16::MAX as i64);
        assert_eq!(ACT.from_real(1.5), 6144);
        assert_eq!(ACT.from_real(100.0), i16::MAX as i64);
        assert_eq!(ACT.from_real(f64::NAN), 0);
        assert_eq!(ACT.to_real(-4096), -1.0);
        assert_eq!(quantize_multiplier(0.5), Some((1 << 30, 0)));
        assert_eq!(quantize_multiplier(0.25), Some((1 << 30, 1)));
        assert_eq!(quantize_multiplier(1.0), None);
        assert_eq!(quantize_multiplier(0.0), None);
        assert_eq!(quantize_multiplier(f64::NAN), None);
        assert_eq!(quantize_multiplier(1.0 - 1e-12), Some((i32::MAX, 0)));
        assert_eq!(quantize_multiplier(1e-300).map(|p| p.1), Some(255));
        let _ = integer_only_probe(-123, -45678, 987654321, 12);
    }

    /// Exact reference: `round_half_away(x / 2^s)`.
    fn ref_round_shr(x: i128, s: u32) -> i128 {
        if s == 0 {
            return x;
        }
        if s >= 127 {
            return 0;
        }
        let d = 1i128 << s;
        let (q, r) = (x.div_euclid(d), x.rem_euclid(d));
        let twice = 2 * r;
        if twice > d || (twice == d && x >= 0) {
            q + 1
        } else {
            q
        }
    }

    proptest! {
        #[test]
        fn requantize_matches_exact(acc: i32, multiplier: i32, shift: u8) {
            let exact = ref_round_shr(acc as i128 * multiplier as i128, 31 + shift as u32);
            let c = |lo: i128, hi: i128| exact.clamp(lo, hi);
            prop_assert_eq!(requantize_i32(acc, multiplier, shift) as i128, c(i32::MIN as i128, i32::MAX as i128));
            prop_assert_eq!(requantize_i16(acc, multiplier, shift) as i128, c(i16::MIN as i128, i16::MAX as i128));
            prop_assert_eq!(requantize_i8(acc, multiplier, shift) as i128, c(i8::MIN as i128, i8::MAX as i128));
        }

        #[test]
        fn requantize_small_shift_matches_exact(acc: i32, multiplier in (1i32 << 30)..i32::MAX, shift in 0u8..40) {
            let exact = ref_round_shr(acc as i128 * multiplier as i128, 31 + shift as u32);
            prop_assert_eq!(requantize_i32(acc, multiplier, shift) as i128, exact.clamp(i32::MIN as i128, i32::MAX as i128));
            prop_assert_eq!(requantize_i16(acc, multiplier, shift) as i128, exact.clamp(i16::MIN as i128, i16::MAX as i128));
        }

        #[test]
        fn round_shr_matches_exact(x: i64, s in 0u32..80) {
            prop_assert_eq!(round_shr_i64(x, s) as i128, ref_round_shr(x as i128, s));
            let u = x as u64;
            prop_assert_eq!(round_shr_u64(u, s) as i128, ref_round_shr(u as i128, s));
        }

        #[test]
        fn mul_and_shift_match_exact(a: i16, b: i16, frac in 0u32..31, x: i32, s in 0u32..40) {
            let e = ref_round_shr(a as i128 * b as i128, frac).clamp(i16::MIN as i128, i16::MAX as i128);
            prop_assert_eq!(mul_q(a, b, frac) as i128, e);
            let e = ref_round_shr(x as i128 * x as i128, 31).clamp(i32::MIN as i128, i32::MAX as i128);
            prop_assert_eq!(mul_q31(x, x) as i128, e);
            let e = ((x as i128) << s.min(100)).clamp(i32::MIN as i128, i32::MAX as i128);
            prop_assert_eq!(sat_shl_i32(x, s) as i128, e);
            let e = ((x as i128) << s.min(100)).clamp(i64::MIN as i128, i64::MAX as i128);
            prop_assert_eq!(sat_shl_i64(x as i64, s) as i128, e);
        }

        #[test]
        fn quantize_multiplier_round_trip(scale in 1e-30f64..1.0) {
            let (m, shift) = quantize_multiplier(scale).unwrap();
            prop_assert!(m >= 1 << 30);
            let back = m as f64 * pow2(-31 - shift as i32);
            prop_assert!((back - scale).abs() <= scale * pow2(-31) * 1.0001);
        }

        #[test]
        fn monotone_i16(a: i16, b: i16, frac in 0u32..16) {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            prop_assert!(exp_neg(lo, frac) <= exp_neg(hi, frac));
            prop_assert!(sigmoid(lo, frac) <= sigmoid(hi, frac));
            prop_assert!(tanh(lo, frac) <= tanh(hi, frac));
            prop_assert!(softplus(lo, frac) <= softplus(hi, frac));
        }

        #[test]
        fn monotone_wide(a: u64, b: u64, x: i32, y: i32, frac in 0u32..64) {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            prop_assert!(log2_u64(lo) <= log2_u64(hi));
            prop_assert!(ln_u64(lo) <= ln_u64(hi));
            // rsqrt decreases: compare m · 2^e as (e, m) pairs.
            let (ml, el) = rsqrt(lo, frac);
            let (mh, eh) = rsqrt(hi, frac);
            prop_assert!((el, ml) >= (eh, mh), "rsqrt({}) < rsqrt({})", lo, hi);
            let (xl, xh) = if x <= y { (x, y) } else { (y, x) };
            let f = frac.min(31);
            prop_assert!(exp_neg_q31(xl, f) <= exp_neg_q31(xh, f));
        }
    }
}
