/*
 * bpe.c — byte-level BPE ("gpt2" vocabularies) and its pre-tokenizers.
 *
 * Encoding one text fragment, as llama.cpp's llm_tokenizer_bpe does:
 *   1. the pre-tokenizer regexes named by tokenizer.ggml.pre split the text:
 *      each regex in turn splits every piece left by the previous one into its
 *      matches and the gaps between them (both kept);
 *   2. each piece's bytes become GPT-2 byte-level characters; the symbols start
 *      as one byte each and the adjacent pair with the lowest merge rank is
 *      merged (leftmost on ties) until none applies — a heap over candidate
 *      pairs and a linked list over symbols, with merges looked up by
 *      (left id, right id) in a hash table;
 *   3. with ignore_merges (llama3), a piece that is a vocabulary string as a
 *      whole is that token.
 *
 * Regexes are llama.cpp's (themselves adapted from the models' tokenizer.json),
 * run by PCRE2 in UTF + UCP mode with "\s" spelled out as llama.cpp's set of
 * whitespace code points. Invalid UTF-8 is matched as if each bad byte were
 * U+FFFD (what llama.cpp does) but the pieces keep the original bytes, so
 * nothing is lost. Checked against llama.cpp's unicode_regex_split on its test
 * inputs and random strings for gpt2, llama3, qwen2, starcoder, falcon,
 * default, deepseek-coder and deepseek-llm.
 *
 * What it does not do: WordPiece, Unigram, or normalizers (NFC/NFKC).
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

/* ---- pre-tokenizers ------------------------------------------------------ */

#define MAX_REGEX 8

struct tok_pre {
    int n;
    pcre2_code *re[MAX_REGEX];
};

static const char *const RE_GPT2 = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
static const char *const RE_LLAMA3 =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char *const RE_QWEN2 =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char *const RE_PORO = " ?[^(\\s|.,!?\xe2\x80\xa6\xe3\x80\x82\xef\xbc\x8c\xe3\x80\x81\xe0\xa5\xa4\xdb\x94\xd8\x8c)]+";

typedef struct {
    const char *names; /* '|'-separated names of tokenizer.ggml.pre */
    const char *re[MAX_REGEX];
} pre_def;

static const pre_def PRE_DEFS[] = {
    {"default",
     {"[\\p{P}\\$\\+<=>\\^~\\|]+", "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)",
      "\\p{N}+", "[0-9][0-9][0-9]"}},
    {"llama3|llama-v3|llama-bpe|falcon3|dbrx|smaug-bpe|chatglm-bpe", {RE_LLAMA3}},
    {"gpt-2|gpt2|phi-2|jina-es|jina-de|gigachat|jina-v1-en|jina-v2-es|jina-v2-de|jina-v2-code|roberta-bpe|mpt|olmo|jais",
     {RE_GPT2}},
    {"qwen2|deepseek-r1-qwen|stablelm2|megrez", {RE_QWEN2}},
    {"starcoder|refact|command-r|smollm|codeshell|exaone|minerva-7b", {"\\p{N}", RE_GPT2}},
    {"falcon", {"[\\p{P}\\$\\+<=>\\^~\\|`]+", RE_GPT2, "[0-9][0-9][0-9]"}},
    {"deepseek-llm",
     {"[\r\n]",
      "\\s?[A-Za-z\xc2\xb5\xc3\x80-\xc3\x96\xc3\x98-\xc3\xb6\xc3\xb8-\xc6\xba\xc6\xbc-\xc6\xbf\xc7\x84-\xca\x93\xca\x95-"
      "\xca\xaf\xcd\xb0-\xcd\xb3\xcd\xb6\xcd\xb7\xcd\xbb-\xcd\xbd\xcd\xbf\xce\x86\xce\x88-\xce\x8a\xce\x8c\xce\x8e-"
      "\xce\xa1\xce\xa3-\xcf\xb5\xcf\xb7-\xd2\x81\xd2\x8a-\xd4\xaf\xd4\xb1-\xd5\x96\xe1\x82\xa0-\xe1\x83\x85\xe1\x8e\xa0-"
      "\xe1\x8f\xb5\xe1\x8f\xb8-\xe1\x8f\xbd\xe1\xb2\x90-\xe1\xb2\xba\xe1\xb2\xbd-\xe1\xb2\xbf\xe1\xb4\x80-\xe1\xb4\xab"
      "\xe1\xb5\xab-\xe1\xb5\xb7\xe1\xb5\xb9-\xe1\xb6\x9a\xe1\xb8\x80-\xe1\xbc\x95\xe1\xbc\x98-\xe1\xbc\x9d\xe1\xbc\xa0-"
      "\xe1\xbd\x85\xe1\xbd\x88-\xe1\xbd\x8d\xe1\xbd\x90-\xe1\xbd\x97\xe1\xbd\x99\xe1\xbd\x9b\xe1\xbd\x9d\xe1\xbd\x9f-"
      "\xe1\xbd\xbd\xe1\xbe\x80-\xe1\xbe\xb4\xe1\xbe\xb6-\xe1\xbe\xbc\xe1\xbe\xbe\xe1\xbf\x82-\xe1\xbf\x84\xe1\xbf\x86-"
      "\xe1\xbf\x8c\xe1\xbf\x90-\xe1\xbf\x93\xe1\xbf\x96-\xe1\xbf\x9b\xe1\xbf\xa0-\xe1\xbf\xac\xe1\xbf\xb2-\xe1\xbf\xb4"
      "\xe1\xbf\xb6-\xe1\xbf\xbc\xe2\x84\x82\xe2\x84\x87\xe2\x84\x8a-\xe2\x84\x93\xe2\x84\x95\xe2\x84\x99-\xe2\x84\x9d"
      "\xe2\x84\xa4\xe2\x84\xa6\xe2\x84\xa8\xe2\x84\xaa-\xe2\x84\xad\xe2\x84\xaf-\xe2\x84\xb4\xe2\x84\xb9\xe2\x84\xbc-"
      "\xe2\x84\xbf\xe2\x85\x85-\xe2\x85\x89\xe2\x85\x8e\xe2\x86\x83\xe2\x86\x84\xe2\xb0\x80-\xe2\xb1\xbb\xe2\xb1\xbe-"
      "\xe2\xb3\xa4\xe2\xb3\xab-\xe2\xb3\xae\xe2\xb3\xb2\xe2\xb3\xb3\xea\x99\x80-\xea\x99\xad\xea\x9a\x80-\xea\x9a\x9b"
      "\xea\x9c\xa2-\xea\x9d\xaf\xea\x9d\xb1-\xea\x9e\x87\xea\x9e\x8b-\xea\x9e\x8e\xea\xad\xb0-\xea\xae\xbf\xef\xac\x80-"
      "\xef\xac\x86\xef\xac\x93-\xef\xac\x97\xef\xbc\xa1-\xef\xbc\xba\xef\xbd\x81-\xef\xbd\x9a\xf0\x90\x90\x80-\xf0\x90"
      "\x91\x8f\xf0\x90\x92\xb0-\xf0\x90\x93\x93\xf0\x90\x93\x98-\xf0\x90\x93\xbb\xf0\x90\xb2\x80-\xf0\x90\xb2\xb2\xf0"
      "\x90\xb3\x80-\xf0\x90\xb3\xb2\xf0\x91\xa2\xa0-\xf0\x91\xa3\x9f\xf0\x9e\xa4\x80-\xf0\x9e\xa5\x83]+",
      "\\s?[!-/:-~\xef\xbc\x81-\xef\xbc\x8f\xef\xbc\x9a-\xef\xbd\x9e\xe2\x80\x98-\xe2\x80\x9f\xe3\x80\x80-\xe3\x80\x82]+",
      "\\s+$", "[\xe4\xb8\x80-\xe9\xbe\xa5\xe0\xa0\x80-\xe4\xb8\x80\xea\xb0\x80-\xed\x9f\xbf]+", "\\p{N}+"}},
    {"deepseek-coder",
     {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", "[\xe4\xb8\x80-\xe9\xbe\xa5\xe0\xa0\x80-\xe4\xb8\x80\xea\xb0\x80-\xed\x9f\xbf]+",
      "\\p{N}"}},
    {"deepseek-v3",
     {"\\p{N}{1,3}", "[\xe4\xb8\x80-\xe9\xbe\xa5\xe3\x81\x80-\xe3\x82\x9f\xe3\x82\xa0-\xe3\x83\xbf]+",
      "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| "
      "?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"}},
    {"poro-chat|bloom|gpt3-finnish", {RE_PORO}},
    {"viking", {RE_PORO, "\\p{N}"}},
    {"tekken",
     {"[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+(("
      "?=[\\p{L}])([^A-Z]))*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}},
};

/* The code points llama.cpp counts as whitespace (as Python's str.isspace), in
 * the form that fits inside a character class. */
#define WS_CLASS "\\t\\n\\x{0B}\\f\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"

/* Rewrites \s and \S into explicit classes (inside or outside brackets). */
static char *rewrite_ws(const char *re) {
    size_t n = strlen(re), cap = n * 8 + 64 + n / 2 * sizeof WS_CLASS;
    char *out = qai_malloc(cap);
    if (!out) return NULL;
    size_t w = 0;
    bool in_class = false;
    for (size_t i = 0; i < n; i++) {
        char c = re[i];
        if (c == '\\' && i + 1 < n) {
            char d = re[i + 1];
            if (d == 's' || d == 'S') {
                const char *rep = d == 's' ? (in_class ? WS_CLASS : "[" WS_CLASS "]") : "[^" WS_CLASS "]";
                size_t rl = strlen(rep);
                memcpy(out + w, rep, rl);
                w += rl;
            } else {
                out[w++] = c;
                out[w++] = d;
            }
            i++;
            continue;
        }
        if (c == '[' && !in_class) in_class = true;
        else if (c == ']' && in_class) in_class = false;
        out[w++] = c;
    }
    out[w] = 0;
    return out;
}

static bool name_in(const char *names, const char *name) {
    size_t nl = strlen(name);
    for (const char *p = names; *p;) {
        const char *e = strchr(p, '|');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == nl && !memcmp(p, name, l)) return true;
        if (!e) break;
        p = e + 1;
    }
    return false;
}

void tok_pre_free(tok_pre *pre) {
    if (!pre) return;
    for (int i = 0; i < pre->n; i++) pcre2_code_free(pre->re[i]);
    qai_free(pre);
}

qai_status tok_pre_new(const char *name, tok_pre **out) {
    *out = NULL;
    if (!name || !*name) name = "default";
    const pre_def *def = NULL;
    for (size_t i = 0; i < sizeof PRE_DEFS / sizeof PRE_DEFS[0] && !def; i++)
        if (name_in(PRE_DEFS[i].names, name)) def = &PRE_DEFS[i];
    if (!def) return qai_error(QAI_ERR_UNSUPPORTED, "tokenizer: unknown pre-tokenizer '%s' (tokenizer.ggml.pre)", name);
    tok_pre *pre = qai_calloc(1, sizeof *pre);
    if (!pre) return QAI_ERR_NOMEM;
    for (int i = 0; i < MAX_REGEX && def->re[i]; i++) {
        char *src = rewrite_ws(def->re[i]);
        if (!src) {
            tok_pre_free(pre);
            return QAI_ERR_NOMEM;
        }
        int err;
        PCRE2_SIZE eoff;
        pcre2_code *re = pcre2_compile((PCRE2_SPTR)src, PCRE2_ZERO_TERMINATED,
                                       PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY | PCRE2_NO_UTF_CHECK, &err, &eoff, NULL);
        qai_free(src);
        if (!re) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(err, msg, sizeof msg);
            tok_pre_free(pre);
            return qai_error(QAI_ERR_INTERNAL, "tokenizer: pre-tokenizer '%s' regex %d does not compile at %zu: %s", name,
                             i, (size_t)eoff, (const char *)msg);
        }
        pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* falls back to the interpreter if JIT is unavailable */
        pre->re[pre->n++] = re;
    }
    *out = pre;
    return QAI_OK;
}

typedef struct {
    size_t off, len;
} span;

typedef struct {
    span *v;
    size_t n, cap;
} span_list;

static qai_status span_push(span_list *l, size_t off, size_t len) {
    if (len == 0) return QAI_OK;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        span *v = qai_realloc(l->v, cap * sizeof *v);
        if (!v) return QAI_ERR_NOMEM;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = (span){off, len};
    return QAI_OK;
}

/* Splits the (valid UTF-8) subject s[0..n) through every regex in turn. */
static qai_status split_all(const tok_pre *pre, const char *s, size_t n, span_list *cur) {
    span_list next = {0};
    qai_status st = QAI_OK;
    pcre2_match_data *md = pcre2_match_data_create(4, NULL);
    if (!md) return QAI_ERR_NOMEM;
    cur->n = 0;
    if ((st = span_push(cur, 0, n))) goto done;
    for (int r = 0; r < pre->n; r++) {
        next.n = 0;
        for (size_t k = 0; k < cur->n; k++) {
            const char *sub = s + cur->v[k].off;
            size_t sl = cur->v[k].len, pos = 0, last = 0;
            while (pos < sl) {
                int rc = pcre2_match(pre->re[r], (PCRE2_SPTR)sub, sl, pos, PCRE2_NO_UTF_CHECK, md, NULL);
                if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
                    rc = pcre2_match(pre->re[r], (PCRE2_SPTR)sub, sl, pos, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, NULL);
                if (rc == PCRE2_ERROR_NOMATCH) break;
                if (rc < 0) {
                    PCRE2_UCHAR msg[256];
                    pcre2_get_error_message(rc, msg, sizeof msg);
                    st = qai_error(QAI_ERR_INTERNAL, "tokenizer: pre-tokenizer regex failed at byte %zu: %s",
                                   cur->v[k].off + pos, (const char *)msg);
                    goto done;
                }
                PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
                size_t ms = ov[0], me = ov[1];
                if (me == ms) { /* empty match: step one character */
                    pos = ms + 1;
                    while (pos < sl && ((uint8_t)sub[pos] & 0xC0) == 0x80) pos++;
                    continue;
                }
                if ((st = span_push(&next, cur->v[k].off + last, ms - last))) goto done;
                if ((st = span_push(&next, cur->v[k].off + ms, me - ms))) goto done;
                last = pos = me;
            }
            if ((st = span_push(&next, cur->v[k].off + last, sl - last))) goto done;
        }
        span_list t = *cur;
        *cur = next;
        next = t;
    }
done:
    pcre2_match_data_free(md);
    qai_free(next.v);
    return st;
}

static inline bool wide_space(uint32_t cp) {
    return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
           cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

qai_status tok_pre_split(const tok_pre *pre, const char *text, size_t len, tok_piece_fn fn, void *arg) {
    if (len == 0) return QAI_OK;
    /* Matching happens on a "shadow" of the text when it differs from the text:
     * each invalid byte becomes U+FFFD (llama.cpp's decoding) and each non-ASCII
     * whitespace character becomes \v (llama.cpp's regex fallback, which keeps
     * such characters out of the literal ranges of the deepseek regexes). */
    size_t sn = 0;
    bool differs = false;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        int l = tok_utf8_valid_len((const uint8_t *)text + i, len - i, &cp);
        if (l <= 0) sn += 3, differs = true, l = 1;
        else if (l > 1 && wide_space(cp)) sn += 1, differs = true;
        else sn += (size_t)l;
        i += (size_t)l;
    }
    const char *subj = text;
    char *shadow = NULL;
    size_t *orig = NULL; /* shadow offset -> original offset */
    if (differs) {
        shadow = qai_malloc(sn);
        orig = qai_malloc((sn + 1) * sizeof *orig);
        if (!shadow || !orig) {
            qai_free(shadow);
            qai_free(orig);
            return QAI_ERR_NOMEM;
        }
        size_t w = 0;
        for (size_t i = 0; i < len;) {
            uint32_t cp;
            int l = tok_utf8_valid_len((const uint8_t *)text + i, len - i, &cp);
            if (l <= 0) {
                shadow[w] = (char)0xEF, shadow[w + 1] = (char)0xBF, shadow[w + 2] = (char)0xBD;
                orig[w] = orig[w + 1] = orig[w + 2] = i;
                w += 3;
                i++;
            } else if (l > 1 && wide_space(cp)) {
                shadow[w] = '\v';
                orig[w++] = i;
                i += (size_t)l;
            } else {
                for (int k = 0; k < l; k++) shadow[w + (size_t)k] = text[i + (size_t)k], orig[w + (size_t)k] = i + (size_t)k;
                w += (size_t)l;
                i += (size_t)l;
            }
        }
        orig[sn] = len;
        subj = shadow;
    } else {
        sn = len;
    }
    span_list pieces = {0};
    qai_status st = split_all(pre, subj, sn, &pieces);
    for (size_t k = 0; st == QAI_OK && k < pieces.n; k++) {
        size_t a = pieces.v[k].off, b = a + pieces.v[k].len;
        if (orig) a = orig[a], b = orig[b];
        st = fn(arg, text + a, b - a);
    }
    qai_free(pieces.v);
    qai_free(shadow);
    qai_free(orig);
    return st;
}

/* ---- merges ------------------------------------------------------------------- */

static inline uint64_t merge_key(int32_t l, int32_t r) { return (uint64_t)(uint32_t)l << 32 | (uint32_t)r; }

static inline size_t merge_slot(uint64_t key, size_t cap) {
    uint64_t x = key * 0x9E3779B97F4A7C15ULL;
    return (size_t)(x ^ x >> 29) & (cap - 1);
}

static const tok_merge_slot *merge_find(const qai_tokenizer *tok, int32_t l, int32_t r) {
    if (!tok->merge_cap) return NULL;
    uint64_t key = merge_key(l, r);
    size_t j = merge_slot(key, tok->merge_cap);
    while (tok->merges[j].key != UINT64_MAX) {
        if (tok->merges[j].key == key) return &tok->merges[j];
        j = (j + 1) & (tok->merge_cap - 1);
    }
    return NULL;
}

/* Id of a string: its vocabulary id, or a new "virtual" id past the vocabulary
 * for merge results that are not tokens (llama.cpp merges by text, so they can
 * still take part in later merges). */
static qai_status intern(qai_tokenizer *tok, const char *s, size_t len, int32_t *id) {
    int32_t v = tok_map_get(&tok->map, s, len);
    if (v >= 0) {
        *id = v;
        return QAI_OK;
    }
    if (tok->n_virt == tok->cap_virt) {
        int32_t cap = tok->cap_virt ? tok->cap_virt * 2 : 64;
        char **nv = qai_realloc(tok->virt, (size_t)cap * sizeof *nv);
        if (!nv) return QAI_ERR_NOMEM;
        tok->virt = nv;
        tok->cap_virt = cap;
    }
    char *copy = qai_malloc(len + 1);
    if (!copy) return QAI_ERR_NOMEM;
    memcpy(copy, s, len);
    copy[len] = 0;
    tok->virt[tok->n_virt] = copy;
    v = tok->n_vocab + tok->n_virt++;
    if (tok_map_put(&tok->map, copy, len, v)) return QAI_ERR_NOMEM;
    *id = v;
    return QAI_OK;
}

qai_status tok_bpe_init(qai_tokenizer *tok, const qai_vocab_desc *d) {
    const char *pre = d->pre && *d->pre ? d->pre : "default";
    tok->pre_name = qai_strdup(pre);
    if (!tok->pre_name) return QAI_ERR_NOMEM;
    qai_status st = tok_pre_new(pre, &tok->pre);
    if (st) return st;
    tok->ignore_merges = name_in("llama3|llama-v3|llama-bpe|falcon3|tekken", pre);
    tok_byte_level_chars(tok->byte_chr, tok->byte_chr_len);
    for (int b = 0; b < 256; b++)
        if ((st = intern(tok, tok->byte_chr[b], tok->byte_chr_len[b], &tok->byte_sym[b]))) return st;
    size_t cap = 16;
    while (cap < (size_t)(d->n_merges > 0 ? d->n_merges : 0) * 2 + 2) cap <<= 1;
    tok->merges = qai_malloc(cap * sizeof *tok->merges);
    if (!tok->merges) return QAI_ERR_NOMEM;
    for (size_t i = 0; i < cap; i++) tok->merges[i].key = UINT64_MAX;
    tok->merge_cap = cap;
    char *buf = NULL;
    size_t bcap = 0;
    for (int32_t i = 0; i < d->n_merges; i++) {
        const char *m = d->merges[i];
        if (!m) return qai_error(QAI_ERR_ARG, "tokenizer: merge %d is NULL", i);
        size_t ml = strlen(m);
        const char *sp = ml > 1 ? memchr(m + 1, ' ', ml - 1) : NULL;
        if (!sp) continue; /* llama.cpp keeps such a line as an unusable ("", "") pair */
        size_t ll = (size_t)(sp - m), rl = ml - ll - 1;
        int32_t l, r, res;
        if ((st = intern(tok, m, ll, &l)) || (st = intern(tok, sp + 1, rl, &r))) goto fail;
        if (ll + rl > bcap) {
            bcap = (ll + rl) * 2;
            char *nb = qai_realloc(buf, bcap);
            if (!nb) {
                st = QAI_ERR_NOMEM;
                goto fail;
            }
            buf = nb;
        }
        memcpy(buf, m, ll);
        memcpy(buf + ll, sp + 1, rl);
        if ((st = intern(tok, buf, ll + rl, &res))) goto fail;
        uint64_t key = merge_key(l, r);
        size_t j = merge_slot(key, cap);
        while (tok->merges[j].key != UINT64_MAX && tok->merges[j].key != key) j = (j + 1) & (cap - 1);
        if (tok->merges[j].key == UINT64_MAX) tok->merges[j] = (tok_merge_slot){key, i, res}; /* first rank wins */
    }
    qai_free(buf);
    return QAI_OK;
fail:
    qai_free(buf);
    return st;
}

void tok_bpe_release(qai_tokenizer *tok) {
    tok_pre_free(tok->pre);
    tok->pre = NULL;
    for (int32_t i = 0; i < tok->n_virt; i++) qai_free(tok->virt[i]);
    qai_free(tok->virt);
    qai_free(tok->merges);
    qai_free(tok->pre_name);
}

/* ---- encoding one pre-token --------------------------------------------------- */

typedef struct {
    int32_t id;
    uint32_t off, n; /* byte-level encoded text */
    int32_t prev, next;
} bpe_sym;

typedef struct {
    int32_t rank, left, right, lid, rid;
} bpe_bigram;

typedef struct {
    const qai_tokenizer *tok;
    tok_ids *out;
    bpe_sym *sym;
    size_t sym_cap;
    bpe_bigram *heap;
    size_t heap_n, heap_cap;
    char *enc; /* byte-level encoded word */
    size_t enc_cap;
} bpe_ctx;

static inline bool bg_before(const bpe_bigram *a, const bpe_bigram *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static qai_status bg_push(bpe_ctx *c, bpe_bigram x) {
    if (c->heap_n == c->heap_cap) {
        size_t cap = c->heap_cap ? c->heap_cap * 2 : 64;
        bpe_bigram *v = qai_realloc(c->heap, cap * sizeof *v);
        if (!v) return QAI_ERR_NOMEM;
        c->heap = v;
        c->heap_cap = cap;
    }
    size_t i = c->heap_n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!bg_before(&x, &c->heap[p])) break;
        c->heap[i] = c->heap[p];
        i = p;
    }
    c->heap[i] = x;
    return QAI_OK;
}

static bpe_bigram bg_pop(bpe_ctx *c) {
    bpe_bigram top = c->heap[0];
    bpe_bigram x = c->heap[--c->heap_n];
    size_t i = 0, n = c->heap_n;
    for (;;) {
        size_t k = 2 * i + 1;
        if (k >= n) break;
        if (k + 1 < n && bg_before(&c->heap[k + 1], &c->heap[k])) k++;
        if (!bg_before(&c->heap[k], &x)) break;
        c->heap[i] = c->heap[k];
        i = k;
    }
    if (n) c->heap[i] = x;
    return top;
}

static qai_status try_pair(bpe_ctx *c, int32_t l, int32_t r) {
    if (l < 0 || r < 0) return QAI_OK;
    const tok_merge_slot *m = merge_find(c->tok, c->sym[l].id, c->sym[r].id);
    if (!m) return QAI_OK;
    return bg_push(c, (bpe_bigram){m->rank, l, r, c->sym[l].id, c->sym[r].id});
}

static qai_status emit(bpe_ctx *c, const bpe_sym *s) {
    const qai_tokenizer *tok = c->tok;
    if (s->id < tok->n_vocab) return tok_ids_push(c->out, s->id);
    /* not a vocabulary string: llama.cpp emits the tokens of its single bytes, if any */
    for (uint32_t k = 0; k < s->n; k++) {
        int32_t id = tok_map_get(&tok->map, c->enc + s->off + k, 1);
        if (id >= 0 && id < tok->n_vocab) {
            qai_status st = tok_ids_push(c->out, id);
            if (st) return st;
        }
    }
    return QAI_OK;
}

static qai_status bpe_word(void *arg, const char *w, size_t len) {
    bpe_ctx *c = arg;
    const qai_tokenizer *tok = c->tok;
    if (len == 0) return QAI_OK;
    if (len > UINT32_MAX / 4) return qai_error(QAI_ERR_RANGE, "tokenizer: pre-token of %zu bytes is too long", len);
    if (len * 2 > c->enc_cap || len > c->sym_cap) {
        size_t ec = len * 2 + 64, sc = len + 16;
        char *e = qai_realloc(c->enc, ec);
        if (!e) return QAI_ERR_NOMEM;
        c->enc = e;
        c->enc_cap = ec;
        bpe_sym *s = qai_realloc(c->sym, sc * sizeof *s);
        if (!s) return QAI_ERR_NOMEM;
        c->sym = s;
        c->sym_cap = sc;
    }
    uint32_t off = 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t b = (uint8_t)w[i];
        memcpy(c->enc + off, tok->byte_chr[b], tok->byte_chr_len[b]);
        c->sym[i] = (bpe_sym){tok->byte_sym[b], off, tok->byte_chr_len[b], (int32_t)i - 1, (int32_t)i + 1};
        off += tok->byte_chr_len[b];
    }
    c->sym[len - 1].next = -1;
    if (tok->ignore_merges && len > 1) {
        int32_t id = tok_map_get(&tok->map, c->enc, off);
        if (id >= 0 && id < tok->n_vocab) return tok_ids_push(c->out, id);
    }
    qai_status st;
    c->heap_n = 0;
    for (size_t i = 1; i < len; i++)
        if ((st = try_pair(c, (int32_t)i - 1, (int32_t)i))) return st;
    while (c->heap_n) {
        bpe_bigram b = bg_pop(c);
        bpe_sym *L = &c->sym[b.left], *R = &c->sym[b.right];
        if (L->n == 0 || R->n == 0 || L->id != b.lid || R->id != b.rid) continue; /* stale */
        L->id = merge_find(tok, b.lid, b.rid)->result;
        L->n += R->n;
        R->n = 0;
        L->next = R->next;
        if (R->next >= 0) c->sym[R->next].prev = b.left;
        if ((st = try_pair(c, L->prev, b.left))) return st;
        if ((st = try_pair(c, b.left, L->next))) return st;
    }
    for (int32_t i = 0; i != -1; i = c->sym[i].next)
        if ((st = emit(c, &c->sym[i]))) return st;
    return QAI_OK;
}

qai_status tok_bpe_encode(const qai_tokenizer *tok, const char *text, size_t len, tok_ids *out) {
    bpe_ctx c = {.tok = tok, .out = out};
    qai_status st = tok_pre_split(tok->pre, text, len, bpe_word, &c);
    qai_free(c.sym);
    qai_free(c.heap);
    qai_free(c.enc);
    return st;
}
