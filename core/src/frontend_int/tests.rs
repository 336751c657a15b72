//! Tests of the integer front end (errors against `f64` and `f32` references, exactness).

use super::fft::*;
use super::*;
use crate::frontend::{mel_filterbank, FrontEnd, MelScale, Window};
use proptest::prelude::*;
use std::vec::Vec;
use std::{format, println, vec};

/// The shipped spoken-digit configuration.
fn shipped() -> FrontEndConfig {
    FrontEndConfig {
        sample_rate: 8000,
        frame_len: 200,
        hop: 80,
        n_fft: 256,
        n_mels: 40,
        f_min: 20.0,
        f_max: 4000.0,
        window: Window::Hann,
        mel_scale: MelScale::Htk,
        area_norm: false,
        log_eps: 1e-6,
        filter_nnz: 0,
    }
}

const FEAT_FRAC: u32 = 11;

/// Tables of a configuration: float filters, Q31 window, i16 filters and their frac.
struct Tables {
    cfg: FrontEndConfig,
    filt: Vec<f32>,
    win: Vec<i32>,
    qf: Vec<i16>,
    frac: u32,
}

fn tables(cfg: FrontEndConfig) -> Tables {
    let mut filt = vec![0f32; cfg.filterbank_len()];
    mel_filterbank(&cfg, &mut filt).unwrap();
    let mut win = vec![0i32; cfg.frame_len as usize];
    window_q31(&cfg, &mut win).unwrap();
    let mut qf = vec![0i16; filt.len()];
    let frac = quantize_filters(&filt, &mut qf).unwrap();
    Tables {
        cfg,
        filt,
        win,
        qf,
        frac,
    }
}

/// Per frame: (sample index at which it was emitted, Q24 features as f64 nats).
fn run_int(t: &Tables, win: &[i32], pcm: &[i16]) -> Vec<(usize, Vec<f64>)> {
    let fe = IntFrontEnd::new(t.cfg, win, &t.qf, t.frac, FEAT_FRAC).unwrap();
    let mut st = vec![0i32; IntFrontEnd::state_len(&t.cfg)];
    let mut sc = vec![0i32; IntFrontEnd::scratch_len(&t.cfg)];
    let mut o = vec![0i32; t.cfg.n_mels as usize];
    let mut o16 = vec![0i16; t.cfg.n_mels as usize];
    let mut st16 = st.clone();
    let mut res = Vec::new();
    for (i, &s) in pcm.iter().enumerate() {
        let r = fe.push_q24(s, &mut st, &mut sc, &mut o).unwrap();
        let r16 = fe.push(s, &mut st16, &mut sc, &mut o16).unwrap();
        assert_eq!(r, r16);
        if r {
            // The i16 output is the Q24 one rounded.
            for (&a, &b) in o.iter().zip(&o16) {
                let want = saturate_i16(round_shr_i64(a as i64, 24 - FEAT_FRAC));
                assert_eq!(b, want);
            }
            res.push((
                i,
                o.iter().map(|&v| v as f64 / (1u64 << 24) as f64).collect(),
            ));
        }
    }
    res
}

fn run_float(t: &Tables, pcm: &[i16]) -> Vec<(usize, Vec<f64>)> {
    let fe = FrontEnd::new(t.cfg, &t.filt).unwrap();
    let mut st = vec![0f32; t.cfg.state_len()];
    let mut sc = vec![0f32; t.cfg.scratch_len()];
    let mut o = vec![0f32; t.cfg.n_mels as usize];
    let mut res = Vec::new();
    for (i, &s) in pcm.iter().enumerate() {
        if fe
            .push(s as f32 / 32768.0, &mut st, &mut sc, &mut o)
            .unwrap()
        {
            res.push((i, o.iter().map(|&v| v as f64).collect()));
        }
    }
    res
}

/// f64 reference of the whole pipeline (exact window, direct DFT, the f32 filters):
/// per frame, (features, mel energies).
fn run_f64(t: &Tables, pcm: &[i16]) -> Vec<(Vec<f64>, Vec<f64>)> {
    let c = &t.cfg;
    let (fl, hop, nf, nb) = (
        c.frame_len as usize,
        c.hop as usize,
        c.n_fft as usize,
        c.n_bins(),
    );
    let tw: Vec<(f64, f64)> = (0..nf)
        .map(|i| {
            let a = 2.0 * core::f64::consts::PI * i as f64 / nf as f64;
            (a.cos(), a.sin())
        })
        .collect();
    let win: Vec<f64> = (0..fl)
        .map(|n| {
            let cs = (2.0 * core::f64::consts::PI * n as f64 / fl as f64).cos();
            match c.window {
                Window::Hann => 0.5 - 0.5 * cs,
                Window::Hamming => 0.54 - 0.46 * cs,
                Window::Rectangular => 1.0,
            }
        })
        .collect();
    let eps = c.log_eps as f64;
    let mut res = Vec::new();
    let mut start = 0;
    while start + fl <= pcm.len() {
        let x: Vec<f64> = (0..fl)
            .map(|n| pcm[start + n] as f64 / 32768.0 * win[n])
            .collect();
        let p: Vec<f64> = (0..nb)
            .map(|k| {
                let (mut re, mut im) = (0.0, 0.0);
                for (n, &v) in x.iter().enumerate() {
                    let (cs, sn) = tw[(k * n) % nf];
                    re += v * cs;
                    im -= v * sn;
                }
                re * re + im * im
            })
            .collect();
        let mel: Vec<f64> = t
            .filt
            .chunks_exact(nb)
            .map(|r| r.iter().zip(&p).map(|(&w, &q)| w as f64 * q).sum())
            .collect();
        res.push((mel.iter().map(|&m| (m + eps).ln()).collect(), mel));
        start += hop;
    }
    res
}

fn lcg(seed: &mut u64) -> u32 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (*seed >> 33) as u32
}

fn to_pcm(x: impl Iterator<Item = f64>) -> Vec<i16> {
    x.map(|v| v.round().clamp(-32768.0, 32767.0) as i16)
        .collect()
}

fn signals() -> Vec<(&'static str, Vec<i16>)> {
    let n = 4000usize;
    let sr = 8000.0;
    let pi2 = 2.0 * core::f64::consts::PI;
    let sine = |f: f64, a: f64| to_pcm((0..n).map(move |i| a * (pi2 * f * i as f64 / sr).sin()));
    let mut seed = 12345u64;
    let noise: Vec<i16> = (0..n)
        .map(|_| (lcg(&mut seed) as i32 % 16384 - 8192) as i16)
        .collect();
    let fs_noise: Vec<i16> = (0..n).map(|_| lcg(&mut seed) as u16 as i16).collect();
    let chirp = to_pcm((0..n).map(|i| {
        let t = i as f64 / sr;
        let dur = n as f64 / sr;
        // 100 Hz → 3900 Hz linear chirp.
        let ph = pi2 * (100.0 * t + 0.5 * (3800.0 / dur) * t * t);
        0.7 * 32768.0 * ph.sin()
    }));
    let square: Vec<i16> = (0..n)
        .map(|i| if (i / 16) % 2 == 0 { 32767 } else { -32768 })
        .collect();
    let mix = to_pcm((0..n).map(|i| {
        let t = i as f64 / sr;
        3000.0 * (pi2 * 300.0 * t).sin()
            + 2000.0 * (pi2 * 1234.5 * t).sin()
            + 500.0 * (pi2 * 2900.0 * t).cos()
            + 200.0
    }));
    vec![
        ("sine 440 Hz -6 dBFS", sine(440.0, 16384.0)),
        ("sine 1 kHz full scale", sine(1000.0, 32767.0)),
        ("sine 3 kHz -20 dBFS", sine(3000.0, 3276.8)),
        ("sine 700 Hz -60 dBFS", sine(700.0, 32.768)),
        ("chirp 100-3900 Hz", chirp),
        ("noise -12 dBFS", noise),
        ("noise full scale", fs_noise),
        ("square 250 Hz full scale", square),
        ("three tones + DC", mix),
        ("silence", vec![0i16; n]),
    ]
}

/// Max |Δ| over bands within `rel` of the frame's loudest (f64) band, and over all bands.
#[derive(Default, Clone, Copy)]
struct Err2 {
    near: f64,
    all: f64,
}

fn compare(a: &[(usize, Vec<f64>)], b: &[Vec<f64>], refs: &[(Vec<f64>, Vec<f64>)]) -> Err2 {
    let mut e = Err2::default();
    assert_eq!(a.len(), b.len());
    for ((fa, fb), (_, mel)) in a.iter().zip(b).zip(refs) {
        let peak = mel.iter().cloned().fold(0.0, f64::max);
        for ((&x, &y), &m) in fa.1.iter().zip(fb).zip(mel) {
            let d = (x - y).abs();
            e.all = e.all.max(d);
            if m >= 1e-9 * peak {
                e.near = e.near.max(d);
            }
        }
    }
    e
}

#[test]
fn sine_table_is_accurate() {
    let mut worst = 0f64;
    for (i, &v) in SIN_Q30.iter().enumerate() {
        let want = (core::f64::consts::PI * i as f64 / 512.0).sin() * (1u64 << 30) as f64;
        worst = worst.max((v as f64 - want).abs());
    }
    println!("sine table: max error {worst:.3} LSB (Q30)");
    assert!(worst <= 0.5 + 1e-6);
    assert_eq!(SIN_Q30[0], 0);
    assert_eq!(SIN_Q30[QUARTER], 1 << 30);
    assert!((PI_Q62 as f64 / 2f64.powi(62) - core::f64::consts::PI).abs() < 1e-15);
    for t in 0..1024 {
        let a = 2.0 * core::f64::consts::PI * t as f64 / 1024.0;
        assert!((sin_q30(t) as f64 / 2f64.powi(30) - a.sin()).abs() < 1e-9);
        assert!((cos_q30(t) as f64 / 2f64.powi(30) - a.cos()).abs() < 1e-9);
    }
}

/// The real FFT alone against a direct f64 DFT, every size, several inputs.
#[test]
fn fft_matches_direct_dft() {
    let mut seed = 7u64;
    let mut worst = f64::INFINITY;
    for lg in 4..=10 {
        let n = 1usize << lg;
        let inputs: Vec<(&str, Vec<i32>)> = vec![
            (
                "noise",
                (0..n)
                    .map(|_| (lcg(&mut seed) as i32) >> 3)
                    .collect::<Vec<_>>(),
            ),
            (
                "sine",
                (0..n)
                    .map(|i| ((0.37 * i as f64).sin() * 2.6e8) as i32)
                    .collect(),
            ),
            (
                "impulse+dc",
                (0..n)
                    .map(|i| if i == 3 { 1 << 28 } else { 1000 })
                    .collect(),
            ),
            (
                "full-range",
                (0..n).map(|_| lcg(&mut seed) as i32 ^ i32::MIN).collect(),
            ),
        ];
        let mut line = format!("n {n:4}:");
        for (name, x) in inputs {
            let mut buf = vec![0i32; n + 2];
            buf[..n].copy_from_slice(&x);
            let e = rfft_q(&mut buf).unwrap();
            let (mut sig, mut err) = (0f64, 0f64);
            for k in 0..=n / 2 {
                let (mut re, mut im) = (0f64, 0f64);
                for (i, &v) in x.iter().enumerate() {
                    let a = -2.0 * core::f64::consts::PI * ((k * i) % n) as f64 / n as f64;
                    re += v as f64 * a.cos();
                    im += v as f64 * a.sin();
                }
                let s = 2f64.powi(e);
                let (gr, gi) = (buf[2 * k] as f64 * s, buf[2 * k + 1] as f64 * s);
                sig += re * re + im * im;
                err += (gr - re).powi(2) + (gi - im).powi(2);
            }
            let snr = 10.0 * (sig / err.max(1e-300)).log10();
            worst = worst.min(snr);
            line += &format!("  {name} {snr:6.1} dB");
        }
        println!("fft SNR vs f64 DFT, {line}");
    }
    println!("fft SNR: worst {worst:.1} dB");
    assert!(worst >= 140.0, "FFT SNR {worst} dB");
    assert!(rfft_q(&mut [0i32; 10]).is_none());
    assert!(rfft_q(&mut [0i32; 2048 + 2]).is_none());
}

/// Features against the f64 reference and the f32 front end, shipped configuration.
#[test]
fn features_match_float_front_end() {
    let t = tables(shipped());
    println!(
        "filter_frac {} (filters i16), feat_frac {FEAT_FRAC}; max |Δ| in nats, bands within \
         90 dB of the frame's loudest / all bands",
        t.frac
    );
    println!(
        "{:26} {:>21} {:>21} {:>21}",
        "signal", "int vs f64", "f32 vs f64", "int vs f32"
    );
    let (mut wi, mut wf, mut wif) = (Err2::default(), Err2::default(), Err2::default());
    for (name, pcm) in signals() {
        let refs = run_f64(&t, &pcm);
        let fi = run_int(&t, &t.win, &pcm);
        let ff = run_float(&t, &pcm);
        let rf: Vec<Vec<f64>> = refs.iter().map(|r| r.0.clone()).collect();
        let ffv: Vec<Vec<f64>> = ff.iter().map(|r| r.1.clone()).collect();
        let ei = compare(&fi, &rf, &refs);
        let ef = compare(&ff, &rf, &refs);
        let eif = compare(&fi, &ffv, &refs);
        println!(
            "{name:26} {:>10.2e} {:>10.2e} {:>10.2e} {:>10.2e} {:>10.2e} {:>10.2e}",
            ei.near, ei.all, ef.near, ef.all, eif.near, eif.all
        );
        for (w, e) in [(&mut wi, ei), (&mut wf, ef), (&mut wif, eif)] {
            w.near = w.near.max(e.near);
            w.all = w.all.max(e.all);
        }
        // Frames at the same sample indices.
        let ii: Vec<usize> = fi.iter().map(|f| f.0).collect();
        let fidx: Vec<usize> = ff.iter().map(|f| f.0).collect();
        assert_eq!(ii, fidx);
    }
    println!(
        "worst: int vs f64 {:.2e} / {:.2e}, f32 vs f64 {:.2e} / {:.2e}, int vs f32 {:.2e} / {:.2e}",
        wi.near, wi.all, wf.near, wf.all, wif.near, wif.all
    );
    assert!(wi.all <= 0.001, "int vs f64: {}", wi.all);
    assert!(wif.all <= 0.003, "int vs f32: {}", wif.all);
}

/// Silence gives exactly `round(ln(log_eps) · 2^feat_frac)`, for several `log_eps`.
#[test]
fn silence_is_ln_eps() {
    for eps in [1e-6f32, 1e-10, 0.5, 3.0, 1e-40 /* subnormal */] {
        let mut cfg = shipped();
        cfg.log_eps = eps;
        let t = tables(cfg);
        for frac in [0u32, 8, 11, 15] {
            let fe = IntFrontEnd::new(cfg, &t.win, &t.qf, t.frac, frac).unwrap();
            let mut st = vec![0i32; IntFrontEnd::state_len(&cfg)];
            let mut sc = vec![0i32; IntFrontEnd::scratch_len(&cfg)];
            let mut o = vec![0i16; 40];
            let mut q = vec![0i32; 40];
            let want = ((eps as f64).ln() * (1u64 << frac) as f64).round();
            let want = want.clamp(-32768.0, 32767.0) as i16;
            let want24 = ((eps as f64).ln() * (1u64 << 24) as f64).round() as i32;
            let mut frames = 0;
            for _ in 0..600 {
                if fe.push(0, &mut st, &mut sc, &mut o).unwrap() {
                    assert!(
                        o.iter().all(|&v| v == want),
                        "{eps} {frac}: {o:?} vs {want}"
                    );
                    frames += 1;
                }
            }
            fe.reset(&mut st);
            for _ in 0..200 {
                if fe.push_q24(0, &mut st, &mut sc, &mut q).unwrap() {
                    // ln_u64 is within 0.6 LSB of Q24, plus the rounding of e·ln 2.
                    assert!(q.iter().all(|&v| (v - want24).abs() <= 1), "{q:?} {want24}");
                }
            }
            assert_eq!(frames, 6);
        }
    }
}

/// Frames appear at the same sample indices as in the float front end, for several
/// framings (and the features agree there too).
#[test]
fn streaming_matches_float_indices() {
    let mut seed = 99u64;
    let pcm: Vec<i16> = (0..3000)
        .map(|_| (lcg(&mut seed) as i32 % 20000 - 10000) as i16)
        .collect();
    for (fl, hop, nf, nm) in [
        (200, 80, 256, 40),
        (256, 256, 256, 20),
        (17, 5, 32, 6),
        (16, 1, 16, 4),
        (400, 160, 512, 64),
        (1024, 300, 1024, 80),
    ] {
        let mut cfg = shipped();
        cfg.frame_len = fl;
        cfg.hop = hop;
        cfg.n_fft = nf;
        cfg.n_mels = nm;
        cfg.window = Window::Hamming;
        let t = tables(cfg);
        let fi = run_int(&t, &t.win, &pcm);
        let ff = run_float(&t, &pcm);
        let ii: Vec<usize> = fi.iter().map(|f| f.0).collect();
        let fidx: Vec<usize> = ff.iter().map(|f| f.0).collect();
        assert_eq!(ii, fidx, "fl {fl} hop {hop}");
        assert_eq!(ii.first().copied(), Some(fl as usize - 1));
        let mut worst = 0f64;
        for (a, b) in fi.iter().zip(&ff) {
            for (x, y) in a.1.iter().zip(&b.1) {
                worst = worst.max((x - y).abs());
            }
        }
        println!(
            "framing fl {fl} hop {hop} n_fft {nf} n_mels {nm}: int vs f32 max |Δ| {worst:.2e}"
        );
        assert!(worst <= 0.01, "{worst}");
    }
}

#[test]
fn bad_sizes_are_errors() {
    let cfg = shipped();
    let t = tables(cfg);
    let fe = IntFrontEnd::new(cfg, &t.win, &t.qf, t.frac, FEAT_FRAC).unwrap();
    let (sl, scl) = (IntFrontEnd::state_len(&cfg), IntFrontEnd::scratch_len(&cfg));
    assert_eq!((sl, scl), (202, 258));
    let mut st = vec![0i32; sl];
    let mut sc = vec![0i32; scl];
    let mut o = vec![0i16; 40];
    assert_eq!(
        fe.push(1, &mut st[..sl - 1], &mut sc, &mut o),
        Err(StepError::StateTooShort {
            needed: sl,
            got: sl - 1
        })
    );
    assert_eq!(
        fe.push(1, &mut st, &mut sc[..scl - 1], &mut o),
        Err(StepError::ScratchTooShort {
            needed: scl,
            got: scl - 1
        })
    );
    assert_eq!(
        fe.push(1, &mut st, &mut sc, &mut o[..39]),
        Err(StepError::OutputTooShort {
            needed: 40,
            got: 39
        })
    );
    assert!(st.iter().all(|&v| v == 0), "a refused push changes nothing");
    // Longer buffers are fine.
    let mut st2 = vec![0i32; sl + 5];
    let mut sc2 = vec![0i32; scl + 5];
    let mut o2 = vec![0i16; 45];
    assert_eq!(fe.push(1, &mut st2, &mut sc2, &mut o2), Ok(false));
    // Construction.
    let bad = |r: Result<IntFrontEnd<'_>, FormatError>| assert!(r.is_err());
    bad(IntFrontEnd::new(cfg, &t.win[1..], &t.qf, t.frac, 11));
    bad(IntFrontEnd::new(cfg, &t.win, &t.qf[1..], t.frac, 11));
    bad(IntFrontEnd::new(cfg, &t.win, &t.qf, 32, 11));
    bad(IntFrontEnd::new(cfg, &t.win, &t.qf, t.frac, 25));
    let mut neg = t.qf.clone();
    neg[5] = -1;
    bad(IntFrontEnd::new(cfg, &t.win, &neg, t.frac, 11));
    for eps in [0.0f32, -1.0, f32::NAN, f32::INFINITY, -0.0] {
        let mut c = cfg;
        c.log_eps = eps;
        bad(IntFrontEnd::new(c, &t.win, &t.qf, t.frac, 11));
    }
    for (fl, hop, nf, nm) in [
        (200, 80, 250, 40),
        (300, 80, 256, 40),
        (200, 0, 256, 40),
        (200, 201, 256, 40),
        (200, 80, 256, 0),
        (1, 1, 16, 1),
        (200, 80, 2048, 40),
    ] {
        let mut c = cfg;
        (c.frame_len, c.hop, c.n_fft, c.n_mels) = (fl, hop, nf, nm);
        assert!(check_config(&c).is_err(), "{fl} {hop} {nf} {nm}");
    }
    // Conversion helpers.
    assert!(window_q31(&cfg, &mut [0i32; 199]).is_err());
    assert!(quantize_filters(&[0.5, 1.0], &mut [0i16; 1]).is_err());
    assert!(quantize_filters(&[0.5, -1.0], &mut [0i16; 2]).is_err());
    assert!(quantize_filters(&[0.5, f32::NAN], &mut [0i16; 2]).is_err());
    let mut q = [0i16; 3];
    assert_eq!(quantize_filters(&[0.5, 1.0, 0.0], &mut q), Ok(14));
    assert_eq!(q, [8192, 16384, 0]);
    assert_eq!(quantize_filters(&[0.99, 0.0, 0.25], &mut q), Ok(15));
    assert_eq!(quantize_filters(&[3.0, 0.0, 0.25], &mut q), Ok(13));
    let mut w = vec![0i32; 200];
    window_q31(&cfg, &mut w).unwrap();
    assert_eq!((w[0], w[100]), (0, i32::MAX));
}

/// The same pipeline with the window rounded to Q15: the error it adds (the reason the
/// window table is Q0.31).
#[test]
fn q15_window_costs_accuracy() {
    let t = tables(shipped());
    let w15: Vec<i32> = t
        .win
        .iter()
        .map(|&w| (round_shr_i64(w as i64, 16).min(32767) as i32) << 16)
        .collect();
    let (mut e31, mut e15) = (0f64, 0f64);
    for (name, pcm) in signals() {
        let refs = run_f64(&t, &pcm);
        let rf: Vec<Vec<f64>> = refs.iter().map(|r| r.0.clone()).collect();
        let a = compare(&run_int(&t, &t.win, &pcm), &rf, &refs).all;
        let b = compare(&run_int(&t, &w15, &pcm), &rf, &refs).all;
        println!("window Q31 vs Q15, {name:26}: max |Δ| vs f64 {a:.2e} / {b:.2e}");
        e31 = e31.max(a);
        e15 = e15.max(b);
    }
    println!("window Q31 vs Q15: worst {e31:.2e} / {e15:.2e}");
    assert!(e15 > e31);
}

/// A valid configuration with random tables and parameters (for the panic-freedom test).
fn arb_case() -> impl Strategy<Value = (FrontEndConfig, Vec<i32>, Vec<i16>, u32, u32)> {
    (
        4u32..=10,
        any::<u32>(),
        any::<u32>(),
        1u32..=6,
        1u32..0x7f80_0000,
    )
        .prop_flat_map(|(lg, a, b, nm, eps)| {
            let nf = 1u32 << lg;
            let fl = 2 + a % (nf - 1);
            let hop = 1 + b % fl;
            let mut cfg = shipped();
            (cfg.n_fft, cfg.frame_len, cfg.hop, cfg.n_mels) = (nf, fl, hop, nm);
            cfg.log_eps = f32::from_bits(eps);
            (
                Just(cfg),
                proptest::collection::vec(
                    prop_oneof![Just(i32::MIN), Just(i32::MAX), any::<i32>()],
                    fl as usize,
                ),
                proptest::collection::vec(
                    prop_oneof![Just(0i16), Just(i16::MAX), 0i16..=i16::MAX],
                    cfg.filterbank_len(),
                ),
                0u32..=31,
                0u32..=24,
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Random (valid) configurations, extreme tables, random state and samples: never a
    /// panic or an arithmetic overflow (tests run with overflow checks).
    #[test]
    fn never_panics((cfg, win, filt, ff, fq) in arb_case(),
                    state in proptest::collection::vec(any::<i32>(), 1026),
                    pcm in proptest::collection::vec(
                        prop_oneof![Just(i16::MIN), Just(i16::MAX), any::<i16>()], 1..1200)) {
        let fe = IntFrontEnd::new(cfg, &win, &filt, ff, fq).unwrap();
        let mut st = state[..IntFrontEnd::state_len(&cfg)].to_vec();
        let mut sc = vec![0i32; IntFrontEnd::scratch_len(&cfg)];
        let mut o = vec![0i16; cfg.n_mels as usize];
        let mut q = vec![0i32; cfg.n_mels as usize];
        let mut frames = 0usize;
        for (i, &s) in pcm.iter().enumerate() {
            let r = if i % 2 == 0 {
                fe.push(s, &mut st, &mut sc, &mut o)
            } else {
                fe.push_q24(s, &mut st, &mut sc, &mut q)
            };
            frames += r.unwrap() as usize;
        }
        // After a corrupt state, frames still come every `hop` samples once the ring
        // has filled.
        let fl = cfg.frame_len as usize;
        if pcm.len() >= 2 * fl {
            prop_assert!(frames >= 1);
        }
    }

    /// The shipped configuration with a corrupt state: no panic, counters clamped.
    #[test]
    fn corrupt_state_is_clamped(state in proptest::collection::vec(any::<i32>(), 202),
                                pcm in proptest::collection::vec(any::<i16>(), 1..300)) {
        let t = tables(shipped());
        let fe = IntFrontEnd::new(t.cfg, &t.win, &t.qf, t.frac, FEAT_FRAC).unwrap();
        let mut st = state.clone();
        let mut sc = vec![0i32; 258];
        let mut o = vec![0i16; 40];
        for &s in &pcm {
            fe.push(s, &mut st, &mut sc, &mut o).unwrap();
            prop_assert!((0..200).contains(&st[200]));
            prop_assert!((0..200).contains(&st[201]));
        }
    }
}

/// 16-bit mono PCM samples of a WAV file (minimal RIFF reader for the test data).
fn read_wav(path: &std::path::Path) -> Option<Vec<i16>> {
    let b = std::fs::read(path).ok()?;
    if b.get(..4)? != b"RIFF" || b.get(8..12)? != b"WAVE" {
        return None;
    }
    let mut i = 12;
    let mut fmt_ok = false;
    while i + 8 <= b.len() {
        let id = &b[i..i + 4];
        let len = u32::from_le_bytes(b[i + 4..i + 8].try_into().ok()?) as usize;
        let body = b.get(i + 8..(i + 8 + len).min(b.len()))?;
        if id == b"fmt " {
            let fmt = u16::from_le_bytes(body.get(..2)?.try_into().ok()?);
            let ch = u16::from_le_bytes(body.get(2..4)?.try_into().ok()?);
            let bits = u16::from_le_bytes(body.get(14..16)?.try_into().ok()?);
            fmt_ok = fmt == 1 && ch == 1 && bits == 16;
        } else if id == b"data" && fmt_ok {
            return Some(
                body.chunks_exact(2)
                    .map(|c| i16::from_le_bytes([c[0], c[1]]))
                    .collect(),
            );
        }
        i += 8 + len + (len & 1);
    }
    None
}

/// Real speech: the FSDD test split (`{digit}_{speaker}_{0..4}.wav`) through both front
/// ends, and the first 30 files against the f64 reference. Skipped when the data is absent.
#[test]
fn fsdd_recordings() {
    let dir = std::env::var_os("TINYSSM_DATA")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "/work/shared/data".into())
        .join("fsdd/recordings");
    let Ok(rd) = std::fs::read_dir(&dir) else {
        println!("fsdd: {} not found, skipped", dir.display());
        return;
    };
    let mut files: Vec<_> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.rsplit('_').next())
                .and_then(|s| s.parse::<u32>().ok())
                .is_some_and(|i| i < 5)
        })
        .collect();
    files.sort();
    let t = tables(shipped());
    let (mut wif, mut wi, mut frames) = (0f64, 0f64, 0usize);
    for (n, p) in files.iter().enumerate() {
        let Some(pcm) = read_wav(p) else { continue };
        let fi = run_int(&t, &t.win, &pcm);
        let ff = run_float(&t, &pcm);
        assert_eq!(fi.len(), ff.len());
        for (a, b) in fi.iter().zip(&ff) {
            assert_eq!(a.0, b.0);
            for (x, y) in a.1.iter().zip(&b.1) {
                wif = wif.max((x - y).abs());
            }
        }
        frames += fi.len();
        if n < 30 {
            let refs = run_f64(&t, &pcm);
            let rf: Vec<Vec<f64>> = refs.iter().map(|r| r.0.clone()).collect();
            wi = wi.max(compare(&fi, &rf, &refs).all);
        }
    }
    println!(
        "fsdd: {} files, {frames} frames: int vs f32 max |Δ| {wif:.2e} nats; int vs f64 \
         (first 30 files) {wi:.2e}",
        files.len()
    );
    assert!(wif <= 0.003 && wi <= 0.001, "{wif} {wi}");
}
