/* The exact flat index: top-k against a double-precision brute force written
 * here for L2, inner product and cosine; the same answers on 1 and 2
 * threads; ties ordered by id; filters, deletes, updates; file round trip. */
#include <stdlib.h>
#include <string.h>

#include "qai/index.h"
#include "test.h"

#define N 6000 /* above the size where the scan is split over the pool */
#define D 37   /* not a multiple of any SIMD width */
#define NQ 25

static float base[N * D], queries[NQ * D];

static double dist(qai_metric m, const float *q, const float *v) {
    double dot = 0, l2 = 0, qn = 0, vn = 0;
    for (int j = 0; j < D; j++) {
        dot += (double)q[j] * v[j];
        l2 += ((double)q[j] - v[j]) * ((double)q[j] - v[j]);
        qn += (double)q[j] * q[j];
        vn += (double)v[j] * v[j];
    }
    return m == QAI_METRIC_L2 ? l2 : m == QAI_METRIC_IP ? -dot : -dot / sqrt(qn * vn);
}

static bool mult3(void *ctx, uint64_t id) { return id % 3 == 0; }

/* Checks hits against the reference: same length, distances in order, and
 * the k-th best reference distance reached (ties may swap equal ids only). */
static void check_against_ref(qai_index *ix, qai_metric m, const bool *live, qai_filter_fn f, qai_pool *pool, int k) {
    int bad = 0;
    for (int q = 0; q < NQ; q++) {
        double *ds = malloc(N * sizeof *ds);
        int cnt = 0;
        for (int i = 0; i < N; i++)
            if ((!live || live[i]) && (!f || f(NULL, (uint64_t)i))) ds[cnt++] = dist(m, queries + q * D, base + i * D);
        /* k-th smallest by partial selection */
        for (int a = 0; a < k && a < cnt; a++)
            for (int b = a + 1; b < cnt; b++)
                if (ds[b] < ds[a]) {
                    double t = ds[a];
                    ds[a] = ds[b];
                    ds[b] = t;
                }
        qai_hit h[64];
        int nh;
        qai_search_opts so = {.filter = f, .pool = pool};
        CHECK_OK(qai_index_search(ix, queries + q * D, k, &so, h, &nh));
        CHECK_EQ_INT(nh, cnt < k ? cnt : k);
        for (int i = 0; i < nh; i++) {
            if (live) CHECK(live[h[i].id]);
            if (f) CHECK(f(NULL, h[i].id));
            double got = dist(m, queries + q * D, base + h[i].id * D);
            if (fabs(got - ds[i]) > 1e-4 * (1 + fabs(ds[i])) && bad++ < 5)
                fprintf(stderr, "metric %d query %d rank %d: %g != %g\n", m, q, i, got, ds[i]);
        }
        free(ds);
    }
    CHECK_EQ_INT(bad, 0);
}

int main(void) {
    qai_rng r;
    qai_rng_seed(&r, 4);
    for (int i = 0; i < N * D; i++) base[i] = qai_rng_normal(&r);
    for (int i = 0; i < NQ * D; i++) queries[i] = qai_rng_normal(&r);
    /* exact duplicates under different ids: ties must come out by id */
    memcpy(base + 5000 * D, base + 100 * D, D * sizeof(float));
    memcpy(base + 50 * D, base + 100 * D, D * sizeof(float));
    memcpy(queries, base + 100 * D, D * sizeof(float));
    uint64_t ids[N];
    for (int i = 0; i < N; i++) ids[i] = (uint64_t)i;
    qai_pool *pool = qai_pool_new(2);
    const char *tmp = getenv("QAI_TMP");
    char path[512];
    snprintf(path, sizeof path, "%s/flat.qvi", tmp ? tmp : "/tmp");

    for (int m = QAI_METRIC_L2; m <= QAI_METRIC_COSINE; m++) {
        qai_index_params p;
        qai_index_params_default(&p, QAI_INDEX_FLAT, (qai_metric)m, D);
        qai_index *ix = qai_index_new(&p);
        CHECK_OK(qai_index_add_batch(ix, ids, base, N, pool));
        check_against_ref(ix, (qai_metric)m, NULL, NULL, NULL, 10);
        check_against_ref(ix, (qai_metric)m, NULL, NULL, pool, 10);
        check_against_ref(ix, (qai_metric)m, NULL, mult3, pool, 7);
        check_against_ref(ix, (qai_metric)m, NULL, NULL, NULL, 1);
        /* 1 and 2 threads agree bit for bit */
        for (int q = 0; q < NQ; q++) {
            qai_hit a[20], b[20];
            int na, nb;
            qai_search_opts s1 = {0}, s2 = {.pool = pool};
            qai_index_search(ix, queries + q * D, 20, &s1, a, &na);
            qai_index_search(ix, queries + q * D, 20, &s2, b, &nb);
            CHECK_EQ_INT(na, nb);
            for (int i = 0; i < na; i++) CHECK(a[i].id == b[i].id && a[i].score == b[i].score);
        }
        /* the duplicates of query 0 (ids 50, 100, 5000) tie: ascending ids */
        if (m == QAI_METRIC_L2) {
            qai_hit h[3];
            int nh;
            qai_index_search(ix, queries, 3, NULL, h, &nh);
            CHECK_EQ_INT(h[0].id, 50);
            CHECK_EQ_INT(h[1].id, 100);
            CHECK_EQ_INT(h[2].id, 5000);
            CHECK(h[0].score == 0.f && h[2].score == 0.f);
        }
        /* the int8-prefiltered scan returns the float scan's answer exactly */
        {
            qai_index_params p8 = p;
            p8.int8 = true;
            qai_index *q8 = qai_index_new(&p8);
            CHECK_OK(qai_index_add_batch(q8, ids, base, N, NULL));
            int diff = 0;
            for (int q = 0; q < NQ; q++)
                for (int f = 0; f < 2; f++) {
                    qai_hit a[20], b[20];
                    int na, nb;
                    qai_search_opts so = {.pool = q % 2 ? pool : NULL, .filter = f ? mult3 : NULL};
                    qai_index_search(ix, queries + q * D, 20, &so, a, &na);
                    qai_index_search(q8, queries + q * D, 20, &so, b, &nb);
                    diff += na != nb;
                    for (int i = 0; i < na && i < nb; i++) diff += a[i].id != b[i].id || a[i].score != b[i].score;
                }
            CHECK_EQ_INT(diff, 0);
            /* denormal rows and queries (the int8 scale underflows) stay exact */
            if (m != QAI_METRIC_COSINE) {
                float tiny[D], tq[D];
                for (int j = 0; j < D; j++) {
                    tiny[j] = 1e-41f * (float)(j % 3);
                    tq[j] = 3e-42f * (float)(j % 2);
                }
                CHECK_OK(qai_index_add(q8, 999999, tiny));
                CHECK_OK(qai_index_add(ix, 999999, tiny));
                qai_hit a[5], b[5];
                int na, nb;
                qai_index_search(ix, tq, 5, NULL, a, &na);
                qai_index_search(q8, tq, 5, NULL, b, &nb);
                CHECK_EQ_INT(na, nb);
                for (int i = 0; i < na && i < nb; i++) CHECK(a[i].id == b[i].id && a[i].score == b[i].score);
                CHECK_OK(qai_index_remove(ix, 999999));
            }
            qai_index_free(q8);
        }
        /* deletes and an update */
        static bool live[N];
        for (int i = 0; i < N; i++) live[i] = i % 5 != 0;
        for (int i = 0; i < N; i += 5) CHECK_OK(qai_index_remove(ix, (uint64_t)i));
        check_against_ref(ix, (qai_metric)m, live, NULL, pool, 10);
        CHECK_OK(qai_index_save(ix, path));
        qai_index *jx = NULL;
        CHECK_OK(qai_index_open(path, &jx));
        if (jx) {
            CHECK_EQ_INT(qai_index_size(jx), N - N / 5);
            check_against_ref(jx, (qai_metric)m, live, NULL, pool, 10);
            float v[D];
            for (int j = 0; j < D; j++) v[j] = queries[2 * D + j];
            CHECK_OK(qai_index_add(jx, 7, v)); /* update id 7 to sit on query 2 */
            qai_hit h;
            int nh;
            qai_index_search(jx, queries + 2 * D, 1, NULL, &h, &nh);
            CHECK_EQ_INT(h.id, 7);
            CHECK_EQ_INT(qai_index_size(jx), N - N / 5);
            qai_index_free(jx);
        }
        qai_index_free(ix);
    }
    qai_pool_free(pool);
    return test_summary();
}
