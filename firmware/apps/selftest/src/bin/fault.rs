//! Executes a permanently undefined instruction: a UsageFault, escalated to HardFault
//! (no configurable fault handler is enabled). The board's HardFault handler must print
//! one line and exit non-zero.

#![no_std]
#![no_main]

use tinyssm_board::{entry, println};

#[entry]
fn main() -> ! {
    tinyssm_board::init();
    println!("selftest: undefined instruction next");
    cortex_m::asm::udf()
}
