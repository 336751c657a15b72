// Host emulation of the CUDA built-ins the kernels use, so the same kernel sources run on
// the CPU in tests where no GPU is: every thread of a block is a host thread, blocks run
// one after another, __syncthreads is a barrier, warp shuffles exchange through a
// block-wide buffer between two barriers (the kernels call them with every thread of
// the block), mma.sync exchanges fragments among the lanes of one warp through a buffer
// between two warp barriers (mma_tf32_m16n8k8), shared memory is function-static (one
// block at a time), atomics are std::atomic_ref. Correctness only; speed is not the point.
#include <math.h>
#include <stdint.h>
#include <string.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <functional>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

#define TINYSSM_EMU 1
#define DEVFN static inline
#define KERNEL static void
#define __device__
#define __forceinline__
#define __shared__ static
#define LDG(ptr) (*(ptr))

struct emu_dim3 {
    unsigned x, y, z;
};
static thread_local emu_dim3 threadIdx;
static thread_local emu_dim3 blockIdx;
static emu_dim3 blockDim, gridDim;
static std::barrier<>* emu_barrier = nullptr;
static float emu_xchg[1024];
// 227 KiB: the most dynamic shared memory one block of an sm_90 device can opt in to.
alignas(16) static unsigned char emu_dyn_smem[227 * 1024];
static unsigned emu_smem_bytes = 0;
#define SHARED_DYN(T, name) T* name = reinterpret_cast<T*>(emu_dyn_smem)

static inline void __syncthreads() { emu_barrier->arrive_and_wait(); }

// One barrier per warp of the block (the lanes of warp w: threads 32w .. 32w+31), for
// the warp-collective instructions (mma.sync) that synchronise one warp, not the block.
static std::barrier<>* emu_warp_barrier[32];
static inline void emu_warp_sync() { emu_warp_barrier[threadIdx.x >> 5]->arrive_and_wait(); }

// The launch's dynamic shared memory in bytes (%dynamic_smem_size on a GPU).
static inline unsigned dyn_smem_bytes() { return emu_smem_bytes; }

static inline float __shfl_xor_sync(unsigned, float v, int mask) {
    unsigned t = threadIdx.x;
    emu_xchg[t] = v;
    __syncthreads();
    float r = emu_xchg[t ^ (unsigned)mask];
    __syncthreads();
    return r;
}

static inline float atomicAdd(float* a, float v) {
    return std::atomic_ref<float>(*a).fetch_add(v);
}

static inline float __int_as_float(int i) {
    float f;
    memcpy(&f, &i, 4);
    return f;
}
static inline float __uint_as_float(unsigned i) {
    float f;
    memcpy(&f, &i, 4);
    return f;
}

// cvt.rna.tf32.f32: round to the 10 explicit mantissa bits of TF32, to nearest, ties away
// from zero (add half of the dropped 13 bits to the magnitude, then clear them: the carry
// runs into the exponent as it should; an overflow becomes infinity). NaN stays NaN, the
// result is an f32 bit pattern whose low 13 bits are zero.
static inline unsigned cvt_rna_tf32(float x) {
    unsigned u;
    memcpy(&u, &x, 4);
    if ((u & 0x7f800000u) == 0x7f800000u) return (u & 0x007fffffu) ? (u | 0x00400000u) & 0xffffe000u : u;
    return (u + 0x1000u) & 0xffffe000u;
}

// mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 d, a, b, c, warp-collective: every
// lane posts its own registers, laid out as the PTX ISA's fragments for m16n8k8 .tf32
// (lane = 4·groupID + threadID_in_group, g = groupID, t = threadID_in_group):
//   A (16×8, row): a0 (g, t), a1 (g+8, t), a2 (g, t+4), a3 (g+8, t+4)
//   B (8×8, col):  b0 (k t, n g), b1 (k t+4, n g)
//   C, D (16×8):   c0 (g, 2t), c1 (g, 2t+1), c2 (g+8, 2t), c3 (g+8, 2t+1)
// then, after a warp barrier, computes its own four elements of D from the lanes that hold
// the row of A and the column of B it needs. The tensor core reads only the TF32 bits of
// an operand (the low 13 bits are dropped here); products of two TF32 values are exact in
// f32, summed in k order onto c.
static float emu_mma_regs[1024][6];
static inline void mma_tf32_m16n8k8(float d[4], const unsigned a[4], const unsigned b[2], const float c[4]) {
    const unsigned tid = threadIdx.x, base = tid & ~31u, lane = tid & 31u;
    for (int r = 0; r < 4; r++) emu_mma_regs[tid][r] = __uint_as_float(a[r] & 0xffffe000u);
    for (int r = 0; r < 2; r++) emu_mma_regs[tid][4 + r] = __uint_as_float(b[r] & 0xffffe000u);
    emu_warp_sync();
    const unsigned g = lane >> 2, t = lane & 3;
    float out[4];
    for (int r = 0; r < 4; r++) {
        const unsigned row = g + 8 * (r >> 1), col = 2 * t + (r & 1);
        float acc = c[r];
        for (unsigned k = 0; k < 8; k++) {
            // A(row, k) sits in lane 4·(row mod 8) + k mod 4, register (row ≥ 8) + 2·(k ≥ 4);
            // B(k, col) in lane 4·col + k mod 4, register (k ≥ 4).
            const float av = emu_mma_regs[base + 4 * (row & 7) + (k & 3)][(row >> 3) + 2 * (k >> 2)];
            const float bv = emu_mma_regs[base + 4 * col + (k & 3)][4 + (k >> 2)];
            acc += av * bv;
        }
        out[r] = acc;
    }
    emu_warp_sync();
    for (int r = 0; r < 4; r++) d[r] = out[r];
}

// Runs one launch: blocks in order, each block's threads concurrently. One pool of
// `block` host threads serves every block of the launch; each block gets a fresh
// barrier, and a thread that leaves the kernel early drops out of its block's barrier.
#include <memory>
static int emu_run(emu_dim3 grid, unsigned block, unsigned smem, const std::function<void()>& body) {
    if (block == 0 || block > 1024 || smem > sizeof(emu_dyn_smem)) return 1;
    gridDim = grid;
    blockDim = {block, 1, 1};
    emu_smem_bytes = smem;
    std::barrier<> pool((ptrdiff_t)block);
    std::unique_ptr<std::barrier<>> blk;
    std::unique_ptr<std::barrier<>> warps[32];
    std::vector<std::thread> threads;
    threads.reserve(block);
    for (unsigned t = 0; t < block; t++)
        threads.emplace_back([&, t] {
            threadIdx = {t, 0, 0};
            for (unsigned z = 0; z < grid.z; z++)
                for (unsigned y = 0; y < grid.y; y++)
                    for (unsigned x = 0; x < grid.x; x++) {
                        if (t == 0) {
                            blk = std::make_unique<std::barrier<>>((ptrdiff_t)block);
                            emu_barrier = blk.get();
                            for (unsigned w = 0; w * 32 < block; w++) {
                                warps[w] = std::make_unique<std::barrier<>>((ptrdiff_t)std::min(32u, block - 32 * w));
                                emu_warp_barrier[w] = warps[w].get();
                            }
                            memset(emu_dyn_smem, 0xff, smem);  // poisoned: written before read
                        }
                        pool.arrive_and_wait();
                        blockIdx = {x, y, z};
                        body();
                        emu_warp_barrier[t >> 5]->arrive_and_drop();
                        blk->arrive_and_drop();
                        pool.arrive_and_wait();
                    }
        });
    for (auto& th : threads) th.join();
    return 0;
}

template <class P>
static void emu_call(void (*k)(P), const void* params) {
    typename std::remove_cv<P>::type p;
    memcpy(&p, params, sizeof p);
    k(p);
}
