//! # tinyssm-host
//!
//! The std side of tinyssm: load model files into aligned owned buffers, write model
//! blobs (format v1), run many streams over one model, and read/write the I/O formats
//! the CLI uses (token ids and outputs as `.npy`, text as bytes, CSV numeric streams,
//! WAV audio).

#![forbid(unsafe_code)]

pub mod buf;
pub mod error;
pub mod io;
pub mod runner;
pub mod writer;

pub use buf::{AlignedBuf, ModelFile};
pub use error::HostError;
pub use runner::{Runner, StreamId};
pub use writer::{tensor_f32, write_blob, TensorData};
