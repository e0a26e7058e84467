/*
 * train_bpe.c — BPE tokenizer training (SentencePiece-style with byte
 * fallback, and GPT-2-style byte-level). The contract is in
 * include/qai/tokenizer_train.h.
 *
 * How it is fast (the classic approach):
 *   1. the text is cut into chunks at line boundaries; threads cut chunks into
 *      words and count them in per-thread hash maps, merged and then sorted by
 *      their bytes, so everything after counting is independent of the thread
 *      count;
 *   2. each distinct word becomes a symbol sequence with a count; every
 *      adjacent pair gets a total count and the list of words it occurs in;
 *   3. a max-heap holds (count, pair) entries that are upper bounds: counts only
 *      drop, except for pairs that contain the newest symbol, which are pushed
 *      after each merge. A popped entry whose count is stale is pushed back with
 *      its real count;
 *   4. merging a pair rewrites only the words on its list and updates the
 *      counts of the pairs those words lose and gain.
 *
 * Ties between pairs of equal count go to the pair with the smaller left id,
 * then the smaller right id (ids are assigned deterministically: characters by
 * falling frequency, merges in order).
 *
 * What it does not do: Unigram, normalization, sentence sampling.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "qai/tokenizer_train.h"
#include "tokenizer/tok_internal.h"

void qai_toktrain_opts_init(qai_toktrain_opts *o) {
    memset(o, 0, sizeof *o);
    o->type = QAI_TOKTRAIN_SPM;
    o->vocab_size = 8000;
    o->coverage = 0.9995;
    o->max_piece_chars = 16;
}

/* ---- word counting ---------------------------------------------------------- */

/* A word: bytes in the corpus, plus (SPM) whether a "▁" goes before them. */
typedef struct {
    const char *p;
    uint32_t len;
    uint32_t flag;
    uint64_t hash;
    uint64_t count;
} wentry;

typedef struct {
    wentry *v; /* cap slots; p == NULL: empty */
    size_t cap, n;
} wmap;

static qai_status wmap_init(wmap *m, size_t cap) {
    m->v = qai_calloc(cap, sizeof *m->v);
    if (!m->v) return QAI_ERR_NOMEM;
    m->cap = cap;
    m->n = 0;
    return QAI_OK;
}

static qai_status wmap_grow(wmap *m) {
    wmap b;
    if (wmap_init(&b, m->cap * 2)) return QAI_ERR_NOMEM;
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->v[i].p) continue;
        size_t j = m->v[i].hash & (b.cap - 1);
        while (b.v[j].p) j = (j + 1) & (b.cap - 1);
        b.v[j] = m->v[i];
    }
    b.n = m->n;
    qai_free(m->v);
    *m = b;
    return QAI_OK;
}

static inline qai_status wmap_add(wmap *m, const char *p, uint32_t len, uint32_t flag, uint64_t hash, uint64_t count) {
    if ((m->n + 1) * 2 > m->cap && wmap_grow(m)) return QAI_ERR_NOMEM;
    size_t j = hash & (m->cap - 1);
    for (;;) {
        wentry *e = &m->v[j];
        if (!e->p) {
            *e = (wentry){p, len, flag, hash, count};
            m->n++;
            return QAI_OK;
        }
        if (e->hash == hash && e->len == len && e->flag == flag && !memcmp(e->p, p, len)) {
            e->count += count;
            return QAI_OK;
        }
        j = (j + 1) & (m->cap - 1);
    }
}

static inline uint64_t word_hash(const char *p, uint32_t len, uint32_t flag) {
    return tok_hash(p, len) ^ ((uint64_t)flag * 0x9E3779B97F4A7C15ULL);
}

/* Character classes for SPM word cutting: 0 = common (digits, punctuation,
 * symbols, other), > 0 = letters of one script (approximated by blocks),
 * -1 = combining mark (joins the previous character). */
static int letter_script(uint32_t cp) {
    if (cp < 0x370 || (cp >= 0x1E00 && cp < 0x1F00) || (cp >= 0x2C60 && cp < 0x2C80) || (cp >= 0xA720 && cp < 0xA800) ||
        (cp >= 0xFF21 && cp < 0xFF5B))
        return 1;                                          /* Latin */
    if (cp < 0x400 || (cp >= 0x1F00 && cp < 0x2000)) return 2; /* Greek */
    if (cp < 0x530) return 3;                               /* Cyrillic */
    if ((cp >= 0x3040 && cp < 0x3100) || (cp >= 0x3400 && cp < 0xA000) || (cp >= 0xF900 && cp < 0xFB00) ||
        (cp >= 0x20000 && cp < 0x30000))
        return 4; /* Han, Hiragana, Katakana: one script, as SentencePiece merges them */
    if (cp >= 0xAC00 && cp < 0xD7B0) return 5; /* Hangul */
    return 16 + (int)(cp >> 7);
}

static int char_class(uint32_t cp) {
    switch (utf8proc_category((utf8proc_int32_t)cp)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO: return letter_script(cp);
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME: return -1;
    default: return 0;
    }
}

static int8_t ascii_class[128];

static void init_ascii_class(void) {
    for (int c = 0; c < 128; c++)
        ascii_class[c] = (int8_t)(((c | 32) >= 'a' && (c | 32) <= 'z') ? 1 : 0);
}

typedef struct {
    const char *p;
    size_t len;
} span;

typedef struct {
    const qai_toktrain_opts *o;
    const span *chunks;
    size_t n_chunks;
    atomic_size_t next;
    wmap *maps; /* one per thread */
    qai_status *st;
    const tok_pre *pre; /* BYTEBPE */
    const char *const *specials;
    const size_t *special_lens;
    size_t n_specials;
    atomic_uint_fast64_t done_bytes;
    qai_progress *progress; /* updated by thread 0 only; NULL: none */
} count_job;

typedef struct {
    wmap *m;
    qai_status st;
} bpe_piece_ctx;

static qai_status bpe_piece(void *arg, const char *s, size_t len) {
    bpe_piece_ctx *c = arg;
    if (len == 0 || len > UINT32_MAX) return QAI_OK;
    return wmap_add(c->m, s, (uint32_t)len, 0, word_hash(s, (uint32_t)len, 0), 1);
}

/* SPM: counts the words of one sentence (a line without its newline). */
static qai_status spm_line(wmap *m, const char *s, size_t n) {
    if (n == 0) return QAI_OK;
    uint32_t pending = 1; /* the dummy prefix */
    size_t run = 0, run_len = 0;
    uint32_t run_flag = 0;
    int run_cls = -100;
    qai_status st;
#define EMIT_RUN()                                                                                                     \
    do {                                                                                                               \
        if (run_len) {                                                                                                 \
            if ((st = wmap_add(m, s + run, (uint32_t)run_len, run_flag, word_hash(s + run, (uint32_t)run_len, run_flag), \
                               1)))                                                                                    \
                return st;                                                                                             \
            run_len = 0;                                                                                               \
        }                                                                                                              \
    } while (0)
    for (size_t i = 0; i < n;) {
        uint8_t c = (uint8_t)s[i];
        uint32_t l;
        int cls;
        if (c < 0x80) {
            l = 1;
            if (c == ' ') {
                EMIT_RUN();
                if (pending && (st = wmap_add(m, s + i, 0, 1, word_hash(s + i, 0, 1), 1))) return st; /* a lone "▁" */
                pending = 1;
                i++;
                continue;
            }
            cls = ascii_class[c];
        } else {
            uint32_t cp;
            int k = tok_utf8_valid_len((const uint8_t *)s + i, n - i, &cp);
            if (k <= 0) { /* an invalid byte: a word boundary, left to byte fallback */
                EMIT_RUN();
                pending = 0;
                i++;
                continue;
            }
            l = (uint32_t)k;
            if (cp == 0x2581) { /* a literal "▁" is a space to the encoder */
                EMIT_RUN();
                if (pending && (st = wmap_add(m, s + i, 0, 1, word_hash(s + i, 0, 1), 1))) return st;
                pending = 1;
                i += l;
                continue;
            }
            cls = char_class(cp);
        }
        if (run_len && cls != run_cls && cls != -1) EMIT_RUN();
        if (!run_len) {
            run = i;
            run_flag = pending;
            pending = 0;
            run_cls = cls == -1 ? 0 : cls;
        }
        run_len += l;
        i += l;
    }
    EMIT_RUN();
    if (pending) return wmap_add(m, s + n, 0, 1, word_hash(s + n, 0, 1), 1);
    return QAI_OK;
#undef EMIT_RUN
}

/* Text between special tokens: SPM by lines, BPE through the pre-tokenizer. */
static qai_status count_plain(count_job *j, wmap *m, const char *s, size_t n) {
    if (j->o->type == QAI_TOKTRAIN_BYTEBPE) {
        bpe_piece_ctx c = {m, QAI_OK};
        return tok_pre_split(j->pre, s, n, bpe_piece, &c);
    }
    size_t i = 0;
    while (i < n) {
        const char *nl = memchr(s + i, '\n', n - i);
        size_t e = nl ? (size_t)(nl - s) : n;
        size_t le = e;
        if (le > i && s[le - 1] == '\r') le--;
        qai_status st = spm_line(m, s + i, le - i);
        if (st) return st;
        i = e + 1;
    }
    return QAI_OK;
}

static qai_status count_chunk(count_job *j, wmap *m, const char *s, size_t n) {
    if (!j->n_specials) return count_plain(j, m, s, n);
    /* cut special tokens out (the leftmost occurrence of any, longest first on ties) */
    size_t i = 0;
    while (i < n) {
        size_t best = n, best_len = 0;
        for (size_t k = 0; k < j->n_specials; k++) {
            size_t sl = j->special_lens[k];
            if (!sl || sl > n - i) continue;
            const char *f = memmem(s + i, (best < n ? best + sl : n) - i, j->specials[k], sl);
            if (f && ((size_t)(f - s) < best || ((size_t)(f - s) == best && sl > best_len)))
                best = (size_t)(f - s), best_len = sl;
        }
        qai_status st = count_plain(j, m, s + i, best - i);
        if (st) return st;
        i = best + best_len;
    }
    return QAI_OK;
}

static void count_worker(void *arg, int ith, int nth) {
    (void)nth;
    count_job *j = arg;
    for (;;) {
        size_t c = atomic_fetch_add(&j->next, 1);
        if (c >= j->n_chunks || j->st[ith]) break;
        j->st[ith] = count_chunk(j, &j->maps[ith], j->chunks[c].p, j->chunks[c].len);
        uint64_t done = atomic_fetch_add(&j->done_bytes, j->chunks[c].len) + j->chunks[c].len;
        if (ith == 0 && j->progress) qai_progress_update(j->progress, done);
    }
}

/* ---- symbols, words, pairs ---------------------------------------------------- */

typedef struct {
    uint32_t off, len; /* bytes in the symbol arena */
    uint32_t chars;    /* length in characters (SPM) or bytes (BPE) */
} symbol;

typedef struct {
    int32_t l, r;
    int64_t count;
    uint32_t *words; /* words where the pair occurs (may hold stale entries) */
    uint32_t n_words, cap_words;
    uint32_t stamp;
} pair;

typedef struct {
    int64_t count;
    int32_t pair;
} hentry;

typedef struct {
    const qai_toktrain_opts *o;
    /* symbols */
    symbol *sym;
    int32_t n_sym, cap_sym;
    char *arena;
    size_t arena_n, arena_cap;
    tok_map sym_map; /* string -> symbol id (keys point into arena: rebuilt if it moves) */
    /* words */
    uint32_t *wsym;   /* all words' symbols */
    uint32_t *woff, *wlen;
    uint64_t *wcount;
    uint32_t *wstamp;
    size_t n_words, cap_words, wsym_n, wsym_cap;
    /* pairs */
    pair *pairs;
    int32_t n_pairs, cap_pairs;
    uint64_t *pkey; /* open addressing: key (l << 32 | r), value in pval; UINT64_MAX empty */
    int32_t *pval;
    size_t pcap, pn;
    hentry *heap;
    size_t heap_n, heap_cap;
} trainer;

static qai_status arena_add(trainer *t, const char *s, size_t n, uint32_t *off) {
    if (t->arena_n + n + 1 > t->arena_cap) {
        size_t cap = t->arena_cap ? t->arena_cap * 2 : 1 << 16;
        while (cap < t->arena_n + n + 1) cap *= 2;
        char *a = qai_realloc(t->arena, cap);
        if (!a) return QAI_ERR_NOMEM;
        if (a != t->arena && t->sym_map.cap) { /* re-point the map's keys */
            for (size_t i = 0; i < t->sym_map.cap; i++)
                if (t->sym_map.slots[i].s) t->sym_map.slots[i].s = a + (t->sym_map.slots[i].s - t->arena);
        }
        t->arena = a;
        t->arena_cap = cap;
    }
    memcpy(t->arena + t->arena_n, s, n);
    t->arena[t->arena_n + n] = 0;
    *off = (uint32_t)t->arena_n;
    t->arena_n += n + 1;
    return QAI_OK;
}

/* Adds a symbol with the given text (or finds the one that has it). */
static qai_status sym_intern(trainer *t, const char *s, size_t n, uint32_t chars, int32_t *id, bool *is_new) {
    int32_t e = tok_map_get(&t->sym_map, s, n);
    if (e >= 0) {
        *id = e;
        if (is_new) *is_new = false;
        return QAI_OK;
    }
    if (t->n_sym == t->cap_sym) {
        int32_t cap = t->cap_sym ? t->cap_sym * 2 : 1024;
        symbol *v = qai_realloc(t->sym, (size_t)cap * sizeof *v);
        if (!v) return QAI_ERR_NOMEM;
        t->sym = v;
        t->cap_sym = cap;
    }
    uint32_t off;
    if (arena_add(t, s, n, &off)) return QAI_ERR_NOMEM;
    t->sym[t->n_sym] = (symbol){off, (uint32_t)n, chars};
    if (tok_map_put(&t->sym_map, t->arena + off, n, t->n_sym)) return QAI_ERR_NOMEM;
    *id = t->n_sym++;
    if (is_new) *is_new = true;
    return QAI_OK;
}

static qai_status word_add(trainer *t, const uint32_t *s, uint32_t n, uint64_t count) {
    if (n == 0) return QAI_OK;
    if (t->n_words == t->cap_words) {
        size_t cap = t->cap_words ? t->cap_words * 2 : 1 << 14;
        uint32_t *a = qai_realloc(t->woff, cap * sizeof *a), *b;
        if (!a) return QAI_ERR_NOMEM;
        t->woff = a;
        if (!(b = qai_realloc(t->wlen, cap * sizeof *b))) return QAI_ERR_NOMEM;
        t->wlen = b;
        uint64_t *c = qai_realloc(t->wcount, cap * sizeof *c);
        if (!c) return QAI_ERR_NOMEM;
        t->wcount = c;
        if (!(b = qai_realloc(t->wstamp, cap * sizeof *b))) return QAI_ERR_NOMEM;
        t->wstamp = b;
        t->cap_words = cap;
    }
    if (t->wsym_n + n > t->wsym_cap) {
        size_t cap = t->wsym_cap ? t->wsym_cap * 2 : 1 << 16;
        while (cap < t->wsym_n + n) cap *= 2;
        if (cap > UINT32_MAX) return qai_error(QAI_ERR_RANGE, "tokenizer training: too many distinct words");
        uint32_t *v = qai_realloc(t->wsym, cap * sizeof *v);
        if (!v) return QAI_ERR_NOMEM;
        t->wsym = v;
        t->wsym_cap = cap;
    }
    memcpy(t->wsym + t->wsym_n, s, n * sizeof *s);
    t->woff[t->n_words] = (uint32_t)t->wsym_n;
    t->wlen[t->n_words] = n;
    t->wcount[t->n_words] = count;
    t->wstamp[t->n_words] = 0;
    t->n_words++;
    t->wsym_n += n;
    return QAI_OK;
}

static inline size_t pslot(uint64_t key, size_t cap) {
    uint64_t x = key * 0x9E3779B97F4A7C15ULL;
    return (size_t)(x ^ x >> 32) & (cap - 1);
}

static qai_status pmap_grow(trainer *t) {
    size_t cap = t->pcap ? t->pcap * 2 : 1 << 16;
    uint64_t *k = qai_malloc(cap * sizeof *k);
    int32_t *v = qai_malloc(cap * sizeof *v);
    if (!k || !v) {
        qai_free(k);
        qai_free(v);
        return QAI_ERR_NOMEM;
    }
    for (size_t i = 0; i < cap; i++) k[i] = UINT64_MAX;
    for (size_t i = 0; i < t->pcap; i++) {
        if (t->pkey[i] == UINT64_MAX) continue;
        size_t j = pslot(t->pkey[i], cap);
        while (k[j] != UINT64_MAX) j = (j + 1) & (cap - 1);
        k[j] = t->pkey[i];
        v[j] = t->pval[i];
    }
    qai_free(t->pkey);
    qai_free(t->pval);
    t->pkey = k;
    t->pval = v;
    t->pcap = cap;
    return QAI_OK;
}

/* Index of pair (l, r), created with count 0 if new; -1 on out of memory. */
static int32_t pair_get(trainer *t, int32_t l, int32_t r) {
    uint64_t key = (uint64_t)(uint32_t)l << 32 | (uint32_t)r;
    if ((t->pn + 1) * 2 > t->pcap && pmap_grow(t)) return -1;
    size_t j = pslot(key, t->pcap);
    while (t->pkey[j] != UINT64_MAX) {
        if (t->pkey[j] == key) return t->pval[j];
        j = (j + 1) & (t->pcap - 1);
    }
    if (t->n_pairs == t->cap_pairs) {
        int32_t cap = t->cap_pairs ? t->cap_pairs * 2 : 1 << 14;
        pair *p = qai_realloc(t->pairs, (size_t)cap * sizeof *p);
        if (!p) return -1;
        t->pairs = p;
        t->cap_pairs = cap;
    }
    t->pairs[t->n_pairs] = (pair){l, r, 0, NULL, 0, 0, 0};
    t->pkey[j] = key;
    t->pval[j] = t->n_pairs;
    t->pn++;
    return t->n_pairs++;
}

static qai_status pair_add_word(pair *p, uint32_t w) {
    if (p->n_words && p->words[p->n_words - 1] == w) return QAI_OK;
    if (p->n_words == p->cap_words) {
        uint32_t cap = p->cap_words ? p->cap_words * 2 : 4;
        uint32_t *v = qai_realloc(p->words, cap * sizeof *v);
        if (!v) return QAI_ERR_NOMEM;
        p->words = v;
        p->cap_words = cap;
    }
    p->words[p->n_words++] = w;
    return QAI_OK;
}

static inline bool pair_ok(const trainer *t, int32_t l, int32_t r) {
    return t->o->type == QAI_TOKTRAIN_BYTEBPE || (int)(t->sym[l].chars + t->sym[r].chars) <= t->o->max_piece_chars;
}

/* heap order: larger count first, then smaller (l, r) */
static inline bool h_before(const trainer *t, hentry a, hentry b) {
    if (a.count != b.count) return a.count > b.count;
    const pair *x = &t->pairs[a.pair], *y = &t->pairs[b.pair];
    if (x->l != y->l) return x->l < y->l;
    return x->r < y->r;
}

static qai_status heap_push(trainer *t, hentry x) {
    if (t->heap_n == t->heap_cap) {
        size_t cap = t->heap_cap ? t->heap_cap * 2 : 1 << 14;
        hentry *v = qai_realloc(t->heap, cap * sizeof *v);
        if (!v) return QAI_ERR_NOMEM;
        t->heap = v;
        t->heap_cap = cap;
    }
    size_t i = t->heap_n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!h_before(t, x, t->heap[p])) break;
        t->heap[i] = t->heap[p];
        i = p;
    }
    t->heap[i] = x;
    return QAI_OK;
}

static hentry heap_pop(trainer *t) {
    hentry top = t->heap[0];
    hentry x = t->heap[--t->heap_n];
    size_t i = 0, n = t->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && h_before(t, t->heap[c + 1], t->heap[c])) c++;
        if (!h_before(t, t->heap[c], x)) break;
        t->heap[i] = t->heap[c];
        i = c;
    }
    if (n) t->heap[i] = x;
    return top;
}

static void trainer_release(trainer *t) {
    qai_free(t->sym);
    qai_free(t->arena);
    tok_map_release(&t->sym_map);
    qai_free(t->wsym);
    qai_free(t->woff);
    qai_free(t->wlen);
    qai_free(t->wcount);
    qai_free(t->wstamp);
    for (int32_t i = 0; i < t->n_pairs; i++) qai_free(t->pairs[i].words);
    qai_free(t->pairs);
    qai_free(t->pkey);
    qai_free(t->pval);
    qai_free(t->heap);
}

/* ---- the merge loop ---------------------------------------------------------- */

typedef struct {
    int32_t l, r, result;
    bool is_new; /* the result is a new string (not reached before by another pair) */
} merge_rec;

static qai_status init_pairs(trainer *t) {
    for (size_t w = 0; w < t->n_words; w++) {
        const uint32_t *s = t->wsym + t->woff[w];
        for (uint32_t i = 0; i + 1 < t->wlen[w]; i++) {
            if (!pair_ok(t, (int32_t)s[i], (int32_t)s[i + 1])) continue;
            int32_t p = pair_get(t, (int32_t)s[i], (int32_t)s[i + 1]);
            if (p < 0) return QAI_ERR_NOMEM;
            t->pairs[p].count += (int64_t)t->wcount[w];
            if (pair_add_word(&t->pairs[p], (uint32_t)w)) return QAI_ERR_NOMEM;
        }
    }
    for (int32_t p = 0; p < t->n_pairs; p++)
        if (t->pairs[p].count > 0 && heap_push(t, (hentry){t->pairs[p].count, p})) return QAI_ERR_NOMEM;
    return QAI_OK;
}

/* Runs merges until want_new new strings were made or no pair is left. */
static qai_status merge_loop(trainer *t, int32_t want_new, merge_rec **out, int32_t *n_out, bool progress) {
    merge_rec *recs = NULL;
    int32_t n_recs = 0, cap_recs = 0, n_new = 0;
    int32_t *touched = NULL;
    size_t n_touched = 0, cap_touched = 0;
    uint32_t *tmp = NULL;
    size_t tmp_cap = 0;
    qai_status st = QAI_OK;
    uint32_t stamp = 0;
    qai_progress prog;
    if (progress) qai_progress_start(&prog, "merging", "tokens", (uint64_t)(want_new > 0 ? want_new : 0));
    char *buf = NULL;
    size_t buf_cap = 0;
    while (n_new < want_new && t->heap_n) {
        hentry h = heap_pop(t);
        pair *P = &t->pairs[h.pair];
        if (P->count != h.count) {
            if (P->count > 0 && (st = heap_push(t, (hentry){P->count, h.pair}))) goto done;
            continue;
        }
        if (P->count <= 0) break;
        int32_t L = P->l, R = P->r;
        /* the new symbol */
        size_t nl = t->sym[L].len, nr = t->sym[R].len;
        if (nl + nr > buf_cap) {
            buf_cap = (nl + nr) * 2 + 16;
            char *nb = qai_realloc(buf, buf_cap);
            if (!nb) {
                st = QAI_ERR_NOMEM;
                goto done;
            }
            buf = nb;
        }
        memcpy(buf, t->arena + t->sym[L].off, nl);
        memcpy(buf + nl, t->arena + t->sym[R].off, nr);
        int32_t N;
        bool is_new;
        if ((st = sym_intern(t, buf, nl + nr, t->sym[L].chars + t->sym[R].chars, &N, &is_new))) goto done;
        if (n_recs == cap_recs) {
            cap_recs = cap_recs ? cap_recs * 2 : 1024;
            merge_rec *v = qai_realloc(recs, (size_t)cap_recs * sizeof *v);
            if (!v) {
                st = QAI_ERR_NOMEM;
                goto done;
            }
            recs = v;
        }
        recs[n_recs++] = (merge_rec){L, R, N, is_new};
        if (is_new) n_new++;
        stamp++;
        n_touched = 0;
        /* rewrite every word on the pair's list */
        uint32_t *list = P->words; /* P may move as pairs are added: keep the list */
        uint32_t n_list = P->n_words;
        P->words = NULL;
        P->n_words = P->cap_words = 0;
        for (uint32_t k = 0; k < n_list; k++) {
            uint32_t w = list[k];
            if (t->wstamp[w] == stamp) continue;
            t->wstamp[w] = stamp;
            uint32_t *s = t->wsym + t->woff[w];
            uint32_t n = t->wlen[w];
            bool any = false;
            for (uint32_t i = 0; i + 1 < n; i++)
                if (s[i] == (uint32_t)L && s[i + 1] == (uint32_t)R) {
                    any = true;
                    break;
                }
            if (!any) continue; /* stale entry */
            int64_t c = (int64_t)t->wcount[w];
            if (n > tmp_cap) {
                tmp_cap = n * 2;
                uint32_t *v = qai_realloc(tmp, tmp_cap * sizeof *v);
                if (!v) {
                    st = QAI_ERR_NOMEM;
                    qai_free(list);
                    goto done;
                }
                tmp = v;
            }
            /* old pairs out */
            for (uint32_t i = 0; i + 1 < n; i++) {
                if (!pair_ok(t, (int32_t)s[i], (int32_t)s[i + 1])) continue;
                int32_t p = pair_get(t, (int32_t)s[i], (int32_t)s[i + 1]);
                if (p < 0) {
                    st = QAI_ERR_NOMEM;
                    qai_free(list);
                    goto done;
                }
                t->pairs[p].count -= c;
            }
            /* merge left to right */
            uint32_t m = 0;
            for (uint32_t i = 0; i < n;) {
                if (i + 1 < n && s[i] == (uint32_t)L && s[i + 1] == (uint32_t)R) {
                    tmp[m++] = (uint32_t)N;
                    i += 2;
                } else {
                    tmp[m++] = s[i++];
                }
            }
            memcpy(s, tmp, m * sizeof *s);
            t->wlen[w] = m;
            /* new pairs in */
            for (uint32_t i = 0; i + 1 < m; i++) {
                if (!pair_ok(t, (int32_t)s[i], (int32_t)s[i + 1])) continue;
                int32_t p = pair_get(t, (int32_t)s[i], (int32_t)s[i + 1]);
                if (p < 0) {
                    st = QAI_ERR_NOMEM;
                    qai_free(list);
                    goto done;
                }
                pair *q = &t->pairs[p];
                q->count += c;
                if (s[i] == (uint32_t)N || s[i + 1] == (uint32_t)N) {
                    if ((st = pair_add_word(q, w))) {
                        qai_free(list);
                        goto done;
                    }
                    if (q->stamp != stamp) {
                        q->stamp = stamp;
                        if (n_touched == cap_touched) {
                            cap_touched = cap_touched ? cap_touched * 2 : 256;
                            int32_t *v = qai_realloc(touched, cap_touched * sizeof *v);
                            if (!v) {
                                st = QAI_ERR_NOMEM;
                                qai_free(list);
                                goto done;
                            }
                            touched = v;
                        }
                        touched[n_touched++] = p;
                    }
                }
            }
        }
        qai_free(list);
        for (size_t k = 0; k < n_touched; k++) {
            pair *q = &t->pairs[touched[k]];
            if (q->count > 0 && (st = heap_push(t, (hentry){q->count, touched[k]}))) goto done;
        }
        if (progress) qai_progress_update(&prog, (uint64_t)n_new);
    }
    if (progress) qai_progress_finish(&prog);
done:
    qai_free(buf);
    qai_free(tmp);
    qai_free(touched);
    if (st) {
        qai_free(recs);
        return st;
    }
    *out = recs;
    *n_out = n_recs;
    return QAI_OK;
}

/* ---- putting it together -------------------------------------------------------- */

static int cmp_words(const void *a, const void *b) {
    const wentry *x = a, *y = b;
    if (x->flag != y->flag) return x->flag < y->flag ? -1 : 1;
    uint32_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->p, y->p, n);
    if (c) return c;
    return (x->len > y->len) - (x->len < y->len);
}

typedef struct {
    uint32_t cp;
    uint64_t count;
} char_count;

static int cmp_chars(const void *a, const void *b) {
    const char_count *x = a, *y = b;
    if (x->count != y->count) return x->count > y->count ? -1 : 1;
    return (x->cp > y->cp) - (x->cp < y->cp);
}

/* Cuts the texts into chunks of about `target` bytes at safe places: SPM after a
 * newline; BPE after a newline that follows a non-space and precedes a
 * non-space byte (so the pre-tokenizer's whitespace runs are not split). */
static qai_status make_chunks(const char *const *texts, const size_t *lens, size_t n, bool bpe, uint64_t max_bytes,
                              span **out, size_t *n_out, uint64_t *total) {
    const size_t target = 1 << 20;
    span *v = NULL;
    size_t nv = 0, cap = 0;
    uint64_t used = 0;
    for (size_t t = 0; t < n; t++) {
        const char *s = texts[t];
        size_t len = lens[t];
        if (max_bytes && used + len > max_bytes) { /* whole lines only */
            size_t keep = (size_t)(max_bytes - used);
            while (keep > 0 && s[keep - 1] != '\n') keep--;
            len = keep;
        }
        size_t i = 0;
        while (i < len) {
            size_t e = i + target < len ? i + target : len;
            while (e < len) {
                const char *nl = memchr(s + e, '\n', len - e);
                if (!nl) {
                    e = len;
                    break;
                }
                e = (size_t)(nl - s) + 1;
                if (!bpe) break;
                uint8_t before = (uint8_t)s[e - 2 < e ? e - 2 : 0], after = e < len ? (uint8_t)s[e] : 'x';
                if (e >= 2 && !(before == ' ' || before == '\n' || before == '\t' || before == '\r') &&
                    !(after == ' ' || after == '\n' || after == '\t' || after == '\r'))
                    break;
                if (e - i > 16 * target) break; /* no safe place: cut anyway */
            }
            if (nv == cap) {
                cap = cap ? cap * 2 : 64;
                span *nvp = qai_realloc(v, cap * sizeof *nvp);
                if (!nvp) {
                    qai_free(v);
                    return QAI_ERR_NOMEM;
                }
                v = nvp;
            }
            v[nv++] = (span){s + i, e - i};
            i = e;
        }
        used += len;
        if (max_bytes && used >= max_bytes) break;
    }
    *out = v;
    *n_out = nv;
    *total = used;
    return QAI_OK;
}

static qai_status put_token(qai_vocab_desc *d, int32_t i, const char *s, size_t n, float score, int32_t type) {
    char *c = qai_malloc(n + 1);
    if (!c) return QAI_ERR_NOMEM;
    memcpy(c, s, n);
    c[n] = 0;
    ((const char **)d->tokens)[i] = c;
    ((size_t *)d->token_lens)[i] = n;
    if (d->scores) ((float *)d->scores)[i] = score;
    ((int32_t *)d->types)[i] = type;
    return QAI_OK;
}

qai_status qai_tokenizer_train(const char *const *texts, const size_t *lens, size_t n, const qai_toktrain_opts *opts,
                               qai_vocab_desc *out, qai_toktrain_stats *stats) {
    if (!out) return qai_error(QAI_ERR_ARG, "qai_tokenizer_train: out must not be NULL");
    memset(out, 0, sizeof *out);
    qai_toktrain_opts defaults;
    if (!opts) {
        qai_toktrain_opts_init(&defaults);
        opts = &defaults;
    }
    if (stats) memset(stats, 0, sizeof *stats);
    if ((!texts || !lens) && n) return qai_error(QAI_ERR_ARG, "qai_tokenizer_train: texts or lens is NULL");
    bool bpe = opts->type == QAI_TOKTRAIN_BYTEBPE;
    if (opts->type != QAI_TOKTRAIN_SPM && !bpe)
        return qai_error(QAI_ERR_ARG, "tokenizer training: unknown type %d", (int)opts->type);
    if (!bpe && (opts->max_piece_chars < 1 || !(opts->coverage > 0 && opts->coverage <= 1)))
        return qai_error(QAI_ERR_ARG, "tokenizer training: coverage must be in (0, 1] and max piece length >= 1");
    size_t n_user = opts->user_tokens ? opts->n_user_tokens : 0;
    size_t n_ctrl = opts->control_tokens ? opts->n_control_tokens : 0;
    size_t n_spec = n_user + n_ctrl;
    int32_t n_fixed = (int32_t)(bpe ? 1 + 256 : 3 + 256) + (int32_t)n_spec;
    if (opts->vocab_size < n_fixed + 1 || opts->vocab_size > (1 << 24))
        return qai_error(QAI_ERR_ARG,
                         "tokenizer training: vocabulary size %d is outside [%d, %d] (%s needs %d fixed tokens)",
                         opts->vocab_size, n_fixed + 1, 1 << 24, bpe ? "bytebpe" : "bpe", n_fixed);
    const char **specials = NULL;
    size_t *spec_lens = NULL;
    if (n_spec) {
        specials = qai_malloc(n_spec * sizeof *specials);
        spec_lens = qai_malloc(n_spec * sizeof *spec_lens);
        if (!specials || !spec_lens) {
            qai_free(specials);
            qai_free(spec_lens);
            return QAI_ERR_NOMEM;
        }
        for (size_t i = 0; i < n_spec; i++) {
            specials[i] = i < n_user ? opts->user_tokens[i] : opts->control_tokens[i - n_user];
            spec_lens[i] = specials[i] ? strlen(specials[i]) : 0;
            if (!spec_lens[i]) {
                qai_free(specials);
                qai_free(spec_lens);
                return qai_error(QAI_ERR_ARG, "tokenizer training: special token %zu is empty", i);
            }
            for (size_t k = 0; k < i; k++)
                if (!strcmp(specials[k], specials[i])) {
                    qai_status st = qai_error(QAI_ERR_ARG, "tokenizer training: special token '%s' is given twice",
                                              specials[i]);
                    qai_free(specials);
                    qai_free(spec_lens);
                    return st;
                }
        }
    }
    init_ascii_class();

    qai_status st = QAI_OK;
    uint64_t t0 = qai_time_ns();
    span *chunks = NULL;
    size_t n_chunks = 0;
    uint64_t total = 0;
    qai_pool *pool = NULL;
    wmap *maps = NULL;
    qai_status *tst = NULL;
    tok_pre *pre = NULL;
    trainer T = {.o = opts};
    wentry *words = NULL;
    size_t n_uniq = 0;
    uint64_t *cp_count = NULL;
    int32_t *cp_sym = NULL;
    char_count *chars = NULL;
    size_t n_chars = 0, n_kept = 0;
    merge_rec *recs = NULL;
    int32_t n_recs = 0;
    uint32_t *wbuf = NULL;
    int nth = 1;

    if ((st = make_chunks(texts, lens, n, bpe, opts->max_bytes, &chunks, &n_chunks, &total))) goto done;
    if (bpe && (st = tok_pre_new("gpt-2", &pre))) goto done;
    pool = qai_pool_new(opts->n_threads);
    if (!pool) {
        st = qai_error(QAI_ERR_NOMEM, "tokenizer training: cannot start threads");
        goto done;
    }
    nth = qai_pool_size(pool);
    maps = qai_calloc((size_t)nth, sizeof *maps);
    tst = qai_calloc((size_t)nth, sizeof *tst);
    if (!maps || !tst) {
        st = QAI_ERR_NOMEM;
        goto done;
    }
    for (int i = 0; i < nth; i++)
        if ((st = wmap_init(&maps[i], 1 << 16))) goto done;
    {
        qai_progress prog;
        count_job job = {.o = opts, .chunks = chunks, .n_chunks = n_chunks, .maps = maps, .st = tst, .pre = pre,
                         .specials = specials, .special_lens = spec_lens, .n_specials = n_spec,
                         .progress = opts->progress ? &prog : NULL};
        atomic_init(&job.next, 0);
        atomic_init(&job.done_bytes, 0);
        if (opts->progress) qai_progress_start(&prog, "counting words", "bytes", total);
        qai_pool_run(pool, count_worker, &job);
        if (opts->progress) qai_progress_finish(&prog);
        for (int i = 0; i < nth && !st; i++) st = tst[i];
        if (st) goto done;
    }
    /* merge the per-thread maps into the first, then sort */
    for (int i = 1; i < nth; i++) {
        for (size_t k = 0; k < maps[i].cap && !st; k++) {
            const wentry *e = &maps[i].v[k];
            if (e->p) st = wmap_add(&maps[0], e->p, e->len, e->flag, e->hash, e->count);
        }
        qai_free(maps[i].v);
        maps[i].v = NULL;
        if (st) goto done;
    }
    words = qai_malloc((maps[0].n ? maps[0].n : 1) * sizeof *words);
    if (!words) {
        st = QAI_ERR_NOMEM;
        goto done;
    }
    uint64_t n_occ = 0;
    for (size_t k = 0; k < maps[0].cap; k++)
        if (maps[0].v[k].p) words[n_uniq++] = maps[0].v[k], n_occ += maps[0].v[k].count;
    qai_free(maps[0].v);
    maps[0].v = NULL;
    qsort(words, n_uniq, sizeof *words, cmp_words);
    if (n_uniq == 0) {
        st = qai_error(QAI_ERR_ARG, "tokenizer training: the training text is empty (%llu bytes read)",
                       (unsigned long long)total);
        goto done;
    }
    if (stats) {
        stats->n_bytes = total;
        stats->n_words = n_occ;
        stats->n_unique = n_uniq;
        stats->seconds_count = (double)(qai_time_ns() - t0) * 1e-9;
    }

    /* symbols */
    if ((st = tok_map_init(&T.sym_map, 1 << 12))) goto done;
    int32_t n_char_syms = 0;
    if (bpe) {
        char chr[256][3];
        uint8_t cl[256];
        tok_byte_level_chars(chr, cl);
        for (int b = 0; b < 256; b++) {
            int32_t id;
            if ((st = sym_intern(&T, chr[b], cl[b], 1, &id, NULL))) goto done;
        }
    } else {
        cp_count = qai_calloc(0x110000, sizeof *cp_count);
        cp_sym = qai_malloc(0x110000 * sizeof *cp_sym);
        if (!cp_count || !cp_sym) {
            st = QAI_ERR_NOMEM;
            goto done;
        }
        uint64_t all = 0;
        for (size_t w = 0; w < n_uniq; w++) {
            const wentry *e = &words[w];
            if (e->flag) cp_count[0x2581] += e->count, all += e->count;
            for (uint32_t i = 0; i < e->len;) {
                uint32_t cp;
                int k = tok_utf8_valid_len((const uint8_t *)e->p + i, e->len - i, &cp);
                if (k <= 0) break; /* cannot happen: words hold valid UTF-8 only */
                cp_count[cp] += e->count;
                all += e->count;
                i += (uint32_t)k;
            }
        }
        for (uint32_t cp = 0; cp < 0x110000; cp++) n_chars += cp_count[cp] != 0;
        chars = qai_malloc((n_chars ? n_chars : 1) * sizeof *chars);
        if (!chars) {
            st = QAI_ERR_NOMEM;
            goto done;
        }
        n_chars = 0;
        for (uint32_t cp = 0; cp < 0x110000; cp++)
            if (cp_count[cp]) chars[n_chars++] = (char_count){cp, cp_count[cp]};
        qsort(chars, n_chars, sizeof *chars, cmp_chars);
        uint64_t acc = 0;
        for (size_t i = 0; i < n_chars; i++) {
            if (n_kept > 0 && (double)acc >= opts->coverage * (double)all) break;
            acc += chars[i].count;
            n_kept++;
        }
        for (uint32_t cp = 0; cp < 0x110000; cp++) cp_sym[cp] = -1;
        for (size_t i = 0; i < n_kept; i++) {
            char u[4];
            uint32_t cp = chars[i].cp;
            size_t l = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
            if (l == 1) u[0] = (char)cp;
            else if (l == 2) u[0] = (char)(0xC0 | cp >> 6), u[1] = (char)(0x80 | (cp & 0x3F));
            else if (l == 3)
                u[0] = (char)(0xE0 | cp >> 12), u[1] = (char)(0x80 | (cp >> 6 & 0x3F)), u[2] = (char)(0x80 | (cp & 0x3F));
            else
                u[0] = (char)(0xF0 | cp >> 18), u[1] = (char)(0x80 | (cp >> 12 & 0x3F)),
                u[2] = (char)(0x80 | (cp >> 6 & 0x3F)), u[3] = (char)(0x80 | (cp & 0x3F));
            if ((st = sym_intern(&T, u, l, 1, &cp_sym[cp], NULL))) goto done;
        }
        n_char_syms = (int32_t)n_kept;
        if (n_fixed + n_char_syms > opts->vocab_size) {
            st = qai_error(QAI_ERR_ARG,
                           "tokenizer training: vocabulary size %d is too small: %d fixed tokens and %d characters "
                           "(coverage %g) need at least %d",
                           opts->vocab_size, n_fixed, n_char_syms, opts->coverage, n_fixed + n_char_syms + 1);
            goto done;
        }
    }

    /* words as symbol sequences (SPM: rare characters cut words) */
    {
        size_t wcap = 64;
        wbuf = qai_malloc(wcap * sizeof *wbuf);
        if (!wbuf) {
            st = QAI_ERR_NOMEM;
            goto done;
        }
        for (size_t w = 0; w < n_uniq; w++) {
            const wentry *e = &words[w];
            if (e->len + 1 > wcap) {
                wcap = (size_t)e->len * 2 + 2;
                uint32_t *nb = qai_realloc(wbuf, wcap * sizeof *nb);
                if (!nb) {
                    st = QAI_ERR_NOMEM;
                    goto done;
                }
                wbuf = nb;
            }
            uint32_t m = 0;
            if (bpe) {
                for (uint32_t i = 0; i < e->len; i++) wbuf[m++] = (uint8_t)e->p[i];
            } else {
                if (e->flag) wbuf[m++] = (uint32_t)cp_sym[0x2581];
                for (uint32_t i = 0; i < e->len;) {
                    uint32_t cp;
                    int k = tok_utf8_valid_len((const uint8_t *)e->p + i, e->len - i, &cp);
                    if (k <= 0) k = 1, cp = 0xFFFD;
                    i += (uint32_t)k;
                    if (cp_sym[cp] < 0) { /* rare: cut here */
                        if ((st = word_add(&T, wbuf, m, e->count))) goto done;
                        m = 0;
                        continue;
                    }
                    wbuf[m++] = (uint32_t)cp_sym[cp];
                }
            }
            if ((st = word_add(&T, wbuf, m, e->count))) goto done;
        }
    }
    qai_free(words);
    words = NULL;

    uint64_t t1 = qai_time_ns();
    if ((st = init_pairs(&T))) goto done;
    int32_t want = opts->vocab_size - n_fixed - n_char_syms;
    if ((st = merge_loop(&T, want, &recs, &n_recs, opts->progress))) goto done;
    if (stats) {
        stats->n_chars = n_char_syms;
        stats->n_merges = n_recs;
        stats->seconds_merge = (double)(qai_time_ns() - t1) * 1e-9;
    }

    /* the vocabulary */
    {
        int32_t n_new = 0;
        for (int32_t i = 0; i < n_recs; i++) n_new += recs[i].is_new;
        int32_t nv = n_fixed + n_char_syms + n_new;
        out->kind = bpe ? QAI_VOCAB_BPE : QAI_VOCAB_SPM;
        out->n_tokens = nv;
        out->tokens = qai_calloc((size_t)nv, sizeof(char *));
        out->token_lens = qai_calloc((size_t)nv, sizeof(size_t));
        out->types = qai_calloc((size_t)nv, sizeof(int32_t));
        if (!bpe) out->scores = qai_calloc((size_t)nv, sizeof(float));
        if (!out->tokens || !out->token_lens || !out->types || (!bpe && !out->scores)) {
            st = QAI_ERR_NOMEM;
            goto done;
        }
        out->bos = out->eos = out->eot = out->eom = out->unk = out->pad = out->sep = -1;
        int32_t id = 0;
        if (bpe) {
            if ((st = put_token(out, id++, "<|endoftext|>", 13, 0, QAI_TOKEN_CONTROL))) goto done;
            out->bos = out->eos = 0;
        } else {
            if ((st = put_token(out, id++, "<unk>", 5, 0, QAI_TOKEN_UNKNOWN)) ||
                (st = put_token(out, id++, "<s>", 3, 0, QAI_TOKEN_CONTROL)) ||
                (st = put_token(out, id++, "</s>", 4, 0, QAI_TOKEN_CONTROL)))
                goto done;
            out->unk = 0, out->bos = 1, out->eos = 2;
            out->add_bos = true;
            out->add_space_prefix = true;
        }
        for (size_t i = 0; i < n_spec; i++)
            if ((st = put_token(out, id++, specials[i], spec_lens[i], 0,
                                i < n_user ? QAI_TOKEN_USER_DEFINED : QAI_TOKEN_CONTROL)))
                goto done;
        /* symbol id -> vocabulary id */
        int32_t *sym_id = qai_malloc((size_t)T.n_sym * sizeof *sym_id);
        if (!sym_id) {
            st = QAI_ERR_NOMEM;
            goto done;
        }
        for (int32_t s = 0; s < T.n_sym; s++) sym_id[s] = -1;
        if (bpe) {
            for (int32_t b = 0; b < 256; b++) {
                sym_id[b] = id;
                if ((st = put_token(out, id++, T.arena + T.sym[b].off, T.sym[b].len, 0, QAI_TOKEN_NORMAL))) break;
            }
        } else {
            for (int b = 0; b < 256 && !st; b++) {
                char name[8];
                snprintf(name, sizeof name, "<0x%02X>", b);
                st = put_token(out, id++, name, 6, 0, QAI_TOKEN_BYTE);
            }
        }
        int32_t rank = 0;
        for (int32_t i = 0; i < n_recs && !st; i++) {
            if (!recs[i].is_new) continue;
            const symbol *s = &T.sym[recs[i].result];
            sym_id[recs[i].result] = id;
            st = put_token(out, id++, T.arena + s->off, s->len, -(float)rank++, QAI_TOKEN_NORMAL);
        }
        for (int32_t c = 0; c < n_char_syms && !st; c++) { /* SPM: characters last, by falling frequency */
            const symbol *s = &T.sym[c];
            sym_id[c] = id;
            st = put_token(out, id++, T.arena + s->off, s->len, -(float)rank++, QAI_TOKEN_NORMAL);
        }
        if (!st && bpe) {
            out->merges = qai_calloc((size_t)(n_recs ? n_recs : 1), sizeof(char *));
            if (!out->merges) st = QAI_ERR_NOMEM;
            for (int32_t i = 0; i < n_recs && !st; i++) {
                const symbol *l = &T.sym[recs[i].l], *r = &T.sym[recs[i].r];
                char *m = qai_malloc(l->len + r->len + 2);
                if (!m) {
                    st = QAI_ERR_NOMEM;
                    break;
                }
                memcpy(m, T.arena + l->off, l->len);
                m[l->len] = ' ';
                memcpy(m + l->len + 1, T.arena + r->off, r->len);
                m[l->len + r->len + 1] = 0;
                ((const char **)out->merges)[i] = m;
                out->n_merges = i + 1;
            }
            if (!st && !(out->pre = qai_strdup("gpt-2"))) st = QAI_ERR_NOMEM;
        }
        qai_free(sym_id);
        if (!st && id != nv) st = qai_error(QAI_ERR_INTERNAL, "tokenizer training: built %d of %d tokens", id, nv);
    }

done:
    if (st == QAI_ERR_NOMEM && !*qai_last_error()) qai_error(st, "tokenizer training: out of memory");
    if (st) qai_vocab_release(out);
    qai_free(recs);
    qai_free(wbuf);
    qai_free(chars);
    qai_free(cp_count);
    qai_free(cp_sym);
    qai_free(words);
    trainer_release(&T);
    if (maps)
        for (int i = 0; i < nth; i++) qai_free(maps[i].v);
    qai_free(maps);
    qai_free(tst);
    qai_pool_free(pool);
    tok_pre_free(pre);
    qai_free(chunks);
    qai_free((void *)specials);
    qai_free(spec_lens);
    return st;
}

qai_status qai_tokenizer_train_files(const char *const *paths, size_t n, const qai_toktrain_opts *o,
                                     qai_vocab_desc *out, qai_toktrain_stats *stats) {
    if (!out) return qai_error(QAI_ERR_ARG, "qai_tokenizer_train_files: out must not be NULL");
    memset(out, 0, sizeof *out);
    if (!paths || n == 0) return qai_error(QAI_ERR_ARG, "tokenizer training: no input files");
    qai_mapped_file *mf = qai_calloc(n, sizeof *mf);
    const char **texts = qai_calloc(n, sizeof *texts);
    size_t *lens = qai_calloc(n, sizeof *lens);
    qai_status st = QAI_OK;
    if (!mf || !texts || !lens) st = QAI_ERR_NOMEM;
    size_t mapped = 0;
    uint64_t total = 0;
    for (size_t i = 0; i < n && !st; i++) {
        mf[i].fd = -1;
        st = qai_file_map(paths[i], &mf[i]);
        if (st) break;
        mapped = i + 1;
        texts[i] = (const char *)mf[i].data;
        lens[i] = mf[i].size;
        total += mf[i].size;
        if (memchr(mf[i].data, 0, mf[i].size)) {
            st = qai_error(QAI_ERR_FORMAT, "training file '%s' is binary (holds NUL bytes at offset %zu)", paths[i],
                           (size_t)((const uint8_t *)memchr(mf[i].data, 0, mf[i].size) - mf[i].data));
        }
    }
    if (!st && total == 0)
        st = qai_error(QAI_ERR_ARG, "tokenizer training: the input files are empty (%zu files, 0 bytes)", n);
    if (!st) st = qai_tokenizer_train(texts, lens, n, o, out, stats);
    for (size_t i = 0; i < mapped; i++) qai_file_unmap(&mf[i]);
    qai_free(mf);
    qai_free((void *)texts);
    qai_free(lens);
    return st;
}
