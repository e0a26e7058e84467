/* HNSW: distance kernels against the scalar reference; at full effort the
 * graph returns exactly the brute-force neighbours (computed here in double
 * precision, independently of the library); recall at a moderate ef;
 * delete/update/reinsert/compact; filters during search; int8 navigation;
 * save/open round trips, truncated/corrupted/forged files; determinism of
 * single-threaded builds and thread-count independence of searches. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "knowledge/distance.h"
#include "knowledge/index_file.h"
#include "qai/index.h"
#include "test.h"

#define N 3000
#define D 24
#define NQ 60
#define K 10

static float *base, *queries;

static void gen_mixture(float *x, int n, int d, qai_rng *r) {
    static float centers[16 * 64];
    static bool init;
    if (!init) {
        qai_rng c;
        qai_rng_seed(&c, 99);
        for (int i = 0; i < 16 * 64; i++) centers[i] = 2.f * qai_rng_normal(&c);
        init = true;
    }
    for (int i = 0; i < n; i++) {
        int c = (int)(qai_rng_u64(r) % 16);
        for (int j = 0; j < d; j++) x[(size_t)i * d + j] = centers[c * 64 + j] + qai_rng_normal(r);
    }
}

/* Independent reference: double-precision brute force over live ids. */
typedef struct {
    double d;
    uint64_t id;
} ref_hit;
static int cmp_ref(const void *a, const void *b) {
    const ref_hit *x = a, *y = b;
    if (x->d != y->d) return x->d < y->d ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}
static int brute(const float *x, const uint64_t *ids, const bool *live, int n, int d, qai_metric m, const float *q, int k,
                 uint64_t *out) {
    ref_hit *h = malloc((size_t)n * sizeof *h);
    int c = 0;
    double qn = 0;
    for (int j = 0; j < d; j++) qn += (double)q[j] * q[j];
    for (int i = 0; i < n; i++) {
        if (live && !live[i]) continue;
        const float *v = x + (size_t)i * d;
        double dot = 0, l2 = 0, vn = 0;
        for (int j = 0; j < d; j++) {
            dot += (double)q[j] * v[j];
            l2 += ((double)q[j] - v[j]) * ((double)q[j] - v[j]);
            vn += (double)v[j] * v[j];
        }
        h[c].d = m == QAI_METRIC_L2 ? l2 : m == QAI_METRIC_IP ? -dot : -dot / sqrt(qn * vn);
        h[c++].id = ids ? ids[i] : (uint64_t)i;
    }
    qsort(h, (size_t)c, sizeof *h, cmp_ref);
    int r = c < k ? c : k;
    for (int i = 0; i < r; i++) out[i] = h[i].id;
    free(h);
    return r;
}

/* The reference distance of one id, to accept float-level ties. */
static double refdist(qai_metric m, const float *q, uint64_t id) {
    const float *v = base + id * D;
    double dot = 0, l2 = 0, qn = 0, vn = 0;
    for (int j = 0; j < D; j++) {
        dot += (double)q[j] * v[j];
        l2 += ((double)q[j] - v[j]) * ((double)q[j] - v[j]);
        qn += (double)q[j] * q[j];
        vn += (double)v[j] * v[j];
    }
    return m == QAI_METRIC_L2 ? l2 : m == QAI_METRIC_IP ? -dot : -dot / sqrt(qn * vn);
}

static double recall(qai_index *ix, const bool *live, int ef, qai_filter_fn f, void *fctx) {
    long found = 0, total = 0;
    for (int q = 0; q < NQ; q++) {
        uint64_t ref[K];
        bool *lv = NULL;
        if (f) {
            lv = malloc(N);
            for (int i = 0; i < N; i++) lv[i] = (!live || live[i]) && f(fctx, (uint64_t)i);
        }
        int nr = brute(base, NULL, lv ? lv : live, N, D, QAI_METRIC_L2, queries + q * D, K, ref);
        free(lv);
        qai_hit hits[K];
        int nh;
        qai_search_opts so = {.ef = ef, .filter = f, .filter_ctx = fctx};
        qai_index_search(ix, queries + q * D, K, &so, hits, &nh);
        for (int a = 0; a < nh; a++)
            for (int b = 0; b < nr; b++) found += hits[a].id == ref[b];
        total += nr;
    }
    return (double)found / (double)total;
}

static qai_index *build(qai_metric m, bool int8, qai_pool *pool) {
    qai_index_params p;
    qai_index_params_default(&p, QAI_INDEX_HNSW, m, D);
    p.M = 12;
    p.ef_construction = 100;
    p.int8 = int8;
    qai_index *ix = qai_index_new(&p);
    uint64_t *ids = malloc(N * sizeof *ids);
    for (int i = 0; i < N; i++) ids[i] = (uint64_t)i;
    CHECK_OK(qai_index_add_batch(ix, ids, base, N, pool));
    free(ids);
    return ix;
}

static void test_kernels(void) {
    qai_rng r;
    qai_rng_seed(&r, 5);
    float a[300], b[300];
    uint8_t ua[320];
    int8_t sb[320];
    for (int i = 0; i < 300; i++) {
        a[i] = qai_rng_normal(&r);
        b[i] = qai_rng_normal(&r);
    }
    for (int i = 0; i < 320; i++) {
        ua[i] = (uint8_t)qai_rng_u64(&r);
        sb[i] = (int8_t)(qai_rng_u64(&r) % 255 - 127);
    }
    const qai_dist_kernels *ref = qai_dist_kernels_get(QAI_ISA_SCALAR);
    for (int isa = QAI_ISA_SCALAR; isa <= (int)qai_cpu_isa(); isa++) {
        const qai_dist_kernels *k = qai_dist_kernels_get((qai_isa)isa);
        for (int n = 1; n <= 300; n += (n < 40 ? 1 : 37)) {
            double dd = 0, ll = 0;
            for (int i = 0; i < n; i++) {
                dd += (double)a[i] * b[i];
                ll += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
            }
            float x = k->dot(a, b, n), y = ref->dot(a, b, n), z = (float)dd;
            CHECK_CLOSE("dot vs scalar", &x, &y, 1, 1e-4f, 1e-5f);
            CHECK_CLOSE("dot vs double", &x, &z, 1, 1e-4f, 1e-5f);
            x = k->l2sq(a, b, n), y = ref->l2sq(a, b, n), z = (float)ll;
            CHECK_CLOSE("l2sq vs scalar", &x, &y, 1, 1e-4f, 1e-5f);
            CHECK_CLOSE("l2sq vs double", &x, &z, 1, 1e-4f, 1e-5f);
        }
        for (int n = 64; n <= 320; n += 64) {
            int32_t exact = 0;
            for (int i = 0; i < n; i++) exact += (int32_t)ua[i] * sb[i];
            CHECK_EQ_INT(k->dot_u8s8(ua, sb, n), exact);
        }
        /* extremes: 255 * -127 everywhere must not saturate */
        uint8_t hi[128];
        int8_t lo[128];
        memset(hi, 255, sizeof hi);
        memset(lo, -127, sizeof lo);
        CHECK_EQ_INT(k->dot_u8s8(hi, lo, 128), 128 * 255 * -127);
    }
}

static void test_exact_at_full_effort(void) {
    for (int m = QAI_METRIC_L2; m <= QAI_METRIC_COSINE; m++) {
        qai_index *ix = build((qai_metric)m, false, NULL);
        int bad = 0;
        for (int q = 0; q < NQ; q++) {
            uint64_t ref[K];
            int nr = brute(base, NULL, NULL, N, D, (qai_metric)m, queries + q * D, K, ref);
            qai_hit hits[K];
            int nh;
            qai_search_opts so = {.ef = N};
            CHECK_OK(qai_index_search(ix, queries + q * D, K, &so, hits, &nh));
            CHECK_EQ_INT(nh, nr);
            for (int i = 0; i < nh && i < nr; i++)
                if (hits[i].id != ref[i] && fabs(refdist((qai_metric)m, queries + q * D, hits[i].id) -
                                                 refdist((qai_metric)m, queries + q * D, ref[i])) > 1e-5) {
                    if (bad++ < 3) fprintf(stderr, "metric %d query %d rank %d: %llu != %llu\n", m, q, i,
                                           (unsigned long long)hits[i].id, (unsigned long long)ref[i]);
                }
            for (int i = 1; i < nh; i++) CHECK(hits[i - 1].score >= hits[i].score);
        }
        /* inner product is not a metric: the heuristic can leave a low-norm
         * vector with no in-links, so exactness is promised for L2 and cosine only */
        if (m == QAI_METRIC_IP) CHECK_MSG(bad <= NQ * K / 100, "%d misses", bad);
        else CHECK_EQ_INT(bad, 0);
        /* scores mean what the header says */
        qai_hit h1;
        int nh;
        qai_search_opts so = {.ef = N};
        qai_index_search(ix, queries, 1, &so, &h1, &nh);
        const float *v = base + h1.id * D, *q = queries;
        double dot = 0, l2 = 0, qn = 0, vn = 0;
        for (int j = 0; j < D; j++) {
            dot += (double)q[j] * v[j];
            l2 += ((double)q[j] - v[j]) * ((double)q[j] - v[j]);
            qn += (double)q[j] * q[j];
            vn += (double)v[j] * v[j];
        }
        float want = (float)(m == QAI_METRIC_L2 ? -l2 : m == QAI_METRIC_IP ? dot : dot / sqrt(qn * vn));
        CHECK_CLOSE("score", &h1.score, &want, 1, 1e-3f, 1e-4f);
        qai_index_free(ix);
    }
}

static bool even_only(void *ctx, uint64_t id) {
    (void)ctx;
    return id % 2 == 0;
}
static bool one_in_50(void *ctx, uint64_t id) {
    (*(int *)ctx)++;
    return id % 50 == 7;
}

static void test_recall_filters_delete(void) {
    qai_index *ix = build(QAI_METRIC_L2, false, NULL);
    double r = recall(ix, NULL, 64, NULL, NULL);
    fprintf(stderr, "recall@10 ef=64: %.4f\n", r);
    CHECK_MSG(r >= 0.95, "recall %.4f", r);

    /* filters: only allowed ids, and the right ones */
    for (int q = 0; q < NQ; q++) {
        qai_hit hits[K];
        int nh;
        qai_search_opts so = {.ef = N, .filter = even_only};
        qai_index_search(ix, queries + q * D, K, &so, hits, &nh);
        CHECK_EQ_INT(nh, K);
        for (int i = 0; i < nh; i++) CHECK(hits[i].id % 2 == 0);
        bool lv[N];
        for (int i = 0; i < N; i++) lv[i] = i % 2 == 0;
        uint64_t ref[K];
        brute(base, NULL, lv, N, D, QAI_METRIC_L2, queries + q * D, K, ref);
        for (int i = 0; i < nh; i++) CHECK(hits[i].id == ref[i]);
    }
    r = recall(ix, NULL, 64, even_only, NULL);
    CHECK_MSG(r >= 0.95, "filtered recall %.4f", r);
    int calls = 0;
    r = recall(ix, NULL, 64, one_in_50, &calls);
    CHECK_MSG(r >= 0.95, "selective filter recall %.4f", r);
    CHECK(calls > 0);

    /* delete 30%: never returned, recall over the rest stays high */
    bool live[N];
    for (int i = 0; i < N; i++) live[i] = true;
    qai_rng rng;
    qai_rng_seed(&rng, 11);
    int ndel = 0;
    for (int i = 0; i < N; i++)
        if (qai_rng_float(&rng) < 0.3f) {
            CHECK_OK(qai_index_remove(ix, (uint64_t)i));
            live[i] = false;
            ndel++;
        }
    CHECK_EQ_INT(qai_index_remove(ix, 0) == QAI_OK || !live[0], 1);
    CHECK_EQ_INT(qai_index_deleted(ix), ndel);
    CHECK_EQ_INT(qai_index_size(ix), N - ndel);
    for (int q = 0; q < NQ; q++) {
        qai_hit hits[K];
        int nh;
        qai_index_search(ix, queries + q * D, K, NULL, hits, &nh);
        for (int i = 0; i < nh; i++) CHECK(live[hits[i].id]);
    }
    r = recall(ix, live, 64, NULL, NULL);
    fprintf(stderr, "recall after deleting %d: %.4f\n", ndel, r);
    CHECK_MSG(r >= 0.95, "recall after delete %.4f", r);
    /* reinsert them: recall over everything stays high */
    for (int i = 0; i < N; i++)
        if (!live[i]) {
            CHECK_OK(qai_index_add(ix, (uint64_t)i, base + (size_t)i * D));
            live[i] = true;
        }
    CHECK_EQ_INT(qai_index_size(ix), N);
    r = recall(ix, NULL, 64, NULL, NULL);
    fprintf(stderr, "recall after reinsert: %.4f\n", r);
    CHECK_MSG(r >= 0.95, "recall after reinsert %.4f", r);
    /* update: a changed vector is found at its new place */
    float moved[D];
    for (int j = 0; j < D; j++) moved[j] = queries[j] + 1e-3f;
    CHECK_OK(qai_index_add(ix, 5, moved));
    qai_hit top;
    int nh;
    qai_index_search(ix, queries, 1, NULL, &top, &nh);
    CHECK_EQ_INT(top.id, 5);
    float got[D];
    CHECK_OK(qai_index_get_vector(ix, 5, got));
    CHECK_CLOSE("updated vector", got, moved, D, 0, 0);
    memcpy(base + 5 * D, moved, sizeof moved);
    CHECK_EQ_INT(qai_index_size(ix), N);
    /* compaction drops the dead nodes and keeps recall */
    CHECK(qai_index_deleted(ix) > 0);
    CHECK_OK(qai_index_compact(ix, NULL));
    CHECK_EQ_INT(qai_index_deleted(ix), 0);
    CHECK_EQ_INT(qai_index_size(ix), N);
    r = recall(ix, NULL, 64, NULL, NULL);
    CHECK_MSG(r >= 0.95, "recall after compact %.4f", r);
    CHECK_EQ_INT(qai_index_remove(ix, 123456789), QAI_ERR_NOT_FOUND);
    /* deleting most of it: the next add compacts by itself */
    for (int i = 0; i < N; i++)
        if (i % 4) CHECK_OK(qai_index_remove(ix, (uint64_t)i));
    CHECK_EQ_INT(qai_index_deleted(ix), N - (N + 3) / 4);
    CHECK_OK(qai_index_add(ix, 1, base + D));
    CHECK_EQ_INT(qai_index_deleted(ix), 0);
    CHECK_EQ_INT(qai_index_size(ix), (N + 3) / 4 + 1);
    for (int i = 0; i < N; i++) live[i] = i % 4 == 0 || i == 1;
    r = recall(ix, live, 64, NULL, NULL);
    CHECK_MSG(r >= 0.95, "recall after auto-compaction %.4f", r);
    qai_index_free(ix);
}

static void test_int8(void) {
    qai_index *ix = build(QAI_METRIC_L2, true, NULL);
    double r = recall(ix, NULL, 64, NULL, NULL);
    fprintf(stderr, "int8 recall@10 ef=64: %.4f\n", r);
    CHECK_MSG(r >= 0.95, "int8 recall %.4f", r);
    qai_index_free(ix);
    ix = build(QAI_METRIC_COSINE, true, NULL);
    /* scores are rescored in float: the top hit's score is its exact cosine */
    qai_hit h;
    int nh;
    qai_index_search(ix, queries, 1, NULL, &h, &nh);
    float v[D];
    qai_index_get_vector(ix, h.id, v);
    double dot = 0, qn = 0;
    for (int j = 0; j < D; j++) {
        dot += (double)queries[j] * v[j];
        qn += (double)queries[j] * queries[j];
    }
    float want = (float)(dot / sqrt(qn));
    CHECK_CLOSE("int8 rescored score", &h.score, &want, 1, 1e-4f, 1e-4f);
    qai_index_free(ix);
}

static char *tmp_path(const char *name) {
    static char buf[4][512];
    static int i;
    const char *dir = getenv("QAI_TMP");
    char *b = buf[i++ % 4];
    snprintf(b, 512, "%s/%s", dir ? dir : "/tmp", name);
    return b;
}

static bool same_results(qai_index *a, qai_index *b, int ef) {
    for (int q = 0; q < NQ; q++) {
        qai_hit ha[K], hb[K];
        int na, nb;
        qai_search_opts so = {.ef = ef};
        qai_index_search(a, queries + q * D, K, &so, ha, &na);
        qai_index_search(b, queries + q * D, K, &so, hb, &nb);
        if (na != nb) return false;
        for (int i = 0; i < na; i++)
            if (ha[i].id != hb[i].id || ha[i].score != hb[i].score) return false;
    }
    return true;
}

static void read_all(const char *path, uint8_t **data, size_t *n) {
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    *data = malloc(*n);
    if (fread(*data, 1, *n, f) != *n) *n = 0;
    fclose(f);
}

static qai_status open_bytes(const uint8_t *data, size_t n, qai_index **ix) {
    /* aligned copy, as a mapping would be */
    uint8_t *buf = aligned_alloc(64, (n + 63) / 64 * 64);
    memcpy(buf, data, n);
    qai_status st = qai_index_open_buffer(buf, n, "t.qvi", ix);
    if (st == QAI_OK) {
        /* make the index own nothing of buf: compare then drop */
        qai_index_free(*ix);
        *ix = NULL;
    }
    free(buf);
    return st;
}

static void test_files(qai_pool *pool) {
    qai_index *a = build(QAI_METRIC_COSINE, true, NULL);
    qai_index_remove(a, 17);
    const char *p1 = tmp_path("hnsw1.qvi"), *p2 = tmp_path("hnsw2.qvi");
    CHECK_OK(qai_index_save(a, p1));
    qai_index *b = NULL;
    CHECK_OK(qai_index_open(p1, &b));
    if (!b) return;
    CHECK(same_results(a, b, 40));
    CHECK(same_results(a, b, N));
    CHECK_EQ_INT(qai_index_size(b), N - 1);
    CHECK(!qai_index_contains(b, 17));
    CHECK(qai_index_get_params(b)->int8);
    /* a reopened index keeps growing like the original */
    float v[D];
    for (int j = 0; j < D; j++) v[j] = queries[D + j];
    CHECK_OK(qai_index_add(a, 1000000, v));
    CHECK_OK(qai_index_add(b, 1000000, v));
    CHECK(same_results(a, b, 40));
    CHECK_OK(qai_index_save(b, p2));
    qai_index_free(b);
    qai_index_free(a);

    /* determinism: two single-threaded builds give byte-identical files */
    a = build(QAI_METRIC_L2, false, NULL);
    b = build(QAI_METRIC_L2, false, NULL);
    CHECK_OK(qai_index_save(a, p1));
    CHECK_OK(qai_index_save(b, p2));
    uint8_t *d1, *d2;
    size_t n1, n2;
    read_all(p1, &d1, &n1);
    read_all(p2, &d2, &n2);
    CHECK(n1 == n2 && n1 > 0 && memcmp(d1, d2, n1) == 0);
    free(d2);
    qai_index_free(b);
    /* a multi-threaded build is as good */
    b = build(QAI_METRIC_L2, false, pool);
    double r = recall(b, NULL, 64, NULL, NULL);
    fprintf(stderr, "recall@10 ef=64, threaded build: %.4f\n", r);
    CHECK_MSG(r >= 0.95, "threaded-build recall %.4f", r);
    qai_index_free(b);

    /* truncated files fail cleanly, naming an offset */
    qai_idx_header hh;
    memcpy(&hh, d1, sizeof hh);
    size_t end = 0;
    for (int i = 0; i < QAI_IDX_NSEC; i++)
        if (hh.sec[i].offset + hh.sec[i].size > end) end = hh.sec[i].offset + hh.sec[i].size;
    CHECK(end <= n1 && end + 64 > n1);
    size_t cuts[] = {0, 7, 100, 511, 512, 600, n1 / 2, end - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        qai_index *x = NULL;
        qai_status st = open_bytes(d1, cuts[i], &x);
        CHECK_MSG(st == QAI_ERR_FORMAT, "cut at %zu: %d", cuts[i], st);
        CHECK_MSG(strstr(qai_last_error(), "offset") || strstr(qai_last_error(), "bytes"), "%s", qai_last_error());
    }
    /* one flipped byte anywhere in the header or a section fails its checksum */
    qai_rng rng;
    qai_rng_seed(&rng, 3);
    for (int t = 0; t < 40; t++) {
        size_t at = t < 10 ? (size_t)(qai_rng_u64(&rng) % 336) : (size_t)(qai_rng_u64(&rng) % n1);
        uint8_t *c = malloc(n1);
        memcpy(c, d1, n1);
        c[at] ^= (uint8_t)(1u << (t % 8));
        qai_index *x = NULL;
        qai_status st = open_bytes(c, n1, &x);
        bool padding = at >= 336 && at < 512; /* reserved zeros are not read */
        if (!padding) CHECK_MSG(st == QAI_ERR_FORMAT, "flip at %zu accepted", at);
        free(c);
    }
    /* a forged file (checksums recomputed) with a link out of range is still rejected */
    {
        uint8_t *c = malloc(n1);
        memcpy(c, d1, n1);
        qai_idx_header h;
        memcpy(&h, c, sizeof h);
        uint32_t *l0 = (uint32_t *)(c + h.sec[SEC_LINKS0].offset);
        CHECK(l0[0] > 0);
        l0[1] = (uint32_t)N + 5;
        h.sec_hash[SEC_LINKS0] = qai_idx_hash(c + h.sec[SEC_LINKS0].offset, h.sec[SEC_LINKS0].size);
        h.header_hash = qai_idx_hash(&h, 328);
        memcpy(c, &h, sizeof h);
        qai_index *x = NULL;
        CHECK_EQ_INT(open_bytes(c, n1, &x), QAI_ERR_FORMAT);
        CHECK_MSG(strstr(qai_last_error(), "link 1 of node 0 on layer 0"), "%s", qai_last_error());
        free(c);
    }
    free(d1);

    /* searches from two threads at once give the single-threaded answers */
    qai_hit ref[NQ][K];
    int nref[NQ];
    for (int q = 0; q < NQ; q++) qai_index_search(a, queries + q * D, K, NULL, ref[q], &nref[q]);
    struct job {
        qai_index *ix;
        qai_hit (*ref)[K];
        int *nref;
        int bad;
    } j = {a, ref, nref, 0};
    void fn(void *arg, int ith, int nth);
    qai_pool_run(pool, fn, &j);
    CHECK_EQ_INT(j.bad, 0);
    qai_index_free(a);
}

void fn(void *arg, int ith, int nth) {
    struct job {
        qai_index *ix;
        qai_hit (*ref)[K];
        int *nref;
        int bad;
    } *j = arg;
    for (int rep = 0; rep < 3; rep++)
        for (int q = ith; q < NQ; q += nth) {
            qai_hit h[K];
            int nh;
            qai_index_search(j->ix, queries + q * D, K, NULL, h, &nh);
            bool same = nh == j->nref[q];
            for (int i = 0; same && i < nh; i++) same = h[i].id == j->ref[q][i].id && h[i].score == j->ref[q][i].score;
            if (!same) __atomic_add_fetch(&j->bad, 1, __ATOMIC_RELAXED);
        }
}

static void test_errors(void) {
    qai_index_params p;
    qai_index_params_default(&p, QAI_INDEX_HNSW, QAI_METRIC_COSINE, 4);
    p.M = 1;
    CHECK(qai_index_new(&p) == NULL);
    CHECK(strstr(qai_last_error(), "M = 1"));
    p.M = 8;
    qai_index *ix = qai_index_new(&p);
    float z[4] = {0, 0, 0, 0}, nan4[4] = {1, NAN, 0, 0}, v[8] = {1, 2, 3, 4, 4, 3, 2, 1};
    CHECK_EQ_INT(qai_index_add(ix, 1, z), QAI_ERR_ARG);
    CHECK_EQ_INT(qai_index_add(ix, 1, nan4), QAI_ERR_ARG);
    uint64_t dup[2] = {3, 3};
    CHECK_EQ_INT(qai_index_add_batch(ix, dup, v, 2, NULL), QAI_ERR_ARG);
    CHECK_EQ_INT(qai_index_size(ix), 0);
    qai_hit h[2];
    int nh = -1;
    CHECK_OK(qai_index_search(ix, v, 2, NULL, h, &nh));
    CHECK_EQ_INT(nh, 0);
    CHECK_OK(qai_index_add(ix, 9, v));
    CHECK_OK(qai_index_search(ix, v, 2, NULL, h, &nh));
    CHECK_EQ_INT(nh, 1);
    CHECK_EQ_INT(h[0].id, 9);
    CHECK_EQ_INT(qai_index_search(ix, nan4, 2, NULL, h, &nh), QAI_ERR_ARG);
    qai_index_free(ix);
}

int main(void) {
    base = malloc((size_t)N * D * sizeof *base);
    queries = malloc((size_t)NQ * D * sizeof *queries);
    qai_rng r;
    qai_rng_seed(&r, 1);
    gen_mixture(base, N, D, &r);
    gen_mixture(queries, NQ, D, &r);
    qai_pool *pool = qai_pool_new(2);
    test_kernels();
    test_exact_at_full_effort();
    test_recall_filters_delete();
    test_int8();
    test_files(pool);
    test_errors();
    qai_pool_free(pool);
    free(base);
    free(queries);
    return test_summary();
}
