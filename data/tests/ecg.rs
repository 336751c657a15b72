//! The WFDB reader on MIT-BIH record 100 (`$TINYSSM_DATA/ecg`): signals pass the header's
//! checksums, and the annotations hold the beat counts the MIT-BIH directory lists for
//! record 100 (2,239 normal, 33 atrial premature, 1 premature ventricular: 2,273 beats).

use std::path::PathBuf;

use tinyssm_data::ecg;

fn dir() -> Option<PathBuf> {
    let d = tinyssm_data::data_dir().join("ecg");
    if d.is_dir() {
        Some(d)
    } else if std::env::var_os("CI").is_some() {
        panic!("{} missing: CI must have the shared data", d.display())
    } else {
        println!("skipped: {} absent", d.display());
        None
    }
}

#[test]
fn record_100_reads_with_checksums_and_beat_counts() {
    let Some(d) = dir() else { return };
    let r = ecg::read_record(&d, "100").unwrap();
    assert_eq!(r.fs, 360.0);
    assert_eq!(r.signals.len(), 2);
    assert_eq!(r.signals[0].name, "MLII");
    assert_eq!(r.signals[0].adu.len(), 650_000);
    // First samples equal the header's initial values.
    assert_eq!(r.signals[0].adu[0], 995);
    assert_eq!(r.signals[1].adu[0], 1011);
    let count = |c: u8| r.annotations.iter().filter(|a| a.1 == c).count();
    assert_eq!(count(1), 2239, "normal beats");
    assert_eq!(count(8), 33, "atrial premature beats");
    assert_eq!(count(5), 1, "premature ventricular beats");
    let beats = r.annotations.iter().filter(|a| ecg::is_beat(a.1)).count();
    assert_eq!(beats, 2273);
    assert!(r.annotations.windows(2).all(|w| w[0].0 <= w[1].0));
    // A flipped byte in the signal fails the checksum; a truncated .atr is an error.
    let tmp = tempfile::tempdir().unwrap();
    for f in ["100.hea", "100.dat", "100.atr"] {
        std::fs::copy(d.join(f), tmp.path().join(f)).unwrap();
    }
    let mut dat = std::fs::read(tmp.path().join("100.dat")).unwrap();
    dat[1000] ^= 0x10;
    std::fs::write(tmp.path().join("100.dat"), &dat).unwrap();
    let e = ecg::read_record(tmp.path(), "100").unwrap_err().to_string();
    assert!(e.contains("checksum"), "{e}");
    assert!(ecg::parse_atr(&[0xFF]).unwrap().is_empty());
}

#[test]
fn scoring_counts_matches_within_tolerance() {
    let beats = [100, 400, 700, 1000];
    let det = [95, 410, 520, 1100];
    let s = ecg::score(&beats, &det, 54);
    assert_eq!((s.tp, s.fp, s.fn_), (2, 2, 2));
    assert!((s.f1 - 0.5).abs() < 1e-12);
    let y = [0.0, 2.0, 3.0, -1.0, 5.0, -1.0, -1.0, 4.0];
    assert_eq!(ecg::detections(&y, 1.0, 3), vec![1, 4, 7]);
    assert_eq!(ecg::detections(&y, 1.0, 4), vec![1, 7]);
}
