/*
 * Fusion of ranked hit lists (dense and BM25, or any others): reciprocal rank
 * fusion (Cormack, Clarke & Büttcher, SIGIR 2009) and weighted sums of
 * min-max normalized scores. Lists are merged by id through a small open-
 * addressing table; the output is best first with ties by ascending id.
 *
 * What it deliberately does not do: learn weights or look at text.
 */
#include <math.h>
#include <string.h>

#include "knowledge/index_internal.h"

typedef struct {
    uint64_t id;
    double score;
    bool used;
} slot;

static inline size_t mix(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return (size_t)x;
}

static slot *find(slot *t, size_t cap, uint64_t id) {
    for (size_t h = mix(id) & (cap - 1);; h = (h + 1) & (cap - 1))
        if (!t[h].used || t[h].id == id) return &t[h];
}

static qai_status check(const qai_hit *const *lists, const int *lens, int n_lists, int max_out, size_t *total) {
    if (n_lists < 0 || max_out < 0) return qai_error(QAI_ERR_ARG, "fusion: negative list count or output size");
    *total = 0;
    for (int i = 0; i < n_lists; i++) {
        if (lens[i] < 0 || (lens[i] && !lists[i])) return qai_error(QAI_ERR_ARG, "fusion: list %d is invalid", i);
        *total += (size_t)lens[i];
    }
    return QAI_OK;
}

/* Adds contrib(i, r) for each hit r of each list i, then keeps the best max_out. */
static qai_status fuse(const qai_hit *const *lists, const int *lens, int n_lists, double (*contrib)(const void *, int, int, float),
                       const void *ctx, qai_hit *out, int max_out, int *n_out) {
    *n_out = 0;
    size_t total = 0;
    qai_status st = check(lists, lens, n_lists, max_out, &total);
    if (st || !total || !max_out) return st;
    size_t cap = 16;
    while (cap < total * 2) cap *= 2;
    slot *t = qai_calloc(cap, sizeof *t);
    if (!t) return QAI_ERR_NOMEM;
    for (int i = 0; i < n_lists; i++)
        for (int r = 0; r < lens[i]; r++) {
            slot *s = find(t, cap, lists[i][r].id);
            if (!s->used) {
                s->used = true;
                s->id = lists[i][r].id;
            }
            s->score += contrib(ctx, i, r, lists[i][r].score);
        }
    int n = 0;
    for (size_t h = 0; h < cap; h++)
        if (t[h].used) qai_topk_push(out, max_out, &n, (qai_hit){t[h].id, (float)t[h].score});
    qai_topk_sort(out, n);
    *n_out = n;
    qai_free(t);
    return QAI_OK;
}

static double rrf_contrib(const void *ctx, int list, int rank, float score) {
    return 1.0 / (*(const int *)ctx + rank + 1);
}

qai_status qai_fuse_rrf(const qai_hit *const *lists, const int *lens, int n_lists, int k, qai_hit *out, int max_out,
                        int *n_out) {
    if (k <= 0) k = 60;
    return fuse(lists, lens, n_lists, rrf_contrib, &k, out, max_out, n_out);
}

typedef struct {
    const float *w;
    double *lo, *span;
} wctx;

static double w_contrib(const void *ctx, int list, int rank, float score) {
    const wctx *c = ctx;
    double w = c->w ? c->w[list] : 1.0;
    double norm = c->span[list] > 0 ? ((double)score - c->lo[list]) / c->span[list] : 1.0;
    return w * norm;
}

qai_status qai_fuse_weighted(const qai_hit *const *lists, const int *lens, const float *weights, int n_lists,
                             qai_hit *out, int max_out, int *n_out) {
    *n_out = 0;
    size_t total = 0;
    qai_status st = check(lists, lens, n_lists, max_out, &total);
    if (st) return st;
    for (int i = 0; weights && i < n_lists; i++)
        if (!isfinite(weights[i])) return qai_error(QAI_ERR_ARG, "fusion: weight %d is not finite", i);
    double *lo = qai_calloc((size_t)(n_lists ? n_lists : 1), sizeof *lo);
    double *span = qai_calloc((size_t)(n_lists ? n_lists : 1), sizeof *span);
    if (!lo || !span) {
        qai_free(lo);
        qai_free(span);
        return QAI_ERR_NOMEM;
    }
    for (int i = 0; i < n_lists; i++) {
        double mn = INFINITY, mx = -INFINITY;
        for (int r = 0; r < lens[i]; r++) {
            double s = lists[i][r].score;
            if (!isfinite(s)) {
                qai_free(lo);
                qai_free(span);
                return qai_error(QAI_ERR_ARG, "fusion: list %d has a non-finite score at rank %d", i, r + 1);
            }
            mn = s < mn ? s : mn;
            mx = s > mx ? s : mx;
        }
        lo[i] = mn;
        span[i] = lens[i] ? mx - mn : 0;
    }
    wctx c = {weights, lo, span};
    st = fuse(lists, lens, n_lists, w_contrib, &c, out, max_out, n_out);
    qai_free(lo);
    qai_free(span);
    return st;
}
