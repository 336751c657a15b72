//! RWKV blocks: v4 ([`v4`]), v5.1/v5.2 ([`v5`]), v6 ([`v6`]), v7 ([`v7`]), each its own
//! kind; what they share (token shift forms, the channel mix) is here. Every version's
//! input stage is the embedding with `ln0` and its head `ln_out` and the LM head
//! ([`crate::stack::Stem::EmbeddingLn`], [`crate::stack::FinalNorm::Layer`]).

pub mod v4;
pub mod v5;
pub mod v6;
pub mod v7;

pub use v4::RwkvConfig;
pub use v5::Rwkv5Config;
pub use v6::Rwkv6Config;
pub use v7::Rwkv7Config;

use crate::blocks::Layer;
use crate::error::StepError;
use crate::kernels;
use crate::layers::linear;
use crate::role::Role;
use crate::stages::{FinalNorm, Head, Out, Stem};

/// Input stage and head of an RWKV model.
pub(crate) fn stages(vocab: u32, eps: f32) -> (Stem, Head) {
    (
        Stem::EmbeddingLn { vocab, eps },
        Head {
            norm: FinalNorm::Layer { eps },
            out: Out::LmHead { tied: false },
        },
    )
}

/// `out = x + (prev - x) * m` (the token-shift form of v6 and v7, `time_maa_*` / `x_*`).
pub(crate) fn shift(x: &[f32], prev: &[f32], m: &[f32], out: &mut [f32]) {
    for (((o, &xv), &pv), &mv) in out.iter_mut().zip(x).zip(prev).zip(m) {
        *o = xv + (pv - xv) * mv;
    }
}

/// How a block mixes the current and the previous input.
pub(crate) type ShiftFn = fn(&[f32], &[f32], &[f32], &mut [f32]);

/// `out = x * m + prev * (1 - m)` (token shift of v4 and v5, `time_mix_*`).
pub(crate) fn mix(x: &[f32], prev: &[f32], m: &[f32], out: &mut [f32]) {
    for (((o, &xv), &pv), &mv) in out.iter_mut().zip(x).zip(prev).zip(m) {
        *o = xv * mv + pv * (1.0 - mv);
    }
}

/// The channel-mix block shared by RWKV v4, v5 and v6: `x += σ(Wr·xr) ⊙ Wv·relu(Wk·xk)²`,
/// `xr`/`xk` from the token shift `shift` (v4/v5 [`mix`], v6 [`shift`]).
#[allow(clippy::too_many_arguments)]
pub(crate) fn channel_mix(
    at: Layer<'_, '_>,
    shift: ShiftFn,
    eps: f32,
    x: &mut [f32],
    ln: &mut [f32],
    xm: &mut [f32],
    r: &mut [f32],
    kf: &mut [f32],
    o: &mut [f32],
    ffn_xx: &mut [f32],
) -> Result<(), StepError> {
    let Layer { m, li } = at;
    let k = m.kernels();
    kernels::layer_norm(
        x,
        m.f32s(li, Role::Norm2)?,
        m.f32s(li, Role::Norm2Bias)?,
        eps,
        ln,
    );
    shift(ln, ffn_xx, m.f32s(li, Role::FfnMixR)?, xm);
    linear(k, m.w(li, Role::FfnReceptance)?, xm, None, r)?;
    shift(ln, ffn_xx, m.f32s(li, Role::FfnMixK)?, xm);
    linear(k, m.w(li, Role::FfnKey)?, xm, None, kf)?;
    ffn_xx.copy_from_slice(ln);
    for h in kf.iter_mut() {
        let rl = if *h > 0.0 { *h } else { 0.0 };
        *h = rl * rl;
    }
    linear(k, m.w(li, Role::FfnValue)?, kf, None, o)?;
    for ((xv, ov), rv) in x.iter_mut().zip(o.iter()).zip(r.iter()) {
        *xv += kernels::sigmoid(k, *rv) * *ov;
    }
    Ok(())
}
