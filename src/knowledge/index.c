/*
 * The dense index object: parameters, storage growth, the id map, add /
 * update / remove / compact, per-search scratch, the exact flat search and the
 * search entry point for both kinds. The HNSW graph itself is in hnsw.c, the
 * file format in index_file.c.
 *
 * What it deliberately does not do: locking between writers and readers (see
 * qai/index.h), or keep deleted vectors once compacted.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "knowledge/index_internal.h"

/* ---- heaps ------------------------------------------------------------------ */

/* ---- parameters and lifetime ----------------------------------------------------- */

void qai_index_params_default(qai_index_params *p, qai_index_kind kind, qai_metric metric, int dim) {
    memset(p, 0, sizeof *p);
    p->kind = kind;
    p->metric = metric;
    p->dim = dim;
    p->M = 16;
    p->ef_construction = 200;
    p->ef_search = 64;
    p->seed = 42;
}

static qai_status check_params(const qai_index_params *p) {
    if ((unsigned)p->kind > QAI_INDEX_HNSW) return qai_error(QAI_ERR_ARG, "index: unknown kind %d", (int)p->kind);
    if ((unsigned)p->metric > QAI_METRIC_COSINE) return qai_error(QAI_ERR_ARG, "index: unknown metric %d", (int)p->metric);
    if (p->dim < 1 || p->dim > QAI_MAX_DIM) return qai_error(QAI_ERR_ARG, "index: dimension %d is not in 1..%d", p->dim, QAI_MAX_DIM);
    if (p->kind == QAI_INDEX_HNSW) {
        if (p->M < 2 || p->M > QAI_MAX_M) return qai_error(QAI_ERR_ARG, "index: M = %d is not in 2..%d", p->M, QAI_MAX_M);
        if (p->ef_construction < 1 || p->ef_construction > 1 << 20)
            return qai_error(QAI_ERR_ARG, "index: ef_construction = %d is not in 1..%d", p->ef_construction, 1 << 20);
        if (p->ef_search < 1 || p->ef_search > 1 << 20)
            return qai_error(QAI_ERR_ARG, "index: ef_search = %d is not in 1..%d", p->ef_search, 1 << 20);
    }
    return QAI_OK;
}

void qai_index_setup(qai_index *ix) {
    ix->k = qai_dist_kernels_active();
    ix->qstride = (ix->p.dim + 63) / 64 * 64;
    ix->maxM = ix->p.M;
    ix->maxM0 = 2 * ix->p.M;
    ix->mult = ix->p.M > 1 ? 1.0 / log((double)ix->p.M) : 1.0;
    pthread_mutex_init(&ix->global, NULL);
    pthread_mutex_init(&ix->scratch_mu, NULL);
}

qai_index *qai_index_new(const qai_index_params *p) {
    if (!p) {
        qai_error(QAI_ERR_ARG, "index: no parameters");
        return NULL;
    }
    if (check_params(p) != QAI_OK) return NULL;
    qai_index *ix = qai_calloc(1, sizeof *ix);
    if (!ix) return NULL;
    ix->p = *p;
    if (p->kind == QAI_INDEX_FLAT) ix->p.M = ix->p.ef_construction = ix->p.ef_search = 0;
    qai_index_setup(ix);
    qai_rng_seed(&ix->rng, p->seed);
    ix->max_level = -1;
    return ix;
}

static void free_arrays(qai_index *ix) {
    if (ix->mapped) {
        qai_file_unmap(&ix->mf);
        ix->mapped = false;
    } else {
        qai_free(ix->ids);
        qai_free(ix->flags);
        qai_aligned_free(ix->vecs);
        qai_aligned_free(ix->qvecs);
        qai_free(ix->qmeta);
        qai_free(ix->levels);
        qai_aligned_free(ix->links0);
        qai_free(ix->upper_off);
        qai_free(ix->upper);
    }
    ix->ids = NULL;
    ix->flags = NULL;
    ix->vecs = NULL;
    ix->qvecs = NULL;
    ix->qmeta = NULL;
    ix->levels = NULL;
    ix->links0 = NULL;
    ix->upper_off = NULL;
    ix->upper = NULL;
}

void qai_index_free(qai_index *ix) {
    if (!ix) return;
    free_arrays(ix);
    qai_free(ix->map);
    qai_free(ix->locks);
    for (qai_scratch *s = ix->scratch_free, *nx; s; s = nx) {
        nx = s->next;
        qai_free(s->visited);
        qai_free(s->cand);
        qai_free(s->res);
        qai_free(s->tmp);
        qai_aligned_free(s->qq);
        qai_aligned_free(s->qnorm);
        qai_free(s->buf);
        qai_free(s);
    }
    pthread_mutex_destroy(&ix->global);
    pthread_mutex_destroy(&ix->scratch_mu);
    qai_free(ix);
}

size_t qai_index_size(const qai_index *ix) { return ix->n - ix->n_deleted; }
size_t qai_index_deleted(const qai_index *ix) { return ix->n_deleted; }
const qai_index_params *qai_index_get_params(const qai_index *ix) { return &ix->p; }

size_t qai_index_memory(const qai_index *ix) {
    size_t c = ix->mapped ? ix->n : ix->cap;
    size_t m = sizeof *ix + c * (sizeof(uint64_t) + 1 + (size_t)ix->p.dim * 4);
    if (ix->p.int8) m += c * ((size_t)ix->qstride + sizeof(qai_qmeta));
    if (ix->p.kind == QAI_INDEX_HNSW) {
        m += c * (1 + 4 + (size_t)(1 + ix->maxM0) * 4);
        m += (ix->mapped ? ix->n_upper : ix->cap_upper) * (size_t)(1 + ix->maxM) * 4;
    }
    m += ix->map_cap * 4;
    return m;
}

/* ---- id map ------------------------------------------------------------------- */

static inline size_t hash_id(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return (size_t)x;
}

static long map_find(const qai_index *ix, uint64_t id) {
    if (!ix->map_cap) return -1;
    size_t mask = ix->map_cap - 1;
    for (size_t h = hash_id(id) & mask;; h = (h + 1) & mask) {
        uint32_t v = ix->map[h];
        if (!v) return -1;
        if (ix->ids[v - 1] == id) return (long)h;
    }
}

static void map_put_nocheck(qai_index *ix, uint32_t slot) {
    size_t mask = ix->map_cap - 1;
    size_t h = hash_id(ix->ids[slot]) & mask;
    while (ix->map[h]) h = (h + 1) & mask;
    ix->map[h] = slot + 1;
    ix->map_used++;
}

static qai_status map_reserve(qai_index *ix, size_t live) {
    if (ix->map_cap && live * 2 <= ix->map_cap) return QAI_OK;
    size_t cap = 64;
    while (cap < live * 2 + 2) cap *= 2;
    uint32_t *old = ix->map;
    size_t old_cap = ix->map_cap;
    ix->map = qai_calloc(cap, sizeof(uint32_t));
    if (!ix->map) {
        ix->map = old;
        return QAI_ERR_NOMEM;
    }
    ix->map_cap = cap;
    ix->map_used = 0;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i]) map_put_nocheck(ix, old[i] - 1);
    qai_free(old);
    return QAI_OK;
}

/* Backward-shift deletion keeps probe chains intact without tombstones. */
static void map_erase(qai_index *ix, size_t h) {
    size_t mask = ix->map_cap - 1;
    size_t i = h;
    for (size_t j = (i + 1) & mask; ix->map[j]; j = (j + 1) & mask) {
        size_t home = hash_id(ix->ids[ix->map[j] - 1]) & mask;
        /* move j into the hole at i if its home is not in (i, j] cyclically */
        bool in_range = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!in_range) {
            ix->map[i] = ix->map[j];
            i = j;
        }
    }
    ix->map[i] = 0;
    ix->map_used--;
}

qai_status qai_index_build_map(qai_index *ix, const char *name, const size_t *id_offset) {
    qai_free(ix->map);
    ix->map = NULL;
    ix->map_cap = ix->map_used = 0;
    if (map_reserve(ix, ix->n - ix->n_deleted) != QAI_OK) return QAI_ERR_NOMEM;
    for (size_t s = 0; s < ix->n; s++) {
        if (ix->flags[s] & QAI_FLAG_DELETED) continue;
        if (map_find(ix, ix->ids[s]) >= 0) {
            if (id_offset)
                return qai_error(QAI_ERR_FORMAT, "%s: id %llu appears twice (offset %zu)", name,
                                 (unsigned long long)ix->ids[s], *id_offset + s * 8);
            return qai_error(QAI_ERR_ARG, "%s: id %llu appears twice", name, (unsigned long long)ix->ids[s]);
        }
        map_put_nocheck(ix, (uint32_t)s);
    }
    return QAI_OK;
}

bool qai_index_contains(const qai_index *ix, uint64_t id) { return map_find(ix, id) >= 0; }

qai_status qai_index_get_vector(const qai_index *ix, uint64_t id, float *out) {
    long h = map_find(ix, id);
    if (h < 0) return qai_error(QAI_ERR_NOT_FOUND, "index: no id %llu", (unsigned long long)id);
    memcpy(out, qai_vec(ix, ix->map[h] - 1), (size_t)ix->p.dim * sizeof(float));
    return QAI_OK;
}

/* ---- storage -------------------------------------------------------------------- */

static void *grow(void *p, size_t old_bytes, size_t new_bytes, bool aligned) {
    void *q = aligned ? qai_aligned_alloc(new_bytes) : qai_malloc(new_bytes);
    if (!q) return NULL;
    if (old_bytes) memcpy(q, p, old_bytes);
    memset((char *)q + old_bytes, 0, new_bytes - old_bytes);
    return q;
}

/* Grows every array to hold at least `slots` slots and `blocks` upper blocks.
 * A mapped index is copied to the heap first. On failure nothing changes. */
static qai_status reserve(qai_index *ix, size_t slots, size_t blocks) {
    if (slots > UINT32_MAX - 1) return qai_error(QAI_ERR_RANGE, "index: more than %u vectors", UINT32_MAX - 1);
    bool hnsw = ix->p.kind == QAI_INDEX_HNSW;
    size_t cap = ix->mapped ? ix->n : ix->cap;
    size_t cap_up = ix->mapped ? ix->n_upper : ix->cap_upper;
    if (!ix->mapped && slots <= cap && blocks <= cap_up) return QAI_OK;
    /* grow by half for one-by-one adds, exactly for a batch that needs more */
    size_t nc = cap, nu = cap_up;
    if (slots > nc) {
        nc = cap + cap / 2;
        nc = nc < 16 ? 16 : nc;
        nc = nc < slots ? slots : nc;
    }
    if (blocks > nu) {
        nu = cap_up + cap_up / 2;
        nu = nu < 16 ? 16 : nu;
        nu = nu < blocks ? blocks : nu;
    }
    size_t d = (size_t)ix->p.dim, L0 = (size_t)(1 + ix->maxM0), LU = (size_t)(1 + ix->maxM);
    size_t n = ix->n;
    uint64_t *ids = grow(ix->ids, n * 8, nc * 8, false);
    uint8_t *flags = grow(ix->flags, n, nc, false);
    float *vecs = grow(ix->vecs, n * d * 4, nc * d * 4, true);
    int8_t *qv = ix->p.int8 ? grow(ix->qvecs, n * ix->qstride, nc * ix->qstride, true) : NULL;
    qai_qmeta *qm = ix->p.int8 ? grow(ix->qmeta, n * 16, nc * 16, false) : NULL;
    uint8_t *lev = hnsw ? grow(ix->levels, n, nc, false) : NULL;
    uint32_t *l0 = hnsw ? grow(ix->links0, n * L0 * 4, nc * L0 * 4, true) : NULL;
    uint32_t *uo = hnsw ? grow(ix->upper_off, n * 4, nc * 4, false) : NULL;
    uint32_t *up = hnsw ? grow(ix->upper, ix->n_upper * LU * 4, (nu ? nu : 1) * LU * 4, false) : NULL;
    bool ok = ids && flags && vecs && (!ix->p.int8 || (qv && qm)) && (!hnsw || (lev && l0 && uo && up));
    if (!ok) {
        qai_free(ids);
        qai_free(flags);
        qai_aligned_free(vecs);
        qai_aligned_free(qv);
        qai_free(qm);
        qai_free(lev);
        qai_aligned_free(l0);
        qai_free(uo);
        qai_free(up);
        return qai_error(QAI_ERR_NOMEM, "index: out of memory growing to %zu vectors", nc);
    }
    free_arrays(ix);
    ix->ids = ids;
    ix->flags = flags;
    ix->vecs = vecs;
    ix->qvecs = qv;
    ix->qmeta = qm;
    ix->levels = lev;
    ix->links0 = l0;
    ix->upper_off = uo;
    ix->upper = up;
    ix->cap = nc;
    ix->cap_upper = nu ? nu : 1;
    return QAI_OK;
}

/* Quantizes row `slot` of the float vectors (see qai_qmeta). */
static void quantize_row(qai_index *ix, uint32_t slot) {
    const float *v = qai_vec(ix, slot);
    int8_t *q = ix->qvecs + (size_t)slot * ix->qstride;
    int d = ix->p.dim;
    float amax = 0;
    for (int i = 0; i < d; i++) amax = fmaxf(amax, fabsf(v[i]));
    /* a scale that underflows (denormal rows) quantizes to zeros; the stored
     * error is then the whole norm, so the flat bound stays rigorous */
    float scale = amax / 127.f;
    if (!(scale >= FLT_MIN)) scale = 1.f, amax = 0;
    double inv = amax > 0 ? 1.0 / scale : 0.0;
    int32_t sum = 0;
    double n2 = 0, e2 = 0;
    for (int i = 0; i < d; i++) {
        float r = (float)nearbyint(v[i] * inv);
        r = r > 127 ? 127 : r < -127 ? -127 : r;
        q[i] = (int8_t)r;
        sum += (int32_t)r;
        n2 += (double)v[i] * v[i];
        double e = (double)v[i] - (double)scale * r;
        e2 += e * e;
    }
    memset(q + d, 0, (size_t)(ix->qstride - d));
    ix->qmeta[slot] = (qai_qmeta){scale, sum, (float)n2, (float)sqrt(e2) * (1.f + 1e-6f)};
}

/* Validates one input vector and writes it (normalized for cosine) to dst. */
static qai_status put_vector(const qai_index *ix, const float *v, float *dst, uint64_t id) {
    int d = ix->p.dim;
    double n2 = 0;
    for (int i = 0; i < d; i++) {
        if (!isfinite(v[i]))
            return qai_error(QAI_ERR_ARG, "index: vector of id %llu has a non-finite component at %d",
                             (unsigned long long)id, i);
        n2 += (double)v[i] * v[i];
    }
    if (!(n2 <= 3.0e38)) return qai_error(QAI_ERR_ARG, "index: vector of id %llu is too large (squared norm overflows)", (unsigned long long)id);
    if (ix->p.metric == QAI_METRIC_COSINE) {
        if (n2 == 0) return qai_error(QAI_ERR_ARG, "index: vector of id %llu is zero (cosine needs a direction)", (unsigned long long)id);
        double inv = 1.0 / sqrt(n2); /* in double: 1/|v| overflows float for tiny vectors */
        if (dst)
            for (int i = 0; i < d; i++) dst[i] = (float)(v[i] * inv);
    } else if (dst) {
        memcpy(dst, v, (size_t)d * sizeof(float));
    }
    return QAI_OK;
}

static void mark_deleted(qai_index *ix, long h) {
    uint32_t slot = ix->map[h] - 1;
    map_erase(ix, (size_t)h);
    ix->flags[slot] |= QAI_FLAG_DELETED;
    ix->n_deleted++;
}

static qai_status materialize(qai_index *ix) { return ix->mapped ? reserve(ix, ix->n, ix->n_upper) : QAI_OK; }

qai_status qai_index_remove(qai_index *ix, uint64_t id) {
    long h = map_find(ix, id);
    if (h < 0) return qai_error(QAI_ERR_NOT_FOUND, "index: no id %llu", (unsigned long long)id);
    qai_status st = materialize(ix);
    if (st) return st;
    mark_deleted(ix, map_find(ix, id));
    return QAI_OK;
}

int qai_hnsw_draw_level(qai_index *ix) {
    double u = ((double)(qai_rng_u64(&ix->rng) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
    double l = floor(-log(u) * ix->mult);
    return l > QAI_HNSW_MAX_LEVEL ? QAI_HNSW_MAX_LEVEL : (int)l;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static qai_status add_many(qai_index *ix, const uint64_t *ids, const float *vecs, size_t n, qai_pool *pool) {
    if (!n) return QAI_OK;
    for (size_t i = 0; i < n; i++) {
        qai_status st = put_vector(ix, vecs + i * (size_t)ix->p.dim, NULL, ids[i]);
        if (st) return st;
    }
    if (n > 1) {
        uint64_t *sorted = qai_malloc(n * sizeof *sorted);
        if (!sorted) return QAI_ERR_NOMEM;
        memcpy(sorted, ids, n * sizeof *sorted);
        qsort(sorted, n, sizeof *sorted, cmp_u64);
        for (size_t i = 1; i < n; i++)
            if (sorted[i] == sorted[i - 1]) {
                uint64_t dup = sorted[i];
                qai_free(sorted);
                return qai_error(QAI_ERR_ARG, "index: id %llu appears twice in one batch", (unsigned long long)dup);
            }
        qai_free(sorted);
    }
    qai_status st = materialize(ix);
    if (st) return st;
    /* deleted nodes outnumber live ones: rebuild first (updates below then
     * delete their old nodes in the rebuilt index) */
    if (ix->n_deleted > 64 && ix->n_deleted > ix->n - ix->n_deleted) {
        st = qai_index_compact(ix, pool);
        if (st) return st;
    }
    bool hnsw = ix->p.kind == QAI_INDEX_HNSW;
    size_t first = ix->n;
    /* levels are drawn in input order before any thread starts: a
     * single-threaded build is then a pure function of the seed and input */
    uint8_t *lv = NULL;
    size_t blocks = ix->n_upper;
    if (hnsw) {
        lv = qai_malloc(n);
        if (!lv) return QAI_ERR_NOMEM;
        qai_rng saved = ix->rng;
        for (size_t i = 0; i < n; i++) {
            lv[i] = (uint8_t)qai_hnsw_draw_level(ix);
            blocks += lv[i];
        }
        if (blocks > UINT32_MAX - 1) {
            ix->rng = saved;
            qai_free(lv);
            return qai_error(QAI_ERR_RANGE, "index: too many upper-layer links");
        }
        st = reserve(ix, first + n, blocks);
        if (st) ix->rng = saved;
    } else {
        st = reserve(ix, first + n, 0);
    }
    if (!st) st = map_reserve(ix, ix->n - ix->n_deleted + n);
    if (st) {
        qai_free(lv);
        return st;
    }
    for (size_t i = 0; i < n; i++) {
        long h = map_find(ix, ids[i]);
        if (h >= 0) mark_deleted(ix, h);
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t slot = (uint32_t)(first + i);
        ix->ids[slot] = ids[i];
        ix->flags[slot] = 0;
        put_vector(ix, vecs + i * (size_t)ix->p.dim, ix->vecs + (size_t)slot * ix->p.dim, ids[i]);
        if (ix->p.int8) quantize_row(ix, slot);
        if (hnsw) {
            ix->levels[slot] = lv[i];
            ix->upper_off[slot] = lv[i] ? (uint32_t)ix->n_upper : QAI_NO_UPPER;
            if (lv[i]) memset(ix->upper + ix->n_upper * (size_t)(1 + ix->maxM), 0, (size_t)lv[i] * (1 + ix->maxM) * 4);
            ix->n_upper += lv[i];
            memset(ix->links0 + (size_t)slot * (1 + ix->maxM0), 0, (size_t)(1 + ix->maxM0) * 4);
        }
        map_put_nocheck(ix, slot);
    }
    qai_free(lv);
    ix->n = first + n;
    if (hnsw) return qai_hnsw_insert_range(ix, first, n, pool);
    return QAI_OK;
}

qai_status qai_index_add(qai_index *ix, uint64_t id, const float *vec) { return add_many(ix, &id, vec, 1, NULL); }

qai_status qai_index_add_batch(qai_index *ix, const uint64_t *ids, const float *vecs, size_t n, qai_pool *pool) {
    if (n && (!ids || !vecs)) return qai_error(QAI_ERR_ARG, "index: add_batch without ids or vectors");
    return add_many(ix, ids, vecs, n, pool);
}

qai_status qai_index_compact(qai_index *ix, qai_pool *pool) {
    size_t live = ix->n - ix->n_deleted, d = (size_t)ix->p.dim;
    uint64_t *ids = qai_malloc((live ? live : 1) * sizeof *ids);
    float *vecs = qai_aligned_alloc((live ? live : 1) * d * sizeof(float));
    qai_index *nx = qai_index_new(&ix->p);
    if (!ids || !vecs || !nx) {
        qai_free(ids);
        qai_aligned_free(vecs);
        qai_index_free(nx);
        return QAI_ERR_NOMEM;
    }
    size_t j = 0;
    for (size_t s = 0; s < ix->n; s++) {
        if (ix->flags[s] & QAI_FLAG_DELETED) continue;
        ids[j] = ix->ids[s];
        memcpy(vecs + j * d, qai_vec(ix, (uint32_t)s), d * sizeof(float));
        j++;
    }
    /* rebuild into a new index (the level stream continues), then take its
     * storage: on failure ix is untouched */
    nx->rng = ix->rng;
    qai_status st = add_many(nx, ids, vecs, live, pool);
    qai_free(ids);
    qai_aligned_free(vecs);
    if (st) {
        qai_index_free(nx);
        return st;
    }
    free_arrays(ix);
    qai_free(ix->map);
#define TAKE(f) ix->f = nx->f
    TAKE(n); TAKE(cap); TAKE(n_deleted); TAKE(ids); TAKE(flags); TAKE(vecs); TAKE(qvecs); TAKE(qmeta); TAKE(levels);
    TAKE(links0); TAKE(upper_off); TAKE(upper); TAKE(n_upper); TAKE(cap_upper); TAKE(entry); TAKE(max_level); TAKE(rng);
    TAKE(map); TAKE(map_cap); TAKE(map_used);
#undef TAKE
    ix->mapped = false;
    nx->ids = NULL;
    nx->flags = NULL;
    nx->vecs = NULL;
    nx->qvecs = NULL;
    nx->qmeta = NULL;
    nx->levels = NULL;
    nx->links0 = NULL;
    nx->upper_off = NULL;
    nx->upper = NULL;
    nx->map = NULL;
    qai_index_free(nx);
    return QAI_OK;
}

/* ---- scratch ---------------------------------------------------------------------- */

qai_scratch *qai_scratch_get(const qai_index *cix) {
    qai_index *ix = (qai_index *)cix; /* the scratch free list is internal mutable state */
    pthread_mutex_lock(&ix->scratch_mu);
    qai_scratch *s = ix->scratch_free;
    if (s) ix->scratch_free = s->next;
    pthread_mutex_unlock(&ix->scratch_mu);
    if (!s) s = qai_calloc(1, sizeof *s);
    if (s && s->qq_cap < (size_t)ix->qstride) {
        qai_aligned_free(s->qq);
        qai_aligned_free(s->qnorm);
        s->qq = qai_aligned_alloc((size_t)ix->qstride);
        s->qnorm = qai_aligned_alloc((size_t)ix->qstride * sizeof(float));
        if (!s->qq || !s->qnorm) {
            s->qq_cap = 0;
            qai_scratch_put(ix, s);
            return NULL;
        }
        s->qq_cap = (size_t)ix->qstride;
    }
    return s;
}

void qai_scratch_put(const qai_index *cix, qai_scratch *s) {
    qai_index *ix = (qai_index *)cix;
    pthread_mutex_lock(&ix->scratch_mu);
    s->next = ix->scratch_free;
    ix->scratch_free = s;
    pthread_mutex_unlock(&ix->scratch_mu);
}

static bool grow_dn(qai_dn **p, size_t *cap, size_t want) {
    if (*cap >= want) return true;
    size_t c = *cap ? *cap : 64;
    while (c < want) c *= 2;
    qai_dn *q = qai_realloc(*p, c * sizeof *q);
    if (!q) return false;
    *p = q;
    *cap = c;
    return true;
}

qai_status qai_scratch_reserve(qai_scratch *s, size_t n_visited, size_t n_heap) {
    if (s->visited_cap < n_visited) {
        size_t c = n_visited + n_visited / 4 + 16;
        uint16_t *v = qai_calloc(c, sizeof *v);
        if (!v) return QAI_ERR_NOMEM;
        qai_free(s->visited);
        s->visited = v;
        s->visited_cap = c;
        s->tag = 0;
    }
    if (!grow_dn(&s->cand, &s->cand_cap, n_heap) || !grow_dn(&s->res, &s->res_cap, n_heap + 1) ||
        !grow_dn(&s->tmp, &s->tmp_cap, n_heap + 1))
        return QAI_ERR_NOMEM;
    if (s->buf_cap < (size_t)QAI_MAX_M * 2 + 2) {
        qai_free(s->buf);
        s->buf = qai_malloc(((size_t)QAI_MAX_M * 2 + 2) * sizeof *s->buf);
        if (!s->buf) {
            s->buf_cap = 0;
            return QAI_ERR_NOMEM;
        }
        s->buf_cap = (size_t)QAI_MAX_M * 2 + 2;
    }
    return QAI_OK;
}

void qai_query_prepare(const qai_index *ix, qai_scratch *s, const float *q, bool use_q8, qai_query *out) {
    int d = ix->p.dim;
    const float *qq = q;
    if (ix->p.metric == QAI_METRIC_COSINE) {
        double n2 = 0;
        for (int i = 0; i < d; i++) n2 += (double)q[i] * q[i];
        double inv = n2 > 0 ? 1.0 / sqrt(n2) : 0.0;
        for (int i = 0; i < d; i++) s->qnorm[i] = (float)(q[i] * inv);
        qq = s->qnorm;
    }
    out->q = qq;
    out->use_q8 = use_q8;
    out->qu = NULL;
    out->qscale = 0;
    out->qnorm2 = 0;
    if (!use_q8) return;
    float amax = 0;
    double n2 = 0;
    for (int i = 0; i < d; i++) {
        amax = fmaxf(amax, fabsf(qq[i]));
        n2 += (double)qq[i] * qq[i];
    }
    float scale = amax / 127.f;
    if (!(scale >= FLT_MIN)) scale = 1.f, amax = 0;
    double inv = amax > 0 ? 1.0 / scale : 0.0;
    for (int i = 0; i < d; i++) {
        float r = (float)nearbyint(qq[i] * inv);
        r = r > 127 ? 127 : r < -127 ? -127 : r;
        s->qq[i] = (uint8_t)((int)r + 128);
    }
    memset(s->qq + d, 128, (size_t)(ix->qstride - d));
    out->qu = s->qq;
    out->qscale = scale;
    out->qnorm2 = (float)n2;
}

/* ---- search ------------------------------------------------------------------------ */

static int cmp_dn(const void *a, const void *b) {
    const qai_dn *x = a, *y = b;
    return worse(*x, *y) ? 1 : worse(*y, *x) ? -1 : 0;
}

typedef struct {
    const qai_index *ix;
    const qai_query *qy;
    int k;
    qai_filter_fn filter;
    void *fctx;
    qai_dn *heaps; /* nth x k */
    size_t *counts;
    float qn, qerr; /* int8: |q| and |q - dequantized q| */
    atomic_int failed;
} flat_job;

static inline void keep_k(qai_dn *h, size_t *cnt, size_t k, qai_dn x) {
    if (*cnt < k) {
        qai_heap_push_max(h, cnt, x);
    } else if (worse(h[0], x)) {
        qai_heap_pop_max(h, cnt);
        qai_heap_push_max(h, cnt, x);
    }
}

/* The exact scan with an int8 prefilter. For each vector the integer dot
 * product of the quantized query and row gives an approximate distance and a
 * rigorous error bound (|q.v - q'.v'| <= |q||v - v'| + |q - q'||v| +
 * |q - q'||v - v'|, plus slack for float rounding); a vector can only be in
 * the top k if its lower bound is at most the k-th smallest upper bound, and
 * only those few are rescored with the float kernel. The result is the float
 * scan's, bit for bit, at a quarter of the memory traffic. */
static void flat_worker_q8(flat_job *j, int ith, int nth) {
    const qai_index *ix = j->ix;
    const qai_query *qy = j->qy;
    size_t lo = ix->n * (size_t)ith / (size_t)nth, hi = ix->n * (size_t)(ith + 1) / (size_t)nth;
    size_t k = (size_t)j->k, nu = 0, nc = 0, cap = 256, cnt = 0;
    qai_dn *up = qai_malloc(k * sizeof *up);
    qai_dn *cand = qai_malloc(cap * sizeof *cand);
    if (!up || !cand) {
        qai_free(up);
        qai_free(cand);
        atomic_store(&j->failed, 1);
        j->counts[ith] = 0;
        return;
    }
    bool l2 = ix->p.metric == QAI_METRIC_L2;
    float U = INFINITY, qn = j->qn, qe = j->qerr, qn2 = qy->qnorm2;
    for (size_t s = lo; s < hi; s++) {
        if (ix->flags[s] & QAI_FLAG_DELETED) continue;
        const qai_qmeta *m = &ix->qmeta[s];
        int32_t D = ix->k->dot_u8s8(qy->qu, ix->qvecs + s * (size_t)ix->qstride, ix->qstride) - 128 * m->sum;
        float dot = qy->qscale * m->scale * (float)D;
        float vn = sqrtf(m->norm2);
        float err = qn * m->err + qe * vn + qe * m->err;
        float approx, slack;
        if (l2) {
            approx = qn2 + m->norm2 - 2.f * dot;
            err *= 2.f;
            slack = 1e-5f * (qn2 + m->norm2) + 1e-30f;
        } else {
            approx = -dot;
            slack = 1e-5f * qn * vn + 1e-30f;
        }
        float lower = approx - err - slack, upper = approx + err + slack;
        if (nu == k && lower > U) continue;
        if (j->filter && !j->filter(j->fctx, ix->ids[s])) continue;
        keep_k(up, &nu, k, (qai_dn){upper, (uint32_t)s});
        if (nu == k) U = up[0].d;
        if (nc == cap) {
            qai_dn *c2 = qai_realloc(cand, 2 * cap * sizeof *c2);
            if (!c2) { /* shrink the list to what still qualifies, or give up */
                size_t w = 0;
                for (size_t i = 0; i < nc; i++)
                    if (cand[i].d <= U) cand[w++] = cand[i];
                nc = w;
                if (nc == cap) {
                    atomic_store(&j->failed, 1);
                    break;
                }
            } else {
                cand = c2;
                cap *= 2;
            }
        }
        cand[nc++] = (qai_dn){lower, (uint32_t)s};
    }
    qai_dn *h = j->heaps + (size_t)ith * k;
    for (size_t i = 0; i < nc; i++) {
        if (cand[i].d > U) continue;
        keep_k(h, &cnt, k, (qai_dn){qai_dist_f(ix, qy->q, cand[i].i), cand[i].i});
    }
    j->counts[ith] = cnt;
    qai_free(up);
    qai_free(cand);
}

static void flat_worker(void *arg, int ith, int nth) {
    flat_job *j = arg;
    const qai_index *ix = j->ix;
    if (j->qy->use_q8) {
        flat_worker_q8(j, ith, nth);
        return;
    }
    size_t lo = ix->n * (size_t)ith / (size_t)nth, hi = ix->n * (size_t)(ith + 1) / (size_t)nth;
    qai_dn *h = j->heaps + (size_t)ith * (size_t)j->k;
    size_t cnt = 0, k = (size_t)j->k;
    float worst = INFINITY;
    int d = ix->p.dim;
    bool l2 = ix->p.metric == QAI_METRIC_L2;
    for (size_t s = lo; s < hi; s++) {
        if (s + 4 < hi) __builtin_prefetch(ix->vecs + (s + 4) * (size_t)d);
        if (ix->flags[s] & QAI_FLAG_DELETED) continue;
        const float *v = ix->vecs + s * (size_t)d;
        float dist = l2 ? ix->k->l2sq(j->qy->q, v, d) : -ix->k->dot(j->qy->q, v, d);
        if (cnt == k && dist > worst) continue;
        if (j->filter && !j->filter(j->fctx, ix->ids[s])) continue;
        qai_dn x = {dist, (uint32_t)s};
        if (cnt < k) {
            qai_heap_push_max(h, &cnt, x);
        } else if (worse(h[0], x)) {
            qai_heap_pop_max(h, &cnt);
            qai_heap_push_max(h, &cnt, x);
        }
        if (cnt == k) worst = h[0].d;
    }
    j->counts[ith] = cnt;
}

static qai_status emit(const qai_index *ix, qai_dn *r, size_t nr, int k, qai_hit *out, int *n_out) {
    /* ties are ordered by id, not slot, so saved and rebuilt indexes agree */
    qsort(r, nr, sizeof *r, cmp_dn);
    size_t m = nr < (size_t)k ? nr : (size_t)k;
    for (size_t i = 0; i < m; i++) out[i] = (qai_hit){ix->ids[r[i].i], qai_score_of(ix, r[i].d)};
    /* equal scores: ascending id */
    for (size_t i = 1; i < m; i++) {
        qai_hit x = out[i];
        size_t j = i;
        while (j > 0 && out[j - 1].score == x.score && out[j - 1].id > x.id) {
            out[j] = out[j - 1];
            j--;
        }
        out[j] = x;
    }
    *n_out = (int)m;
    return QAI_OK;
}

qai_status qai_index_search(const qai_index *ix, const float *query, int k, const qai_search_opts *opts, qai_hit *out,
                            int *n_out) {
    *n_out = 0;
    if (k <= 0) return k == 0 ? QAI_OK : qai_error(QAI_ERR_ARG, "index: k = %d", k);
    if (!query) return qai_error(QAI_ERR_ARG, "index: no query vector");
    for (int i = 0; i < ix->p.dim; i++)
        if (!isfinite(query[i])) return qai_error(QAI_ERR_ARG, "index: query has a non-finite component at %d", i);
    qai_search_opts none = {0};
    if (!opts) opts = &none;
    if (ix->n == ix->n_deleted) return QAI_OK;
    qai_scratch *s = qai_scratch_get(ix);
    if (!s) return QAI_ERR_NOMEM;
    qai_status st = QAI_OK;
    if (ix->p.kind == QAI_INDEX_FLAT) {
        int nth = qai_pool_size(opts->pool);
        /* waking the pool costs microseconds (much more on a loaded box):
         * only scans of half a megabyte or more are split */
        if (ix->n * (size_t)ix->p.dim < (1u << 17)) nth = 1;
        qai_query qy;
        qai_query_prepare(ix, s, query, ix->p.int8, &qy);
        qai_dn *heaps = qai_malloc((size_t)nth * (size_t)k * sizeof *heaps);
        size_t *counts = qai_calloc((size_t)nth, sizeof *counts);
        if (!heaps || !counts || qai_scratch_reserve(s, 0, (size_t)nth * (size_t)k) != QAI_OK) {
            st = QAI_ERR_NOMEM;
        } else {
            flat_job j = {ix, &qy, k, opts->filter, opts->filter_ctx, heaps, counts, 0, 0, 0};
            if (qy.use_q8) {
                double e2 = 0;
                for (int i = 0; i < ix->p.dim; i++) {
                    double e = (double)qy.q[i] - (double)qy.qscale * ((int)qy.qu[i] - 128);
                    e2 += e * e;
                }
                j.qn = sqrtf(qy.qnorm2);
                j.qerr = (float)sqrt(e2) * (1.f + 1e-6f);
            }
            if (nth == 1) flat_worker(&j, 0, 1);
            else qai_pool_run(opts->pool, flat_worker, &j);
            if (atomic_load(&j.failed)) st = qai_error(QAI_ERR_NOMEM, "index: out of memory during a flat search");
            size_t nr = 0;
            for (int t = 0; t < nth; t++)
                for (size_t i = 0; i < counts[t]; i++) s->res[nr++] = heaps[(size_t)t * (size_t)k + i];
            if (!st) st = emit(ix, s->res, nr, k, out, n_out);
        }
        qai_free(heaps);
        qai_free(counts);
    } else {
        int ef = opts->ef > 0 ? opts->ef : ix->p.ef_search;
        if (ef < k) ef = k;
        if (qai_scratch_reserve(s, ix->n, (size_t)ef + 2 * (size_t)ix->maxM0 + 16) != QAI_OK) {
            st = QAI_ERR_NOMEM;
        } else {
            qai_query qy;
            qai_query_prepare(ix, s, query, ix->p.int8, &qy);
            size_t nr = 0;
            qai_hnsw_search(ix, s, &qy, ef, opts->filter, opts->filter_ctx, &nr);
            if (qy.use_q8) /* rescore the candidates with the float vectors */
                for (size_t i = 0; i < nr; i++) s->res[i].d = qai_dist_f(ix, qy.q, s->res[i].i);
            st = emit(ix, s->res, nr, k, out, n_out);
        }
    }
    qai_scratch_put(ix, s);
    return st;
}
