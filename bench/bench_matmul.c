/* bench_matmul — qai_matmul speed on TinyLlama's shapes.
 *
 * For each weight type and ISA level: small M (token generation, M = 1, or
 * M parallel streams: GB/s of weights streamed, with enough copies of the
 * weights that they come from DRAM, not cache, and GOPS = 2·M·N·K/s) and
 * M=512 (prompt processing: GFLOP/s), for 1 and 2 threads. The "tok/s" column
 * is what the shapes give for one token of the model (TinyLlama-1.1B: 22
 * layers of q,k,v,o,gate,up,down plus the output layer; --shapes 110m: the
 * 110M bench model, 12 layers of dim 768, ffn 2048, vocab 32000) — times M
 * for M streams. Types q8_0_r16 / q4_0_r16 are Q8_0 / Q4_0 repacked as the
 * model loader does (qai_repack). --huge puts the weights on 2 MB pages
 * (qai_alloc_huge, as the loader does for repacked weights; a GGUF mapping
 * stays on 4 KB pages) instead of malloc's 4 KB pages.
 *
 * usage: bench_matmul [-t TYPE] [-i scalar|avx2|avx512] [-j THREADS] [-m M[,M...]] [--shape NxK]
 *                     [--shapes 1b|110m] [--seconds S] [--hot] [--huge]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "qai/tensor.h"

typedef struct {
    int N, K, count; /* count: uses per token in TinyLlama */
} shape;

static const shape shapes_1b[] = {
    {2048, 2048, 44}, /* attn_q, attn_output */
    {256, 2048, 44},  /* attn_k, attn_v */
    {5632, 2048, 44}, /* ffn_gate, ffn_up */
    {2048, 5632, 22}, /* ffn_down */
    {32000, 2048, 1}, /* output */
    {0, 0, 0},
};
static const shape shapes_110m[] = {
    {768, 768, 48},  /* attn_q, k, v, output */
    {2048, 768, 24}, /* ffn_gate, ffn_up */
    {768, 2048, 12}, /* ffn_down */
    {32000, 768, 1}, /* output */
    {0, 0, 0},
};

static const char *type_name(qai_type t) {
    if (t == QAI_TYPE_Q8_0_R16) return "q8_0_r16";
    if (t == QAI_TYPE_Q4_0_R16) return "q4_0_r16";
    return qai_type_info(t)->name;
}

static double now(void) { return (double)qai_time_ns() * 1e-9; }

/* Reference: plain read bandwidth (sum of 64-bit words) over 256 MB split
 * across the pool's threads, so the GB/s of M=1 can be read as a fraction. */
typedef struct {
    const uint64_t *p;
    size_t n;
    uint64_t sum[64];
} stream_job;

static void stream_part(void *arg, int ith, int nth) {
    stream_job *j = arg;
    size_t a = j->n * ith / nth & ~(size_t)7, b = j->n * (ith + 1) / nth & ~(size_t)7;
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
    for (size_t i = a; i < b; i += 8) {
        s0 += j->p[i], s1 += j->p[i + 1], s2 += j->p[i + 2], s3 += j->p[i + 3];
        s4 += j->p[i + 4], s5 += j->p[i + 5], s6 += j->p[i + 6], s7 += j->p[i + 7];
    }
    j->sum[ith] = s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7;
}

static double stream_read(qai_pool *pool) {
    size_t bytes = 256u << 20;
    stream_job j = {.p = qai_aligned_alloc(bytes), .n = bytes / 8};
    memset((void *)j.p, 1, bytes);
    double best = 0;
    for (int r = 0; r < 3; r++) {
        double t = now();
        qai_pool_run(pool, stream_part, &j);
        t = now() - t;
        if (bytes / t > best) best = bytes / t;
    }
    qai_aligned_free((void *)j.p);
    return best * 1e-9;
}

/* Runs matmul repeatedly for about `secs` (at least 2 runs after a warm-up);
 * returns seconds per call. For M=1 cycles through `ncopies` weight copies. */
static double time_matmul(qai_pool *pool, qai_type t, uint8_t *w, size_t wbytes, int ncopies, const float *x, float *y,
                          int M, int N, int K, void *work, double secs) {
    qai_matmul(pool, y, N, w, t, x, M, N, K, work);
    int runs = 0;
    double t0 = now(), el;
    do {
        qai_matmul(pool, y, N, w + (size_t)(runs % ncopies) * wbytes, t, x, M, N, K, work);
        runs++;
        el = now() - t0;
    } while (el < secs || runs < 2);
    return el / runs;
}

int main(int argc, char **argv) {
    const char *only_type = NULL, *only_isa = NULL;
    int only_threads = 0, only_n = 0, only_k = 0, Ms[16] = {1, 512}, nM = 2;
    const shape *shapes = shapes_1b;
    double secs = 0.15;
    bool hot = false; /* --hot: one weight copy (cache-resident for small shapes): compute speed */
    bool huge = false; /* --huge: weights on 2 MB pages */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-t") && i + 1 < argc) only_type = argv[++i];
        else if (!strcmp(argv[i], "-i") && i + 1 < argc) only_isa = argv[++i];
        else if (!strcmp(argv[i], "-j") && i + 1 < argc) only_threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-m") && i + 1 < argc) {
            nM = 0;
            for (char *p = argv[++i]; *p && nM < 16;) {
                Ms[nM] = (int)strtol(p, &p, 10);
                if (Ms[nM] < 1 || Ms[nM] > 512) Ms[nM] = 1;
                nM++;
                if (*p == ',') p++;
                else if (*p) break;
            }
        } else if (!strcmp(argv[i], "--shapes") && i + 1 < argc) {
            i++;
            shapes = !strcmp(argv[i], "110m") ? shapes_110m : shapes_1b;
        }
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) secs = atof(argv[++i]);
        else if (!strcmp(argv[i], "--hot")) hot = true;
        else if (!strcmp(argv[i], "--huge")) huge = true;
        else if (!strcmp(argv[i], "--shape") && i + 1 < argc) sscanf(argv[++i], "%dx%d", &only_n, &only_k);
        else {
            fprintf(stderr,
                    "usage: bench_matmul [-t TYPE] [-i scalar|avx2|avx512] [-j THREADS] [-m M[,M...]] [--shape NxK] "
                    "[--shapes 1b|110m] [--seconds S] [--hot] [--huge]\n");
            return 2;
        }
    }
    const qai_type types[] = {QAI_TYPE_F32,  QAI_TYPE_F16,  QAI_TYPE_BF16, QAI_TYPE_Q8_0,    QAI_TYPE_Q8_0_R16,
                              QAI_TYPE_Q4_0, QAI_TYPE_Q4_K, QAI_TYPE_Q6_K, QAI_TYPE_Q4_0_R16};
    const char *isa_names[] = {"scalar", "avx2", "avx512"};
    qai_isa best = qai_cpu_isa();
    printf("cpu: %s, %d cpus\n", (qai_kernels_set_isa(best), qai_kernels_describe()), qai_cpu_count());
    int maxN = 32000, maxK = 5632, MM = 512;
    float *x = qai_aligned_alloc(sizeof(float) * (size_t)MM * maxK);
    float *y = qai_aligned_alloc(sizeof(float) * (size_t)MM * maxN);
    qai_rng rng;
    qai_rng_seed(&rng, 1);
    for (size_t i = 0; i < (size_t)MM * maxK; i++) x[i] = qai_rng_normal(&rng);
    float *wf = qai_aligned_alloc(sizeof(float) * (size_t)2048 * maxK);
    for (size_t i = 0; i < (size_t)2048 * maxK; i++) wf[i] = qai_rng_normal(&rng) * 0.02f;
    void *work = qai_aligned_alloc(qai_matmul_work_size(QAI_TYPE_F32, MM, maxK) + (size_t)MM * maxK * 4);

    for (int threads = 1; threads <= 2; threads++) {
        if (only_threads && threads != only_threads) continue;
        qai_pool *pool = threads > 1 ? qai_pool_new(threads) : NULL;
        printf("%d thread%s: plain memory read %.1f GB/s\n", threads, threads > 1 ? "s" : "", stream_read(pool));
        for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
            qai_type t = types[ti];
            const char *tn = type_name(t);
            qai_type ft = t == QAI_TYPE_Q8_0_R16 ? QAI_TYPE_Q8_0 : t == QAI_TYPE_Q4_0_R16 ? QAI_TYPE_Q4_0 : t;
            if (only_type && strcasecmp(only_type, tn)) continue;
            for (int isa = (int)best; isa >= 0; isa--) {
                if (only_isa && strcmp(only_isa, isa_names[isa])) continue;
                if (!only_isa && isa == 0) continue; /* scalar only on request: it is slow */
                qai_kernels_set_isa((qai_isa)isa);
                for (int mi = 0; mi < nM; mi++) {
                    int M = Ms[mi];
                    bool small = M <= 8;
                    double tok_time = 0;
                    bool all = true;
                    printf("%-8s %-6s %dT M=%-3d", tn, isa_names[isa], threads, M);
                    for (size_t si = 0; shapes[si].N; si++) {
                        const shape *s = &shapes[si];
                        if (only_n && (s->N != only_n || s->K != only_k)) {
                            all = false;
                            continue;
                        }
                        size_t wbytes = qai_matrix_size(t, s->N, s->K);
                        /* enough copies to exceed the caches for small M */
                        int ncopies = small && !hot ? (int)((256u << 20) / wbytes) + 1 : 1;
                        if (ncopies > 64) ncopies = 64;
                        uint8_t *w = huge ? qai_alloc_huge(wbytes * ncopies, 0) : qai_aligned_alloc(wbytes * ncopies);
                        size_t rs = qai_row_size(ft, s->K);
                        uint8_t *wfile = ft != t ? qai_aligned_alloc(rs * s->N) : w;
                        for (int n = 0; n < s->N; n += 2048) {
                            int rows = s->N - n < 2048 ? s->N - n : 2048;
                            qai_quantize_rows(ft, wf, wfile + (size_t)n * rs, rows, s->K);
                        }
                        if (ft != t) {
                            qai_repack(pool, ft, wfile, s->N, s->K, t, w);
                            qai_aligned_free(wfile);
                        }
                        for (int c = 1; c < ncopies; c++) memcpy(w + (size_t)c * wbytes, w, wbytes);
                        double sec = time_matmul(pool, t, w, wbytes, ncopies, x, y, M, s->N, s->K, work,
                                                 small ? secs : secs * 2);
                        if (small)
                            printf("  %dx%d %6.1f GB/s %5.0f GOPS", s->N, s->K, wbytes / sec * 1e-9,
                                   2.0 * M * s->N * s->K / sec * 1e-9);
                        else
                            printf("  %dx%d %6.1f GF/s", s->N, s->K, 2.0 * M * s->N * s->K / sec * 1e-9);
                        tok_time += sec * s->count;
                        fflush(stdout);
                        if (huge) qai_free_huge(w, wbytes * ncopies);
                        else
                            qai_aligned_free(w);
                    }
                    if (all) {
                        if (small) printf("  | %.1f tok/s", M / tok_time);
                        else
                            printf("  | %.1f tok/s (pp%d)", M / tok_time, M);
                    }
                    printf("\n");
                }
            }
        }
        qai_pool_free(pool);
    }
    qai_aligned_free(x);
    qai_aligned_free(y);
    qai_aligned_free(wf);
    qai_aligned_free(work);
    return 0;
}
