//! Importer behaviour beyond the happy path: sharded checkpoints, and robustness of the
//! converter against corrupt configs and tensor files (never a panic).

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use safetensors::tensor::TensorView;
use tinyssm_tools::{convert_dir, WeightDtype};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(name)
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
    }
}

#[test]
fn sharded_checkpoint_converts_to_the_same_blob() {
    for name in [
        "hf/mamba1-s16-k3-bias-untied",
        "hf/mamba2-g2-s32-k3-bias-tied",
    ] {
        let src = fixture(name);
        let whole = convert_dir(&src, WeightDtype::F32).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        std::fs::copy(src.join("config.json"), d.join("config.json")).unwrap();
        let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let mut names: Vec<String> = st.names().into_iter().map(String::from).collect();
        names.sort();
        let half = names.len() / 2;
        let mut map = serde_json::Map::new();
        for (i, part) in [&names[..half], &names[half..]].into_iter().enumerate() {
            let file = format!("model-0000{}-of-00002.safetensors", i + 1);
            let views: Vec<(String, TensorView<'_>)> = part
                .iter()
                .map(|n| {
                    let t = st.tensor(n).unwrap();
                    (
                        n.clone(),
                        TensorView::new(t.dtype(), t.shape().to_vec(), t.data()).unwrap(),
                    )
                })
                .collect();
            safetensors::serialize_to_file(views, None, &d.join(&file)).unwrap();
            for n in part {
                map.insert(n.clone(), serde_json::Value::String(file.clone()));
            }
        }
        let index = serde_json::json!({ "metadata": {}, "weight_map": map });
        std::fs::write(d.join("model.safetensors.index.json"), index.to_string()).unwrap();
        let sharded = convert_dir(d, WeightDtype::F32).unwrap();
        assert!(sharded == whole, "{name}: sharded conversion differs");
        // An index naming a path outside the directory is refused.
        let bad = serde_json::json!({ "weight_map": { "x": "../model.safetensors" } });
        std::fs::write(d.join("model.safetensors.index.json"), bad.to_string()).unwrap();
        let e = convert_dir(d, WeightDtype::F32).unwrap_err().to_string();
        assert!(e.contains("not a plain file name"), "{e}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn corrupt_checkpoints_never_panic(
        which in 0usize..3,
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        target_config in any::<bool>(),
        cut in proptest::option::of(any::<usize>()),
    ) {
        let src = fixture(["hf/mamba1-s8-k4-tied", "hf/mamba2-g2-s16-k4-clamp", "s4d/s4d-glu-prenorm"][which]);
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("ck");
        copy_dir(&src, &d);
        let f = d.join(if target_config { "config.json" } else { "model.safetensors" });
        let mut b = std::fs::read(&f).unwrap();
        for (i, x) in flips {
            let n = b.len();
            // Bias towards the safetensors JSON header, where the structure is.
            let i = if target_config { i % n } else { i % n.min(2048) };
            b[i] ^= x.max(1);
        }
        if let Some(c) = cut {
            let n = b.len();
            b.truncate(c % n);
        }
        std::fs::write(&f, &b).unwrap();
        let _ = convert_dir(&d, WeightDtype::F32);
        let _ = convert_dir(&d, WeightDtype::F16);
    }
}
