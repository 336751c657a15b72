//! # tinyssm-tools
//!
//! Library behind the `tinyssm` CLI: checkpoint importers (HF `transformers` Mamba and
//! Mamba-2 directories, S4D checkpoints), conversion to the tinyssm model format, and
//! model inspection.

#![forbid(unsafe_code)]

pub mod error;
pub mod eval;
pub mod generate;
pub mod import;
pub mod inspect;
pub mod intq;
pub mod quantize;
pub mod w8a8;

pub use error::ToolError;
pub use import::{convert_dir, detect, Detected, WeightDtype};
