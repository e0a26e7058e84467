/*
 * qai_matmul: y = x · Wᵀ on the thread pool.
 *
 * Letters: M activation rows, N weight rows (outputs), K reduced dimension.
 *
 * Two phases, each one qai_pool_run:
 *   1. the M activation rows are converted to the weight type's vec_dot_type
 *      in the caller's work buffer (rows split statically across threads);
 *   2. the N×M outputs are cut into fixed tiles of gemm_nr weight rows ×
 *      gemm_mr activation rows, grouped into chunks (a block of weight rows ×
 *      a block of activation rows); threads take chunks from an atomic counter.
 * Tile and chunk boundaries depend only on (M, N, K, type, ISA), never on the
 * thread count, and each output is computed by exactly one tile, so results
 * are identical for any number of threads.
 *
 * What it deliberately does not do: allocate, repack weights, or split K.
 */
#include <stdatomic.h>
#include <string.h>

#include "tensor/quant.h"

size_t qai_matmul_work_size(qai_type wtype, int M, int K) {
    const qai_type_traits *t = qai_type_info(wtype);
    if (!t || M <= 0 || K <= 0) return 0;
    if (t->vec_dot_type == QAI_TYPE_F32) return 64; /* activations are used in place */
    return (size_t)M * qai_row_size(t->vec_dot_type, K) + 64;
}

typedef struct {
    const qai_kernel *k;
    float *y;
    int ldy;
    const uint8_t *w;
    size_t wrow;
    const float *x;
    uint8_t *xq;
    size_t xrow;
    int M, N, K;
    int chunk_n, chunk_m, n_chunks_m, n_chunks;
    atomic_int next;
} mm_ctx;

static void convert_rows(void *arg, int ith, int nth) {
    mm_ctx *c = arg;
    for (int m = ith; m < c->M; m += nth) c->k->from_float(c->x + (size_t)m * c->K, c->xq + (size_t)m * c->xrow, c->K);
}

static void run_chunk(const mm_ctx *c, int id) {
    const qai_kernel *k = c->k;
    int n0 = (id / c->n_chunks_m) * c->chunk_n, m0 = (id % c->n_chunks_m) * c->chunk_m;
    int n1 = n0 + c->chunk_n < c->N ? n0 + c->chunk_n : c->N;
    int m1 = m0 + c->chunk_m < c->M ? m0 + c->chunk_m : c->M;
    int nr = k->gemm ? k->gemm_nr : 1, mr = k->gemm ? k->gemm_mr : 1;
    for (int n = n0; n < n1; n += nr) {
        int tn = n1 - n < nr ? n1 - n : nr;
        const uint8_t *w = c->w + (size_t)n * c->wrow;
        for (int m = m0; m < m1; m += mr) {
            int tm = m1 - m < mr ? m1 - m : mr;
            const uint8_t *x = c->xq + (size_t)m * c->xrow;
            float *y = c->y + (size_t)m * c->ldy + n;
            if (k->gemm) k->gemm(c->K, tn, tm, w, c->wrow, x, c->xrow, y, c->ldy);
            else
                y[0] = k->vec_dot(c->K, w, x);
        }
    }
}

static void compute(void *arg, int ith, int nth) {
    (void)ith, (void)nth;
    mm_ctx *c = arg;
    for (;;) {
        int id = atomic_fetch_add_explicit(&c->next, 1, memory_order_relaxed);
        if (id >= c->n_chunks) break;
        run_chunk(c, id);
    }
}

void qai_matmul(qai_pool *pool, float *y, int ldy, const void *w, qai_type wtype, const float *x, int M, int N, int K,
                void *work) {
    const qai_type_traits *t = qai_type_info(wtype);
    const qai_kernel *k = qai_kernel_for(wtype);
    if (!t || !k || M <= 0 || N <= 0 || K <= 0) return;
    mm_ctx c = {.k = k, .y = y, .ldy = ldy, .w = w, .wrow = qai_row_size(wtype, K), .x = x, .M = M, .N = N, .K = K};
    atomic_init(&c.next, 0);
    if (t->vec_dot_type == QAI_TYPE_F32) {
        c.xq = (uint8_t *)x;
        c.xrow = (size_t)K * sizeof(float);
    } else {
        c.xq = work;
        c.xrow = qai_row_size(t->vec_dot_type, K);
        if (M == 1) convert_rows(&c, 0, 1);
        else
            qai_pool_run(pool, convert_rows, &c);
    }
    /* Chunks: activation blocks of up to 64 rows (a multiple of mr) so they
     * stay in L2 while a block of weight rows streams past; weight blocks sized
     * for about 32 chunks per activation block, for load balance. */
    int nr = k->gemm ? k->gemm_nr : 1, mr = k->gemm ? k->gemm_mr : 1;
    int cm = M <= 64 ? M : (64 / mr) * mr;
    if (cm < mr) cm = mr;
    int cn = (N + 31) / 32;
    cn = (cn + nr - 1) / nr * nr;
    if (cn < nr) cn = nr;
    c.chunk_n = cn;
    c.chunk_m = cm;
    c.n_chunks_m = (M + cm - 1) / cm;
    c.n_chunks = ((N + cn - 1) / cn) * c.n_chunks_m;
    qai_pool_run(pool, compute, &c);
}
