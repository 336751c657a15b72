//! Re-encoding a model blob: weight matrices to another dtype (bf16, int8 per output
//! channel, int4 in groups of 32) and the step's compute mode.
//!
//! Precision policy (DESIGN.md, numerics): only weight-matrix roles are re-encoded; norms,
//! biases, conv weights, A, D, dt and the recurrent state stay f32, and so does
//! `dt_proj.weight` at int8/int4 (it feeds softplus(dt), where an error is exponentiated
//! through `exp(dt·A)`), which is stored at f16 instead. The front end's filterbank is
//! regenerated from its configuration.

use tinyssm_core::{Compute, DType, Model, Role};
use tinyssm_host::{tensor_f32, write_blob, AlignedBuf, TensorData};

use crate::error::ToolError;

/// What to re-encode a model into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuantSpec {
    /// Storage dtype of the weight matrices.
    pub weights: DType,
    pub compute: Compute,
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
    requantize_with(m, spec, None)
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
    requantize_with(m, spec, Some(plan))
}

fn requantize_with(
    m: &Model<'_>,
    spec: QuantSpec,
    plan: Option<&[crate::w8a8::MatrixScale]>,
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
        if ts.role.is_matrix() {
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

/// [`requantize`] from blob bytes.
pub fn requantize_blob(blob: &[u8], spec: QuantSpec) -> Result<Vec<u8>, ToolError> {
    let buf = AlignedBuf::from_bytes(blob);
    let m = Model::parse(buf.as_bytes()).map_err(tinyssm_host::HostError::Invalid)?;
    requantize(&m, spec)
}
