//! The CUDA backend against the CPU reference, op by op, forward and backward: fresh
//! random inputs, odd sizes and tails (channels that do not fill a block, sequences that
//! end inside a checkpoint chunk, blocks straddling SSD heads and groups), every output
//! poisoned with NaN before the op runs, accumulated gradients pre-filled with the same
//! random values on both sides.
//!
//! Each check runs twice: on the **kernel emulator** (the same `.cu` sources built for the
//! host by the C++ compiler; always), and on a **real GPU** when one is present — else
//! those tests print `skipped: no CUDA device`.
//!
//! Tolerance tiers (|Δ| ≤ atol + rtol·max(|ref|, rms(ref))):
//! - `ELEMENTWISE` (rtol 2e-6): same formula, only the math library's last bit differs;
//! - `REORDER` (rtol 2e-5): sums in another order (warp trees, column partials, GEMM);
//! - `SCAN` (rtol 2e-4): recurrences over hundreds of steps, gradients summed by atomics.
//! - `SSD_CHUNKED` (rtol 5e-5): the chunked SSD forward against the recurrence — the
//!   same sums regrouped (Q×Q products, cumulative decays), 3xTF32 tensor-core products.
//! - `TF32X3`: one 3xTF32 tensor-core product against f64, per element within
//!   (2^-20 + k·2^-24)·Σ|a·b| (the split's 2^-22 per operand plus f32 accumulation).

use std::sync::OnceLock;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tinyssm_cuda::backend::{
    AdamW, Backend, BackendError, ScanDims, SelScanDims, SelScanGrads, SelScanIn, SsdDims,
    SsdGrads, SsdIn,
};
use tinyssm_cuda::cuda::emu::EmuDevice;
use tinyssm_cuda::cuda::{self, CudaBackend, CudaDevice, Device, SsdFwdKernel, Tf32Mode};
use tinyssm_cuda::Cpu;

#[derive(Debug, Clone, Copy)]
struct Tier {
    name: &'static str,
    atol: f32,
    rtol: f32,
}
const ELEMENTWISE: Tier = Tier {
    name: "elementwise",
    atol: 1e-7,
    rtol: 2e-6,
};
const REORDER: Tier = Tier {
    name: "reorder",
    atol: 1e-6,
    rtol: 2e-5,
};
const SCAN: Tier = Tier {
    name: "scan",
    atol: 1e-5,
    rtol: 2e-4,
};
const SSD_CHUNKED: Tier = Tier {
    name: "ssd-chunked",
    atol: 1e-6,
    rtol: 5e-5,
};

fn emu() -> &'static CudaBackend<EmuDevice> {
    static E: OnceLock<CudaBackend<EmuDevice>> = OnceLock::new();
    E.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("emu");
        CudaBackend::new(EmuDevice::build(&dir).unwrap_or_else(|e| panic!("{e}")))
    })
}

fn gpu() -> Option<&'static CudaBackend<CudaDevice>> {
    static G: OnceLock<Option<CudaBackend<CudaDevice>>> = OnceLock::new();
    let g = G.get_or_init(|| match cuda::cuda_unavailable_reason() {
        Some(why) => {
            eprintln!("({why})");
            None
        }
        None => Some(cuda::open().unwrap_or_else(|e| panic!("a CUDA device is present: {e}"))),
    });
    if g.is_none() {
        println!("skipped: no CUDA device");
    }
    g.as_ref()
}

fn rnd(rng: &mut StdRng, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(lo..hi)).collect()
}

/// Compares `got` with `want` under `tier`; prints the worst error.
fn close(what: &str, got: &[f32], want: &[f32], tier: Tier) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let rms = (want.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / want.len().max(1) as f64)
        .sqrt() as f32;
    let mut worst = 0f32;
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let bound = tier.atol + tier.rtol * w.abs().max(rms);
        let d = (g - w).abs();
        assert!(
            d <= bound,
            "{what}[{i}]: got {g}, reference {w} (|Δ| {d:.3e} > {bound:.3e}, tier {})",
            tier.name
        );
        worst = worst.max(d / (w.abs().max(rms)).max(1e-30));
    }
    println!(
        "{what}: {} values, worst relative {worst:.2e} (tier {})",
        got.len(),
        tier.name
    );
}

/// A buffer on the device under test, poisoned with NaN.
fn poisoned<B: Backend>(be: &B, n: usize) -> B::Buf {
    be.upload(&vec![f32::NAN; n]).unwrap()
}

fn linear_norm_act<B: Backend>(be: &B, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let cpu = Cpu;
    let (rows, din, dout) = (37, 19, 11);
    let x = rnd(&mut rng, rows * din, -1.0, 1.0);
    let w = rnd(&mut rng, dout * din, -1.0, 1.0);
    let b = rnd(&mut rng, dout, -1.0, 1.0);
    let dy = rnd(&mut rng, rows * dout, -1.0, 1.0);
    for bias in [false, true] {
        let mut want = vec![0f32; rows * dout];
        cpu.linear_fwd(&x, &w, bias.then_some(&b), rows, din, dout, &mut want)
            .unwrap();
        let (xd, wd, bd) = (
            be.upload(&x).unwrap(),
            be.upload(&w).unwrap(),
            be.upload(&b).unwrap(),
        );
        let mut y = poisoned(be, rows * dout);
        be.linear_fwd(&xd, &wd, bias.then_some(&bd), rows, din, dout, &mut y)
            .unwrap();
        close(
            &format!("linear_fwd bias={bias}"),
            &be.download(&y).unwrap(),
            &want,
            REORDER,
        );
    }
    let dw0 = rnd(&mut rng, dout * din, -1.0, 1.0);
    let db0 = rnd(&mut rng, dout, -1.0, 1.0);
    let (mut dx_c, mut dw_c, mut db_c) = (vec![0f32; rows * din], dw0.clone(), db0.clone());
    cpu.linear_bwd(
        &x,
        &w,
        &dy,
        rows,
        din,
        dout,
        Some(&mut dx_c),
        &mut dw_c,
        Some(&mut db_c),
    )
    .unwrap();
    let mut dx = poisoned(be, rows * din);
    let mut dw = be.upload(&dw0).unwrap();
    let mut db = be.upload(&db0).unwrap();
    let (xd, wd, dyd) = (
        be.upload(&x).unwrap(),
        be.upload(&w).unwrap(),
        be.upload(&dy).unwrap(),
    );
    be.linear_bwd(
        &xd,
        &wd,
        &dyd,
        rows,
        din,
        dout,
        Some(&mut dx),
        &mut dw,
        Some(&mut db),
    )
    .unwrap();
    close("linear_bwd dx", &be.download(&dx).unwrap(), &dx_c, REORDER);
    close("linear_bwd dw", &be.download(&dw).unwrap(), &dw_c, REORDER);
    close("linear_bwd db", &be.download(&db).unwrap(), &db_c, REORDER);

    // LayerNorm and RMSNorm: rows of 70 (warp lanes loop twice with a tail).
    let (rows, d) = (300, 70);
    let x = rnd(&mut rng, rows * d, -2.0, 3.0);
    let g = rnd(&mut rng, d, 0.5, 1.5);
    let bb = rnd(&mut rng, d, -0.5, 0.5);
    let dy = rnd(&mut rng, rows * d, -1.0, 1.0);
    let (mut y_c, mut st_c) = (vec![0f32; rows * d], vec![0f32; rows * 2]);
    cpu.layer_norm_fwd(&x, &g, &bb, rows, d, 1e-5, &mut y_c, &mut st_c)
        .unwrap();
    let (xd, gd, bd, dyd) = (
        be.upload(&x).unwrap(),
        be.upload(&g).unwrap(),
        be.upload(&bb).unwrap(),
        be.upload(&dy).unwrap(),
    );
    let (mut y, mut st) = (poisoned(be, rows * d), poisoned(be, rows * 2));
    be.layer_norm_fwd(&xd, &gd, &bd, rows, d, 1e-5, &mut y, &mut st)
        .unwrap();
    close("layer_norm_fwd y", &be.download(&y).unwrap(), &y_c, REORDER);
    close(
        "layer_norm_fwd stats",
        &be.download(&st).unwrap(),
        &st_c,
        REORDER,
    );
    let dg0 = rnd(&mut rng, d, -1.0, 1.0);
    let (mut dx_c, mut dg_c, mut db_c) = (vec![0f32; rows * d], dg0.clone(), dg0.clone());
    cpu.layer_norm_bwd(&x, &g, &st_c, &dy, rows, d, &mut dx_c, &mut dg_c, &mut db_c)
        .unwrap();
    let (mut dx, mut dg, mut db) = (
        poisoned(be, rows * d),
        be.upload(&dg0).unwrap(),
        be.upload(&dg0).unwrap(),
    );
    be.layer_norm_bwd(&xd, &gd, &st, &dyd, rows, d, &mut dx, &mut dg, &mut db)
        .unwrap();
    close(
        "layer_norm_bwd dx",
        &be.download(&dx).unwrap(),
        &dx_c,
        REORDER,
    );
    close(
        "layer_norm_bwd dg",
        &be.download(&dg).unwrap(),
        &dg_c,
        REORDER,
    );
    close(
        "layer_norm_bwd db",
        &be.download(&db).unwrap(),
        &db_c,
        REORDER,
    );

    let (mut y_c, mut st_c) = (vec![0f32; rows * d], vec![0f32; rows]);
    cpu.rms_norm_fwd(&x, &g, rows, d, 1e-5, &mut y_c, &mut st_c)
        .unwrap();
    let (mut y, mut st) = (poisoned(be, rows * d), poisoned(be, rows));
    be.rms_norm_fwd(&xd, &gd, rows, d, 1e-5, &mut y, &mut st)
        .unwrap();
    close("rms_norm_fwd y", &be.download(&y).unwrap(), &y_c, REORDER);
    let (mut dx_c, mut dg_c) = (vec![0f32; rows * d], dg0.clone());
    cpu.rms_norm_bwd(&x, &g, &st_c, &dy, rows, d, &mut dx_c, &mut dg_c)
        .unwrap();
    let (mut dx, mut dg) = (poisoned(be, rows * d), be.upload(&dg0).unwrap());
    be.rms_norm_bwd(&xd, &gd, &st, &dyd, rows, d, &mut dx, &mut dg)
        .unwrap();
    close(
        "rms_norm_bwd dx",
        &be.download(&dx).unwrap(),
        &dx_c,
        REORDER,
    );
    close(
        "rms_norm_bwd dg",
        &be.download(&dg).unwrap(),
        &dg_c,
        REORDER,
    );

    // Activations over 1000 values (a partial last block).
    let n = 1000;
    let x = rnd(&mut rng, n, -6.0, 6.0);
    let dy = rnd(&mut rng, n, -1.0, 1.0);
    let (xd, dyd) = (be.upload(&x).unwrap(), be.upload(&dy).unwrap());
    type Fwd<B> =
        fn(&B, &<B as Backend>::Buf, &mut <B as Backend>::Buf) -> tinyssm_cuda::backend::Result<()>;
    type Bwd<B> = fn(
        &B,
        &<B as Backend>::Buf,
        &<B as Backend>::Buf,
        &mut <B as Backend>::Buf,
    ) -> tinyssm_cuda::backend::Result<()>;
    type Act<B> = (&'static str, Fwd<Cpu>, Fwd<B>, Bwd<Cpu>, Bwd<B>);
    let acts: [Act<B>; 2] = [
        (
            "gelu",
            Cpu::gelu_fwd,
            B::gelu_fwd,
            Cpu::gelu_bwd,
            B::gelu_bwd,
        ),
        (
            "silu",
            Cpu::silu_fwd,
            B::silu_fwd,
            Cpu::silu_bwd,
            B::silu_bwd,
        ),
    ];
    for (name, cf, bf, cb, bbw) in acts {
        let mut want = vec![0f32; n];
        cf(&cpu, &x, &mut want).unwrap();
        let mut y = poisoned(be, n);
        bf(be, &xd, &mut y).unwrap();
        close(
            &format!("{name}_fwd"),
            &be.download(&y).unwrap(),
            &want,
            ELEMENTWISE,
        );
        cb(&cpu, &x, &dy, &mut want).unwrap();
        bbw(be, &xd, &dyd, &mut y).unwrap();
        close(
            &format!("{name}_bwd"),
            &be.download(&y).unwrap(),
            &want,
            ELEMENTWISE,
        );
    }
    let (rows, d) = (33, 15);
    let x = rnd(&mut rng, rows * 2 * d, -4.0, 4.0);
    let dy = rnd(&mut rng, rows * d, -1.0, 1.0);
    let mut want = vec![0f32; rows * d];
    cpu.glu_fwd(&x, rows, d, &mut want).unwrap();
    let xd = be.upload(&x).unwrap();
    let mut y = poisoned(be, rows * d);
    be.glu_fwd(&xd, rows, d, &mut y).unwrap();
    close("glu_fwd", &be.download(&y).unwrap(), &want, ELEMENTWISE);
    let mut want = vec![0f32; rows * 2 * d];
    cpu.glu_bwd(&x, &dy, rows, d, &mut want).unwrap();
    let mut dx = poisoned(be, rows * 2 * d);
    be.glu_bwd(&xd, &be.upload(&dy).unwrap(), rows, d, &mut dx)
        .unwrap();
    close("glu_bwd", &be.download(&dx).unwrap(), &want, ELEMENTWISE);
}

fn conv_losses_optim<B: Backend>(be: &B, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let cpu = Cpu;
    let (batch, time, ch, k) = (3, 301, 13, 4);
    let x = rnd(&mut rng, batch * time * ch, -1.0, 1.0);
    let w = rnd(&mut rng, ch * k, -1.0, 1.0);
    let b = rnd(&mut rng, ch, -1.0, 1.0);
    let dy = rnd(&mut rng, batch * time * ch, -1.0, 1.0);
    let (xd, wd, bd, dyd) = (
        be.upload(&x).unwrap(),
        be.upload(&w).unwrap(),
        be.upload(&b).unwrap(),
        be.upload(&dy).unwrap(),
    );
    for bias in [false, true] {
        let mut want = vec![0f32; batch * time * ch];
        cpu.conv1d_fwd(&x, &w, bias.then_some(&b), batch, time, ch, k, &mut want)
            .unwrap();
        let mut y = poisoned(be, batch * time * ch);
        be.conv1d_fwd(&xd, &wd, bias.then_some(&bd), batch, time, ch, k, &mut y)
            .unwrap();
        close(
            &format!("conv1d_fwd bias={bias}"),
            &be.download(&y).unwrap(),
            &want,
            REORDER,
        );
    }
    let dw0 = rnd(&mut rng, ch * k, -1.0, 1.0);
    let (mut dx_c, mut dw_c, mut db_c) = (vec![0f32; x.len()], dw0.clone(), b.clone());
    cpu.conv1d_bwd(
        &x,
        &w,
        &dy,
        batch,
        time,
        ch,
        k,
        &mut dx_c,
        &mut dw_c,
        Some(&mut db_c),
    )
    .unwrap();
    let (mut dx, mut dw, mut db) = (
        poisoned(be, x.len()),
        be.upload(&dw0).unwrap(),
        be.upload(&b).unwrap(),
    );
    be.conv1d_bwd(
        &xd,
        &wd,
        &dyd,
        batch,
        time,
        ch,
        k,
        &mut dx,
        &mut dw,
        Some(&mut db),
    )
    .unwrap();
    close("conv1d_bwd dx", &be.download(&dx).unwrap(), &dx_c, REORDER);
    close("conv1d_bwd dw", &be.download(&dw).unwrap(), &dw_c, REORDER);
    close(
        "conv1d_bwd dbias",
        &be.download(&db).unwrap(),
        &db_c,
        REORDER,
    );

    // Gather (with a repeated row) and its adjoint.
    let d = 9;
    let rows = [5usize, 0, 902, 5, 17];
    let mut want = vec![0f32; rows.len() * d];
    let xs = rnd(&mut rng, 903 * d, -1.0, 1.0);
    cpu.gather_rows(&xs, d, &rows, &mut want).unwrap();
    let mut y = poisoned(be, rows.len() * d);
    be.gather_rows(&be.upload(&xs).unwrap(), d, &rows, &mut y)
        .unwrap();
    close("gather_rows", &be.download(&y).unwrap(), &want, ELEMENTWISE);
    let g = rnd(&mut rng, rows.len() * d, -1.0, 1.0);
    let mut want = vec![1f32; 903 * d];
    cpu.gather_rows_bwd(&g, d, &rows, &mut want).unwrap();
    let mut dx = poisoned(be, 903 * d);
    be.gather_rows_bwd(&be.upload(&g).unwrap(), d, &rows, &mut dx)
        .unwrap();
    close(
        "gather_rows_bwd",
        &be.download(&dx).unwrap(),
        &want,
        REORDER,
    );
    assert!(be
        .gather_rows(&be.upload(&xs).unwrap(), d, &[903], &mut poisoned(be, d))
        .is_err());

    // Losses.
    let (n, classes) = (77, 10);
    let logits = rnd(&mut rng, n * classes, -5.0, 5.0);
    let labels: Vec<u32> = (0..n)
        .map(|_| rng.random_range(0..classes as u32))
        .collect();
    let mut g_c = vec![0f32; n * classes];
    let (l_c, r_c) = cpu
        .softmax_xent(&logits, &labels, classes, &mut g_c)
        .unwrap();
    let mut g = poisoned(be, n * classes);
    let (l, r) = be
        .softmax_xent(&be.upload(&logits).unwrap(), &labels, classes, &mut g)
        .unwrap();
    assert_eq!(r, r_c, "softmax_xent correct count");
    close("softmax_xent loss", &[l], &[l_c], REORDER);
    close(
        "softmax_xent dlogits",
        &be.download(&g).unwrap(),
        &g_c,
        ELEMENTWISE,
    );
    assert!(be
        .softmax_xent(&be.upload(&logits).unwrap(), &vec![10; n], classes, &mut g)
        .is_err());
    let n = 5000;
    let logits = rnd(&mut rng, n, -8.0, 8.0);
    let targets: Vec<f32> = (0..n)
        .map(|_| if rng.random_bool(0.2) { 1.0 } else { 0.0 })
        .collect();
    let mut g_c = vec![0f32; n];
    let l_c = cpu.sigmoid_bce(&logits, &targets, 3.5, &mut g_c).unwrap();
    let mut g = poisoned(be, n);
    let l = be
        .sigmoid_bce(&be.upload(&logits).unwrap(), &targets, 3.5, &mut g)
        .unwrap();
    close("sigmoid_bce loss", &[l], &[l_c], REORDER);
    close(
        "sigmoid_bce dlogits",
        &be.download(&g).unwrap(),
        &g_c,
        ELEMENTWISE,
    );

    // Reductions, scale, fill, add, AdamW.
    let v = rnd(&mut rng, 100_003, -3.0, 3.0);
    let vd = be.upload(&v).unwrap();
    let (s_c, s) = (cpu.sum_sq(&v).unwrap(), be.sum_sq(&vd).unwrap());
    assert!((s - s_c).abs() <= 1e-12 * s_c, "sum_sq {s} vs {s_c}");
    let mut a = be.upload(&v).unwrap();
    be.scale(&mut a, 0.37).unwrap();
    be.add_assign(&mut a, &vd).unwrap();
    let want: Vec<f32> = v.iter().map(|x| x * 0.37 + x).collect();
    close(
        "scale+add_assign",
        &be.download(&a).unwrap(),
        &want,
        ELEMENTWISE,
    );
    be.fill(&mut a, 2.5).unwrap();
    assert!(be.download(&a).unwrap().iter().all(|&x| x == 2.5));
    let n = 1001;
    let p0 = rnd(&mut rng, n, -1.0, 1.0);
    let g0 = rnd(&mut rng, n, -1.0, 1.0);
    let m0 = rnd(&mut rng, n, -0.1, 0.1);
    let v0 = rnd(&mut rng, n, 0.0, 0.1);
    let h = AdamW {
        lr: 1e-2,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.1,
        step: 7,
    };
    for decay in [false, true] {
        let (mut p_c, mut m_c, mut v_c) = (p0.clone(), m0.clone(), v0.clone());
        cpu.adamw(&mut p_c, &g0, &mut m_c, &mut v_c, h, decay)
            .unwrap();
        let (mut p, mut m, mut vv) = (
            be.upload(&p0).unwrap(),
            be.upload(&m0).unwrap(),
            be.upload(&v0).unwrap(),
        );
        be.adamw(&mut p, &be.upload(&g0).unwrap(), &mut m, &mut vv, h, decay)
            .unwrap();
        close(
            &format!("adamw p decay={decay}"),
            &be.download(&p).unwrap(),
            &p_c,
            ELEMENTWISE,
        );
        close("adamw m", &be.download(&m).unwrap(), &m_c, ELEMENTWISE);
        close("adamw v", &be.download(&vv).unwrap(), &v_c, ELEMENTWISE);
    }
}

fn s4d<B: Backend>(be: &B, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let cpu = Cpu;
    // n2 = 5 (8 lanes), 33 (32 lanes × 2 slots), 100 (32 × 4), 130 (CPU fallback).
    for (batch, time, h, n2) in [
        (3, 67, 21, 5),
        (2, 40, 5, 33),
        (2, 23, 3, 100),
        (1, 9, 2, 130),
    ] {
        let dims = ScanDims { batch, time, h, n2 };
        let per = h * n2 * 2;
        let u = rnd(&mut rng, batch * time * h, -1.0, 1.0);
        // |dA| < 1: a stable discretized system.
        let da: Vec<f32> = (0..h * n2)
            .flat_map(|_| {
                let (r, th) = (
                    rng.random_range(0.5f32..0.99),
                    rng.random_range(-3.0f32..3.0),
                );
                [r * th.cos(), r * th.sin()]
            })
            .collect();
        let cb = rnd(&mut rng, per, -0.3, 0.3);
        let dsk = rnd(&mut rng, h, -1.0, 1.0);
        let dy = rnd(&mut rng, batch * time * h, -1.0, 1.0);
        let (mut y_c, mut s_c) = (vec![0f32; batch * time * h], vec![0f32; batch * time * per]);
        cpu.s4d_scan_fwd(dims, &u, &da, &cb, &dsk, &mut y_c, &mut s_c)
            .unwrap();
        let (ud, dad, cbd, dd) = (
            be.upload(&u).unwrap(),
            be.upload(&da).unwrap(),
            be.upload(&cb).unwrap(),
            be.upload(&dsk).unwrap(),
        );
        let (mut y, mut st) = (poisoned(be, y_c.len()), poisoned(be, s_c.len()));
        be.s4d_scan_fwd(dims, &ud, &dad, &cbd, &dd, &mut y, &mut st)
            .unwrap();
        let tag = format!("s4d n2={n2}");
        close(&format!("{tag} y"), &be.download(&y).unwrap(), &y_c, SCAN);
        close(
            &format!("{tag} states"),
            &be.download(&st).unwrap(),
            &s_c,
            SCAN,
        );
        let g0 = rnd(&mut rng, per, -1.0, 1.0);
        let d0 = rnd(&mut rng, h, -1.0, 1.0);
        let (mut du_c, mut gda_c, mut gcb_c, mut gd_c) =
            (vec![0f32; u.len()], g0.clone(), g0.clone(), d0.clone());
        cpu.s4d_scan_bwd(
            dims, &u, &da, &cb, &dsk, &s_c, &dy, &mut du_c, &mut gda_c, &mut gcb_c, &mut gd_c,
        )
        .unwrap();
        let (mut du, mut gda, mut gcb, mut gd) = (
            poisoned(be, u.len()),
            be.upload(&g0).unwrap(),
            be.upload(&g0).unwrap(),
            be.upload(&d0).unwrap(),
        );
        be.s4d_scan_bwd(
            dims,
            &ud,
            &dad,
            &cbd,
            &dd,
            &st,
            &be.upload(&dy).unwrap(),
            &mut du,
            &mut gda,
            &mut gcb,
            &mut gd,
        )
        .unwrap();
        close(
            &format!("{tag} du"),
            &be.download(&du).unwrap(),
            &du_c,
            SCAN,
        );
        close(
            &format!("{tag} d dA"),
            &be.download(&gda).unwrap(),
            &gda_c,
            SCAN,
        );
        close(
            &format!("{tag} d C~"),
            &be.download(&gcb).unwrap(),
            &gcb_c,
            SCAN,
        );
        close(
            &format!("{tag} dD"),
            &be.download(&gd).unwrap(),
            &gd_c,
            SCAN,
        );
    }
}

/// Inputs of a selective scan: u, dt, bias, A, B, C, D, z.
fn sel_inputs(rng: &mut StdRng, dims: SelScanDims) -> Vec<Vec<f32>> {
    let SelScanDims { batch, time, d, n } = dims;
    let bt = batch * time * d;
    vec![
        rnd(rng, bt, -1.0, 1.0),
        rnd(rng, bt, -3.0, 1.0),
        rnd(rng, d, -1.0, 0.5),
        rnd(rng, d * n, -2.0, -0.1),
        rnd(rng, batch * time * n, -1.0, 1.0),
        rnd(rng, batch * time * n, -1.0, 1.0),
        rnd(rng, d, -1.0, 1.0),
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

fn selective_scan<B: Backend>(be: &B, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let cpu = Cpu;
    // n = 16 (16 lanes), 5 (8 lanes, 3 idle), 40 (32 × 2), 100 (32 × 4, chunk 32), 130
    // (CPU fallback); times ending inside a chunk, channels not filling a block.
    for (batch, time, d, n) in [
        (3, 150, 37, 16),
        (2, 70, 19, 5),
        (2, 65, 9, 40),
        (2, 77, 5, 100),
        (1, 11, 3, 130),
    ] {
        let dims = SelScanDims { batch, time, d, n };
        let tag = format!("selective_scan n={n} T={time}");
        let h = sel_inputs(&mut rng, dims);
        let dy = rnd(&mut rng, batch * time * d, -1.0, 1.0);
        let (mut y_c, mut s_c) = (
            vec![0f32; batch * time * d],
            vec![0f32; cpu.selective_scan_states_len(dims)],
        );
        cpu.selective_scan_fwd(dims, sel_in(&h), &mut y_c, &mut s_c)
            .unwrap();
        let dev: Vec<B::Buf> = h.iter().map(|v| be.upload(v).unwrap()).collect();
        let mut y = poisoned(be, y_c.len());
        let mut st = poisoned(be, be.selective_scan_states_len(dims));
        be.selective_scan_fwd(dims, sel_in(&dev), &mut y, &mut st)
            .unwrap();
        close(&format!("{tag} y"), &be.download(&y).unwrap(), &y_c, SCAN);
        let steps: Vec<usize> = (0..batch)
            .map(|b| {
                if b == 0 {
                    time - 1
                } else {
                    rng.random_range(0..time)
                }
            })
            .collect();
        let want = cpu
            .selective_scan_state_at(dims, sel_in(&h), &s_c, &steps)
            .unwrap();
        let got = be
            .selective_scan_state_at(dims, sel_in(&dev), &st, &steps)
            .unwrap();
        close(&format!("{tag} state_at {steps:?}"), &got, &want, SCAN);

        let bt = batch * time * d;
        let btn = batch * time * n;
        let acc0 = [
            rnd(&mut rng, d * n, -1.0, 1.0),
            rnd(&mut rng, d, -1.0, 1.0),
            rnd(&mut rng, d, -1.0, 1.0),
        ];
        let mut c = [
            vec![0f32; bt],
            vec![0f32; bt],
            vec![0f32; btn],
            vec![0f32; btn],
            vec![0f32; bt],
        ];
        let (mut ca, mut cd, mut cb) = (acc0[0].clone(), acc0[1].clone(), acc0[2].clone());
        {
            let [du, ddt, dbm, dcm, dz] = &mut c;
            let g = SelScanGrads {
                du,
                ddt,
                dbm,
                dcm,
                dz,
                da: &mut ca,
                dskip: &mut cd,
                dbias: &mut cb,
            };
            cpu.selective_scan_bwd(dims, sel_in(&h), &s_c, &dy, g)
                .unwrap();
        }
        let mut o = [
            poisoned(be, bt),
            poisoned(be, bt),
            poisoned(be, btn),
            poisoned(be, btn),
            poisoned(be, bt),
        ];
        let (mut ga, mut gd, mut gb) = (
            be.upload(&acc0[0]).unwrap(),
            be.upload(&acc0[1]).unwrap(),
            be.upload(&acc0[2]).unwrap(),
        );
        {
            let [du, ddt, dbm, dcm, dz] = &mut o;
            let g = SelScanGrads {
                du,
                ddt,
                dbm,
                dcm,
                dz,
                da: &mut ga,
                dskip: &mut gd,
                dbias: &mut gb,
            };
            be.selective_scan_bwd(dims, sel_in(&dev), &st, &be.upload(&dy).unwrap(), g)
                .unwrap();
        }
        for (k, name) in ["du", "ddt", "dB", "dC", "dz"].iter().enumerate() {
            close(
                &format!("{tag} {name}"),
                &be.download(&o[k]).unwrap(),
                &c[k],
                SCAN,
            );
        }
        close(&format!("{tag} dA"), &be.download(&ga).unwrap(), &ca, SCAN);
        close(&format!("{tag} dD"), &be.download(&gd).unwrap(), &cd, SCAN);
        close(
            &format!("{tag} dbias"),
            &be.download(&gb).unwrap(),
            &cb,
            SCAN,
        );
    }
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

/// The SSD backward on the backend (from its forward checkpoints `st`) against the CPU's
/// (from `s_c`): every input gradient on NaN-poisoned outputs, and the per-head parameter
/// gradients accumulated onto the same starting values `acc0` (dA, dD, dbias).
#[allow(clippy::too_many_arguments, clippy::ptr_arg)]
fn ssd_bwd_vs_cpu<B: Backend>(
    be: &B,
    dims: SsdDims,
    h: &[Vec<f32>],
    s_c: &Vec<f32>,
    dev: &[B::Buf],
    st: &B::Buf,
    dy: &Vec<f32>,
    acc0: &[Vec<f32>],
    tag: &str,
) {
    let bt = dims.batch * dims.time;
    let (hp, heads, gn) = (dims.heads * dims.head_dim, dims.heads, dims.groups * dims.n);
    let mut c = [
        vec![0f32; bt * hp],
        vec![0f32; bt * heads],
        vec![0f32; bt * gn],
        vec![0f32; bt * gn],
    ];
    let (mut ca, mut cd, mut cb) = (acc0[0].clone(), acc0[1].clone(), acc0[2].clone());
    {
        let [dx, ddt, dbm, dcm] = &mut c;
        let g = SsdGrads {
            dx,
            ddt,
            dbm,
            dcm,
            da: &mut ca,
            dskip: &mut cd,
            dbias: &mut cb,
        };
        Cpu.ssd_scan_bwd(dims, ssd_in(h), s_c, dy, g).unwrap();
    }
    let mut o = [
        poisoned(be, bt * hp),
        poisoned(be, bt * heads),
        poisoned(be, bt * gn),
        poisoned(be, bt * gn),
    ];
    let (mut ga, mut gd, mut gb) = (
        be.upload(&acc0[0]).unwrap(),
        be.upload(&acc0[1]).unwrap(),
        be.upload(&acc0[2]).unwrap(),
    );
    {
        let [dx, ddt, dbm, dcm] = &mut o;
        let g = SsdGrads {
            dx,
            ddt,
            dbm,
            dcm,
            da: &mut ga,
            dskip: &mut gd,
            dbias: &mut gb,
        };
        be.ssd_scan_bwd(dims, ssd_in(dev), st, &be.upload(dy).unwrap(), g)
            .unwrap();
    }
    for (k, name) in ["dx", "ddt", "dB", "dC"].iter().enumerate() {
        close(
            &format!("{tag} {name}"),
            &be.download(&o[k]).unwrap(),
            &c[k],
            SCAN,
        );
    }
    close(&format!("{tag} dA"), &be.download(&ga).unwrap(), &ca, SCAN);
    close(&format!("{tag} dD"), &be.download(&gd).unwrap(), &cd, SCAN);
    close(
        &format!("{tag} dbias"),
        &be.download(&gb).unwrap(),
        &cb,
        SCAN,
    );
}

fn ssd_scan<B: Backend>(be: &B, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let cpu = Cpu;
    // head_dim 5 with 16 lanes: blocks of 8 channels straddle heads and groups.
    for (batch, time, heads, p, groups, n) in [
        (2, 150, 6, 5, 3, 16),
        (2, 70, 4, 3, 1, 64),
        (1, 40, 2, 4, 2, 100),
        (1, 9, 2, 2, 1, 130),
    ] {
        let dims = SsdDims {
            batch,
            time,
            heads,
            head_dim: p,
            groups,
            n,
            dt_min: 0.01,
            dt_max: 0.8,
        };
        let tag = format!("ssd_scan n={n} heads={heads} p={p} groups={groups}");
        let bt = batch * time;
        let hp = heads * p;
        let h = vec![
            rnd(&mut rng, bt * hp, -1.0, 1.0),
            rnd(&mut rng, bt * heads, -5.0, 2.0), // softplus below 0.01 and above 0.8: clamp both ways
            rnd(&mut rng, heads, -1.0, 0.5),
            rnd(&mut rng, heads, -2.0, -0.1),
            rnd(&mut rng, bt * groups * n, -1.0, 1.0),
            rnd(&mut rng, bt * groups * n, -1.0, 1.0),
            rnd(&mut rng, heads, -1.0, 1.0),
        ];
        let dy = rnd(&mut rng, bt * hp, -1.0, 1.0);
        let (mut y_c, mut s_c) = (
            vec![0f32; bt * hp],
            vec![0f32; cpu.ssd_scan_states_len(dims)],
        );
        cpu.ssd_scan_fwd(dims, ssd_in(&h), &mut y_c, &mut s_c)
            .unwrap();
        let dev: Vec<B::Buf> = h.iter().map(|v| be.upload(v).unwrap()).collect();
        let mut y = poisoned(be, y_c.len());
        let mut st = poisoned(be, be.ssd_scan_states_len(dims));
        be.ssd_scan_fwd(dims, ssd_in(&dev), &mut y, &mut st)
            .unwrap();
        close(&format!("{tag} y"), &be.download(&y).unwrap(), &y_c, SCAN);
        let steps: Vec<usize> = (0..batch)
            .map(|b| {
                if b == 0 {
                    time - 1
                } else {
                    rng.random_range(0..time)
                }
            })
            .collect();
        let want = cpu
            .ssd_scan_state_at(dims, ssd_in(&h), &s_c, &steps)
            .unwrap();
        let got = be
            .ssd_scan_state_at(dims, ssd_in(&dev), &st, &steps)
            .unwrap();
        close(&format!("{tag} state_at {steps:?}"), &got, &want, SCAN);

        let acc0: Vec<Vec<f32>> = (0..3).map(|_| rnd(&mut rng, heads, -1.0, 1.0)).collect();
        ssd_bwd_vs_cpu(be, dims, &h, &s_c, &dev, &st, &dy, &acc0, &tag);
    }
}

/// TF32 rounding as cvt.rna.tf32.f32 defines it (nearest, ties away from zero, 10
/// explicit mantissa bits; subnormals keep the exponent field's quantum), computed in
/// f64 by scaling rather than on the bits.
fn tf32_rna_ref(x: f32) -> f32 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let a = x.abs() as f64;
    let mut e = a.log2().floor() as i32;
    while 2f64.powi(e) > a {
        e -= 1;
    }
    while 2f64.powi(e + 1) <= a {
        e += 1;
    }
    let q = 2f64.powi(e.max(-126) - 10);
    let r = ((a / q) + 0.5).floor() * q;
    (r as f32).copysign(x)
}

fn tf32_mma<D: Device>(be: &CudaBackend<D>, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    // Rounding: random magnitudes, exact ties (11 significant bits, the last one set)
    // both signs, subnormals, the overflow to infinity at the top.
    let mut v: Vec<f32> = (0..400)
        .map(|_| rng.random_range(-1.0f32..1.0) * 2f32.powi(rng.random_range(-40..40)))
        .collect();
    for _ in 0..200 {
        let odd = (rng.random_range(0..1024u32) * 2 + 1) as f32;
        let tie = (1.0 + odd * 2f32.powi(-11)) * 2f32.powi(rng.random_range(-30..30));
        v.push(if rng.random_bool(0.5) { tie } else { -tie });
    }
    for _ in 0..100 {
        v.push(f32::from_bits(rng.random_range(1..0x0080_0000u32)));
    }
    v.extend([f32::MAX, -f32::MAX, 1.0, -0.0, f32::MIN_POSITIVE]);
    v.resize(v.len().div_ceil(128) * 128, 0.5);
    let (m, k) = (16, v.len() / 16);
    let ad = be.upload(&v).unwrap();
    let bd = be.upload(&vec![0.0; k * 8]).unwrap();
    let mut cd = poisoned(be, m * k);
    be.tf32_mma_check(Tf32Mode::Round, &ad, &bd, m, 8, k, &mut cd)
        .unwrap();
    let got = be.download(&cd).unwrap();
    for (x, g) in v.iter().zip(&got) {
        let w = tf32_rna_ref(*x);
        assert_eq!(
            g.to_bits(),
            w.to_bits(),
            "cvt.rna.tf32({x:e}): got {g:e}, want {w:e}"
        );
    }
    println!("cvt.rna.tf32.f32: {} values bit-exact", v.len());

    // Products: one tile, then tiles dealt unevenly to the block's two warps.
    for (m, n, k, spread) in [(16, 8, 8, 0), (48, 24, 40, 0), (32, 16, 128, 12)] {
        let mut mat = |len: usize| -> Vec<f32> {
            (0..len)
                .map(|_| {
                    rng.random_range(-1.0f32..1.0) * 2f32.powi(rng.random_range(-spread..=spread))
                })
                .collect()
        };
        let (a, b) = (mat(m * k), mat(k * n));
        let (ad, bd) = (be.upload(&a).unwrap(), be.upload(&b).unwrap());
        let mut worst = [0f64; 2];
        for (slot, mode) in [Tf32Mode::Split3, Tf32Mode::Single].into_iter().enumerate() {
            let mut cd = poisoned(be, m * n);
            be.tf32_mma_check(mode, &ad, &bd, m, n, k, &mut cd).unwrap();
            let c = be.download(&cd).unwrap();
            for i in 0..m {
                for j in 0..n {
                    let (mut want, mut mag) = (0f64, 0f64);
                    for l in 0..k {
                        let p = a[i * k + l] as f64 * b[l * n + j] as f64;
                        want += p;
                        mag += p.abs();
                    }
                    let err = (c[i * n + j] as f64 - want).abs() / mag.max(1e-300);
                    let bound = match mode {
                        Tf32Mode::Split3 => 2f64.powi(-20) + k as f64 * 2f64.powi(-24),
                        _ => 2f64.powi(-9),
                    };
                    assert!(
                        err <= bound,
                        "{mode:?} {m}x{n}x{k} c[{i},{j}] = {}, f64 {want} (error {err:.2e} of Σ|ab| > {bound:.2e})",
                        c[i * n + j]
                    );
                    worst[slot] = worst[slot].max(err);
                }
            }
        }
        println!(
            "tf32 mma {m}x{n}x{k}: worst error / Σ|ab|: 3xTF32 {:.2e} (tier TF32X3), 1xTF32 {:.2e}",
            worst[0], worst[1]
        );
        assert!(
            worst[1] > 16.0 * worst[0],
            "the 3xTF32 split is no more accurate than one TF32 product"
        );
    }
    let e = be
        .tf32_mma_check(Tf32Mode::Split3, &ad, &bd, 10, 8, 8, &mut cd)
        .unwrap_err();
    assert!(e.to_string().contains("multiple of 16"), "{e}");
}

fn ssd_inputs(rng: &mut StdRng, dims: SsdDims) -> Vec<Vec<f32>> {
    let (bt, heads, n) = (dims.batch * dims.time, dims.heads, dims.n);
    let hp = heads * dims.head_dim;
    vec![
        rnd(rng, bt * hp, -1.0, 1.0),
        rnd(rng, bt * heads, -5.0, 2.0), // softplus below 0.01 and above 0.8: clamp both ways
        rnd(rng, heads, -1.0, 0.5),
        rnd(rng, heads, -2.0, -0.1),
        rnd(rng, bt * dims.groups * n, -1.0, 1.0),
        rnd(rng, bt * dims.groups * n, -1.0, 1.0),
        rnd(rng, heads, -1.0, 1.0),
    ]
}

/// The chunked (tensor-core) SSD forward against the CPU recurrence and the recurrent
/// kernel, and the backward on its checkpoints against the CPU backward.
fn ssd_chunked<D: Device>(be: &CudaBackend<D>, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let cpu = Cpu;
    for (batch, time, heads, p, groups, n) in [
        (2, 150, 6, 5, 3, 16),  // Q 64, tail chunk of 22, head_dim padded to 16
        (1, 128, 4, 16, 2, 64), // Q 64, time a multiple of Q
        (2, 70, 2, 8, 1, 100),  // Q 32, tail of 6, n padded to 104
        (1, 45, 2, 64, 1, 128), // Q 32, Mamba-2's head_dim 64 and d_state 128
        (1, 20, 3, 3, 3, 7),    // one partial chunk, odd n
    ] {
        let dims = SsdDims {
            batch,
            time,
            heads,
            head_dim: p,
            groups,
            n,
            dt_min: 0.01,
            dt_max: 0.8,
        };
        let tag =
            format!("ssd chunked b={batch} t={time} heads={heads} p={p} groups={groups} n={n}");
        assert!(be.supports_ssd_chunked(dims), "{tag}: not covered");
        let (bt, hp) = (batch * time, heads * p);
        let h = ssd_inputs(&mut rng, dims);
        let (mut y_c, mut s_c) = (
            vec![0f32; bt * hp],
            vec![0f32; cpu.ssd_scan_states_len(dims)],
        );
        cpu.ssd_scan_fwd(dims, ssd_in(&h), &mut y_c, &mut s_c)
            .unwrap();
        let dev: Vec<DevBufOf<D>> = h.iter().map(|v| be.upload(v).unwrap()).collect();
        let slen = be.ssd_scan_states_len(dims);
        let mut y = poisoned(be, bt * hp);
        let mut st = poisoned(be, slen);
        be.ssd_scan_fwd_with(SsdFwdKernel::Chunked, dims, ssd_in(&dev), &mut y, &mut st)
            .unwrap();
        let (yg, sg) = (be.download(&y).unwrap(), be.download(&st).unwrap());
        close(&format!("{tag} y"), &yg, &y_c, SSD_CHUNKED);
        // Checkpoints: the CPU's state after the last step of every chunk.
        let q = cuda::scan_chunk(n);
        let nch = time.div_ceil(q);
        let per = hp * n;
        let want: Vec<f32> = (0..batch)
            .flat_map(|b| (0..nch).map(move |c| (b, c)))
            .flat_map(|(b, c)| {
                let t = ((c + 1) * q).min(time) - 1;
                s_c[(b * time + t) * per..(b * time + t + 1) * per].to_vec()
            })
            .collect();
        close(&format!("{tag} checkpoints"), &sg, &want, SSD_CHUNKED);
        let steps: Vec<usize> = (0..batch).map(|_| rng.random_range(0..time)).collect();
        close(
            &format!("{tag} state_at {steps:?}"),
            &be.ssd_scan_state_at(dims, ssd_in(&dev), &st, &steps)
                .unwrap(),
            &cpu.ssd_scan_state_at(dims, ssd_in(&h), &s_c, &steps)
                .unwrap(),
            SSD_CHUNKED,
        );
        // The recurrent kernel on the same inputs.
        let mut yr = poisoned(be, bt * hp);
        let mut sr = poisoned(be, slen);
        be.ssd_scan_fwd_with(
            SsdFwdKernel::Recurrent,
            dims,
            ssd_in(&dev),
            &mut yr,
            &mut sr,
        )
        .unwrap();
        let (yr, sr) = (be.download(&yr).unwrap(), be.download(&sr).unwrap());
        close(&format!("{tag} y recurrent"), &yr, &y_c, SCAN);
        close(
            &format!("{tag} y chunked vs recurrent"),
            &yg,
            &yr,
            SSD_CHUNKED,
        );
        close(
            &format!("{tag} checkpoints chunked vs recurrent"),
            &sg,
            &sr,
            SSD_CHUNKED,
        );
        // Auto picks the chunked kernel here: bit for bit the same run.
        let mut ya = poisoned(be, bt * hp);
        let mut sa = poisoned(be, slen);
        be.ssd_scan_fwd(dims, ssd_in(&dev), &mut ya, &mut sa)
            .unwrap();
        assert_eq!(
            be.download(&ya)
                .unwrap()
                .iter()
                .map(|v| v.to_bits())
                .collect::<Vec<_>>(),
            yg.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "{tag}: ssd_scan_fwd did not run the chunked kernel"
        );

        // Backward from the chunked kernel's checkpoints.
        let dy = rnd(&mut rng, bt * hp, -1.0, 1.0);
        let acc0: Vec<Vec<f32>> = (0..3).map(|_| rnd(&mut rng, heads, -1.0, 1.0)).collect();
        ssd_bwd_vs_cpu(
            be,
            dims,
            &h,
            &s_c,
            &dev,
            &st,
            &dy,
            &acc0,
            &format!("{tag} bwd"),
        );
    }

    // A head too wide for the chunked kernel's shared memory: Chunked is a shape error,
    // Auto runs the recurrent kernel.
    let dims = SsdDims {
        batch: 1,
        time: 5,
        heads: 1,
        head_dim: 600,
        groups: 1,
        n: 64,
        dt_min: 0.0,
        dt_max: f32::INFINITY,
    };
    assert!(!be.supports_ssd_chunked(dims));
    let h = ssd_inputs(&mut rng, dims);
    let dev: Vec<DevBufOf<D>> = h.iter().map(|v| be.upload(v).unwrap()).collect();
    let mut y = poisoned(be, 5 * 600);
    let mut st = poisoned(be, be.ssd_scan_states_len(dims));
    let e = be
        .ssd_scan_fwd_with(SsdFwdKernel::Chunked, dims, ssd_in(&dev), &mut y, &mut st)
        .unwrap_err();
    assert!(e.to_string().contains("chunked"), "{e}");
    be.ssd_scan_fwd(dims, ssd_in(&dev), &mut y, &mut st)
        .unwrap();
    let (mut y_c, mut s_c) = (
        vec![0f32; 5 * 600],
        vec![0f32; cpu.ssd_scan_states_len(dims)],
    );
    cpu.ssd_scan_fwd(dims, ssd_in(&h), &mut y_c, &mut s_c)
        .unwrap();
    close(
        "ssd head_dim 600 (recurrent) y",
        &be.download(&y).unwrap(),
        &y_c,
        SCAN,
    );
}

type DevBufOf<D> = <CudaBackend<D> as Backend>::Buf;

macro_rules! on_both {
    ($name:ident, $f:ident, $seed:expr) => {
        mod $name {
            use super::*;
            #[test]
            fn emulated() {
                $f(emu(), $seed);
            }
            #[test]
            fn gpu() {
                if let Some(g) = super::gpu() {
                    $f(g, $seed + 1000);
                }
            }
        }
    };
}

on_both!(linear_norm_activations, linear_norm_act, 1);
on_both!(conv_losses_optimizer, conv_losses_optim, 2);
on_both!(s4d_scan, s4d, 3);
on_both!(selective_scan_fwd_bwd, selective_scan, 4);
on_both!(ssd_scan_fwd_bwd, ssd_scan, 5);
on_both!(tf32_mma_fragments, tf32_mma, 6);
on_both!(ssd_chunked_fwd, ssd_chunked, 7);

#[test]
fn params_structs_have_the_same_layout_in_rust_and_cpp() {
    let e = emu();
    for (name, size) in tinyssm_cuda::cuda::params::sizes() {
        assert_eq!(e.device().c_sizeof(name), size as i32, "{name}");
    }
}

#[test]
fn bad_shapes_are_errors_not_launches() {
    let be = emu();
    let x = be.upload(&[1.0; 6]).unwrap();
    let mut y = be.zeros(5).unwrap();
    let e = be.linear_fwd(&x, &x, None, 2, 3, 2, &mut y).unwrap_err();
    assert!(e.to_string().contains("linear_fwd"), "{e}");
    let _ = be.device().describe();
}

fn shape_err<T: std::fmt::Debug>(r: Result<T, BackendError>) -> BackendError {
    r.expect_err("a bad shape is an error")
}

/// The errors of a handful of ops called with bad shapes on `be` (the shared contract in
/// `backend::contract`), checking that each op left its outputs as they were.
fn bad_shape_errors<B: Backend>(be: &B) -> Vec<BackendError> {
    let up = |v: &[f32]| be.upload(v).unwrap();
    let filled = |n: usize, v: f32| be.upload(&vec![v; n]).unwrap();
    let unchanged = |what: &str, b: &B::Buf, v: f32| {
        assert!(
            be.download(b).unwrap().iter().all(|&x| x == v),
            "{what} written before the shape error"
        );
    };
    let mut e = Vec::new();

    let mut y = filled(4, 7.0);
    e.push(shape_err(be.add_assign(&mut y, &filled(5, 1.0))));
    let (x, w) = (filled(6, 1.0), filled(6, 1.0));
    e.push(shape_err(be.linear_fwd(
        &x,
        &w,
        None,
        2,
        3,
        2,
        &mut filled(5, 0.0),
    )));
    // The CPU backend used to check `db` only after accumulating `dw`.
    let (mut dx, mut dw) = (filled(6, 7.0), filled(6, 7.0));
    e.push(shape_err(be.linear_bwd(
        &x,
        &w,
        &filled(4, 1.0),
        2,
        3,
        2,
        Some(&mut dx),
        &mut dw,
        Some(&mut filled(3, 0.0)),
    )));
    unchanged("linear_bwd dx", &dx, 7.0);
    unchanged("linear_bwd dw", &dw, 7.0);
    let (g, b) = (filled(3, 1.0), filled(3, 0.0));
    e.push(shape_err(be.layer_norm_fwd(
        &x,
        &g,
        &b,
        2,
        3,
        1e-5,
        &mut filled(6, 0.0),
        &mut filled(3, 0.0),
    )));
    e.push(shape_err(be.glu_bwd(
        &x,
        &filled(3, 1.0),
        1,
        3,
        &mut filled(5, 0.0),
    )));
    // conv1d over batch 1, time 3, 2 channels, k 2; the CPU backend used to write `dx`
    // and `dw` before it checked `dbias`.
    let (mut dx, mut dw) = (filled(6, 7.0), filled(4, 7.0));
    e.push(shape_err(be.conv1d_bwd(
        &x,
        &filled(4, 1.0),
        &filled(6, 1.0),
        1,
        3,
        2,
        2,
        &mut dx,
        &mut dw,
        Some(&mut filled(3, 0.0)),
    )));
    unchanged("conv1d_bwd dx", &dx, 7.0);
    unchanged("conv1d_bwd dw", &dw, 7.0);
    e.push(shape_err(be.rms_norm_bwd(
        &x,
        &g,
        &filled(3, 1.0),
        &filled(6, 1.0),
        2,
        3,
        &mut filled(6, 0.0),
        &mut filled(3, 0.0),
    )));
    // x holds two rows of 3; the first bad index is reported.
    let mut y = filled(9, 7.0);
    e.push(shape_err(be.gather_rows(&x, 3, &[1, 5, 2], &mut y)));
    unchanged("gather_rows y", &y, 7.0);
    let mut dx = filled(6, 7.0);
    e.push(shape_err(be.gather_rows_bwd(
        &filled(6, 1.0),
        3,
        &[0, 4],
        &mut dx,
    )));
    unchanged("gather_rows_bwd dx", &dx, 7.0);
    let mut dl = filled(9, 7.0);
    e.push(shape_err(be.softmax_xent(
        &filled(9, 0.5),
        &[1, 3, 7],
        3,
        &mut dl,
    )));
    unchanged("softmax_xent dlogits", &dl, 7.0);
    e.push(shape_err(be.sigmoid_bce(
        &filled(4, 0.5),
        &[1.0; 3],
        1.0,
        &mut filled(4, 0.0),
    )));
    let h = AdamW {
        lr: 1e-3,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
        step: 1,
    };
    e.push(shape_err(be.adamw(
        &mut filled(4, 1.0),
        &filled(4, 1.0),
        &mut filled(4, 0.0),
        &mut filled(5, 0.0),
        h,
        false,
    )));

    let sd = ScanDims {
        batch: 2,
        time: 3,
        h: 2,
        n2: 2,
    };
    e.push(shape_err(be.s4d_scan_fwd(
        sd,
        &filled(12, 1.0),
        &filled(8, 0.5),
        &filled(8, 0.5),
        &filled(3, 1.0),
        &mut filled(12, 0.0),
        &mut filled(48, 0.0),
    )));

    let dims = SelScanDims {
        batch: 2,
        time: 3,
        d: 2,
        n: 4,
    };
    let mut rng = StdRng::seed_from_u64(11);
    let mut hs = sel_inputs(&mut rng, dims);
    let sl = be.selective_scan_states_len(dims);
    let ok: Vec<B::Buf> = hs.iter().map(|v| up(v)).collect();
    let mut st = filled(sl, 0.0);
    // The CPU backend's `state_at` did not check the inputs before.
    e.push(shape_err(be.selective_scan_state_at(
        dims,
        sel_in(&ok),
        &st,
        &[0, 3],
    )));
    hs[4].pop();
    let bad: Vec<B::Buf> = hs.iter().map(|v| up(v)).collect();
    let mut y = filled(12, 7.0);
    e.push(shape_err(be.selective_scan_fwd(
        dims,
        sel_in(&bad),
        &mut y,
        &mut st,
    )));
    unchanged("selective_scan_fwd y", &y, 7.0);
    e.push(shape_err(be.selective_scan_state_at(
        dims,
        sel_in(&bad),
        &st,
        &[0, 2],
    )));

    let dims = SsdDims {
        batch: 2,
        time: 3,
        heads: 2,
        head_dim: 2,
        groups: 1,
        n: 4,
        dt_min: 0.0,
        dt_max: f32::INFINITY,
    };
    let hs = ssd_inputs(&mut rng, dims);
    let x: Vec<B::Buf> = hs.iter().map(|v| up(v)).collect();
    let three_heads = SsdDims {
        heads: 3,
        groups: 2,
        ..dims
    };
    e.push(shape_err(be.ssd_scan_fwd(
        three_heads,
        ssd_in(&x),
        &mut filled(36, 0.0),
        &mut filled(be.ssd_scan_states_len(three_heads), 0.0),
    )));
    let (bt, hp) = (6, 4);
    let st = filled(be.ssd_scan_states_len(dims), 0.0);
    let mut gr: Vec<B::Buf> = [bt * hp, bt * 2, bt * 4, bt * 4 + 1, 2, 2, 2]
        .iter()
        .map(|&n| filled(n, 0.0))
        .collect();
    let [gdx, gdt, gbm, gcm, gda, gdd, gdb] = &mut gr[..] else {
        unreachable!()
    };
    e.push(shape_err(be.ssd_scan_bwd(
        dims,
        ssd_in(&x),
        &st,
        &filled(bt * hp, 1.0),
        SsdGrads {
            dx: gdx,
            ddt: gdt,
            dbm: gbm,
            dcm: gcm,
            da: gda,
            dskip: gdd,
            dbias: gdb,
        },
    )));
    e
}

#[test]
fn cpu_and_emulator_reject_bad_shapes_alike() {
    let want = bad_shape_errors(&Cpu);
    assert_eq!(bad_shape_errors(emu()), want);
    let ops: Vec<&str> = want
        .iter()
        .map(|e| match e {
            BackendError::Shape { op, .. } => *op,
            other => panic!("not a shape error: {other}"),
        })
        .collect();
    assert_eq!(
        ops,
        [
            "add_assign",
            "linear_fwd",
            "linear_bwd",
            "layer_norm_fwd",
            "glu_bwd",
            "conv1d_bwd",
            "rms_norm_bwd",
            "gather_rows",
            "gather_rows_bwd",
            "softmax_xent",
            "sigmoid_bce",
            "adamw",
            "s4d_scan_fwd",
            "selective_scan_state_at",
            "selective_scan_fwd",
            "selective_scan_state_at",
            "ssd_scan_fwd",
            "ssd_scan_bwd",
        ]
    );
    let msgs: Vec<String> = want.iter().map(|e| e.to_string()).collect();
    for m in [
        "linear_bwd: db has 3 elements, expected 2",
        "gather_rows: row 5 out of range",
        "gather_rows_bwd: row 4 out of range",
        "softmax_xent: label 3 >= 3 classes",
        "selective_scan_state_at: step 3 of stream 1 is past the 3 steps",
        "selective_scan_fwd: B has 23 elements, expected 24",
        "selective_scan_state_at: B has 23 elements, expected 24",
        "ssd_scan_fwd: heads must be a multiple of groups",
        "ssd_scan_bwd: dC has 25 elements, expected 24",
    ] {
        assert!(msgs.iter().any(|e| e == m), "{m} not in {msgs:#?}");
    }
}
