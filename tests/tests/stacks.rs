//! Explicit stacks (format 1.5, `Arch::Stack`): mixed block kinds per layer, the gated MLP
//! kind against its NumPy reference, the single-kind models in stack form, and the checks
//! that refuse a bad layer table.

use tinyssm_core::blocks::{MlpAct, MlpBlock, MlpNorm};
use tinyssm_core::list::List;
use tinyssm_core::stack::{Head, Stem};
use tinyssm_core::{
    Arch, Block, Compute, Config, DType, FormatError, Kernels, LayerTable, Model, Role, StackConfig,
};
use tinyssm_host::{io, write_blob, AlignedBuf, HostError, Runner, TensorData};
use tinyssm_tests::{as_stack, configs, fixtures, nmse, random_blob, random_values, Rng};

fn stack_config(stem: Stem, blocks: &[Block], table: &[u8], head: Head, n: u32) -> Config {
    Config {
        n_layers: n,
        arch: Arch::Stack(StackConfig {
            stem,
            layers: LayerTable {
                blocks: List::from_slice(blocks).unwrap(),
                table: List::from_slice(table).unwrap(),
            },
            head,
        }),
        front_end: None,
        compute: Compute::Float,
    }
}

fn run(m: Model<'_>, seed: u64, steps: usize) -> Vec<f32> {
    let mut r = Runner::new(m);
    let id = r.open();
    match m.vocab_size() {
        Some(v) => {
            let toks: Vec<u32> = (0..steps as u32).map(|i| (i * 7 + 3) % v).collect();
            r.feed_tokens(id, &toks).unwrap()
        }
        None => {
            let mut rng = Rng::new(seed);
            let x: Vec<f32> = (0..steps * m.d_input()).map(|_| rng.uniform()).collect();
            r.feed_vectors(id, &x).unwrap()
        }
    }
}

/// `model` fed the golden's `input.npy` against its `expected.npy` with both kernel sets:
/// the largest `|Δ| / max(1, |reference|)` within `tol`.
fn matches_golden(model: Model<'_>, dir: &std::path::Path, what: &str, tol: f32) {
    let (xs, x) = io::read_f32_npy(&dir.join("input.npy")).unwrap();
    let (ys, want) = io::read_f32_npy(&dir.join("expected.npy")).unwrap();
    assert_eq!(xs[0], ys[0]);
    for k in [Kernels::Reference, Kernels::Fast] {
        let mut r = Runner::new(model.with_kernels(k));
        let id = r.open();
        let got = r.feed_vectors(id, &x).unwrap();
        assert_eq!(got.len(), want.len());
        let err = got
            .iter()
            .zip(&want)
            .map(|(g, w)| (g - w).abs() / w.abs().max(1.0))
            .fold(0f32, f32::max);
        println!("{what} stack {k:?}: max |Δ|/max(1,|ref|) = {err:.3e}");
        assert!(err <= tol, "{what} {k:?}: {err:.3e}");
    }
}

/// The gated MLP block kind in a stack of two MLP configurations (RMSNorm + SwiGLU,
/// LayerNorm + GeGLU) whose layer table repeats, against `tests/goldens/gen_mlp.py`
/// (NumPy, float64, from the equations).
#[test]
fn mlp_stack_matches_the_numpy_reference() {
    let dir = fixtures().join("mlp/stack");
    // `tinyssm convert` of the explicit-stack checkpoint the script wrote.
    let blob = tinyssm_tools::convert_dir(&dir, tinyssm_tools::WeightDtype::F32).unwrap();
    assert_eq!(u16::from_le_bytes([blob[6], blob[7]]), 5, "a stack is 1.5");
    let mlp = |d_ffn, norm, act| {
        Block::Mlp(MlpBlock {
            d_model: 8,
            d_ffn,
            norm,
            act,
        })
    };
    let blocks = [
        mlp(12, MlpNorm::Rms { eps: 1e-5 }, MlpAct::Silu),
        mlp(6, MlpNorm::Layer { eps: 1e-5 }, MlpAct::Gelu),
    ];
    let buf = AlignedBuf::from_bytes(&blob);
    let model = Model::parse(buf.as_bytes()).unwrap();
    assert_eq!(model.state_len(), 0, "MLP blocks carry no state");
    for (l, c) in [0, 1, 0].into_iter().enumerate() {
        assert_eq!(
            model.stack().block(l),
            Some(&blocks[c]),
            "the table [0, 1] repeats"
        );
    }
    let text = tinyssm_tools::inspect::render(&tinyssm_tools::inspect::summarize(&model));
    assert!(text.contains("layers         mlp ×3\n"), "{text}");
    matches_golden(model, &dir, "mlp", 1e-5);

    // w8a8: int8 matrices, dynamic and calibrated static activation scales.
    use tinyssm_tools::quantize::{requantize, requantize_static, QuantSpec};
    let spec = QuantSpec {
        weights: DType::I8,
        compute: Compute::W8a8,
        compact: true,
    };
    let float = run(model, 1, 40);
    let dy = requantize(&model, spec).unwrap();
    let samples = {
        let mut rng = Rng::new(1);
        let x: Vec<f32> = (0..40 * model.d_input()).map(|_| rng.uniform()).collect();
        tinyssm_tools::w8a8::sample(&model, std::slice::from_ref(&x)).unwrap()
    };
    let mut plan = tinyssm_tools::w8a8::plan(model.config(), &samples, |_| true).unwrap();
    // Every matrix of every layer (gate, up, down) plus encoder and decoder is observed.
    assert_eq!(plan.len(), 2 + 3 * 3, "{plan:?}");
    for m in &mut plan {
        m.is_static = true;
    }
    let st = requantize_static(&model, spec, &plan).unwrap();
    for (what, b) in [("dynamic", dy), ("static", st)] {
        let b = AlignedBuf::from_bytes(&b);
        let q = Model::parse(b.as_bytes()).unwrap();
        assert_eq!(q.config().compute, Compute::W8a8);
        let e = nmse(&run(q, 1, 40), &float);
        println!("mlp stack w8a8 {what}: NMSE vs float {e:.2e}");
        // int8 activations of 6- to 12-wide vectors: a coarse grid (the shipped models'
        // widths give ~1e-4).
        assert!(e > 0.0 && e < 1e-2, "{what}: {e}");
    }
}

/// The S5 block kind in its three forms — aTENNuate's (real B and C, post LayerNorm, SiLU,
/// no residual), the S5 paper's with zero-order hold (complex B and C, D, pre LayerNorm,
/// GELU, residual) and with the bilinear transform (no norm, no activation) — against
/// `tests/goldens/gen_s5.py` (NumPy, float64, the convolution form from each paper's
/// equations), then as w8a8.
#[test]
fn s5_stack_matches_the_numpy_reference() {
    use tinyssm_core::blocks::{S5Act, S5Block, S5Norm};
    let dir = fixtures().join("s5/stack");
    let blob = tinyssm_tools::convert_dir(&dir, tinyssm_tools::WeightDtype::F32).unwrap();
    let buf = AlignedBuf::from_bytes(&blob);
    let model = Model::parse(buf.as_bytes()).unwrap();
    let s5 = |norm, act, c, residual| {
        Block::S5(S5Block {
            d_model: 6,
            n_modes: 5,
            complex_b: c,
            complex_c: c,
            d_skip: c,
            norm,
            act,
            residual,
        })
    };
    let want_blocks = [
        s5(S5Norm::Post { eps: 1e-5 }, S5Act::Silu, false, false),
        s5(S5Norm::Pre { eps: 1e-5 }, S5Act::Gelu, true, true),
        s5(S5Norm::None, S5Act::None, true, true),
    ];
    for (l, b) in want_blocks.iter().enumerate() {
        assert_eq!(model.stack().block(l), Some(b), "layer {l}");
    }
    assert_eq!(model.state_len(), 3 * 2 * 5, "P complex modes per layer");
    let text = tinyssm_tools::inspect::render(&tinyssm_tools::inspect::summarize(&model));
    assert!(text.contains("layers         s5 ×3\n"), "{text}");
    matches_golden(model, &dir, "s5", 2e-5);
    // w8a8: B̄ and C are matrices (int8 per row), activations int8 with dynamic scales.
    use tinyssm_tools::quantize::{requantize, QuantSpec};
    let spec = QuantSpec {
        weights: DType::I8,
        compute: Compute::W8a8,
        compact: true,
    };
    let float = run(model, 1, 40);
    let q = requantize(&model, spec).unwrap();
    let qb = AlignedBuf::from_bytes(&q);
    let qm = Model::parse(qb.as_bytes()).unwrap();
    assert_eq!(qm.find(Some(1), Role::S5B).unwrap().dtype, DType::I8);
    assert_eq!(qm.find(Some(1), Role::S5Lambda).unwrap().dtype, DType::F32);
    let e = nmse(&run(qm, 1, 40), &float);
    println!("s5 stack w8a8: NMSE vs float {e:.2e}");
    assert!(e > 0.0 && e < 1e-2, "{e}");
}

/// Every single-kind test model written as an explicit stack has the same tensors, buffer
/// sizes and outputs, bit for bit, as its 1.0–1.4 form.
#[test]
fn single_kind_models_as_stacks_are_bit_identical() {
    for (name, c) in configs::all() {
        let s = as_stack(&c);
        for (dt, compute) in [(DType::F32, Compute::Float), (DType::I8, Compute::W8a8)] {
            let (c, s) = (Config { compute, ..c }, Config { compute, ..s });
            let (a, b) = (
                random_blob(&c, 7, dt).unwrap(),
                random_blob(&s, 7, dt).unwrap(),
            );
            assert_eq!(b.as_bytes()[6], 5, "{name}");
            let (ma, mb) = (
                Model::parse(a.as_bytes()).unwrap(),
                Model::parse(b.as_bytes()).unwrap(),
            );
            assert_eq!(ma.n_tensors(), mb.n_tensors(), "{name}");
            for i in 0..ma.n_tensors() {
                assert_eq!(ma.tensor(i).unwrap().spec, mb.tensor(i).unwrap().spec);
            }
            assert_eq!(
                (ma.state_len(), ma.scratch_len()),
                (mb.state_len(), mb.scratch_len())
            );
            assert_eq!(ma.macs_per_step(), mb.macs_per_step(), "{name}");
            let (ya, yb) = (run(ma, 3, 12), run(mb, 3, 12));
            assert!(ya.iter().all(|v| v.is_finite()), "{name}");
            assert_eq!(
                ya.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                yb.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "{name} {compute:?}"
            );
        }
    }
}

/// S4D and gated MLP layers interleaved ([s4d, mlp, s4d]): each S4D layer reads its own
/// tensors and state slice. With the MLP's down projection zero, the stack computes
/// exactly the two-layer S4D model, bit for bit; with it random, outputs change.
#[test]
fn mixed_kinds_keep_each_layers_tensors_and_state() {
    let s4d = Config {
        n_layers: 2,
        ..configs::s4d()
    };
    let base = random_blob(&s4d, 11, DType::F32).unwrap();
    let mb = Model::parse(base.as_bytes()).unwrap();
    let st = s4d.stack();
    let d = st.d_model();
    let mlp = Block::Mlp(MlpBlock {
        d_model: d,
        d_ffn: 2 * d,
        norm: MlpNorm::Rms { eps: 1e-5 },
        act: MlpAct::Silu,
    });
    let mixed = stack_config(st.stem, &[st.blocks()[0], mlp], &[0, 1, 0], st.head, 3);
    let build = |zero_down: bool| {
        let mut rng = Rng::new(5);
        let blob = write_blob(&mixed, |spec| -> Result<TensorData, HostError> {
            let from = match spec.layer {
                None => Some(None),
                Some(0) => Some(Some(0)),
                Some(2) => Some(Some(1)),
                _ => None,
            };
            Ok(TensorData::F32(match from {
                Some(l) => tinyssm_host::tensor_f32(&mb.find(l, spec.role).unwrap()).unwrap(),
                None if zero_down && spec.role == Role::MlpDown => {
                    vec![0.0; spec.numel().unwrap() as usize]
                }
                None => random_values(spec, &mut rng),
            }))
        })
        .unwrap();
        AlignedBuf::from_bytes(&blob)
    };
    let (zero, live) = (build(true), build(false));
    let (mz, ml) = (
        Model::parse(zero.as_bytes()).unwrap(),
        Model::parse(live.as_bytes()).unwrap(),
    );
    let sum = tinyssm_tools::inspect::summarize(&ml);
    assert_eq!(sum.architecture, "stack");
    assert_eq!(sum.layers, ["s4d", "mlp", "s4d"]);
    let text = tinyssm_tools::inspect::render(&sum);
    assert!(text.contains("layers         s4d, mlp, s4d\n"), "{text}");
    assert!(text.contains("format v1.5"), "{text}");
    assert_eq!(mz.state_len(), mb.state_len(), "the MLP layer has no state");
    let want = run(mb, 9, 30);
    for k in [Kernels::Reference, Kernels::Fast] {
        let y = run(mz.with_kernels(k), 9, 30);
        let w = run(mb.with_kernels(k), 9, 30);
        assert_eq!(y, w, "{k:?}");
    }
    let y = run(ml, 9, 30);
    assert_ne!(y, want);
    assert!(y.iter().all(|v| v.is_finite()));
    // Integer mode is refused for a mixed stack, naming the kind without one.
    let e = Config {
        compute: Compute::Int,
        ..mixed
    }
    .validate()
    .unwrap_err();
    assert_eq!(
        e,
        FormatError::ModeUnsupported {
            block: "mlp",
            mode: "int"
        }
    );
}

/// Layer tables that cannot be stepped are refused at parse, with the reason.
#[test]
fn bad_layer_tables_are_refused() {
    let st = configs::s4d().stack();
    let s = st.blocks()[0];
    let mlp = |d_model| {
        Block::Mlp(MlpBlock {
            d_model,
            d_ffn: 8,
            norm: MlpNorm::Layer { eps: 1e-5 },
            act: MlpAct::Gelu,
        })
    };
    let d = st.d_model();
    let msg = |blocks: &[Block], table: &[u8]| {
        stack_config(st.stem, blocks, table, st.head, 4)
            .validate()
            .unwrap_err()
            .to_string()
    };
    assert!(msg(&[s, mlp(d)], &[0, 2]).contains("does not exist"));
    assert!(msg(&[s, mlp(d)], &[0, 0]).contains("must be used"));
    assert!(msg(&[s, mlp(d + 1)], &[0, 1]).contains("same d_model"));
    // RWKV v7 carries its layer-0 value residual in the block scratch across layers.
    let r7 = configs::rwkv7().stack();
    let e = stack_config(
        r7.stem,
        &[r7.blocks()[0], mlp(r7.d_model())],
        &[0, 1],
        r7.head,
        2,
    )
    .validate()
    .unwrap_err();
    assert_eq!(e, FormatError::BlockAlone { block: "rwkv7" });
    // Integer mode: one configuration throughout, even of a kind that has it.
    let two_s4d = stack_config(
        st.stem,
        &[
            s,
            Block::S4d(tinyssm_core::blocks::s4d::S4dBlock {
                d_model: d,
                d_state: 4,
                norm_eps: 1e-5,
                prenorm: false,
                glu: false,
            }),
        ],
        &[0, 1],
        st.head,
        2,
    );
    two_s4d.validate().unwrap();
    let e = Config {
        compute: Compute::Int,
        ..two_s4d
    }
    .validate()
    .unwrap_err();
    assert!(e.to_string().contains("one block configuration"), "{e}");
    // The header postcard refuses more configurations or table entries than fit.
    let ok = stack_config(st.stem, &[s, mlp(d)], &[0, 1], st.head, 2);
    assert!(
        List::<Block, { tinyssm_core::blocks::MAX_BLOCK_CONFIGS }>::from_slice(&[s; 5]).is_none()
    );
    assert!(List::<u8, { tinyssm_core::blocks::MAX_LAYER_TABLE }>::from_slice(&[0; 33]).is_none());
    // A stack header under a 1.4 minor is malformed.
    let mut rng = Rng::new(3);
    let blob = write_blob(&ok, |spec| -> Result<TensorData, HostError> {
        Ok(TensorData::F32(random_values(spec, &mut rng)))
    })
    .unwrap();
    let mut old = blob.clone();
    old[6..8].copy_from_slice(&4u16.to_le_bytes());
    let e = Model::parse_skip_crc(AlignedBuf::from_bytes(&old).as_bytes()).unwrap_err();
    assert_eq!(e, FormatError::BadHeader);
    Model::parse(AlignedBuf::from_bytes(&blob).as_bytes()).unwrap();
}

/// The explicit-stack importer refuses what it cannot build with the reason: a missing
/// tensor (named), a tensor the stack does not use, an unknown block kind, a bad table.
#[test]
fn stack_checkpoints_with_errors_are_refused_clearly() {
    let src = fixtures().join("mlp/stack");
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    let try_with = |edit: &dyn Fn(&mut serde_json::Value)| {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::copy(
            src.join("model.safetensors"),
            tmp.path().join("model.safetensors"),
        )
        .unwrap();
        let mut c = cfg.clone();
        edit(&mut c);
        std::fs::write(tmp.path().join("config.json"), c.to_string()).unwrap();
        tinyssm_tools::convert_dir(tmp.path(), tinyssm_tools::WeightDtype::F16)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    try_with(&|_| {}).unwrap();
    let e = try_with(&|c| c["n_layers"] = 4.into()).unwrap_err();
    assert!(e.contains("layers.3.norm"), "{e}");
    let e = try_with(&|c| c["n_layers"] = 2.into()).unwrap_err();
    assert!(
        e.contains("layers.2.") && e.contains("not part of the stack"),
        "{e}"
    );
    let e = try_with(&|c| {
        c["stack"]["layers"]["blocks"][0] = serde_json::json!({"Attention": {"d_model": 8}})
    })
    .unwrap_err();
    assert!(e.contains("`stack`") && e.contains("Attention"), "{e}");
    let e = try_with(&|c| c["stack"]["layers"]["table"] = serde_json::json!([0, 2])).unwrap_err();
    assert!(e.contains("does not exist"), "{e}");
}
