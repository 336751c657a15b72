// Mamba-2 SSD scan in its recurrent form, fused: dt bias + softplus + clamp, one scalar
// decay exp(dt·A_h) per head, (dt·B_g)·x input, C_g readout and D skip. One thread per
// (stream, channel = head·p + position, state slot), a channel's n state values over an
// aligned group of lanes in registers; heads of a group share its B and C rows through
// the cache. Checkpoints every `chunk` steps as the selective scan. Grid (ceil(heads·p /
// channels per block), batch), blockDim SCAN_BLOCK.

#ifndef TINYSSM_EMU
#define LDG(ptr) __ldg(ptr)
#endif

DEVFN float ssd_dt(const SsdParams& p, float sraw) {
    float v = softplus_f(sraw);
    return fminf(fmaxf(v, p.dt_min), p.dt_max);
}

template <int S>
DEVFN void ssd_fwd_impl(const SsdParams& p) {
    const int G = lanes_for(p.n);
    const int lane = threadIdx.x % G;
    const i64 hp = p.heads * p.p;
    const i64 ch = (i64)blockIdx.x * (blockDim.x / G) + threadIdx.x / G;
    const i64 b = blockIdx.y;
    const bool active = ch < hp;
    const i64 cc = active ? ch : 0;
    const i64 hh = cc / p.p;
    const i64 gi = hh / (p.heads / p.groups);
    float st[S];
    bool valid[S];
#pragma unroll
    for (int s = 0; s < S; s++) {
        valid[s] = active && lane + s * G < p.n;
        st[s] = 0.0f;
    }
    const float bias = p.bias[hh], ah = p.a[hh], dsk = p.dskip[hh];
    const float* bm = p.bm + b * p.bb + gi * p.n;
    const float* cm = p.cm + b * p.bb + gi * p.n;
#pragma unroll 4
    for (i64 t = 0; t < p.time; t++) {
        const float dtv = ssd_dt(p, LDG(p.dt + b * p.tb + t * p.tt + hh) + bias);
        const float da = expf(dtv * ah);
        const float xv = LDG(p.x + b * p.xb + t * p.xt + cc);
        float acc = 0.0f;
#pragma unroll
        for (int s = 0; s < S; s++) {
            if (!valid[s]) continue;
            i64 j = lane + s * G;
            st[s] = st[s] * da + (dtv * LDG(bm + t * p.bt + j)) * xv;
            acc += st[s] * LDG(cm + t * p.bt + j);
        }
        acc = group_sum(acc, G);
        if (active && lane == 0) p.y[b * p.xb + t * p.xt + ch] = acc + xv * dsk;
        if ((t + 1) % p.chunk == 0 || t + 1 == p.time) {
            i64 ck = t / p.chunk;
#pragma unroll
            for (int s = 0; s < S; s++)
                if (valid[s]) p.saved[((b * p.nchunks + ck) * hp + ch) * p.n + lane + s * G] = st[s];
        }
    }
}

template <int S>
DEVFN void ssd_state_at_impl(const SsdParams& p) {
    const int G = lanes_for(p.n);
    const int lane = threadIdx.x % G;
    const i64 hp = p.heads * p.p;
    const i64 ch = (i64)blockIdx.x * (blockDim.x / G) + threadIdx.x / G;
    const i64 b = blockIdx.y;
    if (ch >= hp) return;  // no cross-lane work below
    const i64 hh = ch / p.p;
    const i64 gi = hh / (p.heads / p.groups);
    const i64 step = p.steps[b];
    const i64 ck = step / p.chunk;
    float st[S];
    bool valid[S];
#pragma unroll
    for (int s = 0; s < S; s++) {
        valid[s] = lane + s * G < p.n;
        st[s] = (valid[s] && ck > 0) ? p.saved[((b * p.nchunks + ck - 1) * hp + ch) * p.n + lane + s * G] : 0.0f;
    }
    for (i64 t = ck * p.chunk; t <= step; t++) {
        const float dtv = ssd_dt(p, p.dt[b * p.tb + t * p.tt + hh] + p.bias[hh]);
        const float da = expf(dtv * p.a[hh]);
        const float xv = p.x[b * p.xb + t * p.xt + ch];
#pragma unroll
        for (int s = 0; s < S; s++)
            if (valid[s]) st[s] = st[s] * da + (dtv * p.bm[b * p.bb + t * p.bt + gi * p.n + lane + s * G]) * xv;
    }
#pragma unroll
    for (int s = 0; s < S; s++)
        if (valid[s]) p.out[(b * hp + ch) * p.n + lane + s * G] = st[s];
}

// Backward, structured as the selective scan's. dx overwritten; ddt, dB and dC (zeroed
// by the caller) receive per-block sums over the block's channels of one head (ddt) or
// group (dB, dC) through atomics; dA, dD, dbias one atomic add per channel at the end.
template <int S, int SUB>
DEVFN void ssd_bwd_impl(const SsdParams& p) {
    SHARED_DYN(float, smem);
    const int G = lanes_for(p.n);
    const int NP = G * S;
    const int CPB = blockDim.x / G;
    const int lane = threadIdx.x % G;
    const int cl = threadIdx.x / G;
    const i64 hp = p.heads * p.p;
    const i64 hpg = p.heads / p.groups;
    const i64 ch = (i64)blockIdx.x * CPB + cl;
    const i64 b = blockIdx.y;
    const bool active = ch < hp;
    const i64 cc = active ? ch : 0;
    const i64 hh = cc / p.p;
    const i64 gi = hh / hpg;
    float* sB = smem;                         // [SUB][CPB][NP]
    float* sC = smem + SUB * CPB * NP;        // [SUB][CPB][NP]
    float* sT = smem + 2 * SUB * CPB * NP;    // [SUB][CPB]
    float lam[S];
    bool valid[S];
#pragma unroll
    for (int s = 0; s < S; s++) {
        valid[s] = active && lane + s * G < p.n;
        lam[s] = 0.0f;
    }
    const float bias = p.bias[hh], ah = p.a[hh], dsk = p.dskip[hh];
    const float* bm = p.bm + b * p.bb + gi * p.n;
    const float* cm = p.cm + b * p.bb + gi * p.n;
    const float* dtp = p.dt + b * p.tb + hh;
    float gd = 0.0f, gbias = 0.0f, ga = 0.0f;
    for (i64 ck = p.nchunks - 1; ck >= 0; ck--) {
        const i64 t0 = ck * p.chunk;
        const i64 t1 = t0 + p.chunk < p.time ? t0 + p.chunk : p.time;
        float hb[NSUB][S];
        float h[S];
#pragma unroll
        for (int s = 0; s < S; s++)
            h[s] = (valid[s] && ck > 0) ? p.saved[((b * p.nchunks + ck - 1) * hp + ch) * p.n + lane + s * G] : 0.0f;
#pragma unroll
        for (int k = 0; k < NSUB; k++) {
#pragma unroll
            for (int s = 0; s < S; s++) hb[k][s] = h[s];
            for (int i = 0; i < SUB; i++) {
                const i64 t = t0 + k * SUB + i;
                if (t >= t1) break;
                const float dtv = ssd_dt(p, LDG(dtp + t * p.tt) + bias);
                const float da = expf(dtv * ah);
                const float xv = LDG(p.x + b * p.xb + t * p.xt + cc);
#pragma unroll
                for (int s = 0; s < S; s++)
                    if (valid[s]) h[s] = h[s] * da + (dtv * LDG(bm + t * p.bt + lane + s * G)) * xv;
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
                    const float dtv = ssd_dt(p, LDG(dtp + t * p.tt) + bias);
                    const float da = expf(dtv * ah);
                    const float xv = LDG(p.x + b * p.xb + t * p.xt + cc);
#pragma unroll
                    for (int s = 0; s < S; s++)
                        if (valid[s]) hs[i + 1][s] = hs[i][s] * da + (dtv * LDG(bm + t * p.bt + lane + s * G)) * xv;
                }
            }
#pragma unroll
            for (int i = SUB - 1; i >= 0; i--) {
                const i64 t = tb + i;
                float cB[S], cC[S];
#pragma unroll
                for (int s = 0; s < S; s++) cB[s] = cC[s] = 0.0f;
                float cdt = 0.0f;
                if (t < t1) {  // uniform over the block
                    const float sraw = LDG(dtp + t * p.tt) + bias;
                    const float sp = softplus_f(sraw);
                    const float dtv = fminf(fmaxf(sp, p.dt_min), p.dt_max);
                    const float da = expf(dtv * ah);
                    const float xv = LDG(p.x + b * p.xb + t * p.xt + cc);
                    const float gy = LDG(p.dy + b * p.xb + t * p.xt + cc);
                    gd += gy * xv;
                    float gu = 0.0f, gda = 0.0f, gdt = 0.0f;
#pragma unroll
                    for (int s = 0; s < S; s++) {
                        if (!valid[s]) continue;
                        const i64 j = lane + s * G;
                        const float bj = LDG(bm + t * p.bt + j), cj = LDG(cm + t * p.bt + j);
                        cC[s] = gy * hs[i + 1][s];
                        const float l = lam[s] + gy * cj;
                        gda += l * hs[i][s];
                        gdt += l * bj * xv;
                        cB[s] = l * dtv * xv;
                        gu += l * dtv * bj;
                        lam[s] = l * da;
                    }
                    gu = group_sum(gu, G);
                    gda = group_sum(gda, G);
                    gdt = group_sum(gdt, G);
                    // torch.clamp passes the gradient only inside the range.
                    const bool inside = sp >= p.dt_min && sp <= p.dt_max;
                    cdt = inside ? (gdt + gda * ah * da) * sigmoid_f(sraw) : 0.0f;
                    if (active && lane == 0) {
                        p.dx[b * p.xb + t * p.xt + ch] = gy * dsk + gu;
                        ga += gda * dtv * da;
                        gbias += cdt;
                    }
                }
#pragma unroll
                for (int s = 0; s < S; s++) {
                    sB[(i * CPB + cl) * NP + lane + s * G] = cB[s];
                    sC[(i * CPB + cl) * NP + lane + s * G] = cC[s];
                }
                if (lane == 0) sT[i * CPB + cl] = active ? cdt : 0.0f;
            }
            __syncthreads();
            // dB, dC: sum channels of one group, flush on a group change.
            for (int item = threadIdx.x; item < SUB * p.n; item += blockDim.x) {
                const int i = item / (int)p.n, j = item % (int)p.n;
                const i64 t = tb + i;
                if (t >= t1) continue;
                float sb = 0.0f, sc = 0.0f;
                i64 cur = -1;
                for (int c2 = 0; c2 < CPB; c2++) {
                    const i64 ch2 = (i64)blockIdx.x * CPB + c2;
                    if (ch2 >= hp) break;
                    const i64 g2 = (ch2 / p.p) / hpg;
                    if (g2 != cur) {
                        if (cur >= 0) {
                            atomicAdd(&p.dbm[b * p.bb + t * p.bt + cur * p.n + j], sb);
                            atomicAdd(&p.dcm[b * p.bb + t * p.bt + cur * p.n + j], sc);
                        }
                        cur = g2;
                        sb = sc = 0.0f;
                    }
                    sb += sB[(i * CPB + c2) * NP + j];
                    sc += sC[(i * CPB + c2) * NP + j];
                }
                if (cur >= 0) {
                    atomicAdd(&p.dbm[b * p.bb + t * p.bt + cur * p.n + j], sb);
                    atomicAdd(&p.dcm[b * p.bb + t * p.bt + cur * p.n + j], sc);
                }
            }
            // ddt: sum channels of one head, flush on a head change.
            for (int i = threadIdx.x; i < SUB; i += blockDim.x) {
                const i64 t = tb + i;
                if (t >= t1) continue;
                float sd = 0.0f;
                i64 cur = -1;
                for (int c2 = 0; c2 < CPB; c2++) {
                    const i64 ch2 = (i64)blockIdx.x * CPB + c2;
                    if (ch2 >= hp) break;
                    const i64 h2 = ch2 / p.p;
                    if (h2 != cur) {
                        if (cur >= 0) atomicAdd(&p.ddt[b * p.tb + t * p.tt + cur], sd);
                        cur = h2;
                        sd = 0.0f;
                    }
                    sd += sT[i * CPB + c2];
                }
                if (cur >= 0) atomicAdd(&p.ddt[b * p.tb + t * p.tt + cur], sd);
            }
            __syncthreads();
        }
    }
    if (active && lane == 0) {
        atomicAdd(&p.da[hh], ga);
        atomicAdd(&p.gskip[hh], gd);
        atomicAdd(&p.gbias[hh], gbias);
    }
}

KERNEL ssd_fwd_s1(const SsdParams p) { ssd_fwd_impl<1>(p); }
KERNEL ssd_fwd_s2(const SsdParams p) { ssd_fwd_impl<2>(p); }
KERNEL ssd_fwd_s4(const SsdParams p) { ssd_fwd_impl<4>(p); }
KERNEL ssd_state_at_s1(const SsdParams p) { ssd_state_at_impl<1>(p); }
KERNEL ssd_state_at_s2(const SsdParams p) { ssd_state_at_impl<2>(p); }
KERNEL ssd_state_at_s4(const SsdParams p) { ssd_state_at_impl<4>(p); }
KERNEL ssd_bwd_s1(const SsdParams p) { ssd_bwd_impl<1, 16>(p); }
KERNEL ssd_bwd_s2(const SsdParams p) { ssd_bwd_impl<2, 16>(p); }
KERNEL ssd_bwd_s4(const SsdParams p) { ssd_bwd_impl<4, 8>(p); }
