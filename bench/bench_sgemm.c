/* fp32 and bf16 GEMM speed on the shapes of training: GFLOP/s for each product
 * of a linear layer (forward x·Wᵀ, dx = dy·W, dW += dyᵀ·x) at 1 and 2 threads,
 * qai_sgemm and (on CPUs with AVX512_BF16) qai_sgemm_bf16, whose times include
 * rounding the fp32 inputs to bf16 while packing.
 * Usage: bench_sgemm [reps]   (peer: bench/peer_sgemm.py, same shapes in PyTorch) */
#include <stdio.h>
#include <stdlib.h>

#include "qai/tensor.h"

typedef void (*gemm_fn)(qai_pool *, bool, bool, int, int, int, const float *, int, const float *, int, float *, int,
                        bool, void *);

static double run(gemm_fn gemm, qai_pool *pool, bool ta, bool tb, int M, int N, int K, int reps, float *A, float *B, float *C,
                  void *work) {
    gemm(pool, ta, tb, M, N, K, A, ta ? M : K, B, tb ? K : N, C, N, false, work); /* warm up */
    uint64_t best = UINT64_MAX;
    for (int r = 0; r < reps; r++) {
        uint64_t t0 = qai_time_ns();
        gemm(pool, ta, tb, M, N, K, A, ta ? M : K, B, tb ? K : N, C, N, ta, work);
        uint64_t t = qai_time_ns() - t0;
        if (t < best) best = t;
    }
    return 2.0 * M * N * K / (double)best;
}

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 10;
    /* tokens 2048 (batch 8 × seq 256); dims of the S (288/768/4096) and M (512/1376/8192) shapes */
    static const int layers[][2] = {{288, 288}, {768, 288}, {288, 768}, {4096, 288}, {512, 512}, {1376, 512}, {512, 1376}, {8192, 512}};
    const int T = 2048;
    size_t maxn = (size_t)T * 8192;
    float *A = qai_aligned_alloc(maxn * 4), *B = qai_aligned_alloc(maxn * 4), *C = qai_aligned_alloc(maxn * 4);
    qai_rng r;
    qai_rng_seed(&r, 1);
    for (size_t i = 0; i < maxn; i++) A[i] = qai_rng_float(&r) - 0.5f, B[i] = qai_rng_float(&r) - 0.5f;
    qai_pool *p2 = qai_pool_new(2);
    void *work = qai_aligned_alloc(qai_sgemm_work_size(2));
    printf("kernels: %s; tokens %d; GFLOP/s (best of %d)\n", qai_kernels_describe(), T, reps);
    const bool bf16 = qai_kernels_bf16();
    if (!bf16) printf("no AVX512_BF16: bf16 rows skipped\n");
    printf("%-12s %-5s %10s %10s %10s %10s %10s %10s\n", "out x in", "type", "fwd 1t", "dx 1t", "dW 1t", "fwd 2t",
           "dx 2t", "dW 2t");
    double sum[2][6] = {{0}};
    const int nl = (int)(sizeof layers / sizeof layers[0]);
    for (int l = 0; l < nl; l++) {
        int out = layers[l][0], in = layers[l][1];
        for (int type = 0; type < (bf16 ? 2 : 1); type++) {
            gemm_fn gemm = type ? qai_sgemm_bf16 : qai_sgemm;
            double g[6];
            for (int t = 0; t < 2; t++) {
                qai_pool *p = t ? p2 : NULL;
                g[3 * t + 0] = run(gemm, p, false, true, T, out, in, reps, A, B, C, work);
                g[3 * t + 1] = run(gemm, p, false, false, T, in, out, reps, A, B, C, work);
                g[3 * t + 2] = run(gemm, p, true, false, out, in, T, reps, A, B, C, work);
            }
            for (int i = 0; i < 6; i++) sum[type][i] += g[i];
            printf("%5d x %-5d %-5s %10.1f %10.1f %10.1f %10.1f %10.1f %10.1f\n", out, in, type ? "bf16" : "fp32", g[0],
                   g[1], g[2], g[3], g[4], g[5]);
        }
    }
    if (bf16) {
        printf("%-18s", "mean bf16/fp32");
        for (int i = 0; i < 6; i++) printf(" %9.2fx", sum[1][i] / sum[0][i]);
        printf("\n");
    }
    qai_pool_free(p2);
    return 0;
}
