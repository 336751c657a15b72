// The verification step path for integer-only models (`Compute::Int`, format 1.3): the
// core's integer step (core/src/int_step.rs: S4D and Mamba sensor), its integer audio front
// end (core/src/frontend_int.rs) and its fixed-point functions (core/src/fixed.rs) for many
// streams at once. Integer arithmetic only: every rounding, saturation and wrap of the core
// is reproduced, so outputs and states equal the core's bit for bit.
//
// One block per stream; a launch advances every stream by `nt` steps (t0 .. t0 + nt of the
// window; a stream stops at its length lens[s]). Each sub-op is split over output channels
// (matrix rows, S4D channels, Mamba channels, FFT butterflies, mel filters): every value is
// computed by one thread in the core's order, and the only cross-thread combinations are
// integer sums and maxima that cannot wrap (norm statistics, the FFT block maximum), which are
// exact in any order. Where the core wraps (i32 dot products, i64 state sums) the code wraps
// too, through unsigned arithmetic (no signed overflow in C++).
//
// Audio models take one 16-bit PCM sample per step (x_dim = 1): the front end runs on the
// device, and a step whose sample completes a frame runs the model and sets ready[s][t] = 1
// (0 otherwise; out[s][t] is then untouched). Vector models take d_in i16 values per step
// and every step is ready.
//
// State: the core's state vector per stream, state[s * state_len ...]: the model's part
// (S4D: per layer [d_model][d_state/2][re, im]; Mamba: per layer the conv history
// [d_inner][d_conv-1] then the SSM state [d_inner][d_state]) then the front end's ring of
// frame_len samples, its position and its sample count.
//
// Tensors: one byte buffer, woff[slot] the byte offset of each (-1: absent), exactly as the
// blob holds them (I8R matrices row-major int8 with their [rows][2] multiplier/shift pairs,
// i16 and i32 vectors, the integer plans padded with zeros to 16 entries, which is what the
// core reads past a short plan). `tab` holds the core's own lookup tables (fixed::tables,
// frontend_int::sin_q30_table), uploaded rather than re-derived.

typedef unsigned long long si_u64;

struct StepIntParams {
    const unsigned char* w;
    const i64* woff;
    const unsigned* tab;  // exp2[64] | phi[385] | rsqrt seeds[32] | sin[257]
    const short* x;       // [batch][steps][x_dim]
    int* out;             // [batch][steps][d_out]
    int* ready;           // [batch][steps]
    int* state;           // [batch][state_len]
    const i64* lens;      // steps each stream takes in this window
    i64 batch;
    i64 steps;
    i64 t0;
    i64 nt;
    i64 x_dim;
    i64 d_in;
    i64 d_out;
    i64 state_len;
    i64 model_state;
    i64 n_layers;
    i64 d_model;
    i64 d_state;
    i64 d_inner;
    i64 d_conv;
    i64 dt_rank;
    i64 flags;
    i64 fe;
    i64 frame_len;
    i64 hop;
    i64 n_fft;
    i64 n_mels;
    i64 feat_frac;
    i64 filter_frac;
    i64 eps_mant;
    i64 eps_exp;
    i64 probe;  // step_int_probe: which function
};

#define SI_PRENORM 1
#define SI_GLU 2
#define SI_FINAL_NORM 4
#define SI_CONV_BIAS 8
#define SI_IN_BIAS 16
#define SI_OUT_BIAS 32

// Global tensor slots, then per layer.
#define SIG_ENC_Q 0
#define SIG_ENC_RQ 1
#define SIG_ENC_B 2
#define SIG_NORMF 3
#define SIG_NORMF_B 4
#define SIG_DEC_Q 5
#define SIG_DEC_RQ 6
#define SIG_DEC_B 7
#define SIG_PLAN 8
#define SIG_WINDOW 9
#define SIG_FILTERS 10
#define SIG_N 11
// S4D layer slots
#define SIS_PLAN 0
#define SIS_NORM 1
#define SIS_NORM_B 2
#define SIS_DA 3
#define SIS_CB 4
#define SIS_D 5
#define SIS_OUT_Q 6
#define SIS_OUT_RQ 7
#define SIS_OUT_B 8
#define SIS_N 9
// Mamba layer slots
#define SIM_PLAN 0
#define SIM_NORM 1
#define SIM_IN_Q 2
#define SIM_IN_RQ 3
#define SIM_IN_B 4
#define SIM_CONV_W 5
#define SIM_CONV_B 6
#define SIM_XP_Q 7
#define SIM_XP_RQ 8
#define SIM_DT_Q 9
#define SIM_DT_RQ 10
#define SIM_DT_B 11
#define SIM_A 12
#define SIM_D 13
#define SIM_OUT_Q 14
#define SIM_OUT_RQ 15
#define SIM_OUT_B 16
#define SIM_N 17

// Table offsets in `tab`.
#define SI_TAB_EXP2 0
#define SI_TAB_PHI 64
#define SI_PHI_LEN 385
#define SI_TAB_RSQRT (64 + 385)
#define SI_TAB_SIN (64 + 385 + 32)
#define SI_TAB_LEN (64 + 385 + 32 + 257)
#define SI_MAX_N_FFT 1024
#define SI_QUARTER 256

// Plan indices (int_step::plan).
#define PG_IN_FRAC 1
#define PG_RESID_FRAC 2
#define PG_NORMF_FRAC 3
#define PG_NORMF_EPS 4
#define PG_NORMF_W_FRAC 5
#define PG_OUT_FRAC 6
#define PL_NORM_FRAC 0
#define PL_NORM_EPS 1
#define PL_NORM_W_FRAC 2
#define PS_H_FRAC 3
#define PS_CB_FRAC 4
#define PS_D_FRAC 5
#define PS_GELU_FRAC 6
#define PS_GATE_FRAC 7
#define PM_X_FRAC 3
#define PM_Z_FRAC 4
#define PM_CONVW_FRAC 5
#define PM_SILU_FRAC 6
#define PM_B_FRAC 8
#define PM_C_FRAC 9
#define PM_SP_FRAC 10
#define PM_A_FRAC 11
#define PM_H_FRAC 12
#define PM_D_FRAC 13
#define PM_Y_FRAC 14
#define PM_O_FRAC 15

#define SI_I64_MAX 9223372036854775807LL
#define SI_I64_MIN (-SI_I64_MAX - 1)
#define SI_I32_MAX 2147483647
#define SI_I32_MIN (-SI_I32_MAX - 1)
#define SI_U64_MAX 18446744073709551615ULL

// fixed.rs constants.
#define SI_LN2_Q32 2977044472ULL
#define SI_LOG2E_Q30 1549082005ULL
#define SI_LOG2E_Q31 3098164009LL
#define SI_INV6_Q32 715827883ULL
#define SI_INV24_Q32 178956971ULL
// int_step.rs: ln 2 in Q0.31.
#define SI_LN2_Q31 1488522236LL

// ---- integer helpers (fixed.rs)

DEVFN int si_clz64(si_u64 v) {
#ifdef TINYSSM_EMU
    return v ? __builtin_clzll(v) : 64;
#else
    return __clzll((long long)v);
#endif
}
DEVFN unsigned si_bits(si_u64 v) { return 64u - (unsigned)si_clz64(v); }

DEVFN si_u64 si_umulhi(si_u64 a, si_u64 b) {
#ifdef TINYSSM_EMU
    return (si_u64)(((unsigned __int128)a * b) >> 64);
#else
    return __umul64hi(a, b);
#endif
}
DEVFN i64 si_mulhi(i64 a, i64 b) {
#ifdef TINYSSM_EMU
    return (i64)(((__int128)a * b) >> 64);
#else
    return __mul64hi(a, b);
#endif
}

DEVFN i64 si_wadd(i64 a, i64 b) { return (i64)((si_u64)a + (si_u64)b); }
DEVFN i64 si_wsub(i64 a, i64 b) { return (i64)((si_u64)a - (si_u64)b); }
DEVFN i64 si_wmul(i64 a, i64 b) { return (i64)((si_u64)a * (si_u64)b); }
DEVFN int si_wadd32(int a, int b) { return (int)((unsigned)a + (unsigned)b); }

DEVFN i64 si_sat_add(i64 a, i64 b) {
    i64 r = si_wadd(a, b);
    if (((a ^ r) & (b ^ r)) < 0) return a < 0 ? SI_I64_MIN : SI_I64_MAX;
    return r;
}
DEVFN i64 si_sat_mul(i64 a, i64 b) {
    i64 lo = si_wmul(a, b);
    i64 hi = si_mulhi(a, b);
    if (hi == (lo >> 63)) return lo;
    return ((a < 0) != (b < 0)) ? SI_I64_MIN : SI_I64_MAX;
}
DEVFN si_u64 si_sat_mul_u(si_u64 a, si_u64 b) { return si_umulhi(a, b) ? SI_U64_MAX : a * b; }
DEVFN si_u64 si_sat_add_u(si_u64 a, si_u64 b) { return a + b < a ? SI_U64_MAX : a + b; }
DEVFN si_u64 si_sat_sub_u(si_u64 a, si_u64 b) { return a > b ? a - b : 0; }
DEVFN si_u64 si_uabs(i64 x) { return x < 0 ? (si_u64)0 - (si_u64)x : (si_u64)x; }

DEVFN short si_sat16(i64 x) { return x < -32768 ? (short)-32768 : x > 32767 ? (short)32767 : (short)x; }
DEVFN int si_sat32(i64 x) {
    return x < (i64)SI_I32_MIN ? SI_I32_MIN : x > (i64)SI_I32_MAX ? SI_I32_MAX : (int)x;
}

DEVFN i64 si_round_shr(i64 x, unsigned s) {
    if (s == 0) return x;
    if (s > 64) return 0;
    if (s == 64) return x == SI_I64_MIN ? -1 : 0;
    i64 q = x >> s;
    si_u64 r = (si_u64)x & ((1ULL << s) - 1);
    si_u64 half = 1ULL << (s - 1);
    return (r > half || (r == half && x >= 0)) ? q + 1 : q;
}
DEVFN si_u64 si_round_shr_u(si_u64 x, unsigned s) {
    if (s == 0) return x;
    if (s > 64) return 0;
    if (s == 64) return x >> 63;
    return (x >> s) + ((x >> (s - 1)) & 1);
}
DEVFN i64 si_sat_shl(i64 x, unsigned s) {
    if (x == 0) return 0;
    if (s >= 63) return x < 0 ? SI_I64_MIN : SI_I64_MAX;
    if (x > (SI_I64_MAX >> s)) return SI_I64_MAX;
    if (x < (SI_I64_MIN >> s)) return SI_I64_MIN;
    return (i64)((si_u64)x << s);
}
// int_step::shift_round: v · 2^-s rounded for s > 0, a saturating left shift for s < 0.
DEVFN i64 si_shift_round(i64 v, i64 s) {
    if (s >= 0) return si_round_shr(v, (unsigned)(s < 64 ? s : 64));
    i64 a = -s;
    return si_sat_shl(v, (unsigned)(a < 63 ? a : 63));
}
DEVFN si_u64 si_round_div_u(si_u64 n, si_u64 d) {
    if (d == 0) return SI_U64_MAX;
    return si_sat_add_u(n, d >> 1) / d;
}

// ---- exp

DEVFN si_u64 si_exp2_q32(const unsigned* tab, i64 t, i64* n_out) {
    i64 n = t >> 32;
    si_u64 f = (si_u64)t & 0xFFFFFFFFULL;
    unsigned hi = (unsigned)(f >> 26);
    si_u64 r = f & 0x03FFFFFFULL;
    si_u64 y = (r * SI_LN2_Q32 + (1ULL << 31)) >> 32;
    si_u64 y2 = (y * y + (1ULL << 31)) >> 32;
    si_u64 y3 = (y2 * y + (1ULL << 31)) >> 32;
    si_u64 y4 = (y2 * y2 + (1ULL << 31)) >> 32;
    si_u64 excess = y + ((y2 + 1) >> 1) + ((y3 * SI_INV6_Q32 + (1ULL << 31)) >> 32) +
                    ((y4 * SI_INV24_Q32 + (1ULL << 31)) >> 32);
    si_u64 base = hi < 64 ? (si_u64)tab[SI_TAB_EXP2 + hi] : (1ULL << 31);
    *n_out = n;
    return base + ((base * excess + (1ULL << 31)) >> 32);
}
DEVFN si_u64 si_exp2_neg_to(const unsigned* tab, i64 t, unsigned out_frac) {
    if (t > 0) t = 0;
    i64 n;
    si_u64 m = si_exp2_q32(tab, t, &n);
    i64 s = 31 - (i64)(out_frac < 31 ? out_frac : 31) - n;
    return si_round_shr_u(m, (unsigned)(s < 65 ? s : 65));
}
DEVFN i64 si_neg_log2e_arg(si_u64 ax, unsigned frac, si_u64 k) {
    si_u64 p = ax * k * SI_LOG2E_Q30;
    si_u64 t = frac <= 2 ? p << (2 - frac) : si_round_shr_u(p, frac - 2);
    return -(i64)t;
}
DEVFN si_u64 si_exp_neg_abs_q31(const unsigned* tab, short x, unsigned frac, si_u64 k) {
    return si_exp2_neg_to(tab, si_neg_log2e_arg(si_uabs(x), frac, k), 31);
}
DEVFN int si_exp_neg_q31(const unsigned* tab, int x, unsigned frac) {
    if (frac > 31) frac = 31;
    if (x >= 0) return SI_I32_MAX;
    i64 xx = (frac <= 24 && (i64)x < -(100LL << frac)) ? -(100LL << frac) : (i64)x;
    i64 p = xx * SI_LOG2E_Q31;
    i64 t = frac == 0 ? si_sat_mul(p, 2) : si_round_shr(p, frac - 1);
    si_u64 e = si_exp2_neg_to(tab, t, 31);
    return si_sat32((i64)(e < (si_u64)SI_I32_MAX ? e : (si_u64)SI_I32_MAX));
}

// ---- sigmoid, SiLU

DEVFN si_u64 si_sigmoid_to(const unsigned* tab, short x, unsigned frac, unsigned out_frac) {
    if (frac > 15) frac = 15;
    if (out_frac > 31) out_frac = 31;
    si_u64 e = si_exp_neg_abs_q31(tab, x, frac, 1);
    si_u64 d = (1ULL << 31) + e;
    si_u64 num = x >= 0 ? 1ULL << (31 + out_frac) : e << out_frac;
    return si_round_div_u(num, d);
}
DEVFN short si_sigmoid(const unsigned* tab, short x, unsigned frac) {
    return si_sat16((i64)si_sigmoid_to(tab, x, frac, 15));
}
DEVFN short si_silu(const unsigned* tab, short x, unsigned frac) {
    i64 s = (i64)si_sigmoid_to(tab, x, frac, 31);
    return si_sat16(si_round_shr((i64)x * s, 31));
}

// ---- log2 / ln

DEVFN si_u64 si_log2_mantissa(si_u64 m, unsigned bits) {
    if (m < (1ULL << 30)) m = 1ULL << 30;
    if (m > (1ULL << 31) - 1) m = (1ULL << 31) - 1;
    si_u64 r = 0;
    unsigned nb = bits < 32 ? bits : 32;
    for (unsigned i = 0; i < nb; i++) {
        m = (m * m + (1ULL << 29)) >> 30;
        r <<= 1;
        if (m >= (1ULL << 31)) {
            m >>= 1;
            r |= 1;
        }
    }
    return r;
}
DEVFN si_u64 si_log2_fixed(si_u64 v, unsigned bits) {
    if (bits > 30) bits = 30;
    if (v < 1) v = 1;
    si_u64 e = 63 - (si_u64)si_clz64(v);
    si_u64 m = e > 30 ? si_round_shr_u(v, (unsigned)(e - 30)) : v << (30 - e);
    if (m >= (1ULL << 31)) {
        e += 1;
        m = 1ULL << 30;
    }
    si_u64 f = si_round_shr_u(si_log2_mantissa(m, bits + 2), 2);
    return (e << bits) + f;
}
DEVFN int si_log2_u64(si_u64 v) {
    if (v == 0) return SI_I32_MIN;
    return (int)si_log2_fixed(v, 24);
}
DEVFN int si_ln_u64(si_u64 v) {
    if (v == 0) return SI_I32_MIN;
    si_u64 l = si_log2_fixed(v, 30);
    si_u64 e = l >> 30, f = l & ((1ULL << 30) - 1);
    si_u64 q32 = e * SI_LN2_Q32 + si_round_shr_u(f * SI_LN2_Q32, 30);
    return (int)(unsigned)si_round_shr_u(q32, 8);
}

// int_step::softplus_q24: Q7.24 softplus of a Q(15-f).f input.
DEVFN int si_softplus_q24(const unsigned* tab, short x, unsigned frac) {
    if (frac > 15) frac = 15;
    int ax = -(int)si_uabs(x);
    i64 e = (i64)si_exp_neg_q31(tab, ax, frac);
    i64 l = (i64)si_log2_u64((1ULL << 31) + (si_u64)e) - (31LL << 24);
    i64 ln = si_round_shr(l * SI_LN2_Q31, 31);
    i64 pos = x > 0 ? ((i64)x << (24 - frac)) : 0;
    return si_sat32(pos + ln);
}

// ---- GELU: Φ table with linear interpolation

DEVFN short si_gelu(const unsigned* tab, short x, unsigned frac) {
    if (frac > 15) frac = 15;
    si_u64 ax = si_uabs(x);
    si_u64 pos = (ax << 30) >> frac;
    si_u64 idx = pos >> 24;
    si_u64 w = pos & 0xFFFFFFULL;
    si_u64 phi;
    if (idx + 1 < SI_PHI_LEN) {
        si_u64 a = tab[SI_TAB_PHI + idx], b = tab[SI_TAB_PHI + idx + 1];
        phi = a + ((si_sat_sub_u(b, a) * w + (1ULL << 23)) >> 24);
    } else {
        phi = 1ULL << 31;
    }
    if (phi > (1ULL << 31)) phi = 1ULL << 31;
    i64 ph = x < 0 ? (i64)((1ULL << 31) - phi) : (i64)phi;
    return si_sat16(si_round_shr((i64)x * ph, 31));
}

// ---- rsqrt

// (y² · m) compared with 2^124, the product formed exactly (it stays below 2^128, as in the
// core's u128 arithmetic).
DEVFN bool si_rsqrt_gt(si_u64 y, si_u64 m) {
    si_u64 lo1 = y * y, hi1 = si_umulhi(y, y);
    si_u64 lo = lo1 * m;
    si_u64 mid = si_umulhi(lo1, m) + hi1 * m;
    (void)lo;
    return mid > (1ULL << 60) || (mid == (1ULL << 60) && lo > 0);
}
DEVFN void si_rsqrt(const unsigned* tab, si_u64 v, unsigned frac_in, int* m_out, int* e_out) {
    if (v < 1) v = 1;
    i64 frac = frac_in < 255 ? frac_in : 255;
    i64 l = 63 - (i64)si_clz64(v);
    i64 e = l - frac;
    bool odd = (e & 1) != 0;
    i64 top = odd ? 63 : 62;
    si_u64 m62 = l <= top ? v << (top - l) : v >> 1;
    i64 e2 = odd ? e - 1 : e;
    unsigned idx = (unsigned)((m62 >> (top - 4)) & 15) + (odd ? 16 : 0);
    si_u64 y = tab[SI_TAB_RSQRT + idx];
    si_u64 m31 = m62 >> 31;
    for (int i = 0; i < 3; i++) {
        si_u64 y2 = si_sat_mul_u(y, y) >> 31;
        si_u64 my2 = si_sat_mul_u(m31, y2) >> 31;
        si_u64 t = si_sat_sub_u(3ULL << 31, my2);
        y = si_sat_mul_u(y, t) >> 32;
    }
    for (int j = 0; j < 8 && y > 0 && si_rsqrt_gt(y, m62); j++) y -= 1;
    for (int j = 0; j < 8 && !si_rsqrt_gt(y + 1, m62); j++) y += 1;
    i64 ex = -(e2 / 2);
    if (y >= (1ULL << 31)) {
        y >>= 1;
        ex += 1;
    }
    if (y < (1ULL << 30)) y = 1ULL << 30;
    *m_out = (int)y;
    *e_out = (int)ex;
}

// ---- block-cooperative pieces (every thread of the block calls them)

// Sum (mode 0, wrapping u64) or maximum (mode 1) over the block; every thread gets it.
// `red` holds blockDim.x + 1 values.
DEVFN si_u64 si_block_reduce(si_u64 v, si_u64* red, int mode) {
    red[threadIdx.x] = v;
    __syncthreads();
    if (threadIdx.x == 0) {
        si_u64 a = red[0];
        for (unsigned i = 1; i < blockDim.x; i++) a = mode ? (red[i] > a ? red[i] : a) : a + red[i];
        red[blockDim.x] = a;
    }
    __syncthreads();
    return red[blockDim.x];
}

struct SiMat {
    const signed char* q;
    const int* rq;
};

DEVFN const unsigned char* si_slot(const StepIntParams& p, i64 slot) {
    i64 o = p.woff[slot];
    return o < 0 ? (const unsigned char*)0 : p.w + o;
}
DEVFN const int* si_i32(const StepIntParams& p, i64 slot) { return (const int*)si_slot(p, slot); }
DEVFN const short* si_i16(const StepIntParams& p, i64 slot) { return (const short*)si_slot(p, slot); }
DEVFN SiMat si_mat(const StepIntParams& p, i64 qslot) {
    SiMat m;
    m.q = (const signed char*)si_slot(p, qslot);
    m.rq = si_i32(p, qslot + 1);
    return m;
}

// int_step::frac: a plan entry clamped to 0..=max (plans are padded to 16 entries).
DEVFN i64 si_frac(const int* plan, int i, i64 max) {
    i64 v = plan[i];
    return v < 0 ? 0 : v > max ? max : v;
}
DEVFN unsigned si_nl(i64 f) { return (unsigned)(f < 0 ? 0 : f > 15 ? 15 : f); }

// Row r of an I8R matrix: the wrapping i32 dot product, the bias, the rounding requantization.
DEVFN i64 si_row(const SiMat& w, const int* bias, const short* x, i64 cols, i64 r) {
    const signed char* row = w.q + r * cols;
    int acc = 0;
    for (i64 j = 0; j < cols; j++) acc = si_wadd32(acc, (int)row[j] * (int)x[j]);
    if (bias) acc = si_wadd32(acc, bias[r]);
    return si_shift_round((i64)acc * (i64)w.rq[2 * r], (i64)w.rq[2 * r + 1]);
}
DEVFN void si_linear16(const SiMat& w, const int* bias, const short* x, i64 rows, i64 cols,
                       short* out) {
    for (i64 r = threadIdx.x; r < rows; r += blockDim.x) out[r] = si_sat16(si_row(w, bias, x, cols, r));
    __syncthreads();
}

// int_step::norm_int: LayerNorm (b != 0) or RMSNorm of x[0..n] into out (out != x).
DEVFN void si_norm(const unsigned* tab, const short* x, const short* w, const int* b, int eps,
                   i64 fx, i64 fw, i64 fo, i64 n, short* out, si_u64* red) {
    i64 mean = 0;
    if (b) {
        si_u64 part = 0;
        for (i64 i = threadIdx.x; i < n; i += blockDim.x) part += (si_u64)(i64)x[i];
        i64 sum = (i64)si_block_reduce(part, red, 0);
        si_u64 q = (si_uabs(sum) + (si_u64)n / 2) / (si_u64)n;
        mean = sum < 0 ? -(i64)q : (i64)q;
    }
    si_u64 part = 0;
    for (i64 i = threadIdx.x; i < n; i += blockDim.x) {
        si_u64 c = si_uabs((i64)x[i] - mean);
        part += c * c;
    }
    si_u64 ss = si_block_reduce(part, red, 0);
    si_u64 v = ((ss << 16) + (si_u64)n / 2) / (si_u64)n + (si_u64)(eps > 0 ? eps : 0);
    i64 fr = 2 * fx + 16;
    int m, e;
    si_rsqrt(tab, v, (unsigned)(fr < 0 ? 0 : fr > 255 ? 255 : fr), &m, &e);
    i64 s = fx + fw + 31 - e - fo;
    for (i64 i = threadIdx.x; i < n; i += blockDim.x) {
        i64 c = (i64)x[i] - mean;
        i64 pr = c * (i64)w[i];
        i64 y = si_shift_round(si_wmul(pr, m), s);
        if (b) y = si_sat_add(y, (i64)b[i]);
        out[i] = si_sat16(y);
    }
    __syncthreads();
}

// ---- the integer front end (frontend_int.rs)

DEVFN int si_sin_q30(const unsigned* tab, si_u64 t) {
    t %= SI_MAX_N_FFT;
    si_u64 q = t / SI_QUARTER, r = t % SI_QUARTER;
    si_u64 idx = q % 2 == 0 ? r : SI_QUARTER - r;
    int v = (int)tab[SI_TAB_SIN + idx];
    return q < 2 ? v : -v;
}
DEVFN int si_cos_q30(const unsigned* tab, si_u64 t) { return si_sin_q30(tab, t % SI_MAX_N_FFT + SI_QUARTER); }

// frontend_int::fit over buf[0..n]: the smallest rounding shift that brings every
// component to at most `limit`, applied; returns it.
DEVFN int si_fit(int* buf, i64 n, si_u64 limit, si_u64* red) {
    si_u64 mx = 0;
    for (i64 i = threadIdx.x; i < n; i += blockDim.x) {
        si_u64 a = si_uabs(buf[i]);
        if (a > mx) mx = a;
    }
    mx = si_block_reduce(mx, red, 1);
    unsigned s = 0;
    while (s < 33 && si_round_shr_u(mx, s) > limit) s++;
    if (s > 0)
        for (i64 i = threadIdx.x; i < n; i += blockDim.x) buf[i] = si_sat32(si_round_shr(buf[i], s));
    __syncthreads();
    return (int)s;
}

// frontend_int::rfft_q over buf[0..n+2] (n = n_fft): bins as (re, im) pairs; returns the
// exponent.
DEVFN int si_rfft(const unsigned* tab, int* buf, i64 n, si_u64* red) {
    const i64 m = n / 2;
    unsigned lg = 0;
    while ((1LL << lg) < m) lg++;
    if (threadIdx.x == 0) {
        buf[n] = 0;
        buf[n + 1] = 0;
    }
    for (i64 i = threadIdx.x; i < m; i += blockDim.x) {
        i64 j = 0;
        for (unsigned b = 0; b < lg; b++) j |= ((i >> b) & 1) << (lg - 1 - b);
        if (i < j) {
            int ar = buf[2 * i], ai = buf[2 * i + 1];
            buf[2 * i] = buf[2 * j];
            buf[2 * i + 1] = buf[2 * j + 1];
            buf[2 * j] = ar;
            buf[2 * j + 1] = ai;
        }
    }
    __syncthreads();
    int ex = 0;
    for (i64 len = 2; len <= m; len <<= 1) {
        ex += si_fit(buf, n, 1ULL << 29, red);
        const i64 half = len / 2, tstep = SI_MAX_N_FFT / len;
        for (i64 k = threadIdx.x; k < m / 2; k += blockDim.x) {
            const i64 j = k % half, a = (k / half) * len + j, bb = a + half;
            const i64 t = j * tstep;
            const i64 c = si_cos_q30(tab, (si_u64)t), s = si_sin_q30(tab, (si_u64)t);
            const i64 xr = buf[2 * bb], xi = buf[2 * bb + 1];
            const i64 tr = si_round_shr(si_wadd(xr * c, xi * s), 30);
            const i64 ti = si_round_shr(si_wsub(xi * c, xr * s), 30);
            const i64 yr = buf[2 * a], yi = buf[2 * a + 1];
            buf[2 * a] = si_sat32(yr + tr);
            buf[2 * a + 1] = si_sat32(yi + ti);
            buf[2 * bb] = si_sat32(yr - tr);
            buf[2 * bb + 1] = si_sat32(yi - ti);
        }
        __syncthreads();
    }
    ex += si_fit(buf, n, 1ULL << 28, red);
    if (threadIdx.x == 0) {
        const i64 r0 = buf[0], i0 = buf[1];
        buf[0] = si_sat32(2 * (r0 + i0));
        buf[1] = 0;
        buf[n] = si_sat32(2 * (r0 - i0));
        buf[n + 1] = 0;
    }
    const i64 tstep = SI_MAX_N_FFT / n;
    for (i64 k = 1 + threadIdx.x; k <= m / 2; k += blockDim.x) {
        const i64 j = m - k;
        const i64 ar = buf[2 * k], ai = buf[2 * k + 1];
        const i64 br = buf[2 * j], bi = -(i64)buf[2 * j + 1];
        const i64 sr = ar + br, si = ai + bi, dr = ar - br, di = ai - bi;
        const i64 t = k * tstep;
        const i64 c = si_cos_q30(tab, (si_u64)t), s = si_sin_q30(tab, (si_u64)t);
        const i64 tr = si_round_shr(si_wadd(dr * c, di * s), 30);
        const i64 ti = si_round_shr(si_wsub(di * c, dr * s), 30);
        buf[2 * k] = si_sat32(sr + ti);
        buf[2 * k + 1] = si_sat32(si - tr);
        buf[2 * j] = si_sat32(sr - ti);
        buf[2 * j + 1] = si_sat32(-(si + tr));
    }
    __syncthreads();
    return ex - 1;
}

DEVFN int si_esat(i64 v) { return si_sat32(v); }

// frontend_int::add_scaled.
DEVFN void si_norm62(si_u64 m, int e, si_u64* mo, int* eo) {
    unsigned bl = si_bits(m);
    if (m == 0) {
        *mo = 0;
        *eo = e;
    } else if (bl > 62) {
        *mo = si_round_shr_u(m, bl - 62);
        *eo = si_esat((i64)e + (i64)(bl - 62));
    } else {
        *mo = m << (62 - bl);
        *eo = si_esat((i64)e - (i64)(62 - bl));
    }
}
DEVFN void si_add_scaled(si_u64 a, int ea, si_u64 b, int eb, si_u64* mo, int* eo) {
    si_norm62(a, ea, &a, &ea);
    si_norm62(b, eb, &b, &eb);
    if (a == 0) {
        *mo = b;
        *eo = eb;
        return;
    }
    if (b == 0) {
        *mo = a;
        *eo = ea;
        return;
    }
    si_u64 hi = a, lo = b;
    int ehi = ea, elo = eb;
    if (ea < eb) {
        hi = b;
        lo = a;
        ehi = eb;
        elo = ea;
    }
    i64 d = (i64)ehi - (i64)elo;
    d = d < 0 ? 0 : d > 65 ? 65 : d;
    *mo = si_sat_add_u(hi, si_round_shr_u(lo, (unsigned)d));
    *eo = ehi;
}
DEVFN i64 si_ln_q24(si_u64 m, int e) {
    if (m == 0) return SI_I64_MIN / 4;
    return (i64)si_ln_u64(m) + si_round_shr((i64)e * (i64)SI_LN2_Q32, 8);
}

// PCM samples t, t + 1, ... (< end) of stream s into its front end (fe = [ring
// (frame_len), pos, have]) by thread 0, until one completes a frame: then that frame's
// features go into feats[0..n_mels] (i16), *tr is that step and the result is true (uniform
// over the block); false when no sample before `end` completes a frame. Steps that complete
// none get ready = 0. `flag` is four shared i64.
DEVFN bool si_fe_push(const StepIntParams& p, i64 s, i64 t, i64 end, int* fe, int* buf,
                      short* feats, si_u64* red, i64* flag, i64* tr) {
    const unsigned* tab = p.tab;
    const i64 fl = p.frame_len, hop = p.hop, n = p.n_fft;
    if (threadIdx.x == 0) {
        int* ctr = fe + fl;
        bool ready = false;
        i64 pos = 0;
        for (; t < end && !ready; t++) {
            pos = (i64)((si_u64)(unsigned)ctr[0] % (si_u64)fl);
            si_u64 hv = (unsigned)ctr[1];
            i64 have = (i64)(hv < (si_u64)(fl - 1) ? hv : (si_u64)(fl - 1));
            fe[pos] = p.x[(s * p.steps + t) * p.x_dim];
            pos = pos + 1 >= fl ? 0 : pos + 1;
            have += 1;
            ready = have >= fl;
            if (ready) have = fl > hop ? fl - hop : 0;
            else p.ready[s * p.steps + t] = 0;
            ctr[0] = (int)pos;
            ctr[1] = (int)have;
        }
        flag[0] = ready;
        flag[1] = pos;
        flag[2] = t - 1;
    }
    __syncthreads();
    const bool ready = flag[0] != 0;
    const i64 pos = flag[1];
    *tr = flag[2];
    __syncthreads();
    if (!ready) return false;
    const int* window = si_i32(p, SIG_WINDOW);
    // Windowed samples (ring clamped to i16), normalised so the peak is in [2^28, 2^29].
    si_u64 pk = 0;
    for (i64 i = threadIdx.x; i < fl; i += blockDim.x) {
        int sv = fe[(pos + i) % fl];
        sv = sv < -32768 ? -32768 : sv > 32767 ? 32767 : sv;
        si_u64 a = si_uabs((i64)sv * (i64)window[i]);
        if (a > pk) pk = a;
    }
    const si_u64 peak = si_block_reduce(pk, red, 1);
    const int s0 = peak == 0 ? 0 : (int)si_bits(peak) - 29;
    for (i64 i = threadIdx.x; i < n + 2; i += blockDim.x) {
        if (i < fl) {
            int sv = fe[(pos + i) % fl];
            sv = sv < -32768 ? -32768 : sv > 32767 ? 32767 : sv;
            const i64 pr = (i64)sv * (i64)window[i];
            buf[i] = s0 >= 0 ? si_sat32(si_round_shr(pr, (unsigned)s0)) : si_sat32(pr << (-s0));
        } else {
            buf[i] = 0;
        }
    }
    __syncthreads();
    const int e = si_rfft(tab, buf, n, red) + s0 - 46;
    const i64 nb = n / 2 + 1;
    // Power in place (u64 in the two i32 slots of each bin).
    for (i64 k = threadIdx.x; k < nb; k += blockDim.x) {
        const i64 r = buf[2 * k], im = buf[2 * k + 1];
        const si_u64 pw = (si_u64)(r * r) + (si_u64)(im * im);
        buf[2 * k] = (int)(unsigned)pw;
        buf[2 * k + 1] = (int)(unsigned)(pw >> 32);
    }
    __syncthreads();
    const short* filt = si_i16(p, SIG_FILTERS);
    const int pe = 2 * e - (int)p.filter_frac;
    const unsigned fshift = 24 - (unsigned)(p.feat_frac < 24 ? p.feat_frac : 24);
    for (i64 f = threadIdx.x; f < p.n_mels; f += blockDim.x) {
        const short* row = filt + f * nb;
        si_u64 pmax = 0, wsum = 0;
        for (i64 k = 0; k < nb; k++) {
            if (row[k] > 0) {
                const si_u64 pw = ((si_u64)(unsigned)buf[2 * k + 1] << 32) | (unsigned)buf[2 * k];
                if (pw > pmax) pmax = pw;
                wsum += (si_u64)row[k];
            }
        }
        const unsigned bsum = si_bits(pmax) + si_bits(wsum);
        const unsigned sh = bsum > 64 ? bsum - 64 : 0;
        si_u64 acc = 0;
        for (i64 k = 0; k < nb; k++) {
            if (row[k] > 0) {
                const si_u64 pw = ((si_u64)(unsigned)buf[2 * k + 1] << 32) | (unsigned)buf[2 * k];
                acc = si_sat_add_u(acc, si_sat_mul_u(si_round_shr_u(pw, sh), (si_u64)row[k]));
            }
        }
        si_u64 mm;
        int xx;
        si_add_scaled(acc, pe + (int)sh, (si_u64)p.eps_mant, (int)p.eps_exp, &mm, &xx);
        feats[f] = si_sat16(si_round_shr(si_ln_q24(mm, xx), fshift));
    }
    __syncthreads();
    return true;
}

// ---- shared memory and the per-step driver

// Bump allocation in the dynamic shared memory (the Rust side sizes it the same way:
// `step_int.rs` smem_bytes): red[blockDim.x + 1] u64, flag[4] i64, the FFT buffer
// (n_fft + 2 ints, rounded up to 4) when there is a front end, then i16 vectors each rounded
// up to 8.
DEVFN short* si_vec16(unsigned char*& at, i64 n) {
    short* r = (short*)at;
    at += ((n + 7) / 8) * 16;
    return r;
}

// The next input of stream s from step t (< end): true when there is one, in `in` (d_in
// i16), with *tr its step (vector models: t itself; audio models: the next step whose sample
// completes a frame).
DEVFN bool si_input(const StepIntParams& p, i64 s, i64 t, i64 end, int* st, int* buf, short* in,
                    si_u64* red, i64* flag, i64* tr) {
    if (p.fe) return si_fe_push(p, s, t, end, st + p.model_state, buf, in, red, flag, tr);
    const short* src = p.x + (s * p.steps + t) * p.x_dim;
    for (i64 j = threadIdx.x; j < p.d_in; j += blockDim.x) in[j] = src[j];
    __syncthreads();
    *tr = t;
    return true;
}

DEVFN void si_decode(const StepIntParams& p, const short* feat, i64 cols, int* out) {
    const SiMat w = si_mat(p, SIG_DEC_Q);
    const int* b = si_i32(p, SIG_DEC_B);
    for (i64 r = threadIdx.x; r < p.d_out; r += blockDim.x) out[r] = si_sat32(si_row(w, b, feat, cols, r));
    __syncthreads();
}

KERNEL step_int_s4d(const StepIntParams p) {
    const i64 s = blockIdx.x;
    if (s >= p.batch) return;
    SHARED_DYN(si_u64, smem);
    const unsigned* tab = p.tab;
    const i64 h = p.d_model, half = p.d_state / 2;
    const bool glu = (p.flags & SI_GLU) != 0;
    const i64 no = glu ? 2 * h : h;
    si_u64* red = smem;
    i64* flag = (i64*)(red + blockDim.x + 1);
    unsigned char* at = (unsigned char*)(flag + 4);
    int* buf = (int*)at;
    if (p.fe) at += ((p.n_fft + 2 + 3) / 4) * 16;
    short* x = si_vec16(at, h);
    short* z = si_vec16(at, h);
    short* o = si_vec16(at, no);
    short* in = si_vec16(at, p.d_in);
    int* st = p.state + s * p.state_len;
    const int* g = si_i32(p, SIG_PLAN);
    const i64 fr = si_frac(g, PG_RESID_FRAC, 15);
    const i64 end = p.t0 + p.nt < p.lens[s] ? p.t0 + p.nt : p.lens[s];
    for (i64 t = p.t0; t < end; t++) {
        if (!si_input(p, s, t, end, st, buf, in, red, flag, &t)) break;
        si_linear16(si_mat(p, SIG_ENC_Q), si_i32(p, SIG_ENC_B), in, h, p.d_in, x);
        for (i64 l = 0; l < p.n_layers; l++) {
            const i64 base = SIG_N + l * SIS_N;
            const int* pl = si_i32(p, base + SIS_PLAN);
            const short* nw = si_i16(p, base + SIS_NORM);
            const int* nb = si_i32(p, base + SIS_NORM_B);
            const i64 fnorm = si_frac(pl, PL_NORM_FRAC, 15), fnw = si_frac(pl, PL_NORM_W_FRAC, 15);
            const int eps = pl[PL_NORM_EPS];
            i64 fu;
            if (p.flags & SI_PRENORM) {
                si_norm(tab, x, nw, nb, eps, fr, fnw, fnorm, h, z, red);
                fu = fnorm;
            } else {
                for (i64 c = threadIdx.x; c < h; c += blockDim.x) z[c] = x[c];
                __syncthreads();
                fu = fr;
            }
            const i64 fh = si_frac(pl, PS_H_FRAC, 40), fcb = si_frac(pl, PS_CB_FRAC, 40);
            const i64 fd = si_frac(pl, PS_D_FRAC, 40), fg = si_frac(pl, PS_GELU_FRAC, 15);
            const int* da = si_i32(p, base + SIS_DA);
            const int* cb = si_i32(p, base + SIS_CB);
            const int* dd = si_i32(p, base + SIS_D);
            int* ls = st + l * h * half * 2;
            for (i64 ch = threadIdx.x; ch < h; ch += blockDim.x) {
                const i64 u = z[ch];
                const i64 uh = si_shift_round(u, fu - fh);
                int* hs = ls + ch * half * 2;
                const int* am = da + ch * half * 2;
                const int* cm = cb + ch * half * 2;
                i64 acc = 0;
                for (i64 k = 0; k < half; k++) {
                    const i64 hr = hs[2 * k], hi = hs[2 * k + 1];
                    const i64 ar = am[2 * k], ai = am[2 * k + 1];
                    const int nr = si_sat32(si_sat_add(si_shift_round(si_wsub(ar * hr, ai * hi), 30), uh));
                    const int ni = si_sat32(si_shift_round(si_wadd(ar * hi, ai * hr), 30));
                    hs[2 * k] = nr;
                    hs[2 * k + 1] = ni;
                    acc = si_wadd(acc, si_wsub((i64)cm[2 * k] * nr, (i64)cm[2 * k + 1] * ni));
                }
                const i64 du = si_shift_round(si_wmul(dd[ch], u), fd + fu - (fh + fcb));
                const i64 y = si_sat_add(si_sat_mul(acc, 2), du);
                const short gi = si_sat16(si_shift_round(y, fh + fcb - fg));
                z[ch] = si_gelu(tab, gi, si_nl(fg));
            }
            __syncthreads();
            si_linear16(si_mat(p, base + SIS_OUT_Q), si_i32(p, base + SIS_OUT_B), z, no, h, o);
            if (glu) {
                const unsigned fgate = si_nl(si_frac(pl, PS_GATE_FRAC, 15));
                for (i64 c = threadIdx.x; c < h; c += blockDim.x) {
                    const int sg = si_sigmoid(tab, o[h + c], fgate);
                    const int add = si_sat32(si_round_shr((i64)((int)o[c] * sg), 15));
                    x[c] = si_sat16((i64)x[c] + (i64)add);
                }
            } else {
                for (i64 c = threadIdx.x; c < h; c += blockDim.x) x[c] = si_sat16((i64)x[c] + (i64)o[c]);
            }
            __syncthreads();
            if (!(p.flags & SI_PRENORM)) {
                for (i64 c = threadIdx.x; c < h; c += blockDim.x) z[c] = x[c];
                __syncthreads();
                si_norm(tab, z, nw, nb, eps, fr, fnw, fr, h, x, red);
            }
        }
        const short* feat = x;
        if (p.flags & SI_FINAL_NORM) {
            si_norm(tab, x, si_i16(p, SIG_NORMF), si_i32(p, SIG_NORMF_B), g[PG_NORMF_EPS], fr,
                    si_frac(g, PG_NORMF_W_FRAC, 15), si_frac(g, PG_NORMF_FRAC, 15), h, z, red);
            feat = z;
        }
        si_decode(p, feat, h, p.out + (s * p.steps + t) * p.d_out);
        if (threadIdx.x == 0) p.ready[s * p.steps + t] = 1;
    }
}

KERNEL step_int_mamba(const StepIntParams p) {
    const i64 s = blockIdx.x;
    if (s >= p.batch) return;
    SHARED_DYN(si_u64, smem);
    const unsigned* tab = p.tab;
    const i64 dm = p.d_model, di = p.d_inner, n = p.d_state, r = p.dt_rank, dc = p.d_conv;
    const i64 hl = dc - 1;
    si_u64* red = smem;
    i64* flag = (i64*)(red + blockDim.x + 1);
    unsigned char* at = (unsigned char*)(flag + 4);
    int* buf = (int*)at;
    if (p.fe) at += ((p.n_fft + 2 + 3) / 4) * 16;
    short* resid = si_vec16(at, dm);
    short* normed = si_vec16(at, dm);
    short* xz = si_vec16(at, 2 * di);
    short* dbc = si_vec16(at, r + 2 * n);
    short* in = si_vec16(at, p.d_in);
    short* xs = xz;
    const short* zs = xz + di;
    int* st = p.state + s * p.state_len;
    const int* g = si_i32(p, SIG_PLAN);
    const i64 fr = si_frac(g, PG_RESID_FRAC, 15);
    const i64 end = p.t0 + p.nt < p.lens[s] ? p.t0 + p.nt : p.lens[s];
    for (i64 t = p.t0; t < end; t++) {
        if (!si_input(p, s, t, end, st, buf, in, red, flag, &t)) break;
        si_linear16(si_mat(p, SIG_ENC_Q), si_i32(p, SIG_ENC_B), in, dm, p.d_in, resid);
        for (i64 l = 0; l < p.n_layers; l++) {
            const i64 base = SIG_N + l * SIM_N;
            const int* pl = si_i32(p, base + SIM_PLAN);
            int* hist = st + l * (di * hl + di * n);
            int* ssm = hist + di * hl;
            si_norm(tab, resid, si_i16(p, base + SIM_NORM), (const int*)0, pl[PL_NORM_EPS], fr,
                    si_frac(pl, PL_NORM_W_FRAC, 15), si_frac(pl, PL_NORM_FRAC, 15), dm, normed, red);
            si_linear16(si_mat(p, base + SIM_IN_Q), si_i32(p, base + SIM_IN_B), normed, 2 * di, dm, xz);
            const i64 fx = si_frac(pl, PM_X_FRAC, 15), fcw = si_frac(pl, PM_CONVW_FRAC, 30);
            const i64 fs = si_frac(pl, PM_SILU_FRAC, 15);
            const short* cw = si_i16(p, base + SIM_CONV_W);
            const int* cbias = si_i32(p, base + SIM_CONV_B);
            for (i64 ch = threadIdx.x; ch < di; ch += blockDim.x) {
                const short* wc = cw + ch * dc;
                int* hc = hist + ch * hl;
                i64 acc = 0;
                for (i64 i = 0; i < hl; i++) acc = si_wadd(acc, (i64)hc[i] * (i64)wc[i]);
                acc = si_wadd(acc, (i64)xs[ch] * (i64)wc[hl]);
                if (cbias) acc = si_sat_add(acc, (i64)cbias[ch]);
                if (hl > 0) {
                    for (i64 i = 0; i + 1 < hl; i++) hc[i] = hc[i + 1];
                    hc[hl - 1] = xs[ch];
                }
                const short si = si_sat16(si_shift_round(acc, fx + fcw - fs));
                xs[ch] = si_silu(tab, si, si_nl(fs));
            }
            __syncthreads();
            si_linear16(si_mat(p, base + SIM_XP_Q), (const int*)0, xs, r + 2 * n, di, dbc);
            const short* dt_in = dbc;
            const short* bm = dbc + r;
            const short* cm = dbc + r + n;
            const unsigned fsp = si_nl(si_frac(pl, PM_SP_FRAC, 15));
            const i64 fa = si_frac(pl, PM_A_FRAC, 40), fh = si_frac(pl, PM_H_FRAC, 40);
            const i64 fb = si_frac(pl, PM_B_FRAC, 15), fcc = si_frac(pl, PM_C_FRAC, 15);
            const i64 fd = si_frac(pl, PM_D_FRAC, 40), fy = si_frac(pl, PM_Y_FRAC, 40);
            const i64 fz = si_frac(pl, PM_Z_FRAC, 15), fo = si_frac(pl, PM_O_FRAC, 15);
            const SiMat dtw = si_mat(p, base + SIM_DT_Q);
            const int* dtb = si_i32(p, base + SIM_DT_B);
            const int* av = si_i32(p, base + SIM_A);
            const int* dv = si_i32(p, base + SIM_D);
            for (i64 ch = threadIdx.x; ch < di; ch += blockDim.x) {
                const short spi = si_sat16(si_row(dtw, dtb, dt_in, r, ch));
                const i64 dt = si_softplus_q24(tab, spi, fsp);
                const i64 u = xs[ch];
                const i64 dtu = dt * u;
                const i64 sb = 24 + fs + fb - fh;
                i64 yacc = 0;
                int* hrow = ssm + ch * n;
                const int* arow = av + ch * n;
                for (i64 i = 0; i < n; i++) {
                    const int arg = si_sat32(si_shift_round(si_wmul(dt, arow[i]), fa));
                    const i64 decay = si_exp_neg_q31(tab, arg, 24);
                    const i64 hb = si_shift_round(si_sat_mul(dtu, (i64)bm[i]), sb);
                    const int hn = si_sat32(si_sat_add(si_round_shr(si_wmul(decay, hrow[i]), 31), hb));
                    hrow[i] = hn;
                    yacc = si_wadd(yacc, (i64)hn * (i64)cm[i]);
                }
                const i64 du = si_shift_round(si_wmul(dv[ch], u), fd + fs - (fh + fcc));
                const int y = si_sat32(si_shift_round(si_sat_add(yacc, du), fh + fcc - fy));
                const i64 gz = si_silu(tab, zs[ch], si_nl(fz));
                xs[ch] = si_sat16(si_shift_round(si_wmul(y, gz), fy + fz - fo));
            }
            __syncthreads();
            si_linear16(si_mat(p, base + SIM_OUT_Q), si_i32(p, base + SIM_OUT_B), xs, dm, di, normed);
            for (i64 c = threadIdx.x; c < dm; c += blockDim.x) resid[c] = si_sat16((i64)resid[c] + (i64)normed[c]);
            __syncthreads();
        }
        si_norm(tab, resid, si_i16(p, SIG_NORMF), (const int*)0, g[PG_NORMF_EPS], fr,
                si_frac(g, PG_NORMF_W_FRAC, 15), si_frac(g, PG_NORMF_FRAC, 15), dm, normed, red);
        si_decode(p, normed, dm, p.out + (s * p.steps + t) * p.d_out);
        if (threadIdx.x == 0) p.ready[s * p.steps + t] = 1;
    }
}

// The fixed-point functions one by one, for the exhaustive comparison with the core
// (tests/step_int.rs): for input i, out[2i] (and out[2i + 1] for rsqrt's exponent) with
// p.probe selecting the function and p.flags the fraction bits. Inputs: x[i] (an i16), or
// the i32 ((int*)x)[i], or the u64 from ((int*)x)[2i], ((int*)x)[2i + 1].
// out[2 * batch] = sizeof(StepIntParams).
KERNEL step_int_probe(const StepIntParams p) {
    const int* xi = (const int*)p.x;
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < p.batch;
         i += (i64)gridDim.x * blockDim.x) {
        const unsigned f = (unsigned)p.flags;
        int v = 0, e = 0;
        if (p.probe <= 3) {
            const short x = p.x[i];
            if (p.probe == 0) v = si_sigmoid(p.tab, x, f);
            if (p.probe == 1) v = si_silu(p.tab, x, f);
            if (p.probe == 2) v = si_gelu(p.tab, x, f);
            if (p.probe == 3) v = si_softplus_q24(p.tab, x, f);
        } else if (p.probe == 4) {
            v = si_exp_neg_q31(p.tab, xi[i], f);
        } else {
            const si_u64 wide = ((si_u64)(unsigned)xi[2 * i + 1] << 32) | (unsigned)xi[2 * i];
            if (p.probe == 5) v = si_log2_u64(wide);
            if (p.probe == 6) v = si_ln_u64(wide);
            if (p.probe == 7) si_rsqrt(p.tab, wide, f, &v, &e);
        }
        p.out[2 * i] = v;
        p.out[2 * i + 1] = e;
        if (i == 0) p.out[2 * p.batch] = (int)sizeof(StepIntParams);
    }
}
