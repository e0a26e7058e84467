/* The vocabulary trie for token masks: every token's piece (the bytes it
 * stands for) in one byte trie, children sorted and contiguous, tokens
 * numbered in trie order so a subtree's tokens are one range. Built once per
 * tokenizer, then read-only (shared by any number of grammar states).
 *
 * Left out of the trie (never allowed by a grammar): end-of-generation tokens
 * (kept in their own list, allowed when the document is complete), control,
 * unknown and unused tokens, and tokens whose piece is empty.
 */
#include <stdlib.h>
#include <string.h>

#include "grammar_internal.h"

typedef struct {
    const uint8_t *s;
    uint32_t len;
    int32_t id;
} ent;

static int ent_cmp(const void *pa, const void *pb) {
    const ent *a = pa, *b = pb;
    uint32_t n = a->len < b->len ? a->len : b->len;
    int c = memcmp(a->s, b->s, n);
    if (c) return c;
    if (a->len != b->len) return a->len < b->len ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

static void build(qai_grammar_vocab *v, const ent *e, uint32_t ni, uint32_t lo, uint32_t hi, uint32_t depth) {
    tnode *n = &v->nodes[ni];
    n->tok_lo = lo;
    uint32_t i = lo;
    while (i < hi && e[i].len == depth) i++;
    n->tok_mid = i;
    n->tok_hi = hi;
    uint32_t groups = 0;
    for (uint32_t k = i; k < hi; k++)
        if (k == i || e[k].s[depth] != e[k - 1].s[depth]) groups++;
    uint32_t child = v->n_nodes;
    v->n_nodes += groups;
    n->child = child;
    n->n_child = (uint16_t)groups;
    uint32_t g = 0, start = i;
    for (uint32_t k = i; k < hi; k++) {
        if (k + 1 == hi || e[k + 1].s[depth] != e[k].s[depth]) {
            v->nodes[child + g].byte = e[k].s[depth];
            build(v, e, child + g, start, k + 1, depth + 1);
            g++;
            start = k + 1;
        }
    }
}

static const uint8_t cont_lo[5] = {0x80, 0xA0, 0x80, 0x90, 0x80};
static const uint8_t cont_hi[5] = {0xBF, 0xBF, 0x9F, 0xBF, 0x8F};

/* rem continuation bytes (the first in range kind) then plain text, along every path below ni */
static bool cont_ok(const qai_grammar_vocab *v, uint32_t ni, int rem, int kind) {
    const tnode *n = &v->nodes[ni];
    for (uint32_t k = 0; k < n->n_child; k++) {
        const tnode *c = &v->nodes[n->child + k];
        if (c->byte < cont_lo[kind] || c->byte > cont_hi[kind]) return false;
        if (rem == 1 ? !c->plain : !cont_ok(v, n->child + k, rem - 1, 0)) return false;
    }
    return true;
}

static void plain_pass(qai_grammar_vocab *v) {
    for (uint32_t i = v->n_nodes; i-- > 0;) { /* children have larger indices */
        tnode *n = &v->nodes[i];
        bool plain = true;
        uint32_t mc = 0;
        for (uint32_t k = 0; k < n->n_child; k++) {
            const tnode *c = &v->nodes[n->child + k];
            uint8_t b = c->byte;
            uint32_t chars = c->max_chars + ((b & 0xC0) != 0x80);
            if (chars > mc) mc = chars;
            if (!plain) continue;
            if (b < 0x80) {
                plain = b >= 0x20 && b != '"' && b != '\\' && c->plain;
            } else {
                int rem, kind = 0;
                if (b >= 0xC2 && b <= 0xDF) rem = 1;
                else if (b == 0xE0) rem = 2, kind = 1;
                else if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF) rem = 2;
                else if (b == 0xED) rem = 2, kind = 2;
                else if (b == 0xF0) rem = 3, kind = 3;
                else if (b >= 0xF1 && b <= 0xF3) rem = 3;
                else if (b == 0xF4) rem = 3, kind = 4;
                else rem = 0;
                plain = rem && cont_ok(v, n->child + k, rem, kind);
            }
        }
        n->plain = plain;
        n->max_chars = mc;
    }
}

qai_status qai_grammar_vocab_new(const qai_tokenizer *tok, qai_grammar_vocab **out) {
    if (!tok || !out) return qai_error(QAI_ERR_ARG, "qai_grammar_vocab_new: tokenizer and out must not be NULL");
    *out = NULL;
    int32_t V = qai_tokenizer_n_vocab(tok);
    if (V <= 0) return qai_error(QAI_ERR_ARG, "grammar: the tokenizer has no tokens");
    qai_grammar_vocab *v = qai_calloc(1, sizeof *v);
    if (!v) return QAI_ERR_NOMEM;
    v->n_vocab = V;
    v->piece_off = qai_malloc(((size_t)V + 1) * sizeof(uint32_t));
    v->in_trie = qai_calloc((size_t)V, 1);
    v->is_eog = qai_calloc((size_t)V, 1);
    v->eog = qai_malloc((size_t)V * sizeof(int32_t));
    v->tok_order = qai_malloc((size_t)V * sizeof(int32_t));
    ent *e = qai_malloc((size_t)V * sizeof(ent));
    if (!v->piece_off || !v->in_trie || !v->is_eog || !v->eog || !v->tok_order || !e) goto nomem;
    uint64_t total = 0;
    for (int32_t id = 0; id < V; id++) {
        v->piece_off[id] = (uint32_t)total;
        total += qai_tokenizer_piece(tok, id, 0, NULL, 0);
        if (total > UINT32_MAX / 2) {
            qai_free(e);
            qai_grammar_vocab_free(v);
            return qai_error(QAI_ERR_RANGE, "grammar: the vocabulary's pieces exceed 2 GB");
        }
    }
    v->piece_off[V] = (uint32_t)total;
    v->piece = qai_malloc(total + 1);
    v->nodes = qai_calloc(total + 1, sizeof(tnode));
    if (!v->piece || !v->nodes) goto nomem;
    uint32_t n = 0;
    for (int32_t id = 0; id < V; id++) {
        uint32_t len = v->piece_off[id + 1] - v->piece_off[id];
        uint8_t *p = v->piece + v->piece_off[id];
        qai_tokenizer_piece(tok, id, 0, (char *)p, len);
        int32_t type = qai_tokenizer_token_type(tok, id);
        if (qai_tokenizer_is_eog(tok, id)) {
            v->is_eog[id] = 1;
            v->eog[v->n_eog++] = id;
            continue;
        }
        if (!len || type == QAI_TOKEN_CONTROL || type == QAI_TOKEN_UNKNOWN || type == QAI_TOKEN_UNUSED) continue;
        v->in_trie[id] = 1;
        e[n++] = (ent){p, len, id};
        if (len > v->max_len) v->max_len = len;
    }
    if (n > 1) qsort(e, n, sizeof *e, ent_cmp);
    for (uint32_t i = 0; i < n; i++) v->tok_order[i] = e[i].id;
    v->n_tok = n;
    v->n_nodes = 1;
    build(v, e, 0, 0, n, 0);
    plain_pass(v);
    qai_free(e);
    *out = v;
    return QAI_OK;
nomem:
    qai_free(e);
    qai_grammar_vocab_free(v);
    return QAI_ERR_NOMEM;
}

void qai_grammar_vocab_free(qai_grammar_vocab *v) {
    if (!v) return;
    qai_free(v->nodes);
    qai_free(v->tok_order);
    qai_free(v->eog);
    qai_free(v->piece);
    qai_free(v->piece_off);
    qai_free(v->in_trie);
    qai_free(v->is_eog);
    qai_free(v);
}

int32_t qai_grammar_vocab_n_vocab(const qai_grammar_vocab *v) { return v ? v->n_vocab : 0; }
