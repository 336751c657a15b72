//! Mamba-1 block, integer-only step ([`crate::Compute::Int`]): every format is the one
//! `crate::int_step` documents; the layer plan's `M_*` entries give this block's sites.

use super::Mamba1Block;
use crate::blocks::{take, Layer};
use crate::error::{FormatError, StepError};
use crate::fixed;
use crate::int_step::{
    dot, frac, half, linear16, nl, norm_int, plan, shift_round, shift_round_inline, softplus_q24,
    take16, DT_FRAC,
};
use crate::role::Role;

/// The widths the integer step bounds (its `u64` norm sums and `i64` state sums).
pub(super) fn validate(c: &Mamba1Block, d_input: u32) -> Result<(), FormatError> {
    crate::int_step::check_widths(c.d_inner.max(c.d_model).max(d_input), c.d_state)
}

/// i32 scratch elements: `normed`, `xz` and `dbc` as packed `i16`.
pub(super) fn scratch_len(c: &Mamba1Block) -> usize {
    let (dm, di) = (c.d_model as usize, c.d_inner as usize);
    let dbc = c.dt_rank as usize + 2 * c.d_state as usize;
    half(dm) + half(2 * di) + half(dbc)
}

/// One integer Mamba-1 layer over one stream's residual (`i16` at the global plan's
/// residual format).
pub(super) fn layer(
    c: &Mamba1Block,
    at: Layer<'_, '_>,
    resid: &mut [i16],
    st: &mut [i32],
    scratch: &mut [i32],
) -> Result<(), StepError> {
    let Layer { m, li } = at;
    let (dm, di, n, r, dc) = (
        c.d_model as usize,
        c.d_inner as usize,
        c.d_state as usize,
        c.dt_rank as usize,
        c.d_conv as usize,
    );
    let mut s = scratch;
    let normed = take16(&mut s, dm)?;
    let xz = take16(&mut s, 2 * di)?;
    let dbc = take16(&mut s, r + 2 * n)?;
    let fr = frac(m.i32s(None, Role::IntPlan)?, plan::G_RESID_FRAC, 15);
    let hl = dc.checked_sub(1).ok_or(StepError::Internal)?;
    let mut st = st;
    let hist = take(&mut st, di * hl)?;
    let ssm = st;
    let p = m.i32s(li, Role::IntLayerPlan)?;
    norm_int(
        resid,
        m.i16s(li, Role::Norm)?,
        None,
        p.get(plan::L_NORM_EPS).copied().unwrap_or(0),
        fr,
        frac(p, plan::L_NORM_W_FRAC, 15),
        frac(p, plan::L_NORM_FRAC, 15),
        normed,
    )?;
    let ib = m.opt_i32s(c.in_proj_bias, li, Role::InProjBias)?;
    linear16(m.kernels(), &m.i8r(li, Role::InProj)?, normed, ib, xz)?;
    let (x, z) = xz.split_at_mut(di);
    // Causal conv + SiLU.
    let fx = frac(p, plan::M_X_FRAC, 15);
    let fcw = frac(p, plan::M_CONVW_FRAC, 30);
    let fs = frac(p, plan::M_SILU_FRAC, 15);
    let cw = m.i16s(li, Role::ConvW)?;
    let cbias = m.opt_i32s(c.conv_bias, li, Role::ConvB)?;
    if cw.len() != di * dc || hist.len() != di * hl {
        return Err(StepError::Internal);
    }
    for (ch, (xc, wc)) in x.iter_mut().zip(cw.chunks_exact(dc)).enumerate() {
        let hc = hist
            .get_mut(ch * hl..(ch + 1) * hl)
            .ok_or(StepError::Internal)?;
        let mut acc = 0i64;
        for (&hv, &wv) in hc.iter().zip(wc) {
            acc += hv as i64 * wv as i64;
        }
        acc += *xc as i64 * wc[hl] as i64;
        if let Some(cb) = cbias {
            acc = acc.saturating_add(cb[ch] as i64);
        }
        if hl > 0 {
            hc.copy_within(1.., 0);
            hc[hl - 1] = *xc as i32;
        }
        let si = fixed::saturate_i16(shift_round(acc, fx + fcw - fs));
        *xc = fixed::silu(si, nl(fs));
    }
    linear16(m.kernels(), &m.i8r(li, Role::XProj)?, x, None, dbc)?;
    let (dt_in, bc) = dbc.split_at(r);
    let (bm, cm) = bc.split_at(n);
    // Selective scan.
    let fsp = nl(frac(p, plan::M_SP_FRAC, 15));
    let fa = frac(p, plan::M_A_FRAC, 40);
    let fh = frac(p, plan::M_H_FRAC, 40);
    let fb = frac(p, plan::M_B_FRAC, 15);
    let fcc = frac(p, plan::M_C_FRAC, 15);
    let fd = frac(p, plan::M_D_FRAC, 40);
    let fy = frac(p, plan::M_Y_FRAC, 40);
    let fz = frac(p, plan::M_Z_FRAC, 15);
    let fo = frac(p, plan::M_O_FRAC, 15);
    let dtw = m.i8r(li, Role::DtProj)?;
    let dtb = m.i32s(li, Role::DtProjBias)?;
    let a = m.i32s(li, Role::A)?;
    let d = m.i32s(li, Role::D)?;
    if dtw.cols != r
        || dtw.rows() != di
        || dtb.len() != di
        || a.len() != di * n
        || d.len() != di
        || ssm.len() != di * n
    {
        return Err(StepError::Internal);
    }
    for (ch, ((xc, hrow), arow)) in x
        .iter_mut()
        .zip(ssm.chunks_exact_mut(n))
        .zip(a.chunks_exact(n))
        .enumerate()
    {
        let row = &dtw.q[ch * r..(ch + 1) * r];
        let acc = dot(m.kernels(), row, dt_in).wrapping_add(dtb[ch]);
        let spi = fixed::saturate_i16(shift_round(
            acc as i64 * dtw.rq[2 * ch] as i64,
            dtw.rq[2 * ch + 1],
        ));
        let dt = softplus_q24(spi, fsp) as i64; // Q7.24, ≥ 0
        let u = *xc as i64;
        let dtu = dt * u; // frac 24 + fs, |.| < 2^46
        let sb = DT_FRAC + fs + fb - fh;
        let mut yacc = 0i64;
        for (((hv, &av), &bv), &cv) in hrow.iter_mut().zip(arow).zip(bm).zip(cm) {
            let arg = fixed::saturate_i32(shift_round_inline(dt * av as i64, fa));
            let decay = fixed::exp_neg_q31(arg, DT_FRAC as u32) as i64;
            let hb = shift_round_inline(dtu.saturating_mul(bv as i64), sb);
            let hn = fixed::saturate_i32(
                fixed::round_shr_i64(decay * *hv as i64, 31).saturating_add(hb),
            );
            *hv = hn;
            yacc = yacc.wrapping_add(hn as i64 * cv as i64);
        }
        let du = shift_round(d[ch] as i64 * u, fd + fs - (fh + fcc));
        let y = fixed::saturate_i32(shift_round(yacc.saturating_add(du), fh + fcc - fy));
        let gz = fixed::silu(z[ch], nl(fz)) as i64;
        *xc = fixed::saturate_i16(shift_round(y as i64 * gz, fy + fz - fo));
    }
    let ob = m.opt_i32s(c.out_proj_bias, li, Role::OutProjBias)?;
    linear16(m.kernels(), &m.i8r(li, Role::OutProj)?, x, ob, normed)?;
    for (rv, &ov) in resid.iter_mut().zip(normed.iter()) {
        *rv = fixed::sat_add_i16(*rv, ov);
    }
    Ok(())
}
