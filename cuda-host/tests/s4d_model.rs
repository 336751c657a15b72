//! The batched S4D classifier: gradients of every parameter (through the host-side ZOH
//! discretization) against finite differences of the loss.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tinyssm_cuda::backend::Backend;
use tinyssm_cuda::train::s4d::{backward, forward, DeviceParams, S4dParams, S4dShape};
use tinyssm_cuda::Cpu;

fn shape() -> S4dShape {
    S4dShape {
        d_input: 3,
        d_model: 4,
        d_state: 6,
        n_layers: 2,
        d_output: 3,
        norm_eps: 1e-5,
    }
}

fn loss(p: &S4dParams, feats: &[f32], lens: &[usize], labels: &[u32], time: usize) -> f64 {
    let be = Cpu;
    let dp = DeviceParams::new(&be, &p.params).unwrap();
    let f = forward(&be, &p.shape, &dp, feats, lens.len(), time, lens).unwrap();
    let mut g = vec![0f32; lens.len() * p.shape.d_output];
    be.softmax_xent(&f.logits, labels, p.shape.d_output, &mut g)
        .unwrap()
        .0 as f64
}

#[test]
fn every_parameter_gradient_matches_finite_differences() {
    let be = Cpu;
    let s = shape();
    let mut rng = StdRng::seed_from_u64(11);
    let mut p = S4dParams::init(s, &mut rng);
    // Larger dt so the modes matter within a few steps; perturb norms off identity.
    for q in p.params.iter_mut() {
        if q.name.ends_with("log_dt") {
            q.data
                .iter_mut()
                .for_each(|v| *v = rng.random_range(-1.5f32..-0.2));
        }
        if q.name.contains("norm") && q.name.ends_with("weight") {
            q.data
                .iter_mut()
                .for_each(|v| *v += rng.random_range(-0.3f32..0.3));
        }
    }
    let (batch, time) = (3, 7);
    let lens = [7usize, 4, 6];
    let labels = [2u32, 0, 1];
    let feats: Vec<f32> = (0..batch * time * s.d_input)
        .map(|_| rng.random_range(-1.0f32..1.0))
        .collect();
    let mut dp = DeviceParams::new(&be, &p.params).unwrap();
    let f = forward(&be, &s, &dp, &feats, batch, time, &lens).unwrap();
    let mut dl = vec![0f32; batch * s.d_output];
    be.softmax_xent(&f.logits, &labels, s.d_output, &mut dl)
        .unwrap();
    backward(&be, &s, &mut dp, &f, &dl).unwrap();
    let eps = 3e-3f32;
    for (k, q) in p.params.clone().iter().enumerate() {
        let g = be.download(&dp.g[k]).unwrap();
        let mut worst = 0f64;
        for (i, &gi) in g.iter().enumerate().take(q.data.len()) {
            let mut pp = p.clone();
            pp.params[k].data[i] += eps;
            let lp = loss(&pp, &feats, &lens, &labels, time);
            pp.params[k].data[i] -= 2.0 * eps;
            let lm = loss(&pp, &feats, &lens, &labels, time);
            let fd = (lp - lm) / (2.0 * eps as f64);
            let err = (fd - gi as f64).abs() / fd.abs().max(gi.abs() as f64).max(2e-2);
            worst = worst.max(err);
            assert!(
                err < 3e-2,
                "{}[{i}]: backward {} vs finite difference {fd}",
                q.name,
                gi
            );
        }
        println!(
            "{}: {} elements, worst relative error {worst:.1e}",
            q.name,
            q.data.len()
        );
    }
    // Padding after a stream's last step does not change its logits (causality).
    let mut feats2 = feats.clone();
    for v in &mut feats2[(time + 4) * s.d_input..2 * time * s.d_input] {
        *v = 99.0;
    }
    let f2 = forward(&be, &s, &dp, &feats2, batch, time, &lens).unwrap();
    assert_eq!(
        be.download(&f.logits).unwrap(),
        be.download(&f2.logits).unwrap()
    );
}
