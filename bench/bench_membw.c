/* Memory read bandwidth: streams a 1 GiB buffer (far larger than caches) with
 * 256-bit loads on 1 and 2 threads and prints GB/s — the ceiling for token
 * generation, which reads every weight once per token.
 *
 * It measures the buffer twice: on 4 KB pages (MADV_NOHUGEPAGE, what a plain
 * malloc gets when transparent huge pages are in "madvise" mode) and on 2 MB
 * pages (qai_alloc_huge, what the repacked weights get), so the bound we
 * compare generation against is the best this machine can do, not one our
 * own allocation choice moved.
 *
 * usage: bench_membw [MODEL.gguf]  — with a model, also the generation bound
 * in tokens/s (weight bytes read per token / bandwidth) for both page sizes. */
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "qai/base.h"
#include "qai/model.h"

typedef struct {
    const uint8_t *buf;
    size_t size;
    double sink[64];
} job;

__attribute__((target("avx2"))) static void read_slice(void *arg, int ith, int nth) {
    job *j = arg;
    size_t per = j->size / (size_t)nth / 128 * 128;
    const __m256i *p = (const __m256i *)(j->buf + per * (size_t)ith), *e = (const __m256i *)(j->buf + per * (size_t)(ith + 1));
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    for (; p + 4 <= e; p += 4) {
        a0 = _mm256_xor_si256(a0, _mm256_load_si256(p));
        a1 = _mm256_xor_si256(a1, _mm256_load_si256(p + 1));
        a2 = _mm256_xor_si256(a2, _mm256_load_si256(p + 2));
        a3 = _mm256_xor_si256(a3, _mm256_load_si256(p + 3));
    }
    a0 = _mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3));
    j->sink[ith] = (double)_mm256_extract_epi64(a0, 0);
}

/* Best of 5 passes, GB/s. */
static double measure(const uint8_t *buf, size_t size, int nt) {
    qai_pool *pool = qai_pool_new(nt);
    job j = {.buf = buf, .size = size};
    double best = 0;
    for (int rep = 0; rep < 5; rep++) {
        uint64_t t0 = qai_time_ns();
        qai_pool_run(pool, read_slice, &j);
        double gbs = (double)size / (double)(qai_time_ns() - t0);
        if (gbs > best) best = gbs;
    }
    qai_pool_free(pool);
    return best;
}

int main(int argc, char **argv) {
    const size_t size = (size_t)1 << 30;
    double bw[2][2]; /* [huge][threads - 1] */
    for (int huge = 0; huge < 2; huge++) {
        uint8_t *buf = qai_alloc_huge(size, 0);
        if (!buf) {
            fprintf(stderr, "bench_membw: %s\n", qai_last_error());
            return 1;
        }
#ifdef MADV_NOHUGEPAGE
        if (!huge) madvise(buf, size, MADV_NOHUGEPAGE); /* before the first touch: 4 KB pages only */
#endif
        memset(buf, 1, size);
        size_t hb = qai_huge_page_bytes(buf, size);
        for (int nt = 1; nt <= 2; nt++) bw[huge][nt - 1] = measure(buf, size, nt);
        if (huge && hb < size)
            printf("  (only %.0f of %.0f MB got huge pages: transparent huge pages off or memory fragmented)\n", hb / 1e6,
                   size / 1e6);
        if (!huge && hb) printf("  (%.0f MB got huge pages despite MADV_NOHUGEPAGE)\n", hb / 1e6);
        qai_free_huge(buf, size);
    }
    /* one line per thread count ending in the 2 MB number, which bench/run.sh
     * takes as the bound ($(NF-1) of the "2 threads" line) */
    for (int nt = 1; nt <= 2; nt++)
        printf("memory read bandwidth, %d thread%s: 4 KB pages %.1f GB/s, 2 MB pages %.1f GB/s\n", nt, nt > 1 ? "s" : "",
               bw[0][nt - 1], bw[1][nt - 1]);
    printf("2 MB / 4 KB pages: %.2fx on 1 thread, %.2fx on 2\n", bw[1][0] / bw[0][0], bw[1][1] / bw[0][1]);
    if (argc > 1) {
        setenv("QAI_NO_REPACK", "1", 1); /* only the sizes are needed: zero-copy, fast */
        qai_model *m = NULL;
        if (qai_model_open(argv[1], &m) != QAI_OK) {
            fprintf(stderr, "bench_membw: %s\n", qai_last_error());
            return 1;
        }
        double gb = (double)qai_model_weight_bytes(m) / 1e9;
        qai_model_close(m);
        printf("%s: %.3f GB of weights read per token\n", argv[1], gb);
        for (int nt = 1; nt <= 2; nt++)
            printf("generation bound, -t %d: 4 KB pages %.1f tok/s, 2 MB pages %.1f tok/s\n", nt, bw[0][nt - 1] / gb,
                   bw[1][nt - 1] / gb);
    }
    return 0;
}
