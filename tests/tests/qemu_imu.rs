//! Firmware on QEMU, with defmt: the `firmware/apps/imu` image (Cortex-M4F, board
//! mps2-an386) replays BasicMotions test cases through `models/basicmotions-s4d.tssm`
//! (`tinyssm_sensor::Replay` as the sample source, `Kernels::Reference`) and reports each
//! case over defmt on the semihosting console. Here the image is built, run under
//! `qemu-system-arm` (killed after [`QEMU_TIMEOUT`]), its output decoded with
//! `defmt-print -e <ELF>`, and every case's output bits, argmax and checksums (inputs,
//! every step's outputs, final state) compared with the host core on the same cases.
//! Half-way through each case the image snapshots the stream, resets it (a simulated power
//! cut), checks that a corrupted copy of the snapshot is refused without touching the
//! state, and restores it: the comparison then shows the restored stream continuing
//! bit-exact on the Cortex-M4.
//!
//! Needs `$TINYSSM_DATA/imu/BasicMotions_TEST.arff` (skipped with one line when absent),
//! `qemu-system-arm` and `defmt-print` (`cargo install defmt-print --locked`); without
//! either tool the test is skipped, unless `TINYSSM_REQUIRE_QEMU=1` (set by
//! `scripts/test.sh`), which makes it fail.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use wait_timeout::ChildExt;

use tinyssm_core::{Input, Kernels};
use tinyssm_data::Split;
use tinyssm_host::ModelFile;
use tinyssm_tests::qemu::run_qemu_bytes;
use tinyssm_tests::{data_dir, repo_root};

const TARGET: &str = "thumbv7em-none-eabihf";
const BIN: &str = "imu";
/// The cases `apps/imu/build.rs` embeds by default (`TINYSSM_FW_IMU_CASES` unset).
const CASES: &[usize] = &[0, 10, 20, 30];
/// Host-side limit on one QEMU run (the run itself takes well under a second).
const QEMU_TIMEOUT: Duration = Duration::from_secs(120);

fn firmware_dir() -> PathBuf {
    repo_root().join("firmware")
}

fn require() -> bool {
    std::env::var_os("TINYSSM_REQUIRE_QEMU").is_some_and(|v| v == "1")
}

/// Whether `program --version` runs; otherwise skip (or fail under TINYSSM_REQUIRE_QEMU=1).
fn have(program: &Path, hint: &str) -> bool {
    let found = Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !found {
        let msg = format!("{} not found ({hint})", program.display());
        if require() {
            panic!("{msg}; TINYSSM_REQUIRE_QEMU=1");
        }
        println!("skipped: {msg}");
    }
    found
}

/// `defmt-print` from PATH, else from cargo's bin folder (where `cargo install` puts it).
fn defmt_print() -> PathBuf {
    let on_path = Command::new("defmt-print")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if on_path {
        return PathBuf::from("defmt-print");
    }
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    match home {
        Some(h) if h.join("bin/defmt-print").is_file() => h.join("bin/defmt-print"),
        _ => PathBuf::from("defmt-print"),
    }
}

fn build_imu() -> PathBuf {
    let dir = firmware_dir();
    let data = std::path::absolute(data_dir()).expect("data dir");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // From firmware/ (its .cargo/config.toml sets target and link script), with nothing
    // from the host build's environment that would override that config.
    let out = Command::new(cargo)
        .current_dir(&dir)
        .args(["build", "--release", "--locked", "-p", "tinyssm-fw-imu"])
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("TINYSSM_FW_IMU_CASES")
        .env("TINYSSM_DATA", &data)
        .output()
        .unwrap_or_else(|e| panic!("cannot run cargo in {}: {e}", dir.display()));
    assert!(
        out.status.success(),
        "imu build failed (cd firmware && cargo build --release -p tinyssm-fw-imu):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let elf = dir.join("target").join(TARGET).join("release").join(BIN);
    assert!(elf.is_file(), "{}: not built", elf.display());
    elf
}

/// The QEMU command line: the runner of `firmware/.cargo/config.toml`, as `cargo run`.
fn qemu_command(elf: &Path) -> Command {
    let cfg_path = firmware_dir().join(".cargo/config.toml");
    let cfg = std::fs::read_to_string(&cfg_path)
        .unwrap_or_else(|e| panic!("{}: {e}", cfg_path.display()));
    let section = format!("[target.{TARGET}]");
    let runner = cfg
        .split(&section)
        .nth(1)
        .and_then(|rest| rest.lines().find(|l| l.trim_start().starts_with("runner")))
        .and_then(|l| l.split_once('='))
        .map(|(_, v)| v.trim().trim_matches('"').to_string())
        .unwrap_or_else(|| panic!("{}: no runner under {section}", cfg_path.display()));
    let mut words = runner.split_whitespace();
    let mut cmd = Command::new(words.next().expect("runner program"));
    cmd.args(words).arg(elf);
    cmd
}

/// Runs the image under QEMU with a host-side timeout: (exit code, the semihosting bytes).
/// QEMU 7.2 writes them to its stdout here; a build that routes them to stderr is
/// handled too (the one stream that carries bytes is taken; never both mixed).
fn run_qemu(elf: &Path) -> (Option<i32>, Vec<u8>) {
    let (code, out, err) = run_qemu_bytes(qemu_command(elf), QEMU_TIMEOUT, |o, e| {
        format!("{} bytes of output", o.len() + e.len())
    });
    (code, if out.is_empty() { err } else { out })
}

/// Decodes defmt frames with `defmt-print -e <elf>` (message text only, one per line).
fn decode(defmt_print: &Path, elf: &Path, bytes: &[u8]) -> String {
    let mut child = Command::new(defmt_print)
        .arg("-e")
        .arg(elf)
        .args(["--log-format", "{s}"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start defmt-print");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = bytes.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
        // Dropping stdin closes it: defmt-print ends at end of input.
    });
    let mut out = child.stdout.take().expect("stdout");
    let mut text = String::new();
    let reader = std::thread::spawn(move || {
        let _ = out.read_to_string(&mut text);
        text
    });
    let status = child
        .wait_timeout(QEMU_TIMEOUT)
        .expect("wait for defmt-print");
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("defmt-print did not end at the end of its input");
    }
    let _ = writer.join();
    let text = reader.join().unwrap_or_default();
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    assert!(
        status.is_some_and(|s| s.success()),
        "defmt-print failed: {err}\ndecoded so far:\n{text}"
    );
    text
}

/// FNV-1a (32-bit) over the little-endian bytes of f32 bit patterns (as the firmware).
#[derive(Clone, Copy)]
struct Fnv(u32);

impl Fnv {
    fn new() -> Self {
        Fnv(0x811c_9dc5)
    }
    fn f32s(mut self, xs: &[f32]) -> Self {
        for x in xs {
            for b in x.to_bits().to_le_bytes() {
                self.0 = (self.0 ^ b as u32).wrapping_mul(0x0100_0193);
            }
        }
        self
    }
}

/// One case as the image reports it.
#[derive(Debug, Default, PartialEq)]
struct CaseReport {
    label: u32,
    out_bits: Vec<u32>,
    argmax: usize,
    input_fnv: u32,
    outputs_fnv: u32,
    state_fnv: u32,
}

fn hex(s: &str) -> u32 {
    u32::from_str_radix(s.trim_start_matches("0x"), 16)
        .unwrap_or_else(|_| panic!("not a hex word: {s}"))
}

/// The per-case reports of the decoded text, by case index; and the model CRC it printed.
fn parse(text: &str) -> (Option<u32>, BTreeMap<usize, CaseReport>) {
    let mut crc = None;
    let mut cases: BTreeMap<usize, CaseReport> = BTreeMap::new();
    for line in text.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["crc32", c] => crc = Some(hex(c)),
            ["case", i, "out", k, bits, _value] => {
                let r = cases.entry(i.parse().expect("case index")).or_default();
                assert_eq!(r.out_bits.len(), k.parse::<usize>().expect("output index"));
                r.out_bits.push(hex(bits));
            }
            ["case", i, "label", l, "argmax", a, "input_fnv", fi, "outputs_fnv", fo, "state_fnv", fs] =>
            {
                let r = cases.entry(i.parse().expect("case index")).or_default();
                r.label = l.parse().expect("label");
                r.argmax = a.parse().expect("argmax");
                r.input_fnv = hex(fi);
                r.outputs_fnv = hex(fo);
                r.state_fnv = hex(fs);
            }
            _ => {}
        }
    }
    (crc, cases)
}

/// The same cases through the host core, `Kernels::Reference`, one step per vector.
fn host_reports(model: &Path) -> (u32, BTreeMap<usize, CaseReport>) {
    let mf = ModelFile::open(model).expect("model");
    let m = mf.model().with_kernels(Kernels::Reference);
    let all = tinyssm_data::basicmotions(&data_dir(), Split::Test).expect("BasicMotions");
    let mut reports = BTreeMap::new();
    for &i in CASES {
        let case = &all[i];
        assert_eq!(case.feats.len(), 100 * m.d_input());
        let mut state = vec![0f32; m.state_len()];
        let mut scratch = vec![0f32; m.scratch_len()];
        let mut out = vec![0f32; m.d_output()];
        m.reset(&mut state).expect("reset");
        let mut outputs = Fnv::new();
        for x in case.feats.chunks_exact(m.d_input()) {
            m.step(Input::Vector(x), &mut state, &mut scratch, &mut out)
                .expect("step");
            outputs = outputs.f32s(&out);
        }
        let argmax = out
            .iter()
            .enumerate()
            .fold(0, |b, (k, y)| if *y > out[b] { k } else { b });
        reports.insert(
            i,
            CaseReport {
                label: case.label,
                out_bits: out.iter().map(|y| y.to_bits()).collect(),
                argmax,
                input_fnv: Fnv::new().f32s(&case.feats).0,
                outputs_fnv: outputs.0,
                state_fnv: Fnv::new().f32s(&state).0,
            },
        );
    }
    (m.crc32(), reports)
}

#[test]
fn imu_image_on_qemu_reports_over_defmt_what_the_host_core_computes() {
    let arff = data_dir().join("imu/BasicMotions_TEST.arff");
    if !arff.is_file() {
        println!(
            "skipped: {} absent (BasicMotions, UEA time series archive; set TINYSSM_DATA)",
            arff.display()
        );
        return;
    }
    let decoder = defmt_print();
    if !have(
        Path::new("qemu-system-arm"),
        "Debian: apt-get install qemu-system-arm",
    ) || !have(&decoder, "cargo install defmt-print --locked")
    {
        return;
    }
    let elf = build_imu();
    let (code, bytes) = run_qemu(&elf);
    let text = decode(&decoder, &elf, &bytes);
    assert_eq!(code, Some(0), "imu image failed; output:\n{text}");
    assert!(
        text.lines()
            .any(|l| l.trim() == format!("done {}", CASES.len())),
        "no `done` line; output:\n{text}"
    );
    // Each case's stream was snapshotted, lost (reset) and restored half-way (a simulated
    // power cut; a corrupted copy refused first): the outputs below still match the host's.
    let cuts = text
        .lines()
        .filter(|l| l.contains("bytes restored; corrupted copy refused"))
        .count();
    assert_eq!(cuts, CASES.len(), "power cuts; output:\n{text}");
    let (crc, got) = parse(&text);
    let (want_crc, want) = host_reports(&repo_root().join("models/basicmotions-s4d.tssm"));
    assert_eq!(crc, Some(want_crc), "model CRC; output:\n{text}");
    assert_eq!(got, want, "firmware vs host core; output:\n{text}");
    // For the record: what the device decided on each case.
    for (i, r) in &got {
        println!(
            "case {i}: label {} argmax {} outputs {:08x?}",
            r.label, r.argmax, r.out_bits
        );
    }
}
