//! `models/fsdd-s4d-small-int8.tssm` on the embedded FSDD clip, every `step_sample` between markers
//! (see the crate docs).

#![no_std]
#![no_main]

tinyssm_fw_bench::model_app!("fsdd-s4d-small-int8");
