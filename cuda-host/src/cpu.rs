//! The CPU backend: plain Rust, multithreaded with rayon over independent rows, streams or
//! output channels. Every reduction runs in a fixed order, so results do not depend on
//! the thread count or on scheduling (training is reproducible from its seed).

use rayon::prelude::*;

use crate::backend::{
    contract, AdamW, Backend, Result, ScanDims, SelScanDims, SelScanGrads, SelScanIn, SsdDims,
    SsdGrads, SsdIn,
};

/// The CPU reference backend.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu;

/// Rows per rayon task for cheap element-wise work.
const CHUNK: usize = 4096;

fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + libm::erff(x * core::f32::consts::FRAC_1_SQRT_2))
}

fn gelu_grad(x: f32) -> f32 {
    let cdf = 0.5 * (1.0 + libm::erff(x * core::f32::consts::FRAC_1_SQRT_2));
    let pdf = libm::expf(-0.5 * x * x) * 0.398_942_3;
    cdf + x * pdf
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + libm::expf(-x))
}

/// `ln(1 + e^x)` as the core's reference kernel computes it.
fn softplus(x: f32) -> f32 {
    if x > 20.0 {
        x
    } else {
        libm::log1pf(libm::expf(x))
    }
}

/// As the core computes it: `x / (1 + e^−x)`.
fn silu(x: f32) -> f32 {
    x / (1.0 + libm::expf(-x))
}

fn silu_grad(x: f32) -> f32 {
    let s = sigmoid(x);
    s * (1.0 + x * (1.0 - s))
}

impl Backend for Cpu {
    type Buf = Vec<f32>;

    fn name(&self) -> String {
        format!("cpu ({} threads)", rayon::current_num_threads())
    }
    fn upload(&self, x: &[f32]) -> Result<Vec<f32>> {
        Ok(x.to_vec())
    }
    fn zeros(&self, n: usize) -> Result<Vec<f32>> {
        Ok(vec![0.0; n])
    }
    fn download(&self, b: &Vec<f32>) -> Result<Vec<f32>> {
        Ok(b.clone())
    }
    fn buf_len(&self, b: &Vec<f32>) -> usize {
        b.len()
    }
    fn fill(&self, b: &mut Vec<f32>, v: f32) -> Result<()> {
        b.fill(v);
        Ok(())
    }
    fn add_assign(&self, y: &mut Vec<f32>, x: &Vec<f32>) -> Result<()> {
        contract::add_assign(self, y, x)?;
        y.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .for_each(|(y, x)| y.iter_mut().zip(x).for_each(|(a, b)| *a += b));
        Ok(())
    }

    fn linear_fwd(
        &self,
        x: &Vec<f32>,
        w: &Vec<f32>,
        b: Option<&Vec<f32>>,
        rows: usize,
        din: usize,
        dout: usize,
        y: &mut Vec<f32>,
    ) -> Result<()> {
        contract::linear_fwd(self, x, w, b, rows, din, dout, y)?;
        y.par_chunks_mut(dout)
            .zip(x.par_chunks(din))
            .for_each(|(yr, xr)| {
                for (o, (yo, wr)) in yr.iter_mut().zip(w.chunks_exact(din)).enumerate() {
                    let mut acc = 0.0f32;
                    for (a, c) in xr.iter().zip(wr) {
                        acc += a * c;
                    }
                    *yo = acc + b.map_or(0.0, |b| b[o]);
                }
            });
        Ok(())
    }

    fn linear_bwd(
        &self,
        x: &Vec<f32>,
        w: &Vec<f32>,
        dy: &Vec<f32>,
        rows: usize,
        din: usize,
        dout: usize,
        dx: Option<&mut Vec<f32>>,
        dw: &mut Vec<f32>,
        db: Option<&mut Vec<f32>>,
    ) -> Result<()> {
        contract::linear_bwd(
            self,
            x,
            w,
            dy,
            rows,
            din,
            dout,
            dx.as_deref(),
            dw,
            db.as_deref(),
        )?;
        if let Some(dx) = dx {
            dx.par_chunks_mut(din)
                .zip(dy.par_chunks(dout))
                .for_each(|(dxr, dyr)| {
                    dxr.fill(0.0);
                    for (&g, wr) in dyr.iter().zip(w.chunks_exact(din)) {
                        for (d, &wv) in dxr.iter_mut().zip(wr) {
                            *d += g * wv;
                        }
                    }
                });
        }
        // dw[o, :] += Σ_r dy[r, o] x[r, :], one output row per task, rows in order.
        dw.par_chunks_mut(din).enumerate().for_each(|(o, dwr)| {
            for (xr, dyr) in x.chunks_exact(din).zip(dy.chunks_exact(dout)) {
                let g = dyr[o];
                if g != 0.0 {
                    for (d, &xv) in dwr.iter_mut().zip(xr) {
                        *d += g * xv;
                    }
                }
            }
        });
        if let Some(db) = db {
            db.par_iter_mut().enumerate().for_each(|(o, d)| {
                let mut acc = 0.0f32;
                for dyr in dy.chunks_exact(dout) {
                    acc += dyr[o];
                }
                *d += acc;
            });
        }
        Ok(())
    }

    fn layer_norm_fwd(
        &self,
        x: &Vec<f32>,
        g: &Vec<f32>,
        b: &Vec<f32>,
        rows: usize,
        d: usize,
        eps: f32,
        y: &mut Vec<f32>,
        stats: &mut Vec<f32>,
    ) -> Result<()> {
        contract::layer_norm_fwd(self, x, g, b, rows, d, y, stats)?;
        y.par_chunks_mut(d)
            .zip(x.par_chunks(d))
            .zip(stats.par_chunks_mut(2))
            .for_each(|((yr, xr), st)| {
                // Same arithmetic as the core's layer_norm.
                let mut mean = 0.0f32;
                for &v in xr {
                    mean += v;
                }
                mean /= d as f32;
                let mut var = 0.0f32;
                for &v in xr {
                    let c = v - mean;
                    var += c * c;
                }
                var /= d as f32;
                let inv = 1.0 / libm::sqrtf(var + eps);
                for (((o, &xi), &wi), &bi) in yr.iter_mut().zip(xr).zip(g).zip(b) {
                    *o = (xi - mean) * inv * wi + bi;
                }
                st[0] = mean;
                st[1] = inv;
            });
        Ok(())
    }

    fn layer_norm_bwd(
        &self,
        x: &Vec<f32>,
        g: &Vec<f32>,
        stats: &Vec<f32>,
        dy: &Vec<f32>,
        rows: usize,
        d: usize,
        dx: &mut Vec<f32>,
        dg: &mut Vec<f32>,
        db: &mut Vec<f32>,
    ) -> Result<()> {
        contract::layer_norm_bwd(self, x, g, stats, dy, rows, d, dx, dg, db)?;
        dx.par_chunks_mut(d)
            .zip(x.par_chunks(d))
            .zip(dy.par_chunks(d))
            .zip(stats.par_chunks(2))
            .for_each(|(((dxr, xr), dyr), st)| {
                let (mean, inv) = (st[0], st[1]);
                // xhat = (x - mean) inv; dxhat = dy g
                let mut s1 = 0.0f32;
                let mut s2 = 0.0f32;
                for ((&xi, &gy), &gi) in xr.iter().zip(dyr).zip(g) {
                    let xh = (xi - mean) * inv;
                    let dxh = gy * gi;
                    s1 += dxh;
                    s2 += dxh * xh;
                }
                let n = d as f32;
                for (((o, &xi), &gy), &gi) in dxr.iter_mut().zip(xr).zip(dyr).zip(g) {
                    let xh = (xi - mean) * inv;
                    *o = inv * (gy * gi - s1 / n - xh * s2 / n);
                }
            });
        // Parameter gradients: one channel per task, rows in order.
        dg.par_iter_mut()
            .zip(db.par_iter_mut())
            .enumerate()
            .for_each(|(j, (dgj, dbj))| {
                let (mut a, mut c) = (0.0f32, 0.0f32);
                for ((xr, dyr), st) in x
                    .chunks_exact(d)
                    .zip(dy.chunks_exact(d))
                    .zip(stats.chunks_exact(2))
                {
                    a += dyr[j] * (xr[j] - st[0]) * st[1];
                    c += dyr[j];
                }
                *dgj += a;
                *dbj += c;
            });
        Ok(())
    }

    fn gelu_fwd(&self, x: &Vec<f32>, y: &mut Vec<f32>) -> Result<()> {
        contract::gelu_fwd(self, x, y)?;
        y.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .for_each(|(y, x)| y.iter_mut().zip(x).for_each(|(o, &v)| *o = gelu(v)));
        Ok(())
    }
    fn gelu_bwd(&self, x: &Vec<f32>, dy: &Vec<f32>, dx: &mut Vec<f32>) -> Result<()> {
        contract::gelu_bwd(self, x, dy, dx)?;
        dx.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK).zip(dy.par_chunks(CHUNK)))
            .for_each(|(dx, (x, dy))| {
                for ((o, &v), &g) in dx.iter_mut().zip(x).zip(dy) {
                    *o = g * gelu_grad(v);
                }
            });
        Ok(())
    }

    fn glu_fwd(&self, x: &Vec<f32>, rows: usize, d: usize, y: &mut Vec<f32>) -> Result<()> {
        contract::glu_fwd(self, x, rows, d, y)?;
        y.par_chunks_mut(d)
            .zip(x.par_chunks(2 * d))
            .for_each(|(yr, xr)| {
                let (a, g) = xr.split_at(d);
                for ((o, &av), &gv) in yr.iter_mut().zip(a).zip(g) {
                    *o = av * sigmoid(gv);
                }
            });
        Ok(())
    }
    fn glu_bwd(
        &self,
        x: &Vec<f32>,
        dy: &Vec<f32>,
        rows: usize,
        d: usize,
        dx: &mut Vec<f32>,
    ) -> Result<()> {
        contract::glu_bwd(self, x, dy, rows, d, dx)?;
        dx.par_chunks_mut(2 * d)
            .zip(x.par_chunks(2 * d).zip(dy.par_chunks(d)))
            .for_each(|(dxr, (xr, dyr))| {
                let (a, g) = xr.split_at(d);
                let (da, dg) = dxr.split_at_mut(d);
                for j in 0..d {
                    let s = sigmoid(g[j]);
                    da[j] = dyr[j] * s;
                    dg[j] = dyr[j] * a[j] * s * (1.0 - s);
                }
            });
        Ok(())
    }

    fn s4d_scan_fwd(
        &self,
        dims: ScanDims,
        u: &Vec<f32>,
        da: &Vec<f32>,
        cb: &Vec<f32>,
        dskip: &Vec<f32>,
        y: &mut Vec<f32>,
        states: &mut Vec<f32>,
    ) -> Result<()> {
        contract::s4d_scan_fwd(self, dims, u, da, cb, dskip, y, states)?;
        let ScanDims { time, h, n2, .. } = dims;
        let per = h * n2 * 2;
        y.par_chunks_mut(time * h)
            .zip(states.par_chunks_mut(time * per))
            .zip(u.par_chunks(time * h))
            .for_each(|((yb, sb), ub)| {
                for t in 0..time {
                    let (prev, cur) = sb.split_at_mut(t * per);
                    let cur = &mut cur[..per];
                    let prev = if t > 0 {
                        Some(&prev[(t - 1) * per..])
                    } else {
                        None
                    };
                    for c in 0..h {
                        let uv = ub[t * h + c];
                        let mut acc = 0.0f32;
                        for m in 0..n2 {
                            let i = (c * n2 + m) * 2;
                            let (hr, hi) = prev.map_or((0.0, 0.0), |p| (p[i], p[i + 1]));
                            // Same arithmetic as the core's S4D step.
                            let nr = (da[i] * hr - da[i + 1] * hi) + uv;
                            let ni = da[i] * hi + da[i + 1] * hr;
                            cur[i] = nr;
                            cur[i + 1] = ni;
                            acc += cb[i] * nr - cb[i + 1] * ni;
                        }
                        yb[t * h + c] = 2.0 * acc + dskip[c] * uv;
                    }
                }
            });
        Ok(())
    }

    fn s4d_scan_bwd(
        &self,
        dims: ScanDims,
        u: &Vec<f32>,
        da: &Vec<f32>,
        cb: &Vec<f32>,
        dskip: &Vec<f32>,
        states: &Vec<f32>,
        dy: &Vec<f32>,
        du: &mut Vec<f32>,
        dda: &mut Vec<f32>,
        dcb: &mut Vec<f32>,
        ddskip: &mut Vec<f32>,
    ) -> Result<()> {
        contract::s4d_scan_bwd(
            self, dims, u, da, cb, dskip, states, dy, du, dda, dcb, ddskip,
        )?;
        let ScanDims { time, h, n2, .. } = dims;
        let per = h * n2 * 2;
        // Per-stream parameter gradients, summed in stream order afterwards.
        let partial: Vec<(Vec<f32>, Vec<f32>, Vec<f32>)> = du
            .par_chunks_mut(time * h)
            .zip(u.par_chunks(time * h))
            .zip(dy.par_chunks(time * h))
            .zip(states.par_chunks(time * per))
            .map(|(((dub, ub), dyb), sb)| {
                let mut g_da = vec![0.0f32; per];
                let mut g_cb = vec![0.0f32; per];
                let mut g_d = vec![0.0f32; h];
                // λ: adjoint of the state, carried backwards in time.
                let mut lam = vec![0.0f32; per];
                for t in (0..time).rev() {
                    let cur = &sb[t * per..(t + 1) * per];
                    for c in 0..h {
                        let gy = dyb[t * h + c];
                        let uv = ub[t * h + c];
                        g_d[c] += gy * uv;
                        let mut gu = dskip[c] * gy;
                        for m in 0..n2 {
                            let i = (c * n2 + m) * 2;
                            let (hr, hi) = (cur[i], cur[i + 1]);
                            // y = 2 (cr hr − ci hi)
                            g_cb[i] += 2.0 * gy * hr;
                            g_cb[i + 1] -= 2.0 * gy * hi;
                            let lr = lam[i] + 2.0 * gy * cb[i];
                            let li = lam[i + 1] - 2.0 * gy * cb[i + 1];
                            // s_t = dA s_{t−1} + u_t
                            gu += lr;
                            let (pr, pi) = if t > 0 {
                                (sb[(t - 1) * per + i], sb[(t - 1) * per + i + 1])
                            } else {
                                (0.0, 0.0)
                            };
                            g_da[i] += lr * pr + li * pi;
                            g_da[i + 1] += -lr * pi + li * pr;
                            // λ_{t−1} = conj-transpose of the multiplication by dA
                            lam[i] = da[i] * lr + da[i + 1] * li;
                            lam[i + 1] = -da[i + 1] * lr + da[i] * li;
                        }
                        dub[t * h + c] = gu;
                    }
                }
                (g_da, g_cb, g_d)
            })
            .collect();
        for (a, c, d) in partial {
            dda.iter_mut().zip(&a).for_each(|(x, v)| *x += v);
            dcb.iter_mut().zip(&c).for_each(|(x, v)| *x += v);
            ddskip.iter_mut().zip(&d).for_each(|(x, v)| *x += v);
        }
        Ok(())
    }

    fn selective_scan_fwd(
        &self,
        dims: SelScanDims,
        x: SelScanIn<'_, Vec<f32>>,
        y: &mut Vec<f32>,
        states: &mut Vec<f32>,
    ) -> Result<()> {
        contract::selective_scan_fwd(self, dims, &x, y, states)?;
        let SelScanDims { time, d, n, .. } = dims;
        y.par_chunks_mut(time * d)
            .zip(states.par_chunks_mut(time * d * n))
            .enumerate()
            .for_each(|(b, (yb, sb))| {
                let mut h = vec![0f32; d * n];
                for t in 0..time {
                    let r = b * time + t;
                    let (bv, cv) = (&x.bm[r * n..(r + 1) * n], &x.cm[r * n..(r + 1) * n]);
                    for c in 0..d {
                        let dt = softplus(x.dt[r * d + c] + x.bias[c]);
                        let u = x.u[r * d + c];
                        let hr = &mut h[c * n..(c + 1) * n];
                        let ar = &x.a[c * n..(c + 1) * n];
                        let mut acc = 0.0f32;
                        for j in 0..n {
                            hr[j] = libm::expf(dt * ar[j]) * hr[j] + (dt * bv[j]) * u;
                            acc += hr[j] * cv[j];
                        }
                        let yc = acc + u * x.dskip[c];
                        yb[t * d + c] = yc * silu(x.z[r * d + c]);
                    }
                    sb[t * d * n..(t + 1) * d * n].copy_from_slice(&h);
                }
            });
        Ok(())
    }

    fn selective_scan_bwd(
        &self,
        dims: SelScanDims,
        x: SelScanIn<'_, Vec<f32>>,
        states: &Vec<f32>,
        dy: &Vec<f32>,
        g: SelScanGrads<'_, Vec<f32>>,
    ) -> Result<()> {
        contract::selective_scan_bwd(self, dims, &x, states, dy, &g)?;
        let SelScanDims { time, d, n, .. } = dims;
        type Partial = (Vec<f32>, Vec<f32>, Vec<f32>);
        // One stream per task: its du/ddt/dz/dB/dC rows are disjoint; dA/dD/dbias are
        // summed per stream, then across streams in order.
        let partial: Vec<Partial> =
            g.du.par_chunks_mut(time * d)
                .zip(g.ddt.par_chunks_mut(time * d))
                .zip(g.dz.par_chunks_mut(time * d))
                .zip(g.dbm.par_chunks_mut(time * n))
                .zip(g.dcm.par_chunks_mut(time * n))
                .enumerate()
                .map(|(b, ((((du, ddt), dz), dbm), dcm))| {
                    let mut ga = vec![0f32; d * n];
                    let mut gd = vec![0f32; d];
                    let mut gbias = vec![0f32; d];
                    dbm.fill(0.0);
                    dcm.fill(0.0);
                    let mut lam = vec![0f32; d * n];
                    for t in (0..time).rev() {
                        let r = b * time + t;
                        let (bv, cv) = (&x.bm[r * n..(r + 1) * n], &x.cm[r * n..(r + 1) * n]);
                        let cur = &states[r * d * n..(r + 1) * d * n];
                        for c in 0..d {
                            let s = x.dt[r * d + c] + x.bias[c];
                            let dt = softplus(s);
                            let u = x.u[r * d + c];
                            let zv = x.z[r * d + c];
                            let hr = &cur[c * n..(c + 1) * n];
                            let mut yc = u * x.dskip[c];
                            for j in 0..n {
                                yc += hr[j] * cv[j];
                            }
                            let gy = dy[r * d + c];
                            dz[t * d + c] = gy * yc * silu_grad(zv);
                            let gyc = gy * silu(zv);
                            gd[c] += gyc * u;
                            let mut gu = gyc * x.dskip[c];
                            let mut gdt = 0.0f32;
                            let ar = &x.a[c * n..(c + 1) * n];
                            let lr = &mut lam[c * n..(c + 1) * n];
                            for j in 0..n {
                                dcm[t * n + j] += gyc * hr[j];
                                let l = lr[j] + gyc * cv[j];
                                let da = libm::expf(dt * ar[j]);
                                let prev = if t > 0 {
                                    states[(r - 1) * d * n + c * n + j]
                                } else {
                                    0.0
                                };
                                let g_da = l * prev;
                                gdt += g_da * ar[j] * da + l * bv[j] * u;
                                ga[c * n + j] += g_da * dt * da;
                                dbm[t * n + j] += l * dt * u;
                                gu += l * dt * bv[j];
                                lr[j] = l * da;
                            }
                            du[t * d + c] = gu;
                            let gs = gdt * sigmoid(s);
                            ddt[t * d + c] = gs;
                            gbias[c] += gs;
                        }
                    }
                    (ga, gd, gbias)
                })
                .collect();
        for (a, dd, bb) in partial {
            g.da.iter_mut().zip(&a).for_each(|(x, v)| *x += v);
            g.dskip.iter_mut().zip(&dd).for_each(|(x, v)| *x += v);
            g.dbias.iter_mut().zip(&bb).for_each(|(x, v)| *x += v);
        }
        Ok(())
    }

    fn ssd_scan_fwd(
        &self,
        dims: SsdDims,
        x: SsdIn<'_, Vec<f32>>,
        y: &mut Vec<f32>,
        states: &mut Vec<f32>,
    ) -> Result<()> {
        contract::ssd_scan_fwd(self, dims, &x, y, states)?;
        let SsdDims {
            time,
            heads,
            head_dim: p,
            groups,
            n,
            dt_min,
            dt_max,
            ..
        } = dims;
        let hp = heads * p;
        let hpg = heads / groups;
        y.par_chunks_mut(time * hp)
            .zip(states.par_chunks_mut(time * hp * n))
            .enumerate()
            .for_each(|(b, (yb, sb))| {
                let mut s = vec![0f32; hp * n];
                for t in 0..time {
                    let r = b * time + t;
                    for h in 0..heads {
                        let dt = softplus(x.dt[r * heads + h] + x.bias[h]).clamp(dt_min, dt_max);
                        let da = libm::expf(dt * x.a[h]);
                        let gi = h / hpg;
                        let bg = &x.bm[(r * groups + gi) * n..(r * groups + gi + 1) * n];
                        let cg = &x.cm[(r * groups + gi) * n..(r * groups + gi + 1) * n];
                        for c in 0..p {
                            let u = x.x[r * hp + h * p + c];
                            let row = &mut s[(h * p + c) * n..(h * p + c + 1) * n];
                            let mut acc = 0.0f32;
                            for j in 0..n {
                                row[j] = row[j] * da + (dt * bg[j]) * u;
                                acc += row[j] * cg[j];
                            }
                            yb[t * hp + h * p + c] = acc + u * x.dskip[h];
                        }
                    }
                    sb[t * hp * n..(t + 1) * hp * n].copy_from_slice(&s);
                }
            });
        Ok(())
    }

    fn ssd_scan_bwd(
        &self,
        dims: SsdDims,
        x: SsdIn<'_, Vec<f32>>,
        states: &Vec<f32>,
        dy: &Vec<f32>,
        g: SsdGrads<'_, Vec<f32>>,
    ) -> Result<()> {
        contract::ssd_scan_bwd(self, dims, &x, states, dy, &g)?;
        let SsdDims {
            time,
            heads,
            head_dim: p,
            groups,
            n,
            dt_min,
            dt_max,
            ..
        } = dims;
        let hp = heads * p;
        let hpg = heads / groups;
        type Partial = (Vec<f32>, Vec<f32>, Vec<f32>);
        let partial: Vec<Partial> =
            g.dx.par_chunks_mut(time * hp)
                .zip(g.ddt.par_chunks_mut(time * heads))
                .zip(g.dbm.par_chunks_mut(time * groups * n))
                .zip(g.dcm.par_chunks_mut(time * groups * n))
                .enumerate()
                .map(|(b, (((dx, ddt), dbm), dcm))| {
                    let (mut ga, mut gd, mut gbias) =
                        (vec![0f32; heads], vec![0f32; heads], vec![0f32; heads]);
                    dbm.fill(0.0);
                    dcm.fill(0.0);
                    let mut lam = vec![0f32; hp * n];
                    for t in (0..time).rev() {
                        let r = b * time + t;
                        for h in 0..heads {
                            let sraw = x.dt[r * heads + h] + x.bias[h];
                            let sp = softplus(sraw);
                            let dt = sp.clamp(dt_min, dt_max);
                            let da = libm::expf(dt * x.a[h]);
                            let gi = h / hpg;
                            let go = (t * groups + gi) * n;
                            let bg = &x.bm[(r * groups + gi) * n..(r * groups + gi + 1) * n];
                            let cg = &x.cm[(r * groups + gi) * n..(r * groups + gi + 1) * n];
                            let (mut g_da, mut g_dt) = (0.0f32, 0.0f32);
                            for c in 0..p {
                                let i = h * p + c;
                                let u = x.x[r * hp + i];
                                let gy = dy[r * hp + i];
                                gd[h] += gy * u;
                                let mut gu = gy * x.dskip[h];
                                let cur = &states[(r * hp + i) * n..(r * hp + i + 1) * n];
                                let lr = &mut lam[i * n..(i + 1) * n];
                                for j in 0..n {
                                    dcm[go + j] += gy * cur[j];
                                    let l = lr[j] + gy * cg[j];
                                    let prev = if t > 0 {
                                        states[((r - 1) * hp + i) * n + j]
                                    } else {
                                        0.0
                                    };
                                    g_da += l * prev;
                                    g_dt += l * bg[j] * u;
                                    dbm[go + j] += l * dt * u;
                                    gu += l * dt * bg[j];
                                    lr[j] = l * da;
                                }
                                dx[t * hp + i] = gu;
                            }
                            g_dt += g_da * x.a[h] * da;
                            ga[h] += g_da * dt * da;
                            // torch.clamp passes the gradient only inside the range.
                            let inside = sp >= dt_min && sp <= dt_max;
                            let gs = if inside { g_dt * sigmoid(sraw) } else { 0.0 };
                            ddt[t * heads + h] = gs;
                            gbias[h] += gs;
                        }
                    }
                    (ga, gd, gbias)
                })
                .collect();
        for (a, d, bb) in partial {
            g.da.iter_mut().zip(&a).for_each(|(x, v)| *x += v);
            g.dskip.iter_mut().zip(&d).for_each(|(x, v)| *x += v);
            g.dbias.iter_mut().zip(&bb).for_each(|(x, v)| *x += v);
        }
        Ok(())
    }

    fn conv1d_fwd(
        &self,
        x: &Vec<f32>,
        w: &Vec<f32>,
        bias: Option<&Vec<f32>>,
        batch: usize,
        time: usize,
        ch: usize,
        k: usize,
        y: &mut Vec<f32>,
    ) -> Result<()> {
        contract::conv1d_fwd(self, x, w, bias, batch, time, ch, k, y)?;
        y.par_chunks_mut(time * ch)
            .zip(x.par_chunks(time * ch))
            .for_each(|(yb, xb)| {
                for t in 0..time {
                    for c in 0..ch {
                        // Oldest tap first, as the core's rolled conv state.
                        let mut acc = 0.0f32;
                        for j in 0..k {
                            let ti = t as isize - (k - 1 - j) as isize;
                            if ti >= 0 {
                                acc += xb[ti as usize * ch + c] * w[c * k + j];
                            }
                        }
                        yb[t * ch + c] = acc + bias.map_or(0.0, |b| b[c]);
                    }
                }
            });
        Ok(())
    }

    fn conv1d_bwd(
        &self,
        x: &Vec<f32>,
        w: &Vec<f32>,
        dy: &Vec<f32>,
        batch: usize,
        time: usize,
        ch: usize,
        k: usize,
        dx: &mut Vec<f32>,
        dw: &mut Vec<f32>,
        dbias: Option<&mut Vec<f32>>,
    ) -> Result<()> {
        contract::conv1d_bwd(self, x, w, dy, batch, time, ch, k, dx, dw, dbias.as_deref())?;
        dx.par_chunks_mut(time * ch)
            .zip(dy.par_chunks(time * ch))
            .for_each(|(dxb, dyb)| {
                dxb.fill(0.0);
                for t in 0..time {
                    for c in 0..ch {
                        let g = dyb[t * ch + c];
                        for j in 0..k {
                            let ti = t as isize - (k - 1 - j) as isize;
                            if ti >= 0 {
                                dxb[ti as usize * ch + c] += g * w[c * k + j];
                            }
                        }
                    }
                }
            });
        // Per channel, streams and steps in order.
        dw.par_chunks_mut(k).enumerate().for_each(|(c, dwc)| {
            for (xb, dyb) in x.chunks_exact(time * ch).zip(dy.chunks_exact(time * ch)) {
                for t in 0..time {
                    let g = dyb[t * ch + c];
                    for (j, d) in dwc.iter_mut().enumerate() {
                        let ti = t as isize - (k - 1 - j) as isize;
                        if ti >= 0 {
                            *d += g * xb[ti as usize * ch + c];
                        }
                    }
                }
            }
        });
        if let Some(db) = dbias {
            for (c, d) in db.iter_mut().enumerate() {
                let mut acc = 0.0f32;
                for row in dy.chunks_exact(ch) {
                    acc += row[c];
                }
                *d += acc;
            }
        }
        Ok(())
    }

    fn rms_norm_fwd(
        &self,
        x: &Vec<f32>,
        g: &Vec<f32>,
        rows: usize,
        d: usize,
        eps: f32,
        y: &mut Vec<f32>,
        stats: &mut Vec<f32>,
    ) -> Result<()> {
        contract::rms_norm_fwd(self, x, g, rows, d, y, stats)?;
        y.par_chunks_mut(d)
            .zip(x.par_chunks(d))
            .zip(stats.par_iter_mut())
            .for_each(|((yr, xr), st)| {
                let mut ss = 0.0f32;
                for &v in xr {
                    ss += v * v;
                }
                let inv = 1.0 / libm::sqrtf(ss / d as f32 + eps);
                for ((o, &v), &gv) in yr.iter_mut().zip(xr).zip(g) {
                    *o = v * inv * gv;
                }
                *st = inv;
            });
        Ok(())
    }

    fn rms_norm_bwd(
        &self,
        x: &Vec<f32>,
        g: &Vec<f32>,
        stats: &Vec<f32>,
        dy: &Vec<f32>,
        rows: usize,
        d: usize,
        dx: &mut Vec<f32>,
        dg: &mut Vec<f32>,
    ) -> Result<()> {
        contract::rms_norm_bwd(self, x, g, stats, dy, rows, d, dx, dg)?;
        dx.par_chunks_mut(d)
            .zip(x.par_chunks(d).zip(dy.par_chunks(d)))
            .zip(stats.par_iter())
            .for_each(|((dxr, (xr, dyr)), &inv)| {
                // y = x·inv·g, inv = (mean x² + eps)^(−1/2): dx = inv·(dy·g − x·inv²·mean(dy·g·x))
                let mut s = 0.0f32;
                for ((&v, &gy), &gv) in xr.iter().zip(dyr).zip(g) {
                    s += gy * gv * v;
                }
                let m = s / d as f32;
                for (((o, &v), &gy), &gv) in dxr.iter_mut().zip(xr).zip(dyr).zip(g) {
                    *o = inv * (gy * gv - v * inv * inv * m);
                }
            });
        dg.par_iter_mut().enumerate().for_each(|(j, dgj)| {
            let mut a = 0.0f32;
            for ((xr, dyr), &inv) in x.chunks_exact(d).zip(dy.chunks_exact(d)).zip(stats) {
                a += dyr[j] * xr[j] * inv;
            }
            *dgj += a;
        });
        Ok(())
    }

    fn silu_fwd(&self, x: &Vec<f32>, y: &mut Vec<f32>) -> Result<()> {
        contract::silu_fwd(self, x, y)?;
        y.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .for_each(|(y, x)| y.iter_mut().zip(x).for_each(|(o, &v)| *o = silu(v)));
        Ok(())
    }
    fn silu_bwd(&self, x: &Vec<f32>, dy: &Vec<f32>, dx: &mut Vec<f32>) -> Result<()> {
        contract::silu_bwd(self, x, dy, dx)?;
        dx.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK).zip(dy.par_chunks(CHUNK)))
            .for_each(|(dx, (x, dy))| {
                for ((o, &v), &g) in dx.iter_mut().zip(x).zip(dy) {
                    *o = g * silu_grad(v);
                }
            });
        Ok(())
    }

    fn gather_rows(&self, x: &Vec<f32>, d: usize, rows: &[usize], y: &mut Vec<f32>) -> Result<()> {
        contract::gather_rows(self, x, d, rows, y)?;
        for (yr, &r) in y.chunks_exact_mut(d.max(1)).zip(rows) {
            yr.copy_from_slice(&x[r * d..(r + 1) * d]);
        }
        Ok(())
    }

    fn gather_rows_bwd(
        &self,
        dy: &Vec<f32>,
        d: usize,
        rows: &[usize],
        dx: &mut Vec<f32>,
    ) -> Result<()> {
        contract::gather_rows_bwd(self, dy, d, rows, dx)?;
        dx.fill(0.0);
        for (gr, &r) in dy.chunks_exact(d.max(1)).zip(rows) {
            let dst = &mut dx[r * d..(r + 1) * d];
            dst.iter_mut().zip(gr).for_each(|(a, b)| *a += b);
        }
        Ok(())
    }

    fn softmax_xent(
        &self,
        logits: &Vec<f32>,
        labels: &[u32],
        classes: usize,
        dlogits: &mut Vec<f32>,
    ) -> Result<(f32, usize)> {
        contract::softmax_xent(self, logits, labels, classes, dlogits)?;
        let n = labels.len();
        let mut loss = 0.0f64;
        let mut correct = 0;
        for ((lr, gr), &y) in logits
            .chunks_exact(classes)
            .zip(dlogits.chunks_exact_mut(classes))
            .zip(labels)
        {
            let y = y as usize;
            let max = lr.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
            let mut z = 0.0f32;
            for (g, &v) in gr.iter_mut().zip(lr) {
                *g = libm::expf(v - max);
                z += *g;
            }
            loss += (libm::logf(z) + max - lr[y]) as f64;
            let arg = lr
                .iter()
                .enumerate()
                .fold(
                    (0, f32::NEG_INFINITY),
                    |a, (i, &v)| if v > a.1 { (i, v) } else { a },
                )
                .0;
            if arg == y {
                correct += 1;
            }
            for g in gr.iter_mut() {
                *g /= z * n as f32;
            }
            gr[y] -= 1.0 / n as f32;
        }
        Ok(((loss / n.max(1) as f64) as f32, correct))
    }

    fn sigmoid_bce(
        &self,
        logits: &Vec<f32>,
        targets: &[f32],
        pos_weight: f32,
        dlogits: &mut Vec<f32>,
    ) -> Result<f32> {
        contract::sigmoid_bce(self, logits, targets, dlogits)?;
        let n = logits.len();
        let mut loss = 0f64;
        for ((g, &z), &y) in dlogits.iter_mut().zip(logits).zip(targets) {
            // −[w y ln σ(z) + (1−y) ln(1−σ(z))], stable: ln σ(z) = −softplus(−z).
            let sp_neg = if z > 0.0 {
                libm::log1pf(libm::expf(-z))
            } else {
                -z + libm::log1pf(libm::expf(z))
            };
            let sp_pos = sp_neg + z; // softplus(z) = −ln(1−σ(z))
            loss += (pos_weight * y * sp_neg + (1.0 - y) * sp_pos) as f64;
            let s = sigmoid(z);
            *g = (pos_weight * y * (s - 1.0) + (1.0 - y) * s) / n.max(1) as f32;
        }
        Ok((loss / n.max(1) as f64) as f32)
    }

    fn sum_sq(&self, x: &Vec<f32>) -> Result<f64> {
        Ok(x.iter().map(|&v| (v as f64) * (v as f64)).sum())
    }
    fn scale(&self, x: &mut Vec<f32>, s: f32) -> Result<()> {
        x.iter_mut().for_each(|v| *v *= s);
        Ok(())
    }
    fn adamw(
        &self,
        p: &mut Vec<f32>,
        g: &Vec<f32>,
        m: &mut Vec<f32>,
        v: &mut Vec<f32>,
        h: AdamW,
        decay: bool,
    ) -> Result<()> {
        contract::adamw(self, p, g, m, v)?;
        let n = p.len();
        let t = h.step.max(1) as i32;
        let bc1 = 1.0 - libm::powf(h.beta1, t as f32);
        let bc2 = 1.0 - libm::powf(h.beta2, t as f32);
        for i in 0..n {
            m[i] = h.beta1 * m[i] + (1.0 - h.beta1) * g[i];
            v[i] = h.beta2 * v[i] + (1.0 - h.beta2) * g[i] * g[i];
            let mh = m[i] / bc1;
            let vh = v[i] / bc2;
            if decay {
                p[i] -= h.lr * h.weight_decay * p[i];
            }
            p[i] -= h.lr * mh / (libm::sqrtf(vh) + h.eps);
        }
        Ok(())
    }
}
