//! Stream snapshots (`tinyssm_core::snapshot`): a stream snapshotted, restored into a fresh
//! state buffer and continued computes exactly what the uninterrupted stream does, for every
//! block kind in float and w8a8 mode and for integer-only models; a torn (every
//! truncation), corrupted (every byte flipped), foreign or mistyped snapshot is refused with
//! its own error and the state is left untouched.

use tinyssm_core::snapshot::{snapshot_len, SNAPSHOT_HEADER_LEN};
use tinyssm_core::{Compute, DType, Input, Model, SnapshotError};
use tinyssm_tests::{configs, random_blob_mode, repo_root};

fn input<'x>(m: &Model<'_>, x: &'x [f32], t: u32) -> Input<'x> {
    match m.vocab_size() {
        Some(v) => Input::Token((t * 7 + 3) % v),
        None => Input::Vector(x),
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn a_restored_stream_continues_bit_for_bit() {
    for (name, cfg) in configs::all() {
        for mode in [(DType::F32, Compute::Float), (DType::I8, Compute::W8a8)] {
            let buf = random_blob_mode(&cfg, 11, mode).unwrap();
            let m = Model::parse(buf.as_bytes()).unwrap();
            let x: Vec<f32> = (0..m.d_input()).map(|i| (i as f32 * 0.3).cos()).collect();
            let mut st = vec![0f32; m.state_len()];
            let mut sc = vec![0f32; m.scratch_len()];
            let mut out = vec![0f32; m.d_output()];
            m.reset(&mut st).unwrap();
            for t in 0..4 {
                m.step(input(&m, &x, t), &mut st, &mut sc, &mut out)
                    .unwrap();
            }
            let mut snap = vec![0u8; m.snapshot_len()];
            assert_eq!(m.snapshot(&st, &mut snap), Ok(snap.len()));
            assert_eq!(snap.len(), snapshot_len(m.state_len()));
            let mut want = Vec::new();
            for t in 4..9 {
                m.step(input(&m, &x, t), &mut st, &mut sc, &mut out)
                    .unwrap();
                want.extend(bits(&out));
            }
            let mut st2 = vec![f32::NAN; m.state_len()];
            m.restore(&snap, &mut st2).unwrap();
            let mut got = Vec::new();
            for t in 4..9 {
                m.step(input(&m, &x, t), &mut st2, &mut sc, &mut out)
                    .unwrap();
                got.extend(bits(&out));
            }
            assert_eq!(got, want, "{name} {mode:?}");
            assert_eq!(bits(&st2), bits(&st), "{name} {mode:?}");
        }
    }
}

#[test]
fn torn_corrupted_foreign_and_mistyped_snapshots_are_refused() {
    let cfg = configs::mamba_sensor();
    let buf = random_blob_mode(&cfg, 11, (DType::F32, Compute::Float)).unwrap();
    let m = Model::parse(buf.as_bytes()).unwrap();
    let x: Vec<f32> = (0..m.d_input()).map(|i| i as f32 * 0.1).collect();
    let mut st = vec![0f32; m.state_len()];
    let mut sc = vec![0f32; m.scratch_len()];
    let mut out = vec![0f32; m.d_output()];
    m.reset(&mut st).unwrap();
    for _ in 0..3 {
        m.step(Input::Vector(&x), &mut st, &mut sc, &mut out)
            .unwrap();
    }
    let mut snap = vec![0u8; m.snapshot_len()];
    m.snapshot(&st, &mut snap).unwrap();
    let sentinel = vec![1.5f32; m.state_len()];
    let refused = |s: &[u8]| {
        let mut target = sentinel.clone();
        let e = m.restore(s, &mut target).unwrap_err();
        assert_eq!(bits(&target), bits(&sentinel), "state written on {e:?}");
        e
    };
    // Every truncation: a torn write.
    for len in 0..snap.len() {
        let e = refused(&snap[..len]);
        assert!(
            matches!(e, SnapshotError::Truncated { .. }),
            "length {len}: {e:?}"
        );
    }
    let mut long = snap.clone();
    long.push(0);
    assert_eq!(refused(&long), SnapshotError::TrailingBytes);
    // Every byte flipped: refused (mostly as a CRC mismatch; the magic, version and length
    // fields have their own errors).
    for i in 0..snap.len() {
        let mut c = snap.clone();
        c[i] ^= 0x10;
        let e = refused(&c);
        match i {
            0..=3 => assert_eq!(e, SnapshotError::BadMagic),
            4..=5 => assert!(matches!(e, SnapshotError::UnsupportedVersion { .. })),
            12..=15 => assert!(
                matches!(
                    e,
                    SnapshotError::Truncated { .. } | SnapshotError::TrailingBytes
                ),
                "{i}: {e:?}"
            ),
            _ => assert!(matches!(e, SnapshotError::CrcMismatch { .. }), "{i}: {e:?}"),
        }
    }
    // Another model of the same shape (other weights): foreign.
    let other = random_blob_mode(&cfg, 12, (DType::F32, Compute::Float)).unwrap();
    let mo = Model::parse(other.as_bytes()).unwrap();
    let mut target = sentinel.clone();
    assert!(matches!(
        mo.restore(&snap, &mut target),
        Err(SnapshotError::OtherModel { .. })
    ));
    // A NaN in the state (re-sealed with a valid CRC): refused.
    let mut c = snap.clone();
    c[SNAPSHOT_HEADER_LEN..SNAPSHOT_HEADER_LEN + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    let end = c.len() - 4;
    let crc = tinyssm_core::format::CRC.checksum(&c[..end]);
    c[end..].copy_from_slice(&crc.to_le_bytes());
    assert_eq!(refused(&c), SnapshotError::NonFinite);
    // Buffers too short.
    let mut small = vec![0u8; snap.len() - 1];
    assert!(matches!(
        m.snapshot(&st, &mut small),
        Err(SnapshotError::BufferTooShort { .. })
    ));
    assert!(matches!(
        m.snapshot(&st[..st.len() - 1], &mut snap.clone()),
        Err(SnapshotError::StateTooShort { .. })
    ));
}

/// Integer-only streams: snapshot, restore and continue bit for bit; a float restore of an
/// integer snapshot (and the reverse) is refused.
#[test]
fn integer_only_streams_snapshot_too() {
    let file =
        tinyssm_host::ModelFile::open(repo_root().join("models/ecg-rpeak-int.tssm")).unwrap();
    let m = file.model();
    let mut st = vec![0i32; m.state_len()];
    let mut sc = vec![0i32; m.scratch_len()];
    let mut out = vec![0i32; m.d_output()];
    m.reset_int(&mut st).unwrap();
    let xs: Vec<i16> = (0..300).map(|t| ((t * 811) % 4000 - 2000) as i16).collect();
    for &x in &xs[..150] {
        m.step_int(&[x], &mut st, &mut sc, &mut out).unwrap();
    }
    let mut snap = vec![0u8; m.snapshot_len()];
    m.snapshot_int(&st, &mut snap).unwrap();
    let mut want = Vec::new();
    for &x in &xs[150..] {
        m.step_int(&[x], &mut st, &mut sc, &mut out).unwrap();
        want.extend_from_slice(&out);
    }
    let mut st2 = vec![0i32; m.state_len()];
    m.restore_int(&snap, &mut st2).unwrap();
    let mut got = Vec::new();
    for &x in &xs[150..] {
        m.step_int(&[x], &mut st2, &mut sc, &mut out).unwrap();
        got.extend_from_slice(&out);
    }
    assert_eq!(got, want);
    let mut f = vec![0f32; m.state_len()];
    assert_eq!(
        m.restore(&snap, &mut f),
        Err(SnapshotError::WrongElementType)
    );
}
