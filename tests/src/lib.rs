//! Shared helpers for the cross-crate tests.

use std::path::PathBuf;

use tinyssm_core::{Compute, Config, DType, Role, TensorSpec};
use tinyssm_host::{write_blob, AlignedBuf, HostError, TensorData};

/// Root of the repository.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Committed fixtures (`tests/fixtures`).
pub fn fixtures() -> PathBuf {
    repo_root().join("tests").join("fixtures")
}

/// The shared data folder: `TINYSSM_DATA`, default `../shared/data` beside the repo.
pub fn data_dir() -> PathBuf {
    std::env::var_os("TINYSSM_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("..").join("shared").join("data"))
}

/// Small deterministic PRNG (xorshift64*), so fixtures need no extra crate.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [-1, 1).
    pub fn uniform(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

/// Random but well-behaved values for a tensor of the given role.
pub fn random_values(spec: &TensorSpec, rng: &mut Rng) -> Vec<f32> {
    let n = spec.numel().unwrap_or(0) as usize;
    let fan_in = if spec.rank >= 2 {
        spec.shape[1].max(1) as f32
    } else {
        1.0
    };
    (0..n)
        .map(|_| {
            let u = rng.uniform();
            match spec.role {
                Role::Norm | Role::NormF | Role::GatedNorm | Role::Norm2 | Role::Ln0 => {
                    1.0 + 0.1 * u
                }
                // v4 stores w = -exp(decay) (rank 1), v5 w = exp(-exp(decay)) in (0, 1) (rank 2).
                Role::TimeDecay if spec.rank == 2 => 0.1 + 0.85 * u.abs(),
                Role::TimeDecay => -(0.05 + 2.0 * u.abs()),
                Role::AttMixK | Role::AttMixV | Role::AttMixR | Role::FfnMixK | Role::FfnMixR => {
                    0.5 + 0.5 * u
                }
                Role::A => -(0.5 + 4.0 * (u + 1.0)),
                Role::DA => 0.9 * u.abs().max(0.1),
                Role::D | Role::DtBias => 0.5 * u,
                Role::DtProjBias => -3.0 + u,
                Role::Embedding => u,
                _ => u * 1.7 / fan_in.sqrt(),
            }
        })
        .collect()
}

/// Builds a valid blob with random weights for `config`, its matrices in `matrices`
/// (int8/int4 quantized from the random values; `dt_proj` f16 under int8 and int4, as the
/// converter stores it).
pub fn random_blob(config: &Config, seed: u64, matrices: DType) -> Result<AlignedBuf, HostError> {
    random_blob_mode(config, seed, (matrices, Compute::Float))
}

/// [`random_blob`] with a compute mode.
pub fn random_blob_mode(
    config: &Config,
    seed: u64,
    (matrices, compute): (DType, Compute),
) -> Result<AlignedBuf, HostError> {
    let mut rng = Rng::new(seed);
    let mut config = *config;
    config.compute = compute;
    let blob = write_blob(&config, |spec| -> Result<TensorData, HostError> {
        let v = random_values(spec, &mut rng);
        // The converter's precision policy (dt_proj stays f16 under int8 and int4).
        let dt = if spec.role.is_matrix() {
            tinyssm_tools::quantize::matrix_dtype(spec.role, matrices)
        } else {
            DType::F32
        };
        if dt == DType::I8S {
            // Static activation scales: a random input bound.
            let xmax = 0.25 + 4.0 * rng.uniform().abs();
            return TensorData::encode(v, DType::I8, spec)?.with_input_bound(xmax);
        }
        TensorData::encode(v, dt, spec)
    })?;
    Ok(AlignedBuf::from_bytes(&blob))
}

/// The same model in format 1.5 stack form: its own input stage, layer table and head
/// under an explicit `Arch::Stack` header (everything else unchanged).
pub fn as_stack(c: &Config) -> Config {
    let s = c.stack();
    Config {
        arch: tinyssm_core::Arch::Stack(tinyssm_core::StackConfig {
            stem: s.stem,
            layers: s.layers,
            head: s.head,
        }),
        ..*c
    }
}

/// Normalised mean squared error `Σ (got − want)² / Σ want²`.
pub fn nmse(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len());
    let num: f64 = got
        .iter()
        .zip(want)
        .map(|(g, w)| ((g - w) as f64).powi(2))
        .sum();
    let den: f64 = want.iter().map(|w| (*w as f64).powi(2)).sum();
    num / den.max(1e-30)
}

/// Every storage dtype of weight matrices with the compute modes it runs in.
pub const MODES: [(DType, Compute); 7] = [
    (DType::F32, Compute::Float),
    (DType::F16, Compute::Float),
    (DType::Bf16, Compute::Float),
    (DType::I8, Compute::Float),
    (DType::I4, Compute::Float),
    (DType::I8, Compute::W8a8),
    (DType::I8S, Compute::W8a8),
];

/// A few small configurations covering every architecture and option.
pub mod configs {
    use tinyssm_core::{
        Arch, Config, HeadKind, Mamba1Config, Mamba2Config, MambaSensorConfig, Rwkv5Config,
        Rwkv6Config, Rwkv7Config, RwkvConfig, S4dConfig,
    };

    /// The single-kind configuration inside [`mamba1`] (tests edit a copy and wrap it).
    pub fn mamba1_config() -> Mamba1Config {
        Mamba1Config {
            d_model: 24,
            d_inner: 48,
            d_state: 8,
            d_conv: 4,
            dt_rank: 3,
            vocab_size: 40,
            norm_eps: 1e-5,
            in_proj_bias: true,
            conv_bias: true,
            out_proj_bias: false,
            tied_embeddings: false,
        }
    }
    pub fn mamba1() -> Config {
        Config {
            front_end: None,
            compute: tinyssm_core::Compute::Float,
            n_layers: 2,
            arch: Arch::Mamba1(mamba1_config()),
        }
    }
    /// The single-kind configuration inside [`mamba2`] (tests edit a copy and wrap it).
    pub fn mamba2_config() -> Mamba2Config {
        Mamba2Config {
            d_model: 16,
            d_inner: 32,
            d_state: 8,
            d_conv: 3,
            n_heads: 4,
            head_dim: 8,
            n_groups: 2,
            vocab_size: 30,
            norm_eps: 1e-5,
            dt_min: 0.0,
            dt_max: f32::INFINITY,
            norm_group_size: 16,
            in_proj_bias: false,
            conv_bias: true,
            out_proj_bias: true,
            tied_embeddings: true,
        }
    }
    pub fn mamba2() -> Config {
        Config {
            front_end: None,
            compute: tinyssm_core::Compute::Float,
            n_layers: 2,
            arch: Arch::Mamba2(mamba2_config()),
        }
    }
    /// The single-kind configuration inside [`s4d`] (tests edit a copy and wrap it).
    pub fn s4d_config() -> S4dConfig {
        S4dConfig {
            d_input: 3,
            d_model: 12,
            d_state: 8,
            d_output: 4,
            norm_eps: 1e-5,
            prenorm: true,
            glu: true,
            final_norm: true,
            head: HeadKind::Classification,
        }
    }
    pub fn s4d() -> Config {
        Config {
            front_end: None,
            compute: tinyssm_core::Compute::Float,
            n_layers: 2,
            arch: Arch::S4d(s4d_config()),
        }
    }
    pub fn rwkv4() -> Config {
        Config {
            front_end: None,
            compute: tinyssm_core::Compute::Float,
            n_layers: 2,
            arch: Arch::Rwkv4(RwkvConfig {
                d_model: 24,
                d_ffn: 40,
                vocab_size: 50,
                norm_eps: 1e-5,
            }),
        }
    }
    pub fn rwkv5(gated: bool) -> Config {
        Config {
            front_end: None,
            compute: tinyssm_core::Compute::Float,
            n_layers: 2,
            arch: Arch::Rwkv5(Rwkv5Config {
                d_model: 24,
                d_ffn: 40,
                vocab_size: 50,
                n_heads: 3,
                head_size: 8,
                gated,
                norm_eps: 1e-5,
                group_norm_eps: 1e-5,
            }),
        }
    }
    /// The single-kind configuration inside [`mamba_sensor`] (tests edit a copy and wrap it).
    pub fn mamba_sensor_config() -> MambaSensorConfig {
        MambaSensorConfig {
            d_input: 5,
            d_output: 3,
            d_model: 16,
            d_inner: 32,
            d_state: 8,
            d_conv: 4,
            dt_rank: 2,
            norm_eps: 1e-5,
            in_proj_bias: false,
            conv_bias: true,
            out_proj_bias: false,
        }
    }
    pub fn mamba_sensor() -> Config {
        Config {
            front_end: None,
            compute: tinyssm_core::Compute::Float,
            n_layers: 2,
            arch: Arch::MambaSensor(mamba_sensor_config()),
        }
    }
    pub fn rwkv6() -> Config {
        Config {
            front_end: None,
            compute: tinyssm_core::Compute::Float,
            n_layers: 2,
            arch: Arch::Rwkv6(Rwkv6Config {
                d_model: 24,
                d_ffn: 40,
                vocab_size: 50,
                n_heads: 3,
                head_size: 8,
                d_lora_mix: 4,
                d_lora_decay: 6,
                norm_eps: 1e-5,
                group_norm_eps: 64e-5,
            }),
        }
    }
    pub fn rwkv7() -> Config {
        Config {
            front_end: None,
            compute: tinyssm_core::Compute::Float,
            n_layers: 3,
            arch: Arch::Rwkv7(Rwkv7Config {
                d_model: 24,
                d_ffn: 40,
                vocab_size: 50,
                head_size: 8,
                d_lora_w: 6,
                d_lora_a: 6,
                d_lora_v: 4,
                d_lora_g: 5,
                norm_eps: 1e-5,
                group_norm_eps: 64e-5,
            }),
        }
    }
    pub fn all() -> Vec<(&'static str, Config)> {
        vec![
            ("mamba1", mamba1()),
            ("mamba2", mamba2()),
            ("s4d", s4d()),
            ("mamba-sensor", mamba_sensor()),
            ("rwkv4", rwkv4()),
            ("rwkv5.1", rwkv5(false)),
            ("rwkv5.2", rwkv5(true)),
            ("rwkv6", rwkv6()),
            ("rwkv7", rwkv7()),
        ]
    }
}

pub mod layouts;
pub mod qemu;
