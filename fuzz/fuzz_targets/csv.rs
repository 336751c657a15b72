//! Fuzz target `csv`: the body is `tinyssm_tools::fuzzing::csv` (shared with the stable
//! replay of the committed corpus, `tests/tests/fuzz_corpus.rs`).
//! Run: `cd fuzz && cargo +nightly fuzz run csv corpus/csv -- -max_total_time=300`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tinyssm_tools::fuzzing::csv(data));
