/*
 * AVX2 kernels for the repacked ("R16") weights Q8_0_R16 and Q4_0_R16
 * (layouts in quant.h; compiled with -mavx2 -mfma -mf16c, only called when
 * cpuid says the CPU has them). Every output equals the scalar reference in
 * repack.c bit for bit (tests/tensor/test_r16.c).
 *
 * A 16-row weight group is two ymm halves (rows 0..7, 8..15) of each 64-byte
 * 4-element column, so again no horizontal sums: lane r of an accumulator is
 * weight row r (+8). Without VNNI the integer dots use vpmaddubsw (u8 × s8 ->
 * s16 pairs) then vpmaddwd, which must not saturate:
 *   Q8_0_R16  the stored bytes are q + 128; XOR 0x80 gives q back, and
 *             |q| × sign(x, q) (at most 2 · 128 · 127 per pair, below 32767;
 *             activation quants are in [-127, 127]) is summed straight, so the
 *             c8 correction is not needed: I = Σ q x exactly;
 *   Q4_0_R16  the nibbles w + 8 are the unsigned side directly; a block's
 *             8 vpmaddubsw (4 groups × low/high) sum in s16 (at most
 *             8 · 2 · 15 · 128 = 30720), one vpmaddwd, then + c4 = -8 Σ x.
 * Then per block and row, acc = fma((float)I, dw · dx, acc) like the reference.
 *
 * Sixteen ymm registers hold the accumulators of two activation rows × two
 * halves plus the block's integer sums, so a tile of MR rows makes
 * ceil(MR / 2) passes over the weight group: the first streams it from memory
 * (prefetched ahead), the others read it from cache.
 *
 * What it deliberately does not do: use AVX-VNNI (vpdpbusd on ymm) where a CPU
 * has it — a possible later variant.
 */
#include <immintrin.h>

#include "tensor/kernels_common.h"

QAI_INL __m256i bc32(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

/* Rows m0 .. m0 + MS - 1 (MS <= 2) of an activation group of MR rows, all 16
 * (nr stored) weight rows of the group at w; y points at row m0's outputs. */
QAI_INL void pass_r16(const bool q4, const int MR, const int MS, int m0, int64_t nb, int nr, const uint8_t *w,
                      const uint8_t *x, float *y, int ldy) {
    const size_t qb = q4 ? 256 : 512, pair = 64 + 2 * qb, xstep = (size_t)QAI_R16_ACT_BLOCK * MR;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[2][2];
    _Pragma("GCC unroll 2") for (int m = 0; m < MS; m++) acc[m][0] = acc[m][1] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *pp = w + (size_t)(b / 2) * pair, *xb = x + (size_t)b * xstep;
        const uint8_t *dp = (b & 1) ? pp + 32 : pp, *qp = (b & 1) ? pp + 64 + qb : pp + (b + 1 < nb ? 64 : 32);
        if (!(b & 1))
            for (size_t l = 0; l < pair; l += 64) _mm_prefetch((const char *)pp + QAI_R16_PF + l, _MM_HINT_T0);
        __m256i I[2][2];
        if (!q4) {
            const __m256i s80 = _mm256_set1_epi8((char)0x80);
            _Pragma("GCC unroll 2") for (int m = 0; m < MS; m++) I[m][0] = I[m][1] = _mm256_setzero_si256();
            _Pragma("GCC unroll 8") for (int g = 0; g < 8; g++) {
                __m256i q0 = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(qp + 64 * g)), s80);
                __m256i q1 = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(qp + 64 * g + 32)), s80);
                __m256i a0 = _mm256_sign_epi8(q0, q0), a1 = _mm256_sign_epi8(q1, q1);
                _Pragma("GCC unroll 2") for (int m = 0; m < MS; m++) {
                    __m256i xv = bc32(xb + 32 * (m0 + m) + 4 * g);
                    I[m][0] = _mm256_add_epi32(
                        I[m][0], _mm256_madd_epi16(_mm256_maddubs_epi16(a0, _mm256_sign_epi8(xv, q0)), ones));
                    I[m][1] = _mm256_add_epi32(
                        I[m][1], _mm256_madd_epi16(_mm256_maddubs_epi16(a1, _mm256_sign_epi8(xv, q1)), ones));
                }
            }
        } else {
            const __m256i m4 = _mm256_set1_epi8(15);
            __m256i S[2][2];
            _Pragma("GCC unroll 2") for (int m = 0; m < MS; m++) S[m][0] = S[m][1] = _mm256_setzero_si256();
            _Pragma("GCC unroll 4") for (int g = 0; g < 4; g++) {
                __m256i v0 = _mm256_loadu_si256((const __m256i *)(qp + 64 * g));
                __m256i v1 = _mm256_loadu_si256((const __m256i *)(qp + 64 * g + 32));
                __m256i l0 = _mm256_and_si256(v0, m4), h0 = _mm256_and_si256(_mm256_srli_epi16(v0, 4), m4);
                __m256i l1 = _mm256_and_si256(v1, m4), h1 = _mm256_and_si256(_mm256_srli_epi16(v1, 4), m4);
                _Pragma("GCC unroll 2") for (int m = 0; m < MS; m++) {
                    __m256i xl = bc32(xb + 32 * (m0 + m) + 4 * g), xh = bc32(xb + 32 * (m0 + m) + 16 + 4 * g);
                    S[m][0] = _mm256_add_epi16(
                        S[m][0], _mm256_add_epi16(_mm256_maddubs_epi16(l0, xl), _mm256_maddubs_epi16(h0, xh)));
                    S[m][1] = _mm256_add_epi16(
                        S[m][1], _mm256_add_epi16(_mm256_maddubs_epi16(l1, xl), _mm256_maddubs_epi16(h1, xh)));
                }
            }
            _Pragma("GCC unroll 2") for (int m = 0; m < MS; m++) {
                int32_t c4;
                memcpy(&c4, xb + 40 * MR + 4 * (m0 + m), 4);
                const __m256i c = _mm256_set1_epi32(c4);
                I[m][0] = _mm256_add_epi32(_mm256_madd_epi16(S[m][0], ones), c);
                I[m][1] = _mm256_add_epi32(_mm256_madd_epi16(S[m][1], ones), c);
            }
        }
        const __m256 dw0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)dp));
        const __m256 dw1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(dp + 16)));
        _Pragma("GCC unroll 2") for (int m = 0; m < MS; m++) {
            float dxf;
            memcpy(&dxf, xb + 32 * MR + 4 * (m0 + m), 4);
            const __m256 dx = _mm256_set1_ps(dxf);
            acc[m][0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(I[m][0]), _mm256_mul_ps(dw0, dx), acc[m][0]);
            acc[m][1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(I[m][1]), _mm256_mul_ps(dw1, dx), acc[m][1]);
        }
    }
    _Pragma("GCC unroll 2") for (int m = 0; m < MS; m++) {
        float *ym = y + (size_t)m * ldy;
        if (nr == QAI_R16) {
            _mm256_storeu_ps(ym, acc[m][0]);
            _mm256_storeu_ps(ym + 8, acc[m][1]);
        } else {
            _Pragma("GCC unroll 2") for (int h = 0; h < 2; h++) {
                int cnt = nr - 8 * h;
                if (cnt <= 0) break;
                const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
                __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(cnt), idx);
                _mm256_maskstore_ps(ym + 8 * h, mask, acc[m][h]);
            }
        }
    }
}

QAI_INL void tile_r16(const bool q4, const int MR, int64_t n, int nr, const uint8_t *w, const uint8_t *x, float *y,
                      int ldy) {
    const int64_t nb = n / QAI_QK;
    _Pragma("GCC unroll 4") for (int m0 = 0; m0 < MR; m0 += 2) {
        if (MR - m0 >= 2) pass_r16(q4, MR, 2, m0, nb, nr, w, x, y + (size_t)m0 * ldy, ldy);
        else
            pass_r16(q4, MR, 1, m0, nb, nr, w, x, y + (size_t)m0 * ldy, ldy);
    }
}

QAI_DEFINE_R16_KERNELS(qai_kernels_fill_r16_avx2)
