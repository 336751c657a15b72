//! Board support shared by the tinyssm firmware apps.
//!
//! - the memory layout: `build.rs` puts `memory/<board>.x` (board from `TINYSSM_BOARD`,
//!   default `mps2-an386`) where cortex-m-rt's `link.x` includes it;
//! - output and exit codes through semihosting ([`println!`], [`exit`]): a run under QEMU
//!   (`-semihosting-config enable=on,target=native`) ends with the app's status;
//! - a HardFault handler, a default handler for every other exception and interrupt, and a
//!   panic handler: each prints one line and exits non-zero, so no failure can hang a run.
//!
//! An app links this crate with `use tinyssm_board as _;` (or any item from it).
//! Output is plain semihosting text on one stream (no defmt on the same channel).

#![no_std]
#![deny(clippy::undocumented_unsafe_blocks)]

use core::cell::RefCell;
use core::fmt::{self, Write as _};
use cortex_m::interrupt::{self, Mutex};
use cortex_m_rt::{exception, ExceptionFrame};
use cortex_m_semihosting::{debug, hio};

pub use cortex_m_rt::entry;

/// The board this image was linked for (`TINYSSM_BOARD` at build time).
pub const BOARD: &str = env!("TINYSSM_BOARD");

/// Prints one line on the semihosting console (QEMU routes it to the host's stderr or
/// stdout, depending on its version). Takes `format!` arguments.
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => { $crate::write_line(format_args!($($arg)*)) };
}

/// The semihosting console, opened once.
static CONSOLE: Mutex<RefCell<Option<hio::HostStream>>> = Mutex::new(RefCell::new(None));

/// Writes `args` and a newline on the semihosting console ([`println!`]). Errors (no
/// semihosting host) are ignored: output is best effort, the exit code is what counts.
pub fn write_line(args: fmt::Arguments<'_>) {
    interrupt::free(|cs| {
        let mut console = CONSOLE.borrow(cs).borrow_mut();
        if console.is_none() {
            *console = hio::hstdout().ok();
        }
        if let Some(h) = console.as_mut() {
            let _ = h.write_fmt(args);
            let _ = h.write_str("\n");
        }
    });
}

/// Ends the run: semihosting `SYS_EXIT` with `ApplicationExit` when `ok` (QEMU exits 0),
/// `RunTimeErrorUnknown` otherwise (QEMU exits 1). Without a semihosting host it waits
/// for interrupts forever.
pub fn exit(ok: bool) -> ! {
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
    println!(
        "HardFault: pc {:#010x} lr {:#010x} xpsr {:#010x}",
        ef.pc(),
        ef.lr(),
        ef.xpsr()
    );
    exit(false)
}

#[exception]
unsafe fn DefaultHandler(irqn: i16) {
    println!("unexpected exception or interrupt {irqn}");
    exit(false)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    println!("panic: {info}");
    exit(false)
}
