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
    /// `len` zero bytes, or an error when the memory cannot be had (rather than aborting the
    /// process, as a plain allocation failure does).
    pub fn try_zeroed(len: usize) -> Result<Self, std::collections::TryReserveError> {
        let n = len.div_ceil(16);
        let mut blocks = Vec::new();
        blocks.try_reserve_exact(n)?;
        blocks.resize(n, Block([0; 16]));
        Ok(AlignedBuf { blocks, len })
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
    /// Reads and validates a `.tssm` file. The preamble is checked first (magic, version,
    /// declared length against the file's), so a file that is not a model, or not this
    /// one's length, is refused before the rest is read; the rest is read once, straight
    /// into the aligned buffer (peak memory: the file's size), and a model too large for
    /// the memory available is an error, not an abort.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, HostError> {
        use std::io::Read;
        let path = path.as_ref().to_path_buf();
        let io = |e| HostError::io(&path, e);
        let format = |source| HostError::Format {
            path: path.clone(),
            source,
        };
        let mut f = std::fs::File::open(&path).map_err(io)?;
        let mut pre = [0u8; tinyssm_core::format::PREAMBLE_LEN];
        let mut n = 0;
        while n < pre.len() {
            match f.read(&mut pre[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io(e)),
            }
        }
        let total = tinyssm_core::format::blob_len(&pre[..n]).map_err(format)?;
        let file_len = f.metadata().map_err(io)?.len();
        if file_len < total {
            return Err(format(tinyssm_core::FormatError::Truncated {
                needed: total,
                got: file_len,
            }));
        }
        if file_len > total {
            return Err(format(tinyssm_core::FormatError::TrailingBytes));
        }
        let len = usize::try_from(total).map_err(|_| {
            HostError::input(
                &path,
                format!("{total} bytes do not fit this machine's memory"),
            )
        })?;
        let mut buf = AlignedBuf::try_zeroed(len).map_err(|_| {
            HostError::input(
                &path,
                format!("cannot allocate {total} bytes to load the model"),
            )
        })?;
        let bytes = buf.as_bytes_mut();
        bytes[..n].copy_from_slice(&pre[..n]);
        f.read_exact(&mut bytes[n..]).map_err(io)?;
        // The file grew while being read: refuse rather than parse a different model.
        let mut probe = [0u8; 1];
        if f.read(&mut probe).map_err(io)? != 0 {
            return Err(format(tinyssm_core::FormatError::TrailingBytes));
        }
        Model::parse(buf.as_bytes()).map_err(format)?;
        Ok(ModelFile { path, buf })
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
    /// The validated blob's buffer.
    pub fn into_buf(self) -> AlignedBuf {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tinyssm_core::FormatError;

    fn shipped() -> Vec<u8> {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/ecg-rpeak.tssm");
        std::fs::read(p).unwrap()
    }

    fn format_error(e: HostError) -> FormatError {
        match e {
            HostError::Format { source, .. } => source,
            e => panic!("not a format error: {e}"),
        }
    }

    /// Huge files are refused from their first 32 bytes: a 2 GiB (sparse) file that is not a
    /// model, and a model's preamble in an 8 GiB file (longer than it declares), are
    /// rejected without reading or allocating the rest.
    #[test]
    fn huge_files_are_refused_before_they_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.tssm");
        let f = std::fs::File::create(&junk).unwrap();
        f.set_len(2 << 30).unwrap();
        drop(f);
        let e = format_error(ModelFile::open(&junk).unwrap_err());
        assert_eq!(e, FormatError::BadMagic);

        let blob = shipped();
        let long = dir.path().join("long.tssm");
        std::fs::write(&long, &blob[..64]).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&long)
            .unwrap()
            .set_len(8 << 30)
            .unwrap();
        let e = format_error(ModelFile::open(&long).unwrap_err());
        assert_eq!(e, FormatError::TrailingBytes);

        // A preamble that declares 2^60 bytes in a short file.
        let mut pre = blob[..32].to_vec();
        pre[16..24].copy_from_slice(&(1u64 << 60).to_le_bytes());
        let claims = dir.path().join("claims.tssm");
        std::fs::write(&claims, &pre).unwrap();
        let e = format_error(ModelFile::open(&claims).unwrap_err());
        assert!(
            matches!(e, FormatError::Truncated { needed, got: 32 } if needed > 1 << 60),
            "{e:?}"
        );
    }

    /// A whole model loads as before, and every truncation of it is refused with the
    /// format's own error.
    #[test]
    fn a_model_loads_and_its_truncations_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let blob = shipped();
        let p = dir.path().join("m.tssm");
        std::fs::write(&p, &blob).unwrap();
        let m = ModelFile::open(&p).unwrap();
        assert_eq!(m.bytes(), &blob[..]);
        for len in [0, 3, 4, 7, 8, 31, 32, 33, 100, blob.len() - 1] {
            std::fs::write(&p, &blob[..len]).unwrap();
            let e = format_error(ModelFile::open(&p).unwrap_err());
            assert!(matches!(e, FormatError::Truncated { .. }), "{len}: {e:?}");
        }
    }
}
