/* Attention kernels: scalar reference, AVX2 and AVX-512 (function-level target
 * attributes; called only when the CPU has them), each for F32 and F16 keys and
 * values. See attn.h for the layout.
 *
 * The SIMD kernels are written once as always-inline templates whose row
 * count, block count and element type are compile-time constants at each
 * instantiation, so the accumulators live in registers and the loops unroll;
 * the dispatchers pick the instance. Two shapes matter:
 * - scores: one broadcast of q(r, d) feeds NB key blocks; with few rows NB is
 *   larger so enough independent FMA chains hide the FMA latency (a decoding
 *   step of a model with one query head per KV head has a single row);
 * - P·V: the rows of a block share each value load; positions past a row's
 *   own keys are weighed by an exact 0, so every row runs over the block's
 *   largest key count. */
#include "attn.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "vec.h"

static int max_keys(const qai_attn_block *b) {
    int m = 0;
    for (int r = 0; r < b->n; r++) m = b->n_keys[r] > m ? b->n_keys[r] : m;
    return m;
}

/* ---- scalar reference ---- */

static inline float kv_get(const void *p, size_t i, bool f16) {
    return f16 ? qai_fp16_to_fp32(((const uint16_t *)p)[i]) : ((const float *)p)[i];
}

static void attn_scalar(const qai_attn_block *b, const void *kb, const void *v, int ldv, int S, float scale,
                        float *scratch, int lds, bool f16) {
    for (int r = 0; r < b->n; r++) {
        float *sc = scratch + (size_t)r * lds;
        const int P = b->n_keys[r];
        for (int p = 0; p < P; p++) {
            float s = 0;
            for (int d = 0; d < S; d++) s += b->q[r][d] * kv_get(kb, qai_kv_block_index(p, d, S), f16);
            sc[p] = s * scale;
        }
        qai_vec_softmax(sc, P, false);
        float *o = b->out[r];
        memset(o, 0, (size_t)S * sizeof(float));
        for (int p = 0; p < P; p++)
            for (int d = 0; d < S; d++) o[d] += sc[p] * kv_get(v, (size_t)p * ldv + d, f16);
    }
}

static void store_scalar(void *dst, size_t stride, const float *src, int n, bool f16) {
    if (f16)
        for (int i = 0; i < n; i++) ((uint16_t *)dst)[(size_t)i * stride] = qai_fp32_to_fp16(src[i]);
    else
        for (int i = 0; i < n; i++) ((float *)dst)[(size_t)i * stride] = src[i];
}

/* the loops over rows, blocks and columns have constant bounds in each instance */
#define UNROLL _Pragma("GCC unroll 16")
#define AVX2 __attribute__((target("avx2,fma,f16c")))
#define AVX2_T __attribute__((target("avx2,fma,f16c"), always_inline)) static inline
#define AVX512 __attribute__((target("avx512f,avx2,fma,f16c")))
#define AVX512_T __attribute__((target("avx512f,avx2,fma,f16c"), always_inline)) static inline

/* ---- AVX2 ---- */

/* 8 elements at base[i] as floats */
AVX2_T __m256 ld8(const void *base, size_t i, const bool f16) {
    return f16 ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)base + i)))
               : _mm256_loadu_ps((const float *)base + i);
}

/* Scores of R rows, NB key blocks (16 positions: two 8-lane halves) per pass,
 * then one block at a time. Lanes past a row's n_keys are computed but never
 * read (its softmax covers only n_keys). */
AVX2_T void scores_avx2_t(const qai_attn_block *b, const void *kb, int S, float scale, float *scratch, int lds,
                          int P, const int R, const int NB, const bool f16) {
    const size_t bs = (size_t)S * QAI_KV_BLOCK; /* elements per block */
    const __m256 sc = _mm256_set1_ps(scale);
    int p = 0;
    for (; p + (NB - 1) * QAI_KV_BLOCK < P; p += NB * QAI_KV_BLOCK) {
        const size_t k0 = (size_t)(p / QAI_KV_BLOCK) * bs;
        __m256 acc[QAI_ATTN_ROWS][4];
        UNROLL
        for (int r = 0; r < R; r++)
            UNROLL
            for (int h = 0; h < 2 * NB; h++) acc[r][h] = _mm256_setzero_ps();
        for (int d = 0; d < S; d++) {
            __m256 k[4];
            UNROLL
            for (int h = 0; h < 2 * NB; h++)
                k[h] = ld8(kb, k0 + (size_t)(h / 2) * bs + (size_t)d * QAI_KV_BLOCK + (size_t)(h % 2) * 8, f16);
            UNROLL
            for (int r = 0; r < R; r++) {
                const __m256 q = _mm256_set1_ps(b->q[r][d]);
                UNROLL
                for (int h = 0; h < 2 * NB; h++) acc[r][h] = _mm256_fmadd_ps(q, k[h], acc[r][h]);
            }
        }
        UNROLL
        for (int r = 0; r < R; r++)
            UNROLL
            for (int h = 0; h < 2 * NB; h++)
                _mm256_storeu_ps(scratch + (size_t)r * lds + p + h * 8, _mm256_mul_ps(acc[r][h], sc));
    }
    for (; p < P; p += QAI_KV_BLOCK) {
        const size_t k0 = (size_t)(p / QAI_KV_BLOCK) * bs;
        __m256 lo[QAI_ATTN_ROWS], hi[QAI_ATTN_ROWS];
        UNROLL
        for (int r = 0; r < R; r++) lo[r] = hi[r] = _mm256_setzero_ps();
        for (int d = 0; d < S; d++) {
            const __m256 a = ld8(kb, k0 + (size_t)d * QAI_KV_BLOCK, f16), c = ld8(kb, k0 + (size_t)d * QAI_KV_BLOCK + 8, f16);
            UNROLL
            for (int r = 0; r < R; r++) {
                const __m256 q = _mm256_set1_ps(b->q[r][d]);
                lo[r] = _mm256_fmadd_ps(q, a, lo[r]);
                hi[r] = _mm256_fmadd_ps(q, c, hi[r]);
            }
        }
        UNROLL
        for (int r = 0; r < R; r++) {
            _mm256_storeu_ps(scratch + (size_t)r * lds + p, _mm256_mul_ps(lo[r], sc));
            _mm256_storeu_ps(scratch + (size_t)r * lds + p + 8, _mm256_mul_ps(hi[r], sc));
        }
    }
}

/* out(r0 .. r0+R) = P·V over P positions, ND 8-float column groups from
 * column d0. */
AVX2_T void pv_avx2_t(const qai_attn_block *b, int r0, const void *v, int ldv, int d0, const float *scratch, int lds,
                      int P, const int R, const int ND, const bool f16) {
    __m256 acc[2][4];
    UNROLL
    for (int r = 0; r < R; r++)
        UNROLL
        for (int j = 0; j < ND; j++) acc[r][j] = _mm256_setzero_ps();
    for (int p = 0; p < P; p++) {
        __m256 x[4];
        UNROLL
        for (int j = 0; j < ND; j++) x[j] = ld8(v, (size_t)p * ldv + d0 + j * 8, f16);
        UNROLL
        for (int r = 0; r < R; r++) {
            const __m256 w = _mm256_set1_ps(scratch[(size_t)(r0 + r) * lds + p]);
            UNROLL
            for (int j = 0; j < ND; j++) acc[r][j] = _mm256_fmadd_ps(w, x[j], acc[r][j]);
        }
    }
    UNROLL
    for (int r = 0; r < R; r++)
        UNROLL
        for (int j = 0; j < ND; j++) _mm256_storeu_ps(b->out[r0 + r] + d0 + j * 8, acc[r][j]);
}

/* 32 columns per pass while they last, then 16 (S is a multiple of 16) */
AVX2_T void pv_avx2_rows(const qai_attn_block *b, int r0, const void *v, int ldv, int S, const float *scratch, int lds,
                         int P, const int R, const bool f16) {
    int d0 = 0;
    for (; d0 + 32 <= S; d0 += 32) pv_avx2_t(b, r0, v, ldv, d0, scratch, lds, P, R, 4, f16);
    if (d0 < S) pv_avx2_t(b, r0, v, ldv, d0, scratch, lds, P, R, 2, f16);
}

AVX2_T void attn_avx2_t(const qai_attn_block *b, const void *kb, const void *v, int ldv, int S, float scale,
                        float *scratch, int lds, int P, const bool f16) {
    switch (b->n) { /* 2 blocks per pass for a single row: 4 FMA chains */
    case 1: scores_avx2_t(b, kb, S, scale, scratch, lds, P, 1, 2, f16); break;
    case 2: scores_avx2_t(b, kb, S, scale, scratch, lds, P, 2, 1, f16); break;
    case 3: scores_avx2_t(b, kb, S, scale, scratch, lds, P, 3, 1, f16); break;
    default: scores_avx2_t(b, kb, S, scale, scratch, lds, P, 4, 1, f16); break;
    }
    for (int r = 0; r < b->n; r++) {
        float *sr = scratch + (size_t)r * lds;
        qai_vec_softmax(sr, b->n_keys[r], true);
        for (int p = b->n_keys[r]; p < P; p++) sr[p] = 0;
    }
    int r = 0; /* rows in pairs: 2 × 4 accumulators + 4 values + 1 weight fit 16 registers */
    for (; r + 2 <= b->n; r += 2) pv_avx2_rows(b, r, v, ldv, S, scratch, lds, P, 2, f16);
    if (r < b->n) pv_avx2_rows(b, r, v, ldv, S, scratch, lds, P, 1, f16);
}

AVX2 static void attn_avx2_f32(const qai_attn_block *b, const void *kb, const void *v, int ldv, int S, float scale,
                               float *scratch, int lds, int P) {
    attn_avx2_t(b, kb, v, ldv, S, scale, scratch, lds, P, false);
}

AVX2 static void attn_avx2_f16(const qai_attn_block *b, const void *kb, const void *v, int ldv, int S, float scale,
                               float *scratch, int lds, int P) {
    attn_avx2_t(b, kb, v, ldv, S, scale, scratch, lds, P, true);
}

AVX2 static void store_f16_avx2(uint16_t *dst, size_t stride, const float *src, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        if (stride == 1) {
            _mm_storeu_si128((__m128i *)(dst + i), h);
        } else {
            uint16_t t[8];
            _mm_storeu_si128((__m128i *)t, h);
            for (int k = 0; k < 8; k++) dst[(size_t)(i + k) * stride] = t[k];
        }
    }
    for (; i < n; i++) dst[(size_t)i * stride] = qai_fp32_to_fp16(src[i]);
}

/* ---- AVX-512 ---- */

/* 16 elements at base[i] as floats */
AVX512_T __m512 ld16(const void *base, size_t i, const bool f16) {
    return f16 ? _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)base + i)))
               : _mm512_loadu_ps((const float *)base + i);
}

/* Scores of R rows, NB key blocks per pass, then one block at a time (split
 * into even and odd d so a single row still has two chains). */
AVX512_T void scores_avx512_t(const qai_attn_block *b, const void *kb, int S, float scale, float *scratch, int lds,
                              int P, const int R, const int NB, const bool f16) {
    const size_t bs = (size_t)S * QAI_KV_BLOCK;
    const __m512 sc = _mm512_set1_ps(scale);
    int p = 0;
    for (; p + (NB - 1) * QAI_KV_BLOCK < P; p += NB * QAI_KV_BLOCK) {
        const size_t k0 = (size_t)(p / QAI_KV_BLOCK) * bs;
        __m512 acc[QAI_ATTN_ROWS][4];
        UNROLL
        for (int r = 0; r < R; r++)
            UNROLL
            for (int k = 0; k < NB; k++) acc[r][k] = _mm512_setzero_ps();
        for (int d = 0; d < S; d++) {
            __m512 k[4];
            UNROLL
            for (int j = 0; j < NB; j++) k[j] = ld16(kb, k0 + (size_t)j * bs + (size_t)d * QAI_KV_BLOCK, f16);
            UNROLL
            for (int r = 0; r < R; r++) {
                const __m512 q = _mm512_set1_ps(b->q[r][d]);
                UNROLL
                for (int j = 0; j < NB; j++) acc[r][j] = _mm512_fmadd_ps(q, k[j], acc[r][j]);
            }
        }
        UNROLL
        for (int r = 0; r < R; r++)
            UNROLL
            for (int j = 0; j < NB; j++)
                _mm512_storeu_ps(scratch + (size_t)r * lds + p + j * QAI_KV_BLOCK, _mm512_mul_ps(acc[r][j], sc));
    }
    for (; p < P; p += QAI_KV_BLOCK) {
        const size_t k0 = (size_t)(p / QAI_KV_BLOCK) * bs;
        __m512 ev[QAI_ATTN_ROWS], od[QAI_ATTN_ROWS];
        UNROLL
        for (int r = 0; r < R; r++) ev[r] = od[r] = _mm512_setzero_ps();
        for (int d = 0; d < S; d += 2) {
            const __m512 k0v = ld16(kb, k0 + (size_t)d * QAI_KV_BLOCK, f16),
                         k1v = ld16(kb, k0 + (size_t)(d + 1) * QAI_KV_BLOCK, f16);
            UNROLL
            for (int r = 0; r < R; r++) {
                ev[r] = _mm512_fmadd_ps(_mm512_set1_ps(b->q[r][d]), k0v, ev[r]);
                od[r] = _mm512_fmadd_ps(_mm512_set1_ps(b->q[r][d + 1]), k1v, od[r]);
            }
        }
        UNROLL
        for (int r = 0; r < R; r++)
            _mm512_storeu_ps(scratch + (size_t)r * lds + p, _mm512_mul_ps(_mm512_add_ps(ev[r], od[r]), sc));
    }
}

/* out(r) = P·V for R rows over P positions, ND 16-float column groups per pass
 * starting at column d0. */
AVX512_T void pv_avx512_t(const qai_attn_block *b, const void *v, int ldv, int d0, const float *scratch, int lds,
                          int P, const int R, const int ND, const bool f16) {
    __m512 acc[QAI_ATTN_ROWS][4];
    UNROLL
    for (int r = 0; r < R; r++)
        UNROLL
        for (int j = 0; j < ND; j++) acc[r][j] = _mm512_setzero_ps();
    for (int p = 0; p < P; p++) {
        __m512 x[4];
        UNROLL
        for (int j = 0; j < ND; j++) x[j] = ld16(v, (size_t)p * ldv + d0 + j * 16, f16);
        UNROLL
        for (int r = 0; r < R; r++) {
            const __m512 w = _mm512_set1_ps(scratch[(size_t)r * lds + p]);
            UNROLL
            for (int j = 0; j < ND; j++) acc[r][j] = _mm512_fmadd_ps(w, x[j], acc[r][j]);
        }
    }
    UNROLL
    for (int r = 0; r < R; r++)
        UNROLL
        for (int j = 0; j < ND; j++) _mm512_storeu_ps(b->out[r] + d0 + j * 16, acc[r][j]);
}

AVX512_T void pv_avx512_rows(const qai_attn_block *b, const void *v, int ldv, int S, const float *scratch, int lds,
                             int P, const int R, const bool f16) {
    int d0 = 0;
    for (; d0 + 64 <= S; d0 += 64) pv_avx512_t(b, v, ldv, d0, scratch, lds, P, R, 4, f16);
    if (S - d0 == 48) pv_avx512_t(b, v, ldv, d0, scratch, lds, P, R, 3, f16);
    else if (S - d0 == 32) pv_avx512_t(b, v, ldv, d0, scratch, lds, P, R, 2, f16);
    else if (S - d0 == 16) pv_avx512_t(b, v, ldv, d0, scratch, lds, P, R, 1, f16);
}

AVX512_T void attn_avx512_t(const qai_attn_block *b, const void *kb, const void *v, int ldv, int S, float scale,
                            float *scratch, int lds, int P, const bool f16) {
    switch (b->n) { /* at least 4 independent FMA chains per pass */
    case 1: scores_avx512_t(b, kb, S, scale, scratch, lds, P, 1, 4, f16); break;
    case 2: scores_avx512_t(b, kb, S, scale, scratch, lds, P, 2, 2, f16); break;
    case 3: scores_avx512_t(b, kb, S, scale, scratch, lds, P, 3, 2, f16); break;
    default: scores_avx512_t(b, kb, S, scale, scratch, lds, P, 4, 2, f16); break;
    }
    for (int r = 0; r < b->n; r++) {
        float *sr = scratch + (size_t)r * lds;
        qai_vec_softmax(sr, b->n_keys[r], true);
        for (int p = b->n_keys[r]; p < P; p++) sr[p] = 0;
    }
    switch (b->n) {
    case 1: pv_avx512_rows(b, v, ldv, S, scratch, lds, P, 1, f16); break;
    case 2: pv_avx512_rows(b, v, ldv, S, scratch, lds, P, 2, f16); break;
    case 3: pv_avx512_rows(b, v, ldv, S, scratch, lds, P, 3, f16); break;
    default: pv_avx512_rows(b, v, ldv, S, scratch, lds, P, 4, f16); break;
    }
}

AVX512 static void attn_avx512_f32(const qai_attn_block *b, const void *kb, const void *v, int ldv, int S,
                                   float scale, float *scratch, int lds, int P) {
    attn_avx512_t(b, kb, v, ldv, S, scale, scratch, lds, P, false);
}

AVX512 static void attn_avx512_f16(const qai_attn_block *b, const void *kb, const void *v, int ldv, int S,
                                   float scale, float *scratch, int lds, int P) {
    attn_avx512_t(b, kb, v, ldv, S, scale, scratch, lds, P, true);
}

/* ---- dispatch ---- */

void qai_attn_blocked_run(const qai_attn_block *b, const void *kb, const void *v, int ldv, int S, float scale,
                          float *scratch, int ld_scratch, qai_type kv_type, qai_isa isa) {
    const bool f16 = kv_type == QAI_TYPE_F16;
    if (isa == QAI_ISA_SCALAR || S % 16) {
        attn_scalar(b, kb, v, ldv, S, scale, scratch, ld_scratch, f16);
        return;
    }
    const int P = max_keys(b);
    if (isa >= QAI_ISA_AVX512) {
        if (f16) attn_avx512_f16(b, kb, v, ldv, S, scale, scratch, ld_scratch, P);
        else attn_avx512_f32(b, kb, v, ldv, S, scale, scratch, ld_scratch, P);
    } else {
        if (f16) attn_avx2_f16(b, kb, v, ldv, S, scale, scratch, ld_scratch, P);
        else attn_avx2_f32(b, kb, v, ldv, S, scale, scratch, ld_scratch, P);
    }
}

void qai_attn_store(void *dst, size_t stride, const float *src, int n, qai_type kv_type, qai_isa isa) {
    const bool f16 = kv_type == QAI_TYPE_F16;
    if (f16 && isa >= QAI_ISA_AVX2) store_f16_avx2(dst, stride, src, n);
    else store_scalar(dst, stride, src, n, f16);
}
