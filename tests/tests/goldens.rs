//! Goldens from independent references (scripts in `tests/goldens/`, fixtures in
//! `tests/fixtures/`): HF `transformers` Mamba/Mamba-2 logits on random-init models, and an
//! S4D convolution-mode reference written from the paper's equations.

use std::path::{Path, PathBuf};

use tinyssm_core::{Kernels, Model};
use tinyssm_host::{io, AlignedBuf, Runner};
use tinyssm_tests::{fixtures, nmse};
use tinyssm_tools::{convert_dir, WeightDtype};

fn dirs(sub: &str) -> Vec<PathBuf> {
    let root = fixtures().join(sub);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (fixtures are committed; regenerate with tests/goldens/)",
                root.display()
            )
        })
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("config.json").is_file())
        .collect();
    v.sort();
    v
}

fn load(dir: &Path, w: WeightDtype) -> AlignedBuf {
    let blob =
        convert_dir(dir, w).unwrap_or_else(|e| panic!("{}: convert failed: {e}", dir.display()));
    AlignedBuf::from_bytes(&blob)
}

/// max over elements of |got - want| / max(1, |want|).
fn max_scaled_err(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len());
    got.iter()
        .zip(want)
        .map(|(g, w)| {
            assert!(g.is_finite(), "non-finite output");
            (g - w).abs() / w.abs().max(1.0)
        })
        .fold(0.0, f32::max)
}

fn run_tokens(m: Model<'_>, tokens: &[u32]) -> Vec<f32> {
    let mut r = Runner::new(m);
    let id = r.open();
    r.feed_tokens(id, tokens).unwrap()
}

#[test]
fn hf_mamba_and_mamba2_match_transformers_every_step() {
    let ds = dirs("hf");
    let n1 = ds
        .iter()
        .filter(|d| {
            d.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("mamba1")
        })
        .count();
    let n2 = ds
        .iter()
        .filter(|d| {
            d.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("mamba2")
        })
        .count();
    assert!(
        n1 >= 3 && n2 >= 3,
        "expected >= 3 Mamba-1 and >= 3 Mamba-2 fixtures, found {n1} and {n2}"
    );
    for dir in ds {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let tokens = io::read_tokens_npy(&dir.join("input_ids.npy")).unwrap();
        let (shape, want) = io::read_f32_npy(&dir.join("logits.npy")).unwrap();
        assert!(
            tokens.len() >= 48,
            "{name}: golden sequence must have >= 48 tokens"
        );
        assert_eq!(shape[0] as usize, tokens.len());
        let buf = load(&dir, WeightDtype::F32);
        let model = Model::parse(buf.as_bytes()).unwrap();
        assert_eq!(model.d_output() as u64, shape[1], "{name}: vocab");
        for k in [Kernels::Reference, Kernels::Fast] {
            let got = run_tokens(model.with_kernels(k), &tokens);
            let err = max_scaled_err(&got, &want);
            println!("{name} {k:?}: max |Δ|/max(1,|ref|) = {err:.3e}");
            assert!(
                err <= 1e-4,
                "{name} {k:?}: max scaled error {err:.3e} > 1e-4"
            );
        }
        // f16 weight matrices: same model, reduced-precision storage.
        let buf16 = load(&dir, WeightDtype::F16);
        let m16 = Model::parse(buf16.as_bytes()).unwrap();
        let got = run_tokens(m16, &tokens);
        let e = nmse(&got, &want);
        println!("{name} f16 weights: NMSE {e:.3e}");
        assert!(e < 1e-4, "{name} f16 weights: NMSE {e:.3e}");
    }
}

#[test]
fn s4d_recurrence_matches_convolution_reference() {
    let ds = dirs("s4d");
    assert!(
        ds.len() >= 3,
        "expected >= 3 S4D fixtures, found {}",
        ds.len()
    );
    for dir in ds {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let (xs, x) = io::read_f32_npy(&dir.join("input.npy")).unwrap();
        let (ys, want) = io::read_f32_npy(&dir.join("expected.npy")).unwrap();
        assert_eq!(xs[0], ys[0]);
        let buf = load(&dir, WeightDtype::F32);
        let model = Model::parse(buf.as_bytes()).unwrap();
        assert_eq!(model.d_input() as u64, xs[1]);
        assert_eq!(model.d_output() as u64, ys[1]);
        for k in [Kernels::Reference, Kernels::Fast] {
            let mut r = Runner::new(model.with_kernels(k));
            let id = r.open();
            let got = r.feed_vectors(id, &x).unwrap();
            let err = max_scaled_err(&got, &want);
            println!("{name} {k:?}: max |Δ|/max(1,|ref|) = {err:.3e}");
            assert!(
                err <= 1e-4,
                "{name} {k:?}: max scaled error {err:.3e} > 1e-4"
            );
        }
    }
}

/// A vector model (encoder → the LM's Mamba-1 blocks → RMSNorm → decoder, the layout of the
/// sensor Mamba, as a format 1.5 stack; `tests/tests/stacks.rs` shows the sensor form and its
/// stack form bit-identical) against the same HF goldens: with the embedding as the encoder
/// (fed one-hot tokens) and the LM head as the decoder it is the language model, so it must
/// reproduce transformers' logits — and the core's own Mamba-1 LM outputs bit for bit (a
/// one-hot product adds exact zeros).
#[test]
fn the_lm_as_a_vector_model_on_one_hot_inputs() {
    use tinyssm_core::stack::{Head, Out, Stem};
    use tinyssm_core::{Arch, Config, Role, StackConfig};
    use tinyssm_host::{write_blob, HostError, TensorData};
    let mut n = 0;
    for dir in dirs("hf").into_iter().filter(|d| {
        d.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("mamba1")
    }) {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let tokens = io::read_tokens_npy(&dir.join("input_ids.npy")).unwrap();
        let (_, want) = io::read_f32_npy(&dir.join("logits.npy")).unwrap();
        let buf = load(&dir, WeightDtype::F32);
        let lm = Model::parse(buf.as_bytes()).unwrap();
        // The LM's own blocks and final norm; an encoder stem and a decoder head over the
        // vocabulary instead of the embedding and the LM head (format 1.5 stack form).
        let s = lm.config().stack();
        let Stem::Embedding { vocab } = s.stem else {
            panic!("{name}: not a token model")
        };
        let Out::LmHead { tied } = s.head.out else {
            panic!("{name}: no LM head")
        };
        let (v, dm) = (
            vocab as usize,
            s.layers.blocks.as_slice()[0].d_model() as usize,
        );
        let cfg = Config {
            arch: Arch::Stack(StackConfig {
                stem: Stem::Encoder { d_input: vocab },
                layers: s.layers,
                head: Head {
                    norm: s.head.norm,
                    out: Out::Decoder { d_output: vocab },
                },
            }),
            ..*lm.config()
        };
        let f32s = |layer, role| -> Vec<f32> {
            tinyssm_host::tensor_f32(&lm.find(layer, role).unwrap()).unwrap()
        };
        let emb = f32s(None, Role::Embedding);
        let blob = write_blob(&cfg, |spec| -> Result<TensorData, HostError> {
            Ok(TensorData::F32(match (spec.layer, spec.role) {
                (None, Role::Encoder) => {
                    // [d_model, vocab] = embeddingᵀ
                    let mut t = vec![0f32; dm * v];
                    for tok in 0..v {
                        for i in 0..dm {
                            t[i * v + tok] = emb[tok * dm + i];
                        }
                    }
                    t
                }
                (None, Role::EncoderBias) => vec![0.0; dm],
                (None, Role::DecoderBias) => vec![0.0; v],
                (None, Role::Decoder) if tied => emb.clone(),
                (None, Role::Decoder) => f32s(None, Role::LmHead),
                (layer, role) => f32s(layer, role),
            }))
        })
        .unwrap();
        let sbuf = tinyssm_host::AlignedBuf::from_bytes(&blob);
        let sensor = Model::parse(sbuf.as_bytes()).unwrap();
        assert_eq!(sensor.state_len(), lm.state_len());
        let mut onehot = vec![0f32; tokens.len() * v];
        for (t, &tok) in tokens.iter().enumerate() {
            onehot[t * v + tok as usize] = 1.0;
        }
        let mut r = Runner::new(sensor);
        let id = r.open();
        let got = r.feed_vectors(id, &onehot).unwrap();
        assert_eq!(
            got,
            run_tokens(lm, &tokens),
            "{name}: not bit-identical to the LM"
        );
        let err = max_scaled_err(&got, &want);
        println!("{name} as mamba-sensor: max |Δ|/max(1,|ref|) = {err:.3e}");
        assert!(err <= 1e-4);
        n += 1;
    }
    assert!(n >= 3);
}
