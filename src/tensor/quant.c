/*
 * Reference quantizers and dequantizers for the supported types, and the
 * public qai_quantize_rows / qai_dequantize_row entry points.
 *
 * The weight quantizers follow ggml's reference algorithms (rounding rules,
 * the Q4_K/Q6_K scale searches), so blocks written here dequantize to the same
 * values as blocks written by llama-quantize without an importance matrix.
 * The activation quantizer Q8_K is also ggml's; Q8_0 activations are made by
 * qai_quantize_row_q8_0_act (ties to even, which SIMD versions can reproduce).
 *
 * What it deliberately does not do: importance-matrix weighted quantization,
 * SIMD (quantizing a model is not a hot path; activations are converted by the
 * per-ISA from_float kernels).
 *
 * Letters: n elements of a row, a block holds 32 (QK) or 256 (QK_K).
 */
#include <math.h>
#include <string.h>

#include "tensor/quant.h"

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

static inline float h2f(uint16_t h) { return qai_fp16_to_fp32(h); }
static inline uint16_t f2h(float f) { return qai_fp32_to_fp16(f); }

/* ---- Q8_0 ---------------------------------------------------------------- */

/* d = max|x| / 127, q = round-half-away(x / d), as ggml's reference. */
void qai_quantize_row_q8_0_ref(const float *x, qai_block_q8_0 *y, int64_t n) {
    for (int64_t b = 0; b < n / QAI_QK; b++, x += QAI_QK) {
        float amax = 0;
        for (int j = 0; j < QAI_QK; j++) amax = MAX(amax, fabsf(x[j]));
        float d = amax / 127.f, id = d != 0 ? 1.f / d : 0.f;
        y[b].d = f2h(d);
        for (int j = 0; j < QAI_QK; j++) y[b].qs[j] = (int8_t)roundf(x[j] * id);
    }
}

void qai_dequantize_row_q8_0(const qai_block_q8_0 *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / QAI_QK; b++) {
        float d = h2f(x[b].d);
        for (int j = 0; j < QAI_QK; j++) *y++ = d * x[b].qs[j];
    }
}

/* ---- Q4_0 ---------------------------------------------------------------- */

/* The signed value of largest magnitude maps to -8 (so d may be negative);
 * q = min(15, trunc(x/d + 8.5)), as ggml's reference. */
void qai_quantize_row_q4_0_ref(const float *x, qai_block_q4_0 *y, int64_t n) {
    for (int64_t b = 0; b < n / QAI_QK; b++, x += QAI_QK) {
        float amax = 0, vmax = 0;
        for (int j = 0; j < QAI_QK; j++)
            if (fabsf(x[j]) > amax) amax = fabsf(x[j]), vmax = x[j];
        float d = vmax / -8.f, id = d != 0 ? 1.f / d : 0.f;
        y[b].d = f2h(d);
        for (int j = 0; j < QAI_QK / 2; j++) {
            int lo = (int8_t)(x[j] * id + 8.5f), hi = (int8_t)(x[j + 16] * id + 8.5f);
            lo = MIN(15, lo);
            hi = MIN(15, hi);
            y[b].qs[j] = (uint8_t)(lo | (hi << 4));
        }
    }
}

void qai_dequantize_row_q4_0(const qai_block_q4_0 *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / QAI_QK; b++, y += QAI_QK) {
        float d = h2f(x[b].d);
        for (int j = 0; j < 16; j++) {
            y[j] = d * ((x[b].qs[j] & 15) - 8);
            y[j + 16] = d * ((x[b].qs[j] >> 4) - 8);
        }
    }
}

/* ---- Q8_K (activations of the k-quants) ----------------------------------- */

/* q = nearest(-127/max * x) where max is the signed value of largest
 * magnitude, so |q| <= 127; bsums hold sums of 16 consecutive q. */
void qai_quantize_row_q8_K_ref(const float *x, qai_block_q8_K *y, int64_t n) {
    for (int64_t b = 0; b < n / QAI_QK_K; b++, x += QAI_QK_K) {
        float amax = 0, vmax = 0;
        for (int j = 0; j < QAI_QK_K; j++)
            if (fabsf(x[j]) > amax) amax = fabsf(x[j]), vmax = x[j];
        if (amax == 0) {
            memset(&y[b], 0, sizeof y[b]);
            continue;
        }
        float iscale = -127.f / vmax;
        for (int j = 0; j < QAI_QK_K; j++) y[b].qs[j] = (int8_t)MIN(127, qai_nearest_int(iscale * x[j]));
        for (int g = 0; g < 16; g++) {
            int s = 0;
            for (int j = 0; j < 16; j++) s += y[b].qs[16 * g + j];
            y[b].bsums[g] = (int16_t)s;
        }
        y[b].d = 1 / iscale;
    }
}

void qai_dequantize_row_q8_K(const qai_block_q8_K *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / QAI_QK_K; b++)
        for (int j = 0; j < QAI_QK_K; j++) *y++ = x[b].d * x[b].qs[j];
}

/* ---- Q4_K ---------------------------------------------------------------- */

/* Fits x[i] ~ scale * L[i] - mn with L in 0..nmax, minimizing the weighted
 * squared error: start from the min/max grid, then try nstep+1 slightly
 * different grids (nmax + rmin + rdelta*k steps over the range), refitting
 * scale and offset by weighted least squares for each candidate assignment and
 * keeping the best. Returns scale; *mn >= 0 (the offset is never positive,
 * so zero stays representable). */
static float fit_scale_min(int n, int nmax, const float *x, const float *w, uint8_t *L, float *mn, float rmin,
                           float rdelta, int nstep) {
    float lo = x[0], hi = x[0], sw = w[0], swx = w[0] * x[0];
    for (int i = 1; i < n; i++) {
        lo = MIN(lo, x[i]);
        hi = MAX(hi, x[i]);
        sw += w[i];
        swx += w[i] * x[i];
    }
    if (lo > 0) lo = 0;
    if (hi == lo) {
        memset(L, 0, (size_t)n);
        *mn = -lo;
        return 0;
    }
    float iscale = nmax / (hi - lo), scale = 1 / iscale, offset = lo;
    float best = 0;
    for (int i = 0; i < n; i++) {
        int l = MAX(0, MIN(nmax, qai_nearest_int(iscale * (x[i] - lo))));
        L[i] = (uint8_t)l;
        float e = scale * l + lo - x[i];
        best += w[i] * (e * e);
    }
    uint8_t cand[QAI_QK_K];
    for (int k = 0; k <= nstep; k++) {
        /* the grid starts at the best offset found so far (as ggml does; it
         * changes which candidates are tried, and keeps files bit-identical) */
        float is = (rmin + rdelta * k + nmax) / (hi - offset);
        float sl = 0, sl2 = 0, sxl = 0;
        for (int i = 0; i < n; i++) {
            int l = MAX(0, MIN(nmax, qai_nearest_int(is * (x[i] - offset))));
            cand[i] = (uint8_t)l;
            sl += w[i] * l;
            sl2 += w[i] * l * l;
            sxl += w[i] * l * x[i];
        }
        float det = sw * sl2 - sl * sl;
        if (det <= 0) continue;
        float s = (sw * sxl - swx * sl) / det;
        float m = (sl2 * swx - sl * sxl) / det;
        if (m > 0) { /* offset must not be positive: refit scale alone */
            m = 0;
            s = sxl / sl2;
        }
        float err = 0;
        for (int i = 0; i < n; i++) {
            float e = s * cand[i] + m - x[i];
            err += w[i] * (e * e);
        }
        if (err < best) {
            memcpy(L, cand, (size_t)n);
            best = err;
            scale = s;
            offset = m;
        }
    }
    *mn = -offset;
    return scale;
}

void qai_quantize_row_q4_K_ref(const float *x, qai_block_q4_K *y, int64_t n) {
    for (int64_t b = 0; b < n / QAI_QK_K; b++, x += QAI_QK_K) {
        uint8_t L[QAI_QK_K];
        float w[32], sc[8], mn[8], max_sc = 0, max_mn = 0;
        for (int j = 0; j < 8; j++) {
            const float *xs = x + 32 * j;
            float s2 = 0;
            for (int i = 0; i < 32; i++) s2 += xs[i] * xs[i];
            float rms = sqrtf(s2 / 32);
            for (int i = 0; i < 32; i++) w[i] = rms + fabsf(xs[i]);
            sc[j] = fit_scale_min(32, 15, xs, w, L + 32 * j, &mn[j], -1.f, 0.1f, 20);
            max_sc = MAX(max_sc, sc[j]);
            max_mn = MAX(max_mn, mn[j]);
        }
        /* 6-bit scales and mins relative to the block's largest */
        float isc = max_sc > 0 ? 63.f / max_sc : 0.f, imn = max_mn > 0 ? 63.f / max_mn : 0.f;
        qai_block_q4_K *yb = &y[b];
        memset(yb->scales, 0, sizeof yb->scales);
        for (int j = 0; j < 8; j++) {
            int ls = MIN(63, qai_nearest_int(isc * sc[j])), lm = MIN(63, qai_nearest_int(imn * mn[j]));
            if (j < 4) {
                yb->scales[j] |= (uint8_t)ls;
                yb->scales[j + 4] |= (uint8_t)lm;
            } else {
                yb->scales[j + 4] = (uint8_t)((ls & 15) | ((lm & 15) << 4));
                yb->scales[j - 4] |= (uint8_t)((ls >> 4) << 6);
                yb->scales[j] |= (uint8_t)((lm >> 4) << 6);
            }
        }
        yb->d = f2h(max_sc / 63.f);
        yb->dmin = f2h(max_mn / 63.f);
        /* requantize against the scales as stored */
        float d = h2f(yb->d), dmin = h2f(yb->dmin);
        for (int j = 0; j < 8; j++) {
            uint8_t s, m;
            qai_q4k_scale_min(j, yb->scales, &s, &m);
            float ds = d * s;
            if (ds == 0) continue;
            float dm = dmin * m;
            for (int i = 0; i < 32; i++) L[32 * j + i] = (uint8_t)MAX(0, MIN(15, qai_nearest_int((x[32 * j + i] + dm) / ds)));
        }
        for (int c = 0; c < 4; c++)
            for (int i = 0; i < 32; i++) yb->qs[32 * c + i] = (uint8_t)(L[64 * c + i] | (L[64 * c + 32 + i] << 4));
    }
}

void qai_dequantize_row_q4_K(const qai_block_q4_K *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / QAI_QK_K; b++) {
        float d = h2f(x[b].d), dmin = h2f(x[b].dmin);
        for (int c = 0; c < 4; c++) {
            uint8_t s0, m0, s1, m1;
            qai_q4k_scale_min(2 * c, x[b].scales, &s0, &m0);
            qai_q4k_scale_min(2 * c + 1, x[b].scales, &s1, &m1);
            float d0 = d * s0, o0 = dmin * m0, d1 = d * s1, o1 = dmin * m1;
            const uint8_t *q = x[b].qs + 32 * c;
            for (int i = 0; i < 32; i++) y[i] = d0 * (q[i] & 15) - o0;
            for (int i = 0; i < 32; i++) y[32 + i] = d1 * (q[i] >> 4) - o1;
            y += 64;
        }
    }
}

/* ---- Q6_K ---------------------------------------------------------------- */

/* Symmetric fit of n values to L in -nmax..nmax-1 (stored +nmax), weighted by
 * x^2: start from scale max/-nmax, then try 18 nearby grids and keep the least
 * squares scale with the best weighted error. Returns the scale. */
static float fit_scale_sym(int n, int nmax, const float *x, int8_t *L) {
    float amax = 0, vmax = 0;
    for (int i = 0; i < n; i++)
        if (fabsf(x[i]) > amax) amax = fabsf(x[i]), vmax = x[i];
    if (amax < 1e-15f) {
        memset(L, 0, (size_t)n);
        return 0;
    }
    float iscale = -nmax / vmax, sxl = 0, sl2 = 0;
    for (int i = 0; i < n; i++) {
        int l = MAX(-nmax, MIN(nmax - 1, qai_nearest_int(iscale * x[i])));
        L[i] = (int8_t)(l + nmax);
        float w = x[i] * x[i];
        sxl += w * x[i] * l;
        sl2 += w * l * l;
    }
    float scale = sl2 ? sxl / sl2 : 0.f, best = scale * sxl;
    for (int k = -9; k <= 9; k++) {
        if (k == 0) continue;
        float is = -(nmax + 0.1f * k) / vmax;
        sxl = sl2 = 0;
        for (int i = 0; i < n; i++) {
            int l = MAX(-nmax, MIN(nmax - 1, qai_nearest_int(is * x[i])));
            float w = x[i] * x[i];
            sxl += w * x[i] * l;
            sl2 += w * l * l;
        }
        /* maximizing sxl^2/sl2 minimizes the error of the least-squares scale */
        if (sl2 > 0 && sxl * sxl > best * sl2) {
            for (int i = 0; i < n; i++) L[i] = (int8_t)(nmax + MAX(-nmax, MIN(nmax - 1, qai_nearest_int(is * x[i]))));
            scale = sxl / sl2;
            best = scale * sxl;
        }
    }
    return scale;
}

void qai_quantize_row_q6_K_ref(const float *x, qai_block_q6_K *y, int64_t n) {
    for (int64_t b = 0; b < n / QAI_QK_K; b++, x += QAI_QK_K) {
        int8_t L[QAI_QK_K];
        float sc[16], max_sc = 0, amax_sc = 0;
        for (int g = 0; g < 16; g++) {
            sc[g] = fit_scale_sym(16, 32, x + 16 * g, L + 16 * g);
            if (fabsf(sc[g]) > amax_sc) amax_sc = fabsf(sc[g]), max_sc = sc[g];
        }
        qai_block_q6_K *yb = &y[b];
        if (amax_sc < 1e-15f) {
            memset(yb, 0, sizeof *yb);
            continue;
        }
        float iscale = -128.f / max_sc;
        yb->d = f2h(1 / iscale);
        for (int g = 0; g < 16; g++) yb->scales[g] = (int8_t)MIN(127, qai_nearest_int(iscale * sc[g]));
        float d = h2f(yb->d);
        for (int g = 0; g < 16; g++) {
            float ds = d * yb->scales[g];
            if (ds == 0) continue;
            for (int i = 0; i < 16; i++)
                L[16 * g + i] = (int8_t)(32 + MAX(-32, MIN(31, qai_nearest_int(x[16 * g + i] / ds))));
        }
        for (int h = 0; h < 2; h++) {
            uint8_t *ql = yb->ql + 64 * h, *qh = yb->qh + 32 * h;
            const int8_t *Lh = L + 128 * h;
            for (int l = 0; l < 32; l++) {
                ql[l] = (uint8_t)((Lh[l] & 15) | ((Lh[l + 64] & 15) << 4));
                ql[l + 32] = (uint8_t)((Lh[l + 32] & 15) | ((Lh[l + 96] & 15) << 4));
                qh[l] = (uint8_t)((Lh[l] >> 4) | ((Lh[l + 32] >> 4) << 2) | ((Lh[l + 64] >> 4) << 4) |
                                  ((Lh[l + 96] >> 4) << 6));
            }
        }
    }
}

void qai_dequantize_row_q6_K(const qai_block_q6_K *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / QAI_QK_K; b++) {
        float d = h2f(x[b].d);
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = x[b].ql + 64 * h, *qh = x[b].qh + 32 * h;
            const int8_t *sc = x[b].scales + 8 * h;
            for (int l = 0; l < 32; l++) {
                int g = l / 16;
                y[l] = d * sc[g] * (((ql[l] & 15) | ((qh[l] & 3) << 4)) - 32);
                y[l + 32] = d * sc[g + 2] * (((ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4)) - 32);
                y[l + 64] = d * sc[g + 4] * (((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
                y[l + 96] = d * sc[g + 6] * (((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
            }
            y += 128;
        }
    }
}

/* ---- public entry points -------------------------------------------------- */

static qai_status check_type(qai_type type, int64_t n, const char *what) {
    const qai_type_traits *t = qai_type_info(type);
    if (!t) return qai_error(QAI_ERR_ARG, "%s: unknown tensor type %d", what, (int)type);
    if (!t->supported) return qai_error(QAI_ERR_UNSUPPORTED, "%s: tensor type %s is not supported", what, t->name);
    if (n < 0 || n % t->block_size)
        return qai_error(QAI_ERR_ARG, "%s: row length %lld is not a multiple of the %s block size %d", what,
                         (long long)n, t->name, t->block_size);
    return QAI_OK;
}

qai_status qai_quantize_rows(qai_type type, const float *src, void *dst, int64_t nrows, int64_t ncols) {
    qai_status st = check_type(type, ncols, "quantize");
    if (st) return st;
    size_t rs = qai_row_size(type, ncols);
    for (int64_t r = 0; r < nrows; r++) {
        const float *x = src + r * ncols;
        void *y = (uint8_t *)dst + r * rs;
        switch (type) {
        case QAI_TYPE_F32: memcpy(y, x, rs); break;
        case QAI_TYPE_F16:
            for (int64_t i = 0; i < ncols; i++) ((uint16_t *)y)[i] = qai_fp32_to_fp16(x[i]);
            break;
        case QAI_TYPE_BF16:
            for (int64_t i = 0; i < ncols; i++) ((uint16_t *)y)[i] = qai_fp32_to_bf16(x[i]);
            break;
        case QAI_TYPE_Q8_0: qai_quantize_row_q8_0_ref(x, y, ncols); break;
        case QAI_TYPE_Q4_0: qai_quantize_row_q4_0_ref(x, y, ncols); break;
        case QAI_TYPE_Q4_K: qai_quantize_row_q4_K_ref(x, y, ncols); break;
        case QAI_TYPE_Q6_K: qai_quantize_row_q6_K_ref(x, y, ncols); break;
        case QAI_TYPE_Q8_K: qai_quantize_row_q8_K_ref(x, y, ncols); break;
        default: return qai_error(QAI_ERR_INTERNAL, "quantize: no quantizer for supported type %d", (int)type);
        }
    }
    return QAI_OK;
}

qai_status qai_dequantize_row(qai_type type, const void *src, float *dst, int64_t n) {
    qai_status st = check_type(type, n, "dequantize");
    if (st) return st;
    switch (type) {
    case QAI_TYPE_F32: memcpy(dst, src, (size_t)n * 4); break;
    case QAI_TYPE_F16:
        for (int64_t i = 0; i < n; i++) dst[i] = qai_fp16_to_fp32(((const uint16_t *)src)[i]);
        break;
    case QAI_TYPE_BF16:
        for (int64_t i = 0; i < n; i++) dst[i] = qai_bf16_to_fp32(((const uint16_t *)src)[i]);
        break;
    case QAI_TYPE_Q8_0: qai_dequantize_row_q8_0(src, dst, n); break;
    case QAI_TYPE_Q4_0: qai_dequantize_row_q4_0(src, dst, n); break;
    case QAI_TYPE_Q4_K: qai_dequantize_row_q4_K(src, dst, n); break;
    case QAI_TYPE_Q6_K: qai_dequantize_row_q6_K(src, dst, n); break;
    case QAI_TYPE_Q8_K: qai_dequantize_row_q8_K(src, dst, n); break;
    default: return qai_error(QAI_ERR_INTERNAL, "dequantize: no dequantizer for supported type %d", (int)type);
    }
    return QAI_OK;
}
