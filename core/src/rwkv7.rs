//! RWKV v7 ("Goose", arXiv 2503.14456) block, one recurrent step: the generalized delta
//! rule on a per-head N×N state,
//! `S ← S·diag(w) − (S·κ̂)(κ̂ ⊙ a)ᵀ + v kᵀ`, `o = S r`,
//! with data-dependent decay `w`, in-context learning rate `a`, the normalised removal key
//! `κ̂`, the value residual from layer 0, a per-head group norm, the `r·k` bonus and the gate.

use crate::config::{Role, Rwkv7Config};
use crate::error::StepError;
use crate::kernels::{self, Kernels};
use crate::layers::{linear, lora};
use crate::model::{take, Model};
use crate::rwkv4::{embed_ln0, head, shift};

/// exp(-0.5): the decay is `exp(-e^{-1/2} · sigmoid(w0 + lora(x)))`.
const W_SCALE: f32 = 0.606_530_66;

pub(crate) fn step(
    m: &Model<'_>,
    c: &Rwkv7Config,
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
    let (d, f, eps, n) = (
        c.d_model as usize,
        c.d_ffn as usize,
        c.norm_eps,
        c.head_size as usize,
    );
    let lr = [c.d_lora_w, c.d_lora_a, c.d_lora_v, c.d_lora_g]
        .into_iter()
        .max()
        .unwrap_or(0) as usize;
    let mut s = scratch;
    let x = take(&mut s, d)?;
    let ln = take(&mut s, d)?;
    let xm = take(&mut s, d)?;
    let r = take(&mut s, d)?;
    let w = take(&mut s, d)?;
    let kk_ = take(&mut s, d)?;
    let v = take(&mut s, d)?;
    let a = take(&mut s, d)?;
    let g = take(&mut s, d)?;
    let kk = take(&mut s, d)?;
    let v_first = take(&mut s, d)?;
    let o = take(&mut s, d)?;
    let tmp = take(&mut s, lr)?;
    let kf = take(&mut s, f)?;
    embed_ln0(m, token, d, eps, ln, x)?;

    let per_layer = 2 * d + d * n;
    for (l, st) in state.chunks_exact_mut(per_layer).enumerate() {
        let li = Some(l as u16);
        let (att_xx, rest) = st.split_at_mut(d);
        let (heads, ffn_xx) = rest.split_at_mut(d * n);
        let kx = k;

        // Time mix.
        kernels::layer_norm(
            x,
            m.f32s(li, Role::Norm)?,
            m.f32s(li, Role::NormBias)?,
            eps,
            ln,
        );
        let mixes = m.f32s(li, Role::XRwkvag)?;
        if mixes.len() != 6 * d {
            return Err(StepError::Internal);
        }
        let mx = |i: usize| &mixes[i * d..(i + 1) * d];
        shift(ln, att_xx, mx(0), xm);
        linear(kx, m.w(li, Role::AttReceptance)?, xm, None, r)?;
        shift(ln, att_xx, mx(1), xm);
        lora(
            kx,
            m.w(li, Role::W1)?,
            m.w(li, Role::W2)?,
            xm,
            tmp,
            libm::tanhf,
            w,
        )?;
        shift(ln, att_xx, mx(2), xm);
        linear(kx, m.w(li, Role::AttKey)?, xm, None, kk_)?;
        shift(ln, att_xx, mx(3), xm);
        linear(kx, m.w(li, Role::AttValue)?, xm, None, v)?;
        // value residual (xm still holds x_v)
        if l == 0 {
            v_first.copy_from_slice(v);
        } else {
            lora(
                kx,
                m.w(li, Role::V1)?,
                m.w(li, Role::V2)?,
                xm,
                tmp,
                |t| t,
                o,
            )?;
            let v0 = m.f32s(li, Role::V0)?;
            for (((vv, &vf), &ov), &b) in v.iter_mut().zip(v_first.iter()).zip(o.iter()).zip(v0) {
                *vv += (vf - *vv) * kernels::sigmoid(kx, b + ov);
            }
        }
        shift(ln, att_xx, mx(4), xm);
        lora(
            kx,
            m.w(li, Role::A1)?,
            m.w(li, Role::A2)?,
            xm,
            tmp,
            |t| t,
            a,
        )?;
        let a0 = m.f32s(li, Role::A0)?;
        for (av, &b) in a.iter_mut().zip(a0) {
            *av = kernels::sigmoid(kx, b + *av);
        }
        shift(ln, att_xx, mx(5), xm);
        lora(
            kx,
            m.w(li, Role::G1)?,
            m.w(li, Role::G2)?,
            xm,
            tmp,
            |t| kernels::sigmoid(kx, t),
            g,
        )?;
        att_xx.copy_from_slice(ln);
        let w0 = m.f32s(li, Role::W0)?;
        for (wv, &b) in w.iter_mut().zip(w0) {
            *wv = kernels::exp(kx, -W_SCALE * kernels::sigmoid(kx, b + *wv));
        }
        // κ̂ = normalize_per_head(k ⊙ k_k); k ← k ⊙ (1 + (a − 1) ⊙ k_a)
        let k_k = m.f32s(li, Role::KK)?;
        let k_a = m.f32s(li, Role::KA)?;
        for ((kkv, &kv), &kkw) in kk.iter_mut().zip(kk_.iter()).zip(k_k) {
            *kkv = kv * kkw;
        }
        for h in kk.chunks_exact_mut(n) {
            let norm = libm::sqrtf(kernels::reference::dot(h, h));
            let inv = 1.0 / if norm > 1e-12 { norm } else { 1e-12 };
            for v in h.iter_mut() {
                *v *= inv;
            }
        }
        for ((kv, &av), &kaw) in kk_.iter_mut().zip(a.iter()).zip(k_a) {
            *kv *= 1.0 + (av - 1.0) * kaw;
        }
        // State update and output, per head.
        if heads.len() != d * n {
            return Err(StepError::Internal);
        }
        for (hi, sh) in heads.chunks_exact_mut(n * n).enumerate() {
            let base = hi * n;
            let (rh, wh, kh, vh, ah, kkh) = (
                &r[base..base + n],
                &w[base..base + n],
                &kk_[base..base + n],
                &v[base..base + n],
                &a[base..base + n],
                &kk[base..base + n],
            );
            for (i, row) in sh.chunks_exact_mut(n).enumerate() {
                // sa = S_i · κ̂ (old state)
                let mut sa = 0.0f32;
                for (sv, &kv) in row.iter().zip(kkh) {
                    sa += sv * kv;
                }
                let vi = vh[i];
                let mut acc = 0.0f32;
                for j in 0..n {
                    let nv = row[j] * wh[j] - sa * (kkh[j] * ah[j]) + vi * kh[j];
                    row[j] = nv;
                    acc += nv * rh[j];
                }
                o[base + i] = acc;
            }
        }
        // Group norm per head, plus the r·k bonus, times the gate.
        let lw = m.f32s(li, Role::LnX)?;
        let lb = m.f32s(li, Role::LnXBias)?;
        let r_k = m.f32s(li, Role::RK)?;
        for h in 0..d / n {
            let span = h * n..(h + 1) * n;
            kernels::layer_norm(
                &o[span.clone()],
                &lw[span.clone()],
                &lb[span.clone()],
                c.group_norm_eps,
                &mut xm[span.clone()],
            );
            let mut bonus = 0.0f32;
            for j in span.clone() {
                bonus += r[j] * kk_[j] * r_k[j];
            }
            for j in span {
                xm[j] = (xm[j] + bonus * v[j]) * g[j];
            }
        }
        linear(kx, m.w(li, Role::AttOutput)?, xm, None, o)?;
        for (xv, ov) in x.iter_mut().zip(o.iter()) {
            *xv += *ov;
        }

        // Channel mix: x += Wv · relu(Wk · shift(ln2(x)))².
        kernels::layer_norm(
            x,
            m.f32s(li, Role::Norm2)?,
            m.f32s(li, Role::Norm2Bias)?,
            eps,
            ln,
        );
        shift(ln, ffn_xx, m.f32s(li, Role::FfnMixK)?, xm);
        linear(kx, m.w(li, Role::FfnKey)?, xm, None, kf)?;
        ffn_xx.copy_from_slice(ln);
        for h in kf.iter_mut() {
            let rl = if *h > 0.0 { *h } else { 0.0 };
            *h = rl * rl;
        }
        linear(kx, m.w(li, Role::FfnValue)?, kf, None, o)?;
        for (xv, ov) in x.iter_mut().zip(o.iter()) {
            *xv += *ov;
        }
    }
    head(m, eps, x, ln, out)
}
