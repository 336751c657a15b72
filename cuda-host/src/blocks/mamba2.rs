//! Mamba-2 in the batch crate: the backends' `ssd_scan` (forward and backward) only; no
//! trainer model, step kernel or verify forward yet (each refuses with the kind named).

use tinyssm_core::blocks::mamba2::Mamba2Block;

use super::BatchKind;
use crate::support::BatchSupport;

impl BatchKind for Mamba2Block {
    const NAME: &'static str = "mamba2";
    const SUPPORT: BatchSupport = BatchSupport {
        train: false,
        scan: Some("ssd_scan"),
        step: false,
        step_int: false,
    };
}
