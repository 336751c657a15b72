//! Streaming audio front end: framing with a hop, window, real FFT, power spectrum, mel
//! filterbank and log — one sample in, one feature vector out every `hop` samples, in
//! caller-provided fixed buffers. The trainer, the CLI and the firmware all compute features
//! through this code, so training features and device features are the same computation.
//!
//! Frame `i` covers samples `[i·hop, i·hop + frame_len)`: the first frame is emitted when
//! `frame_len` samples have arrived, then one every `hop` samples. Each frame is windowed,
//! zero-padded to `n_fft`, transformed (microfft's real FFT), turned into the power spectrum
//! `|X_k|²` for `k = 0..=n_fft/2`, weighted by the mel filterbank (`n_mels × (n_fft/2 + 1)`,
//! from [`mel_filterbank`] or stored with a model), and logged: `ln(mel + log_eps)`.
//!
//! Samples are f32 in the units the model was trained with (16-bit PCM divided by 32768 by
//! the host adapters).

use serde::{Deserialize, Serialize};

use crate::error::{FormatError, StepError};

/// Largest supported FFT size (microfft is built with tables up to this size).
pub const MAX_N_FFT: u32 = 1024;

/// Analysis window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Window {
    /// Periodic Hann, `0.5 − 0.5·cos(2πn/N)`.
    Hann,
    /// Periodic Hamming, `0.54 − 0.46·cos(2πn/N)`.
    Hamming,
    /// No window.
    Rectangular,
}

/// Mel scale of the filterbank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MelScale {
    /// `2595·log10(1 + f/700)`.
    Htk,
    /// Linear below 1 kHz, logarithmic above (Slaney's Auditory Toolbox).
    Slaney,
}

/// Front-end parameters (stored with a model that takes audio).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FrontEndConfig {
    pub sample_rate: u32,
    /// Window length in samples.
    pub frame_len: u32,
    /// Samples between frames.
    pub hop: u32,
    /// FFT size: a power of two in `16..=MAX_N_FFT`, at least `frame_len`.
    pub n_fft: u32,
    pub n_mels: u32,
    pub f_min: f32,
    pub f_max: f32,
    pub window: Window,
    pub mel_scale: MelScale,
    /// Scale each filter to unit area (Slaney normalisation) instead of unit peak.
    pub area_norm: bool,
    /// `features = ln(mel_power + log_eps)`.
    pub log_eps: f32,
    /// How the filterbank tensor ([`crate::Role::MelFilters`]) is stored: `0`, dense
    /// (`[n_mels, n_bins]`, row-major); otherwise sparse (format 1.6) with this many stored
    /// weights: `2 · n_mels` band bounds first (each band's non-zero bins `[start, end)`,
    /// exact small integers as f32), then each band's weights over its bins, band after
    /// band ([`sparse_filterbank`]). The features are the same either way (see
    /// [`FrontEnd::new`]).
    #[serde(default)]
    pub filter_nnz: u32,
}

impl FrontEndConfig {
    /// Checks every parameter.
    pub fn validate(&self) -> Result<(), FormatError> {
        let bad = FormatError::BadConfig;
        if self.sample_rate == 0 || self.sample_rate > 1_000_000 {
            return Err(bad("front end: sample_rate must be in 1..=1000000"));
        }
        if !self.n_fft.is_power_of_two() || !(16..=MAX_N_FFT).contains(&self.n_fft) {
            return Err(bad("front end: n_fft must be a power of two in 16..=1024"));
        }
        if self.frame_len < 2 || self.frame_len > self.n_fft {
            return Err(bad("front end: frame_len must be in 2..=n_fft"));
        }
        if self.hop == 0 || self.hop > self.frame_len {
            return Err(bad("front end: hop must be in 1..=frame_len"));
        }
        if self.n_mels == 0 || self.n_mels > 512 {
            return Err(bad("front end: n_mels must be in 1..=512"));
        }
        // Bit-pattern comparisons (crate::fbits), so that parsing runs no float instruction;
        // NaN fails every comparison. sample_rate <= 10^6 < 2^24: its half is exact.
        use crate::fbits::{half_of_u24, is_finite, le, lt};
        let nyq = half_of_u24(self.sample_rate);
        if !(le(0.0, self.f_min) && lt(self.f_min, self.f_max) && le(self.f_max, nyq)) {
            return Err(bad("front end: need 0 <= f_min < f_max <= sample_rate / 2"));
        }
        if !(lt(0.0, self.log_eps) && is_finite(self.log_eps)) {
            return Err(bad("front end: log_eps must be finite and > 0"));
        }
        if self.filter_nnz as usize > self.filterbank_len() {
            return Err(bad(
                "front end: filter_nnz must be at most n_mels * (n_fft/2 + 1)",
            ));
        }
        Ok(())
    }

    /// Whether the filterbank is stored sparse (format 1.6; [`Self::filter_nnz`]).
    pub fn sparse_filters(&self) -> bool {
        self.filter_nnz != 0
    }

    /// Values of the stored filterbank tensor: `n_mels · n_bins` dense, `2 · n_mels +
    /// filter_nnz` sparse.
    pub fn stored_filters_len(&self) -> usize {
        if self.sparse_filters() {
            2 * self.n_mels as usize + self.filter_nnz as usize
        } else {
            self.filterbank_len()
        }
    }

    /// Power-spectrum bins, `n_fft/2 + 1`.
    pub fn n_bins(&self) -> usize {
        self.n_fft as usize / 2 + 1
    }

    /// State floats: the last `frame_len` samples (a ring), the ring position and the
    /// number of samples buffered towards the next frame.
    pub fn state_len(&self) -> usize {
        self.frame_len as usize + 2
    }

    /// Scratch floats: the FFT buffer.
    pub fn scratch_len(&self) -> usize {
        self.n_fft as usize
    }

    /// Length of the filterbank, `n_mels × n_bins`.
    /// Values of the dense filterbank, `n_mels · (n_fft/2 + 1)`.
    pub fn filterbank_len(&self) -> usize {
        self.n_mels as usize * self.n_bins()
    }

    /// Window value `n` of `frame_len`.
    pub fn window_at(&self, n: usize) -> f32 {
        let len = self.frame_len as f64;
        let c = || libm::cos(2.0 * core::f64::consts::PI * n as f64 / len);
        (match self.window {
            Window::Hann => 0.5 - 0.5 * c(),
            Window::Hamming => 0.54 - 0.46 * c(),
            Window::Rectangular => 1.0,
        }) as f32
    }
}

fn hz_to_mel(f: f64, s: MelScale) -> f64 {
    match s {
        MelScale::Htk => 2595.0 * libm::log10(1.0 + f / 700.0),
        MelScale::Slaney => {
            let (f_sp, min_log_hz) = (200.0 / 3.0, 1000.0);
            let logstep = libm::log(6.4) / 27.0;
            if f >= min_log_hz {
                min_log_hz / f_sp + libm::log(f / min_log_hz) / logstep
            } else {
                f / f_sp
            }
        }
    }
}

fn mel_to_hz(m: f64, s: MelScale) -> f64 {
    match s {
        MelScale::Htk => 700.0 * (libm::pow(10.0, m / 2595.0) - 1.0),
        MelScale::Slaney => {
            let (f_sp, min_log_hz) = (200.0 / 3.0, 1000.0);
            let min_log_mel = min_log_hz / f_sp;
            let logstep = libm::log(6.4) / 27.0;
            if m >= min_log_mel {
                min_log_hz * libm::exp(logstep * (m - min_log_mel))
            } else {
                f_sp * m
            }
        }
    }
}

/// Triangular mel filters, row-major `[n_mels, n_bins]`: filter `m` rises from mel point `m`
/// to `m + 1` and falls to `m + 2`, the `n_mels + 2` points evenly spaced in mel between
/// `f_min` and `f_max` (computed in f64).
pub fn mel_filterbank(cfg: &FrontEndConfig, out: &mut [f32]) -> Result<(), FormatError> {
    cfg.validate()?;
    let (nm, nb) = (cfg.n_mels as usize, cfg.n_bins());
    let out = out.get_mut(..nm * nb).ok_or(FormatError::BadConfig(
        "front end: filterbank buffer too short",
    ))?;
    let (lo, hi) = (
        hz_to_mel(cfg.f_min as f64, cfg.mel_scale),
        hz_to_mel(cfg.f_max as f64, cfg.mel_scale),
    );
    let pt = |i: usize| mel_to_hz(lo + (hi - lo) * i as f64 / (nm + 1) as f64, cfg.mel_scale);
    let bin_hz = cfg.sample_rate as f64 / cfg.n_fft as f64;
    for (m, row) in out.chunks_exact_mut(nb).enumerate() {
        let (f0, f1, f2) = (pt(m), pt(m + 1), pt(m + 2));
        let scale = if cfg.area_norm { 2.0 / (f2 - f0) } else { 1.0 };
        for (k, w) in row.iter_mut().enumerate() {
            let f = k as f64 * bin_hz;
            let up = (f - f0) / (f1 - f0);
            let down = (f2 - f) / (f2 - f1);
            let v = if up < down { up } else { down };
            *w = if v > 0.0 { (v * scale) as f32 } else { 0.0 };
        }
    }
    Ok(())
}

/// Each band's non-zero bins `[start, end)` of a dense filterbank (`[n_mels, n_bins]`):
/// from its first to its last weight that is not ±0 (empty bands: `[0, 0)`).
fn band_range(row: &[f32]) -> (usize, usize) {
    let nz = |w: &f32| w.to_bits() & 0x7fff_ffff != 0;
    let start = row.iter().position(nz).unwrap_or(0);
    let end = row.iter().rposition(nz).map_or(0, |i| i + 1);
    (start, end)
}

/// The number of weights the sparse form of `dense` (`[n_mels, n_bins]` for `cfg`) stores:
/// the sum of its bands' ranges ([`FrontEndConfig::filter_nnz`]).
pub fn sparse_len(cfg: &FrontEndConfig, dense: &[f32]) -> Result<usize, FormatError> {
    let nb = cfg.n_bins();
    if dense.len() != cfg.filterbank_len() {
        return Err(FormatError::BadConfig(
            "front end: filterbank length must be n_mels * (n_fft/2 + 1)",
        ));
    }
    Ok(dense
        .chunks_exact(nb)
        .map(|r| {
            let (a, b) = band_range(r);
            b - a
        })
        .sum())
}

/// Packs a dense filterbank (`[n_mels, n_bins]` for `cfg`) into the sparse form
/// ([`FrontEndConfig::filter_nnz`]): `2 · n_mels` band bounds, then each band's weights
/// from its first to its last non-zero bin. `out` must hold exactly `2 · n_mels +`
/// [`sparse_len`] values.
pub fn sparse_filterbank(
    cfg: &FrontEndConfig,
    dense: &[f32],
    out: &mut [f32],
) -> Result<(), FormatError> {
    let nnz = sparse_len(cfg, dense)?;
    let (nm, nb) = (cfg.n_mels as usize, cfg.n_bins());
    if out.len() != 2 * nm + nnz {
        return Err(FormatError::BadConfig(
            "front end: sparse filterbank buffer must hold 2 * n_mels + nnz values",
        ));
    }
    let (bounds, weights) = out.split_at_mut(2 * nm);
    let mut at = 0;
    for (pair, row) in bounds.chunks_exact_mut(2).zip(dense.chunks_exact(nb)) {
        let (a, b) = band_range(row);
        pair[0] = a as f32;
        pair[1] = b as f32;
        weights[at..at + b - a].copy_from_slice(&row[a..b]);
        at += b - a;
    }
    Ok(())
}

/// In-place real FFT of `buf` (length `n`, a supported power of two); returns `false` for
/// an unsupported size.
fn rfft(buf: &mut [f32]) -> bool {
    macro_rules! go {
        ($($n:literal => $f:ident),*) => {
            match buf.len() {
                $($n => match <&mut [f32; $n]>::try_from(buf) {
                    Ok(a) => { let _ = microfft::real::$f(a); true }
                    Err(_) => false,
                },)*
                _ => false,
            }
        };
    }
    go!(16 => rfft_16, 32 => rfft_32, 64 => rfft_64, 128 => rfft_128, 256 => rfft_256,
        512 => rfft_512, 1024 => rfft_1024)
}

/// The streaming extractor over a configuration and its filterbank.
#[derive(Debug, Clone, Copy)]
pub struct FrontEnd<'a> {
    cfg: FrontEndConfig,
    /// Dense: `[n_mels, n_bins]`; sparse: the bands' weights back to back.
    filters: &'a [f32],
    window: Option<&'a [f32]>,
    /// Per mel band, the bins `[start, end)` outside which its filter weights are zero
    /// (pairs of exact small integers as f32): a sparse filterbank's own bounds, or for a
    /// dense one from [`FrontEnd::window_table`].
    bands: Option<&'a [f32]>,
}

/// The analysis window of one front-end configuration, computed once into a caller's
/// buffer ([`FrontEnd::window_table`]) so that frames do not re-evaluate it (each window
/// value is an f64 cosine: costly on cores without a double-precision FPU). Holds exactly
/// [`FrontEndConfig::window_at`]'s values: features are bit-identical with and without it.
///
/// Given room for `2 · n_mels` more values, it also records where each mel filter is
/// non-zero, so that a frame sums each band over its own bins only (about 2 bins per band
/// instead of all `n_fft/2 + 1`); the sums are bit-identical too (see `FrontEnd::frame`).
#[derive(Debug, Clone, Copy)]
pub struct WindowTable<'b> {
    cfg: FrontEndConfig,
    values: &'b [f32],
    bands: Option<&'b [f32]>,
    /// The filterbank the bands were read from (address, length): a table is applied
    /// with its bands only to that filterbank.
    filters_id: (usize, usize),
}

impl<'b> WindowTable<'b> {
    /// Each mel band's non-zero bin range `[start, end)`, as pairs of f32 integers, when
    /// the table had room for them.
    pub fn band_ranges(&self) -> Option<&'b [f32]> {
        self.bands
    }
}

impl<'a> FrontEnd<'a> {
    /// `filters`: the stored filterbank, `[n_mels, n_bins]` row-major (see
    /// [`mel_filterbank`]) or, when `cfg` says so, its sparse form ([`sparse_filterbank`]),
    /// whose band bounds are checked here: exact integers with `start ≤ end ≤ n_bins`,
    /// their ranges adding up to `filter_nnz`. Features are bit-identical for the dense and
    /// the sparse form of one filterbank (each band sums only its own bins either way; see
    /// `FrontEnd::frame`).
    pub fn new(cfg: FrontEndConfig, filters: &'a [f32]) -> Result<Self, FormatError> {
        cfg.validate()?;
        if filters.len() != cfg.stored_filters_len() {
            return Err(FormatError::BadConfig(if cfg.sparse_filters() {
                "front end: a sparse filterbank holds 2 * n_mels + filter_nnz values"
            } else {
                "front end: filterbank length must be n_mels * (n_fft/2 + 1)"
            }));
        }
        if !cfg.sparse_filters() {
            return Ok(FrontEnd {
                cfg,
                filters,
                window: None,
                bands: None,
            });
        }
        let (bounds, weights) = filters.split_at(2 * cfg.n_mels as usize);
        let nb = cfg.n_bins() as f32;
        let mut total = 0usize;
        for pair in bounds.chunks_exact(2) {
            let (a, b) = (pair[0], pair[1]);
            // Comparisons are false for NaN: a NaN bound is refused too.
            let whole = |v: f32| v >= 0.0 && v <= nb && (v as u32) as f32 == v;
            if !(whole(a) && whole(b) && a <= b) {
                return Err(FormatError::BadConfig(
                    "front end: a sparse band's bounds must be integers with start <= end <= n_bins",
                ));
            }
            total += (b - a) as usize;
        }
        if total != weights.len() {
            return Err(FormatError::BadConfig(
                "front end: the sparse bands' ranges must add up to filter_nnz",
            ));
        }
        Ok(FrontEnd {
            cfg,
            filters: weights,
            window: None,
            bands: Some(bounds),
        })
    }

    /// Computes this configuration's window into `buf` (≥ `frame_len` values) and, when
    /// `buf` has `2 · n_mels` values more, each mel filter's non-zero bin range.
    pub fn window_table<'b>(&self, buf: &'b mut [f32]) -> Result<WindowTable<'b>, StepError> {
        let n = self.cfg.frame_len as usize;
        let nm = self.cfg.n_mels as usize;
        let nb = self.cfg.n_bins();
        let got = buf.len();
        if got < n {
            return Err(StepError::ScratchTooShort { needed: n, got });
        }
        let (b, rest) = buf.split_at_mut(n);
        for (i, v) in b.iter_mut().enumerate() {
            *v = self.cfg.window_at(i);
        }
        let bands = match rest.get_mut(..2 * nm) {
            Some(bands) if nb > 0 && !self.cfg.sparse_filters() => {
                for (pair, row) in bands.chunks_exact_mut(2).zip(self.filters.chunks_exact(nb)) {
                    // ±0 weights are zero; anything else (NaN included) is summed.
                    let nz = |w: &f32| w.to_bits() & 0x7fff_ffff != 0;
                    let start = row.iter().position(nz).unwrap_or(0);
                    let end = row.iter().rposition(nz).map_or(0, |i| i + 1);
                    pair[0] = start as f32;
                    pair[1] = end as f32;
                }
                Some(&*bands)
            }
            _ => None,
        };
        Ok(WindowTable {
            cfg: self.cfg,
            values: b,
            bands,
            filters_id: (self.filters.as_ptr() as usize, self.filters.len()),
        })
    }

    /// This front end using a window computed by [`Self::window_table`] (for the same
    /// configuration; another configuration's table is refused). The table's band
    /// ranges are used only with the filterbank they were read from.
    pub fn with_window<'c>(self, w: &WindowTable<'c>) -> Result<FrontEnd<'c>, StepError>
    where
        'a: 'c,
    {
        if w.cfg != self.cfg {
            return Err(StepError::WrongInputKind);
        }
        let same = w.filters_id == (self.filters.as_ptr() as usize, self.filters.len());
        Ok(FrontEnd {
            cfg: self.cfg,
            filters: self.filters,
            window: Some(w.values),
            bands: if self.cfg.sparse_filters() {
                self.bands
            } else if same {
                w.bands
            } else {
                None
            },
        })
    }

    pub fn config(&self) -> &FrontEndConfig {
        &self.cfg
    }

    /// Empties the stream (all zeros is the initial state).
    pub fn reset(&self, state: &mut [f32]) {
        let n = self.cfg.state_len().min(state.len());
        state[..n].fill(0.0);
    }

    /// Feeds one sample. Returns `Ok(true)` when a frame completed and `out[..n_mels]`
    /// holds its features; `out` is untouched otherwise.
    pub fn push(
        &self,
        x: f32,
        state: &mut [f32],
        scratch: &mut [f32],
        out: &mut [f32],
    ) -> Result<bool, StepError> {
        let (fl, hop) = (self.cfg.frame_len as usize, self.cfg.hop as usize);
        let got = state.len();
        let state = state.get_mut(..fl + 2).ok_or(StepError::StateTooShort {
            needed: fl + 2,
            got,
        })?;
        let (ring, ctr) = state.split_at_mut(fl);
        // Counters are small integers stored as f32; a corrupt state is clamped, never
        // trusted as an index.
        let pos = (ctr[0] as usize) % fl;
        let mut have = (ctr[1] as usize).min(fl - 1);
        ring[pos] = x;
        let pos = (pos + 1) % fl;
        have += 1;
        let ready = have == fl;
        if ready {
            self.frame(ring, pos, scratch, out)?;
            have = fl - hop;
        }
        ctr[0] = pos as f32;
        ctr[1] = have as f32;
        Ok(ready)
    }

    /// Computes the features of the frame in `ring` (oldest sample at `pos`).
    fn frame(
        &self,
        ring: &[f32],
        pos: usize,
        scratch: &mut [f32],
        out: &mut [f32],
    ) -> Result<(), StepError> {
        let (nf, nb, nm) = (
            self.cfg.n_fft as usize,
            self.cfg.n_bins(),
            self.cfg.n_mels as usize,
        );
        let got = scratch.len();
        let buf = scratch
            .get_mut(..nf)
            .ok_or(StepError::ScratchTooShort { needed: nf, got })?;
        let got = out.len();
        let out = out
            .get_mut(..nm)
            .ok_or(StepError::OutputTooShort { needed: nm, got })?;
        let (older, newer) = ring.split_at(pos);
        match self.window {
            Some(w) => {
                for ((b, &s), &wv) in buf.iter_mut().zip(newer.iter().chain(older)).zip(w) {
                    *b = s * wv;
                }
            }
            None => {
                for (i, (b, &s)) in buf.iter_mut().zip(newer.iter().chain(older)).enumerate() {
                    *b = s * self.cfg.window_at(i);
                }
            }
        }
        buf[ring.len()..].fill(0.0);
        if !rfft(buf) {
            return Err(StepError::Internal);
        }
        // Power spectrum in place: bin 0 is (re, nyquist) packed; bin k at 2k, 2k+1.
        let nyq = buf[1] * buf[1];
        buf[0] *= buf[0];
        for k in 1..nb - 1 {
            let (re, im) = (buf[2 * k], buf[2 * k + 1]);
            buf[k] = re * re + im * im;
        }
        buf[nb - 1] = nyq;
        let power = &buf[..nb];
        // With band ranges, each band sums only the bins where its filter is non-zero.
        // Bit-identical to the full sum when every power is finite: the full sum starts
        // at +0 and adds ±0 products (zero weight times a finite power ≥ 0) outside the
        // range, and +0 + ±0 = +0, a + ±0 = a. A non-finite power (0 · ∞ is NaN in the
        // full sum) takes the full sums.
        let finite = power
            .iter()
            .fold(0u32, |m, p| m.max(p.to_bits() & 0x7fff_ffff))
            < 0x7f80_0000;
        if self.cfg.sparse_filters() {
            // A sparse filterbank has only the bands' own bins. With every power finite
            // the sums are the dense ones (above). A non-finite power (samples near f32's
            // limit) makes every dense sum non-finite (∞ where the band weighs that bin,
            // NaN where 0 · ∞); here every feature is NaN, which a model step treats alike.
            let bands = self.bands.ok_or(StepError::Internal)?;
            let mut at = 0usize;
            for (o, be) in out.iter_mut().zip(bands.chunks_exact(2)) {
                let end = (be[1] as usize).min(nb);
                let start = (be[0] as usize).min(end);
                let w = self
                    .filters
                    .get(at..at + (end - start))
                    .ok_or(StepError::Internal)?;
                at += end - start;
                let mut acc = 0.0f32;
                for (&w, &p) in w.iter().zip(&power[start..end]) {
                    acc += w * p;
                }
                *o = if finite {
                    libm::logf(acc + self.cfg.log_eps)
                } else {
                    f32::NAN
                };
            }
            return Ok(());
        }
        match self.bands {
            Some(bands) if finite => {
                for ((o, row), be) in out
                    .iter_mut()
                    .zip(self.filters.chunks_exact(nb))
                    .zip(bands.chunks_exact(2))
                {
                    let end = (be[1] as usize).min(nb);
                    let start = (be[0] as usize).min(end);
                    let mut acc = 0.0f32;
                    for (&w, &p) in row[start..end].iter().zip(&power[start..end]) {
                        acc += w * p;
                    }
                    *o = libm::logf(acc + self.cfg.log_eps);
                }
            }
            _ => {
                for (o, row) in out.iter_mut().zip(self.filters.chunks_exact(nb)) {
                    let mut acc = 0.0f32;
                    for (&w, &p) in row.iter().zip(power) {
                        acc += w * p;
                    }
                    *o = libm::logf(acc + self.cfg.log_eps);
                }
            }
        }
        Ok(())
    }
}

/// Whether two front-end configurations are the same stored configuration: every field
/// equal, the float ones as bit patterns (integer instructions only, so the M0's integer
/// images link no soft-float routine for it; a configuration read from one blob always
/// equals itself, NaN fields included).
#[inline]
pub(crate) fn same_front_end(a: &FrontEndConfig, b: &FrontEndConfig) -> bool {
    a.sample_rate == b.sample_rate
        && a.frame_len == b.frame_len
        && a.hop == b.hop
        && a.n_fft == b.n_fft
        && a.n_mels == b.n_mels
        && a.f_min.to_bits() == b.f_min.to_bits()
        && a.f_max.to_bits() == b.f_max.to_bits()
        && a.window == b.window
        && a.mel_scale == b.mel_scale
        && a.area_norm == b.area_norm
        && a.log_eps.to_bits() == b.log_eps.to_bits()
        && a.filter_nnz == b.filter_nnz
}

#[cfg(test)]
mod tests {
    use super::*;

    /// microfft's packed output against a direct DFT of the same frame, every size.
    #[test]
    fn power_spectrum_matches_direct_dft() {
        let mut buf = [0f32; 1024];
        let mut x = [0f32; 1024];
        for n in [16usize, 32, 64, 128, 256, 512, 1024] {
            for (i, v) in x[..n].iter_mut().enumerate() {
                let t = i as f64;
                *v = (libm::sin(0.7 * t) + 0.3 * libm::cos(2.1 * t) + 0.01 * t) as f32;
            }
            buf[..n].copy_from_slice(&x[..n]);
            assert!(rfft(&mut buf[..n]));
            for k in 0..=n / 2 {
                let pk = match k {
                    0 => buf[0] * buf[0],
                    k if k == n / 2 => buf[1] * buf[1],
                    k => buf[2 * k] * buf[2 * k] + buf[2 * k + 1] * buf[2 * k + 1],
                };
                let (mut re, mut im) = (0f64, 0f64);
                for (i, &xi) in x[..n].iter().enumerate() {
                    let a = -2.0 * core::f64::consts::PI * (k * i) as f64 / n as f64;
                    re += xi as f64 * libm::cos(a);
                    im += xi as f64 * libm::sin(a);
                }
                let want = re * re + im * im;
                assert!(
                    ((pk as f64) - want).abs() <= 1e-3 * want.max(1.0),
                    "n {n} bin {k}: {pk} vs {want}"
                );
            }
        }
    }
}
