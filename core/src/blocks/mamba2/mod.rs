//! Mamba-2 block (arXiv 2405.21060; HF `Mamba2Mixer` semantics): RMSNorm, in_proj to
//! `z`, `xBC` and `dt`, causal conv + SiLU over `xBC`, per head the scalar-decay scan
//! `h ← exp(dt·A)·h + dt·B·x`, `y = C·h + D·x`, the gated RMSNorm per group, out_proj,
//! residual.
//!
//! Modes: float and w8a8 (`float.rs`). State per layer: the conv history
//! (`conv_dim × (d_conv − 1)`), then the SSM state (`n_heads × head_dim × d_state`).

pub(crate) mod float;

use serde::{Deserialize, Serialize};

use super::{add, mul, pos, s1, s2, Block, BlockKind, Layer, Modes, Parts, Shape};
use crate::error::{FormatError, StepError};
use crate::probe::Probe;
use crate::role::{Role, RoleList};
use crate::stages::{FinalNorm, Head, Out, Stem};

/// Mamba-2 language model configuration (format 1.x; HF `Mamba2Config` semantics).
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

/// One Mamba-2 block's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Mamba2Block {
    pub d_model: u32,
    pub d_inner: u32,
    pub d_state: u32,
    pub d_conv: u32,
    pub n_heads: u32,
    pub head_dim: u32,
    pub n_groups: u32,
    pub norm_eps: f32,
    /// Lower clamp of dt after softplus.
    pub dt_min: f32,
    /// Upper clamp of dt after softplus (may be +inf).
    pub dt_max: f32,
    /// Group size of the gated RMSNorm.
    pub norm_group_size: u32,
    pub in_proj_bias: bool,
    pub conv_bias: bool,
    pub out_proj_bias: bool,
}

impl Parts for Mamba2Config {
    fn parts(&self) -> (Stem, Block, Head) {
        let block = Mamba2Block {
            d_model: self.d_model,
            d_inner: self.d_inner,
            d_state: self.d_state,
            d_conv: self.d_conv,
            n_heads: self.n_heads,
            head_dim: self.head_dim,
            n_groups: self.n_groups,
            norm_eps: self.norm_eps,
            dt_min: self.dt_min,
            dt_max: self.dt_max,
            norm_group_size: self.norm_group_size,
            in_proj_bias: self.in_proj_bias,
            conv_bias: self.conv_bias,
            out_proj_bias: self.out_proj_bias,
        };
        (
            Stem::Embedding {
                vocab: self.vocab_size,
            },
            Block::Mamba2(block),
            Head {
                norm: FinalNorm::Rms { eps: self.norm_eps },
                out: Out::LmHead {
                    tied: self.tied_embeddings,
                },
            },
        )
    }
}

impl Mamba2Block {
    /// Channels of the conv: `x`, `B` and `C`.
    fn conv_dim(&self) -> Option<u32> {
        self.d_inner
            .checked_add(self.n_groups.checked_mul(self.d_state)?.checked_mul(2)?)
    }
    /// Rows of in_proj: `z`, `xBC`, `dt`.
    fn in_proj_rows(&self) -> Option<u32> {
        self.d_inner
            .checked_add(self.conv_dim()?)?
            .checked_add(self.n_heads)
    }
}

impl BlockKind for Mamba2Block {
    const NAME: &'static str = "mamba2";
    const SUMMARY: &'static str = "Mamba-2 SSD heads (scalar decay per head), gated RMSNorm";
    const MODES: Modes = Modes {
        float: true,
        w8a8: true,
        int: false,
    };
    const FAST_KERNELS: bool = true;

    fn d_model(&self) -> u32 {
        self.d_model
    }

    fn validate(&self) -> Result<(), FormatError> {
        pos(self.d_model, "d_model must be in 1..=2^24")?;
        pos(self.d_inner, "d_inner must be in 1..=2^24")?;
        pos(self.d_state, "d_state must be in 1..=2^24")?;
        pos(self.n_heads, "n_heads must be in 1..=2^24")?;
        pos(self.head_dim, "head_dim must be in 1..=2^24")?;
        pos(self.n_groups, "n_groups must be in 1..=2^24")?;
        pos(self.norm_group_size, "norm_group_size must be in 1..=2^24")?;
        if self.d_conv < 1 || self.d_conv > super::MAX_D_CONV {
            return Err(FormatError::BadConfig("d_conv must be in 1..=16"));
        }
        if (self.n_heads as u64) * (self.head_dim as u64) != self.d_inner as u64 {
            return Err(FormatError::BadConfig(
                "n_heads * head_dim must equal d_inner",
            ));
        }
        if !self.n_heads.is_multiple_of(self.n_groups) {
            return Err(FormatError::BadConfig(
                "n_heads must be a multiple of n_groups",
            ));
        }
        if !self.d_inner.is_multiple_of(self.norm_group_size) {
            return Err(FormatError::BadConfig(
                "d_inner must be a multiple of norm_group_size",
            ));
        }
        super::eps(self.norm_eps)?;
        // NaN fails both comparisons.
        if !(crate::fbits::le(0.0, self.dt_min)
            && crate::fbits::is_finite(self.dt_min)
            && crate::fbits::le(self.dt_min, self.dt_max))
        {
            return Err(FormatError::BadConfig(
                "dt limits must satisfy 0 <= dt_min <= dt_max",
            ));
        }
        Ok(())
    }

    fn roles(&self, l: &mut RoleList) {
        l.push_if(true, Role::Norm);
        l.push_if(true, Role::InProj);
        l.push_if(self.in_proj_bias, Role::InProjBias);
        l.push_if(true, Role::ConvW);
        l.push_if(self.conv_bias, Role::ConvB);
        l.push_if(true, Role::DtBias);
        l.push_if(true, Role::A);
        l.push_if(true, Role::D);
        l.push_if(true, Role::GatedNorm);
        l.push_if(true, Role::OutProj);
        l.push_if(self.out_proj_bias, Role::OutProjBias);
    }

    fn shape(&self, role: Role) -> Option<Shape> {
        Some(match role {
            Role::Norm => s1(self.d_model),
            Role::InProj => s2(self.in_proj_rows()?, self.d_model),
            Role::InProjBias => s1(self.in_proj_rows()?),
            Role::ConvW => s2(self.conv_dim()?, self.d_conv),
            Role::ConvB => s1(self.conv_dim()?),
            Role::DtBias | Role::A | Role::D => s1(self.n_heads),
            Role::GatedNorm => s1(self.d_inner),
            Role::OutProj => s2(self.d_model, self.d_inner),
            Role::OutProjBias => s1(self.d_model),
            _ => return None,
        })
    }

    fn state_len(&self) -> Result<u64, FormatError> {
        let di = self.d_inner as u64;
        let conv_dim = add(di, mul(mul(2, self.n_groups as u64)?, self.d_state as u64)?)?;
        let conv = mul(conv_dim, (self.d_conv as u64).saturating_sub(1))?;
        let ssm = mul(
            mul(self.n_heads as u64, self.head_dim as u64)?,
            self.d_state as u64,
        )?;
        add(conv, ssm)
    }

    fn scratch_len(&self) -> Result<u64, FormatError> {
        // normed + the in_proj output
        let di = self.d_inner as u64;
        let conv_dim = add(di, mul(mul(2, self.n_groups as u64)?, self.d_state as u64)?)?;
        let d_in_proj = add(add(di, conv_dim)?, self.n_heads as u64)?;
        add(self.d_model as u64, d_in_proj)
    }

    fn macs(&self) -> u64 {
        let conv_dim = self.d_inner as u64 + 2 * self.n_groups as u64 * self.d_state as u64;
        conv_dim * self.d_conv as u64 + 3 * self.d_inner as u64 * self.d_state as u64
    }

    #[inline]
    fn layer<P: Probe>(
        &self,
        at: Layer<'_, '_>,
        resid: &mut [f32],
        state: &mut [f32],
        scratch: &mut [f32],
        _probe: &mut P,
    ) -> Result<(), StepError> {
        float::layer(self, at, resid, state, scratch)
    }
}
