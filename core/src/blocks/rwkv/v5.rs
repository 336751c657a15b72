//! RWKV v5.1 / v5.2 block, float and w8a8 step (arXiv 2404.05892, "Eagle"): per head of
//! size S a matrix state `s[i][j]`; with `a = k ⊗ v`, `out_j = Σ_i r_i (u_i a_ij + s_ij)`,
//! `s ← a + w ⊙ s`; a per-head group norm (`ln_x`), the SiLU gate (v5.2), the output
//! projection, then the channel mix shared with v4. `w = exp(-exp(time_decay))` and `u` are
//! stored per head and key index (v5.1's per-head values are broadcast at conversion).

use serde::{Deserialize, Serialize};

use crate::blocks::{add, mul, pos, s1, s2, take, Block, BlockKind, Layer, Modes, Parts, Shape};
use crate::error::{FormatError, StepError};
use crate::kernels::{self, Kernels};
use crate::layers::linear;
use crate::probe::Probe;
use crate::role::{Role, RoleList};
use crate::stages::{Head, Stem};

use super::{channel_mix, mix};

/// RWKV v5 model configuration (format 1.x; v5.1 without, v5.2 with the output gate).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rwkv5Config {
    pub d_model: u32,
    pub d_ffn: u32,
    pub vocab_size: u32,
    pub n_heads: u32,
    pub head_size: u32,
    /// v5.2: SiLU output gate and `time_mix_g`.
    pub gated: bool,
    /// LayerNorm epsilon.
    pub norm_eps: f32,
    /// Epsilon of the per-head group norm `ln_x`.
    pub group_norm_eps: f32,
}

/// One RWKV v5 block's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rwkv5Block {
    pub d_model: u32,
    pub d_ffn: u32,
    pub n_heads: u32,
    pub head_size: u32,
    /// v5.2: SiLU output gate and `time_mix_g`.
    pub gated: bool,
    pub norm_eps: f32,
    pub group_norm_eps: f32,
}

impl Parts for Rwkv5Config {
    fn parts(&self) -> (Stem, Block, Head) {
        let (stem, head) = super::stages(self.vocab_size, self.norm_eps);
        let block = Rwkv5Block {
            d_model: self.d_model,
            d_ffn: self.d_ffn,
            n_heads: self.n_heads,
            head_size: self.head_size,
            gated: self.gated,
            norm_eps: self.norm_eps,
            group_norm_eps: self.group_norm_eps,
        };
        (stem, Block::Rwkv5(block), head)
    }
}

impl BlockKind for Rwkv5Block {
    const NAME: &'static str = "rwkv5";
    const SUMMARY: &'static str =
        "RWKV v5.1/v5.2 multi-head matrix-state time mix, group norm, gate; channel mix";
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
        if (self.n_heads as u64) * (self.head_size as u64) != self.d_model as u64 {
            return Err(FormatError::BadConfig(
                "n_heads * head_size must equal d_model",
            ));
        }
        crate::blocks::eps(self.norm_eps)?;
        crate::blocks::eps(self.group_norm_eps)
    }

    fn roles(&self, l: &mut RoleList) {
        let g = self.gated;
        for (cond, r) in [
            (true, Role::Norm),
            (true, Role::NormBias),
            (true, Role::Norm2),
            (true, Role::Norm2Bias),
            (true, Role::TimeDecay),
            (true, Role::TimeFirst),
            (true, Role::AttMixK),
            (true, Role::AttMixV),
            (true, Role::AttMixR),
            (g, Role::AttMixG),
            (true, Role::LnX),
            (true, Role::LnXBias),
            (true, Role::AttKey),
            (true, Role::AttValue),
            (true, Role::AttReceptance),
            (g, Role::AttGate),
            (true, Role::AttOutput),
            (true, Role::FfnMixK),
            (true, Role::FfnMixR),
            (true, Role::FfnKey),
            (true, Role::FfnValue),
            (true, Role::FfnReceptance),
        ] {
            l.push_if(cond, r);
        }
    }

    fn shape(&self, role: Role) -> Option<Shape> {
        use Role::*;
        let d = self.d_model;
        Some(match role {
            Norm | NormBias | Norm2 | Norm2Bias | AttMixK | AttMixV | AttMixR | AttMixG | LnX
            | LnXBias | FfnMixK | FfnMixR => s1(d),
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
        // ln, xm, r, k, v, o (+ g when gated) + ffn hidden
        let n = if self.gated { 7 } else { 6 };
        add(mul(n, self.d_model as u64)?, self.d_ffn as u64)
    }

    fn macs(&self) -> u64 {
        self.d_model as u64 * self.head_size as u64 * 3
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
    c: &Rwkv5Block,
    at: Layer<'_, '_>,
    x: &mut [f32],
    st: &mut [f32],
    scratch: &mut [f32],
) -> Result<(), StepError> {
    let Layer { m, li } = at;
    let k: Kernels = m.kernels();
    let (d, f, eps) = (c.d_model as usize, c.d_ffn as usize, c.norm_eps);
    let hs = c.head_size as usize;
    let mut s = scratch;
    let ln = take(&mut s, d)?;
    let xm = take(&mut s, d)?;
    let r = take(&mut s, d)?;
    let kk = take(&mut s, d)?;
    let v = take(&mut s, d)?;
    let o = take(&mut s, d)?;
    let mut g = if c.gated {
        Some(take(&mut s, d)?)
    } else {
        None
    };
    let kf = take(&mut s, f)?;
    let (att_xx, rest) = st.split_at_mut(d);
    let (heads, ffn_xx) = rest.split_at_mut(d * hs);

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
    if let Some(g) = g.as_deref_mut() {
        mix(ln, att_xx, m.f32s(li, Role::AttMixG)?, xm);
        linear(k, m.w(li, Role::AttGate)?, xm, None, g)?;
    }
    att_xx.copy_from_slice(ln);
    let w = m.f32s(li, Role::TimeDecay)?;
    let u = m.f32s(li, Role::TimeFirst)?;
    wkv(heads, r, kk, v, u, w, hs, o)?;
    // Group norm per head (into `r`, free now), then the gate (v5.2).
    let lw = m.f32s(li, Role::LnX)?;
    let lb = m.f32s(li, Role::LnXBias)?;
    group_norm_gate(k, o, lw, lb, c.group_norm_eps, hs, g.as_deref(), r)?;
    linear(k, m.w(li, Role::AttOutput)?, r, None, o)?;
    for (xv, ov) in x.iter_mut().zip(o.iter()) {
        *xv += *ov;
    }
    channel_mix(at, mix, eps, x, ln, xm, r, kf, o, ffn_xx)?;
    Ok(())
}

/// The per-head WKV step shared by v5 and v6: with `a = k ⊗ v`,
/// `o_j = Σ_i r_i (u_i a_ij + s_ij)` and `s_ij ← a_ij + w_i s_ij`, for heads of size `hs`
/// (`heads` holds each head's `hs × hs` state, row i = key index).
#[allow(clippy::too_many_arguments)]
pub(super) fn wkv(
    heads: &mut [f32],
    r: &[f32],
    k: &[f32],
    v: &[f32],
    u: &[f32],
    w: &[f32],
    hs: usize,
    o: &mut [f32],
) -> Result<(), StepError> {
    let d = o.len();
    if hs == 0
        || [r.len(), k.len(), v.len(), u.len(), w.len()]
            .iter()
            .any(|&n| n != d)
        || heads.len() != d * hs
    {
        return Err(StepError::Internal);
    }
    o.fill(0.0);
    for (h, sh) in heads.chunks_exact_mut(hs * hs).enumerate() {
        let base = h * hs;
        let oh = &mut o[base..base + hs];
        let vh = &v[base..base + hs];
        for (i, row) in sh.chunks_exact_mut(hs).enumerate() {
            let (ri, ki, ui, wi) = (r[base + i], k[base + i], u[base + i], w[base + i]);
            for ((oj, sij), &vj) in oh.iter_mut().zip(row.iter_mut()).zip(vh) {
                let a = ki * vj;
                *oj += ri * (ui * a + *sij);
                *sij = a + wi * *sij;
            }
        }
    }
    Ok(())
}

/// Per-head group norm of the WKV output (`ln_x`), times `silu(g)` when gated.
#[allow(clippy::too_many_arguments)]
pub(super) fn group_norm_gate(
    k: Kernels,
    o: &[f32],
    lw: &[f32],
    lb: &[f32],
    eps: f32,
    hs: usize,
    g: Option<&[f32]>,
    out: &mut [f32],
) -> Result<(), StepError> {
    let d = o.len();
    if hs == 0
        || lw.len() != d
        || lb.len() != d
        || out.len() != d
        || g.is_some_and(|g| g.len() != d)
    {
        return Err(StepError::Internal);
    }
    for (((oh, rh), wh), bh) in o
        .chunks_exact(hs)
        .zip(out.chunks_exact_mut(hs))
        .zip(lw.chunks_exact(hs))
        .zip(lb.chunks_exact(hs))
    {
        kernels::layer_norm(oh, wh, bh, eps, rh);
    }
    if let Some(g) = g {
        for (rv, &gv) in out.iter_mut().zip(g.iter()) {
            *rv *= kernels::silu(k, gv);
        }
    }
    Ok(())
}
