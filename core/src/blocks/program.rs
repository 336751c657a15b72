//! The wire form of a multi-rate network (format 1.7, [`crate::Arch::Net`]): its program of
//! operations, checked and measured here; [`crate::net`] plans and streams it.

use serde::{Deserialize, Serialize};

use crate::blocks::{self, Block};
use crate::error::FormatError;
use crate::list::List;
use crate::role::{Role, RoleList};

/// Most operations in a program.
pub const MAX_OPS: usize = 64;
/// Deepest skip stack.
pub const MAX_SKIPS: usize = 16;
/// Largest resampling factor.
pub const MAX_FACTOR: u32 = 64;
/// Largest period (product of the resampling factors down to the coarsest level): bounds
/// the control-flow run of `net::NetPlan::new` (parse-time work on a microcontroller).
pub const MAX_PERIOD: u32 = 4096;

/// One operation of a [`NetConfig`] program.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Op {
    Push,
    PopAdd,
    /// Depthwise conv over time with bias ([`Role::ConvW`] `[channels, k]`, [`Role::ConvB`]
    /// `[channels]`): `y[t] = b + Σ_j w[j]·x[t − pad + j]`, zero outside the signal.
    Conv {
        channels: u32,
        k: u32,
        pad: u32,
    },
    Block(Block),
    /// [`Role::NetDown`] `[c_out, r·c_in]`.
    Down {
        c_in: u32,
        c_out: u32,
        r: u32,
    },
    /// [`Role::NetUp`] `[r·c_out, c_in]`.
    Up {
        c_in: u32,
        c_out: u32,
        r: u32,
    },
}

/// A multi-rate network: input width, end padding, then its program.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NetConfig {
    /// Values per input frame (1 for a waveform).
    pub d_input: u32,
    /// Zero frames a stream's end is padded with at least, before the padding to a whole
    /// period ([`Net::finish`]): 1 for aTENNuate, whose reference pads `256 − n mod 256`
    /// samples (a whole period when `n` is already a multiple).
    pub end_pad: u32,
    /// Input frames per second of the signal the network was trained on (16,000 for
    /// aTENNuate's waveform); 0 when it has no fixed rate. A host refuses audio at another
    /// rate rather than running it silently.
    pub sample_rate: u32,
    pub ops: List<Op, MAX_OPS>,
}

pub(crate) fn bad(what: &'static str) -> FormatError {
    FormatError::BadConfig(what)
}

impl NetConfig {
    pub fn ops(&self) -> &[Op] {
        self.ops.as_slice()
    }

    /// Checks the program: widths agree from each operation to the next, every `PopAdd`
    /// meets a `Push` of its rate and width, the rate ends where it began, and every kind
    /// and size is valid. Returns the output width.
    pub fn validate(&self) -> Result<u32, FormatError> {
        blocks::pos(self.d_input, "net d_input must be in 1..=2^24")?;
        if self.end_pad > 1 << 20 {
            return Err(bad("net end_pad beyond 2^20"));
        }
        let (mut w, mut f) = (self.d_input, 1u64);
        let mut skips = [(0u32, 0u64); MAX_SKIPS];
        let mut depth = 0usize;
        for op in self.ops() {
            match *op {
                Op::Push => {
                    *skips.get_mut(depth).ok_or(bad("net skips nest too deep"))? = (w, f);
                    depth += 1;
                }
                Op::PopAdd => {
                    depth = depth
                        .checked_sub(1)
                        .ok_or(bad("net PopAdd without a Push"))?;
                    if skips[depth] != (w, f) {
                        return Err(bad("net PopAdd meets a skip of another rate or width"));
                    }
                }
                Op::Conv { channels, k, pad } => {
                    if channels != w {
                        return Err(bad("net conv width differs from its input"));
                    }
                    if k == 0 || k > blocks::MAX_D_CONV || pad >= k {
                        return Err(bad("net conv needs 1 <= k <= 16 and pad < k"));
                    }
                }
                Op::Block(b) => {
                    b.validate()?;
                    if b.d_model() != w {
                        return Err(bad("net block width differs from its input"));
                    }
                }
                Op::Down { c_in, c_out, r } | Op::Up { c_in, c_out, r } => {
                    blocks::pos(c_out, "net resampling width must be in 1..=2^24")?;
                    if c_in != w {
                        return Err(bad("net resampling width differs from its input"));
                    }
                    if r == 0 || r > MAX_FACTOR {
                        return Err(bad("net resampling factor must be in 1..=64"));
                    }
                    f = if matches!(op, Op::Down { .. }) {
                        f.checked_mul(r as u64)
                            .ok_or(FormatError::DimensionOverflow)?
                    } else {
                        if f % r as u64 != 0 {
                            return Err(bad("net Up below the input rate"));
                        }
                        f / r as u64
                    };
                    if f > MAX_PERIOD as u64 {
                        return Err(bad("net resampling period beyond 4096"));
                    }
                    w = c_out;
                }
            }
        }
        if depth != 0 {
            return Err(bad("net Push without a PopAdd"));
        }
        if f != 1 {
            return Err(bad("net output rate differs from its input rate"));
        }
        Ok(w)
    }

    /// Input frames per frame of the coarsest level: the stream is padded to a multiple of
    /// it at its end (call after [`Self::validate`]).
    pub fn period(&self) -> u32 {
        let (mut f, mut most) = (1u32, 1u32);
        for op in self.ops() {
            match *op {
                Op::Down { r, .. } => f = f.saturating_mul(r),
                Op::Up { r, .. } => f /= r.max(1),
                _ => {}
            }
            most = most.max(f);
        }
        most
    }

    /// Multiply-accumulates per period of input frames ([`Self::period`]): each
    /// operation's per-frame work (matrices from their shapes, a convolution's taps, a
    /// block kind's own update) times the frames it runs on in a period (call after
    /// [`Self::validate`]).
    pub fn macs_per_period(&self) -> u64 {
        let mut total = 0u64;
        self.macs_by_op(|_, _, m| total += m);
        total
    }

    /// [`Self::macs_per_period`] operation by operation: `f(i, level, macs)` with the
    /// operation's level (input frames per frame of its input: 1 at the input rate) and its
    /// multiply-accumulates per period (call after [`Self::validate`]).
    pub fn macs_by_op(&self, mut each: impl FnMut(usize, u64, u64)) {
        let period = self.period() as u64;
        let mut f = 1u64;
        for (i, op) in self.ops().iter().enumerate() {
            // Frames of this operation's input per period.
            let frames = period / f.max(1);
            let mut per = 0u64;
            self.op_tensors(i, |role, (rank, dims)| {
                if role.is_matrix() && rank == 2 {
                    per += dims[0] as u64 * dims[1] as u64;
                }
            });
            per += match *op {
                Op::Conv { channels, k, .. } => channels as u64 * k as u64,
                Op::Block(b) => b.macs(),
                _ => 0,
            };
            // A Down's matrix runs once per r input frames, an Up's once per input frame.
            let macs = match *op {
                Op::Down { r, .. } => per * frames / r as u64,
                _ => per * frames,
            };
            each(i, f, macs);
            match *op {
                Op::Down { r, .. } => f = f.saturating_mul(r as u64),
                Op::Up { r, .. } => f /= (r as u64).max(1),
                _ => {}
            }
        }
    }

    /// Calls `f` with each tensor of operation `i` (role and shape: rank, dimensions), in
    /// canonical order.
    pub fn op_tensors(&self, i: usize, mut f: impl FnMut(Role, (u8, [u32; 4]))) {
        let mut l = RoleList::new();
        self.roles(i, &mut l);
        for &r in &l.roles[..l.len] {
            if let Some(sh) = self.shape(i, r) {
                f(r, sh);
            }
        }
    }

    /// The tensors of operation `i`, in canonical order.
    pub(crate) fn roles(&self, i: usize, l: &mut RoleList) {
        match self.ops().get(i) {
            Some(Op::Conv { .. }) => {
                l.push_if(true, Role::ConvW);
                l.push_if(true, Role::ConvB);
            }
            Some(Op::Block(b)) => b.roles(l),
            Some(Op::Down { .. }) => l.push_if(true, Role::NetDown),
            Some(Op::Up { .. }) => l.push_if(true, Role::NetUp),
            _ => {}
        }
    }

    /// The shape of operation `i`'s tensor `role`.
    pub(crate) fn shape(&self, i: usize, role: Role) -> Option<(u8, [u32; 4])> {
        let s2 = |a: u32, b: u32| Some((2, [a, b, 0, 0]));
        match (*self.ops().get(i)?, role) {
            (Op::Conv { channels, k, .. }, Role::ConvW) => s2(channels, k),
            (Op::Conv { channels, .. }, Role::ConvB) => Some((1, [channels, 0, 0, 0])),
            (Op::Block(b), r) => b.shape(r),
            (Op::Down { c_in, c_out, r }, Role::NetDown) => s2(c_out, r.checked_mul(c_in)?),
            (Op::Up { c_in, c_out, r }, Role::NetUp) => s2(r.checked_mul(c_out)?, c_in),
            _ => None,
        }
    }
}
