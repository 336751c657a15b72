//! Fuzzes the rwkv.cpp file reader: arbitrary bytes never panic.
//! Run: `cd fuzz && cargo +nightly fuzz run rwkv_cpp -- -max_total_time=300`
//! (seed corpus: the files in `$TINYSSM_DATA/rwkv-tiny`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tinyssm_tools::import::rwkv_cpp::RwkvCppFile;

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = RwkvCppFile::parse(data, std::path::Path::new("fuzz")) {
        let _ = f.version();
        let (v, d) = (f.n_vocab as usize, f.n_embed as usize);
        let _ = f.get("emb.weight", &[v, d]);
    }
});
