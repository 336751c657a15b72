//! The block-stack rule (ARCHITECTURE.md, "Block kinds"): outside `core/src/blocks/`,
//! nothing dispatches on a block kind — every per-kind decision goes through
//! `tinyssm_core::Block` and the kind's `BlockKind` implementation.
//!
//! This test finds the kinds from the code (the `registry!` in `core/src/blocks/mod.rs` and
//! the format-1.x `Arch` enum there), then counts, per source file of the workspace and the
//! firmware, the lines that dispatch on one: a match arm, `if let`, `let … else` or
//! `matches!` naming `Arch::<Kind>` or `Block::<Kind>`. Constructing a model of one kind
//! (an importer, a test fixture) names the kind without dispatching and is not counted.
//!
//! - In `core/` outside `core/src/blocks/` the count must be zero.
//! - Elsewhere the counts must equal [`ALLOWED`]: the migration lowers them kind by kind,
//!   and the table is lowered with it, so a new dispatch site fails here instead of
//!   eroding the rule silently. The test prints the current table when it fails.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Dispatch sites per file still to migrate (path relative to the repository root).
const ALLOWED: &[(&str, usize)] = &[
    ("cuda-host/src/cuda/step.rs", 4),
    ("cuda-host/src/cuda/step_int.rs", 4),
    ("cuda-host/src/verify.rs", 2),
    ("tests/tests/goldens.rs", 1),
    ("tools/src/eval/verify.rs", 1),
    ("tools/src/import/rwkv_cpp.rs", 1),
    ("tools/src/intq.rs", 2),
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
        if rel.starts_with("core/src/blocks/") || rel == "tests/tests/block_kind_names.rs" {
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
        "block kinds {variants:?}: {total} dispatch sites outside core/src/blocks/ in {} files",
        counts.len()
    );
    let in_core: Vec<_> = counts.keys().filter(|k| k.starts_with("core/")).collect();
    assert!(
        in_core.is_empty(),
        "core/ outside core/src/blocks/ dispatches on a block kind in {in_core:?}: go through \
         tinyssm_core::Block / BlockKind instead"
    );
    let allowed: BTreeMap<String, usize> =
        ALLOWED.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    if counts != allowed {
        let table: String = counts
            .iter()
            .map(|(k, v)| format!("    (\"{k}\", {v}),\n"))
            .collect();
        panic!(
            "dispatch sites on block kinds changed (more: go through tinyssm_core::Block; \
             fewer: lower ALLOWED). Current table:\nconst ALLOWED: &[(&str, usize)] = &[\n{table}];"
        );
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
    assert!(!dispatches("    // Arch::S4d(c) => old code", &v));
    assert!(!dispatches("        Arch::S4dX(c) => {", &v));
}
