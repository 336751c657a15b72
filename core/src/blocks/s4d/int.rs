//! S4D block, integer-only step ([`crate::Compute::Int`]): every format is the one
//! `crate::int_step` documents; the layer plan's `S4D_*` entries give this block's sites.

use super::S4dBlock;
use crate::blocks::Layer;
use crate::error::{FormatError, StepError};
use crate::fixed;
use crate::int_step::{frac, half, linear16, nl, norm_int, plan, shift_round, take16, DA_FRAC};
use crate::role::Role;

/// The widths the integer step bounds (its `u64` norm sums and `i64` state sums).
pub(super) fn validate(c: &S4dBlock, d_input: u32) -> Result<(), FormatError> {
    crate::int_step::check_widths(c.d_model.max(d_input), c.d_state)
}

/// i32 scratch elements: `z` and the output linear's rows as packed `i16`.
pub(super) fn scratch_len(c: &S4dBlock) -> usize {
    let h = c.d_model as usize;
    half(h) + half(if c.glu { 2 * h } else { h })
}

/// One integer S4D layer over one stream's residual `x` (`i16` at the global plan's
/// residual format).
pub(super) fn layer(
    c: &S4dBlock,
    at: Layer<'_, '_>,
    x: &mut [i16],
    st: &mut [i32],
    scratch: &mut [i32],
) -> Result<(), StepError> {
    let Layer { m, li } = at;
    let h = c.d_model as usize;
    let half_n = c.d_state as usize / 2;
    let mut s = scratch;
    let z = take16(&mut s, h)?;
    let o = take16(&mut s, if c.glu { 2 * h } else { h })?;
    let fr = frac(m.i32s(None, Role::IntPlan)?, plan::G_RESID_FRAC, 15);
    let p = m.i32s(li, Role::IntLayerPlan)?;
    let nw = m.i16s(li, Role::Norm)?;
    let nb = m.i32s(li, Role::NormBias)?;
    let (fnorm, eps, fnw) = (
        frac(p, plan::L_NORM_FRAC, 15),
        p.get(plan::L_NORM_EPS).copied().unwrap_or(0),
        frac(p, plan::L_NORM_W_FRAC, 15),
    );
    let fu = if c.prenorm {
        norm_int(x, nw, Some(nb), eps, fr, fnw, fnorm, z)?;
        fnorm
    } else {
        z.copy_from_slice(x);
        fr
    };
    let fh = frac(p, plan::S4D_H_FRAC, 40);
    let fcb = frac(p, plan::S4D_CB_FRAC, 40);
    let fd = frac(p, plan::S4D_D_FRAC, 40);
    let fg = frac(p, plan::S4D_GELU_FRAC, 15);
    let da = m.i32s(li, Role::DA)?;
    let cb = m.i32s(li, Role::CB)?;
    let d = m.i32s(li, Role::D)?;
    if da.len() != h * half_n * 2 || cb.len() != da.len() || d.len() != h {
        return Err(StepError::Internal);
    }
    for (ch, ((zc, hs), (dac, cbc))) in z
        .iter_mut()
        .zip(st.chunks_exact_mut(half_n * 2))
        .zip(da.chunks_exact(half_n * 2).zip(cb.chunks_exact(half_n * 2)))
        .enumerate()
    {
        let u = *zc as i64;
        let uh = shift_round(u, fu - fh);
        let mut acc = 0i64;
        for ((hm, am), cm) in hs
            .chunks_exact_mut(2)
            .zip(dac.chunks_exact(2))
            .zip(cbc.chunks_exact(2))
        {
            let (hr, hi) = (hm[0] as i64, hm[1] as i64);
            let (ar, ai) = (am[0] as i64, am[1] as i64);
            let nr =
                fixed::saturate_i32(shift_round(ar * hr - ai * hi, DA_FRAC).saturating_add(uh));
            let ni = fixed::saturate_i32(shift_round((ar * hi).wrapping_add(ai * hr), DA_FRAC));
            hm[0] = nr;
            hm[1] = ni;
            acc =
                acc.wrapping_add((cm[0] as i64 * nr as i64).wrapping_sub(cm[1] as i64 * ni as i64));
        }
        // y = 2·Re(Σ C̃·h) + D·u at fh + fcb, then to the GELU input format.
        let du = shift_round(d[ch] as i64 * u, fd + fu - (fh + fcb));
        let y = acc.saturating_mul(2).saturating_add(du);
        let gi = fixed::saturate_i16(shift_round(y, fh + fcb - fg));
        *zc = fixed::gelu(gi, nl(fg));
    }
    let ob = m.i32s(li, Role::OutLinearBias)?;
    linear16(m.kernels(), &m.i8r(li, Role::OutLinear)?, z, Some(ob), o)?;
    if c.glu {
        let fgate = nl(frac(p, plan::S4D_GATE_FRAC, 15));
        let (a, gate) = o.split_at(h);
        for ((xv, &av), &gv) in x.iter_mut().zip(a.iter()).zip(gate.iter()) {
            let sg = fixed::sigmoid(gv, fgate) as i32; // Q0.15
            let add = fixed::round_shr_i32(av as i32 * sg, 15);
            *xv = fixed::saturate_i16(*xv as i64 + add as i64);
        }
    } else {
        for (xv, &av) in x.iter_mut().zip(o.iter()) {
            *xv = fixed::sat_add_i16(*xv, av);
        }
    }
    if !c.prenorm {
        z.copy_from_slice(x);
        norm_int(z, nw, Some(nb), eps, fr, fnw, fr, x)?;
    }
    Ok(())
}
