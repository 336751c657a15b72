//! Fuzzes `Model::parse` (and, when a blob parses, a few steps) with arbitrary bytes.
//! Run: `cd fuzz && cargo +nightly fuzz run parse -- -max_total_time=300`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tinyssm_core::{Aligned, Input, Model};

const MAX: usize = 1 << 16;

fuzz_target!(|data: &[u8]| {
    if data.len() > MAX {
        return;
    }
    // Copy into a 16-byte aligned buffer, as a loader or `include_model!` provides.
    let mut buf = Box::new(Aligned([0u8; MAX]));
    buf.0[..data.len()].copy_from_slice(data);
    let blob = &buf.0[..data.len()];
    for parsed in [Model::parse(blob), Model::parse_skip_crc(blob)] {
        if let Ok(m) = parsed {
            if m.state_len() > 1 << 20 || m.scratch_len() > 1 << 20 {
                continue;
            }
            if m.int_io().is_some() {
                let mut st = vec![0i32; m.state_len()];
                let mut sc = vec![0i32; m.scratch_len()];
                let mut out = vec![0i32; m.d_output()];
                let x = vec![1000i16; m.d_input()];
                let fe = m.front_end_int();
                for t in 0..2i16 {
                    let _ = m.step_int(&x, &mut st, &mut sc, &mut out);
                    if let Some(fe) = &fe {
                        let _ = m.step_sample_int(fe, t * 9000, &mut st, &mut sc, &mut out);
                    }
                }
                continue;
            }
            let mut st = vec![0f32; m.state_len()];
            let mut sc = vec![0f32; m.scratch_len()];
            let mut out = vec![0f32; m.d_output()];
            let x = vec![0.25f32; m.d_input()];
            for t in 0..2u32 {
                let input = if m.vocab_size().is_some() {
                    Input::Token(t)
                } else {
                    Input::Vector(&x)
                };
                let _ = m.step(input, &mut st, &mut sc, &mut out);
            }
        }
    }
});
