/* bf16 GEMM micro-kernel for AVX512_BF16: 12 rows × 32 columns, 24 zmm fp32
 * accumulators, one vdpbf16ps per row and 16 columns per pair of k. A pairs
 * are broadcast from the packed panel (see sgemm_bf16.c for the layout and for
 * what the instruction computes). */
#include <immintrin.h>

#include "tensor/sgemm.h"

enum { MR = 12, NR = 32 };

static void kernel_12x32(int kp, const uint32_t *a, const uint32_t *b, float *c, int ldc, bool accumulate) {
    __m512 acc[MR][2];
#pragma GCC unroll 12
    for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (int p = 0; p < kp; p++) {
        __m512bh b0 = (__m512bh)_mm512_load_si512((const void *)b);
        __m512bh b1 = (__m512bh)_mm512_load_si512((const void *)(b + 16));
        _mm_prefetch((const char *)(b + 8 * NR), _MM_HINT_T0);
#pragma GCC unroll 12
        for (int r = 0; r < MR; r++) {
            __m512bh av = (__m512bh)_mm512_set1_epi32((int)a[r]);
            acc[r][0] = _mm512_dpbf16_ps(acc[r][0], av, b0);
            acc[r][1] = _mm512_dpbf16_ps(acc[r][1], av, b1);
        }
        a += MR;
        b += NR;
    }
#pragma GCC unroll 12
    for (int r = 0; r < MR; r++) {
        float *cr = c + (long)r * ldc;
        if (accumulate) {
            acc[r][0] = _mm512_add_ps(acc[r][0], _mm512_loadu_ps(cr));
            acc[r][1] = _mm512_add_ps(acc[r][1], _mm512_loadu_ps(cr + 16));
        }
        _mm512_storeu_ps(cr, acc[r][0]);
        _mm512_storeu_ps(cr + 16, acc[r][1]);
    }
}

qai_sgemm_bf16_ukernel qai_sgemm_bf16_ukernel_avx512(void) { return (qai_sgemm_bf16_ukernel){MR, NR, kernel_12x32}; }

/* ---- packing with vcvtne2ps2bf16 ----
 * The instruction rounds to nearest even, flushes denormals to zero and quiets
 * NaNs: the rounding sgemm_bf16.c's plain packers do, so both give the same
 * panels (the kernel test compares results bitwise). */

static const uint16_t interleave_idx[32] = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23,
                                            8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};

/* units u[i] = (bf16(lo[i]), bf16(hi[i])) for i < n (n <= 16; hi may be NULL: zeros) */
static inline __m512i pairs16(const float *lo, const float *hi, int n) {
    __mmask16 m = (__mmask16)(n >= 16 ? 0xffff : (1u << n) - 1);
    __m512 l = _mm512_maskz_loadu_ps(m, lo), h = hi ? _mm512_maskz_loadu_ps(m, hi) : _mm512_setzero_ps();
    __m512i both = (__m512i)_mm512_cvtne2ps_pbh(h, l); /* bf16 of l in the low 16, of h in the high 16 */
    return _mm512_permutexvar_epi16(_mm512_loadu_si512(interleave_idx), both);
}

/* units of consecutive values x[2p], x[2p+1] for p < kp (odd kc: last high half zero) */
static inline void consecutive_pairs(uint32_t *tmp, const float *x, int kc) {
    int k = 0;
    for (; k + 32 <= kc; k += 32) {
        __m512 a = _mm512_loadu_ps(x + k), b = _mm512_loadu_ps(x + k + 16);
        _mm512_storeu_si512(tmp + k / 2, (__m512i)_mm512_cvtne2ps_pbh(b, a));
    }
    if (k < kc) {
        int n = kc - k;
        __mmask16 m0 = (__mmask16)(n >= 16 ? 0xffff : (1u << n) - 1);
        __mmask16 m1 = (__mmask16)(n >= 32 ? 0xffff : n > 16 ? (1u << (n - 16)) - 1 : 0);
        __m512 a = _mm512_maskz_loadu_ps(m0, x + k), b = _mm512_maskz_loadu_ps(m1, x + k + 16);
        _mm512_storeu_si512(tmp + k / 2, (__m512i)_mm512_cvtne2ps_pbh(b, a));
    }
}

/* Panel of W units per pair step (W = MR for A, NR for B); "rows" are the W
 * lines of the panel (rows of op(A) or columns of op(B)). */
static void pack_lines_consecutive(uint32_t *dst, int W, const float *src, long ld, int lines, int kc) {
    const int kp = (kc + 1) / 2;
    uint32_t tmp[QAI_GEMM_PACK_BYTES / 4 + 16] __attribute__((aligned(64)));
    for (int j = 0; j < W; j++) {
        if (j < lines) {
            consecutive_pairs(tmp, src + j * ld, kc);
            for (int p = 0; p < kp; p++) dst[(long)p * W + j] = tmp[p];
        } else {
            for (int p = 0; p < kp; p++) dst[(long)p * W + j] = 0;
        }
    }
}

/* lines are contiguous in memory, k runs over rows of stride ld */
static void pack_lines_strided(uint32_t *dst, int W, const float *src, long ld, int lines, int kc) {
    const int kp = (kc + 1) / 2;
    for (int p = 0; p < kp; p++) {
        const float *s0 = src + (long)(2 * p) * ld, *s1 = 2 * p + 1 < kc ? s0 + ld : NULL;
        uint32_t *d = dst + (long)p * W;
        int j = 0;
        for (; j < W; j += 16) {
            int n = lines - j < 16 ? (lines - j > 0 ? lines - j : 0) : 16;
            __m512i u = n > 0 ? pairs16(s0 + j, s1 ? s1 + j : NULL, n) : _mm512_setzero_si512();
            if (W - j >= 16) _mm512_storeu_si512(d + j, u);
            else _mm512_mask_storeu_epi32(d + j, (__mmask16)((1u << (W - j)) - 1), u);
        }
    }
}

static void pack_a(void *dst, int MR_, const float *A, int lda, bool trans, int m0, int mr, int k0, int kc) {
    if (trans) pack_lines_strided(dst, MR_, A + (long)k0 * lda + m0, lda, mr, kc);
    else pack_lines_consecutive(dst, MR_, A + (long)m0 * lda + k0, lda, mr, kc);
}

static void pack_b(void *dst, int NR_, const float *B, int ldb, bool trans, int k0, int kc, int n0, int nr) {
    if (trans) pack_lines_consecutive(dst, NR_, B + (long)n0 * ldb + k0, ldb, nr, kc);
    else pack_lines_strided(dst, NR_, B + (long)k0 * ldb + n0, ldb, nr, kc);
}

qai_gemm_pack_a_fn qai_sgemm_bf16_pack_a_avx512(void) { return pack_a; }
qai_gemm_pack_b_fn qai_sgemm_bf16_pack_b_avx512(void) { return pack_b; }
