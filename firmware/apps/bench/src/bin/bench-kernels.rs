//! The matrix-vector kernels at 256×256 and 768×768, each call between markers (see the
//! crate docs): f32 weights (`Kernels::Reference` and `Kernels::Fast`), int8 weights with
//! dynamic int8 activations (w8a8: `Weights::I8` + `ActQuant::DynamicI8`, both kernel
//! sets), the same with a static activation scale (`ActQuant::StaticI8`, fast kernels: no
//! pass over the input for its range), and the integer-only `int_step::matvec_i8r` (int8 weights, i16 activations, i32
//! accumulators, per-row requantization). Weights and inputs are pseudo-random (a fixed
//! LCG) and generated at start-up, outside the spans. Instructions per MAC = a span's
//! count / (rows · cols).

#![no_std]
#![no_main]

use core::hint::black_box;

use tinyssm_fw_bench::tinyssm_board::{self, println};
use tinyssm_fw_bench::tinyssm_core::int_step::matvec_i8r;
use tinyssm_fw_bench::tinyssm_core::kernels::matvec;
use tinyssm_fw_bench::tinyssm_core::{ActQuant, Kernels, QuantI8, QuantI8R, Weights};
use tinyssm_fw_bench::{begin_marker, end_marker};

const MAX: usize = 768;

begin_marker!(b_f32_ref_256, 40);
end_marker!(e_f32_ref_256, f32_ref_256, b_f32_ref_256, 41);
begin_marker!(b_f32_fast_256, 42);
end_marker!(e_f32_fast_256, f32_fast_256, b_f32_fast_256, 43);
begin_marker!(b_w8a8_ref_256, 44);
end_marker!(e_w8a8_ref_256, w8a8_ref_256, b_w8a8_ref_256, 45);
begin_marker!(b_w8a8_fast_256, 46);
end_marker!(e_w8a8_fast_256, w8a8_fast_256, b_w8a8_fast_256, 47);
begin_marker!(b_i8r_256, 48);
end_marker!(e_i8r_256, i8r_256, b_i8r_256, 49);
begin_marker!(b_f32_ref_768, 50);
end_marker!(e_f32_ref_768, f32_ref_768, b_f32_ref_768, 51);
begin_marker!(b_f32_fast_768, 52);
end_marker!(e_f32_fast_768, f32_fast_768, b_f32_fast_768, 53);
begin_marker!(b_w8a8_ref_768, 54);
end_marker!(e_w8a8_ref_768, w8a8_ref_768, b_w8a8_ref_768, 55);
begin_marker!(b_w8a8_fast_768, 56);
end_marker!(e_w8a8_fast_768, w8a8_fast_768, b_w8a8_fast_768, 57);
begin_marker!(b_i8r_768, 58);
end_marker!(e_i8r_768, i8r_768, b_i8r_768, 59);
begin_marker!(b_w8a8s_fast_256, 60);
end_marker!(e_w8a8s_fast_256, w8a8s_fast_256, b_w8a8s_fast_256, 61);
begin_marker!(b_w8a8s_fast_768, 62);
end_marker!(e_w8a8s_fast_768, w8a8s_fast_768, b_w8a8s_fast_768, 63);

type Mark = extern "C" fn();

struct Lcg(u32);

impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self.0.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        self.0 >> 8
    }
    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        (self.next() as f32 / (1u32 << 23) as f32) - 1.0
    }
}

/// Every buffer, in one static (zeroed at start-up, filled by `main`).
struct Bufs {
    wf: [f32; MAX * MAX],
    wq: [i8; MAX * MAX],
    scale: [f32; MAX],
    rq: [i32; 2 * MAX],
    x: [f32; MAX],
    x16: [i16; MAX],
    out: [f32; MAX],
    out32: [i32; MAX],
}

/// Runs every kernel at `n × n` between its markers; a checksum of the outputs keeps the
/// work observable. Size, kernel set and weights pass through `black_box`, so the kernel
/// code is the general one a model runs (the dtype and shape come from the blob there),
/// not one specialised for these constants.
#[inline(never)]
fn bench(b: &mut Bufs, n: usize, marks: &[(Mark, Mark); 6]) -> u32 {
    let n = black_box(n);
    let mut sum = 0u32;
    let nn = n * n;
    let mut fold = |xs: &[f32]| {
        for v in xs {
            sum = sum.rotate_left(5) ^ v.to_bits();
        }
    };
    for (k, (begin, end)) in [Kernels::Reference, Kernels::Fast]
        .into_iter()
        .zip(&marks[..2])
    {
        let w = Weights::F32(&b.wf[..nn]);
        begin();
        matvec(
            black_box(k),
            black_box(w),
            n,
            &b.x[..n],
            None,
            &mut b.out[..n],
        );
        end();
        fold(&b.out[..n]);
    }
    // The inputs lie in [-1, 1): the static bound 1.0 is their range.
    for ((k, act), (begin, end)) in [
        (Kernels::Reference, ActQuant::DynamicI8),
        (Kernels::Fast, ActQuant::DynamicI8),
        (Kernels::Fast, ActQuant::StaticI8 { xmax: 1.0 }),
    ]
    .into_iter()
    .zip([marks[2], marks[3], marks[5]].iter())
    {
        let w = Weights::I8(QuantI8 {
            q: &b.wq[..nn],
            scale: &b.scale[..n],
            cols: n,
            act,
        });
        begin();
        matvec(
            black_box(k),
            black_box(w),
            n,
            &b.x[..n],
            None,
            &mut b.out[..n],
        );
        end();
        fold(&b.out[..n]);
    }
    let w = QuantI8R {
        q: &b.wq[..nn],
        rq: &b.rq[..2 * n],
        cols: n,
    };
    let out32 = &mut b.out32[..n];
    let (begin, end) = marks[4];
    begin();
    let w = black_box(w);
    let r = matvec_i8r(black_box(Kernels::Fast), &w, &b.x16[..n], None, |i, v| {
        out32[i] = v.clamp(i32::MIN as i64, i32::MAX as i64) as i32
    });
    end();
    if r.is_err() {
        println!("error: matvec_i8r refused {n}x{n}");
        tinyssm_board::exit(false);
    }
    for v in out32.iter() {
        sum = sum.rotate_left(5) ^ *v as u32;
    }
    sum
}

#[tinyssm_board::entry]
fn main() -> ! {
    // cortex-m-rt turns this into a `&'static mut` borrow, taken once.
    static mut BUFS: Bufs = Bufs {
        wf: [0.0; MAX * MAX],
        wq: [0; MAX * MAX],
        scale: [0.0; MAX],
        rq: [0; 2 * MAX],
        x: [0.0; MAX],
        x16: [0; MAX],
        out: [0.0; MAX],
        out32: [0; MAX],
    };
    let b: &mut Bufs = BUFS;
    tinyssm_fw_bench::paint_stack();
    let mut rng = Lcg(12345);
    for w in b.wf.iter_mut() {
        *w = rng.unit() * 0.1;
    }
    for q in b.wq.iter_mut() {
        *q = (rng.next() % 255) as i8;
    }
    for (i, s) in b.scale.iter_mut().enumerate() {
        *s = 1e-3 * (1.0 + (i % 7) as f32);
    }
    for r in b.rq.chunks_exact_mut(2) {
        r[0] = 1 << 30;
        r[1] = 40;
    }
    for (x, x16) in b.x.iter_mut().zip(b.x16.iter_mut()) {
        *x = rng.unit();
        *x16 = (*x * 16384.0) as i16;
    }
    println!("tinyssm bench-kernels on {}", tinyssm_board::BOARD);
    let s256 = bench(
        b,
        256,
        &[
            (b_f32_ref_256, e_f32_ref_256),
            (b_f32_fast_256, e_f32_fast_256),
            (b_w8a8_ref_256, e_w8a8_ref_256),
            (b_w8a8_fast_256, e_w8a8_fast_256),
            (b_i8r_256, e_i8r_256),
            (b_w8a8s_fast_256, e_w8a8s_fast_256),
        ],
    );
    let s768 = bench(
        b,
        768,
        &[
            (b_f32_ref_768, e_f32_ref_768),
            (b_f32_fast_768, e_f32_fast_768),
            (b_w8a8_ref_768, e_w8a8_ref_768),
            (b_w8a8_fast_768, e_w8a8_fast_768),
            (b_i8r_768, e_i8r_768),
            (b_w8a8s_fast_768, e_w8a8s_fast_768),
        ],
    );
    println!("checksum {s256:#010x} {s768:#010x}");
    println!(
        "stack_high_water_bytes {}",
        tinyssm_fw_bench::stack_high_water()
    );
    println!("done");
    tinyssm_board::exit(true)
}
