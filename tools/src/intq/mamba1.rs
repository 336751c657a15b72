//! Mamba-1's integer conversion: per layer the norm, `in_proj` (x and z halves), the causal
//! conv and SiLU, `x_proj` (Δ input, B, C), `dt_proj` into the softplus, `A` below 2^30,
//! the state, the gated output and `out_proj`.

use tinyssm_core::int_step::{plan, LAYER_PLAN_LEN};
use tinyssm_core::probe::Site;
use tinyssm_core::Role;
use tinyssm_host::TensorData;

use super::{amax, eps_q, f16site, frac_for, q16, q32, Cx, IntKind};
use crate::error::ToolError;

impl IntKind for tinyssm_core::blocks::mamba1::Mamba1Block {
    fn layer(&self, cx: &mut Cx<'_, '_>, l: u16) -> Result<Vec<i32>, ToolError> {
        let (di, n, r) = (
            self.d_inner as usize,
            self.d_state as usize,
            self.dt_rank as usize,
        );
        let fr = cx.fr;
        let li = Some(l);
        let mut p = vec![0i32; LAYER_PLAN_LEN];
        let nw = cx.f32(li, Role::Norm)?;
        let fnw = f16site(amax(&nw));
        let fnorm = f16site(cx.ranges.get(li, Site::NormOut));
        p[plan::L_NORM_FRAC] = fnorm;
        p[plan::L_NORM_EPS] = eps_q(self.norm_eps, fr);
        p[plan::L_NORM_W_FRAC] = fnw;
        cx.put(li, Role::Norm, q16(&nw, fnw));
        let fx = f16site(cx.ranges.get(li, Site::MambaX));
        let fz = f16site(cx.ranges.get(li, Site::MambaZ));
        let ib = self.in_proj_bias.then_some(Role::InProjBias);
        cx.linear(li, Role::InProj, ib, fnorm, &|row| {
            if row < di {
                fx
            } else {
                fz
            }
        })?;
        let cw = cx.f32(li, Role::ConvW)?;
        let fcw = f16site(amax(&cw));
        cx.put(li, Role::ConvW, q16(&cw, fcw));
        if self.conv_bias {
            let cb = cx.f32(li, Role::ConvB)?;
            cx.put(li, Role::ConvB, TensorData::I32(q32(&cb, fx + fcw)));
        }
        let fs = f16site(
            cx.ranges
                .get(li, Site::MambaConvPre)
                .max(cx.ranges.get(li, Site::MambaConvOut)),
        );
        let fdt = f16site(cx.ranges.get(li, Site::MambaDtIn));
        let fb = f16site(cx.ranges.get(li, Site::MambaB));
        let fc = f16site(cx.ranges.get(li, Site::MambaC));
        cx.linear(li, Role::XProj, None, fs, &|row| {
            if row < r {
                fdt
            } else if row < r + n {
                fb
            } else {
                fc
            }
        })?;
        let fsp = f16site(cx.ranges.get(li, Site::MambaSoftplusIn));
        cx.linear(li, Role::DtProj, Some(Role::DtProjBias), fdt, &|_| fsp)?;
        let a = cx.f32(li, Role::A)?;
        let fa = frac_for(amax(&a) as f64, 2f64.powi(30), 0, 40);
        cx.put(li, Role::A, TensorData::I32(q32(&a, fa)));
        let d = cx.f32(li, Role::D)?;
        let fd = frac_for(amax(&d) as f64, 2f64.powi(22), 0, 40);
        cx.put(li, Role::D, TensorData::I32(q32(&d, fd)));
        let fh = frac_for(
            cx.ranges.get(li, Site::State) as f64 * 2.0,
            2f64.powi(31) - 1.0,
            0,
            40,
        );
        let fy = frac_for(
            cx.ranges.get(li, Site::MambaY) as f64 * 2.0,
            2f64.powi(31) - 1.0,
            0,
            30,
        );
        let fo = f16site(cx.ranges.get(li, Site::MambaGated));
        p[plan::M_X_FRAC] = fx;
        p[plan::M_Z_FRAC] = fz;
        p[plan::M_CONVW_FRAC] = fcw;
        p[plan::M_SILU_FRAC] = fs;
        p[plan::M_DTIN_FRAC] = fdt;
        p[plan::M_B_FRAC] = fb;
        p[plan::M_C_FRAC] = fc;
        p[plan::M_SP_FRAC] = fsp;
        p[plan::M_A_FRAC] = fa;
        p[plan::M_H_FRAC] = fh;
        p[plan::M_D_FRAC] = fd;
        p[plan::M_Y_FRAC] = fy;
        p[plan::M_O_FRAC] = fo;
        let ob = self.out_proj_bias.then_some(Role::OutProjBias);
        cx.linear(li, Role::OutProj, ob, fo, &|_| fr)?;
        Ok(p)
    }
}
