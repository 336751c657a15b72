//! Fuzz target `pth`: the body is `tinyssm_tools::fuzzing::pth` (shared with the stable
//! replay of the committed corpus, `tests/tests/fuzz_corpus.rs`).
//! Run: `cd fuzz && cargo +nightly fuzz run pth corpus/pth -- -max_total_time=300`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tinyssm_tools::fuzzing::pth(data));
