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
            y += mode(hm, (am[0], am[1]), (cm[0], cm[1]), u);
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

/// One complex mode `hm = (re, im)`: `h ← dA·h + u`, returns its share `Re(C̃·h)` of the
/// channel's output (every encoding's loop, so all compute it alike).
#[inline(always)]
fn mode(hm: &mut [f32], (ar, ai): (f32, f32), (cr, ci): (f32, f32), u: f32) -> f32 {
    let (hr, hi) = (hm[0], hm[1]);
    let nr = (ar * hr - ai * hi) + u;
    let ni = ar * hi + ai * hr;
    hm[0] = nr;
    hm[1] = ni;
    cr * nr - ci * ni
}

/// Modes converted at a time by [`compact_modes`] (`2 · CHUNK` values on the stack).
const CHUNK: usize = 16;

/// Values `start..start + out.len()` of channel `ch`'s row (`n` values) of a mode tensor in
/// f32: Q1.15 scaled, int8 as its integers (the caller applies the row's scale, returned).
#[inline(never)]
fn fill(w: &Weights<'_>, ch: usize, n: usize, start: usize, out: &mut [f32]) -> Option<f32> {
    let lo = ch.checked_mul(n)?.checked_add(start)?;
    let r = lo..lo.checked_add(out.len())?;
    match w {
        Weights::F32(v) => out.copy_from_slice(v.get(r)?),
        Weights::Q15(v) => {
            for (o, &q) in out.iter_mut().zip(v.get(r)?) {
                *o = q as f32 * Q15_SCALE;
            }
        }
        Weights::I8(q) if q.cols == n => {
            for (o, &v) in out.iter_mut().zip(q.q.get(r)?) {
                *o = v as f32;
            }
            return q.scale.get(ch).copied();
        }
        _ => return None,
    }
    Some(1.0)
}

/// The modes of a layer whose `dA`, `C·dB`, `D` are not all f32 (format 1.6: `dA` in
/// Q1.15, `C·dB` int8 with one scale per channel, `y = 2·s·Re(Σ q·h) + D·u`, `D` f16):
/// per channel, [`CHUNK`] modes at a time converted to f32, then the f32 update.
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
    let bad = StepError::Internal;
    if st.len() < z.len() * n {
        return Err(bad);
    }
    let (mut a, mut w) = ([0f32; 2 * CHUNK], [0f32; 2 * CHUNK]);
    for (ch, (zc, hs)) in z.iter_mut().zip(st.chunks_exact_mut(n)).enumerate() {
        let u = *zc;
        let mut y = 0.0f32;
        let mut scale = 1.0f32;
        // What int8 conversions write (`dA` Q1.15, `C·dB` int8): converted in the loop.
        if let (Weights::Q15(dq), Weights::I8(cq)) = (&da, &cb) {
            let r = ch * n..(ch + 1) * n;
            if let (Some(dr), Some(cr), Some(&s), true) = (
                dq.get(r.clone()),
                cq.q.get(r),
                cq.scale.get(ch),
                cq.cols == n,
            ) {
                for ((hm, am), cm) in hs
                    .chunks_exact_mut(2)
                    .zip(dr.chunks_exact(2))
                    .zip(cr.chunks_exact(2))
                {
                    // Written out (not `mode`): the int8 C̃ converted after the update
                    // measured 6k Cortex-M4 instructions per frame fewer.
                    let (ar, ai) = (am[0] as f32 * Q15_SCALE, am[1] as f32 * Q15_SCALE);
                    let (hr, hi) = (hm[0], hm[1]);
                    let nr = (ar * hr - ai * hi) + u;
                    let ni = ar * hi + ai * hr;
                    hm[0] = nr;
                    hm[1] = ni;
                    y += cm[0] as f32 * nr - cm[1] as f32 * ni;
                }
                scale = s;
            } else {
                return Err(bad);
            }
        } else {
            for (k, hc) in hs.chunks_mut(2 * CHUNK).enumerate() {
                let len = hc.len();
                let (a, w) = (&mut a[..len], &mut w[..len]);
                fill(&da, ch, n, 2 * CHUNK * k, a).ok_or(bad)?;
                scale = fill(&cb, ch, n, 2 * CHUNK * k, w).ok_or(bad)?;
                for ((hm, am), cm) in hc
                    .chunks_exact_mut(2)
                    .zip(a.chunks_exact(2))
                    .zip(w.chunks_exact(2))
                {
                    y += mode(hm, (am[0], am[1]), (cm[0], cm[1]), u);
                }
            }
        }
        let y = scale * y;
        probe.observe(li, Site::State, hs);
        let dc = match d {
            Weights::F32(d) => d.get(ch).copied(),
            Weights::F16(d) => d.get(ch).map(|v| v.to_f32()),
            _ => None,
        };
        let pre = 2.0 * y + dc.ok_or(bad)? * u;
        probe.observe(li, Site::S4dPreGelu, core::slice::from_ref(&pre));
        *zc = kernels::gelu(pre);
    }
    Ok(())
}
