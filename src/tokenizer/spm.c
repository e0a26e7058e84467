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
 *      same result with small heaps;
 *   4. each final symbol is its token, or — if not in the vocabulary — its
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
    int32_t id;        /* token id once merged (-1: look it up) */
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

static qai_status try_bigram(const qai_tokenizer *tok, const char *s, const spm_sym *sym, int32_t l, int32_t r,
                             spm_heap *h) {
    if (l < 0 || r < 0) return QAI_OK;
    uint32_t size = sym[l].n + sym[r].n;
    int32_t id = tok_map_get(&tok->map, s + sym[l].off, size);
    if (id < 0) return QAI_OK;
    return heap_push(h, (spm_bigram){tok->scores[id], l, r, size, id});
}

static qai_status emit_symbol(const qai_tokenizer *tok, const char *s, const spm_sym *sy, tok_ids *out) {
    int32_t id = sy->id >= 0 ? sy->id : tok_map_get(&tok->map, s + sy->off, sy->n);
    if (id >= 0) return tok_ids_push(out, id);
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
    return QAI_OK;
}

/* Merges the symbols first..last (a segment no merge can leave) and emits them. */
static qai_status merge_segment(const qai_tokenizer *tok, const char *s, spm_sym *sym, int32_t first, int32_t last,
                                spm_heap *heap, tok_ids *out) {
    qai_status st;
    sym[first].prev = -1;
    sym[last].next = -1;
    heap->n = 0;
    for (int32_t i = first + 1; i <= last; i++)
        if ((st = try_bigram(tok, s, sym, i - 1, i, heap))) return st;
    while (heap->n) {
        spm_bigram b = heap_pop(heap);
        spm_sym *L = &sym[b.left], *R = &sym[b.right];
        if (L->n == 0 || R->n == 0 || L->n + R->n != b.size) continue; /* stale */
        L->n += R->n;
        L->id = b.id;
        R->n = 0;
        L->next = R->next;
        if (R->next >= 0) sym[R->next].prev = b.left;
        if ((st = try_bigram(tok, s, sym, L->prev, b.left, heap))) return st;
        if ((st = try_bigram(tok, s, sym, b.left, L->next, heap))) return st;
    }
    for (int32_t i = first; i != -1; i = sym[i].next)
        if ((st = emit_symbol(tok, s, &sym[i], out))) return st;
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
    spm_sym *sym = qai_malloc((len + 1) * sizeof *sym);
    spm_heap heap = {0};
    qai_status st = QAI_OK;
    if (!s || !sym) {
        st = QAI_ERR_NOMEM;
        goto done;
    }
    size_t w = 0;
    if (add_prefix) s[w++] = (char)0xE2, s[w++] = (char)0x96, s[w++] = (char)0x81;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') s[w++] = (char)0xE2, s[w++] = (char)0x96, s[w++] = (char)0x81;
        else s[w++] = text[i];
    }
    /* symbols: UTF-8 characters (an invalid byte stands alone), cut into
     * segments where two neighbours never occur together in a token */
    int32_t ns = 0, seg = 0;
    uint32_t prev = 0;
    for (size_t i = 0; i < n;) {
        uint32_t l = char_len((const uint8_t *)s + i, n - i);
        uint32_t c = pack_char((const uint8_t *)s + i, l);
        if (ns > seg && !pair_has(tok, (uint64_t)prev << 32 | c)) {
            if ((st = merge_segment(tok, s, sym, seg, ns - 1, &heap, out))) goto done;
            seg = ns;
        }
        sym[ns] = (spm_sym){(uint32_t)i, l, ns - 1, ns + 1, -1};
        ns++;
        prev = c;
        i += l;
    }
    if (ns > seg) st = merge_segment(tok, s, sym, seg, ns - 1, &heap, out);
done:
    qai_free(s);
    qai_free(sym);
    qai_free(heap.v);
    return st;
}
