//! `imu`: the activity model on recorded smart-watch motion, on QEMU's mps2-an386.
//!
//! `models/basicmotions-s4d.tssm` (S4D, 6 inputs: 3-axis acceleration and angular rate at
//! 10 Hz) classifies a few BasicMotions test cases (embedded at build time, see
//! `build.rs`). The samples come through [`tinyssm_sensor::Replay`], the flash-backed
//! [`SampleSource`] that stands in for the IMU driver a real board uses. Each case starts
//! from the initial state, steps 100 times with `Kernels::Reference` and is decided at its
//! last step, as `tinyssm eval` does.
//!
//! The report goes out over **defmt** (semihosting transport: `defmt-semihosting` writes
//! the encoded frames to the semihosting console, which QEMU passes on as raw bytes);
//! decode it on the host with `defmt-print -e <this ELF>`. Nothing else writes to that
//! console: the fault and panic handlers here log through defmt too, then exit 1 through
//! semihosting. A clean run exits 0. `tests/tests/qemu_imu.rs` compares every printed bit
//! with the host core.

#![no_std]
#![no_main]
#![deny(clippy::undocumented_unsafe_blocks)]

use cortex_m_rt::{entry, exception, ExceptionFrame};
use cortex_m_semihosting::debug;
use defmt_semihosting as _;
use tinyssm_core::{Input, Kernels, Model, SnapshotError, Weights};
use tinyssm_sensor::{Replay, SampleSource};

mod model {
    include!(concat!(env!("OUT_DIR"), "/model.rs"));
}
mod cases {
    include!(concat!(env!("OUT_DIR"), "/cases.rs"));
}

/// The embedded cases, little-endian f32, case after case, step after step.
static CASES_F32: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/cases.f32"));

const CHANNELS: usize = model::D_INPUT;

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
    // cortex-m-rt turns these into `&'static mut` borrows, taken once before anything
    // else runs: no `static mut` is touched directly.
    static mut STATE: [f32; model::STATE_LEN] = [0.0; model::STATE_LEN];
    static mut SCRATCH: [f32; model::SCRATCH_LEN] = [0.0; model::SCRATCH_LEN];
    static mut OUT: [f32; model::D_OUTPUT] = [0.0; model::D_OUTPUT];
    // Every tensor's view, resolved once at start-up (`Model::with_views`).
    static mut VIEWS: [Weights<'static>; model::N_TENSORS] = [Weights::EMPTY; model::N_TENSORS];
    // A stream snapshot, as a device would persist it across a power cut.
    static mut SNAPSHOT: [u8; model::SNAPSHOT_LEN] = [0; model::SNAPSHOT_LEN];
    exit(run(STATE, SCRATCH, OUT, VIEWS, SNAPSHOT))
}

/// Runs every case and prints the report; `false` on any error.
fn run(
    state: &mut [f32],
    scratch: &mut [f32],
    out: &mut [f32],
    views: &'static mut [Weights<'static>],
    snapshot: &mut [u8],
) -> bool {
    defmt::println!(
        "tinyssm imu on {=str}: basicmotions-s4d.tssm ({=usize} bytes), {=usize} cases of {=usize} steps",
        env!("TINYSSM_BOARD"),
        model::BLOB.0.len(),
        cases::CASES.len(),
        cases::STEPS
    );
    let model = match Model::parse(&model::BLOB.0) {
        Ok(m) => m.with_kernels(Kernels::Reference),
        Err(e) => {
            defmt::println!("error: model: {}", defmt::Display2Format(&e));
            return false;
        }
    };
    if model.crc32() != model::MODEL_CRC32 {
        defmt::println!(
            "error: model crc {=u32:#010x}, built for {=u32:#010x}",
            model.crc32(),
            model::MODEL_CRC32
        );
        return false;
    }
    let model = match model.with_views(views) {
        Ok(m) => m,
        Err(e) => {
            defmt::println!("error: views: {}", defmt::Display2Format(&e));
            return false;
        }
    };
    defmt::println!("crc32 {=u32:#010x}", model.crc32());
    let Some(mut source) = Replay::<CHANNELS>::new(CASES_F32) else {
        defmt::println!("error: the recording is not a whole number of samples");
        return false;
    };
    if source.len() != cases::CASES.len() * cases::STEPS {
        defmt::println!("error: {=usize} samples recorded", source.len());
        return false;
    }
    let mut x = [0.0f32; CHANNELS];
    for &(index, label) in cases::CASES.iter() {
        if let Err(e) = model.reset(state) {
            defmt::println!("error: reset: {}", defmt::Display2Format(&e));
            return false;
        }
        let mut input = Fnv::new();
        let mut outputs = Fnv::new();
        for t in 0..cases::STEPS {
            if t == cases::STEPS / 2 && !power_cut(&model, state, snapshot) {
                return false;
            }
            if let Err(e) = source.read(&mut x) {
                defmt::println!("error: replay: {}", e);
                return false;
            }
            input = input.f32s(&x);
            if let Err(e) = model.step(Input::Vector(&x), state, scratch, out) {
                defmt::println!("error: step: {}", defmt::Display2Format(&e));
                return false;
            }
            outputs = outputs.f32s(&out[..model.d_output()]);
        }
        let y = &out[..model.d_output()];
        for (i, v) in y.iter().enumerate() {
            defmt::println!(
                "case {=u32} out {=usize} {=u32:#010x} {=f32}",
                index,
                i,
                v.to_bits(),
                *v
            );
        }
        let best = y
            .iter()
            .enumerate()
            .fold(0, |b, (i, v)| if *v > y[b] { i } else { b });
        defmt::println!(
            "case {=u32} label {=u32} argmax {=usize} input_fnv {=u32:#010x} outputs_fnv {=u32:#010x} state_fnv {=u32:#010x}",
            index,
            label,
            best,
            input.0,
            outputs.0,
            Fnv::new().f32s(&state[..model.state_len()]).0
        );
    }
    defmt::println!("done {=usize}", cases::CASES.len());
    true
}

/// A power cut in the middle of a stream: snapshot the state, lose it (reset), check that a
/// corrupted copy of the snapshot is refused and changes nothing, then restore it. The
/// stream's later outputs (compared with the host's, which never stops) prove the
/// continuation bit-exact.
fn power_cut(model: &Model<'_>, state: &mut [f32], snap: &mut [u8]) -> bool {
    let n = match model.snapshot(state, snap) {
        Ok(n) => n,
        Err(e) => {
            defmt::println!("error: snapshot: {}", defmt::Display2Format(&e));
            return false;
        }
    };
    if let Err(e) = model.reset(state) {
        defmt::println!("error: reset: {}", defmt::Display2Format(&e));
        return false;
    }
    let fresh = Fnv::new().f32s(&state[..model.state_len()]).0;
    snap[n / 2] ^= 0x04;
    let refused = model.restore(&snap[..n], state);
    snap[n / 2] ^= 0x04;
    let untouched = Fnv::new().f32s(&state[..model.state_len()]).0 == fresh;
    if !matches!(refused, Err(SnapshotError::CrcMismatch { .. })) || !untouched {
        defmt::println!("error: a corrupted snapshot was not refused cleanly");
        return false;
    }
    if let Err(e) = model.restore(&snap[..n], state) {
        defmt::println!("error: restore: {}", defmt::Display2Format(&e));
        return false;
    }
    defmt::println!(
        "snapshot {=usize} bytes restored; corrupted copy refused",
        n
    );
    true
}

/// Ends the run: semihosting `SYS_EXIT`, QEMU exits 0 when `ok`, 1 otherwise.
fn exit(ok: bool) -> ! {
    debug::exit(if ok {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    loop {
        cortex_m::asm::wfi();
    }
}

#[exception]
unsafe fn HardFault(ef: &ExceptionFrame) -> ! {
    defmt::println!(
        "HardFault: pc {=u32:#010x} lr {=u32:#010x} xpsr {=u32:#010x}",
        ef.pc(),
        ef.lr(),
        ef.xpsr()
    );
    exit(false)
}

#[exception]
unsafe fn DefaultHandler(irqn: i16) {
    defmt::println!("unexpected exception or interrupt {=i16}", irqn);
    exit(false)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    defmt::println!("panic: {}", defmt::Display2Format(info));
    exit(false)
}
