// Shared by every kernel module of the CUDA backend: integer types, the parameter structs
// (mirrored field for field by `#[repr(C)]` structs in cuda-host/src/cuda/params.rs) and
// small device helpers. Compiled by NVRTC on a GPU machine, and by the host C++ compiler
// for the kernel emulator (TINYSSM_EMU), which defines the CUDA built-ins itself.
#ifndef TINYSSM_EMU
#define SHARED_DYN(T, name) extern __shared__ T name[]
#define DEVFN __device__ __forceinline__
#define KERNEL extern "C" __global__ void
#endif

typedef long long i64;
#define NEG_INF (-__int_as_float(0x7f800000))

// Element-wise maps: y = f(x) or dx = dy * f'(x), over n elements.
struct MapParams {
    const float* x;
    const float* dy;
    float* y;
    i64 n;
    float s;
    int pad;
};

// GLU over rows: x [rows, 2d] (row stride x_rs), y/dy [rows, d] (row stride y_rs).
struct GluParams {
    const float* x;
    const float* dy;
    float* y;
    i64 rows;
    i64 d;
    i64 x_rs;
    i64 y_rs;
};

// One AdamW update with precomputed bias corrections.
struct AdamParams {
    float* p;
    const float* g;
    float* m;
    float* v;
    i64 n;
    float lr, beta1, beta2, eps, wd, bc1, bc2;
    int decay;
};

// Rows of a [rows, cols] matrix (row stride rs): y[r, c] = b[c] (bias broadcast), or
// column partial sums over blocks of `rpb` rows: partial[blk, c] = sum x[r, c].
struct ColParams {
    const float* x;
    const float* b;
    float* y;
    float* partial;
    i64 rows;
    i64 cols;
    i64 rs;
    i64 rpb;
    i64 nblk;
};

// Sum (mode 0) or sum of squares (mode 1) of n values into per-block double partials.
struct ReduceParams {
    const float* x;
    double* partial;
    i64 n;
    int mode;
    int pad;
};

// Row gather: y[i] = x[idx[i]] (rows of d), and its adjoint (scatter-add).
struct GatherParams {
    const float* x;
    float* y;
    const i64* idx;
    i64 n;
    i64 d;
    i64 x_rows;
};

// LayerNorm / RMSNorm over rows of d (row stride rs); stats holds (mean, 1/std) per
// row for LayerNorm and 1/rms for RMSNorm. partial: [nblk, 2, d] parameter partials.
struct NormParams {
    const float* x;
    const float* g;
    const float* b;
    const float* dy;
    float* y;
    float* stats;
    float* dx;
    float* partial;
    i64 rows;
    i64 d;
    i64 rs;
    i64 rpb;
    float eps;
    int pad;
};

// Causal depthwise conv1d over [batch, time, ch] (strides sb, st); w [ch, k].
struct ConvParams {
    const float* x;
    const float* w;
    const float* bias;
    const float* dy;
    float* y;
    float* dx;
    float* partial;
    i64 batch;
    i64 time;
    i64 ch;
    i64 k;
    i64 sb;
    i64 st;
    i64 rpb;
};

// Softmax cross-entropy per row (row_loss, row_correct) and BCE per element (loss).
struct LossParams {
    const float* logits;
    const int* labels;
    const float* targets;
    float* dlogits;
    float* loss;
    int* correct;
    i64 n;
    i64 classes;
    float inv_n;
    float pos_weight;
};

// S4D diagonal complex scan. u/y/dy/du [batch, time, h] (strides sb, st); dA, C~
// [h, n2, 2]; states [batch, time, h, n2, 2] (strides ssb, sst).
struct S4dParams {
    const float* u;
    const float* da;
    const float* cb;
    const float* dskip;
    const float* dy;
    float* y;
    float* states;
    float* du;
    float* g_da;
    float* g_cb;
    float* g_d;
    i64 batch;
    i64 time;
    i64 h;
    i64 n2;
    i64 sb;
    i64 st;
    i64 ssb;
    i64 sst;
};

// Mamba-1 selective scan. u/dt/z/y [batch, time, d] (strides xb, xt); B/C [batch, time,
// n] (strides bb, bt); A [d, n]; saved: the state after the last step of every chunk of
// `chunk` steps, [batch, nchunks, d, n]; out: [batch, d, n] (state_at).
struct SelScanParams {
    const float* u;
    const float* dt;
    const float* bias;
    const float* a;
    const float* bm;
    const float* cm;
    const float* dskip;
    const float* z;
    const float* dy;
    const i64* steps;
    float* y;
    float* saved;
    float* out;
    float* du;
    float* ddt;
    float* dbm;
    float* dcm;
    float* dz;
    float* da;
    float* gskip;
    float* gbias;
    i64 batch;
    i64 time;
    i64 d;
    i64 n;
    i64 xb;
    i64 xt;
    i64 bb;
    i64 bt;
    i64 chunk;
    i64 nchunks;
};

// Mamba-2 SSD scan. x/y [batch, time, heads·p] (strides xb, xt); dt [batch, time, heads]
// (strides tb, tt); B/C [batch, time, groups, n] (strides bb, bt); saved [batch, nchunks,
// heads·p, n]; out [batch, heads·p, n].
struct SsdParams {
    const float* x;
    const float* dt;
    const float* bias;
    const float* a;
    const float* bm;
    const float* cm;
    const float* dskip;
    const float* dy;
    const i64* steps;
    float* y;
    float* saved;
    float* out;
    float* dx;
    float* ddt;
    float* dbm;
    float* dcm;
    float* da;
    float* gskip;
    float* gbias;
    i64 batch;
    i64 time;
    i64 heads;
    i64 p;
    i64 groups;
    i64 n;
    i64 xb;
    i64 xt;
    i64 tb;
    i64 tt;
    i64 bb;
    i64 bt;
    i64 chunk;
    i64 nchunks;
    float dt_min;
    float dt_max;
};

// Tensor-core check (mma.cu): C [m, n] = A [m, k] · B [k, n], all row-major; mode 0:
// 3xTF32, 1: one TF32 product, 2: c[i] = cvt.rna.tf32(a[i]) for the m·k values of A.
struct MmaTestParams {
    const float* a;
    const float* b;
    float* c;
    i64 m;
    i64 n;
    i64 k;
    int mode;
    int pad;
};

// The CPU reference's scalar functions (libm semantics; no fast-math intrinsics).
DEVFN float softplus_f(float x) { return x > 20.0f ? x : log1pf(expf(x)); }
DEVFN float sigmoid_f(float x) { return 1.0f / (1.0f + expf(-x)); }
DEVFN float silu_f(float x) { return x / (1.0f + expf(-x)); }
DEVFN float silu_grad_f(float x) {
    float s = sigmoid_f(x);
    return s * (1.0f + x * (1.0f - s));
}

// Sum over aligned groups of g lanes (g a power of two <= 32). Every lane of the warp
// must call it (no lane may have returned early).
DEVFN float group_sum(float v, int g) {
    for (int o = g >> 1; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// Sum over a block of blockDim.x (a multiple of 32, at most 1024) threads; every thread
// gets the total. `red` holds 32 floats of shared memory.
DEVFN float block_sum(float v, float* red) {
    v = group_sum(v, 32);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    __syncthreads();
    if (lane == 0) red[warp] = v;
    __syncthreads();
    float t = 0.0f;
    for (int i = 0; i < nw; i++) t += red[i];
    return t;
}

// Lanes per channel of the scan kernels: the state of one channel (n values) is spread
// over g = min(next_pow2(n), 32) lanes of a warp, S = ceil(n / g) values per lane in
// registers (slot s of lane l holds state index l + s·g). Blocks have 128 threads.
DEVFN int lanes_for(i64 n) {
    int g = 1;
    while (g < n && g < 32) g <<= 1;
    return g;
}
#define SCAN_BLOCK 128
#define NSUB 4

// Tensor cores: mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 and cvt.rna.tf32.f32
// through inline PTX on a GPU (no CUDA headers here), emulated lane by lane with the same
// fragment layout in emu.hpp. Fragments (lane = 4·g + t):
//   A (16×8, row): a0 (g, t), a1 (g+8, t), a2 (g, t+4), a3 (g+8, t+4)
//   B (8×8, col):  b0 (k t, n g), b1 (k t+4, n g)
//   C, D (16×8):   c0 (g, 2t), c1 (g, 2t+1), c2 (g+8, 2t), c3 (g+8, 2t+1)
// Every lane of the warp must execute the same call (mma.sync.aligned).
#ifndef TINYSSM_EMU
DEVFN unsigned cvt_rna_tf32(float x) {
    unsigned r;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
    return r;
}
DEVFN void mma_tf32_m16n8k8(float d[4], const unsigned a[4], const unsigned b[2], const float c[4]) {
    asm volatile(
        "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
        "{%8, %9}, {%10, %11, %12, %13};"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]),
          "f"(c[2]), "f"(c[3]));
}
DEVFN unsigned dyn_smem_bytes() {
    unsigned r;
    asm volatile("mov.u32 %0, %%dynamic_smem_size;" : "=r"(r));
    return r;
}
#endif

// x = hi + lo with hi, lo TF32 (3xTF32): |x − hi − lo| ≤ 2^-22·|x|.
DEVFN void split_tf32(float x, unsigned& hi, unsigned& lo) {
    hi = cvt_rna_tf32(x);
    lo = cvt_rna_tf32(x - __uint_as_float(hi));
}

// acc += A·B for one 16×8×8 tile of f32 fragments (layout above) at f32-level accuracy:
// hi·lo + lo·hi, then hi·hi (lo·lo, ~2^-22 relative, dropped).
DEVFN void mma3_tf32(float acc[4], const float a[4], const float b[2]) {
    unsigned ah[4], al[4], bh[2], bl[2];
#pragma unroll
    for (int r = 0; r < 4; r++) split_tf32(a[r], ah[r], al[r]);
#pragma unroll
    for (int r = 0; r < 2; r++) split_tf32(b[r], bh[r], bl[r]);
    mma_tf32_m16n8k8(acc, al, bh, acc);
    mma_tf32_m16n8k8(acc, ah, bl, acc);
    mma_tf32_m16n8k8(acc, ah, bh, acc);
}

// acc += A·B with one TF32 product (operands rounded once): ~2^-11 relative.
DEVFN void mma1_tf32(float acc[4], const float a[4], const float b[2]) {
    unsigned ah[4], bh[2];
#pragma unroll
    for (int r = 0; r < 4; r++) ah[r] = cvt_rna_tf32(a[r]);
#pragma unroll
    for (int r = 0; r < 2; r++) bh[r] = cvt_rna_tf32(b[r]);
    mma_tf32_m16n8k8(acc, ah, bh, acc);
}
