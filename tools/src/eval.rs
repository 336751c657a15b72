//! `tinyssm eval`: models through the core, step by step, on a dataset's test split.

use std::path::{Path, PathBuf};

use serde::Serialize;
use tinyssm_core::Model;
use tinyssm_cuda::data::{self, Split};

use crate::error::ToolError;

/// One model's result.
#[derive(Debug, Clone, Serialize)]
pub struct EvalResult {
    pub path: PathBuf,
    /// Classification accuracy (fsdd).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    /// Detection scores (ecg): sensitivity, positive predictivity, F1, with counts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detection: Option<tinyssm_cuda::ecg::Scores>,
    pub weight_bytes: u64,
    pub state_bytes: usize,
    pub n: usize,
    pub correct: usize,
}

/// Spoken digits: every test clip from the model's initial state, one sample per
/// `step_sample`; the decision is the argmax of the output at the clip's last frame.
pub fn fsdd(model: &Model<'_>, path: &Path, split: Split) -> Result<EvalResult, ToolError> {
    let fe = model.front_end().ok_or_else(|| {
        ToolError::Usage(format!(
            "{}: the fsdd dataset needs a model with an audio front end",
            path.display()
        ))
    })?;
    let rate = fe.config().sample_rate;
    let dir = data::data_dir().join("fsdd/recordings");
    let mut files: Vec<(PathBuf, usize)> = std::fs::read_dir(&dir)
        .map_err(|e| ToolError::io(&dir, e))?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let stem = name.strip_suffix(".wav")?.to_string();
            let parts: Vec<&str> = stem.split('_').collect();
            let d: usize = parts.first()?.parse().ok()?;
            let i: u32 = parts.last()?.parse().ok()?;
            let test = i <= 4;
            (parts.len() == 3 && test == (split == Split::Test)).then_some((e.path(), d))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(ToolError::Usage(format!(
            "no FSDD recordings in {}",
            dir.display()
        )));
    }
    let mut state = vec![0f32; model.state_len()];
    let mut scratch = vec![0f32; model.scratch_len()];
    let mut out = vec![0f32; model.d_output()];
    let mut correct = 0;
    for (p, label) in &files {
        let (r, mut x) = data::read_wav_mono(p).map_err(|e| ToolError::Usage(e.to_string()))?;
        if r != rate {
            return Err(ToolError::Usage(format!(
                "{}: {r} Hz, the model's front end takes {rate} Hz",
                p.display()
            )));
        }
        // Clips shorter than one window are zero-padded to one frame (as in training).
        if x.len() < fe.config().frame_len as usize {
            x.resize(fe.config().frame_len as usize, 0.0);
        }
        model
            .reset(&mut state)
            .map_err(|e| ToolError::Usage(e.to_string()))?;
        let mut last = None;
        for &s in &x {
            if model
                .step_sample(s, &mut state, &mut scratch, &mut out)
                .map_err(|e| ToolError::Usage(e.to_string()))?
            {
                last = Some(crate::generate::argmax(&out) as usize);
            }
        }
        if last == Some(*label) {
            correct += 1;
        }
    }
    let ws = model.weight_stats();
    Ok(EvalResult {
        path: path.to_path_buf(),
        accuracy: Some(correct as f64 / files.len() as f64),
        detection: None,
        weight_bytes: ws.f32_bytes + ws.f16_bytes,
        state_bytes: model.state_len() * 4,
        n: files.len(),
        correct,
    })
}

/// The first `streams` clips of an FSDD split (sorted by name), as samples.
fn fsdd_clips(split: Split, rate: u32, streams: usize) -> Result<Vec<Vec<f32>>, ToolError> {
    let dir = data::data_dir().join("fsdd/recordings");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| ToolError::io(&dir, e))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let idx = n.rsplit('_').next().and_then(|i| i.parse::<u32>().ok());
            p.extension().is_some_and(|e| e == "wav")
                && idx.is_some_and(|i| (i <= 4) == (split == Split::Test))
        })
        .collect();
    files.sort();
    files.truncate(streams);
    files
        .iter()
        .map(|p| {
            let (r, x) = data::read_wav_mono(p).map_err(|e| ToolError::Usage(e.to_string()))?;
            if r != rate {
                return Err(ToolError::Usage(format!(
                    "{}: {r} Hz, expected {rate}",
                    p.display()
                )));
            }
            Ok(x)
        })
        .collect()
}

/// `tinyssm verify` on FSDD: `streams` test clips in one batch on the backend against the
/// core stepping each clip sample by sample (outputs at every frame, final states).
pub fn verify_fsdd<B: tinyssm_cuda::Backend>(
    be: &B,
    model: &Model<'_>,
    split: Split,
    streams: usize,
) -> Result<tinyssm_cuda::verify::Report, ToolError> {
    use tinyssm_cuda::verify::{compare, s4d_blob_forward, Tier};
    let fe = model.front_end().ok_or_else(|| {
        ToolError::Usage("the fsdd dataset needs a model with an audio front end".into())
    })?;
    let c = *fe.config();
    let clips = fsdd_clips(split, c.sample_rate, streams)?;
    let dim = c.n_mels as usize;
    let d = model.d_output();
    // Core: sample by sample, every frame's outputs and the final model state.
    let mut out_core = Vec::new();
    let mut st_core = Vec::new();
    let mut feats = Vec::new();
    let per_layer = model.state_len() - (c.frame_len as usize + 2);
    let n_layers = model.config().n_layers as usize;
    for clip in &clips {
        let mut x = clip.clone();
        if x.len() < c.frame_len as usize {
            x.resize(c.frame_len as usize, 0.0);
        }
        let mut st = vec![0f32; model.state_len()];
        let mut sc = vec![0f32; model.scratch_len()];
        let mut o = vec![0f32; d];
        model
            .reset(&mut st)
            .map_err(|e| ToolError::Usage(e.to_string()))?;
        let mut ys = Vec::new();
        for &s in &x {
            if model
                .step_sample(s, &mut st, &mut sc, &mut o)
                .map_err(|e| ToolError::Usage(e.to_string()))?
            {
                ys.extend_from_slice(&o);
            }
        }
        out_core.push(ys);
        let chunk = per_layer / n_layers.max(1);
        st_core.push(
            st[..per_layer]
                .chunks(chunk.max(1))
                .map(|v| v.to_vec())
                .collect::<Vec<_>>(),
        );
        feats.push(data::features(&c, &x).map_err(|e| ToolError::Usage(e.to_string()))?);
    }
    // Backend: all streams in one padded batch.
    let lens: Vec<usize> = feats.iter().map(|f| f.len() / dim).collect();
    let time = lens.iter().copied().max().unwrap_or(1).max(1);
    let mut xb = vec![0f32; lens.len() * time * dim];
    for (b, f) in feats.iter().enumerate() {
        xb[b * time * dim..b * time * dim + f.len()].copy_from_slice(f);
    }
    let run = match model.config().arch {
        tinyssm_core::Arch::MambaSensor(_) => tinyssm_cuda::verify::mamba_blob_forward,
        _ => s4d_blob_forward,
    };
    let (out_be, st_be) =
        run(be, model, &xb, time, &lens).map_err(|e| ToolError::Usage(e.to_string()))?;
    Ok(compare(
        Tier::FLOAT,
        be.name(),
        &out_be,
        &out_core,
        d,
        &st_be,
        &st_core,
    ))
}

/// R-peak detection on MIT-BIH record 100: the last 20% of the record through the core one
/// sample at a time from the initial state, the detector's decision rule
/// ([`tinyssm_cuda::train::ecg_decide`]) and the standard 150 ms matching tolerance.
pub fn ecg(model: &Model<'_>, path: &Path) -> Result<EvalResult, ToolError> {
    if model.d_input() != 1 || model.d_output() != 1 {
        return Err(ToolError::Usage(format!(
            "{}: the ecg dataset needs a model with one input and one output per step",
            path.display()
        )));
    }
    let (sig, beats, _) = tinyssm_cuda::ecg::record_100(&data::data_dir())
        .map_err(|e| ToolError::Usage(e.to_string()))?;
    let split = sig.len() * 8 / 10;
    let test_beats: Vec<usize> = beats
        .iter()
        .filter(|&&b| b >= split)
        .map(|&b| b - split)
        .collect();
    let mut state = vec![0f32; model.state_len()];
    let mut scratch = vec![0f32; model.scratch_len()];
    let mut out = [0f32; 1];
    model
        .reset(&mut state)
        .map_err(|e| ToolError::Usage(e.to_string()))?;
    let mut logits = Vec::with_capacity(sig.len() - split);
    for &x in &sig[split..] {
        model
            .step_vector(&[x], &mut state, &mut scratch, &mut out)
            .map_err(|e| ToolError::Usage(e.to_string()))?;
        logits.push(out[0]);
    }
    let sc = tinyssm_cuda::train::ecg_decide(&logits, &test_beats);
    let ws = model.weight_stats();
    Ok(EvalResult {
        path: path.to_path_buf(),
        accuracy: None,
        detection: Some(sc),
        weight_bytes: ws.f32_bytes + ws.f16_bytes,
        state_bytes: model.state_len() * 4,
        n: sc.tp + sc.fn_,
        correct: sc.tp,
    })
}

/// `tinyssm verify` on ECG: the test region of record 100 cut into `streams` equal streams,
/// one batch on the backend against the core stepping each from its initial state.
pub fn verify_ecg<B: tinyssm_cuda::Backend>(
    be: &B,
    model: &Model<'_>,
    streams: usize,
) -> Result<tinyssm_cuda::verify::Report, ToolError> {
    use tinyssm_cuda::verify::{compare, s4d_blob_forward, Tier};
    if model.d_input() != 1 || model.front_end().is_some() {
        return Err(ToolError::Usage(
            "the ecg dataset needs a model with one input per step".into(),
        ));
    }
    let (sig, _, _) = tinyssm_cuda::ecg::record_100(&data::data_dir())
        .map_err(|e| ToolError::Usage(e.to_string()))?;
    let test = &sig[sig.len() * 8 / 10..];
    let streams = streams.clamp(1, test.len());
    let time = test.len() / streams;
    let d = model.d_output();
    let n_layers = model.config().n_layers as usize;
    let (mut out_core, mut st_core) = (Vec::new(), Vec::new());
    for c in test.chunks_exact(time).take(streams) {
        let mut st = vec![0f32; model.state_len()];
        let mut sc = vec![0f32; model.scratch_len()];
        let mut o = vec![0f32; d];
        model
            .reset(&mut st)
            .map_err(|e| ToolError::Usage(e.to_string()))?;
        let mut ys = Vec::with_capacity(time * d);
        for &x in c {
            model
                .step_vector(&[x], &mut st, &mut sc, &mut o)
                .map_err(|e| ToolError::Usage(e.to_string()))?;
            ys.extend_from_slice(&o);
        }
        out_core.push(ys);
        let per = st.len() / n_layers.max(1);
        st_core.push(
            st.chunks(per.max(1))
                .map(|v| v.to_vec())
                .collect::<Vec<_>>(),
        );
    }
    let xb: Vec<f32> = test[..streams * time].to_vec();
    let lens = vec![time; streams];
    let (out_be, st_be) = s4d_blob_forward(be, model, &xb, time, &lens)
        .map_err(|e| ToolError::Usage(e.to_string()))?;
    Ok(compare(
        Tier::FLOAT,
        be.name(),
        &out_be,
        &out_core,
        d,
        &st_be,
        &st_core,
    ))
}

/// BasicMotions: every case of the split through the core from the initial state, one
/// 6-channel vector per step; the class is the argmax at the last step.
pub fn basicmotions(model: &Model<'_>, path: &Path, split: Split) -> Result<EvalResult, ToolError> {
    if model.d_input() != 6 || model.d_output() != 4 || model.front_end().is_some() {
        return Err(ToolError::Usage(format!(
            "{}: basicmotions needs a vector model with 6 inputs and 4 outputs",
            path.display()
        )));
    }
    let cases = data::basicmotions(&data::data_dir(), split)
        .map_err(|e| ToolError::Usage(e.to_string()))?;
    let mut state = vec![0f32; model.state_len()];
    let mut scratch = vec![0f32; model.scratch_len()];
    let mut out = vec![0f32; 4];
    let mut correct = 0;
    for c in &cases {
        model
            .reset(&mut state)
            .map_err(|e| ToolError::Usage(e.to_string()))?;
        for row in c.feats.chunks_exact(6) {
            model
                .step_vector(row, &mut state, &mut scratch, &mut out)
                .map_err(|e| ToolError::Usage(e.to_string()))?;
        }
        if crate::generate::argmax(&out) == c.label {
            correct += 1;
        }
    }
    let ws = model.weight_stats();
    Ok(EvalResult {
        path: path.to_path_buf(),
        accuracy: Some(correct as f64 / cases.len() as f64),
        detection: None,
        weight_bytes: ws.f32_bytes + ws.f16_bytes,
        state_bytes: model.state_len() * 4,
        n: cases.len(),
        correct,
    })
}

/// `tinyssm verify` on BasicMotions: up to `streams` cases of the split in one batch on the
/// backend against the core stepping each case.
pub fn verify_basicmotions<B: tinyssm_cuda::Backend>(
    be: &B,
    model: &Model<'_>,
    split: Split,
    streams: usize,
) -> Result<tinyssm_cuda::verify::Report, ToolError> {
    use tinyssm_cuda::verify::{compare, mamba_blob_forward, s4d_blob_forward, Tier};
    if model.d_input() != 6 || model.front_end().is_some() {
        return Err(ToolError::Usage(
            "basicmotions needs a vector model with 6 inputs".into(),
        ));
    }
    let mut cases = data::basicmotions(&data::data_dir(), split)
        .map_err(|e| ToolError::Usage(e.to_string()))?;
    cases.truncate(streams.max(1));
    let d = model.d_output();
    let n_layers = model.config().n_layers as usize;
    let (mut out_core, mut st_core) = (Vec::new(), Vec::new());
    for c in &cases {
        let mut st = vec![0f32; model.state_len()];
        let mut sc = vec![0f32; model.scratch_len()];
        let mut o = vec![0f32; d];
        model
            .reset(&mut st)
            .map_err(|e| ToolError::Usage(e.to_string()))?;
        let mut ys = Vec::new();
        for row in c.feats.chunks_exact(6) {
            model
                .step_vector(row, &mut st, &mut sc, &mut o)
                .map_err(|e| ToolError::Usage(e.to_string()))?;
            ys.extend_from_slice(&o);
        }
        out_core.push(ys);
        let per = st.len() / n_layers.max(1);
        st_core.push(
            st.chunks(per.max(1))
                .map(|v| v.to_vec())
                .collect::<Vec<_>>(),
        );
    }
    let lens: Vec<usize> = cases.iter().map(|c| c.len).collect();
    let time = lens.iter().copied().max().unwrap_or(1).max(1);
    let mut xb = vec![0f32; lens.len() * time * 6];
    for (b, c) in cases.iter().enumerate() {
        xb[b * time * 6..b * time * 6 + c.feats.len()].copy_from_slice(&c.feats);
    }
    let run = match model.config().arch {
        tinyssm_core::Arch::MambaSensor(_) => mamba_blob_forward,
        _ => s4d_blob_forward,
    };
    let (out_be, st_be) =
        run(be, model, &xb, time, &lens).map_err(|e| ToolError::Usage(e.to_string()))?;
    Ok(compare(
        Tier::FLOAT,
        be.name(),
        &out_be,
        &out_core,
        d,
        &st_be,
        &st_core,
    ))
}
