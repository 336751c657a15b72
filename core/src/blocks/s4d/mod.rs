//! S4D block (arXiv 2206.11893; state-spaces/s4 `S4D` inside `S4Model`): LayerNorm (before
//! the mixer, or after the residual), per channel and complex mode `h ← dA·h + u`,
//! `y = 2·Re(Σ C̃·h) + D·u`, GELU, the output linear (with GLU, or plain), residual.
//! `dA = exp(dt·A)` and `C̃ = C·(exp(dt·A) − 1)/A` (zero-order hold) are precomputed at
//! conversion, so the step equals the convolution with `K[l] = 2·Re(Σ C·dB·dA^l)`.
//!
//! Modes: float and w8a8 (`float.rs`), integer-only (`int.rs`). State per layer:
//! `d_model × d_state` (N/2 complex modes per channel as (re, im) pairs).

pub(crate) mod float;
pub(crate) mod int;

use serde::{Deserialize, Serialize};

use super::{add, mul, pos, s1, s2, s3, Block, BlockKind, Layer, Modes, Parts, Shape};
use crate::error::{FormatError, StepError};
use crate::probe::{Probe, Site};
use crate::role::{Role, RoleList};
use crate::stages::{FinalNorm, Head, Out, Stem};

/// What the S4D model's head produces each step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HeadKind {
    /// Class logits.
    Classification,
    /// Regression values.
    Regression,
}

/// S4D sensor model configuration (format 1.x; state-spaces/s4 `S4D` layers inside an
/// `S4Model`).
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

/// One S4D block's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct S4dBlock {
    /// Model width H.
    pub d_model: u32,
    /// State size N (N/2 complex modes per channel).
    pub d_state: u32,
    pub norm_eps: f32,
    /// LayerNorm before the mixer (true) or after the residual (false).
    pub prenorm: bool,
    /// Output linear H -> 2H then GLU (true), or H -> H (false).
    pub glu: bool,
}

impl S4dConfig {
    /// The block of every layer.
    pub fn block(&self) -> S4dBlock {
        S4dBlock {
            d_model: self.d_model,
            d_state: self.d_state,
            norm_eps: self.norm_eps,
            prenorm: self.prenorm,
            glu: self.glu,
        }
    }
}

impl Parts for S4dConfig {
    fn parts(&self) -> (Stem, Block, Head) {
        (
            Stem::Encoder {
                d_input: self.d_input,
            },
            Block::S4d(self.block()),
            Head {
                norm: if self.final_norm {
                    FinalNorm::Layer { eps: self.norm_eps }
                } else {
                    FinalNorm::None
                },
                out: Out::Decoder {
                    d_output: self.d_output,
                },
            },
        )
    }
}

impl S4dBlock {
    /// Rows of the output linear.
    fn out_rows(&self) -> Option<u32> {
        if self.glu {
            self.d_model.checked_mul(2)
        } else {
            Some(self.d_model)
        }
    }
}

impl BlockKind for S4dBlock {
    const NAME: &'static str = "s4d";
    const SUMMARY: &'static str = "S4D diagonal complex SSM (ZOH terms precomputed), GELU, GLU";
    const MODES: Modes = Modes {
        float: true,
        w8a8: true,
        int: true,
    };
    const FAST_KERNELS: bool = false;

    fn d_model(&self) -> u32 {
        self.d_model
    }

    fn validate(&self) -> Result<(), FormatError> {
        pos(self.d_model, "d_model must be in 1..=2^24")?;
        pos(self.d_state, "d_state must be in 1..=2^24")?;
        if !self.d_state.is_multiple_of(2) {
            return Err(FormatError::BadConfig(
                "S4D d_state must be even (N/2 complex modes)",
            ));
        }
        super::eps(self.norm_eps)
    }

    fn roles(&self, l: &mut RoleList) {
        for r in [
            Role::Norm,
            Role::NormBias,
            Role::DA,
            Role::CB,
            Role::D,
            Role::OutLinear,
            Role::OutLinearBias,
        ] {
            l.push_if(true, r);
        }
    }

    fn shape(&self, role: Role) -> Option<Shape> {
        Some(match role {
            Role::Norm | Role::NormBias | Role::D => s1(self.d_model),
            // Per channel, `d_state / 2` complex modes as (re, im) pairs (one row per
            // channel: `TensorSpec::rows_cols`).
            Role::DA | Role::CB => s3(self.d_model, self.d_state / 2, 2),
            Role::OutLinear => s2(self.out_rows()?, self.d_model),
            Role::OutLinearBias => s1(self.out_rows()?),
            _ => return None,
        })
    }

    fn state_len(&self) -> Result<u64, FormatError> {
        mul(self.d_model as u64, self.d_state as u64)
    }

    fn scratch_len(&self) -> Result<u64, FormatError> {
        // z + the output linear's rows
        let h = self.d_model as u64;
        add(h, if self.glu { mul(2, h)? } else { h })
    }

    fn macs(&self) -> u64 {
        self.d_model as u64 * self.d_state as u64 / 2 * 6
    }

    fn matrix_input(&self, role: Role) -> Option<Site> {
        match role {
            Role::OutLinear => Some(Site::S4dGeluOut),
            _ => None,
        }
    }

    fn int_state_frac_entry(&self, _i: usize) -> Option<usize> {
        Some(crate::int_step::plan::S4D_H_FRAC)
    }

    /// `dA` in Q1.15, `C·dB` int8 with one scale per channel, `D` and the output linear's
    /// bias f16 (`float::layer` reads each in either encoding).
    fn compact_dtype(&self, role: Role) -> Option<crate::DType> {
        Some(match role {
            Role::DA => crate::DType::I16,
            Role::CB => crate::DType::I8,
            Role::D | Role::OutLinearBias => crate::DType::F16,
            _ => return None,
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
