//! The `stream` images: a shipped spoken-digit model hears one FSDD recording, sample by
//! sample, on the device.
//!
//! Each binary (`fsdd-s4d`, `fsdd-s4d-int8`, `fsdd-mamba`, `fsdd-mamba-int8`) embeds its
//! model blob (16-byte aligned, [`tinyssm_core::include_model!`], buffer sizes from
//! `build.rs`) and the clip (f32 samples, read at build time). Every sample goes through
//! [`Model::step_sample`] with [`Kernels::Reference`]; at the end [`run`] prints, over
//! semihosting, the bits of every output of the last frame and FNV-1a checksums of the
//! input, of every frame's outputs and of the final state, and the image exits 0. Any
//! error, panic or fault exits non-zero. `tests/tests/qemu_fsdd.rs` compares all of it,
//! bit for bit, with the host core.

#![no_std]
#![deny(clippy::undocumented_unsafe_blocks)]

use tinyssm_board::println;
use tinyssm_core::{include_model, Aligned, Kernels, Model};

pub use tinyssm_board;
pub use tinyssm_core;

/// The FSDD clip as little-endian f32 samples (see `build.rs`).
static INPUT: &Aligned<[u8]> = include_model!(concat!(env!("OUT_DIR"), "/input.f32"));

/// Name of the embedded FSDD recording.
pub const CLIP: &str = env!("TINYSSM_FW_CLIP");

/// One image: `stream_app!("fsdd-s4d")` embeds `models/fsdd-s4d.tssm`, declares its
/// state, scratch and output buffers (sizes computed by `build.rs` from the blob, as
/// `tinyssm codegen` prints them) and an entry point that calls [`run`] and exits with its
/// result.
#[macro_export]
macro_rules! stream_app {
    ($name:literal) => {
        mod config {
            include!(concat!(env!("OUT_DIR"), "/", $name, ".rs"));
        }

        #[$crate::tinyssm_board::entry]
        fn main() -> ! {
            // cortex-m-rt turns these into `&'static mut` borrows, taken once before
            // anything else runs: no `static mut` is touched directly.
            static mut STATE: [f32; config::STATE_LEN] = [0.0; config::STATE_LEN];
            static mut SCRATCH: [f32; config::SCRATCH_LEN] = [0.0; config::SCRATCH_LEN];
            static mut OUT: [f32; config::D_OUTPUT] = [0.0; config::D_OUTPUT];
            let ok = $crate::run(
                $name,
                &config::BLOB.0,
                config::MODEL_CRC32,
                STATE,
                SCRATCH,
                OUT,
            );
            $crate::tinyssm_board::exit(ok)
        }
    };
}

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

/// Streams the clip through `blob` and prints the report; `false` on any error.
pub fn run(
    name: &str,
    blob: &[u8],
    crc: u32,
    state: &mut [f32],
    scratch: &mut [f32],
    out: &mut [f32],
) -> bool {
    println!(
        "tinyssm stream on {}: {name}.tssm ({} bytes) on {CLIP} ({} samples)",
        tinyssm_board::BOARD,
        blob.len(),
        INPUT.0.len() / 4
    );
    let model = match Model::parse(blob) {
        Ok(m) => m.with_kernels(Kernels::Reference),
        Err(e) => {
            println!("error: model: {e}");
            return false;
        }
    };
    if model.crc32() != crc {
        println!(
            "error: model crc {:#010x}, built for {crc:#010x}",
            model.crc32()
        );
        return false;
    }
    if let Err(e) = model.reset(state) {
        println!("error: reset: {e}");
        return false;
    }
    let mut input = Fnv::new();
    let mut outputs = Fnv::new();
    let mut frames = 0u32;
    for chunk in INPUT.0.chunks_exact(4) {
        let x = f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        input = input.f32s(&[x]);
        match model.step_sample(x, state, scratch, out) {
            Ok(true) => {
                frames += 1;
                outputs = outputs.f32s(&out[..model.d_output()]);
            }
            Ok(false) => {}
            Err(e) => {
                println!("error: step: {e}");
                return false;
            }
        }
    }
    let state = &state[..model.state_len()];
    let out = &out[..model.d_output()];
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
    println!("state_fnv {:#010x}", Fnv::new().f32s(state).0);
    println!("checksum {:#010x}", outputs.f32s(state).0);
    println!("done");
    true
}
