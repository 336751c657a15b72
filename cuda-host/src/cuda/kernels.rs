//! The kernel sources (`cuda-host/kernels/*.cu`, embedded), the list of kernels each
//! module defines, and their NVRTC compilation with an on-disk cache.

use std::path::PathBuf;

use sha2::{Digest, Sha256};

use crate::backend::BackendError;

/// Shared by every module: parameter structs and device helpers.
pub const PRELUDE: &str = include_str!("../../kernels/prelude.cuh");

/// One `.cu` file and the kernels it defines.
#[derive(Debug, Clone, Copy)]
pub struct Module {
    pub name: &'static str,
    pub source: &'static str,
    pub kernels: &'static [&'static str],
}

/// Every kernel module of the backend.
pub const MODULES: &[Module] = &[
    Module {
        name: "step",
        source: include_str!("../../kernels/step.cu"),
        kernels: &["step_s4d", "step_mamba", "step_math_probe"],
    },
    Module {
        name: "step_int",
        source: include_str!("../../kernels/step_int.cu"),
        kernels: &["step_int_s4d", "step_int_mamba", "step_int_probe"],
    },
    Module {
        name: "elementwise",
        source: include_str!("../../kernels/elementwise.cu"),
        kernels: &[
            "ew_fill",
            "ew_add_assign",
            "ew_scale",
            "ew_gelu_fwd",
            "ew_gelu_bwd",
            "ew_silu_fwd",
            "ew_silu_bwd",
            "glu_fwd",
            "glu_bwd",
            "adamw",
            "bias_rows",
            "col_partial",
            "col_finish",
            "reduce_f64",
            "gather_rows",
            "gather_rows_bwd",
            "softmax_xent",
            "sigmoid_bce",
        ],
    },
    Module {
        name: "norm",
        source: include_str!("../../kernels/norm.cu"),
        kernels: &[
            "layer_norm_fwd",
            "layer_norm_bwd",
            "layer_norm_param_partial",
            "rms_norm_fwd",
            "rms_norm_bwd",
            "rms_norm_param_partial",
            "norm_param_finish",
        ],
    },
    Module {
        name: "conv",
        source: include_str!("../../kernels/conv.cu"),
        kernels: &["conv1d_fwd", "conv1d_bwd_dx", "conv1d_dw_partial"],
    },
    Module {
        name: "s4d",
        source: include_str!("../../kernels/s4d.cu"),
        kernels: &[
            "s4d_fwd_s1",
            "s4d_fwd_s2",
            "s4d_fwd_s4",
            "s4d_bwd_s1",
            "s4d_bwd_s2",
            "s4d_bwd_s4",
        ],
    },
    Module {
        name: "selscan",
        source: include_str!("../../kernels/selscan.cu"),
        kernels: &[
            "selscan_fwd_s1",
            "selscan_fwd_s2",
            "selscan_fwd_s4",
            "selscan_state_at_s1",
            "selscan_state_at_s2",
            "selscan_state_at_s4",
            "selscan_bwd_s1",
            "selscan_bwd_s2",
            "selscan_bwd_s4",
        ],
    },
    Module {
        name: "ssd",
        source: include_str!("../../kernels/ssd.cu"),
        kernels: &[
            "ssd_fwd_s1",
            "ssd_fwd_s2",
            "ssd_fwd_s4",
            "ssd_state_at_s1",
            "ssd_state_at_s2",
            "ssd_state_at_s4",
            "ssd_bwd_s1",
            "ssd_bwd_s2",
            "ssd_bwd_s4",
        ],
    },
    Module {
        name: "ssd_chunk",
        source: include_str!("../../kernels/ssd_chunk.cu"),
        kernels: &["ssd_chunk_fwd"],
    },
    Module {
        name: "mma",
        source: include_str!("../../kernels/mma.cu"),
        kernels: &["tf32_mma_gemm"],
    },
];

/// The full source NVRTC compiles for a module: the prelude, then the module.
pub fn full_source(m: &Module) -> String {
    format!("{PRELUDE}\n#line 1 \"{}.cu\"\n{}", m.name, m.source)
}

/// NVRTC options for `arch` (e.g. `sm_90`): IEEE division and square root, no FMA
/// contraction (the CPU reference computes `a·b + c` with two roundings), no flush to zero.
pub fn nvrtc_options(arch: &str) -> Vec<String> {
    vec![
        format!("--gpu-architecture={arch}"),
        "--std=c++17".into(),
        "--fmad=false".into(),
        "--prec-div=true".into(),
        "--prec-sqrt=true".into(),
        "--ftz=false".into(),
    ]
}

/// Whether the NVRTC library can be loaded on this machine (checked before any call into
/// it: the bindings panic when the library is missing).
pub fn nvrtc_present() -> bool {
    // SAFETY: only tries to open the library.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

/// The NVRTC version, `(major, minor)`.
pub fn nvrtc_version() -> Result<(i32, i32), BackendError> {
    if !nvrtc_present() {
        return Err(nvrtc_missing());
    }
    let (mut major, mut minor) = (0, 0);
    // SAFETY: two out-pointers to live integers.
    let r = unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) };
    if r != cudarc::nvrtc::sys::nvrtcResult::NVRTC_SUCCESS {
        return Err(BackendError::Unavailable(format!(
            "nvrtcVersion failed: {r:?}"
        )));
    }
    Ok((major, minor))
}

fn nvrtc_missing() -> BackendError {
    BackendError::Unavailable(
        "NVRTC (libnvrtc.so) cannot be loaded: install the CUDA 13.0 NVRTC library (e.g. pip \
         package nvidia-cuda-nvrtc==13.0.*) and put its lib directory on LD_LIBRARY_PATH"
            .into(),
    )
}

/// Where compiled PTX is cached: `$TINYSSM_KERNEL_CACHE`, else `$XDG_CACHE_HOME/tinyssm/
/// kernels`, else `~/.cache/tinyssm/kernels`; `None` disables the cache.
pub fn cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("TINYSSM_KERNEL_CACHE") {
        return (!d.is_empty()).then(|| PathBuf::from(d));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("tinyssm").join("kernels"))
}

/// The cache key of a compilation: source, options and NVRTC version.
pub fn cache_key(source: &str, options: &[String], version: (i32, i32)) -> String {
    let mut h = Sha256::new();
    h.update(source.as_bytes());
    for o in options {
        h.update([0u8]);
        h.update(o.as_bytes());
    }
    h.update(format!("\0nvrtc {}.{}", version.0, version.1).as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// A module compiled to PTX, and whether it came from the cache.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub ptx: String,
    pub cached: bool,
}

/// Compiles one module for `arch` through NVRTC (or takes it from the cache). A failed
/// compilation is an error carrying NVRTC's log.
pub fn compile_module(m: &Module, arch: &str) -> Result<Compiled, BackendError> {
    compile_module_in(m, arch, cache_dir().as_deref())
}

/// [`compile_module`] with an explicit cache directory (`None`: no cache).
pub fn compile_module_in(
    m: &Module,
    arch: &str,
    cache: Option<&std::path::Path>,
) -> Result<Compiled, BackendError> {
    let version = nvrtc_version()?;
    let src = full_source(m);
    let options = nvrtc_options(arch);
    let key = cache_key(&src, &options, version);
    let path = cache.map(|d| d.join(format!("{}-{arch}-{key}.ptx", m.name)));
    if let Some(p) = &path {
        if let Ok(ptx) = std::fs::read_to_string(p) {
            if ptx.contains(".entry") {
                return Ok(Compiled { ptx, cached: true });
            }
        }
    }
    let opts = cudarc::nvrtc::CompileOptions {
        options: options.clone(),
        name: Some(format!("{}.cu", m.name)),
        ..Default::default()
    };
    let ptx = cudarc::nvrtc::compile_ptx_with_opts(&src, opts).map_err(|e| match e {
        cudarc::nvrtc::CompileError::CompileError { nvrtc, log, .. } => {
            BackendError::Unavailable(format!(
                "NVRTC failed to compile kernel module {} for {arch} ({nvrtc:?}):\n{}",
                m.name,
                log.to_string_lossy()
            ))
        }
        other => {
            BackendError::Unavailable(format!("NVRTC failed on kernel module {}: {other}", m.name))
        }
    })?;
    let ptx = ptx.to_src();
    if let Some(p) = &path {
        // Written to a temporary file and renamed: a concurrent reader never sees half.
        if let Some(dir) = p.parent() {
            if std::fs::create_dir_all(dir).is_ok() {
                let tmp = p.with_extension(format!("tmp{}", std::process::id()));
                if std::fs::write(&tmp, &ptx).is_ok() {
                    let _ = std::fs::rename(&tmp, p);
                }
            }
        }
    }
    Ok(Compiled { ptx, cached: false })
}

/// The names of the kernel entry points a PTX module defines.
pub fn ptx_entries(ptx: &str) -> Vec<String> {
    ptx.lines()
        .filter_map(|l| {
            let l = l.trim();
            let rest = l
                .strip_prefix(".visible .entry ")
                .or_else(|| l.strip_prefix(".entry "))?;
            Some(rest.split('(').next().unwrap_or(rest).trim().to_string())
        })
        .collect()
}
