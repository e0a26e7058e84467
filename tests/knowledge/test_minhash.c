/* MinHash and LSH: the signature equals an independent re-implementation of
 * the documented hash (FNV-1a shingles, splitmix64 permutations) on ASCII
 * text; the estimate tracks the exact Jaccard similarity of the shingle sets
 * (computed here by sorting shingle strings) across the range; NFKC casefold
 * makes width/case variants equal; LSH finds planted near-duplicates, agrees
 * with brute force, and leaves unrelated texts alone. */
#include <ctype.h>
#include <stdlib.h>

#include "qai/ingest.h"
#include "test.h"

/* ---- independent reference: documented hash on lowercase ASCII ---- */

static uint64_t sm64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static int split_words(const char *t, char words[][32], int max) {
    int n = 0;
    size_t i = 0, L = strlen(t);
    while (i < L && n < max) {
        while (i < L && !isalnum((unsigned char)t[i])) i++;
        size_t s = i;
        while (i < L && isalnum((unsigned char)t[i])) i++;
        if (i > s) {
            size_t l = i - s < 31 ? i - s : 31;
            for (size_t k = 0; k < l; k++) words[n][k] = (char)tolower((unsigned char)t[s + k]);
            words[n][l] = 0;
            n++;
        }
    }
    return n;
}

static void ref_minhash(const char *t, int k, uint32_t out[QAI_MINHASH_K]) {
    static char w[4096][32];
    int n = split_words(t, w, 4096);
    uint64_t seeds[QAI_MINHASH_K], s = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < QAI_MINHASH_K; i++) seeds[i] = s = sm64(s);
    for (int i = 0; i < QAI_MINHASH_K; i++) out[i] = UINT32_MAX;
    int nsh = n >= k ? n - k + 1 : (n > 0);
    for (int a = 0; a < nsh; a++) {
        uint64_t h = 0xcbf29ce484222325ull;
        int m = n >= k ? k : n;
        for (int j = 0; j < m; j++) {
            if (j) h = (h ^ ' ') * 0x100000001b3ull;
            for (const char *p = w[a + j]; *p; p++) h = (h ^ (unsigned char)*p) * 0x100000001b3ull;
        }
        for (int i = 0; i < QAI_MINHASH_K; i++) {
            uint32_t v = (uint32_t)(sm64(h ^ seeds[i]) >> 32);
            if (v < out[i]) out[i] = v;
        }
    }
}

/* exact Jaccard of the k-shingle sets (as strings) */
static int cmpstr(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int shingles(const char *t, int k, char ***out) {
    static char w[4096][32];
    int n = split_words(t, w, 4096);
    int ns = n >= k ? n - k + 1 : (n > 0);
    char **s = malloc(sizeof(char *) * (size_t)(ns ? ns : 1));
    for (int a = 0; a < ns; a++) {
        s[a] = malloc(32 * (size_t)k + 1);
        s[a][0] = 0;
        for (int j = 0; j < k && a + j < n; j++) {
            if (j) strcat(s[a], " ");
            strcat(s[a], w[a + j]);
        }
    }
    qsort(s, (size_t)ns, sizeof *s, cmpstr);
    int u = 0;
    for (int a = 0; a < ns; a++) {
        if (u && !strcmp(s[u - 1], s[a])) {
            free(s[a]);
            continue;
        }
        s[u++] = s[a];
    }
    *out = s;
    return u;
}

static double exact_jaccard(const char *a, const char *b, int k) {
    char **sa, **sb;
    int na = shingles(a, k, &sa), nb = shingles(b, k, &sb);
    int i = 0, j = 0, inter = 0;
    while (i < na && j < nb) {
        int c = strcmp(sa[i], sb[j]);
        if (c == 0) inter++, i++, j++;
        else if (c < 0) i++;
        else j++;
    }
    for (int x = 0; x < na; x++) free(sa[x]);
    for (int x = 0; x < nb; x++) free(sb[x]);
    free(sa);
    free(sb);
    int uni = na + nb - inter;
    return uni ? (double)inter / uni : 1.0;
}

/* ---- random texts ---- */

static char vocab[2000][12];

static void make_vocab(qai_rng *r) {
    for (int i = 0; i < 2000; i++) {
        int l = 3 + (int)(qai_rng_u64(r) % 7);
        for (int k = 0; k < l; k++) vocab[i][k] = (char)('a' + qai_rng_u64(r) % 26);
        vocab[i][l] = 0;
    }
}

/* n words into ids */
static void rand_ids(qai_rng *r, int *ids, int n) {
    for (int i = 0; i < n; i++) ids[i] = (int)(qai_rng_u64(r) % 2000);
}

static char *render(const int *ids, int n) {
    char *t = malloc((size_t)n * 12 + 1);
    size_t l = 0;
    for (int i = 0; i < n; i++) l += (size_t)sprintf(t + l, i ? " %s" : "%s", vocab[ids[i]]);
    t[l] = 0;
    return t;
}

static void test_reference(void) {
    const char *texts[] = {"The quick brown fox jumps over the lazy dog, again and again!",
                           "one two three", "", "a", "Alpha beta GAMMA delta epsilon zeta eta theta iota kappa"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        for (int k = 1; k <= 5; k += 2) {
            qai_minhash m;
            uint32_t ref[QAI_MINHASH_K];
            qai_minhash_text(texts[i], strlen(texts[i]), k, &m);
            ref_minhash(texts[i], k, ref);
            CHECK_MSG(!memcmp(m.h, ref, sizeof ref), "text %zu k %d: slot0 %u vs %u", i, k, m.h[0], ref[0]);
        }
    qai_minhash a, b;
    qai_minhash_text("x y z", 5, 0, &a); /* shingle_words <= 0 means 5 */
    qai_minhash_text("x y z", 5, 5, &b);
    CHECK(!memcmp(&a, &b, sizeof a));
    qai_minhash_text("", 0, 5, &a);
    for (int i = 0; i < QAI_MINHASH_K; i++) CHECK(a.h[i] == UINT32_MAX);
}

static void test_normalization(void) {
    qai_minhash a, b;
    const char *x = "\xef\xbc\xa6\xef\xbd\x95\xef\xbd\x8c\xef\xbd\x8c width STRASSE Caf\xc3\xa9 na\xc3\xafve text here";
    const char *y = "full WIDTH stra\xc3\x9f" "e cafe\xcc\x81 nai\xcc\x88ve   text,  here.";
    qai_minhash_text(x, strlen(x), 5, &a);
    qai_minhash_text(y, strlen(y), 5, &b);
    CHECK_MSG(qai_minhash_jaccard(&a, &b) == 1.0, "NFKC casefold: %g", qai_minhash_jaccard(&a, &b));
    /* invalid UTF-8 does not crash and is deterministic */
    const char *bad = "abc \xff\xfe def \xc3 ghi jkl mno pqr";
    qai_minhash_text(bad, strlen(bad), 5, &a);
    qai_minhash_text(bad, strlen(bad), 5, &b);
    CHECK(!memcmp(&a, &b, sizeof a));
}

static void test_estimate(void) {
    qai_rng r;
    qai_rng_seed(&r, 77);
    int pairs = 0, within = 0, bins[5] = {0};
    double max_err = 0, sum_err = 0;
    static int ida[400], idb[400];
    for (int it = 0; it < 300; it++) {
        int n = 100 + (int)(qai_rng_u64(&r) % 300);
        rand_ids(&r, ida, n);
        memcpy(idb, ida, sizeof(int) * (size_t)n);
        /* change a fraction of positions: spreads Jaccard over [0, 1] */
        double frac = (double)(qai_rng_u64(&r) % 1000) / 1000.0;
        frac = frac * frac * 0.5;
        for (int i = 0; i < n; i++)
            if ((double)(qai_rng_u64(&r) % 10000) / 10000.0 < frac) idb[i] = (int)(qai_rng_u64(&r) % 2000);
        char *ta = render(ida, n), *tb = render(idb, n);
        double ex = exact_jaccard(ta, tb, 5);
        qai_minhash ma, mb;
        qai_minhash_text(ta, strlen(ta), 5, &ma);
        qai_minhash_text(tb, strlen(tb), 5, &mb);
        double est = qai_minhash_jaccard(&ma, &mb);
        double err = est > ex ? est - ex : ex - est;
        pairs++;
        within += err <= 0.1;
        sum_err += err;
        if (err > max_err) max_err = err;
        bins[ex >= 1.0 ? 4 : (int)(ex * 5) > 4 ? 4 : (int)(ex * 5)]++;
        free(ta);
        free(tb);
    }
    fprintf(stderr, "minhash: %d pairs, %d within 0.1, mean |err| %.4f, max %.4f; Jaccard bins %d %d %d %d %d\n", pairs,
            within, sum_err / pairs, max_err, bins[0], bins[1], bins[2], bins[3], bins[4]);
    /* K = 128: the standard error is at most 0.044, so a few pairs in a hundred may stray past 0.1 */
    CHECK(within >= pairs * 97 / 100);
    CHECK(sum_err / pairs < 0.04);
    CHECK(max_err < 0.2);
    for (int b = 0; b < 5; b++) CHECK(bins[b] >= 10); /* the whole range was exercised */
}

static void test_lsh(void) {
    qai_lsh *l;
    CHECK_EQ_INT(qai_lsh_new(0, &l), QAI_ERR_ARG);
    CHECK_EQ_INT(qai_lsh_new(1.5, &l), QAI_ERR_ARG);
    CHECK_OK(qai_lsh_new(0.8, &l));
    int b, rws;
    qai_lsh_params(l, &b, &rws);
    CHECK_EQ_INT(b, 21);
    CHECK_EQ_INT(rws, 6);
    qai_rng r;
    qai_rng_seed(&r, 5);
    enum { N = 1500, L = 200 };
    static int ids[N][L];
    static qai_minhash sig[N];
    for (int i = 0; i < N; i++) {
        rand_ids(&r, ids[i], L);
        char *t = render(ids[i], L);
        qai_minhash_text(t, strlen(t), 5, &sig[i]);
        free(t);
        CHECK(qai_lsh_check_insert(l, (uint64_t)i, &sig[i]) == UINT64_MAX);
    }
    CHECK_EQ_INT(qai_lsh_count(l), N);
    /* near duplicates: 1-3 words changed (exact Jaccard ~0.86-0.95) must be found */
    int found = 0, wrong = 0, planted = 0, inserted = 0;
    static int q[L];
    for (int t = 0; t < 300; t++) {
        int src = (int)(qai_rng_u64(&r) % N);
        memcpy(q, ids[src], sizeof q);
        int edits = 1 + (int)(qai_rng_u64(&r) % 3);
        for (int e = 0; e < edits; e++) q[qai_rng_u64(&r) % L] = (int)(qai_rng_u64(&r) % 2000);
        char *txt = render(q, L);
        qai_minhash m;
        qai_minhash_text(txt, strlen(txt), 5, &m);
        free(txt);
        planted++;
        uint64_t got = qai_lsh_check_insert(l, 100000 + (uint64_t)t, &m);
        if (got == (uint64_t)src) found++;
        else if (got != UINT64_MAX) wrong++;
        if (got == UINT64_MAX) inserted++;
        if (got == UINT64_MAX && qai_minhash_jaccard(&m, &sig[src]) < 0.8) planted--; /* the estimate itself fell below */
    }
    fprintf(stderr, "lsh: %d of %d planted near-duplicates found, %d wrong\n", found, planted, wrong);
    CHECK(found >= planted * 99 / 100);
    CHECK_EQ_INT(wrong, 0);
    CHECK_EQ_INT(qai_lsh_count(l), N + inserted); /* duplicates are not inserted */
    /* unrelated texts: none matches, all are inserted; agrees with brute force */
    int fp = 0;
    for (int t = 0; t < 300; t++) {
        rand_ids(&r, q, L);
        char *txt = render(q, L);
        qai_minhash m;
        qai_minhash_text(txt, strlen(txt), 5, &m);
        free(txt);
        double best = 0;
        for (int i = 0; i < N; i++) {
            double j = qai_minhash_jaccard(&m, &sig[i]);
            if (j > best) best = j;
        }
        CHECK(best < 0.2);
        if (qai_lsh_check_insert(l, 200000 + (uint64_t)t, &m) != UINT64_MAX) fp++;
    }
    CHECK_EQ_INT(fp, 0);
    CHECK_EQ_INT(qai_lsh_count(l), N + inserted + 300);
    qai_lsh_free(l);
    /* other thresholds pick other bandings, each >= 0.99 at the threshold */
    double ts[] = {0.5, 0.7, 0.9, 0.95, 1.0};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) {
        CHECK_OK(qai_lsh_new(ts[i], &l));
        qai_lsh_params(l, &b, &rws);
        double p = 1 - pow(1 - pow(ts[i], rws), b);
        CHECK(b * rws <= QAI_MINHASH_K && p >= 0.99);
        qai_lsh_free(l);
    }
}

/* ASCII text skips utf8proc; a leading no-break space (NFKC: a space) sends
 * the same words through the general path: the signatures must be equal. */
static void test_ascii_path(void) {
    qai_rng r;
    qai_rng_seed(&r, 91);
    static char a[1200], b[1200];
    int mismatches = 0;
    for (int it = 0; it < 200; it++) {
        size_t n = 0, len = 1 + qai_rng_u64(&r) % 1000;
        while (n < len) {
            uint64_t k = qai_rng_u64(&r) % 10;
            a[n++] = (char)(k < 7 ? "aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789"[qai_rng_u64(&r) % 36]
                                  : (int)(1 + qai_rng_u64(&r) % 127));
        }
        memcpy(b, "\xc2\xa0", 2);
        memcpy(b + 2, a, n);
        qai_minhash ma, mb;
        qai_minhash_text(a, n, 5, &ma);
        qai_minhash_text(b, n + 2, 5, &mb);
        mismatches += memcmp(&ma, &mb, sizeof ma) != 0;
    }
    CHECK_EQ_INT(mismatches, 0);
}

int main(void) {
    qai_rng r;
    qai_rng_seed(&r, 2024);
    test_ascii_path();
    make_vocab(&r);
    test_reference();
    test_normalization();
    test_estimate();
    test_lsh();
    return test_summary();
}
