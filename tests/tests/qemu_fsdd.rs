//! Firmware on QEMU: the `firmware/apps/stream` images (Cortex-M4F, board mps2-an386)
//! stream an FSDD recording through each shipped FSDD model (`fsdd-s4d`, `fsdd-mamba` and
//! their int8 w8a8 versions) with `Kernels::Reference`; the host core steps the same
//! samples the same way. Outputs of the last frame, the checksums of every frame's outputs
//! and of the final state must agree bit for bit.
//!
//! The firmware is built here (`cargo build --release` in `firmware/`, its own workspace, so
//! that `firmware/.cargo/config.toml` applies) and run under `qemu-system-arm` with the
//! runner line of that config, killed after [`QEMU_TIMEOUT`]. The `.size` (text/data/bss)
//! of each image is checked against `firmware/size/stream-mps2-an386.txt`. The selftest
//! images check that a HardFault and a panic end the run with a non-zero exit.
//!
//! Needs `$TINYSSM_DATA/fsdd/recordings` (skipped with one line when absent) and
//! `qemu-system-arm` (skipped when absent unless `TINYSSM_REQUIRE_QEMU=1`, which
//! `scripts/test.sh` sets after installing it).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use wait_timeout::ChildExt;

use tinyssm_core::Kernels;
use tinyssm_host::ModelFile;
use tinyssm_tests::{data_dir, repo_root};

const TARGET: &str = "thumbv7em-none-eabihf";
const BOARD: &str = "mps2-an386";
/// The stream images, each named after the shipped model it embeds (`models/<name>.tssm`).
const IMAGES: &[&str] = &["fsdd-s4d", "fsdd-s4d-int8", "fsdd-mamba", "fsdd-mamba-int8"];
const CLIP: &str = "7_theo_0";
/// Host-side limit on one QEMU run (the run itself takes well under a second).
const QEMU_TIMEOUT: Duration = Duration::from_secs(120);
/// Relative change of a section that fails the size check...
const SIZE_TOLERANCE: f64 = 0.05;
/// ...once it is also more than this many bytes (so that near-empty sections don't flap).
const SIZE_SLACK_BYTES: u64 = 256;
const SIZE_SNAPSHOT: &str = "firmware/size/stream-mps2-an386.txt";

fn firmware_dir() -> PathBuf {
    repo_root().join("firmware")
}

/// The FSDD clip, or `None` (after one line saying so) when the data folder lacks it.
fn clip_path() -> Option<PathBuf> {
    let p = data_dir()
        .join("fsdd/recordings")
        .join(format!("{CLIP}.wav"));
    if p.is_file() {
        Some(p)
    } else {
        println!(
            "skipped: {} absent (Free Spoken Digit Dataset; set TINYSSM_DATA)",
            p.display()
        );
        None
    }
}

/// Builds the firmware workspace once per test run; the path of the ELF of `bin`.
fn firmware_elf(bin: &str) -> PathBuf {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BUILT.get_or_init(build_firmware) {
        Ok(dir) => {
            let elf = dir.join(bin);
            assert!(elf.is_file(), "{}: not built", elf.display());
            elf
        }
        Err(e) => panic!("{e}"),
    }
}

fn build_firmware() -> Result<PathBuf, String> {
    let dir = firmware_dir();
    let data = std::path::absolute(data_dir()).map_err(|e| e.to_string())?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // Run from firmware/ (so its .cargo/config.toml sets target, runner and link script),
    // with nothing from the host build's environment that would override that config.
    let out = Command::new(cargo)
        .current_dir(&dir)
        .args(["build", "--release", "--locked"])
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        // The build's defaults are this test's BOARD and CLIP; unset, as in scripts/test.sh's
        // firmware step, so that the build here finds that one up to date.
        .env_remove("TINYSSM_BOARD")
        .env_remove("TINYSSM_FW_CLIP")
        .env("TINYSSM_DATA", &data)
        .output()
        .map_err(|e| format!("cannot run cargo in {}: {e}", dir.display()))?;
    if !out.status.success() {
        return Err(format!(
            "firmware build failed (cd firmware && cargo build --release):\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(dir.join("target").join(TARGET).join("release"))
}

/// The QEMU command line: the runner of `firmware/.cargo/config.toml`, so that the test
/// runs exactly what `cargo run` runs.
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

fn have_qemu() -> bool {
    let found = Command::new("qemu-system-arm")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !found {
        let msg = "qemu-system-arm not found (Debian: apt-get install qemu-system-arm)";
        if std::env::var_os("TINYSSM_REQUIRE_QEMU").is_some_and(|v| v == "1") {
            panic!("{msg}; TINYSSM_REQUIRE_QEMU=1");
        }
        println!("skipped: {msg}");
    }
    found
}

/// Runs the image under QEMU with a host-side timeout: (exit code, stdout + stderr).
/// Semihosting output lands on stdout or stderr depending on the QEMU version.
fn run_qemu(elf: &Path) -> (Option<i32>, String) {
    let mut child = qemu_command(elf)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start qemu-system-arm");
    let mut pipes = [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    ];
    let readers: Vec<_> = pipes
        .iter_mut()
        .map(|p| {
            let mut p = p.take().expect("piped");
            std::thread::spawn(move || {
                let mut s = String::new();
                let _ = p.read_to_string(&mut s);
                s
            })
        })
        .collect();
    // A hang guard, not a speed check: a run that never ends is killed and fails.
    let status = match child.wait_timeout(QEMU_TIMEOUT).expect("wait for qemu") {
        Some(st) => Some(st),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            None
        }
    };
    let text: String = readers
        .into_iter()
        .map(|r| r.join().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    match status {
        Some(st) => (st.code(), text),
        None => panic!(
            "qemu-system-arm ran past {} s and was killed; output:\n{text}",
            QEMU_TIMEOUT.as_secs()
        ),
    }
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

/// What the stream app reports, computed on the host with the same core.
#[derive(Debug, PartialEq)]
struct Report {
    crc32: u32,
    samples: usize,
    frames: usize,
    input_fnv: u32,
    last: Vec<u32>,
    argmax: usize,
    outputs_fnv: u32,
    state_fnv: u32,
    checksum: u32,
}

fn host_report(model_path: &Path, clip: &Path) -> Report {
    let mf = ModelFile::open(model_path).expect("model");
    let m = mf.model().with_kernels(Kernels::Reference);
    let fe = *m.front_end().expect("audio model").config();
    let (rate, ch, mut x) = tinyssm_host::io::read_wav(clip).expect("wav");
    assert_eq!((rate, ch), (fe.sample_rate, 1));
    if x.len() < fe.frame_len as usize {
        x.resize(fe.frame_len as usize, 0.0);
    }
    let mut state = vec![0f32; m.state_len()];
    let mut scratch = vec![0f32; m.scratch_len()];
    let mut out = vec![0f32; m.d_output()];
    m.reset(&mut state).expect("reset");
    let (mut outputs, mut frames) = (Fnv::new(), 0);
    for &s in &x {
        if m.step_sample(s, &mut state, &mut scratch, &mut out)
            .expect("step")
        {
            frames += 1;
            outputs = outputs.f32s(&out);
        }
    }
    let argmax = out
        .iter()
        .enumerate()
        .fold(0, |b, (i, y)| if *y > out[b] { i } else { b });
    Report {
        crc32: m.crc32(),
        samples: x.len(),
        frames,
        input_fnv: Fnv::new().f32s(&x).0,
        last: out.iter().map(|y| y.to_bits()).collect(),
        argmax,
        outputs_fnv: outputs.0,
        state_fnv: Fnv::new().f32s(&state).0,
        checksum: outputs.f32s(&state).0,
    }
}

fn parse_report(text: &str) -> Result<Report, String> {
    let field = |key: &str| -> Result<&str, String> {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
            .map(str::trim)
            .ok_or_else(|| format!("no `{key}` line"))
    };
    let hex = |key: &str| -> Result<u32, String> {
        let v = field(key)?;
        u32::from_str_radix(v.trim_start_matches("0x"), 16).map_err(|e| format!("{key}: {e}"))
    };
    let num = |key: &str| -> Result<usize, String> {
        field(key)?.parse().map_err(|e| format!("{key}: {e}"))
    };
    let mut last = Vec::new();
    for l in text.lines() {
        let Some(rest) = l.strip_prefix("out ") else {
            continue;
        };
        let mut w = rest.split_whitespace();
        let (Some(i), Some(bits)) = (w.next(), w.next()) else {
            return Err(format!("bad line `{l}`"));
        };
        if i.parse::<usize>() != Ok(last.len()) {
            return Err(format!("out of order: `{l}`"));
        }
        last.push(
            u32::from_str_radix(bits.trim_start_matches("0x"), 16)
                .map_err(|e| format!("`{l}`: {e}"))?,
        );
    }
    if !text.lines().any(|l| l.trim() == "done") {
        return Err("no `done` line".into());
    }
    Ok(Report {
        crc32: hex("crc32")?,
        samples: num("samples")?,
        frames: num("frames")?,
        input_fnv: hex("input_fnv")?,
        last,
        argmax: num("argmax")?,
        outputs_fnv: hex("outputs_fnv")?,
        state_fnv: hex("state_fnv")?,
        checksum: hex("checksum")?,
    })
}

/// Runs one stream image under QEMU and compares its report with the host core's.
fn check_image(name: &str) {
    let Some(clip) = clip_path() else { return };
    let elf = firmware_elf(name);
    if !have_qemu() {
        return;
    }
    let (code, text) = run_qemu(&elf);
    assert_eq!(
        code,
        Some(0),
        "{name}: firmware exited with {code:?} under QEMU; output:\n{text}"
    );
    let header = format!("tinyssm stream on {BOARD}: {name}.tssm (");
    assert!(
        text.contains(&header) && text.contains(&format!(" on {CLIP} (")),
        "{name}: not the {BOARD} image of {name} on {CLIP}; output:\n{text}"
    );
    let device = parse_report(&text).unwrap_or_else(|e| panic!("{name}: {e}; output:\n{text}"));
    let model = repo_root().join("models").join(format!("{name}.tssm"));
    let host = host_report(&model, &clip);
    if device != host {
        let f32s = |b: &[u32]| b.iter().map(|&x| f32::from_bits(x)).collect::<Vec<_>>();
        panic!(
            "{name}: Cortex-M4F (QEMU) and host differ\n device {device:x?}\n host   {host:x?}\n \
             last frame device {:?}\n last frame host   {:?}",
            f32s(&device.last),
            f32s(&host.last)
        );
    }
    println!(
        "{name}: bit-exact, {} frames of {CLIP}, argmax {}, checksum {:#010x}",
        host.frames, host.argmax, host.checksum
    );
}

#[test]
fn qemu_fsdd_s4d_matches_host_bit_for_bit() {
    check_image("fsdd-s4d");
}

#[test]
fn qemu_fsdd_s4d_int8_matches_host_bit_for_bit() {
    check_image("fsdd-s4d-int8");
}

#[test]
fn qemu_fsdd_mamba_matches_host_bit_for_bit() {
    check_image("fsdd-mamba");
}

#[test]
fn qemu_fsdd_mamba_int8_matches_host_bit_for_bit() {
    check_image("fsdd-mamba-int8");
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

/// `.size` of every stream image against the snapshot, one `<image> <text> <data> <bss>`
/// row each.
#[test]
fn qemu_stream_size_snapshot() {
    if clip_path().is_none() {
        return;
    }
    let regen =
        "regenerate with TINYSSM_UPDATE_SIZES=1 cargo test -p tinyssm-tests --test qemu_fsdd";
    let mut rows = Vec::new();
    for name in IMAGES {
        let elf = firmware_elf(name);
        let bytes = std::fs::read(&elf).expect("read ELF");
        let sizes = elf_sizes(&bytes).unwrap_or_else(|e| panic!("{}: {e}", elf.display()));
        rows.push((name.to_string(), sizes));
    }
    let snap = repo_root().join(SIZE_SNAPSHOT);
    if std::env::var_os("TINYSSM_UPDATE_SIZES").is_some_and(|v| v == "1") {
        let mut body = format!(
            "# .size (bytes) of the firmware/apps/stream images (board {BOARD}, {TARGET}, release),\n\
             # each embedding models/<image>.tssm and the FSDD clip {CLIP}. Checked by\n\
             # tests/tests/qemu_fsdd.rs, which fails when a section changes by more than {}%\n\
             # (and {SIZE_SLACK_BYTES} bytes); {regen}\n\
             # image text data bss\n",
            SIZE_TOLERANCE * 100.0
        );
        for (name, [t, d, b]) in &rows {
            body += &format!("{name} {t} {d} {b}\n");
        }
        std::fs::write(&snap, body).expect("write size snapshot");
        println!("wrote {}", snap.display());
        return;
    }
    let old = std::fs::read_to_string(&snap)
        .unwrap_or_else(|e| panic!("{}: {e}; {regen}", snap.display()));
    let mut bad = Vec::new();
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
            bad.push(format!("{name}: no row"));
            continue;
        };
        for (sec, was, new) in [("text", t, new[0]), ("data", d, new[1]), ("bss", b, new[2])] {
            let diff = new.abs_diff(was);
            if diff > SIZE_SLACK_BYTES && diff as f64 > SIZE_TOLERANCE * was as f64 {
                bad.push(format!("{name} {sec} {was} -> {new}"));
            }
        }
        println!("{name}: text {} data {} bss {}", new[0], new[1], new[2]);
    }
    assert!(
        bad.is_empty(),
        "{}: size changed by more than {}%: {}; if intended, {regen}",
        snap.display(),
        SIZE_TOLERANCE * 100.0,
        bad.join(", ")
    );
}

/// The board's handlers end every failure with a non-zero exit: a HardFault (an undefined
/// instruction) and a panic each print their line and QEMU exits 1, well inside the timeout.
#[test]
fn qemu_fault_and_panic_exit_nonzero() {
    if clip_path().is_none() {
        return; // the workspace build embeds the clip in the stream app
    }
    let elfs = [
        ("selftest-fault", "HardFault: pc "),
        ("selftest-panic", "panic: panicked at "),
    ]
    .map(|(bin, want)| (firmware_elf(bin), want));
    if !have_qemu() {
        return;
    }
    for (elf, want) in elfs {
        let (code, text) = run_qemu(&elf);
        assert_eq!(
            code,
            Some(1),
            "{}: exit {code:?}; output:\n{text}",
            elf.display()
        );
        assert!(
            text.contains(want),
            "{}: no `{want}` in:\n{text}",
            elf.display()
        );
    }
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
