//! Integer-only streaming audio front end, for cores without an FPU (Cortex-M0).
//!
//! The same computation as [`crate::frontend::FrontEnd`] — framing with a hop, window,
//! zero-pad to `n_fft`, real FFT, power spectrum, mel filterbank, `ln(mel + log_eps)` — with
//! no floating-point operation in [`IntFrontEnd::new`], [`IntFrontEnd::push`] or
//! [`IntFrontEnd::push_q24`] (no float arithmetic, comparison or int↔float cast; `log_eps` is
//! read from its `f32` bit pattern with integer code). Only [`window_q31`] and
//! [`quantize_filters`] use floats, and they run at conversion time on the host.
//!
//! Input is 16-bit PCM (`i16`); the float front end sees the same signal as `pcm / 32768`,
//! and the features are the float ones, `ln(mel + log_eps)` in natural-log units, as `i16`
//! with `feat_frac` fraction bits ([`IntFrontEnd::push`]) or as Q7.24 `i32`
//! ([`IntFrontEnd::push_q24`]).
//!
//! ## Formats, stage by stage
//!
//! | stage | container | format |
//! |-------|-----------|--------|
//! | samples (ring in the state) | `i32` holding an `i16` | PCM, `x = pcm · 2^-15` |
//! | window table | `i32` | Q0.31 (`1.0` saturates to `2^31 − 1`) |
//! | windowed sample `pcm · w` | `i64`, `|·| ≤ 2^46` | exact, `x·w = pcm·w · 2^-46` |
//! | FFT buffer | `i32` | block floating point: `value = raw · 2^E`, one exponent `E` for the block |
//! | twiddles | `i32` | Q1.30, quarter-wave sine table (257 entries) |
//! | power `|X_k|²` | `u64` (two `i32` slots, in place) | `P_true = P · 2^(2E)` |
//! | filterbank | `i16 ≥ 0` | `filter_frac` fraction bits (see [`quantize_filters`]) |
//! | mel energy | `u64` + per-filter exponent | `mel = acc · 2^(sh + 2E − filter_frac)` |
//! | `log_eps` | `u64` mantissa + exponent | decoded exactly from the `f32` bits |
//! | log | `i64` | Q24: `ln_u64(mantissa) + exponent · ln 2` |
//! | features | `i16` / `i32` | `feat_frac` fraction bits / Q7.24, rounded, saturated |
//!
//! A window of Q0.31 rather than Q15 is deliberate: with a Q15 window the window's own
//! rounding error (about `2^-16` relative) puts a noise floor about 120 dB below a spectral
//! peak, as high as the 16-bit PCM quantisation noise, and mel bands that far down (the far
//! side of a loud pure tone) move by tenths of a nat. The test
//! `q15_window_costs_accuracy` measures it.
//!
//! ## FFT scaling
//!
//! The frame is first normalised: the largest `|pcm · w|` is shifted (left or right, exactly
//! tracked in `E`) to lie in `[2^28, 2^29]`, so quiet frames keep full precision. The real FFT
//! of `n_fft` points is a complex radix-2 FFT of `n_fft/2` points over the interleaved
//! samples (even samples real, odd imaginary) followed by the split step. Before every
//! butterfly stage the block is scaled down (a rounding shift, `E` += shift) only if its
//! largest component exceeds `2^29`: a butterfly `a ± w·b` then stays below
//! `2^29 + √2·2^29 + 1 < 2^31`. Before the split step the limit is `2^28`: it forms
//! `2X_k = (A + B) + W·(A − B)/j` with components below `2^29 + 2√2·2^28 + 1 < 2^31` (the
//! factor 2 goes into `E`). Twiddle products are formed exactly in `i64` and rounded to
//! nearest once. So the block keeps 28–29 significant bits at its peak through every stage.
//!
//! ## Mel energies and the log
//!
//! For each filter, `pmax` = the largest power among the bins where the filter is non-zero and
//! `wsum` = the sum of its weights; every power is rounded right by
//! `sh = max(0, bits(pmax) + bits(wsum) − 64)`. Then each shifted power is at most
//! `2^(64 − bits(wsum))` (or, when `sh = 0`, `Σ w·P ≤ wsum · pmax < 2^64`), so the
//! accumulator `Σ w·(P >> sh) ≤ wsum · 2^(64 − bits(wsum)) < 2^64`: it never overflows (the
//! adds saturate anyway). Each filter thus keeps ~45+ significant bits whatever its level
//! relative to the frame's peak. `log_eps = m · 2^e` (24-bit mantissa, exact) and the mel
//! energy are both normalised to 62-bit mantissas, the one with the smaller exponent is
//! rounded into the other's scale and added (no overflow: `≤ 2^63`), and the log is
//! `fixed::ln_u64(sum) + e·ln 2` in Q24.
//!
//! ## Measured errors
//!
//! `cargo test -p tinyssm-core --lib frontend_int -- --nocapture` prints them. Signals: sines
//! (440 Hz −6 dBFS, 1 kHz full scale, 3 kHz −20 dBFS, 700 Hz −60 dBFS), a 100–3900 Hz chirp,
//! noise (−12 dBFS and full scale), a full-scale square wave, three tones plus DC, silence;
//! the shipped configuration (8 kHz, frame 200, hop 80, n_fft 256, 40 HTK unit-peak mels
//! 20–4000 Hz, Hann, `log_eps = 1e-6`), `feat_frac = 11`. Max |Δ feature| in nats, over
//! every band of every frame, measured on this commit:
//!
//! | comparison | measured | asserted |
//! |------------|----------|----------|
//! | FFT alone vs a direct `f64` DFT, n_fft 16..=1024 | SNR 145–182 dB (151 dB at 256) | ≥ 140 dB |
//! | integer (`push_q24`) vs `f64` reference of the pipeline | 2.7e-4 | ≤ 1e-3 |
//! | `f32` front end vs the same reference (for scale) | 1.0e-3 | — |
//! | integer vs `f32` front end | 1.0e-3 | ≤ 3e-3 |
//! | integer vs `f32`, FSDD test split (300 files, 12 326 frames) | 5.3e-4 | ≤ 3e-3 |
//! | integer vs `f64`, first 30 FSDD files | 5.3e-4 | ≤ 1e-3 |
//! | silence | exactly `round(ln(log_eps) · 2^feat_frac)` | exact |
//! | other framings (fl/hop/n_fft/n_mels up to 1024/300/1024/80) vs `f32` | ≤ 5.0e-4 | ≤ 1e-2 |
//!
//! The integer front end is closer to the exact pipeline than the `f32` one. Its remaining
//! error is the `i16` filterbank rounding (≈1.5e-4 on noise; against an `f64` reference that
//! uses the rounded filters it drops to 2e-7) and, for pure tones, the ≈150 dB arithmetic
//! noise floor showing in bands ~110 dB below the tone. The `i16` output adds its rounding,
//! `2^-(feat_frac+1)` (2.4e-4 nats at `feat_frac = 11`). With a Q15 window instead of Q0.31
//! the worst error grows to 0.12 nats (full-scale sine; `q15_window_costs_accuracy`).
//!
//! ## No floating point, no panic: the symbol check
//!
//! Built for a Cortex-M0 (`cargo build -p tinyssm-core --target thumbv6m-none-eabi
//! --release`), linked with `--gc-sections` from `IntFrontEnd::push` (or `push_q24`) as the
//! entry, as `QUANTIZATION-FIXED.md` describes for `fixed::integer_only_probe`, the only
//! undefined symbols are integer runtime helpers (`__aeabi_lasr`, `__aeabi_llsl`,
//! `__aeabi_llsr`, `__aeabi_lmul`, `__aeabi_uidiv`, `__aeabi_uidivmod`, `__aeabi_memclr4`,
//! `__clzsi2`): no `__aeabi_f*` / `__aeabi_d*` / `__*sf*` / `__*df*` and no `core::panicking`
//! symbol. About 9.2 KB of `.text` with the tables; `IntFrontEnd::new` references nothing.
//! Speed on a Cortex-M0 was not measured (per frame at n_fft 256: 128·7/2 + 64 butterflies
//! with four 64-bit products each, 2·129 squarings, and a pass over the filterbank).

mod fft;
mod host;
mod log;
#[cfg(test)]
mod tests;

use crate::error::{FormatError, StepError};
use crate::fixed::{round_shr_i64, round_shr_u64, saturate_i16, saturate_i32};
use crate::frontend::{FrontEndConfig, MAX_N_FFT};
use fft::{bits, rd, rfft_q, wr};
use log::{add_scaled, decode_f32, ln_q24};

pub use fft::sin_q30_table;
pub use host::{quantize_filters, window_q31};

/// Checks, with integer code only, the parameters the integer front end uses: the ranges
/// of [`FrontEndConfig::validate`] for `n_fft`, `frame_len`, `hop`, `n_mels`, and `log_eps`
/// finite and `> 0` from its bit pattern. (`sample_rate`, `f_min`, `f_max`, the window and
/// mel kinds only matter when the tables are built, at conversion time.)
fn check_config(cfg: &FrontEndConfig) -> Result<(), FormatError> {
    let bad = FormatError::BadConfig;
    if !cfg.n_fft.is_power_of_two() || !(16..=MAX_N_FFT).contains(&cfg.n_fft) {
        return Err(bad("front end: n_fft must be a power of two in 16..=1024"));
    }
    if cfg.frame_len < 2 || cfg.frame_len > cfg.n_fft {
        return Err(bad("front end: frame_len must be in 2..=n_fft"));
    }
    if cfg.hop == 0 || cfg.hop > cfg.frame_len {
        return Err(bad("front end: hop must be in 1..=frame_len"));
    }
    if cfg.n_mels == 0 || cfg.n_mels > 512 {
        return Err(bad("front end: n_mels must be in 1..=512"));
    }
    let b = cfg.log_eps.to_bits();
    if b >> 31 != 0 || (b >> 23) & 0xff == 0xff || b == 0 {
        return Err(bad("front end: log_eps must be finite and > 0"));
    }
    Ok(())
}

/// The integer streaming extractor over a configuration, a Q0.31 window and an `i16`
/// filterbank.
#[derive(Debug, Clone, Copy)]
pub struct IntFrontEnd<'a> {
    cfg: FrontEndConfig,
    window: &'a [i32],
    filters: &'a [i16],
    filter_frac: u32,
    feat_frac: u32,
    eps_mant: u64,
    eps_exp: i32,
}

impl<'a> IntFrontEnd<'a> {
    /// `window`: `frame_len` Q0.31 values ([`window_q31`]); `filters`: `[n_mels, n_bins]`
    /// row-major, non-negative, with `filter_frac ≤ 31` fraction bits ([`quantize_filters`]);
    /// `feat_frac ≤ 24`: fraction bits of the `i16` features of [`Self::push`]. Integer code
    /// only (the configuration is checked by integer comparisons, see the module docs).
    pub fn new(
        cfg: FrontEndConfig,
        window: &'a [i32],
        filters: &'a [i16],
        filter_frac: u32,
        feat_frac: u32,
    ) -> Result<Self, FormatError> {
        check_config(&cfg)?;
        let bad = FormatError::BadConfig;
        if window.len() != cfg.frame_len as usize {
            return Err(bad("front end: window length must be frame_len"));
        }
        if filters.len() != cfg.filterbank_len() {
            return Err(bad(
                "front end: filterbank length must be n_mels * (n_fft/2 + 1)",
            ));
        }
        if filters.iter().any(|&w| w < 0) {
            return Err(bad("front end: integer filter weights must be >= 0"));
        }
        if filter_frac > 31 {
            return Err(bad("front end: filter_frac must be <= 31"));
        }
        if feat_frac > 24 {
            return Err(bad("front end: feat_frac must be <= 24"));
        }
        Ok(Self::new_validated(
            cfg,
            window,
            filters,
            filter_frac,
            feat_frac,
        ))
    }

    /// [`Self::new`] without its checks, for tables that [`crate::Model::parse`] already
    /// checked with [`Self::new`] (the per-sample path must not re-scan the filterbank).
    pub(crate) fn new_validated(
        cfg: FrontEndConfig,
        window: &'a [i32],
        filters: &'a [i16],
        filter_frac: u32,
        feat_frac: u32,
    ) -> Self {
        let (eps_mant, eps_exp) = decode_f32(cfg.log_eps.to_bits());
        IntFrontEnd {
            cfg,
            window,
            filters,
            filter_frac,
            feat_frac,
            eps_mant,
            eps_exp,
        }
    }

    pub fn config(&self) -> &FrontEndConfig {
        &self.cfg
    }

    /// Fraction bits of the `i16` features.
    pub fn feat_frac(&self) -> u32 {
        self.feat_frac
    }

    /// Fraction bits of the `i16` filterbank weights.
    pub fn filter_frac(&self) -> u32 {
        self.filter_frac
    }

    /// `log_eps` as the exact `(mantissa, exponent)` pair the log adds to every mel energy
    /// (`log_eps = mantissa · 2^exponent`, decoded from its `f32` bits).
    pub fn log_eps_exact(&self) -> (u64, i32) {
        (self.eps_mant, self.eps_exp)
    }

    /// The `i16` filterbank, `[n_mels, n_fft/2 + 1]` row-major.
    pub fn filters(&self) -> &'a [i16] {
        self.filters
    }

    /// The Q0.31 window, `frame_len` values.
    pub fn window(&self) -> &'a [i32] {
        self.window
    }

    /// State `i32` elements: the last `frame_len` samples (a ring), the ring position and
    /// the number of samples buffered towards the next frame.
    pub const fn state_len(cfg: &FrontEndConfig) -> usize {
        cfg.frame_len as usize + 2
    }

    /// Scratch `i32` elements: the FFT buffer, `n_fft + 2` (bins `0..=n_fft/2` as complex
    /// pairs, then their powers as `u64` in the same slots).
    pub const fn scratch_len(cfg: &FrontEndConfig) -> usize {
        cfg.n_fft as usize + 2
    }

    /// Empties the stream (all zeros is the initial state).
    pub fn reset(&self, state: &mut [i32]) {
        let n = Self::state_len(&self.cfg).min(state.len());
        if let Some(s) = state.get_mut(..n) {
            s.fill(0);
        }
    }

    /// Feeds one 16-bit PCM sample. Returns `Ok(true)` when a frame completed and
    /// `out[..n_mels]` holds its features, `round(ln(mel + log_eps) · 2^feat_frac)`
    /// saturated to `i16`; `out` is untouched otherwise. All three buffers are checked on
    /// every call (a short one is an error and nothing is changed). A corrupt state is
    /// clamped, never trusted as an index.
    pub fn push(
        &self,
        pcm: i16,
        state: &mut [i32],
        scratch: &mut [i32],
        out: &mut [i16],
    ) -> Result<bool, StepError> {
        let shift = 24 - self.feat_frac.min(24);
        self.step(pcm, state, scratch, out, |q| {
            saturate_i16(round_shr_i64(q, shift))
        })
    }

    /// As [`Self::push`], features in Q7.24 (`i32`, saturated), independent of `feat_frac`.
    pub fn push_q24(
        &self,
        pcm: i16,
        state: &mut [i32],
        scratch: &mut [i32],
        out: &mut [i32],
    ) -> Result<bool, StepError> {
        self.step(pcm, state, scratch, out, saturate_i32)
    }

    fn step<T>(
        &self,
        pcm: i16,
        state: &mut [i32],
        scratch: &mut [i32],
        out: &mut [T],
        conv: impl Fn(i64) -> T,
    ) -> Result<bool, StepError> {
        let (fl, hop) = (self.cfg.frame_len as usize, self.cfg.hop as usize);
        let (sl, scl, nm) = (
            Self::state_len(&self.cfg),
            Self::scratch_len(&self.cfg),
            self.cfg.n_mels as usize,
        );
        let got = state.len();
        let state = state
            .get_mut(..sl)
            .ok_or(StepError::StateTooShort { needed: sl, got })?;
        let got = scratch.len();
        let buf = scratch
            .get_mut(..scl)
            .ok_or(StepError::ScratchTooShort { needed: scl, got })?;
        let got = out.len();
        let out = out
            .get_mut(..nm)
            .ok_or(StepError::OutputTooShort { needed: nm, got })?;
        let (ring, ctr) = state.split_at_mut_checked(fl).ok_or(StepError::Internal)?;
        let pos = (rd(ctr, 0) as u32 as usize)
            .checked_rem(fl)
            .ok_or(StepError::Internal)?;
        let mut have = (rd(ctr, 1) as u32 as usize).min(fl.saturating_sub(1));
        wr(ring, pos, pcm as i32);
        let pos = if pos + 1 >= fl { 0 } else { pos + 1 };
        have += 1;
        let ready = have >= fl;
        if ready {
            self.frame(ring, pos, buf, out, conv)?;
            have = fl.saturating_sub(hop);
        }
        wr(ctr, 0, pos as i32);
        wr(ctr, 1, have as i32);
        Ok(ready)
    }

    /// Features of the frame in `ring` (oldest sample at `pos`) into `out`, each the Q24 log
    /// passed through `conv`.
    fn frame<T>(
        &self,
        ring: &[i32],
        pos: usize,
        buf: &mut [i32],
        out: &mut [T],
        conv: impl Fn(i64) -> T,
    ) -> Result<(), StepError> {
        let (older, newer) = ring.split_at_checked(pos).ok_or(StepError::Internal)?;
        // A corrupt ring holds any i32: clamp to the i16 range, so |pcm · w| ≤ 2^46.
        let windowed = || {
            newer
                .iter()
                .chain(older)
                .zip(self.window)
                .map(|(&s, &w)| s.clamp(i16::MIN as i32, i16::MAX as i32) as i64 * w as i64)
        };
        let peak = windowed().map(|p| p.unsigned_abs()).max().unwrap_or(0);
        // Normalise the peak into [2^28, 2^29] (2^29 only by rounding).
        let s0 = if peak == 0 { 0 } else { bits(peak) as i32 - 29 };
        for (b, p) in buf.iter_mut().zip(windowed()) {
            *b = if s0 >= 0 {
                saturate_i32(round_shr_i64(p, s0 as u32))
            } else {
                // |p| < 2^(29 + s0): the shifted value is below 2^29.
                saturate_i32(p << (-s0) as u32)
            };
        }
        if let Some(t) = buf.get_mut(ring.len()..) {
            t.fill(0);
        }
        // X_true = raw · 2^e, with x·w = raw_in · 2^(s0 − 46).
        let e = rfft_q(buf).ok_or(StepError::Internal)? + s0 - 46;
        // Power in place: |re|, |im| ≤ 2^31, so re² + im² ≤ 2^63 (exact in u64).
        for c in buf.chunks_exact_mut(2) {
            if let [re, im] = c {
                let (r, i) = (*re as i64, *im as i64);
                let p = (r * r) as u64 + (i * i) as u64;
                *re = p as u32 as i32;
                *im = (p >> 32) as u32 as i32;
            }
        }
        let power = |k: usize| -> u64 {
            let lo = rd(buf, 2 * k) as u32 as u64;
            let hi = rd(buf, 2 * k + 1) as u32 as u64;
            hi << 32 | lo
        };
        let nb = self.cfg.n_bins();
        let pe = 2 * e - self.filter_frac as i32;
        for (o, row) in out.iter_mut().zip(self.filters.chunks_exact(nb)) {
            let (mut pmax, mut wsum) = (0u64, 0u64);
            for (k, &w) in row.iter().enumerate() {
                if w > 0 {
                    pmax = pmax.max(power(k));
                    wsum += w as u64; // ≤ 513 · 2^15
                }
            }
            // See the module docs: Σ w · round(P · 2^-sh) < 2^64.
            let sh = (bits(pmax) + bits(wsum)).saturating_sub(64);
            let mut acc = 0u64;
            for (k, &w) in row.iter().enumerate() {
                if w > 0 {
                    acc = acc.saturating_add(round_shr_u64(power(k), sh).saturating_mul(w as u64));
                }
            }
            let (m, x) = add_scaled(acc, pe + sh as i32, self.eps_mant, self.eps_exp);
            *o = conv(ln_q24(m, x));
        }
        Ok(())
    }
}

// ------------------------------------------------------------------------------------------
// Buffer sizes of the integer front end inside a model's state and scratch
// ------------------------------------------------------------------------------------------

/// State elements (i32) of the integer front end.
pub(crate) fn fe_state_len(fe: &FrontEndConfig) -> usize {
    IntFrontEnd::state_len(fe)
}

/// Scratch elements (i32) of the integer front end (its FFT buffer) and the packed `i16`
/// feature vector.
pub(crate) fn fe_scratch_len(fe: &FrontEndConfig) -> usize {
    IntFrontEnd::scratch_len(fe) + crate::int_step::half(fe.n_mels as usize)
}

/// Splits the feature vector (packed `i16`) off the end of the front end's scratch.
pub(crate) fn fe_split<'s>(
    fe: &FrontEndConfig,
    rest: &'s mut [i32],
) -> Result<(&'s mut [i32], &'s mut [i16]), StepError> {
    let k = IntFrontEnd::scratch_len(fe);
    if rest.len() < k {
        return Err(StepError::Internal);
    }
    let (fft, feats) = rest.split_at_mut(k);
    let f: &mut [i16] = bytemuck::cast_slice_mut(feats);
    let nm = fe.n_mels as usize;
    Ok((fft, f.get_mut(..nm).ok_or(StepError::Internal)?))
}
