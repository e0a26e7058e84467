/*
 * bf16 GEMM for mixed-precision training: C (+)= op(A)·op(B) where A and B are
 * fp32 arrays whose values are rounded to bf16 as they are packed, and the
 * products are summed in fp32 — the vdpbf16ps recipe. Same calling convention,
 * blocking and thread-count independence as qai_sgemm (the driver is shared,
 * sgemm.c); panels hold pairs of bf16 (k = 2p in the low half, 2p+1 in the
 * high half), K blocks of 512 so a panel takes the bytes of an fp32 one.
 *
 * Rounding to bf16 (qai_bf16_round): round to nearest even, NaN stays a quiet
 * NaN, and values below the smallest normal (|x| < 2^-126) become signed zeros —
 * what vcvtneps2bf16 does, so a vectorized packer could use it.
 *
 * What vdpbf16ps computes, and the plain C kernel does the same bit for bit
 * (checked on this CPU with 2M random operands, tests/tensor/test_sgemm_bf16.c
 * compares the two kernels bitwise): for each fp32 lane,
 *     acc = ftz(round(daz(acc) + a[2i+1]·b[2i+1]));  acc = ftz(round(acc + a[2i]·b[2i]))
 * i.e. two fp32 fused steps, the odd element first; each bf16 product is exact
 * in fp32 (8-bit significands), denormal inputs count as zero and denormal
 * results are flushed to zero, whatever MXCSR says. It is not one fused
 * pairwise sum: a[0]·b[0] + a[1]·b[1] is rounded twice.
 *
 * What it deliberately does not do: a kernel for CPUs without AVX512_BF16 other
 * than the plain C one (slow; callers that want speed check qai_kernels_bf16()
 * and say so), bf16 outputs.
 */
#include <math.h>
#include <string.h>

#include "qai/tensor.h"
#include "tensor/sgemm.h"

enum { KC_BF16 = 2 * QAI_SGEMM_KC };
_Static_assert(KC_BF16 * sizeof(uint16_t) == QAI_GEMM_PACK_BYTES, "bf16 K block fills the packing area");

static inline uint32_t f2u(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static inline float u2f(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint16_t to_bf16(float f) {
    uint32_t x = f2u(f);
    if ((x & 0x7f800000u) == 0) return (uint16_t)((x >> 16) & 0x8000); /* zero or denormal: signed zero */
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 64); /* quiet NaN */
    return (uint16_t)((x + (0x7fff + ((x >> 16) & 1))) >> 16);
}

float qai_bf16_round(float x) { return u2f((uint32_t)to_bf16(x) << 16); }

static inline uint32_t pair(float lo, float hi) { return (uint32_t)to_bf16(lo) | (uint32_t)to_bf16(hi) << 16; }

/* ---- packing into pairs ---- */

/* rows [m0, m0+mr) × k [k0, k0+kc) of op(A): pair step p holds MR units. */
static void pack_a_bf16(void *dst_, int MR, const float *A, int lda, bool trans, int m0, int mr, int k0, int kc) {
    uint32_t *dst = dst_;
    const int kp = (kc + 1) / 2;
    if (trans) { /* A is K×M: rows k and k+1 interleave */
        for (int p = 0; p < kp; p++) {
            const float *s0 = A + (long)(k0 + 2 * p) * lda + m0;
            const float *s1 = 2 * p + 1 < kc ? s0 + lda : NULL;
            uint32_t *d = dst + (long)p * MR;
            for (int r = 0; r < mr; r++) d[r] = pair(s0[r], s1 ? s1[r] : 0.0f);
            for (int r = mr; r < MR; r++) d[r] = 0;
        }
    } else { /* A is M×K: consecutive k of a row make a pair */
        for (int r = 0; r < MR; r++) {
            if (r < mr) {
                const float *src = A + (long)(m0 + r) * lda + k0;
                int p = 0;
                for (; 2 * p + 1 < kc; p++) dst[(long)p * MR + r] = pair(src[2 * p], src[2 * p + 1]);
                if (p < kp) dst[(long)p * MR + r] = pair(src[2 * p], 0.0f);
            } else {
                for (int p = 0; p < kp; p++) dst[(long)p * MR + r] = 0;
            }
        }
    }
}

/* k [k0, k0+kc) × columns [n0, n0+nr) of op(B): pair step p holds NR units. */
static void pack_b_bf16(void *dst_, int NR, const float *B, int ldb, bool trans, int k0, int kc, int n0, int nr) {
    uint32_t *dst = dst_;
    const int kp = (kc + 1) / 2;
    if (trans) { /* B is N×K: consecutive k of a row make a pair */
        for (int j = 0; j < NR; j++) {
            if (j < nr) {
                const float *src = B + (long)(n0 + j) * ldb + k0;
                int p = 0;
                for (; 2 * p + 1 < kc; p++) dst[(long)p * NR + j] = pair(src[2 * p], src[2 * p + 1]);
                if (p < kp) dst[(long)p * NR + j] = pair(src[2 * p], 0.0f);
            } else {
                for (int p = 0; p < kp; p++) dst[(long)p * NR + j] = 0;
            }
        }
    } else { /* B is K×N: rows k and k+1 interleave */
        for (int p = 0; p < kp; p++) {
            const float *s0 = B + (long)(k0 + 2 * p) * ldb + n0;
            const float *s1 = 2 * p + 1 < kc ? s0 + ldb : NULL;
            uint32_t *d = dst + (long)p * NR;
            if (s1)
                for (int j = 0; j < nr; j++) d[j] = pair(s0[j], s1[j]);
            else
                for (int j = 0; j < nr; j++) d[j] = pair(s0[j], 0.0f);
            for (int j = nr; j < NR; j++) d[j] = 0;
        }
    }
}

/* ---- the plain C kernel: vdpbf16ps emulated exactly ---- */

enum { MR_SCALAR = 4, NR_SCALAR = 8 };

static inline float daz(float x) { return (f2u(x) & 0x7f800000u) ? x : u2f(f2u(x) & 0x80000000u); }

/* acc + a·b rounded once to fp32 (the product of two bf16 values is exact in
 * double, and a double sum of two floats rounded to float is correctly rounded),
 * then a denormal result flushed to a signed zero. */
static inline float fused_ftz(float acc, uint16_t a, uint16_t b) {
    float fa = daz(u2f((uint32_t)a << 16)), fb = daz(u2f((uint32_t)b << 16));
    float r = (float)((double)acc + (double)fa * (double)fb);
    return daz(r);
}

static inline float dp_step(float acc, uint32_t a, uint32_t b) {
    acc = fused_ftz(daz(acc), (uint16_t)(a >> 16), (uint16_t)(b >> 16));
    return fused_ftz(acc, (uint16_t)a, (uint16_t)b);
}

static void kernel_scalar(int kp, const uint32_t *a, const uint32_t *b, float *c, int ldc, bool accumulate) {
    float acc[MR_SCALAR][NR_SCALAR] = {{0}};
    for (int p = 0; p < kp; p++, a += MR_SCALAR, b += NR_SCALAR)
        for (int r = 0; r < MR_SCALAR; r++)
            for (int j = 0; j < NR_SCALAR; j++) acc[r][j] = dp_step(acc[r][j], a[r], b[j]);
    for (int r = 0; r < MR_SCALAR; r++)
        for (int j = 0; j < NR_SCALAR; j++) c[(long)r * ldc + j] = accumulate ? c[(long)r * ldc + j] + acc[r][j] : acc[r][j];
}

/* The AVX-512 kernel is 12×32 and the plain one 4×8, but within a K block both
 * sum each C element's pairs in k order from zero, then add the block to C, so
 * they give the same bits: the plain kernel is the bit-exact reference. */
void qai_sgemm_bf16(qai_pool *pool, bool trans_a, bool trans_b, int M, int N, int K, const float *A, int lda,
                    const float *B, int ldb, float *C, int ldc, bool accumulate, void *work) {
    qai_gemm_impl impl = {MR_SCALAR, NR_SCALAR, KC_BF16, 2, sizeof(uint16_t), pack_a_bf16, pack_b_bf16, NULL,
                          kernel_scalar};
    if (qai_kernels_bf16()) {
        qai_sgemm_bf16_ukernel uk = qai_sgemm_bf16_ukernel_avx512();
        impl.mr = uk.mr, impl.nr = uk.nr, impl.bf16 = uk.kernel;
        impl.pack_a = qai_sgemm_bf16_pack_a_avx512();
        impl.pack_b = qai_sgemm_bf16_pack_b_avx512();
    }
    qai_gemm_run(pool, &impl, trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc, accumulate, work);
}

void qai_sgemm_bf16_ref(bool trans_a, bool trans_b, int M, int N, int K, const float *A, int lda, const float *B,
                        int ldb, float *C, int ldc, bool accumulate) {
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double s = 0;
            for (int k = 0; k < K; k++) {
                float a = trans_a ? A[(long)k * lda + m] : A[(long)m * lda + k];
                float b = trans_b ? B[(long)n * ldb + k] : B[(long)k * ldb + n];
                s += (double)qai_bf16_round(a) * qai_bf16_round(b);
            }
            C[(long)m * ldc + n] = (float)((accumulate ? C[(long)m * ldc + n] : 0) + s);
        }
}
