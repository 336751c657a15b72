//! Board support shared by the tinyssm firmware apps.
//!
//! - the memory layout: `build.rs` puts `memory/<board>.x` (board from `TINYSSM_BOARD`,
//!   default `mps2-an386`) where cortex-m-rt's `link.x` includes it;
//! - output and exit codes through semihosting ([`println!`], [`exit`]): a run under QEMU
//!   (`-semihosting-config enable=on,target=native`) ends with the app's status;
//! - a HardFault handler, a default handler for every other exception and interrupt, and a
//!   panic handler: each prints one line and exits non-zero, so no failure can hang a run.
//!
//! - [`init`], the first call of every image's `main`: on the cores with an FPU it makes
//!   sure the FPU is on and puts FPSCR (and FPDSCR) in the IEEE defaults the host has.
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

/// Start-up, called first thing in every image's `main`. On cores with an FPU (targets
/// `*-eabihf`: Cortex-M4F, M7, M33) it grants full access to CP10/CP11 in CPACR
/// (cortex-m-rt's reset handler does too; this does not rely on it) and writes 0 to FPSCR
/// and FPDSCR (the FPSCR of exception handlers): round to nearest even, no flush to zero
/// (FZ = 0), NaNs propagated (DN = 0), IEEE half precision (AHP = 0). The float paths
/// then compute what the host computes whatever the FPSCR reset value (which the
/// architecture leaves open). Cortex-M0 (`thumbv6m-none-eabi`): nothing to do.
pub fn init() {
    #[cfg(target_abi = "eabihf")]
    fpu::init();
}

/// FPSCR after [`init`] (`None` on cores without an FPU), for the report.
pub fn fpscr() -> Option<u32> {
    #[cfg(target_abi = "eabihf")]
    return Some(fpu::fpscr());
    #[cfg(not(target_abi = "eabihf"))]
    None
}

#[cfg(target_abi = "eabihf")]
mod fpu {
    use core::ptr::{read_volatile, write_volatile};

    /// Coprocessor Access Control Register (SCB).
    const CPACR: *mut u32 = 0xE000_ED88 as *mut u32;
    /// Floating-point Default Status Control Register (FPU block).
    const FPDSCR: *mut u32 = 0xE000_EF3C as *mut u32;
    /// CP10 and CP11: full access.
    const CP10_CP11_FULL: u32 = 0xF << 20;

    pub(crate) fn init() {
        // SAFETY: CPACR and FPDSCR are architecturally defined System Control Space
        // registers of every Armv7-M/Armv8-M core with an FPU (the targets this module is
        // built for); word-aligned volatile accesses in privileged Thread mode, where the
        // reset handler leaves `main`. Writing 0 to FPDSCR only changes the FPSCR value
        // that exception entries load.
        unsafe {
            let v = read_volatile(CPACR);
            write_volatile(CPACR, v | CP10_CP11_FULL);
            cortex_m::asm::dsb();
            cortex_m::asm::isb();
            write_volatile(FPDSCR, 0);
        }
        // SAFETY: CP10/CP11 are enabled just above, so VMSR does not fault; FPSCR = 0 is
        // round to nearest, FZ/DN/AHP clear, no sticky exception flags.
        unsafe { core::arch::asm!("vmsr fpscr, {}", in(reg) 0u32, options(nostack)) };
    }

    pub(crate) fn fpscr() -> u32 {
        let v: u32;
        // SAFETY: reads FPSCR; the FPU was enabled by `init` (and by cortex-m-rt's reset).
        unsafe { core::arch::asm!("vmrs {}, fpscr", out(reg) v, options(nomem, nostack)) };
        v
    }
}

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
