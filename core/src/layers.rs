//! Building blocks shared by the architectures, with their length checks (a failed check
//! is `StepError::Internal`, never a panic).

use crate::error::StepError;
use crate::kernels::{self, Kernels, Weights};

/// `out = W x (+ b)` for `W` of shape `[out.len(), x.len()]`.
pub(crate) fn linear(
    k: Kernels,
    w: Weights<'_>,
    x: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
) -> Result<(), StepError> {
    let rows = out.len();
    let cols = x.len();
    if !w.is_matrix(rows, cols) {
        return Err(StepError::Internal);
    }
    if let Some(b) = bias {
        if b.len() != rows {
            return Err(StepError::Internal);
        }
    }
    kernels::matvec(k, w, cols, x, bias, out);
    Ok(())
}

/// `out = B · f(A · x)` for a low-rank pair (A: [r, d], B: [d, r]); `tmp` ≥ r.
pub(crate) fn lora(
    k: Kernels,
    a: Weights<'_>,
    b: Weights<'_>,
    x: &[f32],
    tmp: &mut [f32],
    f: impl Fn(f32) -> f32,
    out: &mut [f32],
) -> Result<(), StepError> {
    let r = a.len() / x.len().max(1);
    let t = tmp.get_mut(..r).ok_or(StepError::Internal)?;
    linear(k, a, x, None, t)?;
    for v in t.iter_mut() {
        *v = f(*v);
    }
    linear(k, b, t, None, out)
}

/// Causal depthwise conv1d step with SiLU, in place over `x` (one value per channel).
///
/// `hist` holds, per channel, the previous `d_conv - 1` inputs oldest first; weight row
/// `w[c*d_conv .. (c+1)*d_conv]` multiplies `[hist..., x]` (the newest input last, as a
/// rolled conv state does).
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_silu_step<W: kernels::Elem>(
    k: Kernels,
    x: &mut [f32],
    hist: &mut [f32],
    w: &[W],
    bias: Option<&[f32]>,
    d_conv: usize,
    probe: &mut impl crate::probe::Probe,
    layer: Option<u16>,
) -> Result<(), StepError> {
    let ch = x.len();
    let h = d_conv.checked_sub(1).ok_or(StepError::Internal)?;
    if hist.len() != ch * h || w.len() != ch * d_conv || bias.is_some_and(|b| b.len() != ch) {
        return Err(StepError::Internal);
    }
    if h == 0 {
        for (c, xc) in x.iter_mut().enumerate() {
            let mut acc = w[c].get() * *xc;
            if let Some(b) = bias {
                acc += b[c];
            }
            probe.observe(
                layer,
                crate::probe::Site::MambaConvPre,
                core::slice::from_ref(&acc),
            );
            *xc = kernels::silu(k, acc);
        }
        return Ok(());
    }
    for (c, (xc, (hc, wc))) in x
        .iter_mut()
        .zip(hist.chunks_exact_mut(h).zip(w.chunks_exact(d_conv)))
        .enumerate()
    {
        let mut acc = 0.0f32;
        for (hv, wv) in hc.iter().zip(wc) {
            acc += hv * wv.get();
        }
        acc += *xc * wc[h].get();
        if let Some(b) = bias {
            acc += b[c];
        }
        // Shift the history by one (element moves: no `memmove` call per channel).
        for i in 1..h {
            hc[i - 1] = hc[i];
        }
        hc[h - 1] = *xc;
        probe.observe(
            layer,
            crate::probe::Site::MambaConvPre,
            core::slice::from_ref(&acc),
        );
        *xc = acc;
    }
    // SiLU as its own pass over the channels (the same value per channel; with the
    // branch-free `Kernels::Fast` exp the loop vectorizes).
    for xc in x.iter_mut() {
        *xc = kernels::silu(k, *xc);
    }
    Ok(())
}
