//! Scalar reference kernels: sequential sums, `libm` math. They define what a model
//! computes; every fast kernel is tested against them.

use half::{bf16, f16};

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

/// Sequential dot product with bf16 weights.
pub fn dot_bf16(a: &[bf16], b: &[f32]) -> f32 {
    let mut acc = 0.0f32;
    for (x, y) in a.iter().zip(b) {
        acc += x.to_f32() * y;
    }
    acc
}

/// `scale · Σ q·x` for an int8 row with f32 activations.
pub fn dot_i8(q: &[i8], scale: f32, b: &[f32]) -> f32 {
    let mut acc = 0.0f32;
    for (&x, y) in q.iter().zip(b) {
        acc += x as f32 * y;
    }
    acc * scale
}

/// `Σ_g scale_g · Σ_{c∈g} q·x` for an int4 row (`groups` packed groups) with f32
/// activations.
pub fn dot_i4(groups: &[u8], scales: &[f16], b: &[f32]) -> f32 {
    let mut total = 0.0f32;
    for (gi, (g, s)) in groups.chunks_exact(16).zip(scales).enumerate() {
        let lo = gi * crate::dtype::I4_GROUP;
        let xs = b.get(lo..).unwrap_or(&[]);
        let mut acc = 0.0f32;
        for (i, y) in xs.iter().take(crate::dtype::I4_GROUP).enumerate() {
            acc += super::i4_at(g, i) as f32 * y;
        }
        total += acc * s.to_f32();
    }
    total
}

/// Integer dot product of two int8 vectors (exact in i32 for up to 131,071 terms,
/// 133,144 when both stay in −127..=127).
pub fn dot_i8_i8(a: &[i8], b: &[i8]) -> i32 {
    let mut acc = 0i32;
    for (&x, &y) in a.iter().zip(b) {
        acc += x as i32 * y as i32;
    }
    acc
}

/// Integer dot product of int8 weights and int16 activations, wrapping i32 adds
/// (exact for up to 511 terms; 516 when the weights stay in −127..=127 and the
/// activations in −32767..=32767).
pub fn dot_i8_i16(w: &[i8], x: &[i16]) -> i32 {
    let mut acc = 0i32;
    for (&a, &b) in w.iter().zip(x) {
        acc = acc.wrapping_add(a as i32 * b as i32);
    }
    acc
}

pub fn exp(x: f32) -> f32 {
    libm::expf(x)
}
