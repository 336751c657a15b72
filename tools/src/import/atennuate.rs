//! aTENNuate (BrainChip, Apache-2.0; arXiv 2409.03377; github.com/Brainchip-Inc/aTENNuate,
//! `attenuate/model.py`): its trained `Denoiser` state dict (`weights.pt`) as a multi-rate
//! network ([`tinyssm_core::net`]) of depthwise convolutions, S5 blocks and blockwise
//! resampling with U-Net skips.
//!
//! The reference's structure, which the state dict's names and shapes follow and this
//! importer checks tensor by tensor:
//!
//! ```text
//! down_ssms[i] = [ssm_block(c_i, act), EinMix 'b c (t r) -> b d t' (c_i → c_{i+1}, r_i)]
//! hid_ssms     = [ssm_block(c_L, act)] × 2
//! up_ssms[i]   = [EinMix 'b c t -> b d (t r)' (c_{i+1} → c_i, r_i), ssm_block(c_i, act)]
//! last_ssms    = [ssm_block(c_0, act), ssm_block(c_0, no act)]
//! ssm_block(c) = [Conv1d(c, c, 3, padding 1, groups c) if c > 1] + SSMLayer(c → c)
//!                + ([LayerNorm(c) if c > 1] + SiLU if act)
//! forward: for each level: skip ← x, x ← down(x); x ← hid(x);
//!          for each level, deepest first: x ← up.EinMix(x) + skip, x ← up.block(x); last(x)
//! ```
//!
//! Each `SSMLayer` becomes an S5 block in aTENNuate's form (real `B`, real `C`, no `D`),
//! discretised here in f64 from the stored parameters exactly as the reference's
//! `ssm_basis_kernels` defines its kernel: `dt = exp(log_dt)`, `K[n, l] =
//! exp(−dt·softplus(A[n, 0])·l)·cos(dt·A[n, 1]·l) = Re(λ_n^l)` with
//! `λ_n = exp(dt·(−softplus(A[n, 0]) + i·A[n, 1]))`, and `B̂ = B·dt`.

use std::collections::HashMap;
use std::path::Path;

use tinyssm_core::blocks::{S5Act, S5Block, S5Norm};
use tinyssm_core::list::List;
use tinyssm_core::net::{Net, NetConfig, NetState, Op, MAX_OPS};
use tinyssm_core::{ActQuant, Block, Kernels, QuantI8, Role, StepError, Tensors, Weights};

use super::pth::{read_state_dict, PthTensor};
use crate::error::ToolError;
use tinyssm_host::TensorData;

/// aTENNuate's input rate (its training data: 16 kHz speech).
pub const SAMPLE_RATE: u32 = 16_000;

/// LayerNorm epsilon of `torch.nn.LayerNorm`'s default.
const LN_EPS: f32 = 1e-5;

/// A quantized tensor: an int8 matrix with one scale per row (w8a8: the activations
/// quantized per vector with dynamic scales, as the core's w8a8 models do).
#[derive(Debug, Clone)]
enum Stored {
    I8 {
        q: Vec<i8>,
        scale: Vec<f32>,
        cols: usize,
    },
}

/// A multi-rate network with its tensors in memory, by operation and role.
#[derive(Debug, Clone)]
pub struct NetModel {
    pub cfg: NetConfig,
    /// The input's sample rate (aTENNuate: 16 kHz).
    pub sample_rate: u32,
    tensors: HashMap<(u16, u8), Vec<f32>>,
    quantized: HashMap<(u16, u8), Stored>,
    kernels: Kernels,
}

impl NetModel {
    /// The same model stepped with kernel set `k`.
    pub fn with_kernels(mut self, k: Kernels) -> Self {
        self.kernels = k;
        self
    }

    /// The network as a format 1.7 model blob (f32; `tinyssm convert` re-encodes it):
    /// one layer per operation, each with its operation's tensors in canonical order.
    pub fn to_blob(&self) -> Result<Vec<u8>, ToolError> {
        let config = tinyssm_core::Config {
            n_layers: self.cfg.ops().len() as u32,
            arch: tinyssm_core::Arch::Net(self.cfg),
            front_end: None,
            compute: tinyssm_core::Compute::Float,
        };
        tinyssm_host::write_blob(&config, |spec| -> Result<TensorData, ToolError> {
            let v = spec
                .layer
                .and_then(|l| self.tensor(l as usize, spec.role))
                .ok_or_else(|| ToolError::BadValues {
                    name: tinyssm_host::writer::spec_name(spec),
                    msg: "missing from the imported network".into(),
                })?;
            Ok(TensorData::F32(v.to_vec()))
        })
    }

    /// Tensor `role` of operation `op` (f32, as imported).
    pub fn tensor(&self, op: usize, role: Role) -> Option<&[f32]> {
        self.tensors
            .get(&(op as u16, role.code()))
            .map(|v| v.as_slice())
    }

    /// The same network with every matrix (S5 `B̄` and `C`, the resampling matrices) in
    /// int8 with one scale per row (`max |row| / 127`, rounded to nearest) and int8
    /// activations with a dynamic scale per vector (w8a8); λ, the convolutions and the
    /// norms stay f32.
    pub fn w8a8(&self) -> NetModel {
        self.w8a8_except(&[])
    }

    /// [`Self::w8a8`] keeping the matrices `keep` (operation, role) in f32 (a mixed-precision
    /// model: the matrices whose quantization costs the most, measured on calibration data
    /// by `examples/atennuate_w8a8_sensitivity.rs`).
    pub fn w8a8_except(&self, keep: &[(usize, Role)]) -> NetModel {
        let mut quantized = HashMap::new();
        for i in 0..self.cfg.ops().len() {
            self.cfg.op_tensors(i, |role, (rank, dims)| {
                if keep.contains(&(i, role)) {
                    return;
                }
                let key = (i as u16, role.code());
                let (Some(v), true, 2) = (self.tensors.get(&key), role.is_matrix(), rank) else {
                    return;
                };
                let cols = dims[1] as usize;
                let mut q = Vec::with_capacity(v.len());
                let mut scale = Vec::with_capacity(v.len() / cols.max(1));
                for row in v.chunks(cols.max(1)) {
                    let m = row.iter().fold(0f32, |a, &x| a.max(x.abs()));
                    let s = if m > 0.0 { m / 127.0 } else { 1.0 };
                    scale.push(s);
                    q.extend(
                        row.iter()
                            .map(|&x| (x / s).round().clamp(-127.0, 127.0) as i8),
                    );
                }
                quantized.insert(key, Stored::I8 { q, scale, cols });
            });
        }
        NetModel {
            quantized,
            ..self.clone()
        }
    }
}

impl<'a> Tensors<'a> for &'a NetModel {
    fn kernels(&self) -> Kernels {
        self.kernels
    }
    fn w(&self, layer: Option<u16>, role: Role) -> Result<Weights<'a>, StepError> {
        let key = (layer.ok_or(StepError::Internal)?, role.code());
        match self.quantized.get(&key) {
            Some(Stored::I8 { q, scale, cols }) => Ok(Weights::I8(QuantI8 {
                q,
                scale,
                cols: *cols,
                act: ActQuant::DynamicI8,
            })),
            None => self
                .tensors
                .get(&key)
                .map(|v| Weights::F32(v.as_slice()))
                .ok_or(StepError::Internal),
        }
    }
}

struct Reader<'p> {
    path: &'p Path,
    sd: HashMap<String, PthTensor>,
    used: Vec<String>,
}

impl Reader<'_> {
    fn has(&self, name: &str) -> bool {
        self.sd.contains_key(name)
    }

    /// Tensor `name` with shape `want` (`None` in a dimension: any).
    fn get(&mut self, name: &str, want: &[Option<usize>]) -> Result<PthTensor, ToolError> {
        let t = self
            .sd
            .get(name)
            .ok_or_else(|| ToolError::MissingTensor {
                name: name.into(),
                expected: want.iter().map(|d| d.unwrap_or(0)).collect(),
            })?
            .clone();
        let fits = t.shape.len() == want.len()
            && t.shape
                .iter()
                .zip(want)
                .all(|(&s, w)| w.is_none_or(|w| w == s));
        if !fits {
            return Err(ToolError::WrongShape {
                name: name.into(),
                expected: want.iter().map(|d| d.unwrap_or(0)).collect(),
                found: t.shape.clone(),
            });
        }
        if let Some(i) = t.data.iter().position(|v| !v.is_finite()) {
            return Err(ToolError::BadValues {
                name: name.into(),
                msg: format!("value {i} is {}", t.data[i]),
            });
        }
        self.used.push(name.into());
        Ok(t)
    }
}

struct Builder {
    ops: Vec<Op>,
    tensors: HashMap<(u16, u8), Vec<f32>>,
}

impl Builder {
    fn push(&mut self, op: Op, tensors: OpTensors) {
        let i = self.ops.len() as u16;
        for (r, v) in tensors {
            self.tensors.insert((i, r.code()), v);
        }
        self.ops.push(op);
    }
}

/// `SSMLayer` at `p` (`p.log_dt`, `p.A`, `p.B`, `p.C`) on `c` channels: its S5 block
/// tensors (λ, B̂ = B·dt, C).
/// An operation's tensors by role.
type OpTensors = Vec<(Role, Vec<f32>)>;

fn ssm(r: &mut Reader<'_>, p: &str, c: usize) -> Result<(u32, OpTensors), ToolError> {
    let a = r.get(&format!("{p}.A"), &[None, Some(2)])?;
    let n = a.shape[0];
    let log_dt = r.get(&format!("{p}.log_dt"), &[Some(n)])?;
    let b = r.get(&format!("{p}.B"), &[Some(n), Some(c)])?;
    let cm = r.get(&format!("{p}.C"), &[Some(c), Some(n)])?;
    let super::s5::Discretised {
        lambda: lam,
        b: bhat,
    } = super::s5::atennuate(&a.data, &log_dt.data, &b.data, c);
    if let Some(i) = lam.iter().chain(&bhat).position(|v| !v.is_finite()) {
        return Err(ToolError::BadValues {
            name: p.to_string(),
            msg: format!("discretised value {i} is not finite"),
        });
    }
    Ok((
        n as u32,
        vec![
            (Role::S5Lambda, lam),
            (Role::S5B, bhat),
            (Role::S5C, cm.data),
        ],
    ))
}

/// `ssm_block(c, act)` at `p` (a `Sequential`): its conv (when `c > 1`) and its S5 block.
fn ssm_block(
    r: &mut Reader<'_>,
    b: &mut Builder,
    p: &str,
    c: usize,
    act: bool,
) -> Result<(), ToolError> {
    let mut idx = 0;
    if c > 1 {
        let w = r.get(&format!("{p}.0.weight"), &[Some(c), Some(1), Some(3)])?;
        let bias = r.get(&format!("{p}.0.bias"), &[Some(c)])?;
        b.push(
            Op::Conv {
                channels: c as u32,
                k: 3,
                pad: 1,
            },
            vec![(Role::ConvW, w.data), (Role::ConvB, bias.data)],
        );
        idx = 1;
    }
    let (n, mut t) = ssm(r, &format!("{p}.{idx}"), c)?;
    let ln = act && c > 1;
    if ln {
        let q = format!("{p}.{}.layer_norm", idx + 1);
        t.push((Role::Norm, r.get(&format!("{q}.weight"), &[Some(c)])?.data));
        t.push((
            Role::NormBias,
            r.get(&format!("{q}.bias"), &[Some(c)])?.data,
        ));
    }
    let block = S5Block {
        d_model: c as u32,
        n_modes: n,
        complex_b: false,
        complex_c: false,
        d_skip: false,
        norm: if ln {
            S5Norm::Post { eps: LN_EPS }
        } else {
            S5Norm::None
        },
        act: if act { S5Act::Silu } else { S5Act::None },
        residual: false,
    };
    b.push(Op::Block(Block::S5(block)), t);
    Ok(())
}

/// EinMix weight `(c_in, c_out, r)` as the core's down matrix `[c_out, r·c_in]`
/// (`W[d, r·c_in + c] = w[c, d, r]`) or up matrix `[r·c_out, c_in]` (`W[r·c_out + d, c]`).
fn resample(w: &PthTensor, down: bool) -> Vec<f32> {
    let (ci, co, rr) = (w.shape[0], w.shape[1], w.shape[2]);
    let mut out = vec![0f32; ci * co * rr];
    for c in 0..ci {
        for d in 0..co {
            for j in 0..rr {
                let v = w.data[(c * co + d) * rr + j];
                let at = if down {
                    d * (rr * ci) + j * ci + c
                } else {
                    (j * co + d) * ci + c
                };
                out[at] = v;
            }
        }
    }
    out
}

/// Reads aTENNuate's `weights.pt` (a PyTorch zip checkpoint of `Denoiser`'s state dict).
pub fn import(path: &Path) -> Result<NetModel, ToolError> {
    let sd = read_state_dict(path)?;
    let mut r = Reader {
        path,
        sd,
        used: Vec::new(),
    };
    if !r.has("down_ssms.0.1.weight") || !r.has("last_ssms.1.0.C") {
        return Err(ToolError::Unsupported {
            path: path.to_path_buf(),
            what:
                "not an aTENNuate Denoiser state dict (no down_ssms.0.1.weight / last_ssms.1.0.C)"
                    .into(),
        });
    }
    // Levels and their channels and factors, from the down EinMix weights (c_in, c_out, r).
    let mut levels = Vec::new();
    while r.has(&format!("down_ssms.{}.1.weight", levels.len())) {
        let i = levels.len();
        let w = r.get(&format!("down_ssms.{i}.1.weight"), &[None, None, None])?;
        levels.push((w.shape[0], w.shape[1], w.shape[2], w));
    }
    for (i, l) in levels.iter().enumerate().skip(1) {
        if l.0 != levels[i - 1].1 {
            return Err(ToolError::Config {
                path: path.to_path_buf(),
                msg: format!(
                    "down_ssms.{i}: {} input channels after {}",
                    l.0,
                    levels[i - 1].1
                ),
            });
        }
    }
    let c_in = levels[0].0;
    let mut b = Builder {
        ops: Vec::new(),
        tensors: HashMap::new(),
    };
    for (i, (ci, co, f, w)) in levels.iter().enumerate() {
        b.push(Op::Push, vec![]);
        ssm_block(&mut r, &mut b, &format!("down_ssms.{i}.0"), *ci, true)?;
        b.push(
            Op::Down {
                c_in: *ci as u32,
                c_out: *co as u32,
                r: *f as u32,
            },
            vec![(Role::NetDown, resample(w, true))],
        );
    }
    let deepest = levels.last().map(|l| l.1).unwrap_or(c_in);
    let mut j = 0;
    while r.has(&format!("hid_ssms.{j}.1.C")) || r.has(&format!("hid_ssms.{j}.0.C")) {
        ssm_block(&mut r, &mut b, &format!("hid_ssms.{j}"), deepest, true)?;
        j += 1;
    }
    for (i, (ci, co, f, _)) in levels.iter().enumerate().rev() {
        let w = r.get(
            &format!("up_ssms.{i}.0.weight"),
            &[Some(*co), Some(*ci), Some(*f)],
        )?;
        b.push(
            Op::Up {
                c_in: *co as u32,
                c_out: *ci as u32,
                r: *f as u32,
            },
            vec![(Role::NetUp, resample(&w, false))],
        );
        b.push(Op::PopAdd, vec![]);
        ssm_block(&mut r, &mut b, &format!("up_ssms.{i}.1"), *ci, true)?;
    }
    ssm_block(&mut r, &mut b, "last_ssms.0", c_in, true)?;
    ssm_block(&mut r, &mut b, "last_ssms.1", c_in, false)?;
    let mut unused: Vec<&String> = r.sd.keys().filter(|k| !r.used.contains(k)).collect();
    unused.sort();
    if let Some(k) = unused.first() {
        return Err(ToolError::Config {
            path: path.to_path_buf(),
            msg: format!(
                "{} tensor(s) this importer does not place, first `{k}`: not the reference Denoiser",
                unused.len()
            ),
        });
    }
    let ops = List::<Op, MAX_OPS>::from_slice(&b.ops).ok_or_else(|| ToolError::Config {
        path: path.to_path_buf(),
        msg: format!("{} operations (at most {MAX_OPS})", b.ops.len()),
    })?;
    let cfg = NetConfig {
        d_input: c_in as u32,
        // `denoise_single` pads `256 − n mod 256` zeros: 1 to 256.
        end_pad: 1,
        sample_rate: SAMPLE_RATE,
        ops,
    };
    cfg.validate().map_err(|e| ToolError::Config {
        path: path.to_path_buf(),
        msg: format!("invalid network: {e}"),
    })?;
    // Every tensor the program expects is there with its shape.
    for i in 0..cfg.ops().len() {
        let mut err = None;
        cfg.op_tensors(i, |role, (rank, dims)| {
            let n: usize = dims[..rank as usize].iter().map(|&d| d as usize).product();
            match b.tensors.get(&(i as u16, role.code())) {
                Some(v) if v.len() == n => {}
                Some(v) => {
                    err = Some(format!(
                        "op {i} {}: {} values, expected {n}",
                        role.name(),
                        v.len()
                    ))
                }
                None => err = Some(format!("op {i} {}: missing", role.name())),
            }
        });
        if let Some(msg) = err {
            return Err(ToolError::Config {
                path: path.to_path_buf(),
                msg,
            });
        }
    }
    let _ = r.path;
    // Subnormal parameters are stored as zero. The trained `B` and `C` of the 16 kHz
    // level's dead modes are ~1e-44 (163 to 182 of their 256 values; a few λ too): every
    // product with one is below the resolution of any f32 sum it enters, and each one costs
    // a microcode assist on x86 (the one-channel `B̄` product ran ~25 cycles per element).
    let mut tensors = b.tensors;
    for v in tensors.values_mut() {
        for x in v.iter_mut() {
            if x.abs() < f32::MIN_POSITIVE {
                *x = 0.0;
            }
        }
    }
    Ok(NetModel {
        cfg,
        sample_rate: SAMPLE_RATE,
        tensors,
        quantized: HashMap::new(),
        kernels: Kernels::default(),
    })
}

/// One stream's buffers, sized by a network's plan (f32 state values, u32 counters, f32
/// scratch), zeroed: reset the stream ([`Net::reset`]) before feeding it.
#[derive(Debug, Clone)]
pub struct NetBuffers {
    pub values: Vec<f32>,
    pub counters: Vec<u32>,
    pub scratch: Vec<f32>,
}

impl NetBuffers {
    pub fn new(plan: &tinyssm_core::net::NetPlan) -> Self {
        NetBuffers {
            values: vec![0f32; plan.state_len],
            counters: vec![0u32; plan.counters_len],
            scratch: vec![0f32; plan.scratch_len],
        }
    }

    /// The stream's state and the scratch, for `Net::feed` / `finish`.
    pub fn split(&mut self) -> (NetState<'_>, &mut [f32]) {
        (
            NetState {
                values: &mut self.values,
                counters: &mut self.counters,
            },
            &mut self.scratch,
        )
    }
}

/// Runs a whole signal (`x`: frames of `d_input` values) through `m` as a stream, frame by
/// frame, and ends it ([`Net::finish`]): the output has one frame per input frame, aligned
/// with the input (the network's look-ahead compensated), as the reference computes it on
/// the whole file zero-padded to a whole period.
pub fn run_stream(m: &NetModel, x: &[f32]) -> Result<Vec<f32>, StepError> {
    run_blocks(m, x, &[x.len().max(1)])
}

/// [`run_stream`] for any planned network (a parsed format 1.7 model's
/// [`tinyssm_core::Model::net`], or a [`NetModel`]'s).
pub fn stream_net(net: &Net<'_, '_>, x: &[f32]) -> Result<Vec<f32>, StepError> {
    let mut out = Vec::with_capacity(x.len());
    let frames = drive(net, x, &[x.len().max(1)], |_, y| out.extend_from_slice(y))?;
    out.truncate(frames * net.plan().d_output);
    Ok(out)
}

/// [`run_stream`] with the input given in blocks of the sizes in `blocks` (repeated; in
/// frames), as a real-time caller would: the output is the same whatever the blocks.
pub fn run_blocks(m: &NetModel, x: &[f32], blocks: &[usize]) -> Result<Vec<f32>, StepError> {
    let t: &NetModel = m;
    let net = Net::new(&m.cfg, &t).map_err(|_| StepError::Internal)?;
    let mut out = Vec::with_capacity(x.len());
    let frames = drive(&net, x, blocks, |_, y| out.extend_from_slice(y))?;
    out.truncate(frames * net.plan().d_output);
    Ok(out)
}

/// For each output frame of a stream of `x` (ended with [`Net::finish`]), the number of
/// input frames fed when it was emitted minus one: the index of the last input it could
/// depend on (frames emitted while finishing count the frames fed before it).
pub fn emission_times(m: &NetModel, x: &[f32]) -> Result<Vec<usize>, StepError> {
    let t: &NetModel = m;
    let net = Net::new(&m.cfg, &t).map_err(|_| StepError::Internal)?;
    let mut times = Vec::new();
    let frames = drive(&net, x, &[1], |t, _| times.push(t))?;
    times.truncate(frames);
    Ok(times)
}

/// Streams `x` through a fresh stream of `m` in blocks of `blocks` frames (repeated) and
/// ends it, calling `on(last input fed, frame)` for each output frame; the input frames.
fn drive(
    net: &Net<'_, '_>,
    x: &[f32],
    blocks: &[usize],
    mut on: impl FnMut(usize, &[f32]),
) -> Result<usize, StepError> {
    let mut bufs = NetBuffers::new(net.plan());
    let (mut st, scratch) = bufs.split();
    net.reset(&mut st)?;
    let d = net.config().d_input as usize;
    let frames = x.len() / d.max(1);
    let fed = std::cell::Cell::new(0usize);
    let mut sink = |y: &[f32]| -> Result<(), StepError> {
        on(fed.get(), y);
        Ok(())
    };
    let (mut at, mut bi) = (0usize, 0usize);
    while at < frames {
        let n = blocks[bi % blocks.len().max(1)].max(1).min(frames - at);
        for f in at..at + n {
            fed.set(f);
            net.feed(&mut st, scratch, &x[f * d..(f + 1) * d], &mut sink)?;
        }
        at += n;
        bi += 1;
    }
    fed.set(frames.saturating_sub(1));
    net.finish(&mut st, scratch, &mut sink)?;
    Ok(frames)
}
