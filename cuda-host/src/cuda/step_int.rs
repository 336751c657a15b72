//! The verification **step path for integer-only models** ([`Compute::Int`], format 1.3):
//! the core's integer step (`int_step`: S4D and Mamba sensor), its integer audio front end
//! (`frontend_int`) and fixed-point functions (`fixed`) for `batch` streams at once on a
//! [`Device`] (`kernels/step_int.cu`), every stream's state held on the device in the core's
//! own state layout (the model's part, then the front end's ring).
//!
//! Integer arithmetic only, with every rounding, saturation and wrap of the core reproduced:
//! outputs and states are the core's **bit for bit** (`Model::step_int`,
//! `Model::step_sample_int`), on a GPU and on the emulator alike. The lookup tables come from
//! the core ([`tinyssm_core::fixed::tables`], [`tinyssm_core::frontend_int::sin_q30_table`])
//! and the tensors go to the device as the blob holds them.
//!
//! Geometry: one block per stream ([`STEP_INT_BLOCK`] threads by default), a launch
//! advances every stream by up to [`StepIntRunner::with_steps_per_launch`] steps. Audio
//! models take one PCM sample per step and produce an output on the steps that complete a
//! frame (`ready`); vector models take `d_input` values per step, in the model's input format
//! ([`Model::int_io`]).

use tinyssm_core::stack::FinalNorm;
use tinyssm_core::{fixed, frontend_int, Compute, Model, Role, Weights};

use super::device::{Device, Launch};
use super::params::KernelParams;
use crate::backend::{BackendError, Result};
use crate::blocks::{run_kind, BatchKind, KindFn, VectorModel};

/// Threads per block (one block per stream) unless [`StepIntRunner::with_block`] says
/// otherwise.
pub const STEP_INT_BLOCK: u32 = 64;

/// Largest shared-memory footprint of one stream (bytes).
const MAX_SMEM: usize = 96 * 1024;

/// The `StepIntParams` struct of `kernels/step_int.cu`, field for field.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct StepIntParams {
    pub w: u64,
    pub woff: u64,
    pub tab: u64,
    pub x: u64,
    pub out: u64,
    pub ready: u64,
    pub state: u64,
    pub lens: u64,
    pub batch: i64,
    pub steps: i64,
    pub t0: i64,
    pub nt: i64,
    pub x_dim: i64,
    pub d_in: i64,
    pub d_out: i64,
    pub state_len: i64,
    pub model_state: i64,
    pub n_layers: i64,
    pub d_model: i64,
    pub d_state: i64,
    pub d_inner: i64,
    pub d_conv: i64,
    pub dt_rank: i64,
    pub flags: i64,
    pub fe: i64,
    pub frame_len: i64,
    pub hop: i64,
    pub n_fft: i64,
    pub n_mels: i64,
    pub feat_frac: i64,
    pub filter_frac: i64,
    pub eps_mant: i64,
    pub eps_exp: i64,
    pub probe: i64,
}
// SAFETY: repr(C), 34 eight-byte fields: no padding (the assertion below), plain data.
unsafe impl KernelParams for StepIntParams {
    const NAME: &'static str = "StepIntParams";
}
const _: () = assert!(size_of::<StepIntParams>() == 34 * 8);

pub(crate) const PRENORM: i64 = 1;
pub(crate) const GLU: i64 = 2;
pub(crate) const FINAL_NORM: i64 = 4;
pub(crate) const CONV_BIAS: i64 = 8;
pub(crate) const IN_BIAS: i64 = 16;
pub(crate) const OUT_BIAS: i64 = 32;

// Tensor slots (kernels/step_int.cu SIG_*, SIS_*, SIM_*).
const G_ENC_Q: usize = 0;
const G_ENC_B: usize = 2;
const G_NORMF: usize = 3;
const G_NORMF_B: usize = 4;
const G_DEC_Q: usize = 5;
const G_DEC_B: usize = 7;
const G_PLAN: usize = 8;
const G_WINDOW: usize = 9;
const G_FILTERS: usize = 10;
const GLOBAL_SLOTS: usize = 11;
/// Plans are padded with zeros to this length: the core reads a missing entry as 0.
const PLAN_PAD: usize = 16;

/// The fixed-point functions [`math_probe`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntFn {
    /// `fixed::sigmoid(x: i16, frac)`
    Sigmoid = 0,
    /// `fixed::silu(x: i16, frac)`
    Silu = 1,
    /// `fixed::gelu(x: i16, frac)`
    Gelu = 2,
    /// `int_step::softplus_q24(x: i16, frac)`
    SoftplusQ24 = 3,
    /// `fixed::exp_neg_q31(x: i32, frac)`
    ExpNegQ31 = 4,
    /// `fixed::log2_u64(v: u64)`
    Log2 = 5,
    /// `fixed::ln_u64(v: u64)`
    Ln = 6,
    /// `fixed::rsqrt(v: u64, frac)`: `(m, e)`
    Rsqrt = 7,
}

pub(crate) fn shape(msg: String) -> BackendError {
    BackendError::Shape {
        op: "step int",
        msg,
    }
}

/// The core's lookup tables as the kernel reads them: `exp2[64] | phi[385] | rsqrt[32] |
/// sin[257]`.
pub fn tables() -> Vec<u32> {
    let (e, p, r) = fixed::tables();
    let mut t = Vec::with_capacity(738);
    t.extend_from_slice(e);
    t.extend_from_slice(p);
    t.extend_from_slice(r);
    t.extend(frontend_int::sin_q30_table().iter().map(|&v| v as u32));
    debug_assert_eq!(t.len(), 64 + 385 + 32 + 257);
    t
}

/// What the integer step kernels need from a model: the kernel, the params template, the
/// packed tensors and their byte offsets, the state layout.
#[derive(Debug, Clone)]
pub struct StepIntModel {
    kernel: &'static str,
    params: StepIntParams,
    bytes: Vec<u8>,
    offsets: Vec<i64>,
    smem_fixed: usize,
    state_len: usize,
    model_state: usize,
    x_dim: usize,
    d_out: usize,
    audio: bool,
}

/// The integer step kernels' packed tensors as a kind fills them: each in its slot.
pub struct IntPacker<'m> {
    m: &'m Model<'m>,
    bytes: Vec<u8>,
    offsets: Vec<i64>,
}

fn no_tensor(layer: Option<u16>, role: Role) -> BackendError {
    shape(format!(
        "model has no {} tensor{}",
        role.name(),
        layer.map_or(String::new(), |l| format!(" in layer {l}"))
    ))
}

impl<'m> IntPacker<'m> {
    fn put(&mut self, slot: usize, b: &[u8]) {
        self.offsets[slot] = self.bytes.len() as i64;
        self.bytes.extend_from_slice(b);
        while !self.bytes.len().is_multiple_of(16) {
            self.bytes.push(0);
        }
    }

    fn weights(&self, layer: Option<u16>, role: Role) -> Result<Weights<'m>> {
        Ok(self
            .m
            .find(layer, role)
            .ok_or_else(|| no_tensor(layer, role))?
            .weights)
    }

    pub fn i32s(&mut self, slot: usize, layer: Option<u16>, role: Role, n: usize) -> Result<()> {
        let Weights::Int(tinyssm_core::kernels::IntWeights::I32(v)) = self.weights(layer, role)?
        else {
            return Err(shape(format!("{} is not an i32 tensor", role.name())));
        };
        if v.len() != n {
            return Err(shape(format!(
                "{} has {} values, expected {n}",
                role.name(),
                v.len()
            )));
        }
        let b: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.put(slot, &b);
        Ok(())
    }

    pub fn plan(&mut self, slot: usize, layer: Option<u16>, role: Role) -> Result<()> {
        let Weights::Int(tinyssm_core::kernels::IntWeights::I32(v)) = self.weights(layer, role)?
        else {
            return Err(shape(format!("{} is not an i32 tensor", role.name())));
        };
        let mut p = v.to_vec();
        if p.len() < PLAN_PAD {
            p.resize(PLAN_PAD, 0);
        }
        let b: Vec<u8> = p.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.put(slot, &b);
        Ok(())
    }

    pub fn i16s(&mut self, slot: usize, layer: Option<u16>, role: Role, n: usize) -> Result<()> {
        let Weights::Int(tinyssm_core::kernels::IntWeights::I16(v)) = self.weights(layer, role)?
        else {
            return Err(shape(format!("{} is not an i16 tensor", role.name())));
        };
        if v.len() != n {
            return Err(shape(format!(
                "{} has {} values, expected {n}",
                role.name(),
                v.len()
            )));
        }
        let b: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.put(slot, &b);
        Ok(())
    }

    /// An I8R matrix `[rows, cols]`: its int8 rows at `slot`, the `[rows][2]` multiplier and
    /// shift pairs at `slot + 1`.
    pub fn mat(
        &mut self,
        slot: usize,
        layer: Option<u16>,
        role: Role,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        let Weights::Int(tinyssm_core::kernels::IntWeights::I8R(w)) = self.weights(layer, role)?
        else {
            return Err(shape(format!("{} is not an I8R matrix", role.name())));
        };
        if w.cols != cols || w.rows() != rows || w.q.len() != rows * cols || cols == 0 {
            return Err(shape(format!(
                "{} is {}×{}, expected {rows}×{cols}",
                role.name(),
                w.rows(),
                w.cols
            )));
        }
        let q: Vec<u8> = w.q.iter().map(|&v| v as u8).collect();
        self.put(slot, &q);
        let rq: Vec<u8> = w.rq.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.put(slot + 1, &rq);
        Ok(())
    }
}

/// Bytes of an `i16` vector of `n` in the kernel's shared memory.
pub(crate) fn v16(n: usize) -> usize {
    n.div_ceil(8) * 16
}

/// [`StepIntModel::new`] for a vector model of kind `K`.
struct PackStepInt<'a, 'm> {
    m: &'a Model<'m>,
    v: VectorModel,
}

impl KindFn for PackStepInt<'_, '_> {
    type Out = Result<StepIntModel>;
    fn call<K: BatchKind>(self, kind: &K) -> Result<StepIntModel> {
        let (m, v) = (self.m, self.v);
        let cfg = m.config();
        let layers = v.n_layers;
        let sizes = cfg
            .sizes()
            .map_err(|e| shape(format!("the model has no state layout: {e}")))?;
        let model_state = sizes.model_state;
        let mut p = StepIntParams {
            n_layers: layers as i64,
            ..Default::default()
        };
        let lay = kind.step_int_layout(&v, &mut p)?;
        let (kernel, mut smem_vecs) = (lay.kernel, lay.smem);
        let (d_in, d_out, dm) = (v.d_in, v.d_out, v.block.d_model() as usize);
        if d_in == 0 || d_out == 0 {
            return Err(shape(format!("d_input {d_in}, d_output {d_out}")));
        }
        if layers * lay.state_per_layer != model_state {
            return Err(shape(format!(
                "state layout: {layers} layers × {} ≠ the model's {model_state}",
                lay.state_per_layer
            )));
        }
        let mut pk = IntPacker {
            m,
            bytes: Vec::new(),
            offsets: vec![-1; GLOBAL_SLOTS + layers * lay.per_layer],
        };
        pk.plan(G_PLAN, None, Role::IntPlan)?;
        let audio = cfg.front_end.is_some();
        let mut fe_state = 0;
        if audio {
            let fe = m.front_end_int().ok_or_else(|| {
                shape("the model's integer front end does not load (tables or formats)".into())
            })?;
            let fc = *fe.config();
            if fc.n_mels as usize != d_in {
                return Err(shape(format!(
                    "front end n_mels {} ≠ d_input {d_in}",
                    fc.n_mels
                )));
            }
            p.fe = 1;
            p.frame_len = fc.frame_len as i64;
            p.hop = fc.hop as i64;
            p.n_fft = fc.n_fft as i64;
            p.n_mels = fc.n_mels as i64;
            p.feat_frac = fe.feat_frac() as i64;
            p.filter_frac = fe.filter_frac() as i64;
            let (em, ee) = fe.log_eps_exact();
            p.eps_mant = em as i64;
            p.eps_exp = ee as i64;
            let w: Vec<u8> = fe.window().iter().flat_map(|x| x.to_le_bytes()).collect();
            pk.put(G_WINDOW, &w);
            let f: Vec<u8> = fe.filters().iter().flat_map(|x| x.to_le_bytes()).collect();
            pk.put(G_FILTERS, &f);
            fe_state = frontend_int::IntFrontEnd::state_len(&fc);
            smem_vecs += (fc.n_fft as usize + 2).div_ceil(4) * 16;
        }
        if model_state + fe_state != m.state_len() {
            return Err(shape(format!(
                "state layout: model {model_state} + front end {fe_state} ≠ the model's {}",
                m.state_len()
            )));
        }
        pk.mat(G_ENC_Q, None, Role::Encoder, dm, d_in)?;
        pk.i32s(G_ENC_B, None, Role::EncoderBias, dm)?;
        match v.norm {
            FinalNorm::None => {}
            FinalNorm::Rms { .. } => pk.i16s(G_NORMF, None, Role::NormF, dm)?,
            FinalNorm::Layer { .. } => {
                pk.i16s(G_NORMF, None, Role::NormF, dm)?;
                pk.i32s(G_NORMF_B, None, Role::NormFBias, dm)?;
            }
            n => {
                return Err(BackendError::Unavailable(format!(
                    "the integer step path has no final norm {n:?}"
                )))
            }
        }
        pk.mat(G_DEC_Q, None, Role::Decoder, d_out, dm)?;
        pk.i32s(G_DEC_B, None, Role::DecoderBias, d_out)?;
        for l in 0..layers {
            kind.step_int_pack_layer(&mut pk, GLOBAL_SLOTS + l * lay.per_layer, l as u16)?;
        }
        let state_len = m.state_len();
        p.x_dim = if audio { 1 } else { d_in as i64 };
        p.d_in = d_in as i64;
        p.d_out = d_out as i64;
        p.state_len = state_len as i64;
        p.model_state = model_state as i64;
        if pk.bytes.is_empty() {
            pk.bytes.resize(16, 0);
        }
        Ok(StepIntModel {
            kernel,
            params: p,
            bytes: pk.bytes,
            offsets: pk.offsets,
            smem_fixed: smem_vecs + 16,
            state_len,
            model_state,
            x_dim: p.x_dim as usize,
            d_out,
            audio,
        })
    }
}

impl StepIntModel {
    /// Packs an integer-only model for the kernels: a vector model ([`VectorModel`]) of a
    /// block kind whose [`BatchKind`] has an integer step kernel. A float model or another
    /// model is `BackendError::Unavailable`, a tensor of the wrong size or kind a shape
    /// error.
    pub fn new(m: &Model<'_>) -> Result<Self> {
        let cfg = m.config();
        if cfg.compute != Compute::Int {
            return Err(BackendError::Unavailable(format!(
                "the integer step path runs integer-only models (compute int); this one computes {}",
                cfg.compute.name()
            )));
        }
        m.int_io()
            .ok_or_else(|| shape("the model has no integer plan".into()))?;
        let v = VectorModel::of(m)?;
        run_kind(&v.block, "the CUDA integer step path", PackStepInt { m, v })
    }

    /// The state `i32`s per stream: the core's whole state vector (model, then front end).
    pub fn state_len(&self) -> usize {
        self.state_len
    }
    /// Where the front end's part of the state begins (the model's state length).
    pub fn model_state(&self) -> usize {
        self.model_state
    }
    /// Input `i16`s per step: 1 (a PCM sample) for audio models, else `d_input`.
    pub fn x_dim(&self) -> usize {
        self.x_dim
    }
    pub fn d_out(&self) -> usize {
        self.d_out
    }
    /// Whether the model has the integer audio front end (steps are PCM samples).
    pub fn audio(&self) -> bool {
        self.audio
    }
    /// The kernel that steps this model.
    pub fn kernel(&self) -> &'static str {
        self.kernel
    }
    /// Dynamic shared memory of a launch with `block` threads.
    pub fn smem_bytes(&self, block: u32) -> usize {
        8 * (block as usize + 1) + 32 + self.smem_fixed
    }
}

fn i32_bytes(v: &[i32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn i32_from(b: &[u8]) -> Vec<i32> {
    b.chunks_exact(4)
        .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// One window's results: `[batch][steps][d_out]` outputs and `[batch][steps]` ready flags
/// (1 where the step produced an output; outputs elsewhere are 0).
#[derive(Debug, Clone)]
pub struct IntWindowOut {
    pub out: Vec<i32>,
    pub ready: Vec<i32>,
}

/// `batch` streams of one integer-only model on a device: tensors and tables uploaded once,
/// states resident.
pub struct StepIntRunner<'d, D: Device> {
    dev: &'d D,
    model: StepIntModel,
    batch: usize,
    block: u32,
    per_launch: usize,
    w: D::Mem,
    woff: D::Mem,
    tab: D::Mem,
    state: D::Mem,
}

impl<'d, D: Device> StepIntRunner<'d, D> {
    /// Packs and uploads `m` and allocates `batch` streams in their initial (zero) state.
    pub fn new(dev: &'d D, m: &Model<'_>, batch: usize) -> Result<Self> {
        let model = StepIntModel::new(m)?;
        if batch == 0 || batch > i32::MAX as usize {
            return Err(shape(format!("batch {batch} is not in 1..=2^31-1")));
        }
        let mut w = dev.alloc_zeroed(model.bytes.len())?;
        dev.write(&mut w, &model.bytes)?;
        let offs: Vec<u8> = model.offsets.iter().flat_map(|o| o.to_le_bytes()).collect();
        let mut woff = dev.alloc_zeroed(offs.len())?;
        dev.write(&mut woff, &offs)?;
        let t: Vec<u8> = tables().iter().flat_map(|x| x.to_le_bytes()).collect();
        let mut tab = dev.alloc_zeroed(t.len())?;
        dev.write(&mut tab, &t)?;
        let bytes = batch
            .checked_mul(model.state_len * 4)
            .ok_or_else(|| shape("state size overflows".into()))?;
        let state = dev.alloc_zeroed(bytes)?;
        let per_launch = if model.audio {
            m.config().front_end.map_or(1, |f| f.hop as usize)
        } else {
            1
        };
        let r = Self {
            dev,
            model,
            batch,
            block: STEP_INT_BLOCK,
            per_launch,
            w,
            woff,
            tab,
            state,
        };
        r.check_smem(r.block)?;
        Ok(r)
    }

    fn check_smem(&self, block: u32) -> Result<()> {
        let b = self.model.smem_bytes(block);
        if b > MAX_SMEM {
            return Err(BackendError::Unavailable(format!(
                "the integer step kernel keeps one stream's activations in shared memory: {b} \
                 bytes exceed {MAX_SMEM}"
            )));
        }
        Ok(())
    }

    /// Another block size (threads per stream); any value in 1..=1024 computes the same.
    pub fn with_block(mut self, block: u32) -> Result<Self> {
        if block == 0 || block > 1024 {
            return Err(shape(format!("block {block} is not in 1..=1024")));
        }
        self.check_smem(block)?;
        self.block = block;
        Ok(self)
    }

    /// Steps per launch (default: the front end's hop for audio models, 1 otherwise); any
    /// value ≥ 1 computes the same.
    pub fn with_steps_per_launch(mut self, k: usize) -> Result<Self> {
        if k == 0 {
            return Err(shape("0 steps per launch".into()));
        }
        self.per_launch = k;
        Ok(self)
    }

    pub fn model(&self) -> &StepIntModel {
        &self.model
    }
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Every stream back to the initial state (all zeros, as `Model::reset_int`).
    pub fn reset(&mut self) -> Result<()> {
        self.dev.zero(&mut self.state)
    }

    /// The states, `[batch][state_len]`, each the core's state vector.
    pub fn states(&self) -> Result<Vec<i32>> {
        let mut b = vec![0u8; self.batch * self.model.state_len * 4];
        self.dev.read(&self.state, &mut b)?;
        Ok(i32_from(&b))
    }

    /// Sets every stream's state (`[batch][state_len]`).
    pub fn set_states(&mut self, st: &[i32]) -> Result<()> {
        if st.len() != self.batch * self.model.state_len {
            return Err(shape(format!(
                "states have {} values, expected {} streams × {}",
                st.len(),
                self.batch,
                self.model.state_len
            )));
        }
        self.dev.write(&mut self.state, &i32_bytes(st))
    }

    /// Advances the streams: `x` is `[batch][steps][x_dim]` (audio: PCM samples; vectors: the
    /// model's input format), stream `s` takes its first `lens[s]` (≤ `steps`) inputs; a
    /// stream past its length is not touched.
    pub fn run(&mut self, x: &[i16], steps: usize, lens: &[usize]) -> Result<IntWindowOut> {
        let (b, xd, dout) = (self.batch, self.model.x_dim, self.model.d_out);
        if lens.len() != b {
            return Err(shape(format!("{} lengths for {b} streams", lens.len())));
        }
        let want = b
            .checked_mul(steps)
            .and_then(|v| v.checked_mul(xd))
            .ok_or_else(|| shape("input size overflows".into()))?;
        if x.len() != want {
            return Err(shape(format!(
                "inputs have {} values, expected {b} streams × {steps} steps × {xd}",
                x.len()
            )));
        }
        if let Some((s, &l)) = lens.iter().enumerate().find(|(_, &l)| l > steps) {
            return Err(shape(format!(
                "stream {s} length {l} exceeds {steps} steps"
            )));
        }
        let xb: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut xin = self.dev.alloc_zeroed(xb.len().max(4))?;
        self.dev.write(&mut xin, &xb)?;
        let lb: Vec<u8> = lens
            .iter()
            .flat_map(|&l| (l as i64).to_le_bytes())
            .collect();
        let mut lbuf = self.dev.alloc_zeroed(lb.len())?;
        self.dev.write(&mut lbuf, &lb)?;
        let n_out = b * steps * dout;
        let out = self.dev.alloc_zeroed(n_out.max(1) * 4)?;
        let ready = self.dev.alloc_zeroed((b * steps).max(1) * 4)?;
        let mut p = self.model.params;
        p.w = self.dev.addr(&self.w);
        p.woff = self.dev.addr(&self.woff);
        p.tab = self.dev.addr(&self.tab);
        p.x = self.dev.addr(&xin);
        p.out = self.dev.addr(&out);
        p.ready = self.dev.addr(&ready);
        p.state = self.dev.addr(&self.state);
        p.lens = self.dev.addr(&lbuf);
        p.batch = b as i64;
        p.steps = steps as i64;
        let l = Launch {
            grid: (b as u32, 1, 1),
            block: self.block,
            smem: self.model.smem_bytes(self.block) as u32,
        };
        let active = lens.iter().copied().max().unwrap_or(0);
        let mut t0 = 0;
        while t0 < active {
            let nt = self.per_launch.min(active - t0);
            p.t0 = t0 as i64;
            p.nt = nt as i64;
            self.dev.launch(self.model.kernel, l, p.bytes())?;
            t0 += nt;
        }
        let mut ob = vec![0u8; n_out * 4];
        self.dev.read(&out, &mut ob)?;
        let mut rb = vec![0u8; b * steps * 4];
        self.dev.read(&ready, &mut rb)?;
        Ok(IntWindowOut {
            out: i32_from(&ob),
            ready: i32_from(&rb),
        })
    }

    /// Whole streams (inputs `[len][x_dim]` each, any lengths) from the current states, in
    /// time windows that keep the device buffers small: each stream's outputs in order (one
    /// `d_out` row per ready step).
    pub fn run_streams(&mut self, streams: &[Vec<i16>]) -> Result<Vec<Vec<i32>>> {
        let (b, xd, dout) = (self.batch, self.model.x_dim, self.model.d_out);
        if streams.len() != b {
            return Err(shape(format!("{} streams for {b}", streams.len())));
        }
        let lens: Vec<usize> = streams.iter().map(|s| s.len() / xd).collect();
        let time = lens.iter().copied().max().unwrap_or(0);
        let window = ((16usize << 20) / (b * (xd + dout + 1))).clamp(1, time.max(1));
        let mut outs: Vec<Vec<i32>> = vec![Vec::new(); b];
        let mut t0 = 0;
        while t0 < time {
            let w = window.min(time - t0);
            let mut xw = vec![0i16; b * w * xd];
            let lw: Vec<usize> = lens.iter().map(|&l| l.saturating_sub(t0).min(w)).collect();
            for (s, st) in streams.iter().enumerate() {
                let n = lw[s] * xd;
                xw[s * w * xd..s * w * xd + n].copy_from_slice(&st[t0 * xd..t0 * xd + n]);
            }
            let r = self.run(&xw, w, &lw)?;
            for (s, &l) in lw.iter().enumerate() {
                for t in 0..l {
                    if r.ready[s * w + t] != 0 {
                        let o = (s * w + t) * dout;
                        outs[s].extend_from_slice(&r.out[o..o + dout]);
                    }
                }
            }
            t0 += w;
        }
        Ok(outs)
    }
}

/// One fixed-point function over inputs on the device (see `step_int_probe`): `x16` for the
/// i16 functions, `x32` for [`IntFn::ExpNegQ31`], `x64` for log2 / ln / rsqrt. Returns the
/// `(value, exponent)` pairs (exponent 0 except for rsqrt) and the C++ `sizeof
/// (StepIntParams)`.
pub fn math_probe<D: Device>(
    dev: &D,
    f: IntFn,
    frac: u32,
    x16: &[i16],
    x32: &[i32],
    x64: &[u64],
) -> Result<(Vec<(i32, i32)>, usize)> {
    let (n, xb): (usize, Vec<u8>) = match f {
        IntFn::Sigmoid | IntFn::Silu | IntFn::Gelu | IntFn::SoftplusQ24 => (
            x16.len(),
            x16.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ),
        IntFn::ExpNegQ31 => (x32.len(), i32_bytes(x32)),
        _ => (
            x64.len(),
            x64.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ),
    };
    let mut xin = dev.alloc_zeroed(xb.len().max(8))?;
    dev.write(&mut xin, &xb)?;
    let out = dev.alloc_zeroed((2 * n + 1) * 4)?;
    let t: Vec<u8> = tables().iter().flat_map(|x| x.to_le_bytes()).collect();
    let mut tab = dev.alloc_zeroed(t.len())?;
    dev.write(&mut tab, &t)?;
    let p = StepIntParams {
        x: dev.addr(&xin),
        out: dev.addr(&out),
        tab: dev.addr(&tab),
        batch: n as i64,
        flags: frac as i64,
        probe: f as i64,
        ..Default::default()
    };
    // One block: cheap on the emulator (a launch's blocks run one after another there), and
    // quick enough on a GPU for the input counts the tests use.
    let l = Launch {
        grid: (1, 1, 1),
        block: 64,
        smem: 0,
    };
    if n > 0 {
        dev.launch("step_int_probe", l, p.bytes())?;
    }
    let mut b = vec![0u8; (2 * n + 1) * 4];
    dev.read(&out, &mut b)?;
    let v = i32_from(&b);
    let pairs = (0..n).map(|i| (v[2 * i], v[2 * i + 1])).collect();
    Ok((pairs, v[2 * n].max(0) as usize))
}
