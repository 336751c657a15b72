//! What the CUDA backend needs from a device: memory, kernel launches by name with a
//! params struct, and a column-major SGEMM. [`CudaDevice`] is a real GPU through cudarc
//! (driver + NVRTC + cuBLAS, all loaded at run time); the emulator
//! ([`super::emu::EmuDevice`]) runs the same kernel sources on the host CPU.

use std::collections::HashMap;
use std::sync::Arc;

use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, DevicePtr, DeviceRepr, LaunchConfig,
    PushKernelArg,
};

use super::kernels::{self, MODULES};
use crate::backend::{BackendError, Result};

/// One SGEMM in cuBLAS's column-major convention: `C = α op(A) op(B) + β C`, with `op(A)`
/// `m × k`, `op(B)` `k × n`, `C` `m × n`; `a`, `b`, `c` device addresses.
#[derive(Debug, Clone, Copy)]
pub struct Gemm {
    pub trans_a: bool,
    pub trans_b: bool,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub alpha: f32,
    pub a: u64,
    pub lda: usize,
    pub b: u64,
    pub ldb: usize,
    pub beta: f32,
    pub c: u64,
    pub ldc: usize,
}

/// A launch: grid, block size (1-D blocks) and dynamic shared memory bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Launch {
    pub grid: (u32, u32, u32),
    pub block: u32,
    pub smem: u32,
}

pub trait Device: Send + Sync + 'static {
    /// Device memory (bytes).
    type Mem: Send + Sync;
    fn describe(&self) -> String;
    fn alloc_zeroed(&self, bytes: usize) -> Result<Self::Mem>;
    fn write(&self, dst: &mut Self::Mem, src: &[u8]) -> Result<()>;
    /// Copies device memory to the host (waits for the work before it).
    fn read(&self, src: &Self::Mem, dst: &mut [u8]) -> Result<()>;
    fn zero(&self, dst: &mut Self::Mem) -> Result<()>;
    /// The device address of `m` (for params structs).
    fn addr(&self, m: &Self::Mem) -> u64;
    /// Launches kernel `name` with the bytes of its params struct.
    fn launch(&self, name: &str, l: Launch, params: &[u8]) -> Result<()>;
    fn sgemm(&self, g: Gemm) -> Result<()>;
    /// Waits for all queued work and reports asynchronous errors.
    fn sync(&self) -> Result<()>;
    /// Device-to-device copy of `src` into the start of `dst`.
    fn copy(&self, src: &Self::Mem, dst: &mut Self::Mem, bytes: usize) -> Result<()>;
    /// Milliseconds the device spends on the work `f` queues (device events around it on a
    /// GPU, the wall clock on the emulator).
    fn time_ms(&self, f: &mut dyn FnMut() -> Result<()>) -> Result<f32>;
}

/// Why no CUDA device can be used here, or `None` if one can: checks every library
/// before touching it (the bindings panic when a library is missing), then the devices.
pub fn cuda_unavailable_reason() -> Option<String> {
    // SAFETY: only try to open the libraries.
    let (drv, rtc, blas) = unsafe {
        (
            cudarc::driver::sys::is_culib_present(),
            cudarc::nvrtc::sys::is_culib_present(),
            cudarc::cublas::sys::is_culib_present(),
        )
    };
    if !drv {
        return Some(
            "no CUDA device: the CUDA driver library (libcuda.so) is not installed".into(),
        );
    }
    if !rtc {
        return Some(
            "no CUDA device usable: NVRTC (libnvrtc.so.13) is not on the loader path".into(),
        );
    }
    if !blas {
        return Some(
            "no CUDA device usable: cuBLAS (libcublas.so.13) is not on the loader path".into(),
        );
    }
    match std::panic::catch_unwind(CudaContext::device_count) {
        Ok(Ok(n)) if n > 0 => None,
        Ok(Ok(_)) => Some("no CUDA device: the driver reports 0 devices".into()),
        Ok(Err(e)) => Some(format!("no CUDA device: {e:?}")),
        Err(_) => Some("no CUDA device: the CUDA driver failed to load".into()),
    }
}

/// Kernel params as one by-value argument: the driver copies as many bytes as the kernel's
/// parameter needs from here.
#[repr(C, align(16))]
#[derive(Clone, Copy)]
struct RawParams([u8; 512]);
// SAFETY: plain bytes.
unsafe impl DeviceRepr for RawParams {}

/// A CUDA GPU: one context, one stream, every kernel module compiled for the device's own
/// architecture and loaded, a cuBLAS handle on the stream.
pub struct CudaDevice {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    funcs: HashMap<&'static str, CudaFunction>,
    blas: cudarc::cublas::CudaBlas,
    describe: String,
}

fn drv(e: cudarc::driver::DriverError) -> BackendError {
    BackendError::Unavailable(format!("CUDA driver: {e:?}"))
}

impl CudaDevice {
    /// Opens device `ordinal` and compiles (or loads from the cache) every kernel.
    pub fn new(ordinal: usize) -> Result<Self> {
        if let Some(why) = cuda_unavailable_reason() {
            return Err(BackendError::Unavailable(why));
        }
        let ctx = CudaContext::new(ordinal).map_err(drv)?;
        // One stream: no cross-stream event tracking needed.
        // SAFETY: every buffer of this backend is used on this context's one stream.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.default_stream();
        let (major, minor) = ctx.compute_capability().map_err(drv)?;
        let arch = format!("sm_{major}{minor}");
        let mut funcs = HashMap::new();
        for m in MODULES {
            let ptx = kernels::compile_module(m, &arch)?;
            let module = ctx
                .load_module(cudarc::nvrtc::Ptx::from_src(ptx.ptx))
                .map_err(drv)?;
            for &k in m.kernels {
                funcs.insert(k, module.load_function(k).map_err(drv)?);
            }
        }
        let blas = cudarc::cublas::CudaBlas::new(stream.clone())
            .map_err(|e| BackendError::Unavailable(format!("cuBLAS: {e:?}")))?;
        let name = ctx.name().map_err(drv)?;
        Ok(Self {
            ctx,
            stream,
            funcs,
            blas,
            describe: format!("cuda:{ordinal} ({name}, {arch})"),
        })
    }

    pub fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }
}

impl Device for CudaDevice {
    type Mem = CudaSlice<u8>;

    fn describe(&self) -> String {
        self.describe.clone()
    }
    fn alloc_zeroed(&self, bytes: usize) -> Result<CudaSlice<u8>> {
        self.stream.alloc_zeros::<u8>(bytes.max(4)).map_err(drv)
    }
    fn write(&self, dst: &mut CudaSlice<u8>, src: &[u8]) -> Result<()> {
        if src.is_empty() {
            return Ok(());
        }
        let mut view = dst.slice_mut(..src.len());
        self.stream.memcpy_htod(src, &mut view).map_err(drv)
    }
    fn read(&self, src: &CudaSlice<u8>, dst: &mut [u8]) -> Result<()> {
        if dst.is_empty() {
            return Ok(());
        }
        let view = src.slice(..dst.len());
        self.stream.memcpy_dtoh(&view, dst).map_err(drv)?;
        self.stream.synchronize().map_err(drv)
    }
    fn zero(&self, dst: &mut CudaSlice<u8>) -> Result<()> {
        self.stream.memset_zeros(dst).map_err(drv)
    }
    fn addr(&self, m: &CudaSlice<u8>) -> u64 {
        let (p, _sync) = m.device_ptr(&self.stream);
        p
    }
    fn launch(&self, name: &str, l: Launch, params: &[u8]) -> Result<()> {
        let f = self
            .funcs
            .get(name)
            .ok_or_else(|| BackendError::Unavailable(format!("no kernel named {name}")))?;
        let mut raw = RawParams([0; 512]);
        raw.0[..params.len()].copy_from_slice(params);
        if l.smem > 48 * 1024 {
            f.set_attribute(
                cudarc::driver::sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                l.smem as i32,
            )
            .map_err(drv)?;
        }
        let cfg = LaunchConfig {
            grid_dim: l.grid,
            block_dim: (l.block, 1, 1),
            shared_mem_bytes: l.smem,
        };
        let mut b = self.stream.launch_builder(f);
        b.arg(&raw);
        // SAFETY: the params struct matches the kernel's (layout-checked); every address
        // in it is a live buffer of this backend sized for the launch (checked by the op).
        unsafe { b.launch(cfg) }
            .map_err(|e| BackendError::Unavailable(format!("launch of {name} failed: {e:?}")))?;
        Ok(())
    }
    fn sgemm(&self, g: Gemm) -> Result<()> {
        use cudarc::cublas::sys::cublasOperation_t::{CUBLAS_OP_N, CUBLAS_OP_T};
        let op = |t: bool| if t { CUBLAS_OP_T } else { CUBLAS_OP_N };
        let i = |v: usize| {
            i32::try_from(v)
                .map_err(|_| BackendError::Unavailable(format!("gemm size {v} too large")))
        };
        // SAFETY: the addresses are live device buffers sized for the product (checked by
        // the op that builds the Gemm).
        unsafe {
            cudarc::cublas::result::sgemm(
                *self.blas.handle(),
                op(g.trans_a),
                op(g.trans_b),
                i(g.m)?,
                i(g.n)?,
                i(g.k)?,
                &g.alpha,
                g.a as *const f32,
                i(g.lda.max(1))?,
                g.b as *const f32,
                i(g.ldb.max(1))?,
                &g.beta,
                g.c as *mut f32,
                i(g.ldc.max(1))?,
            )
        }
        .map_err(|e| BackendError::Unavailable(format!("cuBLAS sgemm: {e:?}")))
    }
    fn sync(&self) -> Result<()> {
        self.stream.synchronize().map_err(drv)
    }
    fn copy(&self, src: &CudaSlice<u8>, dst: &mut CudaSlice<u8>, bytes: usize) -> Result<()> {
        let s = src.slice(..bytes);
        let mut d = dst.slice_mut(..bytes);
        self.stream.memcpy_dtod(&s, &mut d).map_err(drv)
    }
    fn time_ms(&self, f: &mut dyn FnMut() -> Result<()>) -> Result<f32> {
        let flags = Some(cudarc::driver::sys::CUevent_flags::CU_EVENT_DEFAULT);
        let start = self.ctx.new_event(flags).map_err(drv)?;
        let end = self.ctx.new_event(flags).map_err(drv)?;
        start.record(&self.stream).map_err(drv)?;
        f()?;
        end.record(&self.stream).map_err(drv)?;
        end.synchronize().map_err(drv)?;
        start.elapsed_ms(&end).map_err(drv)
    }
}
