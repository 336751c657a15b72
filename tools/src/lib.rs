//! # tinyssm-tools
//!
//! Library behind the `tinyssm` CLI: checkpoint importers (HF `transformers` Mamba and
//! Mamba-2 directories, S4D checkpoints), conversion to the tinyssm model format,
//! quantization and calibration, evaluation through the core, and model inspection.
//! Datasets come from `tinyssm-data`. The `cuda` feature (on by default) adds the batch
//! crate `tinyssm-cuda`: `tinyssm train`, `tinyssm verify` and `eval::verify_*`.

#![forbid(unsafe_code)]

pub mod error;
pub mod eval;
#[doc(hidden)]
pub mod fuzzing;
pub mod generate;
pub mod import;
pub mod inspect;
pub mod intq;
pub mod plot;
pub mod quantize;
pub mod support;
pub mod w8a8;

pub use error::ToolError;
pub use import::{convert_dir, detect, Detected, WeightDtype};
