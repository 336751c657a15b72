//! Mamba-2 block, float and w8a8 step (HF `Mamba2Mixer` semantics).

use super::Mamba2Block;
use crate::blocks::{take, Layer};
use crate::error::StepError;
use crate::kernels::{self, Kernels};
use crate::layers::{conv_silu_step, linear};
use crate::role::Role;

/// One layer over one stream's residual `resid` (`scratch`: the block scratch).
#[inline]
pub(super) fn layer(
    c: &Mamba2Block,
    at: Layer<'_, '_>,
    resid: &mut [f32],
    st: &mut [f32],
    scratch: &mut [f32],
) -> Result<(), StepError> {
    let Layer { m, li } = at;
    let k = m.kernels();
    let (dm, di, n, dc, nh, hd, g) = (
        c.d_model as usize,
        c.d_inner as usize,
        c.d_state as usize,
        c.d_conv as usize,
        c.n_heads as usize,
        c.head_dim as usize,
        c.n_groups as usize,
    );
    let conv_dim = di + 2 * g * n;
    let mut s = scratch;
    let normed = take(&mut s, dm)?;
    let proj = take(&mut s, di + conv_dim + nh)?;
    let (hist, ssm) = st.split_at_mut(conv_dim * (dc - 1));
    kernels::rms_norm(k, resid, m.f32s(li, Role::Norm)?, c.norm_eps, normed);
    let b = m.opt_f32s(c.in_proj_bias, li, Role::InProjBias)?;
    linear(k, m.w(li, Role::InProj)?, normed, b, proj)?;
    let (z, rest) = proj.split_at_mut(di);
    let (xbc, dt_raw) = rest.split_at_mut(conv_dim);
    let cb = m.opt_f32s(c.conv_bias, li, Role::ConvB)?;
    conv_silu_step(
        k,
        xbc,
        hist,
        m.f32s(li, Role::ConvW)?,
        cb,
        dc,
        &mut crate::probe::NoProbe,
        li,
    )?;
    let (x, bc) = xbc.split_at_mut(di);
    let (bm, cm) = bc.split_at(g * n);
    let dt_bias = m.f32s(li, Role::DtBias)?;
    let a = m.f32s(li, Role::A)?;
    let d = m.f32s(li, Role::D)?;
    if dt_bias.len() != nh || a.len() != nh || d.len() != nh || ssm.len() != di * n {
        return Err(StepError::Internal);
    }
    let heads_per_group = nh / g;
    for (h, (xh, sh)) in x
        .chunks_exact_mut(hd)
        .zip(ssm.chunks_exact_mut(hd * n))
        .enumerate()
    {
        let dt = kernels::softplus(k, dt_raw[h] + dt_bias[h]);
        // torch.clamp(dt, min, max); NaN propagates as in torch.
        let dt = if dt < c.dt_min {
            c.dt_min
        } else if dt > c.dt_max {
            c.dt_max
        } else {
            dt
        };
        let da = kernels::exp(k, dt * a[h]);
        let gi = h / heads_per_group;
        let bg = &bm[gi * n..(gi + 1) * n];
        let cg = &cm[gi * n..(gi + 1) * n];
        for (xc, hrow) in xh.iter_mut().zip(sh.chunks_exact_mut(n)) {
            let u = *xc;
            let y = match k {
                Kernels::Reference => {
                    let mut y = 0.0f32;
                    for ((hv, &bv), &cv) in hrow.iter_mut().zip(bg).zip(cg) {
                        *hv = *hv * da + (dt * bv) * u;
                        y += *hv * cv;
                    }
                    y
                }
                Kernels::Fast => {
                    for (hv, &bv) in hrow.iter_mut().zip(bg) {
                        *hv = *hv * da + (dt * bv) * u;
                    }
                    kernels::fast::dot(hrow, cg)
                }
            };
            *xc = y + u * d[h];
        }
    }
    // Gated RMSNorm: y * SiLU(z), normalised per group of `norm_group_size`.
    for (xv, zv) in x.iter_mut().zip(z.iter()) {
        *xv *= kernels::silu(k, *zv);
    }
    let gw = m.f32s(li, Role::GatedNorm)?;
    let gs = c.norm_group_size as usize;
    for (xg, wg) in x.chunks_exact_mut(gs).zip(gw.chunks_exact(gs)) {
        kernels::rms_norm_inplace(k, xg, wg, c.norm_eps);
    }
    let ob = m.opt_f32s(c.out_proj_bias, li, Role::OutProjBias)?;
    linear(k, m.w(li, Role::OutProj)?, x, ob, normed)?;
    for (r, o) in resid.iter_mut().zip(normed.iter()) {
        *r += *o;
    }

    Ok(())
}
