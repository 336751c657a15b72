//! Known instruction sequences for the `insn_count` plugin's own test
//! (`tests/tests/qemu_insn_count.rs`): `tinyssm_calib_body`, 8 instructions, called
//! [`CALLS`] times in a loop by `tinyssm_calib_run`, all hand-written (naked functions),
//! so that the test can derive every expected count from the disassembly.
//!
//! `tinyssm_calib_run`: `push {r4, lr}; movs r4, #CALLS; bl begin; 1: bl body; subs r4,
//! #1; bne 1b; bl end; pop {r4, pc}`. Span `calib` (begin marker to end marker) therefore
//! holds begin's 2 instructions, CALLS × (bl + body + subs + bne) and the `bl end`.

#![no_std]
#![no_main]

use tinyssm_fw_bench::{begin_marker, end_marker};

/// How often the loop calls the body.
const CALLS: u32 = 200;

begin_marker!(begin_calib, 1);
end_marker!(end_calib, calib, begin_calib, 2);

/// 8 instructions: 7 additions and the return.
#[unsafe(naked)]
#[unsafe(no_mangle)]
pub extern "C" fn tinyssm_calib_body() {
    core::arch::naked_asm!(
        "adds r0, r0, #1",
        "adds r0, r0, #2",
        "adds r0, r0, #3",
        "adds r0, r0, #4",
        "adds r0, r0, #5",
        "adds r0, r0, #6",
        "adds r0, r0, #7",
        "bx lr",
    )
}

/// Calls the body [`CALLS`] times between the `calib` span's markers.
#[unsafe(naked)]
#[unsafe(no_mangle)]
pub extern "C" fn tinyssm_calib_run() {
    core::arch::naked_asm!(
        "push {{r4, lr}}",
        "movs r4, #{calls}",
        "bl {begin}",
        "2:",
        "bl {body}",
        "subs r4, r4, #1",
        "bne 2b",
        "bl {end}",
        "pop {{r4, pc}}",
        calls = const CALLS,
        begin = sym begin_calib,
        body = sym tinyssm_calib_body,
        end = sym end_calib,
    )
}

#[tinyssm_fw_bench::tinyssm_board::entry]
fn main() -> ! {
    tinyssm_calib_run();
    tinyssm_fw_bench::tinyssm_board::println!("calib calls {CALLS}");
    tinyssm_fw_bench::tinyssm_board::exit(true)
}
