//! `models/fsdd-s4d-int.tssm` (integer-only) on the embedded FSDD clips, as 16-bit PCM (see the
//! crate docs).

#![no_std]
#![no_main]

tinyssm_fw_stream::stream_app!(int "fsdd-s4d-int");
