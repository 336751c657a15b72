//! # tinyssm-cuda
//!
//! Batch training and verification of tinyssm models. Everything is written against one
//! op-level API, [`backend::Backend`] (batched linear, LayerNorm, activations, the S4D
//! diagonal complex scan, losses and the optimizer update, forward and backward); the
//! multithreaded CPU backend [`cpu::Cpu`] is the reference and runs wherever no GPU is.
//! A CUDA backend implementing the same trait is the next step; until then asking for it
//! is a clear error ([`cuda_backend_status`]).

pub mod backend;
pub mod cpu;
pub mod data;
pub mod ecg;
pub mod mamba;
pub mod plot;
pub mod s4d;
pub mod train;
pub mod verify;

pub use backend::{Backend, BackendError};
pub use cpu::Cpu;

/// What `--backend cuda` gets in this build.
pub fn cuda_backend_status() -> Result<(), BackendError> {
    Err(BackendError::Unavailable(
        "the CUDA backend is not built yet (it is the next step of tinyssm-cuda); use --backend cpu".into(),
    ))
}
