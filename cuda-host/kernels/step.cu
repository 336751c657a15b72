// The verification step path: the core's recurrent step (`Kernels::Reference`) for many
// streams at once, one time step per launch. One block per stream; the block's threads
// share the stream's activations in shared memory and split every sub-op over its output
// channels (thread t takes channels t, t + blockDim.x, ...). Each output value is computed
// by one thread in exactly the core's order: sequential f32 dot products starting from 0,
// LayerNorm/RMSNorm statistics summed sequentially by thread 0, and the same formulas for
// GELU, SiLU, sigmoid, softplus and exp as the core. Compiled with FMA contraction off
// (NVRTC --fmad=false; the emulator with -ffp-contract=off), IEEE division and sqrt. The
// elementary functions exp, log1p and erf are the device's own (see below), not the core's,
// so the results agree with the core's to within a float tier, not bit for bit.
//
// The recurrent state lives on the device as the core's state vector per stream:
// state[s * state_len ...], layers in order, each layer laid out as the core lays it out
// (S4D: [d_model][d_state/2][re, im]; Mamba-1: conv history [d_inner][d_conv-1] then the
// SSM state [d_inner][d_state]). A stream whose step index is past its length in this
// launch (t >= lens[s]) is left untouched: its block returns at once.
//
// Weights: one packed f32 buffer; woff[i] is tensor i's offset (-1: absent). Matrices are
// stored transposed ([cols][rows]) so that neighbouring threads (neighbouring rows) read
// neighbouring addresses; the arithmetic is the same row dot product.

struct StepParams {
    const float* w;
    const i64* woff;
    const float* x;    // inputs [batch][steps][d_in]
    float* out;        // outputs [batch][steps][d_out]
    float* state;      // [batch][state_len]
    const i64* lens;   // steps each stream takes in this launch sequence
    float* probe;      // step_math_probe output
    i64 batch;
    i64 steps;
    i64 t;
    i64 d_in;
    i64 d_out;
    i64 state_len;
    i64 n_layers;
    i64 d_model;
    i64 d_state;
    i64 d_inner;
    i64 d_conv;
    i64 dt_rank;
    i64 flags;
    float eps;
    int nslots;  // tensor slots; woff holds 2 * nslots entries (see step_q)
};

// flags
#define STEP_PRENORM 1
#define STEP_GLU 2
#define STEP_FINAL_NORM 4
#define STEP_CONV_BIAS 8
#define STEP_IN_BIAS 16
#define STEP_OUT_BIAS 32

// Tensor slots: 6 global, then `per layer` slots for each layer.
#define SW_ENC 0
#define SW_ENC_B 1
#define SW_NORMF 2
#define SW_NORMF_B 3
#define SW_DEC 4
#define SW_DEC_B 5
#define SW_GLOBAL 6
// S4D layer slots
#define S4_NORM 0
#define S4_NORM_B 1
#define S4_DA 2
#define S4_CB 3
#define S4_D 4
#define S4_OUT 5
#define S4_OUT_B 6
#define S4_PER_LAYER 7
// Mamba-1 layer slots
#define MB_NORM 0
#define MB_IN 1
#define MB_IN_B 2
#define MB_CONV_W 3
#define MB_CONV_B 4
#define MB_XPROJ 5
#define MB_DT_W 6
#define MB_DT_B 7
#define MB_A 8
#define MB_D 9
#define MB_OUT 10
#define MB_OUT_B 11
#define MB_PER_LAYER 12

// ---- exp, log1p and erf: the device's own IEEE single-precision functions (NVRTC: the
// CUDA math library's expf, log1pf and erff, documented to within 2, 1 and 2 ulp of the
// correctly rounded result; the emulator: the host C library's). The core computes these
// with its own f32 routines, so results may differ from the core's by a few ulp; the
// differences propagate through the recurrences and the comparison is a float tier
// (`Tier::STEP` in src/verify.rs). The step-math stub build (TINYSSM_STEP_MATH_STUB, used
// only by the PTX test) replaces them with plain arithmetic so that the kernels' own code
// can be checked for contraction apart from the library's.
#ifdef TINYSSM_STEP_MATH_STUB
DEVFN float ref_expf(float x) { return x * 0.5f + 1.0f; }
DEVFN float ref_log1pf(float x) { return x / (2.0f + x); }
DEVFN float ref_erff(float x) { return x / (1.0f + x * x); }
#else
DEVFN float ref_expf(float x) { return expf(x); }
DEVFN float ref_log1pf(float x) { return log1pf(x); }
DEVFN float ref_erff(float x) { return erff(x); }
#endif

// The core's kernels::{sigmoid, silu, softplus, gelu} formulas over the functions above.
DEVFN float ref_sigmoid(float x) { return 1.0f / (1.0f + ref_expf(-x)); }
DEVFN float ref_silu(float x) { return x / (1.0f + ref_expf(-x)); }
DEVFN float ref_softplus(float x) { return x > 20.0f ? x : ref_log1pf(ref_expf(x)); }
DEVFN float ref_gelu(float x) {
    return 0.5f * x * (1.0f + ref_erff(x * 0.707106781186547524400844362104849039f));
}

// ---- block-cooperative sub-ops (every thread of the block calls them)

DEVFN const float* step_w(const StepParams& p, i64 slot) {
    i64 o = p.woff[slot];
    return o < 0 ? (const float*)0 : p.w + o;
}

// Quantized matrices: woff[nslots + slot] is the offset of the slot's quantization record
// [mode, xmax, scale[0..rows]] (-1: an f32 matrix), and the matrix slot holds the int8
// values q as floats (exact), transposed like every matrix. Modes, as the core's
// kernels::matvec with Kernels::Reference:
//   1  int8 rows times f32 activations (reference::dot_i8: the sequential f32 sum of q·x,
//      then times the row's scale);
//   2  w8a8 with the dynamic activation scale max|x| / 127 (kernels::w8a8): x quantized to
//      clamp(round_half_away(x · 127/max|x|), ±127), exact i32 dot products per chunk of
//      W8A8_CHUNK columns summed in f32, times (row scale · max|x|/127); an all-zero or
//      non-finite x takes mode 1's arithmetic;
//   3  w8a8 with the static bound xmax calibrated at conversion (NaN quantizes to 0).
#define STEP_W8A8_CHUNK 512
DEVFN const float* step_q(const StepParams& p, i64 slot) {
    i64 o = p.woff[p.nslots + slot];
    return o < 0 ? (const float*)0 : p.w + o;
}

// out[r] = sum_j W[r, j] in[j] (+ bias[r]), W stored transposed (wt[j * rows + r]); the
// sum is sequential from 0 and the bias added last, as the core's linear. `q`: the matrix's
// quantization record (null for f32 values), see step_q.
DEVFN void step_linear(const float* q, const float* wt, const float* bias, const float* in,
                       i64 rows, i64 cols, float* out) {
    const int mode = q ? (int)q[0] : 0;
    // Every thread finds the activation bound itself (a few hundred reads; no shared
    // memory or barrier needed for it).
    float amax = 0.0f;
    bool w8 = false;
    if (mode == 2) {
        bool finite = true;
        for (i64 j = 0; j < cols; j++) {
            finite = finite && isfinite(in[j]);
            float a = fabsf(in[j]);
            amax = a > amax ? a : amax;
        }
        w8 = finite && amax != 0.0f;
    } else if (mode == 3) {
        amax = q[1];
        w8 = true;
    }
    const float sx = w8 ? amax / 127.0f : 0.0f;
    const float inv = w8 ? 127.0f / amax : 0.0f;
    for (i64 r = threadIdx.x; r < rows; r += blockDim.x) {
        float acc = 0.0f;
        if (w8) {
            for (i64 c0 = 0; c0 < cols; c0 += STEP_W8A8_CHUNK) {
                const i64 m = cols - c0 < STEP_W8A8_CHUNK ? cols - c0 : STEP_W8A8_CHUNK;
                int part = 0;
                for (i64 j = c0; j < c0 + m; j++) {
                    float v = roundf(in[j] * inv);
                    int qx = isnan(v) ? 0 : (int)(v < -127.0f ? -127.0f : (v > 127.0f ? 127.0f : v));
                    part += (int)wt[j * rows + r] * qx;
                }
                acc += (float)part;
            }
            acc = acc * (q[2 + r] * sx);
        } else {
            for (i64 j = 0; j < cols; j++) acc += wt[j * rows + r] * in[j];
            if (mode != 0) acc = acc * q[2 + r];
        }
        out[r] = bias ? acc + bias[r] : acc;
    }
    __syncthreads();
}

// LayerNorm (biased variance) of x[0..n] into out (may be x itself).
DEVFN void step_layer_norm(const float* x, const float* g, const float* b, i64 n, float eps,
                           float* out, float* stats) {
    if (threadIdx.x == 0) {
        float mean = 0.0f;
        for (i64 i = 0; i < n; i++) mean += x[i];
        mean /= (float)n;
        float var = 0.0f;
        for (i64 i = 0; i < n; i++) {
            float d = x[i] - mean;
            var += d * d;
        }
        var /= (float)n;
        stats[0] = mean;
        stats[1] = 1.0f / sqrtf(var + eps);
    }
    __syncthreads();
    float mean = stats[0], inv = stats[1];
    for (i64 c = threadIdx.x; c < n; c += blockDim.x) out[c] = (x[c] - mean) * inv * g[c] + b[c];
    __syncthreads();
}

// RMSNorm of x[0..n] into out: w * (x * (1 / sqrt(sum(x²) / n + eps))).
DEVFN void step_rms_norm(const float* x, const float* g, i64 n, float eps, float* out,
                         float* stats) {
    if (threadIdx.x == 0) {
        float ss = 0.0f;
        for (i64 i = 0; i < n; i++) ss += x[i] * x[i];
        stats[0] = 1.0f / sqrtf(ss / (float)(n > 0 ? n : 1) + eps);
    }
    __syncthreads();
    float inv = stats[0];
    for (i64 c = threadIdx.x; c < n; c += blockDim.x) out[c] = g[c] * (x[c] * inv);
    __syncthreads();
}

// Loads the stream's input vector of this step into in[0..d_in].
DEVFN void step_load_input(const StepParams& p, i64 s, float* in) {
    const float* src = p.x + (s * p.steps + p.t) * p.d_in;
    for (i64 j = threadIdx.x; j < p.d_in; j += blockDim.x) in[j] = src[j];
    __syncthreads();
}

// Shared floats: x[h], z[h], o[2h or h], in[d_in], stats[2].
KERNEL step_s4d(const StepParams p) {
    i64 s = blockIdx.x;
    if (s >= p.batch || p.t >= p.lens[s]) return;
    SHARED_DYN(float, sm);
    const i64 h = p.d_model, half = p.d_state / 2;
    const bool glu = (p.flags & STEP_GLU) != 0;
    const i64 no = glu ? 2 * h : h;
    float* x = sm;
    float* z = x + h;
    float* o = z + h;
    float* in = o + no;
    float* stats = in + p.d_in;
    step_load_input(p, s, in);
    step_linear(step_q(p, SW_ENC), step_w(p, SW_ENC), step_w(p, SW_ENC_B), in, h, p.d_in, x);
    float* st = p.state + s * p.state_len;
    for (i64 l = 0; l < p.n_layers; l++) {
        const i64 base = SW_GLOBAL + l * S4_PER_LAYER;
        const float* nw = step_w(p, base + S4_NORM);
        const float* nb = step_w(p, base + S4_NORM_B);
        if (p.flags & STEP_PRENORM) {
            step_layer_norm(x, nw, nb, h, p.eps, z, stats);
        } else {
            for (i64 c = threadIdx.x; c < h; c += blockDim.x) z[c] = x[c];
            __syncthreads();
        }
        const float* da = step_w(p, base + S4_DA);
        const float* cb = step_w(p, base + S4_CB);
        const float* dd = step_w(p, base + S4_D);
        float* ls = st + l * h * half * 2;
        for (i64 ch = threadIdx.x; ch < h; ch += blockDim.x) {
            const float u = z[ch];
            float y = 0.0f;
            float* hs = ls + ch * half * 2;
            const float* am = da + ch * half * 2;
            const float* cm = cb + ch * half * 2;
            for (i64 m = 0; m < half; m++) {
                float hr = hs[2 * m], hi = hs[2 * m + 1];
                float nr = (am[2 * m] * hr - am[2 * m + 1] * hi) + u;
                float ni = am[2 * m] * hi + am[2 * m + 1] * hr;
                hs[2 * m] = nr;
                hs[2 * m + 1] = ni;
                y += cm[2 * m] * nr - cm[2 * m + 1] * ni;
            }
            z[ch] = ref_gelu(2.0f * y + dd[ch] * u);
        }
        __syncthreads();
        step_linear(step_q(p, base + S4_OUT), step_w(p, base + S4_OUT), step_w(p, base + S4_OUT_B), z, no, h, o);
        for (i64 c = threadIdx.x; c < h; c += blockDim.x) {
            x[c] += glu ? o[c] * ref_sigmoid(o[h + c]) : o[c];
        }
        __syncthreads();
        if (!(p.flags & STEP_PRENORM)) step_layer_norm(x, nw, nb, h, p.eps, x, stats);
    }
    const float* feat = x;
    if (p.flags & STEP_FINAL_NORM) {
        step_layer_norm(x, step_w(p, SW_NORMF), step_w(p, SW_NORMF_B), h, p.eps, z, stats);
        feat = z;
    }
    step_linear(step_q(p, SW_DEC), step_w(p, SW_DEC), step_w(p, SW_DEC_B), feat, p.d_out, h,
                p.out + (s * p.steps + p.t) * p.d_out);
}

// Shared floats: resid[dm], normed[dm], xz[2 di], dbc[r + 2n], in[d_in], stats[2].
KERNEL step_mamba(const StepParams p) {
    i64 s = blockIdx.x;
    if (s >= p.batch || p.t >= p.lens[s]) return;
    SHARED_DYN(float, sm);
    const i64 dm = p.d_model, di = p.d_inner, n = p.d_state, r = p.dt_rank, dc = p.d_conv;
    const i64 hl = dc - 1;
    float* resid = sm;
    float* normed = resid + dm;
    float* xz = normed + dm;
    float* dbc = xz + 2 * di;
    float* in = dbc + r + 2 * n;
    float* stats = in + p.d_in;
    float* xs = xz;
    const float* zs = xz + di;
    step_load_input(p, s, in);
    step_linear(step_q(p, SW_ENC), step_w(p, SW_ENC), step_w(p, SW_ENC_B), in, dm, p.d_in, resid);
    float* st = p.state + s * p.state_len;
    for (i64 l = 0; l < p.n_layers; l++) {
        const i64 base = SW_GLOBAL + l * MB_PER_LAYER;
        float* hist = st + l * (di * hl + di * n);
        float* ssm = hist + di * hl;
        step_rms_norm(resid, step_w(p, base + MB_NORM), dm, p.eps, normed, stats);
        step_linear(step_q(p, base + MB_IN), step_w(p, base + MB_IN), step_w(p, base + MB_IN_B), normed, 2 * di, dm, xz);
        const float* cw = step_w(p, base + MB_CONV_W);
        const float* cbias = step_w(p, base + MB_CONV_B);
        for (i64 c = threadIdx.x; c < di; c += blockDim.x) {
            const float* wc = cw + c * dc;
            float xv = xs[c];
            float acc;
            if (hl == 0) {
                acc = wc[0] * xv;
            } else {
                float* hc = hist + c * hl;
                acc = 0.0f;
                for (i64 i = 0; i < hl; i++) acc += hc[i] * wc[i];
                acc += xv * wc[hl];
                for (i64 i = 0; i + 1 < hl; i++) hc[i] = hc[i + 1];
                hc[hl - 1] = xv;
            }
            if (cbias) acc += cbias[c];
            xs[c] = ref_silu(acc);
        }
        __syncthreads();
        step_linear(step_q(p, base + MB_XPROJ), step_w(p, base + MB_XPROJ), (const float*)0, xs, r + 2 * n, di, dbc);
        const float* dtw = step_w(p, base + MB_DT_W);
        const float* dtq = step_q(p, base + MB_DT_W);  // int8 rows: mode 1 (the core's dot_row)
        const float* dtb = step_w(p, base + MB_DT_B);
        const float* av = step_w(p, base + MB_A);
        const float* dv = step_w(p, base + MB_D);
        const float* bm = dbc + r;
        const float* cm = dbc + r + n;
        for (i64 ch = threadIdx.x; ch < di; ch += blockDim.x) {
            float acc = 0.0f;
            for (i64 j = 0; j < r; j++) acc += dtw[j * di + ch] * dbc[j];
            if (dtq) acc = acc * dtq[2 + ch];
            const float dt = ref_softplus(acc + dtb[ch]);
            const float u = xs[ch];
            float y = 0.0f;
            float* hrow = ssm + ch * n;
            const float* arow = av + ch * n;
            for (i64 i = 0; i < n; i++) {
                float hv = ref_expf(dt * arow[i]) * hrow[i] + (dt * bm[i]) * u;
                hrow[i] = hv;
                y += hv * cm[i];
            }
            y = y + u * dv[ch];
            xs[ch] = y * ref_silu(zs[ch]);
        }
        __syncthreads();
        step_linear(step_q(p, base + MB_OUT), step_w(p, base + MB_OUT), step_w(p, base + MB_OUT_B), xs, dm, di, normed);
        for (i64 c = threadIdx.x; c < dm; c += blockDim.x) resid[c] += normed[c];
        __syncthreads();
    }
    step_rms_norm(resid, step_w(p, SW_NORMF), dm, p.eps, normed, stats);
    step_linear(step_q(p, SW_DEC), step_w(p, SW_DEC), step_w(p, SW_DEC_B), normed, p.d_out, dm,
                p.out + (s * p.steps + p.t) * p.d_out);
}

// The scalar functions over x[0..batch]: probe[f * batch + i] for f = exp, log1p, erf,
// gelu, silu, sigmoid, softplus (tested against the core's within an ulp bound), and probe[7 *
// batch] = sizeof(StepParams) (the layout check against the Rust mirror).
KERNEL step_math_probe(const StepParams p) {
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < p.batch;
         i += (i64)gridDim.x * blockDim.x) {
        float v = p.x[i];
        p.probe[0 * p.batch + i] = ref_expf(v);
        p.probe[1 * p.batch + i] = ref_log1pf(v);
        p.probe[2 * p.batch + i] = ref_erff(v);
        p.probe[3 * p.batch + i] = ref_gelu(v);
        p.probe[4 * p.batch + i] = ref_silu(v);
        p.probe[5 * p.batch + i] = ref_sigmoid(v);
        p.probe[6 * p.batch + i] = ref_softplus(v);
        if (i == 0) p.probe[7 * p.batch] = (float)sizeof(StepParams);
    }
}
