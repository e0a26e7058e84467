/*
 * spm.c — SentencePiece-style BPE ("llama" vocabularies), as llama.cpp's
 * llm_tokenizer_spm and llama2.c's encoder do it:
 *   1. spaces become "▁" (U+2581); the dummy prefix "▁" goes first when asked;
 *   2. the text is split into UTF-8 characters (an invalid byte is a symbol of
 *      its own, so nothing is lost);
 *   3. repeatedly the adjacent pair whose concatenation is a vocabulary string
 *      with the highest score is merged (leftmost on ties), using a binary heap
 *      over candidate pairs and a linked list over symbols: O(n log n). The
 *      text is first cut where two neighbouring characters never occur side by
 *      side in any vocabulary string (no merge can cross there), which gives the
 *      same result with small heaps. Pairs are looked up by symbol ids, not by
 *      text: every way to cut every token into two symbols (a token or a
 *      character that occurs in one) is in a hash table built once, so a
 *      candidate costs one integer hash probe instead of hashing and comparing
 *      its string;
 *   4. in a text longer than 2 KB each distinct short segment is merged once
 *      per call and its tokens reused (a cache local to the call);
 *   5. each final symbol is its token, or — if not in the vocabulary — its
 *      bytes as <0xXX> tokens (or <unk> when the vocabulary has no byte tokens).
 *
 * llama2.c looks the dummy prefix up as a separate " " token and then merges;
 * that is the same as merging over "▁" + text, so both references agree.
 *
 * What it does not do: SentencePiece's Unigram model or its normalizer.
 */
#include <string.h>

#include "tokenizer/tok_internal.h"

typedef struct {
    uint32_t off, n;   /* bytes of the escaped text */
    int32_t prev, next;
    int32_t id;        /* merge symbol id: a token, a virtual character id (>= n_vocab), or -1 */
} spm_sym;

typedef struct {
    float score;
    int32_t left, right;
    uint32_t size;
    int32_t id;
} spm_bigram;

typedef struct {
    spm_bigram *v;
    size_t n, cap;
} spm_heap;

/* a before b in the heap: higher score first, then the leftmost pair */
static inline bool before(const spm_bigram *a, const spm_bigram *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static qai_status heap_push(spm_heap *h, spm_bigram x) {
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 256;
        spm_bigram *v = qai_realloc(h->v, cap * sizeof *v);
        if (!v) return QAI_ERR_NOMEM;
        h->v = v;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!before(&x, &h->v[p])) break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = x;
    return QAI_OK;
}

static spm_bigram heap_pop(spm_heap *h) {
    spm_bigram top = h->v[0];
    spm_bigram x = h->v[--h->n];
    size_t i = 0, n = h->n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && before(&h->v[c + 1], &h->v[c])) c++;
        if (!before(&h->v[c], &x)) break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (n) h->v[i] = x;
    return top;
}

static inline size_t merge_slot(uint64_t key, size_t cap) {
    uint64_t x = key * 0x9E3779B97F4A7C15ULL;
    return (size_t)(x ^ x >> 29) & (cap - 1);
}

static inline const tok_spm_merge *merge_find(const qai_tokenizer *tok, int32_t l, int32_t r) {
    uint64_t key = (uint64_t)(uint32_t)l << 32 | (uint32_t)r;
    size_t j = merge_slot(key, tok->spm_mcap);
    for (;;) {
        const tok_spm_merge *m = &tok->spm_merges[j];
        if (m->key == key) return m;
        if (m->key == UINT64_MAX) return NULL;
        j = (j + 1) & (tok->spm_mcap - 1);
    }
}

static qai_status try_bigram(const qai_tokenizer *tok, const spm_sym *sym, int32_t l, int32_t r, spm_heap *h) {
    if (l < 0 || r < 0 || sym[l].id < 0 || sym[r].id < 0) return QAI_OK;
    const tok_spm_merge *m = merge_find(tok, sym[l].id, sym[r].id);
    if (!m) return QAI_OK;
    return heap_push(h, (spm_bigram){m->score, l, r, sym[l].n + sym[r].n, m->result});
}

static qai_status emit_symbol(const qai_tokenizer *tok, const char *s, const spm_sym *sy, tok_ids *out) {
    if (sy->id >= 0 && sy->id < tok->n_vocab) return tok_ids_push(out, sy->id);
    bool all_bytes = true;
    for (uint32_t k = 0; k < sy->n; k++) all_bytes &= tok->byte_id[(uint8_t)s[sy->off + k]] >= 0;
    if (!all_bytes) return tok->unk >= 0 ? tok_ids_push(out, tok->unk) : QAI_OK;
    for (uint32_t k = 0; k < sy->n; k++) {
        qai_status st = tok_ids_push(out, tok->byte_id[(uint8_t)s[sy->off + k]]);
        if (st) return st;
    }
    return QAI_OK;
}

/* ---- adjacent-character pairs of the vocabulary ---- */

static inline uint32_t pack_char(const uint8_t *s, uint32_t n) {
    uint32_t v = 0;
    for (uint32_t k = 0; k < n && k < 4; k++) v |= (uint32_t)s[k] << (8 * k);
    return v;
}

static inline size_t pair_slot(uint64_t key, size_t cap) {
    uint64_t x = key * 0x9E3779B97F4A7C15ULL;
    return (size_t)(x ^ x >> 31) & (cap - 1);
}

static bool pair_has(const qai_tokenizer *tok, uint64_t key) {
    size_t j = pair_slot(key, tok->pairs_cap);
    while (tok->pairs[j] != UINT64_MAX) {
        if (tok->pairs[j] == key) return true;
        j = (j + 1) & (tok->pairs_cap - 1);
    }
    return false;
}

static qai_status pair_add(qai_tokenizer *tok, uint64_t key, size_t *n) {
    if ((*n + 1) * 2 > tok->pairs_cap) {
        size_t cap = tok->pairs_cap ? tok->pairs_cap * 2 : 1024;
        uint64_t *v = qai_malloc(cap * sizeof *v);
        if (!v) return QAI_ERR_NOMEM;
        for (size_t i = 0; i < cap; i++) v[i] = UINT64_MAX;
        for (size_t i = 0; i < tok->pairs_cap; i++) {
            if (tok->pairs[i] == UINT64_MAX) continue;
            size_t j = pair_slot(tok->pairs[i], cap);
            while (v[j] != UINT64_MAX) j = (j + 1) & (cap - 1);
            v[j] = tok->pairs[i];
        }
        qai_free(tok->pairs);
        tok->pairs = v;
        tok->pairs_cap = cap;
    }
    size_t j = pair_slot(key, tok->pairs_cap);
    while (tok->pairs[j] != UINT64_MAX) {
        if (tok->pairs[j] == key) return QAI_OK;
        j = (j + 1) & (tok->pairs_cap - 1);
    }
    tok->pairs[j] = key;
    (*n)++;
    return QAI_OK;
}

/* Character length as the encoder splits text: a valid UTF-8 sequence, or one byte. */
static inline uint32_t char_len(const uint8_t *s, size_t n) {
    int l = tok_utf8_valid_len(s, n, NULL);
    return l > 0 ? (uint32_t)l : 1;
}

/* Id of the character c (packed, n bytes) as a merge symbol, or -1. */
static inline int32_t char_id(const qai_tokenizer *tok, uint32_t c, uint32_t n) {
    if (n == 1) return tok->spm_byte_char[c & 0xFF];
    uint64_t key = c;
    size_t j = pair_slot(key, tok->spm_ccap);
    for (;;) {
        if (tok->spm_ckey[j] == key) return tok->spm_cid[j];
        if (tok->spm_ckey[j] == UINT64_MAX) return -1;
        j = (j + 1) & (tok->spm_ccap - 1);
    }
}

/* Gives every multi-byte character that occurs in a token an id (its token's,
 * or a new virtual one). */
static qai_status build_char_ids(qai_tokenizer *tok) {
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        tok->spm_byte_char[b] = tok_map_get(&tok->map, &c, 1);
    }
    size_t n = 0, cap = 1024;
    uint64_t *keys = qai_malloc(cap * sizeof *keys);
    int32_t *ids = qai_malloc(cap * sizeof *ids);
    if (!keys || !ids) goto nomem;
    for (size_t i = 0; i < cap; i++) keys[i] = UINT64_MAX;
    int32_t next_virtual = tok->n_vocab;
    for (int32_t i = 0; i < tok->n_vocab; i++) {
        const uint8_t *t = (const uint8_t *)tok->text[i];
        size_t len = tok->len[i];
        for (size_t p = 0; p < len;) {
            uint32_t l = char_len(t + p, len - p);
            if (l == 1) {
                if (tok->spm_byte_char[t[p]] < 0) tok->spm_byte_char[t[p]] = next_virtual++;
                p += l;
                continue;
            }
            uint64_t key = pack_char(t + p, l);
            size_t j = pair_slot(key, cap);
            while (keys[j] != UINT64_MAX && keys[j] != key) j = (j + 1) & (cap - 1);
            if (keys[j] == UINT64_MAX) {
                int32_t id = tok_map_get(&tok->map, (const char *)t + p, l);
                keys[j] = key;
                ids[j] = id >= 0 ? id : next_virtual++;
                if (++n * 2 > cap) { /* grow */
                    size_t nc = cap * 2;
                    uint64_t *nk = qai_malloc(nc * sizeof *nk);
                    int32_t *ni = qai_malloc(nc * sizeof *ni);
                    if (!nk || !ni) {
                        qai_free(nk);
                        qai_free(ni);
                        goto nomem;
                    }
                    for (size_t k = 0; k < nc; k++) nk[k] = UINT64_MAX;
                    for (size_t k = 0; k < cap; k++) {
                        if (keys[k] == UINT64_MAX) continue;
                        size_t q = pair_slot(keys[k], nc);
                        while (nk[q] != UINT64_MAX) q = (q + 1) & (nc - 1);
                        nk[q] = keys[k];
                        ni[q] = ids[k];
                    }
                    qai_free(keys);
                    qai_free(ids);
                    keys = nk;
                    ids = ni;
                    cap = nc;
                }
            }
            p += l;
        }
    }
    tok->spm_ckey = keys;
    tok->spm_cid = ids;
    tok->spm_ccap = cap;
    return QAI_OK;
nomem:
    qai_free(keys);
    qai_free(ids);
    return QAI_ERR_NOMEM;
}

/* The symbol id of a piece of a token: a character's id, or the id the
 * vocabulary gives the string (-1 if none: such a piece is never a symbol). */
static int32_t piece_id(const qai_tokenizer *tok, const uint8_t *s, size_t n) {
    uint32_t l = char_len(s, n);
    if (l == n) return char_id(tok, pack_char(s, l), l);
    return tok_map_get(&tok->map, (const char *)s, n);
}

/* Every cut of every token into (left, right) symbols -> the token. */
static qai_status build_merges(qai_tokenizer *tok) {
    size_t total = 0;
    for (int32_t i = 0; i < tok->n_vocab; i++) total += tok->len[i] > 1 ? tok->len[i] - 1 : 0;
    size_t cap = 16;
    while (cap < total * 2 + 2) cap <<= 1;
    tok_spm_merge *m = qai_malloc(cap * sizeof *m);
    if (!m) return QAI_ERR_NOMEM;
    for (size_t i = 0; i < cap; i++) m[i].key = UINT64_MAX;
    for (int32_t i = 0; i < tok->n_vocab; i++) {
        const uint8_t *t = (const uint8_t *)tok->text[i];
        size_t len = tok->len[i];
        int32_t result = tok_map_get(&tok->map, (const char *)t, len); /* the id encoding finds for this text */
        if (result != i) continue; /* a duplicate string: handled at its winning id */
        size_t p = char_len(t, len);
        while (p < len) {
            int32_t l = piece_id(tok, t, p), r = piece_id(tok, t + p, len - p);
            if (l >= 0 && r >= 0) {
                uint64_t key = (uint64_t)(uint32_t)l << 32 | (uint32_t)r;
                size_t j = merge_slot(key, cap);
                while (m[j].key != UINT64_MAX && m[j].key != key) j = (j + 1) & (cap - 1);
                m[j] = (tok_spm_merge){key, tok->scores[result], result};
            }
            p += char_len(t + p, len - p);
        }
    }
    tok->spm_merges = m;
    tok->spm_mcap = cap;
    return QAI_OK;
}

qai_status tok_spm_init(qai_tokenizer *tok) {
    size_t n = 0;
    for (int32_t i = 0; i < tok->n_vocab; i++) {
        const uint8_t *t = (const uint8_t *)tok->text[i];
        size_t len = tok->len[i];
        size_t p = 0;
        uint32_t prev = 0, prev_n = 0;
        while (p < len) {
            uint32_t l = char_len(t + p, len - p);
            uint32_t c = pack_char(t + p, l);
            if (prev_n) {
                qai_status st = pair_add(tok, (uint64_t)prev << 32 | c, &n);
                if (st) return st;
            }
            prev = c;
            prev_n = l;
            p += l;
        }
    }
    if (!tok->pairs) { /* no multi-character token: an empty set */
        tok->pairs = qai_malloc(16 * sizeof *tok->pairs);
        if (!tok->pairs) return QAI_ERR_NOMEM;
        for (int i = 0; i < 16; i++) tok->pairs[i] = UINT64_MAX;
        tok->pairs_cap = 16;
    }
    qai_status st = build_char_ids(tok);
    if (!st) st = build_merges(tok);
    return st;
}

/* Merges the symbols first..last (a segment no merge can leave) and emits them. */
static qai_status merge_segment(const qai_tokenizer *tok, const char *s, spm_sym *sym, int32_t first, int32_t last,
                                spm_heap *heap, tok_ids *out) {
    qai_status st;
    sym[first].prev = -1;
    sym[last].next = -1;
    heap->n = 0;
    for (int32_t i = first + 1; i <= last; i++)
        if ((st = try_bigram(tok, sym, i - 1, i, heap))) return st;
    while (heap->n) {
        spm_bigram b = heap_pop(heap);
        spm_sym *L = &sym[b.left], *R = &sym[b.right];
        if (L->n == 0 || R->n == 0 || L->n + R->n != b.size) continue; /* stale */
        L->n += R->n;
        L->id = b.id;
        R->n = 0;
        L->next = R->next;
        if (R->next >= 0) sym[R->next].prev = b.left;
        if ((st = try_bigram(tok, sym, L->prev, b.left, heap))) return st;
        if ((st = try_bigram(tok, sym, b.left, L->next, heap))) return st;
    }
    for (int32_t i = first; i != -1; i = sym[i].next)
        if ((st = emit_symbol(tok, s, &sym[i], out))) return st;
    return QAI_OK;
}

/* ---- a cache of segment encodings, for long texts ----
 * A segment's tokens depend only on its bytes, and natural text repeats its
 * words, so within one long call each distinct short segment is merged once.
 * The cache lives for one call (the tokenizer stays read-only and shareable
 * between threads). */

enum { SEG_CACHE_MIN_TEXT = 2048, SEG_CACHE_MAX_KEY = 64, SEG_CACHE_SLOTS = 1 << 15 };

typedef struct {
    uint64_t hash;   /* 0 = empty */
    uint32_t key_off; /* bytes in the escaped text */
    uint32_t ids_off; /* in ids */
    uint16_t key_len, n_ids;
} seg_entry;

typedef struct {
    seg_entry *slots;
    size_t n;
    tok_ids ids;
} seg_cache;

static inline uint64_t seg_hash(const char *p, size_t n) { return tok_hash(p, n) | 1; }

static seg_entry *seg_find(seg_cache *c, const char *s, uint32_t off, uint32_t len, uint64_t h) {
    size_t j = h & (SEG_CACHE_SLOTS - 1);
    for (;;) {
        seg_entry *e = &c->slots[j];
        if (!e->hash || (e->hash == h && e->key_len == len && !memcmp(s + e->key_off, s + off, len))) return e;
        j = (j + 1) & (SEG_CACHE_SLOTS - 1);
    }
}

/* Encodes the segment first..last, through the cache when there is one. */
static qai_status encode_segment(const qai_tokenizer *tok, const char *s, spm_sym *sym, int32_t first, int32_t last,
                                 spm_heap *heap, seg_cache *c, tok_ids *out) {
    uint32_t off = sym[first].off, len = sym[last].off + sym[last].n - off;
    if (!c || !c->slots || len > SEG_CACHE_MAX_KEY) return merge_segment(tok, s, sym, first, last, heap, out);
    uint64_t h = seg_hash(s + off, len);
    seg_entry *e = seg_find(c, s, off, len, h);
    qai_status st;
    if (e->hash) {
        for (uint16_t k = 0; k < e->n_ids; k++)
            if ((st = tok_ids_push(out, c->ids.v[e->ids_off + k]))) return st;
        return QAI_OK;
    }
    size_t before = out->n;
    if ((st = merge_segment(tok, s, sym, first, last, heap, out))) return st;
    if (out->n - before > UINT16_MAX) return QAI_OK;
    if (c->n * 2 >= SEG_CACHE_SLOTS) { /* full: start over (frequent segments come back soon) */
        memset(c->slots, 0, SEG_CACHE_SLOTS * sizeof *c->slots);
        c->n = 0;
        c->ids.n = 0;
        e = seg_find(c, s, off, len, h);
    }
    *e = (seg_entry){h, off, (uint32_t)c->ids.n, (uint16_t)len, (uint16_t)(out->n - before)};
    for (size_t k = before; k < out->n; k++)
        if ((st = tok_ids_push(&c->ids, out->v[k]))) return st;
    c->n++;
    return QAI_OK;
}

qai_status tok_spm_encode(const qai_tokenizer *tok, const char *text, size_t len, bool add_prefix, tok_ids *out) {
    if (len == 0 && !add_prefix) return QAI_OK;
    if (len > (UINT32_MAX - 3) / 3) return qai_error(QAI_ERR_RANGE, "tokenizer: text of %zu bytes is too long to encode in one piece", len);
    /* escape: " " -> "▁" */
    size_t spaces = 0;
    for (size_t i = 0; i < len; i++) spaces += text[i] == ' ';
    size_t n = len + 2 * spaces + (add_prefix ? 3 : 0);
    char *s = qai_malloc(n + 1);
    /* symbols of the current segment only (a long text does not need one per character) */
    size_t sym_cap = len + 1 < 4096 ? len + 1 : 4096;
    spm_sym *sym = qai_malloc(sym_cap * sizeof *sym);
    spm_heap heap = {0};
    seg_cache cache = {0};
    qai_status st = QAI_OK;
    if (!s || !sym) {
        st = QAI_ERR_NOMEM;
        goto done;
    }
    if (len >= SEG_CACHE_MIN_TEXT) cache.slots = qai_calloc(SEG_CACHE_SLOTS, sizeof *cache.slots); /* NULL: no cache */
    size_t w = 0;
    if (add_prefix) s[w++] = (char)0xE2, s[w++] = (char)0x96, s[w++] = (char)0x81;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') s[w++] = (char)0xE2, s[w++] = (char)0x96, s[w++] = (char)0x81;
        else s[w++] = text[i];
    }
    /* symbols: UTF-8 characters (an invalid byte stands alone), cut into
     * segments where two neighbours never occur together in a token */
    int32_t ns = 0;
    uint32_t prev = 0;
    for (size_t i = 0; i < n;) {
        uint32_t l = char_len((const uint8_t *)s + i, n - i);
        uint32_t c = pack_char((const uint8_t *)s + i, l);
        if (ns > 0 && !pair_has(tok, (uint64_t)prev << 32 | c)) {
            if ((st = encode_segment(tok, s, sym, 0, ns - 1, &heap, &cache, out))) goto done;
            ns = 0;
        }
        if ((size_t)ns == sym_cap) {
            sym_cap *= 2;
            spm_sym *v = qai_realloc(sym, sym_cap * sizeof *v);
            if (!v) {
                st = QAI_ERR_NOMEM;
                goto done;
            }
            sym = v;
        }
        sym[ns] = (spm_sym){(uint32_t)i, l, ns - 1, ns + 1, char_id(tok, c, l)};
        ns++;
        prev = c;
        i += l;
    }
    if (ns > 0) st = encode_segment(tok, s, sym, 0, ns - 1, &heap, &cache, out);
done:
    qai_free(s);
    qai_free(sym);
    qai_free(heap.v);
    qai_free(cache.slots);
    qai_free(cache.ids.v);
    return st;
}
