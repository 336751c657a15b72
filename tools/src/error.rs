//! Tool errors: one clear line each, naming the file and tensor concerned.

use std::path::PathBuf;

use tinyssm_host::HostError;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ToolError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: malformed JSON: {msg}")]
    Json { path: PathBuf, msg: String },
    #[error("{path}: {msg}")]
    Config { path: PathBuf, msg: String },
    #[error("{path}: unsupported architecture: {what}")]
    Unsupported { path: PathBuf, what: String },
    #[error("{path}: cannot read safetensors: {msg}")]
    Safetensors { path: PathBuf, msg: String },
    #[error("missing tensor `{name}` (expected shape {expected:?})")]
    MissingTensor { name: String, expected: Vec<usize> },
    #[error("tensor `{name}` has shape {found:?}, expected {expected:?}")]
    WrongShape {
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("tensor `{name}` has unsupported dtype {dtype} (need F32, F16, BF16 or F64)")]
    WrongDtype { name: String, dtype: String },
    #[error("tensor `{name}`: {msg}")]
    BadValues { name: String, msg: String },
    #[error(transparent)]
    Host(#[from] HostError),
    #[error("{0}")]
    Usage(String),
}

impl ToolError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ToolError::Io {
            path: path.into(),
            source,
        }
    }
}
