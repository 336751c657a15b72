//! The core's integer dot products on the Cortex-M4F: `kernels::fast` (the DSP path,
//! `SXTB16` + `SMLAD`) against the scalar reference on random vectors of every length
//! 0..=300 at unaligned offsets, on the extremes, and at and past the i32 overflow bound.
//! Prints one line per failure and a summary; exits 0 when every case agrees, 1 otherwise.

#![no_std]
#![no_main]

use tinyssm_board::{entry, exit, println};
use tinyssm_core::kernels::{fast, reference};

/// xorshift64: the same stream on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

const N: usize = 300;
/// The longest all-(−128)² i8·i8 sum that fits i32 (131,071 · 16,384 < 2³¹).
const LONG: usize = 131_071;

#[entry]
fn main() -> ! {
    println!("selftest-dsp: integer dots on {}", fast::INT_DOT_PATH);
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let (mut cases, mut bad) = (0u32, 0u32);
    let mut check = |what: &str, n: usize, got: i32, want: i32| {
        cases += 1;
        if got != want {
            bad += 1;
            println!("MISMATCH {what} n {n}: fast {got} reference {want}");
        }
    };
    let (mut a, mut b, mut x) = ([0i8; N + 8], [0i8; N + 8], [0i16; N + 8]);
    for round in 0..4 {
        for n in 0..=N {
            for i in 0..N + 8 {
                let r = rng.next();
                (a[i], b[i], x[i]) = match round {
                    0 => (r as i8, (r >> 8) as i8, (r >> 16) as i16),
                    1 => (-128, -128, i16::MIN),
                    2 => (-128, 127, i16::MAX),
                    // Mostly extremes.
                    _ => {
                        let pick = |s: u64| [-128i8, 127, -127, 0][(s & 3) as usize];
                        (
                            pick(r),
                            pick(r >> 2),
                            [i16::MIN, i16::MAX, -1, 0][(r >> 4 & 3) as usize],
                        )
                    }
                };
            }
            let off = n % 4;
            let (a, b, x) = (&a[off..off + n], &b[off..off + n], &x[off..off + n]);
            check(
                "i8xi8",
                n,
                fast::dot_i8_i8(a, b),
                reference::dot_i8_i8(a, b),
            );
            check(
                "i8xi16",
                n,
                fast::dot_i8_i16(a, x),
                reference::dot_i8_i16(a, x),
            );
        }
    }
    // At the bound (exact), and i8·i16 past its bound (both wrap, SMLAD setting Q).
    let long = [-128i8; LONG];
    check(
        "i8xi8 long",
        LONG,
        fast::dot_i8_i8(&long, &long),
        reference::dot_i8_i8(&long, &long),
    );
    check(
        "i8xi8 long exact",
        LONG,
        fast::dot_i8_i8(&long, &long),
        (LONG as i64 * 16384) as i32,
    );
    let xs = [i16::MIN; 1024];
    for n in [511usize, 512, 513, 1023] {
        let w = &long[..n];
        check(
            "i8xi16 wrap",
            n,
            fast::dot_i8_i16(w, &xs[..n]),
            reference::dot_i8_i16(w, &xs[..n]),
        );
        check(
            "i8xi16 wrap exact",
            n,
            fast::dot_i8_i16(w, &xs[..n]),
            (n as i64 * 128 * 32768) as i32,
        );
    }
    println!("selftest-dsp: {cases} cases, {bad} mismatches");
    exit(bad == 0)
}
