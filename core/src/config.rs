//! Model configuration (stored in the blob header) and the canonical tensor layout that
//! follows from it. The writer (host side) and the parser share this one definition.

use serde::{Deserialize, Serialize};

use crate::blocks::Arch;
use crate::error::FormatError;
use crate::frontend::FrontEndConfig;
use crate::stack::Stack;

/// Largest supported causal-conv kernel width.
pub const MAX_D_CONV: u32 = 16;
/// Largest supported number of layers.
pub const MAX_LAYERS: u32 = 1024;

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
    pub(crate) const fn new() -> Self {
        RoleList {
            roles: [Role::Embedding; 32],
            len: 0,
        }
    }
    pub(crate) fn push_if(&mut self, cond: bool, r: Role) {
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

/// A configuration's tensor layout: its stack and the role lists of the model-global
/// and per-layer tensors. Every method takes the configuration it was made from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layout {
    pub(crate) stack: Stack,
    global: RoleList,
    layer: RoleList,
}

impl Layout {
    pub(crate) fn n_tensors(&self, c: &Config) -> usize {
        self.global.len + c.n_layers as usize * self.layer.len
    }

    pub(crate) fn index(&self, c: &Config, layer: LayerIndex, role: Role) -> Option<usize> {
        match layer {
            None => self.global.position(role),
            Some(l) if (l as u32) < c.n_layers => {
                let (g, lr) = (self.global.len, &self.layer);
                lr.position(role).map(|p| g + l as usize * lr.len + p)
            }
            Some(_) => None,
        }
    }

    pub(crate) fn spec(&self, c: &Config, index: usize) -> Option<TensorSpec> {
        let (g, lr) = (&self.global, &self.layer);
        let (layer, role) = if index < g.len {
            (None, g.roles[index])
        } else {
            let i = index - g.len;
            if lr.len == 0 {
                return None;
            }
            let l = i / lr.len;
            if l >= c.n_layers as usize {
                return None;
            }
            (Some(l as u16), lr.roles[i % lr.len])
        };
        let (rank, shape) = match role {
            Role::MelFilters => {
                let fe = c.front_end.as_ref()?;
                (2, [fe.n_mels, fe.n_fft / 2 + 1, 0, 0])
            }
            Role::Window => (1, [c.front_end.as_ref()?.frame_len, 0, 0, 0]),
            Role::IntPlan => (1, [crate::int_step::GLOBAL_PLAN_LEN as u32, 0, 0, 0]),
            Role::IntLayerPlan => (1, [crate::int_step::LAYER_PLAN_LEN as u32, 0, 0, 0]),
            _ if layer.is_some() => self.stack.block.shape(role)?,
            _ => self.stack.global_shape(role)?,
        };
        Some(TensorSpec {
            layer,
            role,
            rank,
            shape,
        })
    }
}

impl Config {
    /// The model as a stack of blocks: input stage, blocks, final norm and head.
    pub fn stack(&self) -> Stack {
        self.arch.stack(self.n_layers)
    }

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
        let stack = self.stack();
        stack.validate()?;
        if self.compute == Compute::Int {
            crate::int_step::validate_stack(&stack)?;
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

    /// The model-global tensors in canonical order: the front end's and the integer
    /// plan's (when present), then the stack's stages.
    pub(crate) fn global_roles(&self) -> RoleList {
        let mut l = RoleList::new();
        let int = self.compute == Compute::Int;
        l.push_if(self.front_end.is_some(), Role::MelFilters);
        l.push_if(int && self.front_end.is_some(), Role::Window);
        l.push_if(int, Role::IntPlan);
        self.stack().global_roles(&mut l);
        l
    }

    /// Every layer's tensors in canonical order: the block's, then the integer layer
    /// plan (integer models).
    pub(crate) fn layer_roles(&self) -> RoleList {
        let mut l = RoleList::new();
        self.stack().block.roles(&mut l);
        l.push_if(self.compute == Compute::Int, Role::IntLayerPlan);
        l
    }

    /// The canonical tensor layout (computed once; [`crate::Model`] keeps it).
    pub(crate) fn layout(&self) -> Layout {
        Layout {
            stack: self.stack(),
            global: self.global_roles(),
            layer: self.layer_roles(),
        }
    }

    /// Number of tensors in the canonical layout.
    pub fn n_tensors(&self) -> usize {
        self.layout().n_tensors(self)
    }

    /// Index of a tensor in the canonical layout.
    pub fn tensor_index(&self, layer: LayerIndex, role: Role) -> Option<usize> {
        self.layout().index(self, layer, role)
    }

    /// The spec of tensor `index` in the canonical layout (globals first, then each
    /// layer's tensors in role order).
    pub fn tensor_spec(&self, index: usize) -> Option<TensorSpec> {
        self.layout().spec(self, index)
    }

    /// Input: `Some(vocab)` for token models, `None` for vector models.
    pub fn vocab_size(&self) -> Option<u32> {
        self.stack().vocab_size()
    }

    /// Length of the input vector for vector models (0 for token models).
    pub fn d_input(&self) -> usize {
        self.stack().d_input()
    }

    /// Values produced per step (logits, classes or regression outputs).
    pub fn d_output(&self) -> usize {
        self.stack().d_output()
    }

    /// `(state_len, scratch_len)` in f32 elements, checked.
    pub fn sizes(&self) -> Result<Sizes, FormatError> {
        let ov = FormatError::DimensionOverflow;
        let m = |a: u64, b: u64| a.checked_mul(b).ok_or(ov);
        let a = |a: u64, b: u64| a.checked_add(b).ok_or(ov);
        let l = self.n_layers as u64;
        let stack = self.stack();
        let state_per_layer = stack.block.state_len()?;
        let scratch = stack.scratch_len()?;
        let int = self.compute == Compute::Int;
        let scratch = if int {
            crate::int_step::int_scratch_len(&stack) as u64
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
