//! Mel energies to logs with integer code: exact `f32` decoding of `log_eps`, the
//! scaled addition of two mantissa–exponent pairs, `ln` in Q24.

use super::fft::bits;
use crate::fixed::{ln_u64, round_shr_i64, round_shr_u64};

/// `ln 2` in Q0.32.
pub(super) const LN2_Q32: i64 = 2_977_044_472;

/// `(a · 2^ea) + (b · 2^eb)` as a mantissa `≤ 2^63` and exponent (both operands normalised
/// to 62 bits first, the smaller-exponent one rounded into the other's scale).
pub(super) fn add_scaled(a: u64, ea: i32, b: u64, eb: i32) -> (u64, i32) {
    fn norm(m: u64, e: i32) -> (u64, i32) {
        let bl = bits(m);
        if m == 0 {
            (0, e)
        } else if bl > 62 {
            (
                round_shr_u64(m, bl - 62),
                e.saturating_add((bl - 62) as i32),
            )
        } else {
            (m << (62 - bl), e.saturating_sub((62 - bl) as i32))
        }
    }
    let (a, ea) = norm(a, ea);
    let (b, eb) = norm(b, eb);
    if a == 0 {
        return (b, eb);
    }
    if b == 0 {
        return (a, ea);
    }
    let ((hi, ehi), (lo, elo)) = if ea >= eb {
        ((a, ea), (b, eb))
    } else {
        ((b, eb), (a, ea))
    };
    let d = (ehi as i64 - elo as i64).clamp(0, 65) as u32;
    // hi, lo ≤ 2^62 after rounding: the sum is ≤ 2^63.
    (hi.saturating_add(round_shr_u64(lo, d)), ehi)
}

/// `ln(m · 2^e)` in Q24 (`m = 0` gives a very negative value that saturates any output).
pub(super) fn ln_q24(m: u64, e: i32) -> i64 {
    if m == 0 {
        return i64::MIN / 4;
    }
    ln_u64(m) as i64 + round_shr_i64(e as i64 * LN2_Q32, 8)
}

/// `log_eps` (positive, finite) as `mantissa · 2^exponent`, exact.
pub(super) fn decode_f32(bits: u32) -> (u64, i32) {
    let e = ((bits >> 23) & 0xff) as i32;
    let m = (bits & 0x7f_ffff) as u64;
    if e == 0 {
        (m, -149)
    } else {
        (m | 1 << 23, e - 150)
    }
}
