/*
 * bench_hnsw — qai's dense indexes on a synthetic set, in the shape
 * bench/peer_ann.py measures hnswlib and FAISS in, on the same files:
 *
 *   base.fbin / query.fbin   int32 n, int32 dim, then n x dim float32 (big-ann-benchmarks .fbin)
 *   gt.ibin                  int32 nq, int32 k, then nq x k int32 (exact neighbours, by our flat index)
 *
 * Data: a Gaussian mixture — C centers drawn from N(0, 1) per component, each
 * point a uniformly chosen center plus N(0, sigma^2) noise per component
 * (queries drawn the same way, not in the base set), seeded.
 *
 * Measures: build time on T threads, memory (growth of resident set across
 * the build), single-threaded one-at-a-time queries per second and recall@10
 * for each ef of a sweep, and single-query brute force (flat index) on 1 and
 * T threads. Prints one JSON object per line.
 *
 *   bench_hnsw [--quick] [--n N] [--dim D] [--nq Q] [--clusters C] [--sigma S]
 *              [--M M] [--efc EFC] [--threads T] [--ef 10,16,...] [--dir DIR]
 *              [--int8] [--no-flat] [--flat-only] [--index FILE] [--seed S]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "qai/index.h"

static long rss_kb(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, res = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &res) != 2) res = 0;
        fclose(f);
    }
    return res * (sysconf(_SC_PAGESIZE) / 1024);
}

/* CPU time of the calling thread: on a shared, oversubscribed machine this
 * excludes the time the thread waited for a core (wall time is printed too). */
static uint64_t cpu_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int write_fbin(const char *path, const float *x, int n, int d) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int32_t h[2] = {n, d};
    int ok = fwrite(h, 4, 2, f) == 2 && fwrite(x, 4, (size_t)n * d, f) == (size_t)n * d;
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

static float *read_fbin(const char *path, int *n, int *d) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    int32_t h[2];
    float *x = NULL;
    if (fread(h, 4, 2, f) == 2 && h[0] > 0 && h[1] > 0) {
        x = malloc((size_t)h[0] * h[1] * 4);
        if (x && fread(x, 4, (size_t)h[0] * h[1], f) != (size_t)h[0] * h[1]) {
            free(x);
            x = NULL;
        }
        *n = h[0];
        *d = h[1];
    }
    fclose(f);
    return x;
}

static void gen(float *x, int n, int d, const float *centers, int C, float sigma, qai_rng *r) {
    for (int i = 0; i < n; i++) {
        int c = (int)(qai_rng_u64(r) % (uint64_t)C);
        for (int j = 0; j < d; j++) x[(size_t)i * d + j] = centers[(size_t)c * d + j] + sigma * qai_rng_normal(r);
    }
}

static int *parse_list(const char *s, int *n) {
    int *v = malloc(64 * sizeof *v);
    *n = 0;
    while (*s && *n < 64) {
        v[(*n)++] = atoi(s);
        const char *c = strchr(s, ',');
        if (!c) break;
        s = c + 1;
    }
    return v;
}

int main(int argc, char **argv) {
    int n = 200000, d = 128, nq = 1000, C = 100, M = 16, efc = 200, T = 2, k = 10;
    float sigma = 1.0f;
    uint64_t seed = 1;
    const char *dir = "/tmp/qai-ann", *efs = "10,12,16,20,24,32,40,48,64,96,128,192,256";
    bool int8 = false, flat = true, quick = false, flat_only = false;
    const char *index_path = NULL; /* reuse a saved index instead of building (for tuning queries) */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--quick")) quick = true;
        else if (!strcmp(a, "--int8")) int8 = true;
        else if (!strcmp(a, "--no-flat")) flat = false;
        else if (!strcmp(a, "--flat-only")) flat_only = true;
        else if (v && !strcmp(a, "--n")) n = atoi(argv[++i]);
        else if (v && !strcmp(a, "--dim")) d = atoi(argv[++i]);
        else if (v && !strcmp(a, "--nq")) nq = atoi(argv[++i]);
        else if (v && !strcmp(a, "--clusters")) C = atoi(argv[++i]);
        else if (v && !strcmp(a, "--sigma")) sigma = (float)atof(argv[++i]);
        else if (v && !strcmp(a, "--M")) M = atoi(argv[++i]);
        else if (v && !strcmp(a, "--efc")) efc = atoi(argv[++i]);
        else if (v && !strcmp(a, "--threads")) T = atoi(argv[++i]);
        else if (v && !strcmp(a, "--ef")) efs = argv[++i];
        else if (v && !strcmp(a, "--dir")) dir = argv[++i];
        else if (v && !strcmp(a, "--index")) index_path = argv[++i];
        else if (v && !strcmp(a, "--seed")) seed = strtoull(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "bench_hnsw: unknown or incomplete option '%s'\n", a);
            return 2;
        }
    }
    if (quick) {
        n = n > 20000 ? 20000 : n;
        nq = nq > 200 ? 200 : nq;
    }
    mkdir(dir, 0755);
    char pb[1024], pq[1024], pg[1024];
    snprintf(pb, sizeof pb, "%s/base-%d-%d.fbin", dir, n, d);
    snprintf(pq, sizeof pq, "%s/query-%d-%d.fbin", dir, n, d);
    snprintf(pg, sizeof pg, "%s/gt-%d-%d.ibin", dir, n, d);

    int nb2, d2, nq2, dq2;
    float *base = read_fbin(pb, &nb2, &d2), *qs = read_fbin(pq, &nq2, &dq2);
    qai_pool *pool = qai_pool_new(T);
    if (!base || !qs || nb2 != n || d2 != d || nq2 != nq || dq2 != d) {
        free(base);
        free(qs);
        base = malloc((size_t)n * d * 4);
        qs = malloc((size_t)nq * d * 4);
        float *centers = malloc((size_t)C * d * 4);
        qai_rng r;
        qai_rng_seed(&r, seed);
        for (size_t i = 0; i < (size_t)C * d; i++) centers[i] = qai_rng_normal(&r);
        gen(base, n, d, centers, C, sigma, &r);
        gen(qs, nq, d, centers, C, sigma, &r);
        free(centers);
        if (write_fbin(pb, base, n, d) || write_fbin(pq, qs, nq, d)) {
            fprintf(stderr, "bench_hnsw: cannot write %s\n", pb);
            return 1;
        }
        unlink(pg);
    }
    uint64_t *ids = malloc((size_t)n * sizeof *ids);
    for (int i = 0; i < n; i++) ids[i] = (uint64_t)i;

    /* ground truth: exact search with the flat index, threaded over queries' scans */
    int32_t *gt = malloc((size_t)nq * k * 4);
    FILE *gf = fopen(pg, "rb");
    int32_t gh[2] = {0, 0};
    bool have_gt = gf && fread(gh, 4, 2, gf) == 2 && gh[0] == nq && gh[1] == k &&
                   fread(gt, 4, (size_t)nq * k, gf) == (size_t)nq * k;
    if (gf) fclose(gf);
    qai_index_params p;
    if (!have_gt || flat) {
        qai_index_params_default(&p, QAI_INDEX_FLAT, QAI_METRIC_L2, d);
        qai_index *fx = qai_index_new(&p);
        if (!fx || qai_index_add_batch(fx, ids, base, (size_t)n, NULL) != QAI_OK) {
            fprintf(stderr, "bench_hnsw: %s\n", qai_last_error());
            return 1;
        }
        qai_hit hits[10];
        int nh;
        if (!have_gt) {
            for (int q = 0; q < nq; q++) {
                qai_search_opts so = {.pool = pool};
                qai_index_search(fx, qs + (size_t)q * d, k, &so, hits, &nh);
                for (int j = 0; j < k; j++) gt[(size_t)q * k + j] = j < nh ? (int32_t)hits[j].id : -1;
            }
            gf = fopen(pg, "wb");
            gh[0] = nq;
            gh[1] = k;
            if (!gf || fwrite(gh, 4, 2, gf) != 2 || fwrite(gt, 4, (size_t)nq * k, gf) != (size_t)nq * k) {
                fprintf(stderr, "bench_hnsw: cannot write %s\n", pg);
                return 1;
            }
            fclose(gf);
        }
        if (flat) {
            /* float scan, then the exact int8-prefiltered scan (checked to give the same answers) */
            int nbq = nq < 200 ? nq : 200;
            qai_index_params p8 = p;
            p8.int8 = true;
            qai_index *f8 = qai_index_new(&p8);
            if (!f8 || qai_index_add_batch(f8, ids, base, (size_t)n, NULL) != QAI_OK) {
                fprintf(stderr, "bench_hnsw: %s\n", qai_last_error());
                return 1;
            }
            for (int v = 0; v < 2; v++)
                for (int th = 1; th <= T; th = th == 1 && T > 1 ? T : T + 1) {
                    qai_pool *pp = th == 1 ? NULL : pool;
                    int mismatch = 0;
                    uint64_t t0 = qai_time_ns(), c0 = cpu_ns();
                    for (int q = 0; q < nbq; q++) {
                        qai_search_opts so = {.pool = pp};
                        qai_index_search(v ? f8 : fx, qs + (size_t)q * d, k, &so, hits, &nh);
                        for (int j = 0; j < nh; j++) mismatch += gt[(size_t)q * k + j] != (int32_t)hits[j].id;
                    }
                    double s = (double)(qai_time_ns() - t0) * 1e-9, cs = (double)(cpu_ns() - c0) * 1e-9;
                    printf("{\"lib\":\"%s\",\"what\":\"flat\",\"n\":%d,\"dim\":%d,\"threads\":%d,\"qps\":%.1f,"
                           "\"cpu_qps\":%.1f,\"mismatches\":%d}\n",
                           v ? "qai-int8" : "qai", n, d, th, nbq / s, th == 1 ? nbq / cs : 0.0, mismatch);
                    fflush(stdout);
                }
            qai_index_free(f8);
        }
        qai_index_free(fx);
    }
    if (flat_only) {
        qai_pool_free(pool);
        free(base);
        free(qs);
        free(ids);
        free(gt);
        return 0;
    }

    qai_index_params_default(&p, QAI_INDEX_HNSW, QAI_METRIC_L2, d);
    p.M = M;
    p.ef_construction = efc;
    p.int8 = int8;
    long rss0 = rss_kb();
    qai_index *ix = NULL;
    uint64_t t0 = qai_time_ns();
    if (index_path && access(index_path, R_OK) == 0) {
        if (qai_index_open(index_path, &ix) != QAI_OK) {
            fprintf(stderr, "bench_hnsw: %s\n", qai_last_error());
            return 1;
        }
    } else {
        ix = qai_index_new(&p);
        if (!ix || qai_index_add_batch(ix, ids, base, (size_t)n, pool) != QAI_OK) {
            fprintf(stderr, "bench_hnsw: %s\n", qai_last_error());
            return 1;
        }
        if (index_path && qai_index_save(ix, index_path) != QAI_OK) {
            fprintf(stderr, "bench_hnsw: %s\n", qai_last_error());
            return 1;
        }
    }
    double build = (double)(qai_time_ns() - t0) * 1e-9;
    long rss1 = rss_kb();
    printf("{\"lib\":\"qai%s\",\"what\":\"build\",\"n\":%d,\"dim\":%d,\"M\":%d,\"efc\":%d,\"threads\":%d,"
           "\"seconds\":%.2f,\"rss_mb\":%.1f,\"index_mb\":%.1f}\n",
           int8 ? "-int8" : "", n, d, M, efc, T, build, (rss1 - rss0) / 1024.0, qai_index_memory(ix) / 1048576.0);
    fflush(stdout);
    int nef;
    int *ef = parse_list(efs, &nef);
    qai_hit hits[10];
    int nh;
    for (int e = 0; e < nef; e++) {
        long found = 0;
        uint64_t t1 = qai_time_ns(), c1 = cpu_ns();
        for (int q = 0; q < nq; q++) {
            qai_search_opts so = {.ef = ef[e]};
            qai_index_search(ix, qs + (size_t)q * d, k, &so, hits, &nh);
            for (int a = 0; a < nh; a++)
                for (int b = 0; b < k; b++)
                    if ((int64_t)hits[a].id == gt[(size_t)q * k + b]) {
                        found++;
                        break;
                    }
        }
        double s = (double)(qai_time_ns() - t1) * 1e-9, cs = (double)(cpu_ns() - c1) * 1e-9;
        printf("{\"lib\":\"qai%s\",\"what\":\"query\",\"n\":%d,\"dim\":%d,\"ef\":%d,\"recall\":%.4f,\"qps\":%.1f,"
               "\"cpu_qps\":%.1f}\n",
               int8 ? "-int8" : "", n, d, ef[e], (double)found / ((double)nq * k), nq / s, nq / cs);
        fflush(stdout);
    }
    free(ef);
    qai_index_free(ix);
    qai_pool_free(pool);
    free(base);
    free(qs);
    free(ids);
    free(gt);
    return 0;
}
