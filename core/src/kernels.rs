//! Numeric kernels. Every kernel has a plain scalar **reference** (sequential sums, `libm`
//! math) that stays the definition of what the model computes, and a **fast** variant
//! (multi-accumulator dot products that auto-vectorize, a polynomial `exp`) that is tested
//! against it (`tests` below and `tests/` at the workspace root).
//!
//! No kernel uses fused multiply-add: Rust never contracts `a * b + c`, so each variant
//! is bit-reproducible across targets with IEEE f32.

use half::{bf16, f16};

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
    Bf16(&'a [bf16]),
    /// int8 with one f32 scale per row (layout: [`crate::DType::I8`]).
    I8(QuantI8<'a>),
    /// int4 in groups of 32 with f16 scales (layout: [`crate::DType::I4`]).
    I4(QuantI4<'a>),
    /// A tensor of an integer-only model (format 1.3); the float kernels never see one
    /// (a float step on such a model is refused before any kernel runs).
    Int(IntWeights<'a>),
}

/// The tensors of integer-only models ([`crate::Compute::Int`]).
#[derive(Debug, Clone, Copy)]
pub enum IntWeights<'a> {
    I16(&'a [i16]),
    I32(&'a [i32]),
    I8R(QuantI8R<'a>),
}

/// An int8 matrix with per-row integer requantization ([`crate::DType::I8R`]):
/// `rq[2r]` is row `r`'s multiplier, `rq[2r + 1]` its right shift.
#[derive(Debug, Clone, Copy)]
pub struct QuantI8R<'a> {
    pub q: &'a [i8],
    pub rq: &'a [i32],
    pub cols: usize,
}

impl QuantI8R<'_> {
    pub fn rows(&self) -> usize {
        self.rq.len() / 2
    }
}

/// How a matrix-vector product treats its input vector.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ActQuant {
    /// f32 activations times dequantized weights.
    Float,
    /// int8 activations with a dynamic per-vector scale `max|x| / 127`
    /// ([`crate::Compute::W8a8`], [`crate::DType::I8`] matrices).
    DynamicI8,
    /// int8 activations with the static scale `xmax / 127` calibrated at conversion
    /// ([`crate::DType::I8S`]): no pass over the input to find its range; values beyond
    /// `±xmax` saturate to ±127, and a non-finite input does not propagate (NaN
    /// quantizes to 0, ±inf to ±127).
    StaticI8 { xmax: f32 },
}

/// An int8 matrix: `w[r][c] = q[r·cols + c] · scale[r]`.
#[derive(Debug, Clone, Copy)]
pub struct QuantI8<'a> {
    pub q: &'a [i8],
    pub scale: &'a [f32],
    pub cols: usize,
    pub act: ActQuant,
}

/// An int4 matrix: per row `groups = ceil(cols / 32)` groups of 16 bytes, then one f16
/// scale per group.
#[derive(Debug, Clone, Copy)]
pub struct QuantI4<'a> {
    pub q: &'a [u8],
    pub scale: &'a [f16],
    pub cols: usize,
}

impl QuantI4<'_> {
    pub fn groups_per_row(&self) -> usize {
        self.cols.div_ceil(crate::config::I4_GROUP)
    }
    pub fn rows(&self) -> usize {
        self.scale.len() / self.groups_per_row().max(1)
    }
}

/// The signed value of nibble `i` of a packed int4 group.
#[inline(always)]
pub fn i4_at(group: &[u8], i: usize) -> i8 {
    let b = group[i / 2];
    let n = if i.is_multiple_of(2) {
        b & 0x0f
    } else {
        b >> 4
    };
    ((n << 4) as i8) >> 4
}

impl<'a> Weights<'a> {
    /// Whether this is a consistent `rows × cols` matrix (values and scales).
    pub fn is_matrix(&self, rows: usize, cols: usize) -> bool {
        let Some(n) = rows.checked_mul(cols) else {
            return false;
        };
        match self {
            Weights::F32(w) => w.len() == n,
            Weights::F16(w) => w.len() == n,
            Weights::Bf16(w) => w.len() == n,
            Weights::I8(w) => w.cols == cols && w.scale.len() == rows && w.q.len() == n,
            Weights::I4(w) => {
                let g = w.groups_per_row();
                w.cols == cols
                    && rows.checked_mul(g) == Some(w.scale.len())
                    && w.scale.len().checked_mul(16) == Some(w.q.len())
            }
            Weights::Int(IntWeights::I8R(w)) => {
                w.cols == cols && w.rq.len() == 2 * rows && w.q.len() == n
            }
            Weights::Int(_) => false,
        }
    }
    /// Number of weight values (rows × cols; scales not counted).
    pub fn len(&self) -> usize {
        match self {
            Weights::F32(w) => w.len(),
            Weights::F16(w) => w.len(),
            Weights::Bf16(w) => w.len(),
            Weights::I8(w) => w.scale.len() * w.cols,
            Weights::I4(w) => w.rows() * w.cols,
            Weights::Int(IntWeights::I16(w)) => w.len(),
            Weights::Int(IntWeights::I32(w)) => w.len(),
            Weights::Int(IntWeights::I8R(w)) => w.q.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Elements `start..start + len`, or `None` when out of range (or, for int8/int4,
    /// not whole rows).
    pub fn slice(&self, start: usize, len: usize) -> Option<Self> {
        let r = start..start.checked_add(len)?;
        Some(match self {
            Weights::F32(w) => Weights::F32(w.get(r)?),
            Weights::F16(w) => Weights::F16(w.get(r)?),
            Weights::Bf16(w) => Weights::Bf16(w.get(r)?),
            Weights::I8(w) => {
                if w.cols == 0 || !start.is_multiple_of(w.cols) || !len.is_multiple_of(w.cols) {
                    return None;
                }
                let (r0, nr) = (start / w.cols, len / w.cols);
                Weights::I8(QuantI8 {
                    q: w.q.get(r)?,
                    scale: w.scale.get(r0..r0.checked_add(nr)?)?,
                    ..*w
                })
            }
            Weights::I4(w) => {
                if w.cols == 0 || !start.is_multiple_of(w.cols) || !len.is_multiple_of(w.cols) {
                    return None;
                }
                let g = w.groups_per_row();
                let (g0, ng) = ((start / w.cols) * g, (len / w.cols) * g);
                let g1 = g0.checked_add(ng)?;
                Weights::I4(QuantI4 {
                    q: w.q.get(g0 * 16..g1 * 16)?,
                    scale: w.scale.get(g0..g1)?,
                    cols: w.cols,
                })
            }
            Weights::Int(_) => return None,
        })
    }
    /// Dequantizes row `row` of a `cols`-column matrix into `out` (`out.len() == cols`).
    pub fn row_into(&self, row: usize, cols: usize, out: &mut [f32]) -> Option<()> {
        if out.len() != cols {
            return None;
        }
        let lo = row.checked_mul(cols)?;
        let hi = lo.checked_add(cols)?;
        match self {
            Weights::F32(w) => out.copy_from_slice(w.get(lo..hi)?),
            Weights::F16(w) => {
                for (o, x) in out.iter_mut().zip(w.get(lo..hi)?) {
                    *o = x.to_f32();
                }
            }
            Weights::Bf16(w) => {
                for (o, x) in out.iter_mut().zip(w.get(lo..hi)?) {
                    *o = x.to_f32();
                }
            }
            Weights::I8(w) => {
                if w.cols != cols {
                    return None;
                }
                let s = *w.scale.get(row)?;
                for (o, &q) in out.iter_mut().zip(w.q.get(lo..hi)?) {
                    *o = q as f32 * s;
                }
            }
            Weights::I4(w) => {
                if w.cols != cols {
                    return None;
                }
                let g = w.groups_per_row();
                let g0 = row.checked_mul(g)?;
                let gs = w.q.get(g0 * 16..(g0 + g) * 16)?;
                let sc = w.scale.get(g0..g0 + g)?;
                for (c, o) in out.iter_mut().enumerate() {
                    let gi = c / crate::config::I4_GROUP;
                    let grp = &gs[gi * 16..gi * 16 + 16];
                    *o = i4_at(grp, c % crate::config::I4_GROUP) as f32 * sc[gi].to_f32();
                }
            }
            // Integer-only tensors have no float value without their model's plan.
            Weights::Int(_) => return None,
        }
        Some(())
    }
}

/// Scalar reference kernels.
pub mod reference {
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
            let lo = gi * crate::config::I4_GROUP;
            let xs = b.get(lo..).unwrap_or(&[]);
            let mut acc = 0.0f32;
            for (i, y) in xs.iter().take(crate::config::I4_GROUP).enumerate() {
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
}

/// Optimised kernels.
pub mod fast {
    use half::{bf16, f16};

    /// Dot product with 16 independent accumulators held as four 4-lane groups (SSE/NEON
    /// registers on hosts; keeps the FPU pipeline full on Cortex-M), combined pairwise at
    /// the end. Written on `[f32; 4]` groups so that the compiler emits full-width vector
    /// loads and arithmetic rather than pairs.
    #[inline]
    pub fn dot(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (a, b) = (&a[..n], &b[..n]);
        if n < 32 {
            return dot_short(a, b);
        }
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

    /// [`dot`] of a short vector (a Mamba dt projection's 16 terms, `C·h` of a few
    /// states): one 4-lane accumulator, summed pairwise, all inline.
    #[inline(always)]
    fn dot_short(a: &[f32], b: &[f32]) -> f32 {
        let mut acc = [0f32; 4];
        let (a4, ta) = a.as_chunks::<4>();
        let (b4, tb) = b.as_chunks::<4>();
        for (x, y) in a4.iter().zip(b4) {
            madd4(&mut acc, x, y);
        }
        let mut tail = 0f32;
        for (x, y) in ta.iter().zip(tb) {
            tail += x * y;
        }
        ((acc[0] + acc[1]) + (acc[2] + acc[3])) + tail
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

    /// Weights [`dot_blocks`] converts at a time.
    const DOT_BLOCK: usize = 64;

    /// Dot product of `n` weights, converted to f32 in blocks of 64 by `fill(start, block)`,
    /// with `b`.
    #[inline(always)]
    fn dot_blocks(n: usize, b: &[f32], fill: impl Fn(usize, &mut [f32])) -> f32 {
        const BLK: usize = DOT_BLOCK;
        let n = n.min(b.len());
        let mut buf = [0.0f32; BLK];
        let mut total = 0.0f32;
        let mut i = 0;
        while i < n {
            let m = (n - i).min(BLK);
            fill(i, &mut buf[..m]);
            total += dot(&buf[..m], &b[i..i + m]);
            i += m;
        }
        total
    }

    /// Dot product with f16 weights, converted in blocks ([`f16_to_f32`]).
    #[inline]
    pub fn dot_f16(a: &[f16], b: &[f32]) -> f32 {
        let w: &[u16] = bytemuck::cast_slice(a);
        // Up to one block: converted and dotted in registers where the CPU converts half
        // precision (the same bits as the block path: `simd::dot_f16_f16c`).
        #[cfg(target_arch = "x86_64")]
        if let Some(t) = crate::simd::F16c::detect() {
            if w.len().min(b.len()) <= DOT_BLOCK {
                // `0 +` as the block path's running total (a -0 sum becomes +0 there too).
                return 0.0 + crate::simd::dot_f16_f16c(t, w, b, f16_to_f32);
            }
            return dot_blocks(w.len(), b, |i, buf| {
                crate::simd::f16_to_f32_f16c(t, &w[i..i + buf.len()], buf, f16_to_f32)
            });
        }
        dot_blocks(w.len(), b, |i, buf| {
            f16_slice_to_f32(&w[i..i + buf.len()], buf)
        })
    }

    /// [`f16_to_f32`] over a slice (`dst[..src.len()]`).
    #[inline]
    pub fn f16_slice_to_f32(src: &[u16], dst: &mut [f32]) {
        for (o, &h) in dst.iter_mut().zip(src) {
            *o = f16_to_f32(h);
        }
    }

    /// The f32 value of the f16 with bits `h`, exact (NaNs quieted, as the hardware
    /// conversions and `half` do), with integer operations, one exact int-to-float
    /// conversion and selects: no branch, so a loop of it vectorizes (`half`'s portable
    /// conversion, used where a `no_std` build cannot detect F16C, branches per value),
    /// and no subnormal f32 arithmetic (so a flush-to-zero FPU mode changes nothing).
    #[inline(always)]
    pub fn f16_to_f32(h: u16) -> f32 {
        let h = h as u32;
        let sign = (h & 0x8000) << 16;
        let em = h & 0x7fff;
        // Normal: rebias the exponent (15 → 127) in place.
        let normal = (em << 13) + ((127 - 15) << 23);
        // Subnormal: mantissa · 2^-24, exact (< 2^10 and a power-of-two scale).
        let sub = (em as f32 * f32::from_bits(0x3380_0000)).to_bits();
        // Infinity and NaN: all exponent bits, the mantissa kept, NaNs quiet.
        let special = (em << 13) | 0x7f80_0000 | if em > 0x7c00 { 0x0040_0000 } else { 0 };
        let bits = if em >= 0x7c00 {
            special
        } else if em < 0x0400 {
            sub
        } else {
            normal
        };
        f32::from_bits(sign | bits)
    }

    /// Dot product with bf16 weights, converted in blocks.
    #[inline]
    pub fn dot_bf16(a: &[bf16], b: &[f32]) -> f32 {
        dot_blocks(a.len(), b, |i, buf| {
            for (o, x) in buf.iter_mut().zip(&a[i..]) {
                // bf16 is the upper half of an f32.
                *o = f32::from_bits((x.to_bits() as u32) << 16);
            }
        })
    }

    /// `scale · Σ q·x` for an int8 row, converted to f32 in blocks.
    #[inline]
    pub fn dot_i8(q: &[i8], scale: f32, b: &[f32]) -> f32 {
        dot_blocks(q.len(), b, |i, buf| {
            for (o, &x) in buf.iter_mut().zip(&q[i..]) {
                *o = x as f32;
            }
        }) * scale
    }

    /// An int4 row: each group unpacked to f32 and dotted with 16 accumulators.
    #[inline]
    pub fn dot_i4(groups: &[u8], scales: &[f16], b: &[f32]) -> f32 {
        const G: usize = crate::config::I4_GROUP;
        let mut total = 0.0f32;
        let mut buf = [0.0f32; G];
        for (gi, (g, s)) in groups.chunks_exact(16).zip(scales).enumerate() {
            let xs = b.get(gi * G..).unwrap_or(&[]);
            let m = xs.len().min(G);
            for (j, pair) in buf.chunks_exact_mut(2).enumerate() {
                let byte = g[j];
                pair[0] = (((byte << 4) as i8) >> 4) as f32;
                pair[1] = ((byte as i8) >> 4) as f32;
            }
            total += dot(&buf[..m], &xs[..m]) * s.to_f32();
        }
        total
    }

    /// Integer dot product of two int8 vectors: the same value as the reference (the sum
    /// of exact products, wrapping in i32). SIMD (`crate::simd`: SSE2/AVX2 on x86-64,
    /// `SMLAD` on Arm cores with the DSP extension) where the build has it, else
    /// [`dot_i8_i8_portable`].
    #[inline]
    pub fn dot_i8_i8(a: &[i8], b: &[i8]) -> i32 {
        #[cfg(any(target_arch = "x86_64", tinyssm_arm_dsp))]
        {
            crate::simd::dot_i8_i8(a, b)
        }
        #[cfg(not(any(target_arch = "x86_64", tinyssm_arm_dsp)))]
        {
            dot_i8_i8_portable(a, b)
        }
    }

    /// Integer dot product of int8 weights and int16 activations (wrapping i32, as the
    /// reference): SIMD where the build has it, else [`dot_i8_i16_portable`].
    #[inline]
    pub fn dot_i8_i16(w: &[i8], x: &[i16]) -> i32 {
        #[cfg(any(target_arch = "x86_64", tinyssm_arm_dsp))]
        {
            crate::simd::dot_i8_i16(w, x)
        }
        #[cfg(not(any(target_arch = "x86_64", tinyssm_arm_dsp)))]
        {
            dot_i8_i16_portable(w, x)
        }
    }

    /// The instruction set of [`dot_i8_i8`] / [`dot_i8_i16`] in this build.
    pub const INT_DOT_PATH: &str = {
        #[cfg(any(target_arch = "x86_64", tinyssm_arm_dsp))]
        {
            crate::simd::PATH
        }
        #[cfg(not(any(target_arch = "x86_64", tinyssm_arm_dsp)))]
        {
            "portable"
        }
    };

    /// [`super::act_absmax`] on the bit patterns: for finite floats, `|v|`'s bits
    /// (`bits & 0x7fff_ffff`) order as the values do, and a pattern at or above
    /// `0x7f80_0000` is inf or NaN, so one integer max over the vector (which vectorizes,
    /// unlike `f32::max` with its NaN rule) decides both. The same result for every input.
    #[inline]
    pub fn act_absmax(x: &[f32]) -> Option<f32> {
        let mut acc = [0i32; 8];
        let (c, t) = x.as_chunks::<8>();
        for ch in c {
            for j in 0..8 {
                acc[j] = acc[j].max((ch[j].to_bits() & 0x7fff_ffff) as i32);
            }
        }
        let mut m = acc.iter().fold(0, |m, &a| m.max(a));
        for &v in t {
            m = m.max((v.to_bits() & 0x7fff_ffff) as i32);
        }
        if m == 0 || m >= 0x7f80_0000 {
            return None;
        }
        Some(f32::from_bits(m as u32))
    }

    /// [`super::quantize_act`] without `roundf` and without float-to-int casts, so that it
    /// vectorizes: the same bytes for every input. A NaN product becomes 0 (what the
    /// reference's `as i8` makes of it); clamping first is the same as clamping the rounded
    /// value (rounding is monotonic and keeps ±127). Adding 1.5·2²³ rounds half to even and
    /// leaves the integer in the low mantissa bits; the exact remainder `t − n` is ±0.5
    /// only at a tie, where half away from zero moves one further from zero.
    #[inline(always)]
    pub fn quantize_act(x: &[f32], inv: f32, out: &mut [i8]) {
        const MAGIC: f32 = 12_582_912.0;
        for (o, &v) in out.iter_mut().zip(x) {
            let t = v * inv;
            let t = if t.is_nan() { 0.0 } else { t };
            let t = t.clamp(-127.0, 127.0);
            let k = t + MAGIC;
            let d = t - (k - MAGIC);
            let n = (k.to_bits() as i32).wrapping_sub(MAGIC.to_bits() as i32);
            let r = n + (d == 0.5 && t > 0.0) as i32 - (d == -0.5 && t < 0.0) as i32;
            *o = r as i8;
        }
    }

    /// One column chunk of the w8a8 product: `out[r] += f32(Σ_c q[r·cols + c0 + c] · qx[c])`
    /// for every row `r < out.len()` (the integer sums are exact, so this equals the
    /// reference's row-by-row loop). On x86-64 four rows at a time against `qx` sign-extended
    /// once (`crate::simd::dot_rows4_i8_i8`), else [`dot_i8_i8`] per row.
    #[inline]
    pub(crate) fn w8a8_chunk(q: &[i8], cols: usize, c0: usize, qx: &[i8], out: &mut [f32]) {
        let m = qx.len();
        let row = |r: usize| &q[r * cols + c0..r * cols + c0 + m];
        #[cfg(target_arch = "x86_64")]
        let out = {
            let mut xs = [0i16; super::W8A8_CHUNK];
            crate::simd::split_even_odd(qx, &mut xs);
            let (out4, rest) = out.as_chunks_mut::<4>();
            for (i, o4) in out4.iter_mut().enumerate() {
                let r = 4 * i;
                let rows = [row(r), row(r + 1), row(r + 2), row(r + 3)];
                let d = crate::simd::dot_rows4_i8_i8(rows, qx, &xs);
                for (o, d) in o4.iter_mut().zip(d) {
                    *o += d as f32;
                }
            }
            (4 * out4.len(), rest)
        };
        // Cortex-M with the DSP extension: `qx` sign-extended once into `SMLAD` pair order,
        // then three rows a pass (`crate::simd::dot_rows3_packed`), the column tail and
        // the rows left over in plain code.
        #[cfg(all(target_arch = "arm", tinyssm_arm_dsp))]
        let out = {
            let mut xs = [0u32; super::W8A8_CHUNK / 2];
            let groups = crate::simd::pack_i8(qx, &mut xs);
            let (xs, tail) = (&xs[..2 * groups], &qx[4 * groups..]);
            // The columns past the last whole group (none when `m` is a multiple of 4).
            let tail_of = |r: usize| match tail.is_empty() {
                true => 0,
                false => tail_dot(&row(r)[4 * groups..], tail),
            };
            let (out3, rest) = out.as_chunks_mut::<3>();
            for (i, o3) in out3.iter_mut().enumerate() {
                let r = 3 * i;
                let d = crate::simd::dot_rows3_packed(&q[r * cols + c0..], cols, xs, groups);
                for (j, (o, d)) in o3.iter_mut().zip(d).enumerate() {
                    *o += d.wrapping_add(tail_of(r + j)) as f32;
                }
            }
            for (i, o) in rest.iter_mut().enumerate() {
                let r = 3 * out3.len() + i;
                let d = crate::simd::dot_row_packed(row(r), xs, groups);
                *o += d.wrapping_add(tail_of(r)) as f32;
            }
            let none: &mut [f32] = &mut [];
            (0, none)
        };
        #[cfg(not(any(target_arch = "x86_64", all(target_arch = "arm", tinyssm_arm_dsp))))]
        let out = (0, out);
        let (r0, rest) = out;
        for (i, o) in rest.iter_mut().enumerate() {
            *o += dot_i8_i8(row(r0 + i), qx) as f32;
        }
    }

    /// One activation quantized as [`super::quantize_act`] does
    /// (`clamp(round_half_away(v · inv), -127, 127)`, NaN → 0), from `inv16 = inv · 2¹⁶`,
    /// without `roundf`: `(v · inv16) as i32` truncates `v · inv · 2¹⁶` toward zero (the
    /// power-of-two factor is exact; `as` saturates and sends NaN to 0, one `VCVT` on
    /// Arm), so `|v · inv|` rounds half away from zero to `(|t| + 2¹⁵) >> 16`. A product
    /// too small to be normal truncates to 0 either way. The same byte as the reference
    /// for every `v` whenever `inv16` is finite (tested); callers check that.
    #[inline(always)]
    pub fn quantize_one(v: f32, inv16: f32) -> i32 {
        let t = (v * inv16) as i32;
        let r = ((t.unsigned_abs() + (1 << 15)) >> 16).min(127) as i32;
        if t < 0 {
            -r
        } else {
            r
        }
    }

    /// Columns up to which [`w8a8_x86`] holds the whole quantized input on the stack.
    #[cfg(target_arch = "x86_64")]
    pub(crate) const W8A8_X86_MAX_COLS: usize = 4096;

    /// Weight bytes above which [`w8a8_x86`] treats a matrix as streamed from memory
    /// rather than read from the caches (2 rows a pass and prefetching, not 4 rows).
    #[cfg(target_arch = "x86_64")]
    const W8A8_X86_STREAMED: usize = 1 << 20;

    /// How far ahead of the rows in use [`w8a8_x86`] asks for weight bytes of a streamed
    /// matrix: a few microseconds of streaming, enough to hide the memory latency.
    #[cfg(target_arch = "x86_64")]
    const W8A8_X86_PREFETCH: usize = 4096;

    /// The whole w8a8 product on x86-64 (`cols ≤ W8A8_X86_MAX_COLS`): the input quantized
    /// and sign-extended once, then each row swept once from end to end (its chunks'
    /// partial sums added in the reference's order), several rows a pass sharing each
    /// activation load. A matrix that fits the caches goes four rows a pass; a larger one
    /// two rows a pass with its weights 4 KB ahead prefetched, so that it streams at close
    /// to the memory bandwidth — chunk by chunk over all rows (each row read in strided
    /// pieces, four rows interleaved) it ran at a quarter of it (BENCHMARKS.md, "w8a8
    /// streaming"). `out[r] = ((0 + f32(Σ₀)) + f32(Σ₁) + …) · (scale[r] · sx) (+ bias[r])`:
    /// the reference's operations in the reference's order, so its bits.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    pub(crate) fn w8a8_x86(
        w: super::QuantI8<'_>,
        x: &[f32],
        inv: f32,
        sx: f32,
        bias: Option<&[f32]>,
        out: &mut [f32],
    ) {
        // The input's buffers on the stack, sized for the matrix (zeroing 12 KB for a
        // 256-column matrix would cost as much as a tenth of its product).
        match w.cols {
            0..=512 => w8a8_x86_n::<512>(w, x, inv, sx, bias, out),
            513..=1024 => w8a8_x86_n::<1024>(w, x, inv, sx, bias, out),
            _ => w8a8_x86_n::<W8A8_X86_MAX_COLS>(w, x, inv, sx, bias, out),
        }
    }

    /// [`w8a8_x86`] with buffers of `N ≥ cols` columns.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn w8a8_x86_n<const N: usize>(
        w: super::QuantI8<'_>,
        x: &[f32],
        inv: f32,
        sx: f32,
        bias: Option<&[f32]>,
        out: &mut [f32],
    ) {
        let cols = w.cols.min(N).min(x.len());
        let mut qx = [0i8; N];
        let mut xs = [0i16; N];
        let (qx, xs) = (&mut qx[..cols], &mut xs[..cols]);
        quantize_act(&x[..cols], inv, qx);
        let rows = w.scale.len().min(out.len()).min(w.q.len() / cols.max(1));
        let out = &mut out[..rows];
        let avx2 = crate::simd::Avx2::detect();
        match avx2 {
            Some(_) => crate::simd::widen_i8(qx, xs),
            None => crate::simd::split_even_odd(qx, xs),
        }
        let k = X86Rows { avx2 };
        if rows * cols > W8A8_X86_STREAMED {
            w8a8_x86_rows::<2, true>(k, w, qx, xs, sx, bias, out)
        } else {
            w8a8_x86_rows::<4, false>(k, w, qx, xs, sx, bias, out)
        }
    }

    /// The rows kernel of [`w8a8_x86`]: AVX2 where the CPU has it (the input widened in
    /// order), else SSE2 (the input split into even and odd columns).
    #[cfg(target_arch = "x86_64")]
    #[derive(Clone, Copy)]
    struct X86Rows {
        avx2: Option<crate::simd::Avx2>,
    }

    #[cfg(target_arch = "x86_64")]
    impl X86Rows {
        #[inline(always)]
        fn dot<const N: usize>(self, rs: [&[i8]; N], qx: &[i8], xs: &[i16]) -> [i32; N] {
            match self.avx2 {
                Some(t) => crate::simd::dot_rows_i8_i8_avx2(t, rs, qx, xs),
                None => crate::simd::dot_rows_i8_i8(rs, qx, xs),
            }
        }
    }

    /// The rows of [`w8a8_x86`], `R` a pass, prefetching when `PF`.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn w8a8_x86_rows<const R: usize, const PF: bool>(
        k: X86Rows,
        w: super::QuantI8<'_>,
        qx: &[i8],
        xs: &[i16],
        sx: f32,
        bias: Option<&[f32]>,
        out: &mut [f32],
    ) {
        let cols = qx.len();
        let row = |r: usize| &w.q[r * cols..(r + 1) * cols];
        // `N` rows: Σ over the chunks of f32(the chunk's exact i32 sum).
        fn sweep<const N: usize>(k: X86Rows, rs: [&[i8]; N], qx: &[i8], xs: &[i16]) -> [f32; N] {
            let mut acc = [0f32; N];
            let mut c0 = 0;
            while c0 < qx.len() {
                let c1 = (c0 + super::W8A8_CHUNK).min(qx.len());
                let mut part: [&[i8]; N] = [&[]; N];
                for (p, s) in part.iter_mut().zip(rs) {
                    *p = &s[c0..c1];
                }
                let d = k.dot(part, &qx[c0..c1], &xs[c0..c1]);
                for (a, d) in acc.iter_mut().zip(d) {
                    *a += d as f32;
                }
                c0 = c1;
            }
            acc
        }
        let finish = |r: usize, acc: f32| {
            let y = acc * (w.scale[r] * sx);
            match bias {
                Some(b) => y + b[r],
                None => y,
            }
        };
        let (outr, rest) = out.as_chunks_mut::<R>();
        for (i, o) in outr.iter_mut().enumerate() {
            let r = R * i;
            if PF {
                let ahead = r * cols + W8A8_X86_PREFETCH..(r + R) * cols + W8A8_X86_PREFETCH;
                if let Some(ahead) = w.q.get(ahead) {
                    crate::simd::prefetch(ahead);
                }
            }
            let acc = sweep::<R>(k, core::array::from_fn(|j| row(r + j)), qx, xs);
            for (j, (o, a)) in o.iter_mut().zip(acc).enumerate() {
                *o = finish(r + j, a);
            }
        }
        let r0 = R * outr.len();
        for (i, o) in rest.iter_mut().enumerate() {
            let [acc] = sweep::<1>(k, [row(r0 + i)], qx, xs);
            *o = finish(r0 + i, acc);
        }
    }

    /// The w8a8 product of one chunk (`cols ≤ W8A8_CHUNK`) on Cortex-M with the DSP
    /// extension: the input quantized ([`quantize_one`]) straight into `SMLAD` pair
    /// order, three rows a pass (`crate::simd::dot_rows3_packed`), and each row finished
    /// at once: `f32(Σ) · (scale[r] · sx) (+ bias[r])` — with one chunk the reference's
    /// `0 + f32(Σ)` is `f32(Σ)`, so the bits are the reference's.
    #[cfg(all(target_arch = "arm", tinyssm_arm_dsp))]
    pub(crate) fn w8a8_dsp(
        w: super::QuantI8<'_>,
        x: &[f32],
        inv: f32,
        sx: f32,
        bias: Option<&[f32]>,
        out: &mut [f32],
    ) {
        // The packed words on the stack, sized for the matrix: small models (the
        // microcontroller case) zero and hold 256 bytes, not a whole chunk's 1 KB.
        if w.cols <= 128 {
            w8a8_dsp_n::<64>(w, x, inv, sx, bias, out)
        } else {
            w8a8_dsp_n::<{ super::W8A8_CHUNK / 2 }>(w, x, inv, sx, bias, out)
        }
    }

    /// [`w8a8_dsp`] with `N` packed words (`cols ≤ 2·N`).
    #[cfg(all(target_arch = "arm", tinyssm_arm_dsp))]
    #[inline(always)]
    fn w8a8_dsp_n<const N: usize>(
        w: super::QuantI8<'_>,
        x: &[f32],
        inv: f32,
        sx: f32,
        bias: Option<&[f32]>,
        out: &mut [f32],
    ) {
        let cols = w.cols;
        let x = &x[..cols.min(x.len()).min(2 * N)];
        let inv16 = inv * 65536.0;
        let mut xs = [0u32; N];
        let (g4, tail_x) = x.as_chunks::<4>();
        let groups = g4.len().min(xs.len() / 2);
        for (g, d) in g4.iter().zip(xs.as_chunks_mut::<2>().0) {
            let q = g.map(|v| quantize_one(v, inv16));
            d[0] = (q[0] as u32 & 0xffff) | ((q[2] as u32) << 16);
            d[1] = (q[1] as u32 & 0xffff) | ((q[3] as u32) << 16);
        }
        let mut tail = [0i8; 3];
        for (t, &v) in tail.iter_mut().zip(tail_x) {
            *t = quantize_one(v, inv16) as i8;
        }
        let tail = &tail[..tail_x.len()];
        let xs = &xs[..2 * groups];
        let finish = |r: usize, d: i32| {
            let d = if tail.is_empty() {
                d
            } else {
                let lo = r * cols + 4 * groups;
                d.wrapping_add(tail_dot(&w.q[lo..lo + tail.len()], tail))
            };
            let y = d as f32 * (w.scale[r] * sx);
            match bias {
                Some(b) => y + b[r],
                None => y,
            }
        };
        let rows = w.scale.len().min(out.len());
        let (out3, rest) = out[..rows].as_chunks_mut::<3>();
        for (i, o3) in out3.iter_mut().enumerate() {
            let r = 3 * i;
            let d = crate::simd::dot_rows3_packed(&w.q[r * cols..], cols, xs, groups);
            o3[0] = finish(r, d[0]);
            o3[1] = finish(r + 1, d[1]);
            o3[2] = finish(r + 2, d[2]);
        }
        let r0 = 3 * out3.len();
        for (i, o) in rest.iter_mut().enumerate() {
            let r = r0 + i;
            let d = crate::simd::dot_row_packed(&w.q[r * cols..(r + 1) * cols], xs, groups);
            *o = finish(r, d);
        }
    }

    /// Wrapping `Σ a·b` of a few leftover columns.
    #[cfg(all(target_arch = "arm", tinyssm_arm_dsp))]
    #[inline(always)]
    fn tail_dot(a: &[i8], b: &[i8]) -> i32 {
        let mut t = 0i32;
        for (&x, &y) in a.iter().zip(b) {
            t = t.wrapping_add(x as i32 * y as i32);
        }
        t
    }

    /// Portable int8 · int8 (no SIMD intrinsics; the fallback on other targets).
    /// Adjacent products are paired before widening — each pair is at most
    /// 2·128² = 2¹⁵ — which is the shape of a 16-bit multiply-add-pairs instruction,
    /// into 16 independent i32 accumulators (wrapping, as the reference would).
    #[inline]
    pub fn dot_i8_i8_portable(a: &[i8], b: &[i8]) -> i32 {
        let n = a.len().min(b.len());
        let (a, b) = (&a[..n], &b[..n]);
        let (a16, ta) = a.as_chunks::<16>();
        let (b16, tb) = b.as_chunks::<16>();
        let mut acc = [0i32; 16];
        for (x, y) in a16.iter().zip(b16) {
            for j in 0..16 {
                acc[j] = acc[j].wrapping_add((x[j] as i16 * y[j] as i16) as i32);
            }
        }
        let mut t = 0i32;
        for (&x, &y) in ta.iter().zip(tb) {
            t = t.wrapping_add(x as i32 * y as i32);
        }
        acc.iter().fold(t, |s, &v| s.wrapping_add(v))
    }

    /// Portable int8 · int16 with 8 independent accumulators (wrapping).
    #[inline]
    pub fn dot_i8_i16_portable(w: &[i8], x: &[i16]) -> i32 {
        let n = w.len().min(x.len());
        let (w8, tw) = w[..n].as_chunks::<8>();
        let (x8, tx) = x[..n].as_chunks::<8>();
        let mut acc = [0i32; 8];
        for (a, b) in w8.iter().zip(x8) {
            for j in 0..8 {
                acc[j] = acc[j].wrapping_add(a[j] as i32 * b[j] as i32);
            }
        }
        let mut t = 0i32;
        for (&a, &b) in tw.iter().zip(tx) {
            t = t.wrapping_add(a as i32 * b as i32);
        }
        acc.iter().fold(t, |s, &v| s.wrapping_add(v))
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

    /// ln(1 + t) for `t > −1`, branch-free so loops vectorize: `u = 1 + t` rounds, and
    /// `ln(u) · t / (u − 1)` corrects for that rounding (exact `t` when `u == 1`);
    /// `ln(u) = e·ln 2 + ln(m)` from `u = m·2ᵉ`, `m` in [√½, √2) (exponent and mantissa
    /// by bit arithmetic), `ln(m) = 2·atanh(s)`, `s = (m − 1)/(m + 1)`, `|s| ≤ 0.172`, to
    /// s⁹. Max relative error ≈ 3e-7 against `libm::log1pf` (tested); +inf gives +inf,
    /// NaN gives NaN.
    #[inline(always)]
    pub fn log1p(t: f32) -> f32 {
        const SQRT2: f32 = core::f32::consts::SQRT_2;
        const LN2: f32 = core::f32::consts::LN_2;
        let u = 1.0 + t;
        let bits = u.to_bits();
        let e = ((bits >> 23) & 0xff) as i32 - 127;
        let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
        let big = m > SQRT2;
        let m = if big { 0.5 * m } else { m };
        let e = e + big as i32;
        let s = (m - 1.0) / (m + 1.0);
        let s2 = s * s;
        let series = 1.0 + s2 * (1.0 / 3.0 + s2 * (0.2 + s2 * (1.0 / 7.0 + s2 * (1.0 / 9.0))));
        let ln_u = e as f32 * LN2 + 2.0 * s * series;
        let d = u - 1.0;
        let y = if d == 0.0 { t } else { ln_u * (t / d) };
        // An infinite `u` has no mantissa to work with: ln(1 + inf) = inf.
        if u == f32::INFINITY {
            u
        } else if t.is_nan() {
            t
        } else {
            y
        }
    }

    /// softplus(x) = ln(1 + eˣ) as `max(x, 0) + ln(1 + e^−|x|)` (the log argument stays
    /// in [0, 1], no overflow, no threshold), branch-free: the reference's
    /// `x > 20 ? x : log1pf(expf(x))` within a few ulps (tested). NaN stays NaN.
    #[inline(always)]
    pub fn softplus(x: f32) -> f32 {
        let y = x.max(0.0) + log1p(exp(-x.abs()));
        if x.is_nan() {
            x
        } else {
            y
        }
    }

    /// SiLU `x / (1 + e⁻ˣ)` with [`exp`], inlined so that loops over it vectorize.
    #[inline(always)]
    pub fn silu(x: f32) -> f32 {
        x / (1.0 + exp(-x))
    }

    /// One channel of the selective scan: `h ← exp(dt·a) ⊙ h + (dt·b)·u` (a plain loop,
    /// which vectorizes), then `C·h` ([`dot_short`]: four lanes summed pairwise).
    #[inline(always)]
    pub fn scan_row(h: &mut [f32], a: &[f32], b: &[f32], c: &[f32], dt: f32, u: f32) -> f32 {
        for ((h, &a), &b) in h.iter_mut().zip(a).zip(b) {
            *h = exp(dt * a) * *h + (dt * b) * u;
        }
        dot_short(h, c)
    }
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
        // Unreachable: float steps refuse integer-only models before any kernel runs.
        Weights::Int(_) => 0.0,
    }
}

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
fn matvec_w8a8(k: Kernels, w: QuantI8<'_>, x: &[f32], bias: Option<&[f32]>, out: &mut [f32]) {
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

/// f16 → f32 for one element (used by embedding lookups).
#[inline]
pub fn f16_to_f32(x: f16) -> f32 {
    x.to_f32()
}

#[cfg(test)]
mod tests {

    /// The branch-free f16 conversion of the fast kernels is exact for all 65,536 bit
    /// patterns (the same f32 bits as `half`'s portable conversion, NaNs quieted).
    #[test]
    fn fast_f16_to_f32_is_exact_for_every_f16() {
        for h in 0..=u16::MAX {
            let want = half::f16::from_bits(h).to_f32_const().to_bits();
            assert_eq!(fast::f16_to_f32(h).to_bits(), want, "{h:#06x}");
        }
    }

    /// The F16C dot product (where this CPU has it) gives the bits of converting the
    /// weights first and calling `fast::dot`, at every length around its breakpoints.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn f16c_dot_matches_the_converted_dot_bit_for_bit() {
        let Some(t) = crate::simd::F16c::detect() else {
            std::println!("skipped: no F16C on this CPU");
            return;
        };
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        for n in (0..=70).chain([127, 128, 129, 200]) {
            for _ in 0..20 {
                // Finite halves (no NaN or infinity), inputs of mixed magnitude.
                let w: std::vec::Vec<u16> = (0..n)
                    .map(|_| {
                        let h = rnd() as u16;
                        if h & 0x7c00 == 0x7c00 {
                            h & !0x4000
                        } else {
                            h
                        }
                    })
                    .collect();
                let x: std::vec::Vec<f32> = (0..n)
                    .map(|_| (rnd() >> 40) as f32 / (1u64 << 24) as f32 * 4.0 - 2.0)
                    .collect();
                let wf: std::vec::Vec<f32> = w.iter().map(|&h| fast::f16_to_f32(h)).collect();
                let want = fast::dot(&wf, &x);
                let got = crate::simd::dot_f16_f16c(t, &w, &x, fast::f16_to_f32);
                assert_eq!(got.to_bits(), want.to_bits(), "n {n}: {got} vs {want}");
                let halves: std::vec::Vec<f16> = w.iter().map(|&h| f16::from_bits(h)).collect();
                assert_eq!(
                    fast::dot_f16(&halves, &x).to_bits(),
                    {
                        let mut buf = std::vec![0f32; n];
                        fast::f16_slice_to_f32(&w, &mut buf);
                        // Past one block, block by block (as `dot_blocks`).
                        buf.chunks(64)
                            .zip(x.chunks(64))
                            .fold(0f32, |acc, (a, b)| acc + fast::dot(a, b))
                    }
                    .to_bits(),
                    "n {n}"
                );
            }
        }
    }
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    #[test]
    fn int4_nibbles_decode_twos_complement() {
        let mut g = [0u8; 16];
        for (i, v) in (-8i8..8).enumerate() {
            let nib = (v as u8) & 0x0f;
            g[i / 2] |= if i % 2 == 0 { nib } else { nib << 4 };
        }
        for (i, v) in (-8i8..8).enumerate() {
            assert_eq!(i4_at(&g, i), v);
        }
    }

    /// Rows swept whole (x86: up to 4096 columns) and the chunk-by-chunk path past that:
    /// the reference's bits either way, extreme weights (-128, 127) included.
    #[test]
    fn w8a8_wide_rows_match_reference() {
        for (rows, cols) in [(3, 4095), (6, 4096), (5, 4097), (2, 5000), (7, 513)] {
            let q: std::vec::Vec<i8> = (0..rows * cols)
                .map(|i| match i % 97 {
                    0 => -128,
                    1 => 127,
                    k => (k as i32 * 37 % 255 - 127) as i8,
                })
                .collect();
            let scale: std::vec::Vec<f32> = (0..rows).map(|r| 0.01 + r as f32 * 1e-3).collect();
            let x: std::vec::Vec<f32> = (0..cols)
                .map(|c| ((c * 7919) % 1000) as f32 / 300.0 - 1.7)
                .collect();
            let bias: std::vec::Vec<f32> = (0..rows).map(|r| r as f32 * 0.5 - 1.0).collect();
            let w = Weights::I8(QuantI8 {
                q: &q,
                scale: &scale,
                cols,
                act: ActQuant::DynamicI8,
            });
            let mut yr = std::vec![f32::NAN; rows];
            let mut yf = std::vec![f32::NAN; rows];
            for b in [None, Some(&bias[..])] {
                matvec(Kernels::Reference, w, cols, &x, b, &mut yr);
                matvec(Kernels::Fast, w, cols, &x, b, &mut yf);
                let bits = |v: &[f32]| v.iter().map(|a| a.to_bits()).collect::<std::vec::Vec<_>>();
                assert_eq!(bits(&yr), bits(&yf), "{rows}x{cols}");
            }
        }
    }

    /// The x86-64 rows kernels of the w8a8 product, SSE2 and (where this CPU has it) AVX2,
    /// against the reference dot, at every tail length around the 16-column blocks.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn x86_rows_kernels_match_reference() {
        let avx2 = crate::simd::Avx2::detect();
        std::println!(
            "AVX2 rows kernel: {}",
            match avx2 {
                Some(_) => "tested",
                None => "not run: this CPU has no AVX2 (SSE2 kernel tested)",
            }
        );
        for n in [0usize, 1, 7, 15, 16, 17, 31, 32, 33, 100, 511, 512] {
            let byte = |i: usize, k: usize| match (i * 31 + k * 17) % 101 {
                0 => -128i8,
                1 => 127,
                v => (v as i32 * 5 - 250) as i8,
            };
            let rows: [std::vec::Vec<i8>; 4] =
                core::array::from_fn(|k| (0..n).map(|i| byte(i, k + 1)).collect());
            let qx: std::vec::Vec<i8> = (0..n).map(|i| byte(i, 0)).collect();
            let want: [i32; 4] = core::array::from_fn(|k| reference::dot_i8_i8(&rows[k], &qx));
            let rs: [&[i8]; 4] = core::array::from_fn(|k| &rows[k][..]);
            let mut xs = std::vec![0i16; n];
            crate::simd::split_even_odd(&qx, &mut xs);
            assert_eq!(
                crate::simd::dot_rows_i8_i8(rs, &qx, &xs),
                want,
                "sse2 n={n}"
            );
            assert_eq!(crate::simd::dot_rows_i8_i8([rs[3]], &qx, &xs), [want[3]]);
            if let Some(t) = avx2 {
                crate::simd::widen_i8(&qx, &mut xs);
                let got = crate::simd::dot_rows_i8_i8_avx2(t, rs, &qx, &xs);
                assert_eq!(got, want, "avx2 n={n}");
                let got = crate::simd::dot_rows_i8_i8_avx2(t, [rs[1], rs[2]], &qx, &xs);
                assert_eq!(got, [want[1], want[2]]);
            }
        }
    }

    #[test]
    fn fast_softplus_log1p_edges() {
        // At the fast exp's flush point (x = −87.33066 was once a proptest failure).
        let r = softplus(Kernels::Reference, -87.33066);
        assert!(softplus(Kernels::Fast, -87.33066) <= r && r < 2.0 * f32::MIN_POSITIVE);
        for k in [Kernels::Reference, Kernels::Fast] {
            assert!(softplus(k, f32::NAN).is_nan());
            assert_eq!(softplus(k, f32::INFINITY), f32::INFINITY);
            assert_eq!(softplus(k, f32::NEG_INFINITY), 0.0);
            assert_eq!(softplus(k, 1e6), 1e6);
            assert!(silu(k, f32::NAN).is_nan());
            assert_eq!(silu(k, 0.0), 0.0);
        }
        assert_eq!(fast::log1p(0.0), 0.0);
        assert_eq!(fast::log1p(f32::INFINITY), f32::INFINITY);
        assert!(fast::log1p(f32::NAN).is_nan());
        // Below 2^-24, 1 + t rounds to 1 and log1p(t) = t.
        assert_eq!(fast::log1p(1e-9), 1e-9);
    }

    #[test]
    fn w8a8_edge_inputs() {
        let q = [1i8, -2, 3, 127];
        let scale = [0.5f32];
        let w = Weights::I8(QuantI8 {
            q: &q,
            scale: &scale,
            cols: 4,
            act: ActQuant::DynamicI8,
        });
        // All-zero input: exactly the bias.
        let mut y = [f32::NAN];
        matvec(Kernels::Fast, w, 4, &[0.0; 4], Some(&[0.25]), &mut y);
        assert_eq!(y[0], 0.25);
        // NaN / inf propagate instead of vanishing in the quantizer.
        matvec(
            Kernels::Fast,
            w,
            4,
            &[1.0, f32::NAN, 0.0, 0.0],
            None,
            &mut y,
        );
        assert!(y[0].is_nan());
        matvec(
            Kernels::Reference,
            w,
            4,
            &[1.0, f32::INFINITY, 0.0, 0.0],
            None,
            &mut y,
        );
        assert!(!y[0].is_finite());
        // An input that quantizes exactly: x = (127, 0, -127, 63.5) → q = (127, 0, -127, 64)
        // (63.5 rounds half away from zero), scale 1.
        matvec(
            Kernels::Reference,
            w,
            4,
            &[127.0, 0.0, -127.0, 63.5],
            None,
            &mut y,
        );
        assert_eq!(y[0], 0.5 * (127.0 - 3.0 * 127.0 + 127.0 * 64.0));
    }

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

    /// i8 values with the extremes −128 and 127 (and 0) much more often than uniform.
    fn i8_ext() -> impl Strategy<Value = i8> {
        prop_oneof![
            Just(-128i8),
            Just(127i8),
            Just(0i8),
            Just(-127i8),
            any::<i8>()
        ]
    }

    fn i16_ext() -> impl Strategy<Value = i16> {
        prop_oneof![Just(i16::MIN), Just(i16::MAX), Just(0i16), any::<i16>()]
    }

    /// Σ a·b in i64, then wrapped to i32 as the kernels' modular sum.
    fn wrapped(p: impl Iterator<Item = i64>) -> i32 {
        p.sum::<i64>() as i32
    }

    /// Every integer dot (reference, fast, portable) on `a`/`b` and their unaligned
    /// sub-slices, against the exact sum.
    fn check_int_dots(a: &[i8], b: &[i8], x: &[i16]) {
        for off in [0usize, 1, 3, 7] {
            let (a, b, x) = (
                a.get(off..).unwrap_or(&[]),
                b.get(off..).unwrap_or(&[]),
                x.get(off..).unwrap_or(&[]),
            );
            let want = wrapped(a.iter().zip(b).map(|(&p, &q)| p as i64 * q as i64));
            assert_eq!(reference::dot_i8_i8(a, b), want, "reference, n {}", a.len());
            assert_eq!(fast::dot_i8_i8(a, b), want, "fast, n {}", a.len());
            assert_eq!(
                fast::dot_i8_i8_portable(a, b),
                want,
                "portable, n {}",
                a.len()
            );
            let want = wrapped(a.iter().zip(x).map(|(&p, &q)| p as i64 * q as i64));
            assert_eq!(
                reference::dot_i8_i16(a, x),
                want,
                "reference i16, n {}",
                a.len()
            );
            assert_eq!(fast::dot_i8_i16(a, x), want, "fast i16, n {}", a.len());
            assert_eq!(
                fast::dot_i8_i16_portable(a, x),
                want,
                "portable i16, n {}",
                a.len()
            );
        }
        // Unequal lengths: the shorter one counts.
        if !a.is_empty() {
            let short = &b[..b.len() - 1];
            assert_eq!(fast::dot_i8_i8(a, short), reference::dot_i8_i8(a, short));
            let xs = &x[..x.len() - 1];
            assert_eq!(fast::dot_i8_i16(a, xs), reference::dot_i8_i16(a, xs));
        }
    }

    #[test]
    fn fast_quantize_act_matches_reference() {
        // Every f32 within 300 ulps of each integer and half-integer in −130..=130, the
        // specials, and a sweep of scales.
        let mut xs: Vec<f32> = std::vec![
            0.0,
            -0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            f32::MAX,
            f32::MIN,
            f32::MIN_POSITIVE,
            -f32::MIN_POSITIVE,
            1e-45,
            -1e-45,
        ];
        for k in -260i32..=260 {
            let c = k as f32 * 0.5;
            let mut up = c;
            let mut down = c;
            for _ in 0..300 {
                xs.push(up);
                xs.push(down);
                up = f32::from_bits(if up >= 0.0 {
                    up.to_bits() + 1
                } else {
                    up.to_bits() - 1
                });
                down = if down == 0.0 {
                    -1e-45
                } else if down > 0.0 {
                    f32::from_bits(down.to_bits() - 1)
                } else {
                    f32::from_bits(down.to_bits() + 1)
                };
            }
        }
        let (mut r, mut f) = (std::vec![0i8; xs.len()], std::vec![0i8; xs.len()]);
        for inv in [1.0f32, 0.37, 3.1, 1e-30, 1e30, f32::INFINITY] {
            quantize_act(&xs, inv, &mut r);
            fast::quantize_act(&xs, inv, &mut f);
            for ((a, b), x) in r.iter().zip(&f).zip(&xs) {
                assert_eq!(a, b, "x {x:e} inv {inv:e}");
                // The truncating form the Cortex-M DSP path uses (where `inv · 2¹⁶` is
                // finite, as that path requires).
                if (inv * 65536.0).is_finite() {
                    let t = fast::quantize_one(*x, inv * 65536.0);
                    assert_eq!(*a as i32, t, "quantize_one: x {x:e} inv {inv:e}");
                }
            }
        }
    }

    #[test]
    fn fast_act_absmax_matches_reference() {
        let specials = [
            0.0f32,
            -0.0,
            1e-45,
            -1e-45,
            f32::MIN_POSITIVE,
            1.0,
            -3.5,
            f32::MAX,
            f32::MIN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            -f32::NAN,
        ];
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        for n in 0..40usize {
            for _ in 0..50 {
                let x: Vec<f32> = (0..n)
                    .map(|_| {
                        s ^= s << 13;
                        s ^= s >> 7;
                        s ^= s << 17;
                        match s % 4 {
                            0 => specials[(s >> 8) as usize % specials.len()],
                            1 => f32::from_bits((s >> 16) as u32),
                            _ => ((s >> 20) as f32 / (1u64 << 44) as f32) - 0.5,
                        }
                    })
                    .collect();
                let (r, f) = (act_absmax(&x), fast::act_absmax(&x));
                assert_eq!(r.map(f32::to_bits), f.map(f32::to_bits), "{x:?}");
            }
        }
    }

    #[test]
    fn int_dots_every_length_to_300_at_the_extremes() {
        let mut s = 0x2545_f491_4f6c_dd1du64;
        let mut rnd = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        for n in 0..=300usize {
            for (va, vb, vx) in [
                (-128i8, -128i8, i16::MIN),
                (-128, 127, i16::MAX),
                (127, 127, -1),
            ] {
                check_int_dots(&std::vec![va; n], &std::vec![vb; n], &std::vec![vx; n]);
            }
            let a: Vec<i8> = (0..n).map(|_| rnd() as i8).collect();
            let b: Vec<i8> = (0..n).map(|_| rnd() as i8).collect();
            let x: Vec<i16> = (0..n).map(|_| rnd() as i16).collect();
            check_int_dots(&a, &b, &x);
        }
    }

    #[test]
    fn int_dots_at_the_overflow_bound() {
        // The longest i8·i8 sums that cannot wrap: 131,071 × (−128)² and 133,144 × 127².
        for (n, v, w) in [
            (131_071usize, -128i8, -128i8),
            (133_144, 127, 127),
            (133_144, -127, 127),
        ] {
            let (a, b) = (std::vec![v; n], std::vec![w; n]);
            let want = n as i64 * v as i64 * w as i64;
            assert!(want.unsigned_abs() <= i32::MAX as u64);
            assert_eq!(reference::dot_i8_i8(&a, &b) as i64, want);
            assert_eq!(fast::dot_i8_i8(&a, &b) as i64, want);
            assert_eq!(fast::dot_i8_i8_portable(&a, &b) as i64, want);
        }
        // Past it the fast kernels wrap as an i32 sum does (the reference's `+=` would
        // panic here in a debug build, so the exact sum is wrapped instead).
        for n in [131_072usize, 131_073, 300_001] {
            let a = std::vec![-128i8; n];
            let want = (n as i64 * 16384) as i32;
            assert_eq!(fast::dot_i8_i8(&a, &a), want, "n {n}");
            assert_eq!(fast::dot_i8_i8_portable(&a, &a), want, "n {n}");
        }
        // i8·i16: exact up to 511 × 128·32768; wrapping (in every kernel) beyond.
        for n in [511usize, 512, 513, 516, 517, 5000] {
            let (w, x) = (std::vec![-128i8; n], std::vec![i16::MIN; n]);
            let want = (n as i64 * 128 * 32768) as i32;
            assert_eq!(reference::dot_i8_i16(&w, &x), want, "n {n}");
            assert_eq!(fast::dot_i8_i16(&w, &x), want, "n {n}");
            assert_eq!(fast::dot_i8_i16_portable(&w, &x), want, "n {n}");
        }
    }

    proptest! {
        #[test]
        fn int_dots_fast_match_reference(
            v in proptest::collection::vec((i8_ext(), i8_ext(), i16_ext()), 0..=300),
        ) {
            let a: Vec<i8> = v.iter().map(|p| p.0).collect();
            let b: Vec<i8> = v.iter().map(|p| p.1).collect();
            let x: Vec<i16> = v.iter().map(|p| p.2).collect();
            check_int_dots(&a, &b, &x);
        }

        #[test]
        fn fast_quantize_act_matches_reference_random(
            x in proptest::collection::vec(any::<f32>(), 0..64),
            inv in any::<f32>(),
        ) {
            let (mut r, mut f) = (std::vec![0i8; x.len()], std::vec![0i8; x.len()]);
            quantize_act(&x, inv, &mut r);
            fast::quantize_act(&x, inv, &mut f);
            if (inv * 65536.0).is_finite() {
                for (a, v) in r.iter().zip(&x) {
                    prop_assert_eq!(*a as i32, fast::quantize_one(*v, inv * 65536.0));
                }
            }
            prop_assert_eq!(r, f);
        }

        #[test]
        fn w8a8_chunk_matches_reference_rows(
            rows in 0usize..11,
            v in proptest::collection::vec(i8_ext(), 0..=300),
            w in proptest::collection::vec(i8_ext(), 0..=3300),
            c0 in 0usize..3,
        ) {
            let m = v.len().saturating_sub(c0);
            let cols = c0 + m;
            let q: Vec<i8> = (0..rows * cols).map(|i| w.get(i % w.len().max(1)).copied().unwrap_or(-128)).collect();
            let qx = &v[c0.min(v.len())..];
            let mut got: Vec<f32> = (0..rows).map(|r| r as f32 * 0.5).collect();
            let mut want = got.clone();
            fast::w8a8_chunk(&q, cols, c0, qx, &mut got);
            for (r, o) in want.iter_mut().enumerate() {
                *o += reference::dot_i8_i8(&q[r * cols + c0..(r + 1) * cols], qx) as f32;
            }
            let bits = |v: &[f32]| v.iter().map(|a| a.to_bits()).collect::<Vec<_>>();
            prop_assert_eq!(bits(&got), bits(&want));
        }

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
        fn quantized_dots_fast_match_reference(
            v in proptest::collection::vec((-10.0f32..10.0, -127i8..=127, any::<u8>()), 0..300),
            scale in 1e-4f32..1.0,
        ) {
            let x: Vec<f32> = v.iter().map(|p| p.0).collect();
            let q: Vec<i8> = v.iter().map(|p| p.1).collect();
            let mag: f32 = x.iter().zip(&q).map(|(a, b)| (a * *b as f32).abs()).sum::<f32>() * scale;
            let (r, f) = (reference::dot_i8(&q, scale, &x), fast::dot_i8(&q, scale, &x));
            prop_assert!((r - f).abs() <= 1e-5 * mag.max(1.0), "i8 {} vs {}", r, f);
            // int8 × int8: exact in both.
            let qx: Vec<i8> = v.iter().map(|p| p.2 as i8).collect();
            prop_assert_eq!(reference::dot_i8_i8(&q, &qx), fast::dot_i8_i8(&q, &qx));
            let want: i64 = q.iter().zip(&qx).map(|(&a, &b)| a as i64 * b as i64).sum();
            prop_assert_eq!(reference::dot_i8_i8(&q, &qx) as i64, want);
            // bf16
            let b16: Vec<bf16> = x.iter().map(|&a| bf16::from_f32(a * 0.3)).collect();
            let (r, f) = (reference::dot_bf16(&b16, &x), fast::dot_bf16(&b16, &x));
            let magb: f32 = b16.iter().zip(&x).map(|(a, b)| (a.to_f32() * b).abs()).sum();
            prop_assert!((r - f).abs() <= 1e-5 * magb.max(1.0));
            // int4: random nibbles, one f16 scale per group, a ragged last group.
            let n = x.len();
            let groups = n.div_ceil(32);
            let packed: Vec<u8> = (0..groups * 16).map(|i| v.get(i % n.max(1)).map_or(0, |p| p.2)).collect();
            let scales: Vec<f16> = (0..groups).map(|g| f16::from_f32(scale * (1.0 + g as f32))).collect();
            let r = reference::dot_i4(&packed, &scales, &x);
            let f = fast::dot_i4(&packed, &scales, &x);
            let mut want = 0f64;
            for (c, &xc) in x.iter().enumerate() {
                let g = &packed[(c / 32) * 16..(c / 32) * 16 + 16];
                want += i4_at(g, c % 32) as f64 * scales[c / 32].to_f32() as f64 * xc as f64;
            }
            let mag4 = 8.0 * 10.0 * n as f32 * scale * (groups as f32 + 1.0);
            prop_assert!((r - f).abs() <= 1e-5 * mag4.max(1.0), "i4 {} vs {}", r, f);
            prop_assert!((r as f64 - want).abs() <= 1e-5 * mag4.max(1.0) as f64, "i4 {} vs f64 {}", r, want);
        }

        #[test]
        fn w8a8_matvec_is_kernel_independent_and_close_to_float(
            rows in 1usize..9,
            cols in 1usize..2200,
            seed in any::<u64>(),
        ) {
            let mut s = seed | 1;
            let mut rnd = || {
                s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            };
            let q: Vec<i8> = (0..rows * cols).map(|_| (rnd() * 127.0) as i8).collect();
            let scale: Vec<f32> = (0..rows).map(|_| 0.01 + rnd().abs() * 0.05).collect();
            let x: Vec<f32> = (0..cols).map(|_| rnd() * 3.0).collect();
            let bias: Vec<f32> = (0..rows).map(|_| rnd()).collect();
            let w = |act| Weights::I8(QuantI8 { q: &q, scale: &scale, cols, act });
            let mut yr = std::vec![f32::NAN; rows];
            let mut yf = std::vec![f32::NAN; rows];
            let mut yfl = std::vec![f32::NAN; rows];
            matvec(Kernels::Reference, w(ActQuant::DynamicI8), cols, &x, Some(&bias), &mut yr);
            matvec(Kernels::Fast, w(ActQuant::DynamicI8), cols, &x, Some(&bias), &mut yf);
            matvec(Kernels::Reference, w(ActQuant::Float), cols, &x, Some(&bias), &mut yfl);
            let bits = |v: &[f32]| v.iter().map(|a| a.to_bits()).collect::<std::vec::Vec<_>>();
            prop_assert_eq!(bits(&yr), bits(&yf));
            // Activation rounding moves each term by at most half a step of max|x|/127.
            let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
            for r in 0..rows {
                let l1: f32 = q[r * cols..(r + 1) * cols].iter().map(|&v| (v as f32).abs()).sum::<f32>() * scale[r];
                let bound = 0.5 * amax / 127.0 * l1 * 1.001 + 1e-4 * (yfl[r].abs() + 1.0);
                prop_assert!((yr[r] - yfl[r]).abs() <= bound, "row {}: {} vs {} (bound {})", r, yr[r], yfl[r], bound);
            }
        }

        #[test]
        fn static_w8a8_matvec_is_kernel_independent_and_saturates(
            rows in 1usize..9,
            cols in 1usize..2200,
            seed in any::<u64>(),
            spread in 0.25f32..2.0,
            special in 0usize..4,
        ) {
            let mut s = seed | 1;
            let mut rnd = || {
                s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            };
            let q: Vec<i8> = (0..rows * cols).map(|_| (rnd() * 127.0) as i8).collect();
            let scale: Vec<f32> = (0..rows).map(|_| 0.01 + rnd().abs() * 0.05).collect();
            let mut x: Vec<f32> = (0..cols).map(|_| rnd() * 3.0).collect();
            let bias: Vec<f32> = (0..rows).map(|_| rnd()).collect();
            // The bound: from a quarter of the input's range (most values saturate) to twice it.
            let xmax = 3.0 * spread;
            // A non-finite input quantizes as NaN → 0 and ±inf → ±127 (no propagation).
            let i = (seed as usize >> 3) % cols;
            let (special_in, as_finite) = match special {
                1 => (f32::NAN, 0.0),
                2 => (f32::INFINITY, xmax),
                3 => (f32::NEG_INFINITY, -xmax),
                _ => (x[i], x[i].clamp(-xmax, xmax)),
            };
            x[i] = special_in;
            let w = |act| Weights::I8(QuantI8 { q: &q, scale: &scale, cols, act });
            let mut yr = std::vec![f32::NAN; rows];
            let mut yf = std::vec![f32::NAN; rows];
            let mut yfl = std::vec![f32::NAN; rows];
            let act = ActQuant::StaticI8 { xmax };
            matvec(Kernels::Reference, w(act), cols, &x, Some(&bias), &mut yr);
            matvec(Kernels::Fast, w(act), cols, &x, Some(&bias), &mut yf);
            let bits = |v: &[f32]| v.iter().map(|a| a.to_bits()).collect::<std::vec::Vec<_>>();
            prop_assert_eq!(bits(&yr), bits(&yf));
            // Against the float product of the input clipped to ±xmax: each term moves by at
            // most half a step of xmax/127.
            let mut xc: Vec<f32> = x.iter().map(|v| v.clamp(-xmax, xmax)).collect();
            xc[i] = as_finite;
            matvec(Kernels::Reference, w(ActQuant::Float), cols, &xc, Some(&bias), &mut yfl);
            for r in 0..rows {
                prop_assert!(yr[r].is_finite());
                let l1: f32 = q[r * cols..(r + 1) * cols].iter().map(|&v| (v as f32).abs()).sum::<f32>() * scale[r];
                let bound = 0.5 * xmax / 127.0 * l1 * 1.001 + 1e-4 * (yfl[r].abs() + 1.0);
                prop_assert!((yr[r] - yfl[r]).abs() <= bound, "row {}: {} vs {} (bound {})", r, yr[r], yfl[r], bound);
            }
        }

        #[test]
        fn fast_log1p_relative_error(t in prop_oneof![0.0f32..1e-6, 0.0f32..1.0, 0.0f32..1e30, -0.999f32..0.0]) {
            let r = libm::log1pf(t);
            let f = fast::log1p(t);
            prop_assert!((f - r).abs() <= 4e-7 * r.abs() + f32::MIN_POSITIVE, "{} {} {}", t, f, r);
        }

        #[test]
        fn fast_softplus_matches_reference(x in prop_oneof![-90.0f32..90.0, -1.0f32..1.0, 15.0f32..25.0]) {
            let r = softplus(Kernels::Reference, x);
            let f = softplus(Kernels::Fast, x);
            // Below −87.33 the fast exp flushes to 0 (its documented range): there
            // r = e^x < e^−87.33 < 1.2e-38, under two smallest normals.
            prop_assert!((f - r).abs() <= 1e-6 * r.abs() + 2.0 * f32::MIN_POSITIVE, "{} {} {}", x, f, r);
        }

        #[test]
        fn fast_scan_row_matches_reference(
            n in 1usize..40,
            dt in 0.0f32..2.0,
            u in -3.0f32..3.0,
            seed in any::<u64>(),
        ) {
            let mut s = seed | 1;
            let mut rnd = || {
                s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            };
            let h0: std::vec::Vec<f32> = (0..n).map(|_| rnd() * 4.0).collect();
            let a: std::vec::Vec<f32> = (0..n).map(|_| -8.0 * rnd().abs()).collect();
            let b: std::vec::Vec<f32> = (0..n).map(|_| rnd()).collect();
            let c: std::vec::Vec<f32> = (0..n).map(|_| rnd()).collect();
            let mut hf = h0.clone();
            let yf = fast::scan_row(&mut hf, &a, &b, &c, dt, u);
            let mut hr = h0;
            let mut yr = 0f32;
            let mut mag = 0f32;
            for i in 0..n {
                hr[i] = reference::exp(dt * a[i]) * hr[i] + (dt * b[i]) * u;
                yr += hr[i] * c[i];
                mag += (hr[i] * c[i]).abs();
            }
            for (f, r) in hf.iter().zip(&hr) {
                prop_assert!((f - r).abs() <= 1e-6 * (r.abs() + 1.0), "h {} vs {}", f, r);
            }
            prop_assert!((yf - yr).abs() <= 1e-6 * (mag + 1.0), "y {} vs {}", yf, yr);
        }

        #[test]
        fn fast_exp_relative_error(x in -87.0f32..88.0) {
            let r = libm::expf(x);
            prop_assert!(((fast::exp(x) - r) / r).abs() < 4e-7);
        }
    }
}
