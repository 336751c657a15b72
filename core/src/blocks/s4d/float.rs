//! S4D block, float and w8a8 step.
//!
//! Per channel and complex mode: `h ← dA·h + u`, `y = 2·Re(Σ C̃·h) + D·u` where
//! `dA = exp(dt·A)` and `C̃ = C·(exp(dt·A) − 1)/A` (zero-order hold) are precomputed at
//! conversion. This equals the convolution with `K[l] = 2·Re(Σ C·dB·dA^l)`.

use super::S4dBlock;
use crate::blocks::{take, Layer};
use crate::error::StepError;
use crate::kernels::{self, Kernels};
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
    let k: Kernels = m.kernels();
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
    let da = m.f32s(li, Role::DA)?;
    let cb = m.f32s(li, Role::CB)?;
    let d = m.f32s(li, Role::D)?;
    if da.len() != h * half * 2 || cb.len() != da.len() || d.len() != h {
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
    probe.observe(li, Site::S4dGeluOut, z);
    let ob = m.f32s(li, Role::OutLinearBias)?;
    linear(k, m.w(li, Role::OutLinear)?, z, Some(ob), o)?;
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
