//! The S4D classifier as the core runs it (prenorm LayerNorm, S4D layer, GELU, 1×1 conv to
//! 2H, GLU, residual; final LayerNorm; linear decoder), over batches of streams on a
//! [`Backend`], forward and backward. Parameters are kept in the checkpoint layout that
//! `tinyssm convert` imports (`log_dt`, `log_A_real`, `A_imag`, `C`), and discretized on
//! the host every step exactly as the converter does (ZOH, in f64).

use rand::rngs::StdRng;
use rand::Rng;

use crate::backend::{Backend, Result, ScanDims};

/// Shape of an S4D classifier.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct S4dShape {
    pub d_input: usize,
    pub d_model: usize,
    /// N (N/2 complex modes per channel).
    pub d_state: usize,
    pub n_layers: usize,
    pub d_output: usize,
    pub norm_eps: f32,
}

/// One named parameter tensor (host copy) in checkpoint layout.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
    /// Decoupled weight decay applies (matrices only).
    pub decay: bool,
}

/// All parameters, in a fixed order.
#[derive(Debug, Clone, PartialEq)]
pub struct S4dParams {
    pub shape: S4dShape,
    pub params: Vec<Param>,
}

fn p(name: String, shape: Vec<usize>, data: Vec<f32>, decay: bool) -> Param {
    Param {
        name,
        shape,
        data,
        decay,
    }
}

impl S4dParams {
    /// S4D-Lin initialisation (arXiv 2206.11893): `A = −1/2 + iπn`, `log dt ~ U(log
    /// 1e-3, log 1e-1)`, `C ~ N(0, 1/2)` complex; Kaiming-uniform-like matrices.
    pub fn init(s: S4dShape, rng: &mut StdRng) -> S4dParams {
        let (h, n2, di, o) = (s.d_model, s.d_state / 2, s.d_input, s.d_output);
        let uni = |n: usize, fan_in: usize, rng: &mut StdRng| -> Vec<f32> {
            let b = 1.0 / (fan_in as f32).sqrt();
            (0..n).map(|_| rng.random_range(-b..b)).collect()
        };
        let mut v = vec![
            p(
                "encoder.weight".into(),
                vec![h, di],
                uni(h * di, di, rng),
                true,
            ),
            p("encoder.bias".into(), vec![h], uni(h, di, rng), false),
        ];
        for l in 0..s.n_layers {
            let k = format!("s4_layers.{l}");
            v.push(p(format!("norms.{l}.weight"), vec![h], vec![1.0; h], false));
            v.push(p(format!("norms.{l}.bias"), vec![h], vec![0.0; h], false));
            let (lo, hi) = (1e-3f32.ln(), 1e-1f32.ln());
            let log_dt = (0..h).map(|_| rng.random_range(lo..hi)).collect();
            v.push(p(format!("{k}.kernel.log_dt"), vec![h], log_dt, false));
            v.push(p(
                format!("{k}.kernel.log_A_real"),
                vec![h, n2],
                vec![0.5f32.ln(); h * n2],
                false,
            ));
            let a_im = (0..h * n2)
                .map(|i| std::f32::consts::PI * (i % n2) as f32)
                .collect();
            v.push(p(format!("{k}.kernel.A_imag"), vec![h, n2], a_im, false));
            let c = (0..h * n2 * 2)
                .map(|_| {
                    // Box-Muller, variance 1/2 per component.
                    let (u1, u2): (f32, f32) = (rng.random_range(1e-7..1.0), rng.random());
                    (-u1.ln()).sqrt() * (2.0 * std::f32::consts::PI * u2).cos()
                })
                .collect();
            v.push(p(format!("{k}.kernel.C"), vec![h, n2, 2], c, false));
            v.push(p(
                format!("{k}.D"),
                vec![h],
                (0..h).map(|_| rng.random()).collect(),
                false,
            ));
            v.push(p(
                format!("{k}.output_linear.0.weight"),
                vec![2 * h, h, 1],
                uni(2 * h * h, h, rng),
                true,
            ));
            v.push(p(
                format!("{k}.output_linear.0.bias"),
                vec![2 * h],
                uni(2 * h, h, rng),
                false,
            ));
        }
        v.push(p("norm_f.weight".into(), vec![h], vec![1.0; h], false));
        v.push(p("norm_f.bias".into(), vec![h], vec![0.0; h], false));
        v.push(p(
            "decoder.weight".into(),
            vec![o, h],
            uni(o * h, h, rng),
            true,
        ));
        v.push(p("decoder.bias".into(), vec![o], vec![0.0; o], false));
        S4dParams {
            shape: s,
            params: v,
        }
    }

    pub fn n_params(&self) -> usize {
        self.params.iter().map(|p| p.data.len()).sum()
    }

    pub fn get(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|p| p.name == name)
    }
}

/// ZOH discretization of one layer in f64, as `tinyssm convert` does: returns `(dA, C̃)` and
/// the Jacobian pieces needed to chain their gradients back.
pub(crate) struct Discrete {
    pub da: Vec<f32>,
    pub cb: Vec<f32>,
}

/// `(re, im)` helpers.
type C64 = (f64, f64);
fn cmul(a: C64, b: C64) -> C64 {
    (a.0 * b.0 - a.1 * b.1, a.0 * b.1 + a.1 * b.0)
}
fn cdiv(a: C64, b: C64) -> C64 {
    let d = b.0 * b.0 + b.1 * b.1;
    ((a.0 * b.0 + a.1 * b.1) / d, (a.1 * b.0 - a.0 * b.1) / d)
}
fn conj(a: C64) -> C64 {
    (a.0, -a.1)
}
fn cexp(a: C64) -> C64 {
    let e = a.0.exp();
    (e * a.1.cos(), e * a.1.sin())
}

pub(crate) fn discretize(
    h: usize,
    n2: usize,
    log_dt: &[f32],
    log_a: &[f32],
    a_im: &[f32],
    c: &[f32],
) -> Discrete {
    let mut da = vec![0f32; h * n2 * 2];
    let mut cb = vec![0f32; h * n2 * 2];
    for (ch, &ldt) in log_dt.iter().enumerate().take(h) {
        let dt = (ldt as f64).exp();
        for m in 0..n2 {
            let i = ch * n2 + m;
            let a = (-(log_a[i] as f64).exp(), a_im[i] as f64);
            let e = cexp((dt * a.0, dt * a.1));
            let q = cdiv((e.0 - 1.0, e.1), a);
            let cc = cmul((c[2 * i] as f64, c[2 * i + 1] as f64), q);
            da[2 * i] = e.0 as f32;
            da[2 * i + 1] = e.1 as f32;
            cb[2 * i] = cc.0 as f32;
            cb[2 * i + 1] = cc.1 as f32;
        }
    }
    Discrete { da, cb }
}

/// Chains `(∂L/∂dA, ∂L/∂C̃)` back to `log_dt`, `log_A_real`, `A_imag`, `C` (accumulated).
/// For a holomorphic `f`, the gradient `G = ∂L/∂Re f + i ∂L/∂Im f` maps back through
/// `G_w = G · conj(f'(w))`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn discretize_bwd(
    h: usize,
    n2: usize,
    log_dt: &[f32],
    log_a: &[f32],
    a_im: &[f32],
    c: &[f32],
    g_da: &[f32],
    g_cb: &[f32],
    g_log_dt: &mut [f32],
    g_log_a: &mut [f32],
    g_a_im: &mut [f32],
    g_c: &mut [f32],
) {
    for ch in 0..h {
        let dt = (log_dt[ch] as f64).exp();
        let mut g_dt = 0.0f64;
        for m in 0..n2 {
            let i = ch * n2 + m;
            let ar = -(log_a[i] as f64).exp();
            let a = (ar, a_im[i] as f64);
            let e = cexp((dt * a.0, dt * a.1));
            let q = cdiv((e.0 - 1.0, e.1), a);
            let cc = (c[2 * i] as f64, c[2 * i + 1] as f64);
            let gcb = (g_cb[2 * i] as f64, g_cb[2 * i + 1] as f64);
            let gda = (g_da[2 * i] as f64, g_da[2 * i + 1] as f64);
            // C̃ = C Q
            let gc = cmul(gcb, conj(q));
            let gq = cmul(gcb, conj(cc));
            // Q = (E − 1)/A: ∂Q/∂E = 1/A, ∂Q/∂A = −Q/A
            let inv_a = cdiv((1.0, 0.0), a);
            let ge = (
                gda.0 + cmul(gq, conj(inv_a)).0,
                gda.1 + cmul(gq, conj(inv_a)).1,
            );
            let dq_da = cmul((-q.0, -q.1), inv_a);
            // E = exp(dt A): ∂E/∂A = dt E, ∂E/∂dt = A E
            let ga_q = cmul(gq, conj(dq_da));
            let ga_e = cmul(ge, conj((dt * e.0, dt * e.1)));
            let ga = (ga_q.0 + ga_e.0, ga_q.1 + ga_e.1);
            g_dt += cmul(ge, conj(cmul(a, e))).0;
            // A = −exp(log_A_real) + i A_imag
            g_log_a[i] += (ga.0 * ar) as f32;
            g_a_im[i] += ga.1 as f32;
            g_c[2 * i] += gc.0 as f32;
            g_c[2 * i + 1] += gc.1 as f32;
        }
        g_log_dt[ch] += (g_dt * dt) as f32;
    }
}

/// Activations kept for the backward pass of one layer.
struct LayerCache<B: Backend> {
    x_in: B::Buf,
    stats: B::Buf,
    z: B::Buf,
    y_pre: B::Buf,
    states: B::Buf,
    g: B::Buf,
    o: B::Buf,
    da: B::Buf,
    cb: B::Buf,
}

/// A forward pass over a batch, with what the backward pass needs.
pub struct Forward<B: Backend> {
    batch: usize,
    time: usize,
    feats: B::Buf,
    layers: Vec<LayerCache<B>>,
    x_last: B::Buf,
    stats_f: B::Buf,
    xf: B::Buf,
    rows: Vec<usize>,
    last: B::Buf,
    /// `[rows, d_output]` logits at the selected rows (each stream's last valid step for
    /// [`forward`]).
    pub logits: B::Buf,
}

/// Parameters on the backend, with gradients and AdamW moments.
pub struct DeviceParams<B: Backend> {
    pub w: Vec<B::Buf>,
    pub g: Vec<B::Buf>,
    pub m: Vec<B::Buf>,
    pub v: Vec<B::Buf>,
}

impl<B: Backend> DeviceParams<B> {
    pub fn new(be: &B, p: &[Param]) -> Result<Self> {
        let mut s = DeviceParams {
            w: vec![],
            g: vec![],
            m: vec![],
            v: vec![],
        };
        for q in p {
            s.w.push(be.upload(&q.data)?);
            s.g.push(be.zeros(q.data.len())?);
            s.m.push(be.zeros(q.data.len())?);
            s.v.push(be.zeros(q.data.len())?);
        }
        Ok(s)
    }
    /// Copies the device values back into `p`.
    pub fn download_into(&self, be: &B, p: &mut [Param]) -> Result<()> {
        for (q, w) in p.iter_mut().zip(&self.w) {
            q.data = be.download(w)?;
        }
        Ok(())
    }
}

/// Index of each parameter in [`S4dParams::params`].
struct Ix {
    enc_w: usize,
    enc_b: usize,
    layer0: usize,
    per_layer: usize,
    nf_w: usize,
    nf_b: usize,
    dec_w: usize,
    dec_b: usize,
}
// per-layer offsets
const L_NW: usize = 0;
const L_NB: usize = 1;
const L_DT: usize = 2;
const L_LA: usize = 3;
const L_AI: usize = 4;
const L_C: usize = 5;
const L_D: usize = 6;
const L_OW: usize = 7;
const L_OB: usize = 8;

fn ix(s: &S4dShape) -> Ix {
    let per = 9;
    let after = 2 + s.n_layers * per;
    Ix {
        enc_w: 0,
        enc_b: 1,
        layer0: 2,
        per_layer: per,
        nf_w: after,
        nf_b: after + 1,
        dec_w: after + 2,
        dec_b: after + 3,
    }
}

/// Forward over `batch` streams of `time` steps (`feats`: `[batch, time, d_input]`, padded);
/// `lens[b]` is stream `b`'s valid length, whose last step gives its logits.
pub fn forward<B: Backend>(
    be: &B,
    s: &S4dShape,
    dp: &DeviceParams<B>,
    feats: &[f32],
    batch: usize,
    time: usize,
    lens: &[usize],
) -> Result<Forward<B>> {
    let rows: Vec<usize> = lens
        .iter()
        .enumerate()
        .map(|(b, &n)| b * time + n.clamp(1, time) - 1)
        .collect();
    forward_rows(be, s, dp, feats, batch, time, rows)
}

/// Forward whose logits are taken at the given rows (`b·time + t`), e.g. every step.
pub fn forward_rows<B: Backend>(
    be: &B,
    s: &S4dShape,
    dp: &DeviceParams<B>,
    feats: &[f32],
    batch: usize,
    time: usize,
    rows: Vec<usize>,
) -> Result<Forward<B>> {
    let (h, n2, di, o) = (s.d_model, s.d_state / 2, s.d_input, s.d_output);
    let r = batch * time;
    let ix = ix(s);
    let feats = be.upload(feats)?;
    let mut x = be.zeros(r * h)?;
    be.linear_fwd(
        &feats,
        &dp.w[ix.enc_w],
        Some(&dp.w[ix.enc_b]),
        r,
        di,
        h,
        &mut x,
    )?;
    let mut layers = Vec::with_capacity(s.n_layers);
    for l in 0..s.n_layers {
        let b0 = ix.layer0 + l * ix.per_layer;
        let host = |k: usize| be.download(&dp.w[b0 + k]);
        let d = discretize(h, n2, &host(L_DT)?, &host(L_LA)?, &host(L_AI)?, &host(L_C)?);
        let (da, cb) = (be.upload(&d.da)?, be.upload(&d.cb)?);
        let mut z = be.zeros(r * h)?;
        let mut stats = be.zeros(r * 2)?;
        be.layer_norm_fwd(
            &x,
            &dp.w[b0 + L_NW],
            &dp.w[b0 + L_NB],
            r,
            h,
            s.norm_eps,
            &mut z,
            &mut stats,
        )?;
        let mut y_pre = be.zeros(r * h)?;
        let mut states = be.zeros(r * h * n2 * 2)?;
        let dims = ScanDims { batch, time, h, n2 };
        be.s4d_scan_fwd(dims, &z, &da, &cb, &dp.w[b0 + L_D], &mut y_pre, &mut states)?;
        let mut g = be.zeros(r * h)?;
        be.gelu_fwd(&y_pre, &mut g)?;
        let mut ov = be.zeros(r * 2 * h)?;
        be.linear_fwd(
            &g,
            &dp.w[b0 + L_OW],
            Some(&dp.w[b0 + L_OB]),
            r,
            h,
            2 * h,
            &mut ov,
        )?;
        let mut a = be.zeros(r * h)?;
        be.glu_fwd(&ov, r, h, &mut a)?;
        let mut x_next = be.zeros(r * h)?;
        be.add_assign(&mut x_next, &x)?;
        be.add_assign(&mut x_next, &a)?;
        layers.push(LayerCache {
            x_in: x,
            stats,
            z,
            y_pre,
            states,
            g,
            o: ov,
            da,
            cb,
        });
        x = x_next;
    }
    let mut xf = be.zeros(r * h)?;
    let mut stats_f = be.zeros(r * 2)?;
    be.layer_norm_fwd(
        &x,
        &dp.w[ix.nf_w],
        &dp.w[ix.nf_b],
        r,
        h,
        s.norm_eps,
        &mut xf,
        &mut stats_f,
    )?;
    let n_out = rows.len();
    let mut last = be.zeros(n_out * h)?;
    be.gather_rows(&xf, h, &rows, &mut last)?;
    let mut logits = be.zeros(n_out * o)?;
    be.linear_fwd(
        &last,
        &dp.w[ix.dec_w],
        Some(&dp.w[ix.dec_b]),
        n_out,
        h,
        o,
        &mut logits,
    )?;
    Ok(Forward {
        batch,
        time,
        feats,
        layers,
        x_last: x,
        stats_f,
        xf,
        rows,
        last,
        logits,
    })
}

/// Backward from `dlogits` (`[rows, d_output]`); accumulates into `dp.g`.
pub fn backward<B: Backend>(
    be: &B,
    s: &S4dShape,
    dp: &mut DeviceParams<B>,
    f: &Forward<B>,
    dlogits: &B::Buf,
) -> Result<()> {
    let (h, n2, di, o) = (s.d_model, s.d_state / 2, s.d_input, s.d_output);
    let (batch, time) = (f.batch, f.time);
    let r = batch * time;
    let ix = ix(s);
    let _ = &f.xf;
    let n_out = f.rows.len();
    let mut dlast = be.zeros(n_out * h)?;
    {
        let (gw, gb) = two_mut(&mut dp.g, ix.dec_w, ix.dec_b);
        be.linear_bwd(
            &f.last,
            &dp.w[ix.dec_w],
            dlogits,
            n_out,
            h,
            o,
            Some(&mut dlast),
            gw,
            Some(gb),
        )?;
    }
    let mut dxf = be.zeros(r * h)?;
    be.gather_rows_bwd(&dlast, h, &f.rows, &mut dxf)?;
    let mut dx = be.zeros(r * h)?;
    {
        let (gw, gb) = two_mut(&mut dp.g, ix.nf_w, ix.nf_b);
        be.layer_norm_bwd(
            &f.x_last,
            &dp.w[ix.nf_w],
            &f.stats_f,
            &dxf,
            r,
            h,
            &mut dx,
            gw,
            gb,
        )?;
    }
    for l in (0..s.n_layers).rev() {
        let c = &f.layers[l];
        let b0 = ix.layer0 + l * ix.per_layer;
        // x_out = x_in + glu(W gelu(scan(LN(x_in))) + b)
        let mut d_o = be.zeros(r * 2 * h)?;
        be.glu_bwd(&c.o, &dx, r, h, &mut d_o)?;
        let mut d_g = be.zeros(r * h)?;
        {
            let (gw, gb) = two_mut(&mut dp.g, b0 + L_OW, b0 + L_OB);
            be.linear_bwd(
                &c.g,
                &dp.w[b0 + L_OW],
                &d_o,
                r,
                h,
                2 * h,
                Some(&mut d_g),
                gw,
                Some(gb),
            )?;
        }
        let mut d_y = be.zeros(r * h)?;
        be.gelu_bwd(&c.y_pre, &d_g, &mut d_y)?;
        let mut d_z = be.zeros(r * h)?;
        let mut g_da = be.zeros(h * n2 * 2)?;
        let mut g_cb = be.zeros(h * n2 * 2)?;
        let dims = ScanDims { batch, time, h, n2 };
        be.s4d_scan_bwd(
            dims,
            &c.z,
            &c.da,
            &c.cb,
            &dp.w[b0 + L_D],
            &c.states,
            &d_y,
            &mut d_z,
            &mut g_da,
            &mut g_cb,
            &mut dp.g[b0 + L_D],
        )?;
        // Chain the discretization on the host.
        let host = |k: usize| be.download(&dp.w[b0 + k]);
        let (ldt, la, ai, cc) = (host(L_DT)?, host(L_LA)?, host(L_AI)?, host(L_C)?);
        let mut gh: Vec<Vec<f32>> = [L_DT, L_LA, L_AI, L_C]
            .iter()
            .map(|&k| be.download(&dp.g[b0 + k]))
            .collect::<Result<_>>()?;
        let (g0, rest) = gh.split_at_mut(1);
        let (g1, rest) = rest.split_at_mut(1);
        let (g2, g3) = rest.split_at_mut(1);
        discretize_bwd(
            h,
            n2,
            &ldt,
            &la,
            &ai,
            &cc,
            &be.download(&g_da)?,
            &be.download(&g_cb)?,
            &mut g0[0],
            &mut g1[0],
            &mut g2[0],
            &mut g3[0],
        );
        for (k, v) in [L_DT, L_LA, L_AI, L_C].iter().zip(&gh) {
            dp.g[b0 + k] = be.upload(v)?;
        }
        let mut dx_in = be.zeros(r * h)?;
        {
            let (gw, gb) = two_mut(&mut dp.g, b0 + L_NW, b0 + L_NB);
            be.layer_norm_bwd(
                &c.x_in,
                &dp.w[b0 + L_NW],
                &c.stats,
                &d_z,
                r,
                h,
                &mut dx_in,
                gw,
                gb,
            )?;
        }
        // residual
        be.add_assign(&mut dx_in, &dx)?;
        dx = dx_in;
    }
    let (gw, gb) = two_mut(&mut dp.g, ix.enc_w, ix.enc_b);
    be.linear_bwd(&f.feats, &dp.w[ix.enc_w], &dx, r, di, h, None, gw, Some(gb))
}

fn two_mut<T>(v: &mut [T], a: usize, b: usize) -> (&mut T, &mut T) {
    assert!(a < b, "two_mut needs a < b");
    let (lo, hi) = v.split_at_mut(b);
    (&mut lo[a], &mut hi[0])
}

impl S4dParams {
    /// Writes the checkpoint `tinyssm convert` imports: `model.safetensors` (f32) and
    /// `config.json` (`extra` entries, e.g. `front_end` and `labels`, are added to it).
    pub fn save_checkpoint(
        &self,
        dir: &std::path::Path,
        extra: &serde_json::Map<String, serde_json::Value>,
    ) -> std::io::Result<()> {
        let s = &self.shape;
        let mut cfg = serde_json::json!({
            "architecture": "s4d",
            "d_input": s.d_input,
            "d_model": s.d_model,
            "d_state": s.d_state,
            "n_layers": s.n_layers,
            "d_output": s.d_output,
            "norm_eps": s.norm_eps,
            "prenorm": true,
            "output": "glu",
            "final_norm": true,
            "head": "classification",
        });
        if let Some(o) = cfg.as_object_mut() {
            for (k, v) in extra {
                o.insert(k.clone(), v.clone());
            }
        }
        write_checkpoint(dir, &self.params, &cfg)
    }

    /// Folds a per-feature input normalisation `(x − mean) / std` into the encoder, so the
    /// exported model takes raw features.
    pub fn fold_input_norm(&mut self, mean: &[f32], std: &[f32]) {
        let (h, di) = (self.shape.d_model, self.shape.d_input);
        let w = self.params[0].data.clone();
        let mut b = self.params[1].data.clone();
        let mut w2 = w.clone();
        for o in 0..h {
            for i in 0..di {
                w2[o * di + i] = w[o * di + i] / std[i];
                b[o] -= w[o * di + i] * mean[i] / std[i];
            }
        }
        self.params[0].data = w2;
        self.params[1].data = b;
    }
}

/// Writes `model.safetensors` (f32, via a temporary file) and `config.json` into `dir`.
pub fn write_checkpoint(
    dir: &std::path::Path,
    params: &[Param],
    config: &serde_json::Value,
) -> std::io::Result<()> {
    use safetensors::tensor::TensorView;
    std::fs::create_dir_all(dir)?;
    let bytes: Vec<Vec<u8>> = params
        .iter()
        .map(|p| p.data.iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let views: Vec<(String, TensorView<'_>)> = params
        .iter()
        .zip(&bytes)
        .map(|(p, b)| {
            TensorView::new(safetensors::Dtype::F32, p.shape.clone(), b)
                .map(|v| (p.name.clone(), v))
                .map_err(|e| std::io::Error::other(e.to_string()))
        })
        .collect::<std::io::Result<_>>()?;
    let st = dir.join("model.safetensors");
    let tmp = dir.join("model.safetensors.tmp");
    safetensors::serialize_to_file(views, None, &tmp)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    std::fs::rename(&tmp, &st)?;
    let text = serde_json::to_string_pretty(config).map_err(std::io::Error::other)?;
    tinyssm_host::io::atomic_write(&dir.join("config.json"), |w| {
        std::io::Write::write_all(w, text.as_bytes())
    })
    .map_err(|e| std::io::Error::other(e.to_string()))
}
