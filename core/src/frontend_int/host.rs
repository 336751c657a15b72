//! Tables built at conversion time on the host (these two functions use floats): the Q0.31
//! window and the `i16` filterbank.

use crate::error::FormatError;
use crate::frontend::FrontEndConfig;

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
