/* libFuzzer harness for the dense index file reader: opens the input as an
 * index twice — as given, and with its section and header checksums
 * recomputed (so mutations reach the structural checks behind them) — and on
 * success searches it (with and without a filter, at several ef), modifies it
 * (add, update, remove) and compacts small ones. Any crash, overread or
 * sanitizer report is a bug in the reader. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qai/index.h"

uint64_t qai_idx_hash(const void *data, size_t n); /* libqai internal, layout in src/knowledge/index_file.h */

static volatile uint64_t sink;

static bool odd(void *ctx, uint64_t id) { return id & 1; }

static void exercise(qai_index *ix) {
    const qai_index_params *p = qai_index_get_params(ix);
    int d = p->dim;
    float *q = malloc((size_t)d * sizeof *q);
    for (int i = 0; i < d; i++) q[i] = (float)((i * 7) % 5) - 2.f + 0.25f;
    qai_hit h[16];
    int n;
    int efs[] = {0, 1, 16, 200};
    for (int e = 0; e < 4; e++) {
        qai_search_opts so = {.ef = efs[e], .filter = e & 1 ? odd : NULL};
        if (qai_index_search(ix, q, 16, &so, h, &n) == QAI_OK)
            for (int i = 0; i < n; i++) sink += h[i].id + (uint64_t)(h[i].score == h[i].score);
    }
    sink += qai_index_size(ix) + qai_index_deleted(ix) + qai_index_memory(ix);
    if (qai_index_size(ix) < 5000) {
        float *v = malloc((size_t)d * sizeof *v);
        if (n > 0 && qai_index_get_vector(ix, h[0].id, v) == QAI_OK) sink += (uint64_t)(v[0] == v[0]);
        qai_index_add(ix, 123456789, q);
        qai_index_add(ix, 123456789, q); /* update */
        if (n > 0) qai_index_remove(ix, h[0].id);
        qai_index_compact(ix, NULL);
        if (qai_index_search(ix, q, 4, NULL, h, &n) == QAI_OK) sink += (uint64_t)n;
        free(v);
    }
    free(q);
}

static void try_open(const uint8_t *data, size_t size) {
    qai_index *ix = NULL;
    if (qai_index_open_buffer(data, size, "fuzz.qvi", &ix) != QAI_OK) {
        sink += strlen(qai_last_error());
        return;
    }
    exercise(ix);
    qai_index_free(ix);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* the reader wants an aligned buffer, as a mapping is */
    uint8_t *buf = aligned_alloc(64, (size + 63) / 64 * 64 + 64);
    if (!buf) return 0;
    memcpy(buf, data, size);
    try_open(buf, size);
    if (size >= 512) {
        for (int i = 0; i < 9; i++) {
            uint64_t off, len;
            memcpy(&off, buf + 112 + 16 * i, 8);
            memcpy(&len, buf + 120 + 16 * i, 8);
            if (off <= size && len <= size - off) {
                uint64_t hh = qai_idx_hash(buf + off, (size_t)len);
                memcpy(buf + 256 + 8 * i, &hh, 8);
            }
        }
        uint64_t hh = qai_idx_hash(buf, 328);
        memcpy(buf + 328, &hh, 8);
        try_open(buf, size);
    }
    free(buf);
    return 0;
}
