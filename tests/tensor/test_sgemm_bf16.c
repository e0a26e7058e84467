/* bf16 GEMM: against the exact sum of bf16-rounded products (qai_sgemm_bf16_ref)
 * over all transpose combinations, edge tiles, odd K, strides and accumulate;
 * the AVX-512 (vdpbf16ps) kernel bit for bit against the plain C emulation of
 * the instruction; results bit-identical for any thread count; the rounding
 * and the instruction's order of rounding and denormal flushing on crafted
 * values.
 *
 * Tolerance against the reference: the inputs are rounded identically on both
 * sides and a product of two bf16 values is exact in fp32, so what is left is
 * the fp32 accumulation of K terms in [-1, 1] — the same bound as the fp32
 * GEMM's test, 1e-6·(K + 10). A different rounding of the inputs (truncation,
 * or rounding only one side) gives errors around 1e-3·sqrt(K), far above it. */
#include <math.h>

#include "qai/tensor.h"
#include "test.h"

static void fill(qai_rng *r, float *x, long n) {
    for (long i = 0; i < n; i++) x[i] = qai_rng_float(r) * 2 - 1;
}

static bool bf16_isa(int isa) { return isa == QAI_ISA_AVX512 ? qai_kernels_bf16() : true; }

static void check_shape(qai_pool *pools[3], int M, int N, int K, bool ta, bool tb, bool acc) {
    qai_rng r;
    qai_rng_seed(&r, (uint64_t)M * 1000003 + N * 1009 + K + ta * 7 + tb * 13 + acc + 99);
    int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 5, ldc = N + 2;
    long na = (long)(ta ? K : M) * lda, nb = (long)(tb ? N : K) * ldb, nc = (long)M * ldc;
    float *A = qai_malloc(na * sizeof(float)), *B = qai_malloc(nb * sizeof(float));
    float *C0 = qai_malloc(nc * sizeof(float)), *ref = qai_malloc(nc * sizeof(float));
    float *plain = qai_malloc(nc * sizeof(float));
    float *C[3];
    fill(&r, A, na);
    fill(&r, B, nb);
    fill(&r, C0, nc);
    memcpy(ref, C0, nc * sizeof(float));
    qai_sgemm_bf16_ref(ta, tb, M, N, K, A, lda, B, ldb, ref, ldc, acc);
    void *work = qai_aligned_alloc(qai_sgemm_work_size(3));
    const int isas[2] = {QAI_ISA_SCALAR, QAI_ISA_AVX512};
    for (int ii = 0; ii < 2; ii++) {
        int isa = isas[ii];
        if (qai_kernels_set_isa((qai_isa)isa) != (qai_isa)isa || !bf16_isa(isa)) continue;
        for (int p = 0; p < 3; p++) {
            C[p] = qai_malloc(nc * sizeof(float));
            memcpy(C[p], C0, nc * sizeof(float));
            qai_sgemm_bf16(pools[p], ta, tb, M, N, K, A, lda, B, ldb, C[p], ldc, acc, work);
        }
        bool pad_ok = true;
        for (int m = 0; m < M; m++)
            for (int n = N; n < ldc; n++) pad_ok &= C[0][(long)m * ldc + n] == C0[(long)m * ldc + n];
        CHECK_MSG(pad_ok, "isa %d M%d N%d K%d wrote past N", isa, M, N, K);
        double maxd = 0;
        int bad_m = -1, bad_n = -1;
        for (int m = 0; m < M; m++)
            for (int n = 0; n < N; n++) {
                double d = fabs((double)C[0][(long)m * ldc + n] - ref[(long)m * ldc + n]);
                if (d > maxd) maxd = d, bad_m = m, bad_n = n;
            }
        double tol = 1e-6 * (K + 10);
        CHECK_MSG(maxd <= tol, "isa %d M%d N%d K%d ta%d tb%d acc%d: max diff %g > %g at (%d,%d)", isa, M, N, K, ta, tb,
                  acc, maxd, tol, bad_m, bad_n);
        CHECK_MSG(!memcmp(C[0], C[1], nc * sizeof(float)) && !memcmp(C[0], C[2], nc * sizeof(float)),
                  "isa %d M%d N%d K%d: results depend on the thread count", isa, M, N, K);
        if (isa == QAI_ISA_SCALAR) {
            memcpy(plain, C[0], nc * sizeof(float));
        } else { /* the same bits as the emulation (a zero's sign may differ: full tiles store, edges add to 0) */
            long diff = 0, first = -1;
            for (long i = 0; i < nc; i++)
                if (C[0][i] != plain[i]) diff++, first = first < 0 ? i : first;
            CHECK_MSG(diff == 0, "M%d N%d K%d ta%d tb%d acc%d: avx512 differs from the plain kernel in %ld elements, "
                      "first at %ld: %a vs %a", M, N, K, ta, tb, acc, diff, first, first < 0 ? 0.0 : C[0][first],
                      first < 0 ? 0.0 : plain[first]);
        }
        for (int p = 0; p < 3; p++) qai_free(C[p]);
    }
    qai_kernels_set_isa(qai_cpu_isa());
    qai_aligned_free(work);
    qai_free(A);
    qai_free(B);
    qai_free(C0);
    qai_free(ref);
    qai_free(plain);
}

/* The conversion: round to nearest even like qai_fp32_to_bf16 for normal
 * numbers, flush below 2^-126, NaN stays NaN. */
static void check_rounding(void) {
    qai_rng r;
    qai_rng_seed(&r, 5);
    long bad = 0;
    for (int i = 0; i < 100000; i++) {
        float x = (qai_rng_float(&r) - 0.5f) * ldexpf(1.0f, (int)(qai_rng_u64(&r) % 200) - 100);
        if (qai_bf16_round(x) != qai_bf16_to_fp32(qai_fp32_to_bf16(x))) bad++;
    }
    CHECK_EQ_INT(bad, 0);
    CHECK(qai_bf16_round(1.0f + 0x1p-8f) == 1.0f);                /* tie, to even */
    CHECK(qai_bf16_round(1.0f + 0x1p-7f + 0x1p-8f) == 1.0f + 0x1p-6f); /* tie, to even (up) */
    CHECK(qai_bf16_round(1.0f + 0x1p-8f + 0x1p-20f) == 1.0f + 0x1p-7f); /* above the tie */
    CHECK(qai_bf16_round(0x1.fep-127f) == 0.0f);                   /* fp32 denormal: zero, not the smallest normal */
    CHECK(signbit(qai_bf16_round(-0x1p-130f)));
    CHECK(qai_bf16_round(0x1p-126f) == 0x1p-126f);
    CHECK(isnan(qai_bf16_round(NAN)));
    CHECK(isinf(qai_bf16_round(INFINITY)));
}

/* What vdpbf16ps does, on values where it shows: each pair is two fp32 steps,
 * the odd element first, each rounded; denormal results flush to zero. Both
 * kernels must do it (the AVX-512 one is the hardware). */
static void check_instruction(void) {
    /* C = A(1×4)·B(4×1): pair 0 gives 1, pair 1 adds 2^24 (odd) then 1 (even):
     * 1 + 2^24 rounds to 2^24 (tie to even), + 1 rounds to 2^24 again; the
     * exact sum is 2^24 + 2, and the even element first would give it too. */
    float A[4] = {1, 0, 1, 0x1p12f}, B[4] = {1, 0, 1, 0x1p12f};
    /* a product of 2^-70 · 2^-70 = 2^-140 is an fp32 denormal: flushed */
    float A2[2] = {0x1p-70f, 0}, B2[2] = {0x1p-70f, 0};
    void *work = qai_aligned_alloc(qai_sgemm_work_size(1));
    float ref;
    qai_sgemm_bf16_ref(false, false, 1, 1, 4, A, 4, B, 1, &ref, 1, false);
    CHECK(ref == 16777218.0f);
    /* an fp32 denormal just below 2^-126 (plain rounding would give 2^-126) becomes 0, times 2^100 */
    float A3[2] = {0x1.fep-127f, 0}, B3[2] = {0x1p100f, 0};
    const int isas[2] = {QAI_ISA_SCALAR, QAI_ISA_AVX512};
    for (int ii = 0; ii < 2; ii++) {
        if (qai_kernels_set_isa((qai_isa)isas[ii]) != (qai_isa)isas[ii] || !bf16_isa(isas[ii])) continue;
        /* 1×K·K×1: with M = N = 1 the transposed layouts are the same memory, so
         * every packer (consecutive and strided k) sees the same values */
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                float c = -1, c2 = -1, c3 = -1;
                qai_sgemm_bf16(NULL, ta, tb, 1, 1, 4, A, ta ? 1 : 4, B, tb ? 4 : 1, &c, 1, false, work);
                CHECK_MSG(c == 16777216.0f, "isa %d ta%d tb%d: pair order: got %.1f, want 16777216 (odd element "
                          "first, rounded twice)", isas[ii], ta, tb, c);
                qai_sgemm_bf16(NULL, ta, tb, 1, 1, 2, A2, ta ? 1 : 2, B2, tb ? 2 : 1, &c2, 1, false, work);
                CHECK_MSG(c2 == 0.0f, "isa %d ta%d tb%d: a denormal product gave %a, want 0 (flushed)", isas[ii], ta,
                          tb, c2);
                qai_sgemm_bf16(NULL, ta, tb, 1, 1, 2, A3, ta ? 1 : 2, B3, tb ? 2 : 1, &c3, 1, false, work);
                CHECK_MSG(c3 == 0.0f, "isa %d ta%d tb%d: a denormal input gave %a, want 0", isas[ii], ta, tb, c3);
            }
    }
    qai_kernels_set_isa(qai_cpu_isa());
    qai_aligned_free(work);
}

int main(void) {
    if (!qai_kernels_bf16()) fprintf(stderr, "note: no AVX512_BF16 here; only the plain kernel is tested\n");
    check_rounding();
    check_instruction();
    qai_pool *pools[3] = {NULL, qai_pool_new(2), qai_pool_new(3)};
    static const int shapes[][3] = {{1, 1, 1},      {5, 7, 3},      {12, 32, 16},  {13, 33, 17},  {11, 31, 2},
                                    {37, 70, 301},  {100, 288, 64}, {24, 64, 513}, {40, 40, 1025}, {64, 1000, 40},
                                    {300, 50, 260}, {25, 130, 600}, {400, 70, 300}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int acc = 0; acc < 2; acc++)
                    check_shape(pools, shapes[s][0], shapes[s][1], shapes[s][2], ta, tb, acc);
    qai_pool_free(pools[1]);
    qai_pool_free(pools[2]);
    return test_summary();
}
