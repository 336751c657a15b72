//! The bundled demo (README's main job) is what its script says it is: the committed model
//! is the conversion of the committed fixture, and its input gives the reference outputs.

use tinyssm_core::Model;
use tinyssm_host::{io, AlignedBuf, Runner};
use tinyssm_tests::{fixtures, repo_root};
use tinyssm_tools::{convert_dir, WeightDtype};

#[test]
fn demo_model_is_the_converted_fixture_and_matches_the_reference() {
    let src = fixtures().join("s4d/s4d-glu-prenorm");
    let fresh = convert_dir(&src, WeightDtype::F32).unwrap();
    let committed = std::fs::read(repo_root().join("models/demo-s4d.tssm")).unwrap();
    assert!(
        fresh == committed,
        "models/demo-s4d.tssm is stale: run scripts/make-demo.sh"
    );
    let buf = AlignedBuf::from_bytes(&committed);
    let m = Model::parse(buf.as_bytes()).unwrap();
    let (cols, x) = io::read_csv(&repo_root().join("models/demo-s4d-input.csv")).unwrap();
    assert_eq!(cols, m.d_input());
    let mut r = Runner::new(m);
    let id = r.open();
    let y = r.feed_vectors(id, &x).unwrap();
    let (_, want) = io::read_f32_npy(&src.join("expected.npy")).unwrap();
    let err = y
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
        .fold(0f32, f32::max);
    assert!(err <= 1e-4, "{err}");
}
