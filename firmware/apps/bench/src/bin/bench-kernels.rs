//! The matrix-vector kernels at 256×256 and 768×768, each call between markers (see the
//! crate docs): f32 weights (`Kernels::Reference` and `Kernels::Fast`), int8 weights with
//! dynamic int8 activations (w8a8: `Weights::I8` + `ActQuant::DynamicI8`, both kernel
//! sets), and the integer-only `int_step::matvec_i8r` (int8 weights, i16 activations, i32
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

struct Bufs {
    wf: &'static mut [f32],
    wq: &'static mut [i8],
    scale: &'static mut [f32],
    rq: &'static mut [i32],
    x: &'static mut [f32],
    x16: &'static mut [i16],
    out: &'static mut [f32],
    out32: &'static mut [i32],
}

/// Runs every kernel at `n × n` between its markers; a checksum of the outputs keeps the
/// work observable.
fn bench(b: &mut Bufs, n: usize, marks: &[(Mark, Mark); 5]) -> u32 {
    let mut sum = 0u32;
    let nn = n * n;
    let mut fold = |xs: &[f32]| {
        for v in xs {
            sum = sum.rotate_left(5) ^ v.to_bits();
        }
    };
    for (k, (begin, end)) in [Kernels::Reference, Kernels::Fast].into_iter().zip(&marks[..2]) {
        let w = Weights::F32(&b.wf[..nn]);
        begin();
        matvec(black_box(k), w, n, &b.x[..n], None, &mut b.out[..n]);
        end();
        fold(&b.out[..n]);
    }
    for (k, (begin, end)) in [Kernels::Reference, Kernels::Fast].into_iter().zip(&marks[2..4]) {
        let w = Weights::I8(QuantI8 {
            q: &b.wq[..nn],
            scale: &b.scale[..n],
            cols: n,
            act: ActQuant::DynamicI8,
        });
        begin();
        matvec(black_box(k), w, n, &b.x[..n], None, &mut b.out[..n]);
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
    let r = matvec_i8r(&w, &b.x16[..n], None, |i, v| {
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
    static mut WF: [f32; MAX * MAX] = [0.0; MAX * MAX];
    static mut WQ: [i8; MAX * MAX] = [0; MAX * MAX];
    static mut SCALE: [f32; MAX] = [0.0; MAX];
    static mut RQ: [i32; 2 * MAX] = [0; 2 * MAX];
    static mut X: [f32; MAX] = [0.0; MAX];
    static mut X16: [i16; MAX] = [0; MAX];
    static mut OUT: [f32; MAX] = [0.0; MAX];
    static mut OUT32: [i32; MAX] = [0; MAX];
    tinyssm_fw_bench::paint_stack();
    let mut rng = Lcg(12345);
    for w in WF.iter_mut() {
        *w = rng.unit() * 0.1;
    }
    for q in WQ.iter_mut() {
        *q = (rng.next() % 255) as i8;
    }
    for (i, s) in SCALE.iter_mut().enumerate() {
        *s = 1e-3 * (1.0 + (i % 7) as f32);
    }
    for r in RQ.chunks_exact_mut(2) {
        r[0] = 1 << 30;
        r[1] = 40;
    }
    for (x, x16) in X.iter_mut().zip(X16.iter_mut()) {
        *x = rng.unit();
        *x16 = (*x * 16384.0) as i16;
    }
    let mut b = Bufs {
        wf: WF,
        wq: WQ,
        scale: SCALE,
        rq: RQ,
        x: X,
        x16: X16,
        out: OUT,
        out32: OUT32,
    };
    println!("tinyssm bench-kernels on {}", tinyssm_board::BOARD);
    let s256 = bench(
        &mut b,
        256,
        &[
            (b_f32_ref_256, e_f32_ref_256),
            (b_f32_fast_256, e_f32_fast_256),
            (b_w8a8_ref_256, e_w8a8_ref_256),
            (b_w8a8_fast_256, e_w8a8_fast_256),
            (b_i8r_256, e_i8r_256),
        ],
    );
    let s768 = bench(
        &mut b,
        768,
        &[
            (b_f32_ref_768, e_f32_ref_768),
            (b_f32_fast_768, e_f32_fast_768),
            (b_w8a8_ref_768, e_w8a8_ref_768),
            (b_w8a8_fast_768, e_w8a8_fast_768),
            (b_i8r_768, e_i8r_768),
        ],
    );
    println!("checksum {s256:#010x} {s768:#010x}");
    println!("stack_high_water_bytes {}", tinyssm_fw_bench::stack_high_water());
    println!("done");
    tinyssm_board::exit(true)
}
