//! The `insn_count` QEMU plugin (`firmware/qemu-plugin/insn_count.c`) counts exactly.
//!
//! Builds the plugin with gcc and the `insn-calib` image (`firmware/apps/bench`: two
//! hand-written naked functions, `tinyssm_calib_body` — 8 instructions — called in a
//! loop by `tinyssm_calib_run` between the `calib` span's markers), runs it under
//! `qemu-system-arm -machine mps2-an386` with the plugin, and compares every count with
//! the one derived from the image's own code: the functions' instructions are decoded
//! from the ELF (Thumb-2 instruction lengths), the loop count from the `movs r4, #imm`
//! that sets it. Checks the exclusive range counts, calls and entries (returns from
//! callees), instructions per call, the inclusive span, and that two runs agree.
//!
//! A test of the counter, not a benchmark: no speed is asserted (the benchmarks are
//! `scripts/firmware-bench.sh`, results in BENCHMARKS.md). Needs gcc, nm and
//! qemu-system-arm: skipped with one line when one is missing, unless
//! `TINYSSM_REQUIRE_QEMU=1` (scripts/test.sh), which makes it fail.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use wait_timeout::ChildExt;

use tinyssm_tests::{data_dir, repo_root};

const TARGET: &str = "thumbv7em-none-eabihf";
const QEMU_TIMEOUT: Duration = Duration::from_secs(120);

fn firmware_dir() -> PathBuf {
    repo_root().join("firmware")
}

/// Whether `prog --version` runs; when not, skip (or fail under TINYSSM_REQUIRE_QEMU=1).
fn have(prog: &str, hint: &str) -> bool {
    let found = Command::new(prog)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !found {
        let msg = format!("{prog} not found ({hint})");
        if std::env::var_os("TINYSSM_REQUIRE_QEMU").is_some_and(|v| v == "1") {
            panic!("{msg}; TINYSSM_REQUIRE_QEMU=1");
        }
        println!("skipped: {msg}");
    }
    found
}

/// Compiles the plugin as `firmware/qemu-plugin/Makefile` does, into a test-only folder.
///
/// Built once per test binary: the tests run in parallel threads, and one test loading the
/// library while another rewrote it failed with "file too short". The compiler writes a
/// temporary file that is renamed into place, so another test binary (or an earlier run)
/// never sees a half-written library either.
fn build_plugin() -> PathBuf {
    static PLUGIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PLUGIN
        .get_or_init(|| {
            let src = firmware_dir().join("qemu-plugin");
            let out = firmware_dir().join("target/qemu-plugin-test");
            std::fs::create_dir_all(&out).expect("create plugin folder");
            let so = out.join("libinsn_count.so");
            let tmp = out.join(format!("libinsn_count.so.{}.tmp", std::process::id()));
            let o = Command::new("gcc")
                .args(["-O2", "-std=gnu11", "-Wall", "-Wextra", "-Werror"])
                .args(["-shared", "-fPIC", "-fvisibility=hidden", "-o"])
                .arg(&tmp)
                .arg(src.join("insn_count.c"))
                .output()
                .expect("run gcc");
            assert!(
                o.status.success(),
                "gcc failed on insn_count.c:\n{}",
                String::from_utf8_lossy(&o.stderr)
            );
            std::fs::rename(&tmp, &so).expect("move the plugin into place");
            so
        })
        .clone()
}

/// Builds the `insn-calib` image (only that binary) with the firmware workspace's config.
fn build_calib() -> PathBuf {
    let dir = firmware_dir();
    let data = std::path::absolute(data_dir()).expect("data dir");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(&dir)
        .args(["build", "--release", "--locked", "-p", "tinyssm-fw-bench"])
        .args(["--bin", "insn-calib"])
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("TINYSSM_BOARD")
        .env_remove("TINYSSM_FW_CLIP")
        .env("TINYSSM_DATA", &data)
        .output()
        .expect("run cargo in firmware/");
    assert!(
        out.status.success(),
        "firmware build failed (cd firmware && cargo build --release -p tinyssm-fw-bench --bin insn-calib):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir.join("target").join(TARGET).join("release/insn-calib")
}

/// Defined symbols: name → (address with the Thumb bit cleared, size), from `nm -S`.
fn symbols(elf: &Path) -> HashMap<String, (u64, u64)> {
    let o = Command::new("nm")
        .args(["-S", "--defined-only"])
        .arg(elf)
        .output()
        .expect("run nm");
    assert!(o.status.success(), "nm failed on {}", elf.display());
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.len() == 4).then(|| {
                let a = u64::from_str_radix(w[0], 16).expect("address");
                let s = u64::from_str_radix(w[1], 16).expect("size");
                (w[3].to_string(), (a & !1, s))
            })
        })
        .collect()
}

/// The bytes at `addr..addr + len` of an ELF32 little-endian image (from the allocated
/// section that holds them).
fn code_bytes(elf: &[u8], addr: u64, len: u64) -> Vec<u8> {
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(elf[o..o + 4].try_into().unwrap()) as u64;
    assert_eq!(&elf[..5], b"\x7fELF\x01", "not an ELF32 image");
    let (shoff, shentsize, shnum) = (u32_at(0x20) as usize, u16_at(0x2e), u16_at(0x30));
    for i in 0..shnum {
        let sh = shoff + i * shentsize;
        let (ty, sa, so, ss) = (
            u32_at(sh + 4),
            u32_at(sh + 12),
            u32_at(sh + 16),
            u32_at(sh + 20),
        );
        let alloc = u32_at(sh + 8) & 2 != 0;
        if ty == 1 && alloc && sa <= addr && addr + len <= sa + ss {
            let start = (so + addr - sa) as usize;
            return elf[start..start + len as usize].to_vec();
        }
    }
    panic!("{addr:#x}..+{len}: in no section");
}

/// Splits Thumb-2 code into instructions (first halfwords 0b11101, 0b11110, 0b11111
/// start a 32-bit instruction): the first halfword of each.
fn thumb_insns(code: &[u8]) -> Vec<u16> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + 2 <= code.len() {
        let hw = u16::from_le_bytes([code[i], code[i + 1]]);
        out.push(hw);
        i += if matches!(hw >> 11, 0b11101..=0b11111) {
            4
        } else {
            2
        };
    }
    assert_eq!(i, code.len(), "code ends inside an instruction");
    out
}

/// The plugin's report: `total`, and per range / span name its `key value` pairs.
#[derive(Debug, PartialEq)]
struct Report {
    total: u64,
    items: HashMap<String, HashMap<String, u64>>,
}

fn parse_report(text: &str) -> Report {
    let mut total = None;
    let mut items = HashMap::new();
    for line in text.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.first() {
            Some(&"total") => total = Some(w[1].parse().expect("total")),
            Some(&"range") | Some(&"span") => {
                let kv = w[4..]
                    .chunks(2)
                    .map(|p| (p[0].to_string(), p[1].parse().expect("count")))
                    .collect();
                items.insert(w[1].to_string(), kv);
            }
            _ => panic!("unexpected plugin line: {line}"),
        }
    }
    Report {
        total: total.expect("no total line"),
        items,
    }
}

/// Runs `elf` under QEMU with the plugin and `args`; the plugin's report.
fn run(plugin: &Path, elf: &Path, args: &str, tag: &str) -> Report {
    let out = firmware_dir().join(format!("target/qemu-plugin-test/calib-{tag}.txt"));
    let _ = std::fs::remove_file(&out);
    let mut child = Command::new("qemu-system-arm")
        .args(["-cpu", "cortex-m4", "-machine", "mps2-an386", "-nographic"])
        .args(["-semihosting-config", "enable=on,target=native"])
        .arg("-plugin")
        .arg(format!("{},out={}{args}", plugin.display(), out.display()))
        .arg("-kernel")
        .arg(elf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start qemu-system-arm");
    // A hang guard, not a speed check.
    let status = match child.wait_timeout(QEMU_TIMEOUT).expect("wait for qemu") {
        Some(s) => s,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("qemu-system-arm ran past {} s", QEMU_TIMEOUT.as_secs());
        }
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut err);
    }
    assert!(status.success(), "insn-calib under QEMU: {status}\n{err}");
    let text = std::fs::read_to_string(&out)
        .unwrap_or_else(|e| panic!("{}: {e} (qemu stderr: {err})", out.display()));
    parse_report(&text)
}

#[test]
fn qemu_insn_count_plugin_counts_exactly() {
    if !have("gcc", "Debian: apt-get install gcc")
        || !have("nm", "Debian: apt-get install binutils")
        || !have("qemu-system-arm", "Debian: apt-get install qemu-system-arm")
    {
        return;
    }
    let plugin = build_plugin();
    let elf = build_calib();
    let bytes = std::fs::read(&elf).expect("read insn-calib");
    let syms = symbols(&elf);
    let sym = |n: &str| *syms.get(n).unwrap_or_else(|| panic!("{n}: no such symbol"));
    let insns = |n: &str| {
        let (a, s) = sym(n);
        thumb_insns(&code_bytes(&bytes, a, s))
    };

    // What the code says: the body's length, the driver's shape and loop count.
    let body = insns("tinyssm_calib_body");
    let k = body.len() as u64;
    assert_eq!(k, 8, "tinyssm_calib_body: {body:04x?}");
    let driver = insns("tinyssm_calib_run");
    assert_eq!(driver.len(), 8, "tinyssm_calib_run: {driver:04x?}");
    assert_eq!(driver[1] & 0xff00, 0x2400, "second insn is movs r4, #imm");
    let calls = (driver[1] & 0xff) as u64;
    assert!(calls > 1);
    let begin = insns("tinyssm_begin_begin_calib").len() as u64;
    let end = insns("tinyssm_span_calib__begin_calib").len() as u64;
    assert_eq!((begin, end), (2, 2));

    let (ba, bs) = sym("tinyssm_calib_body");
    let (ra, rs) = sym("tinyssm_calib_run");
    let span = format!(
        ",span=calib:{:#x}-{:#x}",
        sym("tinyssm_begin_begin_calib").0,
        sym("tinyssm_span_calib__begin_calib").0
    );
    let ranges = format!(
        ",range=body:{ba:#x}-{:#x},range=run:{ra:#x}-{:#x}",
        ba + bs,
        ra + rs
    );
    let r = run(&plugin, &elf, &format!(",calls=on{ranges}{span}"), "calls");

    let body = &r.items["body"];
    assert_eq!(body["insns"], calls * k, "{body:?}");
    assert_eq!(body["calls"], calls, "{body:?}");
    assert_eq!(body["entries"], calls, "{body:?}");
    assert_eq!((body["min"], body["max"]), (k, k), "{body:?}");

    // The driver: push, movs, bl begin, bl end, pop once; bl body, subs, bne per call.
    // Entered once by its call and again after each of its calls returns.
    let run_r = &r.items["run"];
    let run_insns = 5 + 3 * calls;
    assert_eq!(run_r["insns"], run_insns, "{run_r:?}");
    assert_eq!(run_r["calls"], 1, "{run_r:?}");
    assert_eq!(run_r["entries"], 1 + calls + 2, "{run_r:?}");
    assert_eq!((run_r["min"], run_r["max"]), (run_insns, run_insns));

    // The span: the begin marker, every iteration (bl + body + subs + bne), the bl end.
    let s = &r.items["calib"];
    let want = begin + calls * (1 + k + 2) + 1;
    assert_eq!(s["count"], 1, "{s:?}");
    assert_eq!((s["sum"], s["min"], s["max"]), (want, want, want), "{s:?}");
    assert!(r.total > run_insns + calls * k + begin + end, "{r:?}");

    // Without call tracking the counts are the same, and every run counts the same.
    let plain = run(&plugin, &elf, &format!("{ranges}{span}"), "plain");
    assert_eq!(plain.total, r.total);
    assert_eq!(plain.items["body"]["insns"], calls * k);
    assert_eq!(plain.items["run"]["insns"], run_insns);
    assert_eq!(plain.items["calib"], r.items["calib"]);
    let again = run(&plugin, &elf, &format!(",calls=on{ranges}{span}"), "again");
    assert_eq!(again, r);
}

#[test]
fn qemu_insn_count_plugin_rejects_bad_arguments() {
    if !have("gcc", "Debian: apt-get install gcc")
        || !have("qemu-system-arm", "Debian: apt-get install qemu-system-arm")
    {
        return;
    }
    let plugin = build_plugin();
    for bad in [
        "range=x:0x10-0x8",
        "span=y:5",
        "frobnicate=1",
        "calls=maybe",
    ] {
        // Refused at load: QEMU exits at once (a run that starts would never end: no
        // image, so it is killed after a few seconds and fails).
        let mut child = Command::new("qemu-system-arm")
            .args(["-machine", "mps2-an386", "-nographic", "-plugin"])
            .arg(format!("{},{bad}", plugin.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start qemu-system-arm");
        let status = child
            .wait_timeout(Duration::from_secs(20))
            .expect("wait for qemu");
        if status.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        assert!(
            status.is_some_and(|s| !s.success()),
            "{bad}: accepted ({err})"
        );
        assert!(err.contains("insn_count:"), "{bad}: {err}");
    }
}
