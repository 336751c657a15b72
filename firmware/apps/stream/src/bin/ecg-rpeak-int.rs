//! `models/ecg-rpeak-int.tssm` (integer-only) on the embedded stretch of MIT-BIH record
//! 100, in the model's input format (see the crate docs).

#![no_std]
#![no_main]

tinyssm_fw_stream::stream_app!(ecg_int "ecg-rpeak-int");
