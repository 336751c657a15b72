//! The CUDA backend: [`CudaBackend`] implements [`crate::Backend`] over a [`Device`] — a
//! GPU through cudarc ([`CudaDevice`]: driver, NVRTC and cuBLAS loaded at run time, so
//! every machine builds it), or the host emulator ([`emu::EmuDevice`]) that runs the same
//! kernel sources on the CPU for tests without a GPU.

mod backend;
pub mod device;
pub mod emu;
pub mod kernels;
pub mod params;
pub mod step;
pub mod step_int;

pub use backend::{
    scan_chunk, scan_lanes, ssd_chunk_smem, CudaBackend, DevBuf, ScanOp, SsdFwdKernel, Tf32Mode,
    SSD_CHUNK_SMEM_MAX,
};
pub use device::{cuda_unavailable_reason, CudaDevice, Device};

/// The CUDA backend on GPU 0, or why there is none.
pub fn open() -> Result<CudaBackend<CudaDevice>, crate::BackendError> {
    Ok(CudaBackend::new(CudaDevice::new(0)?))
}
