//! Host errors: each carries the file, tensor or line it is about.

use std::path::PathBuf;

use tinyssm_core::{FormatError, StepError};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Format {
        path: PathBuf,
        #[source]
        source: FormatError,
    },
    #[error("invalid model: {0}")]
    Invalid(#[from] FormatError),
    #[error("step failed: {0}")]
    Step(#[from] StepError),
    /// A step of a fed chunk failed (`at`: "step 12", "sample 3071").
    #[error("{at}: {source}")]
    StepAt {
        at: String,
        #[source]
        source: StepError,
    },
    #[error("tensor {name}: {msg}")]
    Tensor { name: String, msg: String },
    #[error("{path}: {msg}")]
    Input { path: PathBuf, msg: String },
    #[error("unknown stream {0}")]
    UnknownStream(usize),
    /// A stream snapshot that was refused.
    #[error("{path}: {source}")]
    Snapshot {
        path: PathBuf,
        #[source]
        source: tinyssm_core::SnapshotError,
    },
    /// An output path that names something other than a regular file.
    #[error("{path}: {msg}")]
    Output { path: PathBuf, msg: String },
}

impl HostError {
    pub fn input(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        HostError::Input {
            path: path.into(),
            msg: msg.into(),
        }
    }
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        HostError::Io {
            path: path.into(),
            source,
        }
    }
}
