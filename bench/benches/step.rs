//! Step latency of tinyssm's recurrent step (criterion). Results and the reproducing
//! commands are in BENCHMARKS.md.

use std::hint::black_box;
use std::time::Duration;

use candle_core::{Device, Tensor};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tinyssm_bench::{
    blob, candle_safetensors, mamba1_small, mamba_130m, s4d_sensor, weight_bytes_per_step,
};
use tinyssm_core::{kernels, Arch, Config, DType, Input, Kernels, Model, Rwkv6Config, Weights};

struct Bufs {
    st: Vec<f32>,
    sc: Vec<f32>,
    out: Vec<f32>,
    x: Vec<f32>,
}

fn bufs(m: &Model<'_>) -> Bufs {
    Bufs {
        st: vec![0.0; m.state_len()],
        sc: vec![0.0; m.scratch_len()],
        out: vec![0.0; m.d_output()],
        x: (0..m.d_input()).map(|i| (i as f32 * 0.37).sin()).collect(),
    }
}

fn step(m: &Model<'_>, b: &mut Bufs, t: u32) {
    let input = match m.vocab_size() {
        Some(v) => Input::Token(t % v),
        None => Input::Vector(&b.x),
    };
    m.step(input, &mut b.st, &mut b.sc, &mut b.out)
        .expect("step");
    black_box(&b.out);
}

fn bench_model(
    c: &mut Criterion,
    group: &str,
    cfg: tinyssm_core::Config,
    dtypes: &[DType],
    samples: usize,
) {
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(1));
    g.sample_size(samples);
    for &dt in dtypes {
        let buf = blob(&cfg, dt).expect("blob");
        let m = Model::parse(buf.as_bytes()).expect("parse");
        eprintln!(
            "{group} {dt:?}: weight bytes read per step {}, state bytes {}, scratch bytes {}",
            weight_bytes_per_step(&m),
            m.state_len() * 4,
            m.scratch_len() * 4
        );
        for k in [Kernels::Fast, Kernels::Reference] {
            let mk = m.with_kernels(k);
            let mut b = bufs(&mk);
            let mut t = 0u32;
            g.bench_function(
                BenchmarkId::new(format!("{dt:?}"), format!("{k:?}")),
                |bch| {
                    bch.iter(|| {
                        t = t.wrapping_add(1);
                        step(&mk, &mut b, t)
                    })
                },
            );
        }
    }
    g.finish();
}

fn sensor(c: &mut Criterion) {
    bench_model(
        c,
        "s4d_h64_n64_l4",
        s4d_sensor(),
        &[DType::F32, DType::F16],
        100,
    );
}

fn small(c: &mut Criterion) {
    bench_model(
        c,
        "mamba1_d256_l4",
        mamba1_small(),
        &[DType::F32, DType::F16],
        100,
    );
}

/// Single-thread read bandwidth over 1 GiB of weights (much larger than any cache), read
/// the way a step reads them: the fast matvec kernel over 768-wide rows.
fn bandwidth(c: &mut Criterion) {
    let cols = 768;
    let rows = (1usize << 30) / 4 / cols;
    let w: Vec<f32> = (0..rows * cols).map(|i| (i % 7) as f32).collect();
    let x: Vec<f32> = (0..cols).map(|i| (i % 5) as f32).collect();
    let mut out = vec![0f32; rows];
    let mut g = c.benchmark_group("read_bandwidth");
    g.throughput(Throughput::Bytes((rows * cols * 4) as u64));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    g.bench_function("matvec_1GiB_f32", |b| {
        b.iter(|| {
            kernels::matvec(
                Kernels::Fast,
                Weights::F32(black_box(&w)),
                cols,
                &x,
                None,
                &mut out,
            );
            black_box(&out);
        })
    });
    g.finish();
}

/// mamba-130m-shaped model: tinyssm (fast and reference kernels) and candle-transformers'
/// Mamba on the same weights, one token per step, batch 1.
fn m130(c: &mut Criterion) {
    let cfg = mamba_130m();
    let buf = blob(&cfg, DType::F32).expect("blob");
    let m = Model::parse(buf.as_bytes()).expect("parse");
    eprintln!(
        "mamba130m: weight bytes read per step {}, state bytes {}",
        weight_bytes_per_step(&m),
        m.state_len() * 4
    );
    // candle on the same weights
    let st_bytes = candle_safetensors(&m);
    let dev = Device::Cpu;
    let vb =
        candle_nn::VarBuilder::from_buffered_safetensors(st_bytes, candle_core::DType::F32, &dev)
            .expect("varbuilder");
    let ccfg = candle_transformers::models::mamba::Config {
        d_model: 768,
        n_layer: 24,
        vocab_size: 50280,
        pad_vocab_size_multiple: 8,
    };
    let cm = candle_transformers::models::mamba::Model::new(&ccfg, vb.pp("backbone"))
        .expect("candle model");
    // Correctness first: both compute the same logits for a few tokens.
    let mut b = bufs(&m);
    let mut cs =
        candle_transformers::models::mamba::State::new(1, &ccfg, candle_core::DType::F32, &dev)
            .expect("state");
    let mut worst = 0f32;
    for t in [11u32, 500, 7, 42000] {
        step(&m, &mut b, t);
        let ids = Tensor::new(&[t], &dev).expect("ids");
        let y: Vec<f32> = cm
            .forward(&ids, &mut cs)
            .expect("fwd")
            .flatten_all()
            .expect("flat")
            .to_vec1()
            .expect("vec");
        let e = b
            .out
            .iter()
            .zip(&y)
            .map(|(a, c)| (a - c).abs() / c.abs().max(1.0))
            .fold(0f32, f32::max);
        worst = worst.max(e);
    }
    eprintln!(
        "mamba130m: tinyssm vs candle max |Δlogit|/max(1,|logit|) over 4 steps = {worst:.2e}"
    );
    assert!(
        worst < 1e-3,
        "tinyssm and candle disagree ({worst}): the comparison would be meaningless"
    );

    let mut g = c.benchmark_group("mamba130m_d768_l24");
    g.throughput(Throughput::Elements(1));
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(15));
    for k in [Kernels::Fast, Kernels::Reference] {
        let mk = m.with_kernels(k);
        let mut b = bufs(&mk);
        let mut t = 0u32;
        g.bench_function(BenchmarkId::new("tinyssm_f32", format!("{k:?}")), |bch| {
            bch.iter(|| {
                t = t.wrapping_add(1);
                step(&mk, &mut b, t)
            })
        });
    }
    let mut t = 0u32;
    g.bench_function(BenchmarkId::new("candle_f32", "cpu"), |bch| {
        bch.iter(|| {
            t = (t + 1) % 50280;
            let ids = Tensor::new(&[t], &dev).expect("ids");
            black_box(cm.forward(&ids, &mut cs).expect("fwd"))
        })
    });
    g.finish();
}

/// The real tiny RWKV models (v4, v5.1, v5.2, v7) from `$TINYSSM_DATA/rwkv-tiny` (rwkv.cpp's test models), as
/// converted by `tinyssm convert`; f16 weights from the FP16 files.
fn rwkv_tiny(c: &mut Criterion) {
    let dir = tinyssm_tests::data_dir().join("rwkv-tiny");
    if !dir.is_dir() {
        eprintln!("rwkv_tiny: {} absent, group not run", dir.display());
        return;
    }
    let mut g = c.benchmark_group("rwkv_tiny");
    g.throughput(Throughput::Elements(1));
    let mut files = Vec::new();
    for name in ["4v0-660K", "5v1-730K", "5v2-730K", "7v0-834K"] {
        files.push((format!("{name}-FP32"), tinyssm_tools::WeightDtype::F32));
        files.push((format!("{name}-FP16"), tinyssm_tools::WeightDtype::F16));
    }
    for (file, w) in files {
        let blob = tinyssm_tools::convert_dir(&dir.join(format!("tiny-rwkv-{file}.bin")), w)
            .expect("convert");
        let buf = tinyssm_host::AlignedBuf::from_bytes(&blob);
        let m = Model::parse(buf.as_bytes()).expect("parse");
        eprintln!(
            "rwkv_tiny {file}: weight bytes {}, state bytes {}, scratch bytes {}",
            m.weight_stats().f32_bytes + m.weight_stats().f16_bytes,
            m.state_len() * 4,
            m.scratch_len() * 4
        );
        let mut b = bufs(&m);
        m.reset(&mut b.st).expect("reset");
        let mut t = 0u32;
        g.bench_function(BenchmarkId::new("rwkv", &file), |bch| {
            bch.iter(|| {
                t = t.wrapping_add(1);
                step(&m, &mut b, t)
            })
        });
    }
    // RWKV v6: no trained tiny v6 model ships in the shared data; a random-weight model with
    // the 5v2-730K shapes (D=64, 12 layers, 8 heads, FFN 256, vocab 256) plus v6's low-rank
    // terms at the released sizes (32 per token-shift term, 64 for the decay).
    for (name, dt) in [
        ("6v0-synthetic-FP32", DType::F32),
        ("6v0-synthetic-FP16", DType::F16),
    ] {
        let cfg = Config {
            front_end: None,
            compute: tinyssm_core::Compute::Float,
            n_layers: 12,
            arch: Arch::Rwkv6(Rwkv6Config {
                d_model: 64,
                d_ffn: 256,
                vocab_size: 256,
                n_heads: 8,
                head_size: 8,
                d_lora_mix: 32,
                d_lora_decay: 64,
                norm_eps: 1e-5,
                group_norm_eps: 64e-5,
            }),
        };
        let buf = tinyssm_tests::random_blob(&cfg, 6, dt).expect("blob");
        let m = Model::parse(buf.as_bytes()).expect("parse");
        eprintln!(
            "rwkv_tiny {name}: weight bytes {}, state bytes {}, scratch bytes {}",
            m.weight_stats().f32_bytes + m.weight_stats().f16_bytes,
            m.state_len() * 4,
            m.scratch_len() * 4
        );
        let mut b = bufs(&m);
        m.reset(&mut b.st).expect("reset");
        let mut t = 0u32;
        g.bench_function(BenchmarkId::new("rwkv", name), |bch| {
            bch.iter(|| {
                t = t.wrapping_add(1) % 256;
                step(&m, &mut b, t)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, sensor, small, bandwidth, m130, rwkv_tiny);
criterion_main!(benches);
