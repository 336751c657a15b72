//! The kernel emulator: the backend's CUDA kernel sources compiled by the host C++
//! compiler against `kernels/emu.hpp` (host threads for CUDA threads, barriers, shuffles
//! through shared buffers), loaded as a shared library. With it the whole CUDA backend —
//! kernels, launch geometry, params structs, dispatch — runs and is tested against the
//! CPU reference on machines with no GPU. SGEMM is a plain host loop here (cuBLAS on a
//! GPU). Slow by design; for tests only.

use std::alloc::Layout;
use std::ffi::{c_char, c_int, c_uint, c_void, CString};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use super::device::{Device, Gemm, Launch};
use super::kernels::{MODULES, PRELUDE};
use super::params;
use crate::backend::{BackendError, Result};

const EMU_HPP: &str = include_str!("../../kernels/emu.hpp");

/// Host memory standing in for device memory (16-byte aligned, zeroed on allocation).
pub struct EmuMem {
    ptr: *mut u8,
    len: usize,
}
// SAFETY: a unique heap allocation, accessed through the device's serialised calls.
unsafe impl Send for EmuMem {}
unsafe impl Sync for EmuMem {}

impl EmuMem {
    fn layout(len: usize) -> Layout {
        Layout::from_size_align(len.max(16), 16).expect("layout")
    }
}

impl Drop for EmuMem {
    fn drop(&mut self) {
        // SAFETY: allocated in alloc_zeroed with this layout.
        unsafe { std::alloc::dealloc(self.ptr, Self::layout(self.len)) }
    }
}

type LaunchFn = unsafe extern "C" fn(
    *const c_char,
    c_uint,
    c_uint,
    c_uint,
    c_uint,
    c_uint,
    *const c_void,
) -> c_int;
type SizeofFn = unsafe extern "C" fn(*const c_char) -> c_int;

/// The emulated device.
pub struct EmuDevice {
    _lib: libloading::Library,
    launch: LaunchFn,
    size_of: SizeofFn,
    lock: Mutex<()>,
}

/// The C++ translation unit: emulation header, prelude, every module, dispatch table.
pub fn emu_source() -> String {
    let mut s = String::new();
    s.push_str(EMU_HPP);
    s.push_str(PRELUDE);
    for m in MODULES {
        s.push_str(&format!("\n// ---- {}.cu\n", m.name));
        s.push_str(m.source);
    }
    s.push_str("\nextern \"C\" int tinyssm_emu_launch(const char* name, unsigned gx, unsigned gy, unsigned gz, unsigned block, unsigned smem, const void* p) {\n");
    s.push_str("    static std::mutex mu;\n    std::lock_guard<std::mutex> g(mu);\n    emu_dim3 grid = {gx, gy, gz};\n");
    for m in MODULES {
        for k in m.kernels {
            s.push_str(&format!(
                "    if (!strcmp(name, \"{k}\")) return emu_run(grid, block, smem, [&] {{ emu_call({k}, p); }});\n"
            ));
        }
    }
    s.push_str("    return 2;\n}\n");
    s.push_str("extern \"C\" int tinyssm_emu_sizeof(const char* name) {\n");
    for (n, _) in params::sizes() {
        s.push_str(&format!(
            "    if (!strcmp(name, \"{n}\")) return (int)sizeof({n});\n"
        ));
    }
    s.push_str("    return -1;\n}\n");
    s
}

fn unavailable(msg: String) -> BackendError {
    BackendError::Unavailable(format!("kernel emulator: {msg}"))
}

impl EmuDevice {
    /// Builds (or reuses, keyed by a hash of the source) the emulator library under `dir`
    /// with the host C++ compiler (`$CXX`, default `g++`; C++20), and loads it.
    pub fn build(dir: &Path) -> Result<Self> {
        let src = emu_source();
        let cxx = std::env::var("CXX").unwrap_or_else(|_| "g++".into());
        // No FMA contraction: kernels compute `a * b + c` with two roundings, as the CPU
        // reference and the core (and NVRTC with --fmad=false).
        let flags = [
            "-std=c++20",
            "-O1",
            "-ffp-contract=off",
            "-shared",
            "-fPIC",
            "-pthread",
            "-w",
        ];
        let mut h = Sha256::new();
        h.update(src.as_bytes());
        h.update(cxx.as_bytes());
        h.update(flags.join(" ").as_bytes());
        let key: String = h.finalize()[..12]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let lib: PathBuf = dir.join(format!("tinyssm-emu-{key}.so"));
        if !lib.exists() {
            std::fs::create_dir_all(dir)
                .map_err(|e| unavailable(format!("{}: {e}", dir.display())))?;
            let cpp = dir.join(format!("tinyssm-emu-{key}.cpp"));
            std::fs::write(&cpp, &src)
                .map_err(|e| unavailable(format!("{}: {e}", cpp.display())))?;
            let tmp = dir.join(format!("tinyssm-emu-{key}.so.tmp{}", std::process::id()));
            let out = Command::new(&cxx)
                .args(flags)
                .arg("-o")
                .arg(&tmp)
                .arg(&cpp)
                .output()
                .map_err(|e| unavailable(format!("cannot run {cxx}: {e}")))?;
            if !out.status.success() {
                return Err(unavailable(format!(
                    "{cxx} failed on {}:\n{}",
                    cpp.display(),
                    String::from_utf8_lossy(&out.stderr)
                )));
            }
            std::fs::rename(&tmp, &lib).map_err(|e| unavailable(format!("{e}")))?;
        }
        // SAFETY: our own library, built just now from the emulator source.
        unsafe {
            let l = libloading::Library::new(&lib).map_err(|e| unavailable(format!("{e}")))?;
            let launch: LaunchFn = *l
                .get::<LaunchFn>(b"tinyssm_emu_launch\0")
                .map_err(|e| unavailable(format!("{e}")))?;
            let size_of: SizeofFn = *l
                .get::<SizeofFn>(b"tinyssm_emu_sizeof\0")
                .map_err(|e| unavailable(format!("{e}")))?;
            Ok(Self {
                _lib: l,
                launch,
                size_of,
                lock: Mutex::new(()),
            })
        }
    }

    /// `sizeof` of a params struct as the C++ compiler lays it out.
    pub fn c_sizeof(&self, name: &str) -> i32 {
        let c = CString::new(name).expect("name");
        // SAFETY: a NUL-terminated string; the function only compares it.
        unsafe { (self.size_of)(c.as_ptr()) }
    }
}

impl Device for EmuDevice {
    type Mem = EmuMem;

    fn describe(&self) -> String {
        "emulated CUDA device (host threads)".into()
    }
    fn alloc_zeroed(&self, bytes: usize) -> Result<EmuMem> {
        // SAFETY: non-zero size layout.
        let ptr = unsafe { std::alloc::alloc_zeroed(EmuMem::layout(bytes)) };
        if ptr.is_null() {
            return Err(unavailable(format!("out of memory ({bytes} bytes)")));
        }
        Ok(EmuMem { ptr, len: bytes })
    }
    fn write(&self, dst: &mut EmuMem, src: &[u8]) -> Result<()> {
        assert!(src.len() <= dst.len, "write past the buffer");
        // SAFETY: bounds checked above; distinct allocations.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst.ptr, src.len()) };
        Ok(())
    }
    fn read(&self, src: &EmuMem, dst: &mut [u8]) -> Result<()> {
        assert!(dst.len() <= src.len, "read past the buffer");
        // SAFETY: as write.
        unsafe { std::ptr::copy_nonoverlapping(src.ptr, dst.as_mut_ptr(), dst.len()) };
        Ok(())
    }
    fn zero(&self, dst: &mut EmuMem) -> Result<()> {
        // SAFETY: the whole allocation.
        unsafe { std::ptr::write_bytes(dst.ptr, 0, dst.len) };
        Ok(())
    }
    fn addr(&self, m: &EmuMem) -> u64 {
        m.ptr as u64
    }
    fn launch(&self, name: &str, l: Launch, params: &[u8]) -> Result<()> {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let c = CString::new(name).expect("kernel name");
        // SAFETY: params holds the kernel's params struct (layout-checked), whose addresses
        // are live allocations of this device sized for the launch.
        let r = unsafe {
            (self.launch)(
                c.as_ptr(),
                l.grid.0,
                l.grid.1,
                l.grid.2,
                l.block,
                l.smem,
                params.as_ptr() as *const c_void,
            )
        };
        match r {
            0 => Ok(()),
            2 => Err(unavailable(format!("no kernel named {name}"))),
            _ => Err(unavailable(format!("bad launch of {name}: {l:?}"))),
        }
    }
    fn sgemm(&self, g: Gemm) -> Result<()> {
        // Column-major, as cuBLAS: element (i, j) of X with leading dimension ld is
        // X[i + j·ld]; op(A)(i, l) = A(l, i) when transposed.
        let (a, b, c) = (g.a as *const f32, g.b as *const f32, g.c as *mut f32);
        for j in 0..g.n {
            for i in 0..g.m {
                let mut acc = 0.0f32;
                for l in 0..g.k {
                    let av = if g.trans_a {
                        l + i * g.lda
                    } else {
                        i + l * g.lda
                    };
                    let bv = if g.trans_b {
                        j + l * g.ldb
                    } else {
                        l + j * g.ldb
                    };
                    // SAFETY: indices within the operands the op sized.
                    acc += unsafe { *a.add(av) * *b.add(bv) };
                }
                // SAFETY: as above.
                unsafe {
                    let o = c.add(i + j * g.ldc);
                    *o = if g.beta == 0.0 {
                        g.alpha * acc
                    } else {
                        g.alpha * acc + g.beta * *o
                    };
                }
            }
        }
        Ok(())
    }
    fn sync(&self) -> Result<()> {
        Ok(())
    }
    fn copy(&self, src: &EmuMem, dst: &mut EmuMem, bytes: usize) -> Result<()> {
        assert!(bytes <= src.len && bytes <= dst.len, "copy past a buffer");
        // SAFETY: bounds checked; distinct allocations.
        unsafe { std::ptr::copy_nonoverlapping(src.ptr, dst.ptr, bytes) };
        Ok(())
    }
    fn time_ms(&self, f: &mut dyn FnMut() -> Result<()>) -> Result<f32> {
        let t = std::time::Instant::now();
        f()?;
        Ok(t.elapsed().as_secs_f32() * 1e3)
    }
}
