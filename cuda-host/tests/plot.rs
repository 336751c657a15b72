//! The training curves render to a PNG without system fonts.

use tinyssm_cuda::train::EpochStats;

#[test]
fn curves_render_to_png() {
    let history: Vec<EpochStats> = (1..=12)
        .map(|e| EpochStats {
            epoch: e,
            step: e * 10,
            train_loss: 2.0 / e as f32,
            train_accuracy: if e % 3 == 0 {
                f32::NAN
            } else {
                1.0 - 0.5 / e as f32
            },
            test_loss: 2.2 / e as f32,
            test_accuracy: 1.0 - 0.6 / e as f32,
            seconds: e as f64,
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.png");
    tinyssm_cuda::train::plot::curves(&p, &history, "accuracy").unwrap();
    let b = std::fs::read(&p).unwrap();
    assert_eq!(&b[..8], b"\x89PNG\r\n\x1a\n");
    assert!(b.len() > 10_000, "{} bytes: nothing drawn?", b.len());
    // An empty history still renders (axes only), and a bad path is an error.
    tinyssm_cuda::train::plot::curves(&dir.path().join("e.png"), &[], "F1").unwrap();
    assert!(tinyssm_cuda::train::plot::curves(
        &dir.path().join("no/such/dir/x.png"),
        &history,
        "F1"
    )
    .is_err());
}
