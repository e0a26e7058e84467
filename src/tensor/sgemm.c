/*
 * fp32 GEMM for training: C (+)= op(A)·op(B), blocked the classic way — B
 * packed in KC×NR panels, A in MR×KC panels, a register-tiled micro-kernel per
 * ISA (12×32 on AVX-512, 6×16 on AVX2, 4×8 plain C) — and split over threads
 * by output tiles.
 *
 * Determinism: the K dimension is cut into KC blocks at fixed offsets and each
 * C element is owned by one thread, which sums the blocks in order; the tile
 * sizes change with the thread count but never the order of any sum.
 *
 * The driver (qai_gemm_run) is shared with the bf16 GEMM (sgemm_bf16.c), which
 * brings its own packing and kernels.
 *
 * What it deliberately does not do: quantized operands (qai_matmul does those),
 * alpha/beta scaling beyond "store or add".
 */
#include <string.h>

#include "qai/tensor.h"
#include "tensor/sgemm.h"

enum { KC = QAI_SGEMM_KC, MC_MAX = QAI_GEMM_MC_MAX, NC_MAX = QAI_GEMM_NC_MAX };
_Static_assert(KC * sizeof(float) == QAI_GEMM_PACK_BYTES, "fp32 K block fills the packing area");

/* ---- the plain C micro-kernel ---- */

enum { MR_SCALAR = 4, NR_SCALAR = 8 };

static void kernel_scalar(int kc, const float *a, const float *b, float *c, int ldc, bool accumulate) {
    float acc[MR_SCALAR][NR_SCALAR] = {{0}};
    for (int k = 0; k < kc; k++, a += MR_SCALAR, b += NR_SCALAR)
        for (int r = 0; r < MR_SCALAR; r++)
            for (int j = 0; j < NR_SCALAR; j++) acc[r][j] += a[r] * b[j];
    for (int r = 0; r < MR_SCALAR; r++)
        for (int j = 0; j < NR_SCALAR; j++) c[(long)r * ldc + j] = (accumulate ? c[(long)r * ldc + j] : 0) + acc[r][j];
}

static qai_sgemm_ukernel pick_kernel(void) {
    switch (qai_kernels_isa()) {
    case QAI_ISA_AVX512: return qai_sgemm_ukernel_avx512();
    case QAI_ISA_AVX2: return qai_sgemm_ukernel_avx2();
    default: return (qai_sgemm_ukernel){MR_SCALAR, NR_SCALAR, kernel_scalar};
    }
}

/* Per-thread bytes: an A block (MC×KC), a B block (KC×NC), an edge tile of floats. */
static size_t thread_bytes(void) {
    return (size_t)(MC_MAX + NC_MAX) * QAI_GEMM_PACK_BYTES + (QAI_SGEMM_MR_MAX * QAI_SGEMM_NR_MAX + 64) * sizeof(float);
}

size_t qai_sgemm_work_size(int n_threads) { return (size_t)(n_threads < 1 ? 1 : n_threads) * thread_bytes(); }

/* ---- packing ---- */

/* rows [m0, m0+mr) × k [k0, k0+kc) of op(A) into kc steps of MR floats (zero padded). */
static void pack_a(void *dst_, int MR, const float *A, int lda, bool trans, int m0, int mr, int k0, int kc) {
    float *dst = dst_;
    if (trans) {
        for (int k = 0; k < kc; k++) {
            const float *src = A + (long)(k0 + k) * lda + m0;
            float *d = dst + (long)k * MR;
            memcpy(d, src, (size_t)mr * sizeof(float));
            for (int r = mr; r < MR; r++) d[r] = 0;
        }
    } else {
        for (int r = 0; r < MR; r++) {
            if (r < mr) {
                const float *src = A + (long)(m0 + r) * lda + k0;
                for (int k = 0; k < kc; k++) dst[(long)k * MR + r] = src[k];
            } else {
                for (int k = 0; k < kc; k++) dst[(long)k * MR + r] = 0;
            }
        }
    }
}

/* k [k0, k0+kc) × columns [n0, n0+nr) of op(B) into kc steps of NR floats. */
static void pack_b(void *dst_, int NR, const float *B, int ldb, bool trans, int k0, int kc, int n0, int nr) {
    float *dst = dst_;
    if (trans) {
        for (int j = 0; j < NR; j++) {
            if (j < nr) {
                const float *src = B + (long)(n0 + j) * ldb + k0;
                for (int k = 0; k < kc; k++) dst[(long)k * NR + j] = src[k];
            } else {
                for (int k = 0; k < kc; k++) dst[(long)k * NR + j] = 0;
            }
        }
    } else {
        for (int k = 0; k < kc; k++) {
            const float *src = B + (long)(k0 + k) * ldb + n0;
            float *d = dst + (long)k * NR;
            memcpy(d, src, (size_t)nr * sizeof(float));
            for (int j = nr; j < NR; j++) d[j] = 0;
        }
    }
}

/* ---- the blocked loops ---- */

typedef struct {
    bool trans_a, trans_b, accumulate;
    int M, N, K;
    const float *A, *B;
    int lda, ldb, ldc;
    float *C;
    int mc, nc, tiles_m, tiles_n;
    const qai_gemm_impl *impl;
    char *work;
} sgemm_job;

static void call_kernel(const qai_gemm_impl *im, int kc, const char *a, const char *b, float *c, int ldc, bool acc) {
    if (im->f32) im->f32(kc, (const float *)a, (const float *)b, c, ldc, acc);
    else im->bf16((kc + 1) / 2, (const uint32_t *)a, (const uint32_t *)b, c, ldc, acc);
}

/* *packed_tn: the column tile whose B panels bpack holds when K is one block
 * (then the next tiles of the same column reuse them), else -1. */
static void run_tile(const sgemm_job *j, char *apack, char *bpack, float *edge, int tm, int tn, int *packed_tn) {
    const qai_gemm_impl *im = j->impl;
    const int MR = im->mr, NR = im->nr, KC_ = im->kc;
    int m0 = tm * j->mc, n0 = tn * j->nc;
    int mc = j->M - m0 < j->mc ? j->M - m0 : j->mc;
    int nc = j->N - n0 < j->nc ? j->N - n0 : j->nc;
    for (int k0 = 0; k0 < j->K; k0 += KC_) {
        int kc = j->K - k0 < KC_ ? j->K - k0 : KC_;
        /* bytes per row (A) or column (B) of a packed panel */
        size_t step = (size_t)((kc + im->kstep - 1) / im->kstep * im->kstep) * im->esize;
        bool acc = j->accumulate || k0 > 0;
        if (*packed_tn != tn || j->K > KC_)
            for (int jn = 0; jn < nc; jn += NR)
                im->pack_b(bpack + jn * step, NR, j->B, j->ldb, j->trans_b, k0, kc, n0 + jn, nc - jn < NR ? nc - jn : NR);
        *packed_tn = j->K > KC_ ? -1 : tn;
        for (int ii = 0; ii < mc; ii += MR)
            im->pack_a(apack + ii * step, MR, j->A, j->lda, j->trans_a, m0 + ii, mc - ii < MR ? mc - ii : MR, k0, kc);
        for (int jn = 0; jn < nc; jn += NR) {
            int nr = nc - jn < NR ? nc - jn : NR;
            for (int ii = 0; ii < mc; ii += MR) {
                int mr = mc - ii < MR ? mc - ii : MR;
                float *c = j->C + (long)(m0 + ii) * j->ldc + n0 + jn;
                const char *ap = apack + ii * step, *bp = bpack + jn * step;
                if (mr == MR && nr == NR) {
                    call_kernel(im, kc, ap, bp, c, j->ldc, acc);
                } else { /* edge: compute the full tile aside, then store or add the part that exists */
                    call_kernel(im, kc, ap, bp, edge, NR, false);
                    for (int r = 0; r < mr; r++)
                        for (int q = 0; q < nr; q++)
                            c[(long)r * j->ldc + q] = (acc ? c[(long)r * j->ldc + q] : 0) + edge[r * NR + q];
                }
            }
        }
    }
}

static void sgemm_worker(void *arg, int ith, int nth) {
    const sgemm_job *j = arg;
    char *apack = j->work + (size_t)ith * thread_bytes();
    char *bpack = apack + (size_t)MC_MAX * QAI_GEMM_PACK_BYTES;
    float *edge = (float *)(bpack + (size_t)NC_MAX * QAI_GEMM_PACK_BYTES);
    int tiles = j->tiles_m * j->tiles_n;
    /* contiguous ranges keep one thread on neighbouring tiles (shared B panels in cache) */
    int t0 = (int)((long)tiles * ith / nth), t1 = (int)((long)tiles * (ith + 1) / nth);
    int packed_tn = -1;
    for (int t = t0; t < t1; t++) run_tile(j, apack, bpack, edge, t % j->tiles_m, t / j->tiles_m, &packed_tn);
}

static int ceil_div(int a, int b) { return (a + b - 1) / b; }

void qai_gemm_run(qai_pool *pool, const qai_gemm_impl *impl, bool trans_a, bool trans_b, int M, int N, int K,
                  const float *A, int lda, const float *B, int ldb, float *C, int ldc, bool accumulate, void *work) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        if (!accumulate)
            for (int m = 0; m < M; m++) memset(C + (long)m * ldc, 0, (size_t)N * sizeof(float));
        return;
    }
    int nth = pool ? qai_pool_size(pool) : 1;
    sgemm_job j = {trans_a, trans_b, accumulate, M, N, K, A, B, lda, ldb, ldc, C, 0, 0, 0, 0, impl, work};
    /* Start from the largest blocks; shrink until every thread has a few tiles. */
    const int MR = impl->mr, NR = impl->nr;
    int mc = MC_MAX / MR * MR, nc = NC_MAX / NR * NR;
    while (nth > 1 && ceil_div(M, mc) * ceil_div(N, nc) < 4 * nth) {
        if (nc >= 4 * NR && nc >= mc) nc = nc / 2 / NR * NR;
        else if (mc >= 2 * MR) mc = mc / 2 / MR * MR;
        else break;
    }
    j.mc = mc;
    j.nc = nc;
    j.tiles_m = ceil_div(M, mc);
    j.tiles_n = ceil_div(N, nc);
    if (pool && nth > 1 && (long)M * N * K > 32768) qai_pool_run(pool, sgemm_worker, &j);
    else sgemm_worker(&j, 0, 1);
}

void qai_sgemm(qai_pool *pool, bool trans_a, bool trans_b, int M, int N, int K, const float *A, int lda, const float *B,
               int ldb, float *C, int ldc, bool accumulate, void *work) {
    qai_sgemm_ukernel uk = pick_kernel();
    qai_gemm_impl impl = {uk.mr, uk.nr, KC, 1, sizeof(float), pack_a, pack_b, uk.kernel, NULL};
    qai_gemm_run(pool, &impl, trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc, accumulate, work);
}

double qai_fma_peak_gflops(void) {
    double (*loop)(long) = qai_kernels_isa() == QAI_ISA_AVX512 ? qai_fma_loop_avx512
                         : qai_kernels_isa() == QAI_ISA_AVX2   ? qai_fma_loop_avx2
                                                                : NULL;
    if (!loop) return 0;
    loop(100000); /* warm up the vector units */
    long iters = 200000;
    double best = 0;
    for (int r = 0; r < 5; r++) {
        uint64_t t0 = qai_time_ns();
        double flops = loop(iters);
        double dt = (double)(qai_time_ns() - t0);
        if (flops / dt > best) best = flops / dt;
    }
    return best; /* FLOPs per ns = GFLOP/s */
}

void qai_sgemm_ref(bool trans_a, bool trans_b, int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                   float *C, int ldc, bool accumulate) {
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double s = 0;
            for (int k = 0; k < K; k++) {
                float a = trans_a ? A[(long)k * lda + m] : A[(long)m * lda + k];
                float b = trans_b ? B[(long)n * ldb + k] : B[(long)k * ldb + n];
                s += (double)a * b;
            }
            C[(long)m * ldc + n] = (float)((accumulate ? C[(long)m * ldc + n] : 0) + s);
        }
}
