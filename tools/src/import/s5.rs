//! S5 discretisations (the core's `s5` block stores discretised terms): from a checkpoint's
//! continuous parameters to the block's `s5.lambda` `[P, 2]`, `s5.B` and `s5.C` tensors,
//! computed in f64 and rounded once to f32.
//!
//! - [`atennuate`]: aTENNuate's kernel form (`attenuate/model.py`, `ssm_basis_kernels`):
//!   `dt = exp(log_dt)`, `λ = exp(dt·(−softplus(A_re) + i·A_im))`, real `B̄ = B·dt`.
//! - [`zoh`]: the S5 paper's zero-order hold (arXiv 2208.04933, eq. 6): `λ = exp(ΛΔ)`,
//!   `B̄ = (λ − 1)/Λ · B̃` (complex `B̃`).
//! - [`bilinear`]: the S5 paper's bilinear transform: `λ = (1 + ΔΛ/2)/(1 − ΔΛ/2)`,
//!   `B̄ = Δ/(1 − ΔΛ/2) · B̃`.
//! - [`complex_c`]: a complex `C̃` `[H, P]` as the block's `[H, 2P]` matrix `(Re C̃, −Im C̃)`
//!   per mode, so that `y = Re(C̃ h)` is one product with the state vector.
//!
//! Checked against `tests/goldens/gen_s5.py` (NumPy, float64):
//! `tests/fixtures/s5/stack/s5_params.safetensors`.

/// A complex number in f64 (the few operations the discretisations need).
#[derive(Debug, Clone, Copy, PartialEq)]
struct C64(f64, f64);

impl C64 {
    fn mul(self, o: C64) -> C64 {
        C64(self.0 * o.0 - self.1 * o.1, self.0 * o.1 + self.1 * o.0)
    }
    fn div(self, o: C64) -> C64 {
        let d = o.0 * o.0 + o.1 * o.1;
        C64(
            (self.0 * o.0 + self.1 * o.1) / d,
            (self.1 * o.0 - self.0 * o.1) / d,
        )
    }
    fn exp(self) -> C64 {
        let m = self.0.exp();
        C64(m * self.1.cos(), m * self.1.sin())
    }
    fn scale(self, s: f64) -> C64 {
        C64(self.0 * s, self.1 * s)
    }
}

/// The discretised terms of one S5 layer.
#[derive(Debug, Clone, PartialEq)]
pub struct Discretised {
    /// `[P, 2]`: (re, im) per mode.
    pub lambda: Vec<f32>,
    /// `[P, H]` (real `B̄`) or `[2P, H]` (complex: rows re, im per mode).
    pub b: Vec<f32>,
}

fn softplus(x: f64) -> f64 {
    if x > 30.0 {
        x
    } else {
        x.exp().ln_1p()
    }
}

/// aTENNuate's form: `a` `[P, 2]` (`log_A_real`, `A_imag`), `log_dt` `[P]`, real `b`
/// `[P, h]`.
pub fn atennuate(a: &[f32], log_dt: &[f32], b: &[f32], h: usize) -> Discretised {
    let p = log_dt.len();
    let mut lambda = Vec::with_capacity(2 * p);
    let mut bb = Vec::with_capacity(p * h);
    for m in 0..p {
        let dt = (log_dt[m] as f64).exp();
        let l = C64(-dt * softplus(a[2 * m] as f64), dt * a[2 * m + 1] as f64).exp();
        lambda.extend([l.0 as f32, l.1 as f32]);
        bb.extend(
            b[m * h..(m + 1) * h]
                .iter()
                .map(|&v| (v as f64 * dt) as f32),
        );
    }
    Discretised { lambda, b: bb }
}

/// The S5 paper's continuous parameters: `lambda` `[P, 2]` (re, im of Λ), `log_step` `[P]`
/// (Δ = exp), complex `b` `[P, h, 2]`; `zoh` picks zero-order hold, else bilinear.
fn paper(lambda: &[f32], log_step: &[f32], b: &[f32], h: usize, zoh: bool) -> Discretised {
    let p = log_step.len();
    let mut lam = Vec::with_capacity(2 * p);
    let mut bb = vec![0f32; 2 * p * h];
    for m in 0..p {
        let l = C64(lambda[2 * m] as f64, lambda[2 * m + 1] as f64);
        let dt = (log_step[m] as f64).exp();
        let (lbar, gain) = if zoh {
            let lbar = l.scale(dt).exp();
            (lbar, C64(lbar.0 - 1.0, lbar.1).div(l))
        } else {
            let half = l.scale(dt / 2.0);
            let den = C64(1.0 - half.0, -half.1);
            (C64(1.0 + half.0, half.1).div(den), C64(dt, 0.0).div(den))
        };
        lam.extend([lbar.0 as f32, lbar.1 as f32]);
        for c in 0..h {
            let v = C64(b[(m * h + c) * 2] as f64, b[(m * h + c) * 2 + 1] as f64).mul(gain);
            bb[2 * m * h + c] = v.0 as f32;
            bb[(2 * m + 1) * h + c] = v.1 as f32;
        }
    }
    Discretised { lambda: lam, b: bb }
}

/// Zero-order hold (see the module docs).
pub fn zoh(lambda: &[f32], log_step: &[f32], b: &[f32], h: usize) -> Discretised {
    paper(lambda, log_step, b, h, true)
}

/// Bilinear transform (see the module docs).
pub fn bilinear(lambda: &[f32], log_step: &[f32], b: &[f32], h: usize) -> Discretised {
    paper(lambda, log_step, b, h, false)
}

/// Complex `c` `[h, p, 2]` as the block's `[h, 2p]` matrix: `(Re C̃, −Im C̃)` per mode.
pub fn complex_c(c: &[f32], h: usize, p: usize) -> Vec<f32> {
    let mut out = vec![0f32; 2 * h * p];
    for d in 0..h {
        for m in 0..p {
            out[d * 2 * p + 2 * m] = c[(d * p + m) * 2];
            out[d * 2 * p + 2 * m + 1] = -c[(d * p + m) * 2 + 1];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use safetensors::{Dtype, SafeTensors};

    fn read(st: &SafeTensors<'_>, name: &str) -> Vec<f64> {
        let t = st.tensor(name).unwrap();
        match t.dtype() {
            Dtype::F64 => t
                .data()
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
                .collect(),
            Dtype::F32 => t
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()) as f64)
                .collect(),
            d => panic!("{name}: {d:?}"),
        }
    }

    /// The three discretisations against `tests/goldens/gen_s5.py`'s float64 values from the
    /// same f32 parameters: within f32 rounding of the result (one rounding here).
    #[test]
    fn discretisations_match_the_numpy_golden() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/s5/stack/s5_params.safetensors");
        let bytes = std::fs::read(path).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let f = |n: &str| read(&st, n).iter().map(|&v| v as f32).collect::<Vec<f32>>();
        let h = 6;
        let got = [
            atennuate(&f("l0.A"), &f("l0.log_dt"), &f("l0.B"), h),
            zoh(&f("l1.Lambda"), &f("l1.log_step"), &f("l1.B"), h),
            bilinear(&f("l2.Lambda"), &f("l2.log_step"), &f("l2.B"), h),
        ];
        for (l, g) in got.iter().enumerate() {
            for (what, v, want) in [
                (
                    "lambda",
                    &g.lambda,
                    read(&st, &format!("expected.l{l}.lambda")),
                ),
                ("B", &g.b, read(&st, &format!("expected.l{l}.B"))),
            ] {
                assert_eq!(v.len(), want.len(), "l{l} {what}");
                for (a, b) in v.iter().zip(&want) {
                    let tol = 1e-7 * b.abs().max(1e-3);
                    assert!((*a as f64 - b).abs() <= tol, "l{l} {what}: {a} vs {b}");
                }
            }
        }
        // ZOH and bilinear differ (the test tells them apart).
        assert_ne!(
            got[1].lambda,
            bilinear(&f("l1.Lambda"), &f("l1.log_step"), &f("l1.B"), h).lambda
        );
        let c = complex_c(&f("l1.C"), h, 5);
        let raw = f("l1.C");
        assert_eq!((c[1], c[2]), (-raw[1], raw[2]));
    }
}
