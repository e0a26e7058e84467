/*
 * AVX2 + FMA + F16C kernels (compiled with -mavx2 -mfma -mf16c; only called
 * when cpuid says the CPU has them). Tested against dot_scalar.c.
 *
 * Same tiling as dot_avx512.c (NR weight rows × MR activation rows of
 * accumulators), sized for 16 ymm registers. Without VNNI the integer dots
 * use vpmaddubsw (u8 × s8 -> s16 pairs) then vpmaddwd:
 *   Q8_0   |w| × sign(x, w) (products fit in s16 without saturation)
 *   Q4_0   raw nibbles q = w + 8 as the unsigned side, minus 8·Σx per block
 *   Q4_K/Q6_K  vpmaddwd against the sub-block scales, mins / -32 offset via
 *          the Q8_K block sums.
 */
#include <immintrin.h>

#include "tensor/kernels_common.h"

QAI_INL float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

QAI_INL float h2f(uint16_t h) { return _cvtsh_ss(h); }

/* ---- Q8_0 × Q8_0 ---- */

QAI_INL void tile_q8_0(int64_t n, const int NR, const int MR, const void *w, size_t ws, const void *x, size_t xs,
                       float *y, int ldy) {
    const int64_t nb = n / QAI_QK;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[4][4];
    const qai_pfc pcv = qai_pf_make(ws, NR), *pc = &pcv;
    _Pragma("GCC unroll 4") for (int i = 0; i < NR; i++)
        _Pragma("GCC unroll 4") for (int j = 0; j < MR; j++) acc[i][j] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        __m256i xv[4];
        float dx[4];
        _Pragma("GCC unroll 4") for (int j = 0; j < MR; j++) {
            const qai_block_q8_0 *xb = (const qai_block_q8_0 *)((const uint8_t *)x + j * xs) + b;
            xv[j] = _mm256_loadu_si256((const __m256i *)xb->qs);
            dx[j] = h2f(xb->d);
        }
        _Pragma("GCC unroll 4") for (int i = 0; i < NR; i++) {
            const qai_block_q8_0 *wb = (const qai_block_q8_0 *)((const uint8_t *)w + i * ws) + b;
            _mm_prefetch(qai_pf(wb, (size_t)b * sizeof *wb, pc), _MM_HINT_NTA);
            __m256i wv = _mm256_loadu_si256((const __m256i *)wb->qs);
            __m256i aw = _mm256_sign_epi8(wv, wv);
            float dw = h2f(wb->d);
            _Pragma("GCC unroll 4") for (int j = 0; j < MR; j++) {
                __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(aw, _mm256_sign_epi8(xv[j], wv)), ones);
                acc[i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(dw * dx[j]), acc[i][j]);
            }
        }
    }
    _Pragma("GCC unroll 4") for (int i = 0; i < NR; i++)
        _Pragma("GCC unroll 4") for (int j = 0; j < MR; j++) y[j * ldy + i] = hsum8(acc[i][j]);
}
QAI_DEFINE_GEMM(q8_0)

/* ---- Q4_0 × Q8_0 ---- */

QAI_INL void tile_q4_0(int64_t n, const int NR, const int MR, const void *w, size_t ws, const void *x, size_t xs,
                       float *y, int ldy) {
    const int64_t nb = n / QAI_QK;
    const __m256i ones = _mm256_set1_epi16(1), eight = _mm256_set1_epi8(8), m4 = _mm256_set1_epi8(15);
    __m256 acc[4][4];
    const qai_pfc pcv = qai_pf_make(ws, NR), *pc = &pcv;
    _Pragma("GCC unroll 4") for (int i = 0; i < NR; i++)
        _Pragma("GCC unroll 4") for (int j = 0; j < MR; j++) acc[i][j] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        __m256i xv[4], xc[4];
        float dx[4];
        _Pragma("GCC unroll 4") for (int j = 0; j < MR; j++) {
            const qai_block_q8_0 *xb = (const qai_block_q8_0 *)((const uint8_t *)x + j * xs) + b;
            xv[j] = _mm256_loadu_si256((const __m256i *)xb->qs);
            xc[j] = _mm256_madd_epi16(_mm256_maddubs_epi16(eight, xv[j]), ones);
            dx[j] = h2f(xb->d);
        }
        _Pragma("GCC unroll 4") for (int i = 0; i < NR; i++) {
            const qai_block_q4_0 *wb = (const qai_block_q4_0 *)((const uint8_t *)w + i * ws) + b;
            _mm_prefetch(qai_pf(wb, (size_t)b * sizeof *wb, pc), _MM_HINT_NTA);
            __m128i v = _mm_loadu_si128((const __m128i *)wb->qs);
            __m256i q = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(v, 4), v), m4);
            float dw = h2f(wb->d);
            _Pragma("GCC unroll 4") for (int j = 0; j < MR; j++) {
                __m256i p = _mm256_sub_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(q, xv[j]), ones), xc[j]);
                acc[i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(dw * dx[j]), acc[i][j]);
            }
        }
    }
    _Pragma("GCC unroll 4") for (int i = 0; i < NR; i++)
        _Pragma("GCC unroll 4") for (int j = 0; j < MR; j++) y[j * ldy + i] = hsum8(acc[i][j]);
}
QAI_DEFINE_GEMM(q4_0)

/* ---- Q4_K × Q8_K ---- */

QAI_INL void tile_q4_K(int64_t n, const int NR, const int MR, const void *w, size_t ws, const void *x, size_t xs,
                       float *y, int ldy) {
    const int64_t nb = n / QAI_QK_K;
    const __m256i m4 = _mm256_set1_epi8(15);
    __m256 acc[4][4];
    const qai_pfc pcv = qai_pf_make(ws, NR), *pc = &pcv;
    _Pragma("GCC unroll 4") for (int i = 0; i < NR; i++)
        _Pragma("GCC unroll 4") for (int j = 0; j < MR; j++) acc[i][j] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        _Pragma("GCC unroll 4") for (int i = 0; i < NR; i++) {
            const qai_block_q4_K *wb = (const qai_block_q4_K *)((const uint8_t *)w + i * ws) + b;
            for (int l = 0; l < (int)sizeof *wb; l += 64) _mm_prefetch(qai_pf(wb, (size_t)b * sizeof *wb, pc) + l, _MM_HINT_NTA);
            __m128i scm = qai_q4k_unpack_simd(wb->scales); /* sc0..7, m0..7 */
            __m256i mdup = _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(scm, scm));
            __m256i s16 = _mm256_cvtepu8_epi16(scm);
            __m256i is[4];
            _Pragma("GCC unroll 4") for (int j = 0; j < MR; j++) is[j] = _mm256_setzero_si256();
            _Pragma("GCC unroll 4") for (int c = 0; c < 4; c++) {
                __m256i v = _mm256_loadu_si256((const __m256i *)(wb->qs + 32 * c));
                __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
                /* int16 scales 2c and 2c+1 broadcast (c is a constant after unrolling) */
                __m128i sl = _mm256_castsi256_si128(s16);
                __m256i s0, s1;
                switch (c) {
                case 0: s0 = _mm256_broadcastw_epi16(sl), s1 = _mm256_broadcastw_epi16(_mm_srli_si128(sl, 2)); break;
                case 1: s0 = _mm256_broadcastw_epi16(_mm_srli_si128(sl, 4)), s1 = _mm256_broadcastw_epi16(_mm_srli_si128(sl, 6)); break;
                case 2: s0 = _mm256_broadcastw_epi16(_mm_srli_si128(sl, 8)), s1 = _mm256_broadcastw_epi16(_mm_srli_si128(sl, 10)); break;
                default: s0 = _mm256_broadcastw_epi16(_mm_srli_si128(sl, 12)), s1 = _mm256_broadcastw_epi16(_mm_srli_si128(sl, 14)); break;
                }
                _Pragma("GCC unroll 4") for (int j = 0; j < MR; j++) {
                    const qai_block_q8_K *xb = (const qai_block_q8_K *)((const uint8_t *)x + j * xs) + b;
                    __m256i p0 = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)(xb->qs + 64 * c)));
                    __m256i p1 = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(xb->qs + 64 * c + 32)));
                    is[j] = _mm256_add_epi32(is[j], _mm256_add_epi32(_mm256_madd_epi16(p0, s0), _mm256_madd_epi16(p1, s1)));
                }
            }
            float d = h2f(wb->d), dmin = h2f(wb->dmin);
            _Pragma("GCC unroll 4") for (int j = 0; j < MR; j++) {
                const qai_block_q8_K *xb = (const qai_block_q8_K *)((const uint8_t *)x + j * xs) + b;
                __m256i mm = _mm256_madd_epi16(mdup, _mm256_loadu_si256((const __m256i *)xb->bsums));
                acc[i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(is[j]), _mm256_set1_ps(d * xb->d), acc[i][j]);
                acc[i][j] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(mm), _mm256_set1_ps(dmin * xb->d), acc[i][j]);
            }
        }
    }
    _Pragma("GCC unroll 4") for (int i = 0; i < NR; i++)
        _Pragma("GCC unroll 4") for (int j = 0; j < MR; j++) y[j * ldy + i] = hsum8(acc[i][j]);
}
QAI_DEFINE_GEMM(q4_K)

/* ---- Q6_K × Q8_K ---- */

QAI_INL void tile_q6_K(int64_t n, const int NR, const int MR, const void *w, size_t ws, const void *x, size_t xs,
                       float *y, int ldy) {
    const int64_t nb = n / QAI_QK_K;
    const __m256i m4 = _mm256_set1_epi8(15), m3 = _mm256_set1_epi8(3), m30 = _mm256_set1_epi8(0x30);
    __m256 acc[4][4];
    const qai_pfc pcv = qai_pf_make(ws, NR), *pc = &pcv;
    _Pragma("GCC unroll 4") for (int i = 0; i < NR; i++)
        _Pragma("GCC unroll 4") for (int j = 0; j < MR; j++) acc[i][j] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        _Pragma("GCC unroll 4") for (int i = 0; i < NR; i++) {
            const qai_block_q6_K *wb = (const qai_block_q6_K *)((const uint8_t *)w + i * ws) + b;
            for (int l = 0; l < (int)sizeof *wb; l += 64) _mm_prefetch(qai_pf(wb, (size_t)b * sizeof *wb, pc) + l, _MM_HINT_NTA);
            __m256i s16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)wb->scales));
            __m256i is[4];
            _Pragma("GCC unroll 4") for (int j = 0; j < MR; j++) {
                const qai_block_q8_K *xb = (const qai_block_q8_K *)((const uint8_t *)x + j * xs) + b;
                __m256i corr = _mm256_madd_epi16(s16, _mm256_loadu_si256((const __m256i *)xb->bsums));
                is[j] = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(corr, 5));
            }
            _Pragma("GCC unroll 2") for (int h = 0; h < 2; h++) {
                __m256i ql0 = _mm256_loadu_si256((const __m256i *)(wb->ql + 64 * h));
                __m256i ql1 = _mm256_loadu_si256((const __m256i *)(wb->ql + 64 * h + 32));
                __m256i qh = _mm256_loadu_si256((const __m256i *)(wb->qh + 32 * h));
                /* scales of this half in both 128-bit lanes */
                __m256i sh = h ? _mm256_permute2x128_si256(s16, s16, 0x11) : _mm256_permute2x128_si256(s16, s16, 0x00);
                for (int k = 0; k < 4; k++) {
                    __m256i q;
                    switch (k) {
                    case 0: q = _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m3), 4)); break;
                    case 1:
                        q = _mm256_or_si256(_mm256_and_si256(ql1, m4),
                                            _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m3), 4));
                        break;
                    case 2: q = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), _mm256_and_si256(qh, m30)); break;
                    default:
                        q = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                                            _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30));
                        break;
                    }
                    /* int16 scale 2k in the low lane, 2k+1 in the high lane */
                    const char a0 = (char)(4 * k), a1 = (char)(4 * k + 1), b0 = (char)(4 * k + 2), b1 = (char)(4 * k + 3);
                    __m256i ctl = _mm256_setr_epi8(a0, a1, a0, a1, a0, a1, a0, a1, a0, a1, a0, a1, a0, a1, a0, a1, b0, b1,
                                                   b0, b1, b0, b1, b0, b1, b0, b1, b0, b1, b0, b1, b0, b1);
                    __m256i sv = _mm256_shuffle_epi8(sh, ctl);
                    _Pragma("GCC unroll 4") for (int j = 0; j < MR; j++) {
                        const qai_block_q8_K *xb = (const qai_block_q8_K *)((const uint8_t *)x + j * xs) + b;
                        __m256i p = _mm256_maddubs_epi16(q, _mm256_loadu_si256((const __m256i *)(xb->qs + 128 * h + 32 * k)));
                        is[j] = _mm256_add_epi32(is[j], _mm256_madd_epi16(p, sv));
                    }
                }
            }
            float d = h2f(wb->d);
            _Pragma("GCC unroll 4") for (int j = 0; j < MR; j++) {
                const qai_block_q8_K *xb = (const qai_block_q8_K *)((const uint8_t *)x + j * xs) + b;
                acc[i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(is[j]), _mm256_set1_ps(d * xb->d), acc[i][j]);
            }
        }
    }
    _Pragma("GCC unroll 4") for (int i = 0; i < NR; i++)
        _Pragma("GCC unroll 4") for (int j = 0; j < MR; j++) y[j * ldy + i] = hsum8(acc[i][j]);
}
QAI_DEFINE_GEMM(q6_K)

/* ---- F32 × F32, F16 × F32, BF16 × BF16 ---- */

/* 8 elements at row + k (kind: 0 f32, 1 f16, 2 bf16) as f32 */
QAI_INL __m256 load8(const void *row, int64_t k, const int kind) {
    if (kind == 0) return _mm256_loadu_ps((const float *)row + k);
    __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)row + k));
    if (kind == 1) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

QAI_INL void step8(int64_t k, const int NR, const int MR, const uint8_t *w, size_t ws, const uint8_t *x, size_t xs,
                   __m256 acc[4][4], const int wkind, const int xkind, const bool pf, const qai_pfc *pc) {
    const size_t wel = wkind == 0 ? 4 : 2;
    __m256 xv[4];
    _Pragma("GCC unroll 4") for (int j = 0; j < MR; j++) xv[j] = load8(x + j * xs, k, xkind);
    _Pragma("GCC unroll 4") for (int i = 0; i < NR; i++) {
        const uint8_t *wr = w + i * ws;
        if (pf) _mm_prefetch(qai_pf(wr + k * wel, (size_t)k * wel, pc), _MM_HINT_NTA);
        __m256 wv = load8(wr, k, wkind);
        _Pragma("GCC unroll 4") for (int j = 0; j < MR; j++) acc[i][j] = _mm256_fmadd_ps(wv, xv[j], acc[i][j]);
    }
}

QAI_INL void tile_float(int64_t n, const int NR, const int MR, const void *w, size_t ws, const void *x, size_t xs,
                        float *y, int ldy, const int wkind, const int xkind) {
    __m256 acc[4][4];
    const qai_pfc pcv = qai_pf_make(ws, NR), *pc = &pcv;
    _Pragma("GCC unroll 4") for (int i = 0; i < NR; i++)
        _Pragma("GCC unroll 4") for (int j = 0; j < MR; j++) acc[i][j] = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 8 <= n; k += 8) step8(k, NR, MR, w, ws, x, xs, acc, wkind, xkind, true, pc);
    if (k < n) {
        /* tail: zero-padded copies of the last n-k elements of each row */
        const size_t wel = wkind == 0 ? 4 : 2, xel = xkind == 0 ? 4 : 2;
        uint8_t wt[4][32] = {{0}}, xt[4][32] = {{0}};
        _Pragma("GCC unroll 4") for (int i = 0; i < NR; i++) memcpy(wt[i], (const uint8_t *)w + i * ws + k * wel, (size_t)(n - k) * wel);
        _Pragma("GCC unroll 4") for (int j = 0; j < MR; j++) memcpy(xt[j], (const uint8_t *)x + j * xs + k * xel, (size_t)(n - k) * xel);
        step8(0, NR, MR, &wt[0][0], 32, &xt[0][0], 32, acc, wkind, xkind, false, pc);
    }
    _Pragma("GCC unroll 4") for (int i = 0; i < NR; i++)
        _Pragma("GCC unroll 4") for (int j = 0; j < MR; j++) y[j * ldy + i] = hsum8(acc[i][j]);
}

QAI_INL void tile_f32(int64_t n, const int NR, const int MR, const void *w, size_t ws, const void *x, size_t xs,
                      float *y, int ldy) {
    tile_float(n, NR, MR, w, ws, x, xs, y, ldy, 0, 0);
}
QAI_INL void tile_f16(int64_t n, const int NR, const int MR, const void *w, size_t ws, const void *x, size_t xs,
                      float *y, int ldy) {
    tile_float(n, NR, MR, w, ws, x, xs, y, ldy, 1, 0);
}
QAI_INL void tile_bf16(int64_t n, const int NR, const int MR, const void *w, size_t ws, const void *x, size_t xs,
                       float *y, int ldy) {
    tile_float(n, NR, MR, w, ws, x, xs, y, ldy, 2, 2);
}
QAI_DEFINE_GEMM(f32)
QAI_DEFINE_GEMM(f16)
QAI_DEFINE_GEMM(bf16)

/* ---- activation converter: bit-identical to the scalar one ---- */

static void from_float_q8_0(const float *x, void *vy, int64_t n) {
    qai_block_q8_0 *y = vy;
    const __m256 signbit = _mm256_set1_ps(-0.0f);
    for (int64_t b = 0; b < n / QAI_QK; b++, x += QAI_QK) {
        __m256 v[4], a = _mm256_setzero_ps();
        for (int k = 0; k < 4; k++) {
            v[k] = _mm256_loadu_ps(x + 8 * k);
            a = _mm256_max_ps(a, _mm256_andnot_ps(signbit, v[k]));
        }
        __m128 m = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
        m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        m = _mm_max_ss(m, _mm_movehdup_ps(m));
        float amax = _mm_cvtss_f32(m);
        float d = amax / 127.f, id = d != 0 ? 1.f / d : 0.f;
        y[b].d = _cvtss_sh(d, 0);
        __m256 s = _mm256_set1_ps(id);
        __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(v[0], s)), i1 = _mm256_cvtps_epi32(_mm256_mul_ps(v[1], s));
        __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(v[2], s)), i3 = _mm256_cvtps_epi32(_mm256_mul_ps(v[3], s));
        __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
        p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)y[b].qs, p);
    }
}

void qai_kernels_fill_avx2(qai_kernel *k) {
    k[QAI_TYPE_F32] = (qai_kernel){dot_f32, qai_from_float_f32, gemm_f32, 3, 4};
    k[QAI_TYPE_F16] = (qai_kernel){dot_f16, qai_from_float_f32, gemm_f16, 3, 4};
    k[QAI_TYPE_BF16] = (qai_kernel){dot_bf16, qai_from_float_bf16, gemm_bf16, 3, 4};
    k[QAI_TYPE_Q8_0] = (qai_kernel){dot_q8_0, from_float_q8_0, gemm_q8_0, 3, 2};
    k[QAI_TYPE_Q4_0] = (qai_kernel){dot_q4_0, from_float_q8_0, gemm_q4_0, 3, 2};
    k[QAI_TYPE_Q4_K].vec_dot = dot_q4_K;
    k[QAI_TYPE_Q4_K].gemm = gemm_q4_K;
    k[QAI_TYPE_Q4_K].gemm_nr = 2;
    k[QAI_TYPE_Q4_K].gemm_mr = 3;
    k[QAI_TYPE_Q6_K].vec_dot = dot_q6_K;
    k[QAI_TYPE_Q6_K].gemm = gemm_q6_K;
    k[QAI_TYPE_Q6_K].gemm_nr = 2;
    k[QAI_TYPE_Q6_K].gemm_mr = 3;
}
