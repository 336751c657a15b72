//! A model as a stack: an input stage ([`Stem`]), `n_layers` blocks ([`Block`], which one
//! each layer is given by a [`LayerTable`]), and a final norm with its head ([`Head`]). The stages own their tensors (model-global, in the
//! canonical order stem, then head), their checks and their steps; the blocks are
//! reached only through [`Block`] (see [`crate::blocks`]).

use crate::blocks::{self, Arch, Block, LayerTable, Shape};
use crate::error::{FormatError, StepError};
use crate::int_step::{frac, linear16, matvec_i8r, norm_int, plan, take16};
use crate::kernels;
use crate::layers::linear;
use crate::probe::{Probe, Site};
use crate::role::{LayerIndex, Role, RoleList};
use crate::tensors::Tensors;

pub use crate::stages::{FinalNorm, Head, Out, Stem};

/// One step's input.
#[derive(Debug, Clone, Copy)]
pub enum Input<'i> {
    /// A token id (language models).
    Token(u32),
    /// A vector of `d_input` values (sensor models).
    Vector(&'i [f32]),
}

/// A whole model: input stage, blocks, head.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stack {
    pub stem: Stem,
    pub n_layers: u32,
    /// Which block each layer is (format 1.0–1.4: one configuration in every layer).
    pub layers: LayerTable,
    pub head: Head,
}

impl Stack {
    /// The stack a header describes: the input stage, `n_layers` blocks, head.
    pub fn from_arch(arch: &Arch, n_layers: u32) -> Stack {
        let (stem, layers, head) = arch.parts();
        Stack {
            stem,
            n_layers,
            layers,
            head,
        }
    }

    /// The distinct block configurations (one for format 1.0–1.4 models).
    pub fn blocks(&self) -> &[Block] {
        self.layers.blocks.as_slice()
    }

    /// Layer `l`'s block.
    pub fn block(&self, l: usize) -> Option<&Block> {
        self.layers.block(l)
    }

    /// Width of the residual stream.
    pub fn d_model(&self) -> u32 {
        self.blocks().first().map_or(0, |b| b.d_model())
    }

    /// Splits layer `l`'s state off the front of `rest` (`lens`: state length of each
    /// block configuration).
    #[inline]
    fn layer_state<'s, T>(
        &self,
        l: usize,
        lens: &[usize],
        rest: &mut &'s mut [T],
    ) -> Result<(&Block, &'s mut [T]), StepError> {
        let c = self.layers.config_of(l);
        let (Some(b), Some(&n)) = (self.blocks().get(c), lens.get(c)) else {
            return Err(StepError::Internal);
        };
        Ok((b, blocks::take(rest, n)?))
    }

    /// Every layer's initial state (`state`: the model's, zeroed).
    pub(crate) fn init_state(&self, lens: &[usize], state: &mut [f32]) -> Result<(), StepError> {
        let mut rest = state;
        for l in 0..self.n_layers as usize {
            let (b, st) = self.layer_state(l, lens, &mut rest)?;
            b.init_state(st);
        }
        Ok(())
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
        self.layers.validate()?;
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

    /// Where the float step's probes observe the input vector of matrix `role` in `layer`
    /// (static w8a8 calibration): the encoder's is the step input, the decoder's the final
    /// norm's output (or, without one, the residual stream, which the probe reports after
    /// every layer: a wider range), a block's wherever its kind says. `None` for a matrix
    /// no probe sees (the embedding and LM heads of token models).
    pub fn matrix_input(&self, layer: LayerIndex, role: Role) -> Option<(LayerIndex, Site)> {
        match (layer, role) {
            (None, Role::Encoder) => Some((None, Site::Input)),
            (None, Role::Decoder) => match self.head.norm {
                FinalNorm::None => Some((None, Site::Resid)),
                _ => Some((None, Site::FinalNorm)),
            },
            (None, _) => None,
            (Some(l), r) => self.block(l as usize)?.matrix_input(r).map(|s| (layer, s)),
        }
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
        let layers: u64 = (0..self.n_layers as usize)
            .filter_map(|l| self.block(l))
            .map(|b| b.macs())
            .sum();
        head + layers
    }

    /// The model's float scratch (without a front end): the residual stream, then the
    /// block scratch (which the stages borrow).
    pub(crate) fn scratch_len(&self) -> Result<u64, FormatError> {
        let d = self.d_model() as u64;
        let mut block = d;
        for b in self.blocks() {
            block = block.max(b.scratch_len()?);
        }
        blocks::add(d, block)
    }

    /// Checks what the integer step needs of a stack: a vector input stage, a decoder head,
    /// and a block kind with an integer mode (which checks its own widths).
    pub(crate) fn validate_int(&self) -> Result<(), FormatError> {
        let st = self;
        let bad = FormatError::BadConfig;
        let d_input = match st.stem {
            Stem::Encoder { d_input } => d_input,
            _ => 0,
        };
        let [b] = st.blocks() else {
            return Err(bad(
                "compute int needs one block configuration in every layer (mixed stacks: float or w8a8)",
            ));
        };
        b.int_validate(d_input)?;
        if d_input == 0 || !matches!(st.head.out, Out::Decoder { .. }) {
            return Err(bad(
                "compute int needs a vector model (encoder input stage, decoder head)",
            ));
        }
        Ok(())
    }

    /// Scratch elements (i32) of the integer step, without the front end: the residual
    /// stream, the block's scratch and the input vector (packed `i16`).
    pub(crate) fn int_scratch_len(&self) -> usize {
        let st = self;
        crate::int_step::half(st.d_model() as usize)
            + st.blocks()
                .iter()
                .map(|b| b.int_scratch_len())
                .max()
                .unwrap_or(0)
            + crate::int_step::half(st.d_input())
    }

    /// Float or w8a8 step of the whole stack for one stream (`state`: every layer's state,
    /// `lens[c]` values for a layer of block configuration `c`; `scratch`:
    /// [`Self::scratch_len`]).
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub(crate) fn step<P: Probe>(
        &self,
        m: &dyn Tensors<'_>,
        lens: &[usize],
        input: Input<'_>,
        state: &mut [f32],
        scratch: &mut [f32],
        out: &mut [f32],
        probe: &mut P,
    ) -> Result<(), StepError> {
        let d = self.d_model() as usize;
        let (resid, tmp) = scratch.split_at_mut_checked(d).ok_or(StepError::Internal)?;
        self.stem_step(m, input, resid, tmp, probe)?;
        let mut rest = state;
        for l in 0..self.n_layers as usize {
            let (b, st) = self.layer_state(l, lens, &mut rest)?;
            let at = blocks::Layer {
                m,
                li: Some(l as u16),
            };
            b.step(at, resid, &mut [st], tmp, probe)?;
        }
        if !rest.is_empty() {
            return Err(StepError::Internal);
        }
        self.head_step(m, resid, tmp, out, probe)
    }

    /// Integer-only step of the whole stack for one stream ([`crate::Model::step_int`]
    /// past its buffer and compute checks): `state` every layer's state (`lens` as in
    /// [`Self::step`]), `scratch` the model's part. Formats: `crate::int_step`.
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    pub(crate) fn step_int(
        &self,
        m: &dyn Tensors<'_>,
        lens: &[usize],
        input: &[i16],
        state: &mut [i32],
        scratch: &mut [i32],
        out: &mut [i32],
    ) -> Result<(), StepError> {
        let st = self;
        let Stem::Encoder { d_input } = st.stem else {
            return Err(StepError::WrongInputKind);
        };
        if input.len() != d_input as usize {
            return Err(StepError::InputLength {
                expected: d_input as usize,
                got: input.len(),
            });
        }
        let g = m.i32s(None, Role::IntPlan)?;
        let fr = frac(g, plan::G_RESID_FRAC, 15);
        let dm = st.d_model() as usize;
        let mut s = scratch;
        let resid = take16(&mut s, dm)?;
        linear16(
            m.kernels(),
            &m.i8r(None, Role::Encoder)?,
            input,
            Some(m.i32s(None, Role::EncoderBias)?),
            resid,
        )?;
        let mut rest = state;
        for l in 0..st.n_layers as usize {
            let (b, ls) = st.layer_state(l, lens, &mut rest)?;
            let at = crate::blocks::Layer {
                m,
                li: Some(l as u16),
            };
            b.step_int(at, resid, &mut [ls], &mut s[..])?;
        }
        if !rest.is_empty() {
            return Err(StepError::Internal);
        }
        let mut s = &mut s[..];
        let normed = take16(&mut s, dm)?;
        let bias = match st.head.norm {
            FinalNorm::None => None,
            FinalNorm::Rms { .. } => Some(None),
            FinalNorm::Layer { .. } => Some(Some(m.i32s(None, Role::NormFBias)?)),
        };
        let feat: &[i16] = match bias {
            None => resid,
            Some(b) => {
                norm_int(
                    resid,
                    m.i16s(None, Role::NormF)?,
                    b,
                    g.get(plan::G_NORMF_EPS).copied().unwrap_or(0),
                    fr,
                    frac(g, plan::G_NORMF_W_FRAC, 15),
                    frac(g, plan::G_NORMF_FRAC, 15),
                    normed,
                )?;
                normed
            }
        };
        decode_int(m, feat, out)
    }

    fn stem_step<P: Probe>(
        &self,
        m: &dyn Tensors<'_>,
        input: Input<'_>,
        resid: &mut [f32],
        tmp: &mut [f32],
        probe: &mut P,
    ) -> Result<(), StepError> {
        let d = resid.len();
        match (self.stem, input) {
            (Stem::Embedding { vocab }, Input::Token(t)) => {
                check_token(t, vocab)?;
                embed(m, t, resid)
            }
            (Stem::EmbeddingLn { vocab, eps }, Input::Token(t)) => {
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
            (Stem::Encoder { d_input }, Input::Vector(x)) => {
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
        m: &dyn Tensors<'_>,
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
fn embed(m: &dyn Tensors<'_>, token: u32, out: &mut [f32]) -> Result<(), StepError> {
    let d = out.len();
    m.w(None, Role::Embedding)?
        .row_into(token as usize, d, out)
        .ok_or(StepError::Internal)
}

/// The decoder into `i32` outputs.
fn decode_int(m: &dyn Tensors<'_>, feat: &[i16], out: &mut [i32]) -> Result<(), StepError> {
    let w = m.i8r(None, Role::Decoder)?;
    if out.len() != w.rows() {
        return Err(StepError::Internal);
    }
    matvec_i8r(
        m.kernels(),
        &w,
        feat,
        Some(m.i32s(None, Role::DecoderBias)?),
        |r, v| out[r] = crate::fixed::saturate_i32(v),
    )
}
