//! Format compatibility: blobs of older minor versions still read.

use tinyssm_core::Model;
use tinyssm_host::{AlignedBuf, Runner};
use tinyssm_tests::fixtures;
use tinyssm_tools::{convert_dir, WeightDtype};

/// Blobs written in format 1.0 (before the front end) still parse and compute the same as
/// a fresh 1.1 conversion of the same checkpoint.
#[test]
fn format_1_0_blobs_still_read() {
    let old =
        std::fs::read(tinyssm_tests::fixtures().join("format/s4d-glu-prenorm-v1.0.tssm")).unwrap();
    assert_eq!(
        u16::from_le_bytes([old[6], old[7]]),
        0,
        "fixture is format 1.0"
    );
    let fresh = convert_dir(&fixtures().join("s4d/s4d-glu-prenorm"), WeightDtype::F32).unwrap();
    assert_eq!(
        u16::from_le_bytes([fresh[6], fresh[7]]),
        tinyssm_core::format::VERSION_MINOR_BASE
    );
    let (a, b) = (AlignedBuf::from_bytes(&old), AlignedBuf::from_bytes(&fresh));
    let (ma, mb) = (
        Model::parse(a.as_bytes()).unwrap(),
        Model::parse(b.as_bytes()).unwrap(),
    );
    assert_eq!(ma.config(), mb.config());
    assert_eq!(ma.format_minor(), 0);
    let x: Vec<f32> = (0..30).map(|i| ((i * 7) % 11) as f32 / 5.0 - 1.0).collect();
    let run = |m: Model<'_>| {
        let mut r = Runner::new(m);
        let id = r.open();
        r.feed_vectors(id, &x).unwrap()
    };
    assert_eq!(run(ma), run(mb));
    // A newer minor than this build knows is refused with both versions named.
    let mut newer = fresh.clone();
    newer[6..8].copy_from_slice(&(tinyssm_core::format::VERSION_MINOR + 1).to_le_bytes());
    let e = Model::parse_skip_crc(AlignedBuf::from_bytes(&newer).as_bytes()).unwrap_err();
    let want = format!("1.{}", tinyssm_core::format::VERSION_MINOR);
    assert!(e.to_string().contains(&want), "{e}");
}

/// A format 1.1 blob (a copy of the shipped BasicMotions model as it was before 1.2) reads
/// as a float-compute model, and re-encoding it in the current format with f32 weights
/// changes no output bit (the migration path).
#[test]
fn format_1_1_blobs_read_and_migrate() {
    use tinyssm_tools::quantize::{requantize, QuantSpec};
    let old = std::fs::read(fixtures().join("format/basicmotions-s4d-v1.1.tssm")).unwrap();
    assert_eq!(
        u16::from_le_bytes([old[6], old[7]]),
        1,
        "fixture is format 1.1"
    );
    let a = AlignedBuf::from_bytes(&old);
    let ma = Model::parse(a.as_bytes()).unwrap();
    assert_eq!(ma.config().compute, tinyssm_core::Compute::Float);
    let fresh = requantize(
        &ma,
        QuantSpec {
            weights: tinyssm_core::DType::F32,
            compute: tinyssm_core::Compute::Float,
            compact: true,
        },
    )
    .unwrap();
    assert_eq!(
        u16::from_le_bytes([fresh[6], fresh[7]]),
        tinyssm_core::format::VERSION_MINOR_BASE
    );
    let b = AlignedBuf::from_bytes(&fresh);
    let mb = Model::parse(b.as_bytes()).unwrap();
    assert_eq!(ma.config(), mb.config());
    let x: Vec<f32> = (0..ma.d_input() * 50)
        .map(|i| ((i * 7) % 13) as f32 / 6.0 - 1.0)
        .collect();
    let run = |m: Model<'_>| {
        let mut r = Runner::new(m);
        let id = r.open();
        let y = r.feed_vectors(id, &x).unwrap();
        (y, r.state(id).unwrap().to_vec())
    };
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let ((ya, sa), (yb, sb)) = (run(ma), run(mb));
    assert_eq!(bits(&ya), bits(&yb));
    assert_eq!(bits(&sa), bits(&sb));
}

/// Format 1.4: a w8a8 model with static activation scales ([`tinyssm_core::DType::I8S`])
/// is written as 1.4 (every other blob stays 1.3), steps close to its dynamic-scale twin,
/// and is refused clearly where it is not valid: under a 1.3 minor, in a float-compute
/// model, or with an input bound that is not finite and positive.
#[test]
fn format_1_4_static_w8a8_blobs() {
    use tinyssm_core::format::{VERSION_MINOR, VERSION_MINOR_BASE};
    use tinyssm_core::{Compute, DType, FormatError, Weights};
    use tinyssm_tools::quantize::{requantize, requantize_static, QuantSpec};
    let fresh = convert_dir(&fixtures().join("s4d/s4d-glu-prenorm"), WeightDtype::F32).unwrap();
    let fb = AlignedBuf::from_bytes(&fresh);
    let mf = Model::parse(fb.as_bytes()).unwrap();
    // Without the 1.6 encodings: this test is about 1.4 against 1.3.
    let spec = QuantSpec {
        weights: DType::I8,
        compute: Compute::W8a8,
        compact: false,
    };
    let x: Vec<f32> = (0..mf.d_input() * 40)
        .map(|i| ((i * 7) % 13) as f32 / 6.5 - 1.0)
        .collect();
    // Every int8 matrix static, bounds calibrated on the input below.
    let samples = tinyssm_tools::w8a8::sample(&mf, std::slice::from_ref(&x)).unwrap();
    let mut plan = tinyssm_tools::w8a8::plan(mf.config(), &samples, |_| true).unwrap();
    for m in &mut plan {
        assert!(m.bound > 0.0 && m.bound <= m.max, "{m:?}");
        m.is_static = true;
    }
    assert!(plan.len() >= 3);
    let st = requantize_static(&mf, spec, &plan).unwrap();
    let dy = requantize(&mf, spec).unwrap();
    // Static scales are 1.4's; a newer build still writes them as 1.4.
    assert_eq!(u16::from_le_bytes([st[6], st[7]]), 4);
    const { assert!(VERSION_MINOR >= 4) };
    assert_eq!(u16::from_le_bytes([dy[6], dy[7]]), VERSION_MINOR_BASE);
    let (sb, db) = (AlignedBuf::from_bytes(&st), AlignedBuf::from_bytes(&dy));
    let (ms, md) = (
        Model::parse(sb.as_bytes()).unwrap(),
        Model::parse(db.as_bytes()).unwrap(),
    );
    let a_spec = |i: usize| ms.tensor(i).unwrap().spec;
    let i8s: Vec<usize> = (0..ms.n_tensors())
        .filter(|&i| ms.tensor(i).unwrap().dtype == DType::I8S)
        .collect();
    assert_eq!(i8s.len(), plan.len());
    // Same int8 values and row scales as the dynamic model; the bound after them.
    for &i in &i8s {
        let (Weights::I8(a), Weights::I8(b)) =
            (ms.tensor(i).unwrap().weights, md.tensor(i).unwrap().weights)
        else {
            panic!("tensor {i} is not int8");
        };
        assert_eq!(a.q, b.q);
        assert_eq!(a.scale, b.scale);
        let p = plan
            .iter()
            .find(|m| (m.layer, m.role) == (a_spec(i).layer, a_spec(i).role))
            .unwrap();
        assert_eq!(a.act, tinyssm_core::ActQuant::StaticI8 { xmax: p.bound });
        assert_eq!(b.act, tinyssm_core::ActQuant::DynamicI8);
    }
    let run = |m: Model<'_>| {
        let mut r = Runner::new(m);
        let id = r.open();
        r.feed_vectors(id, &x).unwrap()
    };
    let (ys, yd, yf) = (run(ms), run(md), run(mf));
    let e_static = tinyssm_tests::nmse(&ys, &yf);
    let e_dynamic = tinyssm_tests::nmse(&yd, &yf);
    println!("static vs float NMSE {e_static:.2e}, dynamic vs float {e_dynamic:.2e}");
    assert!(e_static < 1e-3 && e_static > 0.0, "{e_static}");
    assert_ne!(ys, yd, "the static scale changes the arithmetic");

    // The byte offset of tensor `i`'s bound: right after its row scales.
    let bound_at = |i: usize| {
        let Weights::I8(w) = ms.tensor(i).unwrap().weights else {
            unreachable!()
        };
        w.scale.as_ptr_range().end as usize - sb.as_bytes().as_ptr() as usize
    };
    let parse = |b: &[u8]| Model::parse_skip_crc(AlignedBuf::from_bytes(b).as_bytes()).map(|_| ());
    // A 1.3 reader's rules: int8s is not a 1.3 dtype.
    let mut old = st.clone();
    old[6..8].copy_from_slice(&3u16.to_le_bytes());
    assert!(
        matches!(parse(&old), Err(FormatError::DtypeNotAllowed { .. })),
        "{:?}",
        parse(&old)
    );
    for bad in [f32::NAN, f32::INFINITY, 0.0, -1.0, 1e-31, f32::from_bits(1)] {
        let mut b = st.clone();
        let at = bound_at(i8s[0]);
        b[at..at + 4].copy_from_slice(&bad.to_le_bytes());
        let e = parse(&b).unwrap_err();
        assert_eq!(
            e,
            FormatError::BadValue {
                index: i8s[0] as u32
            },
            "{bad}"
        );
        assert!(e.to_string().contains("int8s input bound"), "{e}");
    }
    // The writer refuses static scales in a float-compute model.
    let mut cfg = *mf.config();
    cfg.compute = Compute::Float;
    let e = tinyssm_host::write_blob(&cfg, |ts| -> Result<_, tinyssm_host::HostError> {
        let t = mf.find(ts.layer, ts.role).unwrap();
        let v = tinyssm_host::tensor_f32(&t).unwrap();
        if ts.role.is_matrix() {
            tinyssm_host::TensorData::encode(v, DType::I8, ts)?.with_input_bound(2.0)
        } else {
            Ok(tinyssm_host::TensorData::F32(v))
        }
    })
    .unwrap_err();
    assert!(e.to_string().contains("int8s not allowed"), "{e}");
    // And bounds that are not finite and positive never reach a blob.
    let t = tinyssm_host::TensorData::I8 {
        q: vec![1],
        scale: vec![1.0],
        xmax: None,
    };
    assert!(t.clone().with_input_bound(f32::NAN).is_err());
    assert!(t.clone().with_input_bound(0.0).is_err());
    assert!(tinyssm_host::TensorData::F32(vec![1.0])
        .with_input_bound(1.0)
        .is_err());
}

/// Format 1.6: an int8 conversion stores the filterbank sparse and S4D's `dA` in Q1.15,
/// `C·dB` as int8 rows (one scale per channel), `D` and the output bias f16 — and is
/// written as 1.6 only then (`compact: false` writes 1.3, the float model's own blob is
/// unchanged byte for byte). The compact step computes what a blob holding the same values
/// dequantized to f32 computes, up to f32 rounding (the int8 scale multiplies the channel's
/// sum, the f16 bias is added after the product) — checked with f32 activations, where no
/// activation quantization can amplify a rounding difference. A 1.5 reader's rules refuse
/// the blob.
#[test]
fn format_1_6_compact_blobs() {
    use tinyssm_core::{Compute, DType, FormatError, Role};
    use tinyssm_tools::quantize::{requantize, QuantSpec};
    let path = tinyssm_tests::repo_root().join("models/fsdd-s4d-tiny.tssm");
    let float = std::fs::read(&path).unwrap();
    let fb = AlignedBuf::from_bytes(&float);
    let mf = Model::parse(fb.as_bytes()).unwrap();
    // The float model re-written as f32 is its own bytes (the 1.2–1.5 header layout).
    let spec = |compact| QuantSpec {
        weights: DType::F32,
        compute: Compute::Float,
        compact,
    };
    assert!(requantize(&mf, spec(true)).unwrap() == float);
    let int8 = |compact| QuantSpec {
        weights: DType::I8,
        compute: Compute::W8a8,
        compact,
    };
    let (c, n) = (
        requantize(&mf, int8(true)).unwrap(),
        requantize(&mf, int8(false)).unwrap(),
    );
    assert_eq!(u16::from_le_bytes([c[6], c[7]]), 6);
    assert_eq!(u16::from_le_bytes([n[6], n[7]]), 3);
    println!(
        "fsdd-s4d-tiny: float {} bytes, int8 {} (1.5 encodings), {} (compact)",
        float.len(),
        n.len(),
        c.len()
    );
    assert!(
        c.len() * 10 <= float.len() * 3,
        "{} vs {}",
        c.len(),
        float.len()
    );
    let (cb, nb) = (AlignedBuf::from_bytes(&c), AlignedBuf::from_bytes(&n));
    let (mc, mn) = (
        Model::parse(cb.as_bytes()).unwrap(),
        Model::parse(nb.as_bytes()).unwrap(),
    );
    let fe = mc.config().front_end.unwrap();
    assert!(fe.sparse_filters() && mn.config().front_end.unwrap().filter_nnz == 0);
    let dtype = |m: &Model<'_>, r: Role| m.find(Some(0), r).unwrap().dtype;
    assert_eq!(dtype(&mc, Role::DA), DType::I16);
    assert_eq!(dtype(&mc, Role::CB), DType::I8);
    assert_eq!(dtype(&mc, Role::D), DType::F16);
    assert_eq!(dtype(&mc, Role::OutLinearBias), DType::F16);
    for r in [Role::DA, Role::CB, Role::D, Role::OutLinearBias] {
        assert_eq!(dtype(&mn, r), DType::F32);
    }
    let dir = tinyssm_data::data_dir();
    let files = tinyssm_data::fsdd_files(&dir, tinyssm_data::Split::Test).unwrap();
    let mut x = Vec::new();
    for (p, _) in files.iter().step_by(60) {
        x.extend(tinyssm_data::fsdd_clip(p, &fe).unwrap());
    }
    let run = |m: Model<'_>| {
        let mut r = Runner::new(m);
        let id = r.open();
        r.feed_samples(id, &x).unwrap()
    };
    let worst =
        compact_vs_dequantized(&mf, &[Role::DA, Role::CB, Role::D, Role::OutLinearBias], &x);
    let (yc, yn, yf) = (run(mc), run(mn), run(mf));
    println!(
        "compact vs its dequantized twin: {worst:.2e}; {} outputs; NMSE vs float: compact {:.2e}, 1.5 encodings {:.2e}",
        yc.len(),
        tinyssm_tests::nmse(&yc, &yf),
        tinyssm_tests::nmse(&yn, &yf)
    );
    assert!(yc.len() > 1000);
    assert!(worst <= 1e-5, "{worst}");
    assert!(tinyssm_tests::nmse(&yc, &yf) < 1e-3);
    // A 1.5 reader's rules: 1.5 headers have no filter_nnz, and the compact dtypes are 1.6's.
    let mut old = c.clone();
    old[6..8].copy_from_slice(&5u16.to_le_bytes());
    let parse = |b: &[u8]| Model::parse_skip_crc(AlignedBuf::from_bytes(b).as_bytes()).map(|_| ());
    assert!(
        matches!(
            parse(&old),
            Err(FormatError::BadHeader | FormatError::DtypeNotAllowed { .. })
        ),
        "{:?}",
        parse(&old)
    );
    // The compact dtypes are refused for a role whose block kind does not read them.
    let cfg = mn.config();
    let d_spec = (0..cfg.n_tensors())
        .filter_map(|i| cfg.tensor_spec(i))
        .find(|s| s.role == Role::Norm && s.layer == Some(0))
        .unwrap();
    assert!(!cfg.allows(&d_spec, DType::F16));
    assert!(!cfg.allows(&d_spec, DType::I16));
}

/// Format 1.6 for Mamba-1: `A` and the conv weights f16 in an int8 conversion, which puts
/// `fsdd-mamba-int8` at ≤ 0.30× its float blob. The conversion to f32 is exact, so the
/// compact step equals its dequantized twin bit for bit, with either kernel set.
#[test]
fn format_1_6_compact_mamba1() {
    use tinyssm_core::{Compute, DType, Kernels, Role};
    use tinyssm_tools::quantize::{requantize, QuantSpec};
    let root = tinyssm_tests::repo_root();
    let float = std::fs::read(root.join("models/fsdd-mamba.tssm")).unwrap();
    let fb = AlignedBuf::from_bytes(&float);
    let mf = Model::parse(fb.as_bytes()).unwrap();
    let c = requantize(
        &mf,
        QuantSpec {
            weights: DType::I8,
            compute: Compute::W8a8,
            compact: true,
        },
    )
    .unwrap();
    assert_eq!(u16::from_le_bytes([c[6], c[7]]), 6);
    println!(
        "fsdd-mamba int8 compact: {} bytes = {:.3}x the float blob",
        c.len(),
        c.len() as f64 / float.len() as f64
    );
    assert!(
        c.len() * 100 <= float.len() * 30,
        "{} vs {}",
        c.len(),
        float.len()
    );
    let shipped = std::fs::read(root.join("models/fsdd-mamba-int8.tssm")).unwrap();
    assert!(
        c == shipped,
        "models/fsdd-mamba-int8.tssm is not today's conversion"
    );
    let cb = AlignedBuf::from_bytes(&c);
    let mc = Model::parse(cb.as_bytes()).unwrap();
    for l in 0..4 {
        for r in [Role::A, Role::ConvW] {
            assert_eq!(mc.find(Some(l), r).unwrap().dtype, DType::F16, "{r:?}");
        }
    }
    let fe = mc.config().front_end.unwrap();
    let dir = tinyssm_data::data_dir();
    let files = tinyssm_data::fsdd_files(&dir, tinyssm_data::Split::Test).unwrap();
    let mut x = Vec::new();
    for (p, _) in files.iter().step_by(100) {
        x.extend(tinyssm_data::fsdd_clip(p, &fe).unwrap());
    }
    // Fast kernels (the helper's runner), then the reference kernels' own loops.
    let worst = compact_vs_dequantized(&mf, &[Role::A, Role::ConvW], &x);
    assert_eq!(worst, 0.0, "the compact Mamba-1 step is not its f32 twin");
    let e = dequantized(&c, &[Role::A, Role::ConvW]);
    let eb = AlignedBuf::from_bytes(&e);
    let me = Model::parse(eb.as_bytes()).unwrap();
    assert_eq!(me.find(Some(0), Role::A).unwrap().dtype, DType::F32);
    assert_eq!(me.find(Some(0), Role::InProj).unwrap().dtype, DType::I8);
    let run = |b: &[u8], k: Kernels| {
        let mut r = Runner::new(Model::parse(b).unwrap().with_kernels(k));
        let id = r.open();
        r.feed_samples(id, &x).unwrap()
    };
    for k in [Kernels::Reference, Kernels::Fast] {
        let (yc, ye) = (run(cb.as_bytes(), k), run(eb.as_bytes(), k));
        assert!(yc.len() > 100);
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert!(
            bits(&yc) == bits(&ye),
            "{k:?}: compact w8a8 step is not its f32 twin"
        );
    }
}

/// `blob` with its `roles` tensors re-stored as f32 (every other tensor as it is).
fn dequantized(blob: &[u8], roles: &[tinyssm_core::Role]) -> Vec<u8> {
    use tinyssm_core::Weights;
    use tinyssm_host::{tensor_f32, write_blob, TensorData};
    let b = AlignedBuf::from_bytes(blob);
    let m = Model::parse(b.as_bytes()).unwrap();
    write_blob(
        m.config(),
        |s| -> Result<TensorData, tinyssm_host::HostError> {
            let t = m.find(s.layer, s.role).unwrap();
            Ok(match t.weights {
                _ if roles.contains(&s.role) => TensorData::F32(tensor_f32(&t).unwrap()),
                Weights::I8(w) => TensorData::I8 {
                    q: w.q.to_vec(),
                    scale: w.scale.to_vec(),
                    xmax: None,
                },
                Weights::F16(w) => TensorData::F16(w.to_vec()),
                _ => TensorData::F32(tensor_f32(&t).unwrap()),
            })
        },
    )
    .unwrap()
}

/// `mf` re-encoded with int8 weights and f32 activations, compact (`cf`) and not; `e` holds
/// `cf`'s `roles` dequantized to f32 beside the same int8 matrices. Returns the largest
/// difference between `cf`'s and `e`'s outputs over the audio `x`, relative to
/// `max(|e|, rms of e)` (with f32 activations no activation quantization amplifies f32
/// rounding).
fn compact_vs_dequantized(mf: &Model<'_>, roles: &[tinyssm_core::Role], x: &[f32]) -> f32 {
    use tinyssm_core::{Compute, DType, Weights};
    use tinyssm_host::{tensor_f32, write_blob, TensorData};
    use tinyssm_tools::quantize::{requantize, QuantSpec};
    // With f32 activations (int8 weights): `cf` compact, `e` the same values dequantized
    // into f32 vectors beside the same int8 matrices.
    let f8 = |compact| QuantSpec {
        weights: DType::I8,
        compute: Compute::Float,
        compact,
    };
    let (cf, nf) = (
        requantize(mf, f8(true)).unwrap(),
        requantize(mf, f8(false)).unwrap(),
    );
    let (cfb, nfb) = (AlignedBuf::from_bytes(&cf), AlignedBuf::from_bytes(&nf));
    let (mcf, mnf) = (
        Model::parse(cfb.as_bytes()).unwrap(),
        Model::parse(nfb.as_bytes()).unwrap(),
    );
    let compact_role = |r: tinyssm_core::Role| roles.contains(&r);
    let e = write_blob(
        mnf.config(),
        |s| -> Result<TensorData, tinyssm_host::HostError> {
            let t = if compact_role(s.role) {
                mcf.find(s.layer, s.role)
            } else {
                mnf.find(s.layer, s.role)
            }
            .unwrap();
            Ok(match t.weights {
                Weights::I8(w) if s.role.is_matrix() => TensorData::I8 {
                    q: w.q.to_vec(),
                    scale: w.scale.to_vec(),
                    xmax: None,
                },
                _ => TensorData::F32(tensor_f32(&t).unwrap()),
            })
        },
    )
    .unwrap();
    let eb = AlignedBuf::from_bytes(&e);
    let me = Model::parse(eb.as_bytes()).unwrap();
    let run = |m: Model<'_>| {
        let mut r = Runner::new(m);
        let id = r.open();
        r.feed_samples(id, x).unwrap()
    };
    let (ycf, ye) = (run(mcf), run(me));
    assert!(ycf.len() > 100);
    let rms = (ye.iter().map(|v| v * v).sum::<f32>() / ye.len() as f32).sqrt();
    ycf.iter()
        .zip(&ye)
        .map(|(a, b)| (a - b).abs() / b.abs().max(rms))
        .fold(0f32, f32::max)
}
