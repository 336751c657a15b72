//! Quantized kernels and steps against f32 (criterion): the integer dot products (SIMD,
//! portable, reference), the matrix-vector product at square sizes (f32, int8 weights with
//! f32 activations, int4, w8a8), the product streaming a matrix larger than the caches,
//! and whole steps of the benchmark models in each mode.
//! Results and commands: QUANTIZATION.md.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tinyssm_bench::{mamba1_small, mamba_130m, s4d_sensor};
use tinyssm_core::{
    kernels, ActQuant, Compute, DType, Input, Kernels, Model, QuantI4, QuantI8, Role, TensorSpec,
    Weights,
};
use tinyssm_host::TensorData;

type DotI8 = fn(&[i8], &[i8]) -> i32;
type DotI16 = fn(&[i8], &[i16]) -> i32;

fn int_dot(c: &mut Criterion) {
    eprintln!("int_dot: fast kernels use {}", kernels::fast::INT_DOT_PATH);
    let mut g = c.benchmark_group("int_dot");
    for n in [256usize, 768] {
        let a: Vec<i8> = (0..n).map(|i| ((i * 2654435761) % 255) as i8).collect();
        let b: Vec<i8> = (0..n).map(|i| ((i * 40503 + 7) % 255) as i8).collect();
        let x: Vec<i16> = (0..n).map(|i| ((i * 40503 + 7) % 65535) as i16).collect();
        let fa: Vec<f32> = a.iter().map(|&v| v as f32).collect();
        let fb: Vec<f32> = b.iter().map(|&v| v as f32).collect();
        g.throughput(Throughput::Elements(n as u64));
        let i8_cases: [(&str, DotI8); 3] = [
            ("i8xi8-simd", kernels::fast::dot_i8_i8),
            ("i8xi8-portable", kernels::fast::dot_i8_i8_portable),
            ("i8xi8-reference", kernels::reference::dot_i8_i8),
        ];
        for (name, f) in i8_cases {
            g.bench_function(BenchmarkId::new(name, n), |bch| {
                bch.iter(|| f(black_box(&a), black_box(&b)))
            });
        }
        let i16_cases: [(&str, DotI16); 3] = [
            ("i8xi16-simd", kernels::fast::dot_i8_i16),
            ("i8xi16-portable", kernels::fast::dot_i8_i16_portable),
            ("i8xi16-reference", kernels::reference::dot_i8_i16),
        ];
        for (name, f) in i16_cases {
            g.bench_function(BenchmarkId::new(name, n), |bch| {
                bch.iter(|| f(black_box(&a), black_box(&x)))
            });
        }
        g.bench_function(BenchmarkId::new("f32-fast", n), |bch| {
            bch.iter(|| kernels::fast::dot(black_box(&fa), black_box(&fb)))
        });
        // The w8a8 product's per-vector work: max |x| and quantization to int8.
        let xf: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut qx = vec![0i8; n];
        for (name, fast) in [
            ("act-quantize-fast", true),
            ("act-quantize-reference", false),
        ] {
            g.bench_function(BenchmarkId::new(name, n), |bch| {
                bch.iter(|| {
                    if fast {
                        let amax = kernels::fast::act_absmax(black_box(&xf)).unwrap_or(1.0);
                        kernels::fast::quantize_act(&xf, 127.0 / amax, &mut qx);
                    } else {
                        let amax = kernels::act_absmax(black_box(&xf)).unwrap_or(1.0);
                        kernels::quantize_act(&xf, 127.0 / amax, &mut qx);
                    }
                    black_box(&qx);
                })
            });
        }
    }
    g.finish();
}

fn matvec(c: &mut Criterion) {
    let mut g = c.benchmark_group("matvec");
    for n in [256usize, 512, 768, 1024] {
        let w: Vec<f32> = (0..n * n)
            .map(|i| ((i * 2654435761) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        let x: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
        let spec = TensorSpec {
            layer: Some(0),
            role: Role::InProj,
            rank: 2,
            shape: [n as u32, n as u32, 0, 0],
        };
        let TensorData::I8 { q, scale, .. } =
            TensorData::encode(w.clone(), DType::I8, &spec).unwrap()
        else {
            unreachable!()
        };
        let TensorData::I4 {
            q: q4, scale: s4, ..
        } = TensorData::encode(w.clone(), DType::I4, &spec).unwrap()
        else {
            unreachable!()
        };
        let mut out = vec![0f32; n];
        g.throughput(Throughput::Elements((n * n) as u64));
        let i8w = |act| {
            Weights::I8(QuantI8 {
                q: &q,
                scale: &scale,
                cols: n,
                act,
            })
        };
        let cases: [(&str, Weights<'_>, Kernels); 7] = [
            ("f32", Weights::F32(&w), Kernels::Fast),
            ("f32-reference", Weights::F32(&w), Kernels::Reference),
            ("int8", i8w(ActQuant::Float), Kernels::Fast),
            (
                "int4",
                Weights::I4(QuantI4 {
                    q: &q4,
                    scale: &s4,
                    cols: n,
                }),
                Kernels::Fast,
            ),
            ("w8a8", i8w(ActQuant::DynamicI8), Kernels::Fast),
            (
                "w8a8-reference",
                i8w(ActQuant::DynamicI8),
                Kernels::Reference,
            ),
            ("int8-reference", i8w(ActQuant::Float), Kernels::Reference),
        ];
        for (name, wt, k) in cases {
            g.bench_function(BenchmarkId::new(name, n), |b| {
                b.iter(|| {
                    kernels::matvec(k, black_box(wt), n, black_box(&x), None, &mut out);
                    black_box(&out);
                })
            });
        }
    }
    g.finish();
}

/// A matrix far larger than the caches (mamba-130m's tied LM head, 50280 × 768): the
/// product streams every weight from memory once, so this measures bytes per second.
fn matvec_stream(c: &mut Criterion) {
    let (rows, cols) = (50280usize, 768usize);
    let w: Vec<f32> = (0..rows * cols)
        .map(|i| ((i * 2654435761) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    let spec = TensorSpec {
        layer: None,
        role: Role::Embedding,
        rank: 2,
        shape: [rows as u32, cols as u32, 0, 0],
    };
    let TensorData::I8 { q, scale, .. } = TensorData::encode(w.clone(), DType::I8, &spec).unwrap()
    else {
        unreachable!()
    };
    let x: Vec<f32> = (0..cols).map(|i| (i as f32 * 0.37).sin()).collect();
    let mut out = vec![0f32; rows];
    let mut g = c.benchmark_group("matvec_stream");
    g.sample_size(10);
    let w8a8 = Weights::I8(QuantI8 {
        q: &q,
        scale: &scale,
        cols,
        act: ActQuant::DynamicI8,
    });
    for (name, wt, bytes) in [
        ("f32", Weights::F32(&w), 4 * rows * cols),
        ("w8a8", w8a8, rows * cols),
    ] {
        g.throughput(Throughput::Bytes(bytes as u64));
        g.bench_function(BenchmarkId::new(name, format!("{rows}x{cols}")), |b| {
            b.iter(|| {
                kernels::matvec(
                    Kernels::Fast,
                    black_box(wt),
                    cols,
                    black_box(&x),
                    None,
                    &mut out,
                );
                black_box(&out);
            })
        });
    }
    g.finish();
}

fn steps(c: &mut Criterion) {
    let modes = [
        ("f32", DType::F32, Compute::Float),
        ("int8", DType::I8, Compute::Float),
        ("int4", DType::I4, Compute::Float),
        ("w8a8", DType::I8, Compute::W8a8),
    ];
    for (group, cfg) in [
        ("step_mamba1_d256_l4", mamba1_small()),
        ("step_s4d_h64_n64_l4", s4d_sensor()),
        // Weights far larger than the caches: the step reads every weight once.
        ("step_mamba_130m", mamba_130m()),
    ] {
        let mut g = c.benchmark_group(group);
        if group == "step_mamba_130m" {
            g.sample_size(10);
        }
        g.throughput(Throughput::Elements(1));
        for (name, dt, compute) in modes {
            let buf = tinyssm_tests::random_blob_mode(&cfg, 0x5eed, (dt, compute)).unwrap();
            let m = Model::parse(buf.as_bytes()).unwrap();
            eprintln!(
                "{group} {name}: weight bytes {}",
                m.weight_stats().total_bytes
            );
            let mut st = vec![0f32; m.state_len()];
            let mut sc = vec![0f32; m.scratch_len()];
            let mut out = vec![0f32; m.d_output()];
            let x: Vec<f32> = (0..m.d_input()).map(|i| (i as f32 * 0.37).sin()).collect();
            let mut t = 0u32;
            g.bench_function(name, |b| {
                b.iter(|| {
                    t = t.wrapping_add(1);
                    let input = match m.vocab_size() {
                        Some(v) => Input::Token(t % v),
                        None => Input::Vector(&x),
                    };
                    m.step(input, &mut st, &mut sc, &mut out).unwrap();
                    black_box(&out);
                })
            });
        }
        g.finish();
    }
}

criterion_group!(benches, int_dot, matvec, matvec_stream, steps);
criterion_main!(benches);
