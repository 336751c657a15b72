//! Random bytes and random mutations of valid blobs never make `Model::parse` panic; a
//! mutated blob that still parses (CRC re-fixed) steps without panicking.

use proptest::prelude::*;
use tinyssm_core::format::blob_crc;
use tinyssm_core::{Input, Model};
use tinyssm_host::AlignedBuf;
use tinyssm_tests::configs;

fn exercise(bytes: &[u8]) {
    let buf = AlignedBuf::from_bytes(bytes);
    if let Ok(m) = Model::parse(buf.as_bytes()) {
        if m.int_io().is_some() {
            let mut st = vec![0i32; m.state_len()];
            let mut sc = vec![0i32; m.scratch_len()];
            let mut out = vec![0i32; m.d_output()];
            let x = vec![3000i16; m.d_input()];
            for _ in 0..3 {
                let _ = m.step_int(&x, &mut st, &mut sc, &mut out);
            }
            // Enough samples for a frame of the shipped front ends (200-sample window).
            if let Some(fe) = m.front_end_int() {
                for t in 0..240i16 {
                    let _ = m.step_sample_int(&fe, t.wrapping_mul(977), &mut st, &mut sc, &mut out);
                }
            }
            // A hostile state too.
            st.iter_mut()
                .enumerate()
                .for_each(|(i, v)| *v = (i as i32).wrapping_mul(0x9E37_79B9u32 as i32));
            let _ = m.step_int(&x, &mut st, &mut sc, &mut out);
            return;
        }
        let mut st = vec![0f32; m.state_len()];
        let mut sc = vec![0f32; m.scratch_len()];
        let mut out = vec![0f32; m.d_output()];
        let x = vec![0.5f32; m.d_input()];
        for t in 0..3u32 {
            let input = if m.vocab_size().is_some() {
                Input::Token(t)
            } else {
                Input::Vector(&x)
            };
            let _ = m.step(input, &mut st, &mut sc, &mut out);
        }
    }
    let _ = Model::parse_skip_crc(buf.as_bytes());
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Truncate(usize),
    Insert(usize, u8),
    SetU32(usize, u32),
}

fn apply(b: &mut Vec<u8>, m: &Mutation) {
    let n = b.len().max(1);
    match *m {
        Mutation::Flip(i, x) => {
            let i = i % n;
            if let Some(v) = b.get_mut(i) {
                *v ^= x.max(1);
            }
        }
        Mutation::Truncate(i) => b.truncate(i % n),
        Mutation::Insert(i, x) => b.insert(i % n, x),
        Mutation::SetU32(i, x) => {
            let i = i % n;
            if i + 4 <= b.len() {
                b[i..i + 4].copy_from_slice(&x.to_le_bytes());
            }
        }
    }
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, x)| Mutation::Flip(i, x)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), any::<u8>()).prop_map(|(i, x)| Mutation::Insert(i, x)),
        (
            any::<usize>(),
            prop_oneof![any::<u32>(), Just(0u32), Just(u32::MAX), Just(1u32 << 24)]
        )
            .prop_map(|(i, x)| Mutation::SetU32(i, x)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn random_bytes_never_panic(mut v in proptest::collection::vec(any::<u8>(), 0..4096), magic in any::<bool>()) {
        if magic && v.len() >= 8 {
            v[..4].copy_from_slice(b"TSSM");
            v[4..6].copy_from_slice(&1u16.to_le_bytes());
            if v.len() >= 28 {
                let c = blob_crc(&v);
                v[24..28].copy_from_slice(&c.to_le_bytes());
            }
        }
        exercise(&v);
    }

    /// The shipped integer-only models, mutated anywhere (their plans and requantization
    /// parameters included), never make parsing or the integer step panic (overflow
    /// checks are on in tests).
    #[test]
    fn mutated_integer_only_models_never_panic(
        which in 0usize..3,
        muts in proptest::collection::vec(mutation(), 1..6),
        refix in any::<bool>(),
    ) {
        let name = ["ecg-rpeak-int.tssm", "fsdd-s4d-int.tssm", "fsdd-mamba-int.tssm"][which];
        let mut b = std::fs::read(tinyssm_tests::repo_root().join("models").join(name)).unwrap();
        for m in &muts {
            apply(&mut b, m);
        }
        if refix && b.len() >= 28 {
            let c = blob_crc(&b);
            b[24..28].copy_from_slice(&c.to_le_bytes());
        }
        exercise(&b);
    }

    #[test]
    fn mutated_blobs_never_panic(
        cfg in 0usize..configs::all().len(),
        mode in 0usize..tinyssm_tests::MODES.len(),
        muts in proptest::collection::vec(mutation(), 1..6),
        refix in any::<bool>(),
        // bias mutations towards the header region, where structure lives
        head_bias in any::<bool>(),
    ) {
        let (_, c) = &configs::all()[cfg];
        let mut b = tinyssm_tests::random_blob_mode(c, 9, tinyssm_tests::MODES[mode])
            .unwrap()
            .as_bytes()
            .to_vec();
        for m in &muts {
            let m = match (head_bias, m.clone()) {
                (true, Mutation::Flip(i, x)) => Mutation::Flip(i % 512, x),
                (true, Mutation::SetU32(i, x)) => Mutation::SetU32(i % 512, x),
                (_, m) => m,
            };
            apply(&mut b, &m);
        }
        if refix && b.len() >= 28 {
            let c = blob_crc(&b);
            b[24..28].copy_from_slice(&c.to_le_bytes());
        }
        exercise(&b);
    }
}
