//! S4D's integer conversion: per layer the norm, the state (`ΔA` in `DA_FRAC` bits, `C·ΔB` and `D` below
//! 2^22), the GELU and the GLU gate.

use tinyssm_core::int_step::{plan, DA_FRAC, LAYER_PLAN_LEN};
use tinyssm_core::probe::Site;
use tinyssm_core::Role;
use tinyssm_host::TensorData;

use super::{amax, eps_q, f16site, frac_for, q16, q32, Cx, IntKind};
use crate::error::ToolError;

impl IntKind for tinyssm_core::blocks::s4d::S4dBlock {
    fn layer(&self, cx: &mut Cx<'_, '_>, l: u16) -> Result<Vec<i32>, ToolError> {
        let h = self.d_model as usize;
        let fr = cx.fr;
        let li = Some(l);
        let mut p = vec![0i32; LAYER_PLAN_LEN];
        let fnorm = if self.prenorm {
            f16site(cx.ranges.get(li, Site::NormOut))
        } else {
            fr
        };
        let nw = cx.f32(li, Role::Norm)?;
        let fnw = f16site(amax(&nw));
        p[plan::L_NORM_FRAC] = fnorm;
        p[plan::L_NORM_EPS] = eps_q(self.norm_eps, fr);
        p[plan::L_NORM_W_FRAC] = fnw;
        cx.put(li, Role::Norm, q16(&nw, fnw));
        let nb = cx.f32(li, Role::NormBias)?;
        cx.put(li, Role::NormBias, TensorData::I32(q32(&nb, fnorm)));
        let fh = frac_for(
            cx.ranges.get(li, Site::State) as f64 * 2.0,
            2f64.powi(31) - 1.0,
            0,
            40,
        );
        let cb = cx.f32(li, Role::CB)?;
        let fcb = frac_for(amax(&cb) as f64, 2f64.powi(22), 0, 40);
        let d = cx.f32(li, Role::D)?;
        let fd = frac_for(amax(&d) as f64, 2f64.powi(22), 0, 40);
        let fg = f16site(
            cx.ranges
                .get(li, Site::S4dPreGelu)
                .max(cx.ranges.get(li, Site::S4dGeluOut)),
        );
        let fgate = f16site(cx.ranges.get(li, Site::S4dGate));
        p[plan::S4D_H_FRAC] = fh;
        p[plan::S4D_CB_FRAC] = fcb;
        p[plan::S4D_D_FRAC] = fd;
        p[plan::S4D_GELU_FRAC] = fg;
        p[plan::S4D_GATE_FRAC] = fgate;
        let da = cx.f32(li, Role::DA)?;
        cx.put(li, Role::DA, TensorData::I32(q32(&da, DA_FRAC)));
        cx.put(li, Role::CB, TensorData::I32(q32(&cb, fcb)));
        cx.put(li, Role::D, TensorData::I32(q32(&d, fd)));
        let glu = self.glu;
        cx.linear(li, Role::OutLinear, Some(Role::OutLinearBias), fg, &|r| {
            if glu && r >= h {
                fgate
            } else {
                fr
            }
        })?;
        Ok(p)
    }
}
