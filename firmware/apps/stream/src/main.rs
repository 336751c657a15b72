//! `stream`: the shipped spoken-digit model hears one FSDD recording, sample by sample,
//! on the device.
//!
//! The model blob (16-byte aligned, [`tinyssm_core::include_model!`]) and the clip (f32
//! samples) are embedded at build time (see `build.rs`). Every sample goes through
//! [`Model::step_sample`] with [`Kernels::Reference`]; at the end the app prints, over
//! semihosting, the bits of every output of the last frame and FNV-1a checksums of the
//! input, of every frame's outputs and of the final state, then exits 0. Any error, panic
//! or fault exits non-zero. `tests/tests/qemu_fsdd.rs` compares all of it, bit for bit,
//! with the host core.

#![no_std]
#![no_main]
#![deny(clippy::undocumented_unsafe_blocks)]

use tinyssm_board::{entry, exit, println};
use tinyssm_core::{include_model, Aligned, Kernels, Model};

mod config {
    include!(concat!(env!("OUT_DIR"), "/config.rs"));
}
use config::{CLIP, D_OUTPUT, MODEL_CRC32, MODEL_NAME, N_SAMPLES, SCRATCH_LEN, STATE_LEN};

static BLOB: &Aligned<[u8]> = include_model!(env!("TINYSSM_FW_MODEL_PATH"));
static INPUT: &Aligned<[u8]> = include_model!(concat!(env!("OUT_DIR"), "/input.f32"));

/// FNV-1a (32-bit) over the little-endian bytes of f32 bit patterns.
#[derive(Clone, Copy)]
struct Fnv(u32);

impl Fnv {
    const fn new() -> Self {
        Fnv(0x811c_9dc5)
    }
    fn f32s(mut self, xs: &[f32]) -> Self {
        for x in xs {
            for b in x.to_bits().to_le_bytes() {
                self.0 = (self.0 ^ b as u32).wrapping_mul(0x0100_0193);
            }
        }
        self
    }
}

#[entry]
fn main() -> ! {
    // cortex-m-rt turns these into `&'static mut` borrows, taken once, before anything
    // else runs: no `static mut` is ever touched directly.
    static mut STATE: [f32; STATE_LEN] = [0.0; STATE_LEN];
    static mut SCRATCH: [f32; SCRATCH_LEN] = [0.0; SCRATCH_LEN];
    let state: &'static mut [f32; STATE_LEN] = STATE;
    let scratch: &'static mut [f32; SCRATCH_LEN] = SCRATCH;
    exit(run(state, scratch))
}

fn run(state: &mut [f32], scratch: &mut [f32]) -> bool {
    println!(
        "tinyssm stream on {}: {MODEL_NAME} ({} bytes) on {CLIP} ({N_SAMPLES} samples)",
        tinyssm_board::BOARD,
        BLOB.0.len()
    );
    let model = match Model::parse(&BLOB.0) {
        Ok(m) => m.with_kernels(Kernels::Reference),
        Err(e) => {
            println!("error: model: {e}");
            return false;
        }
    };
    if model.crc32() != MODEL_CRC32 {
        println!(
            "error: model crc {:#010x}, built for {MODEL_CRC32:#010x}",
            model.crc32()
        );
        return false;
    }
    if let Err(e) = model.reset(state) {
        println!("error: reset: {e}");
        return false;
    }
    let mut out = [0f32; D_OUTPUT];
    let mut input = Fnv::new();
    let mut outputs = Fnv::new();
    let mut frames = 0u32;
    for chunk in INPUT.0.chunks_exact(4) {
        let x = f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        input = input.f32s(&[x]);
        match model.step_sample(x, state, scratch, &mut out) {
            Ok(true) => {
                frames += 1;
                outputs = outputs.f32s(&out);
            }
            Ok(false) => {}
            Err(e) => {
                println!("error: step: {e}");
                return false;
            }
        }
    }
    let final_state = Fnv::new().f32s(state);
    let all = Fnv(outputs.0).f32s(state);
    println!("crc32 {:#010x}", model.crc32());
    println!("samples {}", INPUT.0.len() / 4);
    println!("frames {frames}");
    println!("input_fnv {:#010x}", input.0);
    for (i, y) in out.iter().enumerate() {
        println!("out {i} {:#010x} {y}", y.to_bits());
    }
    let best = out
        .iter()
        .enumerate()
        .fold(0, |b, (i, y)| if *y > out[b] { i } else { b });
    println!("argmax {best}");
    println!("outputs_fnv {:#010x}", outputs.0);
    println!("state_fnv {:#010x}", final_state.0);
    println!("checksum {:#010x}", all.0);
    println!("done");
    true
}
