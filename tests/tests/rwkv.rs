//! RWKV against rwkv.cpp's own expected logits (`$TINYSSM_DATA/rwkv-tiny`): after feeding
//! the bytes `"in` from the initial state. v4 now; v5–v7 follow (issue 3).

use std::path::PathBuf;

use tinyssm_core::{Kernels, Model};
use tinyssm_host::{AlignedBuf, Runner};
use tinyssm_tests::data_dir;
use tinyssm_tools::{convert_dir, WeightDtype};

fn rwkv_dir() -> Option<PathBuf> {
    let d = data_dir().join("rwkv-tiny");
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

fn expected(dir: &std::path::Path, name: &str) -> Vec<f32> {
    let b = std::fs::read(dir.join(format!("expected-logits-{name}.bin"))).unwrap();
    assert_eq!(b.len(), 1024);
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn check(dir: &std::path::Path, name: &str) {
    let want = expected(dir, name);
    for (file, max_tol) in [("FP32", 1e-3f32), ("FP16", 5e-2)] {
        let path = dir.join(format!("tiny-rwkv-{name}-{file}.bin"));
        let w = if file == "FP16" {
            WeightDtype::F16
        } else {
            WeightDtype::F32
        };
        let blob = convert_dir(&path, w).unwrap();
        let buf = AlignedBuf::from_bytes(&blob);
        let m = Model::parse(buf.as_bytes()).unwrap();
        let mut r = Runner::new(m);
        let id = r.open();
        let y = r.feed_tokens(id, &[0x22, 0x69, 0x6e]).unwrap();
        let got = &y[2 * 256..];
        let max = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        let sum: f32 = got.iter().zip(&want).map(|(a, b)| a - b).sum();
        println!("{name} {file}: max |Δ| = {max:.3e}, Σ Δ = {sum:.3e}");
        assert!(
            max <= max_tol,
            "{name} {file}: max |Δlogit| {max} > {max_tol}"
        );
        if file == "FP32" {
            assert!(
                sum.abs() <= 0.00105,
                "{name} FP32: |Σ Δ| {sum} above rwkv.cpp's own bound 0.00105"
            );
        }
    }
}

#[test]
fn rwkv4_matches_rwkv_cpp_expected_logits() {
    let Some(dir) = rwkv_dir() else { return };
    check(&dir, "4v0-660K");
}

#[test]
fn rwkv5_1_matches_rwkv_cpp_expected_logits() {
    let Some(dir) = rwkv_dir() else { return };
    check(&dir, "5v1-730K");
}

#[test]
fn rwkv5_2_matches_rwkv_cpp_expected_logits() {
    let Some(dir) = rwkv_dir() else { return };
    check(&dir, "5v2-730K");
}

#[test]
fn rwkv7_matches_rwkv_cpp_expected_logits() {
    let Some(dir) = rwkv_dir() else { return };
    check(&dir, "7v0-834K");
}

#[test]
fn generate_is_greedy_argmax_and_seeded_sampling_is_reproducible() {
    use tinyssm_tools::generate::{argmax, generate};
    let Some(dir) = rwkv_dir() else { return };
    let blob = convert_dir(&dir.join("tiny-rwkv-5v2-730K-FP32.bin"), WeightDtype::F32).unwrap();
    let buf = AlignedBuf::from_bytes(&blob);
    let m = Model::parse(buf.as_bytes()).unwrap();
    let prompt: Vec<u32> = b"The ".iter().map(|&b| u32::from(b)).collect();
    let greedy = generate(m, &prompt, 12, 0.0, 0).unwrap();
    // The same chain by hand.
    let mut r = Runner::new(m);
    let id = r.open();
    let mut logits = r.feed_tokens(id, &prompt).unwrap().split_off(3 * 256);
    for &t in &greedy {
        assert_eq!(t, argmax(&logits));
        logits = r.feed_tokens(id, &[t]).unwrap();
    }
    let a = generate(m, &prompt, 20, 0.9, 42).unwrap();
    let b = generate(m, &prompt, 20, 0.9, 42).unwrap();
    let c = generate(m, &prompt, 20, 0.9, 43).unwrap();
    assert_eq!(a, b, "same seed, same tokens");
    assert_ne!(a, c, "another seed gives another sample");
    assert!(generate(m, &[], 4, 0.0, 0).is_err());
    assert!(generate(m, &prompt, 4, f32::NAN, 0).is_err());
    assert!(generate(m, &[300], 4, 0.0, 0).is_err());
}

/// RWKV v6: no rwkv.cpp logits ship in the shared data, so the goldens come from an
/// independent float64 numpy reference of the v6 recurrence (tests/goldens/gen_rwkv6.py) on
/// a random-weight model with the real tensor names, converted to rwkv.cpp files by
/// rwkv.cpp's own converter (commit 4358e709). Every step of a 24-token stream is compared.
#[test]
fn rwkv6_matches_independent_reference_every_step() {
    use tinyssm_host::io;
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/rwkv6");
    let tokens = io::read_tokens_npy(&dir.join("tokens.npy")).unwrap();
    let (shape, want) = io::read_f32_npy(&dir.join("logits.npy")).unwrap();
    assert_eq!(shape, vec![tokens.len() as u64, 64]);
    for (file, w, tol) in [
        ("rwkv6-tiny-FP32.bin", WeightDtype::F32, 2e-5f32),
        ("rwkv6-tiny-FP16.bin", WeightDtype::F16, 2e-2),
    ] {
        let blob = convert_dir(&dir.join(file), w).unwrap();
        let buf = AlignedBuf::from_bytes(&blob);
        for k in [Kernels::Reference, Kernels::Fast] {
            let m = Model::parse(buf.as_bytes()).unwrap().with_kernels(k);
            let mut r = Runner::new(m);
            let id = r.open();
            let got = r.feed_tokens(id, &tokens).unwrap();
            let max = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
                .fold(0f32, f32::max);
            println!("v6 {file} {k:?}: max |Δ|/max(1,|ref|) over 24 steps = {max:.3e}");
            assert!(max <= tol, "v6 {file} {k:?}: {max} > {tol}");
        }
    }
}

/// rwkv.cpp's quantized files (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) are dequantized on import. The
/// fixtures were block-quantized by gguf-py (an independent implementation of ggml's formats)
/// and the expected logits come from the float64 reference on gguf-py's dequantized weights.
#[test]
fn rwkv_cpp_quantized_files_dequantize_like_ggml() {
    use tinyssm_host::io;
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/rwkv6");
    let tokens = io::read_tokens_npy(&dir.join("tokens.npy")).unwrap();
    let (_, float) = io::read_f32_npy(&dir.join("logits.npy")).unwrap();
    for q in ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"] {
        let (_, want) = io::read_f32_npy(&dir.join(format!("logits-{q}.npy"))).unwrap();
        let blob = convert_dir(&dir.join(format!("rwkv6-tiny-{q}.bin")), WeightDtype::F32).unwrap();
        let buf = AlignedBuf::from_bytes(&blob);
        let m = Model::parse(buf.as_bytes()).unwrap();
        let mut r = Runner::new(m);
        let id = r.open();
        let got = r.feed_tokens(id, &tokens).unwrap();
        let err = |want: &[f32]| {
            got.iter()
                .zip(want)
                .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
                .fold(0f32, f32::max)
        };
        let (e, e_float) = (err(&want), err(&float));
        println!(
            "{q}: max rel. error vs dequantized reference {e:.3e} (vs float model {e_float:.3e})"
        );
        assert!(e <= 2e-5, "{q}: {e}");
        // The quantization itself must be visible: the test would not notice a
        // dequantizer that returned the float weights otherwise.
        assert!(
            e_float > 1e-2,
            "{q}: no quantization error at all ({e_float})"
        );
    }
}
