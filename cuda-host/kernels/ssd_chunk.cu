// Mamba-2 SSD scan forward in its chunked form ("state space duality"), on tensor cores.
// One block (SSDC_BLOCK threads, 4 warps) per (head h, stream b) walks the chunks of
// Q = p.chunk steps in order (Q a multiple of 16, at most the block size: 32 or 64, the
// checkpoint spacing of the recurrent kernels, so its checkpoints are theirs). With
// dt_t = clamp(softplus(dt_raw + bias)), a_t = dt_t·A_h and cs the inclusive cumsum of a
// over the chunk (steps past the end have dt = 0, x = 0: no decay, no input):
//   M[i, j]  = (C_i·B_j)·exp(cs_i − cs_j)·dt_j for j ≤ i, else 0            (Q×Q, K = N)
//   y_i      = Σ_j M[i, j]·x_j + exp(cs_i)·C_i·S_prev + D·x_i                (Q×P)
//   S[p, n]  = exp(cs_last)·S_prev[p, n] + Σ_j exp(cs_last − cs_j)·dt_j·x_j[p]·B_j[n]
// S_prev is the state before the chunk (zero before the first), S is saved as checkpoint
// ck, [batch, nchunks, heads·p, n] as the recurrent kernel writes it. All three products
// run as 16×8×8 mma.sync tiles in 3xTF32 (prelude.cuh) from shared memory; every exponent
// is ≤ 0, so nothing overflows. Shared memory (floats; N and P padded with zeros to NP =
// ceil8(n), PP = ceil16(p), rows padded against bank conflicts):
//   C, B [Q][NP+4], x [Q][PP+8], M [Q][Q+4], S [PP][NP+4], cs, dt, w [Q]
// The host (CudaBackend::ssd_chunk_smem) computes the same size; a launch with less
// dynamic shared memory, or a block or Q the kernel cannot use, writes nothing.

#ifndef TINYSSM_EMU
#define LDG(ptr) __ldg(ptr)
#endif

#define SSDC_BLOCK 128

KERNEL ssd_chunk_fwd(const SsdParams p) {
    SHARED_DYN(float, smem);
    const int Q = (int)p.chunk, N = (int)p.n, P = (int)p.p;
    const int NP = (N + 7) & ~7, PP = (P + 15) & ~15;
    const int ldk = NP + 4, ldx = PP + 8, ldm = Q + 4;
    const int nthr = blockDim.x;
    const i64 need = 4 * ((i64)2 * Q * ldk + (i64)Q * ldx + (i64)Q * ldm + (i64)PP * ldk + 3 * Q);
    if (need > (i64)dyn_smem_bytes() || Q <= 0 || Q % 16 != 0 || Q > nthr || nthr % 32 != 0) return;
    float* sC = smem;
    float* sB = sC + Q * ldk;
    float* sX = sB + Q * ldk;
    float* sM = sX + Q * ldx;
    float* sS = sM + Q * ldm;
    float* sCs = sS + PP * ldk;
    float* sDt = sCs + Q;
    float* sW = sDt + Q;
    const i64 h = blockIdx.x, b = blockIdx.y;
    const i64 hp = p.heads * p.p;
    const i64 gi = h / (p.heads / p.groups);
    const float bias = p.bias[h], ah = p.a[h], dsk = p.dskip[h];
    const float* bm = p.bm + b * p.bb + gi * p.n;
    const float* cm = p.cm + b * p.bb + gi * p.n;
    const float* xm = p.x + b * p.xb + h * p.p;
    float* ym = p.y + b * p.xb + h * p.p;
    const int tid = threadIdx.x, warp = tid >> 5, nw = nthr >> 5;
    const int lane = tid & 31, g = lane >> 2, tq = lane & 3;
    const int mt = Q / 16;
    for (int e = tid; e < PP * ldk; e += nthr) sS[e] = 0.0f;
    for (i64 ck = 0; ck < p.nchunks; ck++) {
        const i64 t0 = ck * Q;
        for (int e = tid; e < Q * NP; e += nthr) {
            const int i = e / NP, k = e % NP;
            const i64 t = t0 + i;
            const bool ok = t < p.time && k < N;
            sC[i * ldk + k] = ok ? LDG(cm + t * p.bt + k) : 0.0f;
            sB[i * ldk + k] = ok ? LDG(bm + t * p.bt + k) : 0.0f;
        }
        for (int e = tid; e < Q * PP; e += nthr) {
            const int i = e / PP, c = e % PP;
            const i64 t = t0 + i;
            sX[i * ldx + c] = (t < p.time && c < P) ? LDG(xm + t * p.xt + c) : 0.0f;
        }
        if (tid < Q) {
            const i64 t = t0 + tid;
            float dtv = 0.0f;
            if (t < p.time) {
                dtv = softplus_f(LDG(p.dt + b * p.tb + t * p.tt + h) + bias);
                dtv = fminf(fmaxf(dtv, p.dt_min), p.dt_max);
            }
            sDt[tid] = dtv;
            sCs[tid] = dtv * ah;
        }
        __syncthreads();
        // Inclusive cumsum of a over the chunk (Hillis–Steele).
        for (int off = 1; off < Q; off <<= 1) {
            const float v = (tid < Q && tid >= off) ? sCs[tid - off] : 0.0f;
            __syncthreads();
            if (tid < Q) sCs[tid] += v;
            __syncthreads();
        }
        const float csl = sCs[Q - 1];
        if (tid < Q) sW[tid] = expf(csl - sCs[tid]) * sDt[tid];  // read after the next barrier

        // M = (C·Bᵀ) ∘ L ∘ dt: the 16×8 tiles (mi, nj) on or below the diagonal, nj ≤ 2mi+1
        // (row mi starts at tile mi·(mi+1)); the tiles above are never read.
        for (int tile = warp; tile < mt * (mt + 1); tile += nw) {
            int mi = 0;
            while ((mi + 1) * (mi + 2) <= tile) mi++;
            const int nj = tile - mi * (mi + 1);
            float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
            const float* ca = sC + mi * 16 * ldk;
            const float* ba = sB + nj * 8 * ldk;
            for (int k0 = 0; k0 < NP; k0 += 8) {
                const float af[4] = {ca[g * ldk + k0 + tq], ca[(g + 8) * ldk + k0 + tq], ca[g * ldk + k0 + tq + 4],
                                     ca[(g + 8) * ldk + k0 + tq + 4]};
                const float bf[2] = {ba[g * ldk + k0 + tq], ba[g * ldk + k0 + tq + 4]};  // Bᵀ(k, j) = B[j][k]
                mma3_tf32(acc, af, bf);
            }
#pragma unroll
            for (int r = 0; r < 4; r++) {
                const int i = mi * 16 + g + 8 * (r >> 1), j = nj * 8 + 2 * tq + (r & 1);
                sM[i * ldm + j] = j <= i ? acc[r] * expf(sCs[i] - sCs[j]) * sDt[j] : 0.0f;
            }
        }
        __syncthreads();

        // y = exp(cs_i)·C·S_prevᵀ + M·x + D·x, tiles (mi, pn) of 16 steps × 8 channels.
        const int pt = PP / 8;
        for (int tile = warp; tile < mt * pt; tile += nw) {
            const int mi = tile / pt, pn = tile % pt;
            float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
            if (ck > 0) {  // uniform over the block
                const float* ca = sC + mi * 16 * ldk;
                const float* sa = sS + pn * 8 * ldk;
                for (int k0 = 0; k0 < NP; k0 += 8) {
                    const float af[4] = {ca[g * ldk + k0 + tq], ca[(g + 8) * ldk + k0 + tq],
                                         ca[g * ldk + k0 + tq + 4], ca[(g + 8) * ldk + k0 + tq + 4]};
                    const float bf[2] = {sa[g * ldk + k0 + tq], sa[g * ldk + k0 + tq + 4]};  // S_prevᵀ(n, p)
                    mma3_tf32(acc, af, bf);
                }
#pragma unroll
                for (int r = 0; r < 4; r++) acc[r] *= expf(sCs[mi * 16 + g + 8 * (r >> 1)]);
            }
            const float* ma = sM + mi * 16 * ldm;
            for (int k0 = 0; k0 < 16 * (mi + 1); k0 += 8) {  // M is zero right of the diagonal block
                const float af[4] = {ma[g * ldm + k0 + tq], ma[(g + 8) * ldm + k0 + tq], ma[g * ldm + k0 + tq + 4],
                                     ma[(g + 8) * ldm + k0 + tq + 4]};
                const float bf[2] = {sX[(k0 + tq) * ldx + pn * 8 + g], sX[(k0 + tq + 4) * ldx + pn * 8 + g]};
                mma3_tf32(acc, af, bf);
            }
#pragma unroll
            for (int r = 0; r < 4; r++) {
                const int i = mi * 16 + g + 8 * (r >> 1), c = pn * 8 + 2 * tq + (r & 1);
                const i64 t = t0 + i;
                if (t < p.time && c < P) ym[t * p.xt + c] = acc[r] + sX[i * ldx + c] * dsk;
            }
        }
        __syncthreads();  // every read of S_prev is done

        // S = exp(cs_last)·S_prev + (x ∘ w)ᵀ·B, tiles (pm, nn) of 16 channels × 8 state
        // slots, each read and rewritten in place by the one warp that owns it.
        const float dec = expf(csl);
        const int sn = NP / 8;
        for (int tile = warp; tile < (PP / 16) * sn; tile += nw) {
            const int pm = tile / sn, nn = tile % sn;
            float acc[4];
#pragma unroll
            for (int r = 0; r < 4; r++)
                acc[r] = dec * sS[(pm * 16 + g + 8 * (r >> 1)) * ldk + nn * 8 + 2 * tq + (r & 1)];
            for (int k0 = 0; k0 < Q; k0 += 8) {
                const int j0 = k0 + tq, j1 = k0 + tq + 4, c0 = pm * 16 + g;
                const float af[4] = {sX[j0 * ldx + c0] * sW[j0], sX[j0 * ldx + c0 + 8] * sW[j0],
                                     sX[j1 * ldx + c0] * sW[j1], sX[j1 * ldx + c0 + 8] * sW[j1]};
                const float bf[2] = {sB[j0 * ldk + nn * 8 + g], sB[j1 * ldk + nn * 8 + g]};
                mma3_tf32(acc, af, bf);
            }
#pragma unroll
            for (int r = 0; r < 4; r++) {
                const int c = pm * 16 + g + 8 * (r >> 1), k = nn * 8 + 2 * tq + (r & 1);
                sS[c * ldk + k] = acc[r];
                if (c < P && k < N) p.saved[((b * p.nchunks + ck) * hp + h * p.p + c) * p.n + k] = acc[r];
            }
        }
        __syncthreads();
    }
}
