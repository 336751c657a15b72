//! `Model::with_views`: tensors resolved once into a caller's table step bit-identically to
//! the look-ups in the blob, for every shipped model (float, w8a8, integer-only; audio and
//! vector inputs) and every test configuration in every weight dtype and compute mode.

use tinyssm_core::{Input, Model, StepError, Weights};
use tinyssm_host::AlignedBuf;
use tinyssm_tests::{configs, random_blob_mode, repo_root, Rng, MODES};

/// Outputs of `steps` steps (or samples, for audio models) on a fixed input.
fn outputs(m: &Model<'_>, steps: usize) -> Vec<u32> {
    let mut rng = Rng::new(17);
    let mut got = Vec::new();
    let mut out = vec![0f32; m.d_output()];
    if let Some(io) = m.int_io() {
        let mut st = vec![0i32; m.state_len()];
        let mut sc = vec![0i32; m.scratch_len()];
        let mut oi = vec![0i32; m.d_output()];
        m.reset_int(&mut st).unwrap();
        for _ in 0..steps {
            if m.config().front_end.is_some() {
                let x = (rng.uniform() * 12000.0) as i16;
                let fe = m.front_end_int().unwrap();
                if m.step_sample_int(&fe, x, &mut st, &mut sc, &mut oi)
                    .unwrap()
                {
                    got.extend(oi.iter().map(|&v| v as u32));
                }
            } else {
                let x: Vec<i16> = (0..m.d_input())
                    .map(|_| (rng.uniform() * (1 << io.input_frac) as f32) as i16)
                    .collect();
                m.step_int(&x, &mut st, &mut sc, &mut oi).unwrap();
                got.extend(oi.iter().map(|&v| v as u32));
            }
        }
        return got;
    }
    let mut st = vec![0f32; m.state_len()];
    let mut sc = vec![0f32; m.scratch_len()];
    m.reset(&mut st).unwrap();
    for i in 0..steps {
        if m.config().front_end.is_some() {
            let fe = m.front_end().unwrap();
            if m.step_sample(&fe, 0.4 * rng.uniform(), &mut st, &mut sc, &mut out)
                .unwrap()
            {
                got.extend(out.iter().map(|v| v.to_bits()));
            }
            continue;
        }
        match m.vocab_size() {
            Some(v) => m.step(
                Input::Token((i as u32 * 7 + 1) % v),
                &mut st,
                &mut sc,
                &mut out,
            ),
            None => {
                let x: Vec<f32> = (0..m.d_input()).map(|_| rng.uniform()).collect();
                m.step(Input::Vector(&x), &mut st, &mut sc, &mut out)
            }
        }
        .unwrap();
        got.extend(out.iter().map(|v| v.to_bits()));
    }
    got
}

fn check(name: &str, m: Model<'_>, steps: usize) {
    let want = outputs(&m, steps);
    assert!(!want.is_empty(), "{name}");
    let mut table = vec![Weights::EMPTY; m.n_tensors()];
    let v = m.with_views(&mut table).unwrap();
    assert!(v.has_views() && !m.has_views());
    assert_eq!(outputs(&v, steps), want, "{name}");
    let mut short = vec![Weights::EMPTY; m.n_tensors() - 1];
    assert!(matches!(
        m.with_views(&mut short),
        Err(StepError::ViewsTooShort { .. })
    ));
}

#[test]
fn shipped_models_step_identically_with_views() {
    let mut n = 0;
    let mut paths: Vec<_> = std::fs::read_dir(repo_root().join("models"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "tssm"))
        .collect();
    paths.sort();
    for p in paths {
        let buf = AlignedBuf::from_bytes(&std::fs::read(&p).unwrap());
        let m = Model::parse(buf.as_bytes()).unwrap();
        let steps = if m.config().front_end.is_some() {
            1500
        } else {
            20
        };
        check(&p.display().to_string(), m, steps);
        n += 1;
    }
    assert!(n >= 10, "{n} shipped models");
}

#[test]
fn every_configuration_and_mode_steps_identically_with_views() {
    for (name, c) in configs::all() {
        for mode in MODES {
            let b = random_blob_mode(&c, 5, mode).unwrap();
            let m = Model::parse(b.as_bytes()).unwrap();
            check(&format!("{name} {mode:?}"), m, 6);
        }
    }
}
