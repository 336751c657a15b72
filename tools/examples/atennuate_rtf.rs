//! Real-time factor of the streamed aTENNuate denoiser on this host (one thread, f32): imports
//! `$TINYSSM_DATA/atennuate/weights.pt`, streams each noisy recording sample by sample
//! (`import::atennuate::run_stream`) and prints seconds of audio per second of compute.
//!
//!     cargo run --release -p tinyssm-tools --example atennuate_rtf [-- [--w8a8] NAME …]
//!
//! With `--w8a8`, the int8-matrix model with int8 activations too, and its signal-to-error
//! ratio against the f32 model's output.

use std::time::Instant;

use tinyssm_host::io::read_wav;
use tinyssm_tools::import::atennuate;

fn main() {
    let dir = tinyssm_data::data_dir().join("atennuate");
    let m = atennuate::import(&dir.join("weights.pt")).expect("import weights.pt");
    let mut names: Vec<String> = std::env::args().skip(1).collect();
    let w8a8 = names.iter().any(|a| a == "--w8a8");
    names.retain(|a| a != "--w8a8");
    let q = w8a8.then(|| m.w8a8());
    let names = if names.is_empty() {
        vec!["clnsp1_train_69005_1_snr15_tl-21_fileid_158".to_string()]
    } else {
        names
    };
    for n in names {
        let (_, _, x) = read_wav(&dir.join("noisy").join(format!("{n}.wav"))).expect("read");
        let t = Instant::now();
        let y = atennuate::run_stream(&m, &x).expect("run");
        let s = t.elapsed().as_secs_f64();
        let audio = x.len() as f64 / 16000.0;
        println!(
            "{n}: {audio:.2} s of audio in {s:.2} s: {:.2}x real time ({} samples out)",
            audio / s,
            y.len()
        );
        if let Some(q) = &q {
            let t = Instant::now();
            let yq = atennuate::run_stream(q, &x).expect("run w8a8");
            let sq = t.elapsed().as_secs_f64();
            let (mut e, mut p) = (0f64, 0f64);
            for (a, b) in yq.iter().zip(&y) {
                p += (*b as f64).powi(2);
                e += ((a - b) as f64).powi(2);
            }
            println!(
                "  w8a8: {:.2}x real time; SER vs f32 {:.1} dB",
                audio / sq,
                10.0 * (p / e.max(1e-300)).log10()
            );
        }
    }
}
