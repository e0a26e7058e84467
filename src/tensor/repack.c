/*
 * Repacked ("R16") weights: the load-time regrouping of Q8_0 / Q4_0 matrices
 * into 16-row groups (layout in quant.h), the R16 activation converter, and
 * the scalar reference kernel every SIMD R16 kernel (dot_avx512.c,
 * repack_avx2.c) must equal bit for bit.
 *
 * What it deliberately does not do: decide whether to repack (model.c asks
 * qai_repack_type, which says yes only when the active ISA has a SIMD kernel)
 * or convert back (the original file stays the source of truth).
 */
#include <math.h>
#include <string.h>

#include "tensor/quant.h"

/* Bytes of one block column of a group: 16 rows of one block, scales and quants. */
static size_t r16_qbytes(qai_type rt) { return rt == QAI_TYPE_Q8_0_R16 ? 512 : 256; }

int qai_repack_type(qai_type t) {
    qai_isa isa = qai_kernels_isa();
    if (isa < QAI_ISA_AVX2) return -1; /* the scalar kernels keep the file layout */
    if (t == QAI_TYPE_Q8_0) return QAI_TYPE_Q8_0_R16;
    if (t == QAI_TYPE_Q4_0) return QAI_TYPE_Q4_0_R16;
    return -1;
}

/* The scales and quants of block b (of nb) in a group starting at g. */
static inline void r16_block(const uint8_t *g, int64_t b, int64_t nb, size_t qb, const uint8_t **d, const uint8_t **q) {
    const uint8_t *p = g + (size_t)(b / 2) * (64 + 2 * qb);
    if (b & 1) {
        *d = p + 32;
        *q = p + 64 + qb;
    } else {
        *d = p;
        *q = p + (b + 1 < nb ? 64 : 32); /* a last odd block: 32 bytes of scales, then its quants */
    }
}

typedef struct {
    qai_type t, rt;
    const uint8_t *src;
    uint8_t *dst;
    int64_t rows, cols, ngroups;
} repack_job;

static void repack_groups(void *arg, int ith, int nth) {
    const repack_job *j = arg;
    const int64_t nb = j->cols / QAI_QK;
    const size_t qb = r16_qbytes(j->rt), bsz = j->t == QAI_TYPE_Q8_0 ? sizeof(qai_block_q8_0) : sizeof(qai_block_q4_0);
    const size_t srow = (size_t)nb * bsz, gbytes = QAI_R16 * srow;
    const int64_t g0 = j->ngroups * ith / nth, g1 = j->ngroups * (ith + 1) / nth;
    for (int64_t gi = g0; gi < g1; gi++) {
        uint8_t *g = j->dst + (size_t)gi * gbytes;
        for (int64_t b = 0; b < nb; b++) {
            const uint8_t *dc, *qc;
            r16_block(g, b, nb, qb, &dc, &qc);
            uint16_t *d = (uint16_t *)(uintptr_t)dc;
            uint8_t *q = (uint8_t *)(uintptr_t)qc;
            for (int r = 0; r < QAI_R16; r++) {
                int64_t row = gi * QAI_R16 + r;
                const uint8_t *blk = row < j->rows ? j->src + (size_t)row * srow + (size_t)b * bsz : NULL;
                uint16_t dr = 0;
                if (blk) memcpy(&dr, blk, 2); /* both block types start with fp16 d */
                d[r] = dr;
                /* 4-byte groups: Q8_0 quants XOR 0x80 (zero rows: 0x80 = w 0); Q4_0 bytes as they are (0x88) */
                for (int k = 0; k < (j->t == QAI_TYPE_Q8_0 ? 8 : 4); k++) {
                    uint32_t v = j->t == QAI_TYPE_Q8_0 ? 0 : 0x88888888u;
                    if (blk) memcpy(&v, blk + 2 + 4 * k, 4);
                    if (j->t == QAI_TYPE_Q8_0) v ^= 0x80808080u;
                    memcpy(q + 64 * k + 4 * r, &v, 4);
                }
            }
        }
    }
}

qai_status qai_repack(qai_pool *pool, qai_type t, const void *src, int64_t rows, int64_t cols, qai_type rt, void *dst) {
    if (!((t == QAI_TYPE_Q8_0 && rt == QAI_TYPE_Q8_0_R16) || (t == QAI_TYPE_Q4_0 && rt == QAI_TYPE_Q4_0_R16)))
        return qai_error(QAI_ERR_ARG, "repack: no repacked layout %d for type %d", (int)rt, (int)t);
    if (rows <= 0 || cols <= 0 || cols % QAI_QK)
        return qai_error(QAI_ERR_ARG, "repack: bad shape %lld x %lld", (long long)rows, (long long)cols);
    repack_job j = {t, rt, src, dst, rows, cols, (rows + QAI_R16 - 1) / QAI_R16};
    qai_pool_run(pool, repack_groups, &j);
    return QAI_OK;
}

void qai_r16_act_row(const float *x, void *act, int m, int M, int64_t n) {
    const qai_kernel *k = qai_kernel_for(QAI_TYPE_Q8_0);
    const int64_t nb = n / QAI_QK;
    const int m0 = m / QAI_R16_MR * QAI_R16_MR, R = M - m0 < QAI_R16_MR ? M - m0 : QAI_R16_MR, i = m - m0;
    uint8_t *g = (uint8_t *)act + (size_t)m0 * QAI_R16_ACT_BLOCK * (size_t)nb;
    qai_block_q8_0 tmp[8];
    for (int64_t b = 0; b < nb; b += 8) {
        int c = nb - b < 8 ? (int)(nb - b) : 8;
        k->from_float(x + b * QAI_QK, tmp, (int64_t)c * QAI_QK);
        for (int j = 0; j < c; j++) {
            uint8_t *blk = g + (size_t)(b + j) * QAI_R16_ACT_BLOCK * R;
            memcpy(blk + 32 * i, tmp[j].qs, QAI_QK);
            float d = qai_fp16_to_fp32(tmp[j].d);
            int32_t s = 0;
            for (int e = 0; e < QAI_QK; e++) s += tmp[j].qs[e];
            int32_t c8 = -128 * s, c4 = -8 * s;
            memcpy(blk + 32 * R + 4 * i, &d, 4);
            memcpy(blk + 36 * R + 4 * i, &c8, 4);
            memcpy(blk + 40 * R + 4 * i, &c4, 4);
        }
    }
}

/* ---- scalar reference ---- */

static void gemm_r16_ref(int64_t n, int nr, int mr, const uint8_t *w, const uint8_t *x, float *y, int ldy, bool q4) {
    const int64_t nb = n / QAI_QK;
    const size_t qb = q4 ? 256 : 512;
    for (int m = 0; m < mr; m++) {
        float acc[QAI_R16] = {0};
        for (int64_t b = 0; b < nb; b++) {
            const uint8_t *dc, *q, *xb = x + (size_t)b * QAI_R16_ACT_BLOCK * mr;
            r16_block(w, b, nb, qb, &dc, &q);
            const int8_t *xq = (const int8_t *)xb + 32 * m;
            float dx;
            int32_t c;
            memcpy(&dx, xb + 32 * mr + 4 * m, 4);
            memcpy(&c, xb + (q4 ? 40 : 36) * mr + 4 * m, 4);
            for (int r = 0; r < QAI_R16; r++) {
                int32_t I = 0;
                if (q4) {
                    for (int e = 0; e < 16; e++) {
                        uint8_t v = q[(e / 4) * 64 + r * 4 + e % 4];
                        I += (v & 15) * xq[e] + (v >> 4) * xq[e + 16];
                    }
                    I += c;
                } else {
                    for (int e = 0; e < QAI_QK; e++) I += q[(e / 4) * 64 + r * 4 + e % 4] * xq[e];
                    I += c;
                }
                uint16_t dw;
                memcpy(&dw, dc + 2 * r, 2);
                acc[r] = fmaf((float)I, qai_fp16_to_fp32(dw) * dx, acc[r]);
            }
        }
        for (int r = 0; r < nr; r++) y[(size_t)m * ldy + r] = acc[r];
    }
}

static void gemm_q8_0_r16_ref(int64_t n, int nr, int mr, const void *w, size_t ws, const void *x, size_t xs, float *y,
                              int ldy) {
    (void)ws, (void)xs;
    gemm_r16_ref(n, nr, mr, w, x, y, ldy, false);
}
static void gemm_q4_0_r16_ref(int64_t n, int nr, int mr, const void *w, size_t ws, const void *x, size_t xs, float *y,
                              int ldy) {
    (void)ws, (void)xs;
    gemm_r16_ref(n, nr, mr, w, x, y, ldy, true);
}

void qai_kernels_fill_r16_scalar(qai_kernel *k) {
    k[0] = (qai_kernel){NULL, NULL, gemm_q8_0_r16_ref, QAI_R16, QAI_R16_MR};
    k[1] = (qai_kernel){NULL, NULL, gemm_q4_0_r16_ref, QAI_R16, QAI_R16_MR};
}
