/*
 * wordpiece.c — BERT's WordPiece tokenizer (GGUF tokenizer.ggml.model "bert").
 *
 * Two steps, as Hugging Face's BertTokenizer defines them:
 *
 * 1. Basic tokenization. Code points 0 and U+FFFD and control characters
 *    (categories Cc and Cf except tab, newline and carriage return) are dropped;
 *    whitespace (space, \t, \n, \r, category Zs, U+2028, U+2029) separates
 *    words; each CJK ideograph (the ranges of BertTokenizer) is a word of its
 *    own. Uncased vocabularies: each whitespace-separated run is lowercased
 *    (full Unicode lowercase, final sigma included), decomposed (NFD) and its
 *    nonspacing marks (Mn) removed, so "Élan" becomes "elan". Then every
 *    punctuation character (category P*, or ASCII !"#$%&'()*+,-./:;<=>?@[\]^_`{|}~)
 *    becomes a word of its own.
 * 2. WordPiece: each word is cut greedily into the longest vocabulary pieces
 *    from the left; pieces after the first are continuation pieces. A word
 *    longer than 100 characters, or one that cannot be covered, becomes [UNK].
 *
 * How the vocabulary marks pieces: llama.cpp's converter writes word-initial
 * pieces with a "▁" prefix and continuation pieces bare ("##ing" -> "ing",
 * "play" -> "▁play", bracketed specials such as "[CLS]" unchanged). A vocabulary
 * holding more "##" pieces than "▁" ones (Hugging Face's vocab.txt form) is read
 * with "##" continuation marks instead. In the "▁" form a continuation piece
 * that would itself begin with U+2581 is never matched (its text is a word
 * start's), as BertTokenizer would not match it in a vocabulary without such
 * "##▁" pieces; llama.cpp matches it.
 *
 * Cased or uncased: GGUF does not say. llama.cpp always lowercases; here a
 * vocabulary is taken as cased (no lowercasing, no accent stripping, as
 * BertTokenizer with do_lower_case=False) when one of its ordinary pieces holds
 * a character with a different lowercase form, which no uncased vocabulary has.
 * For uncased vocabularies — every published embedding model — ids agree with
 * BertTokenizer; they agree with llama.cpp except where llama.cpp departs from
 * BertTokenizer: its accent stripping keeps only the first code point of a
 * decomposition (Hangul syllables lose their vowel jamo, separately typed
 * combining marks stay), it treats \v, \f and U+0085 as spaces where
 * BertTokenizer drops them, drops private-use characters, and never gives
 * [UNK] for length.
 *
 * Invalid UTF-8 bytes are dropped like U+FFFD. What it does not do: the
 * "strip_accents" and "tokenize_chinese_chars" options of BertTokenizer
 * (their defaults are what is implemented).
 */
#include <string.h>
#include <utf8proc.h>

#include "tokenizer/tok_internal.h"

#define WPM_MAX_WORD_CHARS 100 /* BertTokenizer's max_input_chars_per_word */

static const char PHANTOM[] = "\xe2\x96\x81"; /* U+2581, llama.cpp's word-start mark */

/* ---- character classes (BertTokenizer's definitions) ---- */

static bool is_ws(uint32_t c) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == 0x2028 || c == 0x2029) return true;
    return utf8proc_category((utf8proc_int32_t)c) == UTF8PROC_CATEGORY_ZS;
}

static bool is_control(uint32_t c) {
    if (c == '\t' || c == '\n' || c == '\r') return false;
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return k == UTF8PROC_CATEGORY_CC || k == UTF8PROC_CATEGORY_CF;
}

static bool is_punct(uint32_t c) {
    if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126)) return true;
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return k >= UTF8PROC_CATEGORY_PC && k <= UTF8PROC_CATEGORY_PO;
}

static bool is_cjk(uint32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
           (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

static bool is_cased(uint32_t c) {
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return k == UTF8PROC_CATEGORY_LU || k == UTF8PROC_CATEGORY_LL || k == UTF8PROC_CATEGORY_LT ||
           utf8proc_tolower((utf8proc_int32_t)c) != (utf8proc_int32_t)c ||
           utf8proc_toupper((utf8proc_int32_t)c) != (utf8proc_int32_t)c;
}

/* Unicode's Case_Ignorable, closely enough for the final-sigma rule. */
static bool is_case_ignorable(uint32_t c) {
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    if (k == UTF8PROC_CATEGORY_MN || k == UTF8PROC_CATEGORY_ME || k == UTF8PROC_CATEGORY_CF ||
        k == UTF8PROC_CATEGORY_LM || k == UTF8PROC_CATEGORY_SK)
        return true;
    return c == '\'' || c == '.' || c == ':' || c == '^' || c == '`' || c == 0xB7 || c == 0x2018 || c == 0x2019 ||
           c == 0x2024 || c == 0x2027 || c == 0xFE13 || c == 0xFE52 || c == 0xFE55 || c == 0xFF07 || c == 0xFF0E ||
           c == 0xFF1A;
}

/* ---- growable buffers ---- */

typedef struct {
    uint32_t *v;
    size_t n, cap;
} cp_buf;

static qai_status cp_push(cp_buf *b, uint32_t c) {
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        uint32_t *v = qai_realloc(b->v, cap * sizeof *v);
        if (!v) return QAI_ERR_NOMEM;
        b->v = v;
        b->cap = cap;
    }
    b->v[b->n++] = c;
    return QAI_OK;
}

typedef struct {
    const qai_tokenizer *tok;
    tok_ids *out;
    cp_buf norm;    /* the normalized run */
    char *key;      /* prefix + word bytes */
    size_t key_cap;
    size_t *off;    /* byte offset of each character of a word, and its end */
    size_t off_cap;
} wpm_state;

static size_t put_utf8(char *o, uint32_t c) {
    if (c < 0x80) return o[0] = (char)c, 1;
    if (c < 0x800) return o[0] = (char)(0xC0 | c >> 6), o[1] = (char)(0x80 | (c & 0x3F)), 2;
    if (c < 0x10000)
        return o[0] = (char)(0xE0 | c >> 12), o[1] = (char)(0x80 | (c >> 6 & 0x3F)), o[2] = (char)(0x80 | (c & 0x3F)), 3;
    o[0] = (char)(0xF0 | c >> 18), o[1] = (char)(0x80 | (c >> 12 & 0x3F)), o[2] = (char)(0x80 | (c >> 6 & 0x3F));
    o[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

/* The greedy longest-match-first cut of one word (n characters). */
static qai_status wordpiece(wpm_state *s, const uint32_t *w, size_t n) {
    const qai_tokenizer *tok = s->tok;
    if (n == 0) return QAI_OK;
    if (n > WPM_MAX_WORD_CHARS) return tok->unk >= 0 ? tok_ids_push(s->out, tok->unk) : QAI_OK;
    /* key: the word's bytes, then room for a candidate with its mark */
    size_t need = 2 * (4 * n + 3);
    if (s->key_cap < need) {
        char *k = qai_realloc(s->key, need);
        if (!k) return QAI_ERR_NOMEM;
        s->key = k;
        s->key_cap = need;
    }
    if (s->off_cap < n + 1) {
        size_t *o = qai_realloc(s->off, (n + 1) * sizeof *o);
        if (!o) return QAI_ERR_NOMEM;
        s->off = o;
        s->off_cap = n + 1;
    }
    char *bytes = s->key, *cand = s->key + 4 * n + 3;
    size_t nb = 0;
    for (size_t i = 0; i < n; i++) {
        s->off[i] = nb;
        nb += put_utf8(bytes + nb, w[i]);
    }
    s->off[n] = nb;
    const size_t mark = s->out->n;
    for (size_t start = 0; start < n;) {
        int32_t id = -1;
        size_t end = n;
        for (; end > start; end--) {
            size_t len = s->off[end] - s->off[start], kl = 0;
            if (tok->wpm_hash && start > 0) memcpy(cand, "##", 2), kl = 2; /* "##" marks continuations */
            else if (!tok->wpm_hash && start == 0) memcpy(cand, PHANTOM, 3), kl = 3; /* "▁" marks word starts */
            if (kl + len > tok->wpm_max_len) continue;
            /* "▁x" is the word start "x": a continuation that begins with U+2581 has no token */
            if (!tok->wpm_hash && start > 0 && len >= 3 && !memcmp(bytes + s->off[start], PHANTOM, 3)) continue;
            memcpy(cand + kl, bytes + s->off[start], len);
            id = tok_map_get(&tok->map, cand, kl + len);
            if (id >= 0 && id < tok->n_vocab) break;
            id = -1;
        }
        if (id < 0) { /* the word cannot be covered: all of it is [UNK] */
            s->out->n = mark;
            return tok->unk >= 0 ? tok_ids_push(s->out, tok->unk) : QAI_OK;
        }
        qai_status st = tok_ids_push(s->out, id);
        if (st) return st;
        start = end;
    }
    return QAI_OK;
}

/* Normalizes one whitespace-delimited run (already cleaned, no CJK) and cuts it
 * at punctuation into words. */
static qai_status run(wpm_state *s, const uint32_t *r, size_t n) {
    if (n == 0) return QAI_OK;
    const qai_tokenizer *tok = s->tok;
    cp_buf *nb = &s->norm;
    nb->n = 0;
    qai_status st = QAI_OK;
    for (size_t i = 0; i < n && !st; i++) {
        uint32_t c = r[i];
        if (!tok->wpm_lower) {
            st = cp_push(nb, c);
            continue;
        }
        if (c == 0x3A3) { /* capital sigma: final form at the end of a word (as Python's str.lower) */
            bool before = false, after = false;
            for (size_t j = i; j-- > 0;) {
                if (is_case_ignorable(r[j])) continue;
                before = is_cased(r[j]);
                break;
            }
            for (size_t j = i + 1; j < n; j++) {
                if (is_case_ignorable(r[j])) continue;
                after = is_cased(r[j]);
                break;
            }
            c = before && !after ? 0x3C2 : 0x3C3;
        } else c = (uint32_t)utf8proc_tolower((utf8proc_int32_t)c);
        utf8proc_int32_t dec[32];
        int last = 0;
        utf8proc_ssize_t k = utf8proc_decompose_char((utf8proc_int32_t)c, dec, 32, UTF8PROC_DECOMPOSE, &last);
        if (k < 0 || k > 32) {
            dec[0] = (utf8proc_int32_t)c;
            k = 1;
        }
        for (utf8proc_ssize_t j = 0; j < k && !st; j++)
            if (utf8proc_category(dec[j]) != UTF8PROC_CATEGORY_MN) st = cp_push(nb, (uint32_t)dec[j]);
    }
    if (st) return st;
    size_t w0 = 0;
    for (size_t i = 0; i < nb->n; i++) {
        if (!is_punct(nb->v[i])) continue;
        if ((st = wordpiece(s, nb->v + w0, i - w0))) return st;
        if ((st = wordpiece(s, nb->v + i, 1))) return st;
        w0 = i + 1;
    }
    return wordpiece(s, nb->v + w0, nb->n - w0);
}

qai_status tok_wpm_encode(const qai_tokenizer *tok, const char *text, size_t len, tok_ids *out) {
    wpm_state s = {.tok = tok, .out = out};
    cp_buf r = {0};
    qai_status st = QAI_OK;
    const uint8_t *p = (const uint8_t *)text;
    for (size_t i = 0; i <= len && !st;) {
        uint32_t c = 0;
        bool end = i == len;
        if (!end) {
            int l = tok_utf8_valid_len(p + i, len - i, &c);
            if (l <= 0) { /* invalid byte: dropped like U+FFFD */
                i++;
                continue;
            }
            i += (size_t)l;
            if (c == 0 || c == 0xFFFD || is_control(c)) continue;
        }
        if (end || is_ws(c) || is_cjk(c)) {
            st = run(&s, r.v, r.n);
            r.n = 0;
            if (!st && !end && is_cjk(c)) st = wordpiece(&s, &c, 1);
            if (end) break;
            continue;
        }
        st = cp_push(&r, c);
    }
    qai_free(r.v);
    qai_free(s.norm.v);
    qai_free(s.key);
    qai_free(s.off);
    return st;
}

qai_status tok_wpm_init(qai_tokenizer *tok) {
    int32_t n_phantom = 0, n_hash = 0;
    uint32_t max_len = 0;
    bool cased = false;
    for (int32_t i = 0; i < tok->n_vocab; i++) {
        const char *t = tok->text[i];
        uint32_t l = tok->len[i];
        if (l > max_len) max_len = l;
        if (l >= 3 && !memcmp(t, PHANTOM, 3)) n_phantom++;
        else if (l > 2 && t[0] == '#' && t[1] == '#') n_hash++;
        int32_t type = tok->types[i];
        if (cased || (type != QAI_TOKEN_NORMAL && type != QAI_TOKEN_USER_DEFINED)) continue;
        if (l >= 2 && t[0] == '[' && t[l - 1] == ']') continue; /* [unused0] and the like */
        for (uint32_t k = 0; k < l;) {
            uint32_t c;
            int cl = tok_utf8_valid_len((const uint8_t *)t + k, l - k, &c);
            if (cl <= 0) {
                k++;
                continue;
            }
            k += (uint32_t)cl;
            if (utf8proc_tolower((utf8proc_int32_t)c) != (utf8proc_int32_t)c) {
                cased = true;
                break;
            }
        }
    }
    tok->wpm_hash = n_hash > n_phantom;
    tok->wpm_lower = !cased;
    tok->wpm_max_len = max_len;
    return QAI_OK;
}

/* HF's clean_up_tokenization: " ." -> ".", " ?" " !" " ," likewise, " ' " -> "'",
 * and " n't" " 'm" " 's" " 've" " 're" lose their space. In place; returns the new length. */
size_t tok_wpm_cleanup(char *s, size_t n) {
    static const char *const from[] = {" .", " ?", " !", " ,", " ' ", " n't", " 'm", " 's", " 've", " 're"};
    static const char *const to[] = {".", "?", "!", ",", "'", "n't", "'m", "'s", "'ve", "'re"};
    for (size_t r = 0; r < sizeof from / sizeof from[0]; r++) {
        size_t fl = strlen(from[r]), tl = strlen(to[r]), w = 0;
        for (size_t i = 0; i < n;) {
            if (i + fl <= n && !memcmp(s + i, from[r], fl)) {
                memmove(s + w, to[r], tl);
                w += tl;
                i += fl;
            } else s[w++] = s[i++];
        }
        n = w;
    }
    s[n] = 0;
    return n;
}
