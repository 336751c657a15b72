//! RWKV v6 ("Finch", arXiv 2404.05892) block, float and w8a8 step. It keeps v5.2's per-head
//! matrix state, group norm and SiLU gate, and makes the token shift and the decay depend
//! on the data:
//!
//! - with `sx = prev − x`, `xxx = x + sx ⊙ maa_x`, the low-rank
//!   `m_i = W2_i · tanh(W1 · xxx)_i` for `i ∈ {w, k, v, r, g}` and
//!   `x_i = x + sx ⊙ (maa_i + m_i)`;
//! - `w = exp(−exp(time_decay + D2 · tanh(D1 · x_w)))`, per channel and step;
//! - WKV, group norm and gate as in v5.2 ([`super::v5`]); the channel mix of v4/v5
//!   with the `x + sx ⊙ maa` token shift.

use serde::{Deserialize, Serialize};

use crate::blocks::{add, mul, pos, s1, s2, take, Block, BlockKind, Layer, Modes, Parts, Shape};
use crate::error::{FormatError, StepError};
use crate::kernels::{self, Kernels};
use crate::layers::{linear, lora};
use crate::probe::Probe;
use crate::role::{Role, RoleList};
use crate::stages::{Head, Stem};

use super::v5::{group_norm_gate, wkv};
use super::{channel_mix, shift};

/// RWKV v6 ("Finch") model configuration (format 1.x): v5.2's heads and gate with
/// data-dependent token shift (`time_maa_*` low-rank terms) and data-dependent decay.
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

/// One RWKV v6 block's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rwkv6Block {
    pub d_model: u32,
    pub d_ffn: u32,
    pub n_heads: u32,
    pub head_size: u32,
    pub d_lora_mix: u32,
    pub d_lora_decay: u32,
    pub norm_eps: f32,
    pub group_norm_eps: f32,
}

impl Parts for Rwkv6Config {
    fn parts(&self) -> (Stem, Block, Head) {
        let (stem, head) = super::stages(self.vocab_size, self.norm_eps);
        let block = Rwkv6Block {
            d_model: self.d_model,
            d_ffn: self.d_ffn,
            n_heads: self.n_heads,
            head_size: self.head_size,
            d_lora_mix: self.d_lora_mix,
            d_lora_decay: self.d_lora_decay,
            norm_eps: self.norm_eps,
            group_norm_eps: self.group_norm_eps,
        };
        (stem, Block::Rwkv6(block), head)
    }
}

impl BlockKind for Rwkv6Block {
    const NAME: &'static str = "rwkv6";
    const SUMMARY: &'static str = "RWKV v6 time mix (data-dependent shift and decay), channel mix";
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
        pos(self.n_heads, "n_heads must be in 1..=2^24")?;
        pos(self.head_size, "head_size must be in 1..=2^24")?;
        pos(self.d_lora_mix, "low-rank sizes must be in 1..=2^24")?;
        pos(self.d_lora_decay, "low-rank sizes must be in 1..=2^24")?;
        if (self.n_heads as u64) * (self.head_size as u64) != self.d_model as u64 {
            return Err(FormatError::BadConfig(
                "n_heads * head_size must equal d_model",
            ));
        }
        crate::blocks::eps(self.norm_eps)?;
        crate::blocks::eps(self.group_norm_eps)
    }

    fn roles(&self, l: &mut RoleList) {
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

    fn shape(&self, role: Role) -> Option<Shape> {
        use Role::*;
        let d = self.d_model;
        Some(match role {
            Norm | NormBias | Norm2 | Norm2Bias | MaaX | LnX | LnXBias | FfnMixK | FfnMixR => s1(d),
            MaaWkvrg => s2(5, d),
            MaaW1 => s2(self.d_lora_mix.checked_mul(5)?, d),
            MaaW2 => crate::blocks::s3(5, d, self.d_lora_mix),
            DecayW1 => s2(self.d_lora_decay, d),
            DecayW2 => s2(d, self.d_lora_decay),
            TimeDecay | TimeFirst => s2(self.n_heads, self.head_size),
            AttKey | AttValue | AttReceptance | AttOutput | AttGate | FfnReceptance => s2(d, d),
            FfnKey => s2(self.d_ffn, d),
            FfnValue => s2(d, self.d_ffn),
            _ => return None,
        })
    }

    fn state_len(&self) -> Result<u64, FormatError> {
        // att_xx, heads × S × S, ffn_xx
        let d = self.d_model as u64;
        add(mul(2, d)?, mul(d, self.head_size as u64)?)
    }

    fn scratch_len(&self) -> Result<u64, FormatError> {
        // ln, xm, m, r, k, v, g, w + low-rank + ffn hidden
        let d = self.d_model as u64;
        let lora = add(mul(5, self.d_lora_mix as u64)?, self.d_lora_decay as u64)?;
        add(add(mul(8, d)?, lora)?, self.d_ffn as u64)
    }

    fn macs(&self) -> u64 {
        // WKV plus the low-rank shift and decay terms (not "matrix" roles: kept f32).
        let d = self.d_model as u64;
        d * self.head_size as u64 * 3
            + 10 * d * self.d_lora_mix as u64
            + 2 * d * self.d_lora_decay as u64
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
        layer(self, at, resid, state, scratch)
    }
}

/// One layer over one stream's residual `x` (`scratch`: the block scratch).
#[inline]
fn layer(
    c: &Rwkv6Block,
    at: Layer<'_, '_>,
    x: &mut [f32],
    st: &mut [f32],
    scratch: &mut [f32],
) -> Result<(), StepError> {
    let Layer { m, li } = at;
    let k: Kernels = m.kernels();
    let (d, f, eps, hs) = (
        c.d_model as usize,
        c.d_ffn as usize,
        c.norm_eps,
        c.head_size as usize,
    );
    let lm = c.d_lora_mix as usize;
    // tanh(W1 · xxx) for the five shift terms, then the decay's low-rank hidden.
    let lr = 5 * lm + c.d_lora_decay as usize;
    let mut s = scratch;
    let ln = take(&mut s, d)?;
    let xm = take(&mut s, d)?;
    let mt = take(&mut s, d)?;
    let r = take(&mut s, d)?;
    let kk = take(&mut s, d)?;
    let v = take(&mut s, d)?;
    let g = take(&mut s, d)?;
    let w = take(&mut s, d)?;
    let tmp = take(&mut s, lr)?;
    let kf = take(&mut s, f)?;
    let (att_xx, rest) = st.split_at_mut(d);
    let (heads, ffn_xx) = rest.split_at_mut(d * hs);

    // Time mix: the data-dependent token shift.
    kernels::layer_norm(
        x,
        m.f32s(li, Role::Norm)?,
        m.f32s(li, Role::NormBias)?,
        eps,
        ln,
    );
    shift(ln, att_xx, m.f32s(li, Role::MaaX)?, xm);
    let w1 = m.w(li, Role::MaaW1)?;
    let w2 = m.w(li, Role::MaaW2)?;
    let maa = m.f32s(li, Role::MaaWkvrg)?;
    if maa.len() != 5 * d || w2.len() != 5 * d * lm {
        return Err(StepError::Internal);
    }
    let (t, hid) = tmp.split_at_mut(5 * lm);
    linear(k, w1, xm, None, t)?;
    for tv in t.iter_mut() {
        *tv = libm::tanhf(*tv);
    }
    // i = 0..5: w, k, v, r, g.
    for i in 0..5 {
        let w2i = w2.slice(i * d * lm, d * lm).ok_or(StepError::Internal)?;
        linear(k, w2i, &t[i * lm..(i + 1) * lm], None, mt)?;
        for (mv, &b) in mt.iter_mut().zip(&maa[i * d..(i + 1) * d]) {
            *mv += b;
        }
        shift(ln, att_xx, mt, xm);
        match i {
            0 => {
                let td = m.f32s(li, Role::TimeDecay)?;
                lora(
                    k,
                    m.w(li, Role::DecayW1)?,
                    m.w(li, Role::DecayW2)?,
                    xm,
                    hid,
                    libm::tanhf,
                    w,
                )?;
                for (wv, &b) in w.iter_mut().zip(td) {
                    *wv = kernels::exp(k, -kernels::exp(k, b + *wv));
                }
            }
            1 => linear(k, m.w(li, Role::AttKey)?, xm, None, kk)?,
            2 => linear(k, m.w(li, Role::AttValue)?, xm, None, v)?,
            3 => linear(k, m.w(li, Role::AttReceptance)?, xm, None, r)?,
            _ => linear(k, m.w(li, Role::AttGate)?, xm, None, g)?,
        }
    }
    att_xx.copy_from_slice(ln);
    let u = m.f32s(li, Role::TimeFirst)?;
    wkv(heads, r, kk, v, u, w, hs, mt)?;
    let lw = m.f32s(li, Role::LnX)?;
    let lb = m.f32s(li, Role::LnXBias)?;
    group_norm_gate(k, mt, lw, lb, c.group_norm_eps, hs, Some(g), r)?;
    linear(k, m.w(li, Role::AttOutput)?, r, None, mt)?;
    for (xv, ov) in x.iter_mut().zip(mt.iter()) {
        *xv += *ov;
    }
    channel_mix(at, shift, eps, x, ln, xm, r, kf, mt, ffn_xx)?;
    Ok(())
}
