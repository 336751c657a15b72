//! The whole step in f32 and in w8a8 measured interleaved, for a ratio that a noisy
//! machine does not skew: blocks of steps of the two models alternate, and each side's
//! median block time is reported (criterion's separate runs of each mode drift apart when
//! the machine's load changes between them).
//! `cargo run --release -p tinyssm-bench --example ab_step -- small|130m [rounds]`

use std::hint::black_box;
use std::time::Instant;

use tinyssm_bench::{mamba1_small, mamba_130m};
use tinyssm_core::{Compute, DType, Input, Model};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let which = args.get(1).map(String::as_str).unwrap_or("small");
    let rounds: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(41);
    let (cfg, per_block) = match which {
        "130m" => (mamba_130m(), 2),
        _ => (mamba1_small(), 50),
    };
    let modes = [
        ("f32", DType::F32, Compute::Float),
        ("w8a8", DType::I8, Compute::W8a8),
    ];
    let blobs: Vec<_> = modes
        .iter()
        .map(|&(_, dt, c)| tinyssm_tests::random_blob_mode(&cfg, 0x5eed, (dt, c)).expect("blob"))
        .collect();
    let models: Vec<Model<'_>> = blobs
        .iter()
        .map(|b| Model::parse(b.as_bytes()).expect("parse"))
        .collect();
    let mut bufs: Vec<_> = models
        .iter()
        .map(|m| {
            (
                vec![0f32; m.state_len()],
                vec![0f32; m.scratch_len()],
                vec![0f32; m.d_output()],
            )
        })
        .collect();
    let mut times = vec![Vec::new(); models.len()];
    let mut t = 0u32;
    for round in 0..rounds + 1 {
        for (i, m) in models.iter().enumerate() {
            let (st, sc, out) = &mut bufs[i];
            let start = Instant::now();
            for _ in 0..per_block {
                t = t.wrapping_add(1);
                let v = m.vocab_size().unwrap_or(1);
                m.step(Input::Token(t % v), st, sc, out).expect("step");
                black_box(&out);
            }
            // Round 0 warms the caches and is not counted.
            if round > 0 {
                times[i].push(start.elapsed().as_secs_f64() / per_block as f64);
            }
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let med: Vec<f64> = times.iter_mut().map(median).collect();
    for ((name, _, _), m) in modes.iter().zip(&med) {
        println!("{which} {name}: median {:.1} us per step", m * 1e6);
    }
    println!(
        "{which} w8a8 speed-up over f32: {:.2}x ({rounds} interleaved rounds of {per_block} steps)",
        med[0] / med[1]
    );
}
