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
        VerifyPath::Step => (model.with_kernels(Kernels::Reference), Tier::step_for(model)),
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
    ecg_on(&ScanRun(be), model, streams)
}

/// [`verify_ecg`] on the step path of a CUDA device (or the emulator).
pub fn verify_ecg_step<D: Device>(
    dev: &D,
    model: &Model<'_>,
    streams: usize,
) -> Result<Report, ToolError> {
    ecg_on(&StepRun(dev), model, streams)
}

fn ecg_on(run: &dyn BatchRun, model: &Model<'_>, streams: usize) -> Result<Report, ToolError> {
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
        .map(|c| c.to_vec())
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
                .map(|c| c.to_vec())
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
