//! 16-byte aligned owned buffers for model blobs.

use std::path::{Path, PathBuf};

use bytemuck::{Pod, Zeroable};
use tinyssm_core::Model;

use crate::error::HostError;

#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C, align(16))]
struct Block([u8; 16]);

/// An owned byte buffer whose start is 16-byte aligned, as [`Model::parse`] requires.
#[derive(Clone)]
pub struct AlignedBuf {
    blocks: Vec<Block>,
    len: usize,
}

impl std::fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AlignedBuf({} bytes)", self.len)
    }
}

impl AlignedBuf {
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let mut blocks = vec![Block([0; 16]); bytes.len().div_ceil(16)];
        bytemuck::cast_slice_mut::<Block, u8>(&mut blocks)[..bytes.len()].copy_from_slice(bytes);
        AlignedBuf {
            blocks,
            len: bytes.len(),
        }
    }
    pub fn as_bytes(&self) -> &[u8] {
        &bytemuck::cast_slice::<Block, u8>(&self.blocks)[..self.len]
    }
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        let len = self.len;
        &mut bytemuck::cast_slice_mut::<Block, u8>(&mut self.blocks)[..len]
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A model file loaded into an aligned buffer and validated.
#[derive(Debug, Clone)]
pub struct ModelFile {
    path: PathBuf,
    buf: AlignedBuf,
}

impl ModelFile {
    /// Reads and validates a `.tssm` file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, HostError> {
        let path = path.as_ref().to_path_buf();
        let bytes = std::fs::read(&path).map_err(|e| HostError::io(&path, e))?;
        Self::from_bytes(path, &bytes)
    }

    /// Validates bytes already in memory (`path` is used in messages only).
    pub fn from_bytes(path: impl Into<PathBuf>, bytes: &[u8]) -> Result<Self, HostError> {
        let path = path.into();
        let buf = AlignedBuf::from_bytes(bytes);
        Model::parse(buf.as_bytes()).map_err(|e| HostError::Format {
            path: path.clone(),
            source: e,
        })?;
        Ok(ModelFile { path, buf })
    }

    /// The parsed model (parsing again is cheap apart from the CRC; validated at open).
    pub fn model(&self) -> Model<'_> {
        match Model::parse_skip_crc(self.buf.as_bytes()) {
            Ok(m) => m,
            // The buffer is immutable and was validated in `from_bytes`.
            Err(e) => unreachable!("validated model failed to parse: {e}"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn bytes(&self) -> &[u8] {
        self.buf.as_bytes()
    }
}
