//! Mamba-1 block (arXiv 2312.00752; HF `MambaMixer` semantics): RMSNorm, in_proj to
//! `x` and `z`, causal depthwise conv + SiLU, x_proj to `dt`, `B`, `C`, the selective scan
//! `h ← exp(dt·A) ⊙ h + (dt·B)·u`, `y = C·h + D·u`, gate `y·SiLU(z)`, out_proj, residual.
//!
//! Modes: float and w8a8 (`float.rs`), integer-only (`int.rs`). State per layer: the conv
//! history (`d_inner × (d_conv − 1)`), then the SSM state (`d_inner × d_state`).

pub(crate) mod float;
pub(crate) mod int;

use serde::{Deserialize, Serialize};

use super::{add, mul, pos, s1, s2, Block, BlockKind, Layer, Modes, Parts, Shape};
use crate::error::{FormatError, StepError};
use crate::probe::{Probe, Site};
use crate::role::{Role, RoleList};
use crate::stages::{FinalNorm, Head, Out, Stem};

/// Mamba-1 language model configuration (format 1.x; HF `MambaConfig` semantics).
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

/// A Mamba-1 stack on sensor vectors (format 1.x): a linear encoder instead of the
/// embedding, the Mamba-1 blocks (HF semantics), the final RMSNorm and a linear decoder
/// with bias.
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

/// One Mamba-1 block's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Mamba1Block {
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

impl Mamba1Config {
    /// The block of every layer.
    pub fn block(&self) -> Mamba1Block {
        Mamba1Block {
            d_model: self.d_model,
            d_inner: self.d_inner,
            d_state: self.d_state,
            d_conv: self.d_conv,
            dt_rank: self.dt_rank,
            norm_eps: self.norm_eps,
            in_proj_bias: self.in_proj_bias,
            conv_bias: self.conv_bias,
            out_proj_bias: self.out_proj_bias,
        }
    }
}

impl MambaSensorConfig {
    /// The block of every layer.
    pub fn block(&self) -> Mamba1Block {
        Mamba1Block {
            d_model: self.d_model,
            d_inner: self.d_inner,
            d_state: self.d_state,
            d_conv: self.d_conv,
            dt_rank: self.dt_rank,
            norm_eps: self.norm_eps,
            in_proj_bias: self.in_proj_bias,
            conv_bias: self.conv_bias,
            out_proj_bias: self.out_proj_bias,
        }
    }
}

impl Parts for Mamba1Config {
    fn parts(&self) -> (Stem, Block, Head) {
        (
            Stem::Embedding {
                vocab: self.vocab_size,
            },
            Block::Mamba1(self.block()),
            Head {
                norm: FinalNorm::Rms { eps: self.norm_eps },
                out: Out::LmHead {
                    tied: self.tied_embeddings,
                },
            },
        )
    }
}

impl Parts for MambaSensorConfig {
    fn parts(&self) -> (Stem, Block, Head) {
        (
            Stem::Encoder {
                d_input: self.d_input,
            },
            Block::Mamba1(self.block()),
            Head {
                norm: FinalNorm::Rms { eps: self.norm_eps },
                out: Out::Decoder {
                    d_output: self.d_output,
                },
            },
        )
    }
}

impl Mamba1Block {
    /// `dt_rank + 2·d_state`: x_proj's rows.
    fn xproj_rows(&self) -> Option<u32> {
        self.dt_rank.checked_add(self.d_state.checked_mul(2)?)
    }
}

impl BlockKind for Mamba1Block {
    const NAME: &'static str = "mamba1";
    const SUMMARY: &'static str = "Mamba-1 selective scan (conv, x_proj, dt_proj, A, D, gate)";
    const MODES: Modes = Modes {
        float: true,
        w8a8: true,
        int: true,
    };
    const FAST_KERNELS: bool = true;

    fn d_model(&self) -> u32 {
        self.d_model
    }

    fn validate(&self) -> Result<(), FormatError> {
        pos(self.d_model, "d_model must be in 1..=2^24")?;
        pos(self.d_inner, "d_inner must be in 1..=2^24")?;
        pos(self.d_state, "d_state must be in 1..=2^24")?;
        pos(self.dt_rank, "dt_rank must be in 1..=2^24")?;
        if self.d_conv < 1 || self.d_conv > super::MAX_D_CONV {
            return Err(FormatError::BadConfig("d_conv must be in 1..=16"));
        }
        super::eps(self.norm_eps)
    }

    fn roles(&self, l: &mut RoleList) {
        l.push_if(true, Role::Norm);
        l.push_if(true, Role::InProj);
        l.push_if(self.in_proj_bias, Role::InProjBias);
        l.push_if(true, Role::ConvW);
        l.push_if(self.conv_bias, Role::ConvB);
        l.push_if(true, Role::XProj);
        l.push_if(true, Role::DtProj);
        l.push_if(true, Role::DtProjBias);
        l.push_if(true, Role::A);
        l.push_if(true, Role::D);
        l.push_if(true, Role::OutProj);
        l.push_if(self.out_proj_bias, Role::OutProjBias);
    }

    fn shape(&self, role: Role) -> Option<Shape> {
        Some(match role {
            Role::Norm => s1(self.d_model),
            Role::InProj => s2(self.d_inner.checked_mul(2)?, self.d_model),
            Role::InProjBias => s1(self.d_inner.checked_mul(2)?),
            Role::ConvW => s2(self.d_inner, self.d_conv),
            Role::ConvB | Role::DtProjBias | Role::D => s1(self.d_inner),
            Role::XProj => s2(self.xproj_rows()?, self.d_inner),
            Role::DtProj => s2(self.d_inner, self.dt_rank),
            Role::A => s2(self.d_inner, self.d_state),
            Role::OutProj => s2(self.d_model, self.d_inner),
            Role::OutProjBias => s1(self.d_model),
            _ => return None,
        })
    }

    /// `A` and the conv weights f16 (`float::layer` reads each in either encoding; the
    /// conversion is exact, so the compact step equals the f32 step on the converted
    /// values bit for bit).
    fn compact_dtype(&self, role: Role) -> Option<crate::DType> {
        match role {
            Role::A | Role::ConvW => Some(crate::DType::F16),
            _ => None,
        }
    }

    fn state_len(&self) -> Result<u64, FormatError> {
        let di = self.d_inner as u64;
        let conv = mul(di, (self.d_conv as u64).saturating_sub(1))?;
        add(conv, mul(di, self.d_state as u64)?)
    }

    fn scratch_len(&self) -> Result<u64, FormatError> {
        // normed + xz + dbc
        let di = self.d_inner as u64;
        let xproj = add(self.dt_rank as u64, mul(2, self.d_state as u64)?)?;
        add(add(self.d_model as u64, mul(2, di)?)?, xproj)
    }

    fn macs(&self) -> u64 {
        self.d_inner as u64 * (self.d_conv as u64 + 3 * self.d_state as u64)
    }

    fn matrix_input(&self, role: Role) -> Option<Site> {
        Some(match role {
            Role::InProj => Site::NormOut,
            Role::XProj => Site::MambaConvOut,
            Role::DtProj => Site::MambaDtIn,
            Role::OutProj => Site::MambaGated,
            _ => return None,
        })
    }

    /// The conv history is in the conv input's format, the SSM state in the state's.
    fn int_state_frac_entry(&self, i: usize) -> Option<usize> {
        let hist = self.d_inner as usize * (self.d_conv as usize).saturating_sub(1);
        Some(if i < hist {
            crate::int_step::plan::M_X_FRAC
        } else {
            crate::int_step::plan::M_H_FRAC
        })
    }

    #[inline]
    fn layer<P: Probe>(
        &self,
        at: Layer<'_, '_>,
        resid: &mut [f32],
        state: &mut [f32],
        scratch: &mut [f32],
        probe: &mut P,
    ) -> Result<(), StepError> {
        float::layer(self, at, resid, state, scratch, probe)
    }

    fn int_validate(&self, d_input: u32) -> Result<(), FormatError> {
        int::validate(self, d_input)
    }

    fn int_scratch_len(&self) -> usize {
        int::scratch_len(self)
    }

    #[inline]
    fn layer_int(
        &self,
        at: Layer<'_, '_>,
        resid: &mut [i16],
        state: &mut [i32],
        scratch: &mut [i32],
    ) -> Result<(), StepError> {
        int::layer(self, at, resid, state, scratch)
    }
}
