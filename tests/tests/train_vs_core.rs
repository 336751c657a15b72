//! The trainer's batch forward against the core: an S4D classifier with a front end, saved
//! by the trainer as a checkpoint, converted by `tinyssm convert`, and run by the core one
//! audio sample at a time, gives the logits the batch forward gives at each clip's last
//! frame (the core is the source of truth for what a model computes).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tinyssm_core::Model;
use tinyssm_cuda::backend::Backend;
use tinyssm_cuda::train::s4d::{forward, DeviceParams, S4dParams, S4dShape};
use tinyssm_cuda::Cpu;
use tinyssm_data as data;
use tinyssm_host::AlignedBuf;
use tinyssm_tools::{convert_dir, WeightDtype};

#[test]
fn batch_forward_matches_core_step_by_step() {
    let fe = data::fsdd_front_end();
    let dim = fe.n_mels as usize;
    let s = S4dShape {
        d_input: dim,
        d_model: 16,
        d_state: 8,
        n_layers: 2,
        d_output: 10,
        norm_eps: 1e-5,
    };
    let mut rng = StdRng::seed_from_u64(5);
    let mut p = S4dParams::init(s, &mut rng);
    // Make the SSM matter over a few frames.
    for q in p.params.iter_mut().filter(|q| q.name.ends_with("log_dt")) {
        q.data
            .iter_mut()
            .for_each(|v| *v = rng.random_range(-2.0f32..-0.5));
    }
    // Three synthetic "clips" of different lengths (tones + noise).
    let clips: Vec<Vec<f32>> = [3000usize, 5200, 1900]
        .iter()
        .enumerate()
        .map(|(k, &n)| {
            (0..n)
                .map(|i| {
                    let t = i as f32 / 8000.0;
                    0.3 * (2.0 * std::f32::consts::PI * (300.0 + 500.0 * k as f32) * t).sin()
                        + 0.02 * rng.random_range(-1.0f32..1.0)
                })
                .collect()
        })
        .collect();
    let feats: Vec<Vec<f32>> = clips
        .iter()
        .map(|c| data::features(&fe, c).unwrap())
        .collect();
    let lens: Vec<usize> = feats.iter().map(|f| f.len() / dim).collect();
    let time = *lens.iter().max().unwrap();
    // Normalisation as training applies it, then folded into the encoder for export.
    let examples: Vec<data::Example> = feats
        .iter()
        .zip(&lens)
        .map(|(f, &len)| data::Example {
            feats: f.clone(),
            len,
            label: 0,
            id: String::new(),
        })
        .collect();
    let (mean, std) = data::feature_stats(&examples, dim);
    let mut x = vec![0f32; lens.len() * time * dim];
    for (b, f) in feats.iter().enumerate() {
        for (t, row) in f.chunks_exact(dim).enumerate() {
            for j in 0..dim {
                x[(b * time + t) * dim + j] = (row[j] - mean[j]) / std[j];
            }
        }
    }
    let be = Cpu;
    let dp = DeviceParams::new(&be, &p.params).unwrap();
    let fw = forward(&be, &s, &dp, &x, lens.len(), time, &lens).unwrap();
    let want = be.download(&fw.logits).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut exported = p.clone();
    exported.fold_input_norm(&mean, &std);
    let mut extra = serde_json::Map::new();
    extra.insert("front_end".into(), serde_json::to_value(fe).unwrap());
    exported.save_checkpoint(dir.path(), &extra).unwrap();
    let blob = convert_dir(dir.path(), WeightDtype::F32).unwrap();
    let buf = AlignedBuf::from_bytes(&blob);
    let m = Model::parse(buf.as_bytes()).unwrap();
    let mut worst = 0f32;
    for (b, clip) in clips.iter().enumerate() {
        let mut st = vec![0f32; m.state_len()];
        let mut sc = vec![0f32; m.scratch_len()];
        let mut out = vec![0f32; 10];
        m.reset(&mut st).unwrap();
        let mut last = None;
        let fe = m.front_end().unwrap();
        for &v in clip {
            if m.step_sample(&fe, v, &mut st, &mut sc, &mut out).unwrap() {
                last = Some(out.clone());
            }
        }
        let got = last.unwrap();
        for (g, w) in got.iter().zip(&want[b * 10..(b + 1) * 10]) {
            worst = worst.max((g - w).abs() / w.abs().max(1.0));
        }
    }
    println!("core vs batch forward: worst relative logit difference {worst:.2e}");
    assert!(worst <= 1e-4, "{worst}");
}

/// The same for the Mamba sensor classifier: trainer checkpoint → `tinyssm convert`
/// (mamba-sensor) → the core on audio samples, against the batch forward.
#[test]
fn mamba_batch_forward_matches_core_step_by_step() {
    use tinyssm_cuda::train::mamba::{forward as mforward, MambaParams, MambaShape};
    let fe = data::fsdd_front_end();
    let dim = fe.n_mels as usize;
    let s = MambaShape {
        d_input: dim,
        d_model: 16,
        d_inner: 32,
        d_state: 8,
        d_conv: 4,
        dt_rank: 2,
        n_layers: 2,
        d_output: 10,
        norm_eps: 1e-5,
    };
    let mut rng = StdRng::seed_from_u64(9);
    let p = MambaParams::init(s, &mut rng);
    let clips: Vec<Vec<f32>> = [2600usize, 4100]
        .iter()
        .map(|&n| {
            (0..n)
                .map(|i| 0.2 * ((i as f32) * 0.07).sin() + 0.02 * rng.random_range(-1.0f32..1.0))
                .collect()
        })
        .collect();
    let feats: Vec<Vec<f32>> = clips
        .iter()
        .map(|c| data::features(&fe, c).unwrap())
        .collect();
    let lens: Vec<usize> = feats.iter().map(|f| f.len() / dim).collect();
    let time = *lens.iter().max().unwrap();
    let mut x = vec![0f32; lens.len() * time * dim];
    for (b, f) in feats.iter().enumerate() {
        x[b * time * dim..b * time * dim + f.len()].copy_from_slice(f);
    }
    let be = Cpu;
    let w: Vec<Vec<f32>> = p.params.iter().map(|q| q.data.clone()).collect();
    let rows: Vec<usize> = lens
        .iter()
        .enumerate()
        .map(|(b, &n)| b * time + n - 1)
        .collect();
    let fw = mforward(&be, &s, &w, &x, lens.len(), time, rows).unwrap();
    let want = be.download(&fw.logits).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut extra = serde_json::Map::new();
    extra.insert("front_end".into(), serde_json::to_value(fe).unwrap());
    p.save_checkpoint(dir.path(), &extra).unwrap();
    let blob = convert_dir(dir.path(), WeightDtype::F32).unwrap();
    let buf = AlignedBuf::from_bytes(&blob);
    let m = Model::parse(buf.as_bytes()).unwrap();
    let mut worst = 0f32;
    for (b, clip) in clips.iter().enumerate() {
        let mut st = vec![0f32; m.state_len()];
        let mut sc = vec![0f32; m.scratch_len()];
        let mut out = vec![0f32; 10];
        m.reset(&mut st).unwrap();
        let mut last = None;
        let fe = m.front_end().unwrap();
        for &v in clip {
            if m.step_sample(&fe, v, &mut st, &mut sc, &mut out).unwrap() {
                last = Some(out.clone());
            }
        }
        for (g, w) in last.unwrap().iter().zip(&want[b * 10..(b + 1) * 10]) {
            worst = worst.max((g - w).abs() / w.abs().max(1.0));
        }
    }
    println!("mamba core vs batch forward: worst relative logit difference {worst:.2e}");
    assert!(worst <= 1e-4, "{worst}");
}
