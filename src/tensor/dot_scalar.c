/*
 * Scalar reference kernels: dot products of a weight row with an activation
 * row already converted to the weight type's vec_dot_type, and the
 * float -> vec_dot_type converters. Plain C, baseline x86-64; the AVX2 and
 * AVX-512 kernels are tested against these.
 *
 * Integer parts of quantized dots are exact (int32 per block); float parts
 * accumulate block by block in order.
 *
 * What it deliberately does not do: tiling (matmul.c calls vec_dot per output
 * element when an ISA has no tile kernel).
 */
#include <string.h>

#include "tensor/quant.h"

/* ---- converters ---- */

void qai_from_float_f32(const float *x, void *y, int64_t n) { memcpy(y, x, (size_t)n * sizeof(float)); }

void qai_from_float_bf16(const float *x, void *y, int64_t n) {
    uint16_t *o = y;
    for (int64_t i = 0; i < n; i++) o[i] = qai_fp32_to_bf16(x[i]);
}

/* Q8_0 activations: d = max|x|/127 (stored fp16), q = nearest-even(x * (1/d)).
 * Ties to even rather than ggml's weight rounding (away from zero) so the SIMD
 * converters (cvtps2dq) produce the same bytes. */
static void from_float_q8_0(const float *x, void *vy, int64_t n) {
    qai_block_q8_0 *y = vy;
    for (int64_t b = 0; b < n / QAI_QK; b++, x += QAI_QK) {
        float amax = 0;
        for (int j = 0; j < QAI_QK; j++) {
            float a = x[j] < 0 ? -x[j] : x[j];
            amax = a > amax ? a : amax;
        }
        float d = amax / 127.f, id = d != 0 ? 1.f / d : 0.f;
        y[b].d = qai_fp32_to_fp16(d);
        for (int j = 0; j < QAI_QK; j++) y[b].qs[j] = (int8_t)qai_nearest_int(x[j] * id);
    }
}

static void from_float_q8_K(const float *x, void *y, int64_t n) { qai_quantize_row_q8_K_ref(x, y, n); }

/* ---- dots ---- */

static float dot_f32(int64_t n, const void *vw, const void *vx) {
    const float *w = vw, *x = vx;
    float s = 0;
    for (int64_t i = 0; i < n; i++) s += w[i] * x[i];
    return s;
}

static float dot_f16(int64_t n, const void *vw, const void *vx) {
    const uint16_t *w = vw;
    const float *x = vx;
    float s = 0;
    for (int64_t i = 0; i < n; i++) s += qai_fp16_to_fp32(w[i]) * x[i];
    return s;
}

static float dot_bf16(int64_t n, const void *vw, const void *vx) {
    const uint16_t *w = vw, *x = vx;
    float s = 0;
    for (int64_t i = 0; i < n; i++) s += qai_bf16_to_fp32(w[i]) * qai_bf16_to_fp32(x[i]);
    return s;
}

static float dot_q8_0(int64_t n, const void *vw, const void *vx) {
    const qai_block_q8_0 *w = vw, *x = vx;
    float s = 0;
    for (int64_t b = 0; b < n / QAI_QK; b++) {
        int32_t si = 0;
        for (int j = 0; j < QAI_QK; j++) si += w[b].qs[j] * x[b].qs[j];
        s += qai_fp16_to_fp32(w[b].d) * qai_fp16_to_fp32(x[b].d) * (float)si;
    }
    return s;
}

static float dot_q4_0(int64_t n, const void *vw, const void *vx) {
    const qai_block_q4_0 *w = vw;
    const qai_block_q8_0 *x = vx;
    float s = 0;
    for (int64_t b = 0; b < n / QAI_QK; b++) {
        int32_t si = 0;
        for (int j = 0; j < 16; j++) {
            si += ((w[b].qs[j] & 15) - 8) * x[b].qs[j];
            si += ((w[b].qs[j] >> 4) - 8) * x[b].qs[j + 16];
        }
        s += qai_fp16_to_fp32(w[b].d) * qai_fp16_to_fp32(x[b].d) * (float)si;
    }
    return s;
}

/* Per 256-block: d*dx * sum_j sc_j * (q·x)_j  -  dmin*dx * sum_j m_j * sum(x)_j */
static float dot_q4_K(int64_t n, const void *vw, const void *vx) {
    const qai_block_q4_K *w = vw;
    const qai_block_q8_K *x = vx;
    float s = 0;
    for (int64_t b = 0; b < n / QAI_QK_K; b++) {
        int32_t sq = 0, sm = 0;
        for (int j = 0; j < 8; j++) {
            uint8_t sc, m;
            qai_q4k_scale_min(j, w[b].scales, &sc, &m);
            const uint8_t *q = w[b].qs + 32 * (j / 2);
            const int8_t *xq = x[b].qs + 32 * j;
            int shift = (j & 1) * 4;
            int32_t d = 0;
            for (int i = 0; i < 32; i++) d += ((q[i] >> shift) & 15) * xq[i];
            sq += sc * d;
            sm += m * (x[b].bsums[2 * j] + x[b].bsums[2 * j + 1]);
        }
        float dx = x[b].d;
        s += qai_fp16_to_fp32(w[b].d) * dx * (float)sq - qai_fp16_to_fp32(w[b].dmin) * dx * (float)sm;
    }
    return s;
}

/* Per 256-block: d*dx * sum_g sc_g * sum_{i in g} (q_i - 32) x_i */
static float dot_q6_K(int64_t n, const void *vw, const void *vx) {
    const qai_block_q6_K *w = vw;
    const qai_block_q8_K *x = vx;
    float s = 0;
    for (int64_t b = 0; b < n / QAI_QK_K; b++) {
        int32_t sg[16] = {0};
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = w[b].ql + 64 * h, *qh = w[b].qh + 32 * h;
            const int8_t *xq = x[b].qs + 128 * h;
            int32_t *g = sg + 8 * h;
            for (int l = 0; l < 32; l++) {
                int q0 = ((ql[l] & 15) | ((qh[l] & 3) << 4)) - 32;
                int q1 = ((ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4)) - 32;
                int q2 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                int q3 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                g[l / 16] += q0 * xq[l];
                g[l / 16 + 2] += q1 * xq[l + 32];
                g[l / 16 + 4] += q2 * xq[l + 64];
                g[l / 16 + 6] += q3 * xq[l + 96];
            }
        }
        int32_t si = 0;
        for (int g = 0; g < 16; g++) si += w[b].scales[g] * sg[g];
        s += qai_fp16_to_fp32(w[b].d) * x[b].d * (float)si;
    }
    return s;
}

void qai_kernels_fill_scalar(qai_kernel *k) {
    k[QAI_TYPE_F32] = (qai_kernel){dot_f32, qai_from_float_f32, NULL, 1, 1};
    k[QAI_TYPE_F16] = (qai_kernel){dot_f16, qai_from_float_f32, NULL, 1, 1};
    k[QAI_TYPE_BF16] = (qai_kernel){dot_bf16, qai_from_float_bf16, NULL, 1, 1};
    k[QAI_TYPE_Q8_0] = (qai_kernel){dot_q8_0, from_float_q8_0, NULL, 1, 1};
    k[QAI_TYPE_Q4_0] = (qai_kernel){dot_q4_0, from_float_q8_0, NULL, 1, 1};
    k[QAI_TYPE_Q4_K] = (qai_kernel){dot_q4_K, from_float_q8_K, NULL, 1, 1};
    k[QAI_TYPE_Q6_K] = (qai_kernel){dot_q6_K, from_float_q8_K, NULL, 1, 1};
}
