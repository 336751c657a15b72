//! Firmware on QEMU, on four boards: the `firmware/apps/stream` images stream FSDD
//! recordings through the shipped spoken-digit models and a stretch of MIT-BIH record 100
//! through the shipped R-peak detectors, and the host core steps the same inputs the same
//! way: float and w8a8 models with `Kernels::Reference`, integer-only models through the
//! one integer step. The last outputs, the checksums of every output and of the final
//! state must agree bit for bit.
//!
//! | board | core | target | images |
//! |-------|------|--------|--------|
//! | mps2-an386 | Cortex-M4F | thumbv7em-none-eabihf | every stream image |
//! | mps2-an500 | Cortex-M7 | thumbv7em-none-eabihf | [`MPS2_IMAGES`] |
//! | mps2-an505 | Cortex-M33 | thumbv8m.main-none-eabihf | [`MPS2_IMAGES`] |
//! | microbit | Cortex-M0 | thumbv6m-none-eabi | `ecg-rpeak-int` (16 KB RAM: the integer spoken-digit models need ~30 KB of state) |
//!
//! The firmware is built here (`cargo build --release` in `firmware/`, its own workspace, so
//! that `firmware/.cargo/config.toml` applies), once per board, and each build's ELFs are
//! copied to `firmware/target/qemu/<board>/` (the two thumbv7em boards share cargo's
//! output folder). Each image runs under `qemu-system-arm`, killed after [`QEMU_TIMEOUT`].
//! The `.size` (text/data/bss) of each image is checked against
//! `firmware/size/stream-<board>.txt`; the Cortex-M0 image's symbol table must hold no
//! soft-float routine; the selftest images check that a HardFault and a panic end the run
//! with exit 1 on every board.
//!
//! Needs `$TINYSSM_DATA/fsdd/recordings` and `$TINYSSM_DATA/ecg` (skipped with one line when
//! absent) and `qemu-system-arm` (skipped when absent unless `TINYSSM_REQUIRE_QEMU=1`, which
//! `scripts/test.sh` sets after installing it).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use tinyssm_core::{Input, Kernels, Model};
use tinyssm_host::ModelFile;
use tinyssm_tests::qemu::{have_qemu, run_qemu};
use tinyssm_tests::{data_dir, repo_root};
use tinyssm_tools::eval::to_i16;

/// A board the firmware runs on under QEMU.
struct Board {
    name: &'static str,
    target: &'static str,
    /// `-cpu` (none: the machine's own core).
    cpu: Option<&'static str>,
    machine: &'static str,
    /// Whether `firmware/.cargo/config.toml`'s runner for `target` is this board's command.
    config_runner: bool,
    /// The stream images run on it.
    images: &'static [&'static str],
    /// The selftest images run on it.
    selftests: &'static [&'static str],
}

/// Every stream image, each named after the shipped model it embeds (`models/<name>.tssm`).
const ALL_IMAGES: &[&str] = &[
    "fsdd-s4d",
    "fsdd-s4d-int8",
    "fsdd-mamba",
    "fsdd-mamba-int8",
    "fsdd-s4d-int",
    "fsdd-mamba-int",
    "ecg-rpeak",
    "ecg-rpeak-int8",
    "ecg-rpeak-int",
    "fsdd-s4d-small",
    "fsdd-s4d-small-int8",
    "fsdd-s4d-tiny-int",
];
/// The images run on the Cortex-M7 and M33 boards: every kind of path (float, w8a8,
/// integer-only; S4D and Mamba; audio and ECG) at a fraction of the build time.
const MPS2_IMAGES: &[&str] = &[
    "fsdd-s4d",
    "fsdd-mamba-int8",
    "fsdd-s4d-int",
    "fsdd-mamba-int",
    "ecg-rpeak",
    "ecg-rpeak-int8",
    "ecg-rpeak-int",
];
const SELFTESTS: &[&str] = &["selftest-fault", "selftest-panic"];

const AN386: Board = Board {
    name: "mps2-an386",
    target: "thumbv7em-none-eabihf",
    cpu: Some("cortex-m4"),
    machine: "mps2-an386",
    config_runner: true,
    images: ALL_IMAGES,
    selftests: SELFTESTS,
};
const AN500: Board = Board {
    name: "mps2-an500",
    target: "thumbv7em-none-eabihf",
    cpu: Some("cortex-m7"),
    machine: "mps2-an500",
    config_runner: false,
    images: MPS2_IMAGES,
    selftests: &["selftest-fault"],
};
const AN505: Board = Board {
    name: "mps2-an505",
    target: "thumbv8m.main-none-eabihf",
    cpu: Some("cortex-m33"),
    machine: "mps2-an505",
    config_runner: true,
    images: MPS2_IMAGES,
    selftests: &["selftest-fault"],
};
const MICROBIT: Board = Board {
    name: "microbit",
    target: "thumbv6m-none-eabi",
    cpu: None,
    machine: "microbit",
    config_runner: true,
    images: &["fsdd-s4d-tiny-int", "ecg-rpeak-int"],
    selftests: SELFTESTS,
};
const BOARDS: &[&Board] = &[&AN386, &AN500, &AN505, &MICROBIT];

/// The FSDD clips the images embed (the firmware build's default, test split).
const CLIPS: &[&str] = &["7_theo_0", "3_jackson_1", "0_nicolas_2"];
/// Samples of record 100 the ECG images embed, from the start of its test region.
const ECG_SAMPLES: usize = 720;
/// Host-side limit on one QEMU run (a run itself takes a second or two).
const QEMU_TIMEOUT: Duration = Duration::from_secs(120);
/// Relative change of a section that fails the size check...
const SIZE_TOLERANCE: f64 = 0.05;
/// ...once it is also more than this many bytes (so that near-empty sections don't flap).
const SIZE_SLACK_BYTES: u64 = 256;

fn firmware_dir() -> PathBuf {
    repo_root().join("firmware")
}

/// Whether the data the images embed is there (one line saying what is missing if not).
fn have_data() -> bool {
    let d = data_dir();
    let mut ok = true;
    for c in CLIPS {
        let p = d.join("fsdd/recordings").join(format!("{c}.wav"));
        if !p.is_file() {
            println!(
                "skipped: {} absent (Free Spoken Digit Dataset; set TINYSSM_DATA)",
                p.display()
            );
            ok = false;
        }
    }
    let p = d.join("ecg/100.dat");
    if !p.is_file() {
        println!(
            "skipped: {} absent (MIT-BIH Arrhythmia Database, PhysioNet; set TINYSSM_DATA)",
            p.display()
        );
        ok = false;
    }
    ok
}

/// Builds the firmware for `board` once per test run (builds never overlap); the folder
/// holding its ELFs.
fn board_elfs(board: &Board) -> PathBuf {
    static BUILT: Mutex<Option<HashMap<&'static str, Result<PathBuf, String>>>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let built = built.get_or_insert_with(HashMap::new);
    let r = built
        .entry(board.name)
        .or_insert_with(|| build_firmware(board));
    match r {
        Ok(dir) => dir.clone(),
        Err(e) => panic!("{e}"),
    }
}

fn board_elf(board: &Board, bin: &str) -> PathBuf {
    let elf = board_elfs(board).join(bin);
    assert!(elf.is_file(), "{}: not built", elf.display());
    elf
}

fn build_firmware(board: &Board) -> Result<PathBuf, String> {
    let dir = firmware_dir();
    let data = std::path::absolute(data_dir()).map_err(|e| e.to_string())?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let bins: Vec<&str> = board
        .images
        .iter()
        .chain(board.selftests)
        .copied()
        .collect();
    // Run from firmware/ (so its .cargo/config.toml sets runner and link script), with
    // nothing from the host build's environment that would override that config.
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&dir)
        .args(["build", "--release", "--locked"])
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        // The build's defaults are this test's clips and ECG stretch; unset, as in
        // scripts/test.sh's firmware step, so that the build here finds that one up to date.
        .env_remove("TINYSSM_FW_CLIPS")
        .env_remove("TINYSSM_FW_ECG_SAMPLES")
        .env("TINYSSM_DATA", &data);
    if board.name == AN386.name {
        // The default board, every image: exactly scripts/test.sh's firmware build.
        cmd.env_remove("TINYSSM_BOARD");
    } else {
        cmd.env("TINYSSM_BOARD", board.name)
            .args(["--target", board.target]);
        for b in &bins {
            cmd.args(["--bin", b]);
        }
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run cargo in {}: {e}", dir.display()))?;
    let how = format!(
        "cd firmware && TINYSSM_BOARD={} cargo build --release --target {}",
        board.name, board.target
    );
    if !out.status.success() {
        return Err(format!(
            "firmware build for {} failed ({how}):\n{}",
            board.name,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    // Keep this board's ELFs: the next build for the same target overwrites cargo's.
    let from = dir.join("target").join(board.target).join("release");
    let to = dir.join("target/qemu").join(board.name);
    std::fs::create_dir_all(&to).map_err(|e| format!("{}: {e}", to.display()))?;
    for b in &bins {
        std::fs::copy(from.join(b), to.join(b))
            .map_err(|e| format!("{}: {e}", from.join(b).display()))?;
    }
    Ok(to)
}

/// The QEMU command line for `board`.
fn qemu_line(board: &Board) -> String {
    let cpu = board.cpu.map(|c| format!("-cpu {c} ")).unwrap_or_default();
    format!(
        "qemu-system-arm {cpu}-machine {} -nographic -semihosting-config enable=on,target=native -kernel",
        board.machine
    )
}

fn qemu_command(board: &Board, elf: &Path) -> Command {
    let line = qemu_line(board);
    let mut words = line.split_whitespace();
    let mut cmd = Command::new(words.next().expect("qemu"));
    cmd.args(words).arg(elf);
    cmd
}

/// `cargo run` runs what this test runs: the runner of `firmware/.cargo/config.toml` for
/// each target is its first board's QEMU line.
#[test]
fn qemu_runners_in_cargo_config_match_the_boards() {
    let cfg_path = firmware_dir().join(".cargo/config.toml");
    let cfg = std::fs::read_to_string(&cfg_path)
        .unwrap_or_else(|e| panic!("{}: {e}", cfg_path.display()));
    for b in BOARDS.iter().filter(|b| b.config_runner) {
        let section = format!("[target.{}]", b.target);
        let runner = cfg
            .split(&section)
            .nth(1)
            .and_then(|rest| rest.lines().find(|l| l.trim_start().starts_with("runner")))
            .and_then(|l| l.split_once('='))
            .map(|(_, v)| v.trim().trim_matches('"').to_string())
            .unwrap_or_else(|| panic!("{}: no runner under {section}", cfg_path.display()));
        assert_eq!(
            runner,
            qemu_line(b),
            "{}: runner of {}",
            cfg_path.display(),
            b.name
        );
    }
}

/// FNV-1a (32-bit) over little-endian bytes (as the firmware).
#[derive(Clone, Copy)]
struct Fnv(u32);

impl Fnv {
    fn new() -> Self {
        Fnv(0x811c_9dc5)
    }
    fn bytes(mut self, bs: &[u8]) -> Self {
        for &b in bs {
            self.0 = (self.0 ^ b as u32).wrapping_mul(0x0100_0193);
        }
        self
    }
    fn words(self, xs: impl IntoIterator<Item = u32>) -> Self {
        xs.into_iter().fold(self, |h, w| h.bytes(&w.to_le_bytes()))
    }
}

/// One input's run, as the firmware's `run` line reports it.
#[derive(Debug, PartialEq)]
struct Run {
    input: String,
    samples: usize,
    steps: usize,
    input_fnv: u32,
    outputs_fnv: u32,
    state_fnv: u32,
    checksum: u32,
    argmax: usize,
    positive: usize,
    last: Vec<u32>,
}

/// What a stream image reports.
#[derive(Debug, PartialEq)]
struct Report {
    crc32: u32,
    runs: Vec<Run>,
}

/// Accumulates a run on the host the way the firmware does, over output bit patterns.
struct Acc {
    input: Fnv,
    outputs: Fnv,
    steps: usize,
    positive: usize,
}

impl Acc {
    fn new() -> Self {
        Acc {
            input: Fnv::new(),
            outputs: Fnv::new(),
            steps: 0,
            positive: 0,
        }
    }
    fn output(&mut self, bits: &[u32], positive: usize) {
        self.steps += 1;
        self.positive += positive;
        self.outputs = self.outputs.words(bits.iter().copied());
    }
    fn finish(
        self,
        input: &str,
        samples: usize,
        last: Vec<u32>,
        argmax: usize,
        state: &[u32],
    ) -> Run {
        Run {
            input: input.to_string(),
            samples,
            steps: self.steps,
            input_fnv: self.input.0,
            outputs_fnv: self.outputs.0,
            state_fnv: Fnv::new().words(state.iter().copied()).0,
            checksum: self.outputs.words(state.iter().copied()).0,
            argmax,
            positive: self.positive,
            last,
        }
    }
}

fn argmax<T: PartialOrd>(v: &[T]) -> usize {
    (0..v.len()).fold(0, |b, i| if v[i] > v[b] { i } else { b })
}

/// The FSDD clips as the firmware build embeds them: `read_wav`, padded to one frame.
fn clips(frame_len: usize) -> Vec<(&'static str, Vec<f32>)> {
    CLIPS
        .iter()
        .map(|c| {
            let p = data_dir().join("fsdd/recordings").join(format!("{c}.wav"));
            let (_, ch, mut x) = tinyssm_host::io::read_wav(&p).expect("wav");
            assert_eq!(ch, 1);
            if x.len() < frame_len {
                x.resize(frame_len, 0.0);
            }
            (*c, x)
        })
        .collect()
}

/// The ECG stretch (mV) and its name: record 100's first signal from its test region on.
fn ecg_stretch() -> (String, Vec<f32>) {
    let (sig, _, _) = tinyssm_data::ecg::record_100(&data_dir()).expect("record 100");
    let start = sig.len() * 8 / 10;
    (
        format!("ecg100@{start}"),
        sig[start..start + ECG_SAMPLES].to_vec(),
    )
}

/// The host core on the inputs of image `name`.
fn host_report(name: &str) -> Report {
    let path = repo_root().join("models").join(format!("{name}.tssm"));
    let mf = ModelFile::open(&path).expect("model");
    let m = mf.model().with_kernels(Kernels::Reference);
    let runs = match (name.starts_with("fsdd-"), m.int_io()) {
        (true, None) => {
            let fe = m.config().front_end.expect("audio model");
            clips(fe.frame_len as usize)
                .iter()
                .map(|(c, x)| fsdd_float(&m, c, x))
                .collect()
        }
        (true, Some(_)) => {
            let fe = m.config().front_end.expect("audio model");
            clips(fe.frame_len as usize)
                .iter()
                .map(|(c, x)| {
                    let pcm: Vec<i16> = x.iter().map(|&s| to_i16(s, 15)).collect();
                    int_run(&m, c, &pcm, true)
                })
                .collect()
        }
        (false, None) => {
            let (n, x) = ecg_stretch();
            vec![ecg_float(&m, &n, &x)]
        }
        (false, Some(io)) => {
            let (n, x) = ecg_stretch();
            let q: Vec<i16> = x.iter().map(|&s| to_i16(s, io.input_frac)).collect();
            vec![int_run(&m, &n, &q, false)]
        }
    };
    Report {
        crc32: m.crc32(),
        runs,
    }
}

fn fsdd_float(m: &Model<'_>, clip: &str, x: &[f32]) -> Run {
    let mut state = vec![0f32; m.state_len()];
    let mut scratch = vec![0f32; m.scratch_len()];
    let mut out = vec![0f32; m.d_output()];
    m.reset(&mut state).expect("reset");
    let mut acc = Acc::new();
    let fe = m.front_end().expect("front end");
    for &s in x {
        acc.input = acc.input.bytes(&s.to_le_bytes());
        if m.step_sample(&fe, s, &mut state, &mut scratch, &mut out)
            .expect("step")
        {
            let bits: Vec<u32> = out.iter().map(|y| y.to_bits()).collect();
            acc.output(&bits, out.iter().filter(|&&y| y > 0.0).count());
        }
    }
    let st: Vec<u32> = state.iter().map(|y| y.to_bits()).collect();
    let last = out.iter().map(|y| y.to_bits()).collect();
    acc.finish(clip, x.len(), last, argmax(&out), &st)
}

fn ecg_float(m: &Model<'_>, name: &str, x: &[f32]) -> Run {
    let mut state = vec![0f32; m.state_len()];
    let mut scratch = vec![0f32; m.scratch_len()];
    let mut out = vec![0f32; m.d_output()];
    m.reset(&mut state).expect("reset");
    let mut acc = Acc::new();
    for &s in x {
        acc.input = acc.input.bytes(&s.to_le_bytes());
        m.step(Input::Vector(&[s]), &mut state, &mut scratch, &mut out)
            .expect("step");
        let bits: Vec<u32> = out.iter().map(|y| y.to_bits()).collect();
        acc.output(&bits, out.iter().filter(|&&y| y > 0.0).count());
    }
    let st: Vec<u32> = state.iter().map(|y| y.to_bits()).collect();
    let last = out.iter().map(|y| y.to_bits()).collect();
    acc.finish(name, x.len(), last, argmax(&out), &st)
}

/// An integer-only model on 16-bit inputs: PCM through the front end (`audio`) or one
/// value per step.
fn int_run(m: &Model<'_>, name: &str, x: &[i16], audio: bool) -> Run {
    let mut state = vec![0i32; m.state_len()];
    let mut scratch = vec![0i32; m.scratch_len()];
    let mut out = vec![0i32; m.d_output()];
    m.reset_int(&mut state).expect("reset");
    let mut acc = Acc::new();
    let fe = m.front_end_int();
    for &s in x {
        acc.input = acc.input.bytes(&s.to_le_bytes());
        let produced = if audio {
            m.step_sample_int(
                fe.as_ref().expect("front end"),
                s,
                &mut state,
                &mut scratch,
                &mut out,
            )
            .expect("step")
        } else {
            m.step_int(&[s], &mut state, &mut scratch, &mut out)
                .expect("step");
            true
        };
        if produced {
            let bits: Vec<u32> = out.iter().map(|&y| y as u32).collect();
            acc.output(&bits, out.iter().filter(|&&y| y > 0).count());
        }
    }
    let st: Vec<u32> = state.iter().map(|&y| y as u32).collect();
    let last = out.iter().map(|&y| y as u32).collect();
    acc.finish(name, x.len(), last, argmax(&out), &st)
}

fn parse_report(text: &str) -> Result<Report, String> {
    let hex =
        |v: &str| u32::from_str_radix(v.trim_start_matches("0x"), 16).map_err(|e| e.to_string());
    let crc32 = text
        .lines()
        .find_map(|l| l.strip_prefix("crc32 "))
        .ok_or("no `crc32` line")
        .and_then(|v| hex(v.trim()).map_err(|_| "bad crc32"))?;
    let mut runs = Vec::new();
    for l in text.lines() {
        let Some(rest) = l.strip_prefix("run ") else {
            continue;
        };
        let mut w = rest.split_whitespace();
        let input = w.next().ok_or("empty run line")?.to_string();
        let kv: HashMap<&str, &str> = std::iter::from_fn(|| Some((w.next()?, w.next()?))).collect();
        let get = |k: &str| kv.get(k).copied().ok_or(format!("`{l}`: no {k}"));
        let num = |k: &str| get(k)?.parse::<usize>().map_err(|e| format!("{k}: {e}"));
        let h = |k: &str| hex(get(k)?).map_err(|e| format!("{k}: {e}"));
        runs.push(Run {
            input,
            samples: num("samples")?,
            steps: num("steps")?,
            input_fnv: h("input_fnv")?,
            outputs_fnv: h("outputs_fnv")?,
            state_fnv: h("state_fnv")?,
            checksum: h("checksum")?,
            argmax: num("argmax")?,
            positive: num("positive")?,
            last: get("last")?
                .split(',')
                .map(hex)
                .collect::<Result<_, _>>()
                .map_err(|e| format!("last: {e}"))?,
        });
    }
    if !text.lines().any(|l| l.trim() == "done") {
        return Err("no `done` line".into());
    }
    Ok(Report { crc32, runs })
}

/// Runs one stream image under QEMU and compares its report with the host core's.
fn check_image(board: &Board, name: &str) -> Result<String, String> {
    let elf = board_elf(board, name);
    let (code, text) = run_qemu(qemu_command(board, &elf), QEMU_TIMEOUT);
    if code != Some(0) {
        return Err(format!(
            "{name} on {}: exit {code:?} under QEMU; output:\n{text}",
            board.name
        ));
    }
    let header = format!("tinyssm stream on {}: {name}.tssm (", board.name);
    if !text.contains(&header) {
        return Err(format!(
            "{name}: not the {} image; output:\n{text}",
            board.name
        ));
    }
    let device = parse_report(&text).map_err(|e| format!("{name}: {e}; output:\n{text}"))?;
    let host = host_report(name);
    if device != host {
        return Err(format!(
            "{name}: {} (QEMU) and host differ\n device {device:x?}\n host   {host:x?}",
            board.name
        ));
    }
    let runs: Vec<String> = host
        .runs
        .iter()
        .map(|r| {
            format!(
                "{} ({} steps, argmax {}, checksum {:#010x})",
                r.input, r.steps, r.argmax, r.checksum
            )
        })
        .collect();
    Ok(format!(
        "{name} on {}: bit-exact on {}",
        board.name,
        runs.join(", ")
    ))
}

/// Every stream image of `board` bit for bit against the host, then its selftests.
fn check_board(board: &Board) {
    if !have_data() {
        return;
    }
    board_elfs(board);
    if !have_qemu() {
        return;
    }
    let mut bad = Vec::new();
    for name in board.images {
        match check_image(board, name) {
            Ok(line) => println!("{line}"),
            Err(e) => bad.push(e),
        }
    }
    for bin in board.selftests {
        let want = match *bin {
            "selftest-fault" => "HardFault: pc ",
            _ => "panic: panicked at ",
        };
        let (code, text) = run_qemu(qemu_command(board, &board_elf(board, bin)), QEMU_TIMEOUT);
        if code != Some(1) || !text.contains(want) {
            bad.push(format!(
                "{bin} on {}: exit {code:?}, want 1 and `{want}`; output:\n{text}",
                board.name
            ));
        } else {
            println!("{bin} on {}: exit 1 ({})", board.name, want.trim());
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n\n"));
}

#[test]
fn qemu_mps2_an386_cortex_m4f_matches_host_bit_for_bit() {
    check_board(&AN386);
}

#[test]
fn qemu_mps2_an500_cortex_m7_matches_host_bit_for_bit() {
    check_board(&AN500);
}

#[test]
fn qemu_mps2_an505_cortex_m33_matches_host_bit_for_bit() {
    check_board(&AN505);
}

#[test]
fn qemu_microbit_cortex_m0_matches_host_bit_for_bit() {
    check_board(&MICROBIT);
}

/// Berkeley-style sizes of an ELF32 little-endian image, as `size` prints them: text =
/// allocated read-only sections (code, vectors, rodata), data = allocated writable
/// PROGBITS, bss = allocated writable NOBITS.
fn elf_sizes(bytes: &[u8]) -> Result<[u64; 3], String> {
    let u16_at = |o: usize| -> Result<u64, String> {
        let b = bytes.get(o..o + 2).ok_or("truncated ELF")?;
        Ok(u16::from_le_bytes([b[0], b[1]]) as u64)
    };
    let u32_at = |o: usize| -> Result<u64, String> {
        let b = bytes.get(o..o + 4).ok_or("truncated ELF")?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64)
    };
    if bytes.get(..6) != Some(&[0x7f, b'E', b'L', b'F', 1, 1][..]) {
        return Err("not a little-endian ELF32 file".into());
    }
    let (shoff, shentsize, shnum) = (u32_at(0x20)?, u16_at(0x2e)?, u16_at(0x30)?);
    const SHT_NOBITS: u64 = 8;
    const SHF_WRITE: u64 = 1;
    const SHF_ALLOC: u64 = 2;
    let mut s = [0u64; 3];
    for i in 0..shnum {
        let h = (shoff + i * shentsize) as usize;
        let (ty, flags, size) = (u32_at(h + 4)?, u32_at(h + 8)?, u32_at(h + 20)?);
        if flags & SHF_ALLOC == 0 {
            continue;
        }
        let k = match (flags & SHF_WRITE != 0, ty == SHT_NOBITS) {
            (false, _) => 0,
            (true, false) => 1,
            (true, true) => 2,
        };
        s[k] += size;
    }
    Ok(s)
}

/// Names in an ELF32 little-endian image's symbol table (`.symtab`).
fn elf_symbols(bytes: &[u8]) -> Result<Vec<String>, String> {
    let u16_at = |o: usize| -> Result<usize, String> {
        let b = bytes.get(o..o + 2).ok_or("truncated ELF")?;
        Ok(u16::from_le_bytes([b[0], b[1]]) as usize)
    };
    let u32_at = |o: usize| -> Result<usize, String> {
        let b = bytes.get(o..o + 4).ok_or("truncated ELF")?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    if bytes.get(..6) != Some(&[0x7f, b'E', b'L', b'F', 1, 1][..]) {
        return Err("not a little-endian ELF32 file".into());
    }
    let (shoff, shentsize, shnum) = (u32_at(0x20)?, u16_at(0x2e)?, u16_at(0x30)?);
    const SHT_SYMTAB: usize = 2;
    let mut names = Vec::new();
    for i in 0..shnum {
        let h = shoff + i * shentsize;
        if u32_at(h + 4)? != SHT_SYMTAB {
            continue;
        }
        let (off, size, link, entsize) = (
            u32_at(h + 16)?,
            u32_at(h + 20)?,
            u32_at(h + 24)?,
            u32_at(h + 36)?,
        );
        let sh = shoff + link * shentsize;
        let (stroff, strsize) = (u32_at(sh + 16)?, u32_at(sh + 20)?);
        let strtab = bytes
            .get(stroff..stroff + strsize)
            .ok_or("truncated strtab")?;
        for s in (off..off + size).step_by(entsize.max(16)) {
            let n = u32_at(s)?;
            let name = strtab.get(n..).ok_or("bad symbol name")?;
            let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
            names.push(String::from_utf8_lossy(&name[..end]).into_owned());
        }
    }
    if names.is_empty() {
        return Err("no symbol table".into());
    }
    Ok(names)
}

/// compiler-builtins' soft-float routines: the AEABI float/double helpers (`__aeabi_f*`,
/// `__aeabi_d*`, conversions `__aeabi_*2f`/`__aeabi_*2d`) and the libgcc-style names that
/// carry `sf`/`df` (`__mulsf3`, `__floatunsisf`, `__extendsfdf2`, ...).
fn is_soft_float(sym: &str) -> bool {
    let Some(rest) = sym.strip_prefix("__") else {
        return false;
    };
    if let Some(a) = rest.strip_prefix("aeabi_") {
        return a.starts_with('f') || a.starts_with('d') || a.ends_with("2f") || a.ends_with("2d");
    }
    rest.contains("sf") || rest.contains("df")
}

/// The Cortex-M0 has no FPU: its integer-only image must run no float operation, so it
/// may link no soft-float routine (a float operation anywhere on its path, even in the
/// parser's checks, would pull one in).
#[test]
fn qemu_microbit_integer_image_links_no_soft_float() {
    if !have_data() {
        return;
    }
    assert!(is_soft_float("__aeabi_fmul") && is_soft_float("__aeabi_ui2f"));
    assert!(is_soft_float("__mulsf3") && is_soft_float("__adddf3"));
    assert!(!is_soft_float("__aeabi_lmul") && !is_soft_float("__sdata"));
    for name in MICROBIT.images {
        let elf = board_elf(&MICROBIT, name);
        let syms = elf_symbols(&std::fs::read(&elf).expect("read ELF"))
            .unwrap_or_else(|e| panic!("{}: {e}", elf.display()));
        let soft: Vec<&String> = syms.iter().filter(|s| is_soft_float(s)).collect();
        assert!(
            soft.is_empty(),
            "{}: links soft-float routines {soft:?}",
            elf.display()
        );
        println!(
            "{name} on microbit: {} symbols, no soft-float routine",
            syms.len()
        );
    }
}

/// `.size` of every image of every board against `firmware/size/stream-<board>.txt`, one
/// `<image> <text> <data> <bss>` row each.
#[test]
fn qemu_stream_size_snapshot() {
    if !have_data() {
        return;
    }
    let regen =
        "regenerate with TINYSSM_UPDATE_SIZES=1 cargo test -p tinyssm-tests --test qemu_fsdd";
    let mut bad = Vec::new();
    for board in BOARDS {
        let mut rows = Vec::new();
        for name in board.images {
            let elf = board_elf(board, name);
            let bytes = std::fs::read(&elf).expect("read ELF");
            let sizes = elf_sizes(&bytes).unwrap_or_else(|e| panic!("{}: {e}", elf.display()));
            rows.push((name.to_string(), sizes));
        }
        let snap = repo_root().join(format!("firmware/size/stream-{}.txt", board.name));
        if std::env::var_os("TINYSSM_UPDATE_SIZES").is_some_and(|v| v == "1") {
            let mut body = format!(
                "# .size (bytes) of the firmware/apps/stream images (board {}, {}, release),\n\
                 # each embedding models/<image>.tssm and its inputs (FSDD clips {}; {ECG_SAMPLES}\n\
                 # samples of ECG record 100). Checked by tests/tests/qemu_fsdd.rs, which fails\n\
                 # when a section changes by more than {}% (and {SIZE_SLACK_BYTES} bytes);\n\
                 # {regen}\n\
                 # image text data bss\n",
                board.name,
                board.target,
                CLIPS.join(", "),
                SIZE_TOLERANCE * 100.0
            );
            for (name, [t, d, b]) in &rows {
                body += &format!("{name} {t} {d} {b}\n");
            }
            std::fs::write(&snap, body).expect("write size snapshot");
            println!("wrote {}", snap.display());
            continue;
        }
        let old = std::fs::read_to_string(&snap)
            .unwrap_or_else(|e| panic!("{}: {e}; {regen}", snap.display()));
        for (name, new) in &rows {
            let was: Vec<u64> = old
                .lines()
                .find_map(|l| {
                    let mut w = l.split_whitespace();
                    (w.next() == Some(name.as_str()))
                        .then(|| w.filter_map(|x| x.parse().ok()).collect())
                })
                .unwrap_or_default();
            let [t, d, b] = was[..] else {
                bad.push(format!("{}: {name}: no row", board.name));
                continue;
            };
            for (sec, was, new) in [("text", t, new[0]), ("data", d, new[1]), ("bss", b, new[2])] {
                let diff = new.abs_diff(was);
                if diff > SIZE_SLACK_BYTES && diff as f64 > SIZE_TOLERANCE * was as f64 {
                    bad.push(format!("{} {name} {sec} {was} -> {new}", board.name));
                }
            }
            println!(
                "{} {name}: text {} data {} bss {}",
                board.name, new[0], new[1], new[2]
            );
        }
    }
    assert!(
        bad.is_empty(),
        "size changed by more than {}%: {}; if intended, {regen}",
        SIZE_TOLERANCE * 100.0,
        bad.join(", ")
    );
}

/// The firmware workspace has its own Cargo.lock: the crates that decide the core's
/// arithmetic (libm's math functions, the FFT, f16 conversion) must be the versions the
/// host build uses, or a bit-for-bit comparison would compare two different programs.
#[test]
fn firmware_lock_pins_the_hosts_numeric_crates() {
    fn versions(lock: &str) -> Vec<(String, String)> {
        let mut v = Vec::new();
        let mut name = None;
        for l in lock.lines() {
            if let Some(n) = l.strip_prefix("name = ") {
                name = Some(n.trim_matches('"').to_string());
            } else if let (Some(ver), Some(n)) = (l.strip_prefix("version = "), name.take()) {
                v.push((n, ver.trim_matches('"').to_string()));
            }
        }
        v
    }
    let root = versions(&std::fs::read_to_string(repo_root().join("Cargo.lock")).unwrap());
    let fw = versions(&std::fs::read_to_string(firmware_dir().join("Cargo.lock")).expect("lock"));
    for krate in [
        "libm",
        "microfft",
        "half",
        "num-complex",
        "num-traits",
        "crc",
    ] {
        let pick = |l: &[(String, String)]| -> Vec<String> {
            l.iter()
                .filter(|(n, _)| n == krate)
                .map(|(_, v)| v.clone())
                .collect()
        };
        let (r, f) = (pick(&root), pick(&fw));
        assert!(
            f.iter().all(|v| r.contains(v)),
            "firmware/Cargo.lock has {krate} {f:?}, the root Cargo.lock {r:?}: \
             cd firmware && cargo update -p {krate} --precise <version>"
        );
    }
}
