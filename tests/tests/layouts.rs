//! Format 1.x layouts did not move in the block-stack refactor: every test configuration
//! (each compute mode, with and without a front end, options flipped) gives the tensor
//! order, shapes and buffer sizes recorded in `tests/fixtures/layouts-1x.txt` by the code
//! before the refactor (commit a5e2351, `tinyssm_tests::layouts::dump` built against its
//! core). A regression fixture, not a golden.

use tinyssm_core::{Compute, Config};

/// Validation errors are compared as "invalid": the refactor reworded the integer-mode
/// refusal to name the block kind and the mode (checked below).
fn normalise(s: &str) -> String {
    s.lines()
        .map(|l| {
            if l.starts_with("invalid: ") {
                "invalid"
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn layouts_match_the_recorded_1x_layouts() {
    let path = tinyssm_tests::repo_root().join("tests/fixtures/layouts-1x.txt");
    let want = std::fs::read_to_string(&path).expect("tests/fixtures/layouts-1x.txt");
    let got = tinyssm_tests::layouts::dump();
    assert!(got.lines().count() > 1000, "dump too short");
    let (want, got) = (normalise(&want), normalise(&got));
    if want != got {
        let first = want
            .lines()
            .zip(got.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(want.lines().count().min(got.lines().count()));
        panic!(
            "layout differs from the recorded 1.x layout at line {}: want {:?}, got {:?}",
            first + 1,
            want.lines().nth(first),
            got.lines().nth(first)
        );
    }
}

#[test]
fn an_unsupported_integer_mode_names_the_block_kind() {
    use tinyssm_tests::configs;
    let int = |c: Config| Config {
        compute: Compute::Int,
        ..c
    };
    for (cfg, kind) in [
        (configs::mamba2(), "mamba2"),
        (configs::rwkv4(), "rwkv4"),
        (configs::rwkv7(), "rwkv7"),
    ] {
        let e = int(cfg).validate().unwrap_err().to_string();
        assert!(
            e.contains(&format!("block kind `{kind}` has no `int` compute mode")),
            "{e}"
        );
    }
    // Mamba-1 has an integer mode, but not with a token input stage and an LM head.
    let e = int(configs::mamba1()).validate().unwrap_err().to_string();
    assert!(e.contains("compute int needs a vector model"), "{e}");
    int(configs::mamba_sensor()).validate().unwrap();
    int(configs::s4d()).validate().unwrap();
}
