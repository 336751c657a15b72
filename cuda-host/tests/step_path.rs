//! The verification step path (`kernels/step.cu`, `tinyssm_cuda::cuda::step`) against the
//! core stepping each stream with `Kernels::Reference`, within `Tier::STEP` (outputs and
//! states): the same f32 operations in the same order, except exp, log1p and erf, which are
//! the device's own. Every check prints the measured max ulp and max relative error. w8a8
//! models (int8 matrices, int8 activations with dynamic or static scales) are held to
//! `Tier::W8A8_STEP` and must be told apart from the same weights with f32 activations.
//!
//! Every check runs on the **kernel emulator** (always) and on a **real GPU** when one is
//! present — else it prints `skipped: no CUDA device`. The shipped-model checks read real
//! data from `TINYSSM_DATA` (default `../shared/data`) and say in one line when it is absent.

use std::path::PathBuf;
use std::sync::OnceLock;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tinyssm_core::kernels::{self as ck, Kernels};
use tinyssm_core::{
    Arch, Compute, Config, DType, HeadKind, MambaSensorConfig, Model, Role, S4dConfig, TensorSpec,
};
use tinyssm_cuda::cuda::emu::EmuDevice;
use tinyssm_cuda::cuda::step::{math_probe, StepParams, StepRunner};
use tinyssm_cuda::cuda::{self, CudaDevice, Device};
use tinyssm_cuda::verify::{compare, front_end_frames, ulp_distance, Report, Tier};
use tinyssm_host::{write_blob, AlignedBuf, HostError, TensorData};

fn emu() -> &'static EmuDevice {
    static E: OnceLock<EmuDevice> = OnceLock::new();
    E.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("emu");
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

/// Runs `f` on the emulator and, when present, on the GPU.
macro_rules! on_devices {
    ($f:ident $(, $arg:expr)*) => {{
        $f(emu() $(, $arg)*);
        if let Some(g) = gpu() {
            $f(g $(, $arg)*);
        }
    }};
}

// ---- the core side

/// One stream through the core from `init` (the model's part of the state): every step's
/// outputs and the final state.
fn core_stream(m: &Model<'_>, init: &[f32], x: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let d = m.d_input();
    let mut st = vec![0f32; m.state_len()];
    m.reset(&mut st).unwrap();
    st[..init.len()].copy_from_slice(init);
    let mut sc = vec![0f32; m.scratch_len()];
    let mut o = vec![0f32; m.d_output()];
    let mut ys = Vec::new();
    for row in x.chunks_exact(d) {
        m.step(tinyssm_core::Input::Vector(row), &mut st, &mut sc, &mut o)
            .unwrap();
        ys.extend_from_slice(&o);
    }
    st.truncate(init.len());
    (ys, st)
}

/// Asserts `got == want` bit for bit (the core against itself).
fn exact(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            g.to_bits() == w.to_bits(),
            "{what}[{i}]: step path {g:e} ({:#010x}) vs core {w:e} ({:#010x}), {} ulp",
            g.to_bits(),
            w.to_bits(),
            ulp_distance(g, w)
        );
    }
}

/// A state vector split into its layers' parts (the unit `compare` takes the rms over).
fn layers_of(m: &Model<'_>, st: &[f32]) -> Vec<Vec<f32>> {
    let l = (m.config().n_layers as usize).max(1);
    st.chunks((st.len() / l).max(1))
        .map(|v| v.to_vec())
        .collect()
}

/// Step-path outputs and states against the core's under the step tier
/// (`Tier::step_for`: `Tier::STEP`, or `Tier::W8A8_STEP` for w8a8 models): the report (max ulp,
/// max relative error), printed; panics when beyond the tier.
fn within_step_tier(
    what: &str,
    m: &Model<'_>,
    outs: &[Vec<f32>],
    core_outs: &[Vec<f32>],
    states: &[Vec<f32>],
    core_states: &[Vec<f32>],
) -> Report {
    let sb: Vec<_> = states.iter().map(|s| layers_of(m, s)).collect();
    let sc: Vec<_> = core_states.iter().map(|s| layers_of(m, s)).collect();
    let r = compare(
        Tier::step_for(m),
        what.to_string(),
        "step",
        outs,
        core_outs,
        m.d_output(),
        &sb,
        &sc,
    );
    println!(
        "{what}: max {} ulp, max rel {:.3e}, max scaled {:.3e}, max |Δ| {:.3e} (tier {:?})",
        r.max_ulp, r.max_rel_err, r.max_scaled_err, r.max_abs_err, r.tier
    );
    assert!(
        r.ok,
        "{what}: beyond {:?}, first divergence {:?}",
        r.tier, r.first_divergence
    );
    r
}

/// `streams` (inputs `[steps × d_in]` each, different lengths) through the step path in
/// windows of `window` steps from `init` states, against the core from the same states,
/// within `Tier::STEP`.
fn check_streams<D: Device>(
    dev: &D,
    m: &Model<'_>,
    streams: &[Vec<f32>],
    init: Option<&[f32]>,
    window: usize,
    block: Option<u32>,
) -> Report {
    let core = m.with_kernels(Kernels::Reference);
    let d = m.d_input();
    let b = streams.len();
    let mut run = StepRunner::new(dev, m, b).unwrap();
    if let Some(bl) = block {
        run = run.with_block(bl).unwrap();
    }
    let per = run.model().state_len();
    let zeros = vec![0f32; b * per];
    let init = init.unwrap_or(&zeros);
    run.set_states(init).unwrap();
    let lens: Vec<usize> = streams.iter().map(|s| s.len() / d).collect();
    let time = lens.iter().copied().max().unwrap();
    let o = m.d_output();
    let mut outs: Vec<Vec<f32>> = vec![Vec::new(); b];
    let mut t0 = 0;
    while t0 < time {
        let w = window.min(time - t0);
        let mut x = vec![f32::NAN; b * w * d];
        let lw: Vec<usize> = lens.iter().map(|&l| l.saturating_sub(t0).min(w)).collect();
        // Padding is NaN: a kernel that read it would poison the stream's state.
        for (s, st) in streams.iter().enumerate().filter(|(s, _)| lw[*s] > 0) {
            x[s * w * d..(s * w + lw[s]) * d].copy_from_slice(&st[t0 * d..(t0 + lw[s]) * d]);
        }
        let y = run.run(&x, w, &lw).unwrap();
        for s in 0..b {
            outs[s].extend_from_slice(&y[s * w * o..(s * w + lw[s]) * o]);
            // A stream that took no step here has no output.
            assert!(
                y[(s * w + lw[s]) * o..(s + 1) * w * o]
                    .iter()
                    .all(|v| v.is_nan()),
                "stream {s}: output written past its length"
            );
        }
        t0 += w;
    }
    let st = run.states().unwrap();
    let (mut core_outs, mut core_states) = (Vec::new(), Vec::new());
    for (s, x) in streams.iter().enumerate() {
        let (ys, fin) = core_stream(&core, &init[s * per..(s + 1) * per], x);
        core_outs.push(ys);
        core_states.push(fin);
    }
    let states: Vec<Vec<f32>> = st.chunks(per).map(|v| v.to_vec()).collect();
    within_step_tier(
        &format!("{}: {b} streams", dev.describe()),
        m,
        &outs,
        &core_outs,
        &states,
        &core_states,
    )
}

// ---- random models

fn random_blob(config: &Config, seed: u64, matrices: DType) -> AlignedBuf {
    random_blob_q(config, seed, matrices, None)
}

/// [`random_blob`] whose int8 matrices, with `xmax`, carry that static input bound (I8S).
fn random_blob_q(config: &Config, seed: u64, matrices: DType, xmax: Option<f32>) -> AlignedBuf {
    let mut rng = StdRng::seed_from_u64(seed);
    let blob = write_blob(
        config,
        |spec: &TensorSpec| -> Result<TensorData, HostError> {
            let n = spec.numel().unwrap_or(0) as usize;
            let fan_in = if spec.rank >= 2 {
                spec.shape[1].max(1) as f32
            } else {
                1.0
            };
            let v: Vec<f32> = (0..n)
                .map(|_| {
                    let u: f32 = rng.random_range(-1.0..1.0);
                    match spec.role {
                        Role::Norm | Role::NormF => 1.0 + 0.2 * u,
                        Role::A => -(0.3 + 3.0 * (u + 1.0)),
                        Role::DA => 0.95 * u,
                        Role::CB => 0.5 * u,
                        Role::D => 0.7 * u,
                        Role::DtProjBias => -2.0 + 1.5 * u,
                        _ => u * 1.9 / fan_in.sqrt(),
                    }
                })
                .collect();
            let dt = if spec.role.is_matrix() {
                matrices
            } else {
                DType::F32
            };
            let t = TensorData::encode(v, dt, spec)?;
            match (xmax, &t) {
                (Some(x), TensorData::I8 { .. }) => t.with_input_bound(x),
                _ => Ok(t),
            }
        },
    )
    .unwrap();
    AlignedBuf::from_bytes(&blob)
}

fn s4d_config(d_input: u32, h: u32, ns: u32, prenorm: bool, glu: bool, final_norm: bool) -> Config {
    Config {
        n_layers: 3,
        front_end: None,
        compute: tinyssm_core::Compute::Float,
        arch: Arch::S4d(S4dConfig {
            d_input,
            d_model: h,
            d_state: ns,
            d_output: 5,
            norm_eps: 1e-5,
            prenorm,
            glu,
            final_norm,
            head: HeadKind::Classification,
        }),
    }
}

fn mamba_config(d_conv: u32, in_bias: bool, conv_bias: bool, out_bias: bool) -> Config {
    Config {
        n_layers: 2,
        front_end: None,
        compute: tinyssm_core::Compute::Float,
        arch: Arch::MambaSensor(MambaSensorConfig {
            d_input: 3,
            d_output: 4,
            d_model: 20,
            d_inner: 40,
            d_state: 7,
            d_conv,
            dt_rank: 3,
            norm_eps: 1e-5,
            in_proj_bias: in_bias,
            conv_bias,
            out_proj_bias: out_bias,
        }),
    }
}

/// Streams of different lengths (one of them a single step) with inputs of every scale.
fn random_streams(rng: &mut StdRng, d: usize, lens: &[usize]) -> Vec<Vec<f32>> {
    lens.iter()
        .map(|&l| {
            (0..l * d)
                .map(|i| rng.random_range(-1.5f32..1.5) * if i % 7 == 0 { 6.0 } else { 1.0 })
                .collect()
        })
        .collect()
}

fn random_models_case<D: Device>(dev: &D) {
    let mut rng = StdRng::seed_from_u64(7);
    let lens = [23usize, 1, 17, 30, 9];
    let mut cases: Vec<(String, Config, DType, Option<f32>)> = Vec::new();
    for (i, &(pre, glu, fin)) in [
        (true, true, true),
        (false, true, false),
        (true, false, false),
        (false, false, true),
    ]
    .iter()
    .enumerate()
    {
        let dt = if i == 1 { DType::F16 } else { DType::F32 };
        cases.push((
            format!("s4d prenorm={pre} glu={glu} final_norm={fin} {dt:?}"),
            s4d_config(
                3 + i as u32,
                24 + 5 * i as u32,
                2 * (3 + i as u32),
                pre,
                glu,
                fin,
            ),
            dt,
            None,
        ));
    }
    for (i, &(dc, ib, cb, ob)) in [
        (4, false, true, false),
        (1, true, false, true),
        (2, true, true, true),
    ]
    .iter()
    .enumerate()
    {
        let dt = if i == 2 { DType::F16 } else { DType::F32 };
        cases.push((
            format!("mamba d_conv={dc} in_bias={ib} conv_bias={cb} out_bias={ob} {dt:?}"),
            mamba_config(dc, ib, cb, ob),
            dt,
            None,
        ));
    }
    // int8 matrices: with f32 activations, and w8a8 with dynamic and static scales.
    for (i, (compute, xmax)) in [
        (Compute::Float, None),
        (Compute::W8a8, None),
        (Compute::W8a8, Some(2.5f32)),
    ]
    .into_iter()
    .enumerate()
    {
        let what = match xmax {
            Some(_) => "static",
            None => "dynamic",
        };
        let mut s4d = s4d_config(4, 28, 8, i != 1, true, i == 2);
        s4d.compute = compute;
        cases.push((
            format!("s4d int8 {} {what}", compute.name()),
            s4d,
            DType::I8,
            xmax,
        ));
        let mut mamba = mamba_config(3, i == 0, true, i != 2);
        mamba.compute = compute;
        cases.push((
            format!("mamba int8 {} {what}", compute.name()),
            mamba,
            DType::I8,
            xmax,
        ));
    }
    for (k, (name, cfg, dt, xmax)) in cases.iter().enumerate() {
        let blob = random_blob_q(cfg, 100 + k as u64, *dt, *xmax);
        let m = Model::parse(blob.as_bytes()).unwrap();
        let streams = random_streams(&mut rng, m.d_input(), &lens);
        // Windows of 8 steps: the state carries over between runs.
        let r = check_streams(dev, &m, &streams, None, 8, None);
        if cfg.compute == Compute::W8a8 {
            w8a8_is_not_float(dev, cfg, 100 + k as u64, *xmax, &streams);
        }
        println!(
            "{}: {name}: within the step tier ({} ulp, rel {:.3e})",
            dev.describe(),
            r.max_ulp,
            r.max_rel_err
        );
    }
}

/// The step path on a w8a8 model is told apart from the core computing the same int8
/// weights with f32 activations: activation quantization is what the kernels compute.
fn w8a8_is_not_float<D: Device>(
    dev: &D,
    cfg: &Config,
    seed: u64,
    xmax: Option<f32>,
    streams: &[Vec<f32>],
) {
    let blob = random_blob_q(cfg, seed, DType::I8, xmax);
    let m = Model::parse(blob.as_bytes()).unwrap();
    let mut fcfg = *cfg;
    fcfg.compute = Compute::Float;
    let fblob = random_blob_q(&fcfg, seed, DType::I8, None);
    let fm = Model::parse(fblob.as_bytes()).unwrap();
    let core = fm.with_kernels(Kernels::Reference);
    let d = m.d_input();
    let lens: Vec<usize> = streams.iter().map(|s| s.len() / d).collect();
    let time = lens.iter().copied().max().unwrap();
    let mut x = vec![0f32; streams.len() * time * d];
    for (s, st) in streams.iter().enumerate() {
        x[s * time * d..s * time * d + st.len()].copy_from_slice(st);
    }
    let mut run = StepRunner::new(dev, &m, streams.len()).unwrap();
    let y = run.run(&x, time, &lens).unwrap();
    let o = m.d_output();
    let per = run.model().state_len();
    let outs: Vec<Vec<f32>> = (0..streams.len())
        .map(|s| y[s * time * o..(s * time + lens[s]) * o].to_vec())
        .collect();
    let (mut fo, mut fs) = (Vec::new(), Vec::new());
    for st in streams {
        let (ys, fin) = core_stream(&core, &vec![0f32; per], st);
        fo.push(ys);
        fs.push(fin);
    }
    let st = run.states().unwrap();
    let sb: Vec<_> = st.chunks(per).map(|v| layers_of(&m, v)).collect();
    let sc: Vec<_> = fs.iter().map(|v| layers_of(&m, v)).collect();
    let r = compare(
        Tier::W8A8_STEP,
        "w8a8 vs float".into(),
        "step",
        &outs,
        &fo,
        o,
        &sb,
        &sc,
    );
    println!(
        "  w8a8 step path vs the core's f32-activation step: max scaled {:.3e}, NMSE {:.2e} (told apart)",
        r.max_scaled_err, r.nmse
    );
    assert!(!r.ok, "w8a8 not told apart from float activations");
}

#[test]
fn random_models_agree_with_the_core_reference_within_the_step_tier() {
    on_devices!(random_models_case);
}

fn layout_case<D: Device>(dev: &D) {
    // The state the core reached after a prefix, handed to the step path as its state
    // vector, continues exactly as the core continues: the layouts are one.
    let mut rng = StdRng::seed_from_u64(11);
    for (k, cfg) in [
        s4d_config(2, 16, 8, true, true, true),
        mamba_config(4, false, true, false),
    ]
    .iter()
    .enumerate()
    {
        let blob = random_blob(cfg, 300 + k as u64, DType::F32);
        let m = Model::parse(blob.as_bytes()).unwrap();
        let core = m.with_kernels(Kernels::Reference);
        let per = StepRunner::new(dev, &m, 1).unwrap().model().state_len();
        let prefix = random_streams(&mut rng, m.d_input(), &[12, 5, 20]);
        let mut init = Vec::new();
        for p in &prefix {
            let (_, st) = core_stream(&core, &vec![0f32; per], p);
            init.extend_from_slice(&st);
        }
        let rest = random_streams(&mut rng, m.d_input(), &[6, 6, 3]);
        check_streams(dev, &m, &rest, Some(&init), 6, None);
        // And the step path's own states, read back, are what the core holds after the
        // same inputs (within the tier).
        let mut run = StepRunner::new(dev, &m, 1).unwrap();
        assert!(
            run.states().unwrap().iter().all(|&v| v == 0.0),
            "initial state is zeros"
        );
        let y = run.run(&prefix[0], 12, &[12]).unwrap();
        let (ys, _) = core_stream(&core, &vec![0f32; per], &prefix[0]);
        within_step_tier(
            &format!("{}: state vector", dev.describe()),
            &m,
            &[y],
            &[ys],
            &[run.states().unwrap()],
            &[init[..per].to_vec()],
        );
        run.reset().unwrap();
        assert!(
            run.states().unwrap().iter().all(|&v| v == 0.0),
            "reset clears"
        );
    }
}

#[test]
fn the_state_layout_is_the_cores_state_vector() {
    on_devices!(layout_case);
}

fn block_case<D: Device>(dev: &D) {
    let mut rng = StdRng::seed_from_u64(5);
    let blob = random_blob(&mamba_config(4, true, true, true), 9, DType::F32);
    let m = Model::parse(blob.as_bytes()).unwrap();
    let streams = random_streams(&mut rng, m.d_input(), &[7, 4]);
    for block in [1, 7, 32, 96] {
        check_streams(dev, &m, &streams, None, 7, Some(block));
    }
}

#[test]
fn every_block_size_computes_the_same() {
    on_devices!(block_case);
}

fn sensitivity_case<D: Device>(dev: &D) {
    // The comparison can fail: the step path on inputs with one value changed by a relative
    // 1e-3 is beyond Tier::STEP of the core on the original inputs (and within it on the
    // same inputs).
    let mut rng = StdRng::seed_from_u64(3);
    for (k, cfg) in [
        s4d_config(3, 48, 8, true, true, true),
        mamba_config(4, false, true, false),
    ]
    .iter()
    .enumerate()
    {
        let blob = random_blob(cfg, 77 + k as u64, DType::F32);
        let m = Model::parse(blob.as_bytes()).unwrap();
        let d = m.d_input();
        let x = random_streams(&mut rng, d, &[20]).remove(0);
        let per = StepRunner::new(dev, &m, 1).unwrap().model().state_len();
        let (refr, rst) = core_stream(&m.with_kernels(Kernels::Reference), &vec![0f32; per], &x);
        let (fast, fst) = core_stream(&m.with_kernels(Kernels::Fast), &vec![0f32; per], &x);
        let run_on = |xs: &[f32]| {
            let mut run = StepRunner::new(dev, &m, 1).unwrap();
            let y = run.run(xs, 20, &[20]).unwrap();
            (y, run.states().unwrap())
        };
        let (y, st) = run_on(&x);
        within_step_tier(
            &format!("{}: sensitivity model {k}, same inputs", dev.describe()),
            &m,
            std::slice::from_ref(&y),
            std::slice::from_ref(&refr),
            std::slice::from_ref(&st),
            std::slice::from_ref(&rst),
        );
        let mut xp = x.clone();
        xp[d] *= 1.0 + 1e-3; // step 1, first input channel
        let (yp, stp) = run_on(&xp);
        let bad = compare(
            Tier::STEP,
            dev.describe(),
            "step",
            &[yp],
            std::slice::from_ref(&refr),
            m.d_output(),
            &[layers_of(&m, &stp)],
            &[layers_of(&m, &rst)],
        );
        println!(
            "{}: sensitivity model {k}, one input ×(1 + 1e-3): max {} ulp, max rel {:.3e}, ok {}",
            dev.describe(),
            bad.max_ulp,
            bad.max_rel_err,
            bad.ok
        );
        assert!(
            !bad.ok,
            "a relative 1e-3 change of one input passed Tier::STEP: the tier would not see it"
        );
        let fr = compare(
            Tier::STEP,
            "fast".into(),
            "step",
            &[y],
            &[fast],
            m.d_output(),
            &[layers_of(&m, &st)],
            &[layers_of(&m, &fst)],
        );
        println!(
            "{}: sensitivity model {k}, step path vs the core's Fast kernels: max {} ulp, max rel {:.3e}, ok {}",
            dev.describe(),
            fr.max_ulp,
            fr.max_rel_err,
            fr.ok
        );
    }
}

#[test]
fn a_perturbed_input_is_told_apart() {
    on_devices!(sensitivity_case);
}

// ---- the scalar functions

fn math_case<D: Device>(dev: &D) {
    // Every 4099th f32 bit pattern (about a million, all signs and exponents), a dense
    // sweep of the range the models use, and the special values.
    let mut x: Vec<f32> = (0..=u32::MAX / 4099)
        .map(|i| f32::from_bits(i * 4099))
        .collect();
    x.extend((0..200_000).map(|i| -40.0 + 80.0 * i as f32 / 200_000.0));
    x.extend([
        0.0,
        -0.0,
        1.0,
        -1.0,
        20.0,
        20.000002,
        88.72284,
        88.7,
        -87.33655,
        -103.97208,
        -104.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        f32::MIN_POSITIVE,
        1e-40,
        -1e-40,
        6.0,
        -6.0,
        0.84375,
        1.25,
    ]);
    let (got, size) = math_probe(dev, &x).unwrap();
    assert_eq!(
        size,
        size_of::<StepParams>(),
        "StepParams layout: C++ vs Rust"
    );
    type Scalar = fn(f32) -> f32;
    let fns: [(&str, Scalar); 7] = [
        ("exp", libm::expf),
        ("log1p", libm::log1pf),
        ("erf", libm::erff),
        ("gelu", ck::gelu),
        ("silu", |v| ck::silu(Kernels::Reference, v)),
        ("sigmoid", |v| ck::sigmoid(Kernels::Reference, v)),
        ("softplus", |v| ck::softplus(Kernels::Reference, v)),
    ];
    // Bounds on the distance to the core's values, in ulp: the device's documented error
    // (CUDA: expf 2, log1pf 1, erff 2 ulp from the correctly rounded result; the host C
    // library's are no larger on these) plus 1 ulp for the core's own routines (each within
    // 1 ulp). The composites add the roundings of their own operations: sigmoid and silu
    // one addition and one division after exp (3 + 2), softplus log1p after exp (3 + 2 + 1).
    // GELU's `1 + erf` cancels for negative x, so its bound is absolute: 0.5·|x| times
    // (erf's 3 ulp + 1 for the addition, at most ulp(1) each) plus 2 ulp of the result.
    let bounds: [u64; 7] = [3, 2, 3, 0, 5, 5, 6];
    for (((name, f), g), &bound) in fns.iter().zip(&got).zip(&bounds) {
        let mut worst = (0u64, 0f32, 0f32, 0f32);
        let mut bad = None;
        for (&v, &gv) in x.iter().zip(g) {
            let want = f(v);
            let u = ulp_distance(gv, want);
            if u > worst.0 {
                worst = (u, v, gv, want);
            }
            let ok = if *name == "gelu" {
                let ulp_w = (f32::from_bits(want.abs().to_bits() + 1) - want.abs()).abs();
                u == 0 || (gv - want).abs() <= 0.5 * v.abs() * 4.0 * f32::EPSILON + 2.0 * ulp_w
            } else {
                u <= bound
            };
            if !ok && bad.is_none() {
                bad = Some((v, gv, want, u));
            }
        }
        println!(
            "{}: {name}: max {} ulp from the core's (at x = {:e}: {:e} vs {:e})",
            dev.describe(),
            worst.0,
            worst.1,
            worst.2,
            worst.3
        );
        assert!(
            bad.is_none(),
            "{}: {name} beyond its bound ({bound} ulp; gelu: absolute) of the core's: (x, got, core, ulp) = {:?}",
            dev.describe(),
            bad
        );
    }
}

#[test]
fn the_scalar_functions_are_within_the_documented_ulp_bound_of_the_cores() {
    on_devices!(math_case);
}

// ---- errors

#[test]
fn bad_inputs_are_errors() {
    let dev = emu();
    let blob = random_blob(&s4d_config(2, 8, 4, true, true, true), 1, DType::F32);
    let m = Model::parse(blob.as_bytes()).unwrap();
    assert!(StepRunner::new(dev, &m, 0).is_err(), "zero streams");
    let mut run = StepRunner::new(dev, &m, 2).unwrap();
    assert!(run.run(&[0.0; 7], 2, &[2, 2]).is_err(), "input length");
    assert!(
        run.run(&[0.0; 8], 2, &[3, 1]).is_err(),
        "length past the window"
    );
    assert!(
        run.run(&[0.0; 8], 2, &[2]).is_err(),
        "lengths for every stream"
    );
    assert!(run.set_states(&[0.0; 3]).is_err(), "state length");
    assert!(StepRunner::new(dev, &m, 1).unwrap().with_block(0).is_err());
    // An architecture the step kernels do not cover.
    let lm = Config {
        n_layers: 1,
        front_end: None,
        compute: tinyssm_core::Compute::Float,
        arch: Arch::Mamba1(tinyssm_core::Mamba1Config {
            d_model: 8,
            d_inner: 16,
            d_state: 4,
            d_conv: 4,
            dt_rank: 2,
            vocab_size: 10,
            norm_eps: 1e-5,
            in_proj_bias: false,
            conv_bias: true,
            out_proj_bias: false,
            tied_embeddings: true,
        }),
    };
    let blob = random_blob(&lm, 2, DType::F32);
    let m = Model::parse(blob.as_bytes()).unwrap();
    assert!(StepRunner::new(dev, &m, 1).is_err());
}

// ---- shipped models on real data

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A shipped model: from the repository this test was built in, else `models/` or
/// `../models/` from the working directory (a test binary carried to another machine).
fn load(name: &str) -> AlignedBuf {
    let tries = [
        repo().join("models"),
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

fn data_or_skip(rel: &str, source: &str) -> Option<PathBuf> {
    // TINYSSM_DATA, else ../shared/data beside the repository root.
    let d = std::env::var_os("TINYSSM_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("..").join("shared").join("data"));
    if d.join(rel).exists() {
        Some(d)
    } else {
        println!(
            "skipped: {} not found in TINYSSM_DATA ({source})",
            d.join(rel).display()
        );
        None
    }
}

fn fsdd_case<D: Device>(dev: &D, model: &str) {
    let Some(dir) = data_or_skip("fsdd/recordings", "Free Spoken Digit Dataset") else {
        return;
    };
    let blob = load(model);
    let m = Model::parse(blob.as_bytes()).unwrap();
    let fe = m.front_end().expect("front end");
    let mut files = tinyssm_data::fsdd_files(&dir, tinyssm_data::Split::Test).unwrap();
    // 10 clips spread over the digits and speakers.
    files = files.into_iter().step_by(29).take(10).collect();
    let clips: Vec<Vec<f32>> = files
        .iter()
        .map(|(p, _)| tinyssm_data::fsdd_clip(p, fe.config()).unwrap())
        .collect();
    let frames: Vec<Vec<f32>> = clips
        .iter()
        .map(|c| front_end_frames(&m, c).unwrap())
        .collect();
    let r = check_streams(dev, &m, &frames, None, 64, None);
    // The core fed samples through its own front end ends in the same state and last
    // outputs as the frames fed to the step path (the frames are the core's).
    let core = m.with_kernels(Kernels::Reference);
    let mut st = vec![0f32; m.state_len()];
    let mut sc = vec![0f32; m.scratch_len()];
    let mut o = vec![0f32; m.d_output()];
    core.reset(&mut st).unwrap();
    let mut last = Vec::new();
    let fe = core.front_end().unwrap();
    for &s in &clips[0] {
        if core.step_sample(&fe, s, &mut st, &mut sc, &mut o).unwrap() {
            last = o.clone();
        }
    }
    let per = StepRunner::new(dev, &m, 1).unwrap().model().state_len();
    let (ys, fin) = core_stream(&core, &vec![0f32; per], &frames[0]);
    exact(
        "samples vs frames: last output",
        &ys[ys.len() - o.len()..],
        &last,
    );
    exact("samples vs frames: state", &fin, &st[..per]);
    println!(
        "{}: {model}: {} FSDD clips ({} frames) within the step tier ({} ulp, rel {:.3e})",
        dev.describe(),
        frames.len(),
        frames.iter().map(|f| f.len() / m.d_input()).sum::<usize>(),
        r.max_ulp,
        r.max_rel_err
    );
}

#[test]
fn shipped_fsdd_s4d_agrees_within_the_step_tier_on_real_clips() {
    on_devices!(fsdd_case, "fsdd-s4d.tssm");
}

#[test]
fn shipped_fsdd_mamba_agrees_within_the_step_tier_on_real_clips() {
    on_devices!(fsdd_case, "fsdd-mamba.tssm");
}

fn ecg_case<D: Device>(dev: &D, model: &str) {
    let Some(dir) = data_or_skip("ecg/100.dat", "MIT-BIH Arrhythmia Database, PhysioNet") else {
        return;
    };
    let (sig, _, _) = tinyssm_data::ecg::record_100(&dir).unwrap();
    let blob = load(model);
    let m = Model::parse(blob.as_bytes()).unwrap();
    // Eight stretches from the test region, of different lengths (1.1 to 1.5 s).
    let start = sig.len() * 8 / 10;
    let streams: Vec<Vec<f32>> = (0..8)
        .map(|i| {
            let a = start + i * 9_000;
            sig[a..a + 400 + 20 * i].to_vec()
        })
        .collect();
    let r = check_streams(dev, &m, &streams, None, 128, None);
    println!(
        "{}: {model}: 8 ECG stretches within the step tier ({} ulp, rel {:.3e})",
        dev.describe(),
        r.max_ulp,
        r.max_rel_err
    );
}

#[test]
fn shipped_ecg_model_agrees_within_the_step_tier_on_real_ecg() {
    on_devices!(ecg_case, "ecg-rpeak.tssm");
}

// The shipped w8a8 models (int8 matrices, int8 activations with dynamic scales): the step
// kernels quantize each linear's input as the core does and sum the int8 products exactly.

#[test]
fn shipped_w8a8_ecg_model_agrees_within_the_step_tier_on_real_ecg() {
    on_devices!(ecg_case, "ecg-rpeak-int8.tssm");
}

#[test]
fn shipped_w8a8_fsdd_s4d_models_agree_within_the_step_tier_on_real_clips() {
    on_devices!(fsdd_case, "fsdd-s4d-int8.tssm");
    on_devices!(fsdd_case, "fsdd-s4d-small-int8.tssm");
    on_devices!(fsdd_case, "fsdd-s4d-tiny-int8.tssm");
}

#[test]
fn shipped_w8a8_fsdd_mamba_agrees_within_the_step_tier_on_real_clips() {
    on_devices!(fsdd_case, "fsdd-mamba-int8.tssm");
}

fn basicmotions_case<D: Device>(dev: &D) {
    let Some(dir) = data_or_skip(
        "imu/BasicMotions_TEST.arff",
        "BasicMotions, UEA/UCR time series archive",
    ) else {
        return;
    };
    let cases = tinyssm_data::basicmotions(&dir, tinyssm_data::Split::Test).unwrap();
    let blob = load("basicmotions-s4d.tssm");
    let m = Model::parse(blob.as_bytes()).unwrap();
    let streams: Vec<Vec<f32>> = cases
        .iter()
        .step_by(3)
        .take(12)
        .map(|c| c.feats.clone())
        .collect();
    let r = check_streams(dev, &m, &streams, None, 100, None);
    println!(
        "{}: basicmotions-s4d.tssm: {} cases within Tier::STEP ({} ulp, rel {:.3e})",
        dev.describe(),
        streams.len(),
        r.max_ulp,
        r.max_rel_err
    );
}

#[test]
fn shipped_basicmotions_model_agrees_within_the_step_tier_on_real_cases() {
    on_devices!(basicmotions_case);
}

// ---- the GPU build

#[test]
fn the_gpu_build_of_the_kernels_own_arithmetic_has_no_contraction() {
    use tinyssm_cuda::cuda::kernels::{self, MODULES};
    if !kernels::nvrtc_present() {
        assert!(
            std::env::var("TINYSSM_REQUIRE_NVRTC").as_deref() != Ok("1"),
            "NVRTC required (TINYSSM_REQUIRE_NVRTC=1) but not loadable"
        );
        println!("skipped: NVRTC not found (scripts/test.sh installs it)");
        return;
    }
    let m = MODULES
        .iter()
        .find(|m| m.name == "step")
        .expect("step module registered");
    let opts = kernels::nvrtc_options("sm_90");
    assert!(opts.iter().any(|o| o == "--fmad=false"), "{opts:?}");
    // The real build: CUDA's expf, log1pf and erff are written with explicit fused
    // multiply-adds (fmaf, which --fmad=false does not touch) and, in expf, the hardware
    // ex2.approx; their PTX cannot be told apart from the kernels' own, so this build is
    // only checked for compiling with IEEE division and square root.
    let ptx = kernels::compile_module_in(m, "sm_90", None).unwrap().ptx;
    for want in ["div.rn.f32", "sqrt.rn.f32"] {
        assert!(ptx.contains(want), "step PTX lacks {want}");
    }
    let lib: Vec<&str> = ["fma.rn.f32", ".approx", ".ftz"]
        .into_iter()
        .filter(|b| ptx.contains(b))
        .collect();
    println!("step PTX with the built-ins contains {lib:?}");
    // The kernels' own arithmetic: the same module with the three functions replaced by
    // plain arithmetic (TINYSSM_STEP_MATH_STUB). Every multiply-add is two rounded ops,
    // every division and square root IEEE, and no hardware approximation.
    let stub = kernels::Module {
        name: m.name,
        source: Box::leak(
            format!("#define TINYSSM_STEP_MATH_STUB 1\n{}", m.source).into_boxed_str(),
        ),
        kernels: m.kernels,
    };
    let own = kernels::compile_module_in(&stub, "sm_90", None)
        .unwrap()
        .ptx;
    for bad in ["fma.rn.f32", "mad.f32", ".approx", "div.full", ".ftz"] {
        assert!(
            !own.contains(bad),
            "step PTX (own arithmetic) contains {bad}"
        );
    }
    for want in ["mul.rn.f32", "add.rn.f32", "div.rn.f32", "sqrt.rn.f32"] {
        assert!(own.contains(want), "step PTX (own arithmetic) lacks {want}");
    }
    println!(
        "step PTX: {} lines; own arithmetic ({} lines) IEEE f32 only",
        ptx.lines().count(),
        own.lines().count()
    );
}
