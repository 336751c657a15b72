//! Firmware on QEMU: `firmware/apps/selftest`'s `selftest-dsp` image (Cortex-M4F, board
//! mps2-an386) runs the core's DSP integer dots (`SXTB16` + `SMLAD`) against the scalar
//! reference on random and extreme vectors and at the overflow bound, and exits 0 only when
//! every case agrees bit for bit.
//!
//! Builds just that image (`cargo build --release -p tinyssm-fw-selftest --bin
//! selftest-dsp` in `firmware/`, so no data folder is needed) and runs it with the runner
//! line of `firmware/.cargo/config.toml`. Skipped when `qemu-system-arm` is absent unless
//! `TINYSSM_REQUIRE_QEMU=1`.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use tinyssm_tests::qemu::{have_qemu, run_qemu};
use tinyssm_tests::repo_root;

const TARGET: &str = "thumbv7em-none-eabihf";
const BIN: &str = "selftest-dsp";
/// Host-side hang guard (the run takes about a second).
const QEMU_TIMEOUT: Duration = Duration::from_secs(120);

fn build_image() -> PathBuf {
    let dir = repo_root().join("firmware");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // From firmware/ (its .cargo/config.toml sets target, runner and link script), with
    // nothing from the host build's environment that would override that config.
    let out = Command::new(cargo)
        .current_dir(&dir)
        .args([
            "build",
            "--release",
            "--locked",
            "-p",
            "tinyssm-fw-selftest",
        ])
        .args(["--bin", BIN])
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("TINYSSM_BOARD")
        .output()
        .expect("run cargo in firmware/");
    assert!(
        out.status.success(),
        "firmware build failed (cd firmware && cargo build --release -p tinyssm-fw-selftest \
         --bin {BIN}):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let elf = dir.join("target").join(TARGET).join("release").join(BIN);
    assert!(elf.is_file(), "{}: not built", elf.display());
    elf
}

/// The runner of `firmware/.cargo/config.toml` for [`TARGET`], split into words.
fn runner() -> Vec<String> {
    let path = repo_root().join("firmware/.cargo/config.toml");
    let cfg = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let section = format!("[target.{TARGET}]");
    cfg.split(&section)
        .nth(1)
        .and_then(|rest| rest.lines().find(|l| l.trim_start().starts_with("runner")))
        .and_then(|l| l.split_once('='))
        .map(|(_, v)| {
            v.trim()
                .trim_matches('"')
                .split_whitespace()
                .map(String::from)
                .collect()
        })
        .unwrap_or_else(|| panic!("{}: no runner under {section}", path.display()))
}

#[test]
fn qemu_dsp_int_dots_match_reference() {
    let elf = build_image();
    if !have_qemu() {
        return;
    }
    let words = runner();
    let mut cmd = Command::new(&words[0]);
    cmd.args(&words[1..]).arg(&elf);
    let (code, text) = run_qemu(cmd, QEMU_TIMEOUT);
    assert_eq!(code, Some(0), "{BIN} failed under QEMU; output:\n{text}");
    assert!(
        text.contains("integer dots on Arm DSP (SMLAD)"),
        "{BIN} did not use the DSP kernels; output:\n{text}"
    );
    // f16 → f32 by the FPU on the Cortex-M4F, every input bit for bit.
    let f16 = text
        .lines()
        .find(|l| l.contains("f16 conversions"))
        .unwrap_or_else(|| panic!("no f16 conversion line in:\n{text}"));
    assert!(
        f16.contains("65536 f16 conversions by FPU (VCVTB.F32.F16), 0 mismatches"),
        "{f16}"
    );
    println!("{f16}");
    let summary = text
        .lines()
        .find(|l| l.contains(" mismatches") && !l.contains("f16 conversions"))
        .unwrap_or_else(|| panic!("no summary line in:\n{text}"));
    // "N dot cases, 0 mismatches; M matvec cases, 0 mismatches"
    let parts: Vec<&str> = summary.split(';').collect();
    assert_eq!(parts.len(), 2, "{summary}");
    assert!(parts[1].contains("matvec cases"), "{summary}");
    for p in parts {
        assert!(p.trim_end().ends_with(", 0 mismatches"), "{summary}");
    }
    println!("{summary}");
}
