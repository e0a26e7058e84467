/* Tests for the repacked ("R16") weight layouts (src/tensor/repack.c, the R16
 * kernels in dot_avx512.c and repack_avx2.c, matmul.c):
 *  - qai_matmul on repacked Q8_0 / Q4_0 weights equals a double-precision
 *    dot of the dequantized original weights and dequantized Q8_0 activations
 *    within 1e-5 of sum |w_i x_i| (the layout is checked against the file
 *    format, not against itself), for M = 1..9, 17, 67, N not a multiple
 *    of 16, odd and even block counts;
 *  - every ISA level gives the same bits as the scalar reference;
 *  - results are bit-identical for 1, 2 and 3 threads, and a row of a batch
 *    equals the same row computed alone, bit for bit;
 *  - qai_matmul_multi equals separate qai_matmul calls bit for bit (same and
 *    mixed activation formats);
 *  - sizes: qai_row_size / qai_matrix_size, and qai_type_info does not know
 *    the in-memory types (so no file can claim them). */
#include <math.h>
#include <stdint.h>

#include "qai/tensor.h"
#include "test.h"

static void fill(qai_rng *r, float *x, long n, float scale) {
    for (long i = 0; i < n; i++) x[i] = qai_rng_normal(r) * scale;
}

static void test_sizes(void) {
    CHECK(qai_type_info(QAI_TYPE_Q8_0_R16) == NULL);
    CHECK(qai_type_info(QAI_TYPE_Q4_0_R16) == NULL);
    CHECK_EQ_INT((long)qai_row_size(QAI_TYPE_Q8_0_R16, 64), 68);
    CHECK_EQ_INT((long)qai_row_size(QAI_TYPE_Q4_0_R16, 64), 36);
    CHECK_EQ_INT((long)qai_matrix_size(QAI_TYPE_Q8_0_R16, 17, 64), 32 * 68);
    CHECK_EQ_INT((long)qai_matrix_size(QAI_TYPE_Q8_0, 17, 64), 17 * 68);
    CHECK_EQ_INT((long)qai_matrix_size(QAI_TYPE_Q4_0_R16, 16, 96), 16 * 54);
    CHECK(qai_repack(NULL, QAI_TYPE_Q4_K, NULL, 16, 256, QAI_TYPE_Q8_0_R16, NULL) == QAI_ERR_ARG);
    CHECK(qai_repack(NULL, QAI_TYPE_Q8_0, NULL, 16, 33, QAI_TYPE_Q8_0_R16, NULL) == QAI_ERR_ARG);
    qai_isa isa = qai_kernels_isa();
    qai_kernels_set_isa(QAI_ISA_SCALAR);
    CHECK_EQ_INT(qai_repack_type(QAI_TYPE_Q8_0), -1); /* no SIMD kernel: keep the file layout */
    qai_kernels_set_isa(isa);
    /* every SIMD level has R16 kernels (AVX2 and AVX-512): repack there */
    for (int l = QAI_ISA_AVX2; l <= (int)qai_cpu_isa(); l++) {
        qai_kernels_set_isa((qai_isa)l);
        CHECK_EQ_INT(qai_repack_type(QAI_TYPE_Q8_0), QAI_TYPE_Q8_0_R16);
        CHECK_EQ_INT(qai_repack_type(QAI_TYPE_Q4_0), QAI_TYPE_Q4_0_R16);
        CHECK_EQ_INT(qai_repack_type(QAI_TYPE_Q4_K), -1);
    }
    qai_kernels_set_isa(isa);
    CHECK_EQ_INT(qai_repack_type(QAI_TYPE_Q6_K), -1);
}

static void test_matmul(void) {
    const qai_type types[][2] = {{QAI_TYPE_Q8_0, QAI_TYPE_Q8_0_R16}, {QAI_TYPE_Q4_0, QAI_TYPE_Q4_0_R16}};
    const int Ms[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 17, 67};
    const int Ns[] = {16, 37, 83};
    const int Ks[] = {32, 96, 544, 768};
    enum { MMAX = 67, NMAX = 83, KMAX = 768 };
    static float w[NMAX * KMAX], x[MMAX * KMAX], tw[NMAX * KMAX], tx[KMAX];
    static float y[MMAX * NMAX], yref[MMAX * NMAX], yt[MMAX * NMAX], tolv[MMAX * NMAX];
    static uint8_t wq[NMAX * KMAX * 2], xq[KMAX * 2];
    qai_isa best = qai_cpu_isa();
    qai_pool *pools[4] = {NULL, qai_pool_new(1), qai_pool_new(2), qai_pool_new(3)};
    qai_rng r;
    qai_rng_seed(&r, 7);
    for (size_t ti = 0; ti < 2; ti++) {
        qai_type t = types[ti][0], rt = types[ti][1];
        for (size_t ki = 0; ki < sizeof Ks / sizeof Ks[0]; ki++) {
            int K = Ks[ki];
            fill(&r, w, (long)NMAX * K, 0.05f);
            fill(&r, x, (long)MMAX * K, 1.f);
            /* a few exact zeros and extremes in the activations */
            x[0] = 0, x[1] = 100.f, x[K] = -100.f;
            size_t rs = qai_row_size(t, K);
            CHECK_OK(qai_quantize_rows(t, w, wq, NMAX, K));
            for (int n = 0; n < NMAX; n++) qai_dequantize_row(t, wq + n * rs, tw + (size_t)n * K, K);
            for (size_t ni = 0; ni < sizeof Ns / sizeof Ns[0]; ni++) {
                int N = Ns[ni];
                uint8_t *wr = qai_aligned_alloc(qai_matrix_size(rt, N, K));
                CHECK_OK(qai_repack(pools[2], t, wq, N, K, rt, wr));
                /* independent reference: exact dot of dequantized values */
                for (int m = 0; m < MMAX; m++) {
                    qai_quantize_row_for_dot(QAI_TYPE_Q8_0, x + (size_t)m * K, xq, K);
                    qai_dequantize_row(QAI_TYPE_Q8_0, xq, tx, K);
                    for (int n = 0; n < N; n++) {
                        const float *wn = tw + (size_t)n * K;
                        double s = 0, a = 0;
                        for (int k = 0; k < K; k++) s += (double)wn[k] * tx[k], a += fabs((double)wn[k] * tx[k]);
                        yref[m * N + n] = (float)s;
                        tolv[m * N + n] = (float)(1e-5 * a) + 1e-30f;
                    }
                }
                for (size_t mi = 0; mi < sizeof Ms / sizeof Ms[0]; mi++) {
                    int M = Ms[mi];
                    void *work = qai_aligned_alloc(qai_matmul_work_size(rt, M, K));
                    for (int isa = 0; isa <= (int)best; isa++) {
                        qai_kernels_set_isa((qai_isa)isa);
                        for (int p = 0; p < (isa ? 4 : 1); p++) { /* the scalar kernel is slow: one thread count */
                            memset(y, 0xff, sizeof y);
                            qai_matmul(pools[p], y, N, wr, rt, x, M, N, K, work);
                            if (isa == 0 && p == 0) {
                                int bad = 0;
                                for (int i = 0; i < M * N; i++) {
                                    double d = fabs((double)y[i] - yref[i]);
                                    if (!(d <= tolv[i]) && bad++ < 3)
                                        fprintf(stderr, "%d M=%d N=%d K=%d: y[%d][%d] = %.9g, exact %.9g (tol %g)\n",
                                                (int)rt, M, N, K, i / N, i % N, y[i], yref[i], tolv[i]);
                                }
                                CHECK_MSG(!bad, "repacked type %d M=%d N=%d K=%d: %d of %d outputs off", (int)rt, M, N, K,
                                          bad, M * N);
                                memcpy(yt, y, sizeof(float) * M * N);
                            } else {
                                CHECK_MSG(!memcmp(y, yt, sizeof(float) * M * N),
                                          "repacked type %d M=%d N=%d K=%d: isa %d with %d threads differs from the scalar "
                                          "reference",
                                          (int)rt, M, N, K, isa, p);
                            }
                        }
                        /* the last row of the batch alone */
                        float y1[NMAX];
                        qai_matmul(pools[2], y1, N, wr, rt, x + (size_t)(M - 1) * K, 1, N, K, work);
                        CHECK_MSG(!memcmp(y1, yt + (size_t)(M - 1) * N, sizeof(float) * N),
                                  "repacked type %d M=%d N=%d K=%d isa %d: row %d alone differs from the batch", (int)rt,
                                  M, N, K, isa, M - 1);
                    }
                    qai_kernels_set_isa(best);
                    /* the unrepacked matmul agrees within the same tolerance */
                    qai_matmul(pools[2], y, N, wq, t, x, M, N, K, work);
                    int bad = 0;
                    for (int i = 0; i < M * N; i++) bad += !(fabs((double)y[i] - yt[i]) <= 2 * tolv[i]);
                    CHECK_MSG(!bad, "type %d M=%d N=%d K=%d: %d outputs differ between repacked and file layout", (int)t,
                              M, N, K, bad);
                    qai_aligned_free(work);
                }
                qai_aligned_free(wr);
            }
        }
    }
    qai_kernels_set_isa(best);
    for (int p = 1; p < 4; p++) qai_pool_free(pools[p]);
}

/* qai_matmul_multi: Q, K, V-like outputs of one x. */
static void test_multi(void) {
    enum { K = 256, M = 5 };
    const int Ns[] = {64, 21, 21};
    static float w[64 * K], x[M * K];
    static float ya[3][M * 64], yb[3][M * 64];
    qai_rng r;
    qai_rng_seed(&r, 11);
    fill(&r, x, M * K, 1.f);
    qai_pool *pool = qai_pool_new(2);
    /* all repacked / all file Q8_0+Q4_0 (same activations) / mixed with F32 (fallback) */
    const qai_type sets[3][3] = {{QAI_TYPE_Q8_0_R16, QAI_TYPE_Q4_0_R16, QAI_TYPE_Q8_0_R16},
                                 {QAI_TYPE_Q8_0, QAI_TYPE_Q4_0, QAI_TYPE_Q8_0},
                                 {QAI_TYPE_Q8_0_R16, QAI_TYPE_F32, QAI_TYPE_Q6_K}};
    for (int s = 0; s < 3; s++) {
        void *wp[3];
        size_t work_size = 0;
        qai_matmul_out outs[3];
        for (int i = 0; i < 3; i++) {
            qai_type t = sets[s][i];
            qai_type ft = t == QAI_TYPE_Q8_0_R16 ? QAI_TYPE_Q8_0 : t == QAI_TYPE_Q4_0_R16 ? QAI_TYPE_Q4_0 : t;
            fill(&r, w, (long)Ns[i] * K, 0.05f);
            void *q = qai_aligned_alloc(qai_row_size(ft, K) * Ns[i]);
            CHECK_OK(qai_quantize_rows(ft, w, q, Ns[i], K));
            if (ft != t) {
                wp[i] = qai_aligned_alloc(qai_matrix_size(t, Ns[i], K));
                CHECK_OK(qai_repack(NULL, ft, q, Ns[i], K, t, wp[i]));
                qai_aligned_free(q);
            } else {
                wp[i] = q;
            }
            size_t ws = qai_matmul_work_size(t, M, K);
            if (ws > work_size) work_size = ws;
            outs[i] = (qai_matmul_out){ya[i], Ns[i], wp[i], t, Ns[i]};
        }
        void *work = qai_aligned_alloc(work_size);
        memset(ya, 0, sizeof ya);
        qai_matmul_multi(pool, outs, 3, x, M, K, work);
        for (int i = 0; i < 3; i++) {
            memset(yb[i], 0xff, sizeof yb[i]);
            qai_matmul(NULL, yb[i], Ns[i], wp[i], sets[s][i], x, M, Ns[i], K, work);
            CHECK_MSG(!memcmp(ya[i], yb[i], sizeof(float) * M * Ns[i]), "multi set %d output %d differs from qai_matmul",
                      s, i);
            qai_aligned_free(wp[i]);
        }
        qai_aligned_free(work);
    }
    qai_pool_free(pool);
}

int main(void) {
    printf("kernels: %s\n", qai_kernels_describe());
    test_sizes();
    test_matmul();
    test_multi();
    return test_summary();
}
