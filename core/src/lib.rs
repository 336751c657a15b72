//! # tinyssm-core
//!
//! `#![no_std]`, allocation-free, panic-free recurrent runtime for trained state space
//! models: Mamba-1, Mamba-2, S4D and RWKV (v4, v5.1, v5.2, v6, v7), one token or sample per
//! step, in fixed memory.
//!
//! ```text
//! use tinyssm_core::{include_model, Model};
//! static BLOB: &tinyssm_core::Aligned<[u8]> = include_model!("../model.tssm");
//! static mut STATE: [f32; STATE_LEN] = [0.0; STATE_LEN];     // sizes from `tinyssm codegen`
//! let model = Model::parse(&BLOB.0)?;                         // validates once
//! model.step(Input::Token(tok), &mut state, &mut scratch, &mut logits)?;
//! ```
//!
//! ## Entry points
//! | | float and w8a8 (`f32` buffers) | integer-only (`i32` buffers) |
//! |---|---|---|
//! | initial state | [`Model::reset`] | [`Model::reset_int`] |
//! | one input (token or vector) | [`Model::step`] | [`Model::step_int`] |
//! | one audio sample | [`Model::step_sample`] | [`Model::step_sample_int`] |
//! | calibration | [`Model::step_probed`], [`Model::step_sample_probed`] | — |
//!
//! An audio model's front end is resolved once per stream ([`Model::front_end`] /
//! [`Model::front_end_int`]) and passed to every `step_sample*` call. [`Model::with_views`]
//! resolves every tensor once into a caller's table, so the steps skip the blob's tensor
//! table (bit-identical outputs).
//!
//! ## Embedding a blob: the aligned wrapper
//! [`Model::parse`] borrows tensors in place, so the blob must start on a 16-byte
//! boundary. `include_bytes!` gives only 1-byte alignment; wrap it in [`Aligned`]:
//! ```
//! use tinyssm_core::Aligned;
//! // `Aligned<[u8; N]>` has the wrapper's 16-byte alignment; unsize it to `Aligned<[u8]>`.
//! static BLOB: &Aligned<[u8]> = &Aligned(*b"not a real model, just bytes....");
//! assert_eq!(BLOB.0.as_ptr() as usize % 16, 0);
//! ```
//! [`include_model!`] does exactly this for a file. On the host, `tinyssm-host` loads
//! files into an aligned owned buffer.
//!
//! ## Buffers
//! State and scratch are caller-provided `f32` slices of at least
//! [`Model::state_len`] and [`Model::scratch_len`] elements (exact: the step touches
//! every element of both and nothing beyond). A short buffer is a [`StepError`], never
//! a panic. One model serves any number of streams, each with its own state.
//!
//! ## Audio models
//! A model can carry a streaming audio front end ([`frontend`]: framing, window, real FFT,
//! mel filterbank, log; its parameters in the blob, format 1.1). [`Model::step_sample`]
//! (with the front end from [`Model::front_end`]) takes one sample and steps the model whenever a frame completes; the front end's
//! buffers are part of `state_len` / `scratch_len`.
//!
//! ## Numerics
//! f32 compute ([`Compute::Float`]) or int8 × int8 matrix products ([`Compute::W8a8`]);
//! weights f32, f16, bf16, int8 or int4 (matrices only — norms, biases, conv, A, D and dt
//! stay f32). Math functions are `libm`'s, called explicitly. [`Kernels::Reference`] keeps
//! the plain scalar kernels; [`Kernels::Fast`] (default) is tested against it.
//!
//! ## Integer-only models
//! [`Compute::Int`] models (S4D and Mamba sensor, format 1.3) step with no floating-point
//! operation at all, for cores without an FPU: [`Model::step_int`] /
//! [`Model::step_sample_int`] with `i16` inputs (16-bit PCM for audio models) and `i32`
//! state, scratch and outputs; [`Model::int_io`] gives the input and output Q formats.
//! Formats and arithmetic: [`int_step`], [`frontend_int`], [`fixed`].

#![no_std]
#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![deny(missing_debug_implementations)]
// A build without every block kind (firmware enables the kinds it runs) leaves the others'
// step code and the helpers only they use unreferenced: expected, not a defect.
#![cfg_attr(not(feature = "all-blocks"), allow(dead_code))]

#[cfg(test)]
extern crate std;

pub mod blocks;
mod config;
mod dtype;
mod error;
mod fbits;
pub mod fixed;
pub mod format;
pub mod frontend;
pub mod frontend_int;
pub mod int_step;
pub mod kernels;
mod layers;
pub mod list;
mod model;
pub mod net;
pub mod probe;
mod role;
pub mod snapshot;
pub mod stack;
mod stages;
mod tensors;
mod version;
// The one module with `unsafe` code: SIMD integer dot products (see its docs).
#[allow(unsafe_code)]
mod simd;

pub use blocks::{
    Arch, Block, HeadKind, LayerTable, Mamba1Config, Mamba2Config, MambaSensorConfig, Rwkv5Config,
    Rwkv6Config, Rwkv7Config, RwkvConfig, S4dConfig, StackConfig,
};
pub use config::{
    Compute, Config, DType, LayerIndex, Role, Sizes, TensorSpec, I4_GROUP, MAX_D_CONV, MAX_LAYERS,
};
pub use error::{FormatError, SnapshotError, StepError};
pub use kernels::{ActQuant, IntWeights, Kernels, QuantI4, QuantI8, QuantI8R, Weights};
pub use model::{Model, TensorView, WeightStats};
pub use stack::Input;
pub use tensors::Tensors;

/// 16-byte aligned wrapper for embedding a model blob (see the crate docs).
#[derive(Debug)]
#[repr(C, align(16))]
pub struct Aligned<B: ?Sized>(pub B);

/// `include_model!("path/to/model.tssm")` → `&'static Aligned<[u8]>` with the file's bytes,
/// 16-byte aligned so that [`Model::parse`] can borrow it in place.
#[macro_export]
macro_rules! include_model {
    ($path:expr) => {{
        static ALIGNED: &$crate::Aligned<[u8]> = &$crate::Aligned(*include_bytes!($path));
        ALIGNED
    }};
}
