//! Crafted corrupt blobs: each one is rejected with the exact error for its defect (the CRC
//! is re-fixed after each patch unless the CRC is the defect), and never a panic.

use tinyssm_core::format::{
    blob_crc, Header, TensorRecord, PREAMBLE_LEN, TENSOR_RECORD_LEN, VERSION_MAJOR,
};
use tinyssm_core::{
    Arch, Config, DType, FormatError, Mamba1Config, Mamba2Config, Model, Role, S4dConfig,
};
use tinyssm_host::AlignedBuf;
use tinyssm_tests::{configs, random_blob};

fn valid(cfg: &Config) -> Vec<u8> {
    random_blob(cfg, 42, DType::F32)
        .unwrap()
        .as_bytes()
        .to_vec()
}

fn parse(bytes: &[u8]) -> Result<(), FormatError> {
    let buf = AlignedBuf::from_bytes(bytes);
    Model::parse(buf.as_bytes()).map(|_| ())
}

fn fix_crc(b: &mut [u8]) {
    let c = blob_crc(b);
    b[24..28].copy_from_slice(&c.to_le_bytes());
}

struct Parts {
    /// The format minor version the blob was written in.
    minor: u16,
    header: Header,
    records: Vec<TensorRecord>,
    data: Vec<u8>,
}

fn split(b: &[u8]) -> Parts {
    let hl = u32::from_le_bytes(b[8..12].try_into().unwrap()) as usize;
    let region = &b[PREAMBLE_LEN..PREAMBLE_LEN + hl];
    let minor = u16::from_le_bytes([b[6], b[7]]);
    let (header, rest) = tinyssm_core::format::decode_header(minor, region).unwrap();
    let records = rest
        .chunks_exact(TENSOR_RECORD_LEN)
        .map(|c| postcard::from_bytes(c).unwrap())
        .collect();
    let data_off = (PREAMBLE_LEN + hl).div_ceil(16) * 16;
    Parts {
        minor,
        header,
        records,
        data: b[data_off..].to_vec(),
    }
}

/// Re-assembles a blob (valid preamble + CRC) from possibly patched parts.
fn join(p: &Parts) -> Vec<u8> {
    // The layout of the blob's minor: 1.2–1.5's where it has one (as the writer does).
    let mut hdr = match tinyssm_core::format::HeaderV1_2::of(&p.header) {
        Some(h) if p.minor < 6 => postcard::to_stdvec(&h).unwrap(),
        _ => postcard::to_stdvec(&p.header).unwrap(),
    };
    for r in &p.records {
        hdr.extend(postcard::to_stdvec(r).unwrap());
    }
    let data_off = (PREAMBLE_LEN + hdr.len()).div_ceil(16) * 16;
    let mut b = vec![0u8; data_off + p.data.len()];
    b[0..4].copy_from_slice(b"TSSM");
    b[4..6].copy_from_slice(&VERSION_MAJOR.to_le_bytes());
    b[6..8].copy_from_slice(&p.minor.to_le_bytes());
    b[8..12].copy_from_slice(&(hdr.len() as u32).to_le_bytes());
    b[16..24].copy_from_slice(&(p.data.len() as u64).to_le_bytes());
    b[PREAMBLE_LEN..PREAMBLE_LEN + hdr.len()].copy_from_slice(&hdr);
    b[data_off..].copy_from_slice(&p.data);
    fix_crc(&mut b);
    b
}

fn patched(cfg: &Config, f: impl FnOnce(&mut Parts)) -> Result<(), FormatError> {
    let mut p = split(&valid(cfg));
    f(&mut p);
    parse(&join(&p))
}

fn hl(b: &[u8]) -> usize {
    u32::from_le_bytes(b[8..12].try_into().unwrap()) as usize
}

#[test]
fn valid_blobs_roundtrip_through_split_and_join() {
    for (name, cfg) in configs::all() {
        let b = valid(&cfg);
        assert_eq!(join(&split(&b)), b, "{name}");
        parse(&b).unwrap();
    }
}

#[test]
fn truncation_at_every_boundary() {
    let b = valid(&configs::mamba1());
    let h = hl(&b);
    let data_off = (PREAMBLE_LEN + h).div_ceil(16) * 16;
    for &n in &[0usize, 3] {
        assert!(
            matches!(parse(&b[..n]), Err(FormatError::Truncated { .. })),
            "len {n}"
        );
    }
    for &n in &[
        7usize,
        31,
        PREAMBLE_LEN + 2,
        PREAMBLE_LEN + h / 2,
        PREAMBLE_LEN + h - 1,
        data_off + 8,
        b.len() - 1,
    ] {
        match parse(&b[..n]) {
            Err(FormatError::Truncated { needed, got }) => {
                assert_eq!(got, n as u64);
                assert!(needed > got);
            }
            other => panic!("len {n}: {other:?}"),
        }
    }
}

#[test]
fn bad_magic_and_versions() {
    let mut b = valid(&configs::s4d());
    b[0] = b'X';
    assert_eq!(parse(&b), Err(FormatError::BadMagic));
    let mut b = valid(&configs::s4d());
    b[4..6].copy_from_slice(&2u16.to_le_bytes());
    b[6..8].copy_from_slice(&3u16.to_le_bytes());
    fix_crc(&mut b);
    let e = parse(&b).unwrap_err();
    assert_eq!(
        e,
        FormatError::UnsupportedVersion {
            found_major: 2,
            found_minor: 3,
            supported_major: 1
        }
    );
    let msg = e.to_string();
    assert!(
        msg.contains("2.3")
            && msg.contains(&format!("1.0 to 1.{}", tinyssm_core::format::VERSION_MINOR)),
        "{msg}"
    );
    // A newer minor of the same major may change the header: refused, not misread.
    let mut b = valid(&configs::s4d());
    b[6..8].copy_from_slice(&9u16.to_le_bytes());
    fix_crc(&mut b);
    assert!(matches!(
        parse(&b),
        Err(FormatError::UnsupportedVersion { found_minor: 9, .. })
    ));
}

#[test]
fn crc_mismatches() {
    let mut b = valid(&configs::mamba2());
    b[24] ^= 1;
    assert!(matches!(parse(&b), Err(FormatError::CrcMismatch { .. })));
    let mut b = valid(&configs::mamba2());
    let n = b.len();
    b[n - 20] ^= 0x80; // a weight byte
    assert!(matches!(parse(&b), Err(FormatError::CrcMismatch { .. })));
    let mut b = valid(&configs::mamba2());
    b[PREAMBLE_LEN + 1] ^= 0x01; // a header byte
    assert!(matches!(parse(&b), Err(FormatError::CrcMismatch { .. })));
}

#[test]
fn misaligned_blob() {
    let b = valid(&configs::mamba1());
    let mut shifted = vec![0u8];
    shifted.extend_from_slice(&b);
    let buf = AlignedBuf::from_bytes(&shifted);
    assert_eq!(
        Model::parse(&buf.as_bytes()[1..]).unwrap_err(),
        FormatError::MisalignedBlob
    );
}

#[test]
fn preamble_fields() {
    let b = valid(&configs::mamba1());
    // reserved words
    for off in [12usize, 28] {
        let mut c = b.clone();
        c[off] = 1;
        fix_crc(&mut c);
        assert_eq!(
            parse(&c),
            Err(FormatError::ReservedNotEmpty),
            "offset {off}"
        );
    }
    // trailing bytes after the data section
    let mut c = b.clone();
    c.extend_from_slice(&[0u8; 16]);
    fix_crc(&mut c);
    assert_eq!(parse(&c), Err(FormatError::TrailingBytes));
    // data_len pointing past the end
    let mut c = b.clone();
    let dl = u64::from_le_bytes(c[16..24].try_into().unwrap());
    c[16..24].copy_from_slice(&(dl + 16).to_le_bytes());
    fix_crc(&mut c);
    assert!(matches!(parse(&c), Err(FormatError::Truncated { .. })));
    // header_len so large that offsets overflow
    let mut c = b.clone();
    c[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
    fix_crc(&mut c);
    assert_eq!(parse(&c), Err(FormatError::BadLayout));
    // header length that cuts the tensor table short: the rest no longer matches
    let mut c = b.clone();
    let h = hl(&c) as u32;
    c[8..12].copy_from_slice(&(h - 16).to_le_bytes());
    let cut = PREAMBLE_LEN + h as usize - 16;
    // keep the total length consistent: header region shrinks, padding/data stay put
    let data_off_new = cut.div_ceil(16) * 16;
    let data_off_old = (PREAMBLE_LEN + h as usize).div_ceil(16) * 16;
    let mut d = c[..cut].to_vec();
    d.resize(data_off_new, 0);
    d.extend_from_slice(&c[data_off_old..]);
    fix_crc(&mut d);
    assert!(
        matches!(
            parse(&d),
            Err(FormatError::BadLayout) | Err(FormatError::ReservedNotEmpty)
        ),
        "{:?}",
        parse(&d)
    );
    // non-zero padding between header and data
    let mut p = split(&b);
    p.header.quant_len = 0;
    let mut c = join(&p);
    let h = hl(&c);
    let pad_at = PREAMBLE_LEN + h;
    if !pad_at.is_multiple_of(16) {
        c[pad_at] = 7;
        fix_crc(&mut c);
        assert_eq!(parse(&c), Err(FormatError::ReservedNotEmpty));
    }
}

#[test]
fn header_corruptions() {
    // garbage postcard header
    let mut b = valid(&configs::mamba1());
    b[PREAMBLE_LEN] = 0xFF; // n_layers varint continuation forever / bad variant
    b[PREAMBLE_LEN + 1] = 0xFF;
    b[PREAMBLE_LEN + 2] = 0xFF;
    b[PREAMBLE_LEN + 3] = 0xFF;
    b[PREAMBLE_LEN + 4] = 0xFF;
    b[PREAMBLE_LEN + 5] = 0xFF;
    fix_crc(&mut b);
    assert_eq!(parse(&b), Err(FormatError::BadHeader));
    // tensor count
    let e = patched(&configs::mamba1(), |p| p.header.n_tensors += 1);
    assert!(matches!(e, Err(FormatError::TensorCount { .. })), "{e:?}");
    // reserved quant table
    let e = patched(&configs::mamba1(), |p| p.header.quant_len = 4);
    assert_eq!(e, Err(FormatError::ReservedNotEmpty));
}

#[test]
fn config_corruptions() {
    let e = patched(&configs::mamba1(), |p| p.header.config.n_layers = 0);
    assert!(matches!(e, Err(FormatError::BadConfig(_))), "{e:?}");
    let (m1, m2) = (configs::mamba1_config(), configs::mamba2_config());
    let e = patched(&configs::mamba2(), |p| {
        p.header.config.arch = Arch::Mamba2(Mamba2Config {
            head_dim: m2.head_dim + 1,
            ..m2
        })
    });
    assert_eq!(
        e,
        Err(FormatError::BadConfig(
            "n_heads * head_dim must equal d_inner"
        ))
    );
    let e = patched(&configs::mamba1(), |p| {
        p.header.config.arch = Arch::Mamba1(Mamba1Config {
            norm_eps: f32::NAN,
            ..m1
        })
    });
    assert!(matches!(e, Err(FormatError::BadConfig(_))), "{e:?}");
    let e = patched(&configs::mamba2(), |p| {
        p.header.config.arch = Arch::Mamba2(Mamba2Config {
            dt_min: 1.0,
            dt_max: 0.5,
            ..m2
        })
    });
    assert!(matches!(e, Err(FormatError::BadConfig(_))), "{e:?}");
    let e = patched(&configs::s4d(), |p| {
        p.header.config.arch = Arch::S4d(S4dConfig {
            d_state: 7,
            ..configs::s4d_config()
        })
    });
    assert!(matches!(e, Err(FormatError::BadConfig(_))), "{e:?}");
    // dimensions whose products overflow
    let e = patched(&configs::mamba2(), |p| {
        p.header.config.n_layers = 1000;
        p.header.config.arch = Arch::Mamba2(Mamba2Config {
            d_inner: 1 << 24,
            n_heads: 1 << 12,
            head_dim: 1 << 12,
            n_groups: 1 << 12,
            norm_group_size: 1 << 12,
            d_state: 1 << 24,
            ..m2
        })
    });
    assert_eq!(e, Err(FormatError::DimensionOverflow));
    let e = patched(&configs::mamba1(), |p| {
        p.header.config.arch = Arch::Mamba1(Mamba1Config {
            d_inner: 1 << 24,
            d_state: 1 << 24,
            ..m1
        })
    });
    assert_eq!(e, Err(FormatError::DimensionOverflow));
    // a config that is valid but does not match the tensors stored
    let e = patched(&configs::mamba1(), |p| {
        p.header.config.arch = Arch::Mamba1(Mamba1Config {
            d_state: m1.d_state + 1,
            ..m1
        })
    });
    assert!(matches!(e, Err(FormatError::WrongShape { .. })), "{e:?}");
}

fn find(p: &Parts, role: Role) -> usize {
    p.records
        .iter()
        .position(|r| r.role == role.code())
        .unwrap()
}

#[test]
fn tensor_table_corruptions() {
    let cfg = configs::mamba1();
    let e = patched(&cfg, |p| {
        let i = find(p, Role::InProj);
        p.records[i].d0 += 1;
    });
    assert_eq!(e, Err(FormatError::WrongShape { index: 4 }));
    let e = patched(&cfg, |p| p.records[2].rank = 3);
    assert!(
        matches!(e, Err(FormatError::WrongShape { index: 2 })),
        "{e:?}"
    );
    let e = patched(&cfg, |p| p.records[0].dtype = 9);
    assert_eq!(e, Err(FormatError::UnknownDtype { index: 0, code: 9 }));
    let e = patched(&cfg, |p| {
        let i = find(p, Role::A);
        p.records[i].dtype = DType::F16.code();
        p.records[i].len /= 2;
    });
    assert!(
        matches!(e, Err(FormatError::DtypeNotAllowed { code: 1, .. })),
        "{e:?}"
    );
    let e = patched(&cfg, |p| p.records[1].len += 4);
    assert_eq!(e, Err(FormatError::WrongLength { index: 1 }));
    let e = patched(&cfg, |p| p.records[1].offset += 4);
    assert_eq!(e, Err(FormatError::MisalignedTensor { index: 1 }));
    let e = patched(&cfg, |p| p.records[2].offset = p.records[1].offset);
    assert_eq!(e, Err(FormatError::TensorOverlap { index: 2 }));
    let e = patched(&cfg, |p| {
        let last = p.records.len() - 1;
        p.records[last].offset += 1 << 20;
    });
    assert!(
        matches!(e, Err(FormatError::TensorOutOfBounds { .. })),
        "{e:?}"
    );
    let e = patched(&cfg, |p| {
        let last = p.records.len() - 1;
        p.records[last].offset = u64::MAX - 15;
    });
    assert!(
        matches!(e, Err(FormatError::TensorOutOfBounds { .. })),
        "{e:?}"
    );
    let e = patched(&cfg, |p| p.records[4].role = Role::Decoder.code());
    assert_eq!(e, Err(FormatError::UnexpectedTensor { index: 4 }));
    let e = patched(&cfg, |p| p.records[4].layer = 1);
    assert_eq!(e, Err(FormatError::UnexpectedTensor { index: 4 }));
    let e = patched(&cfg, |p| p.records[4].quant = 0);
    assert_eq!(e, Err(FormatError::ReservedNotEmpty));
    // swapped order of two tensors of the same layer
    let e = patched(&cfg, |p| p.records.swap(3, 4));
    assert!(
        matches!(e, Err(FormatError::UnexpectedTensor { index: 3 })),
        "{e:?}"
    );
}

#[test]
fn every_error_has_a_message() {
    let errs = [
        FormatError::BadMagic,
        FormatError::Truncated { needed: 32, got: 3 },
        FormatError::MisalignedBlob,
        FormatError::CrcMismatch {
            stored: 1,
            computed: 2,
        },
        FormatError::BadConfig("x"),
        FormatError::TensorOverlap { index: 3 },
        FormatError::NonFinite { index: 4 },
        FormatError::Negative { index: 5 },
    ];
    for e in errs {
        assert!(!e.to_string().is_empty());
    }
}

/// Format 1.2's quantized tensors: lengths include the scales, the dtypes are matrices
/// only, and a 1.1 blob cannot carry them.
#[test]
fn quantized_tensor_corruptions() {
    let cfg = configs::mamba1();
    for dt in [DType::I8, DType::I4, DType::Bf16] {
        let q = random_blob(&cfg, 42, dt).unwrap().as_bytes().to_vec();
        parse(&q).unwrap();
        let p0 = split(&q);
        let i = find(&p0, Role::InProj);
        assert_eq!(p0.records[i].dtype, dt.code());
        // Scales missing (values only) or one byte short.
        let e = {
            let mut p = split(&q);
            p.records[i].len = p.records[i].d0 as u64 * p.records[i].d1 as u64;
            parse(&join(&p))
        };
        assert!(
            matches!(e, Err(FormatError::WrongLength { .. })),
            "{dt:?} {e:?}"
        );
        let e = {
            let mut p = split(&q);
            p.records[i].len -= 1;
            parse(&join(&p))
        };
        assert!(
            matches!(e, Err(FormatError::WrongLength { .. })),
            "{dt:?} {e:?}"
        );
        // The same bytes declared as a 1.1 blob: quantized dtypes did not exist there.
        let mut old = q.clone();
        old[6..8].copy_from_slice(&1u16.to_le_bytes());
        // A 1.1 header has no compute field; the decoder reads the 1.2 header's trailing
        // byte as part of the tensor table and the layout check fails, or the dtype does.
        fix_crc(&mut old);
        assert!(parse(&old).is_err(), "{dt:?}: 1.2 content accepted as 1.1");
    }
    // A quantized dtype on a role kept f32 by the numerics policy (A).
    let q = random_blob(&cfg, 42, DType::I8)
        .unwrap()
        .as_bytes()
        .to_vec();
    let mut p = split(&q);
    let a = find(&p, Role::A);
    p.records[a].dtype = DType::I8.code();
    let e = parse(&join(&p));
    assert!(
        matches!(e, Err(FormatError::DtypeNotAllowed { code: 3, .. })),
        "{e:?}"
    );
}

/// Values the format forbids, in every dtype that holds float values: a NaN or infinite
/// weight (f32, f16, bf16), int8 row scale or int4 group scale is `NonFinite`; a negative
/// scale or mel filter weight is `Negative`. `parse_skip_crc` (for a buffer validated once)
/// checks neither, as it skips the CRC.
#[test]
fn non_finite_and_negative_values_are_refused() {
    let cfg = configs::mamba1();
    // (dtype, byte offset in the tensor to patch, bytes, the error)
    let nan32 = f32::NAN.to_le_bytes().to_vec();
    let inf32 = f32::INFINITY.to_le_bytes().to_vec();
    let neg32 = (-1.0f32).to_le_bytes().to_vec();
    type Case = (DType, bool, Vec<u8>, fn(u32) -> FormatError);
    let cases: Vec<Case> = vec![
        (DType::F32, false, nan32.clone(), |index| {
            FormatError::NonFinite { index }
        }),
        (DType::F32, false, inf32.clone(), |index| {
            FormatError::NonFinite { index }
        }),
        (DType::F16, false, vec![0x00, 0x7c], |index| {
            FormatError::NonFinite { index }
        }),
        (DType::F16, false, vec![0x01, 0xfe], |index| {
            FormatError::NonFinite { index }
        }),
        (DType::Bf16, false, vec![0x80, 0x7f], |index| {
            FormatError::NonFinite { index }
        }),
        (DType::I8, true, nan32, |index| FormatError::NonFinite {
            index,
        }),
        (DType::I8, true, inf32, |index| FormatError::NonFinite {
            index,
        }),
        (DType::I8, true, neg32, |index| FormatError::Negative {
            index,
        }),
        (DType::I4, true, vec![0x00, 0xfc], |index| {
            FormatError::NonFinite { index }
        }),
        (DType::I4, true, vec![0x00, 0xbc], |index| {
            FormatError::Negative { index }
        }),
    ];
    for (dt, in_scales, bytes, want) in cases {
        let q = random_blob(&cfg, 42, dt).unwrap().as_bytes().to_vec();
        parse(&q).unwrap();
        let mut p = split(&q);
        let i = find(&p, Role::InProj);
        let r = p.records[i];
        assert_eq!(r.dtype, dt.code());
        let n = r.d0 as usize * r.d1 as usize;
        let at = r.offset as usize
            + match (dt, in_scales) {
                (_, false) => 0,
                (DType::I8, true) => n.next_multiple_of(4),
                (DType::I4, true) => r.d0 as usize * (r.d1 as usize).div_ceil(32) * 16,
                _ => unreachable!(),
            };
        p.data[at..at + bytes.len()].copy_from_slice(&bytes);
        let b = join(&p);
        assert_eq!(parse(&b), Err(want(i as u32)), "{dt:?} {bytes:?}");
        let buf = AlignedBuf::from_bytes(&b);
        assert!(Model::parse_skip_crc(buf.as_bytes()).is_ok(), "{dt:?}");
    }
    // A shipped audio model with one negative mel filter weight.
    let path = tinyssm_tests::repo_root().join("models/fsdd-s4d-tiny.tssm");
    let blob = std::fs::read(path).unwrap();
    parse(&blob).unwrap();
    let mut p = split(&blob);
    let i = find(&p, Role::MelFilters);
    assert_eq!(p.records[i].dtype, DType::F32.code());
    let at = p.records[i].offset as usize + 4 * 7;
    p.data[at..at + 4].copy_from_slice(&(-0.25f32).to_le_bytes());
    assert_eq!(
        parse(&join(&p)),
        Err(FormatError::Negative { index: i as u32 })
    );
    // −0 is not negative.
    p.data[at..at + 4].copy_from_slice(&(-0.0f32).to_le_bytes());
    assert_eq!(parse(&join(&p)), Ok(()));
}
