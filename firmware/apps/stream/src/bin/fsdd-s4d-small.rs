//! `models/fsdd-s4d-small.tssm` on the embedded FSDD clips (see the crate docs).

#![no_std]
#![no_main]

tinyssm_fw_stream::stream_app!("fsdd-s4d-small");
