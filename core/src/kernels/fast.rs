//! Optimised kernels, each tested against its reference in [`super::reference`].

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
    #[cfg(target_arch = "x86_64")]
    return crate::simd::dot_f32_sse(a, b);
    #[cfg(not(target_arch = "x86_64"))]
    dot_portable(a, b)
}

/// [`dot`] for 32 terms or more, in portable code (the order `simd::dot_f32_sse` keeps).
#[inline]
pub fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
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

/// `out = W·x (+ bias)` for an f32 matrix (`cols` per row): each row exactly as [`dot`]
/// computes it (the same bits as a call per row), without the per-row dispatch. A
/// one-column matrix (an S5 layer's `B̄` on one channel) is one scaled copy, which
/// vectorizes: `dot` of one term is `0 + (0 + w·x)`, i.e. `w·x + 0`.
#[inline]
pub fn matvec_f32(w: &[f32], cols: usize, x: &[f32], bias: Option<&[f32]>, out: &mut [f32]) {
    if cols == 1 {
        let x0 = x[0];
        match bias {
            Some(b) => {
                for ((o, &wv), &bv) in out.iter_mut().zip(w).zip(b) {
                    *o = (wv * x0 + 0.0) + bv;
                }
            }
            None => {
                for (o, &wv) in out.iter_mut().zip(w) {
                    *o = wv * x0 + 0.0;
                }
            }
        }
        return;
    }
    let rows = w.chunks_exact(cols.max(1));
    match bias {
        Some(b) => {
            for ((o, row), &bv) in out.iter_mut().zip(rows).zip(b) {
                *o = dot(row, x) + bv;
            }
        }
        None => {
            for (o, row) in out.iter_mut().zip(rows) {
                *o = dot(row, x);
            }
        }
    }
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
/// the compiler to split the accumulators into half-width vectors (x86-64 takes
/// `simd::dot_f32_sse` instead, whose sum stays in registers).
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
///
/// On hard-float Cortex-M targets the FPU's own conversion instead
/// ([`crate::simd::f16_to_f32_vcvt`], the same value).
#[inline(always)]
pub fn f16_to_f32(h: u16) -> f32 {
    #[cfg(all(target_arch = "arm", tinyssm_arm_fp16))]
    {
        crate::simd::f16_to_f32_vcvt(h)
    }
    #[cfg(not(all(target_arch = "arm", tinyssm_arm_fp16)))]
    {
        f16_to_f32_portable(h)
    }
}

/// How this build's [`f16_to_f32`] converts.
#[cfg(all(target_arch = "arm", tinyssm_arm_fp16))]
pub const F16_PATH: &str = "FPU (VCVTB.F32.F16)";
/// How this build's [`f16_to_f32`] converts.
#[cfg(not(all(target_arch = "arm", tinyssm_arm_fp16)))]
pub const F16_PATH: &str = "integer operations";

/// [`f16_to_f32`] with integer operations (every target; tested against `half` for all
/// 65,536 inputs).
#[inline(always)]
pub fn f16_to_f32_portable(h: u16) -> f32 {
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
    const G: usize = crate::dtype::I4_GROUP;
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
/// which vectorizes; `a` f32 or f16, [`super::Elem`]), then `C·h` (`dot_short`: four
/// lanes summed pairwise).
#[inline(always)]
pub fn scan_row<A: super::Elem>(
    h: &mut [f32],
    a: &[A],
    b: &[f32],
    c: &[f32],
    dt: f32,
    u: f32,
) -> f32 {
    for ((h, &a), &b) in h.iter_mut().zip(a).zip(b) {
        *h = exp(dt * a.get()) * *h + (dt * b) * u;
    }
    dot_short(h, c)
}
