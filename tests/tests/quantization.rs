//! Quantized weights and the w8a8 step: encoding error bounds, and what int8 / int4 /
//! w8a8 cost against independent references (HF `transformers` goldens) and against the
//! float model (rwkv.cpp's tiny RWKV v5.2 and v7 over 1000 bytes of English text).
//! The numbers printed here go to QUANTIZATION.md.

use std::path::Path;

use proptest::prelude::*;
use tinyssm_core::{Compute, DType, Model, Role, TensorSpec};
use tinyssm_host::{io, tensor_f32, AlignedBuf, Runner, TensorData};
use tinyssm_tests::{data_dir, fixtures, nmse};
use tinyssm_tools::quantize::{requantize_blob, QuantSpec};
use tinyssm_tools::{convert_dir, WeightDtype};

fn run_tokens(m: Model<'_>, tokens: &[u32]) -> Vec<f32> {
    let mut r = Runner::new(m);
    let id = r.open();
    r.feed_tokens(id, tokens).unwrap()
}

fn quant(blob: &[u8], weights: DType, compute: Compute) -> AlignedBuf {
    AlignedBuf::from_bytes(
        &requantize_blob(
            blob,
            QuantSpec {
                weights,
                compute,
                compact: true,
            },
        )
        .unwrap(),
    )
}

const MODES: [(&str, DType, Compute); 3] = [
    ("int8", DType::I8, Compute::Float),
    ("int4", DType::I4, Compute::Float),
    ("w8a8", DType::I8, Compute::W8a8),
];

fn spec(rows: u32, cols: u32) -> TensorSpec {
    TensorSpec {
        layer: Some(0),
        role: Role::InProj,
        rank: 2,
        shape: [rows, cols, 0, 0],
    }
}

/// Dequantized values of an encoded matrix (through a blob-free view of the encoding).
fn roundtrip(v: &[f32], dt: DType, rows: u32, cols: u32) -> (TensorData, Vec<f32>) {
    let s = spec(rows, cols);
    let d = TensorData::encode(v.to_vec(), dt, &s).unwrap();
    let w = match &d {
        TensorData::I8 { q, scale, .. } => tinyssm_core::Weights::I8(tinyssm_core::QuantI8 {
            q,
            scale,
            cols: cols as usize,
            act: tinyssm_core::ActQuant::Float,
        }),
        TensorData::I4 { q, scale, cols } => tinyssm_core::Weights::I4(tinyssm_core::QuantI4 {
            q,
            scale,
            cols: *cols,
        }),
        TensorData::Bf16(b) => tinyssm_core::Weights::Bf16(b),
        _ => unreachable!(),
    };
    let view = tinyssm_core::TensorView {
        spec: s,
        dtype: dt,
        weights: w,
    };
    let back = tensor_f32(&view).unwrap();
    (d, back)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// int8: |w − ŵ| ≤ scale/2 per row (scale = max|row|/127); int4: ≤ scale/2 per group
    /// (scale = f16(max|group|/7)); bf16: relative error ≤ 2⁻⁸ (half an ulp of an 8-bit significand).
    #[test]
    fn encodings_stay_within_half_a_step(
        rows in 1u32..6,
        cols in 1u32..100,
        seed in any::<u64>(),
        spread in 1e-3f32..1e3,
    ) {
        let mut s = seed | 1;
        let v: Vec<f32> = (0..rows * cols)
            .map(|_| {
                s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * spread
            })
            .collect();
        let c = cols as usize;
        let (d, back) = roundtrip(&v, DType::I8, rows, cols);
        let TensorData::I8 { scale, .. } = d else { unreachable!() };
        for (r, (row, brow)) in v.chunks(c).zip(back.chunks(c)).enumerate() {
            let amax = row.iter().fold(0f32, |m, x| m.max(x.abs()));
            prop_assert!((scale[r] - amax / 127.0).abs() <= 1e-6 * amax);
            for (a, b) in row.iter().zip(brow) {
                prop_assert!((a - b).abs() <= scale[r] * 0.5 * (1.0 + 1e-5), "int8 {} vs {}", a, b);
            }
        }
        let (d, back) = roundtrip(&v, DType::I4, rows, cols);
        let TensorData::I4 { scale, .. } = d else { unreachable!() };
        let g = c.div_ceil(32);
        for (r, (row, brow)) in v.chunks(c).zip(back.chunks(c)).enumerate() {
            for (j, (a, b)) in row.iter().zip(brow).enumerate() {
                let sc = scale[r * g + j / 32].to_f32();
                // f16 rounding of the scale can push max|group| just past 7 steps: clamped.
                let grp = &row[(j / 32) * 32..((j / 32) * 32 + 32).min(c)];
                let amax = grp.iter().fold(0f32, |m, x| m.max(x.abs()));
                let bound = (sc * 0.5).max(amax - 7.0 * sc) * (1.0 + 1e-5);
                prop_assert!((a - b).abs() <= bound, "int4 {} vs {} (scale {})", a, b, sc);
            }
        }
        let (_, back) = roundtrip(&v, DType::Bf16, rows, cols);
        for (a, b) in v.iter().zip(&back) {
            prop_assert!((a - b).abs() <= a.abs() * 2f32.powi(-8));
        }
    }
}

/// HF Mamba / Mamba-2 goldens (transformers' logits on random-init models) with the weight
/// matrices at int8, int4 and w8a8.
#[test]
fn hf_goldens_at_int8_int4_and_w8a8() {
    let root = fixtures().join("hf");
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("config.json").is_file())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 6, "{}: fixtures missing", root.display());
    let mut worst = [0f64; 3];
    for dir in dirs {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let tokens = io::read_tokens_npy(&dir.join("input_ids.npy")).unwrap();
        let (_, want) = io::read_f32_npy(&dir.join("logits.npy")).unwrap();
        let blob = convert_dir(&dir, WeightDtype::F32).unwrap();
        let f32buf = AlignedBuf::from_bytes(&blob);
        let base = nmse(
            &run_tokens(Model::parse(f32buf.as_bytes()).unwrap(), &tokens),
            &want,
        );
        let mut line = format!("{name}: f32 NMSE {base:.2e}");
        for (i, (mode, dt, c)) in MODES.iter().enumerate() {
            let b = quant(&blob, *dt, *c);
            let got = run_tokens(Model::parse(b.as_bytes()).unwrap(), &tokens);
            assert!(
                got.iter().all(|x| x.is_finite()),
                "{name} {mode}: non-finite"
            );
            let e = nmse(&got, &want);
            worst[i] = worst[i].max(e);
            line += &format!(", {mode} {e:.2e}");
        }
        println!("{line}");
    }
    println!(
        "worst NMSE: int8 {:.2e}, int4 {:.2e}, w8a8 {:.2e}",
        worst[0], worst[1], worst[2]
    );
    // Bounds a little above what was measured (QUANTIZATION.md): a regression in the
    // quantizer or the kernels shows as a jump. These random-init weights are uniform,
    // the worst case for a 4-bit grid: int4 does not hold here (NMSE 0.15–0.5), while
    // trained models keep it far lower (the RWKV test below).
    assert!(worst[0] < 5e-3, "int8 NMSE {:.2e}", worst[0]);
    assert!(worst[1] < 0.8, "int4 NMSE {:.2e}", worst[1]);
    assert!(worst[2] < 3e-2, "w8a8 NMSE {:.2e}", worst[2]);
}

fn english_bytes() -> Option<Vec<u8>> {
    // 1000 bytes of English prose nobody here wrote: the data folder's provenance notes.
    let p = data_dir().join("README.md");
    match std::fs::read(&p) {
        Ok(b) => Some(b.into_iter().take(1000).collect()),
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("{} missing: CI must have the shared data", p.display())
        }
        Err(_) => {
            println!("skipped: {} absent", p.display());
            None
        }
    }
}

/// rwkv.cpp's tiny v5.2 and v7 (trained, byte-level): int8 / int4 / w8a8 against the float
/// model over 1000 bytes: logit NMSE and top-1 agreement.
#[test]
fn rwkv_tiny_quantized_vs_float_over_1000_bytes() {
    let Some(text) = english_bytes() else { return };
    let dir = data_dir().join("rwkv-tiny");
    assert_eq!(text.len(), 1000);
    let tokens: Vec<u32> = text.iter().map(|&b| b as u32).collect();
    for name in ["5v2-730K", "7v0-834K"] {
        let path = dir.join(format!("tiny-rwkv-{name}-FP32.bin"));
        let blob = convert_dir(Path::new(&path), WeightDtype::F32).unwrap();
        let fb = AlignedBuf::from_bytes(&blob);
        let float = run_tokens(Model::parse(fb.as_bytes()).unwrap(), &tokens);
        let argmax = |v: &[f32]| -> Vec<usize> {
            v.chunks(256)
                .map(|r| {
                    r.iter()
                        .enumerate()
                        .fold((0, f32::MIN), |m, (i, &x)| if x > m.1 { (i, x) } else { m })
                        .0
                })
                .collect()
        };
        let top_f = argmax(&float);
        for (mode, dt, c) in MODES {
            let b = quant(&blob, dt, c);
            let m = Model::parse(b.as_bytes()).unwrap();
            let got = run_tokens(m, &tokens);
            let e = nmse(&got, &float);
            let agree = argmax(&got)
                .iter()
                .zip(&top_f)
                .filter(|(a, b)| a == b)
                .count() as f64
                / tokens.len() as f64;
            println!(
                "rwkv {name} {mode}: logit NMSE {e:.3e}, top-1 agreement {:.1}%, weight bytes {} (float {})",
                agree * 100.0,
                m.weight_stats().total_bytes,
                Model::parse(fb.as_bytes()).unwrap().weight_stats().total_bytes
            );
            let (max_e, min_agree) = match mode {
                "int4" => (3e-2, 0.70),
                _ => (1e-3, 0.97),
            };
            assert!(e < max_e, "rwkv {name} {mode}: NMSE {e:.3e}");
            assert!(agree >= min_agree, "rwkv {name} {mode}: top-1 {agree}");
        }
    }
}

/// The integer-only step tracks the float step it was converted from, layer by layer, on
/// real streams (states and outputs compared in real units), and it is deterministic:
/// the same stream twice gives the same bits. The numbers go to QUANTIZATION.md.
#[test]
fn integer_only_step_tracks_the_float_step_per_layer() {
    use tinyssm_host::ModelFile;
    let root = tinyssm_tests::repo_root().join("models");
    std::env::set_var("TINYSSM_DATA", data_dir());
    for (name, dataset, min_db) in [
        ("fsdd-s4d", "fsdd", 30.0),
        ("fsdd-mamba", "fsdd", 30.0),
        ("ecg-rpeak", "ecg", 40.0),
    ] {
        let probe = if dataset == "ecg" {
            data_dir().join("ecg")
        } else {
            data_dir().join("fsdd/recordings")
        };
        if !probe.is_dir() {
            assert!(
                std::env::var_os("CI").is_none(),
                "{} missing",
                probe.display()
            );
            println!("skipped: {} absent", probe.display());
            continue;
        }
        let (pf, pi) = (
            root.join(format!("{name}.tssm")),
            root.join(format!("{name}-int.tssm")),
        );
        let (ff, fi) = (ModelFile::open(&pf).unwrap(), ModelFile::open(&pi).unwrap());
        let (mf, mi) = (ff.model(), fi.model());
        let mut streams =
            tinyssm_tools::eval::dataset_streams(&mf, &pf, dataset, tinyssm_data::Split::Test, 20)
                .unwrap();
        if dataset == "ecg" {
            streams[0].truncate(20_000);
        }
        let r = tinyssm_tools::eval::layer_snr(&mf, &pf, &mi, &pi, &streams).unwrap();
        println!(
            "{name}-int vs float: {} steps, output SNR {:.1} dB, layer state SNR {:?} dB",
            r.steps,
            r.output_snr_db,
            r.layer_state_snr_db
                .iter()
                .map(|v| (v * 10.0).round() / 10.0)
                .collect::<Vec<_>>()
        );
        assert!(r.steps > 100, "{name}");
        assert!(r.output_snr_db >= min_db, "{name}: {}", r.output_snr_db);
        for (l, &db) in r.layer_state_snr_db.iter().enumerate() {
            assert!(db >= min_db - 5.0, "{name} layer {l}: {db} dB");
        }
        let a = tinyssm_tools::eval::int_stream(&mi, &streams[0]).unwrap();
        let b = tinyssm_tools::eval::int_stream(&mi, &streams[0]).unwrap();
        assert_eq!(a, b, "{name}: the integer step is deterministic");
        let r = tinyssm_tools::eval::int_stream(
            &mi.with_kernels(tinyssm_core::Kernels::Reference),
            &streams[0],
        )
        .unwrap();
        assert_eq!(
            a, r,
            "{name}: SIMD and scalar reference kernels give the same bits"
        );
    }
}
