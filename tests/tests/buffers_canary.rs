//! `state_len()` and `scratch_len()` are exact: the step writes every element of both and
//! nothing beyond them, and a buffer one element short is rejected.

use tinyssm_core::{DType, Input, Model, StepError};
use tinyssm_tests::{configs, random_blob, Rng};

const CANARY: f32 = 1234.5;
const MARGIN: usize = 64;

#[test]
fn step_touches_exactly_its_buffers() {
    for (name, cfg) in configs::all() {
        for dt in tinyssm_tests::MODES {
            let buf = tinyssm_tests::random_blob_mode(&cfg, 11, dt).unwrap();
            let m = Model::parse(buf.as_bytes()).unwrap();
            let (ns, nc, no) = (m.state_len(), m.scratch_len(), m.d_output());
            // Buffers longer than needed: the step may use only the prefix.
            let mut st = vec![CANARY; ns + MARGIN];
            let mut sc = vec![CANARY; nc + MARGIN];
            let mut out = vec![CANARY; no + MARGIN];
            m.reset(&mut st).unwrap();
            assert!(
                st[ns..].iter().all(|&x| x == CANARY),
                "{name}: reset wrote past state_len"
            );
            let mut rng = Rng::new(5);
            let mut scratch_written = vec![false; nc];
            for t in 0..20u32 {
                let x: Vec<f32> = (0..m.d_input()).map(|_| rng.uniform()).collect();
                let input = if m.vocab_size().is_some() {
                    Input::Token(t % 7)
                } else {
                    Input::Vector(&x)
                };
                // Re-poison scratch each step: every element must be rewritten at some step.
                sc[..nc].fill(CANARY);
                m.step(input, &mut st, &mut sc, &mut out).unwrap();
                for (w, &v) in scratch_written.iter_mut().zip(&sc[..nc]) {
                    *w |= v != CANARY;
                }
                assert!(
                    st[ns..].iter().all(|&x| x == CANARY),
                    "{name} {dt:?}: wrote past state_len"
                );
                assert!(
                    sc[nc..].iter().all(|&x| x == CANARY),
                    "{name} {dt:?}: wrote past scratch_len"
                );
                assert!(
                    out[no..].iter().all(|&x| x == CANARY),
                    "{name} {dt:?}: wrote past d_output"
                );
                assert!(
                    out[..no].iter().all(|x| x.is_finite()),
                    "{name} {dt:?}: non-finite output"
                );
            }
            let unwritten: Vec<usize> = scratch_written
                .iter()
                .enumerate()
                .filter(|(_, w)| !**w)
                .map(|(i, _)| i)
                .collect();
            assert!(unwritten.is_empty(), "{name} {dt:?}: scratch elements never written: {unwritten:?} (scratch_len over-counts)");
            let zero: Vec<usize> = st[..ns]
                .iter()
                .enumerate()
                .filter(|(_, v)| **v == 0.0)
                .map(|(i, _)| i)
                .collect();
            assert!(
                zero.is_empty(),
                "{name} {dt:?}: state elements never written: {zero:?} (state_len over-counts)"
            );
        }
    }
}

#[test]
fn short_buffers_are_rejected() {
    for (name, cfg) in configs::all() {
        let buf = random_blob(&cfg, 3, DType::F32).unwrap();
        let m = Model::parse(buf.as_bytes()).unwrap();
        let (ns, nc, no) = (m.state_len(), m.scratch_len(), m.d_output());
        let x = vec![0.1f32; m.d_input()];
        let input = if m.vocab_size().is_some() {
            Input::Token(1)
        } else {
            Input::Vector(&x)
        };
        let (mut st, mut sc, mut out) = (vec![0f32; ns], vec![0f32; nc], vec![0f32; no]);
        assert_eq!(
            m.step(input, &mut st[..ns - 1], &mut sc, &mut out),
            Err(StepError::StateTooShort {
                needed: ns,
                got: ns - 1
            }),
            "{name}"
        );
        assert_eq!(
            m.step(input, &mut st, &mut sc[..nc - 1], &mut out),
            Err(StepError::ScratchTooShort {
                needed: nc,
                got: nc - 1
            }),
            "{name}"
        );
        assert_eq!(
            m.step(input, &mut st, &mut sc, &mut out[..no - 1]),
            Err(StepError::OutputTooShort {
                needed: no,
                got: no - 1
            }),
            "{name}"
        );
        assert_eq!(
            m.reset(&mut st[..ns - 1]),
            Err(StepError::StateTooShort {
                needed: ns,
                got: ns - 1
            })
        );
        // exact sizes work
        m.step(input, &mut st, &mut sc, &mut out).unwrap();
        // wrong input kind and out-of-range inputs
        match m.vocab_size() {
            Some(v) => {
                assert_eq!(
                    m.step(Input::Vector(&[0.0]), &mut st, &mut sc, &mut out),
                    Err(StepError::WrongInputKind)
                );
                assert_eq!(
                    m.step(Input::Token(v), &mut st, &mut sc, &mut out),
                    Err(StepError::TokenOutOfRange { token: v, vocab: v })
                );
            }
            None => {
                assert_eq!(
                    m.step(Input::Token(0), &mut st, &mut sc, &mut out),
                    Err(StepError::WrongInputKind)
                );
                let long = vec![0.0; m.d_input() + 1];
                assert_eq!(
                    m.step(Input::Vector(&long), &mut st, &mut sc, &mut out),
                    Err(StepError::InputLength {
                        expected: m.d_input(),
                        got: m.d_input() + 1
                    })
                );
            }
        }
    }
}

/// The same for the shipped integer-only models (audio through `step_sample_int`, ECG
/// through `step_int`): nothing past `state_len` / `scratch_len` / `d_output` is touched,
/// and a buffer one element short is a `StepError`.
#[test]
fn integer_step_touches_exactly_its_buffers() {
    const C: i32 = 0x5A5A_5A5A;
    for name in [
        "fsdd-s4d-int.tssm",
        "fsdd-mamba-int.tssm",
        "ecg-rpeak-int.tssm",
    ] {
        let f = tinyssm_host::ModelFile::open(tinyssm_tests::repo_root().join("models").join(name))
            .unwrap();
        let m = f.model();
        let (ns, nc, no) = (m.state_len(), m.scratch_len(), m.d_output());
        let mut st = vec![C; ns + MARGIN];
        let mut sc = vec![C; nc + MARGIN];
        let mut out = vec![C; no + MARGIN];
        m.reset_int(&mut st).unwrap();
        let audio = m.config().front_end.is_some();
        let mut rng = Rng::new(3);
        let mut frames = 0;
        let fe = m.front_end_int();
        for _ in 0..if audio { 2_000 } else { 50 } {
            if let Some(fe) = &fe {
                let pcm = (rng.uniform() * 20_000.0) as i16;
                frames += m
                    .step_sample_int(fe, pcm, &mut st, &mut sc, &mut out)
                    .unwrap() as usize;
            } else {
                let x: Vec<i16> = (0..m.d_input())
                    .map(|_| (rng.uniform() * 4_000.0) as i16)
                    .collect();
                m.step_int(&x, &mut st, &mut sc, &mut out).unwrap();
                frames += 1;
            }
            assert!(
                st[ns..].iter().all(|&x| x == C),
                "{name}: wrote past state_len"
            );
            assert!(
                sc[nc..].iter().all(|&x| x == C),
                "{name}: wrote past scratch_len"
            );
            assert!(
                out[no..].iter().all(|&x| x == C),
                "{name}: wrote past d_output"
            );
        }
        assert!(frames > 10, "{name}");
        let short = |n: usize| n.saturating_sub(1);
        let x = vec![0i16; m.d_input()];
        let r = if let Some(fe) = &fe {
            m.step_sample_int(fe, 0, &mut st[..short(ns)], &mut sc, &mut out)
                .map(|_| ())
        } else {
            m.step_int(&x, &mut st[..short(ns)], &mut sc, &mut out)
        };
        assert!(
            matches!(r, Err(StepError::StateTooShort { .. })),
            "{name}: {r:?}"
        );
        let r = if let Some(fe) = &fe {
            m.step_sample_int(fe, 0, &mut st, &mut sc[..short(nc)], &mut out)
                .map(|_| ())
        } else {
            m.step_int(&x, &mut st, &mut sc[..short(nc)], &mut out)
        };
        assert!(
            matches!(r, Err(StepError::ScratchTooShort { .. })),
            "{name}: {r:?}"
        );
        // A float step on an integer-only model is refused.
        let (mut fs, mut fc, mut fo) = (vec![0f32; ns], vec![0f32; nc], vec![0f32; no]);
        let xf = vec![0f32; m.d_input()];
        assert_eq!(
            m.step(Input::Vector(&xf), &mut fs, &mut fc, &mut fo),
            Err(StepError::WrongCompute)
        );
    }
}
