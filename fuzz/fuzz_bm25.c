/* libFuzzer harness for the BM25 file reader and the retrieval tokenizer:
 * loads the input as a BM25 index as given and with its checksums recomputed
 * (so mutations reach the structural checks), searches, adds and removes on
 * success; and indexes the raw input as document text. Any crash, overread or
 * sanitizer report is a bug. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qai/index.h"

uint64_t qai_idx_hash(const void *data, size_t n); /* libqai internal, layout in src/knowledge/bm25_file.h */

static volatile uint64_t sink;

static void tok(void *ctx, const char *t, size_t n) { sink += n + (uint8_t)t[0]; }

static void exercise(qai_bm25 *bm) {
    qai_hit h[8];
    int n;
    const char *qs[] = {"alpha beta", "disk mount network", "a", "the running dogs"};
    for (int i = 0; i < 4; i++)
        if (qai_bm25_search(bm, qs[i], 8, NULL, NULL, h, &n) == QAI_OK)
            for (int j = 0; j < n; j++) {
                sink += h[j].id;
                qai_bm25_remove(bm, h[j].id);
            }
    qai_bm25_add(bm, 42, "alpha beta gamma", 16);
    qai_bm25_add(bm, 42, "delta", 5);
    sink += qai_bm25_size(bm) + qai_bm25_terms(bm);
}

static void try_load(const uint8_t *data, size_t size) {
    qai_bm25 *bm = NULL;
    if (qai_bm25_load_buffer(data, size, "fuzz.qbm", &bm) != QAI_OK) {
        sink += strlen(qai_last_error());
        return;
    }
    exercise(bm);
    qai_bm25_free(bm);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    try_load(buf, size);
    if (size >= 128) {
        uint64_t soff, slen;
        memcpy(&soff, buf + 80, 8);
        memcpy(&slen, buf + 88, 8);
        if (soff >= 128 && soff <= size && slen <= size - soff) {
            uint64_t hh = qai_idx_hash(buf + 128, (size_t)(soff + slen - 128));
            memcpy(buf + 96, &hh, 8);
        }
        uint64_t hh = qai_idx_hash(buf, 104);
        memcpy(buf + 104, &hh, 8);
        try_load(buf, size);
    }
    qai_bm25_tokenize((const char *)data, size, tok, NULL);
    qai_bm25 *bm = qai_bm25_new(NULL);
    if (bm && qai_bm25_add(bm, 1, (const char *)data, size) == QAI_OK) {
        qai_hit h[4];
        int n;
        char q[64];
        size_t m = size < 63 ? size : 63;
        memcpy(q, data, m);
        q[m] = 0;
        qai_bm25_search(bm, q, 4, NULL, NULL, h, &n);
        sink += (uint64_t)n;
    }
    qai_bm25_free(bm);
    free(buf);
    return 0;
}
