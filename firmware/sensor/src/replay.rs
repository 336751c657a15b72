//! Recorded samples, streamed back from a buffer (flash) as if a sensor produced them.

use core::convert::Infallible;

use crate::{head, Error, SampleSource};

/// Replays `N`-channel vectors stored as little-endian f32 bytes, sample after sample
/// (`N` values each, row-major), then reports [`Error::Exhausted`].
///
/// Bytes rather than `&[f32]` so that a recording embedded with `include_bytes!` needs no
/// alignment and no cast; each value is decoded with `f32::from_le_bytes`, bit for bit.
#[derive(Debug, Clone)]
pub struct Replay<'a, const N: usize> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a, const N: usize> Replay<'a, N> {
    /// A replay of `bytes`, or `None` when its length is not a whole number of samples
    /// (`4 * N` bytes each) or `N` is 0.
    pub fn new(bytes: &'a [u8]) -> Option<Self> {
        if N == 0 || !bytes.len().is_multiple_of(4 * N) {
            return None;
        }
        Some(Replay { bytes, pos: 0 })
    }

    /// Samples in the recording.
    pub fn len(&self) -> usize {
        self.bytes.len() / (4 * N)
    }

    /// Whether the recording holds no sample.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Samples not yet read.
    pub fn remaining(&self) -> usize {
        self.len() - self.pos
    }

    /// Starts again from the first sample.
    pub fn rewind(&mut self) {
        self.pos = 0;
    }
}

impl<const N: usize> SampleSource for Replay<'_, N> {
    type BusError = Infallible;
    const CHANNELS: usize = N;

    fn read(&mut self, out: &mut [f32]) -> Result<(), Error<Infallible>> {
        let out = head(out, N)?;
        let start = self.pos * 4 * N;
        let sample = self
            .bytes
            .get(start..start + 4 * N)
            .ok_or(Error::Exhausted)?;
        for (y, b) in out.iter_mut().zip(sample.chunks_exact(4)) {
            *y = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
        self.pos += 1;
        Ok(())
    }
}
