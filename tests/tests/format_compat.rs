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
    let spec = QuantSpec {
        weights: DType::I8,
        compute: Compute::W8a8,
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
