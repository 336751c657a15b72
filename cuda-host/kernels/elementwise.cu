// Element-wise maps, GLU, AdamW, bias broadcast, deterministic column sums, reductions,
// row gathers and the losses. Every kernel uses a grid-stride loop over its elements.

#define GRID_STRIDE(i, n) \
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (i64)gridDim.x * blockDim.x)

KERNEL ew_fill(const MapParams p) {
    GRID_STRIDE(i, p.n) p.y[i] = p.s;
}

KERNEL ew_add_assign(const MapParams p) {
    GRID_STRIDE(i, p.n) p.y[i] += p.x[i];
}

KERNEL ew_scale(const MapParams p) {
    GRID_STRIDE(i, p.n) p.y[i] *= p.s;
}

DEVFN float gelu_f(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }
DEVFN float gelu_grad_f(float x) {
    float cdf = 0.5f * (1.0f + erff(x * 0.70710678118654752f));
    float pdf = expf(-0.5f * x * x) * 0.3989423f;
    return cdf + x * pdf;
}

KERNEL ew_gelu_fwd(const MapParams p) {
    GRID_STRIDE(i, p.n) p.y[i] = gelu_f(p.x[i]);
}

KERNEL ew_gelu_bwd(const MapParams p) {
    GRID_STRIDE(i, p.n) p.y[i] = p.dy[i] * gelu_grad_f(p.x[i]);
}

KERNEL ew_silu_fwd(const MapParams p) {
    GRID_STRIDE(i, p.n) p.y[i] = silu_f(p.x[i]);
}

KERNEL ew_silu_bwd(const MapParams p) {
    GRID_STRIDE(i, p.n) p.y[i] = p.dy[i] * silu_grad_f(p.x[i]);
}

KERNEL glu_fwd(const GluParams p) {
    GRID_STRIDE(i, p.rows * p.d) {
        i64 r = i / p.d, j = i - r * p.d;
        const float* xr = p.x + r * p.x_rs;
        p.y[r * p.y_rs + j] = xr[j] * sigmoid_f(xr[p.d + j]);
    }
}

// y here is dx ([rows, 2d], row stride x_rs); dy has row stride y_rs.
KERNEL glu_bwd(const GluParams p) {
    GRID_STRIDE(i, p.rows * p.d) {
        i64 r = i / p.d, j = i - r * p.d;
        const float* xr = p.x + r * p.x_rs;
        float s = sigmoid_f(xr[p.d + j]);
        float g = p.dy[r * p.y_rs + j];
        p.y[r * p.x_rs + j] = g * s;
        p.y[r * p.x_rs + p.d + j] = g * xr[j] * s * (1.0f - s);
    }
}

KERNEL adamw(const AdamParams p) {
    GRID_STRIDE(i, p.n) {
        float g = p.g[i];
        float m = p.beta1 * p.m[i] + (1.0f - p.beta1) * g;
        float v = p.beta2 * p.v[i] + (1.0f - p.beta2) * g * g;
        p.m[i] = m;
        p.v[i] = v;
        float mh = m / p.bc1, vh = v / p.bc2;
        float w = p.p[i];
        if (p.decay) w -= p.lr * p.wd * w;
        w -= p.lr * mh / (sqrtf(vh) + p.eps);
        p.p[i] = w;
    }
}

// y[r, c] = b[c].
KERNEL bias_rows(const ColParams p) {
    GRID_STRIDE(i, p.rows * p.cols) {
        i64 r = i / p.cols, c = i - r * p.cols;
        p.y[r * p.rs + c] = p.b[c];
    }
}

// partial[blk, c] = sum over rows [blk*rpb, (blk+1)*rpb) of x[r, c], rows in order.
// Grid: (ceil(cols / blockDim), nblk).
KERNEL col_partial(const ColParams p) {
    i64 c = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    i64 blk = blockIdx.y;
    if (c >= p.cols) return;
    i64 r0 = blk * p.rpb, r1 = r0 + p.rpb < p.rows ? r0 + p.rpb : p.rows;
    float acc = 0.0f;
    for (i64 r = r0; r < r1; r++) acc += p.x[r * p.rs + c];
    p.partial[blk * p.cols + c] = acc;
}

// y[c] += sum over blocks of partial[blk, c], blocks in order.
KERNEL col_finish(const ColParams p) {
    GRID_STRIDE(c, p.cols) {
        float acc = 0.0f;
        for (i64 b = 0; b < p.nblk; b++) acc += p.partial[b * p.cols + c];
        p.y[c] += acc;
    }
}

// Per-block double partial of sum(x) or sum(x^2); one block of 256 threads per
// partial, each thread a fixed strided subset, tree order fixed: deterministic.
KERNEL reduce_f64(const ReduceParams p) {
    __shared__ double red[256];
    double acc = 0.0;
    GRID_STRIDE(i, p.n) {
        double v = (double)p.x[i];
        acc += p.mode == 1 ? v * v : v;
    }
    red[threadIdx.x] = acc;
    __syncthreads();
    for (int s = 128; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) red[threadIdx.x] += red[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0) p.partial[blockIdx.x] = red[0];
}

KERNEL gather_rows(const GatherParams p) {
    GRID_STRIDE(i, p.n * p.d) {
        i64 r = i / p.d, j = i - r * p.d;
        p.y[i] = p.x[p.idx[r] * p.d + j];
    }
}

// x is dy [n, d], y is dx [x_rows, d] (zeroed by the caller). Repeated rows add up in
// the order of the atomics.
KERNEL gather_rows_bwd(const GatherParams p) {
    GRID_STRIDE(i, p.n * p.d) {
        i64 r = i / p.d, j = i - r * p.d;
        atomicAdd(&p.y[p.idx[r] * p.d + j], p.x[i]);
    }
}

// One thread per row: softmax, the row's loss, whether argmax == label, and the
// gradient of the mean loss.
KERNEL softmax_xent(const LossParams p) {
    GRID_STRIDE(r, p.n) {
        const float* lr = p.logits + r * p.classes;
        float* gr = p.dlogits + r * p.classes;
        int y = p.labels[r];
        float mx = NEG_INF;
        i64 arg = 0;
        float best = NEG_INF;
        for (i64 c = 0; c < p.classes; c++) {
            mx = fmaxf(mx, lr[c]);
            if (lr[c] > best) {
                best = lr[c];
                arg = c;
            }
        }
        float z = 0.0f;
        for (i64 c = 0; c < p.classes; c++) {
            float e = expf(lr[c] - mx);
            gr[c] = e;
            z += e;
        }
        p.loss[r] = logf(z) + mx - lr[y];
        p.correct[r] = arg == y ? 1 : 0;
        for (i64 c = 0; c < p.classes; c++) gr[c] /= z * ((float)p.n);
        gr[y] -= p.inv_n;
    }
}

KERNEL sigmoid_bce(const LossParams p) {
    GRID_STRIDE(i, p.n) {
        float z = p.logits[i], y = p.targets[i];
        float sp_neg = z > 0.0f ? log1pf(expf(-z)) : -z + log1pf(expf(z));
        float sp_pos = sp_neg + z;
        p.loss[i] = p.pos_weight * y * sp_neg + (1.0f - y) * sp_pos;
        float s = sigmoid_f(z);
        p.dlogits[i] = (p.pos_weight * y * (s - 1.0f) + (1.0f - y) * s) * p.inv_n;
    }
}
