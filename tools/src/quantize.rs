//! Re-encoding a model blob: weight matrices to another dtype (bf16, int8 per output
//! channel, int4 in groups of 32) and the step's compute mode.
//!
//! Precision policy (DESIGN.md, numerics): weight-matrix roles are re-encoded; norms,
//! biases, conv weights, A, D, dt and the recurrent state stay f32, and so does
//! `dt_proj.weight` at int8/int4 (it feeds softplus(dt), where an error is exponentiated
//! through `exp(dt·A)`), which is stored at f16 instead. The front end's filterbank is
//! regenerated from its configuration.
//!
//! At int8/int4 (the small-flash targets) more encodings apply (format 1.6), each measured
//! to hold (QUANTIZATION.md, "Compact float tensors"): the filterbank is stored sparse
//! (each band's non-zero bins: lossless, bit-identical features), and each block kind's
//! compact encodings (`BlockKind::compact_dtype`) — S4D's `dA` in Q1.15 ([`q15_modes`]:
//! every mode kept strictly inside the unit circle), `C·dB` as int8 with one scale per
//! channel, `D` and the output linear's bias f16.

use tinyssm_core::{Compute, DType, Model, Role};
use tinyssm_host::{tensor_f32, write_blob, AlignedBuf, TensorData};

use crate::error::ToolError;

/// What to re-encode a model into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuantSpec {
    /// Storage dtype of the weight matrices.
    pub weights: DType,
    pub compute: Compute,
    /// At int8/int4 weights, also the format 1.6 compact encodings (a sparse filterbank,
    /// each block kind's compact vectors); `false` writes only what a 1.5 reader reads.
    pub compact: bool,
}

impl QuantSpec {
    /// Checks that the combination makes sense.
    pub fn validate(&self) -> Result<(), ToolError> {
        match (self.compute, self.weights) {
            (Compute::W8a8, DType::I8) => Ok(()),
            (Compute::W8a8, w) => Err(ToolError::Usage(format!(
                "--compute w8a8 multiplies int8 weights by int8 activations: use --weights int8 (not {})",
                w.name()
            ))),
            _ => Ok(()),
        }
    }
}

/// The dtype a matrix of `role` gets under `weights`.
pub fn matrix_dtype(role: Role, weights: DType) -> DType {
    match (role, weights) {
        (Role::DtProj, DType::I8 | DType::I4 | DType::I8S) => DType::F16,
        _ => weights,
    }
}

/// Re-encodes a parsed model (from any stored dtype) per `spec`.
pub fn requantize(m: &Model<'_>, spec: QuantSpec) -> Result<Vec<u8>, ToolError> {
    requantize_with(m, spec, None, 0)
}

/// [`requantize`] keeping every matrix of at most `small_f32` values in f32 (mixed
/// precision: the small matrices save little flash in int8 and, in a deep network such as
/// aTENNuate's, cost the most accuracy; QUANTIZATION.md).
pub fn requantize_mixed(
    m: &Model<'_>,
    spec: QuantSpec,
    small_f32: u64,
) -> Result<Vec<u8>, ToolError> {
    requantize_with(m, spec, None, small_f32)
}

/// [`requantize`] to a w8a8 model with static activation scales: every int8 matrix that
/// `plan` ([`crate::w8a8::plan`]) made static is stored as [`DType::I8S`] with its bound,
/// the others as [`DType::I8`] (dynamic scale) (`tinyssm convert --compute w8a8
/// --calibrate …`).
pub fn requantize_static(
    m: &Model<'_>,
    spec: QuantSpec,
    plan: &[crate::w8a8::MatrixScale],
) -> Result<Vec<u8>, ToolError> {
    if spec.compute != Compute::W8a8 || spec.weights != DType::I8 {
        return Err(ToolError::Usage(format!(
            "static activation scales are for --weights int8 --compute w8a8, not {} / {}",
            spec.weights.name(),
            spec.compute.name()
        )));
    }
    requantize_with(m, spec, Some(plan), 0)
}

fn requantize_with(
    m: &Model<'_>,
    spec: QuantSpec,
    plan: Option<&[crate::w8a8::MatrixScale]>,
    small_f32: u64,
) -> Result<Vec<u8>, ToolError> {
    spec.validate()?;
    if m.config().compute == tinyssm_core::Compute::Int {
        return Err(ToolError::Usage(
            "this model is integer-only (fixed-point tensors and plans, no float values to \
             re-encode): convert its float source instead"
                .into(),
        ));
    }
    let mut config = *m.config();
    config.compute = spec.compute;
    let compact = spec.compact && matches!(spec.weights, DType::I8 | DType::I4);
    if let (true, Some(fe)) = (compact, config.front_end.as_mut()) {
        fe.filter_nnz = 0;
        let mut fb = vec![0f32; fe.filterbank_len()];
        tinyssm_core::frontend::mel_filterbank(fe, &mut fb)
            .and_then(|()| tinyssm_core::frontend::sparse_len(fe, &fb))
            .map(|n| fe.filter_nnz = n as u32)
            .map_err(tinyssm_host::HostError::Invalid)?;
    }
    write_blob(&config, |ts| -> Result<TensorData, ToolError> {
        let t = m
            .find(ts.layer, ts.role)
            .ok_or_else(|| ToolError::BadValues {
                name: ts.role.name().into(),
                msg: "missing in the source model".into(),
            })?;
        let v = tensor_f32(&t).ok_or_else(|| ToolError::BadValues {
            name: ts.role.name().into(),
            msg: "inconsistent layout in the source model".into(),
        })?;
        // The block kind's compact encoding of this tensor, if it has one.
        let small = ts
            .layer
            .filter(|_| compact)
            .and_then(|l| config.block_at(l as usize))
            .and_then(|b| b.compact_dtype(ts.role));
        if let Some(dt) = small {
            Ok(match dt {
                DType::I16 => TensorData::I16(q15_modes(&v)),
                dt => TensorData::encode(v, dt, ts)?,
            })
        } else if ts.role.is_matrix() && ts.numel().is_some_and(|n| n <= small_f32) {
            Ok(TensorData::F32(v))
        } else if ts.role.is_matrix() {
            let d = TensorData::encode(v, matrix_dtype(ts.role, spec.weights), ts)?;
            match plan.and_then(|p| crate::w8a8::static_bound(p, ts.layer, ts.role)) {
                Some(x) if d.dtype() == DType::I8 => Ok(d.with_input_bound(x)?),
                _ => Ok(d),
            }
        } else {
            Ok(TensorData::F32(v))
        }
    })
}

/// S4D modes `(re, im)` in Q1.15, each rounded to nearest and then, if rounding put it on
/// or outside the unit circle (a mode within 2.2e-5 of it), moved toward zero one unit at a
/// time until it is strictly inside: a stable mode stays stable.
pub fn q15_modes(v: &[f32]) -> Vec<i16> {
    let mut out = Vec::with_capacity(v.len());
    for m in v.chunks(2) {
        let mut q: Vec<i32> = m
            .iter()
            .map(|&x| ((x as f64) * 32768.0).round().clamp(-32767.0, 32767.0) as i32)
            .collect();
        let inside = |q: &[i32]| q.iter().map(|&c| (c as i64) * (c as i64)).sum::<i64>() < 1 << 30;
        while !inside(&q) {
            for c in q.iter_mut() {
                *c -= c.signum();
            }
        }
        out.extend(q.iter().map(|&c| c as i16));
    }
    out
}

/// [`requantize`] from blob bytes.
pub fn requantize_blob(blob: &[u8], spec: QuantSpec) -> Result<Vec<u8>, ToolError> {
    requantize_blob_mixed(blob, spec, 0)
}

/// [`requantize_mixed`] from blob bytes.
pub fn requantize_blob_mixed(
    blob: &[u8],
    spec: QuantSpec,
    small_f32: u64,
) -> Result<Vec<u8>, ToolError> {
    let buf = AlignedBuf::from_bytes(blob);
    let m = Model::parse(buf.as_bytes()).map_err(tinyssm_host::HostError::Invalid)?;
    requantize_mixed(&m, spec, small_f32)
}

#[cfg(test)]
mod tests {
    use super::q15_modes;

    /// Modes round to the nearest Q1.15 value; one that rounding would put on or outside
    /// the unit circle moves inside it, toward zero.
    #[test]
    fn q15_modes_round_and_stay_inside_the_unit_circle() {
        let q = q15_modes(&[0.5, -0.25, 0.999_99, 0.0, -0.3, 0.4]);
        assert_eq!(q, [16384, -8192, 32767, 0, -9830, 13107]);
        for m in [
            [0.999_995f32, 0.0],
            [0.0, -0.999_99],
            // Inside the circle in f32, outside once both components round up.
            [0.599_993_9, 0.800_004_3],
            [
                -std::f32::consts::FRAC_1_SQRT_2,
                std::f32::consts::FRAC_1_SQRT_2,
            ],
            [1.0, 0.0],
        ] {
            let q = q15_modes(&m);
            let r2 = q.iter().map(|&c| (c as i64).pow(2)).sum::<i64>();
            assert!(r2 < 1 << 30, "{m:?} -> {q:?}");
            // At most a few units from the rounded value.
            for (c, x) in q.iter().zip(m) {
                assert!((*c as f32 - x * 32768.0).abs() <= 3.0, "{m:?} -> {q:?}");
            }
        }
    }
}
