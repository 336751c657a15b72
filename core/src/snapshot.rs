//! Stream snapshots: a stream's whole state (the model's recurrent state and, for audio
//! models, the front end's) as bytes a device can persist across a power cut or a host can
//! move between processes, and read back only into the same model.
//!
//! ```text
//! offset  size  field
//! 0       4     magic "TSSS"
//! 4       2     snapshot format version (u16, little-endian): 1
//! 6       1     element type: 0 = f32 (float and w8a8 models), 1 = i32 (integer-only)
//! 7       1     reserved, 0
//! 8       4     the model's CRC-32 (`Model::crc32`: the blob's, covering its header and
//!               every weight, so a snapshot of another model — or of a retrained one with
//!               the same layout — is refused)
//! 12      4     n: state elements (`Model::state_len`)
//! 16      4·n   the state, little-endian
//! 16+4n   4     CRC-32 (ISO-HDLC) of every byte before it
//! ```
//! A torn write (any truncation), a flipped bit, a snapshot of another model or of another
//! element type, or a float state holding a NaN or infinity is refused with its own
//! [`SnapshotError`], and the caller's state is left untouched.

use crate::error::SnapshotError;
use crate::format::CRC;
use crate::model::Model;

/// First four bytes of every snapshot.
pub const SNAPSHOT_MAGIC: [u8; 4] = *b"TSSS";
pub use crate::version::SNAPSHOT_VERSION;
/// Bytes before the state.
pub const SNAPSHOT_HEADER_LEN: usize = 16;

const ELEM_F32: u8 = 0;
const ELEM_I32: u8 = 1;

/// Bytes of a snapshot of a stream with `state_len` elements.
pub const fn snapshot_len(state_len: usize) -> usize {
    SNAPSHOT_HEADER_LEN + 4 * state_len + 4
}

fn write(model: &Model<'_>, elem: u8, words: impl Iterator<Item = u32>, out: &mut [u8]) -> usize {
    let n = model.state_len();
    out[..4].copy_from_slice(&SNAPSHOT_MAGIC);
    out[4..6].copy_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
    out[6] = elem;
    out[7] = 0;
    out[8..12].copy_from_slice(&model.crc32().to_le_bytes());
    out[12..16].copy_from_slice(&(n as u32).to_le_bytes());
    for (i, w) in words.take(n).enumerate() {
        let o = SNAPSHOT_HEADER_LEN + 4 * i;
        out[o..o + 4].copy_from_slice(&w.to_le_bytes());
    }
    let end = SNAPSHOT_HEADER_LEN + 4 * n;
    let crc = CRC.checksum(&out[..end]);
    out[end..end + 4].copy_from_slice(&crc.to_le_bytes());
    end + 4
}

/// Checks `snap` against `model` and `elem`; returns the state's bytes. The snapshot's own
/// length and CRC first (a torn or corrupted snapshot says so), then whose it is.
fn check<'s>(model: &Model<'_>, elem: u8, snap: &'s [u8]) -> Result<&'s [u8], SnapshotError> {
    let got = snap.len();
    if got >= 4 && snap[..4] != SNAPSHOT_MAGIC {
        return Err(SnapshotError::BadMagic);
    }
    if got < SNAPSHOT_HEADER_LEN {
        return Err(SnapshotError::Truncated {
            needed: snapshot_len(model.state_len()),
            got,
        });
    }
    let version = u16::from_le_bytes([snap[4], snap[5]]);
    if version != SNAPSHOT_VERSION {
        return Err(SnapshotError::UnsupportedVersion { found: version });
    }
    let len = u32::from_le_bytes([snap[12], snap[13], snap[14], snap[15]]) as usize;
    let total = len
        .checked_mul(4)
        .and_then(|b| b.checked_add(SNAPSHOT_HEADER_LEN + 4))
        .ok_or(SnapshotError::Truncated {
            needed: usize::MAX,
            got,
        })?;
    if got < total {
        return Err(SnapshotError::Truncated { needed: total, got });
    }
    if got > total {
        return Err(SnapshotError::TrailingBytes);
    }
    let end = total - 4;
    let stored = u32::from_le_bytes([snap[end], snap[end + 1], snap[end + 2], snap[end + 3]]);
    let computed = CRC.checksum(&snap[..end]);
    if stored != computed {
        return Err(SnapshotError::CrcMismatch { stored, computed });
    }
    if snap[6] != elem || snap[7] != 0 {
        return Err(SnapshotError::WrongElementType);
    }
    let model_crc = u32::from_le_bytes([snap[8], snap[9], snap[10], snap[11]]);
    if model_crc != model.crc32() || len != model.state_len() {
        return Err(SnapshotError::OtherModel {
            snapshot: model_crc,
            model: model.crc32(),
        });
    }
    Ok(&snap[SNAPSHOT_HEADER_LEN..end])
}

impl Model<'_> {
    /// Bytes of this model's snapshots ([`crate::snapshot`]).
    pub fn snapshot_len(&self) -> usize {
        snapshot_len(self.state_len())
    }

    /// Writes a snapshot of a float or w8a8 stream's `state` (its first
    /// [`Self::state_len`] elements) into `out`; returns the bytes written
    /// ([`Self::snapshot_len`]).
    pub fn snapshot(&self, state: &[f32], out: &mut [u8]) -> Result<usize, SnapshotError> {
        self.snapshot_words(
            ELEM_F32,
            state.len(),
            state.iter().map(|v| v.to_bits()),
            out,
        )
    }

    /// [`Self::snapshot`] of an integer-only stream.
    pub fn snapshot_int(&self, state: &[i32], out: &mut [u8]) -> Result<usize, SnapshotError> {
        self.snapshot_words(ELEM_I32, state.len(), state.iter().map(|&v| v as u32), out)
    }

    fn snapshot_words(
        &self,
        elem: u8,
        got: usize,
        words: impl Iterator<Item = u32>,
        out: &mut [u8],
    ) -> Result<usize, SnapshotError> {
        if self.config().net().is_some() {
            return Err(SnapshotError::NetModel);
        }
        let n = self.state_len();
        if got < n {
            return Err(SnapshotError::StateTooShort { needed: n, got });
        }
        let need = snapshot_len(n);
        if out.len() < need {
            return Err(SnapshotError::BufferTooShort {
                needed: need,
                got: out.len(),
            });
        }
        Ok(write(self, elem, words, out))
    }

    /// Reads a snapshot of this model back into a float or w8a8 stream's `state`. Every
    /// check runs before `state` is written: on any error it is untouched.
    pub fn restore(&self, snap: &[u8], state: &mut [f32]) -> Result<(), SnapshotError> {
        if self.config().net().is_some() {
            return Err(SnapshotError::NetModel);
        }
        let n = self.state_len();
        let got = state.len();
        let state = state
            .get_mut(..n)
            .ok_or(SnapshotError::StateTooShort { needed: n, got })?;
        let bytes = check(self, ELEM_F32, snap)?;
        let word = |c: &[u8]| u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        if bytes
            .chunks_exact(4)
            .any(|c| word(c) & 0x7f80_0000 == 0x7f80_0000)
        {
            return Err(SnapshotError::NonFinite);
        }
        for (s, c) in state.iter_mut().zip(bytes.chunks_exact(4)) {
            *s = f32::from_bits(word(c));
        }
        Ok(())
    }

    /// [`Self::restore`] for an integer-only stream.
    pub fn restore_int(&self, snap: &[u8], state: &mut [i32]) -> Result<(), SnapshotError> {
        let n = self.state_len();
        let got = state.len();
        let state = state
            .get_mut(..n)
            .ok_or(SnapshotError::StateTooShort { needed: n, got })?;
        let bytes = check(self, ELEM_I32, snap)?;
        for (s, c) in state.iter_mut().zip(bytes.chunks_exact(4)) {
            *s = i32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        }
        Ok(())
    }
}
