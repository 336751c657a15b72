//! S5 block, float and w8a8 step.

use super::{S5Act, S5Block, S5Norm};
use crate::blocks::{take, Layer};
use crate::error::StepError;
use crate::kernels;
use crate::layers::linear;
use crate::probe::{Probe, Site};
use crate::role::Role;

/// One S5 layer over one stream's `x` (`st`: `P` complex modes as (re, im); `scratch`: the
/// block scratch).
#[inline]
pub(super) fn layer<P: Probe>(
    c: &S5Block,
    at: Layer<'_, '_>,
    x: &mut [f32],
    st: &mut [f32],
    scratch: &mut [f32],
    probe: &mut P,
) -> Result<(), StepError> {
    let Layer { m, li } = at;
    let k = m.kernels();
    let (h, p) = (c.d_model as usize, c.n_modes as usize);
    if x.len() != h || st.len() != 2 * p {
        return Err(StepError::Internal);
    }
    let mut s = scratch;
    let n = take(&mut s, h)?;
    let y = take(&mut s, h)?;
    let u = take(&mut s, 2 * p)?;
    match c.norm {
        S5Norm::Pre { eps } => kernels::layer_norm(
            x,
            m.f32s(li, Role::Norm)?,
            m.f32s(li, Role::NormBias)?,
            eps,
            n,
        ),
        _ => n.copy_from_slice(x),
    }
    probe.observe(li, Site::NormOut, n);
    let lam = m.f32s(li, Role::S5Lambda)?;
    if lam.len() != 2 * p {
        return Err(StepError::Internal);
    }
    if c.complex_b {
        linear(k, m.w(li, Role::S5B)?, n, None, u)?;
        for ((hm, lm), um) in st
            .chunks_exact_mut(2)
            .zip(lam.chunks_exact(2))
            .zip(u.chunks_exact(2))
        {
            mode(hm, lm, um[0], um[1]);
        }
    } else {
        let u = &mut u[..p];
        linear(k, m.w(li, Role::S5B)?, n, None, u)?;
        for ((hm, lm), &um) in st
            .chunks_exact_mut(2)
            .zip(lam.chunks_exact(2))
            .zip(u.iter())
        {
            mode(hm, lm, um, 0.0);
        }
    }
    probe.observe(li, Site::State, st);
    if c.complex_c {
        linear(k, m.w(li, Role::S5C)?, st, None, y)?;
    } else {
        let re = &mut u[..p];
        for (r, hm) in re.iter_mut().zip(st.chunks_exact(2)) {
            *r = hm[0];
        }
        linear(k, m.w(li, Role::S5C)?, re, None, y)?;
    }
    if c.d_skip {
        let d = m.f32s(li, Role::D)?;
        if d.len() != h {
            return Err(StepError::Internal);
        }
        for ((yv, &dv), &nv) in y.iter_mut().zip(d).zip(n.iter()) {
            *yv += dv * nv;
        }
    }
    if let S5Norm::Post { eps } = c.norm {
        n.copy_from_slice(y);
        kernels::layer_norm(
            n,
            m.f32s(li, Role::Norm)?,
            m.f32s(li, Role::NormBias)?,
            eps,
            y,
        );
    }
    for (xv, &yv) in x.iter_mut().zip(y.iter()) {
        let a = match c.act {
            S5Act::None => yv,
            S5Act::Silu => kernels::silu(k, yv),
            S5Act::Gelu => kernels::gelu(yv),
        };
        *xv = if c.residual { *xv + a } else { a };
    }
    probe.observe(None, Site::Resid, x);
    Ok(())
}

/// A state component below this magnitude is set to zero (it changes no f32 output of a
/// layer: its largest product with a weight is ~1e-30). It keeps the state out of f32's
/// subnormal range, where x86 cores take a ~100-cycle assist per operation: a decaying mode
/// under a quiet input otherwise spends its time there (aTENNuate's 16 kHz layers went
/// from 0.7× to beyond real time with this).
const TINY: f32 = 1e-30;

/// One complex mode: `h ← λ·h + (ur + i·ui)`, each part flushed to zero below [`TINY`].
#[inline(always)]
fn mode(h: &mut [f32], l: &[f32], ur: f32, ui: f32) {
    let (hr, hi) = (h[0], h[1]);
    let nr = l[0] * hr - l[1] * hi + ur;
    let ni = l[0] * hi + l[1] * hr + ui;
    h[0] = if nr.abs() < TINY { 0.0 } else { nr };
    h[1] = if ni.abs() < TINY { 0.0 } else { ni };
}
