//! Gated MLP block, float and w8a8 step.

use super::{MlpAct, MlpBlock, MlpNorm};
use crate::blocks::{take, Layer};
use crate::error::StepError;
use crate::kernels;
use crate::layers::linear;
use crate::probe::{Probe, Site};
use crate::role::Role;

/// One gated MLP layer over one stream's residual `x` (`scratch`: the block scratch).
#[inline]
pub(super) fn layer<P: Probe>(
    c: &MlpBlock,
    at: Layer<'_, '_>,
    x: &mut [f32],
    scratch: &mut [f32],
    probe: &mut P,
) -> Result<(), StepError> {
    let Layer { m, li } = at;
    let k = m.kernels();
    let (d, f) = (c.d_model as usize, c.d_ffn as usize);
    let mut s = scratch;
    let n = take(&mut s, d)?;
    let g = take(&mut s, f)?;
    let u = take(&mut s, f)?;
    let w = m.f32s(li, Role::Norm)?;
    match c.norm {
        MlpNorm::Rms { eps } => kernels::rms_norm(k, x, w, eps, n),
        MlpNorm::Layer { eps } => kernels::layer_norm(x, w, m.f32s(li, Role::NormBias)?, eps, n),
    }
    probe.observe(li, Site::NormOut, n);
    linear(k, m.w(li, Role::MlpGate)?, n, None, g)?;
    linear(k, m.w(li, Role::MlpUp)?, n, None, u)?;
    for (gv, &uv) in g.iter_mut().zip(u.iter()) {
        let a = match c.act {
            MlpAct::Silu => kernels::silu(k, *gv),
            MlpAct::Gelu => kernels::gelu(*gv),
        };
        *gv = a * uv;
    }
    probe.observe(li, Site::MlpHidden, g);
    linear(k, m.w(li, Role::MlpDown)?, g, None, n)?;
    for (xv, &y) in x.iter_mut().zip(n.iter()) {
        *xv += y;
    }
    probe.observe(None, Site::Resid, x);
    Ok(())
}
