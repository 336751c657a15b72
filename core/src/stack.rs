//! A model as a stack: an input stage ([`Stem`]), `n_layers` blocks ([`Block`]), and a
//! final norm with its head ([`Head`]). The stages own their tensors (model-global, in the
//! canonical order stem, then head), their checks and their steps; the blocks are
//! reached only through [`Block`] (see [`crate::blocks`]).

use crate::blocks::{self, Block, Shape};
use crate::config::{Role, RoleList};
use crate::error::{FormatError, StepError};
use crate::kernels;
use crate::layers::linear;
use crate::model::Model;
use crate::probe::{Probe, Site};

/// The input stage: what turns a step's input into the residual stream.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Stem {
    /// A token id selects a row of the embedding matrix ([`Role::Embedding`],
    /// `[vocab, d_model]`).
    Embedding { vocab: u32 },
    /// The embedding row, then a LayerNorm ([`Role::Ln0`], [`Role::Ln0Bias`]) with `eps`
    /// (RWKV's `ln0`).
    EmbeddingLn { vocab: u32, eps: f32 },
    /// An input vector of `d_input` values through a linear encoder with bias
    /// ([`Role::Encoder`] `[d_model, d_input]`, [`Role::EncoderBias`]).
    Encoder { d_input: u32 },
}

/// The norm before the head.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum FinalNorm {
    None,
    /// RMSNorm with weight [`Role::NormF`].
    Rms {
        eps: f32,
    },
    /// LayerNorm with weight and bias ([`Role::NormF`], [`Role::NormFBias`]).
    Layer {
        eps: f32,
    },
}

/// What the head produces each step.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Out {
    /// Logits over the stem's vocabulary: [`Role::LmHead`] `[vocab, d_model]`, or the
    /// embedding matrix when `tied`.
    LmHead { tied: bool },
    /// `d_output` values from a linear decoder with bias ([`Role::Decoder`]
    /// `[d_output, d_model]`, [`Role::DecoderBias`]).
    Decoder { d_output: u32 },
}

/// The final norm and the output projection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Head {
    pub norm: FinalNorm,
    pub out: Out,
}

/// A whole model: input stage, blocks, head.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stack {
    pub stem: Stem,
    pub n_layers: u32,
    /// The block of every layer (format 1.x: all layers of one kind and configuration).
    pub block: Block,
    pub head: Head,
}

impl Stack {
    /// Width of the residual stream.
    pub fn d_model(&self) -> u32 {
        self.block.d_model()
    }

    /// `Some(vocab)` for token models.
    pub fn vocab_size(&self) -> Option<u32> {
        match self.stem {
            Stem::Embedding { vocab } | Stem::EmbeddingLn { vocab, .. } => Some(vocab),
            Stem::Encoder { .. } => None,
        }
    }

    /// Input vector length of vector models (0 for token models).
    pub fn d_input(&self) -> usize {
        match self.stem {
            Stem::Encoder { d_input } => d_input as usize,
            _ => 0,
        }
    }

    /// Values produced per step.
    pub fn d_output(&self) -> usize {
        match self.head.out {
            Out::LmHead { .. } => self.vocab_size().unwrap_or(0) as usize,
            Out::Decoder { d_output } => d_output as usize,
        }
    }

    /// Checks the block, then the stages.
    pub(crate) fn validate(&self) -> Result<(), FormatError> {
        self.block.validate()?;
        match self.stem {
            Stem::Embedding { vocab } => blocks::pos(vocab, "vocab_size must be in 1..=2^24")?,
            Stem::EmbeddingLn { vocab, eps } => {
                blocks::pos(vocab, "vocab_size must be in 1..=2^24")?;
                blocks::eps(eps)?;
            }
            Stem::Encoder { d_input } => blocks::pos(d_input, "d_input must be in 1..=2^24")?,
        }
        match self.head.norm {
            FinalNorm::None => {}
            FinalNorm::Rms { eps } | FinalNorm::Layer { eps } => blocks::eps(eps)?,
        }
        match self.head.out {
            Out::LmHead { .. } if self.vocab_size().is_none() => Err(FormatError::BadConfig(
                "an LM head needs a token input stage",
            )),
            Out::LmHead { .. } => Ok(()),
            Out::Decoder { d_output } => blocks::pos(d_output, "d_output must be in 1..=2^24"),
        }
    }

    /// The stages' model-global tensors in canonical order: the stem's, then the head's.
    pub(crate) fn global_roles(&self, l: &mut RoleList) {
        match self.stem {
            Stem::Embedding { .. } => l.push_if(true, Role::Embedding),
            Stem::EmbeddingLn { .. } => {
                for r in [Role::Embedding, Role::Ln0, Role::Ln0Bias] {
                    l.push_if(true, r);
                }
            }
            Stem::Encoder { .. } => {
                l.push_if(true, Role::Encoder);
                l.push_if(true, Role::EncoderBias);
            }
        }
        match self.head.norm {
            FinalNorm::None => {}
            FinalNorm::Rms { .. } => l.push_if(true, Role::NormF),
            FinalNorm::Layer { .. } => {
                l.push_if(true, Role::NormF);
                l.push_if(true, Role::NormFBias);
            }
        }
        match self.head.out {
            Out::LmHead { tied } => l.push_if(!tied, Role::LmHead),
            Out::Decoder { .. } => {
                l.push_if(true, Role::Decoder);
                l.push_if(true, Role::DecoderBias);
            }
        }
    }

    /// Shape of a model-global tensor of the stages.
    pub(crate) fn global_shape(&self, role: Role) -> Option<Shape> {
        let d = self.d_model();
        Some(match role {
            Role::Embedding | Role::LmHead => blocks::s2(self.vocab_size()?, d),
            Role::Ln0 | Role::Ln0Bias | Role::NormF | Role::NormFBias | Role::EncoderBias => {
                blocks::s1(d)
            }
            Role::Encoder => blocks::s2(d, self.d_input() as u32),
            Role::Decoder => blocks::s2(self.d_output() as u32, d),
            Role::DecoderBias => blocks::s1(self.d_output() as u32),
            _ => return None,
        })
    }

    /// Multiply-accumulates per step outside the matrix roles: the blocks' own, and a tied
    /// LM head's product with the embedding matrix.
    pub(crate) fn extra_macs(&self) -> u64 {
        let head = match self.head.out {
            Out::LmHead { tied: true } => {
                self.vocab_size().unwrap_or(0) as u64 * self.d_model() as u64
            }
            _ => 0,
        };
        head + self.n_layers as u64 * self.block.macs()
    }

    /// The model's float scratch (without a front end): the residual stream, then the
    /// block scratch (which the stages borrow).
    pub(crate) fn scratch_len(&self) -> Result<u64, FormatError> {
        let d = self.d_model() as u64;
        blocks::add(d, self.block.scratch_len()?.max(d))
    }

    /// Float or w8a8 step of the whole stack for one stream (`state`: every layer's state,
    /// `per_layer` values each; `scratch`: [`Self::scratch_len`]).
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub(crate) fn step<P: Probe>(
        &self,
        m: &Model<'_>,
        per_layer: usize,
        input: crate::Input<'_>,
        state: &mut [f32],
        scratch: &mut [f32],
        out: &mut [f32],
        probe: &mut P,
    ) -> Result<(), StepError> {
        let d = self.d_model() as usize;
        let (resid, tmp) = scratch.split_at_mut_checked(d).ok_or(StepError::Internal)?;
        self.stem_step(m, input, resid, tmp, probe)?;
        if per_layer == 0 || state.len() != per_layer * self.n_layers as usize {
            return Err(StepError::Internal);
        }
        for (l, st) in state.chunks_exact_mut(per_layer).enumerate() {
            let at = blocks::Layer {
                m,
                li: Some(l as u16),
            };
            self.block.step(at, resid, &mut [st], tmp, probe)?;
        }
        self.head_step(m, resid, tmp, out, probe)
    }

    fn stem_step<P: Probe>(
        &self,
        m: &Model<'_>,
        input: crate::Input<'_>,
        resid: &mut [f32],
        tmp: &mut [f32],
        probe: &mut P,
    ) -> Result<(), StepError> {
        let d = resid.len();
        match (self.stem, input) {
            (Stem::Embedding { vocab }, crate::Input::Token(t)) => {
                check_token(t, vocab)?;
                embed(m, t, resid)
            }
            (Stem::EmbeddingLn { vocab, eps }, crate::Input::Token(t)) => {
                check_token(t, vocab)?;
                let tmp = tmp.get_mut(..d).ok_or(StepError::Internal)?;
                embed(m, t, tmp)?;
                kernels::layer_norm(
                    tmp,
                    m.f32s(None, Role::Ln0)?,
                    m.f32s(None, Role::Ln0Bias)?,
                    eps,
                    resid,
                );
                Ok(())
            }
            (Stem::Encoder { d_input }, crate::Input::Vector(x)) => {
                if x.len() != d_input as usize {
                    return Err(StepError::InputLength {
                        expected: d_input as usize,
                        got: x.len(),
                    });
                }
                probe.observe(None, Site::Input, x);
                linear(
                    m.kernels(),
                    m.w(None, Role::Encoder)?,
                    x,
                    Some(m.f32s(None, Role::EncoderBias)?),
                    resid,
                )?;
                probe.observe(None, Site::Resid, resid);
                Ok(())
            }
            _ => Err(StepError::WrongInputKind),
        }
    }

    fn head_step<P: Probe>(
        &self,
        m: &Model<'_>,
        resid: &[f32],
        tmp: &mut [f32],
        out: &mut [f32],
        probe: &mut P,
    ) -> Result<(), StepError> {
        let k = m.kernels();
        let normed = tmp.get_mut(..resid.len()).ok_or(StepError::Internal)?;
        let feat: &[f32] = match self.head.norm {
            FinalNorm::None => resid,
            FinalNorm::Rms { eps } => {
                kernels::rms_norm(k, resid, m.f32s(None, Role::NormF)?, eps, normed);
                probe.observe(None, Site::FinalNorm, normed);
                normed
            }
            FinalNorm::Layer { eps } => {
                kernels::layer_norm(
                    resid,
                    m.f32s(None, Role::NormF)?,
                    m.f32s(None, Role::NormFBias)?,
                    eps,
                    normed,
                );
                probe.observe(None, Site::FinalNorm, normed);
                normed
            }
        };
        match self.head.out {
            Out::LmHead { tied } => {
                let w = if tied { Role::Embedding } else { Role::LmHead };
                linear(k, m.w(None, w)?, feat, None, out)?;
            }
            Out::Decoder { .. } => {
                linear(
                    k,
                    m.w(None, Role::Decoder)?,
                    feat,
                    Some(m.f32s(None, Role::DecoderBias)?),
                    out,
                )?;
            }
        }
        probe.observe(None, Site::Output, out);
        Ok(())
    }
}

fn check_token(token: u32, vocab: u32) -> Result<(), StepError> {
    if token >= vocab {
        Err(StepError::TokenOutOfRange { token, vocab })
    } else {
        Ok(())
    }
}

/// Embedding row lookup into `out` (its length is the row's).
fn embed(m: &Model<'_>, token: u32, out: &mut [f32]) -> Result<(), StepError> {
    let d = out.len();
    m.w(None, Role::Embedding)?
        .row_into(token as usize, d, out)
        .ok_or(StepError::Internal)
}
