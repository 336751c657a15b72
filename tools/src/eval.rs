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
    pub accuracy: f64,
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
        accuracy: correct as f64 / files.len() as f64,
        weight_bytes: ws.f32_bytes + ws.f16_bytes,
        state_bytes: model.state_len() * 4,
        n: files.len(),
        correct,
    })
}
