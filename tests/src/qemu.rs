//! Running firmware images under `qemu-system-arm` from the tests: whether QEMU is there,
//! and one run with a host-side hang guard.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use wait_timeout::ChildExt;

/// Whether `qemu-system-arm` runs. When it does not: panics if `TINYSSM_REQUIRE_QEMU=1`
/// (`scripts/test.sh` sets it after installing QEMU), else prints one `skipped:` line.
pub fn have_qemu() -> bool {
    let found = Command::new("qemu-system-arm")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        let msg = "qemu-system-arm not found (Debian: apt-get install qemu-system-arm)";
        if std::env::var_os("TINYSSM_REQUIRE_QEMU").is_some_and(|v| v == "1") {
            panic!("{msg}; TINYSSM_REQUIRE_QEMU=1");
        }
        println!("skipped: {msg}");
    }
    found
}

/// Runs `cmd` (a QEMU command line) to its end: (exit code, stdout and stderr joined as
/// text; semihosting output lands on either, depending on the QEMU version). A run past
/// `timeout` is killed and panics with its output: a hang guard, not a speed check.
pub fn run_qemu(cmd: Command, timeout: Duration) -> (Option<i32>, String) {
    let (code, out, err) = run_qemu_bytes(cmd, timeout, |out, err| {
        format!(
            "{}\n{}",
            String::from_utf8_lossy(out),
            String::from_utf8_lossy(err)
        )
    });
    let text = [out, err]
        .iter()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect::<Vec<_>>()
        .join("\n");
    (code, text)
}

/// [`run_qemu`] keeping stdout and stderr apart as bytes (a defmt stream is binary);
/// `shown` renders what a timeout's panic prints.
pub fn run_qemu_bytes(
    mut cmd: Command,
    timeout: Duration,
    shown: impl Fn(&[u8], &[u8]) -> String,
) -> (Option<i32>, Vec<u8>, Vec<u8>) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start qemu-system-arm");
    let readers: Vec<_> = [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .map(|p| {
        std::thread::spawn(move || {
            let mut b = Vec::new();
            if let Some(mut p) = p {
                let _ = p.read_to_end(&mut b);
            }
            b
        })
    })
    .collect();
    let status = child.wait_timeout(timeout).expect("wait for qemu");
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let mut streams: Vec<Vec<u8>> = readers
        .into_iter()
        .map(|r| r.join().unwrap_or_default())
        .collect();
    let err = streams.pop().unwrap_or_default();
    let out = streams.pop().unwrap_or_default();
    match status {
        Some(st) => (st.code(), out, err),
        None => panic!(
            "qemu-system-arm ran past {} s and was killed; output:\n{}",
            timeout.as_secs(),
            shown(&out, &err)
        ),
    }
}
