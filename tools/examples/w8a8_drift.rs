//! How far a w8a8 model's fast and reference kernels part, next to how far the w8a8 model
//! is from the float model it was quantized from, on a full-scale square wave (the soak's
//! adversarial audio input: ±1.0, 18-sample period). Prints, per window of frames, the
//! largest |difference| over the window's output rms for each pair.
//!
//! ```text
//! cargo run --release -p tinyssm-tools --example w8a8_drift -- FLOAT.tssm W8A8.tssm [SAMPLES]
//! ```

use tinyssm_core::Kernels;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: w8a8_drift FLOAT.tssm W8A8.tssm [SAMPLES]");
        std::process::exit(2);
    }
    let samples: usize = args.get(2).map_or(227_270, |s| s.parse().expect("a count"));
    let open = |p: &str| {
        tinyssm_host::ModelFile::open(std::path::Path::new(p)).unwrap_or_else(|e| {
            eprintln!("{p}: {e}");
            std::process::exit(1)
        })
    };
    let (ff, fq) = (open(&args[0]), open(&args[1]));
    // float (reference kernels), w8a8 fast, w8a8 reference
    let runs = [
        ff.model().with_kernels(Kernels::Reference),
        fq.model().with_kernels(Kernels::Fast),
        fq.model().with_kernels(Kernels::Reference),
    ];
    let mut st: Vec<Vec<f32>> = runs
        .iter()
        .map(|m| {
            let mut s = vec![0.0; m.state_len()];
            m.reset(&mut s).expect("state");
            s
        })
        .collect();
    let mut sc: Vec<Vec<f32>> = runs.iter().map(|m| vec![0.0; m.scratch_len()]).collect();
    let mut outs: Vec<Vec<Vec<f32>>> = vec![Vec::new(); 3];
    for t in 0..samples {
        let x = if (t / 9).is_multiple_of(2) { 1.0 } else { -1.0 };
        for (i, m) in runs.iter().enumerate() {
            let fe = m.front_end().expect("an audio model");
            let mut o = vec![0.0; m.d_output()];
            if m.step_sample(&fe, x, &mut st[i], &mut sc[i], &mut o)
                .expect("step")
            {
                outs[i].push(o);
            }
        }
    }
    let frames = outs[0].len();
    let rel = |a: usize, b: usize, w: (usize, usize)| {
        let (mut d, mut r, mut n) = (0f64, 0f64, 0usize);
        for (oa, ob) in outs[a][w.0..w.1].iter().zip(&outs[b][w.0..w.1]) {
            for (p, q) in oa.iter().zip(ob) {
                d = d.max((p - q).abs() as f64);
                r += (*q as f64).powi(2);
                n += 1;
            }
        }
        d / (r / n.max(1) as f64).sqrt().max(1e-30)
    };
    println!(
        "| frames | w8a8 fast vs w8a8 reference | w8a8 reference vs float | w8a8 fast vs float |"
    );
    println!("|---|---:|---:|---:|");
    for w in [(0, 100), (100, 1000), (1000, frames)] {
        let w = (w.0.min(frames), w.1.min(frames));
        if w.0 < w.1 {
            println!(
                "| {}–{} | {:.2e} | {:.2e} | {:.2e} |",
                w.0,
                w.1,
                rel(1, 2, w),
                rel(2, 0, w),
                rel(1, 0, w)
            );
        }
    }
}
