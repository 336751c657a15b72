//! [`CudaBackend`]: the [`Backend`] ops on a [`Device`] — NVRTC kernels for everything
//! but the matrix products (cuBLAS SGEMM in FP32, no TF32), with the same semantics as
//! the CPU reference (the chunked SSD scan forward runs its own products on tensor cores,
//! in 3xTF32). Scan ops whose shape no kernel covers ([`CudaBackend::supports`])
//! fall back to the CPU reference through host copies, so every shape runs.

use super::device::{Device, Gemm, Launch};
use super::params::*;
use crate::backend::{
    check_len, contract, state_rows, AdamW, Backend, BackendError, Result, ScanDims, SelScanDims,
    SelScanGrads, SelScanIn, SsdDims, SsdGrads, SsdIn,
};
use crate::cpu::Cpu;

/// A device buffer of `len` f32 values.
pub struct DevBuf<D: Device> {
    mem: D::Mem,
    len: usize,
}

/// The CUDA backend over a device (a GPU, or the emulator in tests).
pub struct CudaBackend<D: Device> {
    dev: D,
}

/// Threads per block of element-wise kernels.
const EW_BLOCK: u32 = 256;
/// Rows per block of the deterministic column partial sums.
const RPB: usize = 256;

/// Which scans a kernel covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanOp {
    S4d,
    Selective,
    Ssd,
}

/// `(lanes per channel, state slots per lane)` of the scan kernels for a state of `n`.
pub fn scan_lanes(n: usize) -> Option<(usize, usize)> {
    if n == 0 || n > 128 {
        return None;
    }
    let g = n.next_power_of_two().min(32);
    let s = n.div_ceil(g);
    Some((g, if s == 3 { 4 } else { s }))
}

/// Checkpoint spacing of the selective/SSD scans for a state of `n` (SUB·NSUB of the
/// backward kernel chosen for it).
pub fn scan_chunk(n: usize) -> usize {
    match scan_lanes(n) {
        Some((_, 4)) => 8 * 4,
        _ => 16 * 4,
    }
}

const SCAN_BLOCK: usize = 128;

fn grid1(n: usize) -> Launch {
    let blocks = n.div_ceil(EW_BLOCK as usize).clamp(1, 4096) as u32;
    Launch {
        grid: (blocks, 1, 1),
        block: EW_BLOCK,
        smem: 0,
    }
}

fn i(v: usize) -> i64 {
    v as i64
}

impl<D: Device> CudaBackend<D> {
    pub fn new(dev: D) -> Self {
        Self { dev }
    }
    pub fn device(&self) -> &D {
        &self.dev
    }
    /// Device-to-device copy of a whole buffer (benchmarks: the copy-bandwidth ceiling).
    pub fn copy(&self, src: &DevBuf<D>, dst: &mut DevBuf<D>) -> Result<()> {
        check_len("copy", "dst", dst.len, src.len)?;
        self.dev.copy(&src.mem, &mut dst.mem, src.len * 4)
    }

    /// Whether a kernel covers this scan shape (else the op runs on the CPU reference).
    pub fn supports(&self, op: ScanOp, n: usize, batch: usize) -> bool {
        let _ = op;
        scan_lanes(n).is_some() && batch <= 65_535
    }

    fn a(&self, b: &DevBuf<D>) -> u64 {
        self.dev.addr(&b.mem)
    }

    fn run<P: KernelParams>(&self, name: &str, l: Launch, p: &P) -> Result<()> {
        self.dev.launch(name, l, p.bytes())
    }

    fn map(
        &self,
        name: &str,
        x: Option<&DevBuf<D>>,
        dy: Option<&DevBuf<D>>,
        y: &mut DevBuf<D>,
        s: f32,
    ) -> Result<()> {
        if y.len == 0 {
            return Ok(());
        }
        let p = MapParams {
            x: x.map_or(0, |b| self.a(b)),
            dy: dy.map_or(0, |b| self.a(b)),
            y: self.a(y),
            n: i(y.len),
            s,
            pad: 0,
        };
        self.run(name, grid1(y.len), &p)
    }

    fn alloc_bytes(&self, bytes: usize) -> Result<D::Mem> {
        self.dev.alloc_zeroed(bytes)
    }

    /// Column partial sums of `x` (`rows × cols`, row stride `rs`) added into `y`.
    fn col_sum_into(
        &self,
        x: &DevBuf<D>,
        rows: usize,
        cols: usize,
        y: &mut DevBuf<D>,
    ) -> Result<()> {
        if rows == 0 || cols == 0 {
            return Ok(());
        }
        let nblk = rows.div_ceil(RPB);
        let partial = self.alloc_bytes(nblk * cols * 4)?;
        let mut p = ColParams {
            x: self.a(x),
            b: 0,
            y: self.a(y),
            partial: self.dev.addr(&partial),
            rows: i(rows),
            cols: i(cols),
            rs: i(cols),
            rpb: i(RPB),
            nblk: i(nblk),
        };
        self.run(
            "col_partial",
            Launch {
                grid: (cols.div_ceil(128) as u32, nblk as u32, 1),
                block: 128,
                smem: 0,
            },
            &p,
        )?;
        p.x = 0;
        self.run("col_finish", grid1(cols), &p)?;
        self.dev.sync()
    }

    fn reduce(&self, x: &DevBuf<D>, mode: i32) -> Result<f64> {
        if x.len == 0 {
            return Ok(0.0);
        }
        let l = grid1(x.len);
        let blocks = l.grid.0 as usize;
        let partial = self.alloc_bytes(blocks * 8)?;
        let p = ReduceParams {
            x: self.a(x),
            partial: self.dev.addr(&partial),
            n: i(x.len),
            mode,
            pad: 0,
        };
        self.run("reduce_f64", l, &p)?;
        let mut bytes = vec![0u8; blocks * 8];
        self.dev.read(&partial, &mut bytes)?;
        Ok(bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
            .sum())
    }

    fn upload_bytes(&self, bytes: &[u8]) -> Result<D::Mem> {
        let mut m = self.alloc_bytes(bytes.len())?;
        self.dev.write(&mut m, bytes)?;
        Ok(m)
    }

    fn upload_i64(&self, v: &[i64]) -> Result<D::Mem> {
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.upload_bytes(&bytes)
    }

    fn gemm(&self, g: Gemm) -> Result<()> {
        if g.m == 0 || g.n == 0 {
            return Ok(());
        }
        self.dev.sgemm(g)
    }

    fn scan_launch(&self, channels: usize, n: usize, batch: usize, smem: usize) -> Launch {
        let (g, _) = scan_lanes(n).expect("supported");
        let cpb = SCAN_BLOCK / g;
        Launch {
            grid: (channels.div_ceil(cpb) as u32, batch as u32, 1),
            block: SCAN_BLOCK as u32,
            smem: smem as u32,
        }
    }

    fn slots(n: usize) -> usize {
        scan_lanes(n).map_or(1, |(_, s)| s)
    }

    /// Runs `f` on the CPU reference with host copies of `ins`, writing `outs` back.
    fn on_cpu(
        &self,
        ins: &[&DevBuf<D>],
        outs: &mut [&mut DevBuf<D>],
        f: impl FnOnce(&[Vec<f32>], &mut [Vec<f32>]) -> Result<()>,
    ) -> Result<()> {
        let hin: Vec<Vec<f32>> = ins
            .iter()
            .map(|b| self.download(b))
            .collect::<Result<_>>()?;
        let mut hout: Vec<Vec<f32>> = outs
            .iter()
            .map(|b| self.download(b))
            .collect::<Result<_>>()?;
        f(&hin, &mut hout)?;
        for (b, h) in outs.iter_mut().zip(&hout) {
            self.write_f32(b, h)?;
        }
        Ok(())
    }

    fn write_f32(&self, b: &mut DevBuf<D>, v: &[f32]) -> Result<()> {
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.dev.write(&mut b.mem, &bytes)
    }

    fn sel_params(&self, dims: SelScanDims, x: &SelScanIn<'_, DevBuf<D>>) -> SelScanParams {
        let SelScanDims { time, d, n, .. } = dims;
        let chunk = scan_chunk(n);
        SelScanParams {
            u: self.a(x.u),
            dt: self.a(x.dt),
            bias: self.a(x.bias),
            a: self.a(x.a),
            bm: self.a(x.bm),
            cm: self.a(x.cm),
            dskip: self.a(x.dskip),
            z: self.a(x.z),
            batch: i(dims.batch),
            time: i(time),
            d: i(d),
            n: i(n),
            xb: i(time * d),
            xt: i(d),
            bb: i(time * n),
            bt: i(n),
            chunk: i(chunk),
            nchunks: i(time.div_ceil(chunk)),
            ..Default::default()
        }
    }

    fn ssd_params(&self, dims: SsdDims, x: &SsdIn<'_, DevBuf<D>>) -> SsdParams {
        let SsdDims {
            time,
            heads,
            head_dim,
            groups,
            n,
            ..
        } = dims;
        let chunk = scan_chunk(n);
        let hp = heads * head_dim;
        SsdParams {
            x: self.a(x.x),
            dt: self.a(x.dt),
            bias: self.a(x.bias),
            a: self.a(x.a),
            bm: self.a(x.bm),
            cm: self.a(x.cm),
            dskip: self.a(x.dskip),
            batch: i(dims.batch),
            time: i(time),
            heads: i(heads),
            p: i(head_dim),
            groups: i(groups),
            n: i(n),
            xb: i(time * hp),
            xt: i(hp),
            tb: i(time * heads),
            tt: i(heads),
            bb: i(time * groups * n),
            bt: i(groups * n),
            chunk: i(chunk),
            nchunks: i(time.div_ceil(chunk)),
            dt_min: dims.dt_min,
            dt_max: dims.dt_max,
            ..Default::default()
        }
    }
}

/// Host vectors as a SelScanIn of the CPU backend (fallback path).
fn sel_host(h: &[Vec<f32>]) -> SelScanIn<'_, Vec<f32>> {
    SelScanIn {
        u: &h[0],
        dt: &h[1],
        bias: &h[2],
        a: &h[3],
        bm: &h[4],
        cm: &h[5],
        dskip: &h[6],
        z: &h[7],
    }
}

fn ssd_host(h: &[Vec<f32>]) -> SsdIn<'_, Vec<f32>> {
    SsdIn {
        x: &h[0],
        dt: &h[1],
        bias: &h[2],
        a: &h[3],
        bm: &h[4],
        cm: &h[5],
        dskip: &h[6],
    }
}

/// Which kernel runs the SSD scan forward ([`CudaBackend::ssd_scan_fwd_with`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SsdFwdKernel {
    /// The chunked tensor-core kernel where [`CudaBackend::supports_ssd_chunked`] holds,
    /// else the recurrent one: what [`Backend::ssd_scan_fwd`] runs.
    Auto,
    /// The chunked kernel (`ssd_chunk_fwd`); a shape error where it does not cover the shape.
    Chunked,
    /// The recurrent fused kernel (`ssd_fwd_s*`).
    Recurrent,
}

/// Threads per block of the chunked SSD kernel (`SSDC_BLOCK` in ssd_chunk.cu).
const SSDC_BLOCK: u32 = 128;

/// The most dynamic shared memory the chunked SSD kernel is launched with (within the
/// opt-in limits of sm_80 and sm_90 blocks); larger shapes run the recurrent kernel.
pub const SSD_CHUNK_SMEM_MAX: usize = 160 * 1024;

/// Dynamic shared memory of the chunked SSD kernel for heads of `head_dim` channels and a
/// state of `n` (the layout in ssd_chunk.cu: chunk Q = [`scan_chunk`]`(n)`, n padded to 8,
/// head_dim to 16), or `None` if it does not fit in a `usize`.
pub fn ssd_chunk_smem(head_dim: usize, n: usize) -> Option<usize> {
    let q = scan_chunk(n);
    let np = n.checked_add(7)? / 8 * 8;
    let pp = head_dim.checked_add(15)? / 16 * 16;
    let (ldk, ldx, ldm) = (np.checked_add(4)?, pp.checked_add(8)?, q + 4);
    let floats = (2 * q)
        .checked_mul(ldk)?
        .checked_add(q.checked_mul(ldx)?)?
        .checked_add(q * ldm)?
        .checked_add(pp.checked_mul(ldk)?)?
        .checked_add(3 * q)?;
    floats.checked_mul(4)
}

/// Which tensor-core product [`CudaBackend::tf32_mma_check`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tf32Mode {
    /// 3xTF32 (hi·lo + lo·hi + hi·hi): f32-level accuracy, what the kernels use.
    Split3 = 0,
    /// One TF32 product of the rounded operands.
    Single = 1,
    /// No product: `c = cvt.rna.tf32(a)` element by element.
    Round = 2,
}

impl<D: Device> CudaBackend<D> {
    /// Whether the chunked SSD kernel covers this shape: a state the checkpointed scans
    /// cover, its shared memory within [`SSD_CHUNK_SMEM_MAX`], one block per (head, stream).
    pub fn supports_ssd_chunked(&self, dims: SsdDims) -> bool {
        self.supports(ScanOp::Ssd, dims.n, dims.batch)
            && dims.heads <= i32::MAX as usize
            && dims.head_dim > 0
            && ssd_chunk_smem(dims.head_dim, dims.n).is_some_and(|b| b <= SSD_CHUNK_SMEM_MAX)
    }

    /// The SSD scan forward on a chosen kernel; [`Backend::ssd_scan_fwd`] is `Auto`. Every
    /// kernel writes the same `y` and checkpoint layout, so `ssd_scan_state_at` and the
    /// backward run on the states of any of them.
    pub fn ssd_scan_fwd_with(
        &self,
        kernel: SsdFwdKernel,
        dims: SsdDims,
        x: SsdIn<'_, DevBuf<D>>,
        y: &mut DevBuf<D>,
        states: &mut DevBuf<D>,
    ) -> Result<()> {
        const OP: &str = "ssd_scan_fwd";
        contract::ssd_scan_fwd(self, dims, &x, y, states)?;
        let hp = dims.heads * dims.head_dim;
        let chunked = match kernel {
            SsdFwdKernel::Auto => self.supports_ssd_chunked(dims),
            SsdFwdKernel::Recurrent => false,
            SsdFwdKernel::Chunked if self.supports_ssd_chunked(dims) => true,
            SsdFwdKernel::Chunked => {
                return Err(BackendError::Shape {
                    op: OP,
                    msg: format!(
                        "the chunked SSD kernel does not cover n={} head_dim={} batch={} \
                         (shared memory {:?} bytes of at most {SSD_CHUNK_SMEM_MAX})",
                        dims.n,
                        dims.head_dim,
                        dims.batch,
                        ssd_chunk_smem(dims.head_dim, dims.n)
                    ),
                })
            }
        };
        if dims.batch * dims.time * hp == 0 {
            return Ok(());
        }
        if !self.supports(ScanOp::Ssd, dims.n, dims.batch) {
            let ins = [x.x, x.dt, x.bias, x.a, x.bm, x.cm, x.dskip];
            return self.on_cpu(&ins, &mut [y, states], |h, o| {
                let (a, b) = o.split_at_mut(1);
                Cpu.ssd_scan_fwd(dims, ssd_host(h), &mut a[0], &mut b[0])
            });
        }
        let mut p = self.ssd_params(dims, &x);
        p.y = self.a(y);
        p.saved = self.a(states);
        if chunked {
            let smem = ssd_chunk_smem(dims.head_dim, dims.n).expect("supported");
            let l = Launch {
                grid: (dims.heads as u32, dims.batch as u32, 1),
                block: SSDC_BLOCK,
                smem: smem as u32,
            };
            return self.run("ssd_chunk_fwd", l, &p);
        }
        let name = format!("ssd_fwd_s{}", Self::slots(dims.n));
        self.run(&name, self.scan_launch(hp, dims.n, dims.batch, 0), &p)
    }

    /// For tests of the tensor-core path: `c = a·b` (`a` `m×k`, `b` `k×n`, `c` `m×n`,
    /// row-major) through the mma.m16n8k8 tf32 fragments, one block of two warps; `m` a
    /// multiple of 16, `n` and `k` of 8. [`Tf32Mode::Round`] writes `c[i] = tf32(a[i])`
    /// for the `m·k` values of `a` instead (`c` of that length).
    #[allow(clippy::too_many_arguments)]
    pub fn tf32_mma_check(
        &self,
        mode: Tf32Mode,
        a: &DevBuf<D>,
        b: &DevBuf<D>,
        m: usize,
        n: usize,
        k: usize,
        c: &mut DevBuf<D>,
    ) -> Result<()> {
        const OP: &str = "tf32_mma_check";
        if !m.is_multiple_of(16) || !n.is_multiple_of(8) || !k.is_multiple_of(8) || m * n * k == 0 {
            return Err(BackendError::Shape {
                op: OP,
                msg: format!("m={m} n={n} k={k}: m must be a multiple of 16, n and k of 8"),
            });
        }
        check_len(OP, "a", a.len, m * k)?;
        check_len(OP, "b", b.len, k * n)?;
        let clen = if mode == Tf32Mode::Round {
            m * k
        } else {
            m * n
        };
        check_len(OP, "c", c.len, clen)?;
        let p = MmaTestParams {
            a: self.a(a),
            b: self.a(b),
            c: self.a(c),
            m: i(m),
            n: i(n),
            k: i(k),
            mode: mode as i32,
            pad: 0,
        };
        let l = Launch {
            grid: (1, 1, 1),
            block: 64,
            smem: 0,
        };
        self.run("tf32_mma_gemm", l, &p)
    }
}

impl<D: Device> Backend for CudaBackend<D> {
    type Buf = DevBuf<D>;

    fn name(&self) -> String {
        self.dev.describe()
    }
    fn upload(&self, x: &[f32]) -> Result<DevBuf<D>> {
        let mut b = DevBuf {
            mem: self.alloc_bytes(x.len() * 4)?,
            len: x.len(),
        };
        self.write_f32(&mut b, x)?;
        Ok(b)
    }
    fn zeros(&self, n: usize) -> Result<DevBuf<D>> {
        Ok(DevBuf {
            mem: self.alloc_bytes(n * 4)?,
            len: n,
        })
    }
    fn download(&self, b: &DevBuf<D>) -> Result<Vec<f32>> {
        let mut bytes = vec![0u8; b.len * 4];
        self.dev.read(&b.mem, &mut bytes)?;
        Ok(bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect())
    }
    fn buf_len(&self, b: &DevBuf<D>) -> usize {
        b.len
    }
    fn fill(&self, b: &mut DevBuf<D>, v: f32) -> Result<()> {
        self.map("ew_fill", None, None, b, v)
    }
    fn add_assign(&self, y: &mut DevBuf<D>, x: &DevBuf<D>) -> Result<()> {
        contract::add_assign(self, y, x)?;
        self.map("ew_add_assign", Some(x), None, y, 0.0)
    }

    fn linear_fwd(
        &self,
        x: &DevBuf<D>,
        w: &DevBuf<D>,
        b: Option<&DevBuf<D>>,
        rows: usize,
        din: usize,
        dout: usize,
        y: &mut DevBuf<D>,
    ) -> Result<()> {
        contract::linear_fwd(self, x, w, b, rows, din, dout, y)?;
        if let Some(b) = b {
            let p = ColParams {
                b: self.a(b),
                y: self.a(y),
                rows: i(rows),
                cols: i(dout),
                rs: i(dout),
                ..Default::default()
            };
            if rows * dout > 0 {
                self.run("bias_rows", grid1(rows * dout), &p)?;
            }
        }
        if din == 0 {
            if b.is_none() {
                self.fill(y, 0.0)?;
            }
            return Ok(());
        }
        self.gemm(Gemm {
            trans_a: true,
            trans_b: false,
            m: dout,
            n: rows,
            k: din,
            alpha: 1.0,
            a: self.a(w),
            lda: din,
            b: self.a(x),
            ldb: din,
            beta: if b.is_some() { 1.0 } else { 0.0 },
            c: self.a(y),
            ldc: dout,
        })
    }

    fn linear_bwd(
        &self,
        x: &DevBuf<D>,
        w: &DevBuf<D>,
        dy: &DevBuf<D>,
        rows: usize,
        din: usize,
        dout: usize,
        dx: Option<&mut DevBuf<D>>,
        dw: &mut DevBuf<D>,
        db: Option<&mut DevBuf<D>>,
    ) -> Result<()> {
        contract::linear_bwd(
            self,
            x,
            w,
            dy,
            rows,
            din,
            dout,
            dx.as_deref(),
            dw,
            db.as_deref(),
        )?;
        if let Some(dx) = dx {
            if dout == 0 {
                self.fill(dx, 0.0)?;
            } else {
                self.gemm(Gemm {
                    trans_a: false,
                    trans_b: false,
                    m: din,
                    n: rows,
                    k: dout,
                    alpha: 1.0,
                    a: self.a(w),
                    lda: din,
                    b: self.a(dy),
                    ldb: dout,
                    beta: 0.0,
                    c: self.a(dx),
                    ldc: din,
                })?;
            }
        }
        if rows > 0 {
            self.gemm(Gemm {
                trans_a: false,
                trans_b: true,
                m: din,
                n: dout,
                k: rows,
                alpha: 1.0,
                a: self.a(x),
                lda: din,
                b: self.a(dy),
                ldb: dout,
                beta: 1.0,
                c: self.a(dw),
                ldc: din,
            })?;
        }
        if let Some(db) = db {
            self.col_sum_into(dy, rows, dout, db)?;
        }
        Ok(())
    }

    fn layer_norm_fwd(
        &self,
        x: &DevBuf<D>,
        g: &DevBuf<D>,
        b: &DevBuf<D>,
        rows: usize,
        d: usize,
        eps: f32,
        y: &mut DevBuf<D>,
        stats: &mut DevBuf<D>,
    ) -> Result<()> {
        contract::layer_norm_fwd(self, x, g, b, rows, d, y, stats)?;
        if rows == 0 {
            return Ok(());
        }
        let p = NormParams {
            x: self.a(x),
            g: self.a(g),
            b: self.a(b),
            y: self.a(y),
            stats: self.a(stats),
            rows: i(rows),
            d: i(d),
            rs: i(d),
            eps,
            ..Default::default()
        };
        self.run(
            "layer_norm_fwd",
            Launch {
                grid: (rows.div_ceil(8) as u32, 1, 1),
                block: 256,
                smem: 0,
            },
            &p,
        )
    }

    fn layer_norm_bwd(
        &self,
        x: &DevBuf<D>,
        g: &DevBuf<D>,
        stats: &DevBuf<D>,
        dy: &DevBuf<D>,
        rows: usize,
        d: usize,
        dx: &mut DevBuf<D>,
        dg: &mut DevBuf<D>,
        db: &mut DevBuf<D>,
    ) -> Result<()> {
        contract::layer_norm_bwd(self, x, g, stats, dy, rows, d, dx, dg, db)?;
        if rows == 0 || d == 0 {
            return Ok(());
        }
        let nblk = rows.div_ceil(RPB);
        let partial = self.alloc_bytes(nblk * 2 * d * 4)?;
        let mut p = NormParams {
            x: self.a(x),
            g: self.a(g),
            dy: self.a(dy),
            stats: self.a(stats),
            dx: self.a(dx),
            partial: self.dev.addr(&partial),
            rows: i(rows),
            d: i(d),
            rs: i(d),
            rpb: i(RPB),
            ..Default::default()
        };
        self.run(
            "layer_norm_bwd",
            Launch {
                grid: (rows.div_ceil(8) as u32, 1, 1),
                block: 256,
                smem: 0,
            },
            &p,
        )?;
        let cols = Launch {
            grid: (d.div_ceil(128) as u32, nblk as u32, 1),
            block: 128,
            smem: 0,
        };
        self.run("layer_norm_param_partial", cols, &p)?;
        p.y = self.a(dg);
        p.dx = self.a(db);
        self.run(
            "norm_param_finish",
            Launch {
                grid: (d.div_ceil(128) as u32, 1, 1),
                block: 128,
                smem: 0,
            },
            &p,
        )?;
        self.dev.sync()
    }

    fn gelu_fwd(&self, x: &DevBuf<D>, y: &mut DevBuf<D>) -> Result<()> {
        contract::gelu_fwd(self, x, y)?;
        self.map("ew_gelu_fwd", Some(x), None, y, 0.0)
    }
    fn gelu_bwd(&self, x: &DevBuf<D>, dy: &DevBuf<D>, dx: &mut DevBuf<D>) -> Result<()> {
        contract::gelu_bwd(self, x, dy, dx)?;
        self.map("ew_gelu_bwd", Some(x), Some(dy), dx, 0.0)
    }

    fn glu_fwd(&self, x: &DevBuf<D>, rows: usize, d: usize, y: &mut DevBuf<D>) -> Result<()> {
        contract::glu_fwd(self, x, rows, d, y)?;
        if rows * d == 0 {
            return Ok(());
        }
        let p = GluParams {
            x: self.a(x),
            dy: 0,
            y: self.a(y),
            rows: i(rows),
            d: i(d),
            x_rs: i(2 * d),
            y_rs: i(d),
        };
        self.run("glu_fwd", grid1(rows * d), &p)
    }
    fn glu_bwd(
        &self,
        x: &DevBuf<D>,
        dy: &DevBuf<D>,
        rows: usize,
        d: usize,
        dx: &mut DevBuf<D>,
    ) -> Result<()> {
        contract::glu_bwd(self, x, dy, rows, d, dx)?;
        if rows * d == 0 {
            return Ok(());
        }
        let p = GluParams {
            x: self.a(x),
            dy: self.a(dy),
            y: self.a(dx),
            rows: i(rows),
            d: i(d),
            x_rs: i(2 * d),
            y_rs: i(d),
        };
        self.run("glu_bwd", grid1(rows * d), &p)
    }

    fn s4d_scan_fwd(
        &self,
        dims: ScanDims,
        u: &DevBuf<D>,
        da: &DevBuf<D>,
        cb: &DevBuf<D>,
        dskip: &DevBuf<D>,
        y: &mut DevBuf<D>,
        states: &mut DevBuf<D>,
    ) -> Result<()> {
        contract::s4d_scan_fwd(self, dims, u, da, cb, dskip, y, states)?;
        let ScanDims { batch, time, h, n2 } = dims;
        let per = h * n2 * 2;
        if batch * time * h == 0 {
            return Ok(());
        }
        if !self.supports(ScanOp::S4d, n2, batch) {
            return self.on_cpu(&[u, da, cb, dskip], &mut [y, states], |h_in, h_out| {
                let (a, b) = h_out.split_at_mut(1);
                Cpu.s4d_scan_fwd(
                    dims, &h_in[0], &h_in[1], &h_in[2], &h_in[3], &mut a[0], &mut b[0],
                )
            });
        }
        let p = S4dParams {
            u: self.a(u),
            da: self.a(da),
            cb: self.a(cb),
            dskip: self.a(dskip),
            y: self.a(y),
            states: self.a(states),
            batch: i(batch),
            time: i(time),
            h: i(h),
            n2: i(n2),
            sb: i(time * h),
            st: i(h),
            ssb: i(time * per),
            sst: i(per),
            ..Default::default()
        };
        let name = format!("s4d_fwd_s{}", Self::slots(n2));
        self.run(&name, self.scan_launch(h, n2, batch, 0), &p)
    }

    fn s4d_scan_bwd(
        &self,
        dims: ScanDims,
        u: &DevBuf<D>,
        da: &DevBuf<D>,
        cb: &DevBuf<D>,
        dskip: &DevBuf<D>,
        states: &DevBuf<D>,
        dy: &DevBuf<D>,
        du: &mut DevBuf<D>,
        dda: &mut DevBuf<D>,
        dcb: &mut DevBuf<D>,
        ddskip: &mut DevBuf<D>,
    ) -> Result<()> {
        contract::s4d_scan_bwd(
            self, dims, u, da, cb, dskip, states, dy, du, dda, dcb, ddskip,
        )?;
        let ScanDims { batch, time, h, n2 } = dims;
        let per = h * n2 * 2;
        if batch * time * h == 0 {
            return Ok(());
        }
        if !self.supports(ScanOp::S4d, n2, batch) {
            return self.on_cpu(
                &[u, da, cb, dskip, states, dy],
                &mut [du, dda, dcb, ddskip],
                |hi, ho| {
                    let [a, b, c, d] = ho else { unreachable!() };
                    Cpu.s4d_scan_bwd(
                        dims, &hi[0], &hi[1], &hi[2], &hi[3], &hi[4], &hi[5], a, b, c, d,
                    )
                },
            );
        }
        let p = S4dParams {
            u: self.a(u),
            da: self.a(da),
            cb: self.a(cb),
            dskip: self.a(dskip),
            dy: self.a(dy),
            states: self.a(states),
            du: self.a(du),
            g_da: self.a(dda),
            g_cb: self.a(dcb),
            g_d: self.a(ddskip),
            batch: i(batch),
            time: i(time),
            h: i(h),
            n2: i(n2),
            sb: i(time * h),
            st: i(h),
            ssb: i(time * per),
            sst: i(per),
            ..Default::default()
        };
        let name = format!("s4d_bwd_s{}", Self::slots(n2));
        self.run(&name, self.scan_launch(h, n2, batch, 0), &p)
    }

    fn selective_scan_states_len(&self, dims: SelScanDims) -> usize {
        if self.supports(ScanOp::Selective, dims.n, dims.batch) {
            dims.batch * dims.time.div_ceil(scan_chunk(dims.n)) * dims.d * dims.n
        } else {
            dims.batch * dims.time * dims.d * dims.n
        }
    }

    fn selective_scan_fwd(
        &self,
        dims: SelScanDims,
        x: SelScanIn<'_, DevBuf<D>>,
        y: &mut DevBuf<D>,
        states: &mut DevBuf<D>,
    ) -> Result<()> {
        contract::selective_scan_fwd(self, dims, &x, y, states)?;
        let SelScanDims { batch, time, d, n } = dims;
        if batch * time * d == 0 {
            return Ok(());
        }
        if !self.supports(ScanOp::Selective, n, batch) {
            let ins = [x.u, x.dt, x.bias, x.a, x.bm, x.cm, x.dskip, x.z];
            return self.on_cpu(&ins, &mut [y, states], |h, o| {
                let (a, b) = o.split_at_mut(1);
                Cpu.selective_scan_fwd(dims, sel_host(h), &mut a[0], &mut b[0])
            });
        }
        let mut p = self.sel_params(dims, &x);
        p.y = self.a(y);
        p.saved = self.a(states);
        let name = format!("selscan_fwd_s{}", Self::slots(n));
        self.run(&name, self.scan_launch(d, n, batch, 0), &p)
    }

    fn selective_scan_state_at(
        &self,
        dims: SelScanDims,
        x: SelScanIn<'_, DevBuf<D>>,
        states: &DevBuf<D>,
        steps: &[usize],
    ) -> Result<Vec<f32>> {
        contract::selective_scan_state_at(self, dims, &x, states, steps)?;
        let SelScanDims { batch, time, d, n } = dims;
        if !self.supports(ScanOp::Selective, n, batch) {
            return state_rows(self, states, time, d * n, steps);
        }
        let idx: Vec<i64> = steps.iter().map(|&s| s as i64).collect();
        let steps_d = self.upload_i64(&idx)?;
        let out = self.zeros(batch * d * n)?;
        let mut p = self.sel_params(dims, &x);
        p.saved = self.a(states);
        p.steps = self.dev.addr(&steps_d);
        p.out = self.a(&out);
        let name = format!("selscan_state_at_s{}", Self::slots(n));
        self.run(&name, self.scan_launch(d, n, batch, 0), &p)?;
        self.download(&out)
    }

    fn selective_scan_bwd(
        &self,
        dims: SelScanDims,
        x: SelScanIn<'_, DevBuf<D>>,
        states: &DevBuf<D>,
        dy: &DevBuf<D>,
        g: SelScanGrads<'_, DevBuf<D>>,
    ) -> Result<()> {
        contract::selective_scan_bwd(self, dims, &x, states, dy, &g)?;
        let SelScanDims { batch, time, d, n } = dims;
        let bt = batch * time * d;
        if bt == 0 {
            return Ok(());
        }
        if !self.supports(ScanOp::Selective, n, batch) {
            let ins = [x.u, x.dt, x.bias, x.a, x.bm, x.cm, x.dskip, x.z, states, dy];
            return self.on_cpu(
                &ins,
                &mut [g.du, g.ddt, g.dbm, g.dcm, g.dz, g.da, g.dskip, g.dbias],
                |h, o| {
                    let [du, ddt, dbm, dcm, dz, da, dskip, dbias] = o else {
                        unreachable!()
                    };
                    let grads = SelScanGrads {
                        du,
                        ddt,
                        dbm,
                        dcm,
                        dz,
                        da,
                        dskip,
                        dbias,
                    };
                    Cpu.selective_scan_bwd(dims, sel_host(h), &h[8], &h[9], grads)
                },
            );
        }
        self.dev.zero(&mut g.dbm.mem)?;
        self.dev.zero(&mut g.dcm.mem)?;
        let mut p = self.sel_params(dims, &x);
        p.saved = self.a(states);
        p.dy = self.a(dy);
        p.du = self.a(g.du);
        p.ddt = self.a(g.ddt);
        p.dbm = self.a(g.dbm);
        p.dcm = self.a(g.dcm);
        p.dz = self.a(g.dz);
        p.da = self.a(g.da);
        p.gskip = self.a(g.dskip);
        p.gbias = self.a(g.dbias);
        let s = Self::slots(n);
        let sub = if s == 4 { 8 } else { 16 };
        let smem = 2 * sub * SCAN_BLOCK * s * 4;
        self.run(
            &format!("selscan_bwd_s{s}"),
            self.scan_launch(d, n, batch, smem),
            &p,
        )
    }

    fn ssd_scan_states_len(&self, dims: SsdDims) -> usize {
        let per = dims.heads * dims.head_dim * dims.n;
        if self.supports(ScanOp::Ssd, dims.n, dims.batch) {
            dims.batch * dims.time.div_ceil(scan_chunk(dims.n)) * per
        } else {
            dims.batch * dims.time * per
        }
    }

    fn ssd_scan_fwd(
        &self,
        dims: SsdDims,
        x: SsdIn<'_, DevBuf<D>>,
        y: &mut DevBuf<D>,
        states: &mut DevBuf<D>,
    ) -> Result<()> {
        self.ssd_scan_fwd_with(SsdFwdKernel::Auto, dims, x, y, states)
    }

    fn ssd_scan_state_at(
        &self,
        dims: SsdDims,
        x: SsdIn<'_, DevBuf<D>>,
        states: &DevBuf<D>,
        steps: &[usize],
    ) -> Result<Vec<f32>> {
        contract::ssd_scan_state_at(self, dims, &x, states, steps)?;
        let hp = dims.heads * dims.head_dim;
        if !self.supports(ScanOp::Ssd, dims.n, dims.batch) {
            return state_rows(self, states, dims.time, hp * dims.n, steps);
        }
        let idx: Vec<i64> = steps.iter().map(|&s| s as i64).collect();
        let steps_d = self.upload_i64(&idx)?;
        let out = self.zeros(dims.batch * hp * dims.n)?;
        let mut p = self.ssd_params(dims, &x);
        p.saved = self.a(states);
        p.steps = self.dev.addr(&steps_d);
        p.out = self.a(&out);
        let name = format!("ssd_state_at_s{}", Self::slots(dims.n));
        self.run(&name, self.scan_launch(hp, dims.n, dims.batch, 0), &p)?;
        self.download(&out)
    }

    fn ssd_scan_bwd(
        &self,
        dims: SsdDims,
        x: SsdIn<'_, DevBuf<D>>,
        states: &DevBuf<D>,
        dy: &DevBuf<D>,
        g: SsdGrads<'_, DevBuf<D>>,
    ) -> Result<()> {
        contract::ssd_scan_bwd(self, dims, &x, states, dy, &g)?;
        let SsdDims {
            batch,
            time,
            heads,
            head_dim,
            n,
            ..
        } = dims;
        let (bt, hp) = (batch * time, heads * head_dim);
        if bt * hp == 0 {
            return Ok(());
        }
        if !self.supports(ScanOp::Ssd, n, batch) {
            let ins = [x.x, x.dt, x.bias, x.a, x.bm, x.cm, x.dskip, states, dy];
            return self.on_cpu(
                &ins,
                &mut [g.dx, g.ddt, g.dbm, g.dcm, g.da, g.dskip, g.dbias],
                |h, o| {
                    let [dx, ddt, dbm, dcm, da, dskip, dbias] = o else {
                        unreachable!()
                    };
                    let grads = SsdGrads {
                        dx,
                        ddt,
                        dbm,
                        dcm,
                        da,
                        dskip,
                        dbias,
                    };
                    Cpu.ssd_scan_bwd(dims, ssd_host(h), &h[7], &h[8], grads)
                },
            );
        }
        self.dev.zero(&mut g.ddt.mem)?;
        self.dev.zero(&mut g.dbm.mem)?;
        self.dev.zero(&mut g.dcm.mem)?;
        let mut p = self.ssd_params(dims, &x);
        p.saved = self.a(states);
        p.dy = self.a(dy);
        p.dx = self.a(g.dx);
        p.ddt = self.a(g.ddt);
        p.dbm = self.a(g.dbm);
        p.dcm = self.a(g.dcm);
        p.da = self.a(g.da);
        p.gskip = self.a(g.dskip);
        p.gbias = self.a(g.dbias);
        let s = Self::slots(n);
        let sub = if s == 4 { 8 } else { 16 };
        let cpb = SCAN_BLOCK / scan_lanes(n).expect("supported").0;
        let smem = (2 * sub * SCAN_BLOCK * s + sub * cpb) * 4;
        self.run(
            &format!("ssd_bwd_s{s}"),
            self.scan_launch(hp, n, batch, smem),
            &p,
        )
    }

    fn conv1d_fwd(
        &self,
        x: &DevBuf<D>,
        w: &DevBuf<D>,
        bias: Option<&DevBuf<D>>,
        batch: usize,
        time: usize,
        ch: usize,
        k: usize,
        y: &mut DevBuf<D>,
    ) -> Result<()> {
        contract::conv1d_fwd(self, x, w, bias, batch, time, ch, k, y)?;
        if batch * time * ch == 0 {
            return Ok(());
        }
        let p = ConvParams {
            x: self.a(x),
            w: self.a(w),
            bias: bias.map_or(0, |b| self.a(b)),
            y: self.a(y),
            batch: i(batch),
            time: i(time),
            ch: i(ch),
            k: i(k),
            sb: i(time * ch),
            st: i(ch),
            ..Default::default()
        };
        self.run("conv1d_fwd", grid1(batch * time * ch), &p)
    }

    fn conv1d_bwd(
        &self,
        x: &DevBuf<D>,
        w: &DevBuf<D>,
        dy: &DevBuf<D>,
        batch: usize,
        time: usize,
        ch: usize,
        k: usize,
        dx: &mut DevBuf<D>,
        dw: &mut DevBuf<D>,
        dbias: Option<&mut DevBuf<D>>,
    ) -> Result<()> {
        contract::conv1d_bwd(self, x, w, dy, batch, time, ch, k, dx, dw, dbias.as_deref())?;
        let m = batch * time * ch;
        if m == 0 {
            return Ok(());
        }
        let rows = batch * time;
        let nblk = rows.div_ceil(RPB);
        let partial = self.alloc_bytes(nblk * ch * k.max(1) * 4)?;
        let p = ConvParams {
            x: self.a(x),
            w: self.a(w),
            dy: self.a(dy),
            dx: self.a(dx),
            partial: self.dev.addr(&partial),
            batch: i(batch),
            time: i(time),
            ch: i(ch),
            k: i(k),
            sb: i(time * ch),
            st: i(ch),
            rpb: i(RPB),
            ..Default::default()
        };
        self.run("conv1d_bwd_dx", grid1(m), &p)?;
        if k > 0 {
            self.run(
                "conv1d_dw_partial",
                Launch {
                    grid: ((ch * k).div_ceil(128) as u32, nblk as u32, 1),
                    block: 128,
                    smem: 0,
                },
                &p,
            )?;
            let f = ColParams {
                y: self.a(dw),
                partial: p.partial,
                cols: i(ch * k),
                nblk: i(nblk),
                ..Default::default()
            };
            self.run("col_finish", grid1(ch * k), &f)?;
        }
        if let Some(db) = dbias {
            self.col_sum_into(dy, rows, ch, db)?;
        }
        self.dev.sync()
    }

    fn rms_norm_fwd(
        &self,
        x: &DevBuf<D>,
        g: &DevBuf<D>,
        rows: usize,
        d: usize,
        eps: f32,
        y: &mut DevBuf<D>,
        stats: &mut DevBuf<D>,
    ) -> Result<()> {
        contract::rms_norm_fwd(self, x, g, rows, d, y, stats)?;
        if rows == 0 {
            return Ok(());
        }
        let p = NormParams {
            x: self.a(x),
            g: self.a(g),
            y: self.a(y),
            stats: self.a(stats),
            rows: i(rows),
            d: i(d),
            rs: i(d),
            eps,
            ..Default::default()
        };
        self.run(
            "rms_norm_fwd",
            Launch {
                grid: (rows.div_ceil(8) as u32, 1, 1),
                block: 256,
                smem: 0,
            },
            &p,
        )
    }

    fn rms_norm_bwd(
        &self,
        x: &DevBuf<D>,
        g: &DevBuf<D>,
        stats: &DevBuf<D>,
        dy: &DevBuf<D>,
        rows: usize,
        d: usize,
        dx: &mut DevBuf<D>,
        dg: &mut DevBuf<D>,
    ) -> Result<()> {
        contract::rms_norm_bwd(self, x, g, stats, dy, rows, d, dx, dg)?;
        if rows == 0 || d == 0 {
            return Ok(());
        }
        let nblk = rows.div_ceil(RPB);
        let partial = self.alloc_bytes(nblk * 2 * d * 4)?;
        let mut p = NormParams {
            x: self.a(x),
            g: self.a(g),
            dy: self.a(dy),
            stats: self.a(stats),
            dx: self.a(dx),
            partial: self.dev.addr(&partial),
            rows: i(rows),
            d: i(d),
            rs: i(d),
            rpb: i(RPB),
            ..Default::default()
        };
        self.run(
            "rms_norm_bwd",
            Launch {
                grid: (rows.div_ceil(8) as u32, 1, 1),
                block: 256,
                smem: 0,
            },
            &p,
        )?;
        let cols = Launch {
            grid: (d.div_ceil(128) as u32, nblk as u32, 1),
            block: 128,
            smem: 0,
        };
        self.run("rms_norm_param_partial", cols, &p)?;
        p.y = self.a(dg);
        p.dx = 0;
        self.run(
            "norm_param_finish",
            Launch {
                grid: (d.div_ceil(128) as u32, 1, 1),
                block: 128,
                smem: 0,
            },
            &p,
        )?;
        self.dev.sync()
    }

    fn silu_fwd(&self, x: &DevBuf<D>, y: &mut DevBuf<D>) -> Result<()> {
        contract::silu_fwd(self, x, y)?;
        self.map("ew_silu_fwd", Some(x), None, y, 0.0)
    }
    fn silu_bwd(&self, x: &DevBuf<D>, dy: &DevBuf<D>, dx: &mut DevBuf<D>) -> Result<()> {
        contract::silu_bwd(self, x, dy, dx)?;
        self.map("ew_silu_bwd", Some(x), Some(dy), dx, 0.0)
    }

    fn gather_rows(
        &self,
        x: &DevBuf<D>,
        d: usize,
        rows: &[usize],
        y: &mut DevBuf<D>,
    ) -> Result<()> {
        contract::gather_rows(self, x, d, rows, y)?;
        let x_rows = x.len.checked_div(d).unwrap_or(0);
        if rows.is_empty() || d == 0 {
            return Ok(());
        }
        let idx = self.upload_i64(&rows.iter().map(|&r| r as i64).collect::<Vec<_>>())?;
        let p = GatherParams {
            x: self.a(x),
            y: self.a(y),
            idx: self.dev.addr(&idx),
            n: i(rows.len()),
            d: i(d),
            x_rows: i(x_rows),
        };
        self.run("gather_rows", grid1(rows.len() * d), &p)?;
        self.dev.sync()
    }

    fn gather_rows_bwd(
        &self,
        dy: &DevBuf<D>,
        d: usize,
        rows: &[usize],
        dx: &mut DevBuf<D>,
    ) -> Result<()> {
        contract::gather_rows_bwd(self, dy, d, rows, dx)?;
        let x_rows = dx.len.checked_div(d).unwrap_or(0);
        self.dev.zero(&mut dx.mem)?;
        if rows.is_empty() || d == 0 {
            return Ok(());
        }
        let idx = self.upload_i64(&rows.iter().map(|&r| r as i64).collect::<Vec<_>>())?;
        let p = GatherParams {
            x: self.a(dy),
            y: self.a(dx),
            idx: self.dev.addr(&idx),
            n: i(rows.len()),
            d: i(d),
            x_rows: i(x_rows),
        };
        self.run("gather_rows_bwd", grid1(rows.len() * d), &p)?;
        self.dev.sync()
    }

    fn softmax_xent(
        &self,
        logits: &DevBuf<D>,
        labels: &[u32],
        classes: usize,
        dlogits: &mut DevBuf<D>,
    ) -> Result<(f32, usize)> {
        contract::softmax_xent(self, logits, labels, classes, dlogits)?;
        let n = labels.len();
        if n == 0 {
            return Ok((0.0, 0));
        }
        let lab: Vec<u8> = labels
            .iter()
            .flat_map(|&y| (y as i32).to_le_bytes())
            .collect();
        let lab = self.upload_bytes(&lab)?;
        let loss = self.alloc_bytes(n * 4)?;
        let correct = self.alloc_bytes(n * 4)?;
        let p = LossParams {
            logits: self.a(logits),
            labels: self.dev.addr(&lab),
            dlogits: self.a(dlogits),
            loss: self.dev.addr(&loss),
            correct: self.dev.addr(&correct),
            n: i(n),
            classes: i(classes),
            inv_n: 1.0 / n as f32,
            ..Default::default()
        };
        self.run("softmax_xent", grid1(n), &p)?;
        let mut lb = vec![0u8; n * 4];
        self.dev.read(&loss, &mut lb)?;
        let mut cb = vec![0u8; n * 4];
        self.dev.read(&correct, &mut cb)?;
        let total: f64 = lb
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4")) as f64)
            .sum();
        let right = cb
            .chunks_exact(4)
            .filter(|c| i32::from_le_bytes((*c).try_into().expect("4")) != 0)
            .count();
        Ok(((total / n as f64) as f32, right))
    }

    fn sigmoid_bce(
        &self,
        logits: &DevBuf<D>,
        targets: &[f32],
        pos_weight: f32,
        dlogits: &mut DevBuf<D>,
    ) -> Result<f32> {
        contract::sigmoid_bce(self, logits, targets, dlogits)?;
        let n = logits.len;
        if n == 0 {
            return Ok(0.0);
        }
        let t = self.upload(targets)?;
        let loss = self.zeros(n)?;
        let p = LossParams {
            logits: self.a(logits),
            targets: self.a(&t),
            dlogits: self.a(dlogits),
            loss: self.a(&loss),
            n: i(n),
            inv_n: 1.0 / n as f32,
            pos_weight,
            ..Default::default()
        };
        self.run("sigmoid_bce", grid1(n), &p)?;
        Ok((self.reduce(&loss, 0)? / n as f64) as f32)
    }

    fn sum_sq(&self, x: &DevBuf<D>) -> Result<f64> {
        self.reduce(x, 1)
    }
    fn scale(&self, x: &mut DevBuf<D>, s: f32) -> Result<()> {
        self.map("ew_scale", None, None, x, s)
    }
    fn adamw(
        &self,
        p: &mut DevBuf<D>,
        g: &DevBuf<D>,
        m: &mut DevBuf<D>,
        v: &mut DevBuf<D>,
        h: AdamW,
        decay: bool,
    ) -> Result<()> {
        contract::adamw(self, p, g, m, v)?;
        let n = p.len;
        if n == 0 {
            return Ok(());
        }
        let t = h.step.max(1) as i32;
        let prm = AdamParams {
            p: self.a(p),
            g: self.a(g),
            m: self.a(m),
            v: self.a(v),
            n: i(n),
            lr: h.lr,
            beta1: h.beta1,
            beta2: h.beta2,
            eps: h.eps,
            wd: h.weight_decay,
            bc1: 1.0 - libm::powf(h.beta1, t as f32),
            bc2: 1.0 - libm::powf(h.beta2, t as f32),
            decay: decay as i32,
        };
        self.run("adamw", grid1(n), &prm)
    }
}
