/* fp32 GEMM: every ISA's kernel against the double-precision triple loop, over
 * all transpose combinations, edge sizes, strides and accumulate (and M > 192
 * with K <= 256, where row tiles reuse the packed B panels); results
 * bit-identical for any thread count. */
#include "qai/tensor.h"
#include "test.h"

static void fill(qai_rng *r, float *x, long n) {
    for (long i = 0; i < n; i++) x[i] = qai_rng_float(r) * 2 - 1;
}

static void check_shape(qai_pool *pools[3], int M, int N, int K, bool ta, bool tb, bool acc) {
    qai_rng r;
    qai_rng_seed(&r, (uint64_t)M * 1000003 + N * 1009 + K + ta * 7 + tb * 13 + acc);
    int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 5, ldc = N + 2;
    long na = (long)(ta ? K : M) * lda, nb = (long)(tb ? N : K) * ldb, nc = (long)M * ldc;
    float *A = qai_malloc(na * sizeof(float)), *B = qai_malloc(nb * sizeof(float));
    float *C0 = qai_malloc(nc * sizeof(float)), *ref = qai_malloc(nc * sizeof(float));
    float *C[3];
    fill(&r, A, na);
    fill(&r, B, nb);
    fill(&r, C0, nc);
    memcpy(ref, C0, nc * sizeof(float));
    qai_sgemm_ref(ta, tb, M, N, K, A, lda, B, ldb, ref, ldc, acc);
    void *work = qai_aligned_alloc(qai_sgemm_work_size(3));
    for (int isa = QAI_ISA_SCALAR; isa <= (int)qai_cpu_isa(); isa++) {
        qai_kernels_set_isa((qai_isa)isa);
        for (int p = 0; p < 3; p++) {
            C[p] = qai_malloc(nc * sizeof(float));
            memcpy(C[p], C0, nc * sizeof(float));
            qai_sgemm(pools[p], ta, tb, M, N, K, A, lda, B, ldb, C[p], ldc, acc, work);
        }
        /* padding columns of C untouched */
        bool pad_ok = true;
        for (int m = 0; m < M; m++)
            for (int n = N; n < ldc; n++) pad_ok &= C[0][(long)m * ldc + n] == C0[(long)m * ldc + n];
        CHECK_MSG(pad_ok, "isa %d M%d N%d K%d wrote past N", isa, M, N, K);
        double maxd = 0;
        for (int m = 0; m < M; m++)
            for (int n = 0; n < N; n++) {
                double d = fabs((double)C[0][(long)m * ldc + n] - ref[(long)m * ldc + n]);
                if (d > maxd) maxd = d;
            }
        /* fp32 sums of K products of values in [-1,1]: error grows like sqrt(K) ulps of the magnitude */
        double tol = 1e-6 * (K + 10);
        CHECK_MSG(maxd <= tol, "isa %d M%d N%d K%d ta%d tb%d acc%d: max diff %g > %g", isa, M, N, K, ta, tb, acc, maxd,
                  tol);
        CHECK_MSG(!memcmp(C[0], C[1], nc * sizeof(float)) && !memcmp(C[0], C[2], nc * sizeof(float)),
                  "isa %d M%d N%d K%d: results depend on the thread count", isa, M, N, K);
        for (int p = 0; p < 3; p++) qai_free(C[p]);
    }
    qai_kernels_set_isa(qai_cpu_isa());
    qai_aligned_free(work);
    qai_free(A);
    qai_free(B);
    qai_free(C0);
    qai_free(ref);
}

int main(void) {
    qai_pool *pools[3] = {NULL, qai_pool_new(2), qai_pool_new(3)};
    static const int shapes[][3] = {{1, 1, 1},     {5, 7, 3},     {12, 32, 16},  {13, 33, 17}, {37, 70, 300},
                                    {100, 288, 64}, {200, 96, 513}, {64, 1000, 40}, {300, 50, 260},
                                    {400, 100, 200}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int acc = 0; acc < 2; acc++)
                    check_shape(pools, shapes[s][0], shapes[s][1], shapes[s][2], ta, tb, acc);
    qai_pool_free(pools[1]);
    qai_pool_free(pools[2]);
    return test_summary();
}
