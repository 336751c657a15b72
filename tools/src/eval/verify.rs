//! The dataset side of `tinyssm verify` (`cuda` feature): the streams `tinyssm eval` runs
//! through the core, run in one batch on a backend of `tinyssm-cuda` (the training ops) or
//! on the step kernels of a CUDA device or the emulator, and compared with the core.

use std::path::Path;

use tinyssm_core::{Kernels, Model};
use tinyssm_cuda::cuda::Device;
use tinyssm_cuda::verify::{
    blob_forward, compare, compare_int, front_end_frames, int_step_forward, step_blob_forward,
    IntReport, Report, Tier,
};
use tinyssm_data::Split;

use super::{
    basicmotions_cases, core_stream, ecg_test, fsdd_cases, int_stream, layer_states, to_i16, usage,
};
use crate::error::ToolError;

/// Which batch computation `tinyssm verify` checks against the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyPath {
    /// The training ops (whole-sequence scans) on a [`tinyssm_cuda::Backend`], against the
    /// core's default kernels, within [`Tier::FLOAT`].
    Scan,
    /// The step kernels ([`tinyssm_cuda::cuda::step`]: the core's reference step for every
    /// stream on a CUDA device or the emulator), against the core's
    /// [`tinyssm_core::Kernels::Reference`], within [`Tier::STEP`] (the same operations in
    /// the same order; exp, log1p and erf are the device's own).
    Step,
}

type BatchOut = (Vec<Vec<f32>>, Vec<Vec<Vec<f32>>>);

/// One way of running the streams in a batch.
trait BatchRun {
    fn name(&self) -> String;
    fn path(&self) -> VerifyPath;
    fn run(
        &self,
        m: &Model<'_>,
        x: &[f32],
        time: usize,
        lens: &[usize],
    ) -> Result<BatchOut, ToolError>;
}

struct ScanRun<'b, B>(&'b B);
impl<B: tinyssm_cuda::Backend> BatchRun for ScanRun<'_, B> {
    fn name(&self) -> String {
        self.0.name()
    }
    fn path(&self) -> VerifyPath {
        VerifyPath::Scan
    }
    fn run(
        &self,
        m: &Model<'_>,
        x: &[f32],
        time: usize,
        lens: &[usize],
    ) -> Result<BatchOut, ToolError> {
        blob_forward(self.0, m, x, time, lens).map_err(usage)
    }
}

struct StepRun<'d, D>(&'d D);
impl<D: Device> BatchRun for StepRun<'_, D> {
    fn name(&self) -> String {
        self.0.describe()
    }
    fn path(&self) -> VerifyPath {
        VerifyPath::Step
    }
    fn run(
        &self,
        m: &Model<'_>,
        x: &[f32],
        time: usize,
        lens: &[usize],
    ) -> Result<BatchOut, ToolError> {
        step_blob_forward(self.0, m, x, time, lens).map_err(usage)
    }
}

/// The core model a path is compared with, and the tier it must meet.
fn core_for<'a>(path: VerifyPath, model: &Model<'a>) -> (Model<'a>, Tier) {
    match path {
        VerifyPath::Scan => (*model, Tier::FLOAT),
        VerifyPath::Step => (
            model.with_kernels(Kernels::Reference),
            Tier::step_for(model),
        ),
    }
}

/// The streams in one padded batch (their per-step input vectors of `dim`) against the
/// core's outputs and final states for the same streams.
fn verify_batch(
    run: &dyn BatchRun,
    model: &Model<'_>,
    vectors: &[Vec<f32>],
    dim: usize,
    core: Vec<(Vec<f32>, Vec<f32>)>,
) -> Result<Report, ToolError> {
    let lens: Vec<usize> = vectors.iter().map(|v| v.len() / dim.max(1)).collect();
    let time = lens.iter().copied().max().unwrap_or(1).max(1);
    let mut xb = vec![0f32; lens.len() * time * dim];
    for (b, v) in vectors.iter().enumerate() {
        xb[b * time * dim..b * time * dim + v.len()].copy_from_slice(v);
    }
    let (out_be, st_be) = run.run(model, &xb, time, &lens)?;
    let (out_core, st_core): (Vec<_>, Vec<_>) = core
        .into_iter()
        .map(|(ys, st)| (ys, layer_states(model, &st)))
        .unzip();
    let path = run.path();
    Ok(compare(
        core_for(path, model).1,
        run.name(),
        match path {
            VerifyPath::Scan => "scan",
            VerifyPath::Step => "step",
        },
        &out_be,
        &out_core,
        model.d_output(),
        &st_be,
        &st_core,
    ))
}

/// `tinyssm verify` on FSDD: the first `streams` clips of the split in one batch on the
/// backend (features from the model's own front end) against the core stepping each clip
/// sample by sample.
pub fn verify_fsdd<B: tinyssm_cuda::Backend>(
    be: &B,
    model: &Model<'_>,
    split: Split,
    streams: usize,
) -> Result<Report, ToolError> {
    fsdd_on(&ScanRun(be), model, split, streams)
}

/// [`verify_fsdd`] on the step path of a CUDA device (or the emulator).
pub fn verify_fsdd_step<D: Device>(
    dev: &D,
    model: &Model<'_>,
    split: Split,
    streams: usize,
) -> Result<Report, ToolError> {
    fsdd_on(&StepRun(dev), model, split, streams)
}

fn fsdd_on(
    run: &dyn BatchRun,
    model: &Model<'_>,
    split: Split,
    streams: usize,
) -> Result<Report, ToolError> {
    let cases = fsdd_cases(model, Path::new("model"), split, streams)?;
    let (cm, _) = core_for(run.path(), model);
    let core = cases
        .iter()
        .map(|(x, _)| core_stream(&cm, x))
        .collect::<Result<Vec<_>, _>>()?;
    let feats = cases
        .iter()
        .map(|(x, _)| front_end_frames(model, x).map_err(usage))
        .collect::<Result<Vec<_>, _>>()?;
    let n_mels = model.front_end().map_or(0, |f| f.config().n_mels as usize);
    verify_batch(run, model, &feats, n_mels, core)
}

/// `tinyssm verify` on ECG: the test region of record 100 cut into `streams` equal streams.
pub fn verify_ecg<B: tinyssm_cuda::Backend>(
    be: &B,
    model: &Model<'_>,
    streams: usize,
) -> Result<Report, ToolError> {
    ecg_on(&ScanRun(be), model, streams, usize::MAX)
}

/// [`verify_ecg`] on the step path of a CUDA device (or the emulator).
pub fn verify_ecg_step<D: Device>(
    dev: &D,
    model: &Model<'_>,
    streams: usize,
) -> Result<Report, ToolError> {
    ecg_on(&StepRun(dev), model, streams, usize::MAX)
}

fn ecg_on(
    run: &dyn BatchRun,
    model: &Model<'_>,
    streams: usize,
    max_steps: usize,
) -> Result<Report, ToolError> {
    if model.d_input() != 1 || model.front_end().is_some() {
        return Err(usage(
            "the ecg dataset needs a model with one input per step",
        ));
    }
    let (test, _) = ecg_test()?;
    let streams = streams.clamp(1, test.len());
    let chunks: Vec<Vec<f32>> = test
        .chunks_exact(test.len() / streams)
        .take(streams)
        .map(|c| c[..c.len().min(max_steps)].to_vec())
        .collect();
    let (cm, _) = core_for(run.path(), model);
    let core = chunks
        .iter()
        .map(|x| core_stream(&cm, x))
        .collect::<Result<Vec<_>, _>>()?;
    verify_batch(run, model, &chunks, 1, core)
}

/// `tinyssm verify` on BasicMotions: up to `streams` cases of the split in one batch.
pub fn verify_basicmotions<B: tinyssm_cuda::Backend>(
    be: &B,
    model: &Model<'_>,
    split: Split,
    streams: usize,
) -> Result<Report, ToolError> {
    basicmotions_on(&ScanRun(be), model, split, streams)
}

/// [`verify_basicmotions`] on the step path of a CUDA device (or the emulator).
pub fn verify_basicmotions_step<D: Device>(
    dev: &D,
    model: &Model<'_>,
    split: Split,
    streams: usize,
) -> Result<Report, ToolError> {
    basicmotions_on(&StepRun(dev), model, split, streams)
}

fn basicmotions_on(
    run: &dyn BatchRun,
    model: &Model<'_>,
    split: Split,
    streams: usize,
) -> Result<Report, ToolError> {
    let cases = basicmotions_cases(model, Path::new("model"), split, streams.max(1))?;
    let (cm, _) = core_for(run.path(), model);
    let core = cases
        .iter()
        .map(|(x, _)| core_stream(&cm, x))
        .collect::<Result<Vec<_>, _>>()?;
    let vectors: Vec<Vec<f32>> = cases.into_iter().map(|(x, _)| x).collect();
    verify_batch(run, model, &vectors, 6, core)
}

/// The datasets `tinyssm verify` streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyData {
    Fsdd,
    Ecg,
    Basicmotions,
}

/// `tinyssm verify` on an **integer-only** model (`compute int`), on the integer step path
/// of a CUDA device or the emulator ([`tinyssm_cuda::cuda::step_int`]): the same streams
/// as the float verification (FSDD clips as 16-bit PCM through the integer front end, the
/// ECG test region cut into `streams` equal streams, BasicMotions cases; vectors in the
/// model's input format, exactly as [`int_stream`] feeds the core) against the core's
/// `step_int` / `step_sample_int`. Every output and final state value must be equal.
pub fn verify_int_step<D: Device>(
    dev: &D,
    model: &Model<'_>,
    data: VerifyData,
    split: Split,
    streams: usize,
) -> Result<IntReport, ToolError> {
    int_step_on(dev, model, data, split, streams, usize::MAX)
}

fn int_step_on<D: Device>(
    dev: &D,
    model: &Model<'_>,
    data: VerifyData,
    split: Split,
    streams: usize,
    max_steps: usize,
) -> Result<IntReport, ToolError> {
    let io = model
        .int_io()
        .ok_or_else(|| usage("not an integer-only model"))?;
    let raw: Vec<Vec<f32>> = match data {
        VerifyData::Fsdd => fsdd_cases(model, Path::new("model"), split, streams.max(1))?
            .into_iter()
            .map(|(x, _)| x)
            .collect(),
        VerifyData::Ecg => {
            if model.d_input() != 1 || model.config().front_end.is_some() {
                return Err(usage(
                    "the ecg dataset needs a model with one input per step",
                ));
            }
            let (test, _) = ecg_test()?;
            let n = streams.clamp(1, test.len());
            test.chunks_exact(test.len() / n)
                .take(n)
                .map(|c| c[..c.len().min(max_steps)].to_vec())
                .collect()
        }
        VerifyData::Basicmotions => {
            basicmotions_cases(model, Path::new("model"), split, streams.max(1))?
                .into_iter()
                .map(|(x, _)| x)
                .collect()
        }
    };
    let frac = if model.config().front_end.is_some() {
        15
    } else {
        io.input_frac
    };
    let q: Vec<Vec<i16>> = raw
        .iter()
        .map(|x| x.iter().map(|&v| to_i16(v, frac)).collect())
        .collect();
    let (out_core, st_core): (Vec<_>, Vec<_>) = raw
        .iter()
        .map(|x| int_stream(model, x))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .unzip();
    let (out_be, st_be) = int_step_forward(dev, model, &q).map_err(usage)?;
    Ok(compare_int(
        dev.describe(),
        "step-int",
        &out_be,
        &out_core,
        model.d_output(),
        &st_be,
        &st_core,
    ))
}

/// Steps per ECG stream in `verify --all` (2.8 s of the 360 Hz record): the step path launches once per
/// step, and the single-model `verify` already covers the whole test region.
pub const ALL_ECG_STEPS: usize = 1_000;

/// One model's line in `tinyssm verify --all`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AllRow {
    /// The model file's name.
    pub model: String,
    /// `float`, `w8a8` or `int`.
    pub compute: String,
    /// The dataset its streams came from (`None` where the run did not start).
    pub dataset: Option<String>,
    /// `step` (float and w8a8 step kernels) or `step-int` (integer step kernels).
    pub path: String,
    /// `exact`, or the float tier's `rel`.
    pub tier: String,
    pub streams: usize,
    pub steps: usize,
    /// Largest `|Δ| / max(|core|, rms)` (float and w8a8 models).
    pub max_scaled_err: Option<f32>,
    /// Values that differ (integer-only models; must be 0).
    pub differing: Option<usize>,
    pub ok: bool,
    /// Why a model was not verified (then `ok` is false).
    pub error: Option<String>,
}

/// The dataset a model's input takes: an audio front end → FSDD, one input per step → the
/// ECG record, six → BasicMotions (the shipped models' three kinds of input).
fn dataset_of(m: &Model<'_>) -> Option<VerifyData> {
    match (m.config().front_end.is_some(), m.d_input()) {
        (true, _) => Some(VerifyData::Fsdd),
        (false, 1) => Some(VerifyData::Ecg),
        (false, 6) => Some(VerifyData::Basicmotions),
        _ => None,
    }
}

/// `tinyssm verify --all DIR`: every `*.tssm` in `dir` (sorted by name) on the step path of
/// `dev` — float and w8a8 models through the step kernels within their tier
/// ([`Tier::step_for`]), integer-only models through the integer step kernels for
/// equality — with up to `streams` streams of the dataset its input takes (ECG streams cut
/// to [`ALL_ECG_STEPS`] steps). A model that
/// cannot be verified (no dataset for its input, a kind the step path does not run) is a
/// row with `ok: false` and the reason; nothing is skipped silently.
pub fn verify_all<D: Device>(
    dev: &D,
    dir: &Path,
    split: Split,
    streams: usize,
) -> Result<Vec<AllRow>, ToolError> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| usage(format!("{}: {e}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "tssm") && p.is_file())
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(usage(format!("{}: no .tssm models", dir.display())));
    }
    let mut rows = Vec::new();
    for f in files {
        let name = f
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let mut row = AllRow {
            model: name,
            compute: String::new(),
            dataset: None,
            path: "step".into(),
            tier: String::new(),
            streams: 0,
            steps: 0,
            max_scaled_err: None,
            differing: None,
            ok: false,
            error: None,
        };
        if let Err(e) = verify_one(dev, &f, split, streams, &mut row) {
            row.ok = false;
            row.error = Some(e.to_string());
        }
        rows.push(row);
    }
    Ok(rows)
}

fn verify_one<D: Device>(
    dev: &D,
    f: &Path,
    split: Split,
    streams: usize,
    row: &mut AllRow,
) -> Result<(), ToolError> {
    let mf = tinyssm_host::ModelFile::open(f)?;
    let m = mf.model();
    let compute = m.config().compute;
    row.compute = compute.name().to_string();
    let data = dataset_of(&m)
        .ok_or_else(|| usage(format!("no dataset takes {} inputs per step", m.d_input())))?;
    row.dataset = Some(
        match data {
            VerifyData::Fsdd => "fsdd",
            VerifyData::Ecg => "ecg",
            VerifyData::Basicmotions => "basicmotions",
        }
        .into(),
    );
    if compute == tinyssm_core::Compute::Int {
        row.path = "step-int".into();
        row.tier = "exact".into();
        let r = int_step_on(dev, &m, data, split, streams, ALL_ECG_STEPS)?;
        row.streams = r.streams;
        row.steps = r.steps;
        row.differing = Some(r.differing);
        row.ok = r.ok;
        return Ok(());
    }
    let run = StepRun(dev);
    let r = match data {
        VerifyData::Fsdd => fsdd_on(&run, &m, split, streams)?,
        VerifyData::Ecg => ecg_on(&run, &m, streams, ALL_ECG_STEPS)?,
        VerifyData::Basicmotions => basicmotions_on(&run, &m, split, streams)?,
    };
    row.tier = match r.tier {
        Tier::Exact => "exact".into(),
        Tier::Float { rel, .. } => format!("rel {rel:.0e}"),
    };
    row.streams = r.streams;
    row.steps = r.steps;
    row.max_scaled_err = Some(r.max_scaled_err);
    row.ok = r.ok;
    Ok(())
}

/// The `verify --all` table as text, one line per model.
pub fn all_table(rows: &[AllRow]) -> String {
    let mut s = format!(
        "{:<26} {:<7} {:<13} {:<9} {:<8} {:>7} {:>6} {:>22}  result\n",
        "model", "compute", "dataset", "path", "tier", "streams", "steps", "max scaled Δ / differ"
    );
    for r in rows {
        let measure = match (r.max_scaled_err, r.differing) {
            (Some(e), _) => format!("{e:.2e}"),
            (_, Some(d)) => format!("{d} values"),
            _ => "-".into(),
        };
        let result = match (&r.error, r.ok) {
            (Some(e), _) => format!("NOT VERIFIED: {e}"),
            (None, true) => "ok".into(),
            (None, false) => "FAILED".into(),
        };
        s.push_str(&format!(
            "{:<26} {:<7} {:<13} {:<9} {:<8} {:>7} {:>6} {:>22}  {result}\n",
            r.model,
            r.compute,
            r.dataset.as_deref().unwrap_or("-"),
            r.path,
            r.tier,
            r.streams,
            r.steps,
            measure
        ));
    }
    s
}
