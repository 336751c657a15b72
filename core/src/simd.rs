//! Integer dot products with SIMD instructions: the crate's one module with `unsafe` code
//! (`lib.rs` denies it everywhere else, and every block here carries a `// SAFETY:` note).
//!
//! - **x86-64**: SSE2, which every x86-64 CPU has (no runtime detection). Bytes are
//!   sign-extended to 16 bits by shifts and multiplied pairwise into 32-bit lanes with
//!   `pmaddwd` (`_mm_madd_epi16`). With AVX2 enabled at compile time
//!   (`-C target-feature=+avx2`, `-C target-cpu=x86-64-v3`) the same on 256-bit registers
//!   with `vpmovsxbw` sign extension.
//! - **Cortex-M4/M7 (`thumbv7em`), and M33/M35P/M55 built with `-C target-feature=+dsp`**
//!   (`cfg(tinyssm_arm_dsp)`, set by `build.rs`): `SXTB16` sign-extends two bytes of a word
//!   into two halfwords and `SMLAD` adds both 16×16 products to an accumulator, through
//!   `asm!` (the `__smlad` intrinsics are unstable). Words are read with unaligned loads,
//!   which these cores allow (an M0 does not, and has no DSP extension: it keeps the
//!   portable kernel).
//!
//! - **Hard-float Cortex-M (`cfg(tinyssm_arm_fp16)`, set by `build.rs`)**: f16 → f32 with the
//!   FPU's `VCVTB.F32.F16` ([`f16_to_f32_vcvt`]), exact like the portable conversion.
//!
//! Every integer variant computes the same value as the scalar reference in
//! [`crate::kernels::reference`]: the sum of the exact products **modulo 2³²** (wrapping i32
//! adds, which give one result in any order). The 16-bit multiply-adds cannot overflow
//! (at most 2·128·128 = 2¹⁵ for i8·i8, 2·128·32768 = 2²³ for i8·i16), so the only wrapping is
//! in the 32-bit accumulators, exactly where the reference's i32 sum would wrap. The sum is
//! the exact integer (no wrapping at all) up to
//! - `dot_i8_i8`: 131,071 terms for any input (|product| ≤ 128² = 2¹⁴), 133,144 when both
//!   sides stay in −127..=127 (as w8a8 activations do);
//! - `dot_i8_i16`: 511 terms for any input (|product| ≤ 128·32768 = 2²²), 516 when the
//!   weights stay in −127..=127 and the activations in −32767..=32767.
//!
//! `SMLAD` sets the sticky Q flag when its 32-bit addition overflows, but its result wraps
//! like the others; nothing in this crate reads Q.

#[cfg(target_arch = "x86_64")]
pub use x86::{
    dot_f16_f16c, dot_f32_sse, dot_i8_i16, dot_i8_i8, dot_rows4_i8_i8, dot_rows_i8_i8,
    dot_rows_i8_i8_avx2, f16_to_f32_f16c, prefetch, split_even_odd, widen_i8, with_avx2, Avx2,
    F16c, PATH,
};

#[cfg(all(target_arch = "arm", tinyssm_arm_dsp))]
pub use arm_dsp::{
    dot_i8_i16, dot_i8_i8, dot_row_packed, dot_rows3_packed, pack_i16, pack_i8, PATH,
};

/// f16 bits `h` → f32 with the FPU's half-precision conversion (`VCVTB.F32.F16` between
/// two `VMOV`s; `kernels::fast::f16_to_f32_portable` computes the same value with about 15
/// integer instructions on a Cortex-M4). Exact; with the reset `FPSCR` (`AHP` = 0: IEEE
/// half precision; `DN` = 0) a NaN stays a NaN with its payload, quieted, as the portable
/// conversion does (`selftest-dsp` checks all 65,536 inputs under QEMU).
///
/// The value moves through a general register because stable Rust does not enable the
/// `vfp2` feature that `asm!`'s S-register operands require on these targets (the
/// assembler knows the FPU); `s15` is named as clobbered, which that check allows.
#[cfg(all(target_arch = "arm", tinyssm_arm_fp16))]
#[inline(always)]
pub fn f16_to_f32_vcvt(h: u16) -> f32 {
    let r: u32;
    // SAFETY: register-only instructions of the FPU and its half-precision extension, which
    // every target that sets `cfg(tinyssm_arm_fp16)` has; they read no memory, and the one
    // FPU register written (`s15`) is declared clobbered. Only FPSCR's cumulative exception
    // bits may change, which no code reads.
    unsafe {
        core::arch::asm!(
            "vmov s15, {h}",
            "vcvtb.f32.f16 s15, s15",
            "vmov {r}, s15",
            h = in(reg) h as u32,
            r = lateout(reg) r,
            out("s15") _,
            options(pure, nomem, nostack, preserves_flags)
        )
    };
    f32::from_bits(r)
}

/// Scalar tail of `dot_i8_i8`: wrapping, as the vector lanes.
#[cfg(any(target_arch = "x86_64", all(target_arch = "arm", tinyssm_arm_dsp)))]
#[inline(always)]
fn tail_i8_i8(a: &[i8], b: &[i8]) -> i32 {
    let mut t = 0i32;
    for (&x, &y) in a.iter().zip(b) {
        t = t.wrapping_add(x as i32 * y as i32);
    }
    t
}

/// Scalar tail of `dot_i8_i16`.
#[cfg(any(target_arch = "x86_64", all(target_arch = "arm", tinyssm_arm_dsp)))]
#[inline(always)]
fn tail_i8_i16(w: &[i8], x: &[i16]) -> i32 {
    let mut t = 0i32;
    for (&a, &b) in w.iter().zip(x) {
        t = t.wrapping_add(a as i32 * b as i32);
    }
    t
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use core::arch::x86_64::{
        __m128i, _mm_add_epi32, _mm_cvtsi128_si32, _mm_loadu_si128, _mm_madd_epi16,
        _mm_setzero_si128, _mm_shuffle_epi32, _mm_slli_epi16, _mm_srai_epi16,
    };
    #[cfg(target_feature = "avx2")]
    use core::arch::x86_64::{
        __m256i, _mm256_add_epi32, _mm256_castsi256_si128, _mm256_cvtepi8_epi16,
        _mm256_extracti128_si256, _mm256_loadu_si256, _mm256_madd_epi16, _mm256_setzero_si256,
    };
    #[cfg(not(target_feature = "avx2"))]
    use core::arch::x86_64::{_mm_loadl_epi64, _mm_unpackhi_epi8, _mm_unpacklo_epi8};

    /// The instruction set this build's integer dots use.
    #[cfg(not(target_feature = "avx2"))]
    pub const PATH: &str = "x86-64 SSE2";
    #[cfg(target_feature = "avx2")]
    pub const PATH: &str = "x86-64 AVX2";

    /// 16 bytes from `s` (`s.len() == 16` by the `as_chunks` types at every call).
    #[target_feature(enable = "sse2")]
    #[inline]
    fn load16(s: &[i8; 16]) -> __m128i {
        // SAFETY: `s` is 16 readable bytes; `loadu` has no alignment requirement.
        unsafe { _mm_loadu_si128(s.as_ptr().cast()) }
    }

    /// 8 bytes from `s` into the low half.
    #[cfg(not(target_feature = "avx2"))]
    #[target_feature(enable = "sse2")]
    #[inline]
    fn load8(s: &[i8; 8]) -> __m128i {
        // SAFETY: `s` is 8 readable bytes, all that `movq` reads; no alignment requirement.
        unsafe { _mm_loadl_epi64(s.as_ptr().cast()) }
    }

    /// 8 i16 from `s`.
    #[target_feature(enable = "sse2")]
    #[inline]
    fn load8x16(s: &[i16; 8]) -> __m128i {
        // SAFETY: `s` is 16 readable bytes; `loadu` has no alignment requirement.
        unsafe { _mm_loadu_si128(s.as_ptr().cast()) }
    }

    /// Wrapping sum of the four i32 lanes.
    #[target_feature(enable = "sse2")]
    #[inline]
    fn hsum(v: __m128i) -> i32 {
        let v = _mm_add_epi32(v, _mm_shuffle_epi32::<0b01_00_11_10>(v));
        let v = _mm_add_epi32(v, _mm_shuffle_epi32::<0b10_11_00_01>(v));
        _mm_cvtsi128_si32(v)
    }

    /// Σ a·b of one 16-byte block, as four i32 lanes. The even bytes (as the low halves of
    /// 16-bit lanes, shifted up and back) and the odd bytes (the high halves, shifted
    /// down) are sign-extended separately; the lanes pair products differently from the
    /// reference, which modular addition does not see.
    #[cfg(not(target_feature = "avx2"))]
    #[target_feature(enable = "sse2")]
    #[inline]
    fn block_i8_i8(a: __m128i, b: __m128i) -> __m128i {
        let a_even = _mm_srai_epi16::<8>(_mm_slli_epi16::<8>(a));
        let b_even = _mm_srai_epi16::<8>(_mm_slli_epi16::<8>(b));
        let a_odd = _mm_srai_epi16::<8>(a);
        let b_odd = _mm_srai_epi16::<8>(b);
        _mm_add_epi32(_mm_madd_epi16(a_even, b_even), _mm_madd_epi16(a_odd, b_odd))
    }

    /// int8 · int8 → i32, wrapping (see the module docs): 32 bytes a step in two
    /// accumulators, then one 16-byte block, then scalar.
    #[cfg(not(target_feature = "avx2"))]
    #[target_feature(enable = "sse2")]
    #[inline]
    fn dot_i8_i8_v(a: &[i8], b: &[i8]) -> i32 {
        let n = a.len().min(b.len());
        let (a16, ta) = a[..n].as_chunks::<16>();
        let (b16, tb) = b[..n].as_chunks::<16>();
        let (mut acc0, mut acc1) = (_mm_setzero_si128(), _mm_setzero_si128());
        let (a32, ra) = a16.as_chunks::<2>();
        let (b32, rb) = b16.as_chunks::<2>();
        for (x, y) in a32.iter().zip(b32) {
            acc0 = _mm_add_epi32(acc0, block_i8_i8(load16(&x[0]), load16(&y[0])));
            acc1 = _mm_add_epi32(acc1, block_i8_i8(load16(&x[1]), load16(&y[1])));
        }
        for (x, y) in ra.iter().zip(rb) {
            acc0 = _mm_add_epi32(acc0, block_i8_i8(load16(x), load16(y)));
        }
        hsum(_mm_add_epi32(acc0, acc1)).wrapping_add(super::tail_i8_i8(ta, tb))
    }

    /// Eight int8 weights, each doubled into a 16-bit lane (`unpack(v, v)`), sign-extended
    /// by an arithmetic shift of the high copy, times eight i16.
    #[cfg(not(target_feature = "avx2"))]
    #[target_feature(enable = "sse2")]
    #[inline]
    fn block_i8_i16(w_doubled: __m128i, x: __m128i) -> __m128i {
        _mm_madd_epi16(_mm_srai_epi16::<8>(w_doubled), x)
    }

    /// int8 weights · int16 activations → i32, wrapping: 16 a step (two accumulators),
    /// then 8, then scalar.
    #[cfg(not(target_feature = "avx2"))]
    #[target_feature(enable = "sse2")]
    #[inline]
    fn dot_i8_i16_v(w: &[i8], x: &[i16]) -> i32 {
        let n = w.len().min(x.len());
        let (w16, tw) = w[..n].as_chunks::<16>();
        let (x8, tx) = x[..n].as_chunks::<8>();
        let (x16, x8r) = x8.as_chunks::<2>();
        let (mut acc0, mut acc1) = (_mm_setzero_si128(), _mm_setzero_si128());
        for (wb, xb) in w16.iter().zip(x16) {
            let v = load16(wb);
            // Bytes interleaved with themselves: byte k fills 16-bit lane k (of lo or hi).
            let lo = _mm_unpacklo_epi8(v, v);
            let hi = _mm_unpackhi_epi8(v, v);
            acc0 = _mm_add_epi32(acc0, block_i8_i16(lo, load8x16(&xb[0])));
            acc1 = _mm_add_epi32(acc1, block_i8_i16(hi, load8x16(&xb[1])));
        }
        let mut tw = tw;
        if let (Some((w8, rest)), Some(xb)) = (tw.split_first_chunk::<8>(), x8r.first()) {
            let v = load8(w8);
            acc0 = _mm_add_epi32(acc0, block_i8_i16(_mm_unpacklo_epi8(v, v), load8x16(xb)));
            tw = rest;
        }
        hsum(_mm_add_epi32(acc0, acc1)).wrapping_add(super::tail_i8_i16(tw, tx))
    }

    /// Wrapping sum of the eight i32 lanes.
    #[cfg(target_feature = "avx2")]
    #[target_feature(enable = "avx2")]
    #[inline]
    fn hsum256(v: __m256i) -> i32 {
        hsum(_mm_add_epi32(
            _mm256_castsi256_si128(v),
            _mm256_extracti128_si256::<1>(v),
        ))
    }

    /// AVX2 int8 · int8: 16 bytes of each side sign-extended to 16 × i16 (`vpmovsxbw`),
    /// multiply-added into eight i32 lanes; 32 bytes a step in two accumulators.
    #[cfg(target_feature = "avx2")]
    #[target_feature(enable = "avx2")]
    #[inline]
    fn dot_i8_i8_v(a: &[i8], b: &[i8]) -> i32 {
        let n = a.len().min(b.len());
        let (a16, ta) = a[..n].as_chunks::<16>();
        let (b16, tb) = b[..n].as_chunks::<16>();
        let (mut acc0, mut acc1) = (_mm256_setzero_si256(), _mm256_setzero_si256());
        let (a32, ra) = a16.as_chunks::<2>();
        let (b32, rb) = b16.as_chunks::<2>();
        let mac = |x: &[i8; 16], y: &[i8; 16]| {
            _mm256_madd_epi16(
                _mm256_cvtepi8_epi16(load16(x)),
                _mm256_cvtepi8_epi16(load16(y)),
            )
        };
        for (x, y) in a32.iter().zip(b32) {
            acc0 = _mm256_add_epi32(acc0, mac(&x[0], &y[0]));
            acc1 = _mm256_add_epi32(acc1, mac(&x[1], &y[1]));
        }
        for (x, y) in ra.iter().zip(rb) {
            acc0 = _mm256_add_epi32(acc0, mac(x, y));
        }
        hsum256(_mm256_add_epi32(acc0, acc1)).wrapping_add(super::tail_i8_i8(ta, tb))
    }

    /// AVX2 int8 weights · int16 activations: 16 weights sign-extended, times 16 i16.
    #[cfg(target_feature = "avx2")]
    #[target_feature(enable = "avx2")]
    #[inline]
    fn dot_i8_i16_v(w: &[i8], x: &[i16]) -> i32 {
        let n = w.len().min(x.len());
        let (w16, tw) = w[..n].as_chunks::<16>();
        let (x16, tx) = x[..n].as_chunks::<16>();
        let mut acc = _mm256_setzero_si256();
        for (wb, xb) in w16.iter().zip(x16) {
            // SAFETY: `xb` is 32 readable bytes; `loadu` has no alignment requirement.
            let xv = unsafe { _mm256_loadu_si256(xb.as_ptr().cast()) };
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_cvtepi8_epi16(load16(wb)), xv));
        }
        hsum256(acc).wrapping_add(super::tail_i8_i16(tw, tx))
    }

    /// Lays out `qx` for [`dot_rows4_i8_i8`]: per 16-value block, its 8 even-indexed values
    /// then its 8 odd-indexed ones, as i16 (`xs.len() >= qx.len()`; the tail past the last
    /// whole block is not used). Plain safe code: it runs once per input vector.
    #[inline]
    pub fn split_even_odd(qx: &[i8], xs: &mut [i16]) {
        let (src, _) = qx.as_chunks::<16>();
        let (dst, _) = xs.as_chunks_mut::<16>();
        for (s, d) in src.iter().zip(dst) {
            for k in 0..8 {
                d[k] = s[2 * k] as i16;
                d[8 + k] = s[2 * k + 1] as i16;
            }
        }
    }

    /// Four rows at once, each `row · qx` (wrapping), with `xs` from [`split_even_odd`]
    /// (`qx` sign-extended once for all rows, so a row's 16 weights cost one load, three
    /// shifts and two `pmaddwd`, and each activation load serves four rows).
    #[target_feature(enable = "sse2")]
    #[inline]
    fn dot_rows_v<const R: usize>(rows: [&[i8]; R], qx: &[i8], xs: &[i16]) -> [i32; R] {
        let n = qx.len();
        let rows = rows.map(|r| &r[..n.min(r.len())]);
        let (x8, _) = xs.as_chunks::<8>();
        let (x16, _) = x8.as_chunks::<2>();
        let blk = |w: &[i8; 16], xe: __m128i, xo: __m128i| {
            let l = load16(w);
            let even = _mm_srai_epi16::<8>(_mm_slli_epi16::<8>(l));
            let odd = _mm_srai_epi16::<8>(l);
            _mm_add_epi32(_mm_madd_epi16(even, xe), _mm_madd_epi16(odd, xo))
        };
        let mut acc = [_mm_setzero_si128(); R];
        let blocks = rows.map(|r| r.as_chunks::<16>().0);
        let nb = blocks
            .iter()
            .map(|b| b.len())
            .min()
            .unwrap_or(0)
            .min(x16.len());
        for (b, x) in x16[..nb].iter().enumerate() {
            let (xe, xo) = (load8x16(&x[0]), load8x16(&x[1]));
            for j in 0..R {
                acc[j] = _mm_add_epi32(acc[j], blk(&blocks[j][b], xe, xo));
            }
        }
        let done = 16 * nb;
        let tail = &qx[done.min(n)..];
        let mut out = [0i32; R];
        for ((o, a), w) in out.iter_mut().zip(acc).zip(rows) {
            *o = hsum(a).wrapping_add(super::tail_i8_i8(w.get(done..).unwrap_or(&[]), tail));
        }
        out
    }

    /// `[row_j · qx; R]` (wrapping, as [`dot_i8_i8`] on each row), `xs` from
    /// [`split_even_odd`] of `qx`.
    #[inline]
    pub fn dot_rows_i8_i8<const R: usize>(rows: [&[i8]; R], qx: &[i8], xs: &[i16]) -> [i32; R] {
        // SAFETY: SSE2 is part of every x86-64 CPU.
        unsafe { dot_rows_v(rows, qx, xs) }
    }

    /// `[row_j · qx; 4]` (wrapping, as [`dot_i8_i8`] on each row), `xs` from
    /// [`split_even_odd`] of `qx`.
    #[inline]
    pub fn dot_rows4_i8_i8(rows: [&[i8]; 4], qx: &[i8], xs: &[i16]) -> [i32; 4] {
        // SAFETY: SSE2 is part of every x86-64 CPU.
        unsafe { dot_rows_v(rows, qx, xs) }
    }

    cpufeatures::new!(cpu_avx2, "avx2");
    cpufeatures::new!(cpu_avx, "avx");
    /// F16C detection result: 0 not yet asked, 1 absent, 2 present.
    static F16C: core::sync::atomic::AtomicU8 = core::sync::atomic::AtomicU8::new(0);

    /// Proof that this CPU converts half precision with F16C (`vcvtph2ps`, and the OS saves
    /// the AVX registers it writes): only [`F16c::detect`] makes one.
    #[derive(Debug, Clone, Copy)]
    pub struct F16c(());

    impl F16c {
        /// `Some` when the CPU has F16C and AVX (detected once, then a cached flag).
        #[inline]
        pub fn detect() -> Option<Self> {
            use core::sync::atomic::Ordering::Relaxed;
            let known = F16C.load(Relaxed);
            let yes = if known == 0 {
                // CPUID leaf 1, ECX bit 29 (the crate of `Avx2::detect` has no F16C
                // query); AVX's check covers the OS saving the registers.
                // SAFETY: CPUID leaf 1 exists on every x86-64 CPU (the intrinsic is a
                // safe function on newer compilers, hence the allowance).
                #[allow(unused_unsafe)]
                let ecx = unsafe { core::arch::x86_64::__cpuid(1) }.ecx;
                let yes = cpu_avx::get() && (ecx >> 29) & 1 == 1;
                F16C.store(if yes { 2 } else { 1 }, Relaxed);
                yes
            } else {
                known == 2
            };
            yes.then_some(F16c(()))
        }
    }

    /// The f16 bit patterns `src` as f32 into `dst[..src.len()]`, eight at a time with
    /// `vcvtph2ps` (exact; NaNs quieted, as `kernels::fast::f16_to_f32` does), the tail
    /// through `tail`.
    #[inline]
    pub fn f16_to_f32_f16c(_: F16c, src: &[u16], dst: &mut [f32], tail: impl Fn(u16) -> f32) {
        let n = src.len().min(dst.len());
        let (s8, st) = src[..n].as_chunks::<8>();
        let (d8, dt) = dst[..n].as_chunks_mut::<8>();
        for (s, d) in s8.iter().zip(d8) {
            // SAFETY: the `F16c` token proves F16C and AVX; the loads and stores are
            // unaligned ones of exactly 16 and 32 bytes inside `s` and `d`.
            unsafe { cvt8(s, d) }
        }
        for (&h, o) in st.iter().zip(dt) {
            *o = tail(h);
        }
    }

    /// `Σ w·x` over `min(w.len(), x.len())` terms with f16 weights (bit patterns) converted
    /// four at a time by `vcvtph2ps`, in exactly the order and rounding of
    /// `kernels::fast::dot` on the converted weights (below 32 terms one 4-lane
    /// accumulator, else four, the leftover quads into the first, the last 0–3 terms
    /// sequentially, then the same pairwise sums): the same bits as converting first, on
    /// every CPU. `tail` converts the last terms.
    #[inline]
    pub fn dot_f16_f16c(_: F16c, w: &[u16], x: &[f32], tail: impl Fn(u16) -> f32) -> f32 {
        let n = w.len().min(x.len());
        let (w4, wt) = w[..n].as_chunks::<4>();
        let (x4, xt) = x[..n].as_chunks::<4>();
        let mut t = 0f32;
        for (&h, &v) in wt.iter().zip(xt) {
            t += tail(h) * v;
        }
        // SAFETY: the `F16c` token proves F16C and AVX; every load is of one whole
        // 4-element chunk of `w` or `x`.
        let [a0, a1, a2, a3] = unsafe { dot_f16_quads(w4, x4, n < 32) };
        if n < 32 {
            ((a0[0] + a0[1]) + (a0[2] + a0[3])) + t
        } else {
            let mut v = [0f32; 4];
            for (j, vj) in v.iter_mut().enumerate() {
                *vj = (a0[j] + a1[j]) + (a2[j] + a3[j]);
            }
            ((v[0] + v[1]) + (v[2] + v[3])) + t
        }
    }

    /// The four accumulators of [`dot_f16_f16c`] (`short`: everything in the first).
    #[target_feature(enable = "avx,f16c")]
    unsafe fn dot_f16_quads(w4: &[[u16; 4]], x4: &[[f32; 4]], short: bool) -> [[f32; 4]; 4] {
        use core::arch::x86_64::{
            __m128, _mm_add_ps, _mm_cvtph_ps, _mm_loadu_ps, _mm_mul_ps, _mm_setzero_ps,
            _mm_storeu_ps,
        };
        let prod = |w: &[u16; 4], x: &[f32; 4]| {
            // SAFETY: an 8-byte load of one `[u16; 4]`, a 16-byte load of one `[f32; 4]`
            // (unaligned); F16C and AVX are this function's target features.
            unsafe {
                _mm_mul_ps(
                    _mm_cvtph_ps(_mm_loadl_epi64(w.as_ptr() as *const __m128i)),
                    _mm_loadu_ps(x.as_ptr()),
                )
            }
        };
        let mut acc: [__m128; 4] = [_mm_setzero_ps(); 4];
        let rest = if short {
            0
        } else {
            let (w16, _) = w4.as_chunks::<4>();
            let (x16, _) = x4.as_chunks::<4>();
            for (w, x) in w16.iter().zip(x16) {
                for k in 0..4 {
                    acc[k] = _mm_add_ps(acc[k], prod(&w[k], &x[k]));
                }
            }
            4 * w16.len()
        };
        for (w, x) in w4[rest..].iter().zip(&x4[rest..]) {
            acc[0] = _mm_add_ps(acc[0], prod(w, x));
        }
        let mut out = [[0f32; 4]; 4];
        for (o, a) in out.iter_mut().zip(acc) {
            // SAFETY: a 16-byte store into one `[f32; 4]` (unaligned).
            unsafe { _mm_storeu_ps(o.as_mut_ptr(), a) };
        }
        out
    }

    #[target_feature(enable = "avx,f16c")]
    unsafe fn cvt8(s: &[u16; 8], d: &mut [f32; 8]) {
        // SAFETY: `s` is 16 readable bytes, `d` 32 writable ones (unaligned access).
        unsafe {
            use core::arch::x86_64::{_mm256_cvtph_ps, _mm256_storeu_ps};
            let h = _mm_loadu_si128(s.as_ptr() as *const __m128i);
            _mm256_storeu_ps(d.as_mut_ptr(), _mm256_cvtph_ps(h));
        }
    }

    /// Proof that this CPU runs AVX2 (and the OS saves its registers): only
    /// [`Avx2::detect`] makes one, so the AVX2 kernels that take it are safe to call.
    #[derive(Debug, Clone, Copy)]
    pub struct Avx2(());

    impl Avx2 {
        /// `Some` when the CPU has AVX2 (detected once, then a cached flag).
        #[inline]
        pub fn detect() -> Option<Self> {
            cpu_avx2::get().then_some(Avx2(()))
        }
    }

    /// Runs `f` inside a function compiled for AVX2, so that the loops `f` inlines are
    /// vectorized eight lanes wide. Without fast-math the compiler vectorizes only what
    /// keeps every f32 operation and its order, so the results are the bits `f` gives
    /// anywhere else (no FMA contraction either: Rust never contracts). For `f` whose
    /// code is `#[inline(always)]` down to its loops.
    #[inline]
    pub fn with_avx2<R>(_: Avx2, f: impl FnOnce() -> R) -> R {
        // SAFETY: an `Avx2` exists only where the CPU runs AVX2 (`Avx2::detect`).
        unsafe { avx2_scope(f) }
    }

    #[target_feature(enable = "avx2")]
    fn avx2_scope<R>(f: impl FnOnce() -> R) -> R {
        f()
    }

    /// `qx` sign-extended to i16 in order, for [`dot_rows_i8_i8_avx2`].
    #[inline]
    pub fn widen_i8(qx: &[i8], xs: &mut [i16]) {
        for (d, &s) in xs.iter_mut().zip(qx) {
            *d = s as i16;
        }
    }

    /// AVX2 rows: per 16 columns one `vpmovsxbw` of the row's bytes and one `vpmaddwd`
    /// against `xs` (from [`widen_i8`], loaded once for all rows).
    #[target_feature(enable = "avx2")]
    fn dot_rows_avx2<const R: usize>(rows: [&[i8]; R], qx: &[i8], xs: &[i16]) -> [i32; R] {
        use core::arch::x86_64::{
            _mm256_add_epi32, _mm256_castsi256_si128, _mm256_cvtepi8_epi16,
            _mm256_extracti128_si256, _mm256_loadu_si256, _mm256_madd_epi16, _mm256_setzero_si256,
        };
        let n = qx.len();
        let (x16, _) = xs.as_chunks::<16>();
        // Plain loops, not `array::map`: its closures were not inlined into this AVX2
        // function and cost as much as a quarter of the loop at 256 columns.
        let mut blocks: [&[[i8; 16]]; R] = [&[]; R];
        let mut nb = x16.len();
        for j in 0..R {
            let r = &rows[j][..n.min(rows[j].len())];
            blocks[j] = r.as_chunks::<16>().0;
            nb = nb.min(blocks[j].len());
        }
        // Every row cut to exactly `nb` blocks, so that indexing them by the block number
        // needs no bounds check in the loop.
        for b in blocks.iter_mut() {
            *b = &b[..nb];
        }
        let mut acc = [_mm256_setzero_si256(); R];
        for (b, x) in x16[..nb].iter().enumerate() {
            // SAFETY: `x` is 32 readable bytes; `loadu` has no alignment requirement.
            let xv = unsafe { _mm256_loadu_si256(x.as_ptr().cast()) };
            for j in 0..R {
                let w = _mm256_cvtepi8_epi16(load16(&blocks[j][b]));
                acc[j] = _mm256_add_epi32(acc[j], _mm256_madd_epi16(w, xv));
            }
        }
        let done = 16 * nb;
        let mut out = [0i32; R];
        for j in 0..R {
            let a = acc[j];
            let lanes = _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256::<1>(a));
            out[j] = hsum(lanes);
        }
        if done < n {
            let tail = &qx[done..];
            for j in 0..R {
                let w = rows[j].get(done..).unwrap_or(&[]);
                out[j] = out[j].wrapping_add(super::tail_i8_i8(w, tail));
            }
        }
        out
    }

    /// `[row_j · qx; R]` (wrapping, as [`dot_i8_i8`] on each row) with AVX2, `xs` from
    /// [`widen_i8`] of `qx`.
    #[inline]
    pub fn dot_rows_i8_i8_avx2<const R: usize>(
        _: Avx2,
        rows: [&[i8]; R],
        qx: &[i8],
        xs: &[i16],
    ) -> [i32; R] {
        // SAFETY: an `Avx2` exists only where the CPU runs AVX2 (`Avx2::detect`).
        unsafe { dot_rows_avx2(rows, qx, xs) }
    }

    /// Asks for the cache lines of `s` ahead of use (a hint: no effect on results).
    #[inline]
    pub fn prefetch(s: &[i8]) {
        for l in s.chunks(64) {
            // SAFETY: `prefetcht0` is SSE, part of every x86-64 CPU; a prefetch never
            // faults and `l` is readable memory anyway.
            unsafe {
                core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(l.as_ptr())
            };
        }
    }

    /// `kernels::fast::dot`'s f32 dot product on SSE registers, in its exact order: four
    /// 4-lane accumulators over each 16 terms (`acc_k += a·b`, a multiply then an add, no
    /// fused multiply-add), the remaining groups of 4 into the first, the lanes summed
    /// `(acc0 + acc1) + (acc2 + acc3)`, then `(v0 + v1) + (v2 + v3)`, plus the last < 4
    /// terms summed in order. The same bits as the portable form (tested), with the
    /// accumulators kept in registers through the final sum.
    #[inline]
    pub fn dot_f32_sse(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: SSE2 is part of every x86-64 CPU.
        unsafe { dot_f32_sse_v(a, b) }
    }

    #[target_feature(enable = "sse2")]
    #[inline]
    fn dot_f32_sse_v(a: &[f32], b: &[f32]) -> f32 {
        use core::arch::x86_64::{
            __m128, _mm_add_ps, _mm_loadu_ps, _mm_mul_ps, _mm_setzero_ps, _mm_storeu_ps,
        };
        let n = a.len().min(b.len());
        let (a, b) = (&a[..n], &b[..n]);
        let ld = |s: &[f32; 4]| -> __m128 {
            // SAFETY: `s` is 16 readable bytes; `loadu` has no alignment requirement.
            unsafe { _mm_loadu_ps(s.as_ptr()) }
        };
        let (a4, ta) = a.as_chunks::<4>();
        let (b4, tb) = b.as_chunks::<4>();
        let (a16, ra) = a4.as_chunks::<4>();
        let (b16, rb) = b4.as_chunks::<4>();
        let mut acc = [_mm_setzero_ps(); 4];
        for (x, y) in a16.iter().zip(b16) {
            for k in 0..4 {
                acc[k] = _mm_add_ps(acc[k], _mm_mul_ps(ld(&x[k]), ld(&y[k])));
            }
        }
        for (x, y) in ra.iter().zip(rb) {
            acc[0] = _mm_add_ps(acc[0], _mm_mul_ps(ld(x), ld(y)));
        }
        let mut tail = 0.0f32;
        for (x, y) in ta.iter().zip(tb) {
            tail += x * y;
        }
        let t = _mm_add_ps(_mm_add_ps(acc[0], acc[1]), _mm_add_ps(acc[2], acc[3]));
        let mut v = [0f32; 4];
        // SAFETY: `v` is 16 writable bytes; `storeu` has no alignment requirement.
        unsafe { _mm_storeu_ps(v.as_mut_ptr(), t) };
        ((v[0] + v[1]) + (v[2] + v[3])) + tail
    }

    /// int8 · int8 → i32, wrapping (see the module docs).
    #[inline]
    pub fn dot_i8_i8(a: &[i8], b: &[i8]) -> i32 {
        // SAFETY: the vector code needs SSE2, part of every x86-64 CPU (and AVX2 only when
        // this build enables it for every function: `cfg(target_feature = "avx2")`).
        unsafe { dot_i8_i8_v(a, b) }
    }

    /// int8 weights · int16 activations → i32, wrapping (see the module docs).
    #[inline]
    pub fn dot_i8_i16(w: &[i8], x: &[i16]) -> i32 {
        // SAFETY: as in `dot_i8_i8`.
        unsafe { dot_i8_i16_v(w, x) }
    }
}

#[cfg(all(target_arch = "arm", tinyssm_arm_dsp))]
mod arm_dsp {
    use core::arch::asm;

    /// One group of four columns for three rows (`{wp}` row 0, `{wp} + {s}` row 1,
    /// `{wp} + 2·{s}` row 2; row 0's load advances `{wp}` last): `LDRD` of the packed
    /// activation pair words, then per row `LDR`, `SXTB16`, `SMLAD`, `SXTB16 ROR #8`,
    /// `SMLAD`. 16 instructions, 12 multiply-accumulates.
    macro_rules! g3 {
        () => {
            concat!(
                "ldrd {x0}, {x1}, [{xp}], #8\n",
                "ldr {w}, [{wp}, {s}]\n",
                "sxtb16 {t}, {w}\n",
                "smlad {a1}, {t}, {x0}, {a1}\n",
                "sxtb16 {t}, {w}, ror #8\n",
                "smlad {a1}, {t}, {x1}, {a1}\n",
                "ldr {w}, [{wp}, {s}, lsl #1]\n",
                "sxtb16 {t}, {w}\n",
                "smlad {a2}, {t}, {x0}, {a2}\n",
                "sxtb16 {t}, {w}, ror #8\n",
                "smlad {a2}, {t}, {x1}, {a2}\n",
                "ldr {w}, [{wp}], #4\n",
                "sxtb16 {t}, {w}\n",
                "smlad {a0}, {t}, {x0}, {a0}\n",
                "sxtb16 {t}, {w}, ror #8\n",
                "smlad {a0}, {t}, {x1}, {a0}\n",
            )
        };
    }

    /// The instruction set this build's integer dots use.
    pub const PATH: &str = "Arm DSP (SMLAD)";

    /// `SXTB16`: bytes 0 and 2 of `x`, sign-extended into the two halfwords.
    #[inline(always)]
    fn sxtb16(x: u32) -> u32 {
        let r: u32;
        // SAFETY: a register-only instruction of the DSP extension, which
        // `cfg(tinyssm_arm_dsp)` guarantees; it reads no memory and sets no flags.
        unsafe {
            asm!("sxtb16 {r}, {x}", r = lateout(reg) r, x = in(reg) x,
                 options(pure, nomem, nostack, preserves_flags))
        };
        r
    }

    /// `SXTB16 ..., ROR #8`: bytes 1 and 3 of `x`, sign-extended into the two halfwords.
    #[inline(always)]
    fn sxtb16_ror8(x: u32) -> u32 {
        let r: u32;
        // SAFETY: as `sxtb16`.
        unsafe {
            asm!("sxtb16 {r}, {x}, ror #8", r = lateout(reg) r, x = in(reg) x,
                 options(pure, nomem, nostack, preserves_flags))
        };
        r
    }

    /// `SMLAD`: `acc + lo(a)·lo(b) + hi(a)·hi(b)` (signed halfwords), wrapping to 32 bits.
    #[inline(always)]
    fn smlad(a: u32, b: u32, acc: i32) -> i32 {
        let r: i32;
        // SAFETY: a register-only DSP instruction (`cfg(tinyssm_arm_dsp)`); it reads no
        // memory. It may set the sticky Q flag (so no `preserves_flags`), which no code reads.
        unsafe {
            asm!("smlad {r}, {a}, {b}, {c}", r = lateout(reg) r, a = in(reg) a, b = in(reg) b,
                 c = in(reg) acc, options(pure, nomem, nostack))
        };
        r
    }

    /// `PKHBT r, a, b, LSL #16`: the low halfword of `a` below the low halfword of `b`.
    #[inline(always)]
    fn pkhbt_lsl16(a: u32, b: u32) -> u32 {
        let r: u32;
        // SAFETY: a register-only DSP instruction (`cfg(tinyssm_arm_dsp)`); no memory, no
        // flags.
        unsafe {
            asm!("pkhbt {r}, {a}, {b}, lsl #16", r = lateout(reg) r, a = in(reg) a,
                 b = in(reg) b, options(pure, nomem, nostack, preserves_flags))
        };
        r
    }

    /// `PKHTB r, a, b, ASR #16`: the high halfword of `a` above the high halfword of `b`.
    #[inline(always)]
    fn pkhtb_asr16(a: u32, b: u32) -> u32 {
        let r: u32;
        // SAFETY: as `pkhbt_lsl16`.
        unsafe {
            asm!("pkhtb {r}, {a}, {b}, asr #16", r = lateout(reg) r, a = in(reg) a,
                 b = in(reg) b, options(pure, nomem, nostack, preserves_flags))
        };
        r
    }

    #[inline(always)]
    fn word(b: &[i8; 4]) -> u32 {
        u32::from_le_bytes([b[0] as u8, b[1] as u8, b[2] as u8, b[3] as u8])
    }

    #[inline(always)]
    fn pair(x: &[i16]) -> u32 {
        (x[0] as u16 as u32) | ((x[1] as u16 as u32) << 16)
    }

    /// int8 · int8 → i32, wrapping: per word of each side, the even and the odd bytes
    /// sign-extended to halfword pairs, two `SMLAD`s; 8 bytes a step in two accumulators.
    #[inline]
    pub fn dot_i8_i8(a: &[i8], b: &[i8]) -> i32 {
        let n = a.len().min(b.len());
        let (a4, ta) = a[..n].as_chunks::<4>();
        let (b4, tb) = b[..n].as_chunks::<4>();
        let (mut acc0, mut acc1) = (0i32, 0i32);
        for (x, y) in a4.iter().zip(b4) {
            let (x, y) = (word(x), word(y));
            acc0 = smlad(sxtb16(x), sxtb16(y), acc0);
            acc1 = smlad(sxtb16_ror8(x), sxtb16_ror8(y), acc1);
        }
        acc0.wrapping_add(acc1)
            .wrapping_add(super::tail_i8_i8(ta, tb))
    }

    /// int8 weights · int16 activations → i32, wrapping: per word of weights (bytes 0..4)
    /// and two words of activations, the pairs (w0, w2)·(x0, x2) and (w1, w3)·(x1, x3).
    #[inline]
    pub fn dot_i8_i16(w: &[i8], x: &[i16]) -> i32 {
        let n = w.len().min(x.len());
        let (w4, tw) = w[..n].as_chunks::<4>();
        let (x4, tx) = x[..n].as_chunks::<4>();
        let (mut acc0, mut acc1) = (0i32, 0i32);
        for (wb, xb) in w4.iter().zip(x4) {
            let wv = word(wb);
            let (x01, x23) = (pair(&xb[..2]), pair(&xb[2..]));
            acc0 = smlad(sxtb16(wv), pkhbt_lsl16(x01, x23), acc0);
            acc1 = smlad(sxtb16_ror8(wv), pkhtb_asr16(x23, x01), acc1);
        }
        acc0.wrapping_add(acc1)
            .wrapping_add(super::tail_i8_i16(tw, tx))
    }

    /// Two halfwords as one word: `lo` in bits 0..16, `hi` in 16..32.
    #[inline(always)]
    fn halves(lo: i16, hi: i16) -> u32 {
        (lo as u16 as u32) | ((hi as u16 as u32) << 16)
    }

    /// Lays out int8 activations for [`dot_rows3_packed`] / [`dot_row_packed`]: per group
    /// of four values `x0..x3`, the words `(x0, x2)` and `(x1, x3)` as sign-extended
    /// halfwords — the pairs `SXTB16` and `SXTB16 ROR #8` make of four weight bytes — so
    /// the activations are extended once per vector instead of once per row. Fills
    /// `2·⌊n/4⌋` words (`n = min(x.len(), 2·xs.len())` rounded down to groups) and returns
    /// the number of groups; the `x.len() % 4` tail is the caller's.
    #[inline]
    pub fn pack_i8(x: &[i8], xs: &mut [u32]) -> usize {
        let (g, _) = x.as_chunks::<4>();
        let (d, _) = xs.as_chunks_mut::<2>();
        let mut n = 0;
        for (g, d) in g.iter().zip(d) {
            d[0] = halves(g[0] as i16, g[2] as i16);
            d[1] = halves(g[1] as i16, g[3] as i16);
            n += 1;
        }
        n
    }

    /// [`pack_i8`] for int16 activations (the integer-only step's).
    #[inline]
    pub fn pack_i16(x: &[i16], xs: &mut [u32]) -> usize {
        let (g, _) = x.as_chunks::<4>();
        let (d, _) = xs.as_chunks_mut::<2>();
        let mut n = 0;
        for (g, d) in g.iter().zip(d) {
            d[0] = halves(g[0], g[2]);
            d[1] = halves(g[1], g[3]);
            n += 1;
        }
        n
    }

    /// Three rows at once: `[Σ_c w[j·stride + c] · x[c]; j = 0, 1, 2]` over the first
    /// `4·groups` columns, wrapping (the same value as the scalar reference's sum: see
    /// the module docs), with `xs` from [`pack_i8`] / [`pack_i16`]. Per four columns: one
    /// `LDRD` of the packed activations, shared by the three rows, and per row one `LDR`
    /// of four weight bytes, two `SXTB16` and two `SMLAD` — 16 instructions for 12
    /// multiply-accumulates (`g3!`), in a loop unrolled eight times. Returns zeros (and reads
    /// nothing) when the slices are too short for `groups`.
    // Not inlined: one copy of the unrolled loop per image (each monomorphized matvec
    // would otherwise carry its own ~0.6 KB), for one call per three rows.
    #[inline(never)]
    pub fn dot_rows3_packed(w: &[i8], stride: usize, xs: &[u32], groups: usize) -> [i32; 3] {
        let mut acc = [0i32; 3];
        let cols = 4 * groups;
        let fits = stride
            .checked_mul(2)
            .and_then(|s| s.checked_add(cols))
            .is_some_and(|need| need <= w.len())
            && 2 * groups <= xs.len()
            && stride <= i32::MAX as usize / 2;
        if groups == 0 || !fits {
            return acc;
        }
        let [mut a0, mut a1, mut a2] = acc;
        let mut wp = w.as_ptr();
        let mut xp = xs.as_ptr();
        let big = groups / 8;
        if big > 0 {
            // SAFETY: the loop reads `8·big` groups: words `xp[0 .. 16·big]` (inside `xs`,
            // checked above: 2·groups ≤ xs.len()) with word-aligned `LDRD` (`xs` is a
            // `u32` slice), and for each row j ∈ {0, 1, 2} the bytes
            // `w[j·stride .. j·stride + 32·big]` (inside `w`: 2·stride + 4·groups ≤
            // w.len()) with `LDR`, which the Cortex-M3/M4/M7/M33 allow unaligned. The
            // pointers only move forward by what was read; registers and flags only.
            unsafe {
                let xend = xp.add(16 * big);
                core::arch::asm!(
                    concat!("2:\n", g3!(), g3!(), g3!(), g3!(), g3!(), g3!(), g3!(), g3!(),
                        "cmp {xp}, {xend}\n", "blo 2b"),
                    xp = inout(reg) xp,
                    wp = inout(reg) wp,
                    s = in(reg) stride,
                    xend = in(reg) xend,
                    a0 = inout(reg) a0,
                    a1 = inout(reg) a1,
                    a2 = inout(reg) a2,
                    x0 = out(reg) _,
                    x1 = out(reg) _,
                    w = out(reg) _,
                    t = out(reg) _,
                    options(readonly, nostack),
                );
            }
        }
        let rest = groups % 8;
        if rest > 0 {
            // SAFETY: as above, for the `rest` groups after the `8·big` already read
            // (8·big + rest = groups, so every access stays inside the checked bounds).
            unsafe {
                let xend = xp.add(2 * rest);
                core::arch::asm!(
                    concat!("2:\n", g3!(), "cmp {xp}, {xend}\n", "blo 2b"),
                    xp = inout(reg) xp,
                    wp = inout(reg) wp,
                    s = in(reg) stride,
                    xend = in(reg) xend,
                    a0 = inout(reg) a0,
                    a1 = inout(reg) a1,
                    a2 = inout(reg) a2,
                    x0 = out(reg) _,
                    x1 = out(reg) _,
                    w = out(reg) _,
                    t = out(reg) _,
                    options(readonly, nostack),
                );
            }
        }
        let _ = (xp, wp);
        acc = [a0, a1, a2];
        acc
    }

    /// One row: `Σ_c w[c] · x[c]` over the first `4·groups` columns, wrapping, with `xs`
    /// from [`pack_i8`] / [`pack_i16`] (the rows [`dot_rows3_packed`] leaves over). Zero
    /// when the slices are too short for `groups`.
    #[inline]
    pub fn dot_row_packed(w: &[i8], xs: &[u32], groups: usize) -> i32 {
        let (Some(w4), Some(x2)) = (
            w.get(..4 * groups).map(|w| w.as_chunks::<4>().0),
            xs.get(..2 * groups).map(|x| x.as_chunks::<2>().0),
        ) else {
            return 0;
        };
        let (mut acc0, mut acc1) = (0i32, 0i32);
        for (wb, xb) in w4.iter().zip(x2) {
            let wv = word(wb);
            acc0 = smlad(sxtb16(wv), xb[0], acc0);
            acc1 = smlad(sxtb16_ror8(wv), xb[1], acc1);
        }
        acc0.wrapping_add(acc1)
    }
}
