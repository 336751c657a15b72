//! What the batch crate covers of each block kind: the batch columns of the support matrix
//! (`tinyssm support`). The trainer's configuration check reads [`TRAIN_ARCHES`];
//! `tests/tests/support.rs` checks [`STEP_KINDS`] and [`STEP_INT_KINDS`] against what the
//! CUDA step path's packers accept, model by model.

/// The trainer's models: `model.arch` of a training configuration, and its block kind.
pub const TRAIN_ARCHES: &[(&str, &str)] = &[("s4d", "s4d"), ("mamba", "mamba1")];

/// Block kinds whose whole-sequence scan the batch backends implement (forward and
/// backward, on the CPU backend and the CUDA backend), with the backend op.
pub const SCAN_KINDS: &[(&str, &str)] = &[
    ("s4d", "s4d_scan"),
    ("mamba1", "selective_scan"),
    ("mamba2", "ssd_scan"),
];

/// Block kinds the CUDA step path (`cuda::step`: the core's reference step per stream)
/// packs, in vector models (encoder input stage, decoder head).
pub const STEP_KINDS: &[&str] = &["s4d", "mamba1"];

/// Block kinds the CUDA integer step path (`cuda::step_int`) packs, in integer-only
/// vector models.
pub const STEP_INT_KINDS: &[&str] = &["s4d", "mamba1"];

/// The batch crate's coverage of one block kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSupport {
    /// `tinyssm train` builds and trains it (CPU or CUDA backend).
    pub train: bool,
    /// The backends' whole-sequence scan op (training, `verify --path scan`).
    pub scan: Option<&'static str>,
    /// The CUDA float step path (`verify --path step`).
    pub step: bool,
    /// The CUDA integer step path (`verify` of integer-only models).
    pub step_int: bool,
}

/// The coverage of block kind `kind` (a core block kind name).
pub fn for_kind(kind: &str) -> BatchSupport {
    BatchSupport {
        train: TRAIN_ARCHES.iter().any(|&(_, k)| k == kind),
        scan: SCAN_KINDS
            .iter()
            .find(|&&(k, _)| k == kind)
            .map(|&(_, op)| op),
        step: STEP_KINDS.contains(&kind),
        step_int: STEP_INT_KINDS.contains(&kind),
    }
}
