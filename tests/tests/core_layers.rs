//! The core's modules form layers with arrows pointing down only (ARCHITECTURE.md, "The
//! core's layers"). This test reads every module of `core/src` (tests excluded), collects
//! the `crate::<module>` paths it names (and the crate-root re-exports it uses), and fails
//! when a module names one of a higher layer, when the modules import each other in a
//! circle, or when a module is missing from [`LAYERS`] (a new module must be placed).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Every top-level module of the core and its layer; a module may use its own layer and
/// the layers below.
const LAYERS: &[(&str, u8)] = &[
    // 0: bits, numbers, names, errors
    ("fbits", 0),
    ("fixed", 0),
    ("dtype", 0),
    ("role", 0),
    ("version", 0),
    ("error", 0),
    ("probe", 0),
    ("simd", 0),
    ("stages", 0),
    ("list", 0),
    // 1: kernels and what they read
    ("kernels", 1),
    ("tensors", 1),
    ("layers", 1),
    ("int_step", 1),
    ("frontend", 1),
    ("frontend_int", 1),
    // 2: block kinds
    ("blocks", 2),
    // 3: the stack of blocks
    ("stack", 3),
    ("net", 3),
    // 4: configuration, layout and the format
    ("config", 4),
    ("format", 4),
    // 5: the parsed model
    ("model", 5),
    // 6: what is built on the model
    ("snapshot", 6),
];

/// Crate-root re-exports and the module that defines them.
const REEXPORTS: &[(&str, &str)] = &[
    ("Role", "role"),
    ("Compute", "dtype"),
    ("DType", "dtype"),
    ("Config", "config"),
    ("Model", "model"),
    ("Input", "stack"),
    ("Kernels", "kernels"),
    ("Weights", "kernels"),
    ("Arch", "blocks"),
    ("Block", "blocks"),
    ("LayerTable", "blocks"),
    ("StackConfig", "blocks"),
    ("LayerIndex", "role"),
    ("Tensors", "tensors"),
    ("StepError", "error"),
    ("SnapshotError", "error"),
    ("FormatError", "error"),
    ("TensorView", "model"),
    ("Sizes", "config"),
    ("TensorSpec", "config"),
];

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") && !p.ends_with("tests.rs") {
            out.push(p);
        }
    }
}

/// `crate::<name>` paths in the non-test code of `text`.
fn crate_refs(text: &str) -> BTreeSet<String> {
    let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or(text);
    let mut out = BTreeSet::new();
    for line in code.lines() {
        let line = line.trim_start();
        if line.starts_with("//") {
            continue;
        }
        for (i, _) in line.match_indices("crate::") {
            let rest = &line[i + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

#[test]
fn core_modules_point_down_only() {
    let src = tinyssm_tests::repo_root().join("core/src");
    let layer: BTreeMap<&str, u8> = LAYERS.iter().copied().collect();
    let alias: BTreeMap<&str, &str> = REEXPORTS.iter().copied().collect();
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let rel = f
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let module = rel
            .split('/')
            .next()
            .unwrap()
            .trim_end_matches(".rs")
            .to_string();
        if module == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(f).unwrap();
        let entry = graph.entry(module.clone()).or_default();
        for r in crate_refs(&text) {
            let target = alias.get(r.as_str()).map_or(r.clone(), |m| m.to_string());
            if target != module && layer.contains_key(target.as_str()) {
                entry.insert(target);
            } else if target != module
                && r.chars().next().is_some_and(|c| c.is_lowercase())
                && r != "include_model"
            {
                panic!("{rel} names crate::{r}: a module missing from LAYERS?");
            }
        }
    }
    for m in graph.keys() {
        assert!(
            layer.contains_key(m.as_str()),
            "core/src/{m}: place the module in LAYERS (tests/tests/core_layers.rs) and \
             ARCHITECTURE.md"
        );
    }
    let mut up = Vec::new();
    for (m, deps) in &graph {
        for d in deps {
            if layer[d.as_str()] > layer[m.as_str()] {
                up.push(format!(
                    "{m} (layer {}) -> {d} (layer {})",
                    layer[m.as_str()],
                    layer[d.as_str()]
                ));
            }
        }
    }
    assert!(up.is_empty(), "arrows pointing up: {up:#?}");
    // No circles (also within a layer): depth-first search for a back edge.
    fn visit<'g>(
        n: &'g str,
        g: &'g BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<&'g str, u8>,
        path: &mut Vec<&'g str>,
    ) {
        match state.get(n) {
            Some(1) => panic!("import circle: {} -> {n}", path.join(" -> ")),
            Some(2) => return,
            _ => {}
        }
        state.insert(n, 1);
        path.push(n);
        for d in g.get(n).into_iter().flatten() {
            visit(d, g, state, path);
        }
        path.pop();
        state.insert(n, 2);
    }
    let mut state = BTreeMap::new();
    for n in graph.keys() {
        visit(n, &graph, &mut state, &mut Vec::new());
    }
    println!(
        "{} core modules, {} arrows, all pointing down",
        graph.len(),
        graph.values().map(|d| d.len()).sum::<usize>()
    );
}

#[test]
fn the_reference_scan_sees_paths_and_skips_comments() {
    let refs = crate_refs(
        "use crate::kernels::{self, Kernels};\n// crate::model::Model in a comment\nlet x = crate::fixed::sat(1);\n#[cfg(test)]\nmod tests {\n use crate::model::Model;\n}\n",
    );
    assert_eq!(refs.into_iter().collect::<Vec<_>>(), ["fixed", "kernels"]);
}
