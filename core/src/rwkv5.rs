//! RWKV v5.1 / v5.2 block, one recurrent step (arXiv 2404.05892, "Eagle"): per head of
//! size S a matrix state `s[i][j]`; with `a = k ⊗ v`, `out_j = Σ_i r_i (u_i a_ij + s_ij)`,
//! `s ← a + w ⊙ s`; a per-head group norm (`ln_x`), the SiLU gate (v5.2), the output
//! projection, then the channel mix shared with v4. `w = exp(-exp(time_decay))` and `u` are
//! stored per head and key index (v5.1's per-head values are broadcast at conversion).

use crate::config::{Role, Rwkv5Config};
use crate::error::StepError;
use crate::kernels::{self, Kernels};
use crate::layers::linear;
use crate::model::{take, Model};
use crate::rwkv4::{channel_mix, embed_ln0, head, mix};

pub(crate) fn step(
    m: &Model<'_>,
    c: &Rwkv5Config,
    token: u32,
    state: &mut [f32],
    scratch: &mut [f32],
    out: &mut [f32],
) -> Result<(), StepError> {
    if token >= c.vocab_size {
        return Err(StepError::TokenOutOfRange {
            token,
            vocab: c.vocab_size,
        });
    }
    let k: Kernels = m.kernels();
    let (d, f, eps) = (c.d_model as usize, c.d_ffn as usize, c.norm_eps);
    let hs = c.head_size as usize;
    let mut s = scratch;
    let x = take(&mut s, d)?;
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
    embed_ln0(m, token, d, eps, ln, x)?;

    let per_layer = 2 * d + d * hs;
    for (l, st) in state.chunks_exact_mut(per_layer).enumerate() {
        let li = Some(l as u16);
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
        channel_mix(m, li, mix, eps, x, ln, xm, r, kf, o, ffn_xx)?;
    }
    head(m, eps, x, ln, out)
}

/// The per-head WKV step shared by v5 and v6: with `a = k ⊗ v`,
/// `o_j = Σ_i r_i (u_i a_ij + s_ij)` and `s_ij ← a_ij + w_i s_ij`, for heads of size `hs`
/// (`heads` holds each head's `hs × hs` state, row i = key index).
#[allow(clippy::too_many_arguments)]
pub(crate) fn wkv(
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
pub(crate) fn group_norm_gate(
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
