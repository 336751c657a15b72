//! Model configuration (stored in the blob header) and the canonical tensor layout that
//! follows from it. The writer (host side) and the parser share this one definition.

use serde::{Deserialize, Serialize};

use crate::error::FormatError;
use crate::frontend::FrontEndConfig;

/// Largest supported causal-conv kernel width.
pub const MAX_D_CONV: u32 = 16;
/// Largest supported number of layers.
pub const MAX_LAYERS: u32 = 1024;

/// Mamba-1 block configuration (HF `MambaConfig` semantics).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Mamba1Config {
    pub d_model: u32,
    pub d_inner: u32,
    pub d_state: u32,
    pub d_conv: u32,
    pub dt_rank: u32,
    pub vocab_size: u32,
    pub norm_eps: f32,
    pub in_proj_bias: bool,
    pub conv_bias: bool,
    pub out_proj_bias: bool,
    /// LM head shares the embedding matrix.
    pub tied_embeddings: bool,
}

/// A Mamba-1 stack on sensor vectors: a linear encoder instead of the embedding, the
/// Mamba-1 blocks (HF semantics), the final RMSNorm and a linear decoder with bias.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MambaSensorConfig {
    pub d_input: u32,
    pub d_output: u32,
    pub d_model: u32,
    pub d_inner: u32,
    pub d_state: u32,
    pub d_conv: u32,
    pub dt_rank: u32,
    pub norm_eps: f32,
    pub in_proj_bias: bool,
    pub conv_bias: bool,
    pub out_proj_bias: bool,
}

impl MambaSensorConfig {
    /// The block configuration (vocabulary fields unused).
    pub(crate) fn block(&self) -> Mamba1Config {
        Mamba1Config {
            d_model: self.d_model,
            d_inner: self.d_inner,
            d_state: self.d_state,
            d_conv: self.d_conv,
            dt_rank: self.dt_rank,
            vocab_size: 1,
            norm_eps: self.norm_eps,
            in_proj_bias: self.in_proj_bias,
            conv_bias: self.conv_bias,
            out_proj_bias: self.out_proj_bias,
            tied_embeddings: false,
        }
    }
}

/// Mamba-2 block configuration (HF `Mamba2Config` semantics).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Mamba2Config {
    pub d_model: u32,
    pub d_inner: u32,
    pub d_state: u32,
    pub d_conv: u32,
    pub n_heads: u32,
    pub head_dim: u32,
    pub n_groups: u32,
    pub vocab_size: u32,
    pub norm_eps: f32,
    /// Lower clamp of dt after softplus (`time_step_limit[0]`).
    pub dt_min: f32,
    /// Upper clamp of dt after softplus (`time_step_limit[1]`, may be +inf).
    pub dt_max: f32,
    /// Group size of the gated RMSNorm (`d_inner / n_groups` in HF).
    pub norm_group_size: u32,
    pub in_proj_bias: bool,
    pub conv_bias: bool,
    pub out_proj_bias: bool,
    pub tied_embeddings: bool,
}

/// What the S4D model's head produces each step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HeadKind {
    /// Class logits.
    Classification,
    /// Regression values.
    Regression,
}

/// S4D sensor model configuration (state-spaces/s4 `S4D` layers inside an `S4Model`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct S4dConfig {
    /// Input channels per step.
    pub d_input: u32,
    /// Model width H.
    pub d_model: u32,
    /// State size N (N/2 complex modes per channel).
    pub d_state: u32,
    pub d_output: u32,
    pub norm_eps: f32,
    /// LayerNorm before the S4D layer (true) or after the residual (false).
    pub prenorm: bool,
    /// Output projection H -> 2H followed by GLU (true) or H -> H linear (false).
    pub glu: bool,
    /// A LayerNorm after the last block.
    pub final_norm: bool,
    pub head: HeadKind,
}

/// RWKV configuration (v4 now; v5–v7 share it as they are added).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RwkvConfig {
    pub d_model: u32,
    /// Hidden size of the channel-mix (FFN) block.
    pub d_ffn: u32,
    pub vocab_size: u32,
    /// LayerNorm epsilon.
    pub norm_eps: f32,
}

/// RWKV v5 configuration (v5.1 without, v5.2 with the output gate).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rwkv5Config {
    pub d_model: u32,
    pub d_ffn: u32,
    pub vocab_size: u32,
    pub n_heads: u32,
    pub head_size: u32,
    /// v5.2: SiLU output gate and `time_mix_g`.
    pub gated: bool,
    /// LayerNorm epsilon.
    pub norm_eps: f32,
    /// Epsilon of the per-head group norm `ln_x`.
    pub group_norm_eps: f32,
}

/// RWKV v6 ("Finch") configuration: v5.2's heads and gate with data-dependent token
/// shift (`time_maa_*` low-rank terms) and data-dependent decay.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rwkv6Config {
    pub d_model: u32,
    pub d_ffn: u32,
    pub vocab_size: u32,
    pub n_heads: u32,
    pub head_size: u32,
    /// Low-rank size of each of the five token-shift terms (w, k, v, r, g).
    pub d_lora_mix: u32,
    /// Low-rank size of the decay term.
    pub d_lora_decay: u32,
    pub norm_eps: f32,
    pub group_norm_eps: f32,
}

/// RWKV v7 ("Goose") configuration.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rwkv7Config {
    pub d_model: u32,
    pub d_ffn: u32,
    pub vocab_size: u32,
    pub head_size: u32,
    /// Low-rank sizes of the decay (w), in-context learning rate (a), value residual (v)
    /// and gate (g) projections.
    pub d_lora_w: u32,
    pub d_lora_a: u32,
    pub d_lora_v: u32,
    pub d_lora_g: u32,
    pub norm_eps: f32,
    pub group_norm_eps: f32,
}

/// Architecture and its dimensions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Arch {
    Mamba1(Mamba1Config),
    Mamba2(Mamba2Config),
    S4d(S4dConfig),
    /// RWKV v4: token shift with time_mix, WKV recurrence with time_first/time_decay.
    Rwkv4(RwkvConfig),
    /// RWKV v5.1 / v5.2: multi-head matrix-valued state, per-head group norm.
    Rwkv5(Rwkv5Config),
    /// RWKV v7: generalized delta rule state update, value residual, gates.
    Rwkv7(Rwkv7Config),
    /// RWKV v6: data-dependent token shift and decay on v5.2's multi-head state.
    Rwkv6(Rwkv6Config),
    /// Mamba-1 blocks on sensor vectors (encoder, blocks, RMSNorm, decoder).
    MambaSensor(MambaSensorConfig),
}

/// The whole model configuration as stored in the header.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Config {
    pub n_layers: u32,
    pub arch: Arch,
    /// The audio front end of a model that takes raw samples (format 1.1): its features
    /// (`n_mels` values per frame) are the model's input vectors; the filterbank is stored
    /// as the global tensor [`Role::MelFilters`].
    pub front_end: Option<FrontEndConfig>,
    /// The arithmetic of the step (format 1.2; older blobs are [`Compute::Float`]).
    pub compute: Compute,
}

/// How a step computes, chosen at conversion and recorded in the blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Compute {
    /// f32 activations; weights in any stored dtype, dequantized on the fly.
    #[default]
    Float,
    /// Matrices stored as int8 multiply int8 activations (each input vector quantized
    /// symmetrically, round half away from zero, with a dynamic per-vector scale
    /// `max|x| / 127` for [`DType::I8`] matrices or the calibrated static scale of a
    /// [`DType::I8S`] matrix) with i32 accumulation; matrices in other dtypes, and
    /// everything outside the matrix-vector products, stay f32.
    W8a8,
    /// Integer only (format 1.3; S4D and Mamba sensor models): no floating-point operation
    /// in the step. Activations are `i16` in per-site Q formats chosen by calibration,
    /// recurrent states `i32`, weight matrices [`DType::I8R`] (int8 with per-row integer
    /// requantization), every other tensor [`DType::I16`] / [`DType::I32`] in the Q
    /// formats recorded in the model's integer plans ([`Role::IntPlan`],
    /// [`Role::IntLayerPlan`]). Stepped by [`crate::Model::step_int`] /
    /// [`crate::Model::step_sample_int`]; see `crate::int_step` for every format.
    Int,
}

impl Compute {
    pub const fn name(self) -> &'static str {
        match self {
            Compute::Float => "float",
            Compute::W8a8 => "w8a8",
            Compute::Int => "int",
        }
    }
}

/// Weight element types. Codes are stable across format versions.
///
/// The quantized types (format 1.2) are only allowed for weight matrices and are stored
/// self-contained (values, then scales) so a tensor stays one zero-copy slice:
/// - [`DType::I8`]: `rows × cols` signed bytes (row-major), zero padding to a multiple of 4
///   bytes, then `rows` f32 scales: `w[r][c] = q[r][c] · scale[r]` (per output channel,
///   symmetric, `q ∈ [-127, 127]`).
/// - [`DType::I4`]: each row in groups of [`I4_GROUP`] columns (the last group of a row
///   zero-padded); per group 16 bytes of two's-complement nibbles, element `2i` in the low
///   nibble of byte `i`, `q ∈ [-7, 7]`; all rows' groups first, then one f16 scale per
///   group (row-major): `w[r][c] = q · scale[r][c / 32]`.
/// - [`DType::Bf16`]: bfloat16 values.
/// - [`DType::I16`], [`DType::I32`] (format 1.3, integer-only models): plain little-endian
///   integers in the Q format that the model's integer plan records for the tensor.
/// - [`DType::I8R`] (format 1.3, integer-only models' matrices): `rows × cols` signed bytes,
///   zero padding to a multiple of 4 bytes, then per row two i32, `(multiplier, rshift)`:
///   output `r` is `round(acc_r · multiplier · 2^-rshift)` (ties away from zero),
///   `acc_r = Σ_c q[r][c] · x[c] + bias[r]`, which maps the accumulator straight into the
///   output's Q format (each row may have its own).
/// - [`DType::I8S`] (format 1.4, [`Compute::W8a8`] only): the [`DType::I8`] layout, then
///   one more f32, `xmax`: the calibrated bound of the matrix's input vector. The w8a8
///   product quantizes the input with the static scale `xmax / 127` (saturating at ±127)
///   instead of the per-vector `max|x| / 127`; `xmax` must be finite and positive.
///
/// `rows` is the product of all dimensions but the last, `cols` the last dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DType {
    F32,
    F16,
    Bf16,
    I8,
    I4,
    I16,
    I32,
    I8R,
    I8S,
}

/// Columns per scale group of [`DType::I4`].
pub const I4_GROUP: usize = 32;

impl DType {
    pub const fn code(self) -> u8 {
        match self {
            DType::F32 => 0,
            DType::F16 => 1,
            DType::Bf16 => 2,
            DType::I8 => 3,
            DType::I4 => 4,
            DType::I16 => 5,
            DType::I32 => 6,
            DType::I8R => 7,
            DType::I8S => 8,
        }
    }
    pub const fn from_code(code: u8) -> Option<DType> {
        match code {
            0 => Some(DType::F32),
            1 => Some(DType::F16),
            2 => Some(DType::Bf16),
            3 => Some(DType::I8),
            4 => Some(DType::I4),
            5 => Some(DType::I16),
            6 => Some(DType::I32),
            7 => Some(DType::I8R),
            8 => Some(DType::I8S),
            _ => None,
        }
    }
    /// Bytes per element of the plain (unquantized) types; 1 for int8 and int4 (whose
    /// tensors also hold scales: see [`Self::tensor_bytes`]).
    pub const fn size(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::Bf16 | DType::I16 => 2,
            DType::I8 | DType::I4 | DType::I8R | DType::I8S => 1,
        }
    }
    pub const fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::Bf16 => "bf16",
            DType::I8 => "int8",
            DType::I4 => "int4",
            DType::I16 => "i16",
            DType::I32 => "i32",
            DType::I8R => "int8r",
            DType::I8S => "int8s",
        }
    }
    /// Whether values carry scales (int8, int8 with a static input scale, int4).
    pub const fn is_quantized(self) -> bool {
        matches!(self, DType::I8 | DType::I4 | DType::I8S)
    }
    /// The integer-only model dtypes (format 1.3, [`Compute::Int`] only).
    pub const fn is_integer_mode(self) -> bool {
        matches!(self, DType::I16 | DType::I32 | DType::I8R)
    }
    /// Bytes of a `rows × cols` tensor of this type, scales included (checked).
    pub const fn tensor_bytes(self, rows: u64, cols: u64) -> Option<u64> {
        let Some(n) = rows.checked_mul(cols) else {
            return None;
        };
        match self {
            DType::F32 | DType::I32 => n.checked_mul(4),
            DType::F16 | DType::Bf16 | DType::I16 => n.checked_mul(2),
            DType::I8R => match (n.checked_add(3), rows.checked_mul(8)) {
                (Some(q), Some(s)) => (q & !3).checked_add(s),
                _ => None,
            },
            DType::I8 => match (n.checked_add(3), rows.checked_mul(4)) {
                (Some(q), Some(s)) => (q & !3).checked_add(s),
                _ => None,
            },
            DType::I8S => match DType::I8.tensor_bytes(rows, cols) {
                Some(b) => b.checked_add(4),
                None => None,
            },
            DType::I4 => {
                let groups = cols.div_ceil(I4_GROUP as u64);
                let Some(g) = rows.checked_mul(groups) else {
                    return None;
                };
                match (g.checked_mul(16), g.checked_mul(2)) {
                    (Some(q), Some(s)) => q.checked_add(s),
                    _ => None,
                }
            }
        }
    }
}

macro_rules! roles {
    ($($(#[$m:meta])* $v:ident = $code:literal, $name:literal, $mat:literal;)*) => {
        /// What a tensor is. Stored as a byte in the tensor table.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[non_exhaustive]
        pub enum Role { $($(#[$m])* $v,)* }
        impl Role {
            pub const fn code(self) -> u8 { match self { $(Role::$v => $code,)* } }
            pub const fn from_code(c: u8) -> Option<Role> { match c { $($code => Some(Role::$v),)* _ => None } }
            /// Short name used in the converter and `inspect`.
            pub const fn name(self) -> &'static str { match self { $(Role::$v => $name,)* } }
            /// Weight matrices (may be stored in reduced precision). Everything else
            /// (norms, biases, conv, A, D, dt) stays f32 by the numerics policy.
            pub const fn is_matrix(self) -> bool { match self { $(Role::$v => $mat,)* } }
        }
    };
}

roles! {
    Embedding = 0, "embedding", true;
    NormF = 1, "norm_f", false;
    LmHead = 2, "lm_head", true;
    Norm = 3, "norm", false;
    InProj = 4, "in_proj", true;
    InProjBias = 5, "in_proj.bias", false;
    ConvW = 6, "conv1d.weight", false;
    ConvB = 7, "conv1d.bias", false;
    XProj = 8, "x_proj", true;
    DtProj = 9, "dt_proj.weight", true;
    DtProjBias = 10, "dt_proj.bias", false;
    /// A = -exp(A_log), precomputed at conversion.
    A = 11, "A", false;
    D = 12, "D", false;
    OutProj = 13, "out_proj", true;
    OutProjBias = 14, "out_proj.bias", false;
    DtBias = 15, "dt_bias", false;
    GatedNorm = 16, "gated_norm", false;
    Encoder = 17, "encoder.weight", true;
    EncoderBias = 18, "encoder.bias", false;
    NormBias = 19, "norm.bias", false;
    /// ZOH-discretized exp(dt*A) as (re, im) pairs, [H, N/2, 2].
    DA = 20, "dA", false;
    /// C * (exp(dt*A) - 1) / A as (re, im) pairs, [H, N/2, 2].
    CB = 21, "C_dB", false;
    OutLinear = 22, "output_linear.weight", true;
    OutLinearBias = 23, "output_linear.bias", false;
    NormFBias = 24, "norm_f.bias", false;
    Decoder = 25, "decoder.weight", true;
    DecoderBias = 26, "decoder.bias", false;
    Ln0 = 27, "ln0.weight", false;
    Ln0Bias = 28, "ln0.bias", false;
    Norm2 = 29, "ln2.weight", false;
    Norm2Bias = 30, "ln2.bias", false;
    /// RWKV decay: v4 stores w = -exp(time_decay), v5 exp(-exp(time_decay)) per head and
    /// key index, v6 the raw `time_decay` (the step adds the data-dependent term).
    TimeDecay = 31, "att.time_decay", false;
    TimeFirst = 32, "att.time_first", false;
    AttMixK = 33, "att.time_mix_k", false;
    AttMixV = 34, "att.time_mix_v", false;
    AttMixR = 35, "att.time_mix_r", false;
    AttKey = 36, "att.key", true;
    AttValue = 37, "att.value", true;
    AttReceptance = 38, "att.receptance", true;
    AttOutput = 39, "att.output", true;
    FfnMixK = 40, "ffn.time_mix_k", false;
    FfnMixR = 41, "ffn.time_mix_r", false;
    FfnKey = 42, "ffn.key", true;
    FfnValue = 43, "ffn.value", true;
    FfnReceptance = 44, "ffn.receptance", true;
    AttMixG = 45, "att.time_mix_g", false;
    AttGate = 46, "att.gate", true;
    LnX = 47, "att.ln_x.weight", false;
    LnXBias = 48, "att.ln_x.bias", false;
    /// RWKV v7 token-shift mixes for r, w, k, v, a, g: [6, D].
    XRwkvag = 49, "att.x_rwkvag", false;
    W0 = 50, "att.w0", false;
    W1 = 51, "att.w1", false;
    W2 = 52, "att.w2", false;
    A0 = 53, "att.a0", false;
    A1 = 54, "att.a1", false;
    A2 = 55, "att.a2", false;
    V0 = 56, "att.v0", false;
    V1 = 57, "att.v1", false;
    V2 = 58, "att.v2", false;
    G1 = 59, "att.g1", false;
    G2 = 60, "att.g2", false;
    KK = 61, "att.k_k", false;
    KA = 62, "att.k_a", false;
    RK = 63, "att.r_k", false;
    /// RWKV v6 token-shift base mix `time_maa_x`: `[D]`.
    MaaX = 64, "att.time_maa_x", false;
    /// RWKV v6 token-shift mixes `time_maa_{w,k,v,r,g}`: [5, D].
    MaaWkvrg = 65, "att.time_maa_wkvrg", false;
    /// RWKV v6 token-shift low-rank down projection: [5 * d_lora_mix, D].
    MaaW1 = 66, "att.time_maa_w1", false;
    /// RWKV v6 token-shift low-rank up projections: [5, D, d_lora_mix].
    MaaW2 = 67, "att.time_maa_w2", false;
    /// RWKV v6 decay low-rank down projection: [d_lora_decay, D].
    DecayW1 = 68, "att.time_decay_w1", false;
    /// RWKV v6 decay low-rank up projection: [D, d_lora_decay].
    DecayW2 = 69, "att.time_decay_w2", false;
    /// Mel filterbank of the audio front end: [n_mels, n_fft/2 + 1].
    MelFilters = 70, "frontend.mel_filters", false;
    /// Integer-only models: the model-global integer plan (Q formats and constants), i32
    /// [`crate::int_step::GLOBAL_PLAN_LEN`].
    IntPlan = 71, "int.plan", false;
    /// Integer-only models: one layer's integer plan, i32 [`crate::int_step::LAYER_PLAN_LEN`].
    IntLayerPlan = 72, "int.layer_plan", false;
    /// Integer-only audio models: the analysis window in Q0.31, i32 `[frame_len]`.
    Window = 73, "frontend.window", false;
}

/// Where a tensor belongs: `None` = model-global.
pub type LayerIndex = Option<u16>;

/// One expected tensor: role, layer and shape (up to rank 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TensorSpec {
    pub layer: LayerIndex,
    pub role: Role,
    pub rank: u8,
    pub shape: [u32; 4],
}

impl TensorSpec {
    /// Number of elements (checked; u64).
    pub fn numel(&self) -> Option<u64> {
        let mut n: u64 = 1;
        for &d in &self.shape[..self.rank as usize] {
            n = n.checked_mul(d as u64)?;
        }
        Some(n)
    }
    /// Which dtypes this role may be stored in.
    pub fn allows(&self, dtype: DType) -> bool {
        match dtype {
            DType::F32 => true,
            DType::F16 | DType::Bf16 | DType::I8 | DType::I4 | DType::I8S => self.role.is_matrix(),
            DType::I16 | DType::I32 | DType::I8R => false,
        }
    }
    /// The one dtype each role has in an integer-only model: matrices [`DType::I8R`];
    /// norm weights, conv weights and the filterbank [`DType::I16`]; everything else
    /// (biases, S4D modes, A, D, plans, the window in Q0.31) [`DType::I32`].
    pub fn int_dtype(&self) -> DType {
        match self.role {
            r if r.is_matrix() => DType::I8R,
            Role::Norm | Role::NormF | Role::ConvW | Role::MelFilters => DType::I16,
            _ => DType::I32,
        }
    }
    /// `(rows, cols)`: the last dimension is `cols`, the others multiply into `rows`.
    pub fn rows_cols(&self) -> Option<(u64, u64)> {
        let r = self.rank as usize;
        if r == 0 {
            return Some((1, 1));
        }
        let cols = *self.shape.get(r - 1)? as u64;
        let mut rows: u64 = 1;
        for &d in self.shape.get(..r - 1)? {
            rows = rows.checked_mul(d as u64)?;
        }
        Some((rows, cols))
    }
    /// Bytes this tensor takes in `dtype` (checked).
    pub fn bytes(&self, dtype: DType) -> Option<u64> {
        let (rows, cols) = self.rows_cols()?;
        dtype.tensor_bytes(rows, cols)
    }
}

/// Fixed-capacity list of roles (no allocation).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RoleList {
    roles: [Role; 32],
    len: usize,
}

impl RoleList {
    const fn new() -> Self {
        RoleList {
            roles: [Role::Embedding; 32],
            len: 0,
        }
    }
    fn push_if(&mut self, cond: bool, r: Role) {
        if cond && self.len < self.roles.len() {
            self.roles[self.len] = r;
            self.len += 1;
        }
    }
    pub(crate) fn as_slice(&self) -> &[Role] {
        &self.roles[..self.len]
    }
    pub(crate) fn position(&self, r: Role) -> Option<usize> {
        self.as_slice().iter().position(|&x| x == r)
    }
}

fn s1(a: u32) -> (u8, [u32; 4]) {
    (1, [a, 0, 0, 0])
}
fn s2(a: u32, b: u32) -> (u8, [u32; 4]) {
    (2, [a, b, 0, 0])
}
fn s3(a: u32, b: u32, c: u32) -> (u8, [u32; 4]) {
    (3, [a, b, c, 0])
}

impl Config {
    /// Whether tensor `spec` of this model may be stored in `dtype`: an integer-only model
    /// has exactly one dtype per role ([`TensorSpec::int_dtype`]); [`DType::I8S`] (a
    /// static activation scale) only means something to a [`Compute::W8a8`] step.
    pub fn allows(&self, spec: &TensorSpec, dtype: DType) -> bool {
        match self.compute {
            Compute::Int => dtype == spec.int_dtype(),
            Compute::W8a8 => spec.allows(dtype),
            _ => dtype != DType::I8S && spec.allows(dtype),
        }
    }

    /// Checks every configuration value; run by the parser and the writer.
    pub fn validate(&self) -> Result<(), FormatError> {
        if self.n_layers == 0 || self.n_layers > MAX_LAYERS {
            return Err(FormatError::BadConfig("n_layers must be in 1..=1024"));
        }
        fn pos(v: u32, what: &'static str) -> Result<(), FormatError> {
            if v == 0 || v > (1 << 24) {
                Err(FormatError::BadConfig(what))
            } else {
                Ok(())
            }
        }
        fn eps(e: f32) -> Result<(), FormatError> {
            // Bit-pattern comparisons (crate::fbits): parsing runs no float instruction.
            if crate::fbits::is_finite(e) && crate::fbits::lt(0.0, e) && crate::fbits::lt(e, 1.0) {
                Ok(())
            } else {
                Err(FormatError::BadConfig(
                    "norm_eps must be finite and in (0, 1)",
                ))
            }
        }
        match &self.arch {
            Arch::Mamba1(c) => {
                pos(c.d_model, "d_model must be in 1..=2^24")?;
                pos(c.d_inner, "d_inner must be in 1..=2^24")?;
                pos(c.d_state, "d_state must be in 1..=2^24")?;
                pos(c.dt_rank, "dt_rank must be in 1..=2^24")?;
                pos(c.vocab_size, "vocab_size must be in 1..=2^24")?;
                if c.d_conv < 1 || c.d_conv > MAX_D_CONV {
                    return Err(FormatError::BadConfig("d_conv must be in 1..=16"));
                }
                eps(c.norm_eps)?;
            }
            Arch::MambaSensor(c) => {
                pos(c.d_input, "d_input must be in 1..=2^24")?;
                pos(c.d_output, "d_output must be in 1..=2^24")?;
                pos(c.d_model, "d_model must be in 1..=2^24")?;
                pos(c.d_inner, "d_inner must be in 1..=2^24")?;
                pos(c.d_state, "d_state must be in 1..=2^24")?;
                pos(c.dt_rank, "dt_rank must be in 1..=2^24")?;
                if c.d_conv < 1 || c.d_conv > MAX_D_CONV {
                    return Err(FormatError::BadConfig("d_conv must be in 1..=16"));
                }
                eps(c.norm_eps)?;
            }
            Arch::Mamba2(c) => {
                pos(c.d_model, "d_model must be in 1..=2^24")?;
                pos(c.d_inner, "d_inner must be in 1..=2^24")?;
                pos(c.d_state, "d_state must be in 1..=2^24")?;
                pos(c.n_heads, "n_heads must be in 1..=2^24")?;
                pos(c.head_dim, "head_dim must be in 1..=2^24")?;
                pos(c.n_groups, "n_groups must be in 1..=2^24")?;
                pos(c.vocab_size, "vocab_size must be in 1..=2^24")?;
                pos(c.norm_group_size, "norm_group_size must be in 1..=2^24")?;
                if c.d_conv < 1 || c.d_conv > MAX_D_CONV {
                    return Err(FormatError::BadConfig("d_conv must be in 1..=16"));
                }
                if (c.n_heads as u64) * (c.head_dim as u64) != c.d_inner as u64 {
                    return Err(FormatError::BadConfig(
                        "n_heads * head_dim must equal d_inner",
                    ));
                }
                if !c.n_heads.is_multiple_of(c.n_groups) {
                    return Err(FormatError::BadConfig(
                        "n_heads must be a multiple of n_groups",
                    ));
                }
                if !c.d_inner.is_multiple_of(c.norm_group_size) {
                    return Err(FormatError::BadConfig(
                        "d_inner must be a multiple of norm_group_size",
                    ));
                }
                eps(c.norm_eps)?;
                // NaN fails both comparisons.
                if !(crate::fbits::le(0.0, c.dt_min)
                    && crate::fbits::is_finite(c.dt_min)
                    && crate::fbits::le(c.dt_min, c.dt_max))
                {
                    return Err(FormatError::BadConfig(
                        "dt limits must satisfy 0 <= dt_min <= dt_max",
                    ));
                }
            }
            Arch::S4d(c) => {
                pos(c.d_input, "d_input must be in 1..=2^24")?;
                pos(c.d_model, "d_model must be in 1..=2^24")?;
                pos(c.d_state, "d_state must be in 1..=2^24")?;
                pos(c.d_output, "d_output must be in 1..=2^24")?;
                if !c.d_state.is_multiple_of(2) {
                    return Err(FormatError::BadConfig(
                        "S4D d_state must be even (N/2 complex modes)",
                    ));
                }
                eps(c.norm_eps)?;
            }
            Arch::Rwkv7(c) => {
                pos(c.d_model, "d_model must be in 1..=2^24")?;
                pos(c.d_ffn, "d_ffn must be in 1..=2^24")?;
                pos(c.vocab_size, "vocab_size must be in 1..=2^24")?;
                pos(c.head_size, "head_size must be in 1..=2^24")?;
                for v in [c.d_lora_w, c.d_lora_a, c.d_lora_v, c.d_lora_g] {
                    pos(v, "low-rank sizes must be in 1..=2^24")?;
                }
                if !c.d_model.is_multiple_of(c.head_size) {
                    return Err(FormatError::BadConfig("head_size must divide d_model"));
                }
                eps(c.norm_eps)?;
                eps(c.group_norm_eps)?;
            }
            Arch::Rwkv6(c) => {
                pos(c.d_model, "d_model must be in 1..=2^24")?;
                pos(c.d_ffn, "d_ffn must be in 1..=2^24")?;
                pos(c.vocab_size, "vocab_size must be in 1..=2^24")?;
                pos(c.n_heads, "n_heads must be in 1..=2^24")?;
                pos(c.head_size, "head_size must be in 1..=2^24")?;
                pos(c.d_lora_mix, "low-rank sizes must be in 1..=2^24")?;
                pos(c.d_lora_decay, "low-rank sizes must be in 1..=2^24")?;
                if (c.n_heads as u64) * (c.head_size as u64) != c.d_model as u64 {
                    return Err(FormatError::BadConfig(
                        "n_heads * head_size must equal d_model",
                    ));
                }
                eps(c.norm_eps)?;
                eps(c.group_norm_eps)?;
            }
            Arch::Rwkv5(c) => {
                pos(c.d_model, "d_model must be in 1..=2^24")?;
                pos(c.d_ffn, "d_ffn must be in 1..=2^24")?;
                pos(c.vocab_size, "vocab_size must be in 1..=2^24")?;
                pos(c.n_heads, "n_heads must be in 1..=2^24")?;
                pos(c.head_size, "head_size must be in 1..=2^24")?;
                if (c.n_heads as u64) * (c.head_size as u64) != c.d_model as u64 {
                    return Err(FormatError::BadConfig(
                        "n_heads * head_size must equal d_model",
                    ));
                }
                eps(c.norm_eps)?;
                eps(c.group_norm_eps)?;
            }
            Arch::Rwkv4(c) => {
                pos(c.d_model, "d_model must be in 1..=2^24")?;
                pos(c.d_ffn, "d_ffn must be in 1..=2^24")?;
                pos(c.vocab_size, "vocab_size must be in 1..=2^24")?;
                eps(c.norm_eps)?;
            }
        }
        if self.compute == Compute::Int {
            crate::int_step::validate_config(self)?;
        }
        if let Some(fe) = &self.front_end {
            fe.validate()?;
            if self.d_input() != fe.n_mels as usize {
                return Err(FormatError::BadConfig(
                    "a front end needs a vector-input model with d_input = n_mels",
                ));
            }
        }
        // All derived sizes must fit: check the largest products once.
        self.sizes().map(|_| ())
    }

    pub(crate) fn global_roles(&self) -> RoleList {
        let mut l = RoleList::new();
        let int = self.compute == Compute::Int;
        l.push_if(self.front_end.is_some(), Role::MelFilters);
        l.push_if(int && self.front_end.is_some(), Role::Window);
        l.push_if(int, Role::IntPlan);
        match &self.arch {
            Arch::Mamba1(Mamba1Config {
                tied_embeddings, ..
            })
            | Arch::Mamba2(Mamba2Config {
                tied_embeddings, ..
            }) => {
                l.push_if(true, Role::Embedding);
                l.push_if(true, Role::NormF);
                l.push_if(!tied_embeddings, Role::LmHead);
            }
            Arch::MambaSensor(_) => {
                for r in [
                    Role::Encoder,
                    Role::EncoderBias,
                    Role::NormF,
                    Role::Decoder,
                    Role::DecoderBias,
                ] {
                    l.push_if(true, r);
                }
            }
            Arch::S4d(c) => {
                l.push_if(true, Role::Encoder);
                l.push_if(true, Role::EncoderBias);
                l.push_if(c.final_norm, Role::NormF);
                l.push_if(c.final_norm, Role::NormFBias);
                l.push_if(true, Role::Decoder);
                l.push_if(true, Role::DecoderBias);
            }
            Arch::Rwkv4(_) | Arch::Rwkv5(_) | Arch::Rwkv6(_) | Arch::Rwkv7(_) => {
                for r in [
                    Role::Embedding,
                    Role::Ln0,
                    Role::Ln0Bias,
                    Role::NormF,
                    Role::NormFBias,
                    Role::LmHead,
                ] {
                    l.push_if(true, r);
                }
            }
        }
        l
    }

    pub(crate) fn layer_roles(&self) -> RoleList {
        let mut l = RoleList::new();
        let sensor;
        let arch = match &self.arch {
            Arch::MambaSensor(c) => {
                sensor = Arch::Mamba1(c.block());
                &sensor
            }
            a => a,
        };
        match arch {
            Arch::MambaSensor(_) => {}
            Arch::Mamba1(c) => {
                l.push_if(true, Role::Norm);
                l.push_if(true, Role::InProj);
                l.push_if(c.in_proj_bias, Role::InProjBias);
                l.push_if(true, Role::ConvW);
                l.push_if(c.conv_bias, Role::ConvB);
                l.push_if(true, Role::XProj);
                l.push_if(true, Role::DtProj);
                l.push_if(true, Role::DtProjBias);
                l.push_if(true, Role::A);
                l.push_if(true, Role::D);
                l.push_if(true, Role::OutProj);
                l.push_if(c.out_proj_bias, Role::OutProjBias);
            }
            Arch::Mamba2(c) => {
                l.push_if(true, Role::Norm);
                l.push_if(true, Role::InProj);
                l.push_if(c.in_proj_bias, Role::InProjBias);
                l.push_if(true, Role::ConvW);
                l.push_if(c.conv_bias, Role::ConvB);
                l.push_if(true, Role::DtBias);
                l.push_if(true, Role::A);
                l.push_if(true, Role::D);
                l.push_if(true, Role::GatedNorm);
                l.push_if(true, Role::OutProj);
                l.push_if(c.out_proj_bias, Role::OutProjBias);
            }
            Arch::S4d(_) => {
                l.push_if(true, Role::Norm);
                l.push_if(true, Role::NormBias);
                l.push_if(true, Role::DA);
                l.push_if(true, Role::CB);
                l.push_if(true, Role::D);
                l.push_if(true, Role::OutLinear);
                l.push_if(true, Role::OutLinearBias);
            }
            Arch::Rwkv4(_) => {
                for r in [
                    Role::Norm,
                    Role::NormBias,
                    Role::Norm2,
                    Role::Norm2Bias,
                    Role::TimeDecay,
                    Role::TimeFirst,
                    Role::AttMixK,
                    Role::AttMixV,
                    Role::AttMixR,
                    Role::AttKey,
                    Role::AttValue,
                    Role::AttReceptance,
                    Role::AttOutput,
                    Role::FfnMixK,
                    Role::FfnMixR,
                    Role::FfnKey,
                    Role::FfnValue,
                    Role::FfnReceptance,
                ] {
                    l.push_if(true, r);
                }
            }
            Arch::Rwkv7(_) => {
                for r in [
                    Role::Norm,
                    Role::NormBias,
                    Role::Norm2,
                    Role::Norm2Bias,
                    Role::XRwkvag,
                    Role::W0,
                    Role::W1,
                    Role::W2,
                    Role::A0,
                    Role::A1,
                    Role::A2,
                    Role::V0,
                    Role::V1,
                    Role::V2,
                    Role::G1,
                    Role::G2,
                    Role::KK,
                    Role::KA,
                    Role::RK,
                    Role::AttReceptance,
                    Role::AttKey,
                    Role::AttValue,
                    Role::AttOutput,
                    Role::LnX,
                    Role::LnXBias,
                    Role::FfnMixK,
                    Role::FfnKey,
                    Role::FfnValue,
                ] {
                    l.push_if(true, r);
                }
            }
            Arch::Rwkv6(_) => {
                for r in [
                    Role::Norm,
                    Role::NormBias,
                    Role::Norm2,
                    Role::Norm2Bias,
                    Role::MaaX,
                    Role::MaaWkvrg,
                    Role::MaaW1,
                    Role::MaaW2,
                    Role::TimeDecay,
                    Role::DecayW1,
                    Role::DecayW2,
                    Role::TimeFirst,
                    Role::AttReceptance,
                    Role::AttKey,
                    Role::AttValue,
                    Role::AttGate,
                    Role::AttOutput,
                    Role::LnX,
                    Role::LnXBias,
                    Role::FfnMixK,
                    Role::FfnMixR,
                    Role::FfnKey,
                    Role::FfnValue,
                    Role::FfnReceptance,
                ] {
                    l.push_if(true, r);
                }
            }
            Arch::Rwkv5(c) => {
                let g = c.gated;
                for (cond, r) in [
                    (true, Role::Norm),
                    (true, Role::NormBias),
                    (true, Role::Norm2),
                    (true, Role::Norm2Bias),
                    (true, Role::TimeDecay),
                    (true, Role::TimeFirst),
                    (true, Role::AttMixK),
                    (true, Role::AttMixV),
                    (true, Role::AttMixR),
                    (g, Role::AttMixG),
                    (true, Role::LnX),
                    (true, Role::LnXBias),
                    (true, Role::AttKey),
                    (true, Role::AttValue),
                    (true, Role::AttReceptance),
                    (g, Role::AttGate),
                    (true, Role::AttOutput),
                    (true, Role::FfnMixK),
                    (true, Role::FfnMixR),
                    (true, Role::FfnKey),
                    (true, Role::FfnValue),
                    (true, Role::FfnReceptance),
                ] {
                    l.push_if(cond, r);
                }
            }
        }
        l.push_if(self.compute == Compute::Int, Role::IntLayerPlan);
        l
    }

    /// Number of tensors in the canonical layout.
    pub fn n_tensors(&self) -> usize {
        self.global_roles().len + self.n_layers as usize * self.layer_roles().len
    }

    /// Index of a tensor in the canonical layout.
    pub fn tensor_index(&self, layer: LayerIndex, role: Role) -> Option<usize> {
        match layer {
            None => self.global_roles().position(role),
            Some(l) if (l as u32) < self.n_layers => {
                let g = self.global_roles().len;
                let lr = self.layer_roles();
                lr.position(role).map(|p| g + l as usize * lr.len + p)
            }
            Some(_) => None,
        }
    }

    /// The spec of tensor `index` in the canonical layout (globals first, then each
    /// layer's tensors in role order).
    pub fn tensor_spec(&self, index: usize) -> Option<TensorSpec> {
        let g = self.global_roles();
        let lr = self.layer_roles();
        let (layer, role) = if index < g.len {
            (None, g.roles[index])
        } else {
            let i = index - g.len;
            if lr.len == 0 {
                return None;
            }
            let l = i / lr.len;
            if l >= self.n_layers as usize {
                return None;
            }
            (Some(l as u16), lr.roles[i % lr.len])
        };
        let (rank, shape) = self.shape_of(role)?;
        Some(TensorSpec {
            layer,
            role,
            rank,
            shape,
        })
    }

    fn shape_of(&self, role: Role) -> Option<(u8, [u32; 4])> {
        use Role::*;
        match role {
            MelFilters => {
                let fe = self.front_end.as_ref()?;
                return Some(s2(fe.n_mels, fe.n_fft / 2 + 1));
            }
            Window => return Some(s1(self.front_end.as_ref()?.frame_len)),
            IntPlan => return Some(s1(crate::int_step::GLOBAL_PLAN_LEN as u32)),
            IntLayerPlan => return Some(s1(crate::int_step::LAYER_PLAN_LEN as u32)),
            _ => {}
        }
        // Checked u32 arithmetic: a corrupt config must give None, never overflow.
        fn add(a: u32, b: u32) -> Option<u32> {
            a.checked_add(b)
        }
        fn mul(a: u32, b: u32) -> Option<u32> {
            a.checked_mul(b)
        }
        Some(match &self.arch {
            Arch::MambaSensor(c) => match role {
                Encoder => s2(c.d_model, c.d_input),
                EncoderBias | NormF => s1(c.d_model),
                Decoder => s2(c.d_output, c.d_model),
                DecoderBias => s1(c.d_output),
                _ => {
                    return Config {
                        n_layers: self.n_layers,
                        arch: Arch::Mamba1(c.block()),
                        front_end: None,
                        compute: crate::config::Compute::Float,
                    }
                    .shape_of(role)
                }
            },
            Arch::Mamba1(c) => match role {
                Embedding | LmHead => s2(c.vocab_size, c.d_model),
                NormF | Norm => s1(c.d_model),
                InProj => s2(mul(2, c.d_inner)?, c.d_model),
                InProjBias => s1(mul(2, c.d_inner)?),
                ConvW => s2(c.d_inner, c.d_conv),
                ConvB | DtProjBias | D => s1(c.d_inner),
                XProj => s2(add(c.dt_rank, mul(2, c.d_state)?)?, c.d_inner),
                DtProj => s2(c.d_inner, c.dt_rank),
                A => s2(c.d_inner, c.d_state),
                OutProj => s2(c.d_model, c.d_inner),
                OutProjBias => s1(c.d_model),
                _ => return None,
            },
            Arch::Mamba2(c) => {
                let conv_dim = add(c.d_inner, mul(2, mul(c.n_groups, c.d_state)?)?)?;
                let d_in_proj = add(add(c.d_inner, conv_dim)?, c.n_heads)?;
                match role {
                    Embedding | LmHead => s2(c.vocab_size, c.d_model),
                    NormF | Norm => s1(c.d_model),
                    InProj => s2(d_in_proj, c.d_model),
                    InProjBias => s1(d_in_proj),
                    ConvW => s2(conv_dim, c.d_conv),
                    ConvB => s1(conv_dim),
                    DtBias | A | D => s1(c.n_heads),
                    GatedNorm => s1(c.d_inner),
                    OutProj => s2(c.d_model, c.d_inner),
                    OutProjBias => s1(c.d_model),
                    _ => return None,
                }
            }
            Arch::S4d(c) => {
                let out = if c.glu { mul(2, c.d_model)? } else { c.d_model };
                match role {
                    Encoder => s2(c.d_model, c.d_input),
                    EncoderBias | Norm | NormBias | NormF | NormFBias | D => s1(c.d_model),
                    DA | CB => s3(c.d_model, c.d_state / 2, 2),
                    OutLinear => s2(out, c.d_model),
                    OutLinearBias => s1(out),
                    Decoder => s2(c.d_output, c.d_model),
                    DecoderBias => s1(c.d_output),
                    _ => return None,
                }
            }
            Arch::Rwkv4(c) => match role {
                Embedding | LmHead => s2(c.vocab_size, c.d_model),
                Ln0 | Ln0Bias | NormF | NormFBias | Norm | NormBias | Norm2 | Norm2Bias
                | TimeDecay | TimeFirst | AttMixK | AttMixV | AttMixR | FfnMixK | FfnMixR => {
                    s1(c.d_model)
                }
                AttKey | AttValue | AttReceptance | AttOutput | FfnReceptance => {
                    s2(c.d_model, c.d_model)
                }
                FfnKey => s2(c.d_ffn, c.d_model),
                FfnValue => s2(c.d_model, c.d_ffn),
                _ => return None,
            },
            Arch::Rwkv7(c) => match role {
                Embedding | LmHead => s2(c.vocab_size, c.d_model),
                Ln0 | Ln0Bias | NormF | NormFBias | Norm | NormBias | Norm2 | Norm2Bias | W0
                | A0 | V0 | KK | KA | RK | LnX | LnXBias | FfnMixK => s1(c.d_model),
                XRwkvag => s2(6, c.d_model),
                W1 => s2(c.d_lora_w, c.d_model),
                W2 => s2(c.d_model, c.d_lora_w),
                A1 => s2(c.d_lora_a, c.d_model),
                A2 => s2(c.d_model, c.d_lora_a),
                V1 => s2(c.d_lora_v, c.d_model),
                V2 => s2(c.d_model, c.d_lora_v),
                G1 => s2(c.d_lora_g, c.d_model),
                G2 => s2(c.d_model, c.d_lora_g),
                AttKey | AttValue | AttReceptance | AttOutput => s2(c.d_model, c.d_model),
                FfnKey => s2(c.d_ffn, c.d_model),
                FfnValue => s2(c.d_model, c.d_ffn),
                _ => return None,
            },
            Arch::Rwkv6(c) => match role {
                Embedding | LmHead => s2(c.vocab_size, c.d_model),
                Ln0 | Ln0Bias | NormF | NormFBias | Norm | NormBias | Norm2 | Norm2Bias | MaaX
                | LnX | LnXBias | FfnMixK | FfnMixR => s1(c.d_model),
                MaaWkvrg => s2(5, c.d_model),
                MaaW1 => s2(mul(5, c.d_lora_mix)?, c.d_model),
                MaaW2 => s3(5, c.d_model, c.d_lora_mix),
                DecayW1 => s2(c.d_lora_decay, c.d_model),
                DecayW2 => s2(c.d_model, c.d_lora_decay),
                TimeDecay | TimeFirst => s2(c.n_heads, c.head_size),
                AttKey | AttValue | AttReceptance | AttOutput | AttGate | FfnReceptance => {
                    s2(c.d_model, c.d_model)
                }
                FfnKey => s2(c.d_ffn, c.d_model),
                FfnValue => s2(c.d_model, c.d_ffn),
                _ => return None,
            },
            Arch::Rwkv5(c) => match role {
                Embedding | LmHead => s2(c.vocab_size, c.d_model),
                Ln0 | Ln0Bias | NormF | NormFBias | Norm | NormBias | Norm2 | Norm2Bias
                | AttMixK | AttMixV | AttMixR | AttMixG | LnX | LnXBias | FfnMixK | FfnMixR => {
                    s1(c.d_model)
                }
                TimeDecay | TimeFirst => s2(c.n_heads, c.head_size),
                AttKey | AttValue | AttReceptance | AttOutput | AttGate | FfnReceptance => {
                    s2(c.d_model, c.d_model)
                }
                FfnKey => s2(c.d_ffn, c.d_model),
                FfnValue => s2(c.d_model, c.d_ffn),
                _ => return None,
            },
        })
    }

    /// Input: `Some(vocab)` for token models, `None` for vector models.
    pub fn vocab_size(&self) -> Option<u32> {
        match &self.arch {
            Arch::Mamba1(c) => Some(c.vocab_size),
            Arch::Mamba2(c) => Some(c.vocab_size),
            Arch::Rwkv4(c) => Some(c.vocab_size),
            Arch::Rwkv5(c) => Some(c.vocab_size),
            Arch::Rwkv6(c) => Some(c.vocab_size),
            Arch::Rwkv7(c) => Some(c.vocab_size),
            Arch::S4d(_) | Arch::MambaSensor(_) => None,
        }
    }

    /// Length of the input vector for vector models (0 for token models).
    pub fn d_input(&self) -> usize {
        match &self.arch {
            Arch::S4d(c) => c.d_input as usize,
            Arch::MambaSensor(c) => c.d_input as usize,
            _ => 0,
        }
    }

    /// Values produced per step (logits, classes or regression outputs).
    pub fn d_output(&self) -> usize {
        match &self.arch {
            Arch::Mamba1(c) => c.vocab_size as usize,
            Arch::Mamba2(c) => c.vocab_size as usize,
            Arch::Rwkv4(c) => c.vocab_size as usize,
            Arch::Rwkv5(c) => c.vocab_size as usize,
            Arch::Rwkv6(c) => c.vocab_size as usize,
            Arch::Rwkv7(c) => c.vocab_size as usize,
            Arch::S4d(c) => c.d_output as usize,
            Arch::MambaSensor(c) => c.d_output as usize,
        }
    }

    /// `(state_len, scratch_len)` in f32 elements, checked.
    pub fn sizes(&self) -> Result<Sizes, FormatError> {
        let ov = FormatError::DimensionOverflow;
        let m = |a: u64, b: u64| a.checked_mul(b).ok_or(ov);
        let a = |a: u64, b: u64| a.checked_add(b).ok_or(ov);
        let l = self.n_layers as u64;
        let sensor;
        let arch = match &self.arch {
            Arch::MambaSensor(c) => {
                sensor = Arch::Mamba1(c.block());
                &sensor
            }
            a => a,
        };
        let (state_per_layer, scratch) = match arch {
            Arch::MambaSensor(_) => return Err(FormatError::BadConfig("layout")),
            Arch::Mamba1(c) => {
                let di = c.d_inner as u64;
                let conv = m(di, (c.d_conv as u64).saturating_sub(1))?;
                let ssm = m(di, c.d_state as u64)?;
                let xproj = a(c.dt_rank as u64, m(2, c.d_state as u64)?)?;
                // resid + normed + xz + dbc
                let scratch = a(a(m(2, c.d_model as u64)?, m(2, di)?)?, xproj)?;
                (a(conv, ssm)?, scratch)
            }
            Arch::Mamba2(c) => {
                let di = c.d_inner as u64;
                let conv_dim = a(di, m(m(2, c.n_groups as u64)?, c.d_state as u64)?)?;
                let conv = m(conv_dim, (c.d_conv as u64).saturating_sub(1))?;
                let ssm = m(m(c.n_heads as u64, c.head_dim as u64)?, c.d_state as u64)?;
                let d_in_proj = a(a(di, conv_dim)?, c.n_heads as u64)?;
                let scratch = a(m(2, c.d_model as u64)?, d_in_proj)?;
                (a(conv, ssm)?, scratch)
            }
            Arch::S4d(c) => {
                let h = c.d_model as u64;
                let out = if c.glu { m(2, h)? } else { h };
                let state = m(h, c.d_state as u64)?;
                let scratch = a(m(2, h)?, out)?;
                (state, scratch)
            }
            Arch::Rwkv4(c) => {
                // att_xx, aa, bb, pp, ffn_xx
                let state = m(5, c.d_model as u64)?;
                // x, ln, xm, r, k, v, o + ffn hidden
                let scratch = a(m(7, c.d_model as u64)?, c.d_ffn as u64)?;
                (state, scratch)
            }
            Arch::Rwkv7(c) => {
                // att_xx, heads × N × N, ffn_xx
                let d = c.d_model as u64;
                let state = a(m(2, d)?, m(d, c.head_size as u64)?)?;
                // x, ln, xm, r, w, k, v, a, g, kk, v_first, o + low-rank + ffn hidden
                let lora = [c.d_lora_w, c.d_lora_a, c.d_lora_v, c.d_lora_g]
                    .into_iter()
                    .max()
                    .unwrap_or(0);
                let scratch = a(a(m(12, d)?, lora as u64)?, c.d_ffn as u64)?;
                (state, scratch)
            }
            Arch::Rwkv6(c) => {
                // att_xx, heads × S × S, ffn_xx
                let d = c.d_model as u64;
                let state = a(m(2, d)?, m(d, c.head_size as u64)?)?;
                // x, ln, xm, m, r, k, v, g, w + low-rank + ffn hidden
                let lora = a(m(5, c.d_lora_mix as u64)?, c.d_lora_decay as u64)?;
                let scratch = a(a(m(9, d)?, lora)?, c.d_ffn as u64)?;
                (state, scratch)
            }
            Arch::Rwkv5(c) => {
                // att_xx, heads × S × S, ffn_xx
                let d = c.d_model as u64;
                let heads = m(d, c.head_size as u64)?;
                let state = a(m(2, d)?, heads)?;
                // x, ln, xm, r, k, v, o (+ g when gated) + ffn hidden
                let n = if c.gated { 8 } else { 7 };
                let scratch = a(m(n, d)?, c.d_ffn as u64)?;
                (state, scratch)
            }
        };
        let int = self.compute == Compute::Int;
        let scratch = if int {
            crate::int_step::int_scratch_len(self).ok_or(ov)? as u64
        } else {
            scratch
        };
        let model_state = m(state_per_layer, l)?;
        let model_scratch = scratch;
        let mut state = model_state;
        let mut scratch = scratch;
        if let Some(fe) = &self.front_end {
            // The front end's ring and counters follow the model state; its FFT buffer and
            // the feature vector follow the model scratch.
            if int {
                state = a(state, crate::int_step::fe_state_len(fe) as u64)?;
                scratch = a(scratch, crate::int_step::fe_scratch_len(fe) as u64)?;
            } else {
                state = a(state, fe.frame_len as u64 + 2)?;
                scratch = a(scratch, a(fe.n_fft as u64, fe.n_mels as u64)?)?;
            }
        }
        // Sizes must be addressable as f32 slices on a 32-bit target too.
        let lim = (u32::MAX / 8) as u64;
        if state > lim || scratch > lim {
            return Err(ov);
        }
        // Every tensor's byte size must fit as well.
        for i in 0..self.n_tensors() {
            let spec = self
                .tensor_spec(i)
                .ok_or(FormatError::BadConfig("layout"))?;
            let n = spec.numel().ok_or(ov)?;
            if n > (u32::MAX / 4) as u64 {
                return Err(ov);
            }
        }
        Ok(Sizes {
            state: state as usize,
            state_per_layer: state_per_layer as usize,
            scratch: scratch as usize,
            model_state: model_state as usize,
            model_scratch: model_scratch as usize,
        })
    }
}

/// Buffer sizes in elements: f32 for float and w8a8 models, i32 for integer-only ones
/// (whose scratch packs its `i16` vectors two to an element).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    /// Whole state: the model's, then the front end's (if any).
    pub state: usize,
    pub state_per_layer: usize,
    /// Whole scratch: the model's, then the front end's FFT buffer and feature vector.
    pub scratch: usize,
    /// The model's part of the state (all layers).
    pub model_state: usize,
    /// The model's part of the scratch.
    pub model_scratch: usize,
}
