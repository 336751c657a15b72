//! Models for the step benchmarks: shapes from the issue, random weights made here with a
//! fixed seed (never committed).

use tinyssm_core::{Arch, Config, DType, HeadKind, Mamba1Config, Model, Role, S4dConfig};
use tinyssm_host::{AlignedBuf, HostError};

/// Sensor S4D: H = 64, N = 64, 4 layers.
pub fn s4d_sensor() -> Config {
    Config {
        front_end: None,
        compute: tinyssm_core::Compute::Float,
        n_layers: 4,
        arch: Arch::S4d(S4dConfig {
            d_input: 3,
            d_model: 64,
            d_state: 64,
            d_output: 10,
            norm_eps: 1e-5,
            prenorm: true,
            glu: true,
            final_norm: true,
            head: HeadKind::Classification,
        }),
    }
}

/// Mamba-1 with `d_model`, `n_layers`, `vocab` (d_inner = 2·d_model, N = 16, K = 4,
/// dt_rank = ⌈d_model/16⌉, tied head, conv bias, no projection biases — mamba-130m's layout).
pub fn mamba1(d_model: u32, n_layers: u32, vocab: u32) -> Config {
    Config {
        front_end: None,
        compute: tinyssm_core::Compute::Float,
        n_layers,
        arch: Arch::Mamba1(Mamba1Config {
            d_model,
            d_inner: 2 * d_model,
            d_state: 16,
            d_conv: 4,
            dt_rank: d_model.div_ceil(16),
            vocab_size: vocab,
            norm_eps: 1e-5,
            in_proj_bias: false,
            conv_bias: true,
            out_proj_bias: false,
            tied_embeddings: true,
        }),
    }
}

/// Small Mamba-1: d_model 256, 4 layers, byte vocabulary.
pub fn mamba1_small() -> Config {
    mamba1(256, 4, 256)
}

/// mamba-130m's shape: d_model 768, 24 layers, vocab 50280.
pub fn mamba_130m() -> Config {
    mamba1(768, 24, 50280)
}

pub fn blob(cfg: &Config, dtype: DType) -> Result<AlignedBuf, HostError> {
    tinyssm_tests::random_blob(cfg, 0x5eed, dtype)
}

/// Bytes of weights one step reads: every tensor except the embedding table, of which one
/// row is read — unless the head is tied, when the whole table is read as the LM head.
pub fn weight_bytes_per_step(m: &Model<'_>) -> u64 {
    let mut total = 0u64;
    for i in 0..m.n_tensors() {
        if let Some(t) = m.tensor(i) {
            let bytes = t.spec.bytes(t.dtype).unwrap_or(0);
            if t.spec.role == Role::Embedding {
                let tied = matches!(
                    m.stack().head.out,
                    tinyssm_core::stack::Out::LmHead { tied: true }
                );
                total += if tied {
                    bytes
                } else {
                    bytes / t.spec.shape[0] as u64
                };
            } else {
                total += bytes;
            }
        }
    }
    total
}

/// The same weights as safetensors in the tensor naming of candle-transformers' Mamba
/// (`backbone.embedding.weight`, `backbone.layers.{i}.mixer.A_log`, ...), with
/// `A_log = ln(-A)`.
pub fn candle_safetensors(m: &Model<'_>) -> Vec<u8> {
    use safetensors::tensor::TensorView;
    use safetensors::Dtype;
    let mut named: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for i in 0..m.n_tensors() {
        let t = m.tensor(i).expect("tensor");
        let vals: Vec<f32> = tinyssm_host::tensor_f32(&t).expect("tensor values");
        let shape: Vec<usize> = t.spec.shape[..t.spec.rank as usize]
            .iter()
            .map(|&d| d as usize)
            .collect();
        let p = t
            .spec
            .layer
            .map(|l| format!("backbone.layers.{l}"))
            .unwrap_or_default();
        let (name, shape, vals) = match t.spec.role {
            Role::Embedding => ("backbone.embedding.weight".to_string(), shape, vals),
            Role::NormF => ("backbone.norm_f.weight".to_string(), shape, vals),
            Role::Norm => (format!("{p}.norm.weight"), shape, vals),
            Role::InProj => (format!("{p}.mixer.in_proj.weight"), shape, vals),
            Role::ConvW => (
                format!("{p}.mixer.conv1d.weight"),
                vec![shape[0], 1, shape[1]],
                vals,
            ),
            Role::ConvB => (format!("{p}.mixer.conv1d.bias"), shape, vals),
            Role::XProj => (format!("{p}.mixer.x_proj.weight"), shape, vals),
            Role::DtProj => (format!("{p}.mixer.dt_proj.weight"), shape, vals),
            Role::DtProjBias => (format!("{p}.mixer.dt_proj.bias"), shape, vals),
            Role::A => (
                format!("{p}.mixer.A_log"),
                shape,
                vals.iter().map(|a| (-a).ln()).collect(),
            ),
            Role::D => (format!("{p}.mixer.D"), shape, vals),
            Role::OutProj => (format!("{p}.mixer.out_proj.weight"), shape, vals),
            r => panic!("unexpected role {r:?} for the candle layout"),
        };
        named.push((
            name,
            shape,
            vals.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ));
    }
    let views: Vec<(String, TensorView<'_>)> = named
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), b).expect("view"),
            )
        })
        .collect();
    safetensors::serialize(views, None).expect("serialize")
}
