//! Sample sources for the tinyssm firmware: where a model's input vectors come from.
//!
//! A [`SampleSource`] fills one input vector ([`SampleSource::CHANNELS`] values) per call,
//! blocking until it has one. Implementations:
//! - [`Replay`]: vectors recorded earlier, read from a buffer in flash (what the QEMU
//!   images stream; no hardware);
//! - [`Lsm9ds1`]: the accelerometer and gyroscope of an ST LSM9DS1 over an
//!   [`embedded_hal::i2c::I2c`] bus (embedded-hal 1.0), in m/s² and rad/s.
//!
//! Adapters over any source:
//! - [`Paced`]: waits one sample period (an [`embedded_hal::delay::DelayNs`]) before each
//!   read, so that a live sensor is sampled at the model's rate (10 Hz for
//!   `basicmotions-s4d`);
//! - [`RemoveGravity`]: subtracts a low-pass estimate of gravity from the first three
//!   channels (the acceleration), for models trained on linear acceleration.
//!
//! No allocation, no panics: every failure is an [`Error`].

#![no_std]
#![deny(clippy::undocumented_unsafe_blocks)]

use embedded_hal::delay::DelayNs;

mod lsm9ds1;
mod replay;

pub use lsm9ds1::{AccelRange, GyroRange, Lsm9ds1, Lsm9ds1Config, Odr};
pub use replay::Replay;

/// Standard gravity, m/s² per g.
pub const STANDARD_GRAVITY: f32 = 9.806_65;

/// What can go wrong reading a sample. `E` is the bus's own error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error<E> {
    /// The bus transaction failed.
    Bus(E),
    /// The device at the address is not the one the driver expects (`WHO_AM_I` read
    /// `got`, the driver wants `expected`).
    WrongDevice {
        /// The identification byte read back.
        got: u8,
        /// The identification byte of the part the driver supports.
        expected: u8,
    },
    /// The output slice holds fewer values than the source produces.
    OutputTooShort {
        /// Values per sample ([`SampleSource::CHANNELS`]).
        needed: usize,
        /// Length of the slice passed.
        got: usize,
    },
    /// A recording has no samples left.
    Exhausted,
}

impl<E: core::fmt::Debug> core::fmt::Display for Error<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::Bus(e) => write!(f, "bus error: {e:?}"),
            Error::WrongDevice { got, expected } => write!(
                f,
                "unexpected device: WHO_AM_I {got:#04x}, expected {expected:#04x}"
            ),
            Error::OutputTooShort { needed, got } => {
                write!(f, "output holds {got} values, a sample has {needed}")
            }
            Error::Exhausted => write!(f, "the recording has no samples left"),
        }
    }
}

impl<E: core::fmt::Debug> core::error::Error for Error<E> {}

/// A source of input vectors, one per model step.
pub trait SampleSource {
    /// The bus's error type (`core::convert::Infallible` for sources without a bus).
    type BusError;
    /// Values per sample.
    const CHANNELS: usize;

    /// Blocks until the next sample is available and writes it to
    /// `out[..Self::CHANNELS]`; the rest of `out` is untouched.
    fn read(&mut self, out: &mut [f32]) -> Result<(), Error<Self::BusError>>;
}

/// The first `n` values of `out`, or [`Error::OutputTooShort`].
pub(crate) fn head<E>(out: &mut [f32], n: usize) -> Result<&mut [f32], Error<E>> {
    let got = out.len();
    out.get_mut(..n)
        .ok_or(Error::OutputTooShort { needed: n, got })
}

/// Paces a source at a fixed rate: each [`SampleSource::read`] first waits one period
/// (`DelayNs::delay_us`), then reads.
///
/// The wait starts when `read` is called, so the time the caller spends between reads
/// (the model step) and the read itself add to the period: the rate is a little below
/// the nominal one. That is fine for a classifier over 10 s windows; when the exact
/// rate matters, pace with a hardware timer (or the sensor's data-ready signal) instead.
pub struct Paced<S, D> {
    source: S,
    delay: D,
    period_us: u32,
}

impl<S: SampleSource, D: DelayNs> Paced<S, D> {
    /// `rate_millihz`: samples per 1000 s (10 Hz is `10_000`), so that rates below 1 Hz
    /// and fractional ones need no float. A rate of 0 means no wait.
    pub fn new(source: S, delay: D, rate_millihz: u32) -> Self {
        let period_us = match rate_millihz {
            0 => 0,
            r => (1_000_000_000u64 / r as u64).min(u32::MAX as u64) as u32,
        };
        Paced {
            source,
            delay,
            period_us,
        }
    }

    /// The wait before each read, in microseconds.
    pub fn period_us(&self) -> u32 {
        self.period_us
    }

    /// The source and the delay back.
    pub fn release(self) -> (S, D) {
        (self.source, self.delay)
    }
}

impl<S: SampleSource, D: DelayNs> SampleSource for Paced<S, D> {
    type BusError = S::BusError;
    const CHANNELS: usize = S::CHANNELS;

    fn read(&mut self, out: &mut [f32]) -> Result<(), Error<Self::BusError>> {
        // Check the slice before waiting, so that a caller error shows at once.
        head::<S::BusError>(out, S::CHANNELS)?;
        if self.period_us > 0 {
            self.delay.delay_us(self.period_us);
        }
        self.source.read(out)
    }
}

/// Removes gravity from the acceleration channels (the first three) of a source: keeps a
/// one-pole low-pass estimate `g ← α·g + (1−α)·a` per axis and outputs `a − g`, as phone
/// and watch platforms derive "linear acceleration" without an orientation filter.
/// The other channels pass unchanged.
///
/// With α = 0.8 at 10 Hz the estimate settles in about a second (time constant
/// −T/ln α ≈ 0.45 s). The first sample seeds the estimate, so the output starts at zero
/// instead of at −g.
pub struct RemoveGravity<S> {
    source: S,
    alpha: f32,
    gravity: [f32; 3],
    seeded: bool,
}

impl<S: SampleSource> RemoveGravity<S> {
    /// `alpha` in [0, 1): the low-pass coefficient (values outside are clamped). The source
    /// needs at least three channels; with fewer, [`SampleSource::read`] passes samples
    /// through unchanged.
    pub fn new(source: S, alpha: f32) -> Self {
        let alpha = if alpha.is_nan() {
            0.0
        } else {
            alpha.clamp(0.0, 0.999_999)
        };
        RemoveGravity {
            source,
            alpha,
            gravity: [0.0; 3],
            seeded: false,
        }
    }

    /// The current gravity estimate, m/s² (or the source's unit) per axis.
    pub fn gravity(&self) -> [f32; 3] {
        self.gravity
    }

    /// Forgets the estimate; the next sample seeds it again.
    pub fn reset(&mut self) {
        self.seeded = false;
        self.gravity = [0.0; 3];
    }

    /// The source back.
    pub fn release(self) -> S {
        self.source
    }
}

impl<S: SampleSource> SampleSource for RemoveGravity<S> {
    type BusError = S::BusError;
    const CHANNELS: usize = S::CHANNELS;

    fn read(&mut self, out: &mut [f32]) -> Result<(), Error<Self::BusError>> {
        self.source.read(out)?;
        if S::CHANNELS < 3 {
            return Ok(());
        }
        let a = self.alpha;
        for (g, x) in self.gravity.iter_mut().zip(out.iter_mut()) {
            *g = if self.seeded {
                a * *g + (1.0 - a) * *x
            } else {
                *x
            };
            *x -= *g;
        }
        self.seeded = true;
        Ok(())
    }
}
