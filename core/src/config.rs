//! Model configuration (stored in the blob header) and the canonical tensor layout that
//! follows from it. The writer (host side) and the parser share this one definition.

use serde::{Deserialize, Serialize};

use crate::blocks::program::{NetConfig, Op, MAX_OPS};
use crate::blocks::{Arch, Block, MAX_BLOCK_CONFIGS};
use crate::error::FormatError;
use crate::frontend::FrontEndConfig;
use crate::stack::Stack;

/// Largest supported number of layers.
pub const MAX_LAYERS: u32 = 1024;

/// The whole model configuration as stored in the header.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Config {
    pub n_layers: u32,
    pub arch: Arch,
    /// The audio front end of a model that takes raw samples (format 1.1): its features
    /// (`n_mels` values per frame) are the model's input vectors; the filterbank is stored
    /// as the global tensor [`Role::MelFilters`].
    pub front_end: Option<FrontEndConfig>,
    /// The arithmetic of the step (format 1.2; older blobs are [`Compute::Float`]).
    pub compute: Compute,
}

pub use crate::blocks::MAX_D_CONV;
pub use crate::dtype::{Compute, DType, I4_GROUP};
pub(crate) use crate::role::RoleList;
pub use crate::role::{LayerIndex, Role};

/// One expected tensor: role, layer and shape (up to rank 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TensorSpec {
    pub layer: LayerIndex,
    pub role: Role,
    pub rank: u8,
    pub shape: [u32; 4],
}

impl TensorSpec {
    /// Number of elements (checked; u64).
    pub fn numel(&self) -> Option<u64> {
        let mut n: u64 = 1;
        for &d in &self.shape[..self.rank as usize] {
            n = n.checked_mul(d as u64)?;
        }
        Some(n)
    }
    /// Which dtypes this role may be stored in (float and w8a8 models): matrices in any
    /// float or quantized matrix type, everything else f32 — and, since format 1.6, a
    /// block kind's compact encodings ([`Config::allows`]).
    pub fn allows(&self, dtype: DType) -> bool {
        match dtype {
            DType::F32 => true,
            DType::F16 | DType::Bf16 | DType::I8 | DType::I4 | DType::I8S => self.role.is_matrix(),
            DType::I16 | DType::I32 | DType::I8R => false,
        }
    }
    /// The one dtype each role has in an integer-only model: matrices [`DType::I8R`];
    /// norm weights, conv weights and the filterbank [`DType::I16`]; everything else
    /// (biases, S4D modes, A, D, plans, the window in Q0.31) [`DType::I32`].
    pub fn int_dtype(&self) -> DType {
        match self.role {
            r if r.is_matrix() => DType::I8R,
            Role::Norm | Role::NormF | Role::ConvW | Role::MelFilters => DType::I16,
            _ => DType::I32,
        }
    }
    /// `(rows, cols)`: the last dimension is `cols`, the others multiply into `rows` — except
    /// S4D's mode tensors (`dA`, `C·dB`, `[d_model, d_state/2, 2]`), whose rows are their
    /// channels (`d_model` rows of `d_state` values: one int8 scale per channel).
    pub fn rows_cols(&self) -> Option<(u64, u64)> {
        let r = self.rank as usize;
        if r == 0 {
            return Some((1, 1));
        }
        if matches!(self.role, Role::DA | Role::CB) && r == 3 {
            let [h, half, two, _] = self.shape;
            return Some((h as u64, (half as u64).checked_mul(two as u64)?));
        }
        let cols = *self.shape.get(r - 1)? as u64;
        let mut rows: u64 = 1;
        for &d in self.shape.get(..r - 1)? {
            rows = rows.checked_mul(d as u64)?;
        }
        Some((rows, cols))
    }
    /// Bytes this tensor takes in `dtype` (checked).
    pub fn bytes(&self, dtype: DType) -> Option<u64> {
        let (rows, cols) = self.rows_cols()?;
        dtype.tensor_bytes(rows, cols)
    }
}

/// A configuration's tensor layout: its stack, the role lists of the model-global tensors
/// and of each block configuration's per-layer tensors, and each configuration's state
/// length. Every method takes the configuration it was made from.
///
/// Tensors are in canonical order: the globals, then layer by layer each layer's block
/// tensors. Layer `l` starts at `globals + (l / P) · period + (tensors of table entries
/// before l % P)` for a layer table of length `P` (one multiplication when `P` = 1, as
/// every format 1.0–1.4 model).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layout {
    pub(crate) stack: Stack,
    global: RoleList,
    block: [RoleList; MAX_BLOCK_CONFIGS],
    /// State values of a layer of each block configuration (in the order of
    /// [`Stack::blocks`]).
    pub(crate) state_lens: [usize; MAX_BLOCK_CONFIGS],
    /// Tensors of one period of the layer table.
    period: usize,
    /// A network's (format 1.7): the index of each operation's first tensor, and the
    /// tensor count last (no global tensors).
    #[cfg(feature = "net")]
    net_base: Option<[u16; MAX_OPS + 1]>,
}

impl Layout {
    /// A network's first-tensor table.
    #[inline]
    fn net_base(&self) -> Option<&[u16; MAX_OPS + 1]> {
        #[cfg(feature = "net")]
        return self.net_base.as_ref();
        #[cfg(not(feature = "net"))]
        None
    }

    pub(crate) fn n_tensors(&self, c: &Config) -> usize {
        if let (Some(base), Some(net)) = (self.net_base(), c.net()) {
            return base.get(net.ops().len()).map_or(0, |&n| n as usize);
        }
        let n = c.n_layers as usize;
        let t = self.stack.layers.table.as_slice();
        if !cfg!(feature = "stacks") {
            // One configuration in every layer (the table has one entry).
            return self.global.len + n * self.period;
        }
        let p = t.len().max(1);
        let tail: usize = t[..n % p].iter().map(|&b| self.roles_of(b).len).sum();
        self.global.len + (n / p) * self.period + tail
    }

    fn roles_of(&self, config: u8) -> &RoleList {
        self.block.get(config as usize).unwrap_or(&self.global)
    }

    /// Index of layer `l`'s first tensor, and its role list.
    #[inline]
    fn layer_base(&self, l: usize) -> (usize, &RoleList) {
        let t = self.stack.layers.table.as_slice();
        let g = self.global.len;
        if !cfg!(feature = "stacks") || t.len() == 1 {
            let c = t.first().copied().unwrap_or(0);
            return (g + l * self.period, self.roles_of(c));
        }
        let p = t.len().max(1);
        let (q, r) = (l / p, l % p);
        let before: usize = t[..r].iter().map(|&b| self.roles_of(b).len).sum();
        let c = t.get(r).copied().unwrap_or(0);
        (g + q * self.period + before, self.roles_of(c))
    }

    pub(crate) fn index(&self, c: &Config, layer: LayerIndex, role: Role) -> Option<usize> {
        if let (Some(base), Some(net)) = (self.net_base(), c.net()) {
            let l = layer? as usize;
            let mut roles = RoleList::new();
            net.roles(l, &mut roles);
            return Some(*base.get(l)? as usize + roles.position(role)?);
        }
        match layer {
            None => self.global.position(role),
            Some(l) if (l as u32) < c.n_layers => {
                let (base, lr) = self.layer_base(l as usize);
                lr.position(role).map(|p| base + p)
            }
            Some(_) => None,
        }
    }

    pub(crate) fn spec(&self, c: &Config, index: usize) -> Option<TensorSpec> {
        if let (Some(base), Some(net)) = (self.net_base(), c.net()) {
            // The operation whose tensors hold `index`: the last with base ≤ index.
            let n = net.ops().len();
            let l = base.get(..n)?.partition_point(|&b| b as usize <= index);
            let l = l.checked_sub(1)?;
            let mut roles = RoleList::new();
            net.roles(l, &mut roles);
            let role = *roles.roles[..roles.len].get(index - *base.get(l)? as usize)?;
            let (rank, shape) = net.shape(l, role)?;
            return Some(TensorSpec {
                layer: Some(l as u16),
                role,
                rank,
                shape,
            });
        }
        let g = &self.global;
        let (layer, role) = if index < g.len {
            (None, g.roles[index])
        } else {
            let i = index - g.len;
            if self.period == 0 {
                return None;
            }
            let t = self.stack.layers.table.as_slice();
            let (q, mut r) = (i / self.period, i % self.period);
            let mut found = None;
            if !cfg!(feature = "stacks") || t.len() == 1 {
                let lr = self.roles_of(t.first().copied().unwrap_or(0));
                found = lr.roles.get(r).map(|&role| (q, role));
            } else {
                for (pos, &b) in t.iter().enumerate() {
                    let lr = self.roles_of(b);
                    if r < lr.len {
                        found = Some((q * t.len() + pos, lr.roles[r]));
                        break;
                    }
                    r -= lr.len;
                }
            }
            let (l, role) = found?;
            if l >= c.n_layers as usize {
                return None;
            }
            (Some(l as u16), role)
        };
        let (rank, shape) = match role {
            Role::MelFilters => {
                let fe = c.front_end.as_ref()?;
                if fe.sparse_filters() {
                    (1, [u32::try_from(fe.stored_filters_len()).ok()?, 0, 0, 0])
                } else {
                    (2, [fe.n_mels, fe.n_fft / 2 + 1, 0, 0])
                }
            }
            Role::Window => (1, [c.front_end.as_ref()?.frame_len, 0, 0, 0]),
            Role::IntPlan => (1, [crate::int_step::GLOBAL_PLAN_LEN as u32, 0, 0, 0]),
            Role::IntLayerPlan => (1, [crate::int_step::LAYER_PLAN_LEN as u32, 0, 0, 0]),
            _ if layer.is_some() => self.stack.block(layer? as usize)?.shape(role)?,
            _ => self.stack.global_shape(role)?,
        };
        Some(TensorSpec {
            layer,
            role,
            rank,
            shape,
        })
    }
}

impl Config {
    /// The model as a stack of blocks: input stage, blocks, final norm and head.
    pub fn stack(&self) -> Stack {
        Stack::from_arch(&self.arch, self.n_layers)
    }

    /// The program of a multi-rate network (format 1.7), whose layers are its operations.
    pub fn net(&self) -> Option<&NetConfig> {
        self.arch.net()
    }

    /// Layer `l`'s block: the stack's, or a network operation's (`None` for an operation
    /// that is not a block).
    pub fn block_at(&self, l: usize) -> Option<Block> {
        match self.net() {
            Some(n) => match n.ops().get(l) {
                Some(Op::Block(b)) => Some(*b),
                _ => None,
            },
            None => self.stack().block(l).copied(),
        }
    }

    /// Whether tensor `spec` of this model may be stored in `dtype`: an integer-only model
    /// has exactly one dtype per role ([`TensorSpec::int_dtype`]); [`DType::I8S`] (a
    /// static activation scale) only means something to a [`Compute::W8a8`] step.
    pub fn allows(&self, spec: &TensorSpec, dtype: DType) -> bool {
        match self.compute {
            Compute::Int => dtype == spec.int_dtype(),
            Compute::W8a8 => spec.allows(dtype) || self.is_compact(spec, dtype),
            _ => dtype != DType::I8S && (spec.allows(dtype) || self.is_compact(spec, dtype)),
        }
    }

    /// Whether `dtype` is the compact encoding (format 1.6) that tensor `spec`'s block kind
    /// reads for it in a float or w8a8 model (`blocks::BlockKind::compact_dtype`),
    /// and not already an encoding every format allows.
    pub fn is_compact(&self, spec: &TensorSpec, dtype: DType) -> bool {
        if self.compute == Compute::Int || spec.allows(dtype) {
            return false;
        }
        let Some(l) = spec.layer else { return false };
        self.block_at(l as usize)
            .and_then(|b| b.compact_dtype(spec.role))
            == Some(dtype)
    }

    /// The oldest format minor version in which tensor `spec` may be stored as `dtype`:
    /// bf16 and the int8/int4 matrices 1.2, the integer-only types 1.3, [`DType::I8S`] 1.4,
    /// the compact encodings ([`Self::is_compact`]) 1.6.
    pub fn dtype_min_minor(&self, spec: &TensorSpec, dtype: DType) -> u16 {
        match dtype {
            _ if self.is_compact(spec, dtype) => 6,
            DType::F32 | DType::F16 => 0,
            DType::I8S => 4,
            d if d.is_integer_mode() => 3,
            _ => 2,
        }
    }

    /// The oldest format minor version that can hold this configuration: 1.5 for an
    /// explicit stack, 1.6 for a sparse filterbank, else 0.
    pub fn min_minor(&self) -> u16 {
        let fe = match &self.front_end {
            Some(f) if f.sparse_filters() => 6,
            _ => 0,
        };
        self.arch.min_minor().max(fe)
    }

    /// Checks every configuration value; run by the parser and the writer.
    pub fn validate(&self) -> Result<(), FormatError> {
        if self.n_layers == 0 || self.n_layers > MAX_LAYERS {
            return Err(FormatError::BadConfig("n_layers must be in 1..=1024"));
        }
        if let Some(net) = self.net() {
            return self.validate_net(net);
        }
        let stack = self.stack();
        stack.validate()?;
        for b in stack.blocks() {
            let info = b.info();
            if !info.modes.has(self.compute) {
                return Err(FormatError::ModeUnsupported {
                    block: info.name,
                    mode: self.compute.name(),
                });
            }
        }
        if self.compute == Compute::Int {
            stack.validate_int()?;
        }
        if let Some(fe) = &self.front_end {
            fe.validate()?;
            if self.d_input() != fe.n_mels as usize {
                return Err(FormatError::BadConfig(
                    "a front end needs a vector-input model with d_input = n_mels",
                ));
            }
            if fe.sparse_filters() && self.compute == Compute::Int {
                return Err(FormatError::BadConfig(
                    "compute int: the integer front end needs a dense filterbank",
                ));
            }
        }
        // All derived sizes must fit: check the largest products once.
        self.sizes().map(|_| ())
    }

    /// A network's checks: its program ([`NetConfig::validate`]), one layer per operation,
    /// no front end, a float or w8a8 step its blocks have, and its plan's sizes.
    fn validate_net(&self, net: &NetConfig) -> Result<(), FormatError> {
        if self.n_layers as usize != net.ops().len() {
            return Err(FormatError::BadConfig(
                "a network has one layer per operation (n_layers = its operations)",
            ));
        }
        if self.front_end.is_some() {
            return Err(FormatError::BadConfig("a network takes no front end"));
        }
        if self.compute == Compute::Int {
            return Err(FormatError::BadConfig(
                "compute int: a network has float and w8a8 steps only",
            ));
        }
        net.validate()?;
        for op in net.ops() {
            if let Op::Block(b) = op {
                let info = b.info();
                if !info.modes.has(self.compute) {
                    return Err(FormatError::ModeUnsupported {
                        block: info.name,
                        mode: self.compute.name(),
                    });
                }
            }
        }
        self.sizes().map(|_| ())
    }

    /// The model-global tensors in canonical order: the front end's and the integer
    /// plan's (when present), then the stack's stages.
    pub(crate) fn global_roles(&self) -> RoleList {
        let mut l = RoleList::new();
        if self.net().is_some() {
            return l;
        }
        let int = self.compute == Compute::Int;
        l.push_if(self.front_end.is_some(), Role::MelFilters);
        l.push_if(int && self.front_end.is_some(), Role::Window);
        l.push_if(int, Role::IntPlan);
        self.stack().global_roles(&mut l);
        l
    }

    /// The canonical tensor layout (computed once; [`crate::Model`] keeps it). A layer's
    /// tensors are its block's, then the integer layer plan (integer models).
    pub(crate) fn layout(&self) -> Layout {
        let stack = self.stack();
        let mut block = [RoleList::new(); MAX_BLOCK_CONFIGS];
        let mut state_lens = [0; MAX_BLOCK_CONFIGS];
        for ((b, l), n) in stack.blocks().iter().zip(&mut block).zip(&mut state_lens) {
            b.roles(l);
            l.push_if(self.compute == Compute::Int, Role::IntLayerPlan);
            *n = b
                .state_len()
                .ok()
                .and_then(|v| usize::try_from(v).ok())
                .unwrap_or(0);
        }
        let period = stack
            .layers
            .table
            .as_slice()
            .iter()
            .map(|&c| block.get(c as usize).map_or(0, |l| l.len))
            .sum();
        Layout {
            stack,
            global: self.global_roles(),
            block,
            state_lens,
            period,
            #[cfg(feature = "net")]
            net_base: self.net().map(|net| {
                let mut base = [0u16; MAX_OPS + 1];
                let mut n = 0u16;
                for (i, b) in base.iter_mut().enumerate() {
                    *b = n;
                    let mut roles = RoleList::new();
                    net.roles(i, &mut roles);
                    n = n.saturating_add(roles.len as u16);
                }
                base
            }),
        }
    }

    /// Number of tensors in the canonical layout.
    pub fn n_tensors(&self) -> usize {
        self.layout().n_tensors(self)
    }

    /// Index of a tensor in the canonical layout.
    pub fn tensor_index(&self, layer: LayerIndex, role: Role) -> Option<usize> {
        self.layout().index(self, layer, role)
    }

    /// The spec of tensor `index` in the canonical layout (globals first, then each
    /// layer's tensors in role order).
    pub fn tensor_spec(&self, index: usize) -> Option<TensorSpec> {
        self.layout().spec(self, index)
    }

    /// Input: `Some(vocab)` for token models, `None` for vector models.
    pub fn vocab_size(&self) -> Option<u32> {
        self.stack().vocab_size()
    }

    /// Length of the input vector for vector models (0 for token models).
    pub fn d_input(&self) -> usize {
        self.stack().d_input()
    }

    /// Values produced per step (logits, classes or regression outputs).
    pub fn d_output(&self) -> usize {
        self.stack().d_output()
    }

    /// `(state_len, scratch_len)` in f32 elements, checked.
    pub fn sizes(&self) -> Result<Sizes, FormatError> {
        let ov = FormatError::DimensionOverflow;
        let a = |a: u64, b: u64| a.checked_add(b).ok_or(ov);
        if let Some(net) = self.net() {
            // The plan's f32 state and scratch (its u32 counters: `Model::net`'s plan).
            let plan = crate::net::NetPlan::new(net)?;
            // One layout for every tensor (its first-tensor table is built per layout).
            let layout = self.layout();
            for i in 0..layout.n_tensors(self) {
                let spec = layout
                    .spec(self, i)
                    .ok_or(FormatError::BadConfig("layout"))?;
                if spec.numel().ok_or(ov)? > (u32::MAX / 4) as u64 {
                    return Err(ov);
                }
            }
            return Ok(Sizes {
                state: plan.state_len,
                state_per_layer: 0,
                scratch: plan.scratch_len,
                model_state: plan.state_len,
                model_scratch: plan.scratch_len,
            });
        }
        let stack = self.stack();
        let mut model_state = 0u64;
        for l in 0..self.n_layers as usize {
            let b = stack
                .block(l)
                .ok_or(FormatError::BadConfig("layer table"))?;
            model_state = a(model_state, b.state_len()?)?;
        }
        let state_per_layer = match stack.blocks() {
            [b] => b.state_len()?,
            _ => 0,
        };
        let scratch = stack.scratch_len()?;
        let int = self.compute == Compute::Int;
        let scratch = if int {
            stack.int_scratch_len() as u64
        } else {
            scratch
        };
        let model_scratch = scratch;
        let mut state = model_state;
        let mut scratch = scratch;
        if let Some(fe) = &self.front_end {
            // The front end's ring and counters follow the model state; its FFT buffer and
            // the feature vector follow the model scratch.
            if int {
                state = a(state, crate::frontend_int::fe_state_len(fe) as u64)?;
                scratch = a(scratch, crate::frontend_int::fe_scratch_len(fe) as u64)?;
            } else {
                state = a(state, fe.frame_len as u64 + 2)?;
                scratch = a(scratch, a(fe.n_fft as u64, fe.n_mels as u64)?)?;
            }
        }
        // Sizes must be addressable as f32 slices on a 32-bit target too.
        let lim = (u32::MAX / 8) as u64;
        if state > lim || scratch > lim {
            return Err(ov);
        }
        // Every tensor's byte size must fit as well.
        for i in 0..self.n_tensors() {
            let spec = self
                .tensor_spec(i)
                .ok_or(FormatError::BadConfig("layout"))?;
            let n = spec.numel().ok_or(ov)?;
            if n > (u32::MAX / 4) as u64 {
                return Err(ov);
            }
        }
        Ok(Sizes {
            state: state as usize,
            state_per_layer: state_per_layer as usize,
            scratch: scratch as usize,
            model_state: model_state as usize,
            model_scratch: model_scratch as usize,
        })
    }
}

/// Buffer sizes in elements: f32 for float and w8a8 models, i32 for integer-only ones
/// (whose scratch packs its `i16` vectors two to an element).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    /// Whole state: the model's, then the front end's (if any).
    pub state: usize,
    /// One layer's state when every layer is the same block configuration (every format
    /// 1.0–1.4 model); 0 in a stack whose layers differ.
    pub state_per_layer: usize,
    /// Whole scratch: the model's, then the front end's FFT buffer and feature vector.
    pub scratch: usize,
    /// The model's part of the state (all layers).
    pub model_state: usize,
    /// The model's part of the scratch.
    pub model_scratch: usize,
}
