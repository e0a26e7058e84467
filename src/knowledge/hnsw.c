/*
 * The HNSW graph (Malkov & Yashunin, "Efficient and robust approximate nearest
 * neighbor search using Hierarchical Navigable Small World graphs", 2016/2018):
 * insertion with the neighbor-selection heuristic (algorithm 4, without
 * extending or keeping pruned candidates), greedy descent through the upper
 * layers, and the best-first layer search used both to build and to query.
 *
 * Concurrency during a multi-threaded build: each node has a one-byte
 * spinlock taken while its link lists are written; readers do not lock but
 * load counts with acquire and links with relaxed atomics, so a reader may see
 * a list half rewritten — every entry it can see is a valid, fully written
 * node, which only makes that one traversal slightly less informed (the same
 * trade-off hnswlib makes, minus the read locks). The entry point and top
 * level change under a global mutex held by the insertion that raises them.
 *
 * Deleted nodes and nodes rejected by a filter stay in the candidate queue, so
 * search still walks through them; they are only kept out of the results.
 *
 * What it deliberately does not do: repair links to deleted nodes in place
 * (qai_index_compact rebuilds instead), or keep pruned links.
 */
#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "knowledge/index_internal.h"

static inline uint32_t ld(const uint32_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
static inline uint32_t ld_count(const uint32_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void st(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
static inline void st_count(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }

static inline void node_lock(qai_index *ix, uint32_t s) {
    if (!ix->locks) return;
    while (atomic_exchange_explicit(&ix->locks[s], 1, memory_order_acquire))
        while (atomic_load_explicit(&ix->locks[s], memory_order_relaxed)) _mm_pause();
}
static inline void node_unlock(qai_index *ix, uint32_t s) {
    if (ix->locks) atomic_store_explicit(&ix->locks[s], 0, memory_order_release);
}

static inline bool passes(const qai_index *ix, uint32_t s, qai_filter_fn filter, void *fctx) {
    if (ix->flags[s] & QAI_FLAG_DELETED) return false;
    return !filter || filter(fctx, ix->ids[s]);
}

/* Prefetching, measured on 200k x 128 (bench_hnsw): rows of the next
 * PF_AHEAD unvisited neighbours in flight (up to PF_BYTES of each), and the
 * link list of the next candidate requested before the current one's
 * distances are computed, so its miss overlaps them. */
#define PF_AHEAD 8
#define PF_BYTES 1024
static inline void prefetch_row(const qai_index *ix, const qai_query *qy, uint32_t s) {
    const char *p;
    size_t bytes;
    if (qy->use_q8) {
        p = (const char *)(ix->qvecs + (size_t)s * ix->qstride);
        bytes = (size_t)ix->qstride;
    } else {
        p = (const char *)qai_vec(ix, s);
        bytes = (size_t)ix->p.dim * 4;
    }
    if (bytes > PF_BYTES) bytes = PF_BYTES; /* the hardware prefetcher follows the rest */
    for (size_t o = 0; o < bytes; o += 64) _mm_prefetch(p + o, _MM_HINT_T0);
}

static inline uint16_t next_tag(qai_scratch *s) {
    if (++s->tag == 0) {
        memset(s->visited, 0, s->visited_cap * sizeof *s->visited);
        s->tag = 1;
    }
    return s->tag;
}

static bool grow_cand(qai_scratch *s) {
    size_t c = s->cand_cap * 2;
    qai_dn *p = qai_realloc(s->cand, c * sizeof *p);
    if (!p) return false;
    s->cand = p;
    s->cand_cap = c;
    return true;
}

/* Best-first search of layer lev from ep (distance dep) with a result list of
 * ef. check = whether deleted/filtered nodes must be kept out of the results
 * (build searches pass false: deleted nodes are fine neighbors to navigate).
 * Results: s->res, a max-heap of the returned count. */
static size_t search_layer(const qai_index *ix, qai_scratch *s, const qai_query *qy, uint32_t ep, float dep, int lev,
                           size_t ef, bool check, qai_filter_fn filter, void *fctx) {
    uint16_t tag = next_tag(s);
    uint16_t *vis = s->visited;
    uint32_t *buf = s->buf;
    size_t nc = 0, nr = 0;
    float lower = INFINITY;
    vis[ep] = tag;
    if (!check || passes(ix, ep, filter, fctx)) {
        qai_heap_push_max(s->res, &nr, (qai_dn){dep, ep});
        lower = dep;
    }
    qai_heap_push_min(s->cand, &nc, (qai_dn){dep, ep});
    while (nc) {
        qai_dn c = s->cand[0];
        if (c.d > lower && (nr == ef || !check)) break;
        qai_heap_pop_min(s->cand, &nc);
        if (nc) _mm_prefetch((const char *)qai_links(ix, s->cand[0].i, lev), _MM_HINT_T0);
        const uint32_t *ll = qai_links(ix, c.i, lev);
        uint32_t cnt = ld_count(ll);
        uint32_t m = 0;
        for (uint32_t j = 1; j <= cnt; j++) {
            uint32_t nb = ld(ll + j);
            if (vis[nb] == tag) continue;
            vis[nb] = tag;
            buf[m++] = nb;
        }
        const uint32_t ahead = PF_AHEAD;
        for (uint32_t t = 0; t < m && t < ahead; t++) prefetch_row(ix, qy, buf[t]);
        for (uint32_t t = 0; t < m; t++) {
            if (t + ahead < m) prefetch_row(ix, qy, buf[t + ahead]);
            uint32_t nb = buf[t];
            float d = qai_dist(ix, qy, nb);
            if (nr < ef || d < lower) {
                if (nc == s->cand_cap && !grow_cand(s)) continue;
                qai_heap_push_min(s->cand, &nc, (qai_dn){d, nb});
                if (!check || passes(ix, nb, filter, fctx)) {
                    qai_heap_push_max(s->res, &nr, (qai_dn){d, nb});
                    if (nr > ef) qai_heap_pop_max(s->res, &nr);
                    lower = s->res[0].d;
                }
            }
        }
    }
    return nr;
}

/* Greedy descent from *cur through layers top .. bottom+1 (ef = 1). */
static void greedy(const qai_index *ix, const qai_query *qy, uint32_t *cur, float *dcur, int top, int bottom) {
    for (int lev = top; lev > bottom; lev--) {
        bool changed = true;
        while (changed) {
            changed = false;
            const uint32_t *ll = qai_links(ix, *cur, lev);
            uint32_t cnt = ld_count(ll);
            for (uint32_t j = 1; j <= cnt; j++) {
                uint32_t nb = ld(ll + j);
                float d = qai_dist(ix, qy, nb);
                if (d < *dcur) {
                    *dcur = d;
                    *cur = nb;
                    changed = true;
                }
            }
        }
    }
}

void qai_hnsw_search(const qai_index *ix, qai_scratch *s, const qai_query *qy, int ef, qai_filter_fn filter,
                     void *fctx, size_t *n_res) {
    *n_res = 0;
    if (ix->max_level < 0) return;
    uint32_t ep = ix->entry;
    float dep = qai_dist(ix, qy, ep);
    greedy(ix, qy, &ep, &dep, ix->max_level, 0);
    bool check = filter || ix->n_deleted;
    *n_res = search_layer(ix, s, qy, ep, dep, 0, (size_t)ef, check, filter, fctx);
}

static int cmp_dn_asc(const void *a, const void *b) {
    const qai_dn *x = a, *y = b;
    if (x->d != y->d) return x->d < y->d ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

/* The heuristic: walk candidates (sorted nearest first) and keep one only if
 * it is closer to the base than to every one kept so far. In place; returns
 * how many were kept (<= max). */
static size_t select_neighbors(const qai_index *ix, qai_dn *c, size_t n, size_t max) {
    /* prune even when n <= max: the heuristic is what keeps links spread
     * across clusters, and so the graph navigable */
    size_t kept = 0;
    for (size_t i = 0; i < n && kept < max; i++) {
        bool good = true;
        const float *v = qai_vec(ix, c[i].i);
        for (size_t j = 0; j < kept; j++) {
            if (qai_dist_f(ix, v, c[j].i) < c[i].d) {
                good = false;
                break;
            }
        }
        if (good) c[kept++] = c[i];
    }
    return kept;
}

/* Adds a link nb -> slot at lev, shrinking nb's list with the heuristic when full. */
static void connect_back(qai_index *ix, qai_dn *tmp, uint32_t nb, uint32_t slot, float d, int lev) {
    size_t maxc = (size_t)(lev ? ix->maxM : ix->maxM0);
    node_lock(ix, nb);
    uint32_t *ll = qai_links(ix, nb, lev);
    uint32_t cnt = ll[0];
    for (uint32_t j = 1; j <= cnt; j++)
        if (ll[j] == slot) {
            node_unlock(ix, nb);
            return;
        }
    if (cnt < maxc) {
        st(ll + 1 + cnt, slot);
        st_count(ll, cnt + 1);
    } else {
        const float *v = qai_vec(ix, nb);
        size_t m = 0;
        tmp[m++] = (qai_dn){d, slot};
        for (uint32_t j = 1; j <= cnt; j++) tmp[m++] = (qai_dn){qai_dist_f(ix, v, ll[j]), ll[j]};
        qsort(tmp, m, sizeof *tmp, cmp_dn_asc);
        size_t kept = select_neighbors(ix, tmp, m, maxc);
        for (size_t j = 0; j < kept; j++) st(ll + 1 + j, tmp[j].i);
        st_count(ll, (uint32_t)kept);
    }
    node_unlock(ix, nb);
}

static void insert_one(qai_index *ix, qai_scratch *s, uint32_t slot) {
    int level = ix->levels[slot];
    pthread_mutex_lock(&ix->global);
    int maxl = ix->max_level;
    uint32_t ep = ix->entry;
    bool hold = level > maxl;
    if (maxl < 0) {
        ix->entry = slot;
        ix->max_level = level;
        pthread_mutex_unlock(&ix->global);
        return;
    }
    if (!hold) pthread_mutex_unlock(&ix->global);
    qai_query qy = {.q = qai_vec(ix, slot)};
    float dep = qai_dist_f(ix, qy.q, ep);
    greedy(ix, &qy, &ep, &dep, maxl, level);
    qai_dn *tmp = s->tmp;
    for (int lev = level < maxl ? level : maxl; lev >= 0; lev--) {
        size_t nr = search_layer(ix, s, &qy, ep, dep, lev, (size_t)ix->p.ef_construction, false, NULL, NULL);
        size_t m = 0;
        for (size_t i = 0; i < nr; i++)
            if (s->res[i].i != slot) tmp[m++] = s->res[i];
        if (!m) continue;
        qsort(tmp, m, sizeof *tmp, cmp_dn_asc);
        ep = tmp[0].i;
        dep = tmp[0].d;
        size_t kept = select_neighbors(ix, tmp, m, (size_t)ix->maxM);
        node_lock(ix, slot);
        uint32_t *ll = qai_links(ix, slot, lev);
        for (size_t j = 0; j < kept; j++) st(ll + 1 + j, tmp[j].i);
        st_count(ll, (uint32_t)kept);
        node_unlock(ix, slot);
        /* tmp is reused by connect_back: keep the selection aside */
        uint32_t sel[2 * QAI_MAX_M];
        float seld[2 * QAI_MAX_M];
        for (size_t j = 0; j < kept; j++) {
            sel[j] = tmp[j].i;
            seld[j] = tmp[j].d;
        }
        for (size_t j = 0; j < kept; j++) connect_back(ix, tmp, sel[j], slot, seld[j], lev);
    }
    if (hold) {
        ix->entry = slot;
        ix->max_level = level;
        pthread_mutex_unlock(&ix->global);
    }
}

typedef struct {
    qai_index *ix;
    size_t first, count;
    atomic_size_t next;
    atomic_int failed;
} insert_job;

static void insert_worker(void *arg, int ith, int nth) {
    insert_job *j = arg;
    qai_index *ix = j->ix;
    qai_scratch *s = qai_scratch_get(ix);
    size_t heap = (size_t)ix->p.ef_construction + 2 * (size_t)ix->maxM0 + 16;
    if (!s || qai_scratch_reserve(s, ix->n, heap) != QAI_OK) {
        if (s) qai_scratch_put(ix, s);
        atomic_store(&j->failed, 1);
        return;
    }
    for (;;) {
        size_t i = atomic_fetch_add(&j->next, 1);
        if (i >= j->count) break;
        insert_one(ix, s, (uint32_t)(j->first + i));
    }
    qai_scratch_put(ix, s);
}

qai_status qai_hnsw_insert_range(qai_index *ix, size_t first, size_t count, qai_pool *pool) {
    int nth = qai_pool_size(pool);
    if (count < 2 * (size_t)nth) nth = 1;
    insert_job j = {.ix = ix, .first = first, .count = count};
    atomic_init(&j.next, 0);
    atomic_init(&j.failed, 0);
    if (nth > 1) {
        ix->locks = qai_calloc(ix->n, 1);
        if (!ix->locks) return QAI_ERR_NOMEM;
        qai_pool_run(pool, insert_worker, &j);
        qai_free(ix->locks);
        ix->locks = NULL;
    } else {
        insert_worker(&j, 0, 1);
    }
    if (atomic_load(&j.failed)) {
        /* a worker that could not get scratch leaves its share to the others;
         * if all failed, the new vectors are stored (and found by a compaction,
         * which relinks them) but not yet linked into the graph */
        size_t done = atomic_load(&j.next);
        if (done < count) return qai_error(QAI_ERR_NOMEM, "index: out of memory while building the graph");
    }
    return QAI_OK;
}
