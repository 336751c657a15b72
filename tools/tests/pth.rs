//! RWKV PyTorch checkpoints (`.pth`): converted like rwkv.cpp's own converter converts them,
//! and corrupt archives are errors, never panics.

use std::path::{Path, PathBuf};

use tinyssm_core::Model;
use tinyssm_host::{AlignedBuf, Runner};
use tinyssm_tools::{convert_dir, WeightDtype};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn logits(blob: &[u8], tokens: &[u32]) -> Vec<f32> {
    let buf = AlignedBuf::from_bytes(blob);
    let m = Model::parse(buf.as_bytes()).unwrap();
    let mut r = Runner::new(m);
    let id = r.open();
    r.feed_tokens(id, tokens).unwrap()
}

/// Each checkpoint (f32, f16 and bf16 storage; gen_rwkv_pth.py / gen_rwkv6.py) against the
/// FP32 rwkv.cpp file rwkv.cpp's converter made from it: the same model, step for step.
#[test]
fn pth_converts_like_rwkv_cpp_converter() {
    let tokens: Vec<u32> = (0..20).map(|i| (i * 37 + 5) % 64).collect();
    let cases = [
        ("rwkv-pth/rwkv-v4", "rwkv4", false),
        ("rwkv-pth/rwkv-v5.1", "rwkv5.1", false),
        ("rwkv-pth/rwkv-v5.2", "rwkv5.2", true),
        ("rwkv6/rwkv6-tiny", "rwkv6", true),
        ("rwkv-pth/rwkv-v7", "rwkv7", true),
    ];
    for (stem, arch, exact) in cases {
        let pth = fixtures().join(format!("{stem}.pth"));
        let bin = fixtures().join(format!("{stem}-FP32.bin"));
        let a = convert_dir(&pth, WeightDtype::F32).unwrap();
        let b = convert_dir(&bin, WeightDtype::F32).unwrap();
        let buf = AlignedBuf::from_bytes(&a);
        let s = tinyssm_tools::inspect::summarize(&Model::parse(buf.as_bytes()).unwrap());
        assert_eq!(s.architecture, arch, "{stem}");
        if exact {
            // No transcendental transform involved: the blobs must be identical.
            assert!(a == b, "{stem}: blobs differ");
        }
        let (ya, yb) = (logits(&a, &tokens), logits(&b, &tokens));
        let max = ya
            .iter()
            .zip(&yb)
            .map(|(x, y)| (x - y).abs() / y.abs().max(1.0))
            .fold(0f32, f32::max);
        println!("{stem}: .pth vs rwkv.cpp file, max rel. logit difference {max:.2e}");
        assert!(max <= 1e-5, "{stem}: {max}");
        // f16 weights from a checkpoint work too.
        assert!(convert_dir(&pth, WeightDtype::F16).is_ok());
    }
}

#[test]
fn corrupt_pth_is_an_error_not_a_panic() {
    let src = fixtures().join("rwkv-pth/rwkv-v5.2.pth");
    let b = std::fs::read(&src).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.pth");
    let check = |bytes: &[u8], what: &str| {
        std::fs::write(&p, bytes).unwrap();
        if let Err(e) = convert_dir(&p, WeightDtype::F32) {
            let msg = e.to_string();
            assert!(!msg.is_empty() && !msg.contains('\n'), "{what}: {msg}");
        }
    };
    for n in (4..b.len()).step_by(211) {
        check(&b[..n], "truncated");
    }
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    for _ in 0..400 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mut c = b.clone();
        let i = 4 + (x as usize) % (c.len() - 4);
        c[i] ^= (x >> 32) as u8 | 1;
        check(&c, "flipped");
    }
    // A truncated archive is an error with a clear message.
    std::fs::write(&p, &b[..b.len() / 2]).unwrap();
    let e = convert_dir(&p, WeightDtype::F32).unwrap_err().to_string();
    assert!(e.contains("PyTorch checkpoint"), "{e}");
}

/// Found by fuzzing (fuzz/regressions/pth/pickle-string-len-oom): an archive whose pickle
/// holds a string opcode claiming 4 GiB made candle-core's reader allocate it; the importer's
/// pre-scan of the pickle refuses it from the lengths, with nothing allocated.
#[test]
fn a_pickle_string_longer_than_the_pickle_is_refused() {
    let p = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/regressions/pth/pickle-string-len-oom");
    let e = tinyssm_tools::import::pth::read_state_dict(&p)
        .unwrap_err()
        .to_string();
    assert!(e.contains("remain in the pickle"), "{e}");
}
