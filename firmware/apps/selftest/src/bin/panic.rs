//! Panics: the board's panic handler must print the message and exit non-zero.

#![no_std]
#![no_main]

use tinyssm_board::{entry, println};

#[entry]
fn main() -> ! {
    tinyssm_board::init();
    println!("selftest: panic next");
    let n = core::hint::black_box(3usize);
    panic!("selftest panic {n}")
}
