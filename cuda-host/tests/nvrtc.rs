//! Compiles every kernel module through NVRTC for sm_90 — no GPU needed, only the NVRTC
//! library. Where the test command runs (TINYSSM_REQUIRE_NVRTC=1, or CI set) a missing
//! NVRTC fails the test; elsewhere it says it skipped.

use tinyssm_cuda::cuda::kernels::{self, Module, MODULES};

fn nvrtc_required() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "0" && v != "false")
        || std::env::var("TINYSSM_REQUIRE_NVRTC").is_ok_and(|v| v == "1")
}

/// Whether NVRTC is there; panics where it is required and missing.
fn have_nvrtc() -> bool {
    if kernels::nvrtc_present() {
        return true;
    }
    assert!(
        !nvrtc_required(),
        "NVRTC cannot be loaded but this run requires it (CI / TINYSSM_REQUIRE_NVRTC=1): \
         scripts/test.sh installs nvidia-cuda-nvrtc==13.0.* into target/nvrtc-venv and puts \
         its lib directory on LD_LIBRARY_PATH"
    );
    println!("skipped: NVRTC not found (run through scripts/test.sh, which installs it)");
    false
}

#[test]
fn nvrtc_compiles_every_kernel_for_sm_90() {
    if !have_nvrtc() {
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    let (major, minor) = kernels::nvrtc_version().unwrap();
    assert_eq!(
        major, 13,
        "NVRTC {major}.{minor}: the bindings are pinned to CUDA 13.0"
    );
    let mut count = 0;
    for m in MODULES {
        let c = kernels::compile_module_in(m, "sm_90", Some(cache.path()))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            !c.cached,
            "{}: a fresh cache directory cannot hold it",
            m.name
        );
        let entries = kernels::ptx_entries(&c.ptx);
        for k in m.kernels {
            assert!(
                entries.iter().any(|e| e == k),
                "{}: kernel {k} missing from the PTX (entries: {entries:?})",
                m.name
            );
        }
        assert_eq!(
            entries.len(),
            m.kernels.len(),
            "{}: the PTX defines kernels the list does not name: {entries:?}",
            m.name
        );
        assert!(
            c.ptx.contains(".target sm_90"),
            "{}: not compiled for sm_90",
            m.name
        );
        count += entries.len();
        // Compiling again is a cache hit with the same PTX.
        let again = kernels::compile_module_in(m, "sm_90", Some(cache.path())).unwrap();
        assert!(again.cached, "{}: second compile missed the cache", m.name);
        assert_eq!(again.ptx, c.ptx);
    }
    let files = std::fs::read_dir(cache.path()).unwrap().count();
    assert_eq!(files, MODULES.len(), "one cached PTX per module");
    println!("nvrtc: compiled {count} kernels for sm_90 (NVRTC {major}.{minor})");
}

#[test]
fn nvrtc_errors_carry_the_compiler_log() {
    if !have_nvrtc() {
        return;
    }
    const BAD: Module = Module {
        name: "broken",
        source: "KERNEL broken(const MapParams p) { p.y[0] = undefined_name; }\n",
        kernels: &["broken"],
    };
    let e = kernels::compile_module_in(&BAD, "sm_90", None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("broken"), "{e}");
    assert!(e.contains("undefined_name"), "the log names the error: {e}");
}

#[test]
fn nvrtc_ssd_chunk_runs_on_tensor_cores() {
    if !have_nvrtc() {
        return;
    }
    for name in ["ssd_chunk", "mma"] {
        let m = MODULES.iter().find(|m| m.name == name).expect("module");
        let ptx = kernels::compile_module_in(m, "sm_90", None)
            .unwrap_or_else(|e| panic!("{e}"))
            .ptx;
        let mut want = vec![
            "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32",
            "cvt.rna.tf32.f32",
        ];
        if name == "ssd_chunk" {
            want.push("%dynamic_smem_size"); // the kernel checks its shared memory
        }
        for insn in want {
            assert!(ptx.contains(insn), "{name}: no {insn} in the PTX");
        }
        println!(
            "{name}: {} mma.sync in the PTX",
            ptx.matches("mma.sync.aligned").count()
        );
    }
}

/// The integer step kernels (`step_int.cu`) execute no floating-point instruction: their
/// PTX names no f16/bf16/f32/f64 type at all (no float register, operation or conversion).
#[test]
fn nvrtc_step_int_has_no_floating_point() {
    if !have_nvrtc() {
        return;
    }
    let m = MODULES
        .iter()
        .find(|m| m.name == "step_int")
        .expect("module");
    let ptx = kernels::compile_module_in(m, "sm_90", None)
        .unwrap_or_else(|e| panic!("{e}"))
        .ptx;
    let mut lines = 0;
    for l in ptx.lines() {
        let code = l.split("//").next().unwrap_or("");
        for ty in [".f16", ".bf16", ".f32", ".f64"] {
            assert!(
                !code.contains(ty),
                "step_int: a floating-point type in the PTX: {l}"
            );
        }
        lines += 1;
    }
    assert!(ptx.contains(".entry step_int_s4d"), "no step_int_s4d entry");
    println!("step_int: {lines} PTX lines, no .f16/.bf16/.f32/.f64");
    // The check can fail: the float step kernels' PTX is full of .f32.
    let f = MODULES.iter().find(|m| m.name == "step").expect("module");
    let fptx = kernels::compile_module_in(f, "sm_90", None)
        .unwrap_or_else(|e| panic!("{e}"))
        .ptx;
    assert!(fptx.contains(".f32"), "the float step PTX has no .f32");
}
