//! `models/fsdd-s4d-int8.tssm` on the embedded FSDD clip (see the crate docs).

#![no_std]
#![no_main]

tinyssm_fw_stream::stream_app!("fsdd-s4d-int8");
