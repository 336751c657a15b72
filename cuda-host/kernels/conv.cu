// Causal depthwise conv1d over time, per stream from a zero history, as the core's
// rolled conv state: y[t, c] = bias[c] + sum_j w[c, j] x[t - (k - 1 - j), c], oldest tap
// first.

#define CONV_GRID_STRIDE(i, n) \
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (i64)gridDim.x * blockDim.x)

KERNEL conv1d_fwd(const ConvParams p) {
    CONV_GRID_STRIDE(i, p.batch * p.time * p.ch) {
        i64 c = i % p.ch, bt = i / p.ch, t = bt % p.time, b = bt / p.time;
        const float* xb = p.x + b * p.sb;
        float acc = 0.0f;
        for (i64 j = 0; j < p.k; j++) {
            i64 ti = t - (p.k - 1 - j);
            if (ti >= 0) acc += xb[ti * p.st + c] * p.w[c * p.k + j];
        }
        p.y[b * p.sb + t * p.st + c] = acc + (p.bias ? p.bias[c] : 0.0f);
    }
}

// dx[t, c] = sum_j dy[t + k - 1 - j, c] w[c, j] (overwrites).
KERNEL conv1d_bwd_dx(const ConvParams p) {
    CONV_GRID_STRIDE(i, p.batch * p.time * p.ch) {
        i64 c = i % p.ch, bt = i / p.ch, t = bt % p.time, b = bt / p.time;
        const float* dyb = p.dy + b * p.sb;
        float acc = 0.0f;
        for (i64 j = 0; j < p.k; j++) {
            i64 to = t + (p.k - 1 - j);
            if (to < p.time) acc += dyb[to * p.st + c] * p.w[c * p.k + j];
        }
        p.dx[b * p.sb + t * p.st + c] = acc;
    }
}

// partial[blk, c·k + j] = sum over the block's rows r = b·time + t (in order) of
// dy[r, c] x[r - (k - 1 - j), c] within the stream. Grid (ceil(ch·k / blockDim), nblk).
KERNEL conv1d_dw_partial(const ConvParams p) {
    i64 col = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    i64 blk = blockIdx.y;
    if (col >= p.ch * p.k) return;
    i64 c = col / p.k, j = col - c * p.k;
    i64 rows = p.batch * p.time;
    i64 r0 = blk * p.rpb, r1 = r0 + p.rpb < rows ? r0 + p.rpb : rows;
    float acc = 0.0f;
    for (i64 r = r0; r < r1; r++) {
        i64 b = r / p.time, t = r - b * p.time;
        i64 ti = t - (p.k - 1 - j);
        if (ti >= 0) acc += p.dy[b * p.sb + t * p.st + c] * p.x[b * p.sb + ti * p.st + c];
    }
    p.partial[blk * p.ch * p.k + col] = acc;
}
