//! Gated MLP block: the channel mixer of hybrid stacks (Jamba's and Zamba's MLP layers,
//! Llama's SwiGLU feed-forward), as its own block with its norm and residual:
//!
//! ```text
//! n = norm(x)                          RMSNorm (weight) or LayerNorm (weight, bias)
//! h = act(W_gate · n) ⊙ (W_up · n)     act: SiLU (SwiGLU) or exact GELU (GeGLU)
//! x = x + W_down · h
//! ```
//! No biases, no state. Modes: float and w8a8 (`float.rs`; the three matrices follow
//! their stored dtypes). Reference: `tests/goldens/gen_mlp.py` (NumPy).

pub(crate) mod float;

use serde::{Deserialize, Serialize};

use super::{add, mul, pos, s1, s2, BlockKind, Layer, Modes, Shape};
use crate::error::{FormatError, StepError};
use crate::probe::{Probe, Site};
use crate::role::{Role, RoleList};

/// The norm before the gated MLP.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum MlpNorm {
    /// RMSNorm, weight [`Role::Norm`].
    Rms { eps: f32 },
    /// LayerNorm, weight and bias ([`Role::Norm`], [`Role::NormBias`]).
    Layer { eps: f32 },
}

/// The gate's activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MlpAct {
    /// `x·sigmoid(x)` (SwiGLU).
    Silu,
    /// Exact (erf) GELU, as `torch.nn.GELU()` (GeGLU).
    Gelu,
}

/// One gated MLP block's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MlpBlock {
    pub d_model: u32,
    /// Hidden width (rows of the gate and up projections).
    pub d_ffn: u32,
    pub norm: MlpNorm,
    pub act: MlpAct,
}

impl BlockKind for MlpBlock {
    const NAME: &'static str = "mlp";
    const SUMMARY: &'static str = "gated MLP channel mixer (SwiGLU / GeGLU), pre-norm, residual";
    const MODES: Modes = Modes {
        float: true,
        w8a8: true,
        int: false,
    };
    const FAST_KERNELS: bool = false;

    fn d_model(&self) -> u32 {
        self.d_model
    }

    fn validate(&self) -> Result<(), FormatError> {
        pos(self.d_model, "d_model must be in 1..=2^24")?;
        pos(self.d_ffn, "d_ffn must be in 1..=2^24")?;
        match self.norm {
            MlpNorm::Rms { eps } | MlpNorm::Layer { eps } => super::eps(eps),
        }
    }

    fn roles(&self, l: &mut RoleList) {
        l.push_if(true, Role::Norm);
        l.push_if(matches!(self.norm, MlpNorm::Layer { .. }), Role::NormBias);
        for r in [Role::MlpGate, Role::MlpUp, Role::MlpDown] {
            l.push_if(true, r);
        }
    }

    fn shape(&self, role: Role) -> Option<Shape> {
        Some(match role {
            Role::Norm | Role::NormBias => s1(self.d_model),
            Role::MlpGate | Role::MlpUp => s2(self.d_ffn, self.d_model),
            Role::MlpDown => s2(self.d_model, self.d_ffn),
            _ => return None,
        })
    }

    fn state_len(&self) -> Result<u64, FormatError> {
        Ok(0)
    }

    fn scratch_len(&self) -> Result<u64, FormatError> {
        // n (then W_down·h), gate (then h), up
        add(self.d_model as u64, mul(2, self.d_ffn as u64)?)
    }

    fn macs(&self) -> u64 {
        // The gating product.
        self.d_ffn as u64
    }

    fn matrix_input(&self, role: Role) -> Option<Site> {
        match role {
            Role::MlpGate | Role::MlpUp => Some(Site::NormOut),
            Role::MlpDown => Some(Site::MlpHidden),
            _ => None,
        }
    }

    #[inline]
    fn layer<P: Probe>(
        &self,
        at: Layer<'_, '_>,
        resid: &mut [f32],
        _state: &mut [f32],
        scratch: &mut [f32],
        probe: &mut P,
    ) -> Result<(), StepError> {
        float::layer(self, at, resid, scratch, probe)
    }
}
