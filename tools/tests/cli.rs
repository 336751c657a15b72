//! The `tinyssm` CLI end to end: convert, inspect, run, and clear one-line errors with no
//! output file left behind on failure.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use safetensors::tensor::TensorView;
use safetensors::Dtype;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tinyssm"))
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn first_fixture(sub: &str, prefix: &str) -> PathBuf {
    let mut v: Vec<PathBuf> = std::fs::read_dir(fixtures().join(sub))
        .expect("fixtures are committed")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect();
    v.sort();
    v.into_iter()
        .next()
        .unwrap_or_else(|| panic!("no fixture {sub}/{prefix}*"))
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("spawn tinyssm")
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Fails with exactly one line on stderr starting with `error:` containing `needle`.
fn fails_with(o: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "expected failure, got success");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "expected one error line, got: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    assert!(err.contains(needle), "expected `{needle}` in: {err}");
}

fn no_leftovers(dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "files left behind: {left:?}");
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
    }
}

/// Rewrites `model.safetensors` in `dir` through `edit(name, dtype, shape, bytes)`.
fn rewrite_tensors(
    dir: &Path,
    edit: impl Fn(&str, Dtype, Vec<usize>, Vec<u8>) -> Option<(Dtype, Vec<usize>, Vec<u8>)>,
) {
    let p = dir.join("model.safetensors");
    let bytes = std::fs::read(&p).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut kept: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, t) in st.tensors() {
        if let Some((d, s, b)) = edit(&name, t.dtype(), t.shape().to_vec(), t.data().to_vec()) {
            kept.push((name, d, s, b));
        }
    }
    let views: Vec<(String, TensorView<'_>)> = kept
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize_to_file(views, None, &p).unwrap();
}

#[test]
fn convert_inspect_run_mamba() {
    let src = first_fixture("hf", "mamba1");
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("m.tssm");
    ok(&run(bin().arg("convert").arg(&src).arg("-o").arg(&model)));
    let js = ok(&run(bin().arg("inspect").arg(&model).arg("--json")));
    let v: serde_json::Value = serde_json::from_str(&js).unwrap();
    assert_eq!(v["architecture"], "mamba1");
    assert!(v["state_bytes"].as_u64().unwrap() > 0);
    assert!(v["scratch_bytes"].as_u64().unwrap() > 0);
    assert!(v["macs_per_step"].as_u64().unwrap() > 0);
    assert_eq!(v["weight_bytes"]["f16"], 0);
    let human = ok(&run(bin().arg("inspect").arg(&model)));
    assert!(human.contains("state bytes"));
    let y = tmp.path().join("y.npy");
    ok(&run(bin()
        .arg("run")
        .arg(&model)
        .arg("--tokens")
        .arg(src.join("input_ids.npy"))
        .arg("--out")
        .arg(&y)));
    let (shape, got) = tinyssm_host::io::read_f32_npy(&y).unwrap();
    let (wshape, want) = tinyssm_host::io::read_f32_npy(&src.join("logits.npy")).unwrap();
    assert_eq!(shape, wshape);
    let err = got
        .iter()
        .zip(&want)
        .map(|(g, w)| (g - w).abs() / w.abs().max(1.0))
        .fold(0.0f32, f32::max);
    assert!(err <= 1e-4, "CLI run differs from golden: {err}");
    // f16 weights: the file is smaller and inspect says so.
    let m16 = tmp.path().join("m16.tssm");
    ok(&run(bin()
        .arg("convert")
        .arg(&src)
        .arg("-o")
        .arg(&m16)
        .arg("--weights")
        .arg("f16")));
    let v16: serde_json::Value =
        serde_json::from_str(&ok(&run(bin().arg("inspect").arg(&m16).arg("--json")))).unwrap();
    assert!(v16["weight_bytes"]["f16"].as_u64().unwrap() > 0);
    assert!(std::fs::metadata(&m16).unwrap().len() < std::fs::metadata(&model).unwrap().len());
    // text input on a token model
    let yt = tmp.path().join("yt.npy");
    let o = run(bin()
        .arg("run")
        .arg(&model)
        .arg("--text")
        .arg("\u{1}\u{2}")
        .arg("--out")
        .arg(&yt));
    ok(&o);
}

#[test]
fn convert_and_run_s4d_csv_and_wav() {
    let src = first_fixture("s4d", "s4d");
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("s.tssm");
    ok(&run(bin().arg("convert").arg(&src).arg("-o").arg(&model)));
    let (xs, x) = tinyssm_host::io::read_f32_npy(&src.join("input.npy")).unwrap();
    let cols = xs[1] as usize;
    let csv: String = x
        .chunks(cols)
        .map(|r| {
            r.iter()
                .map(|v| format!("{v:e}"))
                .collect::<Vec<_>>()
                .join(",")
                + "\n"
        })
        .collect();
    let csvp = tmp.path().join("in.csv");
    std::fs::write(&csvp, format!("header{}\n{csv}", ",h".repeat(cols - 1))).unwrap();
    let y = tmp.path().join("y.npy");
    ok(&run(bin()
        .arg("run")
        .arg(&model)
        .arg("--csv")
        .arg(&csvp)
        .arg("--out")
        .arg(&y)));
    let (shape, got) = tinyssm_host::io::read_f32_npy(&y).unwrap();
    let (wshape, want) = tinyssm_host::io::read_f32_npy(&src.join("expected.npy")).unwrap();
    assert_eq!(shape, wshape);
    let err = got
        .iter()
        .zip(&want)
        .map(|(g, w)| (g - w).abs() / w.abs().max(1.0))
        .fold(0.0f32, f32::max);
    assert!(err <= 1e-4, "{err}");
    // WAV with the model's channel count (float samples round-trip exactly).
    let wav = tmp.path().join("in.wav");
    let spec = hound::WavSpec {
        channels: cols as u16,
        sample_rate: 8000,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(&wav, spec).unwrap();
    for v in &x {
        w.write_sample(*v).unwrap();
    }
    w.finalize().unwrap();
    let yw = tmp.path().join("yw.npy");
    ok(&run(bin()
        .arg("run")
        .arg(&model)
        .arg("--wav")
        .arg(&wav)
        .arg("--out")
        .arg(&yw)));
    let (_, gw) = tinyssm_host::io::read_f32_npy(&yw).unwrap();
    assert_eq!(gw, got);
    // wrong input kind
    let o = run(bin()
        .arg("run")
        .arg(&model)
        .arg("--text")
        .arg("hi")
        .arg("--out")
        .arg(tmp.path().join("z.npy")));
    fails_with(&o, "takes vectors");
    assert!(!tmp.path().join("z.npy").exists());
}

#[test]
fn convert_errors_are_one_line_and_leave_nothing() {
    let src = first_fixture("hf", "mamba1");
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("o.tssm");
    let work = tempfile::tempdir().unwrap();

    // missing tensor, named with its expected shape
    let d = work.path().join("missing");
    copy_dir(&src, &d);
    rewrite_tensors(&d, |n, dt, s, b| {
        (!n.ends_with("layers.1.mixer.x_proj.weight")).then_some((dt, s, b))
    });
    let o = run(bin().arg("convert").arg(&d).arg("-o").arg(&out));
    fails_with(
        &o,
        "missing tensor `backbone.layers.1.mixer.x_proj.weight` (expected shape [",
    );
    no_leftovers(out_dir.path());

    // wrong dtype
    let d = work.path().join("dtype");
    copy_dir(&src, &d);
    rewrite_tensors(&d, |n, dt, s, b| {
        if n.ends_with("layers.0.mixer.D") {
            Some((Dtype::I32, s, b))
        } else {
            Some((dt, s, b))
        }
    });
    let o = run(bin().arg("convert").arg(&d).arg("-o").arg(&out));
    fails_with(&o, "unsupported dtype");
    no_leftovers(out_dir.path());

    // wrong shape
    let d = work.path().join("shape");
    copy_dir(&src, &d);
    rewrite_tensors(&d, |n, dt, s, b| {
        if n.ends_with("layers.0.mixer.D") {
            let k = s[0];
            Some((dt, vec![1, k], b))
        } else {
            Some((dt, s, b))
        }
    });
    let o = run(bin().arg("convert").arg(&d).arg("-o").arg(&out));
    fails_with(&o, "has shape [1,");
    no_leftovers(out_dir.path());

    // malformed JSON
    let d = work.path().join("json");
    copy_dir(&src, &d);
    std::fs::write(d.join("config.json"), "{\"model_type\": \"mamba\", ").unwrap();
    let o = run(bin().arg("convert").arg(&d).arg("-o").arg(&out));
    fails_with(&o, "malformed JSON");
    no_leftovers(out_dir.path());

    // unsupported architecture
    let d = work.path().join("arch");
    copy_dir(&src, &d);
    std::fs::write(d.join("config.json"), "{\"model_type\": \"llama\"}").unwrap();
    let o = run(bin().arg("convert").arg(&d).arg("-o").arg(&out));
    fails_with(&o, "unsupported architecture: model_type `llama`");
    no_leftovers(out_dir.path());

    // truncated safetensors
    let d = work.path().join("trunc");
    copy_dir(&src, &d);
    let p = d.join("model.safetensors");
    let b = std::fs::read(&p).unwrap();
    std::fs::write(&p, &b[..b.len() / 2]).unwrap();
    let o = run(bin().arg("convert").arg(&d).arg("-o").arg(&out));
    fails_with(&o, "cannot read safetensors");
    no_leftovers(out_dir.path());

    // not a directory
    let o = run(bin()
        .arg("convert")
        .arg(work.path().join("nope"))
        .arg("-o")
        .arg(&out));
    fails_with(&o, "not a checkpoint directory");
    no_leftovers(out_dir.path());
}

#[test]
fn run_errors_are_clear() {
    let src = first_fixture("hf", "mamba1");
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("m.tssm");
    ok(&run(bin().arg("convert").arg(&src).arg("-o").arg(&model)));
    let outs = tempfile::tempdir().unwrap();
    let y = outs.path().join("y.npy");
    // token out of range
    let ids = tmp.path().join("ids.npy");
    std::fs::write(&ids, npy_i64(&[1, 2, 100_000])).unwrap();
    let o = run(bin()
        .arg("run")
        .arg(&model)
        .arg("--tokens")
        .arg(&ids)
        .arg("--out")
        .arg(&y));
    fails_with(&o, "out of range");
    no_leftovers(outs.path());
    // corrupt model: flip one byte in the data
    let bad = tmp.path().join("bad.tssm");
    let mut b = std::fs::read(&model).unwrap();
    let n = b.len();
    b[n - 5] ^= 0x40;
    std::fs::write(&bad, &b).unwrap();
    let o = run(bin()
        .arg("run")
        .arg(&bad)
        .arg("--text")
        .arg("a")
        .arg("--out")
        .arg(&y));
    fails_with(&o, "CRC mismatch");
    no_leftovers(outs.path());
    // truncated model
    std::fs::write(&bad, &b[..n / 3]).unwrap();
    let o = run(bin().arg("inspect").arg(&bad));
    fails_with(&o, "truncated");
    // not a model
    std::fs::write(&bad, b"hello").unwrap();
    let o = run(bin().arg("inspect").arg(&bad));
    fails_with(&o, "bad magic");
    // missing input file
    let o = run(bin()
        .arg("run")
        .arg(&model)
        .arg("--tokens")
        .arg(tmp.path().join("none.npy"))
        .arg("--out")
        .arg(&y));
    fails_with(&o, "none.npy");
    no_leftovers(outs.path());
    // An integer-only audio model given feature vectors: it takes audio.
    let int = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/fsdd-s4d-tiny-int.tssm");
    let csv = tmp.path().join("x.csv");
    let row = vec!["0.5"; 40].join(",");
    std::fs::write(&csv, format!("{row}\n{row}\n")).unwrap();
    let o = run(bin()
        .arg("run")
        .arg(&int)
        .arg("--csv")
        .arg(&csv)
        .arg("--out")
        .arg(&y));
    fails_with(&o, "takes audio (--wav)");
    no_leftovers(outs.path());
}

/// Minimal `.npy` writer for an i64 vector (format 1.0).
fn npy_i64(v: &[i64]) -> Vec<u8> {
    let mut header = format!(
        "{{'descr': '<i8', 'fortran_order': False, 'shape': ({},), }}",
        v.len()
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

/// An S4D checkpoint whose config.json carries a front end: the model takes audio, `inspect`
/// says so, and `run --wav` feeds samples through the front end (one output per frame).
#[test]
fn s4d_with_front_end_runs_on_audio() {
    let src = first_fixture("s4d", "s4d-glu-prenorm");
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("ckpt");
    copy_dir(&src, &d);
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("config.json")).unwrap()).unwrap();
    cfg["d_input"] = 40.into();
    cfg["front_end"] = serde_json::json!({
        "sample_rate": 8000, "frame_len": 200, "hop": 80, "n_fft": 256, "n_mels": 40,
        "f_min": 20.0, "f_max": 4000.0, "window": "hann", "mel_scale": "htk",
        "area_norm": false, "log_eps": 1e-6
    });
    std::fs::write(d.join("config.json"), cfg.to_string()).unwrap();
    rewrite_tensors(&d, |name, dt, shape, bytes| {
        if name == "encoder.weight" {
            let n = shape[0] * 40;
            let v: Vec<u8> = (0..n)
                .flat_map(|i| (((i * 37 % 101) as f32 - 50.0) / 500.0).to_le_bytes())
                .collect();
            Some((dt, vec![shape[0], 40], v))
        } else {
            Some((dt, shape, bytes))
        }
    });
    let model = tmp.path().join("a.tssm");
    ok(&run(bin().arg("convert").arg(&d).arg("-o").arg(&model)));
    let info = ok(&run(bin().arg("inspect").arg(&model)));
    assert!(info.contains("audio at 8000 Hz: 40 log-mel"), "{info}");
    // One second of a 440 Hz tone as 16-bit PCM: 98 frames.
    let write_wav = |p: &Path, rate: u32| {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(p, spec).unwrap();
        for i in 0..8000 {
            let t = i as f32 / 8000.0;
            w.write_sample((8000.0 * (2.0 * std::f32::consts::PI * 440.0 * t).sin()) as i16)
                .unwrap();
        }
        w.finalize().unwrap();
    };
    let wav = tmp.path().join("tone.wav");
    write_wav(&wav, 8000);
    let y = tmp.path().join("y.npy");
    ok(&run(bin()
        .arg("run")
        .arg(&model)
        .arg("--wav")
        .arg(&wav)
        .arg("--out")
        .arg(&y)));
    let (shape, v) = tinyssm_host::io::read_f32_npy(&y).unwrap();
    assert_eq!(shape, vec![98, 4]);
    assert!(v.iter().all(|x| x.is_finite()));
    // A file at another rate is refused, naming both rates.
    let wav16 = tmp.path().join("tone16.wav");
    write_wav(&wav16, 16000);
    let o = run(bin()
        .arg("run")
        .arg(&model)
        .arg("--wav")
        .arg(&wav16)
        .arg("--out")
        .arg(tmp.path().join("z.npy")));
    fails_with(&o, "8000 Hz");
    assert!(!tmp.path().join("z.npy").exists());
    // A malformed front end in config.json is a one-line error.
    cfg["front_end"]["window"] = "triangle".into();
    std::fs::write(d.join("config.json"), cfg.to_string()).unwrap();
    let o = run(bin()
        .arg("convert")
        .arg(&d)
        .arg("-o")
        .arg(tmp.path().join("b.tssm")));
    fails_with(&o, "front_end");
}

fn data_dir() -> Option<PathBuf> {
    let d = std::env::var_os("TINYSSM_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"));
    if d.join("imu").is_dir() {
        Some(d)
    } else if std::env::var_os("CI").is_some() {
        panic!("{} is missing: CI must have the shared data", d.display());
    } else {
        println!("skipped: {} absent", d.display());
        None
    }
}

/// Quantize a shipped model, then compare it with its float original: side-by-side eval,
/// per-layer SNR (finite, and higher for int8 than int4) and the output plot.
#[test]
fn quantize_then_eval_layers_and_plot() {
    let Some(data) = data_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let float = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/basicmotions-s4d.tssm");
    let (q8, q4) = (tmp.path().join("q8.tssm"), tmp.path().join("q4.tssm"));
    ok(&run(bin()
        .args(["convert"])
        .arg(&float)
        .arg("-o")
        .arg(&q8)
        .args(["--weights", "int8", "--compute", "w8a8"])));
    ok(&run(bin()
        .args(["convert"])
        .arg(&float)
        .arg("-o")
        .arg(&q4)
        .args(["--weights", "int4"])));
    let s = ok(&run(bin().arg("inspect").arg(&q8)));
    assert!(
        s.contains("compute        w8a8") && s.contains("int8 "),
        "{s}"
    );
    // A mode that needs int8 weights says so and writes nothing.
    let bad = tmp.path().join("bad.tssm");
    let o = run(bin()
        .args(["convert"])
        .arg(&float)
        .arg("-o")
        .arg(&bad)
        .args(["--weights", "int4", "--compute", "w8a8"]));
    assert!(!o.status.success() && !bad.exists());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--weights int8"));
    // `tinyssm eval` of the three models on basicmotions with `extra` flags.
    let eval = |extra: &[&str]| {
        let mut c = bin();
        c.env("TINYSSM_DATA", &data)
            .arg("eval")
            .arg(&float)
            .arg(&q8)
            .arg(&q4)
            .args(["--dataset", "basicmotions", "--json"])
            .args(extra);
        ok(&run(&mut c))
    };
    let j = eval(&[]);
    let v: serde_json::Value = serde_json::from_str(j.trim()).unwrap();
    let ms = v["models"].as_array().unwrap();
    assert_eq!(ms.len(), 3);
    let wb = |i: usize| ms[i]["weight_bytes"].as_u64().unwrap();
    assert!(wb(2) < wb(1) && wb(1) < wb(0), "{j}");
    assert_eq!(ms[1]["compute"], "w8a8");
    let png = tmp.path().join("out.png");
    let j = eval(&["--layers", "--plot", png.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_str(j.trim()).unwrap();
    let l = v["layers"].as_array().unwrap();
    let snr = |i: usize| l[i]["output_snr_db"].as_f64().unwrap();
    println!(
        "basicmotions output SNR: int8 w8a8 {:.1} dB, int4 {:.1} dB",
        snr(0),
        snr(1)
    );
    assert!(snr(0) > snr(1) && snr(1) > 5.0, "{j}");
    assert_eq!(
        l[0]["layer_state_snr_db"].as_array().unwrap().len(),
        2,
        "one SNR per layer"
    );
    let b = std::fs::read(&png).unwrap();
    assert_eq!(&b[1..4], b"PNG");
    // A plot into a directory that does not exist: one line naming the path.
    let nowhere = tmp.path().join("no/such/dir/out.png");
    let mut c = bin();
    c.env("TINYSSM_DATA", &data)
        .arg("eval")
        .arg(&float)
        .args(["--dataset", "basicmotions", "--plot"])
        .arg(&nowhere);
    let o = run(&mut c);
    fails_with(&o, "no/such/dir/out.png: its directory");
}

/// `--compute int`: the calibration set is required and checked, impossible combinations
/// are one-line errors that write nothing, and the converted model evaluates side by side
/// with its float original (accuracy, per-layer SNR in real units).
#[test]
fn integer_only_convert_needs_calibration_and_evaluates() {
    let Some(data) = data_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let float = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/basicmotions-s4d.tssm");
    let out = tmp.path().join("int.tssm");
    let convert = |extra: &[&str]| {
        let mut c = bin();
        c.env("TINYSSM_DATA", &data)
            .arg("convert")
            .arg(&float)
            .arg("-o")
            .arg(&out)
            .args(extra);
        run(&mut c)
    };
    for (args, needle) in [
        (&["--compute", "int"][..], "needs a calibration set"),
        (
            &[
                "--compute",
                "int",
                "--weights",
                "int4",
                "--calibrate",
                "basicmotions",
            ][..],
            "--weights int8",
        ),
        (
            &["--compute", "float", "--calibrate", "basicmotions"][..],
            "--calibrate is for --compute int and --compute w8a8",
        ),
        (
            &["--compute", "int", "--calibrate", "nonsense"][..],
            "expected fsdd",
        ),
        (
            &["--compute", "int", "--calibrate", "fsdd"][..],
            "audio front end",
        ),
        (
            &["--compute", "int", "--calibrate", "basicmotions:x"][..],
            "not a count",
        ),
    ] {
        let o = convert(args);
        fails_with(&o, needle);
        assert!(!out.exists(), "{args:?} left a file");
    }
    ok(&convert(&[
        "--compute",
        "int",
        "--calibrate",
        "basicmotions",
    ]));
    let s = ok(&run(bin().arg("inspect").arg(&out)));
    assert!(
        s.contains("compute        int") && s.contains("int8r "),
        "{s}"
    );
    assert!(
        !s.contains("f32 "),
        "an integer-only model has no f32 tensor: {s}"
    );
    let mut c = bin();
    c.env("TINYSSM_DATA", &data)
        .arg("eval")
        .arg(&float)
        .arg(&out)
        .args(["--dataset", "basicmotions", "--json", "--layers"]);
    let j = ok(&run(&mut c));
    let v: serde_json::Value = serde_json::from_str(j.trim()).unwrap();
    let l = &v["layers"][0];
    let snr = l["output_snr_db"].as_f64().unwrap();
    println!(
        "basicmotions integer-only: output SNR {snr:.1} dB, layer states {}",
        l["layer_state_snr_db"]
    );
    assert!(snr > 20.0, "{j}");
}

/// `--compute w8a8 --calibrate`: static activation scales where the calibration shows
/// they hold (the converter reports its plan per matrix), format 1.4, `inspect` counts
/// static and dynamic matrices, and the model evaluates close to its float original.
/// Impossible combinations are one-line errors that write nothing.
#[test]
fn static_w8a8_convert_plans_its_scales_and_evaluates() {
    let Some(data) = data_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let float = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/basicmotions-s4d.tssm");
    let out = tmp.path().join("w8a8s.tssm");
    let convert = |src: &Path, extra: &[&str]| {
        let mut c = bin();
        c.env("TINYSSM_DATA", &data)
            .arg("convert")
            .arg(src)
            .arg("-o")
            .arg(&out)
            .args(extra);
        run(&mut c)
    };
    let mamba_lm = first_fixture("hf", "mamba1");
    for (src, args, needle) in [
        (
            float.as_path(),
            &[
                "--compute",
                "w8a8",
                "--weights",
                "int4",
                "--calibrate",
                "basicmotions",
            ][..],
            "use --weights int8",
        ),
        (
            mamba_lm.as_path(),
            &[
                "--compute",
                "w8a8",
                "--weights",
                "int8",
                "--calibrate",
                "basicmotions",
            ][..],
            "calibrated for S4D and Mamba sensor models",
        ),
        (
            float.as_path(),
            &[
                "--compute",
                "int",
                "--calibrate",
                "basicmotions",
                "--all-static",
            ][..],
            "--all-static is for --compute w8a8",
        ),
    ] {
        let o = convert(src, args);
        fails_with(&o, needle);
        assert!(!out.exists(), "{args:?} left a file");
    }
    let o = convert(
        &float,
        &[
            "--compute",
            "w8a8",
            "--weights",
            "int8",
            "--calibrate",
            "basicmotions",
        ],
    );
    ok(&o);
    let plan = String::from_utf8_lossy(&o.stderr);
    assert!(
        plan.contains("decoder.weight") && plan.contains("-> static"),
        "{plan}"
    );
    let js = ok(&run(bin().arg("inspect").arg(&out).arg("--json")));
    let v: serde_json::Value = serde_json::from_str(&js).unwrap();
    // Static scales are 1.4; an int8 conversion's compact S4D vectors make it 1.6, and
    // `--no-compact` writes what a 1.4 reader reads.
    assert_eq!(v["format_version"], "1.6");
    let plain = tmp.path().join("plain.tssm");
    ok(&run(bin()
        .args(["convert"])
        .arg(&float)
        .arg("-o")
        .arg(&plain)
        .args([
            "--compute",
            "w8a8",
            "--weights",
            "int8",
            "--calibrate",
            "basicmotions",
            "--no-compact",
        ])));
    let js = ok(&run(bin().arg("inspect").arg(&plain).arg("--json")));
    let p: serde_json::Value = serde_json::from_str(&js).unwrap();
    assert_eq!(p["format_version"], "1.4");
    assert!(std::fs::metadata(&plain).unwrap().len() > std::fs::metadata(&out).unwrap().len());
    let (ns, nd) = (
        v["w8a8_static_matrices"].as_u64().unwrap(),
        v["w8a8_dynamic_matrices"].as_u64().unwrap(),
    );
    assert!(ns >= 1, "{js}");
    // One line per int8 matrix in the plan; each says static or dynamic.
    assert_eq!(plan.matches("-> static").count() as u64, ns, "{plan}");
    assert_eq!(plan.matches("-> dynamic").count() as u64, nd, "{plan}");
    let human = ok(&run(bin().arg("inspect").arg(&out)));
    assert!(
        human.contains(&format!(
            "w8a8 (activation scales: {ns} static, {nd} dynamic)"
        )),
        "{human}"
    );
    let mut c = bin();
    c.env("TINYSSM_DATA", &data)
        .arg("eval")
        .arg(&float)
        .arg(&out)
        .args(["--dataset", "basicmotions", "--json", "--layers"]);
    let j = ok(&run(&mut c));
    let v: serde_json::Value = serde_json::from_str(j.trim()).unwrap();
    let snr = v["layers"][0]["output_snr_db"].as_f64().unwrap();
    let mut c = bin();
    c.env("TINYSSM_DATA", &data)
        .arg("eval")
        .arg(&float)
        .arg(&out)
        .args(["--dataset", "basicmotions", "--json"]);
    let j = ok(&run(&mut c));
    let v: serde_json::Value = serde_json::from_str(j.trim()).unwrap();
    let acc = |i: usize| v["models"][i]["accuracy"].as_f64().unwrap();
    println!(
        "basicmotions static w8a8: output SNR {snr:.1} dB, accuracy {} vs float {}",
        acc(1),
        acc(0)
    );
    assert!(snr > 30.0, "{j}");
    assert!(acc(0) - acc(1) <= 1.0 / 40.0 + 1e-9, "{j}");
    // --all-static overrides the plan.
    std::fs::remove_file(&out).unwrap();
    ok(&convert(
        &float,
        &[
            "--compute",
            "w8a8",
            "--weights",
            "int8",
            "--calibrate",
            "basicmotions",
            "--all-static",
        ],
    ));
    let human = ok(&run(bin().arg("inspect").arg(&out)));
    assert!(
        human.contains(&format!(
            "w8a8 (activation scales: {} static, 0 dynamic)",
            ns + nd
        )),
        "{human}"
    );
}

/// ARCHITECTURE.md's support matrix is the one `tinyssm support` generates from the code.
#[cfg(feature = "cuda")]
#[test]
fn support_matrix_in_architecture_md_is_current() {
    let o = run(bin().arg("support"));
    let out = ok(&o);
    let table = out.split("\n\n").next().unwrap_or_default().trim();
    let doc = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../ARCHITECTURE.md"),
    )
    .unwrap();
    let copy = doc
        .split("<!-- support:begin -->")
        .nth(1)
        .and_then(|s| s.split("<!-- support:end -->").next())
        .expect("support markers in ARCHITECTURE.md")
        .trim();
    assert!(table.lines().count() >= 9, "{table}");
    assert_eq!(
        copy, table,
        "ARCHITECTURE.md's support matrix is stale: paste the output of `tinyssm support`"
    );
}

/// Without the batch crate the matrix still lists every kind, batch columns n/a.
#[cfg(not(feature = "cuda"))]
#[test]
fn support_matrix_without_the_batch_crate() {
    let out = ok(&run(bin().arg("support")));
    assert!(out.contains("| `mamba1` | yes | yes | yes |"), "{out}");
    assert!(out.contains("n/a | n/a | n/a | n/a |"), "{out}");
}

/// `--out` / `-o` onto a FIFO or a symbolic link is refused with the path and what it is,
/// and leaves both as they were (the link's target outside the directory untouched); a
/// regular file is replaced. Everything lives in temporary directories; no device node is
/// touched.
#[cfg(unix)]
#[test]
fn outputs_only_create_or_replace_regular_files() {
    use std::os::unix::fs::FileTypeExt;
    let src = first_fixture("hf", "mamba1");
    let tmp = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("fifo.tssm");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let target = outside.path().join("keep.tssm");
    std::fs::write(&target, b"keep").unwrap();
    let link = tmp.path().join("link.tssm");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    for (out, what) in [(&fifo, "is a FIFO"), (&link, "is a symbolic link")] {
        let o = run(bin().arg("convert").arg(&src).arg("-o").arg(out));
        fails_with(&o, what);
        assert!(String::from_utf8_lossy(&o.stderr).contains(&*out.to_string_lossy()));
    }
    assert!(std::fs::symlink_metadata(&fifo)
        .unwrap()
        .file_type()
        .is_fifo());
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read(&target).unwrap(), b"keep");
    // The same for `run --out`, and a regular file is replaced.
    let model = tmp.path().join("m.tssm");
    std::fs::write(&model, b"old").unwrap();
    ok(&run(bin().arg("convert").arg(&src).arg("-o").arg(&model)));
    let y = tmp.path().join("y.npy");
    let yfifo = tmp.path().join("y-fifo.npy");
    assert!(Command::new("mkfifo")
        .arg(&yfifo)
        .status()
        .unwrap()
        .success());
    let o = run(bin()
        .arg("run")
        .arg(&model)
        .arg("--tokens")
        .arg(src.join("input_ids.npy"))
        .arg("--out")
        .arg(&yfifo));
    fails_with(&o, "is a FIFO");
    ok(&run(bin()
        .arg("run")
        .arg(&model)
        .arg("--tokens")
        .arg(src.join("input_ids.npy"))
        .arg("--out")
        .arg(&y)));
    let mut names: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["fifo.tssm", "link.tssm", "m.tssm", "y-fifo.npy", "y.npy"]
    );
}

/// `generate` streams: with a token count of 2^64 − 1 or 2^40 it starts printing at once
/// (nothing is preallocated for the count) and runs until stopped.
#[test]
fn generate_streams_any_token_count() {
    use std::io::Read;
    let src = first_fixture("hf", "mamba1");
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("m.tssm");
    ok(&run(bin().arg("convert").arg(&src).arg("-o").arg(&model)));
    for n in ["18446744073709551615", "1099511627776"] {
        let mut child = bin()
            .arg("generate")
            .arg(&model)
            .arg("--prompt")
            .arg("\u{1}\u{2}")
            .arg("--tokens")
            .arg(n)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = child.stdout.take().unwrap();
        // The prompt, then at least 16 generated bytes, while the run goes on.
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        while got.len() < 2 + 16 {
            let k = out.read(&mut buf).unwrap();
            assert!(k > 0, "--tokens {n}: output ended after {got:?}");
            got.extend_from_slice(&buf[..k]);
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "--tokens {n}: exited early"
        );
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(got.starts_with(&[1, 2]), "{got:?}");
    }
}

/// Logits that overflow (matrices scaled to 1e18: finite weights, infinite products) stop
/// `generate` with an error naming the step (the core's overflow check) instead of
/// printing arbitrary bytes; scaling
/// everything to 1e30 overflows the converted `A = −exp(A_log)` itself, which `convert`
/// refuses naming the tensor.
#[test]
fn generate_refuses_non_finite_logits() {
    let src = first_fixture("hf", "mamba1");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ckpt");
    copy_dir(&src, &dir);
    let scaled = |dir: &Path, k: f32, all: bool| {
        rewrite_tensors(dir, |name, d, s, b| {
            if d != Dtype::F32 || !(all || (s.len() == 2 && name.ends_with(".weight"))) {
                return Some((d, s, b));
            }
            let b = b
                .chunks_exact(4)
                .flat_map(|c| (f32::from_le_bytes([c[0], c[1], c[2], c[3]]) * k).to_le_bytes())
                .collect();
            Some((d, s, b))
        })
    };
    let model = tmp.path().join("m.tssm");
    let all = tmp.path().join("all");
    copy_dir(&src, &all);
    scaled(&all, 1e30, true);
    let o = run(bin().arg("convert").arg(&all).arg("-o").arg(&model));
    fails_with(&o, "tensor layers.0.A: holds a NaN or infinite value");
    scaled(&dir, 1e18, false);
    ok(&run(bin().arg("convert").arg(&dir).arg("-o").arg(&model)));
    let o = run(bin()
        .arg("generate")
        .arg(&model)
        .arg("--prompt")
        .arg("\u{1}\u{2}")
        .arg("--tokens")
        .arg("8"));
    assert!(o.stdout.is_empty(), "{:?}", o.stdout);
    fails_with(&o, "step 0: the step overflowed");
}

/// A calibration recording must be what the model's front end takes: a 16 kHz or a stereo
/// WAV is refused for an 8 kHz mono model, naming both rates, and nothing is written.
#[test]
fn calibration_wav_must_match_the_front_end() {
    let tmp = tempfile::tempdir().unwrap();
    let float = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/fsdd-s4d-tiny.tssm");
    let out = tmp.path().join("int.tssm");
    let wav = |name: &str, rate: u32, channels: u16| {
        let p = tmp.path().join(name);
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&p, spec).unwrap();
        for i in 0..rate as i32 * channels as i32 {
            w.write_sample(((i * 37) % 2000 - 1000) as i16).unwrap();
        }
        w.finalize().unwrap();
        p
    };
    for (p, needle) in [
        (
            wav("fast.wav", 16_000, 1),
            "the recording is 16000 Hz, the model's front end takes 8000 Hz",
        ),
        (wav("stereo.wav", 8_000, 2), "mono audio"),
    ] {
        let o = run(bin()
            .arg("convert")
            .arg(&float)
            .arg("-o")
            .arg(&out)
            .args(["--compute", "int", "--calibrate"])
            .arg(&p));
        fails_with(&o, needle);
        assert!(!out.exists());
    }
    ok(&run(bin()
        .arg("convert")
        .arg(&float)
        .arg("-o")
        .arg(&out)
        .args(["--compute", "int", "--calibrate"])
        .arg(wav("ok.wav", 8_000, 1))));
}

/// Re-encoding an integer-only model is refused with the reason (it holds no float values
/// to re-encode), for every weight type, and writes nothing.
#[test]
fn an_integer_only_model_is_not_re_encoded() {
    let tmp = tempfile::tempdir().unwrap();
    let int = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/fsdd-s4d-tiny-int.tssm");
    for w in ["f32", "f16", "int8"] {
        let o = run(bin()
            .arg("convert")
            .arg(&int)
            .arg("-o")
            .arg(tmp.path().join("z.tssm"))
            .args(["--weights", w]));
        fails_with(&o, "integer-only");
        no_leftovers(tmp.path());
    }
}

/// Non-finite and overflowing inputs are never silent: a NaN in a float WAV is refused
/// naming the sample; a finite sample or CSV value that overflows the step (3e38) stops the
/// run with the step or sample named and that the stream was reset; nothing is written.
#[test]
fn non_finite_inputs_are_reported_not_propagated() {
    let tmp = tempfile::tempdir().unwrap();
    let models = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models");
    let y = tmp.path().join("y.npy");
    let wav = |name: &str, samples: &[f32]| {
        let p = tmp.path().join(name);
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 32,
            sample_format: hound::SampleFormat::Float,
        };
        let mut w = hound::WavWriter::create(&p, spec).unwrap();
        for &s in samples {
            w.write_sample(s).unwrap();
        }
        w.finalize().unwrap();
        p
    };
    let mut clip: Vec<f32> = (0..4000).map(|i| 0.3 * (i as f32 * 0.05).sin()).collect();
    clip[1234] = f32::NAN;
    let nan = wav("nan.wav", &clip);
    let o = run(bin()
        .arg("run")
        .arg(models.join("fsdd-s4d-tiny.tssm"))
        .arg("--wav")
        .arg(&nan)
        .arg("--out")
        .arg(&y));
    fails_with(&o, "sample 1234 of channel 0 is NaN");
    clip[1234] = 3e38;
    let huge = wav("huge.wav", &clip);
    let o = run(bin()
        .arg("run")
        .arg(models.join("fsdd-s4d-tiny.tssm"))
        .arg("--wav")
        .arg(&huge)
        .arg("--out")
        .arg(&y));
    fails_with(&o, "the stream was reset");
    assert!(String::from_utf8_lossy(&o.stderr).contains("sample 12"));
    let csv = tmp.path().join("x.csv");
    std::fs::write(&csv, "0.5\n0.25\n3e38\n0.5\n").unwrap();
    let o = run(bin()
        .arg("run")
        .arg(models.join("ecg-rpeak.tssm"))
        .arg("--csv")
        .arg(&csv)
        .arg("--out")
        .arg(&y));
    fails_with(&o, "step 2: the step overflowed");
    assert!(!y.exists());
}

/// `run --state-out` then `run --state-in` continues a stream exactly: the input split in
/// two runs gives the outputs of one run over the whole input, for a float vector model, an
/// integer-only one and an audio model (the split falls inside a frame: the front end's
/// ring is part of the snapshot). A snapshot of another model is refused naming the file.
#[test]
fn state_snapshots_continue_a_stream_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let models = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models");
    let read = |p: &Path| tinyssm_host::io::read_f32_npy(p).unwrap().1;
    let runs = |model: &str, flag: &str, whole: &Path, a: &Path, b: &Path| {
        let m = models.join(model);
        let (yw, ya, yb) = (
            tmp.path().join("w.npy"),
            tmp.path().join("a.npy"),
            tmp.path().join("b.npy"),
        );
        let s = tmp.path().join(format!("{model}.state"));
        ok(&run(bin()
            .arg("run")
            .arg(&m)
            .arg(flag)
            .arg(whole)
            .arg("--out")
            .arg(&yw)));
        ok(&run(bin()
            .arg("run")
            .arg(&m)
            .arg(flag)
            .arg(a)
            .arg("--out")
            .arg(&ya)
            .arg("--state-out")
            .arg(&s)));
        ok(&run(bin()
            .arg("run")
            .arg(&m)
            .arg(flag)
            .arg(b)
            .arg("--out")
            .arg(&yb)
            .args(["--state-in".as_ref(), s.as_os_str()])
            .args(["--state-out".as_ref(), s.as_os_str()])));
        let mut joined = read(&ya);
        joined.extend(read(&yb));
        let whole = read(&yw);
        assert!(!whole.is_empty());
        assert_eq!(
            joined.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            whole.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "{model}"
        );
        s
    };
    let rows: Vec<String> = (0..400)
        .map(|i| format!("{}", ((i * 37) % 200) as f32 / 100.0 - 1.0))
        .collect();
    let csv = |name: &str, r: &[String]| {
        let p = tmp.path().join(name);
        std::fs::write(&p, r.join("\n") + "\n").unwrap();
        p
    };
    let (w, a, b) = (
        csv("w.csv", &rows),
        csv("a.csv", &rows[..150]),
        csv("b.csv", &rows[150..]),
    );
    let float_state = runs("ecg-rpeak.tssm", "--csv", &w, &a, &b);
    runs("ecg-rpeak-int.tssm", "--csv", &w, &a, &b);
    let wav = |name: &str, samples: &[i16]| {
        let p = tmp.path().join(name);
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut wr = hound::WavWriter::create(&p, spec).unwrap();
        for &s in samples {
            wr.write_sample(s).unwrap();
        }
        wr.finalize().unwrap();
        p
    };
    let clip: Vec<i16> = (0..6000)
        .map(|i| ((i as f32 * 0.07).sin() * 8000.0) as i16)
        .collect();
    runs(
        "fsdd-s4d-tiny.tssm",
        "--wav",
        &wav("w.wav", &clip),
        &wav("a.wav", &clip[..2345]),
        &wav("b.wav", &clip[2345..]),
    );
    // The float ECG model's snapshot given to the integer-only one.
    let o = run(bin()
        .arg("run")
        .arg(models.join("ecg-rpeak-int.tssm"))
        .arg("--csv")
        .arg(&b)
        .arg("--out")
        .arg(tmp.path().join("x.npy"))
        .arg("--state-in")
        .arg(&float_state));
    fails_with(&o, "ecg-rpeak.tssm.state");
}

/// `verify --all DIR` prints one row per model and fails, naming the model, when one cannot
/// be verified; an empty directory is an error, not an empty success.
#[cfg(feature = "cuda")]
#[test]
fn verify_all_lists_every_model_and_fails_on_an_unverifiable_one() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(bin()
        .args(["verify", "--backend", "cuda-emu", "--all"])
        .arg(dir.path()));
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no .tssm models"));
    // A vector model with 3 inputs: no dataset takes it.
    let cfg = tinyssm_core::Config {
        n_layers: 1,
        front_end: None,
        compute: tinyssm_core::Compute::Float,
        arch: tinyssm_core::Arch::S4d(tinyssm_core::S4dConfig {
            d_input: 3,
            d_model: 8,
            d_state: 4,
            d_output: 2,
            norm_eps: 1e-5,
            prenorm: true,
            glu: true,
            final_norm: false,
            head: tinyssm_core::HeadKind::Classification,
        }),
    };
    let blob = tinyssm_host::write_blob(&cfg, |spec: &tinyssm_core::TensorSpec| {
        let n = spec.numel().unwrap_or(0) as usize;
        Ok::<_, tinyssm_host::HostError>(tinyssm_host::TensorData::F32(vec![0.01; n]))
    })
    .unwrap();
    std::fs::write(dir.path().join("three.tssm"), blob).unwrap();
    let o = run(bin()
        .args(["verify", "--backend", "cuda-emu", "--all"])
        .arg(dir.path()));
    assert!(!o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("three.tssm") && out.contains("NOT VERIFIED: no dataset takes 3 inputs"),
        "{out}"
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("1 of 1 models failed"));
}

/// `tinyssm denoise`: aTENNuate's checkpoint streamed over a one-second excerpt writes a
/// WAV of the input's length and rate, with the library's streamed output; other rates, a
/// non-checkpoint and a bad output path are one-line errors that write nothing.
#[test]
fn denoise_streams_a_recording_and_refuses_what_it_cannot_take() {
    let Some(data) = data_dir() else { return };
    let ck = data.join("atennuate/weights.pt");
    let tmp = tempfile::tempdir().unwrap();
    let (_, _, x) = tinyssm_host::io::read_wav(
        &data.join("atennuate/noisy/clnsp1_train_69005_1_snr15_tl-21_fileid_158.wav"),
    )
    .unwrap();
    let excerpt = &x[8000..24000 + 100];
    let inp = tmp.path().join("in.wav");
    tinyssm_host::io::write_wav_f32(&inp, 16000, excerpt).unwrap();
    let out = tmp.path().join("out.wav");
    let denoise = |model: &Path, wav: &Path, out: &Path| {
        run(bin()
            .arg("denoise")
            .arg(model)
            .arg("--wav")
            .arg(wav)
            .arg("--out-wav")
            .arg(out))
    };
    let text = ok(&denoise(&ck, &inp, &out));
    assert!(text.contains("delay of 1255 samples (78.4 ms)"), "{text}");
    let text = ok(&run(bin().arg("inspect").arg(&ck)));
    assert!(
        text.contains("delay          1255 frames (78.4 ms)")
            && text.contains("blocks         s5 ×16"),
        "{text}"
    );
    let (rate, ch, y) = tinyssm_host::io::read_wav(&out).unwrap();
    assert_eq!((rate, ch, y.len()), (16000, 1, excerpt.len()));
    let m = tinyssm_tools::import::atennuate::import(&ck).unwrap();
    let want = tinyssm_tools::import::atennuate::run_stream(&m, excerpt).unwrap();
    assert!(y.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()));
    // 8 kHz audio: refused, not resampled silently.
    let fsdd = data.join("fsdd/recordings/0_george_0.wav");
    let bad = tmp.path().join("bad.wav");
    let o = denoise(&ck, &fsdd, &bad);
    fails_with(&o, "at 8000 Hz; resample it first");
    // A model blob is not the checkpoint.
    let blob = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/ecg-rpeak.tssm");
    let o = denoise(&blob, &inp, &bad);
    fails_with(&o, "not a readable PyTorch checkpoint");
    assert!(!bad.exists());
}

/// `tinyssm convert weights.pt`: aTENNuate's checkpoint becomes a format 1.7 network blob
/// (here int8 w8a8) that `inspect` describes and `run --wav --out-wav` streams, with the
/// bits of `denoise --w8a8`; what a network cannot take is a one-line error.
#[test]
fn convert_and_run_a_network_blob() {
    let Some(data) = data_dir() else { return };
    let ck = data.join("atennuate/weights.pt");
    let tmp = tempfile::tempdir().unwrap();
    let (_, _, x) = tinyssm_host::io::read_wav(
        &data.join("atennuate/noisy/ms_realrec_headset_cafe_spk2_3.wav"),
    )
    .unwrap();
    let excerpt = &x[40000..48000 + 33];
    let inp = tmp.path().join("in.wav");
    tinyssm_host::io::write_wav_f32(&inp, 16000, excerpt).unwrap();
    let blob = tmp.path().join("at8.tssm");
    ok(&run(bin()
        .arg("convert")
        .arg(&ck)
        .arg("-o")
        .arg(&blob)
        .args(["--weights", "int8", "--compute", "w8a8"])));
    let text = ok(&run(bin().arg("inspect").arg(&blob)));
    assert!(
        text.contains("format 1.7")
            && text.contains("compute w8a8")
            && text.contains("delay          1255 frames (78.4 ms)"),
        "{text}"
    );
    let (a, b) = (tmp.path().join("a.wav"), tmp.path().join("b.wav"));
    let text = ok(&run(bin()
        .arg("run")
        .arg(&blob)
        .arg("--wav")
        .arg(&inp)
        .arg("--out-wav")
        .arg(&a)));
    assert!(text.contains("delay of 1255 samples"), "{text}");
    ok(&run(bin()
        .arg("denoise")
        .arg(&ck)
        .arg("--w8a8")
        .arg("--wav")
        .arg(&inp)
        .arg("--out-wav")
        .arg(&b)));
    let (ya, yb) = (
        tinyssm_host::io::read_wav(&a).unwrap(),
        tinyssm_host::io::read_wav(&b).unwrap(),
    );
    assert_eq!(ya.2.len(), excerpt.len());
    assert!(ya
        .2
        .iter()
        .zip(&yb.2)
        .all(|(p, q)| p.to_bits() == q.to_bits()));
    // What a network cannot take.
    let bad = tmp.path().join("bad.wav");
    let fsdd = data.join("fsdd/recordings/0_george_0.wav");
    let run_net = |args: &[&std::ffi::OsStr]| run(bin().arg("run").arg(&blob).args(args));
    fails_with(
        &run_net(&[
            "--wav".as_ref(),
            fsdd.as_os_str(),
            "--out-wav".as_ref(),
            bad.as_os_str(),
        ]),
        "at 8000 Hz; resample it first",
    );
    fails_with(
        &run_net(&[
            "--text".as_ref(),
            "hi".as_ref(),
            "--out".as_ref(),
            bad.as_os_str(),
        ]),
        "multi-rate network over a waveform: give --wav",
    );
    fails_with(
        &run_net(&["--wav".as_ref(), inp.as_os_str()]),
        "give an output",
    );
    assert!(!bad.exists());
    fails_with(
        &run(bin().arg("convert").arg(&ck).arg("-o").arg(&bad).args([
            "--compute",
            "int",
            "--calibrate",
            "fsdd",
        ])),
        "no integer-only one",
    );
    fails_with(
        &run(bin()
            .arg("convert")
            .arg(&ck)
            .arg("-o")
            .arg(&bad)
            .args(["--small-f32", "4096"])),
        "--small-f32 is for --weights int8|int4",
    );
    assert!(!bad.exists());
}
