//! The block-stack rule (ARCHITECTURE.md, "Block kinds"): nothing dispatches on a block
//! kind outside the folders that hold per-kind code, each with one registration point —
//!
//! - `core/src/blocks/`: the kinds themselves (config, roles, shapes, sizes, steps in every
//!   mode) and the core's registry (`registry!`), the one the rest of the code goes through
//!   (`tinyssm_core::Block`);
//! - `cuda-host/src/blocks/`: what the batch crate implements of a kind (CUDA step kernels'
//!   packing, verify's scan forward, its support columns), registered in `batch_kinds!`;
//! - `tools/src/intq/`: the integer-only conversion's per-kind Q-format plans, registered
//!   in `int_kind`.
//!
//! This test finds the kinds from the code (the `registry!` in `core/src/blocks/mod.rs` and
//! the format-1.x `Arch` enum there), then counts, per source file of the workspace and the
//! firmware, the lines that dispatch on one: a match arm, `if let`, `let … else` or
//! `matches!` naming `Arch::<Kind>` or `Block::<Kind>` in a pattern. Constructing a model
//! of one kind (an importer, a test fixture) names the kind without dispatching and is not
//! counted. Outside the folders above the count must be zero in every crate (core, std-host,
//! tools and its importers, cuda-host, data, tests, bench, firmware, fuzz).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The folders holding per-kind code (see the module docs), each with its registration.
const KIND_FOLDERS: &[&str] = &[
    "core/src/blocks/",
    "cuda-host/src/blocks/",
    "tools/src/intq/",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Kind variant names: those of `registry!` (`Var => path,`) and of `enum Arch`.
fn kind_variants(blocks_mod: &str) -> Vec<String> {
    let mut out = Vec::new();
    let reg = blocks_mod
        .split("registry! {")
        .nth(1)
        .expect("registry! invocation in core/src/blocks/mod.rs");
    let reg = &reg[..reg.find("\n}").expect("end of registry!")];
    for line in reg.lines() {
        let line = line.trim();
        if let Some((var, _)) = line.split_once("=>") {
            out.push(var.trim().to_string());
        }
    }
    let arch = blocks_mod
        .split("pub enum Arch {")
        .nth(1)
        .expect("enum Arch in core/src/blocks/mod.rs");
    let arch = &arch[..arch.find("\n}").expect("end of enum Arch")];
    for line in arch.lines() {
        let line = line.trim();
        if let Some((var, _)) = line.split_once('(') {
            if !line.starts_with("//") && !line.starts_with("#") {
                out.push(var.trim().to_string());
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = e.file_name();
        let name = name.to_string_lossy();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_symlink() {
            continue;
        }
        if ft.is_dir() {
            if name == "target" || name.starts_with('.') {
                continue;
            }
            rust_files(&p, out);
        } else if name.ends_with(".rs") {
            out.push(p);
        }
    }
}

/// Whether `line` dispatches on `Arch::<v>` / `Block::<v>` for one of `variants`.
fn dispatches(line: &str, variants: &[String]) -> bool {
    let code = line.split("//").next().unwrap_or("");
    // In a match arm only the pattern (left of `=>`) dispatches: an arm of another enum that
    // constructs a model of one kind (`V4 => Arch::Rwkv4(…)`) does not.
    let code = match code.find("=>") {
        Some(i) if !code[..i].contains("matches!(") => &code[..i + 2],
        _ => code,
    };
    let names_kind = variants.iter().any(|v| {
        ["Arch::", "Block::"].iter().any(|p| {
            let pat = format!("{p}{v}");
            code.match_indices(&pat).any(|(i, _)| {
                // A whole identifier: not `Arch::Mamba1x`.
                !code[i + pat.len()..]
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_')
            })
        })
    });
    names_kind
        && (code.contains("=>")
            || code.contains("if let ")
            || code.contains("while let ")
            || code.contains("matches!(")
            || code.trim_start().starts_with('|')
            || (code.trim_start().starts_with("let ") && code.contains("else")))
}

#[test]
fn nothing_outside_the_blocks_folder_dispatches_on_a_block_kind() {
    let root = root();
    let blocks_mod =
        std::fs::read_to_string(root.join("core/src/blocks/mod.rs")).expect("blocks/mod.rs");
    let variants = kind_variants(&blocks_mod);
    assert!(
        variants.len() >= 7,
        "found only {variants:?} in the registry and Arch"
    );
    let mut files = Vec::new();
    for d in [
        "core",
        "std-host",
        "tools",
        "cuda-host",
        "data",
        "tests",
        "bench",
        "firmware",
        "fuzz",
    ] {
        rust_files(&root.join(d), &mut files);
    }
    assert!(files.len() > 50, "found only {} source files", files.len());
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for f in &files {
        let rel = f
            .strip_prefix(&root)
            .unwrap_or(f)
            .to_string_lossy()
            .replace('\\', "/");
        if KIND_FOLDERS.iter().any(|d| rel.starts_with(d))
            || rel == "tests/tests/block_kind_names.rs"
        {
            continue;
        }
        let text = std::fs::read_to_string(f).unwrap_or_default();
        let n = text.lines().filter(|l| dispatches(l, &variants)).count();
        if n > 0 {
            counts.insert(rel, n);
        }
    }
    let total: usize = counts.values().sum();
    println!(
        "block kinds {variants:?}: {total} dispatch sites outside {KIND_FOLDERS:?} in {} files",
        counts.len()
    );
    assert!(
        counts.is_empty(),
        "dispatch on a block kind outside the kind folders {KIND_FOLDERS:?}: {counts:?} — go \
         through tinyssm_core::Block / the kind's BlockKind (core), \
         tinyssm_cuda::blocks::BatchKind (batch crate) or the integer conversion's IntKind"
    );
    for d in KIND_FOLDERS {
        assert!(root.join(d).is_dir(), "{d} is gone: update KIND_FOLDERS");
    }
}

#[test]
fn the_dispatch_pattern_sees_arms_and_ignores_constructions() {
    let v = vec!["Mamba1".to_string(), "S4d".to_string()];
    assert!(dispatches("        Arch::S4d(c) => {", &v));
    assert!(dispatches("    if let Arch::Mamba1(c) = &cfg.arch {", &v));
    assert!(dispatches("    matches!(cfg.arch, Arch::S4d(_))", &v));
    assert!(dispatches("        | Arch::Mamba1(_)", &v));
    assert!(dispatches("    let Arch::S4d(c) = cfg.arch else {", &v));
    assert!(dispatches(
        "        (Block::S4d(c), Input::Vector(x)) => {}",
        &v
    ));
    assert!(!dispatches("        arch: Arch::S4d(S4dConfig {", &v));
    assert!(!dispatches(
        "        Version::V4 => Arch::S4d(S4dConfig {",
        &v
    ));
    assert!(dispatches(
        "        Arch::S4d(_) | Arch::Mamba1(_) => true,",
        &v
    ));
    assert!(!dispatches("    // Arch::S4d(c) => old code", &v));
    assert!(!dispatches("        Arch::S4dX(c) => {", &v));
}
