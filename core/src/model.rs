//! The parsed, immutable model and its recurrent step.

use half::{bf16, f16};

use crate::config::{Compute, Config, DType, LayerIndex, Layout, Role, Sizes, TensorSpec};
use crate::error::{FormatError, StepError};
use crate::format::{self, TensorRecord};
use crate::kernels::{ActQuant, IntWeights, Kernels, QuantI4, QuantI8, QuantI8R, Weights};
use crate::stack::Input;
use crate::tensors::Tensors;

/// A validated model borrowed from its blob (flash, `include_bytes!`, or a host buffer).
///
/// Nothing in a `Model` is mutable: one model serves any number of streams, each owning
/// its state buffer. `Model` is `Copy` and small (no tensor table is copied out of the blob).
#[derive(Debug, Clone, Copy)]
pub struct Model<'a> {
    config: Config,
    /// The stack and tensor layout, derived from `config` once at parse.
    layout: Layout,
    sizes: Sizes,
    table: &'a [u8],
    data: &'a [u8],
    n_tensors: usize,
    minor: u16,
    blob_len: usize,
    crc: u32,
    kernels: Kernels,
    /// Every tensor's view, resolved once ([`Self::with_views`]); `None`: looked up in the
    /// blob's tensor table at each use.
    views: Option<&'a [Weights<'a>]>,
}

/// A tensor borrowed from the blob.
#[derive(Debug, Clone, Copy)]
pub struct TensorView<'a> {
    pub spec: TensorSpec,
    pub dtype: DType,
    pub weights: Weights<'a>,
}

impl<'a> Model<'a> {
    /// Parses and validates a blob in place: magic, version, CRC, every offset, length,
    /// alignment, dimension and dtype. The blob must start on a 16-byte boundary (see
    /// [`crate::Aligned`]). After this, stepping can fail only on caller-side buffer sizes.
    pub fn parse(blob: &'a [u8]) -> Result<Self, FormatError> {
        Self::parse_inner(blob, true)
    }

    /// Every structural check of [`Self::parse`] except the CRC: for a buffer whose CRC
    /// was already verified and that has not changed since (re-borrowing an owned buffer
    /// on a host, or flash checked once at boot). Corrupt bytes still cannot cause a
    /// panic or an out-of-bounds read; they can only give wrong outputs.
    pub fn parse_skip_crc(blob: &'a [u8]) -> Result<Self, FormatError> {
        Self::parse_inner(blob, false)
    }

    fn parse_inner(blob: &'a [u8], verify_crc: bool) -> Result<Self, FormatError> {
        let p = format::parse(blob, verify_crc)?;
        let m = Model {
            config: p.config,
            layout: p.config.layout(),
            sizes: p.sizes,
            table: p.table,
            data: p.data,
            n_tensors: p.n_tensors,
            minor: p.minor,
            blob_len: blob.len(),
            crc: p.crc,
            kernels: Kernels::default(),
            views: None,
        };
        if m.config.compute == Compute::Int && m.config.front_end.is_some() {
            // The integer front end's tables (window, non-negative filters, formats) are
            // checked once here; the per-sample path trusts them.
            m.int_front_end_parts()
                .ok_or(FormatError::BadConfig("integer front end: missing tables"))
                .and_then(|(cfg, w, f, ff, fe)| {
                    crate::frontend_int::IntFrontEnd::new(cfg, w, f, ff, fe).map(|_| ())
                })?;
        }
        Ok(m)
    }

    /// The same model stepping with another kernel set.
    pub fn with_kernels(mut self, k: Kernels) -> Self {
        self.kernels = k;
        self
    }

    pub fn kernels(&self) -> Kernels {
        self.kernels
    }

    /// The same model reading its tensors from `table`, filled here once with every
    /// tensor's view (its first [`Self::n_tensors`] entries), instead of decoding the
    /// blob's tensor table at every use: the step then costs one role look-up per tensor
    /// (on the Cortex-M4, ~14 k fewer instructions per frame of the spoken-digit models).
    /// The table is the caller's (a `static` on a microcontroller: `N_TENSORS` from
    /// `tinyssm codegen`), so the model stays allocation-free; [`Weights::EMPTY`] fills it
    /// beforehand. Outputs are bit-identical to the model without views.
    pub fn with_views<'t>(self, table: &'t mut [Weights<'t>]) -> Result<Model<'t>, StepError>
    where
        'a: 't,
    {
        let (needed, got) = (self.n_tensors, table.len());
        let t = table
            .get_mut(..needed)
            .ok_or(StepError::ViewsTooShort { needed, got })?;
        for (i, slot) in t.iter_mut().enumerate() {
            // Parsing checked every tensor, so each resolves.
            *slot = self.tensor(i).ok_or(StepError::Internal)?.weights;
        }
        let t: &'t [Weights<'t>] = t;
        Ok(Model {
            views: Some(t),
            ..self
        })
    }

    /// Whether the model reads its tensors from a table of views ([`Self::with_views`]).
    pub fn has_views(&self) -> bool {
        self.views.is_some()
    }
    pub fn config(&self) -> &Config {
        &self.config
    }
    /// The model as a stack: input stage, blocks, final norm and head.
    pub fn stack(&self) -> &crate::stack::Stack {
        &self.layout.stack
    }
    /// Format minor version of the blob.
    pub fn format_minor(&self) -> u16 {
        self.minor
    }
    pub fn blob_len(&self) -> usize {
        self.blob_len
    }
    /// The CRC-32 stored in the blob (identifies the exact model).
    pub fn crc32(&self) -> u32 {
        self.crc
    }
    /// Exact number of f32 elements of recurrent state per stream.
    pub fn state_len(&self) -> usize {
        self.sizes.state
    }
    /// Exact number of f32 elements of scratch a step needs.
    pub fn scratch_len(&self) -> usize {
        self.sizes.scratch
    }
    /// Values produced per step.
    pub fn d_output(&self) -> usize {
        self.config.d_output()
    }
    /// `Some(vocab)` for token models.
    pub fn vocab_size(&self) -> Option<u32> {
        self.config.vocab_size()
    }
    /// Input vector length for vector models (0 for token models).
    pub fn d_input(&self) -> usize {
        self.config.d_input()
    }
    pub fn n_tensors(&self) -> usize {
        self.n_tensors
    }

    /// Tensor `i` of the table.
    pub fn tensor(&self, i: usize) -> Option<TensorView<'a>> {
        let rec: TensorRecord = format::decode_record(self.table, i)?;
        let spec = self.layout.spec(&self.config, i)?;
        let dtype = DType::from_code(rec.dtype)?;
        let lo = usize::try_from(rec.offset).ok()?;
        let hi = lo.checked_add(usize::try_from(rec.len).ok()?)?;
        let bytes = self.data.get(lo..hi)?;
        let weights = match dtype {
            DType::F32 => Weights::F32(bytemuck::try_cast_slice::<u8, f32>(bytes).ok()?),
            DType::F16 => Weights::F16(bytemuck::try_cast_slice::<u8, f16>(bytes).ok()?),
            DType::Bf16 => Weights::Bf16(bytemuck::try_cast_slice::<u8, bf16>(bytes).ok()?),
            DType::I8 | DType::I8S => {
                let (rows, cols) = spec.rows_cols()?;
                let (rows, cols) = (usize::try_from(rows).ok()?, usize::try_from(cols).ok()?);
                let n = rows.checked_mul(cols)?;
                let q = bytes.get(..n)?;
                let s = bytes.get(n.checked_add(3)? & !3..)?;
                let s = bytemuck::try_cast_slice::<u8, f32>(s).ok()?;
                let (scale, act) = match (dtype, self.config.compute) {
                    (DType::I8S, _) => {
                        let (xmax, scale) = s.split_last()?;
                        (scale, ActQuant::StaticI8 { xmax: *xmax })
                    }
                    (_, Compute::W8a8) => (s, ActQuant::DynamicI8),
                    _ => (s, ActQuant::Float),
                };
                Weights::I8(QuantI8 {
                    q: bytemuck::try_cast_slice::<u8, i8>(q).ok()?,
                    scale,
                    cols,
                    act,
                })
            }
            DType::I4 => {
                let (rows, cols) = spec.rows_cols()?;
                let (rows, cols) = (usize::try_from(rows).ok()?, usize::try_from(cols).ok()?);
                let g = rows.checked_mul(cols.div_ceil(crate::config::I4_GROUP))?;
                let (q, s) = bytes.split_at_checked(g.checked_mul(16)?)?;
                Weights::I4(QuantI4 {
                    q,
                    scale: bytemuck::try_cast_slice::<u8, f16>(s).ok()?,
                    cols,
                })
            }
            // In a float or w8a8 model an i16 tensor (S4D's dA, format 1.6) is Q1.15.
            DType::I16 if self.config.compute != Compute::Int => {
                Weights::Q15(bytemuck::try_cast_slice::<u8, i16>(bytes).ok()?)
            }
            DType::I16 => Weights::Int(IntWeights::I16(
                bytemuck::try_cast_slice::<u8, i16>(bytes).ok()?,
            )),
            DType::I32 => Weights::Int(IntWeights::I32(
                bytemuck::try_cast_slice::<u8, i32>(bytes).ok()?,
            )),
            DType::I8R => {
                let (rows, cols) = spec.rows_cols()?;
                let (rows, cols) = (usize::try_from(rows).ok()?, usize::try_from(cols).ok()?);
                let n = rows.checked_mul(cols)?;
                let q = bytes.get(..n)?;
                let rq = bytes.get(n.checked_add(3)? & !3..)?;
                Weights::Int(IntWeights::I8R(QuantI8R {
                    q: bytemuck::try_cast_slice::<u8, i8>(q).ok()?,
                    rq: bytemuck::try_cast_slice::<u8, i32>(rq).ok()?,
                    cols,
                }))
            }
        };
        Some(TensorView {
            spec,
            dtype,
            weights,
        })
    }

    /// Tensor by layer and role.
    pub fn find(&self, layer: LayerIndex, role: Role) -> Option<TensorView<'a>> {
        self.tensor(self.layout.index(&self.config, layer, role)?)
    }

    /// Sets a stream's state to the model's initial state: all zeros, except RWKV v4's
    /// running-maximum slots, which start at -1e30 (as rwkv.cpp's initial state). Always
    /// initialize a new stream's state with this.
    pub fn reset(&self, state: &mut [f32]) -> Result<(), StepError> {
        if self.config.net().is_some() {
            return Err(StepError::NetModel);
        }
        let got = state.len();
        let s = state
            .get_mut(..self.sizes.state)
            .ok_or(StepError::StateTooShort {
                needed: self.sizes.state,
                got,
            })?;
        s.fill(0.0);
        let model = s
            .get_mut(..self.sizes.model_state)
            .ok_or(StepError::Internal)?;
        self.layout.stack.init_state(&self.layout.state_lens, model)
    }

    /// Advances one stream by one step. `state` (≥ [`Self::state_len`]) carries the
    /// stream, `scratch` (≥ [`Self::scratch_len`]) holds temporaries, `out` (≥
    /// [`Self::d_output`]) receives the logits / outputs. Only the first `state_len`,
    /// `scratch_len` and `d_output` elements are touched.
    pub fn step(
        &self,
        input: Input<'_>,
        state: &mut [f32],
        scratch: &mut [f32],
        out: &mut [f32],
    ) -> Result<(), StepError> {
        self.step_probed(input, state, scratch, out, &mut crate::probe::NoProbe)
    }

    /// [`Self::step`], handing named intermediate values to `probe` (calibration; see
    /// [`crate::probe`]). Outputs and states are those of [`Self::step`], bit for bit.
    pub fn step_probed<P: crate::probe::Probe>(
        &self,
        input: Input<'_>,
        state: &mut [f32],
        scratch: &mut [f32],
        out: &mut [f32],
        probe: &mut P,
    ) -> Result<(), StepError> {
        if self.config.net().is_some() {
            return Err(StepError::NetModel);
        }
        let (ns, nc, no) = (
            self.sizes.model_state,
            self.sizes.model_scratch,
            self.d_output(),
        );
        let got = state.len();
        let state = state
            .get_mut(..ns)
            .ok_or(StepError::StateTooShort { needed: ns, got })?;
        let got = scratch.len();
        let scratch = scratch
            .get_mut(..nc)
            .ok_or(StepError::ScratchTooShort { needed: nc, got })?;
        let got = out.len();
        let out = out
            .get_mut(..no)
            .ok_or(StepError::OutputTooShort { needed: no, got })?;
        if self.config.compute == Compute::Int {
            return Err(StepError::WrongCompute);
        }
        // The non-finite policy (ARCHITECTURE.md): a NaN or infinite input is refused before
        // anything is touched; an output that is not finite (an overflow inside the step)
        // resets the stream and is reported. Bit-pattern checks: integer instructions.
        if let Input::Vector(x) = input {
            if let Some(index) = x.iter().position(|v| !crate::fbits::is_finite(*v)) {
                return Err(StepError::NonFiniteInput { index });
            }
        }
        self.layout.stack.step(
            self,
            &self.layout.state_lens,
            input,
            state,
            scratch,
            out,
            probe,
        )?;
        if out.iter().all(|v| crate::fbits::is_finite(*v)) {
            return Ok(());
        }
        state.fill(0.0);
        self.layout
            .stack
            .init_state(&self.layout.state_lens, state)?;
        Err(StepError::Overflow)
    }

    /// The audio front end, for a model that takes raw samples.
    pub fn front_end(&self) -> Option<crate::frontend::FrontEnd<'a>> {
        let cfg = self.config.front_end?;
        let filters = self.find(None, Role::MelFilters)?;
        match filters.weights {
            Weights::F32(w) => crate::frontend::FrontEnd::new(cfg, w).ok(),
            _ => None,
        }
    }

    /// Feeds one audio sample to a model with a front end. `fe` is the model's front end,
    /// resolved once per stream ([`Self::front_end`], usually with its window table:
    /// [`crate::frontend::FrontEnd::with_window`]), so a sample that does not complete a
    /// frame costs a ring-buffer write; a front end of another configuration is refused
    /// ([`StepError::WrongInputKind`]). When the sample completes a frame, the frame's
    /// features go through one model step and `Ok(true)` says `out` holds its outputs;
    /// otherwise `out` is untouched. State and scratch are the whole buffers
    /// ([`Self::state_len`], [`Self::scratch_len`]): the model's part first, then the
    /// front end's.
    #[inline(always)]
    pub fn step_sample(
        &self,
        fe: &crate::frontend::FrontEnd<'_>,
        x: f32,
        state: &mut [f32],
        scratch: &mut [f32],
        out: &mut [f32],
    ) -> Result<bool, StepError> {
        self.step_sample_probed(fe, x, state, scratch, out, &mut crate::probe::NoProbe)
    }

    /// [`Self::step_sample`] with a [`crate::probe::Probe`] on the model step.
    #[inline(always)]
    pub fn step_sample_probed<P: crate::probe::Probe>(
        &self,
        fe: &crate::frontend::FrontEnd<'_>,
        x: f32,
        state: &mut [f32],
        scratch: &mut [f32],
        out: &mut [f32],
        probe: &mut P,
    ) -> Result<bool, StepError> {
        self.check_own_front_end(fe.config())?;
        self.step_sample_fe(*fe, x, state, scratch, out, probe)
    }

    /// `Ok` when `cfg` is this model's front-end configuration (compared on bit patterns:
    /// integer instructions only), else [`StepError::WrongInputKind`].
    fn check_own_front_end(&self, cfg: &crate::frontend::FrontEndConfig) -> Result<(), StepError> {
        match &self.config.front_end {
            Some(own) if crate::frontend::same_front_end(own, cfg) => Ok(()),
            _ => Err(StepError::WrongInputKind),
        }
    }

    #[inline(always)]
    fn step_sample_fe<P: crate::probe::Probe>(
        &self,
        fe: crate::frontend::FrontEnd<'_>,
        x: f32,
        state: &mut [f32],
        scratch: &mut [f32],
        out: &mut [f32],
        probe: &mut P,
    ) -> Result<bool, StepError> {
        let (ms, mc, nm) = (
            self.sizes.model_state,
            self.sizes.model_scratch,
            fe.config().n_mels as usize,
        );
        let got = state.len();
        let state = state
            .get_mut(..self.sizes.state)
            .ok_or(StepError::StateTooShort {
                needed: self.sizes.state,
                got,
            })?;
        let got = scratch.len();
        let scratch = scratch
            .get_mut(..self.sizes.scratch)
            .ok_or(StepError::ScratchTooShort {
                needed: self.sizes.scratch,
                got,
            })?;
        if !crate::fbits::is_finite(x) {
            return Err(StepError::NonFiniteInput { index: 0 });
        }
        let (model_state, fe_state) = state.split_at_mut(ms);
        let (model_scratch, rest) = scratch.split_at_mut(mc);
        let (fft, feats) = rest.split_at_mut(rest.len() - nm);
        if !fe.push(x, fe_state, fft, feats)? {
            return Ok(false);
        }
        match self.frame_step(feats, model_state, model_scratch, out, probe) {
            Ok(()) => Ok(true),
            // Finite samples whose frame overflowed (in the front end: non-finite
            // features; or in the model): the whole stream, front end included, restarts.
            Err(StepError::NonFiniteInput { .. } | StepError::Overflow) => {
                fe_state.fill(0.0);
                model_state.fill(0.0);
                self.layout
                    .stack
                    .init_state(&self.layout.state_lens, model_state)?;
                Err(StepError::Overflow)
            }
            Err(e) => Err(e),
        }
    }

    /// The model step on a completed frame's features, out of line so that a sample that
    /// only fills the ring stays a short path.
    #[inline(never)]
    fn frame_step<P: crate::probe::Probe>(
        &self,
        feats: &[f32],
        state: &mut [f32],
        scratch: &mut [f32],
        out: &mut [f32],
        probe: &mut P,
    ) -> Result<(), StepError> {
        self.step_probed(Input::Vector(feats), state, scratch, out, probe)
    }

    /// The fixed-point formats of an integer-only model's input vectors and outputs
    /// (`None` for float and w8a8 models).
    pub fn int_io(&self) -> Option<crate::int_step::IntIo> {
        if self.config.compute != Compute::Int {
            return None;
        }
        let g = self.i32s(None, Role::IntPlan).ok()?;
        let f = |i: usize| g.get(i).map(|&v| v.clamp(0, 31) as u32);
        Some(crate::int_step::IntIo {
            input_frac: f(crate::int_step::plan::G_IN_FRAC)?,
            output_frac: f(crate::int_step::plan::G_OUT_FRAC)?,
        })
    }

    /// Sets an integer-only stream's state to its initial state (all zeros).
    pub fn reset_int(&self, state: &mut [i32]) -> Result<(), StepError> {
        let got = state.len();
        state
            .get_mut(..self.sizes.state)
            .ok_or(StepError::StateTooShort {
                needed: self.sizes.state,
                got,
            })?
            .fill(0);
        Ok(())
    }

    /// One step of an integer-only model ([`Compute::Int`]): `input` in the model's input
    /// format ([`Self::int_io`]), `state` (≥ [`Self::state_len`] i32), `scratch` (≥
    /// [`Self::scratch_len`] i32), `out` (≥ [`Self::d_output`]) in the output format. No
    /// floating-point operation runs (see `int_step`).
    pub fn step_int(
        &self,
        input: &[i16],
        state: &mut [i32],
        scratch: &mut [i32],
        out: &mut [i32],
    ) -> Result<(), StepError> {
        let (ns, nc, no) = (
            self.sizes.model_state,
            self.sizes.model_scratch,
            self.d_output(),
        );
        let got = state.len();
        let state = state
            .get_mut(..ns)
            .ok_or(StepError::StateTooShort { needed: ns, got })?;
        let got = scratch.len();
        let scratch = scratch
            .get_mut(..nc)
            .ok_or(StepError::ScratchTooShort { needed: nc, got })?;
        let got = out.len();
        let out = out
            .get_mut(..no)
            .ok_or(StepError::OutputTooShort { needed: no, got })?;
        if self.config.compute != Compute::Int {
            return Err(StepError::WrongCompute);
        }
        self.layout
            .stack
            .step_int(self, &self.layout.state_lens, input, state, scratch, out)
    }

    /// Feeds one 16-bit PCM sample to an integer-only model with a front end: the integer
    /// front end `fe` (resolved once per stream: [`Self::front_end_int`]; one of another
    /// configuration is refused, [`StepError::WrongInputKind`]), then [`Self::step_int`]
    /// whenever a frame completes (`Ok(true)`).
    #[inline(always)]
    pub fn step_sample_int(
        &self,
        fe: &crate::frontend_int::IntFrontEnd<'_>,
        pcm: i16,
        state: &mut [i32],
        scratch: &mut [i32],
        out: &mut [i32],
    ) -> Result<bool, StepError> {
        self.check_own_front_end(fe.config())?;
        self.step_sample_int_fe(fe, pcm, state, scratch, out)
    }

    #[inline(always)]
    fn step_sample_int_fe(
        &self,
        fe: &crate::frontend_int::IntFrontEnd<'_>,
        pcm: i16,
        state: &mut [i32],
        scratch: &mut [i32],
        out: &mut [i32],
    ) -> Result<bool, StepError> {
        let (ms, mc) = (self.sizes.model_state, self.sizes.model_scratch);
        let got = state.len();
        let state = state
            .get_mut(..self.sizes.state)
            .ok_or(StepError::StateTooShort {
                needed: self.sizes.state,
                got,
            })?;
        let got = scratch.len();
        let scratch = scratch
            .get_mut(..self.sizes.scratch)
            .ok_or(StepError::ScratchTooShort {
                needed: self.sizes.scratch,
                got,
            })?;
        let (model_state, fe_state) = state.split_at_mut(ms);
        let (model_scratch, rest) = scratch.split_at_mut(mc);
        let (fft, feats) = crate::frontend_int::fe_split(fe.config(), rest)?;
        if !fe.push(pcm, fe_state, fft, feats)? {
            return Ok(false);
        }
        self.frame_step_int(feats, model_state, model_scratch, out)?;
        Ok(true)
    }

    /// [`Self::frame_step`] of the integer path.
    #[inline(never)]
    fn frame_step_int(
        &self,
        feats: &[i16],
        state: &mut [i32],
        scratch: &mut [i32],
        out: &mut [i32],
    ) -> Result<(), StepError> {
        self.step_int(feats, state, scratch, out)
    }

    /// The integer front end of an integer-only audio model (its tables were checked by
    /// [`Self::parse`]).
    pub fn front_end_int(&self) -> Option<crate::frontend_int::IntFrontEnd<'a>> {
        let (cfg, w, f, ff, fe) = self.int_front_end_parts()?;
        Some(crate::frontend_int::IntFrontEnd::new_validated(
            cfg, w, f, ff, fe,
        ))
    }

    /// Configuration, window, filters, filter and feature fraction bits.
    #[allow(clippy::type_complexity)]
    fn int_front_end_parts(
        &self,
    ) -> Option<(
        crate::frontend::FrontEndConfig,
        &'a [i32],
        &'a [i16],
        u32,
        u32,
    )> {
        if self.config.compute != Compute::Int {
            return None;
        }
        let cfg = self.config.front_end?;
        let g = self.i32s(None, Role::IntPlan).ok()?;
        let f = |i: usize| g.get(i).map(|&v| v.clamp(0, 31) as u32);
        Some((
            cfg,
            self.i32s(None, Role::Window).ok()?,
            self.i16s(None, Role::MelFilters).ok()?,
            f(crate::int_step::plan::G_FILTER_FRAC)?,
            f(crate::int_step::plan::G_IN_FRAC)?,
        ))
    }

    /// Parameter count and bytes per dtype.
    pub fn weight_stats(&self) -> WeightStats {
        let mut s = WeightStats::default();
        for i in 0..self.n_tensors {
            if let Some(t) = self.tensor(i) {
                let n = t.weights.len() as u64;
                s.params += n;
                let bytes = t.spec.bytes(t.dtype).unwrap_or(0);
                s.total_bytes += bytes;
                match t.dtype {
                    DType::F32 => s.f32_bytes += bytes,
                    DType::F16 => s.f16_bytes += bytes,
                    DType::Bf16 => s.bf16_bytes += bytes,
                    DType::I8 | DType::I8S => s.int8_bytes += bytes,
                    DType::I4 => s.int4_bytes += bytes,
                    DType::I8R => s.int8r_bytes += bytes,
                    DType::I16 => s.i16_bytes += bytes,
                    DType::I32 => s.i32_bytes += bytes,
                }
            }
        }
        s
    }

    /// The multi-rate network of a format 1.7 model ([`crate::Arch::Net`]), planned and
    /// reading this model's tensors: stream it with [`crate::net::Net::reset`], `feed` and
    /// `finish`, in buffers of its plan's sizes. `None` for a model that is not a network
    /// (a network's plan was made once at parse, so it does not fail here).
    pub fn net(&self) -> Option<crate::net::Net<'_, 'a>> {
        crate::net::Net::new(self.config.net()?, self).ok()
    }

    /// Multiply-accumulates per step (matrix-vector products and the SSM update); for a
    /// network, per input frame (its work per period over the period).
    pub fn macs_per_step(&self) -> u64 {
        if let Some(net) = self.config.net() {
            return net.macs_per_period() / (net.period() as u64).max(1);
        }
        let mut macs = 0u64;
        for i in 0..self.n_tensors {
            if let Some(spec) = self.layout.spec(&self.config, i) {
                if spec.role.is_matrix() && spec.role != crate::Role::Embedding {
                    macs += spec.numel().unwrap_or(0);
                }
            }
        }
        macs + self.layout.stack.extra_macs()
    }
}

impl<'a> Tensors<'a> for Model<'a> {
    fn kernels(&self) -> Kernels {
        self.kernels
    }
    // One copy, called by the typed accessors (`f32s`, `i8r`, …), not inlined into each.
    #[inline(never)]
    fn w(&self, layer: LayerIndex, role: Role) -> Result<Weights<'a>, StepError> {
        match self.views {
            Some(v) => self
                .layout
                .index(&self.config, layer, role)
                .and_then(|i| v.get(i))
                .copied(),
            None => self.find(layer, role).map(|t| t.weights),
        }
        .ok_or(StepError::Internal)
    }
}

/// Parameter statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WeightStats {
    pub params: u64,
    /// Bytes per stored dtype (int8/int4 include their scales).
    pub f32_bytes: u64,
    pub f16_bytes: u64,
    pub bf16_bytes: u64,
    pub int8_bytes: u64,
    pub int4_bytes: u64,
    /// Integer-only models: int8 matrices with their requantization, i16 and i32 tensors.
    pub int8r_bytes: u64,
    pub i16_bytes: u64,
    pub i32_bytes: u64,
    /// All tensor bytes (alignment padding not counted).
    pub total_bytes: u64,
}
