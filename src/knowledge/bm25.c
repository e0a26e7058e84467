/*
 * The BM25 inverted index: retrieval tokenization (qai_bm25_tokenize), a term
 * dictionary (open-addressing hash over a string arena), postings (doc slot,
 * tf) per term kept sorted by slot, a forward list of each document's terms
 * so removal is exact (df and avgdl only ever count live documents), top-k
 * search term-at-a-time with a dense score array, and a validated,
 * atomically written file (layout in bm25_file.h / docs/index.md).
 *
 * What it deliberately does not do: phrase or proximity queries, fields, or
 * store the text.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "knowledge/bm25_file.h"
#include "knowledge/index_internal.h"

#define MAX_TOKEN 64

typedef struct {
    uint32_t doc, tf;
} posting;

typedef struct {
    uint32_t off, len; /* in the string arena */
    posting *p;
    uint32_t n, cap;
} term;

struct qai_bm25 {
    qai_bm25_params prm;
    /* documents by slot */
    uint64_t *ids;
    uint32_t *len;
    uint32_t **fwd; /* distinct term ids of each document; NULL once removed */
    uint32_t *nfwd;
    bool *live;
    size_t n_slots, cap_slots, n_live;
    uint64_t total_len;
    uint32_t *dmap; /* id -> slot + 1 */
    size_t dmap_cap;
    /* terms */
    term *terms;
    size_t n_terms, cap_terms, n_active; /* active: df > 0 */
    uint32_t *tmap; /* term hash -> term + 1 */
    size_t tmap_cap;
    char *arena;
    size_t arena_len, arena_cap;
};

/* ---- tokenization ------------------------------------------------------------- */

static bool ascii_word(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }

static bool is_word_cp(utf8proc_int32_t c) {
    if (c < 0x80) return ascii_word((unsigned char)c);
    switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT: case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
    case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_MC: return true;
    default: return false;
    }
}

static void emit_token(char *t, size_t n, qai_bm25_term_fn fn, void *ctx) {
    if (n == 0 || n > MAX_TOKEN) return;
    if (qai_is_stopword(t, n)) return;
    bool ascii_alpha = true;
    for (size_t i = 0; i < n; i++)
        if (t[i] < 'a' || t[i] > 'z') ascii_alpha = false;
    if (ascii_alpha) n = qai_stem_porter1(t, n);
    fn(ctx, t, n);
}

static bool all_ascii(const char *s, size_t n) {
    unsigned char any = 0;
    for (size_t i = 0; i < n; i++) any |= (unsigned char)s[i];
    return any < 0x80;
}

/* ASCII text: NFKC casefolding is lowercasing, and the word characters are
 * the letters and digits (the only ASCII code points in the word categories),
 * so this gives the same tokens as the general path without utf8proc. */
static void tokenize_ascii(const char *text, size_t n, qai_bm25_term_fn fn, void *ctx) {
    char tok[MAX_TOKEN + 8];
    size_t tl = 0;
    bool too_long = false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)text[i];
        if (ascii_word(c)) {
            if (tl < MAX_TOKEN) tok[tl++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
            else
                too_long = true;
        } else {
            if (!too_long) emit_token(tok, tl, fn, ctx);
            tl = 0;
            too_long = false;
        }
    }
    if (!too_long) emit_token(tok, tl, fn, ctx);
}

qai_status qai_bm25_tokenize(const char *text, size_t n, qai_bm25_term_fn fn, void *ctx) {
    if (!n) return QAI_OK;
    if ((utf8proc_ssize_t)n < 0) return qai_error(QAI_ERR_ARG, "text of %zu bytes is too large", n);
    if (all_ascii(text, n)) {
        tokenize_ascii(text, n, fn, ctx);
        return QAI_OK;
    }
    utf8proc_uint8_t *folded = NULL;
    utf8proc_ssize_t m = utf8proc_map((const utf8proc_uint8_t *)text, (utf8proc_ssize_t)n, &folded,
                                      UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT | UTF8PROC_CASEFOLD);
    if (m < 0) {
        /* find the offending byte for the message */
        utf8proc_ssize_t off = 0;
        utf8proc_int32_t c;
        while (off < (utf8proc_ssize_t)n) {
            utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)text + off, (utf8proc_ssize_t)n - off, &c);
            if (k <= 0) break;
            off += k;
        }
        return qai_error(m == UTF8PROC_ERROR_NOMEM ? QAI_ERR_NOMEM : QAI_ERR_FORMAT, "text: %s at byte %zd",
                         utf8proc_errmsg(m), off);
    }
    char tok[MAX_TOKEN + 8];
    size_t tl = 0;
    bool too_long = false;
    for (utf8proc_ssize_t i = 0; i < m;) {
        utf8proc_int32_t c;
        utf8proc_ssize_t k = utf8proc_iterate(folded + i, m - i, &c);
        if (k <= 0) break; /* cannot happen: utf8proc_map produced it */
        if (is_word_cp(c)) {
            if (tl + (size_t)k <= MAX_TOKEN) {
                memcpy(tok + tl, folded + i, (size_t)k);
                tl += (size_t)k;
            } else {
                too_long = true;
            }
        } else {
            if (!too_long) emit_token(tok, tl, fn, ctx);
            tl = 0;
            too_long = false;
        }
        i += k;
    }
    if (!too_long) emit_token(tok, tl, fn, ctx);
    free(folded); /* allocated by utf8proc with malloc */
    return QAI_OK;
}

/* ---- lifetime ------------------------------------------------------------------- */

qai_bm25 *qai_bm25_new(const qai_bm25_params *params) {
    qai_bm25_params p = {1.2f, 0.75f};
    if (params) p = *params;
    if (!(p.k1 >= 0 && p.k1 <= 100) || !(p.b >= 0 && p.b <= 1)) {
        qai_error(QAI_ERR_ARG, "bm25: k1 = %g must be in 0..100 and b = %g in 0..1", p.k1, p.b);
        return NULL;
    }
    qai_bm25 *bm = qai_calloc(1, sizeof *bm);
    if (bm) bm->prm = p;
    return bm;
}

void qai_bm25_free(qai_bm25 *bm) {
    if (!bm) return;
    for (size_t i = 0; i < bm->n_slots; i++) qai_free(bm->fwd[i]);
    for (size_t t = 0; t < bm->n_terms; t++) qai_free(bm->terms[t].p);
    qai_free(bm->ids);
    qai_free(bm->len);
    qai_free(bm->fwd);
    qai_free(bm->nfwd);
    qai_free(bm->live);
    qai_free(bm->dmap);
    qai_free(bm->terms);
    qai_free(bm->tmap);
    qai_free(bm->arena);
    qai_free(bm);
}

size_t qai_bm25_size(const qai_bm25 *bm) { return bm->n_live; }
size_t qai_bm25_terms(const qai_bm25 *bm) { return bm->n_active; }

/* ---- maps ------------------------------------------------------------------------- */

static inline size_t mix64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return (size_t)x;
}

static size_t hash_str(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 0x100000001b3ull;
    return mix64(h);
}

static long dmap_find(const qai_bm25 *bm, uint64_t id) {
    if (!bm->dmap_cap) return -1;
    size_t mask = bm->dmap_cap - 1;
    for (size_t h = mix64(id) & mask;; h = (h + 1) & mask) {
        uint32_t v = bm->dmap[h];
        if (!v) return -1;
        if (bm->ids[v - 1] == id) return (long)h;
    }
}

static void dmap_put(qai_bm25 *bm, uint32_t slot) {
    size_t mask = bm->dmap_cap - 1;
    size_t h = mix64(bm->ids[slot]) & mask;
    while (bm->dmap[h]) h = (h + 1) & mask;
    bm->dmap[h] = slot + 1;
}

static void dmap_erase(qai_bm25 *bm, size_t h) {
    size_t mask = bm->dmap_cap - 1, i = h;
    for (size_t j = (i + 1) & mask; bm->dmap[j]; j = (j + 1) & mask) {
        size_t home = mix64(bm->ids[bm->dmap[j] - 1]) & mask;
        bool in_range = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!in_range) {
            bm->dmap[i] = bm->dmap[j];
            i = j;
        }
    }
    bm->dmap[i] = 0;
}

static qai_status dmap_reserve(qai_bm25 *bm, size_t live) {
    if (bm->dmap_cap && live * 2 <= bm->dmap_cap) return QAI_OK;
    size_t cap = 64;
    while (cap < live * 2 + 2) cap *= 2;
    uint32_t *m = qai_calloc(cap, sizeof *m);
    if (!m) return QAI_ERR_NOMEM;
    uint32_t *old = bm->dmap;
    size_t oc = bm->dmap_cap;
    bm->dmap = m;
    bm->dmap_cap = cap;
    for (size_t i = 0; i < oc; i++)
        if (old[i]) dmap_put(bm, old[i] - 1);
    qai_free(old);
    return QAI_OK;
}

static long term_find(const qai_bm25 *bm, const char *s, size_t n) {
    if (!bm->tmap_cap) return -1;
    size_t mask = bm->tmap_cap - 1;
    for (size_t h = hash_str(s, n) & mask;; h = (h + 1) & mask) {
        uint32_t v = bm->tmap[h];
        if (!v) return -1;
        const term *t = &bm->terms[v - 1];
        if (t->len == n && memcmp(bm->arena + t->off, s, n) == 0) return (long)(v - 1);
    }
}

static qai_status tmap_rehash(qai_bm25 *bm, size_t cap) {
    uint32_t *m = qai_calloc(cap, sizeof *m);
    if (!m) return QAI_ERR_NOMEM;
    qai_free(bm->tmap);
    bm->tmap = m;
    bm->tmap_cap = cap;
    for (size_t t = 0; t < bm->n_terms; t++) {
        size_t h = hash_str(bm->arena + bm->terms[t].off, bm->terms[t].len) & (cap - 1);
        while (m[h]) h = (h + 1) & (cap - 1);
        m[h] = (uint32_t)t + 1;
    }
    return QAI_OK;
}

/* The id of term s, added if new; -1 when out of memory. */
static long term_intern(qai_bm25 *bm, const char *s, size_t n) {
    long t = term_find(bm, s, n);
    if (t >= 0) return t;
    if (bm->n_terms >= UINT32_MAX - 1) return -1;
    if ((bm->n_terms + 1) * 2 > bm->tmap_cap) {
        size_t cap = bm->tmap_cap ? bm->tmap_cap * 2 : 1024;
        if (tmap_rehash(bm, cap) != QAI_OK) return -1;
    }
    if (bm->n_terms == bm->cap_terms) {
        size_t c = bm->cap_terms ? bm->cap_terms * 2 : 1024;
        term *nt = qai_realloc(bm->terms, c * sizeof *nt);
        if (!nt) return -1;
        bm->terms = nt;
        bm->cap_terms = c;
    }
    if (bm->arena_len + n > bm->arena_cap) {
        size_t c = bm->arena_cap ? bm->arena_cap : 1 << 16;
        while (c < bm->arena_len + n) c *= 2;
        if (c > UINT32_MAX) return -1;
        char *na = qai_realloc(bm->arena, c);
        if (!na) return -1;
        bm->arena = na;
        bm->arena_cap = c;
    }
    memcpy(bm->arena + bm->arena_len, s, n);
    term *tt = &bm->terms[bm->n_terms];
    *tt = (term){(uint32_t)bm->arena_len, (uint32_t)n, NULL, 0, 0};
    bm->arena_len += n;
    size_t mask = bm->tmap_cap - 1, h = hash_str(s, n) & mask;
    while (bm->tmap[h]) h = (h + 1) & mask;
    bm->tmap[h] = (uint32_t)bm->n_terms + 1;
    return (long)bm->n_terms++;
}

/* ---- add / remove ------------------------------------------------------------------ */

typedef struct {
    qai_bm25 *bm;
    uint32_t *tids;
    size_t n, cap;
    bool oom;
} collect;

static void collect_tok(void *ctx, const char *tok, size_t len) {
    collect *c = ctx;
    if (c->oom) return;
    long t = term_intern(c->bm, tok, len);
    if (t < 0) {
        c->oom = true;
        return;
    }
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 256;
        uint32_t *p = qai_realloc(c->tids, cap * sizeof *p);
        if (!p) {
            c->oom = true;
            return;
        }
        c->tids = p;
        c->cap = cap;
    }
    c->tids[c->n++] = (uint32_t)t;
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static void remove_slot(qai_bm25 *bm, uint32_t slot) {
    for (uint32_t i = 0; i < bm->nfwd[slot]; i++) {
        term *t = &bm->terms[bm->fwd[slot][i]];
        /* postings are sorted by slot: binary search, then close the gap */
        uint32_t lo = 0, hi = t->n;
        while (lo < hi) {
            uint32_t mid = (lo + hi) / 2;
            if (t->p[mid].doc < slot) lo = mid + 1;
            else hi = mid;
        }
        if (lo < t->n && t->p[lo].doc == slot) {
            memmove(t->p + lo, t->p + lo + 1, (t->n - lo - 1) * sizeof *t->p);
            if (--t->n == 0) bm->n_active--;
        }
    }
    qai_free(bm->fwd[slot]);
    bm->fwd[slot] = NULL;
    bm->nfwd[slot] = 0;
    bm->live[slot] = false;
    bm->total_len -= bm->len[slot];
    bm->n_live--;
}

qai_status qai_bm25_remove(qai_bm25 *bm, uint64_t id) {
    long h = dmap_find(bm, id);
    if (h < 0) return qai_error(QAI_ERR_NOT_FOUND, "bm25: no document %llu", (unsigned long long)id);
    uint32_t slot = bm->dmap[h] - 1;
    dmap_erase(bm, (size_t)h);
    remove_slot(bm, slot);
    return QAI_OK;
}

/* Appends a document whose distinct sorted term ids and tfs are given. */
static qai_status append_doc(qai_bm25 *bm, uint64_t id, uint32_t dlen, const uint32_t *tids, const uint32_t *tfs, size_t nt) {
    if (bm->n_slots >= UINT32_MAX - 1) return qai_error(QAI_ERR_RANGE, "bm25: too many documents");
    if (bm->n_slots == bm->cap_slots) {
        size_t c = bm->cap_slots ? bm->cap_slots * 2 : 256;
        uint64_t *ids = qai_realloc(bm->ids, c * sizeof *ids);
        if (ids) bm->ids = ids;
        uint32_t *len = ids ? qai_realloc(bm->len, c * sizeof *len) : NULL;
        if (len) bm->len = len;
        uint32_t **fwd = len ? qai_realloc(bm->fwd, c * sizeof *fwd) : NULL;
        if (fwd) bm->fwd = fwd;
        uint32_t *nfwd = fwd ? qai_realloc(bm->nfwd, c * sizeof *nfwd) : NULL;
        if (nfwd) bm->nfwd = nfwd;
        bool *live = nfwd ? qai_realloc(bm->live, c * sizeof *live) : NULL;
        if (!live) return QAI_ERR_NOMEM;
        bm->live = live;
        bm->cap_slots = c;
    }
    if (dmap_reserve(bm, bm->n_live + 1) != QAI_OK) return QAI_ERR_NOMEM;
    uint32_t *fw = NULL;
    if (nt) {
        fw = qai_malloc(nt * sizeof *fw);
        if (!fw) return QAI_ERR_NOMEM;
        for (size_t i = 0; i < nt; i++) {
            term *t = &bm->terms[tids[i]];
            if (t->n == t->cap) {
                uint32_t c = t->cap ? t->cap * 2 : 4;
                posting *p = qai_realloc(t->p, c * sizeof *p);
                if (!p) { /* nothing appended yet: capacity is reserved before any posting is added */
                    qai_free(fw);
                    return QAI_ERR_NOMEM;
                }
                t->p = p;
                t->cap = c;
            }
        }
        memcpy(fw, tids, nt * sizeof *fw);
    }
    uint32_t slot = (uint32_t)bm->n_slots++;
    for (size_t i = 0; i < nt; i++) {
        term *t = &bm->terms[tids[i]];
        if (t->n == 0) bm->n_active++;
        t->p[t->n++] = (posting){slot, tfs[i]};
    }
    bm->ids[slot] = id;
    bm->len[slot] = dlen;
    bm->fwd[slot] = fw;
    bm->nfwd[slot] = (uint32_t)nt;
    bm->live[slot] = true;
    bm->total_len += dlen;
    bm->n_live++;
    dmap_put(bm, slot);
    return QAI_OK;
}

qai_status qai_bm25_add(qai_bm25 *bm, uint64_t id, const char *text, size_t n) {
    if (n && !text) return qai_error(QAI_ERR_ARG, "bm25: no text");
    collect c = {.bm = bm};
    qai_status st = qai_bm25_tokenize(text, n, collect_tok, &c);
    if (!st && c.oom) st = qai_error(QAI_ERR_NOMEM, "bm25: out of memory indexing document %llu", (unsigned long long)id);
    if (st) {
        qai_free(c.tids);
        return st;
    }
    if (c.n > UINT32_MAX) {
        qai_free(c.tids);
        return qai_error(QAI_ERR_RANGE, "bm25: document %llu has too many tokens", (unsigned long long)id);
    }
    if (c.n > 1) qsort(c.tids, c.n, sizeof *c.tids, cmp_u32);
    uint32_t *tfs = qai_malloc((c.n ? c.n : 1) * sizeof *tfs);
    if (!tfs) {
        qai_free(c.tids);
        return QAI_ERR_NOMEM;
    }
    size_t nt = 0;
    for (size_t i = 0; i < c.n; i++) {
        if (nt && c.tids[nt - 1] == c.tids[i]) tfs[nt - 1]++;
        else {
            c.tids[nt] = c.tids[i];
            tfs[nt++] = 1;
        }
    }
    long h = dmap_find(bm, id);
    if (h >= 0) {
        uint32_t slot = bm->dmap[h] - 1;
        dmap_erase(bm, (size_t)h);
        remove_slot(bm, slot);
    }
    st = append_doc(bm, id, (uint32_t)c.n, c.tids, tfs, nt);
    qai_free(c.tids);
    qai_free(tfs);
    return st;
}

/* ---- search --------------------------------------------------------------------------- */

typedef struct {
    const qai_bm25 *bm;
    uint32_t *tids;
    size_t n, cap;
    bool oom;
} qcollect;

static void query_tok(void *ctx, const char *tok, size_t len) {
    qcollect *c = ctx;
    long t = term_find(c->bm, tok, len);
    if (t < 0 || c->oom) return;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 32;
        uint32_t *p = qai_realloc(c->tids, cap * sizeof *p);
        if (!p) {
            c->oom = true;
            return;
        }
        c->tids = p;
        c->cap = cap;
    }
    c->tids[c->n++] = (uint32_t)t;
}

static inline bool hit_worse(qai_hit a, qai_hit b) { return a.score < b.score || (a.score == b.score && a.id > b.id); }

/* min-heap on "worse first" of k hits: h[0] is the worst kept */
static void hit_sift_down(qai_hit *h, size_t n, size_t i) {
    qai_hit x = h[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && hit_worse(h[c + 1], h[c])) c++;
        if (!hit_worse(h[c], x)) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
}

static int cmp_hit_best(const void *a, const void *b) {
    qai_hit x = *(const qai_hit *)a, y = *(const qai_hit *)b;
    return hit_worse(x, y) ? 1 : hit_worse(y, x) ? -1 : 0;
}

void qai_topk_push(qai_hit *h, int k, int *n, qai_hit x) {
    if (*n < k) {
        size_t i = (size_t)(*n)++;
        while (i > 0) {
            size_t p = (i - 1) / 2;
            if (!hit_worse(x, h[p])) break;
            h[i] = h[p];
            i = p;
        }
        h[i] = x;
    } else if (hit_worse(h[0], x)) {
        h[0] = x;
        hit_sift_down(h, (size_t)k, 0);
    }
}
void qai_topk_sort(qai_hit *h, int n) {
    if (n > 1) qsort(h, (size_t)n, sizeof *h, cmp_hit_best);
}

qai_status qai_bm25_search(const qai_bm25 *bm, const char *query, int k, qai_filter_fn filter, void *filter_ctx,
                           qai_hit *out, int *n_out) {
    *n_out = 0;
    if (k < 0) return qai_error(QAI_ERR_ARG, "bm25: k = %d", k);
    if (!query) return qai_error(QAI_ERR_ARG, "bm25: no query");
    if (k == 0 || bm->n_live == 0) return QAI_OK;
    qcollect c = {.bm = bm};
    qai_status st = qai_bm25_tokenize(query, strlen(query), query_tok, &c);
    if (!st && c.oom) st = QAI_ERR_NOMEM;
    if (st || !c.n) {
        qai_free(c.tids);
        return st;
    }
    float *acc = qai_calloc(bm->n_slots, sizeof *acc);
    uint32_t *touched = qai_malloc(bm->n_slots * sizeof *touched);
    if (!acc || !touched) {
        qai_free(acc);
        qai_free(touched);
        qai_free(c.tids);
        return QAI_ERR_NOMEM;
    }
    size_t nt = 0;
    double N = (double)bm->n_live, avgdl = (double)bm->total_len / N;
    float k1 = bm->prm.k1, b = bm->prm.b;
    for (size_t q = 0; q < c.n; q++) {
        const term *t = &bm->terms[c.tids[q]];
        if (!t->n) continue;
        double df = t->n;
        float idf = (float)log(1.0 + (N - df + 0.5) / (df + 0.5));
        for (uint32_t i = 0; i < t->n; i++) {
            uint32_t d = t->p[i].doc;
            float tf = (float)t->p[i].tf;
            float norm = avgdl > 0 ? k1 * (1.f - b + b * (float)((double)bm->len[d] / avgdl)) : k1;
            if (acc[d] == 0) touched[nt++] = d;
            acc[d] += idf * tf * (k1 + 1.f) / (tf + norm);
        }
    }
    int n = 0;
    for (size_t i = 0; i < nt; i++) {
        uint32_t d = touched[i];
        if (!(acc[d] > 0)) continue;
        if (filter && !filter(filter_ctx, bm->ids[d])) continue;
        qai_topk_push(out, k, &n, (qai_hit){bm->ids[d], acc[d]});
    }
    qai_topk_sort(out, n);
    *n_out = n;
    qai_free(acc);
    qai_free(touched);
    qai_free(c.tids);
    return QAI_OK;
}

/* ---- files ----------------------------------------------------------------------------- */

qai_status qai_bm25_save(const qai_bm25 *bm, const char *path) {
    /* live documents renumbered 0..n_live-1 in slot order; active terms only */
    uint32_t *renum = qai_malloc((bm->n_slots ? bm->n_slots : 1) * sizeof *renum);
    uint32_t *tnum = qai_malloc((bm->n_terms ? bm->n_terms : 1) * sizeof *tnum);
    if (!renum || !tnum) {
        qai_free(renum);
        qai_free(tnum);
        return QAI_ERR_NOMEM;
    }
    uint32_t j = 0;
    for (size_t s = 0; s < bm->n_slots; s++) renum[s] = bm->live[s] ? j++ : UINT32_MAX;
    uint64_t n_post = 0, str_size = 0, nterm = 0;
    for (size_t t = 0; t < bm->n_terms; t++) {
        if (!bm->terms[t].n) continue;
        tnum[t] = (uint32_t)nterm++;
        n_post += bm->terms[t].n;
        str_size += bm->terms[t].len;
    }
    qai_bm25_header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, QAI_BM25_MAGIC, 8);
    h.version = QAI_BM25_VERSION;
    h.k1 = bm->prm.k1;
    h.b = bm->prm.b;
    h.n_docs = bm->n_live;
    h.n_terms = nterm;
    h.total_len = bm->total_len;
    h.n_postings = n_post;
    h.docs_off = sizeof h;
    h.terms_off = h.docs_off + h.n_docs * 16;
    h.postings_off = h.terms_off + nterm * 16;
    h.strings_off = h.postings_off + n_post * 8;
    h.strings_size = str_size;
    qai_atomic_file af;
    qai_status st = qai_atomic_open(path, &af);
    if (st) {
        qai_free(renum);
        qai_free(tnum);
        return st;
    }
    /* the body hash is computed while writing; the header goes last */
    bool ok = fwrite(&h, sizeof h, 1, af.f) == 1;
    qai_idx_hasher hs;
    qai_idx_hasher_init(&hs);
    for (size_t s = 0; s < bm->n_slots && ok; s++) {
        if (renum[s] == UINT32_MAX) continue;
        uint8_t rec[16];
        memcpy(rec, &bm->ids[s], 8);
        memcpy(rec + 8, &bm->len[s], 4);
        memset(rec + 12, 0, 4);
        ok = fwrite(rec, 16, 1, af.f) == 1;
        qai_idx_hasher_update(&hs, rec, 16);
    }
    uint64_t soff = 0;
    for (size_t t = 0; t < bm->n_terms && ok; t++) {
        if (!bm->terms[t].n) continue;
        uint8_t rec[16];
        uint32_t df = bm->terms[t].n;
        memcpy(rec, &soff, 8);
        memcpy(rec + 8, &bm->terms[t].len, 4);
        memcpy(rec + 12, &df, 4);
        ok = fwrite(rec, 16, 1, af.f) == 1;
        qai_idx_hasher_update(&hs, rec, 16);
        soff += bm->terms[t].len;
    }
    for (size_t t = 0; t < bm->n_terms && ok; t++)
        for (uint32_t i = 0; i < bm->terms[t].n && ok; i++) {
            uint32_t rec[2] = {renum[bm->terms[t].p[i].doc], bm->terms[t].p[i].tf};
            ok = fwrite(rec, 8, 1, af.f) == 1;
            qai_idx_hasher_update(&hs, rec, 8);
        }
    for (size_t t = 0; t < bm->n_terms && ok; t++) {
        if (!bm->terms[t].n) continue;
        ok = fwrite(bm->arena + bm->terms[t].off, 1, bm->terms[t].len, af.f) == bm->terms[t].len;
        qai_idx_hasher_update(&hs, bm->arena + bm->terms[t].off, bm->terms[t].len);
    }
    h.body_hash = qai_idx_hasher_final(&hs);
    h.header_hash = qai_idx_hash(&h, __builtin_offsetof(qai_bm25_header, header_hash));
    ok = ok && fseek(af.f, 0, SEEK_SET) == 0 && fwrite(&h, sizeof h, 1, af.f) == 1;
    qai_free(renum);
    qai_free(tnum);
    if (!ok) {
        qai_atomic_abort(&af);
        return qai_error(QAI_ERR_IO, "cannot write bm25 index '%s'", path);
    }
    return qai_atomic_commit(&af);
}

#define BFAIL(...) qai_error(QAI_ERR_FORMAT, __VA_ARGS__)

qai_status qai_bm25_load_buffer(const void *vdata, size_t size, const char *name, qai_bm25 **out) {
    *out = NULL;
    const uint8_t *data = vdata;
    if (size < sizeof(qai_bm25_header))
        return BFAIL("%s: not a qai bm25 index: %zu bytes, shorter than the %zu-byte header", name, size, sizeof(qai_bm25_header));
    qai_bm25_header h;
    memcpy(&h, data, sizeof h);
    if (memcmp(h.magic, QAI_BM25_MAGIC, 8) != 0) return BFAIL("%s: not a qai bm25 index (bad magic at offset 0)", name);
    if (h.version != QAI_BM25_VERSION) return BFAIL("%s: bm25 version %u at offset 8 is not supported", name, h.version);
    if (qai_idx_hash(&h, __builtin_offsetof(qai_bm25_header, header_hash)) != h.header_hash)
        return BFAIL("%s: header checksum mismatch (offset %zu): the header is corrupted", name,
                     __builtin_offsetof(qai_bm25_header, header_hash));
    if (!(h.k1 >= 0 && h.k1 <= 100) || !(h.b >= 0 && h.b <= 1)) return BFAIL("%s: k1/b at offset 16 out of range", name);
    uint64_t lim = size;
    if (h.n_docs > UINT32_MAX - 1 || h.n_terms > UINT32_MAX - 1 || h.n_postings > lim / 8 || h.n_docs > lim / 16 ||
        h.n_terms > lim / 16 || h.strings_size > lim)
        return BFAIL("%s: counts at offset 24 are larger than the file allows", name);
    if (h.docs_off != sizeof h || h.terms_off != h.docs_off + h.n_docs * 16 || h.postings_off != h.terms_off + h.n_terms * 16 ||
        h.strings_off != h.postings_off + h.n_postings * 8)
        return BFAIL("%s: section offsets at offset 56 do not follow the layout", name);
    if (h.strings_off > lim || h.strings_size > lim - h.strings_off)
        return BFAIL("%s: the strings section (offset %llu, %llu bytes) ends past the end of the file (%zu bytes): truncated?",
                     name, (unsigned long long)h.strings_off, (unsigned long long)h.strings_size, size);
    if (qai_idx_hash(data + sizeof h, (size_t)(h.strings_off + h.strings_size - sizeof h)) != h.body_hash)
        return BFAIL("%s: body (offset %zu..%llu) fails its checksum: the file is corrupted", name, sizeof h,
                     (unsigned long long)(h.strings_off + h.strings_size));
    qai_bm25_params prm = {h.k1, h.b};
    qai_bm25 *bm = qai_bm25_new(&prm);
    if (!bm) return QAI_ERR_NOMEM;
    qai_status st = QAI_OK;
    /* terms */
    const uint8_t *tr = data + h.terms_off;
    const char *strs = (const char *)data + h.strings_off;
    uint64_t post_sum = 0, expect_soff = 0;
    uint64_t *dlen_sum = NULL;
    for (uint64_t t = 0; t < h.n_terms && !st; t++) {
        uint64_t soff;
        uint32_t len, df;
        memcpy(&soff, tr + 16 * t, 8);
        memcpy(&len, tr + 16 * t + 8, 4);
        memcpy(&df, tr + 16 * t + 12, 4);
        size_t at = (size_t)(h.terms_off + 16 * t);
        if (soff != expect_soff || len == 0 || len > MAX_TOKEN || len > h.strings_size - soff)
            st = BFAIL("%s: term %llu (offset %zu) has a bad string (offset %llu, length %u)", name, (unsigned long long)t, at,
                       (unsigned long long)soff, len);
        else if (df == 0 || df > h.n_docs)
            st = BFAIL("%s: term %llu (offset %zu) has document frequency %u (documents: %llu)", name, (unsigned long long)t, at,
                       df, (unsigned long long)h.n_docs);
        else if (term_find(bm, strs + soff, len) >= 0)
            st = BFAIL("%s: term %llu (offset %zu) appears twice", name, (unsigned long long)t, at);
        else if (term_intern(bm, strs + soff, len) < 0)
            st = QAI_ERR_NOMEM;
        else {
            bm->terms[t].n = 0;
            bm->terms[t].cap = df;
            bm->terms[t].p = qai_malloc(df * sizeof(posting));
            if (!bm->terms[t].p) st = QAI_ERR_NOMEM;
            else bm->n_active++;
        }
        expect_soff += len;
        post_sum += df;
    }
    if (!st && (post_sum != h.n_postings || expect_soff != h.strings_size))
        st = BFAIL("%s: document frequencies add up to %llu postings and %llu string bytes; the header (offset 48) says %llu and %llu",
                   name, (unsigned long long)post_sum, (unsigned long long)expect_soff, (unsigned long long)h.n_postings,
                   (unsigned long long)h.strings_size);
    /* postings: strictly increasing documents per term, tf >= 1; gather the forward lists */
    size_t nd = (size_t)h.n_docs;
    uint32_t *nfw = qai_calloc(nd ? nd : 1, sizeof *nfw);
    dlen_sum = qai_calloc(nd ? nd : 1, sizeof *dlen_sum);
    if (!st && (!nfw || !dlen_sum)) st = QAI_ERR_NOMEM;
    const uint8_t *pr = data + h.postings_off;
    uint64_t pi = 0;
    for (uint64_t t = 0; t < h.n_terms && !st; t++) {
        term *tt = &bm->terms[t];
        for (uint32_t i = 0; i < tt->cap && !st; i++, pi++) {
            uint32_t rec[2];
            memcpy(rec, pr + 8 * pi, 8);
            size_t at = (size_t)(h.postings_off + 8 * pi);
            if (rec[0] >= nd || (i && rec[0] <= tt->p[i - 1].doc) || rec[1] == 0)
                st = BFAIL("%s: posting %u of term %llu (offset %zu) is invalid (document %u, tf %u)", name, i,
                           (unsigned long long)t, at, rec[0], rec[1]);
            else {
                tt->p[tt->n++] = (posting){rec[0], rec[1]};
                nfw[rec[0]]++;
                dlen_sum[rec[0]] += rec[1];
            }
        }
    }
    /* documents */
    uint64_t total = 0;
    if (!st) {
        bm->cap_slots = nd ? nd : 1;
        bm->ids = qai_malloc(bm->cap_slots * sizeof *bm->ids);
        bm->len = qai_malloc(bm->cap_slots * sizeof *bm->len);
        bm->fwd = qai_calloc(bm->cap_slots, sizeof *bm->fwd);
        bm->nfwd = qai_calloc(bm->cap_slots, sizeof *bm->nfwd);
        bm->live = qai_calloc(bm->cap_slots, sizeof *bm->live);
        if (!bm->ids || !bm->len || !bm->fwd || !bm->nfwd || !bm->live || dmap_reserve(bm, nd) != QAI_OK) st = QAI_ERR_NOMEM;
    }
    for (size_t d = 0; d < nd && !st; d++) {
        const uint8_t *rec = data + h.docs_off + 16 * d;
        size_t at = (size_t)(h.docs_off + 16 * d);
        uint32_t pad;
        memcpy(&bm->ids[d], rec, 8);
        memcpy(&bm->len[d], rec + 8, 4);
        memcpy(&pad, rec + 12, 4);
        bm->n_slots = d + 1;
        if (pad || bm->len[d] != dlen_sum[d])
            st = BFAIL("%s: document %zu (offset %zu) has length %u but its postings add up to %llu", name, d, at, bm->len[d],
                       (unsigned long long)dlen_sum[d]);
        else if (dmap_find(bm, bm->ids[d]) >= 0)
            st = BFAIL("%s: document id %llu (offset %zu) appears twice", name, (unsigned long long)bm->ids[d], at);
        else {
            dmap_put(bm, (uint32_t)d);
            bm->live[d] = true;
            total += bm->len[d];
            bm->n_live++;
            if (nfw[d]) {
                bm->fwd[d] = qai_malloc(nfw[d] * sizeof(uint32_t));
                if (!bm->fwd[d]) st = QAI_ERR_NOMEM;
            }
        }
    }
    if (!st && total != h.total_len)
        st = BFAIL("%s: document lengths add up to %llu, the header (offset 40) says %llu", name, (unsigned long long)total,
                   (unsigned long long)h.total_len);
    if (!st) {
        bm->total_len = total;
        for (size_t t = 0; t < bm->n_terms; t++)
            for (uint32_t i = 0; i < bm->terms[t].n; i++) {
                uint32_t d = bm->terms[t].p[i].doc;
                bm->fwd[d][bm->nfwd[d]++] = (uint32_t)t;
            }
    }
    qai_free(nfw);
    qai_free(dlen_sum);
    if (st) {
        qai_bm25_free(bm);
        return st;
    }
    *out = bm;
    return QAI_OK;
}

qai_status qai_bm25_load(const char *path, qai_bm25 **out) {
    qai_mapped_file mf;
    *out = NULL;
    qai_status st = qai_file_map(path, &mf);
    if (st) return st;
    st = qai_bm25_load_buffer(mf.data ? mf.data : (const uint8_t *)"", mf.size, path, out);
    qai_file_unmap(&mf);
    return st;
}
