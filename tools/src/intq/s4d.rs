//! S4D's integer conversion: per layer the norm, the state (`ΔA` in `DA_FRAC` bits, `C·ΔB` and `D` below
//! 2^22), the GELU and the GLU gate.
//!
//! The state's format comes from a bound, not from calibration: S4D is linear, so each mode
//! `h ← dA·h + u` satisfies `|h| ≤ (max|u| + r) / (1 − |dA|)` for every input sequence, with
//! `max|u|` the whole `i16` range of the layer's input site and `r` the rounding the integer
//! step adds per update. The state gets the most fraction bits for which that bound stays
//! inside `i32` for the layer's slowest mode, so no input can saturate a state value
//! (calibrated on 1 s clips, the slow modes of the spoken-digit models saturated after
//! minutes of continuous audio).

use tinyssm_core::int_step::{plan, DA_FRAC, LAYER_PLAN_LEN};
use tinyssm_core::probe::Site;
use tinyssm_core::Role;
use tinyssm_host::TensorData;

use super::{amax, eps_q, f16site, frac_for, q16, q32, Cx, IntKind};

/// The most fraction bits (`0..=40`) a layer's `i32` state can have so that no mode of `da_q`
/// (interleaved re/im in `DA_FRAC` bits) can leave the `i32` range for any input in an `i16`
/// site of `fu` fraction bits; an error when a mode has `|dA| ≥ 1` or is too slow for any
/// format.
///
/// The integer update (`core::blocks::s4d::int`) is `h' = round(dA·h) + round(u·2^(fh−fu))`:
/// per step it adds at most `32768·2^(fh−fu) + 0.5` from the input and `√2/2` from rounding
/// `dA·h` (half an LSB per component), and it multiplies `|h|` by at most `|dA|`, so
/// `|h| ≤ (32768·2^(fh−fu) + 1.21) / (1 − |dA|)` for ever (a component is at most `|h|`).
pub(crate) fn state_frac(da_q: &[i32], fu: i32) -> Result<i32, String> {
    let mut slowest = 0f64;
    for m in da_q.chunks_exact(2) {
        let (re, im) = (m[0] as f64, m[1] as f64);
        let mag = (re * re + im * im).sqrt() / 2f64.powi(DA_FRAC);
        if mag >= 1.0 - 1e-12 {
            return Err(format!(
                "a mode with |dA| = {mag} >= 1 (unstable) has no bounded integer state"
            ));
        }
        slowest = slowest.max(mag);
    }
    let limit = 2f64.powi(31) - 1.0;
    // A 1e-9 margin covers the f64 evaluation of the bound itself.
    let bound = |f: i32| (32768.0 * 2f64.powi(f - fu) + 1.21) / (1.0 - slowest) * (1.0 + 1e-9);
    (0..=40).rev().find(|&f| bound(f) <= limit).ok_or_else(|| {
        format!("the slowest mode (|dA| = {slowest}) can grow past i32 even with 0 fraction bits")
    })
}

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
        let da = cx.f32(li, Role::DA)?;
        let da_q = q32(&da, DA_FRAC);
        let fu = if self.prenorm { fnorm } else { fr };
        let fh = state_frac(&da_q, fu).map_err(|m| ToolError::Usage(format!("layer {l}: {m}")))?;
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
        cx.put(li, Role::DA, TensorData::I32(da_q));
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

#[cfg(test)]
mod tests {
    use super::*;
    use tinyssm_core::int_step::shift_round;

    /// The integer update of one mode (as `core::blocks::s4d::int` computes it) driven by
    /// the input that grows it fastest for a real positive `dA`: the largest `i16` input
    /// magnitude (−32768), for ever. Returns the most negative state value reached
    /// (saturating like the core).
    fn worst_run(a: f64, fu: i32, fh: i32, steps: usize) -> i64 {
        let ar = (a * 2f64.powi(DA_FRAC)).round() as i64;
        let uh = shift_round(-32768, fu - fh);
        let mut h = 0i64;
        let mut low = 0i64;
        for _ in 0..steps {
            h = (shift_round(ar * h, DA_FRAC) + uh).clamp(i32::MIN as i64, i32::MAX as i64);
            low = low.min(h);
        }
        low
    }

    /// The chosen format holds the worst input for ever; one fraction bit more saturates
    /// (so the bound is tight for a real mode, not just safe).
    #[test]
    fn the_state_format_holds_the_worst_input_and_one_more_bit_does_not() {
        for (a, fu) in [(0.9995, 12), (0.99, 12), (0.9, 15), (0.5, 0), (0.99999, 9)] {
            let da = [(a * 2f64.powi(DA_FRAC)).round() as i32, 0];
            let fh = state_frac(&da, fu).unwrap();
            // Twenty time constants (at least 200 steps): at the fixed point.
            let steps = ((20.0 / (1.0 - a)) as usize).max(200);
            let low = worst_run(a, fu, fh, steps);
            assert!(low > i32::MIN as i64, "|dA| {a}: fh {fh} reached {low}");
            let over = worst_run(a, fu, fh + 1, steps);
            assert_eq!(
                over,
                i32::MIN as i64,
                "|dA| {a}: fh {} did not saturate",
                fh + 1
            );
        }
    }

    /// A complex mode is bounded by its magnitude; unstable or absurdly slow modes are
    /// refused with a reason.
    #[test]
    fn unstable_and_too_slow_modes_are_refused() {
        let q = |x: f64| (x * 2f64.powi(DA_FRAC)).round() as i32;
        let f_real = state_frac(&[q(0.999), 0], 12).unwrap();
        let c = 0.999 / 2f64.sqrt();
        assert_eq!(state_frac(&[q(c), q(c)], 12).unwrap(), f_real);
        let e = state_frac(&[q(0.8), 0, q(1.0), 0], 12).unwrap_err();
        assert!(e.contains("unstable"), "{e}");
        let e = state_frac(&[q(-0.6), q(0.81)], 12).unwrap_err();
        assert!(e.contains("unstable"), "{e}");
        let e = state_frac(&[q(1.0 - 1e-8), 0], 0).unwrap_err();
        assert!(e.contains("slowest mode"), "{e}");
    }
}
