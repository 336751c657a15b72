//! aTENNuate's denoiser on the Cortex-M7 under QEMU (`-machine mps2-an500`): the network is
//! converted here as `tinyssm convert weights.pt --weights int8 --compute w8a8 --small-f32
//! 4096` converts it (a format 1.7 blob, 1,003 KB: int8 matrices with int8 activations, the
//! 18 matrices of at most 4,096 values in f32), a one-second excerpt of a real noisy recording is cut,
//! and the `firmware/apps/denoise` image embedding both streams it sample by sample and
//! ends the stream. Its reference-kernel run must equal the host core's same run bit for
//! bit: every output (FNV-1a over the bits), the state and counters after the last input,
//! the first and last outputs. The fast-kernel run's agreement is printed (its kernels differ by target).
//!
//! Needs `$TINYSSM_DATA/atennuate` and `qemu-system-arm` (skipped with one line when absent,
//! unless `TINYSSM_REQUIRE_QEMU=1`, which `scripts/test.sh` sets after installing it).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tinyssm_core::{Compute, DType, Kernels, Model};
use tinyssm_host::AlignedBuf;
use tinyssm_tests::qemu::{have_qemu, run_qemu};
use tinyssm_tests::{data_dir, repo_root};
use tinyssm_tools::import::atennuate;
use tinyssm_tools::quantize::{requantize_blob_mixed, QuantSpec};

/// A hang guard, not a speed check.
const QEMU_TIMEOUT: Duration = Duration::from_secs(600);
/// The excerpt: one second from 2.5 s into this recording.
const RECORDING: &str = "clnsp1_train_69005_1_snr15_tl-21_fileid_158";
const START: usize = 40_000;
const SAMPLES: usize = 16_000;

fn fnv(words: impl IntoIterator<Item = u32>) -> u32 {
    let mut h = 0x811c_9dc5u32;
    for w in words {
        for b in w.to_le_bytes() {
            h = (h ^ b as u32).wrapping_mul(0x0100_0193);
        }
    }
    h
}

/// The host's run: the `run reference …` line the image prints.
fn host_line(blob: &[u8], x: &[f32]) -> String {
    let m = Model::parse(blob).unwrap().with_kernels(Kernels::Reference);
    let net = m.net().unwrap();
    let mut bufs = atennuate::NetBuffers::new(net.plan());
    let (mut st, scratch) = bufs.split();
    net.reset(&mut st).unwrap();
    let mut y: Vec<u32> = Vec::new();
    let mut sink = |v: &[f32]| {
        y.extend(v.iter().map(|a| a.to_bits()));
        Ok(())
    };
    for s in x.chunks_exact(1) {
        net.feed(&mut st, scratch, s, &mut sink).unwrap();
    }
    let state = fnv(st
        .values
        .iter()
        .map(|v| v.to_bits())
        .chain(st.counters.iter().copied()));
    net.finish(&mut st, scratch, &mut sink).unwrap();
    // The outputs aligned with the input.
    y.truncate(x.len());
    let n = y.len();
    let hex = |w: &[u32]| {
        w.iter()
            .map(|v| format!("{v:08x}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    format!(
        "run reference samples {} outputs {n} fnv {:#010x} state {state:#010x} first {} last {}",
        x.len(),
        fnv(y.iter().copied()),
        hex(&y[..4]),
        hex(&y[n - 4..])
    )
}

fn build(dir: &Path, blob: &Path, input: &Path) -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target = "thumbv7em-none-eabihf";
    let out = Command::new(cargo)
        .current_dir(dir)
        .args(["build", "--release", "--locked", "-p", "tinyssm-fw-denoise"])
        .args(["--target", target])
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env("TINYSSM_BOARD", "mps2-an500")
        .env("TINYSSM_FW_NET_BLOB", blob)
        .env("TINYSSM_FW_NET_INPUT", input)
        .env_remove("TINYSSM_FW_NET_RUNS")
        .output()
        .expect("run cargo");
    assert!(
        out.status.success(),
        "cd firmware && TINYSSM_BOARD=mps2-an500 cargo build --release -p tinyssm-fw-denoise --target {target} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir.join("target").join(target).join("release/denoise")
}

#[test]
fn qemu_mps2_an500_cortex_m7_denoises_like_the_host() {
    let dir = data_dir().join("atennuate");
    if !dir.join("weights.pt").is_file() {
        println!(
            "skipped: {} absent (aTENNuate weights; set TINYSSM_DATA)",
            dir.display()
        );
        return;
    }
    if !have_qemu() {
        return;
    }
    let m = atennuate::import(&dir.join("weights.pt")).unwrap();
    let spec = QuantSpec {
        weights: DType::I8,
        compute: Compute::W8a8,
        compact: true,
    };
    let blob = requantize_blob_mixed(&m.to_blob().unwrap(), spec, 4096).unwrap();
    let (_, _, x) =
        tinyssm_host::io::read_wav(&dir.join("noisy").join(format!("{RECORDING}.wav"))).unwrap();
    let x = &x[START..START + SAMPLES];
    let fw = repo_root().join("firmware");
    let work = fw.join("target/denoise");
    std::fs::create_dir_all(&work).unwrap();
    let (blob_path, input_path) = (
        work.join("atennuate-w8a8-small4096.tssm"),
        work.join("input.f32"),
    );
    // Written only when changed, so that a rerun finds the image up to date.
    let write = |p: &Path, b: &[u8]| {
        if std::fs::read(p).ok().as_deref() != Some(b) {
            std::fs::write(p, b).unwrap();
        }
    };
    write(&blob_path, &blob);
    let bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
    write(&input_path, &bytes);
    let elf = build(&fw, &blob_path, &input_path);
    let mut qemu = Command::new("qemu-system-arm");
    qemu.args(["-cpu", "cortex-m7", "-machine", "mps2-an500", "-nographic"])
        .args(["-semihosting-config", "enable=on,target=native", "-kernel"])
        .arg(&elf);
    let (code, text) = run_qemu(qemu, QEMU_TIMEOUT);
    println!("{text}");
    assert_eq!(code, Some(0), "the image failed:\n{text}");
    let want = host_line(AlignedBuf::from_bytes(&blob).as_bytes(), x);
    let got = text
        .lines()
        .find(|l| l.starts_with("run reference"))
        .unwrap_or_else(|| panic!("no reference run line:\n{text}"));
    assert_eq!(got.trim(), want, "device vs host");
    let fast = text
        .lines()
        .find(|l| l.starts_with("run fast"))
        .expect("a fast run line");
    let field = |l: &str, k: &str| {
        l.split_whitespace()
            .skip_while(|w| *w != k)
            .nth(1)
            .map(str::to_string)
    };
    assert_eq!(field(fast, "outputs"), field(got, "outputs"));
    println!(
        "fast kernels on the device: outputs {} the reference run's",
        if field(fast, "fnv") == field(got, "fnv") {
            "equal"
        } else {
            "differ from"
        }
    );
}
