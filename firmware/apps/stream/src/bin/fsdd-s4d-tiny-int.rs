//! `models/fsdd-s4d-tiny-int.tssm` (integer-only, small enough for the micro:bit's 16 KB of
//! RAM) on the embedded FSDD clips (see the crate docs).

#![no_std]
#![no_main]

tinyssm_fw_stream::stream_app!(int "fsdd-s4d-tiny-int");
