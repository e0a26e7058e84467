/*
 * tokenizer.c — building a tokenizer from a vocabulary description, the parts
 * both kinds share (special-token partitioning, BOS/EOS, end-of-generation
 * tokens, pieces and decoding) and the public accessors.
 *
 * Behaviour follows llama.cpp's llama-vocab.cpp so that ids agree with it:
 *   - special tokens (control, user-defined, unknown) are cut out of the text
 *     one token at a time, longest text first; control and unknown tokens only
 *     with QAI_TOK_PARSE_SPECIAL, user-defined ones always (as HF tokenizers do);
 *   - SPM prepends the dummy prefix to the first text fragment and to every text
 *     fragment that follows a special token;
 *   - "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
 *     "<|eom_id|>", "<EOT>" end generation and are treated as control tokens.
 *
 * WordPiece (wordpiece.c) brings its own normalization (lowercasing, accent
 * stripping); the other kinds need none.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

/* ---- hashing and the string table ---------------------------------------- */

static inline uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

uint64_t tok_hash(const void *p, size_t n) {
    const uint8_t *s = p;
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ (n * 0x100000001B3ULL);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ mix64(w)) * 0x9E3779B97F4A7C15ULL;
        s += 8;
        n -= 8;
    }
    uint64_t w = 0;
    for (size_t i = 0; i < n; i++) w |= (uint64_t)s[i] << (8 * i);
    h = (h ^ mix64(w ^ (uint64_t)n << 59)) * 0x9E3779B97F4A7C15ULL;
    return mix64(h);
}

qai_status tok_map_init(tok_map *m, size_t expected) {
    size_t cap = 16;
    while (cap < expected * 2 + 2) cap <<= 1;
    m->slots = qai_calloc(cap, sizeof *m->slots);
    if (!m->slots) return QAI_ERR_NOMEM;
    m->cap = cap;
    m->n = 0;
    return QAI_OK;
}

void tok_map_release(tok_map *m) {
    qai_free(m->slots);
    memset(m, 0, sizeof *m);
}

static qai_status tok_map_grow(tok_map *m) {
    tok_map bigger;
    if (tok_map_init(&bigger, m->cap) != QAI_OK) return QAI_ERR_NOMEM;
    for (size_t i = 0; i < m->cap; i++) {
        tok_slot *s = &m->slots[i];
        if (!s->s) continue;
        size_t j = tok_hash(s->s, s->len) & (bigger.cap - 1);
        while (bigger.slots[j].s) j = (j + 1) & (bigger.cap - 1);
        bigger.slots[j] = *s;
        bigger.n++;
    }
    qai_free(m->slots);
    *m = bigger;
    return QAI_OK;
}

qai_status tok_map_put(tok_map *m, const char *s, size_t len, int32_t id) {
    if ((m->n + 1) * 2 > m->cap && tok_map_grow(m) != QAI_OK) return QAI_ERR_NOMEM;
    size_t j = tok_hash(s, len) & (m->cap - 1);
    while (m->slots[j].s) {
        if (m->slots[j].len == len && !memcmp(m->slots[j].s, s, len)) {
            m->slots[j].s = s;
            m->slots[j].id = id;
            return QAI_OK;
        }
        j = (j + 1) & (m->cap - 1);
    }
    m->slots[j] = (tok_slot){s, (uint32_t)len, id};
    m->n++;
    return QAI_OK;
}

int32_t tok_map_get(const tok_map *m, const char *s, size_t len) {
    if (!m->cap) return -1;
    size_t j = tok_hash(s, len) & (m->cap - 1);
    while (m->slots[j].s) {
        if (m->slots[j].len == len && !memcmp(m->slots[j].s, s, len)) return m->slots[j].id;
        j = (j + 1) & (m->cap - 1);
    }
    return -1;
}

qai_status tok_ids_push(tok_ids *b, int32_t id) {
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        int32_t *v = qai_realloc(b->v, cap * sizeof *v);
        if (!v) return QAI_ERR_NOMEM;
        b->v = v;
        b->cap = cap;
    }
    b->v[b->n++] = id;
    return QAI_OK;
}

int tok_utf8_valid_len(const uint8_t *s, size_t n, uint32_t *cp) {
    uint8_t c = s[0];
    if (c < 0x80) {
        if (cp) *cp = c;
        return 1;
    }
    int len;
    uint32_t v, min;
    if ((c & 0xE0) == 0xC0) len = 2, v = c & 0x1F, min = 0x80;
    else if ((c & 0xF0) == 0xE0) len = 3, v = c & 0x0F, min = 0x800;
    else if ((c & 0xF8) == 0xF0) len = 4, v = c & 0x07, min = 0x10000;
    else return 0;
    if ((size_t)len > n) return 0;
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        v = v << 6 | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    if (cp) *cp = v;
    return len;
}

/* ---- construction ---------------------------------------------------------- */

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* GPT-2's bytes_to_unicode: printable bytes map to themselves, the rest to 256+n. */
static uint32_t byte_level_cp(int b) {
    if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) return (uint32_t)b;
    int n = 0;
    for (int c = 0; c < b; c++)
        if (!((c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF))) n++;
    return 256u + (uint32_t)n;
}

static size_t put_utf8(char *out, uint32_t cp) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Writes the decoded piece of token id into out (if non-NULL); returns its length.
 * Control/unknown tokens are written as their text (decode decides whether to show them). */
static size_t render_piece(const qai_tokenizer *tok, int32_t id, char *out, const int16_t *cp_to_byte) {
    const char *t = tok->text[id];
    size_t n = tok->len[id];
    int32_t type = tok->types[id];
    if (type == QAI_TOKEN_CONTROL || type == QAI_TOKEN_UNKNOWN || type == QAI_TOKEN_USER_DEFINED) {
        if (out) memcpy(out, t, n);
        return n;
    }
    if (tok->kind == QAI_VOCAB_WPM) { /* word starts get their space back; continuations are bare */
        if (type != QAI_TOKEN_NORMAL) return 0;
        size_t skip = 0, w = 0;
        bool space;
        if (tok->wpm_hash) space = !(n > 2 && t[0] == '#' && t[1] == '#'), skip = space ? 0 : 2;
        else space = n >= 3 && !memcmp(t, "\xe2\x96\x81", 3), skip = space ? 3 : 0;
        if (space) {
            if (out) out[0] = ' ';
            w = 1;
        }
        if (out) memcpy(out + w, t + skip, n - skip);
        return w + n - skip;
    }
    if (tok->kind == QAI_VOCAB_SPM) {
        if (type == QAI_TOKEN_BYTE) {
            if (n == 6 && hexval(t[3]) >= 0 && hexval(t[4]) >= 0) {
                if (out) out[0] = (char)(hexval(t[3]) * 16 + hexval(t[4]));
                return 1;
            }
            return 0;
        }
        if (type != QAI_TOKEN_NORMAL) return 0;
        size_t w = 0;
        for (size_t i = 0; i < n;) {
            if (i + 3 <= n && (uint8_t)t[i] == 0xE2 && (uint8_t)t[i + 1] == 0x96 && (uint8_t)t[i + 2] == 0x81) {
                if (out) out[w] = ' ';
                w++;
                i += 3;
            } else {
                if (out) out[w] = t[i];
                w++;
                i++;
            }
        }
        return w;
    }
    /* BPE: byte-level decoding; code points outside the byte map stay as they are */
    if (type != QAI_TOKEN_NORMAL) return 0;
    size_t w = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int l = tok_utf8_valid_len((const uint8_t *)t + i, n - i, &cp);
        if (l > 0 && cp < 324 && cp_to_byte[cp] >= 0) {
            if (out) out[w] = (char)cp_to_byte[cp];
            w++;
            i += (size_t)l;
        } else {
            if (l <= 0) l = 1;
            if (out) memcpy(out + w, t + i, (size_t)l);
            w += (size_t)l;
            i += (size_t)l;
        }
    }
    return w;
}

static bool is_eog_text(const char *s, size_t n) {
    static const char *const names[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",
                                        "<|endoftext|>", "<|eom_id|>", "<EOT>"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strlen(names[i]) == n && !memcmp(names[i], s, n)) return true;
    return false;
}

static int cmp_special(const void *a, const void *b, void *arg) {
    const qai_tokenizer *tok = arg;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (tok->len[x] != tok->len[y]) return tok->len[x] > tok->len[y] ? -1 : 1;
    return (x > y) - (x < y);
}

static qai_status build(qai_tokenizer *tok, const qai_vocab_desc *d) {
    int32_t n = d->n_tokens;
    tok->kind = d->kind;
    tok->n_vocab = n;
    tok->text = qai_calloc((size_t)n, sizeof *tok->text);
    tok->len = qai_calloc((size_t)n, sizeof *tok->len);
    tok->scores = qai_calloc((size_t)n, sizeof *tok->scores);
    tok->types = qai_calloc((size_t)n, sizeof *tok->types);
    tok->attrs = qai_calloc((size_t)n, sizeof *tok->attrs);
    tok->eog = qai_calloc((size_t)n, sizeof *tok->eog);
    if (!tok->text || !tok->len || !tok->scores || !tok->types || !tok->attrs || !tok->eog) return QAI_ERR_NOMEM;
    if (tok_map_init(&tok->map, (size_t)n + 512) != QAI_OK) return QAI_ERR_NOMEM;
    for (int32_t i = 0; i < n; i++) {
        const char *s = d->tokens[i];
        if (!s) return qai_error(QAI_ERR_ARG, "vocabulary token %d is NULL", i);
        size_t l = d->token_lens ? d->token_lens[i] : strlen(s);
        if (l > UINT32_MAX / 2) return qai_error(QAI_ERR_ARG, "vocabulary token %d is too long (%zu bytes)", i, l);
        char buf[32];
        if (l == 0) { /* as llama.cpp: an empty token gets a name that cannot collide with text */
            l = (size_t)snprintf(buf, sizeof buf, "[EMPTY_%d]", i);
            s = buf;
        }
        tok->text[i] = qai_malloc(l + 1);
        if (!tok->text[i]) return QAI_ERR_NOMEM;
        memcpy(tok->text[i], s, l);
        tok->text[i][l] = 0;
        tok->len[i] = (uint32_t)l;
        tok->scores[i] = d->scores ? d->scores[i] : 0.0f;
        tok->types[i] = d->types ? d->types[i] : QAI_TOKEN_NORMAL;
        if (tok_map_put(&tok->map, tok->text[i], l, i) != QAI_OK) return QAI_ERR_NOMEM;
    }
    int32_t *ids[] = {&tok->bos, &tok->eos, &tok->eot, &tok->eom, &tok->unk, &tok->pad, &tok->sep};
    const int32_t given[] = {d->bos, d->eos, d->eot, d->eom, d->unk, d->pad, d->sep};
    for (int k = 0; k < 7; k++) *ids[k] = given[k] >= 0 && given[k] < n ? given[k] : -1;
    tok->add_bos = d->add_bos && tok->bos >= 0;
    tok->add_eos = d->add_eos && tok->eos >= 0;
    tok->add_space_prefix = d->add_space_prefix;
    /* WordPiece: every word piece carries its space in front, as SPM's dummy
     * prefix does, and decoding drops the first one the same way */
    if (d->kind == QAI_VOCAB_WPM) tok->add_space_prefix = true;

    /* end of generation, as llama.cpp decides it */
    static const char deepseek_eos[] = "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>";
    static const char *const eot_names[] = {"<|eot_id|>", "<|im_end|>",    "<|end|>", "<end_of_turn>",
                                            "<|endoftext|>", "<EOT>", deepseek_eos};
    if (tok->eot < 0)
        for (size_t k = 0; k < sizeof eot_names / sizeof eot_names[0] && tok->eot < 0; k++)
            tok->eot = tok_map_get(&tok->map, eot_names[k], strlen(eot_names[k]));
    if (tok->eom < 0) tok->eom = tok_map_get(&tok->map, "<|eom_id|>", 10);
    /* tokens that look like end markers end generation and are control tokens */
    for (int32_t i = 0; i < n; i++)
        if (is_eog_text(tok->text[i], tok->len[i])) tok->eog[i] = true, tok->types[i] = QAI_TOKEN_CONTROL;
    if (tok->eos >= 0) tok->eog[tok->eos] = true;
    if (tok->eot >= 0) tok->eog[tok->eot] = true, tok->types[tok->eot] = d->eot == tok->eot ? tok->types[tok->eot] : QAI_TOKEN_CONTROL;
    if (tok->eom >= 0) tok->eog[tok->eom] = true;

    /* special tokens, longest first */
    tok->special = qai_malloc(((size_t)n + 1) * sizeof *tok->special);
    if (!tok->special) return QAI_ERR_NOMEM;
    for (int32_t i = 0; i < n; i++) {
        int32_t t = tok->types[i];
        if (t == QAI_TOKEN_CONTROL || t == QAI_TOKEN_USER_DEFINED || t == QAI_TOKEN_UNKNOWN)
            tok->special[tok->n_special++] = i;
    }
    qsort_r(tok->special, (size_t)tok->n_special, sizeof *tok->special, cmp_special, tok);

    /* SPM byte fallback */
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        int32_t id = tok_map_get(&tok->map, name, 6);
        if (id < 0) {
            char c = (char)b;
            id = tok_map_get(&tok->map, &c, 1);
        }
        tok->byte_id[b] = id;
    }

    qai_status st = tok->kind == QAI_VOCAB_BPE ? tok_bpe_init(tok, d)
                    : tok->kind == QAI_VOCAB_WPM ? tok_wpm_init(tok)
                                                 : tok_spm_init(tok);
    if (st) return st;

    /* decoded pieces */
    int16_t cp_to_byte[324];
    for (int i = 0; i < 324; i++) cp_to_byte[i] = -1;
    for (int b = 0; b < 256; b++) cp_to_byte[byte_level_cp(b)] = (int16_t)b;
    tok->piece_off = qai_malloc(((size_t)n + 1) * sizeof *tok->piece_off);
    if (!tok->piece_off) return QAI_ERR_NOMEM;
    size_t total = 0;
    for (int32_t i = 0; i < n; i++) {
        tok->piece_off[i] = total;
        total += render_piece(tok, i, NULL, cp_to_byte);
    }
    tok->piece_off[n] = total;
    tok->pieces = qai_malloc(total + 1);
    if (!tok->pieces) return QAI_ERR_NOMEM;
    for (int32_t i = 0; i < n; i++) render_piece(tok, i, tok->pieces + tok->piece_off[i], cp_to_byte);
    return QAI_OK;
}

void tok_byte_level_chars(char chr[256][3], uint8_t len[256]) {
    for (int b = 0; b < 256; b++) len[b] = (uint8_t)put_utf8(chr[b], byte_level_cp(b));
}

qai_status qai_tokenizer_new(const qai_vocab_desc *d, qai_tokenizer **out) {
    if (!out) return qai_error(QAI_ERR_ARG, "qai_tokenizer_new: out must not be NULL");
    *out = NULL;
    if (!d) return qai_error(QAI_ERR_ARG, "qai_tokenizer_new: vocabulary description is NULL");
    if (d->kind != QAI_VOCAB_SPM && d->kind != QAI_VOCAB_BPE && d->kind != QAI_VOCAB_WPM)
        return qai_error(QAI_ERR_UNSUPPORTED, "tokenizer: unknown vocabulary kind %d", (int)d->kind);
    if (d->n_tokens <= 0 || !d->tokens)
        return qai_error(QAI_ERR_ARG, "tokenizer: the vocabulary is empty (%d tokens)", d->n_tokens);
    if (d->kind == QAI_VOCAB_BPE && d->n_merges > 0 && !d->merges)
        return qai_error(QAI_ERR_ARG, "tokenizer: %d merges announced but the merge list is NULL", d->n_merges);
    qai_tokenizer *tok = qai_calloc(1, sizeof *tok);
    if (!tok) return QAI_ERR_NOMEM;
    qai_status st = build(tok, d);
    if (st) {
        if (st == QAI_ERR_NOMEM) qai_error(QAI_ERR_NOMEM, "tokenizer: out of memory building a %d-token vocabulary", d->n_tokens);
        qai_tokenizer_free(tok);
        return st;
    }
    *out = tok;
    return QAI_OK;
}

void qai_tokenizer_free(qai_tokenizer *tok) {
    if (!tok) return;
    if (tok->kind == QAI_VOCAB_BPE) tok_bpe_release(tok);
    if (tok->text)
        for (int32_t i = 0; i < tok->n_vocab; i++) qai_free(tok->text[i]);
    qai_free(tok->text);
    qai_free(tok->len);
    qai_free(tok->scores);
    qai_free(tok->types);
    qai_free(tok->attrs);
    qai_free(tok->eog);
    qai_free(tok->special);
    qai_free(tok->pieces);
    qai_free(tok->piece_off);
    qai_free(tok->pairs);
    qai_free(tok->spm_ckey);
    qai_free(tok->spm_cid);
    qai_free(tok->spm_merges);
    tok_map_release(&tok->map);
    qai_free(tok);
}

/* ---- encoding ------------------------------------------------------------ */

typedef struct {
    size_t off, len; /* raw text range, or ... */
    int32_t id;      /* ... a special token (id >= 0) */
} fragment;

typedef struct {
    fragment *v;
    size_t n, cap;
} frag_list;

static qai_status frag_push(frag_list *l, fragment f) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        fragment *v = qai_realloc(l->v, cap * sizeof *v);
        if (!v) return QAI_ERR_NOMEM;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = f;
    return QAI_OK;
}

static inline bool c_isspace(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* Cuts special tokens out of the text, as llama.cpp's tokenizer_st_partition:
 * for each special token (longest first), every occurrence in every remaining
 * raw fragment becomes that token. */
static qai_status partition(const qai_tokenizer *tok, const char *text, size_t len, bool parse_special,
                            frag_list *frags) {
    frags->n = 0;
    if (len == 0) return QAI_OK;
    if (frag_push(frags, (fragment){0, len, -1})) return QAI_ERR_NOMEM;
    frag_list next = {0};
    for (int32_t k = 0; k < tok->n_special; k++) {
        int32_t id = tok->special[k];
        int32_t type = tok->types[id];
        if (!parse_special && (type == QAI_TOKEN_CONTROL || type == QAI_TOKEN_UNKNOWN)) continue;
        const char *st = tok->text[id];
        size_t sl = tok->len[id];
        bool any = false;
        for (size_t f = 0; f < frags->n && !any; f++)
            if (frags->v[f].id < 0 && frags->v[f].len >= sl &&
                memmem(text + frags->v[f].off, frags->v[f].len, st, sl))
                any = true;
        if (!any) continue;
        next.n = 0;
        for (size_t f = 0; f < frags->n; f++) {
            fragment fr = frags->v[f];
            if (fr.id >= 0) {
                if (frag_push(&next, fr)) goto nomem;
                continue;
            }
            size_t off = fr.off, rem = fr.len;
            while (rem > 0) {
                const char *m = rem >= sl ? memmem(text + off, rem, st, sl) : NULL;
                if (!m) {
                    if (frag_push(&next, (fragment){off, rem, -1})) goto nomem;
                    break;
                }
                size_t mo = (size_t)(m - text);
                size_t left = mo - off;
                if (tok->attrs[id] & TOK_ATTR_LSTRIP)
                    while (left > 0 && c_isspace(text[off + left - 1])) left--;
                if (left > 0 && frag_push(&next, (fragment){off, left, -1})) goto nomem;
                if (frag_push(&next, (fragment){0, 0, id})) goto nomem;
                size_t r_off = mo + sl, r_len = off + rem - r_off;
                if (tok->attrs[id] & TOK_ATTR_RSTRIP)
                    while (r_len > 0 && c_isspace(text[r_off])) r_off++, r_len--;
                off = r_off;
                rem = r_len;
            }
        }
        frag_list t = *frags;
        *frags = next;
        next = t;
    }
    qai_free(next.v);
    return QAI_OK;
nomem:
    qai_free(next.v);
    return QAI_ERR_NOMEM;
}

qai_status qai_tokenizer_encode(const qai_tokenizer *tok, const char *text, size_t len, int flags, int32_t **ids,
                                size_t *n_ids) {
    if (!tok || !ids || !n_ids) return qai_error(QAI_ERR_ARG, "qai_tokenizer_encode: tokenizer and outputs must not be NULL");
    *ids = NULL;
    *n_ids = 0;
    if (!text && len) return qai_error(QAI_ERR_ARG, "qai_tokenizer_encode: text is NULL but len is %zu", len);
    frag_list frags = {0};
    tok_ids out = {0};
    qai_status st = partition(tok, text, len, (flags & QAI_TOK_PARSE_SPECIAL) != 0, &frags);
    if (st) goto fail;
    bool add = (flags & QAI_TOK_ADD_SPECIAL) != 0;
    if (add && tok->add_bos && (st = tok_ids_push(&out, tok->bos))) goto fail;
    bool prev_special = true; /* SPM: the first text fragment gets the dummy prefix */
    for (size_t f = 0; f < frags.n; f++) {
        fragment fr = frags.v[f];
        if (fr.id >= 0) {
            if ((st = tok_ids_push(&out, fr.id))) goto fail;
            prev_special = true;
            continue;
        }
        if (tok->kind == QAI_VOCAB_SPM) st = tok_spm_encode(tok, text + fr.off, fr.len, tok->add_space_prefix && prev_special, &out);
        else if (tok->kind == QAI_VOCAB_WPM) st = tok_wpm_encode(tok, text + fr.off, fr.len, &out);
        else st = tok_bpe_encode(tok, text + fr.off, fr.len, &out);
        if (st) goto fail;
        prev_special = false;
    }
    if (add && tok->add_eos && (st = tok_ids_push(&out, tok->eos))) goto fail;
    if (add && tok->kind == QAI_VOCAB_WPM && tok->sep >= 0 && (st = tok_ids_push(&out, tok->sep))) goto fail;
    qai_free(frags.v);
    if (!out.v) { /* an empty result is still a valid allocation */
        out.v = qai_malloc(sizeof *out.v);
        if (!out.v) return qai_error(QAI_ERR_NOMEM, "tokenizer: out of memory");
    }
    *ids = out.v;
    *n_ids = out.n;
    return QAI_OK;
fail:
    qai_free(frags.v);
    qai_free(out.v);
    if (st == QAI_ERR_NOMEM) return qai_error(QAI_ERR_NOMEM, "tokenizer: out of memory encoding %zu bytes", len);
    return st;
}

/* ---- decoding ------------------------------------------------------------- */

static inline bool hidden(const qai_tokenizer *tok, int32_t id, int flags) {
    int32_t t = tok->types[id];
    return !(flags & QAI_DETOK_SPECIAL) && (t == QAI_TOKEN_CONTROL || t == QAI_TOKEN_UNKNOWN);
}

size_t qai_tokenizer_piece(const qai_tokenizer *tok, int32_t id, int flags, char *buf, size_t cap) {
    if (!tok || id < 0 || id >= tok->n_vocab || hidden(tok, id, flags)) return 0;
    const char *p = tok->pieces + tok->piece_off[id];
    size_t n = tok->piece_off[id + 1] - tok->piece_off[id];
    if ((flags & QAI_DETOK_STRIP_SPACE) && tok->add_space_prefix && n > 0 && p[0] == ' ') p++, n--;
    if (buf && cap) memcpy(buf, p, n < cap ? n : cap);
    return n;
}

qai_status qai_tokenizer_decode(const qai_tokenizer *tok, const int32_t *ids, size_t n_ids, int flags, char **text,
                                size_t *len) {
    if (!tok || !text) return qai_error(QAI_ERR_ARG, "qai_tokenizer_decode: tokenizer and text must not be NULL");
    *text = NULL;
    if (len) *len = 0;
    if (!ids && n_ids) return qai_error(QAI_ERR_ARG, "qai_tokenizer_decode: ids is NULL but n_ids is %zu", n_ids);
    size_t total = 0;
    for (size_t i = 0; i < n_ids; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= tok->n_vocab)
            return qai_error(QAI_ERR_RANGE, "tokenizer: token id %d at position %zu is outside the vocabulary (0..%d)",
                             id, i, tok->n_vocab - 1);
        if (!hidden(tok, id, flags)) total += tok->piece_off[id + 1] - tok->piece_off[id];
    }
    const bool wpm = tok->kind == QAI_VOCAB_WPM;
    char *out = qai_malloc(total + (wpm ? n_ids : 0) + 1);
    if (!out) return QAI_ERR_NOMEM;
    size_t w = 0;
    bool strip = (flags & QAI_DETOK_STRIP_SPACE) && tok->add_space_prefix;
    for (size_t i = 0; i < n_ids; i++) {
        int32_t id = ids[i];
        if (hidden(tok, id, flags)) continue;
        const char *p = tok->pieces + tok->piece_off[id];
        size_t n = tok->piece_off[id + 1] - tok->piece_off[id];
        if (wpm) { /* special tokens are words too: a space between them and their neighbours, none first */
            int32_t t = tok->types[id];
            if ((t == QAI_TOKEN_CONTROL || t == QAI_TOKEN_UNKNOWN || t == QAI_TOKEN_USER_DEFINED) && w > 0)
                out[w++] = ' ';
            if (w == 0 && strip && n > 0 && p[0] == ' ') p++, n--;
            strip = false;
        } else if (strip && n > 0 && tok->types[id] != QAI_TOKEN_CONTROL && tok->types[id] != QAI_TOKEN_UNKNOWN) {
            if (p[0] == ' ') p++, n--; /* the dummy prefix belongs to the first text piece */
            strip = false;
        }
        memcpy(out + w, p, n);
        w += n;
    }
    out[w] = 0;
    if (tok->kind == QAI_VOCAB_WPM) w = tok_wpm_cleanup(out, w);
    *text = out;
    if (len) *len = w;
    return QAI_OK;
}

/* ---- accessors --------------------------------------------------------------- */

int32_t qai_tokenizer_n_vocab(const qai_tokenizer *tok) { return tok ? tok->n_vocab : 0; }
qai_vocab_kind qai_tokenizer_kind(const qai_tokenizer *tok) { return tok ? tok->kind : (qai_vocab_kind)0; }
const char *qai_tokenizer_token(const qai_tokenizer *tok, int32_t id) {
    return tok && id >= 0 && id < tok->n_vocab ? tok->text[id] : NULL;
}
int32_t qai_tokenizer_token_type(const qai_tokenizer *tok, int32_t id) {
    return tok && id >= 0 && id < tok->n_vocab ? tok->types[id] : 0;
}
int32_t qai_tokenizer_bos(const qai_tokenizer *tok) { return tok ? tok->bos : -1; }
int32_t qai_tokenizer_eos(const qai_tokenizer *tok) { return tok ? tok->eos : -1; }
bool qai_tokenizer_add_bos(const qai_tokenizer *tok) { return tok && tok->add_bos; }
bool qai_tokenizer_is_eog(const qai_tokenizer *tok, int32_t id) {
    return tok && id >= 0 && id < tok->n_vocab && tok->eog[id];
}
int32_t qai_tokenizer_find(const qai_tokenizer *tok, const char *text) {
    if (!tok || !text) return -1;
    int32_t id = tok_map_get(&tok->map, text, strlen(text));
    return id < tok->n_vocab ? id : -1;
}
