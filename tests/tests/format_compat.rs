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
        tinyssm_core::format::VERSION_MINOR
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
        tinyssm_core::format::VERSION_MINOR
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
