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

use crate::error::{FormatError, StepError};
use crate::fixed::{ln_u64, round_shr_i64, round_shr_u64, saturate_i16, saturate_i32};
use crate::frontend::{FrontEndConfig, MAX_N_FFT};

/// `π · 2^62`, rounded.
const PI_Q62: i128 = 14_488_038_916_154_245_685;
/// `ln 2` in Q0.32.
const LN2_Q32: i64 = 2_977_044_472;
/// Quarter of the largest FFT: the sine table covers `[0, π/2]` in steps of `2π / MAX_N_FFT`.
const QUARTER: usize = MAX_N_FFT as usize / 4;
/// Block limit before a butterfly stage.
const STAGE_LIMIT: u32 = 1 << 29;
/// Block limit before the real-FFT split step.
const SPLIT_LIMIT: u32 = 1 << 28;

/// `sin(2π i / MAX_N_FFT)` for `i = 0..=MAX_N_FFT/4`, Q1.30, computed at compile time.
static SIN_Q30: [i32; QUARTER + 1] = sin_table();

const fn sin_table() -> [i32; QUARTER + 1] {
    let mut t = [0i32; QUARTER + 1];
    let mut i = 0;
    while i <= QUARTER {
        t[i] = sin_entry(i as i128);
        i += 1;
    }
    t
}

/// `sin(π i / 512)` in Q30 by the Taylor series `Σ (-1)^n x^(2n+1) / (2n+1)!`, summed in Q62
/// with `i128` (`x ≤ π/2 < 2^0.65`, so `x · x` and `term · x²` stay below `2^126`).
const fn sin_entry(i: i128) -> i32 {
    let x = PI_Q62 * i / (MAX_N_FFT as i128 / 2); // Q62
    let x2 = (x * x) >> 62;
    let mut term = x;
    let mut sum: i128 = 0;
    let mut n: i128 = 1;
    while term != 0 && n < 100 {
        sum += term;
        term = -(((term * x2) >> 62) / ((2 * n) * (2 * n + 1)));
        n += 1;
    }
    let v = (sum + (1 << 31)) >> 32;
    if v < 0 {
        0
    } else if v > 1 << 30 {
        1 << 30
    } else {
        v as i32
    }
}

/// The quarter-wave sine table of the integer FFT, `sin(2π i / MAX_N_FFT)` in Q1.30 for
/// `i = 0..=MAX_N_FFT/4` (computed at compile time), for ports that must reproduce the
/// front end bit for bit (the verification step kernels of the CUDA crate upload it).
pub fn sin_q30_table() -> &'static [i32; QUARTER + 1] {
    &SIN_Q30
}

/// `sin(2π t / MAX_N_FFT)` in Q30, any `t`.
#[inline]
fn sin_q30(t: usize) -> i32 {
    let t = t % MAX_N_FFT as usize;
    let (q, r) = (t / QUARTER, t % QUARTER);
    let idx = if q % 2 == 0 { r } else { QUARTER - r };
    let v = SIN_Q30.get(idx).copied().unwrap_or(0);
    if q < 2 {
        v
    } else {
        -v
    }
}

/// `cos(2π t / MAX_N_FFT)` in Q30, any `t`.
#[inline]
fn cos_q30(t: usize) -> i32 {
    sin_q30(t % MAX_N_FFT as usize + QUARTER)
}

/// Number of significant bits (`0` for `0`).
#[inline]
const fn bits(v: u64) -> u32 {
    64 - v.leading_zeros()
}

#[inline]
fn rd(buf: &[i32], k: usize) -> i32 {
    buf.get(k).copied().unwrap_or(0)
}

#[inline]
fn wr(buf: &mut [i32], k: usize, v: i32) {
    if let Some(x) = buf.get_mut(k) {
        *x = v;
    }
}

/// Scales `buf` down by the smallest rounding shift that brings every component to at most
/// `limit`; returns the shift (to be added to the block exponent).
fn fit(buf: &mut [i32], limit: u32) -> i32 {
    let m = buf.iter().map(|v| v.unsigned_abs()).max().unwrap_or(0) as u64;
    let mut s = 0u32;
    // round_shr(m, s) ≤ limit implies the same for every component (rounding is monotone).
    while s < 33 && round_shr_u64(m, s) > limit as u64 {
        s += 1;
    }
    if s > 0 {
        for v in buf.iter_mut() {
            *v = saturate_i32(round_shr_i64(*v as i64, s));
        }
    }
    s as i32
}

/// In-place complex radix-2 FFT (forward, `e^{-2πi nk/m}`) of `m = buf.len() / 2` interleaved
/// points (`m` a power of two, `2 ≤ m ≤ MAX_N_FFT / 2`), block floating point. Returns the
/// exponent added (output = raw · 2^returned, relative to the input's scale).
fn fft_complex(buf: &mut [i32]) -> i32 {
    let m = buf.len() / 2;
    if !m.is_power_of_two() || m < 2 || m > MAX_N_FFT as usize / 2 {
        return 0;
    }
    let lg = m.trailing_zeros();
    for i in 0..m {
        let j = i.reverse_bits() >> (usize::BITS - lg);
        if i < j {
            let (ar, ai) = (rd(buf, 2 * i), rd(buf, 2 * i + 1));
            let (br, bi) = (rd(buf, 2 * j), rd(buf, 2 * j + 1));
            wr(buf, 2 * i, br);
            wr(buf, 2 * i + 1, bi);
            wr(buf, 2 * j, ar);
            wr(buf, 2 * j + 1, ai);
        }
    }
    let mut exp = 0i32;
    let mut len = 2usize; // complex points per group
    while len <= m {
        exp += fit(buf, STAGE_LIMIT);
        let tstep = (MAX_N_FFT as usize).checked_div(len).unwrap_or(0); // twiddle e^{-2πi j/len} is table index j·tstep
        for grp in buf.chunks_exact_mut(2 * len) {
            let Some((a, b)) = grp.split_at_mut_checked(len) else {
                continue;
            };
            for (j, (pa, pb)) in a.chunks_exact_mut(2).zip(b.chunks_exact_mut(2)).enumerate() {
                if let ([ar, ai], [br, bi]) = (pa, pb) {
                    let t = j * tstep;
                    let (c, s) = (cos_q30(t) as i64, sin_q30(t) as i64);
                    let (xr, xi) = (*br as i64, *bi as i64);
                    // (c − i s)(xr + i xi); |x| ≤ 2^31, |c|, |s| ≤ 2^30: sums < 2^62.
                    let tr = round_shr_i64(xr * c + xi * s, 30);
                    let ti = round_shr_i64(xi * c - xr * s, 30);
                    let (yr, yi) = (*ar as i64, *ai as i64);
                    *ar = saturate_i32(yr + tr);
                    *ai = saturate_i32(yi + ti);
                    *br = saturate_i32(yr - tr);
                    *bi = saturate_i32(yi - ti);
                }
            }
        }
        len <<= 1;
    }
    exp
}

/// Real FFT of `n = buf.len() − 2` real samples in `buf[..n]` (`n` a power of two in
/// `16..=MAX_N_FFT`; `buf[n..]` is overwritten). Output: bins `k = 0..=n/2` as `(re, im)` at
/// `buf[2k], buf[2k+1]`, `X_k = raw · 2^returned` relative to the input's scale. `None` for a
/// bad length.
fn rfft_q(buf: &mut [i32]) -> Option<i32> {
    let n = buf.len().checked_sub(2)?;
    if !n.is_power_of_two() || !(16..=MAX_N_FFT as usize).contains(&n) {
        return None;
    }
    let m = n / 2;
    let (z, tail) = buf.split_at_mut_checked(n)?;
    tail.fill(0);
    let mut exp = fft_complex(z);
    exp += fit(z, SPLIT_LIMIT);
    // Z_0 = (E_0 + O_0) gives X_0 = re + im, X_{n/2} = re − im; stored doubled (2X).
    let (r0, i0) = (rd(buf, 0) as i64, rd(buf, 1) as i64);
    wr(buf, 0, saturate_i32(2 * (r0 + i0)));
    wr(buf, 1, 0);
    wr(buf, n, saturate_i32(2 * (r0 - i0)));
    wr(buf, n + 1, 0);
    let tstep = (MAX_N_FFT as usize).checked_div(n).unwrap_or(0);
    for k in 1..=m / 2 {
        let j = m - k;
        let (ar, ai) = (rd(buf, 2 * k) as i64, rd(buf, 2 * k + 1) as i64);
        // B = conj(Z_{m−k}).
        let (br, bi) = (rd(buf, 2 * j) as i64, -(rd(buf, 2 * j + 1) as i64));
        let (sr, si) = (ar + br, ai + bi);
        let (dr, di) = (ar - br, ai - bi);
        let t = k * tstep;
        let (c, s) = (cos_q30(t) as i64, sin_q30(t) as i64);
        // T = W_n^k · D = (c − i s)(dr + i di); 2X_k = S − i T, 2X_{m−k} = conj(S + i T).
        let tr = round_shr_i64(dr * c + di * s, 30);
        let ti = round_shr_i64(di * c - dr * s, 30);
        wr(buf, 2 * k, saturate_i32(sr + ti));
        wr(buf, 2 * k + 1, saturate_i32(si - tr));
        wr(buf, 2 * j, saturate_i32(sr - ti));
        wr(buf, 2 * j + 1, saturate_i32(-(si + tr)));
    }
    Some(exp - 1)
}

/// `(a · 2^ea) + (b · 2^eb)` as a mantissa `≤ 2^63` and exponent (both operands normalised
/// to 62 bits first, the smaller-exponent one rounded into the other's scale).
fn add_scaled(a: u64, ea: i32, b: u64, eb: i32) -> (u64, i32) {
    fn norm(m: u64, e: i32) -> (u64, i32) {
        let bl = bits(m);
        if m == 0 {
            (0, e)
        } else if bl > 62 {
            (
                round_shr_u64(m, bl - 62),
                e.saturating_add((bl - 62) as i32),
            )
        } else {
            (m << (62 - bl), e.saturating_sub((62 - bl) as i32))
        }
    }
    let (a, ea) = norm(a, ea);
    let (b, eb) = norm(b, eb);
    if a == 0 {
        return (b, eb);
    }
    if b == 0 {
        return (a, ea);
    }
    let ((hi, ehi), (lo, elo)) = if ea >= eb {
        ((a, ea), (b, eb))
    } else {
        ((b, eb), (a, ea))
    };
    let d = (ehi as i64 - elo as i64).clamp(0, 65) as u32;
    // hi, lo ≤ 2^62 after rounding: the sum is ≤ 2^63.
    (hi.saturating_add(round_shr_u64(lo, d)), ehi)
}

/// `ln(m · 2^e)` in Q24 (`m = 0` gives a very negative value that saturates any output).
fn ln_q24(m: u64, e: i32) -> i64 {
    if m == 0 {
        return i64::MIN / 4;
    }
    ln_u64(m) as i64 + round_shr_i64(e as i64 * LN2_Q32, 8)
}

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

/// `log_eps` (positive, finite) as `mantissa · 2^exponent`, exact.
fn decode_f32(bits: u32) -> (u64, i32) {
    let e = ((bits >> 23) & 0xff) as i32;
    let m = (bits & 0x7f_ffff) as u64;
    if e == 0 {
        (m, -149)
    } else {
        (m | 1 << 23, e - 150)
    }
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

/// **Conversion time only** (uses `f64`): the window of `cfg` as `frame_len` Q0.31 values,
/// `round(w · 2^31)` of the `f32` window [`FrontEndConfig::window_at`] the float front end
/// uses, saturated (`1.0` gives `2^31 − 1`).
pub fn window_q31(cfg: &FrontEndConfig, out: &mut [i32]) -> Result<(), FormatError> {
    cfg.validate()?;
    let out = out
        .get_mut(..cfg.frame_len as usize)
        .ok_or(FormatError::BadConfig("front end: window buffer too short"))?;
    for (n, o) in out.iter_mut().enumerate() {
        let v = libm::round(cfg.window_at(n) as f64 * 2_147_483_648.0);
        *o = v.clamp(i32::MIN as f64, i32::MAX as f64) as i32;
    }
    Ok(())
}

/// **Conversion time only** (uses `f64`): quantises a non-negative filterbank to `i16` with
/// the largest fraction bits `frac ≤ 15` for which the largest weight still fits
/// (`round(max · 2^frac) ≤ 32767`); returns `frac`. Weights are rounded to nearest. Errors
/// for a weight that is negative or not finite, or an `out` shorter than `filters`.
pub fn quantize_filters(filters: &[f32], out: &mut [i16]) -> Result<u32, FormatError> {
    let out = out
        .get_mut(..filters.len())
        .ok_or(FormatError::BadConfig("front end: filter buffer too short"))?;
    let mut max = 0f64;
    for &w in filters {
        if !(w.is_finite() && w >= 0.0) {
            return Err(FormatError::BadConfig(
                "front end: filter weights must be finite and >= 0",
            ));
        }
        max = max.max(w as f64);
    }
    let mut frac = 15u32;
    while frac > 0 && libm::round(max * (1u32 << frac) as f64) > 32767.0 {
        frac -= 1;
    }
    let scale = (1u32 << frac) as f64;
    for (o, &w) in out.iter_mut().zip(filters) {
        *o = libm::round(w as f64 * scale).min(32767.0) as i16;
    }
    Ok(frac)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frontend::{mel_filterbank, FrontEnd, MelScale, Window};
    use proptest::prelude::*;
    use std::vec::Vec;
    use std::{format, println, vec};

    /// The shipped spoken-digit configuration.
    fn shipped() -> FrontEndConfig {
        FrontEndConfig {
            sample_rate: 8000,
            frame_len: 200,
            hop: 80,
            n_fft: 256,
            n_mels: 40,
            f_min: 20.0,
            f_max: 4000.0,
            window: Window::Hann,
            mel_scale: MelScale::Htk,
            area_norm: false,
            log_eps: 1e-6,
        }
    }

    const FEAT_FRAC: u32 = 11;

    /// Tables of a configuration: float filters, Q31 window, i16 filters and their frac.
    struct Tables {
        cfg: FrontEndConfig,
        filt: Vec<f32>,
        win: Vec<i32>,
        qf: Vec<i16>,
        frac: u32,
    }

    fn tables(cfg: FrontEndConfig) -> Tables {
        let mut filt = vec![0f32; cfg.filterbank_len()];
        mel_filterbank(&cfg, &mut filt).unwrap();
        let mut win = vec![0i32; cfg.frame_len as usize];
        window_q31(&cfg, &mut win).unwrap();
        let mut qf = vec![0i16; filt.len()];
        let frac = quantize_filters(&filt, &mut qf).unwrap();
        Tables {
            cfg,
            filt,
            win,
            qf,
            frac,
        }
    }

    /// Per frame: (sample index at which it was emitted, Q24 features as f64 nats).
    fn run_int(t: &Tables, win: &[i32], pcm: &[i16]) -> Vec<(usize, Vec<f64>)> {
        let fe = IntFrontEnd::new(t.cfg, win, &t.qf, t.frac, FEAT_FRAC).unwrap();
        let mut st = vec![0i32; IntFrontEnd::state_len(&t.cfg)];
        let mut sc = vec![0i32; IntFrontEnd::scratch_len(&t.cfg)];
        let mut o = vec![0i32; t.cfg.n_mels as usize];
        let mut o16 = vec![0i16; t.cfg.n_mels as usize];
        let mut st16 = st.clone();
        let mut res = Vec::new();
        for (i, &s) in pcm.iter().enumerate() {
            let r = fe.push_q24(s, &mut st, &mut sc, &mut o).unwrap();
            let r16 = fe.push(s, &mut st16, &mut sc, &mut o16).unwrap();
            assert_eq!(r, r16);
            if r {
                // The i16 output is the Q24 one rounded.
                for (&a, &b) in o.iter().zip(&o16) {
                    let want = saturate_i16(round_shr_i64(a as i64, 24 - FEAT_FRAC));
                    assert_eq!(b, want);
                }
                res.push((
                    i,
                    o.iter().map(|&v| v as f64 / (1u64 << 24) as f64).collect(),
                ));
            }
        }
        res
    }

    fn run_float(t: &Tables, pcm: &[i16]) -> Vec<(usize, Vec<f64>)> {
        let fe = FrontEnd::new(t.cfg, &t.filt).unwrap();
        let mut st = vec![0f32; t.cfg.state_len()];
        let mut sc = vec![0f32; t.cfg.scratch_len()];
        let mut o = vec![0f32; t.cfg.n_mels as usize];
        let mut res = Vec::new();
        for (i, &s) in pcm.iter().enumerate() {
            if fe
                .push(s as f32 / 32768.0, &mut st, &mut sc, &mut o)
                .unwrap()
            {
                res.push((i, o.iter().map(|&v| v as f64).collect()));
            }
        }
        res
    }

    /// f64 reference of the whole pipeline (exact window, direct DFT, the f32 filters):
    /// per frame, (features, mel energies).
    fn run_f64(t: &Tables, pcm: &[i16]) -> Vec<(Vec<f64>, Vec<f64>)> {
        let c = &t.cfg;
        let (fl, hop, nf, nb) = (
            c.frame_len as usize,
            c.hop as usize,
            c.n_fft as usize,
            c.n_bins(),
        );
        let tw: Vec<(f64, f64)> = (0..nf)
            .map(|i| {
                let a = 2.0 * core::f64::consts::PI * i as f64 / nf as f64;
                (a.cos(), a.sin())
            })
            .collect();
        let win: Vec<f64> = (0..fl)
            .map(|n| {
                let cs = (2.0 * core::f64::consts::PI * n as f64 / fl as f64).cos();
                match c.window {
                    Window::Hann => 0.5 - 0.5 * cs,
                    Window::Hamming => 0.54 - 0.46 * cs,
                    Window::Rectangular => 1.0,
                }
            })
            .collect();
        let eps = c.log_eps as f64;
        let mut res = Vec::new();
        let mut start = 0;
        while start + fl <= pcm.len() {
            let x: Vec<f64> = (0..fl)
                .map(|n| pcm[start + n] as f64 / 32768.0 * win[n])
                .collect();
            let p: Vec<f64> = (0..nb)
                .map(|k| {
                    let (mut re, mut im) = (0.0, 0.0);
                    for (n, &v) in x.iter().enumerate() {
                        let (cs, sn) = tw[(k * n) % nf];
                        re += v * cs;
                        im -= v * sn;
                    }
                    re * re + im * im
                })
                .collect();
            let mel: Vec<f64> = t
                .filt
                .chunks_exact(nb)
                .map(|r| r.iter().zip(&p).map(|(&w, &q)| w as f64 * q).sum())
                .collect();
            res.push((mel.iter().map(|&m| (m + eps).ln()).collect(), mel));
            start += hop;
        }
        res
    }

    fn lcg(seed: &mut u64) -> u32 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (*seed >> 33) as u32
    }

    fn to_pcm(x: impl Iterator<Item = f64>) -> Vec<i16> {
        x.map(|v| v.round().clamp(-32768.0, 32767.0) as i16)
            .collect()
    }

    fn signals() -> Vec<(&'static str, Vec<i16>)> {
        let n = 4000usize;
        let sr = 8000.0;
        let pi2 = 2.0 * core::f64::consts::PI;
        let sine =
            |f: f64, a: f64| to_pcm((0..n).map(move |i| a * (pi2 * f * i as f64 / sr).sin()));
        let mut seed = 12345u64;
        let noise: Vec<i16> = (0..n)
            .map(|_| (lcg(&mut seed) as i32 % 16384 - 8192) as i16)
            .collect();
        let fs_noise: Vec<i16> = (0..n).map(|_| lcg(&mut seed) as u16 as i16).collect();
        let chirp = to_pcm((0..n).map(|i| {
            let t = i as f64 / sr;
            let dur = n as f64 / sr;
            // 100 Hz → 3900 Hz linear chirp.
            let ph = pi2 * (100.0 * t + 0.5 * (3800.0 / dur) * t * t);
            0.7 * 32768.0 * ph.sin()
        }));
        let square: Vec<i16> = (0..n)
            .map(|i| if (i / 16) % 2 == 0 { 32767 } else { -32768 })
            .collect();
        let mix = to_pcm((0..n).map(|i| {
            let t = i as f64 / sr;
            3000.0 * (pi2 * 300.0 * t).sin()
                + 2000.0 * (pi2 * 1234.5 * t).sin()
                + 500.0 * (pi2 * 2900.0 * t).cos()
                + 200.0
        }));
        vec![
            ("sine 440 Hz -6 dBFS", sine(440.0, 16384.0)),
            ("sine 1 kHz full scale", sine(1000.0, 32767.0)),
            ("sine 3 kHz -20 dBFS", sine(3000.0, 3276.8)),
            ("sine 700 Hz -60 dBFS", sine(700.0, 32.768)),
            ("chirp 100-3900 Hz", chirp),
            ("noise -12 dBFS", noise),
            ("noise full scale", fs_noise),
            ("square 250 Hz full scale", square),
            ("three tones + DC", mix),
            ("silence", vec![0i16; n]),
        ]
    }

    /// Max |Δ| over bands within `rel` of the frame's loudest (f64) band, and over all bands.
    #[derive(Default, Clone, Copy)]
    struct Err2 {
        near: f64,
        all: f64,
    }

    fn compare(a: &[(usize, Vec<f64>)], b: &[Vec<f64>], refs: &[(Vec<f64>, Vec<f64>)]) -> Err2 {
        let mut e = Err2::default();
        assert_eq!(a.len(), b.len());
        for ((fa, fb), (_, mel)) in a.iter().zip(b).zip(refs) {
            let peak = mel.iter().cloned().fold(0.0, f64::max);
            for ((&x, &y), &m) in fa.1.iter().zip(fb).zip(mel) {
                let d = (x - y).abs();
                e.all = e.all.max(d);
                if m >= 1e-9 * peak {
                    e.near = e.near.max(d);
                }
            }
        }
        e
    }

    #[test]
    fn sine_table_is_accurate() {
        let mut worst = 0f64;
        for (i, &v) in SIN_Q30.iter().enumerate() {
            let want = (core::f64::consts::PI * i as f64 / 512.0).sin() * (1u64 << 30) as f64;
            worst = worst.max((v as f64 - want).abs());
        }
        println!("sine table: max error {worst:.3} LSB (Q30)");
        assert!(worst <= 0.5 + 1e-6);
        assert_eq!(SIN_Q30[0], 0);
        assert_eq!(SIN_Q30[QUARTER], 1 << 30);
        assert!((PI_Q62 as f64 / 2f64.powi(62) - core::f64::consts::PI).abs() < 1e-15);
        for t in 0..1024 {
            let a = 2.0 * core::f64::consts::PI * t as f64 / 1024.0;
            assert!((sin_q30(t) as f64 / 2f64.powi(30) - a.sin()).abs() < 1e-9);
            assert!((cos_q30(t) as f64 / 2f64.powi(30) - a.cos()).abs() < 1e-9);
        }
    }

    /// The real FFT alone against a direct f64 DFT, every size, several inputs.
    #[test]
    fn fft_matches_direct_dft() {
        let mut seed = 7u64;
        let mut worst = f64::INFINITY;
        for lg in 4..=10 {
            let n = 1usize << lg;
            let inputs: Vec<(&str, Vec<i32>)> = vec![
                (
                    "noise",
                    (0..n)
                        .map(|_| (lcg(&mut seed) as i32) >> 3)
                        .collect::<Vec<_>>(),
                ),
                (
                    "sine",
                    (0..n)
                        .map(|i| ((0.37 * i as f64).sin() * 2.6e8) as i32)
                        .collect(),
                ),
                (
                    "impulse+dc",
                    (0..n)
                        .map(|i| if i == 3 { 1 << 28 } else { 1000 })
                        .collect(),
                ),
                (
                    "full-range",
                    (0..n).map(|_| lcg(&mut seed) as i32 ^ i32::MIN).collect(),
                ),
            ];
            let mut line = format!("n {n:4}:");
            for (name, x) in inputs {
                let mut buf = vec![0i32; n + 2];
                buf[..n].copy_from_slice(&x);
                let e = rfft_q(&mut buf).unwrap();
                let (mut sig, mut err) = (0f64, 0f64);
                for k in 0..=n / 2 {
                    let (mut re, mut im) = (0f64, 0f64);
                    for (i, &v) in x.iter().enumerate() {
                        let a = -2.0 * core::f64::consts::PI * ((k * i) % n) as f64 / n as f64;
                        re += v as f64 * a.cos();
                        im += v as f64 * a.sin();
                    }
                    let s = 2f64.powi(e);
                    let (gr, gi) = (buf[2 * k] as f64 * s, buf[2 * k + 1] as f64 * s);
                    sig += re * re + im * im;
                    err += (gr - re).powi(2) + (gi - im).powi(2);
                }
                let snr = 10.0 * (sig / err.max(1e-300)).log10();
                worst = worst.min(snr);
                line += &format!("  {name} {snr:6.1} dB");
            }
            println!("fft SNR vs f64 DFT, {line}");
        }
        println!("fft SNR: worst {worst:.1} dB");
        assert!(worst >= 140.0, "FFT SNR {worst} dB");
        assert!(rfft_q(&mut [0i32; 10]).is_none());
        assert!(rfft_q(&mut [0i32; 2048 + 2]).is_none());
    }

    /// Features against the f64 reference and the f32 front end, shipped configuration.
    #[test]
    fn features_match_float_front_end() {
        let t = tables(shipped());
        println!(
            "filter_frac {} (filters i16), feat_frac {FEAT_FRAC}; max |Δ| in nats, bands within \
             90 dB of the frame's loudest / all bands",
            t.frac
        );
        println!(
            "{:26} {:>21} {:>21} {:>21}",
            "signal", "int vs f64", "f32 vs f64", "int vs f32"
        );
        let (mut wi, mut wf, mut wif) = (Err2::default(), Err2::default(), Err2::default());
        for (name, pcm) in signals() {
            let refs = run_f64(&t, &pcm);
            let fi = run_int(&t, &t.win, &pcm);
            let ff = run_float(&t, &pcm);
            let rf: Vec<Vec<f64>> = refs.iter().map(|r| r.0.clone()).collect();
            let ffv: Vec<Vec<f64>> = ff.iter().map(|r| r.1.clone()).collect();
            let ei = compare(&fi, &rf, &refs);
            let ef = compare(&ff, &rf, &refs);
            let eif = compare(&fi, &ffv, &refs);
            println!(
                "{name:26} {:>10.2e} {:>10.2e} {:>10.2e} {:>10.2e} {:>10.2e} {:>10.2e}",
                ei.near, ei.all, ef.near, ef.all, eif.near, eif.all
            );
            for (w, e) in [(&mut wi, ei), (&mut wf, ef), (&mut wif, eif)] {
                w.near = w.near.max(e.near);
                w.all = w.all.max(e.all);
            }
            // Frames at the same sample indices.
            let ii: Vec<usize> = fi.iter().map(|f| f.0).collect();
            let fidx: Vec<usize> = ff.iter().map(|f| f.0).collect();
            assert_eq!(ii, fidx);
        }
        println!(
            "worst: int vs f64 {:.2e} / {:.2e}, f32 vs f64 {:.2e} / {:.2e}, int vs f32 {:.2e} / {:.2e}",
            wi.near, wi.all, wf.near, wf.all, wif.near, wif.all
        );
        assert!(wi.all <= 0.001, "int vs f64: {}", wi.all);
        assert!(wif.all <= 0.003, "int vs f32: {}", wif.all);
    }

    /// Silence gives exactly `round(ln(log_eps) · 2^feat_frac)`, for several `log_eps`.
    #[test]
    fn silence_is_ln_eps() {
        for eps in [1e-6f32, 1e-10, 0.5, 3.0, 1e-40 /* subnormal */] {
            let mut cfg = shipped();
            cfg.log_eps = eps;
            let t = tables(cfg);
            for frac in [0u32, 8, 11, 15] {
                let fe = IntFrontEnd::new(cfg, &t.win, &t.qf, t.frac, frac).unwrap();
                let mut st = vec![0i32; IntFrontEnd::state_len(&cfg)];
                let mut sc = vec![0i32; IntFrontEnd::scratch_len(&cfg)];
                let mut o = vec![0i16; 40];
                let mut q = vec![0i32; 40];
                let want = ((eps as f64).ln() * (1u64 << frac) as f64).round();
                let want = want.clamp(-32768.0, 32767.0) as i16;
                let want24 = ((eps as f64).ln() * (1u64 << 24) as f64).round() as i32;
                let mut frames = 0;
                for _ in 0..600 {
                    if fe.push(0, &mut st, &mut sc, &mut o).unwrap() {
                        assert!(
                            o.iter().all(|&v| v == want),
                            "{eps} {frac}: {o:?} vs {want}"
                        );
                        frames += 1;
                    }
                }
                fe.reset(&mut st);
                for _ in 0..200 {
                    if fe.push_q24(0, &mut st, &mut sc, &mut q).unwrap() {
                        // ln_u64 is within 0.6 LSB of Q24, plus the rounding of e·ln 2.
                        assert!(q.iter().all(|&v| (v - want24).abs() <= 1), "{q:?} {want24}");
                    }
                }
                assert_eq!(frames, 6);
            }
        }
    }

    /// Frames appear at the same sample indices as in the float front end, for several
    /// framings (and the features agree there too).
    #[test]
    fn streaming_matches_float_indices() {
        let mut seed = 99u64;
        let pcm: Vec<i16> = (0..3000)
            .map(|_| (lcg(&mut seed) as i32 % 20000 - 10000) as i16)
            .collect();
        for (fl, hop, nf, nm) in [
            (200, 80, 256, 40),
            (256, 256, 256, 20),
            (17, 5, 32, 6),
            (16, 1, 16, 4),
            (400, 160, 512, 64),
            (1024, 300, 1024, 80),
        ] {
            let mut cfg = shipped();
            cfg.frame_len = fl;
            cfg.hop = hop;
            cfg.n_fft = nf;
            cfg.n_mels = nm;
            cfg.window = Window::Hamming;
            let t = tables(cfg);
            let fi = run_int(&t, &t.win, &pcm);
            let ff = run_float(&t, &pcm);
            let ii: Vec<usize> = fi.iter().map(|f| f.0).collect();
            let fidx: Vec<usize> = ff.iter().map(|f| f.0).collect();
            assert_eq!(ii, fidx, "fl {fl} hop {hop}");
            assert_eq!(ii.first().copied(), Some(fl as usize - 1));
            let mut worst = 0f64;
            for (a, b) in fi.iter().zip(&ff) {
                for (x, y) in a.1.iter().zip(&b.1) {
                    worst = worst.max((x - y).abs());
                }
            }
            println!(
                "framing fl {fl} hop {hop} n_fft {nf} n_mels {nm}: int vs f32 max |Δ| {worst:.2e}"
            );
            assert!(worst <= 0.01, "{worst}");
        }
    }

    #[test]
    fn bad_sizes_are_errors() {
        let cfg = shipped();
        let t = tables(cfg);
        let fe = IntFrontEnd::new(cfg, &t.win, &t.qf, t.frac, FEAT_FRAC).unwrap();
        let (sl, scl) = (IntFrontEnd::state_len(&cfg), IntFrontEnd::scratch_len(&cfg));
        assert_eq!((sl, scl), (202, 258));
        let mut st = vec![0i32; sl];
        let mut sc = vec![0i32; scl];
        let mut o = vec![0i16; 40];
        assert_eq!(
            fe.push(1, &mut st[..sl - 1], &mut sc, &mut o),
            Err(StepError::StateTooShort {
                needed: sl,
                got: sl - 1
            })
        );
        assert_eq!(
            fe.push(1, &mut st, &mut sc[..scl - 1], &mut o),
            Err(StepError::ScratchTooShort {
                needed: scl,
                got: scl - 1
            })
        );
        assert_eq!(
            fe.push(1, &mut st, &mut sc, &mut o[..39]),
            Err(StepError::OutputTooShort {
                needed: 40,
                got: 39
            })
        );
        assert!(st.iter().all(|&v| v == 0), "a refused push changes nothing");
        // Longer buffers are fine.
        let mut st2 = vec![0i32; sl + 5];
        let mut sc2 = vec![0i32; scl + 5];
        let mut o2 = vec![0i16; 45];
        assert_eq!(fe.push(1, &mut st2, &mut sc2, &mut o2), Ok(false));
        // Construction.
        let bad = |r: Result<IntFrontEnd<'_>, FormatError>| assert!(r.is_err());
        bad(IntFrontEnd::new(cfg, &t.win[1..], &t.qf, t.frac, 11));
        bad(IntFrontEnd::new(cfg, &t.win, &t.qf[1..], t.frac, 11));
        bad(IntFrontEnd::new(cfg, &t.win, &t.qf, 32, 11));
        bad(IntFrontEnd::new(cfg, &t.win, &t.qf, t.frac, 25));
        let mut neg = t.qf.clone();
        neg[5] = -1;
        bad(IntFrontEnd::new(cfg, &t.win, &neg, t.frac, 11));
        for eps in [0.0f32, -1.0, f32::NAN, f32::INFINITY, -0.0] {
            let mut c = cfg;
            c.log_eps = eps;
            bad(IntFrontEnd::new(c, &t.win, &t.qf, t.frac, 11));
        }
        for (fl, hop, nf, nm) in [
            (200, 80, 250, 40),
            (300, 80, 256, 40),
            (200, 0, 256, 40),
            (200, 201, 256, 40),
            (200, 80, 256, 0),
            (1, 1, 16, 1),
            (200, 80, 2048, 40),
        ] {
            let mut c = cfg;
            (c.frame_len, c.hop, c.n_fft, c.n_mels) = (fl, hop, nf, nm);
            assert!(check_config(&c).is_err(), "{fl} {hop} {nf} {nm}");
        }
        // Conversion helpers.
        assert!(window_q31(&cfg, &mut [0i32; 199]).is_err());
        assert!(quantize_filters(&[0.5, 1.0], &mut [0i16; 1]).is_err());
        assert!(quantize_filters(&[0.5, -1.0], &mut [0i16; 2]).is_err());
        assert!(quantize_filters(&[0.5, f32::NAN], &mut [0i16; 2]).is_err());
        let mut q = [0i16; 3];
        assert_eq!(quantize_filters(&[0.5, 1.0, 0.0], &mut q), Ok(14));
        assert_eq!(q, [8192, 16384, 0]);
        assert_eq!(quantize_filters(&[0.99, 0.0, 0.25], &mut q), Ok(15));
        assert_eq!(quantize_filters(&[3.0, 0.0, 0.25], &mut q), Ok(13));
        let mut w = vec![0i32; 200];
        window_q31(&cfg, &mut w).unwrap();
        assert_eq!((w[0], w[100]), (0, i32::MAX));
    }

    /// The same pipeline with the window rounded to Q15: the error it adds (the reason the
    /// window table is Q0.31).
    #[test]
    fn q15_window_costs_accuracy() {
        let t = tables(shipped());
        let w15: Vec<i32> = t
            .win
            .iter()
            .map(|&w| (round_shr_i64(w as i64, 16).min(32767) as i32) << 16)
            .collect();
        let (mut e31, mut e15) = (0f64, 0f64);
        for (name, pcm) in signals() {
            let refs = run_f64(&t, &pcm);
            let rf: Vec<Vec<f64>> = refs.iter().map(|r| r.0.clone()).collect();
            let a = compare(&run_int(&t, &t.win, &pcm), &rf, &refs).all;
            let b = compare(&run_int(&t, &w15, &pcm), &rf, &refs).all;
            println!("window Q31 vs Q15, {name:26}: max |Δ| vs f64 {a:.2e} / {b:.2e}");
            e31 = e31.max(a);
            e15 = e15.max(b);
        }
        println!("window Q31 vs Q15: worst {e31:.2e} / {e15:.2e}");
        assert!(e15 > e31);
    }

    /// A valid configuration with random tables and parameters (for the panic-freedom test).
    fn arb_case() -> impl Strategy<Value = (FrontEndConfig, Vec<i32>, Vec<i16>, u32, u32)> {
        (
            4u32..=10,
            any::<u32>(),
            any::<u32>(),
            1u32..=6,
            1u32..0x7f80_0000,
        )
            .prop_flat_map(|(lg, a, b, nm, eps)| {
                let nf = 1u32 << lg;
                let fl = 2 + a % (nf - 1);
                let hop = 1 + b % fl;
                let mut cfg = shipped();
                (cfg.n_fft, cfg.frame_len, cfg.hop, cfg.n_mels) = (nf, fl, hop, nm);
                cfg.log_eps = f32::from_bits(eps);
                (
                    Just(cfg),
                    proptest::collection::vec(
                        prop_oneof![Just(i32::MIN), Just(i32::MAX), any::<i32>()],
                        fl as usize,
                    ),
                    proptest::collection::vec(
                        prop_oneof![Just(0i16), Just(i16::MAX), 0i16..=i16::MAX],
                        cfg.filterbank_len(),
                    ),
                    0u32..=31,
                    0u32..=24,
                )
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Random (valid) configurations, extreme tables, random state and samples: never a
        /// panic or an arithmetic overflow (tests run with overflow checks).
        #[test]
        fn never_panics((cfg, win, filt, ff, fq) in arb_case(),
                        state in proptest::collection::vec(any::<i32>(), 1026),
                        pcm in proptest::collection::vec(
                            prop_oneof![Just(i16::MIN), Just(i16::MAX), any::<i16>()], 1..1200)) {
            let fe = IntFrontEnd::new(cfg, &win, &filt, ff, fq).unwrap();
            let mut st = state[..IntFrontEnd::state_len(&cfg)].to_vec();
            let mut sc = vec![0i32; IntFrontEnd::scratch_len(&cfg)];
            let mut o = vec![0i16; cfg.n_mels as usize];
            let mut q = vec![0i32; cfg.n_mels as usize];
            let mut frames = 0usize;
            for (i, &s) in pcm.iter().enumerate() {
                let r = if i % 2 == 0 {
                    fe.push(s, &mut st, &mut sc, &mut o)
                } else {
                    fe.push_q24(s, &mut st, &mut sc, &mut q)
                };
                frames += r.unwrap() as usize;
            }
            // After a corrupt state, frames still come every `hop` samples once the ring
            // has filled.
            let fl = cfg.frame_len as usize;
            if pcm.len() >= 2 * fl {
                prop_assert!(frames >= 1);
            }
        }

        /// The shipped configuration with a corrupt state: no panic, counters clamped.
        #[test]
        fn corrupt_state_is_clamped(state in proptest::collection::vec(any::<i32>(), 202),
                                    pcm in proptest::collection::vec(any::<i16>(), 1..300)) {
            let t = tables(shipped());
            let fe = IntFrontEnd::new(t.cfg, &t.win, &t.qf, t.frac, FEAT_FRAC).unwrap();
            let mut st = state.clone();
            let mut sc = vec![0i32; 258];
            let mut o = vec![0i16; 40];
            for &s in &pcm {
                fe.push(s, &mut st, &mut sc, &mut o).unwrap();
                prop_assert!((0..200).contains(&st[200]));
                prop_assert!((0..200).contains(&st[201]));
            }
        }
    }

    /// 16-bit mono PCM samples of a WAV file (minimal RIFF reader for the test data).
    fn read_wav(path: &std::path::Path) -> Option<Vec<i16>> {
        let b = std::fs::read(path).ok()?;
        if b.get(..4)? != b"RIFF" || b.get(8..12)? != b"WAVE" {
            return None;
        }
        let mut i = 12;
        let mut fmt_ok = false;
        while i + 8 <= b.len() {
            let id = &b[i..i + 4];
            let len = u32::from_le_bytes(b[i + 4..i + 8].try_into().ok()?) as usize;
            let body = b.get(i + 8..(i + 8 + len).min(b.len()))?;
            if id == b"fmt " {
                let fmt = u16::from_le_bytes(body.get(..2)?.try_into().ok()?);
                let ch = u16::from_le_bytes(body.get(2..4)?.try_into().ok()?);
                let bits = u16::from_le_bytes(body.get(14..16)?.try_into().ok()?);
                fmt_ok = fmt == 1 && ch == 1 && bits == 16;
            } else if id == b"data" && fmt_ok {
                return Some(
                    body.chunks_exact(2)
                        .map(|c| i16::from_le_bytes([c[0], c[1]]))
                        .collect(),
                );
            }
            i += 8 + len + (len & 1);
        }
        None
    }

    /// Real speech: the FSDD test split (`{digit}_{speaker}_{0..4}.wav`) through both front
    /// ends, and the first 30 files against the f64 reference. Skipped when the data is absent.
    #[test]
    fn fsdd_recordings() {
        let dir = std::env::var_os("TINYSSM_DATA")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| "/work/shared/data".into())
            .join("fsdd/recordings");
        let Ok(rd) = std::fs::read_dir(&dir) else {
            println!("fsdd: {} not found, skipped", dir.display());
            return;
        };
        let mut files: Vec<_> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_stem()
                    .and_then(|s| s.to_str())
                    .and_then(|s| s.rsplit('_').next())
                    .and_then(|s| s.parse::<u32>().ok())
                    .is_some_and(|i| i < 5)
            })
            .collect();
        files.sort();
        let t = tables(shipped());
        let (mut wif, mut wi, mut frames) = (0f64, 0f64, 0usize);
        for (n, p) in files.iter().enumerate() {
            let Some(pcm) = read_wav(p) else { continue };
            let fi = run_int(&t, &t.win, &pcm);
            let ff = run_float(&t, &pcm);
            assert_eq!(fi.len(), ff.len());
            for (a, b) in fi.iter().zip(&ff) {
                assert_eq!(a.0, b.0);
                for (x, y) in a.1.iter().zip(&b.1) {
                    wif = wif.max((x - y).abs());
                }
            }
            frames += fi.len();
            if n < 30 {
                let refs = run_f64(&t, &pcm);
                let rf: Vec<Vec<f64>> = refs.iter().map(|r| r.0.clone()).collect();
                wi = wi.max(compare(&fi, &rf, &refs).all);
            }
        }
        println!(
            "fsdd: {} files, {frames} frames: int vs f32 max |Δ| {wif:.2e} nats; int vs f64 \
             (first 30 files) {wi:.2e}",
            files.len()
        );
        assert!(wif <= 0.003 && wi <= 0.001, "{wif} {wi}");
    }
}
