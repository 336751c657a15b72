//! Sets `cfg(tinyssm_arm_dsp)` when the Arm target has the DSP extension (the dual 16-bit
//! multiply-accumulate `SMLAD` that `src/simd.rs` uses). Stable Rust does not expose
//! `target_feature = "dsp"` to `cfg`, so it is decided here from:
//! - the target: every `thumbv7em-*` core (Cortex-M4, M7) has it;
//! - `-C target-feature=+dsp` in the flags (Cortex-M33/M35P/M55 built for `thumbv8m.main-*`,
//!   whose DSP extension is optional, so the target does not assume it), or `-dsp` to turn
//!   it off;
//! - `target_feature = "dsp"` where the compiler reports it.
//!
//! And `cfg(tinyssm_arm_fp16)` when the target's FPU converts half precision
//! (`VCVTB.F32.F16`, which `src/simd.rs` uses for f16 weights): the hard-float Cortex-M
//! targets `thumbv7em-*-eabihf` (FPv4-SP, FPv5) and `thumbv8m.main-*-eabihf` (FPv5), whose
//! FPUs all have the half-precision conversions; `-C target-feature=-fp16` turns it off.

use std::env;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(tinyssm_arm_dsp)");
    println!("cargo::rustc-check-cfg=cfg(tinyssm_arm_fp16)");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");
    if env::var("CARGO_CFG_TARGET_ARCH").as_deref() != Ok("arm") {
        return;
    }
    let target = env::var("TARGET").unwrap_or_default();
    let reported = env::var("CARGO_CFG_TARGET_FEATURE")
        .unwrap_or_default()
        .split(',')
        .any(|f| f == "dsp");
    let mut dsp = reported || target.starts_with("thumbv7em");
    let hard_float = target.ends_with("eabihf");
    let mut fp16 =
        hard_float && (target.starts_with("thumbv7em") || target.starts_with("thumbv8m.main"));
    // The last `+dsp` / `-dsp` in the target-feature flags wins, as in rustc.
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let mut args = flags.split('\x1f');
    while let Some(a) = args.next() {
        let value = match a {
            "-C" | "--codegen" => args.next().unwrap_or(""),
            _ => a.strip_prefix("-C").unwrap_or(""),
        };
        if let Some(list) = value.strip_prefix("target-feature=") {
            for f in list.split(',') {
                match f {
                    "+dsp" => dsp = true,
                    "-dsp" => dsp = false,
                    "-fp16" => fp16 = false,
                    _ => {}
                }
            }
        }
    }
    if dsp {
        println!("cargo::rustc-cfg=tinyssm_arm_dsp");
    }
    if fp16 {
        println!("cargo::rustc-cfg=tinyssm_arm_fp16");
    }
}
