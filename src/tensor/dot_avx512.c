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
 * Two Q8_0/Q4_0 blocks (64 values) fill one zmm; an odd last block uses the
 * low half with zero scale in the high half.
 */
#include <immintrin.h>

#include "tensor/kernels_common.h"


QAI_INL float hsum(__m512 v) { return _mm512_reduce_add_ps(v); }

/* [fp16 a as f32 ×8 | fp16 b as f32 ×8] */
QAI_INL __m512 scale2(uint16_t a, uint16_t b) {
    __m128 f = _mm_cvtph_ps(_mm_cvtsi32_si128((int)((uint32_t)a | ((uint32_t)b << 16))));
    const __m512i idx = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    return _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(f));
}

QAI_INL __m512i load2x32(const int8_t *a, const int8_t *b) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)a)),
                              _mm256_loadu_si256((const __m256i *)b), 1);
}

/* ---- Q8_0 × Q8_0 ---- */

/* One step over blocks b (and b+1 when pair) for all NR×MR pairs. */
QAI_INL void step_q8_0(int64_t b, const bool pair, const int NR, const int MR, const uint8_t *w, size_t ws,
                       const uint8_t *x, size_t xs, __m512 acc[4][4]) {
    const __m512i off = _mm512_set1_epi8((char)0x80), zero = _mm512_setzero_si512();
    __m512i xv[4], xc[4];
    __m512 dx[4];
    for (int j = 0; j < MR; j++) {
        const qai_block_q8_0 *xb = (const qai_block_q8_0 *)(x + j * xs) + b;
        xv[j] = pair ? load2x32(xb[0].qs, xb[1].qs) : _mm512_zextsi256_si512(_mm256_loadu_si256((const __m256i *)xb[0].qs));
        xc[j] = _mm512_sub_epi32(zero, _mm512_dpbusd_epi32(zero, off, xv[j]));
        dx[j] = scale2(xb[0].d, pair ? xb[1].d : 0);
    }
    for (int i = 0; i < NR; i++) {
        const qai_block_q8_0 *wb = (const qai_block_q8_0 *)(w + i * ws) + b;
        _mm_prefetch((const char *)wb + NR * ws, _MM_HINT_T0); /* same place in the next tile's rows */
        __m512i wv = _mm512_xor_si512(
            pair ? load2x32(wb[0].qs, wb[1].qs) : _mm512_zextsi256_si512(_mm256_loadu_si256((const __m256i *)wb[0].qs)),
            off);
        __m512 dw = scale2(wb[0].d, pair ? wb[1].d : 0);
        for (int j = 0; j < MR; j++) {
            __m512i p = _mm512_dpbusd_epi32(xc[j], wv, xv[j]);
            acc[i][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(dw, dx[j]), acc[i][j]);
        }
    }
}

QAI_INL void tile_q8_0(int64_t n, const int NR, const int MR, const void *w, size_t ws, const void *x, size_t xs,
                       float *y, int ldy) {
    const int64_t nb = n / QAI_QK;
    __m512 acc[4][4];
    for (int i = 0; i < NR; i++)
        for (int j = 0; j < MR; j++) acc[i][j] = _mm512_setzero_ps();
    int64_t b = 0;
    for (; b + 1 < nb; b += 2) step_q8_0(b, true, NR, MR, w, ws, x, xs, acc);
    if (b < nb) step_q8_0(b, false, NR, MR, w, ws, x, xs, acc);
    for (int i = 0; i < NR; i++)
        for (int j = 0; j < MR; j++) y[j * ldy + i] = hsum(acc[i][j]);
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
                       const uint8_t *x, size_t xs, __m512 acc[4][4]) {
    const __m512i eight = _mm512_set1_epi8(8), zero = _mm512_setzero_si512();
    __m512i xv[4], xc[4];
    __m512 dx[4];
    for (int j = 0; j < MR; j++) {
        const qai_block_q8_0 *xb = (const qai_block_q8_0 *)(x + j * xs) + b;
        xv[j] = pair ? load2x32(xb[0].qs, xb[1].qs) : _mm512_zextsi256_si512(_mm256_loadu_si256((const __m256i *)xb[0].qs));
        xc[j] = _mm512_sub_epi32(zero, _mm512_dpbusd_epi32(zero, eight, xv[j]));
        dx[j] = scale2(xb[0].d, pair ? xb[1].d : 0);
    }
    for (int i = 0; i < NR; i++) {
        const qai_block_q4_0 *wb = (const qai_block_q4_0 *)(w + i * ws) + b;
        _mm_prefetch((const char *)wb + NR * ws, _MM_HINT_T0);
        __m512i q = q4_0_pair(wb, pair);
        __m512 dw = scale2(wb[0].d, pair ? wb[1].d : 0);
        for (int j = 0; j < MR; j++) {
            __m512i p = _mm512_dpbusd_epi32(xc[j], q, xv[j]);
            acc[i][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(dw, dx[j]), acc[i][j]);
        }
    }
}

QAI_INL void tile_q4_0(int64_t n, const int NR, const int MR, const void *w, size_t ws, const void *x, size_t xs,
                       float *y, int ldy) {
    const int64_t nb = n / QAI_QK;
    __m512 acc[4][4];
    for (int i = 0; i < NR; i++)
        for (int j = 0; j < MR; j++) acc[i][j] = _mm512_setzero_ps();
    int64_t b = 0;
    for (; b + 1 < nb; b += 2) step_q4_0(b, true, NR, MR, w, ws, x, xs, acc);
    if (b < nb) step_q4_0(b, false, NR, MR, w, ws, x, xs, acc);
    for (int i = 0; i < NR; i++)
        for (int j = 0; j < MR; j++) y[j * ldy + i] = hsum(acc[i][j]);
}
QAI_DEFINE_GEMM(q4_0)

/* ---- Q4_K × Q8_K ---- */

QAI_INL void tile_q4_K(int64_t n, const int NR, const int MR, const void *w, size_t ws, const void *x, size_t xs,
                       float *y, int ldy) {
    const int64_t nb = n / QAI_QK_K;
    const __m512i m4 = _mm512_set1_epi8(15);
    __m512 acc[4][4];
    for (int i = 0; i < NR; i++)
        for (int j = 0; j < MR; j++) acc[i][j] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        for (int i = 0; i < NR; i++) {
            const qai_block_q4_K *wb = (const qai_block_q4_K *)((const uint8_t *)w + i * ws) + b;
            for (int l = 0; l < (int)sizeof *wb; l += 64) _mm_prefetch((const char *)wb + NR * ws + l, _MM_HINT_T0);
            uint32_t u[4];
            qai_q4k_unpack(wb->scales, u);
            __m256i s16 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)u)); /* sc0..7, m0..7 */
            __m512i s16z = _mm512_castsi256_si512(s16);
            __m256i mdup = _mm256_permutexvar_epi16(
                _mm256_set_epi16(15, 15, 14, 14, 13, 13, 12, 12, 11, 11, 10, 10, 9, 9, 8, 8), s16);
            __m512i q[4], sc[4];
            for (int c = 0; c < 4; c++) {
                __m256i v = _mm256_loadu_si256((const __m256i *)(wb->qs + 32 * c));
                __m512i vv = _mm512_inserti64x4(_mm512_castsi256_si512(v), _mm256_srli_epi16(v, 4), 1);
                q[c] = _mm512_and_si512(vv, m4);
                sc[c] = _mm512_permutexvar_epi16(_mm512_inserti64x4(_mm512_set1_epi16((short)(2 * c)),
                                                                    _mm256_set1_epi16((short)(2 * c + 1)), 1),
                                                 s16z);
            }
            float d = _cvtsh_ss(wb->d), dmin = _cvtsh_ss(wb->dmin);
            for (int j = 0; j < MR; j++) {
                const qai_block_q8_K *xb = (const qai_block_q8_K *)((const uint8_t *)x + j * xs) + b;
                __m512i is = _mm512_setzero_si512();
                for (int c = 0; c < 4; c++) {
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
    for (int i = 0; i < NR; i++)
        for (int j = 0; j < MR; j++) y[j * ldy + i] = hsum(acc[i][j]);
}
QAI_DEFINE_GEMM(q4_K)

/* ---- Q6_K × Q8_K ---- */

QAI_INL void tile_q6_K(int64_t n, const int NR, const int MR, const void *w, size_t ws, const void *x, size_t xs,
                       float *y, int ldy) {
    const int64_t nb = n / QAI_QK_K;
    const __m512i m4 = _mm512_set1_epi8(15), m30 = _mm512_set1_epi8(0x30);
    /* 16-bit lane shift counts: 0 in the low 256 bits, 2 in the high */
    const __m512i sh02 = _mm512_set_epi64(0x0002000200020002LL, 0x0002000200020002LL, 0x0002000200020002LL,
                                          0x0002000200020002LL, 0, 0, 0, 0);
    __m512 acc[4][4];
    for (int i = 0; i < NR; i++)
        for (int j = 0; j < MR; j++) acc[i][j] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        for (int i = 0; i < NR; i++) {
            const qai_block_q6_K *wb = (const qai_block_q6_K *)((const uint8_t *)w + i * ws) + b;
            for (int l = 0; l < (int)sizeof *wb; l += 64) _mm_prefetch((const char *)wb + NR * ws + l, _MM_HINT_T0);
            __m256i s16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)wb->scales));
            __m512i s16z = _mm512_castsi256_si512(s16);
            __m512i q[4], sc[4];
            for (int h = 0; h < 2; h++) {
                __m512i ql = _mm512_loadu_si512((const void *)(wb->ql + 64 * h));
                __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(wb->qh + 32 * h)));
                __m512i t = _mm512_srlv_epi16(qh, sh02);
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
            for (int j = 0; j < MR; j++) {
                const qai_block_q8_K *xb = (const qai_block_q8_K *)((const uint8_t *)x + j * xs) + b;
                __m256i corr = _mm256_madd_epi16(s16, _mm256_loadu_si256((const __m256i *)xb->bsums));
                __m512i is = _mm512_zextsi256_si512(_mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(corr, 5)));
                for (int c = 0; c < 4; c++) {
                    __m512i p = _mm512_maddubs_epi16(q[c], _mm512_loadu_si512((const void *)(xb->qs + 64 * c)));
                    is = _mm512_dpwssd_epi32(is, p, sc[c]);
                }
                acc[i][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(is), _mm512_set1_ps(d * xb->d), acc[i][j]);
            }
        }
    }
    for (int i = 0; i < NR; i++)
        for (int j = 0; j < MR; j++) y[j * ldy + i] = hsum(acc[i][j]);
}
QAI_DEFINE_GEMM(q6_K)

/* ---- F32 × F32, F16 × F32, BF16 × BF16 ---- */

QAI_INL void tile_f32(int64_t n, const int NR, const int MR, const void *w, size_t ws, const void *x, size_t xs,
                      float *y, int ldy) {
    __m512 acc[4][4];
    for (int i = 0; i < NR; i++)
        for (int j = 0; j < MR; j++) acc[i][j] = _mm512_setzero_ps();
    for (int64_t k = 0; k < n; k += 16) {
        __mmask16 m = n - k >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - k)) - 1);
        __m512 xv[4];
        for (int j = 0; j < MR; j++) xv[j] = _mm512_maskz_loadu_ps(m, (const float *)((const uint8_t *)x + j * xs) + k);
        for (int i = 0; i < NR; i++) {
            _mm_prefetch((const char *)((const float *)((const uint8_t *)w + i * ws) + k) + NR * ws, _MM_HINT_T0);
            __m512 wv = _mm512_maskz_loadu_ps(m, (const float *)((const uint8_t *)w + i * ws) + k);
            for (int j = 0; j < MR; j++) acc[i][j] = _mm512_fmadd_ps(wv, xv[j], acc[i][j]);
        }
    }
    for (int i = 0; i < NR; i++)
        for (int j = 0; j < MR; j++) y[j * ldy + i] = hsum(acc[i][j]);
}
QAI_DEFINE_GEMM(f32)

QAI_INL void tile_f16(int64_t n, const int NR, const int MR, const void *w, size_t ws, const void *x, size_t xs,
                      float *y, int ldy) {
    __m512 acc[4][4];
    for (int i = 0; i < NR; i++)
        for (int j = 0; j < MR; j++) acc[i][j] = _mm512_setzero_ps();
    for (int64_t k = 0; k < n; k += 16) {
        __mmask16 m = n - k >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - k)) - 1);
        __m512 xv[4];
        for (int j = 0; j < MR; j++) xv[j] = _mm512_maskz_loadu_ps(m, (const float *)((const uint8_t *)x + j * xs) + k);
        for (int i = 0; i < NR; i++) {
            _mm_prefetch((const char *)((const uint16_t *)((const uint8_t *)w + i * ws) + k) + NR * ws, _MM_HINT_T0);
            __m512 wv = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const uint16_t *)((const uint8_t *)w + i * ws) + k));
            for (int j = 0; j < MR; j++) acc[i][j] = _mm512_fmadd_ps(wv, xv[j], acc[i][j]);
        }
    }
    for (int i = 0; i < NR; i++)
        for (int j = 0; j < MR; j++) y[j * ldy + i] = hsum(acc[i][j]);
}
QAI_DEFINE_GEMM(f16)

/* bf16 without AVX512_BF16: widen to f32 (exact) and fma */
QAI_INL __m512 bf16_to_f32(__m256i v) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16)); }

QAI_INL void tile_bf16w(int64_t n, const int NR, const int MR, const void *w, size_t ws, const void *x, size_t xs,
                        float *y, int ldy) {
    __m512 acc[4][4];
    for (int i = 0; i < NR; i++)
        for (int j = 0; j < MR; j++) acc[i][j] = _mm512_setzero_ps();
    for (int64_t k = 0; k < n; k += 16) {
        __mmask16 m = n - k >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - k)) - 1);
        __m512 xv[4];
        for (int j = 0; j < MR; j++)
            xv[j] = bf16_to_f32(_mm256_maskz_loadu_epi16(m, (const uint16_t *)((const uint8_t *)x + j * xs) + k));
        for (int i = 0; i < NR; i++) {
            _mm_prefetch((const char *)((const uint16_t *)((const uint8_t *)w + i * ws) + k) + NR * ws, _MM_HINT_T0);
            __m512 wv = bf16_to_f32(_mm256_maskz_loadu_epi16(m, (const uint16_t *)((const uint8_t *)w + i * ws) + k));
            for (int j = 0; j < MR; j++) acc[i][j] = _mm512_fmadd_ps(wv, xv[j], acc[i][j]);
        }
    }
    for (int i = 0; i < NR; i++)
        for (int j = 0; j < MR; j++) y[j * ldy + i] = hsum(acc[i][j]);
}
QAI_DEFINE_GEMM(bf16w)

/* vdpbf16ps: 32 bf16 pairs per instruction (denormal inputs count as zero) */
QAI_INL void tile_bf16(int64_t n, const int NR, const int MR, const void *w, size_t ws, const void *x, size_t xs,
                       float *y, int ldy) {
    __m512 acc[4][4];
    for (int i = 0; i < NR; i++)
        for (int j = 0; j < MR; j++) acc[i][j] = _mm512_setzero_ps();
    for (int64_t k = 0; k < n; k += 32) {
        __mmask32 m = n - k >= 32 ? (__mmask32)0xffffffffu : (__mmask32)((1u << (n - k)) - 1);
        __m512i xv[4];
        for (int j = 0; j < MR; j++) xv[j] = _mm512_maskz_loadu_epi16(m, (const uint16_t *)((const uint8_t *)x + j * xs) + k);
        for (int i = 0; i < NR; i++) {
            _mm_prefetch((const char *)((const uint16_t *)((const uint8_t *)w + i * ws) + k) + NR * ws, _MM_HINT_T0);
            __m512i wv = _mm512_maskz_loadu_epi16(m, (const uint16_t *)((const uint8_t *)w + i * ws) + k);
            for (int j = 0; j < MR; j++) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], (__m512bh)wv, (__m512bh)xv[j]);
        }
    }
    for (int i = 0; i < NR; i++)
        for (int j = 0; j < MR; j++) y[j * ldy + i] = hsum(acc[i][j]);
}
QAI_DEFINE_GEMM(bf16)

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
