//! Picks the memory layout for the board named by `TINYSSM_BOARD` (default `mps2-an386`):
//! copies `memory/<board>.x` to `$OUT_DIR/memory.x`, where cortex-m-rt's `link.x` finds it
//! (`INCLUDE memory.x`). No `memory.x` may sit in a package root: the linker would take
//! that one instead. The board must match the compilation target.

use std::env;
use std::fs;
use std::path::PathBuf;

/// Boards with a memory layout, and the target each one needs.
const BOARDS: &[(&str, &str)] = &[
    // Cortex-M4F
    ("mps2-an386", "thumbv7em-none-eabihf"),
    // Cortex-M7 (single-precision FPU)
    ("mps2-an500", "thumbv7em-none-eabihf"),
    // Cortex-M33 (FPU, Secure state)
    ("mps2-an505", "thumbv8m.main-none-eabihf"),
    // Cortex-M0 (nRF51822, no FPU)
    ("microbit", "thumbv6m-none-eabi"),
];

fn main() {
    println!("cargo:rerun-if-env-changed=TINYSSM_BOARD");
    let board = env::var("TINYSSM_BOARD").unwrap_or_else(|_| "mps2-an386".to_string());
    let target = env::var("TARGET").unwrap_or_default();
    let Some(&(_, want)) = BOARDS.iter().find(|(b, _)| *b == board) else {
        let known: Vec<&str> = BOARDS.iter().map(|(b, _)| *b).collect();
        fail(&format!(
            "TINYSSM_BOARD={board}: unknown board (known: {})",
            known.join(", ")
        ));
    };
    if target != want {
        fail(&format!(
            "TINYSSM_BOARD={board} needs --target {want}, building for {target}"
        ));
    }
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let src = manifest.join("../memory").join(format!("{board}.x"));
    println!("cargo:rerun-if-changed={}", src.display());
    let text =
        fs::read_to_string(&src).unwrap_or_else(|e| fail(&format!("{}: {e}", src.display())));
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    fs::write(out.join("memory.x"), text).expect("write memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rustc-env=TINYSSM_BOARD={board}");
    println!("cargo:board={board}");
}

/// Fails the build with one line (cargo prints it as `error: ...`).
fn fail(msg: &str) -> ! {
    println!("cargo::error={msg}");
    std::process::exit(0);
}
