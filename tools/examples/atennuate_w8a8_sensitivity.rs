//! Which of aTENNuate's matrices cost the most when quantized to int8 (w8a8), measured on a
//! calibration set (not the four test recordings): for each matrix, the signal-to-error
//! ratio against the f32 output when every matrix but that one is int8; then, greedily,
//! the SER and the int8 share with the most costly matrices kept in f32.
//!
//!     cargo run --release -p tinyssm-tools --example atennuate_w8a8_sensitivity -- CALIB_DIR [N_CLIPS]
//!
//! CALIB_DIR: 16 kHz mono WAVs (`scripts/atennuate-eval.sh` builds `…/atennuate-eval/calib/`
//! from the FSDD training split with white, pink and babble noise); the first N_CLIPS
//! (default 6) in name order. With a third argument `small:N`, only the SER with every
//! matrix of at most N values kept in f32 (a size rule, no search).

use tinyssm_core::Role;
use tinyssm_host::io::read_wav;
use tinyssm_tools::import::atennuate::{self, NetModel};

/// SER of `m` against the f32 outputs over all clips (errors and signals summed).
fn set_ser(m: &NetModel, clips: &[Vec<f32>], want: &[Vec<f32>]) -> f64 {
    let (mut s, mut e) = (0f64, 0f64);
    for (x, w) in clips.iter().zip(want) {
        let y = atennuate::run_stream(m, x).expect("run");
        for (&g, &w) in y.iter().zip(w) {
            s += (w as f64).powi(2);
            e += ((g - w) as f64).powi(2);
        }
    }
    10.0 * (s / e.max(1e-300)).log10()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = std::path::PathBuf::from(args.first().expect("CALIB_DIR"));
    let n: usize = args.get(1).map_or(6, |v| v.parse().expect("N_CLIPS"));
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("read CALIB_DIR")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "wav"))
        .collect();
    paths.sort();
    paths.truncate(n);
    let clips: Vec<Vec<f32>> = paths
        .iter()
        .map(|p| {
            let (rate, ch, x) = read_wav(p).expect("read wav");
            assert_eq!((rate, ch), (16000, 1), "{}", p.display());
            x
        })
        .collect();
    let secs: f64 = clips.iter().map(|c| c.len() as f64 / 16000.0).sum();
    let data = tinyssm_data::data_dir().join("atennuate/weights.pt");
    let m = atennuate::import(&data).expect("import");
    let want: Vec<Vec<f32>> = clips
        .iter()
        .map(|x| atennuate::run_stream(&m, x).expect("run"))
        .collect();
    let all = set_ser(&m.w8a8(), &clips, &want);
    println!(
        "{} calibration clips ({secs:.1} s) from {}: every matrix int8: SER {all:.1} dB vs f32",
        clips.len(),
        dir.display()
    );
    let mut mats: Vec<(usize, Role, usize)> = Vec::new();
    for i in 0..m.cfg.ops().len() {
        m.cfg.op_tensors(i, |role, (rank, dims)| {
            if role.is_matrix() && rank == 2 {
                mats.push((i, role, dims[0] as usize * dims[1] as usize));
            }
        });
    }
    let total: usize = mats.iter().map(|t| t.2).sum();
    if let Some(n) = args.get(2).and_then(|a| a.strip_prefix("small:")) {
        let n: usize = n.parse().expect("small:N");
        let keep: Vec<(usize, Role)> = mats
            .iter()
            .filter(|t| t.2 <= n)
            .map(|t| (t.0, t.1))
            .collect();
        let kept: usize = mats.iter().filter(|t| t.2 <= n).map(|t| t.2).sum();
        let s = set_ser(&m.w8a8_except(&keep), &clips, &want);
        println!(
            "matrices of at most {n} values kept f32: {} of {} ({kept} values, int8 share {:.1}%): SER {s:.1} dB",
            keep.len(),
            mats.len(),
            100.0 * (total - kept) as f64 / total as f64
        );
        return;
    }
    let mut gains: Vec<(f64, usize, Role, usize)> = mats
        .iter()
        .map(|&(i, r, n)| {
            let s = set_ser(&m.w8a8_except(&[(i, r)]), &clips, &want);
            println!(
                "op {i:2} {:8} {n:7} values: kept f32 -> SER {s:.1} dB ({:+.1})",
                r.name(),
                s - all
            );
            (s - all, i, r, n)
        })
        .collect();
    gains.sort_by(|a, b| b.0.total_cmp(&a.0));
    println!("\nkept in f32 (most costly first) | f32 values | int8 share | SER vs f32");
    let mut keep = Vec::new();
    let mut kept = 0usize;
    for &(_, i, r, n) in gains.iter().take(8) {
        keep.push((i, r));
        kept += n;
        let s = set_ser(&m.w8a8_except(&keep), &clips, &want);
        println!(
            "+ op {i} {} | {kept} | {:.1}% | {s:.1} dB",
            r.name(),
            100.0 * (total - kept) as f64 / total as f64
        );
    }
}
