//! Multi-rate networks: a program of operations over one signal whose rate and width change
//! along the way, with a stack of skip connections — the form of a U-Net such as
//! aTENNuate's denoiser (arXiv 2409.03377), streamed in fixed memory.
//!
//! ```text
//! Push            save the signal for the matching PopAdd (a skip connection)
//! PopAdd          add the signal saved by the matching Push (same rate and width)
//! Conv            depthwise conv over time: k taps, `pad` frames of left zero padding,
//!                 so `k − 1 − pad` frames of look-ahead (aTENNuate: k 3, pad 1: one)
//! Block           a block of any registered kind (width-preserving; S5 for aTENNuate)
//! Down            r frames of c_in → one frame of c_out: y = W·[x_0; …; x_{r−1}]
//! Up              one frame of c_in → r frames of c_out: [y_0; …; y_{r−1}] = W·x
//! ```
//!
//! **Streaming.** Every operation is causal except a convolution's look-ahead and the
//! blockwise resampling, so the network runs as a dataflow: each input frame goes through
//! the program as far as it can; a convolution with look-ahead `a` emits frame `t − a`
//! when frame `t` arrives (its first `a` inputs emit nothing), `Down` emits once per `r`
//! frames, `Up` emits `r` frames per input frame, and a skip waits in a ring buffer until
//! the decoder frame of the same index arrives. Output frame `p` is computed as soon as
//! every input it depends on has arrived. [`NetPlan`] finds, by running the program's
//! control flow without arithmetic, the size of each ring buffer and the **delay**: the
//! largest number of inputs that arrive after input `p` before output `p` is ready (the
//! network's look-ahead; no constant delay below it can stream exactly).
//!
//! **The end of a stream** ([`Net::finish`]): the reference runs whole files, zero-padded
//! to a whole number of periods (the product of the resampling factors), with each
//! convolution zero-padded at the end of its own level. So the input is padded with zeros
//! to a whole period, and then every convolution, in program order, takes zeros as its
//! missing future frames — feeding zeros at the input instead would run them through the
//! SSMs, whose outputs are not zero.

use crate::blocks;
use crate::blocks::program::bad;
pub use crate::blocks::program::{NetConfig, Op, MAX_FACTOR, MAX_OPS, MAX_PERIOD, MAX_SKIPS};
use crate::error::{FormatError, StepError};
use crate::layers::linear;

use crate::probe::NoProbe;
use crate::role::Role;
use crate::tensors::Tensors;

/// Frames of input [`NetPlan::new`] runs the control flow for to size the skip buffers
/// and find the delay, in periods (the pattern repeats every period once the first output
/// has appeared).
const PLAN_PERIODS: u32 = 24;

/// Where each operation keeps its state and output, and the skip buffers' sizes and the
/// delay that the program's control flow needs ([`NetPlan::new`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NetPlan {
    /// Per operation: offset of its f32 state.
    state_off: [u32; MAX_OPS],
    /// Per operation: offset of its counters.
    count_off: [u32; MAX_OPS],
    /// Per operation: offset of its output frame(s) in the scratch.
    out_off: [u32; MAX_OPS],
    /// Per operation: width of its input frame.
    width: [u32; MAX_OPS],
    /// Per `PopAdd`: the index of its `Push`; per `Push`: its ring's capacity in frames.
    link: [u32; MAX_OPS],
    /// f32 state values per stream.
    pub state_len: usize,
    /// u32 counters per stream.
    pub counters_len: usize,
    /// f32 scratch values (one per step call, shared by streams stepped one after another).
    pub scratch_len: usize,
    /// Offset of the block scratch (the end of the scratch).
    block_scratch: usize,
    /// Values per output frame.
    pub d_output: usize,
    /// Input frames per period.
    pub period: usize,
    /// The network's look-ahead in input frames: output frame `p` is ready once input
    /// frame `p + delay` has arrived, for every `p` (and for some `p` not before).
    pub delay: usize,
}

/// The streaming state of one stream, in caller-provided buffers.
#[derive(Debug)]
pub struct NetState<'s> {
    pub values: &'s mut [f32],
    pub counters: &'s mut [u32],
}

/// A stepper over a [`NetConfig`], the [`NetPlan`] made from it, and its tensors.
pub struct Net<'n, 'a> {
    cfg: &'n NetConfig,
    plan: NetPlan,
    m: &'n dyn Tensors<'a>,
}

impl core::fmt::Debug for Net<'_, '_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Net")
            .field("cfg", self.cfg)
            .field("plan", &self.plan)
            .finish()
    }
}

impl<'n, 'a> Net<'n, 'a> {
    /// Validates and plans `cfg` ([`NetPlan::new`]); `m` holds its tensors, each checked
    /// against its operation's shape when a step reads it.
    pub fn new(cfg: &'n NetConfig, m: &'n dyn Tensors<'a>) -> Result<Self, FormatError> {
        Ok(Net {
            cfg,
            plan: NetPlan::new(cfg)?,
            m,
        })
    }

    /// The buffer sizes, period and delay.
    pub fn plan(&self) -> &NetPlan {
        &self.plan
    }

    /// The program.
    pub fn config(&self) -> &'n NetConfig {
        self.cfg
    }
}

// Counters of an operation: Conv [frames seen, saturating at its look-ahead];
// Down [frames in the current block]; Push [ring head, ring length, frames pushed
// (saturating)]; the model [input frames since the last period boundary].
const COUNTERS_CONV: usize = 1;
const COUNTERS_DOWN: usize = 1;
const COUNTERS_PUSH: usize = 2;

fn to_u32(v: usize) -> Result<u32, FormatError> {
    u32::try_from(v).map_err(|_| FormatError::DimensionOverflow)
}

impl NetPlan {
    /// Lays out state, counters and scratch for `cfg` (validated here), and runs its
    /// control flow for [`PLAN_PERIODS`] periods to size the skip rings and find the delay.
    pub fn new(cfg: &NetConfig) -> Result<NetPlan, FormatError> {
        let d_output = cfg.validate()? as usize;
        let ops = cfg.ops();
        let mut p = NetPlan {
            state_off: [0; MAX_OPS],
            count_off: [0; MAX_OPS],
            out_off: [0; MAX_OPS],
            width: [0; MAX_OPS],
            link: [0; MAX_OPS],
            state_len: 0,
            counters_len: 1,
            scratch_len: 0,
            block_scratch: 0,
            d_output,
            period: cfg.period() as usize,
            delay: 0,
        };
        // Widths, pairs, and the scratch: the input frame, then each operation's output.
        let mut w = cfg.d_input as usize;
        let mut scratch = w;
        let mut block_scratch = 0usize;
        let mut stack = [0usize; MAX_SKIPS];
        let mut depth = 0;
        for (i, op) in ops.iter().enumerate() {
            p.width[i] = to_u32(w)?;
            p.out_off[i] = to_u32(scratch)?;
            let out = match *op {
                Op::Push => {
                    stack[depth] = i;
                    depth += 1;
                    w
                }
                Op::PopAdd => {
                    depth -= 1;
                    p.link[i] = to_u32(stack[depth])?;
                    w
                }
                Op::Conv { .. } => w,
                Op::Block(b) => {
                    let s = usize::try_from(b.scratch_len()?)
                        .map_err(|_| FormatError::DimensionOverflow)?;
                    block_scratch = block_scratch.max(s);
                    w
                }
                Op::Down { c_out, .. } => {
                    w = c_out as usize;
                    w
                }
                Op::Up { c_out, r, .. } => {
                    w = c_out as usize;
                    w.checked_mul(r as usize)
                        .ok_or(FormatError::DimensionOverflow)?
                }
            };
            scratch = scratch
                .checked_add(out)
                .ok_or(FormatError::DimensionOverflow)?;
        }
        p.block_scratch = scratch;
        p.scratch_len = scratch
            .checked_add(block_scratch)
            .ok_or(FormatError::DimensionOverflow)?;
        // Skip rings: run the control flow, counting frames only.
        let mut sim = Sim {
            seen: [0; MAX_OPS],
            pos: [0; MAX_OPS],
            ring: [0; MAX_OPS],
            most: [0; MAX_OPS],
            inputs: 0,
            outputs: 0,
            delay: 0,
        };
        let frames = (p.period as u64) * PLAN_PERIODS as u64;
        for _ in 0..frames {
            sim.inputs += 1;
            sim.run(cfg, &p, 0)?;
        }
        sim.finish(cfg, &p)?;
        if sim.outputs != sim.inputs {
            return Err(bad("net emits a frame count other than its input's"));
        }
        p.delay = sim.delay as usize;
        // State and counters, now that the rings' capacities are known.
        let (mut st, mut cn) = (0usize, 1usize);
        for (i, op) in ops.iter().enumerate() {
            p.state_off[i] = to_u32(st)?;
            p.count_off[i] = to_u32(cn)?;
            let wi = p.width[i] as usize;
            let (vals, counts) = match *op {
                Op::Push => {
                    let cap = sim.most[i] as usize;
                    p.link[i] = to_u32(cap)?;
                    (cap.checked_mul(wi), COUNTERS_PUSH)
                }
                Op::Conv { k, .. } => (wi.checked_mul(k as usize - 1), COUNTERS_CONV),
                Op::Block(b) => (usize::try_from(b.state_len()?).ok(), 0),
                Op::Down { r, .. } => (wi.checked_mul(r as usize), COUNTERS_DOWN),
                _ => (Some(0), 0),
            };
            st = st
                .checked_add(vals.ok_or(FormatError::DimensionOverflow)?)
                .ok_or(FormatError::DimensionOverflow)?;
            cn += counts;
        }
        p.state_len = st;
        p.counters_len = cn;
        Ok(p)
    }

    /// Frames of look-ahead of operation `i` (a convolution's `k − 1 − pad`).
    fn lookahead(op: &Op) -> u32 {
        match *op {
            Op::Conv { k, pad, .. } => k.saturating_sub(1).saturating_sub(pad),
            _ => 0,
        }
    }
}

/// The control flow of [`Net`] with counts instead of values.
struct Sim {
    seen: [u32; MAX_OPS],
    pos: [u32; MAX_OPS],
    /// Frames in each Push's ring.
    ring: [u32; MAX_OPS],
    most: [u32; MAX_OPS],
    inputs: u64,
    outputs: u64,
    delay: u64,
}

impl Sim {
    fn run(&mut self, cfg: &NetConfig, p: &NetPlan, mut i: usize) -> Result<(), FormatError> {
        loop {
            let Some(op) = cfg.ops().get(i) else {
                // Output frame `outputs` is ready after `inputs` input frames.
                self.delay = self
                    .delay
                    .max((self.inputs - 1).saturating_sub(self.outputs));
                self.outputs += 1;
                return Ok(());
            };
            match *op {
                Op::Push => {
                    self.ring[i] += 1;
                    self.most[i] = self.most[i].max(self.ring[i]);
                }
                Op::PopAdd => {
                    let j = p.link[i] as usize;
                    self.ring[j] = self.ring[j]
                        .checked_sub(1)
                        .ok_or(bad("net skip frame missing"))?;
                }
                Op::Conv { .. } => {
                    if self.seen[i] < NetPlan::lookahead(op) {
                        self.seen[i] += 1;
                        return Ok(());
                    }
                }
                Op::Down { r, .. } => {
                    self.pos[i] += 1;
                    if self.pos[i] < r {
                        return Ok(());
                    }
                    self.pos[i] = 0;
                }
                Op::Up { r, .. } => {
                    for _ in 1..r {
                        self.run(cfg, p, i + 1)?;
                    }
                }
                Op::Block(_) => {}
            }
            i += 1;
        }
    }

    fn finish(&mut self, cfg: &NetConfig, p: &NetPlan) -> Result<(), FormatError> {
        for (i, op) in cfg.ops().iter().enumerate() {
            match *op {
                Op::Conv { .. } => {
                    for _ in 0..self.seen[i] {
                        self.run(cfg, p, i + 1)?;
                    }
                    self.seen[i] = 0;
                }
                Op::Down { .. } if self.pos[i] != 0 => {
                    return Err(bad("net stream does not end on a period"));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// A frame sink: called with each output frame, in order.
pub trait Sink {
    fn frame(&mut self, y: &[f32]) -> Result<(), StepError>;
    /// Operation `i` starts (`begin`) or has done its own work on a frame (its output
    /// goes on to the next operation after this call). For instrumentation (the Cortex-M
    /// image's per-layer instruction counts); does nothing by default.
    #[inline(always)]
    fn op(&mut self, i: usize, begin: bool) {
        let _ = (i, begin);
    }
}

impl<F: FnMut(&[f32]) -> Result<(), StepError>> Sink for F {
    fn frame(&mut self, y: &[f32]) -> Result<(), StepError> {
        self(y)
    }
}

struct Cx<'c, 's> {
    st: &'c mut NetState<'s>,
    scratch: &'c mut [f32],
}

impl Net<'_, '_> {
    /// Zeroes a stream's state (the start of a stream).
    pub fn reset(&self, st: &mut NetState<'_>) -> Result<(), StepError> {
        let (nv, nc) = (st.values.len(), st.counters.len());
        let v = st
            .values
            .get_mut(..self.plan.state_len)
            .ok_or(StepError::StateTooShort {
                needed: self.plan.state_len,
                got: nv,
            })?;
        v.fill(0.0);
        for (i, op) in self.cfg.ops().iter().enumerate() {
            if let Op::Block(b) = op {
                let off = self.plan.state_off[i] as usize;
                let n = b.state_len().map_err(|_| StepError::Internal)? as usize;
                b.init_state(v.get_mut(off..off + n).ok_or(StepError::Internal)?);
            }
        }
        st.counters
            .get_mut(..self.plan.counters_len)
            .ok_or(StepError::StateTooShort {
                needed: self.plan.counters_len,
                got: nc,
            })?
            .fill(0);
        Ok(())
    }

    fn check(&self, st: &NetState<'_>, scratch: &[f32]) -> Result<(), StepError> {
        let p = &self.plan;
        if st.values.len() < p.state_len {
            return Err(StepError::StateTooShort {
                needed: p.state_len,
                got: st.values.len(),
            });
        }
        if st.counters.len() < p.counters_len {
            return Err(StepError::StateTooShort {
                needed: p.counters_len,
                got: st.counters.len(),
            });
        }
        if scratch.len() < p.scratch_len {
            return Err(StepError::ScratchTooShort {
                needed: p.scratch_len,
                got: scratch.len(),
            });
        }
        Ok(())
    }

    /// Feeds one input frame (`x`: `d_input` values) and passes every output frame that
    /// becomes ready to `out`. A non-finite input value is refused before anything is
    /// computed (the state is unchanged); an overflow inside resets the stream
    /// ([`StepError::Overflow`]).
    pub fn feed(
        &self,
        st: &mut NetState<'_>,
        scratch: &mut [f32],
        x: &[f32],
        out: &mut impl Sink,
    ) -> Result<(), StepError> {
        self.check(st, scratch)?;
        let d = self.cfg.d_input as usize;
        if x.len() != d {
            return Err(StepError::InputLength {
                expected: d,
                got: x.len(),
            });
        }
        if let Some(i) = x.iter().position(|v| !v.is_finite()) {
            return Err(StepError::NonFiniteInput { index: i });
        }
        scratch[..d].copy_from_slice(x);
        st.counters[0] = (st.counters[0] + 1) % self.plan.period as u32;
        let mut cx = Cx {
            st: &mut *st,
            scratch,
        };
        let r = self.run(&mut cx, 0, 0, out);
        self.reset_on_overflow(st, r)
    }

    /// The non-finite policy of the model steps (ARCHITECTURE.md): an output frame that
    /// came out NaN or infinite (a finite input too large for f32 arithmetic overflowed
    /// inside) is not passed on; the stream is reset to its initial state and
    /// [`StepError::Overflow`] returned, so the next frame starts clean.
    fn reset_on_overflow(
        &self,
        st: &mut NetState<'_>,
        r: Result<(), StepError>,
    ) -> Result<(), StepError> {
        if r == Err(StepError::Overflow) {
            self.reset(st)?;
        }
        r
    }

    /// Ends the stream: pads the input with `end_pad` zero frames and then to a whole
    /// period, then lets every
    /// convolution take zeros as its missing future frames, in program order, passing the
    /// remaining output frames to `out`. The stream is then reset.
    pub fn finish(
        &self,
        st: &mut NetState<'_>,
        scratch: &mut [f32],
        out: &mut impl Sink,
    ) -> Result<(), StepError> {
        self.check(st, scratch)?;
        let d = self.cfg.d_input as usize;
        let mut pad = self.cfg.end_pad;
        while pad > 0 || st.counters[0] != 0 {
            pad = pad.saturating_sub(1);
            scratch[..d].fill(0.0);
            st.counters[0] = (st.counters[0] + 1) % self.plan.period as u32;
            let mut cx = Cx {
                st: &mut *st,
                scratch: &mut *scratch,
            };
            let r = self.run(&mut cx, 0, 0, out);
            self.reset_on_overflow(st, r)?;
        }
        for (i, op) in self.cfg.ops().iter().enumerate() {
            if let Op::Conv { .. } = *op {
                let c = self.plan.count_off[i] as usize;
                // The frames the conv still owes: the frames it has seen, up to its
                // look-ahead (the counter saturates there).
                let owed = st.counters[c];
                for _ in 0..owed {
                    let mut cx = Cx {
                        st: &mut *st,
                        scratch: &mut *scratch,
                    };
                    out.op(i, true);
                    self.conv(&mut cx, i, None)?;
                    out.op(i, false);
                    let o = self.plan.out_off[i] as usize;
                    let r = self.run(&mut cx, i + 1, o, out);
                    self.reset_on_overflow(st, r)?;
                }
                st.counters[c] = 0;
            }
        }
        self.reset(st)
    }

    /// Runs operation `i` and onward on the frame at `scratch[at..]` (a loop; an `Up`
    /// recurses for all but its last frame, so the depth is the number of `Up`s).
    fn run(
        &self,
        cx: &mut Cx<'_, '_>,
        mut i: usize,
        mut at: usize,
        out: &mut impl Sink,
    ) -> Result<(), StepError> {
        let p = &self.plan;
        let k = self.m.kernels();
        loop {
            let Some(op) = self.cfg.ops().get(i) else {
                let y = &cx.scratch[at..at + p.d_output];
                if y.iter().any(|v| !v.is_finite()) {
                    return Err(StepError::Overflow);
                }
                return out.frame(y);
            };
            let w = p.width[i] as usize;
            let o = p.out_off[i] as usize;
            let li = Some(i as u16);
            out.op(i, true);
            match *op {
                Op::Push => {
                    let cap = p.link[i] as usize;
                    let c = p.count_off[i] as usize;
                    let (head, len) = (cx.st.counters[c] as usize, cx.st.counters[c + 1] as usize);
                    if len >= cap {
                        return Err(StepError::Internal);
                    }
                    let s = p.state_off[i] as usize + ((head + len) % cap) * w;
                    cx.st.values[s..s + w].copy_from_slice(&cx.scratch[at..at + w]);
                    cx.st.counters[c + 1] += 1;
                    cx.scratch.copy_within(at..at + w, o);
                }
                Op::PopAdd => {
                    let j = p.link[i] as usize;
                    let cap = p.link[j] as usize;
                    let c = p.count_off[j] as usize;
                    let (head, len) = (cx.st.counters[c] as usize, cx.st.counters[c + 1]);
                    if len == 0 || cap == 0 {
                        return Err(StepError::Internal);
                    }
                    let s = p.state_off[j] as usize + head * w;
                    cx.st.counters[c] = ((head + 1) % cap) as u32;
                    cx.st.counters[c + 1] = len - 1;
                    cx.scratch.copy_within(at..at + w, o);
                    for (y, &v) in cx.scratch[o..o + w].iter_mut().zip(&cx.st.values[s..s + w]) {
                        *y += v;
                    }
                }
                Op::Conv { .. } => {
                    if !self.conv(cx, i, Some(at))? {
                        out.op(i, false);
                        return Ok(());
                    }
                }
                Op::Block(b) => {
                    cx.scratch.copy_within(at..at + w, o);
                    let n = b.state_len().map_err(|_| StepError::Internal)? as usize;
                    let s = p.state_off[i] as usize;
                    let (front, bs) = cx.scratch.split_at_mut(p.block_scratch);
                    b.step(
                        blocks::Layer { m: self.m, li },
                        &mut front[o..o + w],
                        &mut [&mut cx.st.values[s..s + n]],
                        bs,
                        &mut NoProbe,
                    )?;
                }
                Op::Down { r, c_out, .. } => {
                    let c = p.count_off[i] as usize;
                    let pos = cx.st.counters[c] as usize;
                    let s = p.state_off[i] as usize;
                    cx.st.values[s + pos * w..s + (pos + 1) * w]
                        .copy_from_slice(&cx.scratch[at..at + w]);
                    if pos + 1 < r as usize {
                        cx.st.counters[c] += 1;
                        out.op(i, false);
                        return Ok(());
                    }
                    cx.st.counters[c] = 0;
                    let x = &cx.st.values[s..s + r as usize * w];
                    let y = &mut cx.scratch[o..o + c_out as usize];
                    linear(k, self.m.w(li, Role::NetDown)?, x, None, y)?;
                }
                Op::Up { r, c_out, .. } => {
                    let co = c_out as usize;
                    let (front, back) = cx.scratch.split_at_mut(o);
                    let y = &mut back[..r as usize * co];
                    linear(k, self.m.w(li, Role::NetUp)?, &front[at..at + w], None, y)?;
                    out.op(i, false);
                    for j in 0..r as usize - 1 {
                        self.run(cx, i + 1, o + j * co, out)?;
                    }
                    i += 1;
                    at = o + (r as usize - 1) * co;
                    continue;
                }
            }
            out.op(i, false);
            i += 1;
            at = o;
        }
    }

    /// The convolution `i` on a new frame at `scratch[at..]`, or on a zero frame past the
    /// end of its signal (`None`): shifts it into the history and computes the output frame
    /// `look-ahead` frames back into its output. Whether that frame exists (not during the
    /// warm-up of a new frame's first `look-ahead` frames).
    fn conv(&self, cx: &mut Cx<'_, '_>, i: usize, at: Option<usize>) -> Result<bool, StepError> {
        let p = &self.plan;
        let op = self.cfg.ops()[i];
        let Op::Conv { k, .. } = op else {
            return Err(StepError::Internal);
        };
        let (w, o) = (p.width[i] as usize, p.out_off[i] as usize);
        let kk = k as usize;
        let h = kk - 1;
        let li = Some(i as u16);
        let wt = self.m.f32s(li, Role::ConvW)?;
        let bias = self.m.f32s(li, Role::ConvB)?;
        if wt.len() != w * kk || bias.len() != w {
            return Err(StepError::Internal);
        }
        let s = p.state_off[i] as usize;
        let hist = &mut cx.st.values[s..s + w * h];
        let (front, back) = cx.scratch.split_at_mut(o);
        for (c, y) in back[..w].iter_mut().enumerate() {
            let xn = at.map_or(0.0, |a| front[a + c]);
            let wc = &wt[c * kk..(c + 1) * kk];
            let hc = &mut hist[c * h..(c + 1) * h];
            let mut acc = bias[c];
            for (hv, wv) in hc.iter().zip(wc) {
                acc += hv * wv;
            }
            acc += xn * wc[h];
            if h > 0 {
                hc.copy_within(1.., 0);
                hc[h - 1] = xn;
            }
            *y = acc;
        }
        let cnt = p.count_off[i] as usize;
        if at.is_some() && cx.st.counters[cnt] < NetPlan::lookahead(&op) {
            cx.st.counters[cnt] += 1;
            return Ok(false);
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests;
