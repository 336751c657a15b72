//! `tinyssm eval` (models through the core, step by step, on a dataset split) and, with
//! the `cuda` feature, the dataset side of `tinyssm verify` (the same streams on a backend
//! in one batch: `verify_fsdd` and the rest, in `eval/verify.rs`).

use std::path::{Path, PathBuf};

use serde::Serialize;
use tinyssm_core::{Input, Model};
use tinyssm_data::{self as data, ecg, Split};

use crate::error::ToolError;

#[cfg(feature = "cuda")]
mod verify;
#[cfg(feature = "cuda")]
pub use verify::{
    all_table, verify_all, verify_basicmotions, verify_basicmotions_step, verify_ecg,
    verify_ecg_step, verify_fsdd, verify_fsdd_step, verify_int_step, AllRow, VerifyData,
    VerifyPath,
};

/// One model's result.
#[derive(Debug, Clone, Serialize)]
pub struct EvalResult {
    pub path: PathBuf,
    /// Classification accuracy (fsdd, basicmotions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    /// Detection scores (ecg): sensitivity, positive predictivity, F1, with counts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detection: Option<ecg::Scores>,
    pub weight_bytes: u64,
    pub state_bytes: usize,
    /// The step's arithmetic ("float", "w8a8").
    pub compute: &'static str,
    pub n: usize,
    pub correct: usize,
}

fn usage(e: impl std::fmt::Display) -> ToolError {
    ToolError::Usage(e.to_string())
}

fn result(
    model: &Model<'_>,
    path: &Path,
    detection: Option<ecg::Scores>,
    n: usize,
    correct: usize,
) -> EvalResult {
    let ws = model.weight_stats();
    EvalResult {
        path: path.to_path_buf(),
        accuracy: detection
            .is_none()
            .then(|| correct as f64 / n.max(1) as f64),
        detection,
        weight_bytes: ws.total_bytes,
        state_bytes: model.state_len() * 4,
        compute: model.config().compute.name(),
        n,
        correct,
    }
}

/// One stream through the core from the initial state: every output (`[steps, d_output]`)
/// and the final state. `inputs` are samples for a model with a front end (one output per
/// completed frame), otherwise input vectors of `d_input` (one output per vector).
fn core_stream(model: &Model<'_>, inputs: &[f32]) -> Result<(Vec<f32>, Vec<f32>), ToolError> {
    if model.config().compute == tinyssm_core::Compute::Int {
        let (ys, st) = int_stream(model, inputs)?;
        let io = model
            .int_io()
            .ok_or_else(|| usage("integer-only model without a plan"))?;
        let s = 2f32.powi(-(io.output_frac as i32));
        return Ok((
            ys.iter().map(|&v| v as f32 * s).collect(),
            st.iter().map(|&v| v as f32).collect(),
        ));
    }
    let mut st = vec![0f32; model.state_len()];
    let mut sc = vec![0f32; model.scratch_len()];
    let mut o = vec![0f32; model.d_output()];
    model.reset(&mut st).map_err(usage)?;
    let mut ys = Vec::new();
    if let Some(fe) = model.front_end() {
        for &s in inputs {
            if model
                .step_sample(&fe, s, &mut st, &mut sc, &mut o)
                .map_err(usage)?
            {
                ys.extend_from_slice(&o);
            }
        }
    } else {
        for row in inputs.chunks_exact(model.d_input().max(1)) {
            model
                .step(Input::Vector(row), &mut st, &mut sc, &mut o)
                .map_err(usage)?;
            ys.extend_from_slice(&o);
        }
    }
    Ok((ys, st))
}

/// `x · 2^frac` rounded (ties away from zero) and saturated to `i16`: a float input in an
/// integer-only model's input format. Audio samples (`pcm / 32768`) map back to their PCM.
pub fn to_i16(x: f32, frac: u32) -> i16 {
    (x as f64 * 2f64.powi(frac as i32))
        .round()
        .clamp(-32768.0, 32767.0) as i16
}

/// One stream through an integer-only model: raw outputs and the final raw state.
/// Audio models take the samples as 16-bit PCM (`round(x · 32768)`), vector models their
/// inputs in the model's input format ([`Model::int_io`]).
pub fn int_stream(model: &Model<'_>, inputs: &[f32]) -> Result<(Vec<i32>, Vec<i32>), ToolError> {
    let mut st = vec![0i32; model.state_len()];
    model.reset_int(&mut st).map_err(usage)?;
    int_stream_from(model, st, inputs)
}

/// [`int_stream`] from the state `st` (e.g. a restored snapshot) instead of the initial one.
pub fn int_stream_from(
    model: &Model<'_>,
    mut st: Vec<i32>,
    inputs: &[f32],
) -> Result<(Vec<i32>, Vec<i32>), ToolError> {
    let io = model
        .int_io()
        .ok_or_else(|| usage("not an integer-only model"))?;
    if st.len() != model.state_len() {
        return Err(usage("state of the wrong length"));
    }
    let mut sc = vec![0i32; model.scratch_len()];
    let mut o = vec![0i32; model.d_output()];
    let mut ys = Vec::new();
    if let Some(fe) = model.front_end_int() {
        for &s in inputs {
            if model
                .step_sample_int(&fe, to_i16(s, 15), &mut st, &mut sc, &mut o)
                .map_err(usage)?
            {
                ys.extend_from_slice(&o);
            }
        }
    } else {
        let d = model.d_input().max(1);
        let mut q = vec![0i16; d];
        for row in inputs.chunks_exact(d) {
            for (qv, &x) in q.iter_mut().zip(row) {
                *qv = to_i16(x, io.input_frac);
            }
            model
                .step_int(&q, &mut st, &mut sc, &mut o)
                .map_err(usage)?;
            ys.extend_from_slice(&o);
        }
    }
    Ok((ys, st))
}

/// The model's part of a state, one vector per layer (the front end's ring follows it).
fn layer_states(model: &Model<'_>, st: &[f32]) -> Vec<Vec<f32>> {
    let fe = model.state_len() - model.config().sizes().map_or(0, |s| s.model_state);
    let layers = model.config().n_layers as usize;
    let per = (st.len() - fe) / layers.max(1);
    st[..per * layers]
        .chunks(per.max(1))
        .map(|v| v.to_vec())
        .collect()
}

fn argmax(v: &[f32]) -> u32 {
    crate::generate::argmax(v)
}

/// Classification: the argmax of each stream's last output against its label.
fn classify(
    model: &Model<'_>,
    path: &Path,
    cases: &[(Vec<f32>, u32)],
) -> Result<EvalResult, ToolError> {
    let d = model.d_output().max(1);
    let mut correct = 0;
    for (inputs, label) in cases {
        let (ys, _) = core_stream(model, inputs)?;
        if ys.len() >= d && argmax(&ys[ys.len() - d..]) == *label {
            correct += 1;
        }
    }
    Ok(result(model, path, None, cases.len(), correct))
}

fn fsdd_cases(
    model: &Model<'_>,
    path: &Path,
    split: Split,
    max: usize,
) -> Result<Vec<(Vec<f32>, u32)>, ToolError> {
    let fe = model.config().front_end.ok_or_else(|| {
        usage(format!(
            "{}: the fsdd dataset needs a model with an audio front end",
            path.display()
        ))
    })?;
    let mut files = data::fsdd_files(&data::data_dir(), split).map_err(usage)?;
    files.truncate(max);
    files
        .iter()
        .map(|(p, d)| Ok((data::fsdd_clip(p, &fe).map_err(usage)?, *d)))
        .collect()
}

fn basicmotions_cases(
    model: &Model<'_>,
    path: &Path,
    split: Split,
    max: usize,
) -> Result<Vec<(Vec<f32>, u32)>, ToolError> {
    if model.d_input() != 6 || model.d_output() != 4 || model.config().front_end.is_some() {
        return Err(usage(format!(
            "{}: basicmotions needs a vector model with 6 inputs and 4 outputs",
            path.display()
        )));
    }
    let mut cases = data::basicmotions(&data::data_dir(), split).map_err(usage)?;
    cases.truncate(max);
    Ok(cases.into_iter().map(|c| (c.feats, c.label)).collect())
}

/// Spoken digits: every clip of the split from the model's initial state, one sample per
/// `step_sample`; the decision is the argmax of the output at the clip's last frame.
pub fn fsdd(model: &Model<'_>, path: &Path, split: Split) -> Result<EvalResult, ToolError> {
    classify(model, path, &fsdd_cases(model, path, split, usize::MAX)?)
}

/// BasicMotions: every case of the split from the initial state, one 6-channel vector per
/// step; the class is the argmax at the last step.
pub fn basicmotions(model: &Model<'_>, path: &Path, split: Split) -> Result<EvalResult, ToolError> {
    classify(
        model,
        path,
        &basicmotions_cases(model, path, split, usize::MAX)?,
    )
}

/// The test region of record 100 (its last 20%) and the beats in it.
fn ecg_test() -> Result<(Vec<f32>, Vec<usize>), ToolError> {
    ecg::record_100_test(&data::data_dir()).map_err(usage)
}

/// R-peak detection on MIT-BIH record 100: the last 20% of the record through the core one
/// sample at a time from the initial state, the detector's decision rule
/// ([`ecg::decide`]) and the standard 150 ms matching tolerance.
pub fn ecg(model: &Model<'_>, path: &Path) -> Result<EvalResult, ToolError> {
    if model.d_input() != 1 || model.d_output() != 1 || model.config().front_end.is_some() {
        return Err(usage(format!(
            "{}: the ecg dataset needs a model with one input and one output per step",
            path.display()
        )));
    }
    let (test, beats) = ecg_test()?;
    let (logits, _) = core_stream(model, &test)?;
    let sc = ecg::decide(&logits, &beats);
    Ok(result(model, path, Some(sc), sc.tp + sc.fn_, sc.tp))
}

/// Signal-to-noise ratio of one model's values against a reference's, in dB
/// (`10·log10(Σ ref² / Σ (x − ref)²)`; infinite when identical).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Snr {
    #[serde(skip)]
    signal: f64,
    #[serde(skip)]
    noise: f64,
    pub db: f64,
}

impl Snr {
    fn add(&mut self, x: &[f32], reference: &[f32]) {
        for (a, r) in x.iter().zip(reference) {
            self.signal += (*r as f64) * (*r as f64);
            self.noise += ((a - r) as f64) * ((a - r) as f64);
        }
        self.db = if self.noise == 0.0 {
            f64::INFINITY
        } else {
            10.0 * (self.signal / self.noise).log10()
        };
    }
}

/// Per-layer SNR of a model against a reference model (`tinyssm eval --layers`).
#[derive(Debug, Clone, Serialize)]
pub struct LayerReport {
    pub path: PathBuf,
    pub reference: PathBuf,
    pub streams: usize,
    pub steps: usize,
    /// Each layer's recurrent state after every step, against the reference's.
    pub layer_state_snr_db: Vec<f64>,
    /// The outputs of every step.
    pub output_snr_db: f64,
}

/// One stream through a float, w8a8 or integer-only model, one input at a time, with its
/// outputs and per-layer states in real units (integer states scaled by their formats).
struct Streamer<'m> {
    model: &'m Model<'m>,
    int: bool,
    st: Vec<f32>,
    sc: Vec<f32>,
    o: Vec<f32>,
    sti: Vec<i32>,
    sci: Vec<i32>,
    oi: Vec<i32>,
    qin: Vec<i16>,
}

impl<'m> Streamer<'m> {
    fn new(model: &'m Model<'m>) -> Result<Self, ToolError> {
        let int = model.config().compute == tinyssm_core::Compute::Int;
        let (nf, ni) = if int { (0, 1) } else { (1, 0) };
        let mut s = Streamer {
            model,
            int,
            st: vec![0f32; model.state_len() * nf],
            sc: vec![0f32; model.scratch_len() * nf],
            o: vec![0f32; model.d_output()],
            sti: vec![0i32; model.state_len() * ni],
            sci: vec![0i32; model.scratch_len() * ni],
            oi: vec![0i32; model.d_output() * ni],
            qin: vec![0i16; model.d_input()],
        };
        s.reset()?;
        Ok(s)
    }
    fn reset(&mut self) -> Result<(), ToolError> {
        if self.int {
            self.model.reset_int(&mut self.sti).map_err(usage)
        } else {
            self.model.reset(&mut self.st).map_err(usage)
        }
    }
    /// Feeds one sample (audio models) or one input vector; `true` when outputs are new.
    fn feed(&mut self, x: &[f32]) -> Result<bool, ToolError> {
        let m = self.model;
        if self.int {
            let io = m
                .int_io()
                .ok_or_else(|| usage("integer-only model without a plan"))?;
            let fresh = if let Some(fe) = m.front_end_int() {
                m.step_sample_int(
                    &fe,
                    to_i16(x[0], 15),
                    &mut self.sti,
                    &mut self.sci,
                    &mut self.oi,
                )
                .map_err(usage)?
            } else {
                for (q, &v) in self.qin.iter_mut().zip(x) {
                    *q = to_i16(v, io.input_frac);
                }
                m.step_int(&self.qin, &mut self.sti, &mut self.sci, &mut self.oi)
                    .map_err(usage)?;
                true
            };
            if fresh {
                let s = 2f32.powi(-(io.output_frac as i32));
                for (o, &v) in self.o.iter_mut().zip(&self.oi) {
                    *o = v as f32 * s;
                }
            }
            Ok(fresh)
        } else if let Some(fe) = m.front_end() {
            m.step_sample(&fe, x[0], &mut self.st, &mut self.sc, &mut self.o)
                .map_err(usage)
        } else {
            m.step(Input::Vector(x), &mut self.st, &mut self.sc, &mut self.o)
                .map_err(usage)?;
            Ok(true)
        }
    }
    /// Each layer's recurrent state in real units.
    fn layer_states(&self) -> Vec<Vec<f32>> {
        if !self.int {
            return layer_states(self.model, &self.st);
        }
        let m = self.model;
        let raw: Vec<f32> = self.sti.iter().map(|&v| v as f32).collect();
        let mut layers = layer_states(m, &raw);
        for (l, v) in layers.iter_mut().enumerate() {
            let p = match m
                .find(Some(l as u16), tinyssm_core::Role::IntLayerPlan)
                .map(|t| t.weights)
            {
                Some(tinyssm_core::Weights::Int(tinyssm_core::IntWeights::I32(p))) => p,
                _ => continue,
            };
            let Some(block) = m.stack().block(l) else {
                continue;
            };
            for (i, x) in v.iter_mut().enumerate() {
                if let Some(f) = block.int_state_frac_entry(i) {
                    *x *= 2f32.powi(-p.get(f).copied().unwrap_or(0));
                }
            }
        }
        layers
    }
}

/// Both models step through the same streams in lockstep; the SNR accumulates over every
/// step of every stream. The models must have the same architecture and sizes (a model
/// and its re-encodings, the integer-only one included: its states and outputs are
/// compared in real units).
pub fn layer_snr(
    reference: &Model<'_>,
    ref_path: &Path,
    model: &Model<'_>,
    path: &Path,
    streams: &[Vec<f32>],
) -> Result<LayerReport, ToolError> {
    // The filterbank's storage (dense or sparse) does not change the features.
    let fe = |m: &Model<'_>| {
        m.config().front_end.map(|mut f| {
            f.filter_nnz = 0;
            f
        })
    };
    if reference.config().arch != model.config().arch || fe(reference) != fe(model) {
        return Err(usage(format!(
            "{} and {}: --layers compares a model with its own re-encoding (same architecture and sizes)",
            ref_path.display(),
            path.display()
        )));
    }
    let layers = model.config().n_layers as usize;
    let mut st_snr = vec![Snr::default(); layers];
    let mut out_snr = Snr::default();
    let mut steps = 0;
    let mut a = Streamer::new(model)?;
    let mut b = Streamer::new(reference)?;
    let audio = model.config().front_end.is_some();
    for inputs in streams {
        a.reset()?;
        b.reset()?;
        let width = if audio { 1 } else { model.d_input().max(1) };
        for row in inputs.chunks_exact(width) {
            let fa = a.feed(row)?;
            let fb = b.feed(row)?;
            if fa && fb {
                for ((s, x), y) in st_snr
                    .iter_mut()
                    .zip(a.layer_states())
                    .zip(b.layer_states())
                {
                    s.add(&x, &y);
                }
                out_snr.add(&a.o, &b.o);
                steps += 1;
            }
        }
    }
    Ok(LayerReport {
        path: path.to_path_buf(),
        reference: ref_path.to_path_buf(),
        streams: streams.len(),
        steps,
        layer_state_snr_db: st_snr.iter().map(|s| s.db).collect(),
        output_snr_db: out_snr.db,
    })
}

/// The input streams of a dataset for `--layers` (at most `max`).
pub fn dataset_streams(
    model: &Model<'_>,
    path: &Path,
    dataset: &str,
    split: Split,
    max: usize,
) -> Result<Vec<Vec<f32>>, ToolError> {
    Ok(match dataset {
        "fsdd" => fsdd_cases(model, path, split, max)?
            .into_iter()
            .map(|c| c.0)
            .collect(),
        "basicmotions" => basicmotions_cases(model, path, split, max)?
            .into_iter()
            .map(|c| c.0)
            .collect(),
        "ecg" => vec![ecg_test()?.0],
        d => return Err(usage(format!("unknown dataset {d}"))),
    })
}

/// One stream's outputs through both models (`--plot`).
pub fn stream_outputs(models: &[&Model<'_>], inputs: &[f32]) -> Result<Vec<Vec<f32>>, ToolError> {
    models
        .iter()
        .map(|m| Ok(core_stream(m, inputs)?.0))
        .collect()
}
