// LayerNorm and RMSNorm over rows: one warp per row (rows of any length, strided lanes,
// shuffle reductions), parameter gradients as deterministic column partials.

#define ROWS_PER_BLOCK 8  // blockDim.x == 256: one warp per row

DEVFN float warp_sum(float v) { return group_sum(v, 32); }

KERNEL layer_norm_fwd(const NormParams p) {
    i64 r = (i64)blockIdx.x * ROWS_PER_BLOCK + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    bool active = r < p.rows;
    const float* xr = p.x + (active ? r : 0) * p.rs;
    float s = 0.0f;
    if (active)
        for (i64 j = lane; j < p.d; j += 32) s += xr[j];
    float mean = warp_sum(s) / (float)p.d;
    float v = 0.0f;
    if (active)
        for (i64 j = lane; j < p.d; j += 32) {
            float c = xr[j] - mean;
            v += c * c;
        }
    float var = warp_sum(v) / (float)p.d;
    float inv = 1.0f / sqrtf(var + p.eps);
    if (!active) return;
    float* yr = p.y + r * p.rs;
    for (i64 j = lane; j < p.d; j += 32) yr[j] = (xr[j] - mean) * inv * p.g[j] + p.b[j];
    if (lane == 0) {
        p.stats[2 * r] = mean;
        p.stats[2 * r + 1] = inv;
    }
}

KERNEL layer_norm_bwd(const NormParams p) {
    i64 r = (i64)blockIdx.x * ROWS_PER_BLOCK + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    bool active = r < p.rows;
    i64 rr = active ? r : 0;
    const float* xr = p.x + rr * p.rs;
    const float* dyr = p.dy + rr * p.rs;
    float mean = p.stats[2 * rr], inv = p.stats[2 * rr + 1];
    float s1 = 0.0f, s2 = 0.0f;
    if (active)
        for (i64 j = lane; j < p.d; j += 32) {
            float xh = (xr[j] - mean) * inv;
            float dxh = dyr[j] * p.g[j];
            s1 += dxh;
            s2 += dxh * xh;
        }
    s1 = warp_sum(s1);
    s2 = warp_sum(s2);
    if (!active) return;
    float n = (float)p.d;
    float* dxr = p.dx + r * p.rs;
    for (i64 j = lane; j < p.d; j += 32) {
        float xh = (xr[j] - mean) * inv;
        dxr[j] = inv * (dyr[j] * p.g[j] - s1 / n - xh * s2 / n);
    }
}

// partial[blk, 0, c] = sum dy (x - mean) inv, partial[blk, 1, c] = sum dy over the
// block's rows in order. Grid (ceil(d / blockDim), nblk).
KERNEL layer_norm_param_partial(const NormParams p) {
    i64 c = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    i64 blk = blockIdx.y;
    if (c >= p.d) return;
    i64 r0 = blk * p.rpb, r1 = r0 + p.rpb < p.rows ? r0 + p.rpb : p.rows;
    float a = 0.0f, b = 0.0f;
    for (i64 r = r0; r < r1; r++) {
        float g = p.dy[r * p.rs + c];
        a += g * (p.x[r * p.rs + c] - p.stats[2 * r]) * p.stats[2 * r + 1];
        b += g;
    }
    p.partial[(blk * 2) * p.d + c] = a;
    p.partial[(blk * 2 + 1) * p.d + c] = b;
}

KERNEL rms_norm_fwd(const NormParams p) {
    i64 r = (i64)blockIdx.x * ROWS_PER_BLOCK + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    bool active = r < p.rows;
    const float* xr = p.x + (active ? r : 0) * p.rs;
    float s = 0.0f;
    if (active)
        for (i64 j = lane; j < p.d; j += 32) s += xr[j] * xr[j];
    float ss = warp_sum(s);
    float inv = 1.0f / sqrtf(ss / (float)p.d + p.eps);
    if (!active) return;
    float* yr = p.y + r * p.rs;
    for (i64 j = lane; j < p.d; j += 32) yr[j] = xr[j] * inv * p.g[j];
    if (lane == 0) p.stats[r] = inv;
}

KERNEL rms_norm_bwd(const NormParams p) {
    i64 r = (i64)blockIdx.x * ROWS_PER_BLOCK + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    bool active = r < p.rows;
    i64 rr = active ? r : 0;
    const float* xr = p.x + rr * p.rs;
    const float* dyr = p.dy + rr * p.rs;
    float inv = p.stats[rr];
    float s = 0.0f;
    if (active)
        for (i64 j = lane; j < p.d; j += 32) s += dyr[j] * p.g[j] * xr[j];
    float m = warp_sum(s) / (float)p.d;
    if (!active) return;
    float* dxr = p.dx + r * p.rs;
    for (i64 j = lane; j < p.d; j += 32) dxr[j] = inv * (dyr[j] * p.g[j] - xr[j] * inv * inv * m);
}

// partial[blk, 0, c] = sum dy x inv over the block's rows in order.
KERNEL rms_norm_param_partial(const NormParams p) {
    i64 c = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    i64 blk = blockIdx.y;
    if (c >= p.d) return;
    i64 r0 = blk * p.rpb, r1 = r0 + p.rpb < p.rows ? r0 + p.rpb : p.rows;
    float a = 0.0f;
    for (i64 r = r0; r < r1; r++) a += p.dy[r * p.rs + c] * p.x[r * p.rs + c] * p.stats[r];
    p.partial[(blk * 2) * p.d + c] = a;
    p.partial[(blk * 2 + 1) * p.d + c] = 0.0f;
}

// dg[c] += sum_blk partial[blk, 0, c]; db[c] += sum_blk partial[blk, 1, c] (db may be
// null: RMSNorm). y = dg, dx = db.
KERNEL norm_param_finish(const NormParams p) {
    i64 c = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= p.d) return;
    i64 nblk = (p.rows + p.rpb - 1) / p.rpb;
    float a = 0.0f, b = 0.0f;
    for (i64 k = 0; k < nblk; k++) {
        a += p.partial[(k * 2) * p.d + c];
        b += p.partial[(k * 2 + 1) * p.d + c];
    }
    p.y[c] += a;
    if (p.dx) p.dx[c] += b;
}
