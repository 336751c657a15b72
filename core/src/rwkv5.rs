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
    let (nh, hs) = (c.n_heads as usize, c.head_size as usize);
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
        if w.len() != d || u.len() != d || heads.len() != d * hs {
            return Err(StepError::Internal);
        }
        // o = per-head WKV output.
        o.fill(0.0);
        for h in 0..nh {
            let base = h * hs;
            let sh = &mut heads[base * hs..(base + hs) * hs];
            let oh = &mut o[base..base + hs];
            let vh = &v[base..base + hs];
            for i in 0..hs {
                let (ri, ki, ui, wi) = (r[base + i], kk[base + i], u[base + i], w[base + i]);
                let row = &mut sh[i * hs..(i + 1) * hs];
                for ((oj, sij), &vj) in oh.iter_mut().zip(row.iter_mut()).zip(vh) {
                    let a = ki * vj;
                    *oj += ri * (ui * a + *sij);
                    *sij = a + wi * *sij;
                }
            }
        }
        // Group norm per head (into `r`, free now), then the gate (v5.2).
        let lw = m.f32s(li, Role::LnX)?;
        let lb = m.f32s(li, Role::LnXBias)?;
        for (((oh, rh), wh), bh) in o
            .chunks_exact(hs)
            .zip(r.chunks_exact_mut(hs))
            .zip(lw.chunks_exact(hs))
            .zip(lb.chunks_exact(hs))
        {
            kernels::layer_norm(oh, wh, bh, c.group_norm_eps, rh);
        }
        if let Some(g) = g.as_deref() {
            for (rv, &gv) in r.iter_mut().zip(g.iter()) {
                *rv *= kernels::silu(k, gv);
            }
        }
        linear(k, m.w(li, Role::AttOutput)?, r, None, o)?;
        for (xv, ov) in x.iter_mut().zip(o.iter()) {
            *xv += *ov;
        }
        channel_mix(m, li, eps, x, ln, xm, r, kf, o, ffn_xx)?;
    }
    head(m, eps, x, ln, out)
}
