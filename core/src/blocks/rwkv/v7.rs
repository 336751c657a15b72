//! RWKV v7 ("Goose", arXiv 2503.14456) block, one recurrent step: the generalized delta
//! rule on a per-head N×N state,
//! `S ← S·diag(w) − (S·κ̂)(κ̂ ⊙ a)ᵀ + v kᵀ`, `o = S r`,
//! with data-dependent decay `w`, in-context learning rate `a`, the normalised removal key
//! `κ̂`, the value residual from layer 0, a per-head group norm, the `r·k` bonus and the gate.

use serde::{Deserialize, Serialize};

use crate::blocks::{add, mul, pos, s1, s2, take, Block, BlockKind, Layer, Modes, Parts, Shape};
use crate::error::{FormatError, StepError};
use crate::kernels::{self, Kernels};
use crate::layers::{linear, lora};
use crate::probe::Probe;
use crate::role::{Role, RoleList};
use crate::stages::{Head, Stem};

use super::shift;

/// exp(-0.5): the decay is `exp(-e^{-1/2} · sigmoid(w0 + lora(x)))`.
const W_SCALE: f32 = 0.606_530_66;

/// RWKV v7 ("Goose") model configuration (format 1.x).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rwkv7Config {
    pub d_model: u32,
    pub d_ffn: u32,
    pub vocab_size: u32,
    pub head_size: u32,
    /// Low-rank sizes of the decay (w), in-context learning rate (a), value residual (v)
    /// and gate (g) projections.
    pub d_lora_w: u32,
    pub d_lora_a: u32,
    pub d_lora_v: u32,
    pub d_lora_g: u32,
    pub norm_eps: f32,
    pub group_norm_eps: f32,
}

/// One RWKV v7 block's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rwkv7Block {
    pub d_model: u32,
    pub d_ffn: u32,
    pub head_size: u32,
    pub d_lora_w: u32,
    pub d_lora_a: u32,
    pub d_lora_v: u32,
    pub d_lora_g: u32,
    pub norm_eps: f32,
    pub group_norm_eps: f32,
}

impl Parts for Rwkv7Config {
    fn parts(&self) -> (Stem, Block, Head) {
        let (stem, head) = super::stages(self.vocab_size, self.norm_eps);
        let block = Rwkv7Block {
            d_model: self.d_model,
            d_ffn: self.d_ffn,
            head_size: self.head_size,
            d_lora_w: self.d_lora_w,
            d_lora_a: self.d_lora_a,
            d_lora_v: self.d_lora_v,
            d_lora_g: self.d_lora_g,
            norm_eps: self.norm_eps,
            group_norm_eps: self.group_norm_eps,
        };
        (stem, Block::Rwkv7(block), head)
    }
}

impl Rwkv7Block {
    /// The largest low-rank size (their hidden vectors share one buffer).
    fn max_lora(&self) -> u32 {
        [self.d_lora_w, self.d_lora_a, self.d_lora_v, self.d_lora_g]
            .into_iter()
            .max()
            .unwrap_or(0)
    }
}

impl BlockKind for Rwkv7Block {
    const NAME: &'static str = "rwkv7";
    const SUMMARY: &'static str =
        "RWKV v7 time mix (generalized delta rule, value residual), channel mix";
    const MODES: Modes = Modes {
        float: true,
        w8a8: true,
        int: false,
    };
    const FAST_KERNELS: bool = false;
    // `v_first` (layer 0's value) lives in the block scratch until the last layer.
    const SCRATCH_CARRIES: bool = true;

    fn d_model(&self) -> u32 {
        self.d_model
    }

    fn validate(&self) -> Result<(), FormatError> {
        pos(self.d_model, "d_model must be in 1..=2^24")?;
        pos(self.d_ffn, "d_ffn must be in 1..=2^24")?;
        pos(self.head_size, "head_size must be in 1..=2^24")?;
        for v in [self.d_lora_w, self.d_lora_a, self.d_lora_v, self.d_lora_g] {
            pos(v, "low-rank sizes must be in 1..=2^24")?;
        }
        if !self.d_model.is_multiple_of(self.head_size) {
            return Err(FormatError::BadConfig("head_size must divide d_model"));
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
            Role::XRwkvag,
            Role::W0,
            Role::W1,
            Role::W2,
            Role::A0,
            Role::A1,
            Role::A2,
            Role::V0,
            Role::V1,
            Role::V2,
            Role::G1,
            Role::G2,
            Role::KK,
            Role::KA,
            Role::RK,
            Role::AttReceptance,
            Role::AttKey,
            Role::AttValue,
            Role::AttOutput,
            Role::LnX,
            Role::LnXBias,
            Role::FfnMixK,
            Role::FfnKey,
            Role::FfnValue,
        ] {
            l.push_if(true, r);
        }
    }

    fn shape(&self, role: Role) -> Option<Shape> {
        use Role::*;
        let d = self.d_model;
        Some(match role {
            Norm | NormBias | Norm2 | Norm2Bias | W0 | A0 | V0 | KK | KA | RK | LnX | LnXBias
            | FfnMixK => s1(d),
            XRwkvag => s2(6, d),
            W1 => s2(self.d_lora_w, d),
            W2 => s2(d, self.d_lora_w),
            A1 => s2(self.d_lora_a, d),
            A2 => s2(d, self.d_lora_a),
            V1 => s2(self.d_lora_v, d),
            V2 => s2(d, self.d_lora_v),
            G1 => s2(self.d_lora_g, d),
            G2 => s2(d, self.d_lora_g),
            AttKey | AttValue | AttReceptance | AttOutput => s2(d, d),
            FfnKey => s2(self.d_ffn, d),
            FfnValue => s2(d, self.d_ffn),
            _ => return None,
        })
    }

    fn state_len(&self) -> Result<u64, FormatError> {
        // att_xx, heads × N × N, ffn_xx
        let d = self.d_model as u64;
        add(mul(2, d)?, mul(d, self.head_size as u64)?)
    }

    fn scratch_len(&self) -> Result<u64, FormatError> {
        // ln, xm, r, w, k, v, a, g, kk, v_first, o + low-rank + ffn hidden
        let d = self.d_model as u64;
        add(add(mul(11, d)?, self.max_lora() as u64)?, self.d_ffn as u64)
    }

    fn macs(&self) -> u64 {
        let d = self.d_model as u64;
        let lora = (self.d_lora_w + self.d_lora_a + self.d_lora_v + self.d_lora_g) as u64;
        d * self.head_size as u64 * 4 + 2 * d * lora
    }

    /// The value residual `v_first` (layer 0's values, used by every later layer) lives
    /// in the block scratch from layer 0 to the last layer, so streams cannot share one
    /// scratch layer by layer: a batch of more than one stream is refused until the
    /// batch path keeps one `v_first` per stream.
    #[inline]
    fn step<P: Probe>(
        &self,
        at: Layer<'_, '_>,
        resid: &mut [f32],
        states: &mut [&mut [f32]],
        scratch: &mut [f32],
        _probe: &mut P,
    ) -> Result<(), StepError> {
        match states {
            [st] if resid.len() == self.d_model as usize => layer(self, at, resid, st, scratch),
            _ => Err(StepError::Internal),
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
    c: &Rwkv7Block,
    at: Layer<'_, '_>,
    x: &mut [f32],
    st: &mut [f32],
    scratch: &mut [f32],
) -> Result<(), StepError> {
    let Layer { m, li } = at;
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
    if li == Some(0) {
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
    Ok(())
}
