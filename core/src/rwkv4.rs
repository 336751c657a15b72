//! RWKV v4 block, one recurrent step (arXiv 2305.13048), in the numerically stable form
//! that keeps the WKV numerator and denominator scaled by a running maximum `pp`.
//!
//! Per layer the state holds `att_xx` (previous normalised input of the time-mix),
//! `aa`, `bb`, `pp` (WKV accumulators) and `ffn_xx` (previous input of the channel-mix).

use crate::config::{Role, RwkvConfig};
use crate::error::StepError;
use crate::kernels::{self, Kernels};
use crate::layers::linear;
use crate::model::{embed, take, Model};

/// Initial value of `pp`: the WKV state starts empty (as rwkv.cpp's initial state).
pub(crate) const PP_INIT: f32 = -1e30;

pub(crate) fn init_state(c: &RwkvConfig, state: &mut [f32]) {
    let d = c.d_model as usize;
    for layer in state.chunks_exact_mut(5 * d) {
        layer[3 * d..4 * d].fill(PP_INIT);
    }
}

/// `out = x + (prev - x) * m` (the token-shift form of v6 and v7, `time_maa_*` / `x_*`).
pub(crate) fn shift(x: &[f32], prev: &[f32], m: &[f32], out: &mut [f32]) {
    for (((o, &xv), &pv), &mv) in out.iter_mut().zip(x).zip(prev).zip(m) {
        *o = xv + (pv - xv) * mv;
    }
}

/// How a block mixes the current and the previous input.
pub(crate) type ShiftFn = fn(&[f32], &[f32], &[f32], &mut [f32]);

/// `out = x * m + prev * (1 - m)` (token shift of v4 and v5, `time_mix_*`).
pub(crate) fn mix(x: &[f32], prev: &[f32], m: &[f32], out: &mut [f32]) {
    for (((o, &xv), &pv), &mv) in out.iter_mut().zip(x).zip(prev).zip(m) {
        *o = xv * mv + pv * (1.0 - mv);
    }
}

pub(crate) fn step(
    m: &Model<'_>,
    c: &RwkvConfig,
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
    let mut s = scratch;
    let x = take(&mut s, d)?;
    let ln = take(&mut s, d)?;
    let xm = take(&mut s, d)?;
    let r = take(&mut s, d)?;
    let kk = take(&mut s, d)?;
    let v = take(&mut s, d)?;
    let o = take(&mut s, d)?;
    let kf = take(&mut s, f)?;
    embed_ln0(m, token, d, eps, ln, x)?;

    for (l, st) in state.chunks_exact_mut(5 * d).enumerate() {
        let li = Some(l as u16);
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

        channel_mix(m, li, mix, eps, x, ln, xm, r, kf, o, ffn_xx)?;
    }
    head(m, eps, x, ln, out)
}

/// The channel-mix block shared by RWKV v4, v5 and v6: `x += σ(Wr·xr) ⊙ Wv·relu(Wk·xk)²`,
/// `xr`/`xk` from the token shift `shift` (v4/v5 [`mix`], v6 [`shift`]).
#[allow(clippy::too_many_arguments)]
pub(crate) fn channel_mix(
    m: &Model<'_>,
    li: Option<u16>,
    shift: ShiftFn,
    eps: f32,
    x: &mut [f32],
    ln: &mut [f32],
    xm: &mut [f32],
    r: &mut [f32],
    kf: &mut [f32],
    o: &mut [f32],
    ffn_xx: &mut [f32],
) -> Result<(), StepError> {
    let k = m.kernels();
    kernels::layer_norm(
        x,
        m.f32s(li, Role::Norm2)?,
        m.f32s(li, Role::Norm2Bias)?,
        eps,
        ln,
    );
    shift(ln, ffn_xx, m.f32s(li, Role::FfnMixR)?, xm);
    linear(k, m.w(li, Role::FfnReceptance)?, xm, None, r)?;
    shift(ln, ffn_xx, m.f32s(li, Role::FfnMixK)?, xm);
    linear(k, m.w(li, Role::FfnKey)?, xm, None, kf)?;
    ffn_xx.copy_from_slice(ln);
    for h in kf.iter_mut() {
        let rl = if *h > 0.0 { *h } else { 0.0 };
        *h = rl * rl;
    }
    linear(k, m.w(li, Role::FfnValue)?, kf, None, o)?;
    for ((xv, ov), rv) in x.iter_mut().zip(o.iter()).zip(r.iter()) {
        *xv += kernels::sigmoid(k, *rv) * *ov;
    }
    Ok(())
}

/// Embedding row and `ln0` (shared by every RWKV version).
pub(crate) fn embed_ln0(
    m: &Model<'_>,
    token: u32,
    d: usize,
    eps: f32,
    tmp: &mut [f32],
    x: &mut [f32],
) -> Result<(), StepError> {
    embed(m.w(None, Role::Embedding)?, token as usize, d, tmp)?;
    kernels::layer_norm(
        tmp,
        m.f32s(None, Role::Ln0)?,
        m.f32s(None, Role::Ln0Bias)?,
        eps,
        x,
    );
    Ok(())
}

/// `ln_out` and the head (shared by every RWKV version).
pub(crate) fn head(
    m: &Model<'_>,
    eps: f32,
    x: &[f32],
    ln: &mut [f32],
    out: &mut [f32],
) -> Result<(), StepError> {
    kernels::layer_norm(
        x,
        m.f32s(None, Role::NormF)?,
        m.f32s(None, Role::NormFBias)?,
        eps,
        ln,
    );
    linear(m.kernels(), m.w(None, Role::LmHead)?, ln, None, out)
}
