//! Every backward op of the CPU backend against central finite differences of its forward
//! op, on random inputs with odd sizes: the loss is `Σ r ⊙ f(inputs)` for a random `r`, so
//! `dy = r` and every input element's gradient is checked.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tinyssm_cuda::backend::{
    Backend, ScanDims, SelScanDims, SelScanGrads, SelScanIn, SsdDims, SsdGrads, SsdIn,
};
use tinyssm_cuda::Cpu;

fn rnd(rng: &mut StdRng, n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|_| rng.random_range(-1.0f32..1.0) * scale)
        .collect()
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
}

/// Checks `analytic` against central differences of `loss` over every element of `x`.
fn check(name: &str, x: &mut [f32], analytic: &[f32], loss: &mut dyn FnMut(&[f32]) -> f64) {
    let eps = 1e-2f32;
    let mut worst = 0f64;
    for i in 0..x.len() {
        let orig = x[i];
        x[i] = orig + eps;
        let lp = loss(x);
        x[i] = orig - eps;
        let lm = loss(x);
        x[i] = orig;
        let fd = (lp - lm) / (2.0 * eps as f64);
        let err =
            (fd - analytic[i] as f64).abs() / (fd.abs().max(analytic[i].abs() as f64).max(1e-1));
        worst = worst.max(err);
        assert!(
            err < 2e-2,
            "{name}[{i}]: analytic {} vs finite difference {fd}",
            analytic[i]
        );
    }
    println!(
        "{name}: {} elements, worst relative error {worst:.2e}",
        x.len()
    );
}

#[test]
fn linear() {
    let cpu = Cpu;
    let mut rng = StdRng::seed_from_u64(1);
    let (rows, din, dout) = (7, 5, 3);
    let mut x = rnd(&mut rng, rows * din, 1.0);
    let mut w = rnd(&mut rng, dout * din, 1.0);
    let mut b = rnd(&mut rng, dout, 1.0);
    let r = rnd(&mut rng, rows * dout, 1.0);
    let fwd = |x: &[f32], w: &[f32], b: &[f32]| {
        let mut y = vec![0f32; rows * dout];
        cpu.linear_fwd(
            &x.to_vec(),
            &w.to_vec(),
            Some(&b.to_vec()),
            rows,
            din,
            dout,
            &mut y,
        )
        .unwrap();
        dot(&y, &r)
    };
    let mut dx = vec![9f32; rows * din];
    let mut dw = vec![0f32; dout * din];
    let mut db = vec![0f32; dout];
    cpu.linear_bwd(
        &x,
        &w,
        &r,
        rows,
        din,
        dout,
        Some(&mut dx),
        &mut dw,
        Some(&mut db),
    )
    .unwrap();
    let (w0, b0, x0) = (w.clone(), b.clone(), x.clone());
    check("linear dx", &mut x, &dx, &mut |x| fwd(x, &w0, &b0));
    check("linear dw", &mut w, &dw, &mut |w| fwd(&x0, w, &b0));
    check("linear db", &mut b, &db, &mut |b| fwd(&x0, &w0, b));
    // Parameter gradients accumulate.
    let before = dw.clone();
    cpu.linear_bwd(&x0, &w0, &r, rows, din, dout, None, &mut dw, None)
        .unwrap();
    for (a, b) in dw.iter().zip(&before) {
        assert!((a - 2.0 * b).abs() <= 1e-5 * b.abs().max(1.0));
    }
}

#[test]
fn layer_norm() {
    let cpu = Cpu;
    let mut rng = StdRng::seed_from_u64(2);
    let (rows, d) = (5, 9);
    let mut x = rnd(&mut rng, rows * d, 2.0);
    let mut g = rnd(&mut rng, d, 1.0);
    let mut b = rnd(&mut rng, d, 1.0);
    let r = rnd(&mut rng, rows * d, 1.0);
    let fwd = |x: &[f32], g: &[f32], b: &[f32]| {
        let mut y = vec![0f32; rows * d];
        let mut st = vec![0f32; rows * 2];
        cpu.layer_norm_fwd(
            &x.to_vec(),
            &g.to_vec(),
            &b.to_vec(),
            rows,
            d,
            1e-5,
            &mut y,
            &mut st,
        )
        .unwrap();
        dot(&y, &r)
    };
    let mut y = vec![0f32; rows * d];
    let mut st = vec![0f32; rows * 2];
    cpu.layer_norm_fwd(&x, &g, &b, rows, d, 1e-5, &mut y, &mut st)
        .unwrap();
    let (mut dx, mut dg, mut db) = (vec![0f32; rows * d], vec![0f32; d], vec![0f32; d]);
    cpu.layer_norm_bwd(&x, &g, &st, &r, rows, d, &mut dx, &mut dg, &mut db)
        .unwrap();
    let (x0, g0, b0) = (x.clone(), g.clone(), b.clone());
    check("layer_norm dx", &mut x, &dx, &mut |x| fwd(x, &g0, &b0));
    check("layer_norm dg", &mut g, &dg, &mut |g| fwd(&x0, g, &b0));
    check("layer_norm db", &mut b, &db, &mut |b| fwd(&x0, &g0, b));
}

#[test]
fn gelu_and_glu() {
    let cpu = Cpu;
    let mut rng = StdRng::seed_from_u64(3);
    let mut x = rnd(&mut rng, 37, 3.0);
    let r = rnd(&mut rng, 37, 1.0);
    let mut dx = vec![0f32; 37];
    cpu.gelu_bwd(&x, &r, &mut dx).unwrap();
    check("gelu", &mut x, &dx, &mut |x| {
        let mut y = vec![0f32; 37];
        cpu.gelu_fwd(&x.to_vec(), &mut y).unwrap();
        dot(&y, &r)
    });
    let (rows, d) = (3, 7);
    let mut x = rnd(&mut rng, rows * 2 * d, 3.0);
    let r = rnd(&mut rng, rows * d, 1.0);
    let mut dx = vec![0f32; rows * 2 * d];
    cpu.glu_bwd(&x, &r, rows, d, &mut dx).unwrap();
    check("glu", &mut x, &dx, &mut |x| {
        let mut y = vec![0f32; rows * d];
        cpu.glu_fwd(&x.to_vec(), rows, d, &mut y).unwrap();
        dot(&y, &r)
    });
}

#[test]
fn s4d_scan() {
    let cpu = Cpu;
    let mut rng = StdRng::seed_from_u64(4);
    let dims = ScanDims {
        batch: 3,
        time: 11,
        h: 4,
        n2: 3,
    };
    let n = dims.batch * dims.time * dims.h;
    let per = dims.h * dims.n2 * 2;
    let mut u = rnd(&mut rng, n, 1.0);
    // |dA| < 1 as a stable discretization gives.
    let mut da: Vec<f32> = (0..per / 2)
        .flat_map(|_| {
            let (m, p) = (
                rng.random_range(0.3f32..0.95),
                rng.random_range(-3.0f32..3.0),
            );
            [m * p.cos(), m * p.sin()]
        })
        .collect();
    let mut cb = rnd(&mut rng, per, 1.0);
    let mut dd = rnd(&mut rng, dims.h, 1.0);
    let r = rnd(&mut rng, n, 1.0);
    let fwd = |u: &[f32], da: &[f32], cb: &[f32], dd: &[f32]| {
        let mut y = vec![0f32; n];
        let mut st = vec![0f32; n * dims.n2 * 2];
        cpu.s4d_scan_fwd(
            dims,
            &u.to_vec(),
            &da.to_vec(),
            &cb.to_vec(),
            &dd.to_vec(),
            &mut y,
            &mut st,
        )
        .unwrap();
        dot(&y, &r)
    };
    let mut y = vec![0f32; n];
    let mut st = vec![0f32; n * dims.n2 * 2];
    cpu.s4d_scan_fwd(dims, &u, &da, &cb, &dd, &mut y, &mut st)
        .unwrap();
    let mut du = vec![0f32; n];
    let (mut gda, mut gcb, mut gd) = (vec![0f32; per], vec![0f32; per], vec![0f32; dims.h]);
    cpu.s4d_scan_bwd(
        dims, &u, &da, &cb, &dd, &st, &r, &mut du, &mut gda, &mut gcb, &mut gd,
    )
    .unwrap();
    let (u0, da0, cb0, dd0) = (u.clone(), da.clone(), cb.clone(), dd.clone());
    check("scan du", &mut u, &du, &mut |u| fwd(u, &da0, &cb0, &dd0));
    check("scan dA", &mut da, &gda, &mut |da| fwd(&u0, da, &cb0, &dd0));
    check("scan C̃", &mut cb, &gcb, &mut |cb| {
        fwd(&u0, &da0, cb, &dd0)
    });
    check("scan D", &mut dd, &gd, &mut |dd| fwd(&u0, &da0, &cb0, dd));
}

#[test]
fn gather_and_cross_entropy() {
    let cpu = Cpu;
    let mut rng = StdRng::seed_from_u64(5);
    let (n, c) = (6, 5);
    let labels: Vec<u32> = (0..n).map(|i| (i * 3 % c) as u32).collect();
    let mut logits = rnd(&mut rng, n * c, 3.0);
    let mut g = vec![0f32; n * c];
    let (loss, _) = cpu.softmax_xent(&logits, &labels, c, &mut g).unwrap();
    assert!(loss > 0.0);
    check("softmax_xent", &mut logits, &g, &mut |l| {
        let mut tmp = vec![0f32; n * c];
        cpu.softmax_xent(&l.to_vec(), &labels, c, &mut tmp)
            .unwrap()
            .0 as f64
    });
    let x = rnd(&mut rng, 10 * 3, 1.0);
    let rows = [9usize, 0, 4];
    let mut y = vec![0f32; 9];
    cpu.gather_rows(&x, 3, &rows, &mut y).unwrap();
    assert_eq!(&y[..3], &x[27..30]);
    let mut dx = vec![7f32; 30];
    cpu.gather_rows_bwd(&y, 3, &rows, &mut dx).unwrap();
    assert_eq!(&dx[27..30], &x[27..30]);
    assert!(dx[3..12].iter().all(|&v| v == 0.0));
    assert!(cpu.gather_rows(&x, 3, &[10], &mut vec![0f32; 3]).is_err());
    assert!(cpu.softmax_xent(&logits, &[9; 6], c, &mut g).is_err());
}

#[test]
fn sigmoid_bce() {
    let cpu = Cpu;
    let mut rng = StdRng::seed_from_u64(6);
    let mut z = rnd(&mut rng, 23, 6.0);
    let y: Vec<f32> = (0..23)
        .map(|i| if i % 3 == 0 { 1.0 } else { 0.0 })
        .collect();
    let mut g = vec![0f32; 23];
    let l = cpu.sigmoid_bce(&z, &y, 2.5, &mut g).unwrap();
    assert!(l > 0.0);
    check("sigmoid_bce", &mut z, &g, &mut |z| {
        let mut t = vec![0f32; 23];
        cpu.sigmoid_bce(&z.to_vec(), &y, 2.5, &mut t).unwrap() as f64
    });
    // Extreme logits stay finite.
    let big = vec![80.0f32, -80.0];
    let mut g2 = vec![0f32; 2];
    let l = cpu.sigmoid_bce(&big, &[0.0, 1.0], 1.0, &mut g2).unwrap();
    assert!(l.is_finite() && (l - 80.0).abs() < 1e-3, "{l}");
}

#[test]
fn selective_scan() {
    let cpu = Cpu;
    let mut rng = StdRng::seed_from_u64(7);
    let dims = SelScanDims {
        batch: 2,
        time: 9,
        d: 3,
        n: 4,
    };
    let (bt, btn) = (2 * 9 * 3, 2 * 9 * 4);
    let v: Vec<Vec<f32>> = vec![
        rnd(&mut rng, bt, 1.0),                                    // u
        rnd(&mut rng, bt, 1.0),                                    // dt raw
        rnd(&mut rng, 3, 0.5),                                     // bias
        (0..12).map(|_| -rng.random_range(0.2f32..2.0)).collect(), // A < 0
        rnd(&mut rng, btn, 1.0),                                   // B
        rnd(&mut rng, btn, 1.0),                                   // C
        rnd(&mut rng, 3, 1.0),                                     // D
        rnd(&mut rng, bt, 2.0),                                    // z
    ];
    let r = rnd(&mut rng, bt, 1.0);
    let fwd = |v: &[Vec<f32>]| {
        let mut y = vec![0f32; bt];
        let mut st = vec![0f32; bt * 4];
        let x = SelScanIn {
            u: &v[0],
            dt: &v[1],
            bias: &v[2],
            a: &v[3],
            bm: &v[4],
            cm: &v[5],
            dskip: &v[6],
            z: &v[7],
        };
        cpu.selective_scan_fwd(dims, x, &mut y, &mut st).unwrap();
        (dot(&y, &r), st)
    };
    let (_, st) = fwd(&v);
    let mut gr: Vec<Vec<f32>> = v.iter().map(|x| vec![0f32; x.len()]).collect();
    {
        let x = SelScanIn {
            u: &v[0],
            dt: &v[1],
            bias: &v[2],
            a: &v[3],
            bm: &v[4],
            cm: &v[5],
            dskip: &v[6],
            z: &v[7],
        };
        let [du, ddt, dbias, da, dbm, dcm, dd, dz] = &mut gr[..] else {
            unreachable!()
        };
        let g = SelScanGrads {
            du,
            ddt,
            dbm,
            dcm,
            dz,
            da,
            dskip: dd,
            dbias,
        };
        cpu.selective_scan_bwd(dims, x, &st, &r, g).unwrap();
    }
    let names = ["u", "dt", "bias", "A", "B", "C", "D", "z"];
    for k in 0..8 {
        let mut xk = v[k].clone();
        let base = v.clone();
        check(
            &format!("selective_scan d{}", names[k]),
            &mut xk,
            &gr[k],
            &mut |x| {
                let mut w = base.clone();
                w[k] = x.to_vec();
                fwd(&w).0
            },
        );
    }
}

#[test]
fn ssd_scan() {
    let cpu = Cpu;
    let mut rng = StdRng::seed_from_u64(9);
    // 4 heads of 2 channels in 2 groups, n = 3; a finite dt_max that some steps hit.
    let dims = SsdDims {
        batch: 2,
        time: 7,
        heads: 4,
        head_dim: 2,
        groups: 2,
        n: 3,
        dt_min: 0.0,
        dt_max: 1.5,
    };
    let (bt, hp, gn) = (14, 8, 6);
    let v: Vec<Vec<f32>> = vec![
        rnd(&mut rng, bt * hp, 1.0),
        rnd(&mut rng, bt * 4, 1.5),
        rnd(&mut rng, 4, 0.5),
        (0..4).map(|_| -rng.random_range(0.2f32..2.0)).collect(),
        rnd(&mut rng, bt * gn, 1.0),
        rnd(&mut rng, bt * gn, 1.0),
        rnd(&mut rng, 4, 1.0),
    ];
    let r = rnd(&mut rng, bt * hp, 1.0);
    let fwd = |v: &[Vec<f32>]| {
        let mut y = vec![0f32; bt * hp];
        let mut st = vec![0f32; bt * hp * 3];
        let x = SsdIn {
            x: &v[0],
            dt: &v[1],
            bias: &v[2],
            a: &v[3],
            bm: &v[4],
            cm: &v[5],
            dskip: &v[6],
        };
        cpu.ssd_scan_fwd(dims, x, &mut y, &mut st).unwrap();
        (dot(&y, &r), st)
    };
    let (_, st) = fwd(&v);
    let mut gr: Vec<Vec<f32>> = v.iter().map(|x| vec![0f32; x.len()]).collect();
    {
        let x = SsdIn {
            x: &v[0],
            dt: &v[1],
            bias: &v[2],
            a: &v[3],
            bm: &v[4],
            cm: &v[5],
            dskip: &v[6],
        };
        let [dx, ddt, dbias, da, dbm, dcm, dd] = &mut gr[..] else {
            unreachable!()
        };
        let g = SsdGrads {
            dx,
            ddt,
            dbm,
            dcm,
            da,
            dskip: dd,
            dbias,
        };
        cpu.ssd_scan_bwd(dims, x, &st, &r, g).unwrap();
    }
    let names = ["x", "dt", "bias", "A", "B", "C", "D"];
    for k in 0..7 {
        let mut xk = v[k].clone();
        let base = v.clone();
        check(
            &format!("ssd_scan d{}", names[k]),
            &mut xk,
            &gr[k],
            &mut |x| {
                let mut w = base.clone();
                w[k] = x.to_vec();
                fwd(&w).0
            },
        );
    }
}

#[test]
fn conv1d_rms_norm_silu() {
    let cpu = Cpu;
    let mut rng = StdRng::seed_from_u64(8);
    let (b, t, c, k) = (2, 7, 3, 4);
    let mut x = rnd(&mut rng, b * t * c, 1.0);
    let mut w = rnd(&mut rng, c * k, 1.0);
    let mut bias = rnd(&mut rng, c, 1.0);
    let r = rnd(&mut rng, b * t * c, 1.0);
    let fwd = |x: &[f32], w: &[f32], bias: &[f32]| {
        let mut y = vec![0f32; b * t * c];
        cpu.conv1d_fwd(
            &x.to_vec(),
            &w.to_vec(),
            Some(&bias.to_vec()),
            b,
            t,
            c,
            k,
            &mut y,
        )
        .unwrap();
        dot(&y, &r)
    };
    let (mut dx, mut dw, mut db) = (vec![0f32; b * t * c], vec![0f32; c * k], vec![0f32; c]);
    cpu.conv1d_bwd(&x, &w, &r, b, t, c, k, &mut dx, &mut dw, Some(&mut db))
        .unwrap();
    let (x0, w0, b0) = (x.clone(), w.clone(), bias.clone());
    check("conv1d dx", &mut x, &dx, &mut |x| fwd(x, &w0, &b0));
    check("conv1d dw", &mut w, &dw, &mut |w| fwd(&x0, w, &b0));
    check("conv1d dbias", &mut bias, &db, &mut |bb| fwd(&x0, &w0, bb));
    // Causal: the output at step 0 depends only on x at step 0.
    let mut y = vec![0f32; b * t * c];
    cpu.conv1d_fwd(&x0, &w0, None, b, t, c, k, &mut y).unwrap();
    assert_eq!(y[0], x0[0] * w0[k - 1]);

    let (rows, d) = (5, 6);
    let mut x = rnd(&mut rng, rows * d, 2.0);
    let mut g = rnd(&mut rng, d, 1.0);
    let r = rnd(&mut rng, rows * d, 1.0);
    let fwd = |x: &[f32], g: &[f32]| {
        let mut y = vec![0f32; rows * d];
        let mut st = vec![0f32; rows];
        cpu.rms_norm_fwd(&x.to_vec(), &g.to_vec(), rows, d, 1e-5, &mut y, &mut st)
            .unwrap();
        dot(&y, &r)
    };
    let mut y = vec![0f32; rows * d];
    let mut st = vec![0f32; rows];
    cpu.rms_norm_fwd(&x, &g, rows, d, 1e-5, &mut y, &mut st)
        .unwrap();
    let (mut dx, mut dg) = (vec![0f32; rows * d], vec![0f32; d]);
    cpu.rms_norm_bwd(&x, &g, &st, &r, rows, d, &mut dx, &mut dg)
        .unwrap();
    let (x0, g0) = (x.clone(), g.clone());
    check("rms_norm dx", &mut x, &dx, &mut |x| fwd(x, &g0));
    check("rms_norm dg", &mut g, &dg, &mut |g| fwd(&x0, g));

    let mut x = rnd(&mut rng, 29, 4.0);
    let r = rnd(&mut rng, 29, 1.0);
    let mut dx = vec![0f32; 29];
    cpu.silu_bwd(&x, &r, &mut dx).unwrap();
    check("silu", &mut x, &dx, &mut |x| {
        let mut y = vec![0f32; 29];
        cpu.silu_fwd(&x.to_vec(), &mut y).unwrap();
        dot(&y, &r)
    });
}

#[test]
fn shapes_are_checked() {
    let cpu = Cpu;
    let e = cpu
        .linear_fwd(
            &vec![0.0; 6],
            &vec![0.0; 6],
            None,
            2,
            3,
            2,
            &mut vec![0.0; 3],
        )
        .unwrap_err();
    assert!(e.to_string().contains("linear_fwd"), "{e}");
}
