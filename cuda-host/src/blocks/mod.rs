//! The batch crate's block kinds: what its backends implement of each core block kind, one
//! file per kind, and this crate's one registration point (`batch_kinds!` below: the only
//! place in `tinyssm-cuda` that names a [`Block`] variant).
//!
//! A kind's [`BatchKind`] implementation owns everything this crate knows about it: its
//! support-matrix entry, the CUDA float and integer step kernels' parameters and per-layer
//! weight packing, and its whole-sequence forward on a [`Backend`] for `tinyssm verify`.
//! The paths themselves (`cuda::step`, `cuda::step_int`, `verify`) take a [`VectorModel`]
//! and reach the kind through [`with_kind`], never through a `match` of their own.
//!
//! Adding a kind to the batch crate: a file here implementing [`BatchKind`] (every method
//! has a default that refuses with the kind and the path named), and one line in
//! `batch_kinds!`.

use tinyssm_core::stack::{FinalNorm, Out, Stem};
use tinyssm_core::{Block, Model};

use crate::backend::{Backend, BackendError, Result};
use crate::cuda::step::{Packer, StepParams};
use crate::cuda::step_int::{IntPacker, StepIntParams};
use crate::support::BatchSupport;

pub mod mamba1;
pub mod mamba2;
pub mod s4d;

/// A model as the batch paths take it: one block configuration in every layer, between a
/// linear encoder input stage and a linear decoder head (the sensor and audio models).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VectorModel {
    pub block: Block,
    pub n_layers: usize,
    /// The encoder's input width.
    pub d_in: usize,
    /// The decoder's output width.
    pub d_out: usize,
    /// The norm before the decoder.
    pub norm: FinalNorm,
}

impl VectorModel {
    /// `m` as a vector model, or `BackendError::Unavailable` naming what the batch paths do
    /// not run (a token model, an LM head, a layer table of several configurations).
    pub fn of(m: &Model<'_>) -> Result<Self> {
        let s = m.stack();
        let blocks = s.layers.blocks.as_slice();
        let [block] = blocks else {
            return Err(BackendError::Unavailable(format!(
                "the batch paths run models of one block configuration in every layer; this \
                 stack has {}",
                blocks.len()
            )));
        };
        let Stem::Encoder { d_input } = s.stem else {
            return Err(BackendError::Unavailable(
                "the batch paths run vector models (a linear encoder input stage); this one \
                 takes tokens"
                    .into(),
            ));
        };
        let Out::Decoder { d_output } = s.head.out else {
            return Err(BackendError::Unavailable(
                "the batch paths run vector models (a linear decoder head); this one has an \
                 LM head"
                    .into(),
            ));
        };
        Ok(Self {
            block: *block,
            n_layers: s.n_layers as usize,
            d_in: d_input as usize,
            d_out: d_output as usize,
            norm: s.head.norm,
        })
    }
}

/// The layout a step kernel needs from a kind: the kernel, its weight slots per layer, the
/// state floats (or words) per layer and stream, and its shared-memory footprint (float
/// path: floats; integer path: bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepLayout {
    pub kernel: &'static str,
    pub per_layer: usize,
    pub state_per_layer: usize,
    pub smem: usize,
}

/// Every step output per stream and each layer's state after each stream's last step.
pub type BlobOut = (Vec<Vec<f32>>, Vec<Vec<Vec<f32>>>);

fn missing(kind: &str, what: &str) -> BackendError {
    BackendError::Unavailable(format!("{what} has no implementation of block kind {kind}"))
}

/// One core block kind as the batch crate runs it. `Self` is the kind's core block
/// configuration (e.g. [`tinyssm_core::blocks::s4d::S4dBlock`]).
pub trait BatchKind {
    /// The core kind's name ([`Block::name`]).
    const NAME: &'static str;
    /// This crate's coverage of the kind (the batch columns of `tinyssm support`).
    const SUPPORT: BatchSupport;

    /// The float step kernel for a vector model of this block: sets the kind's fields of
    /// `p` (dimensions, flags, eps) and returns the layout. The final norm the kernel
    /// applies must be `v.norm`.
    fn step_layout(&self, v: &VectorModel, p: &mut StepParams) -> Result<StepLayout> {
        let _ = (v, p);
        Err(missing(Self::NAME, "the CUDA step path"))
    }
    /// Packs layer `layer`'s weights into the float step kernel's slots `base..`.
    fn step_pack_layer(&self, pk: &mut Packer<'_>, base: usize, layer: u16) -> Result<()> {
        let _ = (pk, base, layer);
        Err(missing(Self::NAME, "the CUDA step path"))
    }
    /// As [`Self::step_layout`], for the integer step kernel (integer-only models).
    fn step_int_layout(&self, v: &VectorModel, p: &mut StepIntParams) -> Result<StepLayout> {
        let _ = (v, p);
        Err(missing(Self::NAME, "the CUDA integer step path"))
    }
    /// As [`Self::step_pack_layer`], for the integer step kernel.
    fn step_int_pack_layer(&self, pk: &mut IntPacker<'_>, base: usize, layer: u16) -> Result<()> {
        let _ = (pk, base, layer);
        Err(missing(Self::NAME, "the CUDA integer step path"))
    }
    /// The whole model over `batch = lens.len()` padded streams (`[batch, time, d_in]`) with
    /// the backend's training ops (whole-sequence scans), for `tinyssm verify --path scan`.
    fn blob_forward<B: Backend>(
        &self,
        be: &B,
        m: &Model<'_>,
        v: &VectorModel,
        x: &[f32],
        time: usize,
        lens: &[usize],
    ) -> Result<BlobOut> {
        let _ = (be, m, v, x, time, lens);
        Err(missing(Self::NAME, "verify's scan path"))
    }
}

/// An operation generic over the block kind, run by [`with_kind`] on a block's kind.
pub trait KindFn {
    type Out;
    fn call<K: BatchKind>(self, kind: &K) -> Self::Out;
}

/// The registration point: each core block kind this crate implements, with its
/// configuration type. Generates [`with_kind`] and [`KINDS`].
macro_rules! batch_kinds {
    ($($var:ident => $ty:ty;)*) => {
        /// `f` on `block`'s kind, or `None` for a kind this crate does not implement.
        pub fn with_kind<F: KindFn>(block: &Block, f: F) -> Option<F::Out> {
            #[allow(unreachable_patterns)]
            match block {
                $(Block::$var(b) => Some(f.call::<$ty>(b)),)*
                _ => None,
            }
        }

        /// The kinds this crate implements: name and coverage, in registration order.
        pub const KINDS: &[(&str, BatchSupport)] =
            &[$((<$ty as BatchKind>::NAME, <$ty as BatchKind>::SUPPORT),)*];
    };
}

batch_kinds! {
    S4d => tinyssm_core::blocks::s4d::S4dBlock;
    Mamba1 => tinyssm_core::blocks::mamba1::Mamba1Block;
    Mamba2 => tinyssm_core::blocks::mamba2::Mamba2Block;
}

/// [`with_kind`], a kind this crate does not know being `BackendError::Unavailable` for
/// `what`.
pub fn run_kind<T, F: KindFn<Out = Result<T>>>(block: &Block, what: &str, f: F) -> Result<T> {
    with_kind(block, f).unwrap_or_else(|| Err(missing(block.name(), what)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_batch_kind_is_a_core_kind_once() {
        for (i, (name, _)) in KINDS.iter().enumerate() {
            assert!(
                tinyssm_core::blocks::KINDS.iter().any(|k| k.name == *name),
                "{name} is not a core block kind"
            );
            assert!(!KINDS[..i].iter().any(|(n, _)| n == name), "{name} twice");
        }
    }
}
