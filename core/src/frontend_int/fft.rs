//! The integer real FFT: quarter-wave sine table (Q1.30, built at compile time),
//! block-floating-point radix-2 complex FFT and the real-FFT split step (scaling rules in
//! the module docs of [`super`]).

use crate::fixed::{round_shr_i64, round_shr_u64, saturate_i32};
use crate::frontend::MAX_N_FFT;

/// `π · 2^62`, rounded.
pub(super) const PI_Q62: i128 = 14_488_038_916_154_245_685;
/// Quarter of the largest FFT: the sine table covers `[0, π/2]` in steps of `2π / MAX_N_FFT`.
pub(super) const QUARTER: usize = MAX_N_FFT as usize / 4;
/// Block limit before a butterfly stage.
pub(super) const STAGE_LIMIT: u32 = 1 << 29;
/// Block limit before the real-FFT split step.
pub(super) const SPLIT_LIMIT: u32 = 1 << 28;

/// `sin(2π i / MAX_N_FFT)` for `i = 0..=MAX_N_FFT/4`, Q1.30, computed at compile time.
pub(super) static SIN_Q30: [i32; QUARTER + 1] = sin_table();

pub(super) const fn sin_table() -> [i32; QUARTER + 1] {
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
pub(super) const fn sin_entry(i: i128) -> i32 {
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
pub(super) fn sin_q30(t: usize) -> i32 {
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
pub(super) fn cos_q30(t: usize) -> i32 {
    sin_q30(t % MAX_N_FFT as usize + QUARTER)
}

/// Number of significant bits (`0` for `0`).
#[inline]
pub(super) const fn bits(v: u64) -> u32 {
    64 - v.leading_zeros()
}

#[inline]
pub(super) fn rd(buf: &[i32], k: usize) -> i32 {
    buf.get(k).copied().unwrap_or(0)
}

#[inline]
pub(super) fn wr(buf: &mut [i32], k: usize, v: i32) {
    if let Some(x) = buf.get_mut(k) {
        *x = v;
    }
}

/// Scales `buf` down by the smallest rounding shift that brings every component to at most
/// `limit`; returns the shift (to be added to the block exponent).
pub(super) fn fit(buf: &mut [i32], limit: u32) -> i32 {
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
pub(super) fn fft_complex(buf: &mut [i32]) -> i32 {
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
pub(super) fn rfft_q(buf: &mut [i32]) -> Option<i32> {
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
