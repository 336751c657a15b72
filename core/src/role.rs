//! Tensor roles: what each tensor of the tensor table is (format layer: stable codes).

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
    /// Gated MLP: gate projection `[d_ffn, d_model]`.
    MlpGate = 74, "mlp.gate_proj", true;
    /// Gated MLP: up projection `[d_ffn, d_model]`.
    MlpUp = 75, "mlp.up_proj", true;
    /// Gated MLP: down projection `[d_model, d_ffn]`.
    MlpDown = 76, "mlp.down_proj", true;
    /// S5: the discretised modes λ as (re, im) pairs, `[P, 2]`.
    S5Lambda = 77, "s5.lambda", false;
    /// S5: the discretised input matrix B̄, `[P, H]` real or `[2P, H]` complex (rows re, im).
    S5B = 78, "s5.B", true;
    /// S5: the output matrix, `[H, P]` on `Re h`, or `[H, 2P]` (`Re C̃`, `−Im C̃` per mode).
    S5C = 79, "s5.C", true;
    /// Multi-rate networks (`net`): blockwise downsampling `[c_out, r·c_in]`.
    NetDown = 80, "net.down", true;
    /// Multi-rate networks (`net`): upsampling `[r·c_out, c_in]`.
    NetUp = 81, "net.up", true;
}

/// Where a tensor belongs: `None` = model-global.
pub type LayerIndex = Option<u16>;

/// Fixed-capacity list of roles (no allocation).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RoleList {
    pub(crate) roles: [Role; 32],
    pub(crate) len: usize,
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
