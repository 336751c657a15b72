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
    assert_eq!(u16::from_le_bytes([fresh[6], fresh[7]]), 1);
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
    newer[6..8].copy_from_slice(&2u16.to_le_bytes());
    let e = Model::parse_skip_crc(AlignedBuf::from_bytes(&newer).as_bytes()).unwrap_err();
    assert!(e.to_string().contains("1.2"), "{e}");
}
