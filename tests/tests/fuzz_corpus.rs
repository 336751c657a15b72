//! The committed fuzz corpora (`fuzz/corpus/<target>/`, minimised with libFuzzer's merge)
//! and the inputs fuzzing found failures with (`fuzz/regressions/<target>/`, each with its
//! own test where the fix is) replayed through the fuzz targets' own bodies
//! (`tinyssm_tools::fuzzing`) on stable, plus
//! a bounded deterministic mutation pass (truncations and bit flips of every corpus file):
//! no input panics. The fuzz campaigns themselves (nightly, cargo-fuzz) run in
//! `scripts/fuzz.sh`; CI runs them briefly (`scripts/test.sh`).

use std::path::PathBuf;

use tinyssm_tests::repo_root;
use tinyssm_tools::fuzzing::TARGETS;

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = repo_root().join("fuzz/corpus").join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    // Regressions: kept apart, as a corpus merge drops inputs that no longer add coverage.
    if let Ok(rd) = std::fs::read_dir(repo_root().join("fuzz/regressions").join(target)) {
        files.extend(rd.map(|e| e.unwrap().path()).filter(|p| p.is_file()));
    }
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect()
}

#[test]
fn every_fuzz_target_has_a_body_and_a_corpus() {
    let manifest = std::fs::read_to_string(repo_root().join("fuzz/Cargo.toml")).unwrap();
    let bins: Vec<&str> = manifest
        .lines()
        .filter_map(|l| l.trim().strip_prefix("name = \""))
        .filter_map(|l| l.strip_suffix('"'))
        .filter(|n| *n != "tinyssm-fuzz")
        .collect();
    let names: Vec<&str> = TARGETS.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        bins, names,
        "fuzz/Cargo.toml binaries vs tinyssm_tools::fuzzing::TARGETS"
    );
    for (name, _) in TARGETS {
        assert!(!corpus(name).is_empty(), "fuzz/corpus/{name} is empty");
        let src = std::fs::read_to_string(repo_root().join(format!("fuzz/fuzz_targets/{name}.rs")))
            .unwrap();
        assert!(
            src.contains(&format!("tinyssm_tools::fuzzing::{name}(data)")),
            "fuzz/fuzz_targets/{name}.rs does not call its body"
        );
    }
}

#[test]
fn the_corpora_replay_without_a_panic() {
    for (name, body) in TARGETS {
        let files = corpus(name);
        for (p, b) in &files {
            let r = std::panic::catch_unwind(|| body(b));
            assert!(r.is_ok(), "{name}: {} panicked", p.display());
        }
        println!("{name}: {} corpus inputs", files.len());
    }
}

/// Every corpus file truncated at 16 points and with 64 single-bit flips (positions from a
/// fixed generator): a few thousand inputs near the valid ones, on stable, in seconds.
#[test]
fn mutations_of_the_corpora_do_not_panic() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut n = 0;
    for (name, body) in TARGETS {
        // The `.pth` reader works on a file; a smaller share of its mutations keeps it quick.
        let flips = if *name == "pth" { 8 } else { 64 };
        for (p, b) in corpus(name) {
            if b.is_empty() {
                continue;
            }
            let mut inputs = Vec::new();
            for k in 1..=16 {
                inputs.push(b[..b.len() * k / 17].to_vec());
            }
            for _ in 0..flips {
                let mut c = b.clone();
                let i = (next() % c.len() as u64) as usize;
                c[i] ^= 1 << (next() % 8);
                inputs.push(c);
            }
            for input in inputs {
                let r = std::panic::catch_unwind(|| body(&input));
                assert!(
                    r.is_ok(),
                    "{name}: a mutation of {} panicked ({} bytes)",
                    p.display(),
                    input.len()
                );
                n += 1;
            }
        }
    }
    println!("{n} mutated inputs");
}
