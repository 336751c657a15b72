//! Multi-rate networks in the blob (format 1.7, `Arch::Net`): aTENNuate's network written
//! as a blob and parsed back streams the bits of the in-memory network it was written from
//! (f32, and w8a8 through `tinyssm convert`'s re-encoding); a network model refuses the
//! per-step calls it has no meaning for; mutated network blobs never panic.

use proptest::prelude::*;
use tinyssm_core::blocks::{S5Act, S5Block, S5Norm};
use tinyssm_core::format::blob_crc;
use tinyssm_core::list::List;
use tinyssm_core::net::{NetConfig, Op};
use tinyssm_core::FormatError;
use tinyssm_core::{Arch, Block, Compute, Config, DType, Input, Model, StepError};
use tinyssm_host::AlignedBuf;
use tinyssm_tools::import::atennuate;
use tinyssm_tools::quantize::{requantize_blob, requantize_blob_mixed, QuantSpec};

/// A small U-Net over a 1-channel signal: conv, down by 2 to 4 channels, an S5 block with
/// every option, up, skip, a closing S5 block.
fn small_net() -> Config {
    let s5 = |d, complex, norm, act| {
        Op::Block(Block::S5(S5Block {
            d_model: d,
            n_modes: 3,
            complex_b: complex,
            complex_c: complex,
            d_skip: complex,
            norm,
            act,
            residual: true,
        }))
    };
    let ops = [
        Op::Push,
        Op::Conv {
            channels: 1,
            k: 3,
            pad: 1,
        },
        Op::Down {
            c_in: 1,
            c_out: 4,
            r: 2,
        },
        s5(4, true, S5Norm::Pre { eps: 1e-5 }, S5Act::Gelu),
        Op::Conv {
            channels: 4,
            k: 2,
            pad: 0,
        },
        Op::Up {
            c_in: 4,
            c_out: 1,
            r: 2,
        },
        Op::PopAdd,
        s5(1, false, S5Norm::None, S5Act::Silu),
    ];
    Config {
        n_layers: ops.len() as u32,
        arch: Arch::Net(NetConfig {
            d_input: 1,
            end_pad: 1,
            sample_rate: 8000,
            ops: List::from_slice(&ops).unwrap(),
        }),
        front_end: None,
        compute: Compute::Float,
    }
}

fn stream(m: &Model<'_>, x: &[f32]) -> Vec<f32> {
    atennuate::stream_net(&m.net().expect("a network"), x).unwrap()
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(p, q)| p.to_bits() == q.to_bits())
}

/// aTENNuate through a format 1.7 blob: the parsed model's network streams the in-memory
/// network's bits, in f32 and in w8a8 (the blob re-encoded as `tinyssm convert --weights
/// int8 --compute w8a8` does, against `NetModel::w8a8`).
#[test]
fn atennuate_blob_streams_the_bits_of_its_source() {
    let dir = tinyssm_data::data_dir().join("atennuate");
    let m = atennuate::import(&dir.join("weights.pt")).unwrap();
    let (_, _, x) = tinyssm_host::io::read_wav(
        &dir.join("noisy/clnsp44_wind_97396_2_snr14_tl-26_fileid_271.wav"),
    )
    .unwrap();
    let x = &x[32000..32000 + 6000 + 77];
    let blob = AlignedBuf::from_bytes(&m.to_blob().unwrap());
    let parsed = Model::parse(blob.as_bytes()).unwrap();
    assert_eq!(parsed.format_minor(), 7);
    assert_eq!(parsed.config().n_layers, 52);
    assert_eq!(parsed.net().unwrap().plan().delay, 1255);
    assert!(same_bits(
        &stream(&parsed, x),
        &atennuate::run_stream(&m, x).unwrap()
    ));
    let spec = QuantSpec {
        weights: DType::I8,
        compute: Compute::W8a8,
        compact: true,
    };
    let b8 = AlignedBuf::from_bytes(&requantize_blob(blob.as_bytes(), spec).unwrap());
    let p8 = Model::parse(b8.as_bytes()).unwrap();
    assert_eq!(p8.config().compute, Compute::W8a8);
    assert!(b8.as_bytes().len() * 3 < blob.as_bytes().len());
    assert!(same_bits(
        &stream(&p8, x),
        &atennuate::run_stream(&m.w8a8(), x).unwrap()
    ));
}

/// A network model: per-step calls and snapshots are refused with their own error, and
/// its configuration is held to its form (one layer per operation, no integer step, a
/// header of format 1.7 or later).
#[test]
fn a_network_model_refuses_what_it_has_no_meaning_for() {
    let c = small_net();
    let blob = tinyssm_tests::random_blob_mode(&c, 3, (DType::F32, Compute::Float)).unwrap();
    let m = Model::parse(blob.as_bytes()).unwrap();
    assert_eq!(m.d_input(), 1);
    assert_eq!(m.d_output(), 1);
    let (mut st, mut sc, mut out) = (
        vec![0f32; m.state_len()],
        vec![0f32; m.scratch_len()],
        [0f32; 1],
    );
    assert_eq!(m.reset(&mut st), Err(StepError::NetModel));
    assert_eq!(
        m.step(Input::Vector(&[0.5]), &mut st, &mut sc, &mut out),
        Err(StepError::NetModel)
    );
    let mut snap = vec![0u8; m.snapshot_len()];
    assert!(m.snapshot(&st, &mut snap).is_err());
    // The network streams, and the same input twice gives the same output.
    let x: Vec<f32> = (0..203)
        .map(|i| ((i * 37 % 11) as f32 - 5.0) / 7.0)
        .collect();
    let y = stream(&m, &x);
    assert_eq!(y.len(), x.len());
    assert!(y.iter().all(|v| v.is_finite()));
    assert!(same_bits(&y, &stream(&m, &x)));
    // One layer per operation.
    let mut bad = c;
    bad.n_layers += 1;
    assert!(matches!(bad.validate(), Err(FormatError::BadConfig(_))));
    // No integer-only step.
    let mut bad = c;
    bad.compute = Compute::Int;
    assert!(matches!(bad.validate(), Err(FormatError::BadConfig(_))));
    // A 1.6 header cannot hold a network.
    let mut b = blob.as_bytes().to_vec();
    b[6..8].copy_from_slice(&6u16.to_le_bytes());
    let crc = blob_crc(&b);
    b[24..28].copy_from_slice(&crc.to_le_bytes());
    let b = AlignedBuf::from_bytes(&b);
    assert!(Model::parse(b.as_bytes()).is_err());
}

/// Mixed precision (`tinyssm convert --small-f32 N`): exactly the matrices of at most N
/// values stay f32, the others are int8, everything else is as before; the stream runs.
#[test]
fn small_matrices_stay_f32_in_a_mixed_conversion() {
    let c = small_net();
    let blob = tinyssm_tests::random_blob_mode(&c, 4, (DType::F32, Compute::Float)).unwrap();
    let spec = QuantSpec {
        weights: DType::I8,
        compute: Compute::W8a8,
        compact: true,
    };
    // The U-Net's matrices: Down 4×2, Up 2×4, S5 B̄ 6×4 and C 4×6, S5 B̄ 3×1 and C 1×3.
    let n = 8;
    let mixed = AlignedBuf::from_bytes(&requantize_blob_mixed(blob.as_bytes(), spec, n).unwrap());
    let m = Model::parse(mixed.as_bytes()).unwrap();
    let mut seen = (0, 0);
    for i in 0..m.n_tensors() {
        let t = m.tensor(i).unwrap();
        let numel = t.spec.numel().unwrap();
        let want = match (t.spec.role.is_matrix(), numel <= n) {
            (true, false) => DType::I8,
            _ => DType::F32,
        };
        assert_eq!(t.dtype, want, "{:?} {:?}", t.spec.layer, t.spec.role);
        if t.spec.role.is_matrix() {
            if want == DType::F32 {
                seen.0 += 1
            } else {
                seen.1 += 1
            }
        }
    }
    assert_eq!(seen, (4, 2));
    let x: Vec<f32> = (0..64).map(|i| (i as f32 * 0.37).sin()).collect();
    assert_eq!(stream(&m, &x).len(), x.len());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// A network blob (f32 or w8a8), mutated anywhere, never makes parsing or streaming
    /// panic.
    #[test]
    fn mutated_network_blobs_never_panic(
        w8a8 in any::<bool>(),
        flips in proptest::collection::vec((any::<usize>(), 1u8..=255), 1..6),
        cut in proptest::option::of(any::<usize>()),
        refix in any::<bool>(),
        head in any::<bool>(),
    ) {
        let mode = if w8a8 { (DType::I8, Compute::W8a8) } else { (DType::F32, Compute::Float) };
        let mut b = tinyssm_tests::random_blob_mode(&small_net(), 5, mode)
            .unwrap()
            .as_bytes()
            .to_vec();
        for (i, x) in flips {
            let n = if head { 600.min(b.len()) } else { b.len() };
            b[i % n] ^= x;
        }
        if let Some(c) = cut {
            b.truncate(c % (b.len() + 1));
        }
        if refix && b.len() >= 28 {
            let c = blob_crc(&b);
            b[24..28].copy_from_slice(&c.to_le_bytes());
        }
        tinyssm_tools::fuzzing::parse(&b);
    }
}
