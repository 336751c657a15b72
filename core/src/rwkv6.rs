//! RWKV v6 ("Finch", arXiv 2404.05892) block, one recurrent step. It keeps v5.2's per-head
//! matrix state, group norm and SiLU gate, and makes the token shift and the decay depend
//! on the data:
//!
//! - with `sx = prev − x`, `xxx = x + sx ⊙ maa_x`, the low-rank
//!   `m_i = W2_i · tanh(W1 · xxx)_i` for `i ∈ {w, k, v, r, g}` and
//!   `x_i = x + sx ⊙ (maa_i + m_i)`;
//! - `w = exp(−exp(time_decay + D2 · tanh(D1 · x_w)))`, per channel and step;
//! - WKV, group norm and gate as in v5.2 ([`crate::rwkv5::wkv`]); the channel mix of v4/v5
//!   with the `x + sx ⊙ maa` token shift.

use crate::config::{Role, Rwkv6Config};
use crate::error::StepError;
use crate::kernels::{self, Kernels};
use crate::layers::{linear, lora};
use crate::model::{take, Model};
use crate::rwkv4::{channel_mix, embed_ln0, head, shift};
use crate::rwkv5::{group_norm_gate, wkv};

pub(crate) fn step(
    m: &Model<'_>,
    c: &Rwkv6Config,
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
    let x = take(&mut s, d)?;
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
    embed_ln0(m, token, d, eps, ln, x)?;

    let per_layer = 2 * d + d * hs;
    for (l, st) in state.chunks_exact_mut(per_layer).enumerate() {
        let li = Some(l as u16);
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
        channel_mix(m, li, shift, eps, x, ln, xm, r, kf, mt, ffn_xx)?;
    }
    head(m, eps, x, ln, out)
}
