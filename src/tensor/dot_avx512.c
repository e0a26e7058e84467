/*
 * AVX-512 F/BW/VL/DQ/VNNI (+BF16 when the CPU has it) kernels; only called
 * when cpuid says the CPU has them. Tested against dot_scalar.c.
 *
 * Tiles: NR weight rows × MR activation rows with NR*MR accumulators in zmm
 * registers, so each weight block loaded serves MR activation rows and each
 * activation block NR weight rows (the llamafile/tinyBLAS idea).
 *
 * Integer tricks:
 *   Q8_0/Q4_0  vpdpbusd takes u8 × s8. The weight side is made unsigned (Q8_0:
 *              w ^ 0x80 = w + 128; Q4_0: the raw nibble q = w + 8) and the
 *              accumulator starts at -128·Σx (resp. -8·Σx), computed once per
 *              activation block, so no per-pair sign fixing is needed.
 *   Q4_K/Q6_K  vpmaddubsw (u8 nibbles/6-bit values × s8, no saturation
 *              possible) then vpdpwssd with the sub-block scales as int16;
 *              Q4_K mins and Q6_K's -32 offset use the Q8_K block sums.
 * Q8_0/Q4_0 go four blocks at a time where they can (vpermt2w gathers the
 * blocks' low halves into one zmm and high halves into another, so lanes
 * 4k..4k+3 belong to block k and one scale vector serves both); then pairs (two
 * blocks fill a zmm), then a single block in the low half with zero scale.
 * Single-row tiles use pairs only: they stream from memory better.
 *
 * Weights are software-prefetched (prefetchnta) about QAI_PF_DIST bytes ahead
 * in reading order (kernels_common.h): at M=1 the kernels are memory bound and
 * the hardware prefetcher alone keeps too few lines in flight.
 */
#include <immintrin.h>

#include "tensor/kernels_common.h"
#ifndef QAI_PF_HINT
#define QAI_PF_HINT _MM_HINT_NTA
#endif


QAI_INL float hsum(__m512 v) { return _mm512_reduce_add_ps(v); }

/* [fp16 *a as f32 ×8 | fp16 *b as f32 ×8] (b NULL: zeros) */
QAI_INL __m512 scale2(const uint16_t *a, const uint16_t *b) {
    __m256i va = _mm256_set1_epi16((short)*a);
    __m256i vb = b ? _mm256_set1_epi16((short)*b) : _mm256_setzero_si256();
    return _mm512_cvtph_ps(_mm256_blend_epi32(va, vb, 0xf0));
}

/* vpermw index tables (word granularity) to pull block scales and Q4_0
 * nibbles out of one 64-byte load at a pair of blocks */
static const int16_t idx_d_q8_0[32] __attribute__((aligned(64))) = {0, 0, 0, 0, 0, 0, 0, 0, 17, 17, 17, 17, 17, 17, 17, 17};
static const int16_t idx_d_q4_0[32] __attribute__((aligned(64))) = {0, 0, 0, 0, 0, 0, 0, 0, 9, 9, 9, 9, 9, 9, 9, 9};
static const int16_t idx_q_q4_0[32] __attribute__((aligned(64))) = {1,  2,  3,  4,  5,  6,  7,  8,  1,  2,  3,
                                                                    4,  5,  6,  7,  8,  10, 11, 12, 13, 14, 15,
                                                                    16, 17, 10, 11, 12, 13, 14, 15, 16, 17};

/* [scale word i ×8 | word j ×8] of a 64-byte load, as f32 */
QAI_INL __m512 scales_of(__m512i v, const int16_t *idx) {
    return _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutexvar_epi16(_mm512_load_si512((const void *)idx), v)));
}

QAI_INL __m512i load2x32(const int8_t *a, const int8_t *b) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)a)),
                              _mm256_loadu_si256((const __m256i *)b), 1);
}

/* ---- Q8_0 × Q8_0 ---- */

/* Four blocks per step (tiles of several activation rows): one vpermt2w gathers the four
 * blocks' 16-byte nibble arrays into a zmm; low nibbles (elements 0..15 of each
 * block) and high nibbles (16..31) are dotted against activations rearranged
 * the same way, so lanes 4k..4k+3 belong to block k. */
static const int16_t idx_q4_quad_q[32] __attribute__((aligned(64))) = {
    1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 15, 16, 17, 19, 20, 21, 22, 23, 24, 25, 26, 56, 57, 58, 59, 60, 61, 62, 63};
static const int16_t idx_q4_quad_d[32] __attribute__((aligned(64))) = {0, 0, 0, 0, 9, 9, 9, 9, 18, 18, 18, 18, 27, 27, 27, 27};
/* Q8_0 activations of a 136-byte group: the low halves (elements 0..15) are
 * words 0..7, 17..24, 34..41, 51..58 counted from byte 2 (sources at bytes 2
 * and 66); the high halves the same words counted from byte 18, taken from
 * sources at bytes 18 and 72 (word 27 from byte 18) so nothing past the group
 * is read. */
static const int16_t idx_x_quad_lo[32] __attribute__((aligned(64))) = {
    0, 1, 2, 3, 4, 5, 6, 7, 17, 18, 19, 20, 21, 22, 23, 24, 34, 35, 36, 37, 38, 39, 40, 41, 51, 52, 53, 54, 55, 56, 57, 58};
static const int16_t idx_x_quad_hi[32] __attribute__((aligned(64))) = {
    0, 1, 2, 3, 4, 5, 6, 7, 17, 18, 19, 20, 21, 22, 23, 24, 39, 40, 41, 42, 43, 44, 45, 46, 56, 57, 58, 59, 60, 61, 62, 63};
static const int16_t idx_x_quad_d[32] __attribute__((aligned(64))) = {0, 0, 0, 0, 17, 17, 17, 17, 34, 34, 34, 34, 51, 51, 51, 51};

/* Loads the 4 Q8_0 blocks of a 136-byte group at p as two zmm: low halves
 * (elements 0..15 of each block) and high halves (16..31), block k in lanes
 * 4k..4k+3 of a dpbusd; and their 4 scales as f32 [d0 ×4, d1 ×4, d2 ×4, d3 ×4].
 * Reads only inside the group. */
QAI_INL void q8_0_quad_load(const uint8_t *p, __m512i *lo, __m512i *hi, __m512 *d) {
    *lo = _mm512_permutex2var_epi16(_mm512_loadu_si512((const void *)(p + 2)),
                                    _mm512_load_si512((const void *)idx_x_quad_lo),
                                    _mm512_loadu_si512((const void *)(p + 66)));
    *hi = _mm512_permutex2var_epi16(_mm512_loadu_si512((const void *)(p + 18)),
                                    _mm512_load_si512((const void *)idx_x_quad_hi),
                                    _mm512_loadu_si512((const void *)(p + 72)));
    *d = _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutex2var_epi16(
        _mm512_loadu_si512((const void *)p), _mm512_load_si512((const void *)idx_x_quad_d),
        _mm512_loadu_si512((const void *)(p + 64)))));
}

QAI_INL void quad_q8_0(int64_t b, const int NR, const int MR, const uint8_t *w, size_t ws, const uint8_t *x, size_t xs,
                       __m512 acc[4][4], const qai_pfc *pc) {
    const __m512i off = _mm512_set1_epi8((char)0x80), zero = _mm512_setzero_si512();
    __m512i xlo[4], xhi[4], xc[4];
    __m512 dx[4];
    _Pragma("GCC unroll 4") for (int j = 0; j < MR; j++) {
        q8_0_quad_load((const uint8_t *)((const qai_block_q8_0 *)(x + j * xs) + b), &xlo[j], &xhi[j], &dx[j]);
        xc[j] = _mm512_sub_epi32(zero, _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(zero, off, xlo[j]), off, xhi[j]));
    }
    _Pragma("GCC unroll 4") for (int i = 0; i < NR; i++) {
        const uint8_t *wb = (const uint8_t *)((const qai_block_q8_0 *)(w + i * ws) + b);
        const char *pf = qai_pf(wb, (size_t)b * sizeof(qai_block_q8_0), pc);
        _mm_prefetch(pf, QAI_PF_HINT);
        _mm_prefetch(pf + 64, QAI_PF_HINT);
        _mm_prefetch(pf + 128, QAI_PF_HINT);
        __m512i lo, hi;
        __m512 dw;
        q8_0_quad_load(wb, &lo, &hi, &dw);
        lo = _mm512_xor_si512(lo, off);
        hi = _mm512_xor_si512(hi, off);
        _Pragma("GCC unroll 4") for (int j = 0; j < MR; j++) {
            __m512i p = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(xc[j], lo, xlo[j]), hi, xhi[j]);
            acc[i][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(dw, dx[j]), acc[i][j]);
        }
    }
}

/* One step over blocks b (and b+1 when pair) for all NR×MR pairs. */
QAI_INL void step_q8_0(int64_t b, const bool pair, const int NR, const int MR, const uint8_t *w, size_t ws,
                       const uint8_t *x, size_t xs, __m512 acc[4][4], const qai_pfc *pc) {
    const __m512i off = _mm512_set1_epi8((char)0x80), zero = _mm512_setzero_si512();
    __m512i xv[4], xc[4];
    __m512 dx[4];
    _Pragma("GCC unroll 4") for (int j = 0; j < MR; j++) {
        const qai_block_q8_0 *xb = (const qai_block_q8_0 *)(x + j * xs) + b;
        xv[j] = pair ? load2x32(xb[0].qs, xb[1].qs) : _mm512_zextsi256_si512(_mm256_loadu_si256((const __m256i *)xb[0].qs));
        xc[j] = _mm512_sub_epi32(zero, _mm512_dpbusd_epi32(zero, off, xv[j]));
        /* a pair is 68 bytes, so 64 bytes at xb stay inside it */
        dx[j] = pair ? scales_of(_mm512_loadu_si512((const void *)xb), idx_d_q8_0) : scale2(&xb[0].d, NULL);
    }
    _Pragma("GCC unroll 4") for (int i = 0; i < NR; i++) {
        const qai_block_q8_0 *wb = (const qai_block_q8_0 *)(w + i * ws) + b;
        _mm_prefetch(qai_pf(wb, (size_t)b * sizeof *wb, pc), QAI_PF_HINT);
        _mm_prefetch(qai_pf(wb, (size_t)b * sizeof *wb, pc) + 64, QAI_PF_HINT); /* 68-byte steps: cover every line */
        __m512i wv = _mm512_xor_si512(
            pair ? load2x32(wb[0].qs, wb[1].qs) : _mm512_zextsi256_si512(_mm256_loadu_si256((const __m256i *)wb[0].qs)),
            off);
        /* a pair is 68 bytes, so 64 bytes at wb stay inside it */
        __m512 dw = pair ? scales_of(_mm512_loadu_si512((const void *)wb), idx_d_q8_0) : scale2(&wb[0].d, NULL);
        _Pragma("GCC unroll 4") for (int j = 0; j < MR; j++) {
            __m512i p = _mm512_dpbusd_epi32(xc[j], wv, xv[j]);
            acc[i][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(dw, dx[j]), acc[i][j]);
        }
    }
}

QAI_INL void tile_q8_0(int64_t n, const int NR, const int MR, const void *w, size_t ws, const void *x, size_t xs,
                       float *y, int ldy) {
    const int64_t nb = n / QAI_QK;
    __m512 acc[4][4];
    const qai_pfc pcv = qai_pf_make(ws, NR), *pc = &pcv;
    _Pragma("GCC unroll 4") for (int i = 0; i < NR; i++)
        _Pragma("GCC unroll 4") for (int j = 0; j < MR; j++) acc[i][j] = _mm512_setzero_ps();
    int64_t b = 0;
    /* quads compute faster, but for one activation row the pair steps stream
     * weights from memory better (fewer split loads per line) */
    if (MR > 1)
        for (; b + 3 < nb; b += 4) quad_q8_0(b, NR, MR, w, ws, x, xs, acc, pc);
    for (; b + 1 < nb; b += 2) step_q8_0(b, true, NR, MR, w, ws, x, xs, acc, pc);
    if (b < nb) step_q8_0(b, false, NR, MR, w, ws, x, xs, acc, pc);
    _Pragma("GCC unroll 4") for (int i = 0; i < NR; i++)
        _Pragma("GCC unroll 4") for (int j = 0; j < MR; j++) y[j * ldy + i] = hsum(acc[i][j]);
}
QAI_DEFINE_GEMM(q8_0)

/* ---- Q4_0 × Q8_0 ---- */

QAI_INL __m512i q4_0_pair(const qai_block_q4_0 *wb, bool pair) {
    /* 128-bit lanes [qs_b, qs_b, qs_b1, qs_b1] >> [0, 4, 0, 4] & 15 = values 0..63 in order */
    __m256i v = pair ? _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)wb[0].qs)),
                                               _mm_loadu_si128((const __m128i *)wb[1].qs), 1)
                     : _mm256_zextsi128_si256(_mm_loadu_si128((const __m128i *)wb[0].qs));
    __m512i d = _mm512_shuffle_i64x2(_mm512_castsi256_si512(v), _mm512_castsi256_si512(v), _MM_SHUFFLE(1, 1, 0, 0));
    const long long s4 = 0x0004000400040004LL; /* 16-bit lane shift counts */
    const __m512i sh = _mm512_set_epi64(s4, s4, 0, 0, s4, s4, 0, 0);
    return _mm512_and_si512(_mm512_srlv_epi16(d, sh), _mm512_set1_epi8(15));
}

QAI_INL void step_q4_0(int64_t b, const bool pair, const int NR, const int MR, const uint8_t *w, size_t ws,
                       const uint8_t *x, size_t xs, __m512 acc[4][4], const qai_pfc *pc) {
    const __m512i eight = _mm512_set1_epi8(8), zero = _mm512_setzero_si512();
    __m512i xv[4], xc[4];
    __m512 dx[4];
    _Pragma("GCC unroll 4") for (int j = 0; j < MR; j++) {
        const qai_block_q8_0 *xb = (const qai_block_q8_0 *)(x + j * xs) + b;
        xv[j] = pair ? load2x32(xb[0].qs, xb[1].qs) : _mm512_zextsi256_si512(_mm256_loadu_si256((const __m256i *)xb[0].qs));
        xc[j] = _mm512_sub_epi32(zero, _mm512_dpbusd_epi32(zero, eight, xv[j]));
        dx[j] = pair ? scales_of(_mm512_loadu_si512((const void *)xb), idx_d_q8_0) : scale2(&xb[0].d, NULL);
    }
    _Pragma("GCC unroll 4") for (int i = 0; i < NR; i++) {
        const qai_block_q4_0 *wb = (const qai_block_q4_0 *)(w + i * ws) + b;
        _mm_prefetch(qai_pf(wb, (size_t)b * sizeof *wb, pc), QAI_PF_HINT);
        __m512i q;
        __m512 dw;
        if (pair) {
            /* the pair's 36 bytes (masked: nothing read past them), then words
             * 1..8 / 10..17 are the two blocks' nibbles, words 0 / 9 their scales */
            __m512i v = _mm512_maskz_loadu_epi8(0xfffffffffULL, wb);
            const long long s4 = 0x0004000400040004LL; /* 16-bit lane shift counts */
            const __m512i sh = _mm512_set_epi64(s4, s4, 0, 0, s4, s4, 0, 0);
            q = _mm512_and_si512(_mm512_srlv_epi16(_mm512_permutexvar_epi16(_mm512_load_si512((const void *)idx_q_q4_0), v), sh),
                                 _mm512_set1_epi8(15));
            dw = scales_of(v, idx_d_q4_0);
        } else {
            q = q4_0_pair(wb, false);
            dw = scale2(&wb[0].d, NULL);
        }
        _Pragma("GCC unroll 4") for (int j = 0; j < MR; j++) {
            __m512i p = _mm512_dpbusd_epi32(xc[j], q, xv[j]);
            acc[i][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(dw, dx[j]), acc[i][j]);
        }
    }
}

QAI_INL void quad_q4_0(int64_t b, const int NR, const int MR, const uint8_t *w, size_t ws, const uint8_t *x, size_t xs,
                       __m512 acc[4][4], const qai_pfc *pc) {
    const __m512i eight = _mm512_set1_epi8(8), zero = _mm512_setzero_si512(), m4 = _mm512_set1_epi8(15);
    const __m512i iq = _mm512_load_si512((const void *)idx_q4_quad_q), id = _mm512_load_si512((const void *)idx_q4_quad_d);
    __m512i xlo[4], xhi[4], xc[4];
    __m512 dx[4];
    _Pragma("GCC unroll 4") for (int j = 0; j < MR; j++) {
        q8_0_quad_load((const uint8_t *)((const qai_block_q8_0 *)(x + j * xs) + b), &xlo[j], &xhi[j], &dx[j]);
        xc[j] = _mm512_sub_epi32(zero, _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(zero, eight, xlo[j]), eight, xhi[j]));
    }
    _Pragma("GCC unroll 4") for (int i = 0; i < NR; i++) {
        const uint8_t *wb = (const uint8_t *)((const qai_block_q4_0 *)(w + i * ws) + b);
        _mm_prefetch(qai_pf(wb, (size_t)b * sizeof(qai_block_q4_0), pc), QAI_PF_HINT);
        _mm_prefetch(qai_pf(wb, (size_t)b * sizeof(qai_block_q4_0), pc) + 64, QAI_PF_HINT);
        __m512i a = _mm512_loadu_si512((const void *)wb), c = _mm512_loadu_si512((const void *)(wb + 8));
        __m512i v = _mm512_permutex2var_epi16(a, iq, c);
        __m512i lo = _mm512_and_si512(v, m4), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
        __m512 dw = _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutexvar_epi16(id, a)));
        _Pragma("GCC unroll 4") for (int j = 0; j < MR; j++) {
            __m512i p = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(xc[j], lo, xlo[j]), hi, xhi[j]);
            acc[i][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(dw, dx[j]), acc[i][j]);
        }
    }
}

QAI_INL void tile_q4_0(int64_t n, const int NR, const int MR, const void *w, size_t ws, const void *x, size_t xs,
                       float *y, int ldy) {
    const int64_t nb = n / QAI_QK;
    __m512 acc[4][4];
    const qai_pfc pcv = qai_pf_make(ws, NR), *pc = &pcv;
    _Pragma("GCC unroll 4") for (int i = 0; i < NR; i++)
        _Pragma("GCC unroll 4") for (int j = 0; j < MR; j++) acc[i][j] = _mm512_setzero_ps();
    int64_t b = 0;
    /* unlike Q8_0, quads also stream better for one activation row: they
     * unpack 4 blocks with one two-source permute (measured on Zen 5 with
     * 2 threads: 134M Q4_0 generation 265 -> 335-398 tok/s) */
    for (; b + 3 < nb; b += 4) quad_q4_0(b, NR, MR, w, ws, x, xs, acc, pc);
    for (; b + 1 < nb; b += 2) step_q4_0(b, true, NR, MR, w, ws, x, xs, acc, pc);
    if (b < nb) step_q4_0(b, false, NR, MR, w, ws, x, xs, acc, pc);
    _Pragma("GCC unroll 4") for (int i = 0; i < NR; i++)
        _Pragma("GCC unroll 4") for (int j = 0; j < MR; j++) y[j * ldy + i] = hsum(acc[i][j]);
}
QAI_DEFINE_GEMM(q4_0)

/* ---- Q4_K × Q8_K ---- */

QAI_INL void tile_q4_K(int64_t n, const int NR, const int MR, const void *w, size_t ws, const void *x, size_t xs,
                       float *y, int ldy) {
    const int64_t nb = n / QAI_QK_K;
    const __m512i m4 = _mm512_set1_epi8(15);
    __m512 acc[4][4];
    const qai_pfc pcv = qai_pf_make(ws, NR), *pc = &pcv;
    _Pragma("GCC unroll 4") for (int i = 0; i < NR; i++)
        _Pragma("GCC unroll 4") for (int j = 0; j < MR; j++) acc[i][j] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        _Pragma("GCC unroll 4") for (int i = 0; i < NR; i++) {
            const qai_block_q4_K *wb = (const qai_block_q4_K *)((const uint8_t *)w + i * ws) + b;
            for (int l = 0; l < (int)sizeof *wb; l += 64) _mm_prefetch(qai_pf(wb, (size_t)b * sizeof *wb, pc) + l, QAI_PF_HINT);
            __m256i s16 = _mm256_cvtepu8_epi16(qai_q4k_unpack_simd(wb->scales)); /* sc0..7, m0..7 */
            __m512i s16z = _mm512_castsi256_si512(s16);
            __m256i mdup = _mm256_permutexvar_epi16(
                _mm256_set_epi16(15, 15, 14, 14, 13, 13, 12, 12, 11, 11, 10, 10, 9, 9, 8, 8), s16);
            __m512i q[4], sc[4];
            _Pragma("GCC unroll 4") for (int c = 0; c < 4; c++) {
                /* [qs | qs >> 4] & 15: sub-blocks 2c and 2c+1 */
                __m512i v = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(wb->qs + 32 * c)));
                q[c] = _mm512_and_si512(_mm512_mask_srli_epi16(v, 0xffff0000u, v, 4), m4);
                sc[c] = _mm512_permutexvar_epi16(_mm512_inserti64x4(_mm512_set1_epi16((short)(2 * c)),
                                                                    _mm256_set1_epi16((short)(2 * c + 1)), 1),
                                                 s16z);
            }
            float d = _cvtsh_ss(wb->d), dmin = _cvtsh_ss(wb->dmin);
            _Pragma("GCC unroll 4") for (int j = 0; j < MR; j++) {
                const qai_block_q8_K *xb = (const qai_block_q8_K *)((const uint8_t *)x + j * xs) + b;
                __m512i is = _mm512_setzero_si512();
                _Pragma("GCC unroll 4") for (int c = 0; c < 4; c++) {
                    __m512i p = _mm512_maddubs_epi16(q[c], _mm512_loadu_si512((const void *)(xb->qs + 64 * c)));
                    is = _mm512_dpwssd_epi32(is, p, sc[c]);
                }
                __m256i mm = _mm256_madd_epi16(mdup, _mm256_loadu_si256((const __m256i *)xb->bsums));
                acc[i][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(is), _mm512_set1_ps(d * xb->d), acc[i][j]);
                acc[i][j] = _mm512_fnmadd_ps(_mm512_zextps256_ps512(_mm256_cvtepi32_ps(mm)), _mm512_set1_ps(dmin * xb->d),
                                             acc[i][j]);
            }
        }
    }
    _Pragma("GCC unroll 4") for (int i = 0; i < NR; i++)
        _Pragma("GCC unroll 4") for (int j = 0; j < MR; j++) y[j * ldy + i] = hsum(acc[i][j]);
}
QAI_DEFINE_GEMM(q4_K)

/* ---- Q6_K × Q8_K ---- */

QAI_INL void tile_q6_K(int64_t n, const int NR, const int MR, const void *w, size_t ws, const void *x, size_t xs,
                       float *y, int ldy) {
    const int64_t nb = n / QAI_QK_K;
    const __m512i m4 = _mm512_set1_epi8(15), m30 = _mm512_set1_epi8(0x30);
    __m512 acc[4][4];
    const qai_pfc pcv = qai_pf_make(ws, NR), *pc = &pcv;
    _Pragma("GCC unroll 4") for (int i = 0; i < NR; i++)
        _Pragma("GCC unroll 4") for (int j = 0; j < MR; j++) acc[i][j] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        _Pragma("GCC unroll 4") for (int i = 0; i < NR; i++) {
            const qai_block_q6_K *wb = (const qai_block_q6_K *)((const uint8_t *)w + i * ws) + b;
            for (int l = 0; l < (int)sizeof *wb; l += 64) _mm_prefetch(qai_pf(wb, (size_t)b * sizeof *wb, pc) + l, QAI_PF_HINT);
            __m256i s16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)wb->scales));
            __m512i s16z = _mm512_castsi256_si512(s16);
            __m512i q[4], sc[4];
            _Pragma("GCC unroll 2") for (int h = 0; h < 2; h++) {
                __m512i ql = _mm512_loadu_si512((const void *)(wb->ql + 64 * h));
                __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(wb->qh + 32 * h)));
                __m512i t = _mm512_mask_srli_epi16(qh, 0xffff0000u, qh, 2);
                q[2 * h] = _mm512_or_si512(_mm512_and_si512(ql, m4), _mm512_and_si512(_mm512_slli_epi16(t, 4), m30));
                q[2 * h + 1] =
                    _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4), _mm512_and_si512(t, m30));
                for (int k = 0; k < 2; k++) {
                    int g = 8 * h + 4 * k; /* groups g..g+3, 8 int16 lanes each */
                    sc[2 * h + k] = _mm512_permutexvar_epi16(
                        _mm512_add_epi16(_mm512_set1_epi16((short)g),
                                         _mm512_set_epi16(3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1,
                                                          1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0)),
                        s16z);
                }
            }
            float d = _cvtsh_ss(wb->d);
            _Pragma("GCC unroll 4") for (int j = 0; j < MR; j++) {
                const qai_block_q8_K *xb = (const qai_block_q8_K *)((const uint8_t *)x + j * xs) + b;
                __m256i corr = _mm256_madd_epi16(s16, _mm256_loadu_si256((const __m256i *)xb->bsums));
                __m512i is = _mm512_zextsi256_si512(_mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(corr, 5)));
                _Pragma("GCC unroll 4") for (int c = 0; c < 4; c++) {
                    __m512i p = _mm512_maddubs_epi16(q[c], _mm512_loadu_si512((const void *)(xb->qs + 64 * c)));
                    is = _mm512_dpwssd_epi32(is, p, sc[c]);
                }
                acc[i][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(is), _mm512_set1_ps(d * xb->d), acc[i][j]);
            }
        }
    }
    _Pragma("GCC unroll 4") for (int i = 0; i < NR; i++)
        _Pragma("GCC unroll 4") for (int j = 0; j < MR; j++) y[j * ldy + i] = hsum(acc[i][j]);
}
QAI_DEFINE_GEMM(q6_K)

/* ---- F32 × F32, F16 × F32, BF16 × BF16 ---- */

/* One step of 16 (kind 0 f32, 1 f16, 2 bf16 widened) or 32 (kind 3: bf16 pairs
 * with vdpbf16ps) elements for all pairs; masked only for the tail. */
QAI_INL __m512 loadf16x(const void *row, int64_t k, __mmask16 m, const bool masked, const int kind) {
    if (kind == 0) return masked ? _mm512_maskz_loadu_ps(m, (const float *)row + k) : _mm512_loadu_ps((const float *)row + k);
    __m256i h = masked ? _mm256_maskz_loadu_epi16(m, (const uint16_t *)row + k)
                       : _mm256_loadu_si256((const __m256i *)((const uint16_t *)row + k));
    if (kind == 1) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

QAI_INL void step_float(int64_t k, __mmask32 m, const bool masked, const int NR, const int MR, const uint8_t *w,
                        size_t ws, const uint8_t *x, size_t xs, __m512 acc[4][4], const int wkind, const int xkind, const qai_pfc *pc) {
    const size_t wel = wkind == 0 ? 4 : 2;
    if (wkind == 3) {
        __m512i xv[4];
        _Pragma("GCC unroll 4") for (int j = 0; j < MR; j++)
            xv[j] = masked ? _mm512_maskz_loadu_epi16(m, (const uint16_t *)(x + j * xs) + k)
                           : _mm512_loadu_si512((const void *)((const uint16_t *)(x + j * xs) + k));
        _Pragma("GCC unroll 4") for (int i = 0; i < NR; i++) {
            const uint16_t *wr = (const uint16_t *)(w + i * ws) + k;
            _mm_prefetch(qai_pf(wr, (size_t)k * 2, pc), QAI_PF_HINT);
            __m512i wv = masked ? _mm512_maskz_loadu_epi16(m, wr) : _mm512_loadu_si512((const void *)wr);
            _Pragma("GCC unroll 4") for (int j = 0; j < MR; j++) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], (__m512bh)wv, (__m512bh)xv[j]);
        }
        return;
    }
    __m512 xv[4];
    _Pragma("GCC unroll 4") for (int j = 0; j < MR; j++) xv[j] = loadf16x(x + j * xs, k, (__mmask16)m, masked, xkind);
    _Pragma("GCC unroll 4") for (int i = 0; i < NR; i++) {
        _mm_prefetch(qai_pf(w + i * ws + k * wel, (size_t)k * wel, pc), QAI_PF_HINT);
        __m512 wv = loadf16x(w + i * ws, k, (__mmask16)m, masked, wkind);
        _Pragma("GCC unroll 4") for (int j = 0; j < MR; j++) acc[i][j] = _mm512_fmadd_ps(wv, xv[j], acc[i][j]);
    }
}

QAI_INL void tile_float(int64_t n, const int NR, const int MR, const void *w, size_t ws, const void *x, size_t xs,
                        float *y, int ldy, const int wkind, const int xkind) {
    const int64_t step = wkind == 3 ? 32 : 16;
    __m512 acc[4][4];
    const qai_pfc pcv = qai_pf_make(ws, NR), *pc = &pcv;
    _Pragma("GCC unroll 4") for (int i = 0; i < NR; i++)
        _Pragma("GCC unroll 4") for (int j = 0; j < MR; j++) acc[i][j] = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + step <= n; k += step) step_float(k, 0, false, NR, MR, w, ws, x, xs, acc, wkind, xkind, pc);
    if (k < n) step_float(k, (__mmask32)((1u << (n - k)) - 1), true, NR, MR, w, ws, x, xs, acc, wkind, xkind, pc);
    _Pragma("GCC unroll 4") for (int i = 0; i < NR; i++)
        _Pragma("GCC unroll 4") for (int j = 0; j < MR; j++) y[j * ldy + i] = hsum(acc[i][j]);
}

#define FLOAT_TILE(name, wk, xk)                                                                                       \
    QAI_INL void tile_##name(int64_t n, const int NR, const int MR, const void *w, size_t ws, const void *x,          \
                             size_t xs, float *y, int ldy) {                                                           \
        tile_float(n, NR, MR, w, ws, x, xs, y, ldy, wk, xk);                                                           \
    }                                                                                                                  \
    QAI_DEFINE_GEMM(name)
FLOAT_TILE(f32, 0, 0)
FLOAT_TILE(f16, 1, 0)
FLOAT_TILE(bf16w, 2, 2) /* bf16 widened to f32 (exact), for CPUs without AVX512_BF16 */
FLOAT_TILE(bf16, 3, 3)  /* vdpbf16ps: 32 bf16 pairs per instruction; denormal inputs count as zero */

/* ---- activation converters ---- */

/* Q8_0 activations, bit-identical to the scalar converter: amax/127, then
 * round-to-nearest-even of x * (1/d) (cvtps2dq under the default MXCSR). */
static void from_float_q8_0(const float *x, void *vy, int64_t n) {
    qai_block_q8_0 *y = vy;
    const __m512 signbit = _mm512_set1_ps(-0.0f);
    for (int64_t b = 0; b < n / QAI_QK; b++, x += QAI_QK) {
        __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
        __m512 a = _mm512_max_ps(_mm512_andnot_ps(signbit, v0), _mm512_andnot_ps(signbit, v1));
        float amax = _mm512_reduce_max_ps(a);
        float d = amax / 127.f, id = d != 0 ? 1.f / d : 0.f;
        y[b].d = _cvtss_sh(d, 0);
        __m512 s = _mm512_set1_ps(id);
        __m128i q0 = _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(v0, s)));
        __m128i q1 = _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(v1, s)));
        _mm_storeu_si128((__m128i *)y[b].qs, q0);
        _mm_storeu_si128((__m128i *)(y[b].qs + 16), q1);
    }
}

void qai_kernels_fill_avx512(qai_kernel *k, bool has_bf16) {
    k[QAI_TYPE_F32] = (qai_kernel){dot_f32, qai_from_float_f32, gemm_f32, 4, 4};
    k[QAI_TYPE_F16] = (qai_kernel){dot_f16, qai_from_float_f32, gemm_f16, 4, 4};
    if (has_bf16)
        k[QAI_TYPE_BF16] = (qai_kernel){dot_bf16, qai_from_float_bf16, gemm_bf16, 4, 4};
    else
        k[QAI_TYPE_BF16] = (qai_kernel){dot_bf16w, qai_from_float_bf16, gemm_bf16w, 4, 4};
    k[QAI_TYPE_Q8_0] = (qai_kernel){dot_q8_0, from_float_q8_0, gemm_q8_0, 4, 3};
    k[QAI_TYPE_Q4_0] = (qai_kernel){dot_q4_0, from_float_q8_0, gemm_q4_0, 4, 3};
    k[QAI_TYPE_Q4_K].vec_dot = dot_q4_K;
    k[QAI_TYPE_Q4_K].gemm = gemm_q4_K;
    k[QAI_TYPE_Q4_K].gemm_nr = 4;
    k[QAI_TYPE_Q4_K].gemm_mr = 4;
    k[QAI_TYPE_Q6_K].vec_dot = dot_q6_K;
    k[QAI_TYPE_Q6_K].gemm = gemm_q6_K;
    k[QAI_TYPE_Q6_K].gemm_nr = 4;
    k[QAI_TYPE_Q6_K].gemm_mr = 4;
}

/* ---- R16 groups (Q8_0_R16, Q4_0_R16; layouts in quant.h) ----
 *
 * A tile is one 16-row weight group × one activation group of MR <= 8 rows:
 * per block and 4-element group g, one aligned 64-byte weight load serves MR
 * vpdpbusd against the rows' activation dwords broadcast from memory, so the
 * 16 lanes of an accumulator are the 16 weight rows and nothing is summed
 * horizontally. Per block and row m: the block's int32 dots minus the offset
 * times the activation sum, then acc_m = fma(I, dw * dx_m, acc_m) — the
 * scalar reference's exact operations, so the results are bit-identical to it.
 * With few rows the 8 (Q4_0: 4 + 4) vpdpbusd of a block go into two chains.
 * Weights stream in one sequential pass per tile and are prefetched
 * QAI_R16_PF bytes ahead. */
QAI_INL __m512i bcast32(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

/* One block: scales at dp (16 fp16), quants at qp, activations at xb (group layout). */
QAI_INL void r16_block_step(const bool q4, const int MR, const uint8_t *dp, const uint8_t *qp, const uint8_t *xb,
                            __m512 acc[8]) {
    const bool two = MR <= 4;
    __m512i ia[8], ib[8];
    /* start from the offset correction c = -off * sum(x) */
    _Pragma("GCC unroll 8") for (int m = 0; m < MR; m++) {
        ia[m] = _mm512_set1_epi32(*(const int32_t *)(const void *)(xb + (q4 ? 40 : 36) * MR + 4 * m));
        ib[m] = _mm512_setzero_si512();
    }
    if (!q4) {
        _Pragma("GCC unroll 8") for (int g = 0; g < 8; g++) {
            __m512i wv = _mm512_loadu_si512((const void *)(qp + 64 * g));
            _Pragma("GCC unroll 8") for (int m = 0; m < MR; m++) {
                if (two && (g & 1)) ib[m] = _mm512_dpbusd_epi32(ib[m], wv, bcast32(xb + 32 * m + 4 * g));
                else
                    ia[m] = _mm512_dpbusd_epi32(ia[m], wv, bcast32(xb + 32 * m + 4 * g));
            }
        }
    } else {
        const __m512i m4 = _mm512_set1_epi8(15);
        _Pragma("GCC unroll 4") for (int g = 0; g < 4; g++) {
            __m512i v = _mm512_loadu_si512((const void *)(qp + 64 * g));
            __m512i lo = _mm512_and_si512(v, m4), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
            _Pragma("GCC unroll 8") for (int m = 0; m < MR; m++) {
                ia[m] = _mm512_dpbusd_epi32(ia[m], lo, bcast32(xb + 32 * m + 4 * g));
                if (two) ib[m] = _mm512_dpbusd_epi32(ib[m], hi, bcast32(xb + 32 * m + 16 + 4 * g));
                else
                    ia[m] = _mm512_dpbusd_epi32(ia[m], hi, bcast32(xb + 32 * m + 16 + 4 * g));
            }
        }
    }
    const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)dp));
    _Pragma("GCC unroll 8") for (int m = 0; m < MR; m++) {
        __m512i I = two ? _mm512_add_epi32(ia[m], ib[m]) : ia[m];
        __m512 d = _mm512_mul_ps(dw, _mm512_set1_ps(*(const float *)(const void *)(xb + 32 * MR + 4 * m)));
        acc[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(I), d, acc[m]);
    }
}

QAI_INL void tile_r16(const bool q4, const int MR, int64_t n, int nr, const uint8_t *w, const uint8_t *x, float *y,
                      int ldy) {
    const int64_t nb = n / QAI_QK;
    const size_t qb = q4 ? 256 : 512, pair = 64 + 2 * qb, xstep = (size_t)QAI_R16_ACT_BLOCK * MR;
    __m512 acc[8];
    _Pragma("GCC unroll 8") for (int m = 0; m < MR; m++) acc[m] = _mm512_setzero_ps();
    const uint8_t *p = w, *xb = x;
    int64_t b = 0;
    for (; b + 1 < nb; b += 2, p += pair, xb += 2 * xstep) {
        for (size_t l = 0; l < pair; l += 64) _mm_prefetch((const char *)p + QAI_R16_PF + l, QAI_PF_HINT);
        r16_block_step(q4, MR, p, p + 64, xb, acc);
        r16_block_step(q4, MR, p + 32, p + 64 + qb, xb + xstep, acc);
    }
    if (b < nb) r16_block_step(q4, MR, p, p + 32, xb, acc);
    const __mmask16 mask = (__mmask16)((1u << nr) - 1);
    _Pragma("GCC unroll 8") for (int m = 0; m < MR; m++) _mm512_mask_storeu_ps(y + (size_t)m * ldy, mask, acc[m]);
}

QAI_DEFINE_R16_KERNELS(qai_kernels_fill_r16_avx512)
