//! The rwkv.cpp file reader on the real tiny models in `$TINYSSM_DATA/rwkv-tiny`
//! (from rwkv.cpp's test suite, see the data README), and on corrupt copies of them.

use std::path::{Path, PathBuf};

use tinyssm_tools::import::rwkv_cpp::{RwkvCppFile, RwkvVersion};

fn data_dir() -> Option<PathBuf> {
    let d = std::env::var_os("TINYSSM_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"))
        .join("rwkv-tiny");
    if d.is_dir() {
        Some(d)
    } else if std::env::var_os("CI").is_some() {
        panic!(
            "{} is missing: CI must have the shared data (rwkv.cpp tests/, commit 4358e709)",
            d.display()
        );
    } else {
        println!(
            "skipped: {} absent (tiny models from rwkv.cpp's tests/, commit 4358e709)",
            d.display()
        );
        None
    }
}

const MODELS: [(&str, RwkvVersion); 4] = [
    ("4v0-660K", RwkvVersion::V4),
    ("5v1-730K", RwkvVersion::V5_1),
    ("5v2-730K", RwkvVersion::V5_2),
    ("7v0-834K", RwkvVersion::V7),
];

fn parse(bytes: &[u8]) -> Result<RwkvCppFile<'_>, String> {
    RwkvCppFile::parse(bytes, Path::new("f")).map_err(|e| e.to_string())
}

#[test]
fn real_files_parse_and_versions_are_recognised() {
    let Some(dir) = data_dir() else { return };
    for (name, version) in MODELS {
        let b32 = std::fs::read(dir.join(format!("tiny-rwkv-{name}-FP32.bin"))).unwrap();
        let b16 = std::fs::read(dir.join(format!("tiny-rwkv-{name}-FP16.bin"))).unwrap();
        let f32f = parse(&b32).unwrap();
        let f16f = parse(&b16).unwrap();
        assert_eq!(f32f.version().unwrap(), version, "{name}");
        assert_eq!(f16f.version().unwrap(), version, "{name}");
        assert_eq!(f32f.n_vocab, 256);
        let (v, d) = (f32f.n_vocab as usize, f32f.n_embed as usize);
        let blocks = (0..)
            .take_while(|i| f32f.tensors.contains_key(&format!("blocks.{i}.ln1.weight")))
            .count();
        assert_eq!(blocks, f32f.n_layer as usize, "{name}: layer count");
        assert_eq!(f32f.order, f16f.order, "{name}: same tensors in both files");
        // Same weights up to f16 rounding, in PyTorch order.
        let e32 = f32f.get("emb.weight", &[v, d]).unwrap();
        let e16 = f16f.get("emb.weight", &[v, d]).unwrap();
        let worst = e32
            .iter()
            .zip(&e16)
            .map(|(a, b)| (a - b).abs() / a.abs().max(1e-3))
            .fold(0f32, f32::max);
        assert!(worst < 1e-3, "{name}: f16 emb differs by {worst}");
        assert!(f32f.get("emb.weight", &[d, v]).is_err(), "shape is checked");
        assert!(f32f.get("nope", &[1]).is_err());
    }
}

#[test]
fn corrupt_files_are_errors_not_panics() {
    let Some(dir) = data_dir() else { return };
    let b = std::fs::read(dir.join("tiny-rwkv-5v2-730K-FP16.bin")).unwrap();
    // every truncation in the first 2 KiB and a spread over the rest
    let cuts: Vec<usize> = (0..2048).chain((2048..b.len()).step_by(997)).collect();
    for n in cuts {
        assert!(parse(&b[..n]).is_err(), "truncated at {n} parsed");
    }
    // bad magic, version, header dims
    let mut c = b.clone();
    c[0] ^= 1;
    assert!(parse(&c).unwrap_err().contains("not an rwkv.cpp file"));
    let mut c = b.clone();
    c[4..8].copy_from_slice(&7u32.to_le_bytes());
    assert!(parse(&c).unwrap_err().contains("file version 7"));
    // types tinyssm does not import are refused by name
    let mut c = b.clone();
    c[20..24].copy_from_slice(&12i32.to_le_bytes());
    assert!(
        parse(&c).unwrap_err().contains("k-quant"),
        "{}",
        parse(&c).unwrap_err()
    );
    let mut c = b.clone();
    c[32..36].copy_from_slice(&5i32.to_le_bytes());
    assert!(parse(&c).unwrap_err().contains("removed"));
    // quantized tensors in a version-100 file use a format rwkv.cpp dropped
    let mut c = b.clone();
    c[4..8].copy_from_slice(&100u32.to_le_bytes());
    c[32..36].copy_from_slice(&8i32.to_le_bytes());
    assert!(
        parse(&c).unwrap_err().contains("file version 100"),
        "{}",
        parse(&c).unwrap_err()
    );
    // a quantized tensor whose rows are not whole blocks
    let mut c = b.clone();
    c[32..36].copy_from_slice(&8i32.to_le_bytes());
    c[36..40].copy_from_slice(&33i32.to_le_bytes());
    assert!(parse(&c).unwrap_err().contains("multiple of 32"));
    let mut c = b.clone();
    c[24..28].copy_from_slice(&9i32.to_le_bytes());
    assert!(parse(&c).is_err());
    let mut c = b.clone();
    c[36..40].copy_from_slice(&i32::MAX.to_le_bytes());
    assert!(parse(&c).unwrap_err().contains("truncated"));
    let mut c = b.clone();
    c[36..40].copy_from_slice(&(-5i32).to_le_bytes());
    assert!(parse(&c).is_err());
    // pseudo-random byte flips anywhere never panic
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..3000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mut c = b.clone();
        let i = (x as usize) % 4096.min(c.len());
        c[i] ^= (x >> 32) as u8 | 1;
        let _ = parse(&c).map(|f| f.version());
    }
}

/// A NaN or infinite weight in an rwkv.cpp file is refused at conversion with the tensor
/// and the element named (as the safetensors and `.pth` paths do), never written.
#[test]
fn non_finite_weights_are_refused_by_name() {
    let Some(dir) = data_dir() else { return };
    let path = dir.join("tiny-rwkv-4v0-660K-FP32.bin");
    let b = std::fs::read(&path).unwrap();
    let f = parse(&b).unwrap();
    let t = &f.tensors["blocks.0.att.key.weight"];
    let at = t.data.start + 4 * 3;
    let tmp = tempfile::tempdir().unwrap();
    for bad in [f32::NAN, f32::NEG_INFINITY] {
        let mut c = b.clone();
        c[at..at + 4].copy_from_slice(&bad.to_le_bytes());
        let p = tmp.path().join("bad.bin");
        std::fs::write(&p, &c).unwrap();
        let e = tinyssm_tools::import::rwkv_cpp::convert(&p, tinyssm_tools::WeightDtype::F32)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("blocks.0.att.key.weight") && e.contains("element 3"),
            "{e}"
        );
    }
}

/// Found by fuzzing (fuzz/regressions/rwkv_cpp/n-layer-oom): a 104-byte file whose
/// header claims 2^22 layers made the reader build a name per layer (gigabytes) before
/// noticing; it is refused from the tensor count.
#[test]
fn a_header_claiming_millions_of_layers_is_refused_cheaply() {
    let p =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions/rwkv_cpp/n-layer-oom");
    let b = std::fs::read(p).unwrap();
    assert!(b.len() < 200);
    let e = parse(&b).unwrap_err();
    assert!(e.contains("n_layer"), "{e}");
}
