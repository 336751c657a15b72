//! IEEE-754 comparisons of `f32` computed on the bit patterns, with integer instructions
//! only. The parser's range checks of float configuration fields use them, so that
//! [`crate::Model::parse`] runs no floating-point operation: an image for a core without
//! an FPU (Cortex-M0, `thumbv6m-none-eabi`) that parses an integer-only model and calls
//! only the integer step links no soft-float routine. Each function gives exactly the
//! result of the float operation it names (NaN compares false, `-0 == +0`).

/// `x.is_nan()`.
#[inline]
pub(crate) const fn is_nan(x: f32) -> bool {
    x.to_bits() & 0x7fff_ffff > 0x7f80_0000
}

/// `x.is_finite()`.
#[inline]
pub(crate) const fn is_finite(x: f32) -> bool {
    x.to_bits() & 0x7f80_0000 != 0x7f80_0000
}

/// A key whose integer order is the numeric order of non-NaN floats (both zeros map to 0).
#[inline]
const fn key(x: f32) -> i64 {
    let b = x.to_bits();
    let mag = (b & 0x7fff_ffff) as i64;
    if b & 0x8000_0000 != 0 {
        -mag
    } else {
        mag
    }
}

/// `a < b`.
#[inline]
pub(crate) const fn lt(a: f32, b: f32) -> bool {
    !is_nan(a) && !is_nan(b) && key(a) < key(b)
}

/// `a <= b`.
#[inline]
pub(crate) const fn le(a: f32, b: f32) -> bool {
    !is_nan(a) && !is_nan(b) && key(a) <= key(b)
}

/// `v as f32 / 2.0` for `1 <= v < 2^24` (exact there, like the float expression).
#[inline]
pub(crate) const fn half_of_u24(v: u32) -> f32 {
    debug_assert!(v >= 1 && v < 1 << 24);
    // v = 1.m · 2^e with e = the position of v's top bit; v / 2 = 1.m · 2^(e-1).
    let e = 31 - v.leading_zeros();
    let mant = (v << (23 - e)) & 0x007f_ffff;
    f32::from_bits(((e + 126) << 23) | mant)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    fn specials() -> Vec<f32> {
        let mut v = vec![
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.5,
            1e-40,
            -1e-40,
            f32::MIN_POSITIVE,
            f32::MAX,
            f32::MIN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            -f32::NAN,
            f32::from_bits(0x7f80_0001),
            f32::from_bits(0xffc0_0001),
            f32::EPSILON,
            4000.0,
            4000.5,
        ];
        let mut s = 0x1234_5678u32;
        for _ in 0..4000 {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            v.push(f32::from_bits(s));
        }
        v
    }

    #[test]
    fn comparisons_match_the_float_operations() {
        let v = specials();
        for &a in &v {
            assert_eq!(is_nan(a), a.is_nan(), "{a:?}");
            assert_eq!(is_finite(a), a.is_finite(), "{a:?}");
            for &b in v.iter().step_by(7) {
                assert_eq!(lt(a, b), a < b, "{a:?} < {b:?}");
                assert_eq!(le(a, b), a <= b, "{a:?} <= {b:?}");
            }
        }
    }

    #[test]
    fn half_of_u24_matches_the_float_expression() {
        for v in (1..1 << 24)
            .step_by(997)
            .chain([1, 2, 3, 8000, 16000, (1 << 24) - 1])
        {
            assert_eq!(half_of_u24(v).to_bits(), (v as f32 / 2.0).to_bits(), "{v}");
        }
    }
}
