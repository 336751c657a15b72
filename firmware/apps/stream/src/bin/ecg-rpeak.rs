//! `models/ecg-rpeak.tssm` on the embedded stretch of MIT-BIH record 100 (see the crate docs).

#![no_std]
#![no_main]

tinyssm_fw_stream::stream_app!(ecg "ecg-rpeak");
