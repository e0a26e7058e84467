/*
 * qai_matmul / qai_matmul_multi: y = x · Wᵀ on the thread pool.
 *
 * Letters: M activation rows, N weight rows (outputs), K reduced dimension.
 *
 * Two phases:
 *   1. the M activation rows are converted to the weight type's activation
 *      format in the caller's work buffer — on the calling thread when M <= 8
 *      (token generation: a pool barrier costs more than the conversion),
 *      else split statically across the pool;
 *   2. the N×M outputs are cut into fixed tiles of gemm_nr weight rows ×
 *      gemm_mr activation rows, grouped into chunks (a block of weight rows ×
 *      a block of activation rows). The chunk sequence is cut into one
 *      contiguous range per thread, each with its own counter on its own
 *      cache line: a thread takes its range's chunks one by one without
 *      touching another core's cache line, then helps the others by taking
 *      from their counters (so a thread that lost its core on a busy machine
 *      does not hold up the run). A single shared counter cost ~8% of 110M
 *      decoding: with ~2,700 chunks per token of ~0.3 µs each, every claim
 *      moved the line between cores, and the line also held the fields every
 *      chunk reads. qai_matmul_multi numbers the chunks of several weights in
 *      one sequence, so one pool run covers them all.
 * Tile and chunk boundaries depend only on (M, N, K, type, ISA), never on the
 * thread count, and each output is computed by exactly one tile, so results
 * are identical for any number of threads.
 *
 * Repacked weights (QAI_TYPE_*_R16, quant.h) are tiled by whole 16-row groups
 * and 8-row activation groups; their activations have their own layout.
 *
 * What it deliberately does not do: allocate, repack weights, or split K.
 */
#include <stdalign.h>
#include <stdatomic.h>
#include <string.h>

#include "tensor/quant.h"

#define MM_MAX_OUT 8
#define MM_CALLER_CONVERT_M 8 /* convert up to this many rows on the calling thread */
#define MM_MAX_RANGES 16      /* chunk ranges: one per thread (threads beyond share them) */

/* How activations are converted for a weight type: -1 used in place (f32),
 * QAI_TYPE_Q8_0_R16 for the R16 layout, else the vec_dot_type. */
static int act_format(qai_type wtype) {
    if (qai_type_is_r16(wtype)) return QAI_TYPE_Q8_0_R16;
    const qai_type_traits *t = qai_type_info(wtype);
    if (!t) return -2;
    return t->vec_dot_type == QAI_TYPE_F32 ? -1 : (int)t->vec_dot_type;
}

size_t qai_matmul_work_size(qai_type wtype, int M, int K) {
    int f = act_format(wtype);
    if (f == -2 || M <= 0 || K <= 0) return 0;
    if (f == -1) return 64; /* activations are used in place */
    if (f == QAI_TYPE_Q8_0_R16) return qai_r16_act_size(M, K) + 64;
    return (size_t)M * qai_row_size((qai_type)f, K) + 64;
}

typedef struct {
    const qai_kernel *k;
    bool r16;
    float *y;
    int ldy;
    const uint8_t *w;
    size_t wrow;
    int N;
    int chunk_n, chunk_m, n_chunks_m, n_chunks, first;
} mm_out;

/* The next chunk of one thread's range, alone on its cache line. */
typedef struct {
    alignas(64) atomic_int next;
} mm_counter;

typedef struct {
    mm_out o[MM_MAX_OUT];
    int n_out, n_chunks;
    int fmt; /* act_format */
    const float *x;
    const uint8_t *xq;
    size_t xrow; /* bytes per converted row (not R16) */
    int M, K;
    int n_ranges; /* range r: chunks [r·n_chunks/n_ranges, (r+1)·n_chunks/n_ranges) */
    mm_counter next[MM_MAX_RANGES];
} mm_ctx;

static void convert_row(const mm_ctx *c, int m) {
    const float *x = c->x + (size_t)m * c->K;
    if (c->fmt == QAI_TYPE_Q8_0_R16) qai_r16_act_row(x, (void *)(uintptr_t)c->xq, m, c->M, c->K);
    else
        c->o[0].k->from_float(x, (uint8_t *)(uintptr_t)c->xq + (size_t)m * c->xrow, c->K);
}

static void convert_rows(void *arg, int ith, int nth) {
    mm_ctx *c = arg;
    for (int m = ith; m < c->M; m += nth) convert_row(c, m);
}

static void run_chunk(const mm_ctx *c, const mm_out *o, int id) {
    const qai_kernel *k = o->k;
    int n0 = (id / o->n_chunks_m) * o->chunk_n, m0 = (id % o->n_chunks_m) * o->chunk_m;
    int n1 = n0 + o->chunk_n < o->N ? n0 + o->chunk_n : o->N;
    int m1 = m0 + o->chunk_m < c->M ? m0 + o->chunk_m : c->M;
    int nr = k->gemm ? k->gemm_nr : 1, mr = k->gemm ? k->gemm_mr : 1;
    /* R16 activations: row m0 (a multiple of 8) starts its group */
    const size_t xr = o->r16 ? (size_t)QAI_R16_ACT_BLOCK * (size_t)(c->K / QAI_QK) : c->xrow;
    for (int n = n0; n < n1; n += nr) {
        int tn = n1 - n < nr ? n1 - n : nr;
        const uint8_t *w = o->w + (size_t)n * o->wrow;
        for (int m = m0; m < m1; m += mr) {
            int tm = m1 - m < mr ? m1 - m : mr;
            const uint8_t *x = c->xq + (size_t)m * xr;
            float *y = o->y + (size_t)m * o->ldy + n;
            if (k->gemm) k->gemm(c->K, tn, tm, w, o->wrow, x, c->xrow, y, o->ldy);
            else
                y[0] = k->vec_dot(c->K, w, x);
        }
    }
}

/* Thread ith: its own range first, then what is left of the others'. */
static void compute(void *arg, int ith, int nth) {
    (void)nth;
    mm_ctx *c = arg;
    const int nr = c->n_ranges, n = c->n_chunks;
    for (int k = 0; k < nr; k++) {
        int r = (ith + k) % nr, end = (int)((int64_t)(r + 1) * n / nr), i = 0;
        for (;;) {
            int id = atomic_fetch_add_explicit(&c->next[r].next, 1, memory_order_relaxed);
            if (id >= end) break;
            while (id >= c->o[i].first + c->o[i].n_chunks) i++; /* ids only grow within a range */
            run_chunk(c, &c->o[i], id - c->o[i].first);
        }
    }
}

/* Fills o for one weight; false if the type has no kernel. */
static bool plan_out(mm_out *o, const qai_matmul_out *d, int M, int K) {
    const qai_kernel *k = qai_kernel_for(d->wtype);
    if (!k || d->N <= 0) return false;
    *o = (mm_out){.k = k, .r16 = qai_type_is_r16(d->wtype), .y = d->y, .ldy = d->ldy, .w = d->w,
                  .wrow = qai_row_size(d->wtype, K), .N = d->N};
    /* Chunks: activation blocks of up to 64 rows (a multiple of mr) so they
     * stay in L2 while a block of weight rows streams past; weight blocks sized
     * for about 32 chunks per activation block, for load balance. */
    int nr = k->gemm ? k->gemm_nr : 1, mr = k->gemm ? k->gemm_mr : 1;
    int cm = M <= 64 ? M : (64 / mr) * mr;
    if (cm < mr) cm = mr;
    int cn = (d->N + 31) / 32;
    cn = (cn + nr - 1) / nr * nr;
    if (cn < nr) cn = nr;
    o->chunk_n = cn;
    o->chunk_m = cm;
    o->n_chunks_m = (M + cm - 1) / cm;
    o->n_chunks = ((d->N + cn - 1) / cn) * o->n_chunks_m;
    return true;
}

static void run(qai_pool *pool, const qai_matmul_out *outs, int n, const float *x, int M, int K, void *work) {
    mm_ctx c = {.x = x, .M = M, .K = K, .fmt = act_format(outs[0].wtype)};
    for (int i = 0; i < n; i++) {
        if (!plan_out(&c.o[c.n_out], &outs[i], M, K)) continue;
        c.o[c.n_out].first = c.n_chunks;
        c.n_chunks += c.o[c.n_out].n_chunks;
        c.n_out++;
    }
    if (!c.n_out) return;
    bool parallel = pool && c.n_chunks > 1;
    int nth = parallel ? qai_pool_size(pool) : 1;
    c.n_ranges = nth < MM_MAX_RANGES ? nth : MM_MAX_RANGES;
    if (c.n_ranges > c.n_chunks) c.n_ranges = c.n_chunks;
    for (int r = 0; r < c.n_ranges; r++) atomic_init(&c.next[r].next, (int)((int64_t)r * c.n_chunks / c.n_ranges));
    if (c.fmt == -1) {
        c.xq = (const uint8_t *)x;
        c.xrow = (size_t)K * sizeof(float);
    } else {
        c.xq = work;
        c.xrow = c.fmt == QAI_TYPE_Q8_0_R16 ? 0 : qai_row_size((qai_type)c.fmt, K);
        if (M <= MM_CALLER_CONVERT_M || !pool) convert_rows(&c, 0, 1);
        else
            qai_pool_run(pool, convert_rows, &c);
    }
    if (!parallel) compute(&c, 0, 1);
    else
        qai_pool_run(pool, compute, &c);
}

void qai_matmul(qai_pool *pool, float *y, int ldy, const void *w, qai_type wtype, const float *x, int M, int N, int K,
                void *work) {
    if (M <= 0 || N <= 0 || K <= 0) return;
    qai_matmul_out o = {y, ldy, w, wtype, N};
    run(pool, &o, 1, x, M, K, work);
}

void qai_matmul_multi(qai_pool *pool, const qai_matmul_out *outs, int n, const float *x, int M, int K, void *work) {
    if (n <= 0 || M <= 0 || K <= 0) return;
    bool same = n <= MM_MAX_OUT;
    for (int i = 1; i < n && same; i++) same = act_format(outs[i].wtype) == act_format(outs[0].wtype);
    if (same) {
        run(pool, outs, n, x, M, K, work);
        return;
    }
    for (int i = 0; i < n; i++)
        qai_matmul(pool, outs[i].y, outs[i].ldy, outs[i].w, outs[i].wtype, x, M, outs[i].N, K, work);
}
