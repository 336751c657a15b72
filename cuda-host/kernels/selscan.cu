// Mamba-1 selective scan, fused: dt bias + softplus, exp(dt·A) decay, (dt·B)·u input,
// C·h readout, D skip and the silu(z) gate, per stream from a zero state. One thread per
// (stream, channel, state slot); a channel's state over an aligned group of lanes, in
// registers; B and C rows are shared by every channel of a block (one load per step per
// block through the cache). The forward writes y and the state at the end of every chunk
// of `chunk` steps (the last chunk may be shorter) — not every step's state: the backward
// recomputes states inside a chunk from its checkpoint.
// Grid (ceil(d / channels per block), batch), blockDim SCAN_BLOCK.

#ifndef TINYSSM_EMU
#define LDG(ptr) __ldg(ptr)
#endif

template <int S>
DEVFN void selscan_fwd_impl(const SelScanParams& p) {
    const int G = lanes_for(p.n);
    const int lane = threadIdx.x % G;
    const i64 ch = (i64)blockIdx.x * (blockDim.x / G) + threadIdx.x / G;
    const i64 b = blockIdx.y;
    const bool active = ch < p.d;
    const i64 cc = active ? ch : 0;
    float a[S], h[S];
    bool valid[S];
#pragma unroll
    for (int s = 0; s < S; s++) {
        i64 j = lane + s * G;
        valid[s] = active && j < p.n;
        a[s] = valid[s] ? p.a[cc * p.n + j] : 0.0f;
        h[s] = 0.0f;
    }
    const float bias = p.bias[cc], dsk = p.dskip[cc];
    const float* u = p.u + b * p.xb + cc;
    const float* dt = p.dt + b * p.xb + cc;
    const float* z = p.z + b * p.xb + cc;
    const float* bm = p.bm + b * p.bb;
    const float* cm = p.cm + b * p.bb;
#pragma unroll 4
    for (i64 t = 0; t < p.time; t++) {
        const float uv = LDG(u + t * p.xt);
        const float dtv = softplus_f(LDG(dt + t * p.xt) + bias);
        const float zv = LDG(z + t * p.xt);
        float acc = 0.0f;
#pragma unroll
        for (int s = 0; s < S; s++) {
            if (!valid[s]) continue;
            i64 j = lane + s * G;
            h[s] = expf(dtv * a[s]) * h[s] + (dtv * LDG(bm + t * p.bt + j)) * uv;
            acc += h[s] * LDG(cm + t * p.bt + j);
        }
        acc = group_sum(acc, G);
        if (active && lane == 0) p.y[b * p.xb + t * p.xt + ch] = (acc + uv * dsk) * silu_f(zv);
        if ((t + 1) % p.chunk == 0 || t + 1 == p.time) {
            i64 ck = t / p.chunk;
#pragma unroll
            for (int s = 0; s < S; s++)
                if (valid[s]) p.saved[((b * p.nchunks + ck) * p.d + ch) * p.n + lane + s * G] = h[s];
        }
    }
}

// The state after step steps[b] of each stream, recomputed from the nearest checkpoint.
template <int S>
DEVFN void selscan_state_at_impl(const SelScanParams& p) {
    const int G = lanes_for(p.n);
    const int lane = threadIdx.x % G;
    const i64 ch = (i64)blockIdx.x * (blockDim.x / G) + threadIdx.x / G;
    const i64 b = blockIdx.y;
    if (ch >= p.d) return;  // no cross-lane work below
    const i64 step = p.steps[b];
    const i64 ck = step / p.chunk;
    float a[S], h[S];
    bool valid[S];
#pragma unroll
    for (int s = 0; s < S; s++) {
        i64 j = lane + s * G;
        valid[s] = j < p.n;
        a[s] = valid[s] ? p.a[ch * p.n + j] : 0.0f;
        h[s] = (valid[s] && ck > 0) ? p.saved[((b * p.nchunks + ck - 1) * p.d + ch) * p.n + j] : 0.0f;
    }
    const float bias = p.bias[ch];
    for (i64 t = ck * p.chunk; t <= step; t++) {
        const float uv = p.u[b * p.xb + t * p.xt + ch];
        const float dtv = softplus_f(p.dt[b * p.xb + t * p.xt + ch] + bias);
#pragma unroll
        for (int s = 0; s < S; s++)
            if (valid[s]) h[s] = expf(dtv * a[s]) * h[s] + (dtv * p.bm[b * p.bb + t * p.bt + lane + s * G]) * uv;
    }
#pragma unroll
    for (int s = 0; s < S; s++)
        if (valid[s]) p.out[(b * p.d + ch) * p.n + lane + s * G] = h[s];
}

// Backward. Chunks from the last: the chunk's NSUB sub-chunk start states are recomputed
// from its checkpoint, then each sub-chunk of SUB steps (last first) recomputes its SUB
// states into registers and runs the adjoint recurrence back through them. du, ddt, dz
// are overwritten; dB and dC (zeroed by the caller) get one atomic add per (step, state
// index) per block after a sum over the block's channels in shared memory; dA, dD and
// dbias get one atomic add per thread at the end. chunk == SUB·NSUB.
template <int S, int SUB>
DEVFN void selscan_bwd_impl(const SelScanParams& p) {
    SHARED_DYN(float, smem);
    const int G = lanes_for(p.n);
    const int NP = G * S;
    const int CPB = blockDim.x / G;
    const int lane = threadIdx.x % G;
    const int cl = threadIdx.x / G;
    const i64 ch = (i64)blockIdx.x * CPB + cl;
    const i64 b = blockIdx.y;
    const bool active = ch < p.d;
    const i64 cc = active ? ch : 0;
    float* sB = smem;                    // [SUB][CPB][NP]
    float* sC = smem + SUB * CPB * NP;   // [SUB][CPB][NP]
    float a[S], lam[S], ga[S];
    bool valid[S];
#pragma unroll
    for (int s = 0; s < S; s++) {
        i64 j = lane + s * G;
        valid[s] = active && j < p.n;
        a[s] = valid[s] ? p.a[cc * p.n + j] : 0.0f;
        lam[s] = 0.0f;
        ga[s] = 0.0f;
    }
    const float bias = p.bias[cc], dsk = p.dskip[cc];
    const float* u = p.u + b * p.xb + cc;
    const float* dt = p.dt + b * p.xb + cc;
    const float* z = p.z + b * p.xb + cc;
    const float* dy = p.dy + b * p.xb + cc;
    const float* bm = p.bm + b * p.bb;
    const float* cm = p.cm + b * p.bb;
    float gd = 0.0f, gbias = 0.0f;
    for (i64 ck = p.nchunks - 1; ck >= 0; ck--) {
        const i64 t0 = ck * p.chunk;
        const i64 t1 = t0 + p.chunk < p.time ? t0 + p.chunk : p.time;
        float hb[NSUB][S];
        float h[S];
#pragma unroll
        for (int s = 0; s < S; s++)
            h[s] = (valid[s] && ck > 0) ? p.saved[((b * p.nchunks + ck - 1) * p.d + ch) * p.n + lane + s * G] : 0.0f;
#pragma unroll
        for (int k = 0; k < NSUB; k++) {
#pragma unroll
            for (int s = 0; s < S; s++) hb[k][s] = h[s];
            for (int i = 0; i < SUB; i++) {
                const i64 t = t0 + k * SUB + i;
                if (t >= t1) break;
                const float uv = LDG(u + t * p.xt);
                const float dtv = softplus_f(LDG(dt + t * p.xt) + bias);
#pragma unroll
                for (int s = 0; s < S; s++)
                    if (valid[s]) h[s] = expf(dtv * a[s]) * h[s] + (dtv * LDG(bm + t * p.bt + lane + s * G)) * uv;
            }
        }
#pragma unroll
        for (int k = NSUB - 1; k >= 0; k--) {
            const i64 tb = t0 + k * SUB;
            if (tb >= t1) continue;  // uniform over the block
            float hs[SUB + 1][S];
#pragma unroll
            for (int s = 0; s < S; s++) hs[0][s] = hb[k][s];
#pragma unroll
            for (int i = 0; i < SUB; i++) {
                const i64 t = tb + i;
#pragma unroll
                for (int s = 0; s < S; s++) hs[i + 1][s] = hs[i][s];
                if (t < t1) {
                    const float uv = LDG(u + t * p.xt);
                    const float dtv = softplus_f(LDG(dt + t * p.xt) + bias);
#pragma unroll
                    for (int s = 0; s < S; s++)
                        if (valid[s])
                            hs[i + 1][s] = expf(dtv * a[s]) * hs[i][s] + (dtv * LDG(bm + t * p.bt + lane + s * G)) * uv;
                }
            }
#pragma unroll
            for (int i = SUB - 1; i >= 0; i--) {
                const i64 t = tb + i;
                float cB[S], cC[S];
#pragma unroll
                for (int s = 0; s < S; s++) cB[s] = cC[s] = 0.0f;
                if (t < t1) {  // uniform over the block
                    const float gy = LDG(dy + t * p.xt);
                    const float uv = LDG(u + t * p.xt);
                    const float sraw = LDG(dt + t * p.xt) + bias;
                    const float dtv = softplus_f(sraw);
                    const float zv = LDG(z + t * p.xt);
                    float ycp = 0.0f;
#pragma unroll
                    for (int s = 0; s < S; s++)
                        if (valid[s]) ycp += hs[i + 1][s] * LDG(cm + t * p.bt + lane + s * G);
                    const float yc = group_sum(ycp, G) + uv * dsk;
                    const float gyc = gy * silu_f(zv);
                    gd += gyc * uv;
                    float gu = 0.0f, gdt = 0.0f;
#pragma unroll
                    for (int s = 0; s < S; s++) {
                        if (!valid[s]) continue;
                        const i64 j = lane + s * G;
                        const float bj = LDG(bm + t * p.bt + j), cj = LDG(cm + t * p.bt + j);
                        cC[s] = gyc * hs[i + 1][s];
                        const float l = lam[s] + gyc * cj;
                        const float da = expf(dtv * a[s]);
                        const float g_da = l * hs[i][s];
                        gdt += g_da * a[s] * da + l * bj * uv;
                        ga[s] += g_da * dtv * da;
                        cB[s] = l * dtv * uv;
                        gu += l * dtv * bj;
                        lam[s] = l * da;
                    }
                    gu = group_sum(gu, G);
                    gdt = group_sum(gdt, G);
                    if (active && lane == 0) {
                        const i64 o = b * p.xb + t * p.xt + ch;
                        p.dz[o] = gy * yc * silu_grad_f(zv);
                        p.du[o] = gyc * dsk + gu;
                        const float gs = gdt * sigmoid_f(sraw);
                        p.ddt[o] = gs;
                        gbias += gs;
                    }
                }
#pragma unroll
                for (int s = 0; s < S; s++) {
                    sB[(i * CPB + cl) * NP + lane + s * G] = cB[s];
                    sC[(i * CPB + cl) * NP + lane + s * G] = cC[s];
                }
            }
            __syncthreads();
            for (int item = threadIdx.x; item < SUB * p.n; item += blockDim.x) {
                const int i = item / (int)p.n, j = item % (int)p.n;
                const i64 t = tb + i;
                if (t >= t1) continue;
                float sb = 0.0f, sc = 0.0f;
                for (int c2 = 0; c2 < CPB; c2++) {
                    sb += sB[(i * CPB + c2) * NP + j];
                    sc += sC[(i * CPB + c2) * NP + j];
                }
                atomicAdd(&p.dbm[b * p.bb + t * p.bt + j], sb);
                atomicAdd(&p.dcm[b * p.bb + t * p.bt + j], sc);
            }
            __syncthreads();
        }
    }
#pragma unroll
    for (int s = 0; s < S; s++)
        if (valid[s]) atomicAdd(&p.da[ch * p.n + lane + s * G], ga[s]);
    if (active && lane == 0) {
        atomicAdd(&p.gskip[ch], gd);
        atomicAdd(&p.gbias[ch], gbias);
    }
}

KERNEL selscan_fwd_s1(const SelScanParams p) { selscan_fwd_impl<1>(p); }
KERNEL selscan_fwd_s2(const SelScanParams p) { selscan_fwd_impl<2>(p); }
KERNEL selscan_fwd_s4(const SelScanParams p) { selscan_fwd_impl<4>(p); }
KERNEL selscan_state_at_s1(const SelScanParams p) { selscan_state_at_impl<1>(p); }
KERNEL selscan_state_at_s2(const SelScanParams p) { selscan_state_at_impl<2>(p); }
KERNEL selscan_state_at_s4(const SelScanParams p) { selscan_state_at_impl<4>(p); }
// SUB per slot count: shared memory 2·SUB·SCAN_BLOCK·S floats = 16 KiB / 32 KiB / 32 KiB.
KERNEL selscan_bwd_s1(const SelScanParams p) { selscan_bwd_impl<1, 16>(p); }
KERNEL selscan_bwd_s2(const SelScanParams p) { selscan_bwd_impl<2, 16>(p); }
KERNEL selscan_bwd_s4(const SelScanParams p) { selscan_bwd_impl<4, 8>(p); }
