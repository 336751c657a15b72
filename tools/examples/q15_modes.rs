//! What storing S4D's `dA` in Q1.15 (format 1.6's compact encoding,
//! `tinyssm_tools::quantize::q15_modes`) does to each layer's modes: per layer, the slowest
//! mode's |dA|, the largest relative error of any mode's decay rate `1 − |dA|`, and the
//! largest phase error times the mode's time constant `1 / (1 − |dA|)` (how far the mode's
//! rotation drifts over the time it remembers).
//!
//! ```text
//! cargo run --release -p tinyssm-tools --example q15_modes -- MODEL.tssm...
//! ```

fn main() {
    for p in std::env::args().skip(1) {
        let f = tinyssm_host::ModelFile::open(std::path::Path::new(&p)).unwrap_or_else(|e| {
            eprintln!("{p}: {e}");
            std::process::exit(1)
        });
        let m = f.model();
        for l in 0..m.config().n_layers as u16 {
            let Some(t) = m.find(Some(l), tinyssm_core::Role::DA) else {
                continue;
            };
            let da = tinyssm_host::tensor_f32(&t).expect("a consistent dA");
            let q = tinyssm_tools::quantize::q15_modes(&da);
            let (mut rate, mut slow, mut phase) = (0f64, 0f64, 0f64);
            for (a, b) in da.chunks(2).zip(q.chunks(2)) {
                let (ar, ai) = (a[0] as f64, a[1] as f64);
                let (br, bi) = (b[0] as f64 / 32768.0, b[1] as f64 / 32768.0);
                let (ma, mb) = (ar.hypot(ai), br.hypot(bi));
                rate = rate.max(((1.0 - mb) - (1.0 - ma)).abs() / (1.0 - ma));
                slow = slow.max(ma);
                phase = phase.max((ai.atan2(ar) - bi.atan2(br)).abs() / (1.0 - ma));
            }
            println!(
                "{p} layer {l}: slowest |dA| {slow:.6}, decay-rate error ≤ {:.1}%, phase error × time constant ≤ {phase:.3} rad",
                rate * 100.0
            );
        }
    }
}
