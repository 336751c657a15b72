//! The verification **step path**: the core's recurrent step for `batch` streams at once on
//! a [`Device`], one time step per kernel launch (`kernels/step.cu`), every stream's state
//! held on the device in the core's own state-vector layout.
//!
//! The kernels perform the arithmetic of the core's [`Kernels::Reference`] step in the
//! core's order — sequential f32 dot products, the same LayerNorm/RMSNorm, GELU, SiLU,
//! sigmoid and softplus formulas — with FMA contraction off. exp, log1p and erf are the
//! device's own (CUDA's built-ins; the emulator: the host C library), a few ulp from the
//! core's, so the outputs and states agree with the core's within
//! [`crate::verify::Tier::STEP`], not bit for bit.
//!
//! Geometry: one block per stream ([`STEP_BLOCK`] threads by default); the stream's
//! activations live in shared memory and each sub-op (linear, norm, scan update, gate) is
//! split over its output channels, one thread per channel. Weights are uploaded once, in
//! one packed buffer, and shared by every stream. Models with an audio front end are fed
//! the front end's feature frames (computed on the host by the core).

use tinyssm_core::stack::FinalNorm;
use tinyssm_core::{ActQuant, Kernels, Model, Role, Weights};

use super::device::{Device, Launch};
use super::params::KernelParams;
use crate::backend::{BackendError, Result};
use crate::blocks::{run_kind, BatchKind, KindFn, VectorModel};

/// Threads per block (one block per stream) unless [`StepRunner::with_block`] says otherwise.
pub const STEP_BLOCK: u32 = 64;

/// Largest shared-memory footprint of one stream's activations (bytes).
const MAX_SMEM: usize = 96 * 1024;

/// The `StepParams` struct of `kernels/step.cu`, field for field.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct StepParams {
    pub w: u64,
    pub woff: u64,
    pub x: u64,
    pub out: u64,
    pub state: u64,
    pub lens: u64,
    pub probe: u64,
    pub batch: i64,
    pub steps: i64,
    pub t: i64,
    pub d_in: i64,
    pub d_out: i64,
    pub state_len: i64,
    pub n_layers: i64,
    pub d_model: i64,
    pub d_state: i64,
    pub d_inner: i64,
    pub d_conv: i64,
    pub dt_rank: i64,
    pub flags: i64,
    pub eps: f32,
    /// Tensor slots; the offsets table holds `2 · nslots` entries (the second half: each
    /// quantized matrix's record, see [`Packer::mat`]).
    pub nslots: i32,
}
// SAFETY: repr(C), 20 eight-byte integers then two four-byte fields: no padding (the
// assertion below), plain data.
unsafe impl KernelParams for StepParams {
    const NAME: &'static str = "StepParams";
}
const _: () = assert!(size_of::<StepParams>() == 20 * 8 + 8);

/// `StepParams::flags` bits (`kernels/step.cu`).
pub(crate) const PRENORM: i64 = 1;
pub(crate) const GLU: i64 = 2;
pub(crate) const FINAL_NORM: i64 = 4;
pub(crate) const CONV_BIAS: i64 = 8;
pub(crate) const IN_BIAS: i64 = 16;
pub(crate) const OUT_BIAS: i64 = 32;

/// Weight slots before the first layer's: encoder, encoder bias, final norm weight and
/// bias, decoder, decoder bias.
const GLOBAL_SLOTS: usize = 6;

pub(crate) fn shape(msg: String) -> BackendError {
    BackendError::Shape { op: "step", msg }
}

/// What the step kernels need from a model: the kernel, the params template, the packed
/// weights and their offsets, the model's state length per stream.
#[derive(Debug, Clone)]
pub struct StepModel {
    kernel: &'static str,
    params: StepParams,
    weights: Vec<f32>,
    offsets: Vec<i64>,
    smem_floats: usize,
    state_len: usize,
    d_in: usize,
    d_out: usize,
}

/// The step kernels' packed weights as a kind fills them: each tensor in its slot.
pub struct Packer<'m> {
    m: &'m Model<'m>,
    weights: Vec<f32>,
    offsets: Vec<i64>,
    nslots: usize,
}

/// How the core multiplies by a matrix: [`kernels::matvec`](tinyssm_core::kernels::matvec)
/// (w8a8 where the model quantizes activations) or row by row with f32 activations
/// (`dot_row`: Mamba-1's dt projection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatUse {
    Linear,
    Rows,
}

impl Packer<'_> {
    fn put(&mut self, slot: usize, v: Vec<f32>) {
        self.offsets[slot] = self.weights.len() as i64;
        self.weights.extend_from_slice(&v);
        // Keep every tensor 16-byte aligned.
        while !self.weights.len().is_multiple_of(4) {
            self.weights.push(0.0);
        }
    }

    fn values(&self, layer: Option<u16>, role: Role, want: usize) -> Result<Vec<f32>> {
        let t = self.m.find(layer, role).ok_or_else(|| {
            shape(format!(
                "model has no {} tensor{}",
                role.name(),
                layer.map_or(String::new(), |l| format!(" in layer {l}"))
            ))
        })?;
        // f16/bf16 → f32 is exact: the core's f16/bf16 dots multiply the converted value.
        // int8 matrices go through `mat` (values and scales apart); int4 groups are not
        // computed by the step kernels.
        let v: Vec<f32> = match t.weights {
            Weights::F32(w) => w.to_vec(),
            Weights::F16(w) => w.iter().map(|x| x.to_f32()).collect(),
            Weights::Bf16(w) => w.iter().map(|x| x.to_f32()).collect(),
            // Format 1.6's compact S4D modes: dA in Q1.15 (exact in f32) and C·dB as int8
            // rows, dequantized (the core applies each row's scale to the row's sum
            // instead: the same value up to f32 rounding).
            Weights::Q15(w) => w
                .iter()
                .map(|&q| q as f32 * tinyssm_core::kernels::Q15_SCALE)
                .collect(),
            Weights::I8(_) if !role.is_matrix() => {
                tinyssm_host::tensor_f32(&t).ok_or_else(|| {
                    shape(format!("{} is not a consistent int8 tensor", role.name()))
                })?
            }
            Weights::I8(_) | Weights::I4(_) | Weights::Int(_) => {
                return Err(BackendError::Unavailable(format!(
                    "the step path runs f32/f16/bf16 vectors and f32/f16/bf16/int8 matrices; {} is {}",
                    role.name(),
                    t.dtype.name()
                )))
            }
        };
        if v.len() != want {
            return Err(shape(format!(
                "{} has {} values, expected {want}",
                role.name(),
                v.len()
            )));
        }
        Ok(v)
    }

    /// A vector tensor as stored.
    pub fn vec(&mut self, slot: usize, layer: Option<u16>, role: Role, n: usize) -> Result<()> {
        let v = self.values(layer, role, n)?;
        self.put(slot, v);
        Ok(())
    }

    /// A `[rows, cols]` matrix the core multiplies by with `kernels::matvec`, stored
    /// transposed (`[cols, rows]`).
    pub fn mat(
        &mut self,
        slot: usize,
        layer: Option<u16>,
        role: Role,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        self.mat_as(slot, layer, role, rows, cols, MatUse::Linear)
    }

    /// A `[rows, cols]` matrix used as `how` says, stored transposed (`[cols, rows]`). An
    /// int8 matrix is stored as its values `q` (exact in f32), and its quantization record
    /// `[mode, xmax, scale per row]` goes to slot `nslots + slot` (`kernels/step.cu`,
    /// `step_q`): mode 1 for f32 activations, 2 for w8a8 with dynamic scales, 3 for w8a8
    /// with the static bound `xmax` — the core's own choice in `kernels::matvec`.
    pub fn mat_as(
        &mut self,
        slot: usize,
        layer: Option<u16>,
        role: Role,
        rows: usize,
        cols: usize,
        how: MatUse,
    ) -> Result<()> {
        let (v, rec) = match self.m.find(layer, role).map(|t| t.weights) {
            Some(Weights::I8(q)) => {
                if q.q.len() != rows * cols || q.scale.len() != rows {
                    return Err(shape(format!(
                        "{} has {} int8 values and {} scales, expected {rows} × {cols}",
                        role.name(),
                        q.q.len(),
                        q.scale.len()
                    )));
                }
                let (mode, xmax) = match (how, q.act) {
                    (MatUse::Linear, ActQuant::DynamicI8) if q.cols == cols => (2.0, 0.0),
                    (MatUse::Linear, ActQuant::StaticI8 { xmax }) if q.cols == cols => (3.0, xmax),
                    _ => (1.0, 0.0),
                };
                let mut rec = vec![mode, xmax];
                rec.extend_from_slice(q.scale);
                (q.q.iter().map(|&x| x as f32).collect(), Some(rec))
            }
            _ => (self.values(layer, role, rows * cols)?, None),
        };
        let mut t = vec![0f32; v.len()];
        for r in 0..rows {
            for c in 0..cols {
                t[c * rows + r] = v[r * cols + c];
            }
        }
        self.put(slot, t);
        if let Some(rec) = rec {
            self.put(self.nslots + slot, rec);
        }
        Ok(())
    }
}

/// [`StepModel::new`] for a vector model of kind `K`.
struct PackStep<'a, 'm> {
    m: &'a Model<'m>,
    v: VectorModel,
}

impl KindFn for PackStep<'_, '_> {
    type Out = Result<StepModel>;
    fn call<K: BatchKind>(self, kind: &K) -> Result<StepModel> {
        let (m, v) = (self.m, self.v);
        let layers = v.n_layers;
        let fe = m.front_end().map_or(0, |f| f.config().state_len());
        let mut p = StepParams {
            n_layers: layers as i64,
            ..Default::default()
        };
        let lay = kind.step_layout(&v, &mut p)?;
        let (d_in, d_out, dm) = (v.d_in, v.d_out, v.block.d_model() as usize);
        let state_len = layers * lay.state_per_layer;
        if state_len + fe != m.state_len() {
            return Err(shape(format!(
                "state layout: {layers} layers × {} + front end {fe} ≠ the model's {}",
                lay.state_per_layer,
                m.state_len()
            )));
        }
        let smem_floats = lay.smem;
        if smem_floats * 4 > MAX_SMEM {
            return Err(BackendError::Unavailable(format!(
                "the step kernel keeps one stream's activations in shared memory: {} bytes \
                 exceed {MAX_SMEM}",
                smem_floats * 4
            )));
        }
        // The slots: [`GLOBAL_SLOTS`] (encoder, final norm, decoder), then each layer's.
        let nslots = GLOBAL_SLOTS + layers * lay.per_layer;
        p.nslots = i32::try_from(nslots)
            .map_err(|_| shape(format!("{nslots} tensor slots do not fit the kernel's i32")))?;
        let mut pk = Packer {
            m,
            weights: Vec::new(),
            offsets: vec![-1; 2 * nslots],
            nslots,
        };
        pk.mat(0, None, Role::Encoder, dm, d_in)?;
        pk.vec(1, None, Role::EncoderBias, dm)?;
        match v.norm {
            FinalNorm::None => {}
            FinalNorm::Rms { .. } => pk.vec(2, None, Role::NormF, dm)?,
            FinalNorm::Layer { .. } => {
                pk.vec(2, None, Role::NormF, dm)?;
                pk.vec(3, None, Role::NormFBias, dm)?;
            }
            n => {
                return Err(BackendError::Unavailable(format!(
                    "the step path has no final norm {n:?}"
                )))
            }
        }
        pk.mat(4, None, Role::Decoder, d_out, dm)?;
        pk.vec(5, None, Role::DecoderBias, d_out)?;
        for l in 0..layers {
            kind.step_pack_layer(&mut pk, GLOBAL_SLOTS + l * lay.per_layer, l as u16)?;
        }
        let kernel = lay.kernel;
        p.d_in = d_in as i64;
        p.d_out = d_out as i64;
        p.state_len = state_len as i64;
        if pk.weights.is_empty() {
            pk.weights.push(0.0);
        }
        Ok(StepModel {
            kernel,
            params: p,
            weights: pk.weights,
            offsets: pk.offsets,
            smem_floats,
            state_len,
            d_in,
            d_out,
        })
    }
}

impl StepModel {
    /// Packs a model for the step kernels: a vector model ([`VectorModel`]) of a block kind
    /// whose [`BatchKind`] has a step kernel. Another model is `BackendError::Unavailable`
    /// (naming what), a tensor of the wrong size a shape error.
    pub fn new(m: &Model<'_>) -> Result<Self> {
        let v = VectorModel::of(m)?;
        run_kind(&v.block, "the CUDA step path", PackStep { m, v })
    }

    /// The model's state floats per stream (the core's state vector without the front
    /// end's part).
    pub fn state_len(&self) -> usize {
        self.state_len
    }
    pub fn d_in(&self) -> usize {
        self.d_in
    }
    pub fn d_out(&self) -> usize {
        self.d_out
    }
    /// The kernel that steps this model.
    pub fn kernel(&self) -> &'static str {
        self.kernel
    }
}

/// The core model the step path must agree with (within [`crate::verify::Tier::STEP`]).
pub fn reference_model<'a>(m: &Model<'a>) -> Model<'a> {
    m.with_kernels(Kernels::Reference)
}

fn to_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn from_bytes(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// `batch` streams of one model on a device: weights uploaded once, states resident.
pub struct StepRunner<'d, D: Device> {
    dev: &'d D,
    model: StepModel,
    batch: usize,
    block: u32,
    w: D::Mem,
    woff: D::Mem,
    state: D::Mem,
}

impl<'d, D: Device> StepRunner<'d, D> {
    /// Packs and uploads `m` and allocates `batch` streams in their initial (zero) state.
    pub fn new(dev: &'d D, m: &Model<'_>, batch: usize) -> Result<Self> {
        let model = StepModel::new(m)?;
        if batch == 0 || batch > i32::MAX as usize {
            return Err(shape(format!("batch {batch} is not in 1..=2^31-1")));
        }
        let mut w = dev.alloc_zeroed(model.weights.len() * 4)?;
        dev.write(&mut w, &to_bytes(&model.weights))?;
        let offs: Vec<u8> = model.offsets.iter().flat_map(|o| o.to_le_bytes()).collect();
        let mut woff = dev.alloc_zeroed(offs.len())?;
        dev.write(&mut woff, &offs)?;
        let bytes = batch
            .checked_mul(model.state_len * 4)
            .ok_or_else(|| shape("state size overflows".into()))?;
        let state = dev.alloc_zeroed(bytes)?;
        Ok(Self {
            dev,
            model,
            batch,
            block: STEP_BLOCK,
            w,
            woff,
            state,
        })
    }

    /// Another block size (threads per stream); any value in 1..=1024 computes the same.
    pub fn with_block(mut self, block: u32) -> Result<Self> {
        if block == 0 || block > 1024 {
            return Err(shape(format!("block {block} is not in 1..=1024")));
        }
        self.block = block;
        Ok(self)
    }

    pub fn model(&self) -> &StepModel {
        &self.model
    }
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Every stream back to the initial state (all zeros, as `Model::reset` for these
    /// architectures).
    pub fn reset(&mut self) -> Result<()> {
        self.dev.zero(&mut self.state)
    }

    /// The states, `[batch][state_len]`, each the core's state vector (model part).
    pub fn states(&self) -> Result<Vec<f32>> {
        let mut b = vec![0u8; self.batch * self.model.state_len * 4];
        self.dev.read(&self.state, &mut b)?;
        Ok(from_bytes(&b))
    }

    /// Sets every stream's state (`[batch][state_len]`).
    pub fn set_states(&mut self, st: &[f32]) -> Result<()> {
        if st.len() != self.batch * self.model.state_len {
            return Err(shape(format!(
                "states have {} values, expected {} streams × {}",
                st.len(),
                self.batch,
                self.model.state_len
            )));
        }
        self.dev.write(&mut self.state, &to_bytes(st))
    }

    /// Advances the streams: `x` is `[batch][steps][d_in]`, stream `s` takes its first
    /// `lens[s]` (≤ `steps`) inputs, one launch per time step; a stream past its length
    /// is not touched. Returns `[batch][steps][d_out]` outputs, NaN where a stream took
    /// no step.
    pub fn run(&mut self, x: &[f32], steps: usize, lens: &[usize]) -> Result<Vec<f32>> {
        let w = self.window(x, steps, lens)?;
        self.launch(&w)?;
        self.outputs(&w)
    }

    /// Uploads a window of inputs (as [`Self::run`] takes them) for [`Self::launch`].
    pub fn window(&self, x: &[f32], steps: usize, lens: &[usize]) -> Result<Window<D>> {
        let (b, di, dout) = (self.batch, self.model.d_in, self.model.d_out);
        if lens.len() != b {
            return Err(shape(format!("{} lengths for {b} streams", lens.len())));
        }
        let want = b
            .checked_mul(steps)
            .and_then(|v| v.checked_mul(di))
            .ok_or_else(|| shape("input size overflows".into()))?;
        if x.len() != want {
            return Err(shape(format!(
                "inputs have {} values, expected {b} streams × {steps} steps × {di}",
                x.len()
            )));
        }
        if let Some((s, &l)) = lens.iter().enumerate().find(|(_, &l)| l > steps) {
            return Err(shape(format!(
                "stream {s} length {l} exceeds {steps} steps"
            )));
        }
        let mut xin = self.dev.alloc_zeroed(x.len() * 4)?;
        self.dev.write(&mut xin, &to_bytes(x))?;
        let lb: Vec<u8> = lens
            .iter()
            .flat_map(|&l| (l as i64).to_le_bytes())
            .collect();
        let mut lbuf = self.dev.alloc_zeroed(lb.len())?;
        self.dev.write(&mut lbuf, &lb)?;
        let n_out = b * steps * dout;
        let mut out = self.dev.alloc_zeroed(n_out * 4)?;
        self.dev
            .write(&mut out, &to_bytes(&vec![f32::NAN; n_out]))?;
        Ok(Window {
            x: xin,
            lens: lbuf,
            out,
            steps,
            active: lens.iter().copied().max().unwrap_or(0),
            n_out,
        })
    }

    /// Queues the window's steps, one launch per time step (no host transfer: the
    /// benchmarks time this).
    pub fn launch(&mut self, w: &Window<D>) -> Result<()> {
        let mut p = self.model.params;
        p.w = self.dev.addr(&self.w);
        p.woff = self.dev.addr(&self.woff);
        p.x = self.dev.addr(&w.x);
        p.out = self.dev.addr(&w.out);
        p.state = self.dev.addr(&self.state);
        p.lens = self.dev.addr(&w.lens);
        p.batch = self.batch as i64;
        p.steps = w.steps as i64;
        let l = Launch {
            grid: (self.batch as u32, 1, 1),
            block: self.block,
            smem: (self.model.smem_floats * 4) as u32,
        };
        for t in 0..w.active {
            p.t = t as i64;
            self.dev.launch(self.model.kernel, l, p.bytes())?;
        }
        Ok(())
    }

    /// The window's outputs, `[batch][steps][d_out]` (waits for the launches).
    pub fn outputs(&self, w: &Window<D>) -> Result<Vec<f32>> {
        let mut ob = vec![0u8; w.n_out * 4];
        self.dev.read(&w.out, &mut ob)?;
        Ok(from_bytes(&ob))
    }
}

/// A window of inputs on the device, with its lengths and output buffer.
pub struct Window<D: Device> {
    x: D::Mem,
    lens: D::Mem,
    out: D::Mem,
    steps: usize,
    active: usize,
    n_out: usize,
}

impl<D: Device> Window<D> {
    /// Time steps launched for this window (the longest stream's length in it).
    pub fn active_steps(&self) -> usize {
        self.active
    }
}

/// The device's scalar functions over `x`: `[exp, log1p, erf, gelu, silu, sigmoid,
/// softplus]` each `x.len()` values, and the C++ `sizeof(StepParams)`.
pub fn math_probe<D: Device>(dev: &D, x: &[f32]) -> Result<(Vec<Vec<f32>>, usize)> {
    let n = x.len().max(1);
    let mut xin = dev.alloc_zeroed(n * 4)?;
    dev.write(&mut xin, &to_bytes(x))?;
    let probe = dev.alloc_zeroed((7 * n + 1) * 4)?;
    let p = StepParams {
        x: dev.addr(&xin),
        probe: dev.addr(&probe),
        batch: x.len() as i64,
        ..Default::default()
    };
    let blocks = x.len().div_ceil(256).clamp(1, 1024) as u32;
    let l = Launch {
        grid: (blocks, 1, 1),
        block: 256,
        smem: 0,
    };
    if !x.is_empty() {
        dev.launch("step_math_probe", l, p.bytes())?;
    }
    let mut b = vec![0u8; (7 * n + 1) * 4];
    dev.read(&probe, &mut b)?;
    let v = from_bytes(&b);
    let f = (0..7).map(|k| v[k * n..k * n + x.len()].to_vec()).collect();
    Ok((f, v[7 * n] as usize))
}
