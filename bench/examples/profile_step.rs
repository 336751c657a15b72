//! Runs many steps of a benchmark model, for profilers (callgrind, perf):
//! `cargo build --release -p tinyssm-bench --example profile_step`
//! `valgrind --tool=callgrind target/release/examples/profile_step small 200 [f32|w8a8] [views]`
//! (`views`: the model reads its tensors from a table resolved once, `Model::with_views`)

use std::hint::black_box;

use tinyssm_bench::{blob, mamba1_small, mamba_130m, s4d_sensor};
use tinyssm_core::{Compute, DType, Input, Model};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let which = args.get(1).map(String::as_str).unwrap_or("small");
    let steps: u32 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100);
    let cfg = match which {
        "s4d" => s4d_sensor(),
        "130m" => mamba_130m(),
        _ => mamba1_small(),
    };
    let buf = match args.get(3).map(String::as_str) {
        Some("w8a8") => tinyssm_tests::random_blob_mode(&cfg, 0x5eed, (DType::I8, Compute::W8a8)),
        _ => blob(&cfg, DType::F32),
    }
    .expect("blob");
    let m = Model::parse(buf.as_bytes()).expect("parse");
    let mut table = vec![tinyssm_core::Weights::EMPTY; m.n_tensors()];
    let m = if args.get(4).map(String::as_str) == Some("views") {
        m.with_views(&mut table).expect("views")
    } else {
        m
    };
    let mut st = vec![0f32; m.state_len()];
    let mut sc = vec![0f32; m.scratch_len()];
    let mut out = vec![0f32; m.d_output()];
    let x = vec![0.3f32; m.d_input()];
    for t in 0..steps {
        let input = if m.vocab_size().is_some() {
            Input::Token(t % 200)
        } else {
            Input::Vector(&x)
        };
        m.step(input, &mut st, &mut sc, &mut out).expect("step");
        black_box(&out);
    }
}
