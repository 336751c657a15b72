//! RWKV v4 block, float and w8a8 step (arXiv 2305.13048), in the numerically stable form
//! that keeps the WKV numerator and denominator scaled by a running maximum `pp`.
//!
//! Per layer the state holds `att_xx` (previous normalised input of the time-mix),
//! `aa`, `bb`, `pp` (WKV accumulators) and `ffn_xx` (previous input of the channel-mix).

use serde::{Deserialize, Serialize};

use super::{channel_mix, mix};
use crate::blocks::{pos, take, Block, BlockKind, Layer, Modes, Parts, Shape};
use crate::error::{FormatError, StepError};
use crate::kernels::{self, Kernels};
use crate::layers::linear;
use crate::probe::Probe;
use crate::role::{Role, RoleList};
use crate::stages::{Head, Stem};

/// Initial value of `pp`: the WKV state starts empty (as rwkv.cpp's initial state).
pub(crate) const PP_INIT: f32 = -1e30;

/// RWKV v4 model configuration (format 1.x).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RwkvConfig {
    pub d_model: u32,
    /// Hidden size of the channel-mix (FFN) block.
    pub d_ffn: u32,
    pub vocab_size: u32,
    /// LayerNorm epsilon.
    pub norm_eps: f32,
}

/// One RWKV v4 block's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rwkv4Block {
    pub d_model: u32,
    /// Hidden size of the channel mix.
    pub d_ffn: u32,
    /// LayerNorm epsilon.
    pub norm_eps: f32,
}

impl Parts for RwkvConfig {
    fn parts(&self) -> (Stem, Block, Head) {
        let (stem, head) = super::stages(self.vocab_size, self.norm_eps);
        let block = Rwkv4Block {
            d_model: self.d_model,
            d_ffn: self.d_ffn,
            norm_eps: self.norm_eps,
        };
        (stem, Block::Rwkv4(block), head)
    }
}

impl BlockKind for Rwkv4Block {
    const NAME: &'static str = "rwkv4";
    const SUMMARY: &'static str = "RWKV v4 time mix (stable WKV) and channel mix";
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
        crate::blocks::eps(self.norm_eps)
    }

    fn roles(&self, l: &mut RoleList) {
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

    fn shape(&self, role: Role) -> Option<Shape> {
        use crate::blocks::{s1, s2};
        use Role::*;
        let d = self.d_model;
        Some(match role {
            Norm | NormBias | Norm2 | Norm2Bias | TimeDecay | TimeFirst | AttMixK | AttMixV
            | AttMixR | FfnMixK | FfnMixR => s1(d),
            AttKey | AttValue | AttReceptance | AttOutput | FfnReceptance => s2(d, d),
            FfnKey => s2(self.d_ffn, d),
            FfnValue => s2(d, self.d_ffn),
            _ => return None,
        })
    }

    fn state_len(&self) -> Result<u64, FormatError> {
        // att_xx, aa, bb, pp, ffn_xx
        crate::blocks::mul(5, self.d_model as u64)
    }

    fn scratch_len(&self) -> Result<u64, FormatError> {
        // ln, xm, r, k, v, o + ffn hidden
        crate::blocks::add(
            crate::blocks::mul(6, self.d_model as u64)?,
            self.d_ffn as u64,
        )
    }

    fn macs(&self) -> u64 {
        self.d_model as u64 * 12
    }

    /// `pp` starts at [`PP_INIT`] (an empty WKV state, as rwkv.cpp's initial state).
    fn init_state(&self, state: &mut [f32]) {
        let d = self.d_model as usize;
        if let Some(pp) = state.get_mut(3 * d..4 * d) {
            pp.fill(PP_INIT);
        }
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
    c: &Rwkv4Block,
    at: Layer<'_, '_>,
    x: &mut [f32],
    st: &mut [f32],
    scratch: &mut [f32],
) -> Result<(), StepError> {
    let Layer { m, li } = at;
    let k: Kernels = m.kernels();
    let (d, f, eps) = (c.d_model as usize, c.d_ffn as usize, c.norm_eps);
    let mut s = scratch;
    let ln = take(&mut s, d)?;
    let xm = take(&mut s, d)?;
    let r = take(&mut s, d)?;
    let kk = take(&mut s, d)?;
    let v = take(&mut s, d)?;
    let o = take(&mut s, d)?;
    let kf = take(&mut s, f)?;
    let (att_xx, rest) = st.split_at_mut(d);
    let (aa, rest) = rest.split_at_mut(d);
    let (bb, rest) = rest.split_at_mut(d);
    let (pp, ffn_xx) = rest.split_at_mut(d);

    // Time mix.
    kernels::layer_norm(
        x,
        m.f32s(li, Role::Norm)?,
        m.f32s(li, Role::NormBias)?,
        eps,
        ln,
    );
    mix(ln, att_xx, m.f32s(li, Role::AttMixR)?, xm);
    linear(k, m.w(li, Role::AttReceptance)?, xm, None, r)?;
    mix(ln, att_xx, m.f32s(li, Role::AttMixK)?, xm);
    linear(k, m.w(li, Role::AttKey)?, xm, None, kk)?;
    mix(ln, att_xx, m.f32s(li, Role::AttMixV)?, xm);
    linear(k, m.w(li, Role::AttValue)?, xm, None, v)?;
    att_xx.copy_from_slice(ln);
    let u = m.f32s(li, Role::TimeFirst)?;
    let w = m.f32s(li, Role::TimeDecay)?;
    if u.len() != d || w.len() != d {
        return Err(StepError::Internal);
    }
    for i in 0..d {
        let (ki, vi) = (kk[i], v[i]);
        let ww = u[i] + ki;
        let p = if pp[i] > ww { pp[i] } else { ww };
        let e1 = kernels::exp(k, pp[i] - p);
        let e2 = kernels::exp(k, ww - p);
        let wkv = (e1 * aa[i] + e2 * vi) / (e1 * bb[i] + e2);
        let ww = pp[i] + w[i];
        let p = if ww > ki { ww } else { ki };
        let e1 = kernels::exp(k, ww - p);
        let e2 = kernels::exp(k, ki - p);
        aa[i] = e1 * aa[i] + e2 * vi;
        bb[i] = e1 * bb[i] + e2;
        pp[i] = p;
        r[i] = kernels::sigmoid(k, r[i]) * wkv;
    }
    linear(k, m.w(li, Role::AttOutput)?, r, None, o)?;
    for (xv, ov) in x.iter_mut().zip(o.iter()) {
        *xv += *ov;
    }

    channel_mix(at, mix, eps, x, ln, xm, r, kf, o, ffn_xx)?;
    Ok(())
}
