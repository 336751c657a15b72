// Tensor-core check kernel: C = A·B through the mma.m16n8k8 tf32 helpers of the prelude,
// fragments assembled straight from global memory by the documented layout, so a test can
// compare the instruction (on a GPU) or its emulation (emu.hpp) with a plain f64 product.
// One warp per 16×8 tile of C, tiles dealt round-robin to the warps of one block (warps
// may run different numbers of tiles). m a multiple of 16, n and k of 8 (checked by the
// host). mode 2 rounds A to TF32 instead (cvt.rna.tf32.f32).

KERNEL tf32_mma_gemm(const MmaTestParams p) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    const int g = lane >> 2, t = lane & 3;
    if (p.mode == 2) {
        for (i64 i = threadIdx.x; i < p.m * p.k; i += blockDim.x) p.c[i] = __uint_as_float(cvt_rna_tf32(p.a[i]));
        return;
    }
    const i64 mt = p.m / 16, nt = p.n / 8;
    for (i64 tile = warp; tile < mt * nt; tile += nw) {
        const i64 mi = tile / nt, nj = tile % nt;
        float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        for (i64 k0 = 0; k0 < p.k; k0 += 8) {
            const float* a = p.a + mi * 16 * p.k + k0;
            const float af[4] = {a[g * p.k + t], a[(g + 8) * p.k + t], a[g * p.k + t + 4], a[(g + 8) * p.k + t + 4]};
            const float* b = p.b + k0 * p.n + nj * 8;
            const float bf[2] = {b[t * p.n + g], b[(t + 4) * p.n + g]};
            if (p.mode == 0)
                mma3_tf32(acc, af, bf);
            else
                mma1_tf32(acc, af, bf);
        }
#pragma unroll
        for (int r = 0; r < 4; r++) p.c[(mi * 16 + g + 8 * (r >> 1)) * p.n + nj * 8 + 2 * t + (r & 1)] = acc[r];
    }
}
