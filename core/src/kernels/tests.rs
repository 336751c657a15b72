//! Kernel tests: every fast kernel against its scalar reference (property tests, edge
//! cases, bit-exactness where the fast kernel promises it).

/// The branch-free f16 conversion of the fast kernels is exact for all 65,536 bit
/// patterns (the same f32 bits as `half`'s portable conversion, NaNs quieted).
#[test]
fn fast_f16_to_f32_is_exact_for_every_f16() {
    for h in 0..=u16::MAX {
        let want = half::f16::from_bits(h).to_f32_const().to_bits();
        assert_eq!(fast::f16_to_f32(h).to_bits(), want, "{h:#06x}");
    }
}

/// The SSE f32 dot (x86-64's `fast::dot` from 32 terms) gives the portable order's bits at
/// every length around its breakpoints, on inputs of mixed magnitude and sign.
#[cfg(target_arch = "x86_64")]
#[test]
fn sse_dot_matches_the_portable_order_bit_for_bit() {
    let mut s = 0x2545_f491_4f6c_dd1du64;
    let mut rnd = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        let m = (s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0;
        m * [1e-3f32, 1.0, 1e3][(s % 3) as usize]
    };
    for n in (28..=80).chain([127, 128, 129, 255, 256, 257, 1000]) {
        for _ in 0..20 {
            let a: std::vec::Vec<f32> = (0..n).map(|_| rnd()).collect();
            let b: std::vec::Vec<f32> = (0..n).map(|_| rnd()).collect();
            let want = fast::dot_portable(&a, &b);
            assert_eq!(
                crate::simd::dot_f32_sse(&a, &b).to_bits(),
                want.to_bits(),
                "n {n}"
            );
            if n >= 32 {
                assert_eq!(fast::dot(&a, &b).to_bits(), want.to_bits(), "n {n}");
            }
        }
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
use half::bf16;
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

    /// The f32 matrix kernel gives each row the bits of `fast::dot` on it (so replacing
    /// the per-row calls changed no output), with and without a bias, one column included;
    /// signed zeros too.
    #[test]
    fn fast_matvec_f32_is_dot_per_row(
        rows in 1usize..40,
        cols in 1usize..70,
        seed in 0u64..1000,
        zeros in proptest::bool::ANY,
    ) {
        let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let mut rnd = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            if zeros && s % 5 == 0 { -0.0 } else { ((s >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0 }
        };
        let w: Vec<f32> = (0..rows * cols).map(|_| rnd()).collect();
        let x: Vec<f32> = (0..cols).map(|_| rnd()).collect();
        let b: Vec<f32> = (0..rows).map(|_| rnd()).collect();
        for bias in [None, Some(&b[..])] {
            let mut got = std::vec![0f32; rows];
            fast::matvec_f32(&w, cols, &x, bias, &mut got);
            for r in 0..rows {
                let d = fast::dot(&w[r * cols..(r + 1) * cols], &x);
                let want = match bias {
                    Some(b) => d + b[r],
                    None => d,
                };
                prop_assert_eq!(got[r].to_bits(), want.to_bits(), "row {} of {}x{}", r, rows, cols);
            }
        }
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

    /// The fast one-column w8a8 product (an S5 `B̄` on a one-channel signal) gives the
    /// reference's bits, with and without a bias.
    #[test]
    fn w8a8_one_column_matches_the_reference(
        rows in 1usize..300,
        x in -4.0f32..4.0,
        with_bias in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let mut s = seed | 1;
        let mut rnd = || {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        };
        let q: Vec<i8> = (0..rows).map(|_| (rnd() * 127.0) as i8).collect();
        let scale: Vec<f32> = (0..rows).map(|_| 0.01 + rnd().abs() * 0.05).collect();
        let bias: Vec<f32> = (0..rows).map(|_| rnd()).collect();
        let bias = with_bias.then_some(&bias[..]);
        let w = Weights::I8(QuantI8 { q: &q, scale: &scale, cols: 1, act: ActQuant::DynamicI8 });
        let mut yr = std::vec![f32::NAN; rows];
        let mut yf = std::vec![f32::NAN; rows];
        matvec(Kernels::Reference, w, 1, &[x], bias, &mut yr);
        matvec(Kernels::Fast, w, 1, &[x], bias, &mut yf);
        let bits = |v: &[f32]| v.iter().map(|a| a.to_bits()).collect::<std::vec::Vec<_>>();
        prop_assert_eq!(bits(&yr), bits(&yf));
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
