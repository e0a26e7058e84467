/* Attention kernels: scalar reference, AVX2 and AVX-512 (function-level target
 * attributes; called only when the CPU has them). See attn.h for the layout. */
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

static void attn_scalar(const qai_attn_block *b, const float *kb, const float *v, int ldv, int S, float scale,
                        float *scratch, int lds) {
    for (int r = 0; r < b->n; r++) {
        float *sc = scratch + (size_t)r * lds;
        const int P = b->n_keys[r];
        for (int p = 0; p < P; p++) {
            float s = 0;
            for (int d = 0; d < S; d++) s += b->q[r][d] * kb[qai_kv_block_index(p, d, S)];
            sc[p] = s * scale;
        }
        qai_vec_softmax(sc, P, false);
        float *o = b->out[r];
        memset(o, 0, (size_t)S * sizeof(float));
        for (int p = 0; p < P; p++)
            for (int d = 0; d < S; d++) o[d] += sc[p] * v[(size_t)p * ldv + d];
    }
}

#define AVX2 __attribute__((target("avx2,fma")))
#define AVX512 __attribute__((target("avx512f,avx2,fma")))

/* Scores for all rows, one key block (16 positions) at a time as two 8-lane
 * halves; lanes past a row's n_keys are computed but never read (its softmax
 * covers only n_keys). */
AVX2 static void scores_avx2(const qai_attn_block *b, const float *kb, int S, float scale, float *scratch, int lds,
                             int P) {
    const int R = b->n;
    const __m256 sc = _mm256_set1_ps(scale);
    for (int p = 0; p < P; p += QAI_KV_BLOCK) {
        const float *blk = kb + (size_t)(p / QAI_KV_BLOCK) * S * QAI_KV_BLOCK;
        __m256 lo[QAI_ATTN_ROWS], hi[QAI_ATTN_ROWS];
        for (int r = 0; r < R; r++) lo[r] = hi[r] = _mm256_setzero_ps();
        for (int d = 0; d < S; d++) {
            __m256 k0 = _mm256_loadu_ps(blk + (size_t)d * QAI_KV_BLOCK), k1 = _mm256_loadu_ps(blk + (size_t)d * QAI_KV_BLOCK + 8);
            for (int r = 0; r < R; r++) {
                __m256 q = _mm256_set1_ps(b->q[r][d]);
                lo[r] = _mm256_fmadd_ps(q, k0, lo[r]);
                hi[r] = _mm256_fmadd_ps(q, k1, hi[r]);
            }
        }
        for (int r = 0; r < R; r++) {
            _mm256_storeu_ps(scratch + (size_t)r * lds + p, _mm256_mul_ps(lo[r], sc));
            _mm256_storeu_ps(scratch + (size_t)r * lds + p + 8, _mm256_mul_ps(hi[r], sc));
        }
    }
}

AVX2 static void pv_avx2(const qai_attn_block *b, const float *v, int ldv, int S, const float *scratch, int lds) {
    for (int r = 0; r < b->n; r++) {
        const float *pr = scratch + (size_t)r * lds;
        for (int d0 = 0; d0 < S; d0 += 32) {
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            for (int p = 0; p < b->n_keys[r]; p++) {
                const float *vp = v + (size_t)p * ldv + d0;
                __m256 w = _mm256_set1_ps(pr[p]);
                a0 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vp), a0);
                a1 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vp + 8), a1);
                if (d0 + 16 < S) {
                    a2 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vp + 16), a2);
                    a3 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vp + 24), a3);
                }
            }
            float *o = b->out[r] + d0;
            _mm256_storeu_ps(o, a0);
            _mm256_storeu_ps(o + 8, a1);
            if (d0 + 16 < S) {
                _mm256_storeu_ps(o + 16, a2);
                _mm256_storeu_ps(o + 24, a3);
            }
        }
    }
}

/* Two key blocks (32 positions) per pass so each q broadcast feeds two FMAs,
 * then a last single block. */
AVX512 static void scores_avx512(const qai_attn_block *b, const float *kb, int S, float scale, float *scratch,
                                 int lds, int P) {
    const int R = b->n;
    const size_t bs = (size_t)S * QAI_KV_BLOCK; /* floats per block */
    const __m512 sc = _mm512_set1_ps(scale);
    int p = 0;
    for (; p + QAI_KV_BLOCK < P; p += 2 * QAI_KV_BLOCK) {
        const float *b0 = kb + (size_t)(p / QAI_KV_BLOCK) * bs, *b1 = b0 + bs;
        __m512 lo[QAI_ATTN_ROWS], hi[QAI_ATTN_ROWS];
        for (int r = 0; r < R; r++) lo[r] = hi[r] = _mm512_setzero_ps();
        for (int d = 0; d < S; d++) {
            __m512 k0 = _mm512_loadu_ps(b0 + (size_t)d * QAI_KV_BLOCK), k1 = _mm512_loadu_ps(b1 + (size_t)d * QAI_KV_BLOCK);
            for (int r = 0; r < R; r++) {
                __m512 q = _mm512_set1_ps(b->q[r][d]);
                lo[r] = _mm512_fmadd_ps(q, k0, lo[r]);
                hi[r] = _mm512_fmadd_ps(q, k1, hi[r]);
            }
        }
        for (int r = 0; r < R; r++) {
            _mm512_storeu_ps(scratch + (size_t)r * lds + p, _mm512_mul_ps(lo[r], sc));
            _mm512_storeu_ps(scratch + (size_t)r * lds + p + QAI_KV_BLOCK, _mm512_mul_ps(hi[r], sc));
        }
    }
    if (p < P) {
        const float *b0 = kb + (size_t)(p / QAI_KV_BLOCK) * bs;
        __m512 acc[QAI_ATTN_ROWS];
        for (int r = 0; r < R; r++) acc[r] = _mm512_setzero_ps();
        for (int d = 0; d < S; d++) {
            __m512 k = _mm512_loadu_ps(b0 + (size_t)d * QAI_KV_BLOCK);
            for (int r = 0; r < R; r++) acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(b->q[r][d]), k, acc[r]);
        }
        for (int r = 0; r < R; r++) _mm512_storeu_ps(scratch + (size_t)r * lds + p, _mm512_mul_ps(acc[r], sc));
    }
}

AVX512 static void pv_avx512(const qai_attn_block *b, const float *v, int ldv, int S, const float *scratch, int lds) {
    for (int r = 0; r < b->n; r++) {
        const float *pr = scratch + (size_t)r * lds;
        for (int d0 = 0; d0 < S; d0 += 64) {
            int nd = S - d0 < 64 ? (S - d0) / 16 : 4;
            __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            const int P = b->n_keys[r];
            if (nd == 4) {
                for (int p = 0; p < P; p++) {
                    const float *vp = v + (size_t)p * ldv + d0;
                    __m512 w = _mm512_set1_ps(pr[p]);
                    a0 = _mm512_fmadd_ps(w, _mm512_loadu_ps(vp), a0);
                    a1 = _mm512_fmadd_ps(w, _mm512_loadu_ps(vp + 16), a1);
                    a2 = _mm512_fmadd_ps(w, _mm512_loadu_ps(vp + 32), a2);
                    a3 = _mm512_fmadd_ps(w, _mm512_loadu_ps(vp + 48), a3);
                }
            } else {
                for (int p = 0; p < P; p++) {
                    const float *vp = v + (size_t)p * ldv + d0;
                    __m512 w = _mm512_set1_ps(pr[p]);
                    a0 = _mm512_fmadd_ps(w, _mm512_loadu_ps(vp), a0);
                    if (nd > 1) a1 = _mm512_fmadd_ps(w, _mm512_loadu_ps(vp + 16), a1);
                    if (nd > 2) a2 = _mm512_fmadd_ps(w, _mm512_loadu_ps(vp + 32), a2);
                }
            }
            float *o = b->out[r] + d0;
            _mm512_storeu_ps(o, a0);
            if (nd > 1) _mm512_storeu_ps(o + 16, a1);
            if (nd > 2) _mm512_storeu_ps(o + 32, a2);
            if (nd > 3) _mm512_storeu_ps(o + 48, a3);
        }
    }
}

void qai_attn_blocked_run(const qai_attn_block *b, const float *kb, const float *v, int ldv, int S, float scale,
                          float *scratch, int ld_scratch, qai_isa isa) {
    if (isa == QAI_ISA_SCALAR || S % 16) {
        attn_scalar(b, kb, v, ldv, S, scale, scratch, ld_scratch);
        return;
    }
    int P = max_keys(b);
    if (isa >= QAI_ISA_AVX512) scores_avx512(b, kb, S, scale, scratch, ld_scratch, P);
    else scores_avx2(b, kb, S, scale, scratch, ld_scratch, P);
    for (int r = 0; r < b->n; r++) qai_vec_softmax(scratch + (size_t)r * ld_scratch, b->n_keys[r], true);
    if (isa >= QAI_ISA_AVX512) pv_avx512(b, v, ldv, S, scratch, ld_scratch);
    else pv_avx2(b, v, ldv, S, scratch, ld_scratch);
}
