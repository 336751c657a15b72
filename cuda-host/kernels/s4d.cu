// S4D diagonal complex scan: one thread per (stream, channel, mode slot), the modes of a
// channel over an aligned group of lanes, the state in registers; every state is stored
// for the backward pass ([batch, time, h, n2, 2]). Grid (ceil(h / channels per block),
// batch), blockDim SCAN_BLOCK.

template <int S>
DEVFN void s4d_fwd_impl(const S4dParams& p) {
    const int G = lanes_for(p.n2);
    const int lane = threadIdx.x % G;
    const i64 c = (i64)blockIdx.x * (blockDim.x / G) + threadIdx.x / G;
    const i64 b = blockIdx.y;
    const bool active = c < p.h;
    const i64 cc = active ? c : 0;
    float ar[S], ai[S], cr[S], ci[S], hr[S], hi[S];
    bool valid[S];
#pragma unroll
    for (int s = 0; s < S; s++) {
        i64 m = lane + s * G;
        valid[s] = active && m < p.n2;
        i64 k = (cc * p.n2 + (valid[s] ? m : 0)) * 2;
        ar[s] = valid[s] ? p.da[k] : 0.0f;
        ai[s] = valid[s] ? p.da[k + 1] : 0.0f;
        cr[s] = valid[s] ? p.cb[k] : 0.0f;
        ci[s] = valid[s] ? p.cb[k + 1] : 0.0f;
        hr[s] = 0.0f;
        hi[s] = 0.0f;
    }
    const float dsk = p.dskip[cc];
    for (i64 t = 0; t < p.time; t++) {
        float uv = p.u[b * p.sb + t * p.st + cc];
        float acc = 0.0f;
#pragma unroll
        for (int s = 0; s < S; s++) {
            if (!valid[s]) continue;
            float nr = (ar[s] * hr[s] - ai[s] * hi[s]) + uv;
            float ni = ar[s] * hi[s] + ai[s] * hr[s];
            hr[s] = nr;
            hi[s] = ni;
            i64 k = b * p.ssb + t * p.sst + (c * p.n2 + lane + s * G) * 2;
            p.states[k] = nr;
            p.states[k + 1] = ni;
            acc += cr[s] * nr - ci[s] * ni;
        }
        acc = group_sum(acc, G);
        if (active && lane == 0) p.y[b * p.sb + t * p.st + c] = 2.0f * acc + dsk * uv;
    }
}

// du overwritten; dA, C~ and D gradients accumulated (atomics over streams).
template <int S>
DEVFN void s4d_bwd_impl(const S4dParams& p) {
    const int G = lanes_for(p.n2);
    const int lane = threadIdx.x % G;
    const i64 c = (i64)blockIdx.x * (blockDim.x / G) + threadIdx.x / G;
    const i64 b = blockIdx.y;
    const bool active = c < p.h;
    const i64 cc = active ? c : 0;
    float ar[S], ai[S], cr[S], ci[S], lr[S], li[S], gar[S], gai[S], gcr[S], gci[S];
    bool valid[S];
#pragma unroll
    for (int s = 0; s < S; s++) {
        i64 m = lane + s * G;
        valid[s] = active && m < p.n2;
        i64 k = (cc * p.n2 + (valid[s] ? m : 0)) * 2;
        ar[s] = valid[s] ? p.da[k] : 0.0f;
        ai[s] = valid[s] ? p.da[k + 1] : 0.0f;
        cr[s] = valid[s] ? p.cb[k] : 0.0f;
        ci[s] = valid[s] ? p.cb[k + 1] : 0.0f;
        lr[s] = li[s] = gar[s] = gai[s] = gcr[s] = gci[s] = 0.0f;
    }
    const float dsk = p.dskip[cc];
    float gd = 0.0f;
    for (i64 t = p.time - 1; t >= 0; t--) {
        float gy = p.dy[b * p.sb + t * p.st + cc];
        float uv = p.u[b * p.sb + t * p.st + cc];
        gd += gy * uv;
        float gu = 0.0f;
#pragma unroll
        for (int s = 0; s < S; s++) {
            if (!valid[s]) continue;
            i64 k = b * p.ssb + t * p.sst + (c * p.n2 + lane + s * G) * 2;
            float hr = p.states[k], hi = p.states[k + 1];
            gcr[s] += 2.0f * gy * hr;
            gci[s] -= 2.0f * gy * hi;
            float l_r = lr[s] + 2.0f * gy * cr[s];
            float l_i = li[s] - 2.0f * gy * ci[s];
            gu += l_r;
            float pr = 0.0f, pi = 0.0f;
            if (t > 0) {
                pr = p.states[k - p.sst];
                pi = p.states[k - p.sst + 1];
            }
            gar[s] += l_r * pr + l_i * pi;
            gai[s] += -l_r * pi + l_i * pr;
            lr[s] = ar[s] * l_r + ai[s] * l_i;
            li[s] = -ai[s] * l_r + ar[s] * l_i;
        }
        gu = group_sum(gu, G);
        if (active && lane == 0) p.du[b * p.sb + t * p.st + c] = dsk * gy + gu;
    }
#pragma unroll
    for (int s = 0; s < S; s++) {
        if (!valid[s]) continue;
        i64 k = (c * p.n2 + lane + s * G) * 2;
        atomicAdd(&p.g_da[k], gar[s]);
        atomicAdd(&p.g_da[k + 1], gai[s]);
        atomicAdd(&p.g_cb[k], gcr[s]);
        atomicAdd(&p.g_cb[k + 1], gci[s]);
    }
    if (active && lane == 0) atomicAdd(&p.g_d[c], gd);
}

KERNEL s4d_fwd_s1(const S4dParams p) { s4d_fwd_impl<1>(p); }
KERNEL s4d_fwd_s2(const S4dParams p) { s4d_fwd_impl<2>(p); }
KERNEL s4d_fwd_s4(const S4dParams p) { s4d_fwd_impl<4>(p); }
KERNEL s4d_bwd_s1(const S4dParams p) { s4d_bwd_impl<1>(p); }
KERNEL s4d_bwd_s2(const S4dParams p) { s4d_bwd_impl<2>(p); }
KERNEL s4d_bwd_s4(const S4dParams p) { s4d_bwd_impl<4>(p); }
