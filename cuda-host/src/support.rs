//! What the batch crate covers of each block kind: the batch columns of the support matrix
//! (`tinyssm support`), read from each kind's [`crate::blocks::BatchKind::SUPPORT`]. The
//! trainer's configuration check reads [`TRAIN_ARCHES`]; `tests/tests/support.rs` checks
//! the step columns against what the CUDA step path's packers accept, model by model.

/// The trainer's models: `model.arch` of a training configuration, and its block kind.
pub const TRAIN_ARCHES: &[(&str, &str)] = &[("s4d", "s4d"), ("mamba", "mamba1")];

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

/// The coverage of block kind `kind` (a core block kind name): its entry in the batch
/// crate's registration ([`crate::blocks::KINDS`]), or nothing.
pub fn for_kind(kind: &str) -> BatchSupport {
    crate::blocks::KINDS
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or(BatchSupport::NONE, |&(_, s)| s)
}

impl BatchSupport {
    /// No batch path.
    pub const NONE: BatchSupport = BatchSupport {
        train: false,
        scan: None,
        step: false,
        step_int: false,
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trainer_builds_exactly_the_kinds_marked_trainable() {
        for (name, s) in crate::blocks::KINDS {
            assert_eq!(
                s.train,
                TRAIN_ARCHES.iter().any(|&(_, k)| k == *name),
                "{name}"
            );
        }
        for (_, k) in TRAIN_ARCHES {
            assert!(for_kind(k).train, "{k}");
        }
    }
}
