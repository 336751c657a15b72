// Host emulation of the CUDA built-ins the kernels use, so the same kernel sources run on
// the CPU in tests where no GPU is: every thread of a block is a host thread, blocks run
// one after another, __syncthreads is a barrier, warp shuffles exchange through a
// block-wide buffer between two barriers (the kernels call them with every thread of
// the block), shared memory is function-static (one block at a time), atomics are
// std::atomic_ref. Correctness only; speed is not the point.
#include <math.h>
#include <stdint.h>
#include <string.h>

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
alignas(16) static unsigned char emu_dyn_smem[96 * 1024];
#define SHARED_DYN(T, name) T* name = reinterpret_cast<T*>(emu_dyn_smem)

static inline void __syncthreads() { emu_barrier->arrive_and_wait(); }

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

// Runs one launch: blocks in order, each block's threads concurrently. One pool of
// `block` host threads serves every block of the launch; each block gets a fresh
// barrier, and a thread that leaves the kernel early drops out of its block's barrier.
#include <memory>
static int emu_run(emu_dim3 grid, unsigned block, unsigned smem, const std::function<void()>& body) {
    if (block == 0 || block > 1024 || smem > sizeof(emu_dyn_smem)) return 1;
    gridDim = grid;
    blockDim = {block, 1, 1};
    std::barrier<> pool((ptrdiff_t)block);
    std::unique_ptr<std::barrier<>> blk;
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
                            memset(emu_dyn_smem, 0xff, smem);  // poisoned: written before read
                        }
                        pool.arrive_and_wait();
                        blockIdx = {x, y, z};
                        body();
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
