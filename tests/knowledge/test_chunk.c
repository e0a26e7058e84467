/* Chunking: section paths on the Markdown fixture, and properties on random
 * documents: chunks cover all non-whitespace text, never exceed the budget
 * (counted by the same tokenizer: the 4-byte estimate and a word-counting
 * callback), start and end on UTF-8 character boundaries, never cross a
 * section start unless they are merged siblings, and consecutive pieces of one
 * section overlap by at most overlap_tokens. */
#include <stdlib.h>

#include "qai/ingest.h"
#include "test.h"

static const char *testdata(const char *name) {
    static char buf[4096];
    const char *d = getenv("QAI_TESTDATA");
    snprintf(buf, sizeof buf, "%s/ingest/%s", d ? d : "tests/data", name);
    return buf;
}

static bool isws(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; }

/* a stand-in tokenizer: one token per whitespace-separated word plus one per 8 bytes of a word */
static int count_words(void *ctx, const char *t, size_t n) {
    int *calls = ctx;
    if (calls) (*calls)++;
    int k = 0;
    size_t i = 0;
    while (i < n) {
        while (i < n && isws(t[i])) i++;
        size_t s = i;
        while (i < n && !isws(t[i])) i++;
        if (i > s) k += 1 + (int)((i - s) / 8);
    }
    return k;
}

static int count(const qai_chunk_opts *o, const char *t, size_t n) {
    return o->count ? o->count(o->count_ctx, t, n) : (int)((n + 3) / 4);
}

/* checks every invariant; returns the number of violations */
static int check_chunks(const qai_doc *d, const qai_chunk_opts *o, const qai_chunk *c, int n) {
    int bad = 0;
    unsigned char *covered = calloc(d->len + 1, 1);
    for (int i = 0; i < n; i++) {
        if (!(c[i].start < c[i].end && c[i].end <= d->len)) {
            fprintf(stderr, "chunk %d: bad span [%zu,%zu)\n", i, c[i].start, c[i].end);
            bad++;
            continue;
        }
        if (i && c[i].start < c[i - 1].start) bad++, fprintf(stderr, "chunk %d out of order\n", i);
        int tk = count(o, d->text + c[i].start, c[i].end - c[i].start);
        if (tk > o->max_tokens) {
            /* allowed only for a single character */
            size_t l = c[i].end - c[i].start;
            if (l > 4) bad++, fprintf(stderr, "chunk %d: %d tokens > %d\n", i, tk, o->max_tokens);
        }
        unsigned char s0 = (unsigned char)d->text[c[i].start];
        unsigned char e0 = c[i].end < d->len ? (unsigned char)d->text[c[i].end] : 0;
        if ((s0 & 0xC0) == 0x80 || (e0 & 0xC0) == 0x80) bad++, fprintf(stderr, "chunk %d: cuts a UTF-8 sequence\n", i);
        if (isws(d->text[c[i].start]) || isws(d->text[c[i].end - 1])) bad++, fprintf(stderr, "chunk %d: untrimmed\n", i);
        /* section starts strictly inside a chunk: only for merged siblings (path = parent's, shorter) */
        for (int s = 0; s < d->n_sections; s++) {
            size_t st = d->sections[s].start;
            if (st > c[i].start && st < c[i].end) {
                /* the section's own path would be longer than the chunk's */
                size_t depth = 0;
                for (int k = 0; k <= s; k++)
                    if (d->sections[k].start <= st && d->sections[k].end > st) depth++;
                size_t seps = 0;
                for (const char *p = c[i].section_path; (p = strstr(p, " > ")); p += 3) seps++;
                size_t cdepth = c[i].section_path[0] ? seps + 1 : 0;
                if (cdepth >= depth && !(depth == 1 && cdepth == 0)) {
                    /* a heading-only section joined with its first child is also allowed */
                    bool joined = s > 0 && d->sections[s - 1].start == c[i].start;
                    if (!joined) bad++, fprintf(stderr, "chunk %d crosses section %d\n", i, s);
                }
            }
        }
        /* overlap with the previous chunk: only within a section, at most overlap_tokens */
        if (i && c[i].start < c[i - 1].end) {
            int ov = count(o, d->text + c[i].start, c[i - 1].end - c[i].start);
            if (ov > o->overlap_tokens) bad++, fprintf(stderr, "chunk %d: overlap %d > %d\n", i, ov, o->overlap_tokens);
            if (strcmp(c[i].section_path, c[i - 1].section_path) != 0) bad++;
        }
        for (size_t k = c[i].start; k < c[i].end; k++) covered[k] = 1;
    }
    for (size_t k = 0; k < d->len; k++)
        if (!covered[k] && !isws(d->text[k])) {
            fprintf(stderr, "byte %zu ('%c') not covered\n", k, d->text[k]);
            bad++;
            break;
        }
    free(covered);
    return bad;
}

static void test_markdown_paths(void) {
    qai_doc_list dl;
    CHECK_OK(qai_doc_read_file(testdata("sample.md"), &dl));
    const qai_doc *d = &dl.docs[0];
    qai_chunk *c;
    int n;
    /* default budget: Install and Setext Title are small siblings and merge under their parent */
    qai_chunk_opts o = qai_chunk_default_opts();
    CHECK_OK(qai_chunk_doc(d, &o, &c, &n));
    const char *want[] = {"", "Getting Started", "Getting Started", "Getting Started > Setext Title > Deep",
                          "Second Top"};
    const char *starts[] = {"---", "# Getting", "## Install", "### Deep", "Second Top"};
    CHECK_EQ_INT(n, 5);
    for (int i = 0; i < n && i < 5; i++) {
        CHECK_MSG(!strcmp(c[i].section_path, want[i]), "chunk %d path '%s' want '%s'", i, c[i].section_path, want[i]);
        CHECK(!strncmp(d->text + c[i].start, starts[i], strlen(starts[i])));
    }
    if (n == 5) CHECK(strstr(d->text + c[2].start, "Text under setext.") < d->text + c[2].end);
    CHECK_EQ_INT(check_chunks(d, &o, c, n), 0);
    qai_chunks_free(c, n);
    /* a small budget: no merging, each section its own path */
    o.max_tokens = 20;
    o.overlap_tokens = 4;
    CHECK_OK(qai_chunk_doc(d, &o, &c, &n));
    CHECK_EQ_INT(check_chunks(d, &o, c, n), 0);
    bool saw_install = false, saw_setext = false;
    for (int i = 0; i < n; i++) {
        const char *t = d->text + c[i].start;
        if (!strncmp(t, "## Install", 10)) saw_install = !strcmp(c[i].section_path, "Getting Started > Install");
        if (!strncmp(t, "Setext Title", 12)) saw_setext = !strcmp(c[i].section_path, "Getting Started > Setext Title");
        if (strstr(c[i].section_path, "Install")) CHECK(c[i].end <= d->sections[1].end);
    }
    CHECK(saw_install && saw_setext);
    qai_chunks_free(c, n);
    qai_doc_list_free(&dl);
}

static void test_man_paths(void) {
    qai_doc_list dl;
    CHECK_OK(qai_doc_read_file(testdata("sample.1"), &dl));
    const qai_doc *d = &dl.docs[0];
    qai_chunk_opts o = qai_chunk_default_opts();
    o.max_tokens = 30;
    o.overlap_tokens = 5;
    qai_chunk *c;
    int n;
    CHECK_OK(qai_chunk_doc(d, &o, &c, &n));
    CHECK_EQ_INT(check_chunks(d, &o, c, n), 0);
    bool opt = false, tbl = false;
    for (int i = 0; i < n; i++) {
        if (strstr(d->text + c[i].start, "Be verbose") && strstr(d->text + c[i].start, "Be verbose") < d->text + c[i].end)
            opt = !strcmp(c[i].section_path, "DESCRIPTION > Options");
        if (!strncmp(d->text + c[i].start, "Table", 5)) tbl = !strcmp(c[i].section_path, "DESCRIPTION > Table");
    }
    CHECK(opt && tbl);
    qai_chunks_free(c, n);
    qai_doc_list_free(&dl);
}

static const char *words[] = {"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa",
                              "caf\xc3\xa9", "\xce\xbb\xce\xbf\xce\xb3\xce\xbf\xcf\x82", "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
                              "\xf0\x9f\x98\x80", "x", "supercalifragilisticexpialidocious"};

static void test_random_docs(void) {
    qai_rng r;
    qai_rng_seed(&r, 1234);
    int total_bad = 0, docs = 0, chunks_seen = 0;
    for (int it = 0; it < 300; it++) {
        /* a random Markdown document */
        size_t cap = 1 << 16, len = 0;
        char *buf = malloc(cap);
        int paras = 1 + (int)(qai_rng_u64(&r) % 30);
        for (int p = 0; p < paras && len + 4096 < cap; p++) {
            uint64_t kind = qai_rng_u64(&r) % 10;
            if (kind == 0) len += (size_t)sprintf(buf + len, "%.*s heading %d\n\n", 1 + (int)(qai_rng_u64(&r) % 3), "###", p);
            else if (kind == 1) { /* one enormous word */
                int wl = (int)(qai_rng_u64(&r) % 600);
                for (int k = 0; k < wl; k++) buf[len++] = (char)('a' + k % 26);
                buf[len++] = '\n';
                buf[len++] = '\n';
            } else if (kind == 2) { /* a run of multibyte characters without spaces */
                int wl = (int)(qai_rng_u64(&r) % 200);
                for (int k = 0; k < wl; k++) len += (size_t)sprintf(buf + len, "\xe6\x97\xa5");
                buf[len++] = '\n';
            } else {
                int sents = 1 + (int)(qai_rng_u64(&r) % 8);
                for (int s = 0; s < sents; s++) {
                    int nw = 1 + (int)(qai_rng_u64(&r) % 25);
                    for (int w = 0; w < nw; w++)
                        len += (size_t)sprintf(buf + len, "%s%s", w ? " " : "", words[qai_rng_u64(&r) % 16]);
                    len += (size_t)sprintf(buf + len, "%s", qai_rng_u64(&r) % 4 ? ". " : ".\n");
                }
                len += (size_t)sprintf(buf + len, "\n\n");
            }
        }
        qai_doc_list dl;
        if (qai_doc_extract("r.md", buf, len, QAI_DOC_MARKDOWN, &dl) != QAI_OK) {
            CHECK(0);
            free(buf);
            continue;
        }
        int calls = 0;
        qai_chunk_opts o = qai_chunk_default_opts();
        o.max_tokens = 8 + (int)(qai_rng_u64(&r) % 120);
        o.overlap_tokens = (int)(qai_rng_u64(&r) % (uint64_t)(o.max_tokens / 2 + 1));
        if (it % 2) {
            o.count = count_words;
            o.count_ctx = &calls;
        }
        qai_chunk *c;
        int n;
        qai_status st = qai_chunk_doc(&dl.docs[0], &o, &c, &n);
        CHECK_OK(st);
        if (st == QAI_OK) {
            int b = check_chunks(&dl.docs[0], &o, c, n);
            if (b) fprintf(stderr, "random doc %d (max %d overlap %d, %s) has %d violations\n", it, o.max_tokens,
                           o.overlap_tokens, o.count ? "word counter" : "estimate", b);
            total_bad += b;
            chunks_seen += n;
            /* deterministic */
            qai_chunk *c2;
            int n2;
            if (qai_chunk_doc(&dl.docs[0], &o, &c2, &n2) == QAI_OK) {
                bool same = n2 == n;
                for (int i = 0; same && i < n; i++) same = c[i].start == c2[i].start && c[i].end == c2[i].end;
                CHECK(same);
                qai_chunks_free(c2, n2);
            }
            qai_chunks_free(c, n);
        }
        docs++;
        qai_doc_list_free(&dl);
        free(buf);
    }
    fprintf(stderr, "random: %d docs, %d chunks, %d violations\n", docs, chunks_seen, total_bad);
    CHECK_EQ_INT(total_bad, 0);
}

static void test_edges(void) {
    qai_doc d = {0};
    qai_chunk *c;
    int n;
    char text[] = "  \n\n \t \n";
    d.text = text;
    d.len = strlen(text);
    CHECK_OK(qai_chunk_doc(&d, NULL, &c, &n));
    CHECK_EQ_INT(n, 0);
    qai_chunks_free(c, n);
    d.text = "";
    d.len = 0;
    CHECK_OK(qai_chunk_doc(&d, NULL, &c, &n));
    CHECK_EQ_INT(n, 0);
    qai_chunks_free(c, n);
    qai_chunk_opts o = qai_chunk_default_opts();
    CHECK_EQ_INT(o.max_tokens, 256);
    CHECK_EQ_INT(o.overlap_tokens, 32);
    o.overlap_tokens = 256;
    CHECK_EQ_INT(qai_chunk_doc(&d, &o, &c, &n), QAI_ERR_ARG);
    o.max_tokens = 0;
    CHECK_EQ_INT(qai_chunk_doc(&d, &o, &c, &n), QAI_ERR_ARG);
    /* sections outside the text are rejected */
    qai_doc_section s = {0, 100, 1, "x"};
    char t2[] = "short";
    d.text = t2;
    d.len = 5;
    d.sections = &s;
    d.n_sections = 1;
    CHECK_EQ_INT(qai_chunk_doc(&d, NULL, &c, &n), QAI_ERR_ARG);
    /* a sentence split: a long paragraph of sentences breaks after sentence ends */
    char para[2000] = "";
    for (int i = 0; i < 40; i++) strcat(para, "This is a sentence of words. ");
    qai_doc d2 = {.text = para, .len = strlen(para)};
    o = qai_chunk_default_opts();
    o.max_tokens = 20;
    o.overlap_tokens = 0;
    CHECK_OK(qai_chunk_doc(&d2, &o, &c, &n));
    CHECK(n > 1);
    for (int i = 0; i < n; i++) CHECK(para[c[i].end - 1] == '.');
    CHECK_EQ_INT(check_chunks(&d2, &o, c, n), 0);
    qai_chunks_free(c, n);
    /* overlap: the second chunk starts inside the first */
    o.overlap_tokens = 6;
    CHECK_OK(qai_chunk_doc(&d2, &o, &c, &n));
    CHECK(n > 1 && c[1].start < c[0].end);
    CHECK_EQ_INT(check_chunks(&d2, &o, c, n), 0);
    qai_chunks_free(c, n);
}

/* a megabyte-long "word" with a real (counting) tokenizer: cut at character boundaries with a
 * logarithmic number of token counts per piece */
static void test_blob(void) {
    size_t n = 1 << 20;
    char *blob = malloc(n + 1);
    for (size_t i = 0; i < n; i++) blob[i] = (char)('A' + (i * 7) % 26);
    memcpy(blob + 1000, "\xc3\xa9\xc3\xa9\xc3\xa9", 6);
    blob[n] = 0;
    qai_doc d = {.text = blob, .len = n};
    int calls = 0;
    qai_chunk_opts o = qai_chunk_default_opts();
    o.count = count_words;
    o.count_ctx = &calls;
    qai_chunk *c;
    int nc;
    CHECK_OK(qai_chunk_doc(&d, &o, &c, &nc));
    o.count_ctx = NULL;
    CHECK_EQ_INT(check_chunks(&d, &o, c, nc), 0);
    /* each chunk holds close to the budget: 256 tokens of 8 bytes each, about 2 KB */
    CHECK(nc > 0 && nc < (int)(n / 1500));
    fprintf(stderr, "blob: %d chunks, %d token counts\n", nc, calls);
    CHECK(calls < nc * 40);
    qai_chunks_free(c, nc);
    free(blob);
}

int main(void) {
    test_blob();
    test_markdown_paths();
    test_man_paths();
    test_random_docs();
    test_edges();
    return test_summary();
}
