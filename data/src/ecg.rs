//! MIT-BIH (WFDB) records: the header, format-212 signals (checked against the header's
//! checksums) and beat annotations; R-peak detection scoring with a tolerance window.

use std::path::Path;

use crate::DataError;

/// One signal of a record.
#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    pub name: String,
    /// ADC units per mV.
    pub gain: f32,
    pub baseline: i32,
    /// Samples in ADC units.
    pub adu: Vec<i16>,
}

impl Signal {
    /// Samples in mV.
    pub fn mv(&self) -> Vec<f32> {
        self.adu
            .iter()
            .map(|&v| (v as i32 - self.baseline) as f32 / self.gain)
            .collect()
    }
}

/// A record: sampling rate, signals and beat annotations.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub fs: f32,
    pub signals: Vec<Signal>,
    /// `(sample, annotation code)` of every annotation (beats and others).
    pub annotations: Vec<(usize, u8)>,
}

/// WFDB annotation codes that mark a beat (QRS complex).
pub fn is_beat(code: u8) -> bool {
    matches!(code, 1..=13 | 25 | 30 | 34 | 35 | 38 | 41)
}

fn err(path: &Path, msg: impl Into<String>) -> DataError {
    DataError::File {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

/// Reads `<dir>/<name>.hea`, its format-212 `.dat` and `<name>.atr`.
pub fn read_record(dir: &Path, name: &str) -> Result<Record, DataError> {
    let hea = dir.join(format!("{name}.hea"));
    let text = std::fs::read_to_string(&hea).map_err(|e| err(&hea, e.to_string()))?;
    let mut lines = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    let rec: Vec<&str> = lines
        .next()
        .ok_or_else(|| err(&hea, "empty header"))?
        .split_whitespace()
        .collect();
    let parse = |s: Option<&&str>, what: &str| -> Result<f64, DataError> {
        s.and_then(|v| v.split('/').next())
            .and_then(|v| v.parse::<f64>().ok())
            .ok_or_else(|| err(&hea, format!("bad {what} in the record line")))
    };
    let n_sig = parse(rec.get(1), "signal count")? as usize;
    let fs = parse(rec.get(2), "sampling frequency")? as f32;
    let n = parse(rec.get(3), "sample count")? as usize;
    if n_sig == 0 || n_sig > 16 || n == 0 || n > 100_000_000 || fs.is_nan() || fs <= 0.0 {
        return Err(err(&hea, "record line out of range"));
    }
    struct Spec {
        file: String,
        gain: f32,
        baseline: i32,
        checksum: i32,
        name: String,
    }
    let mut specs = Vec::new();
    for _ in 0..n_sig {
        let f: Vec<&str> = lines
            .next()
            .ok_or_else(|| err(&hea, "fewer signal lines than the record line says"))?
            .split_whitespace()
            .collect();
        if f.get(1) != Some(&"212") {
            return Err(err(
                &hea,
                format!("signal format {:?} (only 212 is read)", f.get(1)),
            ));
        }
        let num = |i: usize, what: &str| {
            f.get(i)
                .and_then(|v| v.split(['(', '/']).next())
                .and_then(|v| v.parse::<f64>().ok())
                .ok_or_else(|| err(&hea, format!("bad {what} in a signal line")))
        };
        let gain = num(2, "gain")? as f32;
        specs.push(Spec {
            file: f[0].to_string(),
            gain: if gain == 0.0 { 200.0 } else { gain },
            baseline: num(4, "baseline")? as i32,
            checksum: num(6, "checksum")? as i32,
            name: f.get(8).copied().unwrap_or("").to_string(),
        });
    }
    if specs.iter().any(|s| s.file != specs[0].file) || n_sig != 2 {
        return Err(err(
            &hea,
            "only two signals interleaved in one format-212 file are read",
        ));
    }
    let dat = dir.join(&specs[0].file);
    let bytes = std::fs::read(&dat).map_err(|e| err(&dat, e.to_string()))?;
    if bytes.len() < n * 3 {
        return Err(err(
            &dat,
            format!("{} bytes, {n} sample pairs need {}", bytes.len(), n * 3),
        ));
    }
    let sx = |v: i32| if v & 0x800 != 0 { v - 0x1000 } else { v } as i16;
    let (mut a, mut b) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for c in bytes[..n * 3].chunks_exact(3) {
        let (b0, b1, b2) = (c[0] as i32, c[1] as i32, c[2] as i32);
        a.push(sx(b0 | ((b1 & 0x0F) << 8)));
        b.push(sx(b2 | ((b1 & 0xF0) << 4)));
    }
    let mut signals = Vec::new();
    for (s, adu) in specs.into_iter().zip([a, b]) {
        // The header's checksum is the 16-bit sum of the signal's samples.
        let sum = adu.iter().fold(0i16, |acc, &v| acc.wrapping_add(v));
        if sum as i32 != s.checksum {
            return Err(err(
                &dat,
                format!(
                    "signal {}: checksum {sum} != header's {}",
                    s.name, s.checksum
                ),
            ));
        }
        signals.push(Signal {
            name: s.name,
            gain: s.gain,
            baseline: s.baseline,
            adu,
        });
    }
    let atr = dir.join(format!("{name}.atr"));
    let ab = std::fs::read(&atr).map_err(|e| err(&atr, e.to_string()))?;
    let annotations = parse_atr(&ab).map_err(|m| err(&atr, m))?;
    Ok(Record {
        fs,
        signals,
        annotations,
    })
}

/// WFDB annotation file (MIT format): 16-bit little-endian words, code in the top 6 bits
/// and a 10-bit sample increment; SKIP carries a 32-bit increment, AUX a string, NUM, SUB
/// and CHN set fields (ignored).
pub fn parse_atr(b: &[u8]) -> Result<Vec<(usize, u8)>, String> {
    let mut out = Vec::new();
    let mut t: i64 = 0;
    let mut i = 0;
    let word = |i: usize| -> Option<u16> { Some(u16::from_le_bytes([*b.get(i)?, *b.get(i + 1)?])) };
    while let Some(w) = word(i) {
        i += 2;
        let code = (w >> 10) as u8;
        let val = (w & 0x3FF) as i64;
        match code {
            0 if val == 0 => return Ok(out),
            59 => {
                // SKIP: the next two words hold a 32-bit increment (PDP-11 order).
                let (hi, lo) = (
                    word(i).ok_or("truncated SKIP")?,
                    word(i + 2).ok_or("truncated SKIP")?,
                );
                i += 4;
                t += (((hi as u32) << 16) | lo as u32) as i32 as i64;
            }
            60..=62 => {}
            63 => i += (val as usize).div_ceil(2) * 2,
            c => {
                t += val;
                if t < 0 {
                    return Err("annotation before the record start".into());
                }
                out.push((t as usize, c));
            }
        }
    }
    Ok(out)
}

/// Detection scores against reference beats: a detection within `tol` samples of an
/// unmatched beat is a true positive (nearest first).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Scores {
    pub tp: usize,
    pub fp: usize,
    #[serde(rename = "fn")]
    pub fn_: usize,
    pub sensitivity: f64,
    pub positive_predictivity: f64,
    pub f1: f64,
}

pub fn score(beats: &[usize], detections: &[usize], tol: usize) -> Scores {
    let mut used = vec![false; detections.len()];
    let mut tp = 0;
    for &b in beats {
        let lo = detections.partition_point(|&d| d + tol < b);
        let mut best: Option<usize> = None;
        for (k, &d) in detections.iter().enumerate().skip(lo) {
            if d > b + tol {
                break;
            }
            if !used[k] && best.is_none_or(|j| d.abs_diff(b) < detections[j].abs_diff(b)) {
                best = Some(k);
            }
        }
        if let Some(k) = best {
            used[k] = true;
            tp += 1;
        }
    }
    let fp = detections.len() - tp;
    let fn_ = beats.len() - tp;
    let se = tp as f64 / (tp + fn_).max(1) as f64;
    let pp = tp as f64 / (tp + fp).max(1) as f64;
    Scores {
        tp,
        fp,
        fn_,
        sensitivity: se,
        positive_predictivity: pp,
        f1: if se + pp > 0.0 {
            2.0 * se * pp / (se + pp)
        } else {
            0.0
        },
    }
}

/// The streaming decision rule: a detection at the first step of every run of outputs
/// above `threshold` (logit), runs closer than `refractory` steps merged.
pub fn detections(logits: &[f32], threshold: f32, refractory: usize) -> Vec<usize> {
    let mut out: Vec<usize> = Vec::new();
    let mut above = false;
    for (t, &v) in logits.iter().enumerate() {
        let now = v > threshold;
        if now && !above && out.last().is_none_or(|&l| t >= l + refractory) {
            out.push(t);
        }
        above = now;
    }
    out
}

/// Record 100's MLII signal in mV and its beat sample indices (`$TINYSSM_DATA/ecg`).
pub fn record_100(root: &Path) -> Result<(Vec<f32>, Vec<usize>, f32), DataError> {
    let r = read_record(&root.join("ecg"), "100")?;
    let sig = r.signals[0].mv();
    let beats = r
        .annotations
        .iter()
        .filter(|(_, c)| is_beat(*c))
        .map(|&(t, _)| t)
        .collect();
    Ok((sig, beats, r.fs))
}

/// Where record 100's test region starts in a signal of `len` samples: the first 80% is
/// the training region (training, calibration), the last 20% the test region (scores).
pub fn test_start(len: usize) -> usize {
    len * 8 / 10
}

/// The test region of record 100 (its last 20%) and the beats in it, as sample indices
/// from the region's start.
pub fn record_100_test(root: &Path) -> Result<(Vec<f32>, Vec<usize>), DataError> {
    let (sig, beats, _) = record_100(root)?;
    let split = test_start(sig.len());
    let test_beats = beats
        .iter()
        .filter(|&&b| b >= split)
        .map(|&b| b - split)
        .collect();
    Ok((sig[split..].to_vec(), test_beats))
}

/// The detector's streaming decision rule and scoring: a detection at each rising crossing
/// of logit 0 (at most one per 200 ms), scored with the standard 150 ms tolerance; beats in
/// the first 0.5 s (start-up) are not scored.
pub fn decide(logits: &[f32], beats: &[usize]) -> Scores {
    let skip = 180;
    let det: Vec<usize> = detections(logits, 0.0, 72)
        .into_iter()
        .filter(|&t| t >= skip)
        .collect();
    let b: Vec<usize> = beats.iter().copied().filter(|&t| t >= skip + 54).collect();
    score(&b, &det, 54)
}
