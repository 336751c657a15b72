//! Mamba-1 block, float and w8a8 step (HF `MambaMixer` semantics).

use super::Mamba1Block;
use crate::blocks::{take, Layer};
use crate::error::StepError;
use crate::kernels::{self, Elem, Kernels, Weights};
use crate::layers::{conv_silu_step, linear};
use crate::probe::{Probe, Site};
use crate::role::Role;

/// One Mamba-1 layer over one stream's residual `resid` (`scratch`: the block scratch,
/// [`BlockKind::scratch_len`](super::BlockKind::scratch_len)).
#[inline]
pub(super) fn layer<P: Probe>(
    c: &Mamba1Block,
    at: Layer<'_, '_>,
    resid: &mut [f32],
    st: &mut [f32],
    scratch: &mut [f32],
    probe: &mut P,
) -> Result<(), StepError> {
    let Layer { m, li } = at;
    let k = m.kernels();
    let (dm, di, n, r, dc) = (
        c.d_model as usize,
        c.d_inner as usize,
        c.d_state as usize,
        c.dt_rank as usize,
        c.d_conv as usize,
    );
    let mut s = scratch;
    let normed = take(&mut s, dm)?;
    let xz = take(&mut s, 2 * di)?;
    let dbc = take(&mut s, r + 2 * n)?;
    let (hist, ssm) = st
        .split_at_mut_checked(di * (dc - 1))
        .ok_or(StepError::Internal)?;
    kernels::rms_norm(k, resid, m.f32s(li, Role::Norm)?, c.norm_eps, normed);
    probe.observe(li, Site::NormOut, normed);
    let b = m.opt_f32s(c.in_proj_bias, li, Role::InProjBias)?;
    linear(k, m.w(li, Role::InProj)?, normed, b, xz)?;
    let (x, z) = xz.split_at_mut(di);
    probe.observe(li, Site::MambaX, x);
    probe.observe(li, Site::MambaZ, z);
    let cb = m.opt_f32s(c.conv_bias, li, Role::ConvB)?;
    // f32, or f16 in format 1.6's compact encoding (`Mamba1Block::compact_dtype`).
    match m.w(li, Role::ConvW)? {
        Weights::F32(w) => conv_silu_step(k, x, hist, w, cb, dc, probe, li)?,
        Weights::F16(w) => conv_silu_step(k, x, hist, w, cb, dc, probe, li)?,
        _ => return Err(StepError::Internal),
    }
    probe.observe(li, Site::MambaConvOut, x);
    linear(k, m.w(li, Role::XProj)?, x, None, dbc)?;
    let (dt_in, bc) = dbc.split_at(r);
    let (bm, cm) = bc.split_at(n);
    probe.observe(li, Site::MambaDtIn, dt_in);
    probe.observe(li, Site::MambaB, bm);
    probe.observe(li, Site::MambaC, cm);
    let (dt_w, dt_b, d) = (
        m.w(li, Role::DtProj)?,
        m.f32s(li, Role::DtProjBias)?,
        m.f32s(li, Role::D)?,
    );
    let scan: Scan<'_, f32> = Scan {
        dt_in,
        bm,
        cm,
        dt_w,
        dt_b,
        a: &[],
        d,
    };
    match m.w(li, Role::A)? {
        Weights::F32(a) => ssm_update(k, x, z, ssm, &scan.with_a(a), probe, li)?,
        Weights::F16(a) => ssm_update(k, x, z, ssm, &scan.with_a(a), probe, li)?,
        _ => return Err(StepError::Internal),
    }
    probe.observe(li, Site::MambaGated, x);
    let ob = m.opt_f32s(c.out_proj_bias, li, Role::OutProjBias)?;
    linear(k, m.w(li, Role::OutProj)?, x, ob, normed)?;
    probe.observe(li, Site::MambaOutProj, normed);
    for (r, o) in resid.iter_mut().zip(normed.iter()) {
        *r += *o;
    }
    probe.observe(None, Site::Resid, resid);
    Ok(())
}

/// Channels [`ssm_update_fast`] takes at a time: their softplus and SiLU run as one
/// (vectorizable) loop each.
const FAST_BLOCK: usize = 16;

/// [`ssm_update`] with the fast kernels (lengths checked there): per block of channels
/// the dt projections, then softplus and SiLU over the block, then each channel's scan
/// fused with its `C·h` ([`kernels::fast::scan_row`]). Inlined into both of its calls:
/// the plain one and the AVX2-compiled one (`crate::simd::with_avx2`, the same bits).
#[inline(always)]
fn ssm_update_fast<A: Elem>(
    x: &mut [f32],
    z: &[f32],
    ssm: &mut [f32],
    s: &Scan<'_, A>,
    probe: &mut impl Probe,
    li: Option<u16>,
) -> Result<(), StepError> {
    let (n, r) = (s.bm.len(), s.dt_in.len());
    if n == 0 {
        return Err(StepError::Internal);
    }
    let blocks = x
        .chunks_mut(FAST_BLOCK)
        .zip(ssm.chunks_mut(FAST_BLOCK * n))
        .zip(s.a.chunks(FAST_BLOCK * n))
        .zip(z.chunks(FAST_BLOCK))
        .zip(s.d.chunks(FAST_BLOCK))
        .zip(s.dt_b.chunks(FAST_BLOCK));
    for (i, (((((xb, hb), ab), zb), db), bb)) in blocks.enumerate() {
        let m = xb.len();
        let mut dt = [0f32; FAST_BLOCK];
        for (j, (t, &b)) in dt.iter_mut().zip(bb).enumerate() {
            let ch = FAST_BLOCK * i + j;
            *t = match s.dt_w {
                kernels::Weights::F32(w) => kernels::fast::dot(&w[ch * r..(ch + 1) * r], s.dt_in),
                _ => kernels::dot_row(Kernels::Fast, s.dt_w, ch, r, s.dt_in),
            } + b;
        }
        probe.observe(li, Site::MambaSoftplusIn, &dt[..m]);
        for t in dt.iter_mut() {
            *t = kernels::fast::softplus(*t);
        }
        let mut gate = [0f32; FAST_BLOCK];
        gate[..m].copy_from_slice(zb);
        for g in gate.iter_mut() {
            *g = kernels::fast::silu(*g);
        }
        let rows = hb.chunks_exact_mut(n).zip(ab.chunks_exact(n));
        for (j, ((xc, (hrow, arow)), &dj)) in xb.iter_mut().zip(rows).zip(db).enumerate() {
            let u = *xc;
            let y = kernels::fast::scan_row(hrow, arow, s.bm, s.cm, dt[j], u);
            probe.observe(li, Site::State, hrow);
            let y = y + u * dj;
            probe.observe(li, Site::MambaY, core::slice::from_ref(&y));
            *xc = y * gate[j];
        }
    }
    Ok(())
}

/// One layer's selective-scan inputs: the step's `dt_in`, `B`, `C` (from x_proj) and the
/// layer's dt projection (weights, bias), `A` (f32, or f16 in a compact blob) and `D`.
#[derive(Clone, Copy)]
struct Scan<'a, A> {
    dt_in: &'a [f32],
    bm: &'a [f32],
    cm: &'a [f32],
    dt_w: kernels::Weights<'a>,
    dt_b: &'a [f32],
    a: &'a [A],
    d: &'a [f32],
}

impl<'a, A> Scan<'a, A> {
    /// The same inputs with `A` in another encoding.
    fn with_a<B>(&self, a: &'a [B]) -> Scan<'a, B> {
        Scan {
            dt_in: self.dt_in,
            bm: self.bm,
            cm: self.cm,
            dt_w: self.dt_w,
            dt_b: self.dt_b,
            a,
            d: self.d,
        }
    }
}

/// Selective-scan step for every channel: dt = softplus(dt_proj · dt_in + b),
/// h ← exp(dt·A) ⊙ h + (dt·B)·u, y = C·h + D·u, y·SiLU(z) → written over `x`.
fn ssm_update<A: Elem>(
    k: Kernels,
    x: &mut [f32],
    z: &[f32],
    ssm: &mut [f32],
    s: &Scan<'_, A>,
    probe: &mut impl Probe,
    li: Option<u16>,
) -> Result<(), StepError> {
    let Scan {
        dt_in,
        bm,
        cm,
        dt_w,
        dt_b,
        a,
        d,
    } = *s;
    let (di, n, r) = (x.len(), bm.len(), dt_in.len());
    if ssm.len() != di * n
        || a.len() != di * n
        || dt_b.len() != di
        || d.len() != di
        || z.len() != di
        || !dt_w.is_matrix(di, r)
        || cm.len() != n
    {
        return Err(StepError::Internal);
    }
    if k == Kernels::Fast {
        #[cfg(target_arch = "x86_64")]
        if let Some(t) = crate::simd::Avx2::detect() {
            return crate::simd::with_avx2(
                t,
                #[inline(always)]
                || ssm_update_fast(x, z, ssm, s, probe, li),
            );
        }
        return ssm_update_fast(x, z, ssm, s, probe, li);
    }
    for (ch, ((xc, hrow), arow)) in x
        .iter_mut()
        .zip(ssm.chunks_exact_mut(n))
        .zip(a.chunks_exact(n))
        .enumerate()
    {
        let sp = kernels::dot_row(k, dt_w, ch, r, dt_in) + dt_b[ch];
        probe.observe(li, Site::MambaSoftplusIn, core::slice::from_ref(&sp));
        let dt = kernels::softplus(k, sp);
        let u = *xc;
        let mut y = 0.0f32;
        for (((h, &av), &bv), &cv) in hrow.iter_mut().zip(arow).zip(bm).zip(cm) {
            *h = kernels::reference::exp(dt * av.get()) * *h + (dt * bv) * u;
            y += *h * cv;
        }
        probe.observe(li, Site::State, hrow);
        let y = y + u * d[ch];
        probe.observe(li, Site::MambaY, core::slice::from_ref(&y));
        *xc = y * kernels::silu(k, z[ch]);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::NoProbe;

    /// The fast scan compiled for AVX2 (`simd::with_avx2`, eight lanes) gives the bits of
    /// the baseline build's four-lane code, state and outputs, for ragged channel blocks.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_compiled_scan_gives_the_baseline_bits() {
        let Some(t) = crate::simd::Avx2::detect() else {
            std::println!("skipped: no AVX2 on this CPU");
            return;
        };
        let mut s = 0x2545_f491_4f6c_dd1du64;
        let mut rnd = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        };
        for (di, n, r) in [
            (37usize, 16usize, 5usize),
            (64, 8, 16),
            (5, 3, 1),
            (48, 16, 3),
        ] {
            let dt_in: std::vec::Vec<f32> = (0..r).map(|_| rnd()).collect();
            let bm: std::vec::Vec<f32> = (0..n).map(|_| rnd()).collect();
            let cm: std::vec::Vec<f32> = (0..n).map(|_| rnd()).collect();
            let dt_w: std::vec::Vec<f32> = (0..di * r).map(|_| rnd()).collect();
            let dt_b: std::vec::Vec<f32> = (0..di).map(|_| rnd() - 2.0).collect();
            let a: std::vec::Vec<f32> = (0..di * n).map(|_| -(rnd().abs() * 8.0)).collect();
            let d: std::vec::Vec<f32> = (0..di).map(|_| rnd()).collect();
            let z: std::vec::Vec<f32> = (0..di).map(|_| rnd() * 6.0).collect();
            let x0: std::vec::Vec<f32> = (0..di).map(|_| rnd() * 3.0).collect();
            let h0: std::vec::Vec<f32> = (0..di * n).map(|_| rnd()).collect();
            let scan = Scan {
                dt_in: &dt_in,
                bm: &bm,
                cm: &cm,
                dt_w: kernels::Weights::F32(&dt_w),
                dt_b: &dt_b,
                a: &a,
                d: &d,
            };
            let (mut xa, mut ha) = (x0.clone(), h0.clone());
            let (mut xb, mut hb) = (x0.clone(), h0.clone());
            for _ in 0..3 {
                ssm_update_fast(&mut xa, &z, &mut ha, &scan, &mut NoProbe, None).unwrap();
                crate::simd::with_avx2(
                    t,
                    #[inline(always)]
                    || ssm_update_fast(&mut xb, &z, &mut hb, &scan, &mut NoProbe, None),
                )
                .unwrap();
            }
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<std::vec::Vec<_>>();
            assert_eq!(bits(&xa), bits(&xb), "outputs, {di}x{n}");
            assert_eq!(bits(&ha), bits(&hb), "state, {di}x{n}");
            // The dt projection at f16 (as int8 conversions store it).
            let w16: std::vec::Vec<half::f16> =
                dt_w.iter().map(|&v| half::f16::from_f32(v)).collect();
            let scan = Scan {
                dt_w: kernels::Weights::F16(&w16),
                ..scan
            };
            ssm_update_fast(&mut xa, &z, &mut ha, &scan, &mut NoProbe, None).unwrap();
            crate::simd::with_avx2(
                t,
                #[inline(always)]
                || ssm_update_fast(&mut xb, &z, &mut hb, &scan, &mut NoProbe, None),
            )
            .unwrap();
            assert_eq!(bits(&xa), bits(&xb), "outputs (f16 dt), {di}x{n}");
            assert_eq!(bits(&ha), bits(&hb), "state (f16 dt), {di}x{n}");
        }
    }
}
