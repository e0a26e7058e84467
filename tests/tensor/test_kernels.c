/* Tests for the dot/matmul kernels (src/tensor/cpu.c, dot_*.c, matmul.c):
 *  - the scalar reference equals a double-precision dot of dequantized values;
 *  - every ISA level the CPU has converts activations to the same bytes as
 *    the scalar converter, and its vec_dot and matmul match the scalar
 *    reference within a tolerance relative to sum |w_i x_i|;
 *  - matmul is bit-identical for 1, 2 and 3 threads, and row m of a batch
 *    equals the same row computed alone (M=1) within the same tolerance. */
#include <stdint.h>

#include "qai/tensor.h"
#include "test.h"

static const qai_type types[] = {QAI_TYPE_F32, QAI_TYPE_F16, QAI_TYPE_BF16, QAI_TYPE_Q8_0,
                                 QAI_TYPE_Q4_0, QAI_TYPE_Q4_K, QAI_TYPE_Q6_K};

/* Tolerance of a float dot relative to sum |w_i x_i|: the SIMD kernels sum in
 * a different order (and F16/F32 use fma), so a few ulps per term. */
static float tol_for(qai_type t) {
    switch (t) {
    case QAI_TYPE_F32:
    case QAI_TYPE_F16:
    case QAI_TYPE_BF16: return 2e-6f;
    default: return 1e-5f; /* quantized: integer sums are exact, block scales in float */
    }
}

static void fill(qai_rng *r, float *x, long n, float scale) {
    for (long i = 0; i < n; i++) x[i] = qai_rng_normal(r) * scale;
}

static const char *isa_name(int isa) { return isa == 2 ? "avx512" : isa == 1 ? "avx2" : "scalar"; }

/* reference: double dot of dequantized weight row and dequantized activation row */
static double deq_dot(qai_type t, const void *w, const void *xq, int K, float *tmpw, float *tmpx, double *abs_sum) {
    qai_type vt = qai_type_info(t)->vec_dot_type;
    qai_dequantize_row(t, w, tmpw, K);
    qai_dequantize_row(vt, xq, tmpx, K);
    double s = 0, a = 0;
    for (int i = 0; i < K; i++) {
        s += (double)tmpw[i] * tmpx[i];
        a += fabs((double)tmpw[i] * tmpx[i]);
    }
    *abs_sum = a;
    return s;
}

static void test_vec_dot(void) {
    enum { KMAX = 4096 };
    static float w[KMAX], x[KMAX], tw[KMAX], tx[KMAX];
    static uint8_t wq[KMAX * 4], xq_ref[KMAX * 4 + 64], xq[KMAX * 4 + 64];
    /* multiples of 256 for every type; odd block counts for the 32-blocks;
     * lengths that are not a multiple of 8 or 16 for the plain types */
    const int Ks[] = {256, 512, 768, 2048, 4096, 96, 800, 1001, 33};
    qai_isa best = qai_cpu_isa();
    qai_rng r;
    qai_rng_seed(&r, 1234);
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        qai_type t = types[ti];
        const qai_type_traits *tr = qai_type_info(t);
        qai_type vt = tr->vec_dot_type;
        for (size_t ki = 0; ki < sizeof Ks / sizeof Ks[0]; ki++) {
            int K = Ks[ki];
            if (K % tr->block_size) continue;
            for (int trial = 0; trial < 3; trial++) {
                fill(&r, w, K, 0.05f);
                fill(&r, x, K, trial == 2 ? 30.f : 1.f);
                if (trial == 1) x[K / 3] = 200.f; /* an outlier, as real activations have */
                CHECK_OK(qai_quantize_rows(t, w, wq, 1, K));
                qai_kernels_set_isa(QAI_ISA_SCALAR);
                qai_quantize_row_for_dot(t, x, xq_ref, K);
                float ref = qai_vec_dot(t, K, wq, xq_ref);
                double asum;
                double exact = deq_dot(t, wq, xq_ref, K, tw, tx, &asum);
                float tol = (float)(tol_for(t) * asum) + 1e-30f;
                CHECK_MSG(fabs(ref - exact) <= tol, "%s K=%d trial %d: scalar %.9g vs dequantized dot %.9g (tol %g)",
                          tr->name, K, trial, ref, exact, tol);
                for (int isa = 1; isa <= (int)best; isa++) {
                    qai_kernels_set_isa((qai_isa)isa);
                    size_t xs = qai_row_size(vt, K);
                    memset(xq, 0xa5, xs);
                    qai_quantize_row_for_dot(t, x, xq, K);
                    CHECK_MSG(!memcmp(xq, xq_ref, xs), "%s K=%d: %s activation conversion differs from scalar",
                              tr->name, K, isa_name(isa));
                    /* exactly sized heap copies: kernels must not read past a row (ASan checks) */
                    size_t wsz = qai_row_size(t, K);
                    void *we = malloc(wsz), *xe = malloc(xs);
                    memcpy(we, wq, wsz);
                    memcpy(xe, xq_ref, xs);
                    float v = qai_vec_dot(t, K, we, xe);
                    free(we);
                    free(xe);
                    CHECK_MSG(fabsf(v - ref) <= tol, "%s K=%d trial %d: %s vec_dot %.9g vs scalar %.9g (diff %g, tol %g)",
                              tr->name, K, trial, isa_name(isa), v, ref, fabsf(v - ref), tol);
                }
            }
        }
    }
    qai_kernels_set_isa(best);
}

static void test_matmul(void) {
    const int Ms[] = {1, 2, 3, 7, 16, 33};
    const int Ns[] = {1, 37, 67};
    const int Ks[] = {256, 768, 96, 33};
    qai_isa best = qai_cpu_isa();
    /* 18 threads: more than matmul's chunk ranges (16) and than the chunks of
     * most shapes here, so threads share ranges and take from each other's */
    enum { NPOOL = 5 };
    qai_pool *pools[NPOOL] = {NULL, qai_pool_new(1), qai_pool_new(2), qai_pool_new(3), qai_pool_new(18)};
    qai_rng r;
    qai_rng_seed(&r, 99);
    enum { MMAX = 33, NMAX = 67, KMAX = 768 };
    static float w[NMAX * KMAX], x[MMAX * KMAX], tw[KMAX], tx[KMAX];
    static float y[MMAX * NMAX], yref[MMAX * NMAX], yt[MMAX * NMAX], tolv[MMAX * NMAX], zero[MMAX * NMAX];
    static uint8_t wq[NMAX * KMAX * 4], xq[KMAX * 4];
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        qai_type t = types[ti];
        const qai_type_traits *tr = qai_type_info(t);
        for (size_t ki = 0; ki < sizeof Ks / sizeof Ks[0]; ki++) {
            int K = Ks[ki];
            if (K % tr->block_size) continue;
            fill(&r, w, (long)NMAX * K, 0.05f);
            fill(&r, x, (long)MMAX * K, 1.f);
            size_t rs = qai_row_size(t, K);
            CHECK_OK(qai_quantize_rows(t, w, wq, NMAX, K));
            for (size_t ni = 0; ni < sizeof Ns / sizeof Ns[0]; ni++) {
                int N = Ns[ni];
                for (size_t mi = 0; mi < sizeof Ms / sizeof Ms[0]; mi++) {
                    int M = Ms[mi];
                    /* scalar per-element reference and tolerances */
                    qai_kernels_set_isa(QAI_ISA_SCALAR);
                    for (int m = 0; m < M; m++) {
                        qai_quantize_row_for_dot(t, x + (size_t)m * K, xq, K);
                        for (int n = 0; n < N; n++) {
                            double asum;
                            deq_dot(t, wq + n * rs, xq, K, tw, tx, &asum);
                            yref[m * N + n] = qai_vec_dot(t, K, wq + n * rs, xq);
                            tolv[m * N + n] = (float)(tol_for(t) * asum);
                        }
                    }
                    size_t ws = qai_matmul_work_size(t, M, K);
                    void *work = qai_aligned_alloc(ws);
                    for (int isa = 0; isa <= (int)best; isa++) {
                        qai_kernels_set_isa((qai_isa)isa);
                        for (int p = 0; p < (isa == (int)best ? NPOOL : NPOOL - 1); p++) { /* 18 threads: one ISA is enough */
                            memset(y, 0xff, sizeof y);
                            qai_matmul(pools[p], y, N, wq, t, x, M, N, K, work);
                            if (p == 0) {
                                /* |y - yref| <= tol: compare the difference against zero with a per-element bound */
                                int bad = 0;
                                double worst = 0;
                                for (int i = 0; i < M * N; i++) {
                                    double d = fabs((double)y[i] - yref[i]);
                                    if (!(d <= tolv[i])) {
                                        if (bad < 3)
                                            fprintf(stderr, "%s %s M=%d N=%d K=%d: y[%d][%d] = %.9g, scalar %.9g (tol %g)\n",
                                                    tr->name, isa_name(isa), M, N, K, i / N, i % N, y[i], yref[i],
                                                    tolv[i]);
                                        bad++;
                                    }
                                    if (d > worst || d != d) worst = d;
                                }
                                CHECK_MSG(!bad, "%s %s M=%d N=%d K=%d: %d of %d outputs differ, largest diff %g", tr->name,
                                          isa_name(isa), M, N, K, bad, M * N, worst);
                                memcpy(yt, y, sizeof(float) * M * N);
                            } else {
                                CHECK_MSG(!memcmp(y, yt, sizeof(float) * M * N),
                                          "%s %s M=%d N=%d K=%d: %d threads differ from the caller-only result",
                                          tr->name, isa_name(isa), M, N, K, qai_pool_size(pools[p]));
                            }
                        }
                        /* batch row m equals the same row alone */
                        if (M > 1) {
                            int m = M - 1;
                            float y1[NMAX];
                            qai_matmul(pools[2], y1, N, wq, t, x + (size_t)m * K, 1, N, K, work);
                            float d[NMAX];
                            for (int n = 0; n < N; n++) d[n] = y1[n] - yt[m * N + n];
                            int ok = 1;
                            for (int n = 0; n < N; n++) ok &= fabsf(d[n]) <= 2 * tolv[m * N + n];
                            if (!ok) CHECK_CLOSE("batch row vs alone", y1, yt + m * N, N, 0, 0);
                            else
                                CHECK(ok);
                        }
                    }
                    qai_aligned_free(work);
                }
            }
        }
    }
    (void)zero;
    qai_kernels_set_isa(best);
    for (int p = 1; p < NPOOL; p++) qai_pool_free(pools[p]);
}

int main(void) {
    printf("kernels: %s\n", qai_kernels_describe());
    test_vec_dot();
    test_matmul();
    return test_summary();
}
