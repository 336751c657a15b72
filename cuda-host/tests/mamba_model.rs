//! The batched Mamba sensor classifier: every parameter's gradient (through A = −exp(A_log))
//! against finite differences of the loss.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tinyssm_cuda::backend::Backend;
use tinyssm_cuda::train::mamba::{backward, forward, MambaParams, MambaShape};
use tinyssm_cuda::Cpu;

fn shape() -> MambaShape {
    MambaShape {
        d_input: 3,
        d_model: 4,
        d_inner: 6,
        d_state: 3,
        d_conv: 3,
        dt_rank: 2,
        n_layers: 2,
        d_output: 3,
        norm_eps: 1e-5,
    }
}

fn rows(lens: &[usize], time: usize) -> Vec<usize> {
    lens.iter()
        .enumerate()
        .map(|(b, &n)| b * time + n - 1)
        .collect()
}

fn loss(p: &MambaParams, x: &[f32], lens: &[usize], labels: &[u32], time: usize) -> f64 {
    let be = Cpu;
    let w: Vec<Vec<f32>> = p.params.iter().map(|q| q.data.clone()).collect();
    let f = forward(&be, &p.shape, &w, x, lens.len(), time, rows(lens, time)).unwrap();
    let mut g = vec![0f32; lens.len() * 3];
    be.softmax_xent(&f.logits, labels, 3, &mut g).unwrap().0 as f64
}

#[test]
fn every_parameter_gradient_matches_finite_differences() {
    let be = Cpu;
    let s = shape();
    let mut rng = StdRng::seed_from_u64(21);
    let mut p = MambaParams::init(s, &mut rng);
    for q in p
        .params
        .iter_mut()
        .filter(|q| q.name.ends_with("norm.weight") || q.name.ends_with(".D"))
    {
        q.data
            .iter_mut()
            .for_each(|v| *v += rng.random_range(-0.3f32..0.3));
    }
    let (batch, time) = (3, 6);
    let lens = [6usize, 4, 5];
    let labels = [2u32, 0, 1];
    let x: Vec<f32> = (0..batch * time * 3)
        .map(|_| rng.random_range(-1.0f32..1.0))
        .collect();
    let w: Vec<Vec<f32>> = p.params.iter().map(|q| q.data.clone()).collect();
    let f = forward(&be, &s, &w, &x, batch, time, rows(&lens, time)).unwrap();
    let mut dl = vec![0f32; batch * 3];
    be.softmax_xent(&f.logits, &labels, 3, &mut dl).unwrap();
    let mut g: Vec<Vec<f32>> = w.iter().map(|v| vec![0f32; v.len()]).collect();
    backward(&be, &s, &w, &mut g, &f, &dl).unwrap();
    let eps = 3e-3f32;
    for (k, q) in p.params.clone().iter().enumerate() {
        let mut worst = 0f64;
        for (i, &gi) in g[k].iter().enumerate() {
            let mut pp = p.clone();
            pp.params[k].data[i] += eps;
            let lp = loss(&pp, &x, &lens, &labels, time);
            pp.params[k].data[i] -= 2.0 * eps;
            let lm = loss(&pp, &x, &lens, &labels, time);
            let fd = (lp - lm) / (2.0 * eps as f64);
            let err = (fd - gi as f64).abs() / fd.abs().max(gi.abs() as f64).max(2e-2);
            worst = worst.max(err);
            assert!(
                err < 3e-2,
                "{}[{i}]: backward {gi} vs finite difference {fd}",
                q.name
            );
        }
        println!(
            "{}: {} elements, worst relative error {worst:.1e}",
            q.name,
            q.data.len()
        );
    }
    let _ = &mut p;
}
