//! Where the host's time goes in the streamed aTENNuate denoiser, by level and by kind of
//! operation: each operation's own work timed between its `Sink::op` events (one thread,
//! f32, fast kernels; the clock reads add ~2%).
//!
//!     cargo run --release -p tinyssm-tools --example atennuate_levels [-- NAME]

use std::time::Instant;

use tinyssm_core::net::{Net, Op, Sink};
use tinyssm_core::StepError;
use tinyssm_host::io::read_wav;
use tinyssm_tools::import::atennuate;

struct Timed {
    t0: Instant,
    at: Instant,
    per_op: Vec<f64>,
}

impl Sink for Timed {
    fn frame(&mut self, _: &[f32]) -> Result<(), StepError> {
        Ok(())
    }
    fn op(&mut self, i: usize, begin: bool) {
        let now = Instant::now();
        if begin {
            self.at = now;
        } else {
            self.per_op[i] += (now - self.at).as_secs_f64();
        }
    }
}

fn main() {
    let name = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "clnsp1_train_69005_1_snr15_tl-21_fileid_158".into());
    let dir = tinyssm_data::data_dir().join("atennuate");
    let m = atennuate::import(&dir.join("weights.pt")).expect("import");
    let (_, _, x) = read_wav(&dir.join("noisy").join(format!("{name}.wav"))).expect("read");
    let t: &atennuate::NetModel = &m;
    let net = Net::new(&m.cfg, &t).expect("plan");
    let mut bufs = atennuate::NetBuffers::new(net.plan());
    let (mut st, scratch) = bufs.split();
    net.reset(&mut st).expect("reset");
    let now = Instant::now();
    let mut sink = Timed {
        t0: now,
        at: now,
        per_op: vec![0.0; m.cfg.ops().len()],
    };
    for s in x.chunks_exact(1) {
        net.feed(&mut st, scratch, s, &mut sink).expect("feed");
    }
    net.finish(&mut st, scratch, &mut sink).expect("finish");
    let total = sink.t0.elapsed().as_secs_f64();
    let audio = x.len() as f64 / 16000.0;
    println!(
        "{name}: {audio:.2} s of audio in {total:.2} s ({:.2}x real time)",
        audio / total
    );
    // Level of each operation: the resampling factor before it.
    let (mut f, mut levels) = (1u32, Vec::new());
    for op in m.cfg.ops() {
        levels.push(f);
        match op {
            Op::Down { r, .. } => f *= r,
            Op::Up { r, .. } => f /= r,
            _ => {}
        }
    }
    let mut by_level: Vec<(u32, f64)> = Vec::new();
    for (i, &l) in levels.iter().enumerate() {
        match by_level.iter_mut().find(|e| e.0 == l) {
            Some(e) => e.1 += sink.per_op[i],
            None => by_level.push((l, sink.per_op[i])),
        }
    }
    for (l, s) in by_level {
        println!(
            "  level 1/{l:<4} ({:>7.1} Hz): {:6.3} s  {:5.1}%",
            16000.0 / l as f64,
            s,
            100.0 * s / total
        );
    }
    let mut kinds: Vec<(&str, f64)> = Vec::new();
    for (i, op) in m.cfg.ops().iter().enumerate() {
        let k = match op {
            Op::Block(_) => "block",
            Op::Conv { .. } => "conv",
            Op::Down { .. } => "down",
            Op::Up { .. } => "up",
            _ => "skip",
        };
        match kinds.iter_mut().find(|e| e.0 == k) {
            Some(e) => e.1 += sink.per_op[i],
            None => kinds.push((k, sink.per_op[i])),
        }
    }
    let inside: f64 = sink.per_op.iter().sum();
    for (k, s) in kinds {
        println!("  {k:6}: {s:6.3} s  {:5.1}%", 100.0 * s / total);
    }
    println!(
        "  outside the operations: {:5.1}%",
        100.0 * (total - inside) / total
    );
}
