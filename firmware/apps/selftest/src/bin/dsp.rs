//! The core's integer dot products on the Cortex-M4F: `kernels::fast` (the DSP path,
//! `SXTB16` + `SMLAD`) against the scalar reference on random vectors of every length
//! 0..=300 at unaligned offsets, on the extremes, and at and past the i32 overflow bound;
//! then the matrix-vector products built on them (the w8a8 `kernels::matvec` and the
//! integer `int_step::matvec_i8r`, whose `Kernels::Fast` path takes three rows a pass over
//! activations packed once) against `Kernels::Reference`, bit for bit, over many shapes.
//! Last, the f16 → f32 conversion the float kernels use (`fast::f16_to_f32`: the FPU's
//! `VCVTB.F32.F16` on a hard-float core) against the integer-only conversion for all
//! 65,536 inputs, bit for bit (NaNs included).
//! Prints one line per failure and a summary; exits 0 when every case agrees, 1 otherwise.

#![no_std]
#![no_main]

use tinyssm_board::{entry, exit, println};
use tinyssm_core::int_step::matvec_i8r;
use tinyssm_core::kernels::{fast, matvec, reference};
use tinyssm_core::{ActQuant, Kernels, QuantI8, QuantI8R, Weights};

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
    let (mc, mb) = matvecs(&mut rng);
    println!(
        "selftest-dsp: {cases} dot cases, {bad} mismatches; {mc} matvec cases, {mb} mismatches"
    );
    let fb = f16_conversions();
    println!(
        "selftest-dsp: 65536 f16 conversions by {}, {fb} mismatches",
        fast::F16_PATH
    );
    let bad = bad + mb + fb;
    exit(bad == 0)
}

/// Largest matrix of [`matvecs`]: rows × cols + an offset.
const MR: usize = 7;
const MC: usize = 520;

/// `kernels::matvec` (w8a8) and `int_step::matvec_i8r`, `Kernels::Fast` against
/// `Kernels::Reference` for every rows × cols of a list (tails of 0–3 columns, 1–7 rows so
/// that the three-row passes leave 0, 1 or 2 rows over, one chunk and past it), with
/// weights at an unaligned offset. Returns (cases, mismatches).
fn matvecs(rng: &mut Rng) -> (u32, u32) {
    let mut mat = [0i8; MR * MC + 4];
    let (mut cases, mut bad) = (0u32, 0u32);
    let mut x = [0f32; MC];
    let mut x16 = [0i16; MC];
    let mut scale = [0f32; MR];
    let mut bias = [0f32; MR];
    let mut bias32 = [0i32; MR];
    let mut rq = [0i32; 2 * MR];
    for cols in [
        1usize, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 95, 96, 127, 128, 129, 255,
        256, 257, 511, 512, 513, 520,
    ] {
        for rows in 1..=MR {
            for v in mat.iter_mut() {
                *v = rng.next() as i8;
            }
            for (i, (a, b)) in x.iter_mut().zip(x16.iter_mut()).enumerate() {
                let r = rng.next();
                *a = ((r >> 8) as u32 as f32 / u32::MAX as f32 - 0.5) * 6.0;
                // A few exact zeros and ties for the rounding.
                if i % 37 == 0 {
                    *a = 0.0;
                }
                *b = (r >> 40) as i16;
            }
            for r in 0..MR {
                scale[r] = 1.0 / (1.0 + (rng.next() % 1000) as f32);
                bias[r] = (rng.next() % 200) as f32 * 0.01 - 1.0;
                bias32[r] = (rng.next() as i32) >> 8;
                rq[2 * r] = (rng.next() % (1 << 20)) as i32 + 1;
                rq[2 * r + 1] = 10 + (rng.next() % 20) as i32;
            }
            let q = &mat[1..1 + rows * cols];
            // Dynamic scales, and static ones (inputs span ±3: a bound of 1.5 saturates
            // half of them, 4.0 none).
            for act in [
                ActQuant::DynamicI8,
                ActQuant::StaticI8 { xmax: 1.5 },
                ActQuant::StaticI8 { xmax: 4.0 },
            ] {
                let w = Weights::I8(QuantI8 {
                    q,
                    scale: &scale[..rows],
                    cols,
                    act,
                });
                for b in [None, Some(&bias[..rows])] {
                    let (mut yr, mut yf) = ([0f32; MR], [0f32; MR]);
                    matvec(Kernels::Reference, w, cols, &x, b, &mut yr[..rows]);
                    matvec(Kernels::Fast, w, cols, &x, b, &mut yf[..rows]);
                    cases += 1;
                    if yr.iter().zip(&yf).any(|(a, b)| a.to_bits() != b.to_bits()) {
                        bad += 1;
                        println!("MISMATCH w8a8 matvec {rows}x{cols} {act:?}");
                    }
                }
            }
            let wr = QuantI8R {
                q,
                rq: &rq[..2 * rows],
                cols,
            };
            for b in [None, Some(&bias32[..rows])] {
                let (mut yr, mut yf) = ([0i64; MR], [0i64; MR]);
                let x = &x16[..cols];
                let okr = matvec_i8r(Kernels::Reference, &wr, x, b, |r, v| yr[r] = v).is_ok();
                let okf = matvec_i8r(Kernels::Fast, &wr, x, b, |r, v| yf[r] = v).is_ok();
                cases += 1;
                if !okr || !okf || yr != yf {
                    bad += 1;
                    println!("MISMATCH matvec_i8r {rows}x{cols}");
                }
            }
        }
    }
    (cases, bad)
}

/// Mismatches of `fast::f16_to_f32` against `fast::f16_to_f32_portable` over every f16.
fn f16_conversions() -> u32 {
    let mut bad = 0u32;
    for h in 0..=u16::MAX {
        let (got, want) = (
            fast::f16_to_f32(core::hint::black_box(h)).to_bits(),
            fast::f16_to_f32_portable(h).to_bits(),
        );
        if got != want {
            bad += 1;
            if bad <= 8 {
                println!("MISMATCH f16 {h:#06x}: {got:#010x} want {want:#010x}");
            }
        }
    }
    bad
}
