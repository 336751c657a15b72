//! Kernel benchmarks of the CUDA backend: the device's copy bandwidth (the ceiling), then
//! the selective scan and the SSD scan (forward on the chunked tensor-core kernel and on the
//! recurrent one), forward and backward, in GB/s of the fewest bytes
//! each must move (every input read once, every output written once), timed with device
//! events, median of repeats, two input sets alternated, after a correctness check of the
//! same kernels against the CPU reference.
//!
//! ```text
//! tinyssm-cuda-bench            # on GPU 0, the issue's sizes (B=16, D=1536, N=16, L=4096)
//! tinyssm-cuda-bench --emulate  # the same program on the kernel emulator, small sizes
//! ```
//!
//! Last, the verification step path (`kernels/step.cu`) on models/ecg-rpeak.tssm (or
//! `--step-model PATH`): 4096 streams × 512 steps (8 × 16 on `--emulate`), in
//! stream-steps per second, after a bit-for-bit check against the core.
//!
//! Results go to stdout as a table (and as JSON with `--json FILE`).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tinyssm_cuda::backend::{
    Backend, SelScanDims, SelScanGrads, SelScanIn, SsdDims, SsdGrads, SsdIn,
};
use tinyssm_cuda::cuda::{self, CudaBackend, Device, SsdFwdKernel};
use tinyssm_cuda::{BackendError, Cpu};

type R<T> = Result<T, BackendError>;

fn rnd(rng: &mut StdRng, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(lo..hi)).collect()
}

fn median(mut v: Vec<f32>) -> f32 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

struct Row {
    name: String,
    ms: f32,
    bytes: f64,
}

fn sel_inputs(rng: &mut StdRng, d: SelScanDims) -> Vec<Vec<f32>> {
    let bt = d.batch * d.time * d.d;
    let btn = d.batch * d.time * d.n;
    vec![
        rnd(rng, bt, -1.0, 1.0),
        rnd(rng, bt, -3.0, 1.0),
        rnd(rng, d.d, -1.0, 0.5),
        rnd(rng, d.d * d.n, -2.0, -0.1),
        rnd(rng, btn, -1.0, 1.0),
        rnd(rng, btn, -1.0, 1.0),
        rnd(rng, d.d, -1.0, 1.0),
        rnd(rng, bt, -2.0, 2.0),
    ]
}

fn sel_in<T>(v: &[T]) -> SelScanIn<'_, T> {
    SelScanIn {
        u: &v[0],
        dt: &v[1],
        bias: &v[2],
        a: &v[3],
        bm: &v[4],
        cm: &v[5],
        dskip: &v[6],
        z: &v[7],
    }
}

fn ssd_inputs(rng: &mut StdRng, d: SsdDims) -> Vec<Vec<f32>> {
    let bt = d.batch * d.time;
    vec![
        rnd(rng, bt * d.heads * d.head_dim, -1.0, 1.0),
        rnd(rng, bt * d.heads, -3.0, 1.0),
        rnd(rng, d.heads, -1.0, 0.5),
        rnd(rng, d.heads, -2.0, -0.1),
        rnd(rng, bt * d.groups * d.n, -1.0, 1.0),
        rnd(rng, bt * d.groups * d.n, -1.0, 1.0),
        rnd(rng, d.heads, -1.0, 1.0),
    ]
}

fn ssd_in<T>(v: &[T]) -> SsdIn<'_, T> {
    SsdIn {
        x: &v[0],
        dt: &v[1],
        bias: &v[2],
        a: &v[3],
        bm: &v[4],
        cm: &v[5],
        dskip: &v[6],
    }
}

/// ‖a − b‖² / ‖b‖².
fn nmse(a: &[f32], b: &[f32]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
    let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    num / den.max(1e-300)
}

fn check<D: Device>(be: &CudaBackend<D>) -> R<()> {
    let mut rng = StdRng::seed_from_u64(7);
    let dims = SelScanDims {
        batch: 2,
        time: 300,
        d: 96,
        n: 16,
    };
    let h = sel_inputs(&mut rng, dims);
    let (mut yc, mut sc) = (
        vec![0f32; 2 * 300 * 96],
        vec![0f32; Cpu.selective_scan_states_len(dims)],
    );
    Cpu.selective_scan_fwd(dims, sel_in(&h), &mut yc, &mut sc)?;
    let dev: Vec<_> = h.iter().map(|v| be.upload(v)).collect::<R<_>>()?;
    let mut y = be.upload(&vec![f32::NAN; yc.len()])?;
    let mut st = be.zeros(be.selective_scan_states_len(dims))?;
    be.selective_scan_fwd(dims, sel_in(&dev), &mut y, &mut st)?;
    let e = nmse(&be.download(&y)?, &yc);
    println!("check: selective scan forward vs CPU reference, NMSE {e:.2e}");
    if e.is_nan() || e >= 1e-10 {
        return Err(BackendError::Unavailable(format!(
            "selective scan disagrees with the CPU (NMSE {e:.2e})"
        )));
    }
    let sd = SsdDims {
        batch: 2,
        time: 200,
        heads: 4,
        head_dim: 16,
        groups: 2,
        n: 64,
        dt_min: 0.0,
        dt_max: f32::INFINITY,
    };
    let h = ssd_inputs(&mut rng, sd);
    let (mut yc, mut sc) = (
        vec![0f32; 2 * 200 * 64],
        vec![0f32; Cpu.ssd_scan_states_len(sd)],
    );
    Cpu.ssd_scan_fwd(sd, ssd_in(&h), &mut yc, &mut sc)?;
    let dev: Vec<_> = h.iter().map(|v| be.upload(v)).collect::<R<_>>()?;
    for kernel in [SsdFwdKernel::Chunked, SsdFwdKernel::Recurrent] {
        let mut y = be.upload(&vec![f32::NAN; yc.len()])?;
        let mut st = be.zeros(be.ssd_scan_states_len(sd))?;
        be.ssd_scan_fwd_with(kernel, sd, ssd_in(&dev), &mut y, &mut st)?;
        let e = nmse(&be.download(&y)?, &yc);
        println!("check: SSD scan forward ({kernel:?} kernel) vs CPU reference, NMSE {e:.2e}");
        if e.is_nan() || e >= 1e-10 {
            return Err(BackendError::Unavailable(format!(
                "SSD scan ({kernel:?} kernel) disagrees with the CPU (NMSE {e:.2e})"
            )));
        }
    }
    Ok(())
}

fn bench<D: Device>(be: &CudaBackend<D>, small: bool, reps: usize) -> R<Vec<Row>> {
    let dev = be.device();
    let mut rows = Vec::new();
    let mut rng = StdRng::seed_from_u64(1);
    // Copy bandwidth: bytes read + bytes written.
    let n = if small { 1 << 20 } else { 1 << 28 };
    let src = be.upload(&rnd(&mut rng, n, -1.0, 1.0))?;
    let mut dst = be.zeros(n)?;
    be.copy(&src, &mut dst)?;
    let t: Vec<f32> = (0..reps)
        .map(|_| dev.time_ms(&mut || be.copy(&src, &mut dst)))
        .collect::<R<_>>()?;
    rows.push(Row {
        name: format!("device copy {} MiB", (n * 4) >> 20),
        ms: median(t),
        bytes: 2.0 * n as f64 * 4.0,
    });
    drop((src, dst));

    // Selective scan.
    let dims = if small {
        SelScanDims {
            batch: 2,
            time: 256,
            d: 64,
            n: 16,
        }
    } else {
        SelScanDims {
            batch: 16,
            time: 4096,
            d: 1536,
            n: 16,
        }
    };
    let SelScanDims { batch, time, d, n } = dims;
    let (bld, bln) = (
        (batch * time * d) as f64 * 4.0,
        (batch * time * n) as f64 * 4.0,
    );
    let sets: Vec<Vec<_>> = (0..2)
        .map(|_| {
            sel_inputs(&mut rng, dims)
                .iter()
                .map(|v| be.upload(v))
                .collect::<R<Vec<_>>>()
        })
        .collect::<R<_>>()?;
    let mut y = be.zeros(batch * time * d)?;
    let mut st = be.zeros(be.selective_scan_states_len(dims))?;
    let saved = be.buf_len(&st) as f64 * 4.0;
    let mut k = 0;
    let mut fwd = || {
        k += 1;
        be.selective_scan_fwd(dims, sel_in(&sets[k % 2]), &mut y, &mut st)
    };
    fwd()?;
    let t: Vec<f32> = (0..reps).map(|_| dev.time_ms(&mut fwd)).collect::<R<_>>()?;
    let tag = format!("B={batch} D={d} N={n} L={time}");
    rows.push(Row {
        name: format!("selective scan fwd {tag}"),
        ms: median(t),
        bytes: 4.0 * bld + 2.0 * bln + saved,
    });
    let dy = be.upload(&rnd(&mut rng, batch * time * d, -1.0, 1.0))?;
    let mut g: Vec<_> = [
        batch * time * d,
        batch * time * d,
        batch * time * n,
        batch * time * n,
        batch * time * d,
        d * n,
        d,
        d,
    ]
    .iter()
    .map(|&l| be.zeros(l))
    .collect::<R<_>>()?;
    be.selective_scan_fwd(dims, sel_in(&sets[0]), &mut y, &mut st)?;
    let mut bwd = || {
        let [du, ddt, dbm, dcm, dz, da, dskip, dbias] = &mut g[..] else {
            unreachable!()
        };
        be.selective_scan_bwd(
            dims,
            sel_in(&sets[0]),
            &st,
            &dy,
            SelScanGrads {
                du,
                ddt,
                dbm,
                dcm,
                dz,
                da,
                dskip,
                dbias,
            },
        )
    };
    bwd()?;
    let t: Vec<f32> = (0..reps).map(|_| dev.time_ms(&mut bwd)).collect::<R<_>>()?;
    // Reads u, dt, z, dy, B, C, checkpoints; writes du, ddt, dz, dB, dC.
    rows.push(Row {
        name: format!("selective scan bwd {tag}"),
        ms: median(t),
        bytes: 7.0 * bld + 4.0 * bln + saved,
    });
    drop((sets, g, y, st, dy));

    // SSD scan (Mamba-2 shapes: head_dim 64, d_state 128).
    let sd = if small {
        SsdDims {
            batch: 2,
            time: 128,
            heads: 2,
            head_dim: 16,
            groups: 1,
            n: 64,
            dt_min: 0.0,
            dt_max: f32::INFINITY,
        }
    } else {
        SsdDims {
            batch: 16,
            time: 4096,
            heads: 24,
            head_dim: 64,
            groups: 1,
            n: 128,
            dt_min: 0.0,
            dt_max: f32::INFINITY,
        }
    };
    let bt = sd.batch * sd.time;
    let (bx, bbc, bdt) = (
        (bt * sd.heads * sd.head_dim) as f64 * 4.0,
        (bt * sd.groups * sd.n) as f64 * 4.0,
        (bt * sd.heads) as f64 * 4.0,
    );
    let sets: Vec<Vec<_>> = (0..2)
        .map(|_| {
            ssd_inputs(&mut rng, sd)
                .iter()
                .map(|v| be.upload(v))
                .collect::<R<Vec<_>>>()
        })
        .collect::<R<_>>()?;
    let mut y = be.zeros(bt * sd.heads * sd.head_dim)?;
    let mut st = be.zeros(be.ssd_scan_states_len(sd))?;
    let saved = be.buf_len(&st) as f64 * 4.0;
    let tag = format!(
        "B={} L={} H={} P={} N={}",
        sd.batch, sd.time, sd.heads, sd.head_dim, sd.n
    );
    // The chunked tensor-core kernel (what ssd_scan_fwd runs on this shape), then the
    // recurrent one.
    for (kernel, what) in [
        (SsdFwdKernel::Chunked, "chunked"),
        (SsdFwdKernel::Recurrent, "recurrent"),
    ] {
        let mut k = 0;
        let mut fwd = || {
            k += 1;
            be.ssd_scan_fwd_with(kernel, sd, ssd_in(&sets[k % 2]), &mut y, &mut st)
        };
        fwd()?;
        let t: Vec<f32> = (0..reps).map(|_| dev.time_ms(&mut fwd)).collect::<R<_>>()?;
        rows.push(Row {
            name: format!("SSD scan fwd ({what}) {tag}"),
            ms: median(t),
            bytes: 2.0 * bx + 2.0 * bbc + bdt + saved,
        });
    }
    let dy = be.upload(&rnd(&mut rng, bt * sd.heads * sd.head_dim, -1.0, 1.0))?;
    let mut g: Vec<_> = [
        bt * sd.heads * sd.head_dim,
        bt * sd.heads,
        bt * sd.groups * sd.n,
        bt * sd.groups * sd.n,
        sd.heads,
        sd.heads,
        sd.heads,
    ]
    .iter()
    .map(|&l| be.zeros(l))
    .collect::<R<_>>()?;
    be.ssd_scan_fwd(sd, ssd_in(&sets[0]), &mut y, &mut st)?;
    let mut bwd = || {
        let [dx, ddt, dbm, dcm, da, dskip, dbias] = &mut g[..] else {
            unreachable!()
        };
        be.ssd_scan_bwd(
            sd,
            ssd_in(&sets[0]),
            &st,
            &dy,
            SsdGrads {
                dx,
                ddt,
                dbm,
                dcm,
                da,
                dskip,
                dbias,
            },
        )
    };
    bwd()?;
    let t: Vec<f32> = (0..reps).map(|_| dev.time_ms(&mut bwd)).collect::<R<_>>()?;
    rows.push(Row {
        name: format!("SSD scan bwd {tag}"),
        ms: median(t),
        bytes: 3.0 * bx + 4.0 * bbc + 2.0 * bdt + saved,
    });
    Ok(rows)
}

fn report<D: Device>(be: &CudaBackend<D>, rows: &[Row], json: Option<&str>) {
    let copy_gbs = rows[0].bytes / (rows[0].ms as f64 * 1e-3) / 1e9;
    println!("\n{}", be.device().describe());
    println!(
        "{:<60} {:>10} {:>10} {:>8}",
        "kernel", "ms", "GB/s", "of copy"
    );
    let mut out = Vec::new();
    for r in rows {
        let gbs = r.bytes / (r.ms as f64 * 1e-3) / 1e9;
        println!(
            "{:<60} {:>10.3} {:>10.1} {:>7.0}%",
            r.name,
            r.ms,
            gbs,
            100.0 * gbs / copy_gbs
        );
        out.push(serde_json::json!({"kernel": r.name, "ms": r.ms, "bytes": r.bytes, "gb_per_s": gbs, "fraction_of_copy": gbs / copy_gbs}));
    }
    if let Some(p) = json {
        let doc = serde_json::json!({"device": be.device().describe(), "results": out});
        if let Err(e) = std::fs::write(p, serde_json::to_string_pretty(&doc).unwrap_or_default()) {
            eprintln!("cannot write {p}: {e}");
        }
    }
}

/// The verification step path (`kernels/step.cu`) on the shipped ECG model: `batch`
/// streams advanced `steps` time steps (one launch per step, states resident), after a
/// bit-for-bit check of a few streams against the core's reference kernels. Reports
/// stream-steps per second (device events around the launches, median of `reps`).
fn step_bench<D: Device>(dev: &D, small: bool, reps: usize, model: Option<&str>) -> R<()> {
    use tinyssm_core::{Kernels, Model};
    use tinyssm_cuda::cuda::step::StepRunner;
    let name = "ecg-rpeak.tssm";
    let candidates: Vec<std::path::PathBuf> = match model {
        Some(p) => vec![p.into()],
        None => vec![
            std::path::Path::new("models").join(name),
            std::path::Path::new("../models").join(name),
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../models")
                .join(name),
        ],
    };
    let path = candidates.iter().find(|p| p.exists()).ok_or_else(|| {
        BackendError::Unavailable(format!(
            "step bench: {name} not found (tried {candidates:?}; pass --step-model PATH)"
        ))
    })?;
    let bytes = std::fs::read(path)
        .map_err(|e| BackendError::Unavailable(format!("{}: {e}", path.display())))?;
    let blob = tinyssm_host::AlignedBuf::from_bytes(&bytes);
    let m = Model::parse(blob.as_bytes())
        .map_err(|e| BackendError::Unavailable(format!("{}: {e}", path.display())))?;
    let (batch, steps) = if small { (8, 16) } else { (4096, 512) };
    let di = m.d_input();
    let mut rng = StdRng::seed_from_u64(17);
    let x = rnd(&mut rng, batch * steps * di, -1.0, 1.0);
    // Check: the first streams' outputs within Tier::STEP of the core's reference step.
    let mut run = StepRunner::new(dev, &m, batch)?;
    let y = run.run(&x, steps, &vec![steps; batch])?;
    let core = m.with_kernels(Kernels::Reference);
    let o = m.d_output();
    for s in 0..batch.min(4) {
        let mut st = vec![0f32; core.state_len()];
        let mut sc = vec![0f32; core.scratch_len()];
        let mut out = vec![0f32; o];
        for t in 0..steps.min(64) {
            let xi = &x[(s * steps + t) * di..(s * steps + t + 1) * di];
            core.step(tinyssm_core::Input::Vector(xi), &mut st, &mut sc, &mut out)
                .map_err(|e| BackendError::Unavailable(e.to_string()))?;
            let got = &y[(s * steps + t) * o..(s * steps + t + 1) * o];
            let rms = (out.iter().map(|v| v * v).sum::<f32>() / o.max(1) as f32).sqrt();
            if got
                .iter()
                .zip(&out)
                .any(|(&a, &b)| !tinyssm_cuda::verify::Tier::STEP.holds(a, b, rms))
            {
                return Err(BackendError::Unavailable(format!(
                    "step path beyond the step tier of the core at stream {s} step {t}: {got:?} vs {out:?}"
                )));
            }
        }
    }
    let w = run.window(&x, steps, &vec![steps; batch])?;
    let mut go = || run.launch(&w);
    let t: Vec<f32> = (0..reps).map(|_| dev.time_ms(&mut go)).collect::<R<_>>()?;
    let ms = median(t);
    let rate = (batch * steps) as f64 / (ms as f64 * 1e-3);
    println!(
        "\nstep path ({name}, {}, {batch} streams × {steps} steps, one launch per step): \
         {ms:.3} ms = {:.3} µs per step, {:.3e} stream-steps/s (outputs checked within the \
         step tier of the core's reference step)",
        run.model().kernel(),
        1e3 * ms as f64 / steps as f64,
        rate
    );
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let emulate = args.iter().any(|a| a == "--emulate");
    let json = args
        .iter()
        .position(|a| a == "--json")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let step_model = args
        .iter()
        .position(|a| a == "--step-model")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let r = if emulate {
        let dir = std::env::temp_dir().join("tinyssm-emu");
        cuda::emu::EmuDevice::build(&dir)
            .map(CudaBackend::new)
            .and_then(|be| {
                check(&be)?;
                let rows = bench(&be, true, 1)?;
                report(&be, &rows, json.as_deref());
                step_bench(be.device(), true, 1, step_model.as_deref())
            })
    } else {
        cuda::open().and_then(|be| {
            check(&be)?;
            let rows = bench(&be, false, 21)?;
            report(&be, &rows, json.as_deref());
            step_bench(be.device(), false, 5, step_model.as_deref())
        })
    };
    match r {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
