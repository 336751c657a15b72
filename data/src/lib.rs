//! # tinyssm-data
//!
//! Datasets read through `TINYSSM_DATA`, turned into per-step feature sequences with the
//! core's own front end (so training features are the device's features): the Free
//! Spoken Digit Dataset and BasicMotions (here), MIT-BIH record 100 ([`ecg`]). The trainer
//! and `verify` (`tinyssm-cuda`), `tinyssm eval` and the calibration of `tinyssm convert`
//! read them all from here, so none of those needs the batch crate for its data.

#![forbid(unsafe_code)]

pub mod ecg;

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use tinyssm_core::frontend::{mel_filterbank, FrontEnd, FrontEndConfig, MelScale, Window};

/// The data directory: `$TINYSSM_DATA`, else `../shared/data` from the working directory.
pub fn data_dir() -> PathBuf {
    std::env::var_os("TINYSSM_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared/data"))
}

/// One labelled sequence: `feats` is `[len, dim]` row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    pub feats: Vec<f32>,
    pub len: usize,
    pub label: u32,
    /// Where it came from (a file name), for reports.
    pub id: String,
}

/// A dataset split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

/// The front end the spoken-digit models use: 8 kHz, 25 ms Hann window, 10 ms hop,
/// 256-point FFT, 40 HTK mel bands 20 Hz–4 kHz, `ln(mel + 1e-6)`.
pub fn fsdd_front_end() -> FrontEndConfig {
    FrontEndConfig {
        sample_rate: 8000,
        frame_len: 200,
        hop: 80,
        n_fft: 256,
        n_mels: 40,
        f_min: 20.0,
        f_max: 4000.0,
        window: Window::Hann,
        mel_scale: MelScale::Htk,
        area_norm: false,
        log_eps: 1e-6,
        filter_nnz: 0,
    }
}

/// Errors reading a dataset.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {msg}")]
    File { path: PathBuf, msg: String },
    #[error("{0}")]
    Other(String),
}

/// Samples of a WAV file as f32 in [-1, 1) (16-bit PCM / 32768), mono.
pub fn read_wav_mono(path: &Path) -> Result<(u32, Vec<f32>), DataError> {
    let err = |msg: String| DataError::File {
        path: path.to_path_buf(),
        msg,
    };
    let (rate, ch, x) = tinyssm_host::io::read_wav(path).map_err(|e| err(e.to_string()))?;
    if ch != 1 {
        return Err(err(format!("{ch} channels, expected mono")));
    }
    Ok((rate, x))
}

/// Features of a whole clip through the front end (one row per completed frame).
pub fn features(fe: &FrontEndConfig, samples: &[f32]) -> Result<Vec<f32>, DataError> {
    let mut fb = vec![0f32; fe.filterbank_len()];
    mel_filterbank(fe, &mut fb).map_err(|e| DataError::Other(e.to_string()))?;
    let f = FrontEnd::new(*fe, &fb).map_err(|e| DataError::Other(e.to_string()))?;
    let mut st = vec![0f32; fe.state_len()];
    let mut sc = vec![0f32; fe.scratch_len()];
    let mut out = vec![0f32; fe.n_mels as usize];
    let mut feats = Vec::new();
    for &x in samples {
        if f.push(x, &mut st, &mut sc, &mut out)
            .map_err(|e| DataError::Other(e.to_string()))?
        {
            feats.extend_from_slice(&out);
        }
    }
    Ok(feats)
}

/// The FSDD recordings of a split, sorted, with their digits:
/// `recordings/{digit}_{speaker}_{index}.wav`, index 0–4 in the test set, 5–49 in training.
pub fn fsdd_files(root: &Path, split: Split) -> Result<Vec<(PathBuf, u32)>, DataError> {
    let dir = root.join("fsdd/recordings");
    let rd = std::fs::read_dir(&dir).map_err(|e| DataError::File {
        path: dir.clone(),
        msg: e.to_string(),
    })?;
    let mut files: Vec<(PathBuf, u32)> = Vec::new();
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".wav") else {
            continue;
        };
        let parts: Vec<&str> = stem.split('_').collect();
        let (Some(d), Some(i)) = (
            parts.first().and_then(|d| d.parse::<u32>().ok()),
            parts.last().and_then(|i| i.parse::<u32>().ok()),
        ) else {
            continue;
        };
        if parts.len() != 3 || d > 9 {
            continue;
        }
        let test = i <= 4;
        if test == (split == Split::Test) {
            files.push((e.path(), d));
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(DataError::Other(format!(
            "no FSDD recordings in {}",
            dir.display()
        )));
    }
    Ok(files)
}

/// A clip's samples at the front end's rate, zero-padded to at least one window (clips
/// shorter than one frame would give no output at all).
pub fn fsdd_clip(path: &Path, fe: &FrontEndConfig) -> Result<Vec<f32>, DataError> {
    let (rate, mut x) = read_wav_mono(path)?;
    if rate != fe.sample_rate {
        return Err(DataError::File {
            path: path.to_path_buf(),
            msg: format!("{rate} Hz, the front end takes {} Hz", fe.sample_rate),
        });
    }
    if x.len() < fe.frame_len as usize {
        x.resize(fe.frame_len as usize, 0.0);
    }
    Ok(x)
}

/// FSDD (official split) as feature sequences through the front end.
pub fn fsdd(root: &Path, split: Split, fe: &FrontEndConfig) -> Result<Vec<Example>, DataError> {
    let files = fsdd_files(root, split)?;
    files
        .par_iter()
        .map(|(p, d)| {
            let x = fsdd_clip(p, fe)?;
            let feats = features(fe, &x)?;
            let len = feats.len() / fe.n_mels as usize;
            Ok(Example {
                feats,
                len,
                label: *d,
                id: p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// Per-dimension mean and standard deviation over every step of `data`.
pub fn feature_stats(data: &[Example], dim: usize) -> (Vec<f32>, Vec<f32>) {
    let mut s = vec![0f64; dim];
    let mut s2 = vec![0f64; dim];
    let mut n = 0f64;
    for e in data {
        for row in e.feats.chunks_exact(dim) {
            for (j, &v) in row.iter().enumerate() {
                s[j] += v as f64;
                s2[j] += (v as f64) * (v as f64);
            }
            n += 1.0;
        }
    }
    let mean: Vec<f32> = s.iter().map(|v| (v / n.max(1.0)) as f32).collect();
    let std = s2
        .iter()
        .zip(&mean)
        .map(|(v, &m)| ((v / n.max(1.0) - (m as f64) * (m as f64)).max(1e-8).sqrt()) as f32)
        .collect();
    (mean, std)
}

/// The BasicMotions classes in the order of the ARFF header.
pub const BASICMOTIONS_CLASSES: [&str; 4] = ["Standing", "Running", "Walking", "Badminton"];

/// BasicMotions (UEA archive, `imu/BasicMotions_{TRAIN,TEST}.arff`): 6 channels (3-axis
/// accelerometer and gyroscope) × 100 steps at 10 Hz per case, 4 classes. A case is a
/// quoted relational value, channels separated by the two characters `\n`, then the label.
pub fn basicmotions(root: &Path, split: Split) -> Result<Vec<Example>, DataError> {
    let name = match split {
        Split::Train => "BasicMotions_TRAIN.arff",
        Split::Test => "BasicMotions_TEST.arff",
    };
    let path = root.join("imu").join(name);
    let text = std::fs::read_to_string(&path).map_err(|e| DataError::File {
        path: path.clone(),
        msg: e.to_string(),
    })?;
    let err = |line: usize, msg: String| DataError::File {
        path: path.clone(),
        msg: format!("line {line}: {msg}"),
    };
    let mut out = Vec::new();
    let mut in_data = false;
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('%') {
            continue;
        }
        if l.eq_ignore_ascii_case("@data") {
            in_data = true;
            continue;
        }
        if !in_data || l.starts_with('@') {
            continue;
        }
        let (body, label) = l
            .rsplit_once(',')
            .ok_or_else(|| err(i + 1, "no label".into()))?;
        let label = BASICMOTIONS_CLASSES
            .iter()
            .position(|c| *c == label.trim())
            .ok_or_else(|| err(i + 1, format!("unknown class `{label}`")))?
            as u32;
        let body = body.trim().trim_matches('\'');
        let chans: Vec<Vec<f32>> = body
            .split("\\n")
            .map(|c| {
                c.split(',')
                    .map(|v| v.trim().parse::<f32>())
                    .collect::<Result<Vec<f32>, _>>()
            })
            .collect::<Result<_, _>>()
            .map_err(|e| err(i + 1, format!("bad number: {e}")))?;
        let len = chans.first().map_or(0, |c| c.len());
        if chans.len() != 6 || len == 0 || chans.iter().any(|c| c.len() != len) {
            return Err(err(
                i + 1,
                format!("expected 6 channels of equal length, got {}", chans.len()),
            ));
        }
        let mut feats = Vec::with_capacity(6 * len);
        for t in 0..len {
            for c in &chans {
                feats.push(c[t]);
            }
        }
        out.push(Example {
            feats,
            len,
            label,
            id: format!("{name}:{}", out.len()),
        });
    }
    if out.is_empty() {
        return Err(DataError::Other(format!("{}: no cases", path.display())));
    }
    Ok(out)
}
