/*
 * Pair corpora for the contrastive objective (qai/train.h, qai_pairs): the
 * JSONL reader, the train/validation split, and the sampler that turns
 * documents into self-supervised (query, positive) pairs, Contriever/E5
 * style: a short span of one chunk as the query, another chunk of the same
 * document as the positive.
 *
 * Explicit pairs may name their document ({"query", "positive", "doc"}): the
 * pairs of one document are one unit — one of them is drawn per batch, so a
 * batch never holds two positives of the same document (no false negatives
 * from it), and the document, not the query, decides the split. This is how
 * supervised pairs (a page's description and a chunk of that page) are fed.
 * A pair may carry hard negatives ("negative": a string or an array); the
 * sampler adds one of them per drawn pair to the batch.
 *
 * Text is kept; tokens are made per batch with the model's tokenizer
 * (QAI_TOK_ADD_SPECIAL, the way qai_embed's callers tokenize at inference),
 * so a query is tokenized exactly as a search query would be.
 *
 * What it deliberately does not do: mine negatives (they come with the
 * pairs), deduplication of near-identical documents (a collection already dedups),
 * language-aware sentence splitting (a sentence starts after . ! ? : or a
 * line break).
 */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "qai/tokenizer.h"
#include "train/contrastive.h"

typedef struct {
    const char *id;    /* doc id, or the query of a pair without one */
    int first, n;      /* chunk indices, or for pairs 2 × the number of pairs */
    bool pair;         /* explicit pairs: texts[first + 2k] query k, texts[first + 2k + 1] its positive */
    bool grouped;      /* pairs that named their document (id) */
    int line;          /* first line, for ordering */
} unit;

struct qai_pairs {
    char **texts, **sections; /* per chunk; sections NULL or "" when none */
    int n_texts;
    int *neg_first, *neg_n; /* per text index of a pair's query: its negatives in negs */
    char **negs;
    int n_negs;
    unit *units;
    int n_units;
    int *split[2];
    int n_split[2];
    char sha[65];
};

void qai_pairs_free(qai_pairs *p) {
    if (!p) return;
    for (int i = 0; i < p->n_texts; i++) {
        qai_free(p->texts[i]);
        qai_free(p->sections[i]);
    }
    for (int i = 0; i < p->n_units; i++) qai_free((char *)p->units[i].id);
    for (int i = 0; i < p->n_negs; i++) qai_free(p->negs[i]);
    qai_free(p->negs);
    qai_free(p->neg_first);
    qai_free(p->neg_n);
    qai_free(p->texts);
    qai_free(p->sections);
    qai_free(p->units);
    qai_free(p->split[0]);
    qai_free(p->split[1]);
    qai_free(p);
}

int qai_pairs_n_units(const qai_pairs *p, int split) { return split == 0 || split == 1 ? p->n_split[split] : 0; }
const char *qai_pairs_sha256(const qai_pairs *p) { return p->sha; }

/* One parsed line before grouping. */
typedef struct {
    char *doc, *text, *section, *query, *positive;
    char **neg; /* hard negatives of a pair */
    int n_neg, line;
} raw_line;

static void raw_line_free(raw_line *r) {
    qai_free(r->doc), qai_free(r->text), qai_free(r->section), qai_free(r->query), qai_free(r->positive);
    for (int k = 0; k < r->n_neg; k++) qai_free(r->neg[k]);
    qai_free(r->neg);
}

static int cmp_raw(const void *a, const void *b) {
    const raw_line *x = a, *y = b;
    if (x->doc && y->doc) {
        int c = strcmp(x->doc, y->doc);
        if (c) return c;
    } else if (x->doc || y->doc) {
        return x->doc ? 1 : -1; /* pairs first */
    }
    return (x->line > y->line) - (x->line < y->line);
}

static int cmp_unit_line(const void *a, const void *b) {
    const unit *x = a, *y = b;
    return (x->line > y->line) - (x->line < y->line);
}

/* FNV-1a of the id: the split does not depend on line order. */
static uint64_t id_hash(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    return h ^ (h >> 32);
}

static const char *str_field(cJSON *o, const char *key, bool *bad) {
    cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) return NULL;
    if (!cJSON_IsString(v)) {
        *bad = true;
        return NULL;
    }
    return v->valuestring;
}

static bool blank_n(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r') return false;
    return true;
}

static bool blank(const char *s) {
    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r') return false;
    return true;
}

/* "negative": a non-empty string or an array of them, none equal to the
 * positive; copied into r. NULL, or why not. */
static const char *parse_negatives(cJSON *o, const char *positive, raw_line *r, bool *nomem) {
    cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "negative");
    if (!v) return NULL;
    if (!positive) return "negative belongs to a pair (query, positive), not to a chunk";
    int n = cJSON_IsString(v) ? 1 : cJSON_IsArray(v) ? cJSON_GetArraySize(v) : -1;
    if (n < 1) return "negative must be a string or a non-empty array of strings";
    r->neg = qai_calloc((size_t)n, sizeof *r->neg);
    if (!r->neg) return *nomem = true, "";
    for (int k = 0; k < n; k++) {
        cJSON *e = cJSON_IsString(v) ? v : cJSON_GetArrayItem(v, k);
        if (!cJSON_IsString(e) || blank(e->valuestring)) return "negative must be a string or a non-empty array of strings";
        if (!strcmp(e->valuestring, positive)) return "a negative equals the positive";
        if (!(r->neg[r->n_neg++] = qai_strdup(e->valuestring))) return *nomem = true, "";
    }
    return NULL;
}

/* Moves r's negatives into P, recorded for the pair whose query is the next text. */
static void take_negatives(qai_pairs *P, raw_line *r) {
    P->neg_first[P->n_texts] = P->n_negs;
    P->neg_n[P->n_texts] = r->n_neg;
    for (int k = 0; k < r->n_neg; k++) P->negs[P->n_negs++] = r->neg[k];
    r->n_neg = 0;
}

qai_status qai_pairs_parse(const char *text, size_t n, const char *name, double val_share, qai_pairs **out) {
    *out = NULL;
    if (!(val_share >= 0 && val_share <= 0.5))
        return qai_error(QAI_ERR_ARG, "pairs '%s': the validation share %g is not in [0, 0.5]", name, val_share);
    raw_line *lines = NULL;
    size_t n_lines = 0, cap = 0;
    qai_status st = QAI_OK;
    int line_no = 0;
    for (size_t pos = 0; pos < n && !st;) {
        const char *start = text + pos;
        const char *nl = memchr(start, '\n', n - pos);
        size_t len = nl ? (size_t)(nl - start) : n - pos;
        size_t off = pos;
        pos += len + (nl ? 1 : 0);
        line_no++;
        size_t b = 0;
        while (b < len && (start[b] == ' ' || start[b] == '\t' || start[b] == '\r')) b++;
        if (b == len) continue;
        if (memchr(start, 0, len)) {
            st = qai_error(QAI_ERR_FORMAT, "pairs '%s' line %d (offset %zu): a NUL byte", name, line_no, off);
            break;
        }
        cJSON *o = cJSON_ParseWithLength(start, len);
        if (!cJSON_IsObject(o)) {
            cJSON_Delete(o);
            st = qai_error(QAI_ERR_FORMAT, "pairs '%s' line %d (offset %zu): not a JSON object", name, line_no, off);
            break;
        }
        bool bad = false;
        const char *q = str_field(o, "query", &bad), *p = str_field(o, "positive", &bad);
        const char *d = str_field(o, "doc", &bad), *t = str_field(o, "text", &bad), *s = str_field(o, "section", &bad);
        const char *why = NULL;
        if (bad) why = "fields query, positive, doc, text and section must be strings";
        else if ((q || p) && (t || s)) why = "a line is either a pair (query, positive) or a chunk (doc, text), not both";
        else if (q || p) {
            if (!q || !p) why = "a pair needs both query and positive";
            else if (blank(q) || blank(p)) why = "an empty query or positive";
        } else if (d || t) {
            if (!d || !t) why = "a chunk needs both doc and text";
            else if (blank(t)) why = "an empty text";
        } else why = "expected {\"query\", \"positive\"} or {\"doc\", \"text\"}";
        raw_line r = {0};
        bool nomem = false;
        if (!why) why = parse_negatives(o, q && p ? p : NULL, &r, &nomem);
        if (nomem) st = QAI_ERR_NOMEM;
        if (!why && n_lines == cap) {
            size_t nc = cap ? cap * 2 : 1024;
            raw_line *g = qai_realloc(lines, nc * sizeof *g);
            if (!g) st = QAI_ERR_NOMEM;
            else lines = g, cap = nc;
        }
        if (why && !st) st = qai_error(QAI_ERR_FORMAT, "pairs '%s' line %d (offset %zu): %s", name, line_no, off, why);
        if (st) raw_line_free(&r);
        if (!st) {
            r.line = line_no;
            if (q) r.query = qai_strdup(q), r.positive = qai_strdup(p), r.doc = d ? qai_strdup(d) : NULL;
            else r.doc = qai_strdup(d), r.text = qai_strdup(t), r.section = qai_strdup(s ? s : "");
            lines[n_lines++] = r;
            if ((q && (!r.query || !r.positive || (d && !r.doc))) || (!q && (!r.doc || !r.text || !r.section)))
                st = QAI_ERR_NOMEM;
        }
        cJSON_Delete(o);
    }
    if (!st && n_lines == 0) st = qai_error(QAI_ERR_FORMAT, "pairs '%s': no pairs or chunks in it", name);
    if (!st && n_lines > (size_t)1 << 30) st = qai_error(QAI_ERR_FORMAT, "pairs '%s': too many lines", name);

    qai_pairs *P = st ? NULL : qai_calloc(1, sizeof *P);
    if (!st && !P) st = QAI_ERR_NOMEM;
    if (!st) {
        qsort(lines, n_lines, sizeof *lines, cmp_raw);
        P->texts = qai_calloc(n_lines * 2, sizeof *P->texts);
        P->sections = qai_calloc(n_lines * 2, sizeof *P->sections);
        P->units = qai_calloc(n_lines, sizeof *P->units);
        P->neg_first = qai_calloc(n_lines * 2, sizeof *P->neg_first);
        P->neg_n = qai_calloc(n_lines * 2, sizeof *P->neg_n);
        size_t n_negs = 0;
        for (size_t i = 0; i < n_lines; i++) n_negs += (size_t)lines[i].n_neg;
        P->negs = qai_calloc(n_negs ? n_negs : 1, sizeof *P->negs);
        if (!P->texts || !P->sections || !P->units || !P->neg_first || !P->neg_n || !P->negs) st = QAI_ERR_NOMEM;
    }
    /* boilerplate: a chunk text that appears in more than one document (the
     * same "GLOBAL FLAGS" section of a thousand generated pages) cannot tell
     * its document apart; such chunks are dropped before pairs are cut */
    size_t hcap = 16;
    while (!st && hcap < n_lines * 2) hcap *= 2;
    uint64_t *hkey = st ? NULL : qai_calloc(hcap, sizeof *hkey);
    int64_t *hdoc = st ? NULL : qai_calloc(hcap, sizeof *hdoc); /* first line index of the doc, -2: several docs */
    bool *drop = st ? NULL : qai_calloc(n_lines ? n_lines : 1, sizeof *drop);
    if (!st && (!hkey || !hdoc || !drop)) st = QAI_ERR_NOMEM;
    int64_t doc_start = -1;
    for (size_t i = 0; i < n_lines && !st; i++) {
        raw_line *r = &lines[i];
        if (!r->doc) continue;
        if (i == 0 || !lines[i - 1].doc || strcmp(lines[i - 1].doc, r->doc)) doc_start = (int64_t)i;
        else if (!lines[i - 1].query != !r->query) {
            st = qai_error(QAI_ERR_FORMAT, "pairs '%s' lines %d and %d: document '%.200s' has both pairs and chunks",
                           name, lines[i - 1].line < r->line ? lines[i - 1].line : r->line,
                           lines[i - 1].line < r->line ? r->line : lines[i - 1].line, r->doc);
            break;
        }
        uint64_t k = id_hash(r->text ? r->text : r->positive) | 1;
        size_t j = k & (hcap - 1);
        while (hkey[j] && hkey[j] != k) j = (j + 1) & (hcap - 1);
        if (!hkey[j]) hkey[j] = k, hdoc[j] = doc_start;
        else if (hdoc[j] != doc_start) hdoc[j] = -2;
    }
    for (size_t i = 0; i < n_lines && !st; i++) {
        if (!lines[i].doc) continue;
        uint64_t k = id_hash(lines[i].text ? lines[i].text : lines[i].positive) | 1;
        size_t j = k & (hcap - 1);
        while (hkey[j] != k) j = (j + 1) & (hcap - 1);
        drop[i] = hdoc[j] == -2;
    }
    qai_free(hkey);
    qai_free(hdoc);
    for (size_t i = 0; i < n_lines && !st; i++) {
        raw_line *r = &lines[i];
        if (drop[i]) continue;
        if (r->query && !r->doc) {
            unit *u = &P->units[P->n_units++];
            u->pair = true, u->first = P->n_texts, u->n = 2, u->line = r->line;
            u->id = r->query, r->query = NULL;
            take_negatives(P, r);
            P->texts[P->n_texts++] = qai_strdup(u->id);
            P->texts[P->n_texts++] = r->positive, r->positive = NULL;
            if (!P->texts[P->n_texts - 2]) st = QAI_ERR_NOMEM;
            continue;
        }
        if (r->query) { /* a pair of document r->doc: grouped with the document's other pairs */
            unit *last = P->n_units ? &P->units[P->n_units - 1] : NULL;
            if (!last || !last->grouped || strcmp(last->id, r->doc)) {
                unit *u = &P->units[P->n_units++];
                u->pair = u->grouped = true, u->first = P->n_texts, u->n = 0, u->line = r->line;
                u->id = r->doc, r->doc = NULL;
                last = u;
            }
            last->n += 2;
            take_negatives(P, r);
            P->texts[P->n_texts++] = r->query, r->query = NULL;
            P->texts[P->n_texts++] = r->positive, r->positive = NULL;
            continue;
        }
        if (P->n_units == 0 || P->units[P->n_units - 1].pair || strcmp(P->units[P->n_units - 1].id, r->doc)) {
            unit *u = &P->units[P->n_units++];
            u->first = P->n_texts, u->line = r->line;
            u->id = qai_strdup(r->doc);
            if (!u->id) st = QAI_ERR_NOMEM;
        }
        P->units[P->n_units - 1].n++;
        P->sections[P->n_texts] = r->section, r->section = NULL;
        P->texts[P->n_texts++] = r->text, r->text = NULL;
    }
    qai_free(drop);
    if (!st && P->n_units == 0)
        st = qai_error(QAI_ERR_FORMAT, "pairs '%s': every chunk is shared by several documents (boilerplate)", name);
    /* units in file order (the sampler draws by index) */
    if (!st) qsort(P->units, (size_t)P->n_units, sizeof *P->units, cmp_unit_line);
    for (size_t i = 0; i < n_lines; i++) raw_line_free(&lines[i]);
    qai_free(lines);
    if (!st) {
        P->split[0] = qai_calloc((size_t)P->n_units, sizeof(int));
        P->split[1] = qai_calloc((size_t)P->n_units, sizeof(int));
        if (!P->split[0] || !P->split[1]) st = QAI_ERR_NOMEM;
        const uint64_t cut = (uint64_t)(val_share * 1e6);
        for (int i = 0; i < P->n_units && !st; i++) {
            int s = id_hash(P->units[i].id) % 1000000u < cut;
            P->split[s][P->n_split[s]++] = i;
        }
        uint8_t h[32];
        qai_sha256(text, n, h);
        qai_hex(h, 32, P->sha);
    }
    if (st) {
        qai_pairs_free(P);
        return st;
    }
    *out = P;
    return QAI_OK;
}

qai_status qai_pairs_load(const char *path, double val_share, qai_pairs **out) {
    char *text;
    size_t n;
    qai_status st = qai_file_read(path, &text, &n);
    if (st) return st;
    st = qai_pairs_parse(text, n, path, val_share, out);
    qai_free(text);
    return st;
}

/* ---- sampling ---- */

void qai_pair_batch_release(qai_pair_batch *pb) {
    qai_free(pb->q);
    qai_free(pb->d);
    qai_free(pb->n);
    qai_free(pb->qlen);
    qai_free(pb->dlen);
    qai_free(pb->nlen);
    memset(pb, 0, sizeof *pb);
}

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

/* Word starts and ends of a text, and which words begin a sentence. */
typedef struct {
    int *start, *end;
    bool *sent;
    int n, cap;
} words;

static qai_status split_words(const char *s, words *w) {
    w->n = 0;
    bool new_sent = true;
    for (int i = 0; s[i];) {
        if (is_space(s[i])) {
            if (s[i] == '\n') new_sent = true;
            i++;
            continue;
        }
        if (w->n == w->cap) {
            int nc = w->cap ? w->cap * 2 : 256;
            int *a = qai_realloc(w->start, nc * sizeof(int)), *b = a ? qai_realloc(w->end, nc * sizeof(int)) : NULL;
            if (a) w->start = a;
            if (b) w->end = b;
            bool *c = b ? qai_realloc(w->sent, nc * sizeof(bool)) : NULL;
            if (!c) return QAI_ERR_NOMEM;
            w->sent = c, w->cap = nc;
        }
        int j = i;
        while (s[j] && !is_space(s[j])) j++;
        w->start[w->n] = i, w->end[w->n] = j, w->sent[w->n] = new_sent;
        w->n++;
        char last = s[j - 1];
        new_sent = last == '.' || last == '!' || last == '?' || last == ':';
        i = j;
    }
    return QAI_OK;
}

/* Tokenizes text[0..n) (with BOS as the vocabulary says) into dst, at most
 * cap tokens: the prefix, or with window a random window that keeps a leading
 * BOS. Returns the length (>= 1) or -1. */
static int encode_into(const qai_tokenizer *tok, const char *text, size_t n, int32_t *dst, int cap, bool window,
                       qai_rng *rng) {
    int32_t *ids = NULL;
    size_t nid = 0;
    if (qai_tokenizer_encode(tok, text, n, QAI_TOK_ADD_SPECIAL, &ids, &nid)) return -1;
    if (nid == 0) {
        qai_free(ids);
        return qai_error(QAI_ERR_ARG, "a text gives no tokens"), -1;
    }
    int len = nid < (size_t)cap ? (int)nid : cap;
    if (!window || nid <= (size_t)cap) {
        memcpy(dst, ids, (size_t)len * sizeof(int32_t));
    } else {
        int keep = qai_tokenizer_add_bos(tok) ? 1 : 0;
        size_t span = nid - (size_t)keep - (size_t)(cap - keep) + 1;
        size_t off = keep + qai_rng_u64(rng) % span;
        if (keep) dst[0] = ids[0];
        memcpy(dst + keep, ids + off, (size_t)(cap - keep) * sizeof(int32_t));
    }
    qai_free(ids);
    return len;
}

/* The heading a query may start with: the last part of a section path. */
static const char *last_heading(const char *sec, size_t *n) {
    if (!sec || !*sec) return NULL;
    const char *h = sec;
    for (const char *p = sec; *p; p++)
        if (*p == '/' || *p == '>') h = p + 1;
    while (*h == ' ') h++;
    *n = strlen(h);
    while (*n && h[*n - 1] == ' ') (*n)--;
    return *n ? h : NULL;
}

qai_status qai_pairs_sample(const qai_pairs *P, const qai_tokenizer *tok, qai_rng *rng, int split, int B, int Tq,
                            int Td, qai_pair_batch *pb) {
    memset(pb, 0, sizeof *pb);
    if (split != 0 && split != 1) return qai_error(QAI_ERR_ARG, "split %d is not 0 (train) or 1 (validation)", split);
    const int nu = P->n_split[split];
    if (nu < B)
        return qai_error(QAI_ERR_ARG, "the %s split of the pairs has %d documents/pairs, fewer than a batch (%d); "
                         "lower --batch%s", split ? "validation" : "training", nu, B,
                         split ? " or raise --val-share" : "");
    pb->B = B, pb->Tq = Tq, pb->Td = Td;
    pb->q = qai_calloc((size_t)B * Tq, sizeof(int32_t));
    pb->d = qai_calloc((size_t)B * Td, sizeof(int32_t));
    pb->qlen = qai_calloc((size_t)B, sizeof(int));
    pb->dlen = qai_calloc((size_t)B, sizeof(int));
    if (P->n_negs) {
        pb->n = qai_calloc((size_t)B * Td, sizeof(int32_t));
        pb->nlen = qai_calloc((size_t)B, sizeof(int));
    }
    int *chosen = qai_calloc((size_t)B, sizeof(int));
    char *buf = NULL;
    size_t buf_cap = 0;
    words w = {0};
    qai_status st = !pb->q || !pb->d || !pb->qlen || !pb->dlen || !chosen || (P->n_negs && (!pb->n || !pb->nlen))
                        ? QAI_ERR_NOMEM
                        : QAI_OK;
    for (int b = 0; b < B && !st; b++) {
        /* documents drawn uniformly without replacement within the batch (no false negatives from the same one) */
        int u;
        for (;;) {
            u = P->split[split][qai_rng_u64(rng) % (uint64_t)nu];
            bool dup = false;
            for (int k = 0; k < b; k++) dup |= chosen[k] == u;
            if (!dup) break;
        }
        chosen[b] = u;
        const unit *U = &P->units[u];
        int32_t *qd = pb->q + (size_t)b * Tq, *dd = pb->d + (size_t)b * Td;
        if (U->pair) {
            const int k = U->n > 2 ? (int)(qai_rng_u64(rng) % (uint64_t)(U->n / 2)) : 0;
            const int qi = U->first + 2 * k; /* the query's text; its positive follows */
            const char *q = P->texts[qi], *p = P->texts[qi + 1];
            pb->qlen[b] = encode_into(tok, q, strlen(q), qd, Tq, false, rng);
            pb->dlen[b] = encode_into(tok, p, strlen(p), dd, Td, false, rng);
            if (P->neg_n[qi]) { /* one of the pair's hard negatives */
                const char *ng = P->negs[P->neg_first[qi] + (int)(qai_rng_u64(rng) % (uint64_t)P->neg_n[qi])];
                int len = encode_into(tok, ng, strlen(ng), pb->n + (size_t)pb->Bn * Td, Td, false, rng);
                if (len < 0) pb->dlen[b] = -1;
                else
                    pb->nlen[pb->Bn++] = len;
            }
        } else {
            int ci = U->first + (int)(qai_rng_u64(rng) % (uint64_t)U->n);
            const char *s = P->texts[ci];
            if ((st = split_words(s, &w))) break;
            int a = 0, e = w.n; /* word range of the query */
            size_t hn = 0;
            const char *head = last_heading(P->sections[ci], &hn);
            bool with_head = head && qai_rng_u64(rng) % 4 == 0;
            if (w.n > 0) {
                if (with_head) {
                    a = 0, e = 3 + (int)(qai_rng_u64(rng) % 6);
                } else {
                    int n_sent = 0;
                    for (int k = 0; k < w.n; k++) n_sent += w.sent[k];
                    int pick = (int)(qai_rng_u64(rng) % (uint64_t)(n_sent ? n_sent : 1));
                    for (int k = 0; k < w.n; k++)
                        if (w.sent[k] && pick-- == 0) {
                            a = k;
                            break;
                        }
                    e = a + 4 + (int)(qai_rng_u64(rng) % 13);
                    if (e > w.n) { /* a short last sentence: take 4+ words ending there */
                        e = w.n;
                        if (e - a < 4) a = e - 4 > 0 ? e - 4 : 0;
                    }
                }
                if (e > w.n) e = w.n;
            }
            size_t qa = w.n ? (size_t)w.start[a] : 0, qe = w.n ? (size_t)w.end[e - 1] : strlen(s);
            size_t need = hn + 2 + (qe - qa) + strlen(s) + 2;
            if (need > buf_cap) {
                char *g = qai_realloc(buf, need);
                if (!g) {
                    st = QAI_ERR_NOMEM;
                    break;
                }
                buf = g, buf_cap = need;
            }
            size_t bl = 0;
            if (with_head) {
                memcpy(buf, head, hn);
                bl = hn;
                buf[bl++] = ' ';
            }
            memcpy(buf + bl, s + qa, qe - qa);
            bl += qe - qa;
            pb->qlen[b] = encode_into(tok, buf, bl, qd, Tq, false, rng);
            if (U->n > 1) { /* another chunk of the same document */
                int cj = U->first + (int)(qai_rng_u64(rng) % (uint64_t)(U->n - 1));
                if (cj >= ci) cj++;
                pb->dlen[b] = encode_into(tok, P->texts[cj], strlen(P->texts[cj]), dd, Td, true, rng);
            } else { /* the chunk without the query span */
                size_t sl = strlen(s);
                memcpy(buf, s, qa);
                buf[qa] = ' ';
                memcpy(buf + qa + 1, s + qe, sl - qe);
                size_t dl = qa + 1 + (sl - qe);
                if (blank_n(buf, dl)) memcpy(buf, s, sl), dl = sl; /* nothing left: the chunk itself */
                pb->dlen[b] = encode_into(tok, buf, dl, dd, Td, true, rng);
            }
        }
        if (pb->qlen[b] < 0 || pb->dlen[b] < 0) st = qai_error_wrap(QAI_ERR_ARG, "pairs: tokenizing a pair");
    }
    qai_free(chosen);
    qai_free(buf);
    qai_free(w.start), qai_free(w.end), qai_free(w.sent);
    if (st) qai_pair_batch_release(pb);
    return st;
}
