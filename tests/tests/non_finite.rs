//! The non-finite policy (ARCHITECTURE.md, "Non-finite values"), for every block kind of
//! the test configurations in float and w8a8 mode, through the core's step entry points:
//!
//! - a NaN or infinite input value is refused (`StepError::NonFiniteInput`) before anything
//!   is computed: the state is bit-for-bit what it was;
//! - a step whose output is not finite (an overflow inside it: a finite input or weights too
//!   large for f32) is reported (`StepError::Overflow`) and leaves the stream in its initial
//!   state, so the next step computes exactly what a fresh stream's first step does;
//! - integer-only models have no non-finite values; their inputs saturate.

use tinyssm_core::{Compute, Config, DType, Input, Model, StepError};
use tinyssm_host::{write_blob, AlignedBuf, HostError, TensorData};
use tinyssm_tests::{configs, random_blob_mode, random_values, Rng};

const MODES: [(DType, Compute); 2] = [(DType::F32, Compute::Float), (DType::I8, Compute::W8a8)];

fn input_of(m: &Model<'_>, x: &[f32], t: u32) -> Input<'static> {
    match m.vocab_size() {
        Some(v) => Input::Token(t % v),
        None => Input::Vector(Box::leak(x.to_vec().into_boxed_slice())),
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// A blob whose every float value is scaled by `k` (finite weights whose products
/// overflow f32).
fn scaled_blob(cfg: &Config, (dt, compute): (DType, Compute), k: f32) -> AlignedBuf {
    let mut rng = Rng::new(5);
    let config = Config { compute, ..*cfg };
    let blob = write_blob(&config, |spec| -> Result<TensorData, HostError> {
        let d = if spec.role.is_matrix() {
            tinyssm_tools::quantize::matrix_dtype(spec.role, dt)
        } else {
            DType::F32
        };
        // f16 storage (dt_proj under int8) holds at most 65504.
        let lim = if d == DType::F16 { 6e4 } else { f32::MAX };
        let v: Vec<f32> = random_values(spec, &mut rng)
            .into_iter()
            .map(|x| (x * k).clamp(-lim, lim))
            .collect();
        TensorData::encode(v, d, spec)
    })
    .unwrap();
    AlignedBuf::from_bytes(&blob)
}

#[test]
fn a_non_finite_input_is_refused_and_changes_nothing() {
    let mut checked = 0;
    for (name, cfg) in configs::all() {
        for mode in MODES {
            let buf = random_blob_mode(&cfg, 3, mode).unwrap();
            let m = Model::parse(buf.as_bytes()).unwrap();
            if m.vocab_size().is_some() {
                continue; // token inputs cannot be non-finite
            }
            let d = m.d_input();
            let mut st = vec![0f32; m.state_len()];
            let mut sc = vec![0f32; m.scratch_len()];
            let mut out = vec![0f32; m.d_output()];
            m.reset(&mut st).unwrap();
            let x: Vec<f32> = (0..d).map(|i| (i as f32 * 0.37).sin()).collect();
            for _ in 0..3 {
                m.step(Input::Vector(&x), &mut st, &mut sc, &mut out)
                    .unwrap();
            }
            let before = bits(&st);
            for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                let mut y = x.clone();
                y[d - 1] = bad;
                let e = m.step(Input::Vector(&y), &mut st, &mut sc, &mut out);
                assert_eq!(
                    e,
                    Err(StepError::NonFiniteInput { index: d - 1 }),
                    "{name} {mode:?}"
                );
                assert_eq!(bits(&st), before, "{name} {mode:?}: state changed");
            }
            checked += 1;
        }
    }
    assert!(checked >= 4, "only {checked} vector models");
}

/// Weights scaled to 1e30 (finite, as the format requires) overflow in every kind's step:
/// the step says so and the stream restarts; the same model then steps on exactly as a
/// fresh stream does. With moderate weights, a huge finite input (3e38) is either computed
/// to finite outputs or reported the same way.
#[test]
fn an_overflow_is_reported_and_the_stream_restarts() {
    for (name, cfg) in configs::all() {
        for mode in MODES {
            let buf = scaled_blob(&cfg, mode, 1e30);
            let m = Model::parse(buf.as_bytes()).unwrap();
            let d = m.d_input();
            let x: Vec<f32> = (0..d).map(|i| 0.5 + (i as f32 * 0.37).sin()).collect();
            let mut st = vec![0f32; m.state_len()];
            let mut sc = vec![0f32; m.scratch_len()];
            let mut out = vec![0f32; m.d_output()];
            m.reset(&mut st).unwrap();
            let initial = bits(&st);
            let e = m.step(input_of(&m, &x, 3), &mut st, &mut sc, &mut out);
            assert_eq!(e, Err(StepError::Overflow), "{name} {mode:?}");
            assert_eq!(bits(&st), initial, "{name} {mode:?}: not reset");

            let buf = random_blob_mode(&cfg, 3, mode).unwrap();
            let m = Model::parse(buf.as_bytes()).unwrap();
            let mut st = vec![0f32; m.state_len()];
            let mut sc = vec![0f32; m.scratch_len()];
            let mut out = vec![0f32; m.d_output()];
            let mut fresh_out = vec![0f32; m.d_output()];
            let mut fresh = vec![0f32; m.state_len()];
            m.reset(&mut fresh).unwrap();
            m.step(input_of(&m, &x, 1), &mut fresh, &mut sc, &mut fresh_out)
                .unwrap();
            m.reset(&mut st).unwrap();
            for t in 0..3 {
                m.step(input_of(&m, &x, t), &mut st, &mut sc, &mut out)
                    .unwrap();
            }
            if m.vocab_size().is_none() {
                let huge = vec![3e38f32; d];
                match m.step(Input::Vector(&huge), &mut st, &mut sc, &mut out) {
                    Ok(()) => assert!(out.iter().all(|v| v.is_finite()), "{name}"),
                    Err(StepError::Overflow) => {
                        // Restarted: the next step is a fresh stream's first.
                        m.step(input_of(&m, &x, 1), &mut st, &mut sc, &mut out)
                            .unwrap();
                        assert_eq!(bits(&out), bits(&fresh_out), "{name} {mode:?}");
                    }
                    Err(e) => panic!("{name} {mode:?}: {e}"),
                }
            }
        }
    }
}

/// Audio through the front end: a NaN sample is refused with the state unchanged; a huge
/// finite sample overflows the frame it lands in, which restarts the whole stream (front
/// end included) and says so; the samples after it are processed as by a fresh stream.
#[test]
fn audio_samples_follow_the_same_policy() {
    let path = tinyssm_tests::repo_root().join("models/fsdd-s4d-tiny.tssm");
    let file = tinyssm_host::ModelFile::open(&path).unwrap();
    let m = file.model();
    let fe = m.front_end().unwrap();
    let mut st = vec![0f32; m.state_len()];
    let mut sc = vec![0f32; m.scratch_len()];
    let mut out = vec![0f32; m.d_output()];
    m.reset(&mut st).unwrap();
    let clip: Vec<f32> = (0..2000).map(|i| 0.3 * (i as f32 * 0.05).sin()).collect();
    for &s in &clip[..500] {
        m.step_sample(&fe, s, &mut st, &mut sc, &mut out).unwrap();
    }
    let before = bits(&st);
    assert_eq!(
        m.step_sample(&fe, f32::NAN, &mut st, &mut sc, &mut out),
        Err(StepError::NonFiniteInput { index: 0 })
    );
    assert_eq!(bits(&st), before);
    // A huge sample: some later push completes its frame and overflows.
    let mut overflowed = false;
    let mut i = 0;
    let mut step =
        |s: f32, st: &mut [f32], out: &mut [f32]| m.step_sample(&fe, s, st, &mut sc, out);
    match step(3e38, &mut st, &mut out) {
        Err(StepError::Overflow) => overflowed = true,
        r => {
            r.unwrap();
        }
    }
    while !overflowed {
        match step(clip[i], &mut st, &mut out) {
            Err(StepError::Overflow) => overflowed = true,
            r => {
                r.unwrap();
            }
        }
        i += 1;
        assert!(i < 400, "the frame with the huge sample never overflowed");
    }
    // Restarted: from here on, outputs equal a fresh stream fed the same samples.
    let mut fresh = vec![0f32; m.state_len()];
    m.reset(&mut fresh).unwrap();
    assert_eq!(bits(&st), bits(&fresh));
    let mut o2 = vec![0f32; m.d_output()];
    let mut sc2 = vec![0f32; m.scratch_len()];
    let mut frames = 0;
    for &s in &clip[i..] {
        let a = m.step_sample(&fe, s, &mut st, &mut sc, &mut out).unwrap();
        let b = m
            .step_sample(&fe, s, &mut fresh, &mut sc2, &mut o2)
            .unwrap();
        assert_eq!(a, b);
        if a {
            assert_eq!(bits(&out), bits(&o2));
            frames += 1;
        }
    }
    assert!(frames > 5);
}

/// Integer-only models hold no floats: saturating inputs (the largest and smallest i16)
/// step without error, and the stream continues.
#[test]
fn integer_only_models_saturate() {
    let path = tinyssm_tests::repo_root().join("models/ecg-rpeak-int.tssm");
    let file = tinyssm_host::ModelFile::open(&path).unwrap();
    let m = file.model();
    let mut st = vec![0i32; m.state_len()];
    let mut sc = vec![0i32; m.scratch_len()];
    let mut out = vec![0i32; m.d_output()];
    m.reset_int(&mut st).unwrap();
    for t in 0..400 {
        let x = if t % 2 == 0 { i16::MAX } else { i16::MIN };
        m.step_int(&[x], &mut st, &mut sc, &mut out).unwrap();
    }
    for t in 0..100 {
        m.step_int(&[(t * 97 % 2000) as i16 - 1000], &mut st, &mut sc, &mut out)
            .unwrap();
    }
}
