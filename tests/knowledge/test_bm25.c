/* BM25: tokenization (case folding, splitting, stop words, Porter step 1 on
 * the examples of Porter's paper), scores against a hand-computed example and
 * against an independent scorer on random documents, add/replace/remove
 * (metamorphic: removing equals never adding), filters, and file round trips
 * with truncated and corrupted files rejected. */
#include <stdlib.h>
#include <string.h>

#include "knowledge/bm25_file.h"
#include "qai/index.h"
#include "test.h"

typedef struct {
    char toks[64][80];
    int n;
} toklist;
static void take(void *ctx, const char *t, size_t n) {
    toklist *l = ctx;
    if (l->n < 64 && n < 80) {
        memcpy(l->toks[l->n], t, n);
        l->toks[l->n++][n] = 0;
    }
}

static void check_tokens(const char *text, const char *const *want, int nwant) {
    toklist l = {.n = 0};
    CHECK_OK(qai_bm25_tokenize(text, strlen(text), take, &l));
    CHECK_EQ_INT(l.n, nwant);
    for (int i = 0; i < l.n && i < nwant; i++) CHECK_MSG(!strcmp(l.toks[i], want[i]), "token %d: '%s' != '%s'", i, l.toks[i], want[i]);
}

static void test_stem(void) {
    /* Porter (1980), step 1 examples */
    static const char *ex[][2] = {
        {"caresses", "caress"}, {"ponies", "poni"},   {"ties", "ti"},        {"caress", "caress"},   {"cats", "cat"},
        {"feed", "feed"},       {"agreed", "agree"},  {"plastered", "plaster"}, {"bled", "bled"},   {"motoring", "motor"},
        {"sing", "sing"},       {"conflated", "conflate"}, {"troubled", "trouble"}, {"sized", "size"}, {"hopping", "hop"},
        {"tanned", "tan"},      {"falling", "fall"},  {"hissing", "hiss"},   {"fizzed", "fizz"},     {"failing", "fail"},
        {"filing", "file"},     {"happy", "happi"},   {"sky", "sky"},        {"is", "is"},           {"running", "run"},
    };
    for (size_t i = 0; i < sizeof ex / sizeof *ex; i++) {
        char w[32];
        size_t n = strlen(ex[i][0]);
        memcpy(w, ex[i][0], n);
        n = qai_stem_porter1(w, n);
        w[n] = 0;
        CHECK_MSG(!strcmp(w, ex[i][1]), "%s -> %s, expected %s", ex[i][0], w, ex[i][1]);
    }
    CHECK(qai_is_stopword("the", 3));
    CHECK(qai_is_stopword("yourselves", 10));
    CHECK(qai_is_stopword("a", 1));
    CHECK(!qai_is_stopword("dog", 3));
    CHECK(!qai_is_stopword("th", 2));
    CHECK(!qai_is_stopword("zzz", 3));
}

static void test_tokenize(void) {
    const char *w1[] = {"run", "dog", "café", "au", "lait", "école", "42x", "file", "mount", "8"};
    check_tokens("The Running DOGS, café-au-lait; ÉCOLE 42x \xef\xac\x81le -- mount(8)", w1, 10);
    const char *w2[] = {"ok"};
    char longtok[200];
    memset(longtok, 'q', 100);
    strcpy(longtok + 100, " ok");
    check_tokens(longtok, w2, 1); /* a token over 64 bytes is dropped, not split */
    check_tokens("", NULL, 0);
    check_tokens("the and of", NULL, 0);
    toklist l = {.n = 0};
    CHECK_EQ_INT(qai_bm25_tokenize("ab\xff" "cd", 5, take, &l), QAI_ERR_FORMAT);
    CHECK_MSG(strstr(qai_last_error(), "byte 2"), "%s", qai_last_error());
}

static const char *D1 = "The quick brown fox";
static const char *D2 = "A lazy dog, a quick dog";
static const char *D3 = "Dogs and cats";

static void test_hand_example(void) {
    /* k1 = 1.2, b = 0.75. Tokens: d10 [quick brown fox] |D|=3; d20 [lazi dog quick dog] |D|=4;
     * d30 [dog cat] |D|=2; N = 3, avgdl = 3. Query "quick dogs" -> [quick dog].
     * idf(quick) = idf(dog) = ln(1 + (3 - 2 + 0.5) / (2 + 0.5)) = ln 1.6 = 0.4700036
     * d10: quick tf 1, K = 1.2 (0.25 + 0.75 * 3/3) = 1.2: 0.4700036 * 2.2 / 2.2            = 0.4700036
     * d20: K = 1.2 (0.25 + 0.75 * 4/3) = 1.5: quick 2.2 / 2.5 = 0.88, dog 2 * 2.2 / 3.5 = 1.2571429
     *      0.4700036 * (0.88 + 1.2571429)                                                = 1.0044649
     * d30: K = 1.2 (0.25 + 0.75 * 2/3) = 0.9: dog 2.2 / 1.9 = 1.1578947 * 0.4700036      = 0.5442147 */
    qai_bm25 *bm = qai_bm25_new(NULL);
    CHECK_OK(qai_bm25_add(bm, 10, D1, strlen(D1)));
    CHECK_OK(qai_bm25_add(bm, 20, D2, strlen(D2)));
    CHECK_OK(qai_bm25_add(bm, 30, D3, strlen(D3)));
    CHECK_EQ_INT(qai_bm25_size(bm), 3);
    CHECK_EQ_INT(qai_bm25_terms(bm), 6); /* quick brown fox lazi dog cat */
    qai_hit h[5];
    int n;
    CHECK_OK(qai_bm25_search(bm, "quick dogs", 5, NULL, NULL, h, &n));
    CHECK_EQ_INT(n, 3);
    uint64_t ids[3] = {20, 30, 10};
    float want[3] = {1.0044649f, 0.5442147f, 0.4700036f}, got[3];
    for (int i = 0; i < 3 && i < n; i++) {
        CHECK_EQ_INT(h[i].id, ids[i]);
        got[i] = h[i].score;
    }
    CHECK_CLOSE("bm25 scores", got, want, 3, 1e-6f, 1e-5f);
    /* no shared term: nothing */
    CHECK_OK(qai_bm25_search(bm, "zebra the", 5, NULL, NULL, h, &n));
    CHECK_EQ_INT(n, 0);
    /* k limits */
    CHECK_OK(qai_bm25_search(bm, "quick dogs", 2, NULL, NULL, h, &n));
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_INT(h[1].id, 30);

    /* removing d30 equals an index that never had it */
    CHECK_OK(qai_bm25_remove(bm, 30));
    CHECK_EQ_INT(qai_bm25_remove(bm, 30), QAI_ERR_NOT_FOUND);
    CHECK_EQ_INT(qai_bm25_terms(bm), 5);
    qai_bm25 *ref = qai_bm25_new(NULL);
    qai_bm25_add(ref, 10, D1, strlen(D1));
    qai_bm25_add(ref, 20, D2, strlen(D2));
    qai_hit a[5], b[5];
    int na, nb;
    qai_bm25_search(bm, "quick dogs cats fox", 5, NULL, NULL, a, &na);
    qai_bm25_search(ref, "quick dogs cats fox", 5, NULL, NULL, b, &nb);
    CHECK_EQ_INT(na, nb);
    for (int i = 0; i < na && i < nb; i++) CHECK(a[i].id == b[i].id && a[i].score == b[i].score);
    /* replacing a document's text */
    CHECK_OK(qai_bm25_add(bm, 10, "zebra crossing", 14));
    CHECK_EQ_INT(qai_bm25_size(bm), 2);
    CHECK_OK(qai_bm25_search(bm, "fox", 5, NULL, NULL, h, &n));
    CHECK_EQ_INT(n, 0);
    CHECK_OK(qai_bm25_search(bm, "zebras", 5, NULL, NULL, h, &n));
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(h[0].id, 10);
    CHECK_EQ_INT(qai_bm25_add(bm, 11, "bad \xc3", 5), QAI_ERR_FORMAT);
    CHECK_EQ_INT(qai_bm25_size(bm), 2);
    qai_bm25_free(bm);
    qai_bm25_free(ref);
}

/* ---- random documents against an independent scorer ---- */

#define NDOC 400
static char *docs[NDOC];
static const char *vocab[] = {"alpha", "beta", "gamma", "delta", "disk", "mount", "network", "socket", "file", "kernel",
                              "memory", "page", "cache", "thread", "lock", "signal", "process", "user", "group", "shell"};

static bool odd_only(void *ctx, uint64_t id) { return id % 2 == 1; }

static double ref_score(const char *query, int ndoc, bool *live, double k1, double b, int d) {
    /* every vocabulary word is its own stem and no stop word, so plain word splitting is the tokenization */
    int len[NDOC], N = 0;
    double total = 0;
    for (int i = 0; i < ndoc; i++) {
        if (!live[i]) continue;
        int c = 1;
        for (const char *p = docs[i]; *p; p++) c += *p == ' ';
        len[i] = c;
        total += c;
        N++;
    }
    double avgdl = total / N, s = 0;
    char q[256];
    strcpy(q, query);
    for (char *t = strtok(q, " "); t; t = strtok(NULL, " ")) {
        int df = 0, tf = 0;
        for (int i = 0; i < ndoc; i++) {
            if (!live[i]) continue;
            int c = 0;
            char buf[4096];
            strcpy(buf, docs[i]);
            char *save;
            for (char *w = strtok_r(buf, " ", &save); w; w = strtok_r(NULL, " ", &save)) c += !strcmp(w, t);
            df += c > 0;
            if (i == d) tf = c;
        }
        if (!tf) continue;
        double idf = log(1 + (N - df + 0.5) / (df + 0.5));
        s += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len[d] / avgdl));
    }
    return s;
}

static void test_random(const char *tmp) {
    qai_rng r;
    qai_rng_seed(&r, 8);
    qai_bm25_params prm = {1.5f, 0.6f};
    qai_bm25 *bm = qai_bm25_new(&prm);
    bool live[NDOC];
    for (int i = 0; i < NDOC; i++) {
        int n = 1 + (int)(qai_rng_u64(&r) % 30);
        docs[i] = malloc(4096);
        docs[i][0] = 0;
        for (int j = 0; j < n; j++) {
            /* Zipf-ish: low words more often */
            int w = (int)(qai_rng_float(&r) * qai_rng_float(&r) * 20);
            if (j) strcat(docs[i], " ");
            strcat(docs[i], vocab[w]);
        }
        CHECK_OK(qai_bm25_add(bm, (uint64_t)i, docs[i], strlen(docs[i])));
        live[i] = true;
    }
    for (int i = 0; i < NDOC; i += 7) {
        qai_bm25_remove(bm, (uint64_t)i);
        live[i] = false;
    }
    const char *queries[] = {"alpha", "disk mount", "shell group user", "socket socket kernel", "cache page lock thread"};
    for (int qi = 0; qi < 5; qi++) {
        qai_hit h[20];
        int n;
        CHECK_OK(qai_bm25_search(bm, queries[qi], 20, NULL, NULL, h, &n));
        CHECK(n > 0);
        int bad = 0;
        for (int i = 0; i < n; i++) {
            CHECK(live[h[i].id]);
            double want = ref_score(queries[qi], NDOC, live, 1.5, 0.6, (int)h[i].id);
            if (fabs(want - h[i].score) > 1e-4 * (1 + want) && bad++ < 3)
                fprintf(stderr, "query '%s' doc %llu: %g != %g\n", queries[qi], (unsigned long long)h[i].id, h[i].score, want);
            if (i) CHECK(h[i - 1].score > h[i].score || (h[i - 1].score == h[i].score && h[i - 1].id < h[i].id));
        }
        CHECK_EQ_INT(bad, 0);
        /* nothing outside the list scores higher than its last entry */
        double best_out = 0;
        for (int d = 0; d < NDOC; d++) {
            if (!live[d]) continue;
            bool in = false;
            for (int i = 0; i < n; i++) in |= h[i].id == (uint64_t)d;
            if (!in) {
                double s = ref_score(queries[qi], NDOC, live, 1.5, 0.6, d);
                best_out = s > best_out ? s : best_out;
            }
        }
        CHECK(n < 20 || best_out <= h[n - 1].score + 1e-4);
        /* filters */
        qai_hit f[20];
        int nf;
        CHECK_OK(qai_bm25_search(bm, queries[qi], 20, odd_only, NULL, f, &nf));
        for (int i = 0; i < nf; i++) CHECK(f[i].id % 2 == 1);
    }
    /* save / load: the same answers */
    char p[512];
    snprintf(p, sizeof p, "%s/bm25.qbm", tmp);
    CHECK_OK(qai_bm25_save(bm, p));
    qai_bm25 *b2 = NULL;
    CHECK_OK(qai_bm25_load(p, &b2));
    if (!b2) return;
    CHECK_EQ_INT(qai_bm25_size(b2), qai_bm25_size(bm));
    CHECK_EQ_INT(qai_bm25_terms(b2), qai_bm25_terms(bm));
    for (int qi = 0; qi < 5; qi++) {
        qai_hit a[30], b[30];
        int na, nb;
        qai_bm25_search(bm, queries[qi], 30, NULL, NULL, a, &na);
        qai_bm25_search(b2, queries[qi], 30, NULL, NULL, b, &nb);
        CHECK_EQ_INT(na, nb);
        for (int i = 0; i < na && i < nb; i++) CHECK(a[i].id == b[i].id && a[i].score == b[i].score);
    }
    /* a loaded index keeps working: add and remove */
    CHECK_OK(qai_bm25_add(b2, 100000, "zeta alpha", 10));
    CHECK_OK(qai_bm25_remove(b2, 1));
    qai_hit h1;
    int n1;
    qai_bm25_search(b2, "zeta", 1, NULL, NULL, &h1, &n1);
    CHECK_EQ_INT(n1, 1);
    CHECK_EQ_INT(h1.id, 100000);
    CHECK_EQ_INT(qai_bm25_size(b2), qai_bm25_size(bm));
    qai_bm25_free(b2);

    /* truncated and corrupted files */
    FILE *f = fopen(p, "rb");
    fseek(f, 0, SEEK_END);
    size_t n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *data = malloc(n);
    CHECK(fread(data, 1, n, f) == n);
    fclose(f);
    size_t cuts[] = {0, 5, 127, 128, 500, n / 2, n - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        qai_bm25 *x = NULL;
        CHECK_EQ_INT(qai_bm25_load_buffer(data, cuts[i], "t.qbm", &x), QAI_ERR_FORMAT);
        CHECK(x == NULL);
    }
    for (int t = 0; t < 30; t++) {
        size_t at = t < 8 ? (size_t)(qai_rng_u64(&r) % 112) : 128 + (size_t)(qai_rng_u64(&r) % (n - 128));
        data[at] ^= 0x10;
        qai_bm25 *x = NULL;
        CHECK_MSG(qai_bm25_load_buffer(data, n, "t.qbm", &x) == QAI_ERR_FORMAT, "flip at %zu accepted", at);
        CHECK(strstr(qai_last_error(), "t.qbm") != NULL);
        data[at] ^= 0x10;
    }
    /* forged: a document length that disagrees with its postings, checksums redone */
    qai_bm25_header h;
    memcpy(&h, data, sizeof h);
    data[h.docs_off + 8] ^= 1;
    h.body_hash = qai_idx_hash(data + 128, (size_t)(h.strings_off + h.strings_size - 128));
    h.header_hash = qai_idx_hash(&h, 104);
    memcpy(data, &h, sizeof h);
    qai_bm25 *x = NULL;
    CHECK_EQ_INT(qai_bm25_load_buffer(data, n, "t.qbm", &x), QAI_ERR_FORMAT);
    CHECK_MSG(strstr(qai_last_error(), "document 0 (offset 128)"), "%s", qai_last_error());
    free(data);
    qai_bm25_free(bm);
    for (int i = 0; i < NDOC; i++) free(docs[i]);
}

/* ASCII text takes a fast path without utf8proc; a leading no-break space
 * (NFKC: a space, so a separator) sends the same text through the general
 * path, which must give the same tokens. Random bytes 0..127 with long runs
 * of letters (tokens over the 64-byte cap), digits, case and controls. */
static void test_ascii_path(void) {
    qai_rng r;
    qai_rng_seed(&r, 77);
    static char a[2100], b[2100];
    int mismatches = 0;
    for (int it = 0; it < 400; it++) {
        size_t n = 0, len = 1 + qai_rng_u64(&r) % 2000;
        while (n < len) {
            uint64_t k = qai_rng_u64(&r) % 10;
            size_t run = k < 2 ? 1 + qai_rng_u64(&r) % 80 : 1 + qai_rng_u64(&r) % 8;
            for (size_t j = 0; j < run && n < len; j++)
                a[n++] = (char)(k < 6 ? "aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789"[qai_rng_u64(&r) % 36]
                                      : (int)(qai_rng_u64(&r) % 128));
        }
        memcpy(b, "\xc2\xa0", 2);
        memcpy(b + 2, a, n);
        toklist la = {.n = 0}, lb = {.n = 0};
        CHECK_OK(qai_bm25_tokenize(a, n, take, &la));
        CHECK_OK(qai_bm25_tokenize(b, n + 2, take, &lb));
        bool same = la.n == lb.n;
        for (int i = 0; same && i < la.n; i++) same = !strcmp(la.toks[i], lb.toks[i]);
        mismatches += !same;
    }
    CHECK_EQ_INT(mismatches, 0);
}

int main(void) {
    const char *tmp = getenv("QAI_TMP");
    test_ascii_path();
    test_stem();
    test_tokenize();
    test_hand_example();
    test_random(tmp ? tmp : "/tmp");
    qai_bm25_params bad = {-1, 0.5f};
    CHECK(qai_bm25_new(&bad) == NULL);
    return test_summary();
}
