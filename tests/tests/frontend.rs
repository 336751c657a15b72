//! The streaming audio front end against librosa (tests/goldens/gen_frontend.py): the mel
//! filterbank and the log-mel features of every frame, fed one sample at a time.
//! (`features.npy` is stored in Fortran order, which also exercises that path of the reader.)

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use tinyssm_core::frontend::{mel_filterbank, FrontEnd, FrontEndConfig, MelScale, Window};
use tinyssm_host::io;

fn cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/frontend");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    assert_eq!(v.len(), 3, "fixtures missing in {}", root.display());
    v
}

fn hann8k() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/frontend/sr8k-hann-htk")
}

fn config(dir: &Path) -> FrontEndConfig {
    let j: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    let u = |k: &str| j[k].as_u64().unwrap() as u32;
    let f = |k: &str| j[k].as_f64().unwrap() as f32;
    FrontEndConfig {
        sample_rate: u("sample_rate"),
        frame_len: u("frame_len"),
        hop: u("hop"),
        n_fft: u("n_fft"),
        n_mels: u("n_mels"),
        f_min: f("f_min"),
        f_max: f("f_max"),
        window: match j["window"].as_str().unwrap() {
            "hann" => Window::Hann,
            "hamming" => Window::Hamming,
            _ => Window::Rectangular,
        },
        mel_scale: match j["mel_scale"].as_str().unwrap() {
            "htk" => MelScale::Htk,
            _ => MelScale::Slaney,
        },
        area_norm: j["area_norm"].as_bool().unwrap(),
        log_eps: f("log_eps"),
        filter_nnz: 0,
    }
}

#[test]
fn filterbank_matches_librosa() {
    for dir in cases() {
        let cfg = config(&dir);
        let (_, want) = io::read_f32_npy(&dir.join("filters.npy")).unwrap();
        let mut got = vec![0f32; cfg.filterbank_len()];
        mel_filterbank(&cfg, &mut got).unwrap();
        let peak = want.iter().fold(0f32, |a, &b| a.max(b.abs()));
        let err = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        println!(
            "{}: filterbank max |Δ| {err:.2e} (peak {peak:.3e})",
            dir.display()
        );
        assert!(err <= 1e-6 * peak.max(1e-3), "{}: {err}", dir.display());
    }
}

#[test]
fn streamed_features_match_librosa() {
    let mut worst = Vec::new();
    for dir in cases() {
        let cfg = config(&dir);
        let (_, x) = io::read_f32_npy(&dir.join("input.npy")).unwrap();
        let (shape, want) = io::read_f32_npy(&dir.join("features.npy")).unwrap();
        let mut fb = vec![0f32; cfg.filterbank_len()];
        mel_filterbank(&cfg, &mut fb).unwrap();
        let fe = FrontEnd::new(cfg, &fb).unwrap();
        let mut state = vec![0f32; cfg.state_len()];
        let mut scratch = vec![0f32; cfg.scratch_len()];
        let mut out = vec![0f32; cfg.n_mels as usize];
        let mut got = Vec::new();
        for &s in &x {
            if fe.push(s, &mut state, &mut scratch, &mut out).unwrap() {
                got.extend_from_slice(&out);
            }
        }
        assert_eq!(
            got.len() as u64,
            shape[0] * shape[1],
            "{}: frame count",
            dir.display()
        );
        let err = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        println!(
            "{}: log-mel max |Δ| {err:.2e} over {} frames",
            dir.display(),
            shape[0]
        );
        worst.push((dir.clone(), err));
        // After a reset the stream starts over and reproduces the first frame exactly.
        fe.reset(&mut state);
        let n = cfg.n_mels as usize;
        let mut first = None;
        for &s in &x {
            if fe.push(s, &mut state, &mut scratch, &mut out).unwrap() {
                first = Some(out.clone());
                break;
            }
        }
        assert_eq!(first.unwrap(), got[..n].to_vec());
    }
    for (dir, err) in worst {
        assert!(err <= 1e-4, "{}: {err}", dir.display());
    }
}

#[test]
fn bad_configs_and_short_buffers_are_errors() {
    let dir = &hann8k();
    let cfg = config(dir);
    let mut fb = vec![0f32; cfg.filterbank_len()];
    mel_filterbank(&cfg, &mut fb).unwrap();
    for bad in [
        FrontEndConfig { n_fft: 300, ..cfg },
        FrontEndConfig { n_fft: 2048, ..cfg },
        FrontEndConfig {
            frame_len: 300,
            ..cfg
        },
        FrontEndConfig { hop: 0, ..cfg },
        FrontEndConfig { hop: 201, ..cfg },
        FrontEndConfig { n_mels: 0, ..cfg },
        FrontEndConfig {
            f_max: 5000.0,
            ..cfg
        },
        FrontEndConfig {
            f_min: f32::NAN,
            ..cfg
        },
        FrontEndConfig {
            log_eps: 0.0,
            filter_nnz: 0,
            ..cfg
        },
        FrontEndConfig {
            sample_rate: 0,
            ..cfg
        },
    ] {
        assert!(bad.validate().is_err(), "{bad:?}");
        assert!(mel_filterbank(&bad, &mut fb).is_err());
    }
    assert!(FrontEnd::new(cfg, &fb[1..]).is_err());
    assert!(mel_filterbank(&cfg, &mut [0f32; 10]).is_err());
    let fe = FrontEnd::new(cfg, &fb).unwrap();
    let mut out = vec![0f32; cfg.n_mels as usize];
    let mut scratch = vec![0f32; cfg.scratch_len()];
    assert!(fe
        .push(
            0.0,
            &mut vec![0f32; cfg.state_len() - 1],
            &mut scratch,
            &mut out
        )
        .is_err());
    // Short scratch / output only matter when a frame completes.
    let mut state = vec![0f32; cfg.state_len()];
    let mut res = Ok(false);
    for _ in 0..cfg.frame_len {
        res = fe.push(0.1, &mut state, &mut scratch[..10], &mut out);
    }
    assert!(res.is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Any state contents (corrupt counters, NaN, infinities) and any samples: no panic.
    #[test]
    fn arbitrary_state_never_panics(
        st in proptest::collection::vec(proptest::num::f32::ANY, 202),
        xs in proptest::collection::vec(proptest::num::f32::ANY, 0..600),
    ) {
        let dir = &hann8k();
        let cfg = config(dir);
        let mut fb = vec![0f32; cfg.filterbank_len()];
        mel_filterbank(&cfg, &mut fb).unwrap();
        let fe = FrontEnd::new(cfg, &fb).unwrap();
        let mut state = st;
        let mut scratch = vec![0f32; cfg.scratch_len()];
        let mut out = vec![0f32; cfg.n_mels as usize];
        let mut frames = 0;
        for &x in &xs {
            if fe.push(x, &mut state, &mut scratch, &mut out).unwrap() {
                frames += 1;
            }
        }
        // At most one frame per hop after the first.
        prop_assert!(frames <= xs.len() / cfg.hop as usize + 1);
    }
}

/// A model that carries its front end: `step_sample` = the front end's features through
/// `step`, with the front end's buffers after the model's (and exactly that long).
#[test]
fn model_with_front_end_steps_on_samples() {
    use tinyssm_core::{Arch, Config, DType, Model};
    let fe_cfg = config(&hann8k());
    let mut cfg = tinyssm_tests::configs::s4d();
    cfg.arch = Arch::S4d(tinyssm_core::S4dConfig {
        d_input: fe_cfg.n_mels,
        ..tinyssm_tests::configs::s4d_config()
    });
    // Without a matching d_input the front end is refused.
    let bad = Config {
        front_end: Some(fe_cfg),
        compute: tinyssm_core::Compute::Float,
        ..tinyssm_tests::configs::s4d()
    };
    assert!(bad.validate().is_err());
    let plain = cfg;
    cfg.front_end = Some(fe_cfg);
    let buf = tinyssm_tests::random_blob(&cfg, 3, DType::F32).unwrap();
    let m = Model::parse(buf.as_bytes()).unwrap();
    let pbuf = tinyssm_tests::random_blob(&plain, 3, DType::F32).unwrap();
    let pm = Model::parse(pbuf.as_bytes()).unwrap();
    assert_eq!(m.state_len(), pm.state_len() + fe_cfg.state_len());
    assert_eq!(
        m.scratch_len(),
        pm.scratch_len() + fe_cfg.scratch_len() + fe_cfg.n_mels as usize
    );
    assert!(pm.front_end().is_none());
    let fe = m.front_end().unwrap();
    let mut fb = vec![0f32; fe_cfg.filterbank_len()];
    mel_filterbank(&fe_cfg, &mut fb).unwrap();

    let (_, x) = io::read_f32_npy(&hann8k().join("input.npy")).unwrap();
    // Canary-filled buffers of exactly the reported sizes, plus a tail that must survive.
    const CANARY: f32 = 1.2345e-7;
    let mut st = vec![CANARY; m.state_len() + 8];
    let mut sc = vec![CANARY; m.scratch_len() + 8];
    m.reset(&mut st).unwrap();
    let mut out = vec![0f32; m.d_output()];
    // The same by hand: the front end with its own buffers, then the model step.
    let mut fst = vec![0f32; fe_cfg.state_len()];
    let mut fsc = vec![0f32; fe_cfg.scratch_len()];
    let mut feats = vec![0f32; fe_cfg.n_mels as usize];
    let mut mst = vec![0f32; pm.state_len()];
    let mut msc = vec![0f32; m.scratch_len()];
    let mut mout = vec![0f32; m.d_output()];
    let mut frames = 0;
    for &s in &x {
        let a = m.step_sample(&fe, s, &mut st, &mut sc, &mut out).unwrap();
        let b = fe.push(s, &mut fst, &mut fsc, &mut feats).unwrap();
        assert_eq!(a, b);
        if b {
            m.step(
                tinyssm_core::Input::Vector(&feats),
                &mut mst,
                &mut msc,
                &mut mout,
            )
            .unwrap();
            assert_eq!(out, mout);
            frames += 1;
        }
    }
    assert_eq!(frames, 98);
    assert!(st[m.state_len()..].iter().all(|&v| v == CANARY));
    assert!(sc[m.scratch_len()..].iter().all(|&v| v == CANARY));
    // Every reported scratch float was used.
    assert!(sc[..m.scratch_len()].iter().all(|&v| v != CANARY));
    // Short buffers are errors; a model without a front end refuses samples.
    assert!(m
        .step_sample(&fe, 0.0, &mut st[..10], &mut sc, &mut out)
        .is_err());
    assert!(pm
        .step_sample(&fe, 0.0, &mut mst, &mut msc, &mut mout)
        .is_err());
}

/// A window computed once (`FrontEnd::window_table`, `FrontEnd::with_window`), with and
/// without the mel band ranges, gives the same features and outputs through
/// `Model::step_sample`, bit for bit, as the per-frame window of the plain front end — also on a stretch whose power spectrum overflows
/// to infinity (where the band sums must fall back to full sums); another
/// configuration's table or front end is refused.
#[test]
fn windowed_step_sample_is_bit_identical() {
    let root = tinyssm_tests::repo_root().join("models");
    let f = tinyssm_host::ModelFile::open(root.join("fsdd-s4d.tssm")).unwrap();
    let m = f.model();
    let fe = m.front_end().unwrap();
    let (fl, nm) = (fe.config().frame_len as usize, fe.config().n_mels as usize);
    let mut wbuf = vec![0f32; fl];
    let table = fe.window_table(&mut wbuf).unwrap();
    let mut bbuf = vec![0f32; fl + 2 * nm];
    let banded = fe.window_table(&mut bbuf).unwrap();
    // The band ranges are really there: each band's range is short next to n_bins.
    let ranges = banded.band_ranges().unwrap();
    assert_eq!(ranges.len(), 2 * nm);
    assert!(ranges.chunks(2).all(|r| r[1] > r[0] && r[1] - r[0] < 40.0));
    assert!(table.band_ranges().is_none());
    let prepared = fe.with_window(&banded).unwrap();
    let windowed = fe.with_window(&table).unwrap();
    let mut rng = tinyssm_tests::Rng::new(9);
    let mut x: Vec<f32> = (0..4000)
        .map(|i| 0.3 * (i as f32 * 0.07).sin() + 0.05 * rng.uniform())
        .collect();
    let plain_len = x.len();
    // Samples whose squares overflow: infinite powers, so overflowing frames (each resets
    // the stream).
    x.extend((0..300).map(|i| if i % 7 == 0 { 3e19 } else { 0.1 }));
    let run = |mode: u8, x: &[f32]| {
        let mut st = vec![0f32; m.state_len()];
        let mut sc = vec![0f32; m.scratch_len()];
        let mut o = vec![0f32; m.d_output()];
        m.reset(&mut st).unwrap();
        let mut ys = Vec::new();
        for &s in x {
            let f = match mode {
                0 => &fe,
                1 => &windowed,
                _ => &prepared,
            };
            // An overflowing frame resets the stream (the non-finite policy): every path
            // must overflow on the same frames and restart identically.
            match m.step_sample(f, s, &mut st, &mut sc, &mut o) {
                Ok(true) => ys.extend(o.iter().map(|v| v.to_bits())),
                Ok(false) => {}
                Err(tinyssm_core::StepError::Overflow) => ys.push(u32::MAX),
                Err(e) => panic!("{e}"),
            }
        }
        (ys, st.iter().map(|v| v.to_bits()).collect::<Vec<_>>())
    };
    for xs in [&x[..plain_len], &x[..]] {
        let a = run(0, xs);
        assert!(a.0.len() > 100);
        for mode in 1..3 {
            assert_eq!(a, run(mode, xs), "mode {mode}");
        }
    }
    // Frames of the tail whose windowed huge samples overflow are reported (and restart the
    // stream); every output given is finite.
    let (plain, all) = (run(0, &x[..plain_len]).0, run(0, &x).0);
    let tail = &all[plain.len()..];
    // (After a restart the front end refills its window before the next frame: two
    // frames of the 300-sample tail complete, and both overflow.)
    assert!(
        tail.iter().filter(|&&b| b == u32::MAX).count() >= 2,
        "{tail:?}"
    );
    assert!(tail
        .iter()
        .all(|&b| b == u32::MAX || f32::from_bits(b).is_finite()));
    // A table for another frame length is refused.
    let mut cfg = *fe.config();
    cfg.frame_len -= 8;
    let other = tinyssm_core::frontend::FrontEnd::new(cfg, {
        let mut fb = vec![0f32; cfg.filterbank_len()];
        tinyssm_core::frontend::mel_filterbank(&cfg, &mut fb).unwrap();
        Box::leak(fb.into_boxed_slice())
    })
    .unwrap();
    let mut wb2 = vec![0f32; cfg.frame_len as usize];
    let t2 = other.window_table(&mut wb2).unwrap();
    let (mut st, mut sc, mut o) = (
        vec![0f32; m.state_len()],
        vec![0f32; m.scratch_len()],
        vec![0f32; m.d_output()],
    );
    assert!(fe.with_window(&t2).is_err());
    assert!(m
        .step_sample(&other, 0.0, &mut st, &mut sc, &mut o)
        .is_err());
}

/// Format 1.6's sparse filterbank: for every fixture configuration (HTK and Slaney, unit
/// peak and unit area) and for the shipped spoken-digit one over real recordings, the
/// features from the sparse form equal the dense form's bit for bit, with and without a
/// window table; the sparse form is the dense one's non-zero bands and nothing else.
#[test]
fn sparse_filterbank_features_are_bit_identical() {
    use tinyssm_core::frontend::{sparse_filterbank, sparse_len};
    let mut configs: Vec<(FrontEndConfig, Vec<f32>)> = cases()
        .iter()
        .map(|d| (config(d), io::read_f32_npy(&d.join("input.npy")).unwrap().1))
        .collect();
    let dir = tinyssm_data::data_dir();
    let files = tinyssm_data::fsdd_files(&dir, tinyssm_data::Split::Test).unwrap();
    let fsdd = tinyssm_data::fsdd_front_end();
    let mut audio = Vec::new();
    for (p, _) in files.iter().step_by(30) {
        audio.extend(tinyssm_data::fsdd_clip(p, &fsdd).unwrap());
    }
    configs.push((fsdd, audio));
    for (dense_cfg, x) in configs {
        let mut fb = vec![0f32; dense_cfg.filterbank_len()];
        mel_filterbank(&dense_cfg, &mut fb).unwrap();
        let nnz = sparse_len(&dense_cfg, &fb).unwrap();
        let sparse_cfg = FrontEndConfig {
            filter_nnz: nnz as u32,
            ..dense_cfg
        };
        let mut sp = vec![0f32; sparse_cfg.stored_filters_len()];
        sparse_filterbank(&sparse_cfg, &fb, &mut sp).unwrap();
        // Every weight outside the stored bands is zero; the stored ones are the dense ones.
        let (nm, nb) = (dense_cfg.n_mels as usize, dense_cfg.n_bins());
        let (bounds, w) = sp.split_at(2 * nm);
        let mut at = 0;
        for (row, be) in fb.chunks_exact(nb).zip(bounds.chunks_exact(2)) {
            let (a, b) = (be[0] as usize, be[1] as usize);
            assert!(row[..a].iter().chain(&row[b..]).all(|&v| v == 0.0));
            assert_eq!(&row[a..b], &w[at..at + b - a]);
            at += b - a;
        }
        println!(
            "{} Hz, {} mels: {nnz} of {} weights stored",
            dense_cfg.sample_rate,
            nm,
            fb.len()
        );
        assert!(nnz < fb.len() / 4, "{nnz} of {}", fb.len());
        let features = |fe: FrontEnd<'_>, window: bool| {
            let cfg = *fe.config();
            let mut table = vec![0f32; cfg.frame_len as usize + 2 * nm];
            let fe = if window {
                let t = fe.window_table(&mut table).unwrap();
                fe.with_window(&t).unwrap()
            } else {
                fe
            };
            let mut st = vec![0f32; cfg.state_len()];
            let mut sc = vec![0f32; cfg.scratch_len()];
            let mut out = vec![0f32; nm];
            let mut got = Vec::new();
            for &s in &x {
                if fe.push(s, &mut st, &mut sc, &mut out).unwrap() {
                    got.extend(out.iter().map(|v| v.to_bits()));
                }
            }
            got
        };
        let dense = FrontEnd::new(dense_cfg, &fb).unwrap();
        let sparse = FrontEnd::new(sparse_cfg, &sp).unwrap();
        let want = features(dense, false);
        assert!(want.len() > 10 * nm);
        for window in [false, true] {
            assert!(features(dense, window) == want, "dense, window {window}");
            assert!(features(sparse, window) == want, "sparse, window {window}");
        }
        // A dense filterbank under a sparse configuration (and the reverse) is refused.
        assert!(FrontEnd::new(sparse_cfg, &fb).is_err());
        assert!(FrontEnd::new(dense_cfg, &sp).is_err());
    }
}

/// A sparse filterbank's band bounds are checked where the front end is made: each an
/// exact integer, `start ≤ end ≤ n_bins`, the ranges adding up to `filter_nnz`.
#[test]
fn malformed_sparse_bounds_are_refused() {
    use tinyssm_core::frontend::{sparse_filterbank, sparse_len};
    let dense_cfg = tinyssm_data::fsdd_front_end();
    let mut fb = vec![0f32; dense_cfg.filterbank_len()];
    mel_filterbank(&dense_cfg, &mut fb).unwrap();
    let cfg = FrontEndConfig {
        filter_nnz: sparse_len(&dense_cfg, &fb).unwrap() as u32,
        ..dense_cfg
    };
    let mut sp = vec![0f32; cfg.stored_filters_len()];
    sparse_filterbank(&cfg, &fb, &mut sp).unwrap();
    assert!(FrontEnd::new(cfg, &sp).is_ok());
    let nb = cfg.n_bins() as f32;
    let (s0, e0) = (sp[4], sp[5]);
    for (what, i, v) in [
        ("NaN start", 4, f32::NAN),
        ("fractional start", 4, s0 + 0.5),
        ("negative start", 4, -1.0),
        ("start after end", 4, e0 + 1.0),
        ("end past the bins", 5, nb + 1.0),
        ("infinite end", 5, f32::INFINITY),
        ("ranges not adding up", 5, e0 - 1.0),
    ] {
        let mut bad = sp.clone();
        bad[i] = v;
        let e = FrontEnd::new(cfg, &bad).unwrap_err().to_string();
        assert!(e.contains("sparse"), "{what}: {e}");
    }
    // filter_nnz beyond the dense size is a bad configuration.
    let huge = FrontEndConfig {
        filter_nnz: dense_cfg.filterbank_len() as u32 + 1,
        ..dense_cfg
    };
    assert!(huge.validate().is_err());
}
