//! The op-level backend API: batched forward and backward ops over streams, on buffers the
//! backend owns. The trainer and the verifier are written against [`Backend`] only; the CPU
//! backend ([`crate::cpu::Cpu`]) is the reference, a CUDA backend implements the same trait.
//!
//! The shape contract of every op (argument lengths, index and label ranges, dimensions
//! that must divide) is written once, in [`contract`], generic over the backend; every
//! backend calls it before computing, so all of them reject the same bad shapes with the
//! same [`BackendError::Shape`]. Only what is specific to one backend (launch limits, which
//! shapes a kernel covers) stays in that backend.
//!
//! Conventions:
//! - activations are row-major `[rows, dim]` with `rows = batch × time` (stream-major: row
//!   `b·T + t` is stream `b` at step `t`);
//! - linear weights are `[out, in]` (as in the model format);
//! - complex values are `(re, im)` pairs in the last dimension;
//! - a backward op **overwrites** the gradient of its input (`dx`) and **accumulates** into
//!   parameter gradients (`dw`, `db`, ...), so parameter gradients sum over a batch and
//!   over layers that share nothing;
//! - host-side integer data (labels, gather indices) is passed as slices.

/// Errors of backend ops: a shape that does not add up, or a backend that cannot run.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BackendError {
    #[error("{op}: {msg}")]
    Shape { op: &'static str, msg: String },
    #[error("{0}")]
    Unavailable(String),
}

pub type Result<T> = std::result::Result<T, BackendError>;

/// Checks that `got == want` elements for `what` in `op`.
pub fn check_len(op: &'static str, what: &str, got: usize, want: usize) -> Result<()> {
    if got == want {
        Ok(())
    } else {
        Err(BackendError::Shape {
            op,
            msg: format!("{what} has {got} elements, expected {want}"),
        })
    }
}

/// Picks the state after `steps[b]` of each stream from an every-step `[batch, time, per]`
/// states buffer (the contract of the `*_state_at` op already checked).
pub(crate) fn state_rows<B: Backend + ?Sized>(
    be: &B,
    states: &B::Buf,
    time: usize,
    per: usize,
    steps: &[usize],
) -> Result<Vec<f32>> {
    let all = be.download(states)?;
    let mut out = Vec::with_capacity(steps.len() * per);
    for (b, &t) in steps.iter().enumerate() {
        out.extend_from_slice(&all[(b * time + t) * per..(b * time + t + 1) * per]);
    }
    Ok(out)
}

/// Dimensions of the S4D diagonal scan: `batch` streams of `time` steps, `h` channels, `n2`
/// complex modes per channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanDims {
    pub batch: usize,
    pub time: usize,
    pub h: usize,
    pub n2: usize,
}

/// Dimensions of the Mamba-1 selective scan: `batch` streams of `time` steps, `d` channels,
/// `n` state size (B and C shared across channels, one `[n]` vector per step).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SelScanDims {
    pub batch: usize,
    pub time: usize,
    pub d: usize,
    pub n: usize,
}

/// Gradients of [`Backend::selective_scan_bwd`]: `du`, `ddt`, `dbm`, `dcm`, `dz` are
/// overwritten, `da`, `dskip`, `dbias` accumulated.
#[derive(Debug)]
pub struct SelScanGrads<'a, T> {
    pub du: &'a mut T,
    pub ddt: &'a mut T,
    pub dbm: &'a mut T,
    pub dcm: &'a mut T,
    pub dz: &'a mut T,
    pub da: &'a mut T,
    pub dskip: &'a mut T,
    pub dbias: &'a mut T,
}

/// Inputs of the selective scan.
#[derive(Debug, Clone, Copy)]
pub struct SelScanIn<'a, T> {
    /// `[batch, time, d]` input.
    pub u: &'a T,
    /// `[batch, time, d]` raw dt (before bias and softplus).
    pub dt: &'a T,
    /// `[d]` dt bias.
    pub bias: &'a T,
    /// `[d, n]` A (negative real).
    pub a: &'a T,
    /// `[batch, time, n]`.
    pub bm: &'a T,
    /// `[batch, time, n]`.
    pub cm: &'a T,
    /// `[d]` skip D.
    pub dskip: &'a T,
    /// `[batch, time, d]` gate.
    pub z: &'a T,
}

/// Dimensions of the Mamba-2 SSD scan: `heads` heads of `head_dim` channels, `groups`
/// groups of B/C vectors of size `n` (heads `h·groups/heads` share group `h / (heads/groups)`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SsdDims {
    pub batch: usize,
    pub time: usize,
    pub heads: usize,
    pub head_dim: usize,
    pub groups: usize,
    pub n: usize,
    /// dt clamp after softplus (`time_step_limit`).
    pub dt_min: f32,
    pub dt_max: f32,
}

/// Inputs of the SSD scan.
#[derive(Debug, Clone, Copy)]
pub struct SsdIn<'a, T> {
    /// `[batch, time, heads, head_dim]`.
    pub x: &'a T,
    /// `[batch, time, heads]` raw dt.
    pub dt: &'a T,
    /// `[heads]`.
    pub bias: &'a T,
    /// `[heads]` (negative).
    pub a: &'a T,
    /// `[batch, time, groups, n]`.
    pub bm: &'a T,
    /// `[batch, time, groups, n]`.
    pub cm: &'a T,
    /// `[heads]`.
    pub dskip: &'a T,
}

/// Gradients of the SSD scan: `dx`, `ddt`, `dbm`, `dcm` overwritten; `da`, `dskip`, `dbias`
/// accumulated.
#[derive(Debug)]
pub struct SsdGrads<'a, T> {
    pub dx: &'a mut T,
    pub ddt: &'a mut T,
    pub dbm: &'a mut T,
    pub dcm: &'a mut T,
    pub da: &'a mut T,
    pub dskip: &'a mut T,
    pub dbias: &'a mut T,
}

/// AdamW hyper-parameters for one update.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamW {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    /// 1-based step count (bias correction).
    pub step: u32,
}

/// The ops every backend provides. Each op's shape contract is a function of the same name
/// in [`contract`], which every implementation calls before computing.
pub trait Backend: Send + Sync {
    /// A buffer of f32 owned by the backend.
    type Buf: Send + Sync;

    fn name(&self) -> String;
    fn upload(&self, x: &[f32]) -> Result<Self::Buf>;
    fn zeros(&self, n: usize) -> Result<Self::Buf>;
    fn download(&self, b: &Self::Buf) -> Result<Vec<f32>>;
    fn buf_len(&self, b: &Self::Buf) -> usize;
    fn fill(&self, b: &mut Self::Buf, v: f32) -> Result<()>;
    /// `y += x`.
    fn add_assign(&self, y: &mut Self::Buf, x: &Self::Buf) -> Result<()>;

    /// `y[r] = W x[r] + b` for `rows` rows.
    #[allow(clippy::too_many_arguments)]
    fn linear_fwd(
        &self,
        x: &Self::Buf,
        w: &Self::Buf,
        b: Option<&Self::Buf>,
        rows: usize,
        din: usize,
        dout: usize,
        y: &mut Self::Buf,
    ) -> Result<()>;

    /// `dx = dy W` (overwrites), `dw += dyᵀ x`, `db += Σ_r dy[r]`.
    #[allow(clippy::too_many_arguments)]
    fn linear_bwd(
        &self,
        x: &Self::Buf,
        w: &Self::Buf,
        dy: &Self::Buf,
        rows: usize,
        din: usize,
        dout: usize,
        dx: Option<&mut Self::Buf>,
        dw: &mut Self::Buf,
        db: Option<&mut Self::Buf>,
    ) -> Result<()>;

    /// LayerNorm over the last dimension; `stats` receives `(mean, 1/std)` per row.
    #[allow(clippy::too_many_arguments)]
    fn layer_norm_fwd(
        &self,
        x: &Self::Buf,
        g: &Self::Buf,
        b: &Self::Buf,
        rows: usize,
        d: usize,
        eps: f32,
        y: &mut Self::Buf,
        stats: &mut Self::Buf,
    ) -> Result<()>;

    /// `dx` overwritten; `dg`, `db` accumulated.
    #[allow(clippy::too_many_arguments)]
    fn layer_norm_bwd(
        &self,
        x: &Self::Buf,
        g: &Self::Buf,
        stats: &Self::Buf,
        dy: &Self::Buf,
        rows: usize,
        d: usize,
        dx: &mut Self::Buf,
        dg: &mut Self::Buf,
        db: &mut Self::Buf,
    ) -> Result<()>;

    /// Exact GELU, `x Φ(x)`.
    fn gelu_fwd(&self, x: &Self::Buf, y: &mut Self::Buf) -> Result<()>;
    fn gelu_bwd(&self, x: &Self::Buf, dy: &Self::Buf, dx: &mut Self::Buf) -> Result<()>;

    /// GLU over `[rows, 2d]` → `[rows, d]`: `a · σ(g)` with `a` the first half.
    fn glu_fwd(&self, x: &Self::Buf, rows: usize, d: usize, y: &mut Self::Buf) -> Result<()>;
    fn glu_bwd(
        &self,
        x: &Self::Buf,
        dy: &Self::Buf,
        rows: usize,
        d: usize,
        dx: &mut Self::Buf,
    ) -> Result<()>;

    /// S4D diagonal complex scan with skip, per stream from a zero state:
    /// `s_t = dA ⊙ s_{t−1} + u_t`, `y_t = 2·Re(Σ_n C̃_n s_t,n) + D u_t`. `states` receives
    /// every `s_t` (`[batch, time, h, n2, 2]`) for the backward pass.
    #[allow(clippy::too_many_arguments)]
    fn s4d_scan_fwd(
        &self,
        dims: ScanDims,
        u: &Self::Buf,
        da: &Self::Buf,
        cb: &Self::Buf,
        dskip: &Self::Buf,
        y: &mut Self::Buf,
        states: &mut Self::Buf,
    ) -> Result<()>;

    /// `du` overwritten; `dda`, `dcb`, `ddskip` accumulated.
    #[allow(clippy::too_many_arguments)]
    fn s4d_scan_bwd(
        &self,
        dims: ScanDims,
        u: &Self::Buf,
        da: &Self::Buf,
        cb: &Self::Buf,
        dskip: &Self::Buf,
        states: &Self::Buf,
        dy: &Self::Buf,
        du: &mut Self::Buf,
        dda: &mut Self::Buf,
        dcb: &mut Self::Buf,
        ddskip: &mut Self::Buf,
    ) -> Result<()>;

    /// Mamba-1 selective scan (as mamba_ssm's `selective_scan_fn` with `delta_bias`,
    /// `delta_softplus` and `z`), per stream from a zero state, in the core's arithmetic:
    /// `dt = softplus(dt_raw + bias)`, `h ← exp(dt·A) ⊙ h + (dt·B)·u`,
    /// `y = (C·h + D u) · silu(z)`. `states` receives every `h` (`[batch, time, d, n]`).
    fn selective_scan_fwd(
        &self,
        dims: SelScanDims,
        x: SelScanIn<'_, Self::Buf>,
        y: &mut Self::Buf,
        states: &mut Self::Buf,
    ) -> Result<()>;

    fn selective_scan_bwd(
        &self,
        dims: SelScanDims,
        x: SelScanIn<'_, Self::Buf>,
        states: &Self::Buf,
        dy: &Self::Buf,
        g: SelScanGrads<'_, Self::Buf>,
    ) -> Result<()>;

    /// Length of the `states` buffer the selective scan's forward fills for its backward
    /// pass and [`Backend::selective_scan_state_at`]. Its layout is the backend's own; the
    /// default (the CPU reference's) is every step's state, `[batch, time, d, n]`; a GPU
    /// backend keeps only chunk checkpoints and recomputes inside a chunk.
    fn selective_scan_states_len(&self, dims: SelScanDims) -> usize {
        dims.batch * dims.time * dims.d * dims.n
    }

    /// The state `[batch, d, n]` after step `steps[b]` of each stream `b` (`steps[b] <
    /// time`), from the forward's `states` and inputs.
    fn selective_scan_state_at(
        &self,
        dims: SelScanDims,
        x: SelScanIn<'_, Self::Buf>,
        states: &Self::Buf,
        steps: &[usize],
    ) -> Result<Vec<f32>> {
        contract::selective_scan_state_at(self, dims, &x, states, steps)?;
        state_rows(self, states, dims.time, dims.d * dims.n, steps)
    }

    /// Mamba-2 SSD scan (the recurrent form of state-space duality; the reference for a
    /// chunked GPU kernel), per stream from a zero state, in the core's arithmetic:
    /// `dt = clamp(softplus(dt_raw + bias))`, `S_h ← exp(dt·A_h)·S_h + dt·x_h ⊗ B_g`,
    /// `y_h = S_h·C_g + D_h x_h`. `states`: every `S` (`[batch, time, heads, head_dim, n]`).
    fn ssd_scan_fwd(
        &self,
        dims: SsdDims,
        x: SsdIn<'_, Self::Buf>,
        y: &mut Self::Buf,
        states: &mut Self::Buf,
    ) -> Result<()>;

    fn ssd_scan_bwd(
        &self,
        dims: SsdDims,
        x: SsdIn<'_, Self::Buf>,
        states: &Self::Buf,
        dy: &Self::Buf,
        g: SsdGrads<'_, Self::Buf>,
    ) -> Result<()>;

    /// As [`Backend::selective_scan_states_len`], for the SSD scan (default: every
    /// step's state, `[batch, time, heads, head_dim, n]`).
    fn ssd_scan_states_len(&self, dims: SsdDims) -> usize {
        dims.batch * dims.time * dims.heads * dims.head_dim * dims.n
    }

    /// The state `[batch, heads, head_dim, n]` after step `steps[b]` of each stream.
    fn ssd_scan_state_at(
        &self,
        dims: SsdDims,
        x: SsdIn<'_, Self::Buf>,
        states: &Self::Buf,
        steps: &[usize],
    ) -> Result<Vec<f32>> {
        contract::ssd_scan_state_at(self, dims, &x, states, steps)?;
        let per = dims.heads * dims.head_dim * dims.n;
        state_rows(self, states, dims.time, per, steps)
    }

    /// Causal depthwise conv1d over time per stream (zero history): `y[t, c] = bias[c] +
    /// Σ_k w[c, k] · x[t − K + 1 + k, c]` for `x`, `y` of `[batch, time, ch]`, `w` `[ch, K]`.
    #[allow(clippy::too_many_arguments)]
    fn conv1d_fwd(
        &self,
        x: &Self::Buf,
        w: &Self::Buf,
        bias: Option<&Self::Buf>,
        batch: usize,
        time: usize,
        ch: usize,
        k: usize,
        y: &mut Self::Buf,
    ) -> Result<()>;

    /// `dx` overwritten; `dw`, `dbias` accumulated.
    #[allow(clippy::too_many_arguments)]
    fn conv1d_bwd(
        &self,
        x: &Self::Buf,
        w: &Self::Buf,
        dy: &Self::Buf,
        batch: usize,
        time: usize,
        ch: usize,
        k: usize,
        dx: &mut Self::Buf,
        dw: &mut Self::Buf,
        dbias: Option<&mut Self::Buf>,
    ) -> Result<()>;

    /// RMSNorm over the last dimension: `y = x / sqrt(mean(x²) + eps) · g`; `stats`
    /// receives `1/rms` per row.
    #[allow(clippy::too_many_arguments)]
    fn rms_norm_fwd(
        &self,
        x: &Self::Buf,
        g: &Self::Buf,
        rows: usize,
        d: usize,
        eps: f32,
        y: &mut Self::Buf,
        stats: &mut Self::Buf,
    ) -> Result<()>;

    /// `dx` overwritten, `dg` accumulated.
    #[allow(clippy::too_many_arguments)]
    fn rms_norm_bwd(
        &self,
        x: &Self::Buf,
        g: &Self::Buf,
        stats: &Self::Buf,
        dy: &Self::Buf,
        rows: usize,
        d: usize,
        dx: &mut Self::Buf,
        dg: &mut Self::Buf,
    ) -> Result<()>;

    /// SiLU, `x σ(x)`.
    fn silu_fwd(&self, x: &Self::Buf, y: &mut Self::Buf) -> Result<()>;
    fn silu_bwd(&self, x: &Self::Buf, dy: &Self::Buf, dx: &mut Self::Buf) -> Result<()>;

    /// `y[i] = x[rows[i]]` for rows of `d` values.
    fn gather_rows(&self, x: &Self::Buf, d: usize, rows: &[usize], y: &mut Self::Buf)
        -> Result<()>;
    /// `dx = 0; dx[rows[i]] += dy[i]`.
    fn gather_rows_bwd(
        &self,
        dy: &Self::Buf,
        d: usize,
        rows: &[usize],
        dx: &mut Self::Buf,
    ) -> Result<()>;

    /// Mean softmax cross-entropy of `[n, classes]` logits against `labels`; `dlogits`
    /// receives the gradient of the mean. Returns `(mean loss, correct argmax count)`.
    fn softmax_xent(
        &self,
        logits: &Self::Buf,
        labels: &[u32],
        classes: usize,
        dlogits: &mut Self::Buf,
    ) -> Result<(f32, usize)>;

    /// Mean binary cross-entropy of `logits` (one per element) against `targets` in [0, 1],
    /// positives weighted by `pos_weight`; `dlogits` receives the gradient of the mean.
    fn sigmoid_bce(
        &self,
        logits: &Self::Buf,
        targets: &[f32],
        pos_weight: f32,
        dlogits: &mut Self::Buf,
    ) -> Result<f32>;

    /// `Σ x²` (for gradient-norm clipping), accumulated in f64.
    fn sum_sq(&self, x: &Self::Buf) -> Result<f64>;
    /// `x *= s`.
    fn scale(&self, x: &mut Self::Buf, s: f32) -> Result<()>;
    /// One AdamW update of `p` with gradient `g` and moments `m`, `v`; `decay` selects
    /// decoupled weight decay for this parameter.
    fn adamw(
        &self,
        p: &mut Self::Buf,
        g: &Self::Buf,
        m: &mut Self::Buf,
        v: &mut Self::Buf,
        h: AdamW,
        decay: bool,
    ) -> Result<()>;
}

/// The shape contract of each [`Backend`] op, written once for every backend: a function
/// named after the op, taking the backend (for [`Backend::buf_len`] and the states layout
/// it chooses) and the op's arguments (outputs by shared reference), returning the
/// [`BackendError::Shape`] of the first argument that does not fit. Every backend calls it
/// first thing in the op, before it writes any output. `fill`, `scale` and `sum_sq` take
/// any length and have none.
pub mod contract {
    use super::{
        check_len, Backend, BackendError, Result, ScanDims, SelScanDims, SelScanGrads, SelScanIn,
        SsdDims, SsdGrads, SsdIn,
    };

    /// [`check_len`] over `(what, got, want)` triples, in order.
    fn lens(op: &'static str, items: &[(&str, usize, usize)]) -> Result<()> {
        items
            .iter()
            .try_for_each(|&(what, got, want)| check_len(op, what, got, want))
    }

    /// Every index of `rows` names one of the rows of `d` values of a `len`-element buffer.
    fn rows_in_range(op: &'static str, rows: &[usize], d: usize, len: usize) -> Result<()> {
        if d == 0 {
            return Ok(());
        }
        match rows.iter().find(|&&r| r >= len / d) {
            Some(&r) => Err(BackendError::Shape {
                op,
                msg: format!("row {r} out of range"),
            }),
            None => Ok(()),
        }
    }

    /// One step per stream, each before the end of its `time` steps.
    fn steps_in_range(op: &'static str, steps: &[usize], time: usize) -> Result<()> {
        match steps.iter().enumerate().find(|(_, &t)| t >= time) {
            Some((b, &t)) => Err(BackendError::Shape {
                op,
                msg: format!("step {t} of stream {b} is past the {time} steps"),
            }),
            None => Ok(()),
        }
    }

    fn elementwise_fwd<B: Backend + ?Sized>(
        be: &B,
        op: &'static str,
        x: &B::Buf,
        y: &B::Buf,
    ) -> Result<()> {
        check_len(op, "y", be.buf_len(y), be.buf_len(x))
    }

    fn elementwise_bwd<B: Backend + ?Sized>(
        be: &B,
        op: &'static str,
        x: &B::Buf,
        dy: &B::Buf,
        dx: &B::Buf,
    ) -> Result<()> {
        let n = be.buf_len(x);
        lens(op, &[("dy", be.buf_len(dy), n), ("dx", be.buf_len(dx), n)])
    }

    /// [`Backend::add_assign`]: `x` as long as `y`.
    pub fn add_assign<B: Backend + ?Sized>(be: &B, y: &B::Buf, x: &B::Buf) -> Result<()> {
        check_len("add_assign", "x", be.buf_len(x), be.buf_len(y))
    }

    /// [`Backend::linear_fwd`]: `x` `[rows, din]`, `w` `[dout, din]`, `y` `[rows, dout]`,
    /// `b` `[dout]`.
    #[allow(clippy::too_many_arguments)]
    pub fn linear_fwd<B: Backend + ?Sized>(
        be: &B,
        x: &B::Buf,
        w: &B::Buf,
        b: Option<&B::Buf>,
        rows: usize,
        din: usize,
        dout: usize,
        y: &B::Buf,
    ) -> Result<()> {
        const OP: &str = "linear_fwd";
        lens(
            OP,
            &[
                ("x", be.buf_len(x), rows * din),
                ("w", be.buf_len(w), dout * din),
                ("y", be.buf_len(y), rows * dout),
            ],
        )?;
        b.map_or(Ok(()), |b| check_len(OP, "b", be.buf_len(b), dout))
    }

    /// [`Backend::linear_bwd`]: as [`linear_fwd`], `dy` `[rows, dout]`, `dw` as `w`, `dx`
    /// as `x`, `db` `[dout]`.
    #[allow(clippy::too_many_arguments)]
    pub fn linear_bwd<B: Backend + ?Sized>(
        be: &B,
        x: &B::Buf,
        w: &B::Buf,
        dy: &B::Buf,
        rows: usize,
        din: usize,
        dout: usize,
        dx: Option<&B::Buf>,
        dw: &B::Buf,
        db: Option<&B::Buf>,
    ) -> Result<()> {
        const OP: &str = "linear_bwd";
        lens(
            OP,
            &[
                ("x", be.buf_len(x), rows * din),
                ("w", be.buf_len(w), dout * din),
                ("dy", be.buf_len(dy), rows * dout),
                ("dw", be.buf_len(dw), dout * din),
            ],
        )?;
        if let Some(dx) = dx {
            check_len(OP, "dx", be.buf_len(dx), rows * din)?;
        }
        db.map_or(Ok(()), |db| check_len(OP, "db", be.buf_len(db), dout))
    }

    /// [`Backend::layer_norm_fwd`]: `x`, `y` `[rows, d]`, `g`, `b` `[d]`, `stats`
    /// `[rows, 2]`.
    #[allow(clippy::too_many_arguments)]
    pub fn layer_norm_fwd<B: Backend + ?Sized>(
        be: &B,
        x: &B::Buf,
        g: &B::Buf,
        b: &B::Buf,
        rows: usize,
        d: usize,
        y: &B::Buf,
        stats: &B::Buf,
    ) -> Result<()> {
        lens(
            "layer_norm_fwd",
            &[
                ("x", be.buf_len(x), rows * d),
                ("y", be.buf_len(y), rows * d),
                ("g", be.buf_len(g), d),
                ("b", be.buf_len(b), d),
                ("stats", be.buf_len(stats), rows * 2),
            ],
        )
    }

    /// [`Backend::layer_norm_bwd`]: as [`layer_norm_fwd`], gradients as their values.
    #[allow(clippy::too_many_arguments)]
    pub fn layer_norm_bwd<B: Backend + ?Sized>(
        be: &B,
        x: &B::Buf,
        g: &B::Buf,
        stats: &B::Buf,
        dy: &B::Buf,
        rows: usize,
        d: usize,
        dx: &B::Buf,
        dg: &B::Buf,
        db: &B::Buf,
    ) -> Result<()> {
        lens(
            "layer_norm_bwd",
            &[
                ("x", be.buf_len(x), rows * d),
                ("dy", be.buf_len(dy), rows * d),
                ("dx", be.buf_len(dx), rows * d),
                ("g", be.buf_len(g), d),
                ("dg", be.buf_len(dg), d),
                ("db", be.buf_len(db), d),
                ("stats", be.buf_len(stats), rows * 2),
            ],
        )
    }

    /// [`Backend::gelu_fwd`]: `y` as long as `x`.
    pub fn gelu_fwd<B: Backend + ?Sized>(be: &B, x: &B::Buf, y: &B::Buf) -> Result<()> {
        elementwise_fwd(be, "gelu_fwd", x, y)
    }

    /// [`Backend::gelu_bwd`]: `dy`, `dx` as long as `x`.
    pub fn gelu_bwd<B: Backend + ?Sized>(
        be: &B,
        x: &B::Buf,
        dy: &B::Buf,
        dx: &B::Buf,
    ) -> Result<()> {
        elementwise_bwd(be, "gelu_bwd", x, dy, dx)
    }

    /// [`Backend::glu_fwd`]: `x` `[rows, 2d]`, `y` `[rows, d]`.
    pub fn glu_fwd<B: Backend + ?Sized>(
        be: &B,
        x: &B::Buf,
        rows: usize,
        d: usize,
        y: &B::Buf,
    ) -> Result<()> {
        lens(
            "glu_fwd",
            &[
                ("x", be.buf_len(x), rows * 2 * d),
                ("y", be.buf_len(y), rows * d),
            ],
        )
    }

    /// [`Backend::glu_bwd`]: as [`glu_fwd`], `dy` as `y`, `dx` as `x`.
    pub fn glu_bwd<B: Backend + ?Sized>(
        be: &B,
        x: &B::Buf,
        dy: &B::Buf,
        rows: usize,
        d: usize,
        dx: &B::Buf,
    ) -> Result<()> {
        lens(
            "glu_bwd",
            &[
                ("x", be.buf_len(x), rows * 2 * d),
                ("dy", be.buf_len(dy), rows * d),
                ("dx", be.buf_len(dx), rows * 2 * d),
            ],
        )
    }

    /// [`Backend::s4d_scan_fwd`]: `u`, `y` `[batch, time, h]`, `dA`, `C̃` `[h, n2, 2]`, `D`
    /// `[h]`, `states` `[batch, time, h, n2, 2]`.
    #[allow(clippy::too_many_arguments)]
    pub fn s4d_scan_fwd<B: Backend + ?Sized>(
        be: &B,
        dims: ScanDims,
        u: &B::Buf,
        da: &B::Buf,
        cb: &B::Buf,
        dskip: &B::Buf,
        y: &B::Buf,
        states: &B::Buf,
    ) -> Result<()> {
        let ScanDims { batch, time, h, n2 } = dims;
        let per = h * n2 * 2;
        lens(
            "s4d_scan_fwd",
            &[
                ("u", be.buf_len(u), batch * time * h),
                ("y", be.buf_len(y), batch * time * h),
                ("dA", be.buf_len(da), per),
                ("C̃", be.buf_len(cb), per),
                ("D", be.buf_len(dskip), h),
                ("states", be.buf_len(states), batch * time * per),
            ],
        )
    }

    /// [`Backend::s4d_scan_bwd`]: as [`s4d_scan_fwd`], gradients as their values.
    #[allow(clippy::too_many_arguments)]
    pub fn s4d_scan_bwd<B: Backend + ?Sized>(
        be: &B,
        dims: ScanDims,
        u: &B::Buf,
        da: &B::Buf,
        cb: &B::Buf,
        dskip: &B::Buf,
        states: &B::Buf,
        dy: &B::Buf,
        du: &B::Buf,
        dda: &B::Buf,
        dcb: &B::Buf,
        ddskip: &B::Buf,
    ) -> Result<()> {
        let ScanDims { batch, time, h, n2 } = dims;
        let per = h * n2 * 2;
        lens(
            "s4d_scan_bwd",
            &[
                ("u", be.buf_len(u), batch * time * h),
                ("dy", be.buf_len(dy), batch * time * h),
                ("du", be.buf_len(du), batch * time * h),
                ("dA", be.buf_len(da), per),
                ("C̃", be.buf_len(cb), per),
                ("dD", be.buf_len(ddskip), h),
                ("d dA", be.buf_len(dda), per),
                ("d C̃", be.buf_len(dcb), per),
                ("D", be.buf_len(dskip), h),
                ("states", be.buf_len(states), batch * time * per),
            ],
        )
    }

    /// The inputs of the selective scan, as [`SelScanIn`] documents them.
    fn selective_scan_inputs<B: Backend + ?Sized>(
        be: &B,
        op: &'static str,
        dims: SelScanDims,
        x: &SelScanIn<'_, B::Buf>,
    ) -> Result<()> {
        let SelScanDims { batch, time, d, n } = dims;
        let (bt, btn) = (batch * time * d, batch * time * n);
        lens(
            op,
            &[
                ("u", be.buf_len(x.u), bt),
                ("dt", be.buf_len(x.dt), bt),
                ("z", be.buf_len(x.z), bt),
                ("B", be.buf_len(x.bm), btn),
                ("C", be.buf_len(x.cm), btn),
                ("A", be.buf_len(x.a), d * n),
                ("bias", be.buf_len(x.bias), d),
                ("D", be.buf_len(x.dskip), d),
            ],
        )
    }

    /// [`Backend::selective_scan_fwd`]: the inputs as [`SelScanIn`] documents them,
    /// `states` of [`Backend::selective_scan_states_len`], `y` `[batch, time, d]`.
    pub fn selective_scan_fwd<B: Backend + ?Sized>(
        be: &B,
        dims: SelScanDims,
        x: &SelScanIn<'_, B::Buf>,
        y: &B::Buf,
        states: &B::Buf,
    ) -> Result<()> {
        const OP: &str = "selective_scan_fwd";
        selective_scan_inputs(be, OP, dims, x)?;
        let SelScanDims { batch, time, d, .. } = dims;
        lens(
            OP,
            &[
                (
                    "states",
                    be.buf_len(states),
                    be.selective_scan_states_len(dims),
                ),
                ("y", be.buf_len(y), batch * time * d),
            ],
        )
    }

    /// [`Backend::selective_scan_bwd`]: as [`selective_scan_fwd`], `dy` as `y`, gradients
    /// as their values.
    pub fn selective_scan_bwd<B: Backend + ?Sized>(
        be: &B,
        dims: SelScanDims,
        x: &SelScanIn<'_, B::Buf>,
        states: &B::Buf,
        dy: &B::Buf,
        g: &SelScanGrads<'_, B::Buf>,
    ) -> Result<()> {
        const OP: &str = "selective_scan_bwd";
        selective_scan_inputs(be, OP, dims, x)?;
        let SelScanDims { batch, time, d, n } = dims;
        let (bt, btn) = (batch * time * d, batch * time * n);
        lens(
            OP,
            &[
                (
                    "states",
                    be.buf_len(states),
                    be.selective_scan_states_len(dims),
                ),
                ("dy", be.buf_len(dy), bt),
                ("du", be.buf_len(g.du), bt),
                ("ddt", be.buf_len(g.ddt), bt),
                ("dz", be.buf_len(g.dz), bt),
                ("dB", be.buf_len(g.dbm), btn),
                ("dC", be.buf_len(g.dcm), btn),
                ("dA", be.buf_len(g.da), d * n),
                ("dD", be.buf_len(g.dskip), d),
                ("dbias", be.buf_len(g.dbias), d),
            ],
        )
    }

    /// [`Backend::selective_scan_state_at`]: one step per stream, `states` of
    /// [`Backend::selective_scan_states_len`], every step before `time`, the inputs as in
    /// [`selective_scan_fwd`].
    pub fn selective_scan_state_at<B: Backend + ?Sized>(
        be: &B,
        dims: SelScanDims,
        x: &SelScanIn<'_, B::Buf>,
        states: &B::Buf,
        steps: &[usize],
    ) -> Result<()> {
        const OP: &str = "selective_scan_state_at";
        lens(
            OP,
            &[
                ("steps", steps.len(), dims.batch),
                (
                    "states",
                    be.buf_len(states),
                    be.selective_scan_states_len(dims),
                ),
            ],
        )?;
        steps_in_range(OP, steps, dims.time)?;
        selective_scan_inputs(be, OP, dims, x)
    }

    /// The inputs of the SSD scan, as [`SsdIn`] documents them, and `heads` a multiple of
    /// `groups`.
    fn ssd_scan_inputs<B: Backend + ?Sized>(
        be: &B,
        op: &'static str,
        dims: SsdDims,
        x: &SsdIn<'_, B::Buf>,
    ) -> Result<()> {
        let SsdDims {
            batch,
            time,
            heads,
            head_dim,
            groups,
            n,
            ..
        } = dims;
        if groups == 0 || !heads.is_multiple_of(groups) {
            return Err(BackendError::Shape {
                op,
                msg: "heads must be a multiple of groups".into(),
            });
        }
        let bt = batch * time;
        lens(
            op,
            &[
                ("x", be.buf_len(x.x), bt * heads * head_dim),
                ("dt", be.buf_len(x.dt), bt * heads),
                ("B", be.buf_len(x.bm), bt * groups * n),
                ("C", be.buf_len(x.cm), bt * groups * n),
                ("A", be.buf_len(x.a), heads),
                ("bias", be.buf_len(x.bias), heads),
                ("D", be.buf_len(x.dskip), heads),
            ],
        )
    }

    /// [`Backend::ssd_scan_fwd`]: `heads` a multiple of `groups`, the inputs as [`SsdIn`]
    /// documents them, `states` of [`Backend::ssd_scan_states_len`], `y`
    /// `[batch, time, heads, head_dim]`.
    pub fn ssd_scan_fwd<B: Backend + ?Sized>(
        be: &B,
        dims: SsdDims,
        x: &SsdIn<'_, B::Buf>,
        y: &B::Buf,
        states: &B::Buf,
    ) -> Result<()> {
        const OP: &str = "ssd_scan_fwd";
        ssd_scan_inputs(be, OP, dims, x)?;
        let hp = dims.heads * dims.head_dim;
        lens(
            OP,
            &[
                ("states", be.buf_len(states), be.ssd_scan_states_len(dims)),
                ("y", be.buf_len(y), dims.batch * dims.time * hp),
            ],
        )
    }

    /// [`Backend::ssd_scan_bwd`]: as [`ssd_scan_fwd`], `dy` as `y`, gradients as their
    /// values.
    pub fn ssd_scan_bwd<B: Backend + ?Sized>(
        be: &B,
        dims: SsdDims,
        x: &SsdIn<'_, B::Buf>,
        states: &B::Buf,
        dy: &B::Buf,
        g: &SsdGrads<'_, B::Buf>,
    ) -> Result<()> {
        const OP: &str = "ssd_scan_bwd";
        ssd_scan_inputs(be, OP, dims, x)?;
        let SsdDims {
            batch,
            time,
            heads,
            head_dim,
            groups,
            n,
            ..
        } = dims;
        let (bt, hp) = (batch * time, heads * head_dim);
        lens(
            OP,
            &[
                ("states", be.buf_len(states), be.ssd_scan_states_len(dims)),
                ("dy", be.buf_len(dy), bt * hp),
                ("dx", be.buf_len(g.dx), bt * hp),
                ("ddt", be.buf_len(g.ddt), bt * heads),
                ("dB", be.buf_len(g.dbm), bt * groups * n),
                ("dC", be.buf_len(g.dcm), bt * groups * n),
                ("dA", be.buf_len(g.da), heads),
                ("dD", be.buf_len(g.dskip), heads),
                ("dbias", be.buf_len(g.dbias), heads),
            ],
        )
    }

    /// [`Backend::ssd_scan_state_at`]: one step per stream, `states` of
    /// [`Backend::ssd_scan_states_len`], every step before `time`, the inputs as in
    /// [`ssd_scan_fwd`].
    pub fn ssd_scan_state_at<B: Backend + ?Sized>(
        be: &B,
        dims: SsdDims,
        x: &SsdIn<'_, B::Buf>,
        states: &B::Buf,
        steps: &[usize],
    ) -> Result<()> {
        const OP: &str = "ssd_scan_state_at";
        lens(
            OP,
            &[
                ("steps", steps.len(), dims.batch),
                ("states", be.buf_len(states), be.ssd_scan_states_len(dims)),
            ],
        )?;
        steps_in_range(OP, steps, dims.time)?;
        ssd_scan_inputs(be, OP, dims, x)
    }

    /// [`Backend::conv1d_fwd`]: `x`, `y` `[batch, time, ch]`, `w` `[ch, k]`, `bias` `[ch]`.
    #[allow(clippy::too_many_arguments)]
    pub fn conv1d_fwd<B: Backend + ?Sized>(
        be: &B,
        x: &B::Buf,
        w: &B::Buf,
        bias: Option<&B::Buf>,
        batch: usize,
        time: usize,
        ch: usize,
        k: usize,
        y: &B::Buf,
    ) -> Result<()> {
        const OP: &str = "conv1d_fwd";
        let m = batch * time * ch;
        lens(
            OP,
            &[
                ("x", be.buf_len(x), m),
                ("y", be.buf_len(y), m),
                ("w", be.buf_len(w), ch * k),
            ],
        )?;
        bias.map_or(Ok(()), |b| check_len(OP, "bias", be.buf_len(b), ch))
    }

    /// [`Backend::conv1d_bwd`]: as [`conv1d_fwd`], gradients as their values.
    #[allow(clippy::too_many_arguments)]
    pub fn conv1d_bwd<B: Backend + ?Sized>(
        be: &B,
        x: &B::Buf,
        w: &B::Buf,
        dy: &B::Buf,
        batch: usize,
        time: usize,
        ch: usize,
        k: usize,
        dx: &B::Buf,
        dw: &B::Buf,
        dbias: Option<&B::Buf>,
    ) -> Result<()> {
        const OP: &str = "conv1d_bwd";
        let m = batch * time * ch;
        lens(
            OP,
            &[
                ("x", be.buf_len(x), m),
                ("dy", be.buf_len(dy), m),
                ("dx", be.buf_len(dx), m),
                ("w", be.buf_len(w), ch * k),
                ("dw", be.buf_len(dw), ch * k),
            ],
        )?;
        dbias.map_or(Ok(()), |b| check_len(OP, "dbias", be.buf_len(b), ch))
    }

    /// [`Backend::rms_norm_fwd`]: `x`, `y` `[rows, d]`, `g` `[d]`, `stats` `[rows]`.
    #[allow(clippy::too_many_arguments)]
    pub fn rms_norm_fwd<B: Backend + ?Sized>(
        be: &B,
        x: &B::Buf,
        g: &B::Buf,
        rows: usize,
        d: usize,
        y: &B::Buf,
        stats: &B::Buf,
    ) -> Result<()> {
        lens(
            "rms_norm_fwd",
            &[
                ("x", be.buf_len(x), rows * d),
                ("y", be.buf_len(y), rows * d),
                ("g", be.buf_len(g), d),
                ("stats", be.buf_len(stats), rows),
            ],
        )
    }

    /// [`Backend::rms_norm_bwd`]: as [`rms_norm_fwd`], gradients as their values.
    #[allow(clippy::too_many_arguments)]
    pub fn rms_norm_bwd<B: Backend + ?Sized>(
        be: &B,
        x: &B::Buf,
        g: &B::Buf,
        stats: &B::Buf,
        dy: &B::Buf,
        rows: usize,
        d: usize,
        dx: &B::Buf,
        dg: &B::Buf,
    ) -> Result<()> {
        lens(
            "rms_norm_bwd",
            &[
                ("x", be.buf_len(x), rows * d),
                ("dy", be.buf_len(dy), rows * d),
                ("dx", be.buf_len(dx), rows * d),
                ("g", be.buf_len(g), d),
                ("dg", be.buf_len(dg), d),
                ("stats", be.buf_len(stats), rows),
            ],
        )
    }

    /// [`Backend::silu_fwd`]: `y` as long as `x`.
    pub fn silu_fwd<B: Backend + ?Sized>(be: &B, x: &B::Buf, y: &B::Buf) -> Result<()> {
        elementwise_fwd(be, "silu_fwd", x, y)
    }

    /// [`Backend::silu_bwd`]: `dy`, `dx` as long as `x`.
    pub fn silu_bwd<B: Backend + ?Sized>(
        be: &B,
        x: &B::Buf,
        dy: &B::Buf,
        dx: &B::Buf,
    ) -> Result<()> {
        elementwise_bwd(be, "silu_bwd", x, dy, dx)
    }

    /// [`Backend::gather_rows`]: `y` `[rows.len(), d]`, every row index one of the whole
    /// rows of `x` (for `d > 0`).
    pub fn gather_rows<B: Backend + ?Sized>(
        be: &B,
        x: &B::Buf,
        d: usize,
        rows: &[usize],
        y: &B::Buf,
    ) -> Result<()> {
        const OP: &str = "gather_rows";
        check_len(OP, "y", be.buf_len(y), rows.len() * d)?;
        rows_in_range(OP, rows, d, be.buf_len(x))
    }

    /// [`Backend::gather_rows_bwd`]: `dy` `[rows.len(), d]`, every row index one of the
    /// whole rows of `dx` (for `d > 0`).
    pub fn gather_rows_bwd<B: Backend + ?Sized>(
        be: &B,
        dy: &B::Buf,
        d: usize,
        rows: &[usize],
        dx: &B::Buf,
    ) -> Result<()> {
        const OP: &str = "gather_rows_bwd";
        check_len(OP, "dy", be.buf_len(dy), rows.len() * d)?;
        rows_in_range(OP, rows, d, be.buf_len(dx))
    }

    /// [`Backend::softmax_xent`]: `logits`, `dlogits` `[labels.len(), classes]`, every
    /// label below `classes`.
    pub fn softmax_xent<B: Backend + ?Sized>(
        be: &B,
        logits: &B::Buf,
        labels: &[u32],
        classes: usize,
        dlogits: &B::Buf,
    ) -> Result<()> {
        const OP: &str = "softmax_xent";
        let n = labels.len();
        lens(
            OP,
            &[
                ("logits", be.buf_len(logits), n * classes),
                ("dlogits", be.buf_len(dlogits), n * classes),
            ],
        )?;
        match labels.iter().find(|&&y| y as usize >= classes) {
            Some(&y) => Err(BackendError::Shape {
                op: OP,
                msg: format!("label {y} >= {classes} classes"),
            }),
            None => Ok(()),
        }
    }

    /// [`Backend::sigmoid_bce`]: `targets`, `dlogits` as long as `logits`.
    pub fn sigmoid_bce<B: Backend + ?Sized>(
        be: &B,
        logits: &B::Buf,
        targets: &[f32],
        dlogits: &B::Buf,
    ) -> Result<()> {
        let n = be.buf_len(logits);
        lens(
            "sigmoid_bce",
            &[
                ("targets", targets.len(), n),
                ("dlogits", be.buf_len(dlogits), n),
            ],
        )
    }

    /// [`Backend::adamw`]: `g`, `m`, `v` as long as `p`.
    pub fn adamw<B: Backend + ?Sized>(
        be: &B,
        p: &B::Buf,
        g: &B::Buf,
        m: &B::Buf,
        v: &B::Buf,
    ) -> Result<()> {
        let n = be.buf_len(p);
        lens(
            "adamw",
            &[
                ("g", be.buf_len(g), n),
                ("m", be.buf_len(m), n),
                ("v", be.buf_len(v), n),
            ],
        )
    }
}
