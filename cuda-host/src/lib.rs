//! # tinyssm-cuda
//!
//! Batch training and verification of tinyssm models. Everything is written against one
//! op-level API, [`backend::Backend`] (batched linear, LayerNorm, activations, the S4D,
//! Mamba-1 and Mamba-2 scans, losses and the optimizer update, forward and backward); the
//! multithreaded CPU backend [`cpu::Cpu`] is the reference and runs wherever no GPU is.
//! The CUDA backend ([`cuda::CudaBackend`]) implements the same trait with NVRTC-compiled
//! kernels and cuBLAS, loaded at run time. The datasets the trainers read are in
//! `tinyssm-data`.

pub mod backend;
pub mod blocks;
pub mod cpu;
pub mod cuda;
pub mod support;
pub mod train;
pub mod verify;

pub use backend::{Backend, BackendError};
pub use cpu::Cpu;
