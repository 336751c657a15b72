//! The integer step path (`kernels/step_int.cu`, `tinyssm_cuda::cuda::step_int`) against the
//! core's integer-only step (`Model::step_int`, `Model::step_sample_int`): outputs of every
//! step and the final states must be **equal**, bit for bit. Every check prints the count of
//! values compared and the count and largest size (in LSB) of differences.
//!
//! Every check runs on the **kernel emulator** (always) and on a **real GPU** when one is
//! present — else it prints `skipped on GPU: no CUDA device`. The shipped-model checks read
//! real data from `TINYSSM_DATA` (default `../shared/data`); without it they print one line
//! naming the missing path and skip, except where `CI` is set: there they fail.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use tinyssm_core::{fixed, int_step, Model};
use tinyssm_cuda::cuda::emu::EmuDevice;
use tinyssm_cuda::cuda::step_int::{math_probe, IntFn, StepIntParams, StepIntRunner};
use tinyssm_cuda::cuda::{self, CudaDevice, Device};
use tinyssm_host::AlignedBuf;

fn emu() -> &'static EmuDevice {
    static E: OnceLock<EmuDevice> = OnceLock::new();
    E.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("emu");
        EmuDevice::build(&dir).unwrap_or_else(|e| panic!("{e}"))
    })
}

fn gpu() -> Option<&'static CudaDevice> {
    static G: OnceLock<Option<CudaDevice>> = OnceLock::new();
    let g = G.get_or_init(|| match cuda::cuda_unavailable_reason() {
        Some(why) => {
            eprintln!("({why})");
            None
        }
        None => {
            Some(CudaDevice::new(0).unwrap_or_else(|e| panic!("a CUDA device is present: {e}")))
        }
    });
    if g.is_none() {
        println!("skipped on GPU: no CUDA device");
    }
    g.as_ref()
}

macro_rules! on_devices {
    ($f:ident $(, $arg:expr)*) => {{
        $f(emu() $(, $arg)*);
        if let Some(g) = gpu() {
            $f(g $(, $arg)*);
        }
    }};
}

fn ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// `$TINYSSM_DATA/<rel>` when it exists; else `None` after a one-line skip message (a
/// panic where `CI` is set).
fn data(rel: &str) -> Option<PathBuf> {
    let root = tinyssm_data::data_dir();
    let p = root.join(rel);
    if p.exists() {
        return Some(root);
    }
    assert!(
        !ci(),
        "{} is missing and CI is set: the integer step-path checks need the data",
        p.display()
    );
    println!("skipped: {} not found (set TINYSSM_DATA)", p.display());
    None
}

/// A shipped model: from the repository this test was built in, else `models/` or
/// `../models/` from the working directory (a test binary carried to another machine).
fn load(name: &str) -> AlignedBuf {
    let tries = [
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../models"),
        PathBuf::from("models"),
        PathBuf::from("../models"),
    ];
    let p = tries
        .iter()
        .map(|d| d.join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{name} not found in any of {tries:?}"));
    AlignedBuf::from_bytes(&std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
}

/// One stream through the core: every output row and the final state.
fn core_stream(m: &Model<'_>, x: &[i16]) -> (Vec<i32>, Vec<i32>) {
    let mut st = vec![0i32; m.state_len()];
    let mut sc = vec![0i32; m.scratch_len()];
    let mut o = vec![0i32; m.d_output()];
    m.reset_int(&mut st).unwrap();
    let mut ys = Vec::new();
    if let Some(fe) = m.front_end_int() {
        for &s in x {
            if m.step_sample_int(&fe, s, &mut st, &mut sc, &mut o).unwrap() {
                ys.extend_from_slice(&o);
            }
        }
    } else {
        for row in x.chunks_exact(m.d_input()) {
            m.step_int(row, &mut st, &mut sc, &mut o).unwrap();
            ys.extend_from_slice(&o);
        }
    }
    (ys, st)
}

/// Values compared, values that differ, largest |Δ| in LSB.
#[derive(Debug, Default, Clone, Copy)]
struct Diff {
    values: usize,
    differ: usize,
    max_lsb: u64,
}

fn diff(d: &mut Diff, a: &[i32], b: &[i32]) {
    d.values += a.len().max(b.len());
    d.differ += a.len().abs_diff(b.len());
    for (&x, &y) in a.iter().zip(b) {
        if x != y {
            d.differ += 1;
            d.max_lsb = d.max_lsb.max((x as i64).abs_diff(y as i64));
        }
    }
}

/// The streams on the device from the initial state against the core: the differences.
fn device_vs_core<D: Device>(
    dev: &D,
    dm: &Model<'_>,
    cm: &Model<'_>,
    streams: &[Vec<i16>],
    block: Option<u32>,
    per_launch: Option<usize>,
) -> Diff {
    let mut run = StepIntRunner::new(dev, dm, streams.len()).unwrap();
    if let Some(b) = block {
        run = run.with_block(b).unwrap();
    }
    if let Some(k) = per_launch {
        run = run.with_steps_per_launch(k).unwrap();
    }
    let outs = run.run_streams(streams).unwrap();
    let st = run.states().unwrap();
    let per = run.model().state_len();
    let mut d = Diff::default();
    for (s, x) in streams.iter().enumerate() {
        let (ys, cst) = core_stream(cm, x);
        assert!(!ys.is_empty(), "stream {s} produced no output in the core");
        diff(&mut d, &outs[s], &ys);
        diff(&mut d, &st[s * per..(s + 1) * per], &cst);
    }
    d
}

fn exact<D: Device>(
    dev: &D,
    what: &str,
    m: &Model<'_>,
    streams: &[Vec<i16>],
    block: Option<u32>,
    per_launch: Option<usize>,
) {
    let d = device_vs_core(dev, m, m, streams, block, per_launch);
    println!(
        "{what} on {}: {} streams, {} values (outputs and final states): {} differ, max |Δ| {} LSB",
        dev.describe(),
        streams.len(),
        d.values,
        d.differ,
        d.max_lsb
    );
    assert_eq!(
        d.differ, 0,
        "{what}: the step path differs from the core: {d:?}"
    );
}

fn pcm(x: &[f32]) -> Vec<i16> {
    x.iter()
        .map(|&v| (v as f64 * 32768.0).round().clamp(-32768.0, 32767.0) as i16)
        .collect()
}

/// The first `n` FSDD test clips as PCM.
fn fsdd_streams(root: &Path, m: &Model<'_>, n: usize) -> Vec<Vec<i16>> {
    let fe = m.config().front_end.expect("an audio model");
    let files = tinyssm_data::fsdd_files(root, tinyssm_data::Split::Test).unwrap();
    // Spread over the split: different digits and speakers.
    let step = (files.len() / n).max(1);
    files
        .iter()
        .step_by(step)
        .take(n)
        .map(|(p, _)| pcm(&tinyssm_data::fsdd_clip(p, &fe).unwrap()))
        .collect()
}

/// `n` stretches of `len` samples of record 100 in the ECG model's input format.
fn ecg_streams(root: &Path, m: &Model<'_>, n: usize, len: usize) -> Vec<Vec<i16>> {
    let (sig, _, _) = tinyssm_data::ecg::record_100(root).unwrap();
    let frac = m.int_io().unwrap().input_frac;
    let start = sig.len() * 8 / 10;
    (0..n)
        .map(|k| {
            sig[start + k * len..start + (k + 1) * len]
                .iter()
                .map(|&v| {
                    (v as f64 * 2f64.powi(frac as i32))
                        .round()
                        .clamp(-32768.0, 32767.0) as i16
                })
                .collect()
        })
        .collect()
}

#[test]
fn params_layout_matches_the_kernel() {
    fn check<D: Device>(dev: &D) {
        let (_, size) = math_probe(dev, IntFn::Sigmoid, 12, &[0], &[], &[]).unwrap();
        assert_eq!(size, size_of::<StepIntParams>(), "sizeof(StepIntParams)");
    }
    on_devices!(check);
}

/// Every i16 input at every fraction-bit count for the i16 functions, dense and edge
/// samples for exp_neg_q31, log2, ln and rsqrt: equal to the core's.
#[test]
fn fixed_point_functions_match_the_core() {
    fn check<D: Device>(dev: &D) {
        let all: Vec<i16> = (i16::MIN..=i16::MAX).collect();
        let mut count = 0usize;
        for frac in 0..=16u32 {
            type F16 = fn(i16, u32) -> i32;
            let fns: [(IntFn, F16); 4] = [
                (IntFn::Sigmoid, |x, f| fixed::sigmoid(x, f) as i32),
                (IntFn::Silu, |x, f| fixed::silu(x, f) as i32),
                (IntFn::Gelu, |x, f| fixed::gelu(x, f) as i32),
                (IntFn::SoftplusQ24, int_step::softplus_q24),
            ];
            for (f, core) in fns {
                let (got, _) = math_probe(dev, f, frac, &all, &[], &[]).unwrap();
                for (&x, &(g, _)) in all.iter().zip(&got) {
                    assert_eq!(g, core(x, frac), "{f:?}({x}, frac {frac})");
                }
                count += all.len();
            }
        }
        let mut x32: Vec<i32> = (-(1 << 16)..=0).collect();
        x32.extend((0..20_000i64).map(|k| (-(k * 107_374) - (1 << 16)) as i32));
        x32.extend([i32::MIN, i32::MIN + 1, i32::MAX, 1, -1]);
        for frac in [0u32, 8, 16, 20, 24, 28, 31, 40] {
            let (got, _) = math_probe(dev, IntFn::ExpNegQ31, frac, &[], &x32, &[]).unwrap();
            for (&x, &(g, _)) in x32.iter().zip(&got) {
                assert_eq!(g, fixed::exp_neg_q31(x, frac), "exp_neg_q31({x}, {frac})");
            }
            count += x32.len();
        }
        let mut x64: Vec<u64> = (0..1u64 << 14).collect();
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        for len in 1..=64u32 {
            for _ in 0..200 {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                let v = if len == 64 {
                    s | 1 << 63
                } else {
                    (s >> (64 - len)) | 1 << (len - 1)
                };
                x64.push(v);
            }
        }
        x64.extend([u64::MAX, 1 << 63, (1 << 62) - 1]);
        let (got, _) = math_probe(dev, IntFn::Log2, 0, &[], &[], &x64).unwrap();
        for (&v, &(g, _)) in x64.iter().zip(&got) {
            assert_eq!(g, fixed::log2_u64(v), "log2_u64({v})");
        }
        let (got, _) = math_probe(dev, IntFn::Ln, 0, &[], &[], &x64).unwrap();
        for (&v, &(g, _)) in x64.iter().zip(&got) {
            assert_eq!(g, fixed::ln_u64(v), "ln_u64({v})");
        }
        for frac in [0u32, 1, 16, 24, 31, 40, 62, 63, 255, 300] {
            let (got, _) = math_probe(dev, IntFn::Rsqrt, frac, &[], &[], &x64).unwrap();
            for (&v, &g) in x64.iter().zip(&got) {
                assert_eq!(g, fixed::rsqrt(v, frac), "rsqrt({v}, {frac})");
            }
        }
        count += x64.len() * 12;
        println!(
            "fixed-point functions on {}: {count} values equal to the core's",
            dev.describe()
        );
    }
    on_devices!(check);
}

#[test]
fn fsdd_s4d_int_is_bit_exact() {
    let Some(root) = data("fsdd/recordings") else {
        return;
    };
    let buf = load("fsdd-s4d-int.tssm");
    let m = Model::parse(buf.as_bytes()).unwrap();
    let streams = fsdd_streams(&root, &m, 3);
    fn check<D: Device>(dev: &D, m: &Model<'_>, s: &[Vec<i16>]) {
        exact(dev, "fsdd-s4d-int (block 32)", m, s, Some(32), None);
    }
    on_devices!(check, &m, &streams);
    // Another geometry computes the same: the default block, 7 samples per launch.
    exact(
        emu(),
        "fsdd-s4d-int (block 64, 7 per launch)",
        &m,
        &streams[..1],
        None,
        Some(7),
    );
}

#[test]
fn fsdd_mamba_int_is_bit_exact() {
    let Some(root) = data("fsdd/recordings") else {
        return;
    };
    let buf = load("fsdd-mamba-int.tssm");
    let m = Model::parse(buf.as_bytes()).unwrap();
    let streams = fsdd_streams(&root, &m, 3);
    fn check<D: Device>(dev: &D, m: &Model<'_>, s: &[Vec<i16>]) {
        exact(dev, "fsdd-mamba-int (block 32)", m, s, Some(32), None);
    }
    on_devices!(check, &m, &streams);
    exact(
        emu(),
        "fsdd-mamba-int (block 96, 1000 per launch)",
        &m,
        &streams[..1],
        Some(96),
        Some(1000),
    );
}

#[test]
fn ecg_rpeak_int_is_bit_exact() {
    let Some(root) = data("ecg") else {
        return;
    };
    let buf = load("ecg-rpeak-int.tssm");
    let m = Model::parse(buf.as_bytes()).unwrap();
    let streams = ecg_streams(&root, &m, 3, 800);
    fn check<D: Device>(dev: &D, m: &Model<'_>, s: &[Vec<i16>]) {
        exact(
            dev,
            "ecg-rpeak-int (block 32, 50 per launch)",
            m,
            s,
            Some(32),
            Some(50),
        );
    }
    on_devices!(check, &m, &streams);
    let short = [streams[0][..300].to_vec()];
    exact(
        emu(),
        "ecg-rpeak-int (block 1, 1 per launch)",
        &m,
        &short,
        Some(1),
        Some(1),
    );
}

/// The comparison can fail: one input sample changed on the device side only, and one
/// tensor byte changed in the model the device runs, each give differences.
#[test]
fn a_perturbation_is_detected() {
    let Some(root) = data("ecg") else {
        return;
    };
    let buf = load("ecg-rpeak-int.tssm");
    let m = Model::parse(buf.as_bytes()).unwrap();
    let streams = ecg_streams(&root, &m, 2, 400);
    // One sample of stream 1 moved by one LSB.
    let mut moved = streams.clone();
    moved[1][200] = moved[1][200].wrapping_add(1);
    let mut run = StepIntRunner::new(emu(), &m, 2)
        .unwrap()
        .with_block(32)
        .unwrap();
    let outs = run.run_streams(&moved).unwrap();
    let mut d = Diff::default();
    for (s, x) in streams.iter().enumerate() {
        diff(&mut d, &outs[s], &core_stream(&m, x).0);
    }
    println!(
        "one input sample +1 LSB: {} of {} outputs differ, max |Δ| {} LSB",
        d.differ, d.values, d.max_lsb
    );
    assert!(d.differ > 0, "a changed input went unnoticed");

    // One byte of the decoder's int8 weights changed in the device's copy of the blob.
    let t = m.find(None, tinyssm_core::Role::Decoder).unwrap();
    let tinyssm_core::Weights::Int(tinyssm_core::IntWeights::I8R(w)) = t.weights else {
        panic!("the decoder is not I8R");
    };
    let base = buf.as_bytes().as_ptr() as usize;
    let off = w.q.as_ptr() as usize - base;
    let mut bytes = buf.as_bytes().to_vec();
    bytes[off] = bytes[off].wrapping_add(1);
    let mutated = AlignedBuf::from_bytes(&bytes);
    let mm = Model::parse_skip_crc(mutated.as_bytes()).unwrap();
    let d = device_vs_core(emu(), &mm, &m, &streams, Some(32), Some(50));
    println!(
        "one decoder weight byte +1: {} of {} values differ, max |Δ| {} LSB",
        d.differ, d.values, d.max_lsb
    );
    assert!(d.differ > 0, "a changed tensor byte went unnoticed");
}

/// Float models are refused with a clear error.
#[test]
fn float_models_are_refused() {
    let buf = load("ecg-rpeak.tssm");
    let m = Model::parse(buf.as_bytes()).unwrap();
    let e = StepIntRunner::new(emu(), &m, 1)
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("integer-only"), "{e}");
}
