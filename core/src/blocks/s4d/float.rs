//! S4D block, float and w8a8 step.
//!
//! Per channel and complex mode: `h ← dA·h + u`, `y = 2·Re(Σ C̃·h) + D·u` where
//! `dA = exp(dt·A)` and `C̃ = C·(exp(dt·A) − 1)/A` (zero-order hold) are precomputed at
//! conversion. This equals the convolution with `K[l] = 2·Re(Σ C·dB·dA^l)`.

use super::S4dBlock;
use crate::blocks::{take, Layer};
use crate::error::StepError;
use crate::kernels::{self, Kernels, Weights, Q15_SCALE};
use crate::layers::linear;
use crate::probe::{Probe, Site};
use crate::role::Role;

/// One S4D layer over one stream's residual `x` (`scratch`: the block scratch).
#[inline]
pub(super) fn layer<P: Probe>(
    c: &S4dBlock,
    at: Layer<'_, '_>,
    x: &mut [f32],
    st: &mut [f32],
    scratch: &mut [f32],
    probe: &mut P,
) -> Result<(), StepError> {
    let Layer { m, li } = at;
    let h = c.d_model as usize;
    let half = c.d_state as usize / 2;
    let mut s = scratch;
    let z = take(&mut s, h)?;
    let o = take(&mut s, if c.glu { 2 * h } else { h })?;
    let nw = m.f32s(li, Role::Norm)?;
    let nb = m.f32s(li, Role::NormBias)?;
    if c.prenorm {
        kernels::layer_norm(x, nw, nb, c.norm_eps, z);
    } else {
        z.copy_from_slice(x);
    }
    probe.observe(li, Site::NormOut, z);
    let (da, cb, d) = (m.w(li, Role::DA)?, m.w(li, Role::CB)?, m.w(li, Role::D)?);
    let (da, cb, d) = match (da, cb, d) {
        (Weights::F32(da), Weights::F32(cb), Weights::F32(d)) => (da, cb, d),
        // Format 1.6's compact encodings (and any mix of encodings).
        (da, cb, d) => {
            compact_modes(c, z, st, da, cb, d, li, probe)?;
            return finish(c, at, x, z, o, probe);
        }
    };
    if d.len() != h {
        return Err(StepError::Internal);
    }
    if da.len() != h * half * 2 || cb.len() != da.len() {
        return Err(StepError::Internal);
    }
    for (ch, ((zc, hs), (dac, cbc))) in z
        .iter_mut()
        .zip(st.chunks_exact_mut(half * 2))
        .zip(da.chunks_exact(half * 2).zip(cb.chunks_exact(half * 2)))
        .enumerate()
    {
        let u = *zc;
        let mut y = 0.0f32;
        for ((hm, am), cm) in hs
            .chunks_exact_mut(2)
            .zip(dac.chunks_exact(2))
            .zip(cbc.chunks_exact(2))
        {
            let (hr, hi) = (hm[0], hm[1]);
            let nr = (am[0] * hr - am[1] * hi) + u;
            let ni = am[0] * hi + am[1] * hr;
            hm[0] = nr;
            hm[1] = ni;
            y += cm[0] * nr - cm[1] * ni;
        }
        probe.observe(li, Site::State, hs);
        let pre = 2.0 * y + d[ch] * u;
        probe.observe(li, Site::S4dPreGelu, core::slice::from_ref(&pre));
        *zc = kernels::gelu(pre);
    }
    finish(c, at, x, z, o, probe)
}

/// The layer after its modes: the output linear, the GLU or residual add, a post-norm.
#[inline]
fn finish<P: Probe>(
    c: &S4dBlock,
    at: Layer<'_, '_>,
    x: &mut [f32],
    z: &mut [f32],
    o: &mut [f32],
    probe: &mut P,
) -> Result<(), StepError> {
    let Layer { m, li } = at;
    let k: Kernels = m.kernels();
    let h = c.d_model as usize;
    probe.observe(li, Site::S4dGeluOut, z);
    let nw = m.f32s(li, Role::Norm)?;
    let nb = m.f32s(li, Role::NormBias)?;
    match m.w(li, Role::OutLinearBias)? {
        Weights::F32(ob) => linear(k, m.w(li, Role::OutLinear)?, z, Some(ob), o)?,
        // An f16 bias (format 1.6) is added after the product.
        Weights::F16(ob) if ob.len() == o.len() => {
            linear(k, m.w(li, Role::OutLinear)?, z, None, o)?;
            for (v, b) in o.iter_mut().zip(ob) {
                *v += b.to_f32();
            }
        }
        _ => return Err(StepError::Internal),
    }
    if c.glu {
        let (a, g) = o.split_at(h);
        probe.observe(li, Site::S4dGlu, a);
        probe.observe(li, Site::S4dGate, g);
        for ((xv, &av), &gv) in x.iter_mut().zip(a).zip(g) {
            *xv += av * kernels::sigmoid(k, gv);
        }
    } else {
        probe.observe(li, Site::S4dGlu, o);
        for (xv, &av) in x.iter_mut().zip(o.iter()) {
            *xv += av;
        }
    }
    probe.observe(None, Site::Resid, x);
    if !c.prenorm {
        z.copy_from_slice(x);
        kernels::layer_norm(z, nw, nb, c.norm_eps, x);
        probe.observe(None, Site::Resid, x);
    }
    Ok(())
}

/// One channel's modes (`(re, im)` pairs) in a stored encoding: `value(m)` is mode `m`
/// before the channel's `scale()`.
trait Pairs {
    fn pair(&self, m: usize) -> Option<(f32, f32)>;
    fn scale(&self) -> f32 {
        1.0
    }
}

struct F32Pairs<'a>(&'a [f32]);
impl Pairs for F32Pairs<'_> {
    #[inline(always)]
    fn pair(&self, m: usize) -> Option<(f32, f32)> {
        Some((*self.0.get(2 * m)?, *self.0.get(2 * m + 1)?))
    }
}

struct Q15Pairs<'a>(&'a [i16]);
impl Pairs for Q15Pairs<'_> {
    #[inline(always)]
    fn pair(&self, m: usize) -> Option<(f32, f32)> {
        let (r, i) = (*self.0.get(2 * m)?, *self.0.get(2 * m + 1)?);
        Some((r as f32 * Q15_SCALE, i as f32 * Q15_SCALE))
    }
}

/// An int8 row: the values here, its scale applied once to the channel's sum.
struct I8Pairs<'a>(&'a [i8], f32);
impl Pairs for I8Pairs<'_> {
    #[inline(always)]
    fn pair(&self, m: usize) -> Option<(f32, f32)> {
        Some((*self.0.get(2 * m)? as f32, *self.0.get(2 * m + 1)? as f32))
    }
    fn scale(&self) -> f32 {
        self.1
    }
}

/// Channel `ch`'s pairs of a `[d_model, d_state]` mode tensor in any allowed encoding.
fn channel<'a>(w: &Weights<'a>, ch: usize, n: usize) -> Option<ModeRow<'a>> {
    let r = ch.checked_mul(n)?..ch.checked_mul(n)?.checked_add(n)?;
    Some(match w {
        Weights::F32(v) => ModeRow::F(F32Pairs(v.get(r)?)),
        Weights::Q15(v) => ModeRow::Q(Q15Pairs(v.get(r)?)),
        Weights::I8(q) if q.cols == n => ModeRow::I(I8Pairs(q.q.get(r)?, *q.scale.get(ch)?)),
        _ => return None,
    })
}

enum ModeRow<'a> {
    F(F32Pairs<'a>),
    Q(Q15Pairs<'a>),
    I(I8Pairs<'a>),
}

/// One channel's update: `h ← dA·h + u` per mode, returns `scale(C̃) · Re(Σ C̃·h)`.
#[inline(always)]
fn modes<A: Pairs, C: Pairs>(hs: &mut [f32], a: &A, c: &C, u: f32) -> Option<f32> {
    let mut y = 0.0f32;
    for (m, hm) in hs.chunks_exact_mut(2).enumerate() {
        let ((ar, ai), (cr, ci)) = (a.pair(m)?, c.pair(m)?);
        let (hr, hi) = (hm[0], hm[1]);
        let nr = (ar * hr - ai * hi) + u;
        let ni = ar * hi + ai * hr;
        hm[0] = nr;
        hm[1] = ni;
        y += cr * nr - ci * ni;
    }
    Some(c.scale() * y)
}

/// The modes of a layer whose `dA`, `C·dB`, `D` are not all f32 (format 1.6: `dA` in
/// Q1.15, `C·dB` int8 with one scale per channel, `y = 2·s·Re(Σ q·h) + D·u`, `D` f16).
#[allow(clippy::too_many_arguments)]
fn compact_modes<P: Probe>(
    c: &S4dBlock,
    z: &mut [f32],
    st: &mut [f32],
    da: Weights<'_>,
    cb: Weights<'_>,
    d: Weights<'_>,
    li: crate::role::LayerIndex,
    probe: &mut P,
) -> Result<(), StepError> {
    let n = c.d_state as usize;
    if st.len() < z.len() * n {
        return Err(StepError::Internal);
    }
    for (ch, (zc, hs)) in z.iter_mut().zip(st.chunks_exact_mut(n)).enumerate() {
        let u = *zc;
        let bad = StepError::Internal;
        let (a, cc) = (
            channel(&da, ch, n).ok_or(bad)?,
            channel(&cb, ch, n).ok_or(bad)?,
        );
        macro_rules! go {
            ($a:expr) => {
                match &cc {
                    ModeRow::F(cr) => modes(hs, $a, cr, u),
                    ModeRow::Q(cr) => modes(hs, $a, cr, u),
                    ModeRow::I(cr) => modes(hs, $a, cr, u),
                }
            };
        }
        let y = match &a {
            ModeRow::F(ar) => go!(ar),
            ModeRow::Q(ar) => go!(ar),
            ModeRow::I(ar) => go!(ar),
        }
        .ok_or(StepError::Internal)?;
        probe.observe(li, Site::State, hs);
        let dc = match d {
            Weights::F32(d) => d.get(ch).copied(),
            Weights::F16(d) => d.get(ch).map(|v| v.to_f32()),
            _ => None,
        };
        let pre = 2.0 * y + dc.ok_or(StepError::Internal)? * u;
        probe.observe(li, Site::S4dPreGelu, core::slice::from_ref(&pre));
        *zc = kernels::gelu(pre);
    }
    Ok(())
}
