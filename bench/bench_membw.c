/* Memory read bandwidth: streams a 1 GiB buffer (far larger than caches) with
 * 256-bit loads on 1 and 2 threads and prints GB/s — the ceiling for token
 * generation, which reads every weight once per token. */
#include <immintrin.h>
#include <stdio.h>
#include <string.h>

#include "qai/base.h"

typedef struct {
    const uint8_t *buf;
    size_t size;
    double sink[64];
} job;

__attribute__((target("avx2"))) static void read_slice(void *arg, int ith, int nth) {
    job *j = arg;
    size_t per = j->size / (size_t)nth / 64 * 64;
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

int main(int argc, char **argv) {
    size_t size = (size_t)1 << 30;
    uint8_t *buf = qai_aligned_alloc(size);
    if (!buf) return 1;
    memset(buf, 1, size);
    for (int nt = 1; nt <= 2; nt++) {
        qai_pool *pool = qai_pool_new(nt);
        job j = {.buf = buf, .size = size};
        double best = 0;
        for (int rep = 0; rep < 5; rep++) {
            uint64_t t0 = qai_time_ns();
            qai_pool_run(pool, read_slice, &j);
            double gbs = (double)size / (double)(qai_time_ns() - t0);
            if (gbs > best) best = gbs;
        }
        printf("memory read bandwidth, %d thread%s: %.1f GB/s\n", nt, nt > 1 ? "s" : "", best);
        qai_pool_free(pool);
    }
    qai_aligned_free(buf);
    (void)argc;
    (void)argv;
    return 0;
}
