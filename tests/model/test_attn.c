/* The attention kernel over blocked keys (src/model/attn.h), F32 and F16 caches:
 * - every ISA the CPU has (scalar, AVX2, AVX-512) equals a double-precision
 *   softmax attention written from the definition, with keys read through the
 *   documented block index and F16 elements decoded by qai_fp16_to_fp32, for
 *   1..4 rows, key counts on and off the 16-position block boundaries (rows of
 *   one block with different counts, as in a causal prompt chunk) and head
 *   sizes that take every column split of the P·V kernels (16 .. 128, and 24,
 *   which is not a multiple of 16: the scalar path on every ISA);
 * - positions at or past the largest key count are never read (they hold NaN
 *   here);
 * - F16 attention stays within the rounding error of half precision of the
 *   exact F32 result;
 * - qai_attn_store writes the same half-precision bits on every ISA, for
 *   strides 1 and 16 and counts that are not multiples of 8, equal to the
 *   compiler's own _Float16 conversion (round to nearest even: ties,
 *   subnormals, overflow to infinity). */
#include <math.h>

#include "model/attn.h"
#include "test.h"

enum { C = 208 }; /* positions: 13 blocks */

/* out = attention of the rows of b over keys/values given as floats
 * (kf: blocked, vf: rows of ldv), in double. */
static void reference(const qai_attn_block *b, const float *kf, const float *vf, int ldv, int S, float scale,
                      float want[4][128]) {
    for (int k = 0; k < b->n; k++) {
        double sc[C], mx = -1e300, sum = 0;
        for (int p = 0; p < b->n_keys[k]; p++) {
            double t = 0;
            for (int d = 0; d < S; d++) t += (double)b->q[k][d] * kf[((p / 16) * S + d) * 16 + p % 16];
            sc[p] = t * scale;
            if (sc[p] > mx) mx = sc[p];
        }
        for (int p = 0; p < b->n_keys[k]; p++) sum += (sc[p] = exp(sc[p] - mx));
        for (int d = 0; d < S; d++) {
            double o = 0;
            for (int p = 0; p < b->n_keys[k]; p++) o += sc[p] / sum * vf[(size_t)p * ldv + d];
            want[k][d] = (float)o;
        }
    }
}

static void test_kernels(void) {
    qai_rng r;
    qai_rng_seed(&r, 3);
    const int Ss[] = {16, 24, 32, 48, 64, 80, 128};
    const int keys[][4] = {{1, 1, 1, 1}, {15, 16, 17, 3}, {33, 32, 31, 48}, {200, 113, 37, 64}, {64, 65, 63, 100}};
    float worst_f16_vs_exact = 0;
    for (size_t si = 0; si < sizeof Ss / sizeof Ss[0]; si++) {
        const int S = Ss[si], ldv = S + 8;
        float *kf = qai_aligned_alloc((size_t)C * S * sizeof(float)), *vf = qai_aligned_alloc((size_t)C * ldv * sizeof(float));
        float *kr = qai_aligned_alloc((size_t)C * S * sizeof(float)), *vr = qai_aligned_alloc((size_t)C * ldv * sizeof(float));
        float *k32 = qai_aligned_alloc((size_t)C * S * sizeof(float)), *v32 = qai_aligned_alloc((size_t)C * ldv * sizeof(float));
        uint16_t *k16 = qai_aligned_alloc((size_t)C * S * 2), *v16 = qai_aligned_alloc((size_t)C * ldv * 2);
        float *scratch = qai_aligned_alloc((size_t)QAI_ATTN_ROWS * C * sizeof(float));
        for (int i = 0; i < C * S; i++) kf[i] = qai_rng_float(&r) * 2 - 1;
        for (int i = 0; i < C * ldv; i++) vf[i] = qai_rng_float(&r) * 2 - 1;
        /* kr, vr: the half-precision values the F16 kernels must see */
        for (int i = 0; i < C * S; i++) kr[i] = qai_fp16_to_fp32(qai_fp32_to_fp16(kf[i]));
        for (int i = 0; i < C * ldv; i++) vr[i] = qai_fp16_to_fp32(qai_fp32_to_fp16(vf[i]));
        float q[4][128], out[4][128], want[4][128], want_exact[4][128];
        for (size_t ki = 0; ki < sizeof keys / sizeof keys[0]; ki++)
            for (int rows = 1; rows <= 4; rows++) {
                qai_attn_block b = {.n = rows};
                int P = 0;
                for (int k = 0; k < rows; k++) {
                    for (int d = 0; d < S; d++) q[k][d] = qai_rng_float(&r) - 0.5f;
                    b.q[k] = q[k], b.out[k] = out[k], b.n_keys[k] = keys[ki][k];
                    if (b.n_keys[k] > P) P = b.n_keys[k];
                }
                const float scale = 1.0f / sqrtf((float)S);
                /* the caches: positions >= P hold NaN, which must never be read */
                for (int p = 0; p < C; p++)
                    for (int d = 0; d < S; d++) {
                        size_t ik = qai_kv_block_index(p, d, S), iv = (size_t)p * ldv + d;
                        k32[ik] = p < P ? kf[ik] : NAN;
                        v32[iv] = p < P ? vf[iv] : NAN;
                        k16[ik] = p < P ? qai_fp32_to_fp16(kf[ik]) : 0x7e00;
                        v16[iv] = p < P ? qai_fp32_to_fp16(vf[iv]) : 0x7e00;
                    }
                reference(&b, kf, vf, ldv, S, scale, want_exact);
                reference(&b, kr, vr, ldv, S, scale, want);
                for (int t = 0; t < 2; t++) {
                    const qai_type kt = t ? QAI_TYPE_F16 : QAI_TYPE_F32;
                    for (int isa = 0; isa <= (int)qai_cpu_isa(); isa++) {
                        qai_attn_blocked_run(&b, t ? (const void *)k16 : k32, t ? (const void *)v16 : v32, ldv, S, scale,
                                             scratch, C, kt, (qai_isa)isa);
                        for (int k = 0; k < rows; k++) {
                            char what[128];
                            snprintf(what, sizeof what, "%s attention S=%d keys=%d row %d/%d isa %d", t ? "f16" : "f32", S,
                                     b.n_keys[k], k, rows, isa);
                            CHECK_CLOSE(what, out[k], t ? want[k] : want_exact[k], S, 1e-5f, 1e-4f);
                            if (t)
                                for (int d = 0; d < S; d++) {
                                    float e = fabsf(out[k][d] - want_exact[k][d]);
                                    if (e > worst_f16_vs_exact) worst_f16_vs_exact = e;
                                }
                        }
                    }
                }
            }
        void *bufs[] = {kf, vf, kr, vr, k32, v32, k16, v16, scratch};
        for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) qai_aligned_free(bufs[i]);
    }
    /* values in [-1, 1] carry a relative rounding error of at most 2^-11; the
     * weighted mean of values does not amplify it, and scores move by about
     * |q|·|k|·2^-11 */
    CHECK_MSG(worst_f16_vs_exact < 2e-3f, "f16 attention differs from the exact f32 result by %g",
              (double)worst_f16_vs_exact);
    CHECK_MSG(worst_f16_vs_exact > 0, "f16 attention equals the f32 result exactly: the keys were not rounded?");
}

static void test_store(void) {
    enum { N = 203 };
    float src[N];
    qai_rng r;
    qai_rng_seed(&r, 5);
    /* specials first: exact ties between two halves (1 + 2^-11, the smallest
     * subnormal's half), subnormals, the overflow boundary, signed zeros */
    const float special[] = {1.0f + 0x1p-11f, 1.0f + 3 * 0x1p-11f, 0x1p-25f, 0x3p-25f, 0x1p-24f, 0x1p-14f, 5.9e-8f,
                             65504.0f, 65519.0f, 65520.0f, 1e6f, -1e6f, -0.0f, 0.0f, -2.5e-6f, 1.0f / 3};
    const int n_special = (int)(sizeof special / sizeof special[0]);
    for (int i = 0; i < N; i++)
        src[i] = i < n_special ? special[i] : (qai_rng_float(&r) * 2 - 1) * powf(2.0f, (float)(int)(qai_rng_u64(&r) % 40) - 26);
    uint16_t ref[N * 16], got[N * 16];
    for (int i = 0; i < N; i++) {
#ifdef __FLT16_MAX__
        _Float16 h = (_Float16)src[i]; /* the compiler's conversion: round to nearest even */
        uint16_t hb;
        memcpy(&hb, &h, 2);
        CHECK_MSG(qai_fp32_to_fp16(src[i]) == hb, "qai_fp32_to_fp16(%a) = %04x, _Float16 gives %04x", (double)src[i],
                  qai_fp32_to_fp16(src[i]), hb);
#endif
        ref[i] = qai_fp32_to_fp16(src[i]);
    }
    const int ns[] = {N, 64, 7, 8, 1};
    for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++)
        for (int stride = 1; stride <= 16; stride += 15)
            for (int isa = 0; isa <= (int)qai_cpu_isa(); isa++) {
                memset(got, 0xAB, sizeof got);
                qai_attn_store(got, (size_t)stride, src, ns[ni], QAI_TYPE_F16, (qai_isa)isa);
                int bad = -1;
                for (int i = 0; i < ns[ni] * stride && bad < 0; i++) {
                    uint16_t want = i % stride ? 0xABAB : ref[i / stride];
                    if (got[i] != want) bad = i;
                }
                CHECK_MSG(bad < 0, "f16 store n=%d stride %d isa %d: element %d is %04x", ns[ni], stride, isa, bad,
                          bad < 0 ? 0 : got[bad]);
                float f[N * 16];
                qai_attn_store(f, (size_t)stride, src, ns[ni], QAI_TYPE_F32, (qai_isa)isa);
                int badf = -1;
                for (int i = 0; i < ns[ni] && badf < 0; i++)
                    if (memcmp(&f[(size_t)i * stride], &src[i], sizeof(float))) badf = i;
                CHECK_MSG(badf < 0, "f32 store n=%d stride %d isa %d: element %d differs", ns[ni], stride, isa, badf);
            }
    CHECK_EQ_INT(qai_kv_type_size(QAI_TYPE_F16), 2);
    CHECK_EQ_INT(qai_kv_type_size(QAI_TYPE_F32), 4);
}

int main(void) {
    test_kernels();
    test_store();
    return test_summary();
}
