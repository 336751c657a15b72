//! The op-level backend API: batched forward and backward ops over streams, on buffers the
//! backend owns. The trainer and the verifier are written against [`Backend`] only; the CPU
//! backend ([`crate::cpu::Cpu`]) is the reference, a CUDA backend implements the same trait.
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
/// states buffer.
fn state_rows<B: Backend + ?Sized>(
    be: &B,
    op: &'static str,
    states: &B::Buf,
    batch: usize,
    time: usize,
    per: usize,
    steps: &[usize],
) -> Result<Vec<f32>> {
    check_len(op, "steps", steps.len(), batch)?;
    check_len(op, "states", be.buf_len(states), batch * time * per)?;
    let all = be.download(states)?;
    let mut out = Vec::with_capacity(batch * per);
    for (b, &t) in steps.iter().enumerate() {
        if t >= time {
            return Err(BackendError::Shape {
                op,
                msg: format!("step {t} of stream {b} is past the {time} steps"),
            });
        }
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

/// The ops every backend provides.
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
        let _ = x;
        let per = dims.d * dims.n;
        state_rows(
            self,
            "selective_scan_state_at",
            states,
            dims.batch,
            dims.time,
            per,
            steps,
        )
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
        let _ = x;
        let per = dims.heads * dims.head_dim * dims.n;
        state_rows(
            self,
            "ssd_scan_state_at",
            states,
            dims.batch,
            dims.time,
            per,
            steps,
        )
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
