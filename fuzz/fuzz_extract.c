/* libFuzzer harness for document extraction: the first byte picks the format
 * (plain text, Markdown, HTML, man, JSONL, CSV, or detection by content), the
 * rest is the file. Every document that comes out is checked (valid UTF-8,
 * NUL-terminated, sections inside the text and in order), chunked with two
 * budgets (the 4-byte estimate and a word counter) with the chunk invariants
 * checked, MinHashed and PII-redacted; the raw bytes are MinHashed and
 * redacted too. A violated invariant traps, so the fuzzer reports it.
 * PDF is not fuzzed here (it runs an external program). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qai/ingest.h"

size_t qai_utf8_seq(const unsigned char *s, size_t n); /* libqai internal (src/knowledge/ingest_internal.h) */

static volatile uint64_t sink;

#define REQUIRE(c)                                                                                                     \
    do {                                                                                                               \
        if (!(c)) __builtin_trap();                                                                                    \
    } while (0)

static int words(void *ctx, const char *t, size_t n) {
    (void)ctx;
    int k = 0;
    for (size_t i = 0; i < n; i++)
        if ((i == 0 || t[i - 1] == ' ' || t[i - 1] == '\n') && t[i] != ' ' && t[i] != '\n') k++;
    return k + (int)(n / 16);
}

static void check_chunks(const qai_doc *d, const qai_chunk_opts *o) {
    qai_chunk *c;
    int n;
    if (qai_chunk_doc(d, o, &c, &n) != QAI_OK) return;
    for (int i = 0; i < n; i++) {
        REQUIRE(c[i].start < c[i].end && c[i].end <= d->len);
        REQUIRE(((unsigned char)d->text[c[i].start] & 0xC0) != 0x80);
        REQUIRE(c[i].end == d->len || ((unsigned char)d->text[c[i].end] & 0xC0) != 0x80);
        size_t l = c[i].end - c[i].start;
        int tk = o->count ? o->count(NULL, d->text + c[i].start, l) : (int)((l + 3) / 4);
        REQUIRE(tk <= o->max_tokens || l <= 4);
        REQUIRE(c[i].section_path != NULL);
        sink += l;
    }
    qai_chunks_free(c, n);
}

static void check_doc(const qai_doc *d) {
    REQUIRE(d->text && d->text[d->len] == 0);
    for (size_t i = 0; i < d->len;) {
        size_t l = qai_utf8_seq((const unsigned char *)d->text + i, d->len - i);
        REQUIRE(l > 0);
        i += l;
    }
    for (int s = 0; s < d->n_sections; s++) {
        REQUIRE(d->sections[s].start <= d->sections[s].end && d->sections[s].end <= d->len);
        REQUIRE(s == 0 || d->sections[s].start >= d->sections[s - 1].start);
        REQUIRE(d->sections[s].title != NULL);
    }
    qai_chunk_opts o = qai_chunk_default_opts();
    check_chunks(d, &o);
    o.max_tokens = 12;
    o.overlap_tokens = 3;
    o.count = words;
    check_chunks(d, &o);
    qai_minhash m;
    qai_minhash_text(d->text, d->len, 5, &m);
    sink += m.h[0];
    char *r;
    size_t rn;
    if (qai_pii_redact(d->text, d->len, &r, &rn, NULL) == QAI_OK) {
        sink += rn;
        qai_free(r);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    static const qai_doc_type types[8] = {QAI_DOC_TEXT,  QAI_DOC_MARKDOWN, QAI_DOC_HTML, QAI_DOC_MAN,
                                          QAI_DOC_JSONL, QAI_DOC_CSV,      QAI_DOC_UNKNOWN, QAI_DOC_MAN};
    qai_doc_type t = types[data[0] & 7];
    const char *name = (data[0] & 8) ? "fuzz.md" : "fuzz";
    /* a private copy exactly size bytes long, so overreads are caught */
    size_t n = size - 1;
    char *buf = malloc(n ? n : 1);
    if (!buf) return 0;
    memcpy(buf, data + 1, n);
    qai_doc_list dl;
    if (qai_doc_extract(name, buf, n, t, &dl) == QAI_OK) {
        REQUIRE(dl.type != QAI_DOC_PDF);
        for (int i = 0; i < dl.n_docs; i++) check_doc(&dl.docs[i]);
        qai_doc_list_free(&dl);
    }
    int bad = 0;
    if ((t == QAI_DOC_JSONL || t == QAI_DOC_CSV) && qai_doc_extract_records(name, buf, n, t, &dl, &bad) == QAI_OK) {
        for (int i = 0; i < dl.n_docs; i++) check_doc(&dl.docs[i]);
        qai_doc_list_free(&dl);
    }
    qai_doc_type dt;
    if (qai_doc_detect(name, buf, n, &dt) == QAI_OK) sink += (uint64_t)dt;
    qai_minhash m;
    qai_minhash_text(buf, n, 3, &m);
    char *r;
    size_t rn;
    if (qai_pii_redact(buf, n, &r, &rn, NULL) == QAI_OK) qai_free(r);
    free(buf);
    return 0;
}
