/*
 * Internal: the dense index object shared by the flat index, the HNSW graph
 * (hnsw.c) and the file reader/writer (index_file.c).
 *
 * Storage is a set of parallel arrays indexed by slot (the order of
 * insertion): ids, flags (deleted bit), vectors (n x dim float32), and for
 * int8 mode the quantized rows (n x qstride int8, zero padded) and their
 * per-row metadata; HNSW adds levels, layer-0 link lists (n x (1 + 2M) u32:
 * count then links) and upper-layer link blocks ((1 + M) u32 each, a node of
 * level L owning L consecutive blocks from upper_off[slot]). Every array is
 * either on the heap (cap slots) or points into a mapped file; the first
 * modification of a mapped index copies them to the heap ("materialize").
 *
 * Distances inside are "smaller is better": squared L2, or the negated dot
 * product for IP and cosine (cosine vectors are stored normalized).
 */
#ifndef QAI_KNOWLEDGE_INDEX_INTERNAL_H
#define QAI_KNOWLEDGE_INDEX_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "knowledge/distance.h"
#include "qai/index.h"

#define QAI_FLAG_DELETED 1u
#define QAI_HNSW_MAX_LEVEL 31
#define QAI_NO_UPPER UINT32_MAX
#define QAI_MAX_DIM 65536
#define QAI_MAX_M 128

/* int8 row metadata: v ~= scale * q, sum = sum of q (for the u8 offset trick),
 * norm2 = |v|^2, err = |v - scale * q| (bounds the quantization error). */
typedef struct {
    float scale;
    int32_t sum;
    float norm2;
    float err;
} qai_qmeta;
_Static_assert(sizeof(qai_qmeta) == 16, "qai_qmeta is 16 bytes on disk");

typedef struct {
    float d;
    uint32_t i;
} qai_dn;

/* Per-search scratch: visited tags, the two heaps, the quantized query. */
typedef struct qai_scratch {
    struct qai_scratch *next;
    uint16_t *visited;
    size_t visited_cap;
    uint16_t tag;
    qai_dn *cand, *res, *tmp;
    size_t cand_cap, res_cap, tmp_cap;
    uint8_t *qq;
    float *qnorm;
    size_t qq_cap;
    uint32_t *buf;
    size_t buf_cap;
} qai_scratch;

/* A query prepared for distance evaluation. */
typedef struct {
    const float *q; /* dim floats (normalized under cosine) */
    const uint8_t *qu; /* int8 mode: qstride bytes, q ~= qscale * (qu - 128) */
    float qscale, qnorm2;
    bool use_q8;
} qai_query;

struct qai_index {
    qai_index_params p;
    const qai_dist_kernels *k;
    int qstride;       /* int8 row bytes: dim rounded up to 64 */
    int maxM0, maxM;   /* 2M, M */
    double mult;       /* level draw: floor(-ln(u) * mult), mult = 1 / ln(M) */

    size_t n, cap, n_deleted;
    uint64_t *ids;
    uint8_t *flags;
    float *vecs;
    int8_t *qvecs;
    qai_qmeta *qmeta;
    uint8_t *levels;
    uint32_t *links0;
    uint32_t *upper_off;
    uint32_t *upper;
    size_t n_upper, cap_upper; /* blocks */
    uint32_t entry;
    int max_level;
    qai_rng rng;

    /* id -> slot: open addressing (linear probing) over slot+1 (0 = empty). */
    uint32_t *map;
    size_t map_cap, map_used;

    /* a mapped file the arrays point into (heap arrays when !mapped) */
    bool mapped;
    qai_mapped_file mf;

    /* build-time synchronization (multi-threaded add_batch) */
    atomic_uchar *locks;
    pthread_mutex_t global;

    pthread_mutex_t scratch_mu;
    qai_scratch *scratch_free;
};

/* ---- index.c ---- */
qai_scratch *qai_scratch_get(const qai_index *ix);
void qai_scratch_put(const qai_index *ix, qai_scratch *s);
qai_status qai_scratch_reserve(qai_scratch *s, size_t n_visited, size_t n_heap);
void qai_query_prepare(const qai_index *ix, qai_scratch *s, const float *q, bool use_q8, qai_query *out);
/* Builds the id map from ids/flags; fails on a duplicate live id (name for messages). */
qai_status qai_index_build_map(qai_index *ix, const char *name, const size_t *id_offset);
/* Finishes an index whose params are set: kernels, qstride, level multiplier. */
void qai_index_setup(qai_index *ix);

static inline const float *qai_vec(const qai_index *ix, uint32_t slot) { return ix->vecs + (size_t)slot * ix->p.dim; }

/* Float distance between a prepared query and a stored vector. */
static inline float qai_dist_f(const qai_index *ix, const float *q, uint32_t slot) {
    const float *v = qai_vec(ix, slot);
    return ix->p.metric == QAI_METRIC_L2 ? ix->k->l2sq(q, v, ix->p.dim) : -ix->k->dot(q, v, ix->p.dim);
}

/* Distance used for navigation: int8 approximation when the query asks for it. */
static inline float qai_dist(const qai_index *ix, const qai_query *qy, uint32_t slot) {
    if (!qy->use_q8) return qai_dist_f(ix, qy->q, slot);
    const qai_qmeta *m = &ix->qmeta[slot];
    /* |dot_u8s8| <= 255 * 127 * 65536 < 2^31 and |sum| <= 127 * 65536 (checked on load) */
    int32_t d = ix->k->dot_u8s8(qy->qu, ix->qvecs + (size_t)slot * ix->qstride, ix->qstride) - 128 * m->sum;
    float dot = qy->qscale * m->scale * (float)d;
    return ix->p.metric == QAI_METRIC_L2 ? qy->qnorm2 + m->norm2 - 2.f * dot : -dot;
}

static inline float qai_score_of(const qai_index *ix, float d) { return -d; }

/* Binary heaps of (d, i): a max-heap (the worst on top) and a min-heap.
 * Ties are broken by slot so results never depend on heap history. Inline:
 * they are the inner loop of the graph search. */
static inline bool worse(qai_dn a, qai_dn b) { return a.d > b.d || (a.d == b.d && a.i > b.i); }

static inline void qai_heap_push_max(qai_dn *h, size_t *n, qai_dn x) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!worse(x, h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
}

static inline void qai_heap_pop_max(qai_dn *h, size_t *n) {
    size_t m = --(*n);
    if (m == 0) return;
    qai_dn x = h[m];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m) break;
        if (c + 1 < m && worse(h[c + 1], h[c])) c++;
        if (!worse(h[c], x)) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
}

static inline void qai_heap_push_min(qai_dn *h, size_t *n, qai_dn x) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!worse(h[p], x)) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
}

static inline void qai_heap_pop_min(qai_dn *h, size_t *n) {
    size_t m = --(*n);
    if (m == 0) return;
    qai_dn x = h[m];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m) break;
        if (c + 1 < m && worse(h[c], h[c + 1])) c++;
        if (!worse(x, h[c])) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
}

/* ---- bm25.c: top-k of hits (best = higher score, then lower id) ---- */
/* Offers x to a heap of at most k hits in h (*n in use). */
void qai_topk_push(qai_hit *h, int k, int *n, qai_hit x);
/* Sorts n hits best first. */
void qai_topk_sort(qai_hit *h, int n);

/* ---- hnsw.c ---- */
/* Inserts slots [first, first + count) whose vectors, ids and levels are set,
 * on pool's threads. */
qai_status qai_hnsw_insert_range(qai_index *ix, size_t first, size_t count, qai_pool *pool);
/* Layer-0 search: results (passing the filter and not deleted) in s->res as a
 * max-heap of *n_res entries. */
void qai_hnsw_search(const qai_index *ix, qai_scratch *s, const qai_query *qy, int ef, qai_filter_fn filter,
                     void *fctx, size_t *n_res);
int qai_hnsw_draw_level(qai_index *ix);
static inline uint32_t *qai_links(const qai_index *ix, uint32_t slot, int lev) {
    if (lev == 0) return ix->links0 + (size_t)slot * (1 + ix->maxM0);
    return ix->upper + ((size_t)ix->upper_off[slot] + (size_t)(lev - 1)) * (1 + ix->maxM);
}

#endif
