/*
 * hf_tokenizer.c — a Hugging Face "fast" tokenizer (tokenizer.json, plus
 * tokenizer_config.json when given) as a GGUF vocabulary, with the
 * tokenizer.ggml.* keys llama.cpp's convert_hf_to_gguf.py writes for it.
 *
 * Three kinds of tokenizer.json are read:
 *   - byte-level BPE (model.type "BPE", a ByteLevel pre-tokenizer or decoder:
 *     GPT-2, Llama 3, Qwen, SmolLM, ...) → tokenizer.ggml.model "gpt2", with
 *     tokenizer.ggml.pre chosen from the pre-tokenizer (see detect_pre);
 *   - SentencePiece-style BPE (model.type "BPE" with byte_fallback and "▁"
 *     pieces: Llama 2, TinyLlama, Mistral HF exports) → "llama", scores taken
 *     from the merge ranks (the token a merge of rank r makes scores -r), so
 *     llama.cpp's score-driven merging applies the merges in rank order;
 *   - WordPiece (model.type "WordPiece": BERT) → "bert", pieces renamed as
 *     llama.cpp's converter does ("##x" → "x", "[...]" kept, any other word →
 *     "▁word").
 *
 * Fields read from tokenizer.json: model.{type, vocab, merges (both the
 * "a b" string form and the [a, b] array form of transformers >= 4.45; a space
 * inside a part is written as U+0120, as llama.cpp does), byte_fallback,
 * unk_token, continuing_subword_prefix}, added_tokens[].{id, content, special},
 * normalizer, pre_tokenizer, post_processor (TemplateProcessing: which special
 * tokens surround a sequence). From tokenizer_config.json: {bos,eos,unk,sep,
 * pad}_token (a string or {"content": ...}, looked up among added_tokens as
 * llama.cpp does), add_bos_token, add_eos_token, chat_template (a string).
 *
 * Token types as llama.cpp's converter assigns them: an added token is CONTROL
 * when marked special or when it looks like one ("<|...|>"), else
 * USER_DEFINED; "<0xXX>" pieces of an SPM vocabulary are BYTE, its unk token
 * UNKNOWN; ids no token uses become "[PADi]" (UNUSED).
 *
 * What it does not do: Unigram (T5, XLM-R) models, tokenizers whose pre-tokenizer
 * regex qai does not know (name one with `pre`), normalizers other than NFC
 * (which, as in llama.cpp, is not applied: texts are expected in NFC), and the
 * decode(encode()) round trip llama.cpp's converter applies to non-normalized
 * added tokens (their content is written as it is).
 */
#include <cjson/cJSON.h>
#include <string.h>
#include <sys/stat.h>

#include "qai/convert.h"

/* Known pre-tokenizer regexes as tokenizer.json spells them → tokenizer.ggml.pre. */
static const struct {
    const char *regex;
    const char *pre;
} KNOWN_REGEX[] = {
    {"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
     "\\s+(?!\\S)|\\s+",
     "llama-bpe"},
    {"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
     "\\s+(?!\\S)|\\s+",
     "qwen2"},
    {"'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+", "gpt-2"},
    {"'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)", "gpt-2"},
};

/* Pre-tokenizer names after which llama.cpp adds BOS by default (llama-vocab.cpp). */
static bool pre_adds_bos(const char *pre) {
    static const char *const names[] = {"llama3", "llama-v3", "llama-bpe", "falcon3", "tekken", "chameleon"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(pre, names[i])) return true;
    return false;
}

/* ---- a string → id table (open addressing; keys point into the token array) ---- */

typedef struct {
    const char **key;
    int32_t *id;
    size_t cap;
} str_map;

static uint64_t fnv(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 0x100000001b3ULL;
    return h ^ h >> 31;
}

static qai_status map_init(str_map *m, size_t n) {
    m->cap = 16;
    while (m->cap < n * 2 + 2) m->cap <<= 1;
    m->key = qai_calloc(m->cap, sizeof *m->key);
    m->id = qai_calloc(m->cap, sizeof *m->id);
    return m->key && m->id ? QAI_OK : QAI_ERR_NOMEM;
}

static void map_release(str_map *m) {
    qai_free(m->key);
    qai_free(m->id);
}

/* Inserts (a later string replaces an earlier equal one). */
static void map_put(str_map *m, const char *s, int32_t id) {
    size_t n = strlen(s), j = fnv(s, n) & (m->cap - 1);
    while (m->key[j] && strcmp(m->key[j], s)) j = (j + 1) & (m->cap - 1);
    m->key[j] = s;
    m->id[j] = id;
}

static int32_t map_get(const str_map *m, const char *s, size_t n) {
    size_t j = fnv(s, n) & (m->cap - 1);
    while (m->key[j]) {
        if (strlen(m->key[j]) == n && !memcmp(m->key[j], s, n)) return m->id[j];
        j = (j + 1) & (m->cap - 1);
    }
    return -1;
}

/* ---- parsing ----------------------------------------------------------------- */

typedef struct {
    const char *name;  /* tokenizer.json's name, for messages */
    const char *cname; /* tokenizer_config.json's name */
    cJSON *tj, *cj;    /* parsed files (cj may be NULL) */
    qai_hf_vocab *v;
    int32_t n;         /* vocabulary size */
    char **tok;        /* n strings (owned by v->desc once done) */
    int32_t *type;
    const cJSON *added; /* added_tokens array (may be NULL) */
    str_map map;
} hf_ctx;

static const cJSON *get(const cJSON *o, const char *key) {
    return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
}

static const char *get_str(const cJSON *o, const char *key) {
    const cJSON *x = get(o, key);
    return cJSON_IsString(x) ? x->valuestring : NULL;
}

/* Parses a JSON document; a syntax error names the byte offset and line. */
static qai_status parse_json(const char *text, size_t len, const char *name, cJSON **out) {
    *out = cJSON_ParseWithLength(text, len);
    if (*out) return QAI_OK;
    const char *e = cJSON_GetErrorPtr();
    if (!e || e < text || e > text + len) return qai_error(QAI_ERR_FORMAT, "'%s': not valid JSON", name);
    size_t off = (size_t)(e - text), line = 1;
    for (size_t i = 0; i < off; i++) line += text[i] == '\n';
    return qai_error(QAI_ERR_FORMAT, "'%s': not valid JSON at byte %zu (line %zu)", name, off, line);
}

/* A JSON number that is a whole number in [0, max]. */
static bool whole(const cJSON *x, double max, int32_t *out) {
    if (!cJSON_IsNumber(x)) return false;
    double d = x->valuedouble;
    if (!(d >= 0 && d <= max) || d != (double)(int64_t)d) return false;
    *out = (int32_t)d;
    return true;
}

static bool looks_special(const char *s) {
    size_t n = strlen(s);
    if (!strcmp(s, "<pad>") || !strcmp(s, "<mask>") || !strcmp(s, "<2mass>") || !strcmp(s, "[@BOS@]")) return true;
    if (n >= 4 && !memcmp(s, "<|", 2) && !memcmp(s + n - 2, "|>", 2)) return true;
    /* deepseek's fullwidth bars: "<｜...｜>" */
    if (n >= 8 && !memcmp(s, "<\xef\xbd\x9c", 4) && !memcmp(s + n - 4, "\xef\xbd\x9c>", 4)) return true;
    return n >= 8 && !memcmp(s, "<unused", 7) && s[n - 1] == '>';
}

/* Replaces every "▁" (U+2581) in s by a space, in place. */
static void unescape_spaces(char *s) {
    char *w = s;
    for (const char *r = s; *r;) {
        if (!memcmp(r, "\xe2\x96\x81", 3)) *w++ = ' ', r += 3;
        else *w++ = *r++;
    }
    *w = 0;
}

static bool is_byte_piece(const char *s) {
    return strlen(s) == 6 && !memcmp(s, "<0x", 3) && s[5] == '>' && strchr("0123456789ABCDEFabcdef", s[3]) &&
           strchr("0123456789ABCDEFabcdef", s[4]) && s[3] && s[4];
}

/* Finds a type in the pre-tokenizer (itself or inside a Sequence). */
static const cJSON *find_pre(const cJSON *pt, const char *type) {
    const char *t = get_str(pt, "type");
    if (t && !strcmp(t, type)) return pt;
    const cJSON *seq = get(pt, "pretokenizers"), *x, *found;
    if (t && !strcmp(t, "Sequence") && cJSON_IsArray(seq))
        cJSON_ArrayForEach(x, seq) if ((found = find_pre(x, type))) return found;
    return NULL;
}

/* tokenizer.ggml.pre from a byte-level tokenizer's pre_tokenizer. */
static qai_status detect_pre(hf_ctx *c, const char **pre) {
    const cJSON *pt = get(c->tj, "pre_tokenizer");
    const char *type = get_str(pt, "type");
    if (!type) return qai_error(QAI_ERR_FORMAT, "'%s': pre_tokenizer.type is missing; name the pre-tokenizer with --pre", c->name);
    const cJSON *items[8];
    int n = 0;
    if (!strcmp(type, "Sequence")) {
        const cJSON *seq = get(pt, "pretokenizers"), *x;
        if (!cJSON_IsArray(seq)) return qai_error(QAI_ERR_FORMAT, "'%s': pre_tokenizer.pretokenizers is not an array", c->name);
        cJSON_ArrayForEach(x, seq) {
            if (n == 8) return qai_error(QAI_ERR_UNSUPPORTED, "'%s': pre_tokenizer has more than 8 steps; name it with --pre", c->name);
            items[n++] = x;
        }
    } else {
        items[n++] = pt;
    }
    /* the shapes convert_hf_to_gguf_update.py's models use:
     *   [Split(regex, Isolated), ByteLevel(use_regex false)]   (llama3, qwen2, ...)
     *   [ByteLevel(use_regex true)]                              (gpt2)
     *   [Digits(individual_digits), ByteLevel(use_regex true)]   (smollm, starcoder) */
    const char *regex = NULL;
    bool digits = false, byte_level = false, byte_regex = false;
    for (int i = 0; i < n; i++) {
        const char *t = get_str(items[i], "type");
        if (!t) return qai_error(QAI_ERR_FORMAT, "'%s': pre_tokenizer step %d has no type", c->name, i);
        if (!strcmp(t, "ByteLevel")) {
            if (cJSON_IsTrue(get(items[i], "add_prefix_space")))
                return qai_error(QAI_ERR_UNSUPPORTED,
                                 "'%s': pre_tokenizer ByteLevel.add_prefix_space is true, which llama.cpp's tokenizers do "
                                 "not do",
                                 c->name);
            const cJSON *ur = get(items[i], "use_regex");
            byte_level = true;
            byte_regex = !ur || cJSON_IsTrue(ur); /* HF's default is true */
        } else if (!strcmp(t, "Split") && !regex && !byte_level) {
            regex = get_str(get(items[i], "pattern"), "Regex");
            const char *beh = get_str(items[i], "behavior");
            if (!regex || !beh || strcmp(beh, "Isolated") || cJSON_IsTrue(get(items[i], "invert"))) {
                const char *s = get_str(get(items[i], "pattern"), "String");
                return qai_error(QAI_ERR_UNSUPPORTED,
                                 "'%s': pre_tokenizer Split step %d (pattern %s'%s', behavior '%s') is not one qai "
                                 "recognises; name the pre-tokenizer with --pre",
                                 c->name, i, regex ? "" : "String ", regex ? regex : s ? s : "?", beh ? beh : "?");
            }
        } else if (!strcmp(t, "Digits") && !byte_level && !regex) {
            if (!cJSON_IsTrue(get(items[i], "individual_digits")))
                return qai_error(QAI_ERR_UNSUPPORTED,
                                 "'%s': pre_tokenizer Digits without individual_digits is not recognised; name the "
                                 "pre-tokenizer with --pre",
                                 c->name);
            digits = true;
        } else {
            return qai_error(QAI_ERR_UNSUPPORTED,
                             "'%s': pre_tokenizer step %d of type '%s' is not recognised here; name the pre-tokenizer "
                             "with --pre",
                             c->name, i, t);
        }
    }
    if (!byte_level) return qai_error(QAI_ERR_FORMAT, "'%s': pre_tokenizer has no ByteLevel step", c->name);
    if (regex && !byte_regex && !digits) {
        for (size_t k = 0; k < sizeof KNOWN_REGEX / sizeof KNOWN_REGEX[0]; k++)
            if (!strcmp(regex, KNOWN_REGEX[k].regex)) {
                *pre = KNOWN_REGEX[k].pre;
                return QAI_OK;
            }
        return qai_error(QAI_ERR_UNSUPPORTED,
                         "'%s': unknown pre-tokenizer regex '%s'; qai recognises those of llama3, qwen2 and gpt2 (name "
                         "one that splits the same way with --pre)",
                         c->name, regex);
    }
    if (!regex && byte_regex) {
        *pre = digits ? "smollm" : "gpt-2";
        return QAI_OK;
    }
    return qai_error(QAI_ERR_UNSUPPORTED,
                     "'%s': this combination of pre-tokenizer steps (%s%s%s) is not recognised; name the "
                     "pre-tokenizer with --pre",
                     c->name, regex ? "Split " : "", digits ? "Digits " : "",
                     byte_regex ? "ByteLevel(use_regex)" : "ByteLevel");
}

/* The normalizer must be one that llama.cpp also leaves out (or, for SPM, the
 * "▁" escaping it does itself). Sets *prefix for SPM's Prepend("▁"). */
static qai_status check_normalizer(hf_ctx *c, const cJSON *nz, const char *where, bool *prefix) {
    if (!nz || cJSON_IsNull(nz)) return QAI_OK;
    const char *t = get_str(nz, "type");
    if (!t) return qai_error(QAI_ERR_FORMAT, "'%s': %s.type is missing", c->name, where);
    if (!strcmp(t, "Sequence")) {
        const cJSON *seq = get(nz, "normalizers"), *x;
        if (!cJSON_IsArray(seq)) return qai_error(QAI_ERR_FORMAT, "'%s': %s.normalizers is not an array", c->name, where);
        int i = 0;
        cJSON_ArrayForEach(x, seq) {
            char w[64];
            snprintf(w, sizeof w, "normalizer.normalizers[%d]", i++);
            qai_status st = check_normalizer(c, x, w, prefix);
            if (st) return st;
        }
        return QAI_OK;
    }
    if (!strcmp(t, "NFC")) return QAI_OK; /* not applied, as in llama.cpp */
    bool spm = c->v->desc.kind == QAI_VOCAB_SPM;
    if (spm && !strcmp(t, "Prepend")) {
        const char *p = get_str(nz, "prepend");
        if (p && !strcmp(p, "\xe2\x96\x81")) {
            *prefix = true;
            return QAI_OK;
        }
    }
    if (spm && !strcmp(t, "Replace")) {
        const char *s = get_str(get(nz, "pattern"), "String"), *r = get_str(nz, "content");
        if (s && r && !strcmp(s, " ") && !strcmp(r, "\xe2\x96\x81")) return QAI_OK;
    }
    /* BERT's cleaning, CJK splitting and (for uncased vocabularies) lowercasing
     * and accent stripping are what qai's WordPiece does anyway */
    if (c->v->desc.kind == QAI_VOCAB_WPM && !strcmp(t, "BertNormalizer")) return QAI_OK;
    return qai_error(QAI_ERR_UNSUPPORTED, "'%s': %s of type '%s' is not supported (llama.cpp's tokenizers apply none)",
                     c->name, where, t);
}

/* Id of a special token named by tokenizer_config.json's "<typ>_token". */
static int32_t config_token(hf_ctx *c, const char *typ) {
    char key[32];
    snprintf(key, sizeof key, "%s_token", typ);
    const cJSON *e = get(c->cj, key);
    const char *content = cJSON_IsString(e) ? e->valuestring : get_str(e, "content");
    if (!content) return -1;
    const cJSON *a;
    cJSON_ArrayForEach(a, c->added) { /* llama.cpp looks among added_tokens only */
        const char *ac = get_str(a, "content");
        int32_t id;
        if (ac && !strcmp(ac, content) && whole(get(a, "id"), c->n - 1, &id)) return id;
    }
    return -1;
}

/* post_processor TemplateProcessing: the special tokens before and after "A". */
static void template_specials(hf_ctx *c, int32_t *bos, int32_t *eos) {
    *bos = *eos = -2; /* -2: the template says nothing; -1: no token on that side */
    const cJSON *pp = get(c->tj, "post_processor"), *tp = NULL;
    const char *t = get_str(pp, "type");
    if (t && !strcmp(t, "TemplateProcessing")) tp = pp;
    else if (t && !strcmp(t, "Sequence")) {
        const cJSON *x;
        cJSON_ArrayForEach(x, get(pp, "processors")) {
            const char *xt = get_str(x, "type");
            if (xt && !strcmp(xt, "TemplateProcessing")) tp = x;
        }
    }
    const cJSON *single = get(tp, "single"), *x;
    if (!cJSON_IsArray(single)) return;
    bool seen_a = false;
    *bos = *eos = -1;
    cJSON_ArrayForEach(x, single) {
        if (get(x, "Sequence")) {
            seen_a = true;
            continue;
        }
        const char *name = get_str(get(x, "SpecialToken"), "id");
        if (!name) continue;
        int32_t id = map_get(&c->map, name, strlen(name));
        const cJSON *ids = get(get(get(tp, "special_tokens"), name), "ids");
        int32_t given;
        if (cJSON_IsArray(ids) && whole(cJSON_GetArrayItem(ids, 0), c->n - 1, &given)) id = given;
        if (id < 0) continue;
        if (!seen_a && *bos < 0) *bos = id;
        if (seen_a) *eos = id;
    }
}

/* vocab + added_tokens → c->tok, c->type, c->n */
static qai_status read_vocab(hf_ctx *c, const cJSON *model) {
    qai_vocab_desc *d = &c->v->desc;
    const cJSON *vocab = get(model, "vocab"), *x;
    if (!cJSON_IsObject(vocab)) return qai_error(QAI_ERR_FORMAT, "'%s': model.vocab is missing or not an object", c->name);
    c->added = get(c->tj, "added_tokens");
    if (c->added && !cJSON_IsArray(c->added) && !cJSON_IsNull(c->added))
        return qai_error(QAI_ERR_FORMAT, "'%s': added_tokens is not an array", c->name);
    if (!cJSON_IsArray(c->added)) c->added = NULL;
    /* ids may leave gaps (filled with [PADi]), but not absurd ones */
    int64_t count = cJSON_GetArraySize(vocab) + (c->added ? cJSON_GetArraySize(c->added) : 0);
    double max_id = (double)count + 65536 < (double)(1 << 24) ? (double)count + 65535 : (double)(1 << 24) - 1;
    int32_t n = 0;
    cJSON_ArrayForEach(x, vocab) {
        int32_t id;
        if (!whole(x, max_id, &id))
            return qai_error(QAI_ERR_FORMAT, "'%s': model.vocab['%s'] is not a token id from 0 to %.0f", c->name,
                             x->string, max_id);
        if (id >= n) n = id + 1;
    }
    int i = 0;
    cJSON_ArrayForEach(x, c->added) {
        int32_t id;
        if (!whole(get(x, "id"), max_id, &id))
            return qai_error(QAI_ERR_FORMAT, "'%s': added_tokens[%d].id is missing or not a token id from 0 to %.0f",
                             c->name, i, max_id);
        if (!get_str(x, "content"))
            return qai_error(QAI_ERR_FORMAT, "'%s': added_tokens[%d].content is missing or not a string", c->name, i);
        if (id >= n) n = id + 1;
        i++;
    }
    if (n == 0) return qai_error(QAI_ERR_FORMAT, "'%s': model.vocab is empty", c->name);
    c->n = n;
    c->tok = qai_calloc((size_t)n, sizeof *c->tok);
    c->type = qai_calloc((size_t)n, sizeof *c->type);
    if (!c->tok || !c->type) return QAI_ERR_NOMEM;
    d->tokens = (const char *const *)c->tok;
    d->types = c->type;
    d->n_tokens = n;
    cJSON_ArrayForEach(x, vocab) {
        int32_t id = (int32_t)x->valuedouble;
        if (c->tok[id])
            return qai_error(QAI_ERR_FORMAT, "'%s': model.vocab gives id %d to both '%s' and '%s'", c->name, id, c->tok[id],
                             x->string);
        if (!x->string || !(c->tok[id] = qai_strdup(x->string))) return QAI_ERR_NOMEM;
        c->type[id] = QAI_TOKEN_NORMAL;
    }
    cJSON_ArrayForEach(x, c->added) {
        int32_t id = (int32_t)get(x, "id")->valuedouble;
        const char *content = get_str(x, "content");
        char *s = qai_strdup(content);
        if (!s) return QAI_ERR_NOMEM;
        qai_free(c->tok[id]);
        c->tok[id] = s;
        if (cJSON_IsTrue(get(x, "special")) || looks_special(s)) c->type[id] = QAI_TOKEN_CONTROL;
        else {
            c->type[id] = QAI_TOKEN_USER_DEFINED;
            if (d->kind != QAI_VOCAB_WPM) unescape_spaces(s); /* llama.cpp pre-normalizes user-defined spaces */
        }
    }
    for (int32_t k = 0; k < n; k++)
        if (!c->tok[k]) {
            char buf[32];
            snprintf(buf, sizeof buf, "[PAD%d]", k);
            if (!(c->tok[k] = qai_strdup(buf))) return QAI_ERR_NOMEM;
            c->type[k] = QAI_TOKEN_UNUSED;
        }
    if (map_init(&c->map, (size_t)n)) return QAI_ERR_NOMEM;
    for (int32_t k = n - 1; k >= 0; k--) /* the lowest id wins for equal strings */
        if (c->type[k] != QAI_TOKEN_UNUSED) map_put(&c->map, c->tok[k], k);
    return QAI_OK;
}

/* model.merges → d->merges ("left right"); for SPM, scores from the ranks. */
static qai_status read_merges(hf_ctx *c, const cJSON *model) {
    qai_vocab_desc *d = &c->v->desc;
    bool spm = d->kind == QAI_VOCAB_SPM;
    const cJSON *merges = get(model, "merges"), *x;
    if (!cJSON_IsArray(merges)) return qai_error(QAI_ERR_FORMAT, "'%s': model.merges is missing or not an array", c->name);
    int nm = cJSON_GetArraySize(merges);
    if (nm < 0 || nm > (1 << 26)) return qai_error(QAI_ERR_FORMAT, "'%s': model.merges has %d entries", c->name, nm);
    char **out = qai_calloc((size_t)nm + 1, sizeof *out);
    if (!out) return QAI_ERR_NOMEM;
    d->merges = (const char *const *)out;
    float *scores = NULL;
    if (spm) {
        scores = qai_calloc((size_t)c->n, sizeof *scores);
        if (!scores) return QAI_ERR_NOMEM;
        d->scores = scores;
        for (int32_t k = 0; k < c->n; k++) scores[k] = c->type[k] == QAI_TOKEN_NORMAL ? 1.0f : 0.0f; /* 1 = no merge yet */
    }
    int r = 0;
    cJSON_ArrayForEach(x, merges) {
        const char *a = NULL, *b = NULL;
        size_t al = 0, bl = 0;
        if (cJSON_IsString(x)) {
            const char *s = x->valuestring, *sp = strchr(s, ' ');
            if (!sp || sp == s || !sp[1] || strchr(sp + 1, ' '))
                return qai_error(QAI_ERR_FORMAT, "'%s': model.merges[%d] '%s' is not two tokens separated by one space",
                                 c->name, r, s);
            a = s, al = (size_t)(sp - s), b = sp + 1, bl = strlen(b);
        } else if (cJSON_IsArray(x) && cJSON_GetArraySize(x) == 2 && cJSON_IsString(cJSON_GetArrayItem(x, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(x, 1)) && cJSON_GetArrayItem(x, 0)->valuestring[0] &&
                   cJSON_GetArrayItem(x, 1)->valuestring[0]) {
            a = cJSON_GetArrayItem(x, 0)->valuestring, al = strlen(a);
            b = cJSON_GetArrayItem(x, 1)->valuestring, bl = strlen(b);
        } else {
            return qai_error(QAI_ERR_FORMAT, "'%s': model.merges[%d] is neither \"a b\" nor a pair [\"a\", \"b\"] of tokens",
                             c->name, r);
        }
        if (map_get(&c->map, a, al) < 0 || map_get(&c->map, b, bl) < 0)
            return qai_error(QAI_ERR_FORMAT, "'%s': model.merges[%d] ('%.*s' '%.*s') uses a token not in model.vocab",
                             c->name, r, (int)al, a, (int)bl, b);
        /* spaces inside a part are written as U+0120, as llama.cpp's converter does */
        size_t spaces = 0;
        for (size_t k = 0; k < al; k++) spaces += a[k] == ' ';
        for (size_t k = 0; k < bl; k++) spaces += b[k] == ' ';
        char *m = qai_malloc(al + bl + spaces + 2);
        if (!m) return QAI_ERR_NOMEM;
        size_t w = 0;
        for (int part = 0; part < 2; part++) {
            const char *p = part ? b : a;
            size_t pl = part ? bl : al;
            if (part) m[w++] = ' ';
            for (size_t k = 0; k < pl; k++) {
                if (p[k] == ' ' && !cJSON_IsString(x)) m[w++] = (char)0xC4, m[w++] = (char)0xA0;
                else m[w++] = p[k];
            }
        }
        m[w] = 0;
        out[r] = m;
        d->n_merges = ++r;
        if (spm) {
            /* the token the merge makes: its score is -rank (the first merge that makes it) */
            char buf[512];
            if (al + bl < sizeof buf) {
                memcpy(buf, a, al);
                memcpy(buf + al, b, bl);
                int32_t id = map_get(&c->map, buf, al + bl);
                if (id >= 0 && scores[id] > 0) scores[id] = -(float)(r - 1);
            }
        }
    }
    if (spm) {
        /* tokens no merge makes: single characters (the symbols merging starts
         * from, whose score does not matter) score 0; longer ones, which HF's BPE
         * can never produce, score below every merge so they are joined last */
        for (int32_t k = 0; k < c->n; k++) {
            if (scores[k] <= 0) continue;
            int chars = 0;
            for (const char *p = c->tok[k]; *p; p++) chars += ((uint8_t)*p & 0xC0) != 0x80;
            scores[k] = chars <= 1 || c->type[k] != QAI_TOKEN_NORMAL || is_byte_piece(c->tok[k]) ? 0.0f : -1e9f;
        }
        /* SPM merges by score in llama.cpp; the merges themselves are not written */
        for (int k = 0; k < d->n_merges; k++) qai_free(out[k]);
        qai_free(out);
        d->merges = NULL;
        d->n_merges = 0;
    }
    return QAI_OK;
}

/* WordPiece pieces as llama.cpp stores them: "##x" → "x", a word start "w" → "▁w",
 * "[...]" unchanged. */
static qai_status wordpiece_names(hf_ctx *c, const cJSON *model) {
    const char *prefix = get_str(model, "continuing_subword_prefix");
    if (!prefix) prefix = "##";
    size_t pl = strlen(prefix);
    for (int32_t k = 0; k < c->n; k++) {
        if (c->type[k] != QAI_TOKEN_NORMAL) continue;
        char *s = c->tok[k];
        size_t n = strlen(s);
        if (n >= 2 && s[0] == '[' && s[n - 1] == ']') continue; /* "[unused0]" and the like stay, as in llama.cpp */
        if (pl && n > pl && !memcmp(s, prefix, pl)) {
            memmove(s, s + pl, n - pl + 1);
            continue;
        }
        char *t = qai_malloc(n + 4);
        if (!t) return QAI_ERR_NOMEM;
        memcpy(t, "\xe2\x96\x81", 3);
        memcpy(t + 3, s, n + 1);
        qai_free(s);
        c->tok[k] = t;
    }
    return QAI_OK;
}

static qai_status parse(hf_ctx *c, const char *pre_override) {
    qai_hf_vocab *v = c->v;
    qai_vocab_desc *d = &v->desc;
    const cJSON *model = get(c->tj, "model");
    if (!cJSON_IsObject(c->tj)) return qai_error(QAI_ERR_FORMAT, "'%s': the top level is not a JSON object", c->name);
    if (!cJSON_IsObject(model)) return qai_error(QAI_ERR_FORMAT, "'%s': model is missing or not an object", c->name);
    if (c->cj && !cJSON_IsObject(c->cj)) return qai_error(QAI_ERR_FORMAT, "'%s': the top level is not a JSON object", c->cname);
    const char *mtype = get_str(model, "type");
    /* older files leave model.type out: BPE has merges, WordPiece a max_input_chars_per_word */
    if (!mtype) mtype = get(model, "merges") ? "BPE" : get(model, "max_input_chars_per_word") ? "WordPiece" : NULL;
    if (!mtype) return qai_error(QAI_ERR_FORMAT, "'%s': model.type is missing", c->name);
    const cJSON *pt = get(c->tj, "pre_tokenizer"), *dec = get(c->tj, "decoder");
    const char *dtype = get_str(dec, "type");
    if (!strcmp(mtype, "BPE")) {
        if (find_pre(pt, "ByteLevel") || (dtype && !strcmp(dtype, "ByteLevel"))) d->kind = QAI_VOCAB_BPE;
        else if (cJSON_IsTrue(get(model, "byte_fallback")) || find_pre(pt, "Metaspace") ||
                 get(get(model, "vocab"), "<0x00>"))
            d->kind = QAI_VOCAB_SPM;
        else
            return qai_error(QAI_ERR_UNSUPPORTED,
                             "'%s': a BPE model that is neither byte-level (no ByteLevel pre_tokenizer or decoder) nor "
                             "SentencePiece-style (no byte_fallback, Metaspace or <0x00> piece)",
                             c->name);
    } else if (!strcmp(mtype, "WordPiece")) {
        d->kind = QAI_VOCAB_WPM;
    } else {
        return qai_error(QAI_ERR_UNSUPPORTED, "'%s': model.type '%s' is not supported (qai reads BPE and WordPiece)",
                         c->name, mtype);
    }
    qai_status st = read_vocab(c, model);
    if (st) return st;
    bool prefix = false;
    if ((st = check_normalizer(c, get(c->tj, "normalizer"), "normalizer", &prefix))) return st;
    if (d->kind != QAI_VOCAB_WPM && (st = read_merges(c, model))) return st;

    const char *pre = NULL;
    if (d->kind == QAI_VOCAB_BPE) {
        if (pre_override) pre = pre_override;
        else if ((st = detect_pre(c, &pre))) return st;
    } else if (pre_override) {
        return qai_error(QAI_ERR_ARG, "'%s': --pre applies to byte-level BPE tokenizers only", c->name);
    }
    if (pre && !(v->pre = qai_strdup(pre))) return QAI_ERR_NOMEM;
    d->pre = v->pre;

    /* special tokens: tokenizer_config.json, then the post-processor's template,
     * then what llama.cpp assumes for the kind */
    d->bos = config_token(c, "bos");
    d->eos = config_token(c, "eos");
    d->unk = config_token(c, "unk");
    d->sep = config_token(c, "sep");
    d->pad = config_token(c, "pad");
    d->eot = d->eom = -1;
    if (d->kind == QAI_VOCAB_WPM && d->bos < 0) d->bos = config_token(c, "cls");
    const char *unk = get_str(model, "unk_token");
    if (d->unk < 0 && unk) d->unk = map_get(&c->map, unk, strlen(unk));
    int32_t tb, te;
    template_specials(c, &tb, &te);
    if (d->bos < 0 && tb >= 0) d->bos = tb;
    if (d->kind == QAI_VOCAB_WPM) {
        if (d->sep < 0 && te >= 0) d->sep = te;
        static const char *const names[] = {"[CLS]", "[SEP]", "[UNK]", "[PAD]"};
        int32_t *ids[] = {&d->bos, &d->sep, &d->unk, &d->pad};
        for (int k = 0; k < 4; k++)
            if (*ids[k] < 0) *ids[k] = map_get(&c->map, names[k], strlen(names[k]));
    } else if (d->eos < 0 && te >= 0) {
        d->eos = te;
    }
    if (d->kind == QAI_VOCAB_SPM) {
        static const char *const names[] = {"<s>", "</s>", "<unk>"};
        int32_t *ids[] = {&d->bos, &d->eos, &d->unk};
        for (int k = 0; k < 3; k++)
            if (*ids[k] < 0) *ids[k] = map_get(&c->map, names[k], strlen(names[k]));
        for (int32_t k = 0; k < c->n; k++)
            if (c->type[k] == QAI_TOKEN_NORMAL && is_byte_piece(c->tok[k])) c->type[k] = QAI_TOKEN_BYTE;
        if (d->unk >= 0) c->type[d->unk] = QAI_TOKEN_UNKNOWN;
        /* the dummy prefix: Prepend("▁") in the normalizer, or a Metaspace pre-tokenizer that adds it */
        const cJSON *ms = find_pre(pt, "Metaspace");
        const char *scheme = get_str(ms, "prepend_scheme");
        if (ms && (scheme ? strcmp(scheme, "never") != 0 : !cJSON_IsFalse(get(ms, "add_prefix_space")))) prefix = true;
        d->add_space_prefix = prefix;
    }
    const cJSON *ab = get(c->cj, "add_bos_token"), *ae = get(c->cj, "add_eos_token");
    if (cJSON_IsBool(ab)) d->add_bos = cJSON_IsTrue(ab);
    else if (tb != -2) d->add_bos = tb >= 0;
    else d->add_bos = d->kind == QAI_VOCAB_SPM || d->kind == QAI_VOCAB_WPM || (pre && pre_adds_bos(pre));
    if (cJSON_IsBool(ae)) d->add_eos = cJSON_IsTrue(ae);
    else if (tb != -2 && d->kind != QAI_VOCAB_WPM) d->add_eos = te >= 0;
    else d->add_eos = false;
    if (d->add_bos && d->bos < 0) d->add_bos = false;
    if (d->add_eos && d->eos < 0) d->add_eos = false;

    const char *tmpl = get_str(c->cj, "chat_template");
    if (tmpl && !(v->chat_template = qai_strdup(tmpl))) return QAI_ERR_NOMEM;
    v->arch = d->kind == QAI_VOCAB_WPM ? "bert" : pre && !strcmp(pre, "qwen2") ? "qwen2" : "llama";

    /* renamed last: the lookups above go through c->map, whose keys are the original strings */
    if (d->kind == QAI_VOCAB_WPM) {
        map_release(&c->map);
        memset(&c->map, 0, sizeof c->map);
        if ((st = wordpiece_names(c, model))) return st;
    }

    /* the result must build a tokenizer (this also checks a --pre name) */
    qai_tokenizer *tok;
    if ((st = qai_tokenizer_new(d, &tok))) return qai_error_wrap(st, "'%s'", c->name);
    qai_tokenizer_free(tok);
    return QAI_OK;
}

qai_status qai_hf_vocab_parse(const char *json, size_t json_len, const char *json_name, const char *config,
                              size_t config_len, const char *config_name, const char *pre, qai_hf_vocab *out) {
    if (!out) return qai_error(QAI_ERR_ARG, "qai_hf_vocab_parse: out must not be NULL");
    memset(out, 0, sizeof *out);
    if (!json) return qai_error(QAI_ERR_ARG, "qai_hf_vocab_parse: no tokenizer.json text given");
    hf_ctx c = {.name = json_name ? json_name : "tokenizer.json",
                .cname = config_name ? config_name : "tokenizer_config.json",
                .v = out};
    qai_status st = parse_json(json, json_len, c.name, &c.tj);
    if (!st && config) st = parse_json(config, config_len, c.cname, &c.cj);
    if (!st) st = parse(&c, pre);
    cJSON_Delete(c.tj);
    cJSON_Delete(c.cj);
    map_release(&c.map);
    if (!out->desc.tokens) { /* read_vocab failed before handing the arrays over */
        qai_free(c.type);
        if (c.tok)
            for (int32_t k = 0; k < c.n; k++) qai_free(c.tok[k]);
        qai_free(c.tok);
    }
    if (st) {
        if (st == QAI_ERR_NOMEM) qai_error(QAI_ERR_NOMEM, "'%s': out of memory reading the tokenizer", c.name);
        qai_hf_vocab_release(out);
    }
    return st;
}

void qai_hf_vocab_release(qai_hf_vocab *v) {
    if (!v) return;
    qai_vocab_desc *d = &v->desc;
    if (d->tokens)
        for (int32_t i = 0; i < d->n_tokens; i++) qai_free((void *)d->tokens[i]);
    if (d->merges)
        for (int32_t i = 0; i < d->n_merges; i++) qai_free((void *)d->merges[i]);
    qai_free((void *)d->tokens);
    qai_free((void *)d->types);
    qai_free((void *)d->scores);
    qai_free((void *)d->merges);
    qai_free(v->pre);
    qai_free(v->chat_template);
    memset(v, 0, sizeof *v);
}

/* "path/to/Meta-Llama-3-8B/tokenizer.json" → "Meta-Llama-3-8B" (the model's folder), else the file's stem. */
static void model_name(const char *path, char *buf, size_t cap) {
    const char *slash = strrchr(path, '/');
    if (slash && slash > path) {
        const char *start = slash;
        while (start > path && start[-1] != '/') start--;
        size_t n = (size_t)(slash - start);
        if (n > 0 && !(n == 1 && *start == '.') && !(n == 2 && !memcmp(start, "..", 2))) {
            snprintf(buf, cap, "%.*s", (int)n, start);
            return;
        }
    }
    const char *b = slash ? slash + 1 : path;
    snprintf(buf, cap, "%s", b);
    char *dot = strrchr(buf, '.');
    if (dot && dot != buf) *dot = 0;
}

static bool same_file(const char *a, const char *b) {
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

qai_status qai_convert_hf_tokenizer(const char *tokenizer_json, const char *config_json, const char *pre,
                                    const char *out_gguf) {
    if (!tokenizer_json || !out_gguf)
        return qai_error(QAI_ERR_ARG, "qai_convert_hf_tokenizer: tokenizer.json and output paths are required");
    if (same_file(out_gguf, tokenizer_json) || (config_json && same_file(out_gguf, config_json)))
        return qai_error(QAI_ERR_ARG, "'%s': the output would overwrite an input file", out_gguf);
    char *json = NULL, *config = NULL;
    size_t jn = 0, cn = 0;
    qai_status st = qai_file_read(tokenizer_json, &json, &jn);
    if (!st && config_json) st = qai_file_read(config_json, &config, &cn);
    qai_hf_vocab v;
    if (!st) st = qai_hf_vocab_parse(json, jn, tokenizer_json, config, cn, config_json, pre, &v);
    qai_free(json);
    qai_free(config);
    if (st) return st;
    qai_gguf_writer *w = qai_gguf_writer_new();
    if (!w) {
        qai_hf_vocab_release(&v);
        return qai_error(QAI_ERR_NOMEM, "out of memory");
    }
    char name[256], key[64];
    model_name(tokenizer_json, name, sizeof name);
    snprintf(key, sizeof key, "%s.vocab_size", v.arch);
    if (!(st = qai_gguf_set_str(w, "general.architecture", v.arch)) && !(st = qai_gguf_set_str(w, "general.name", name)) &&
        !(st = qai_gguf_set_u32(w, key, (uint32_t)v.desc.n_tokens)) && !(st = qai_convert_set_vocab(w, &v.desc)) &&
        !(v.desc.kind == QAI_VOCAB_WPM && (st = qai_gguf_set_str(w, "tokenizer.ggml.model", "bert"))) &&
        !(v.desc.kind == QAI_VOCAB_WPM && (qai_gguf_remove_kv(w, "tokenizer.ggml.pre"), false)) &&
        !(v.chat_template && (st = qai_gguf_set_str(w, "tokenizer.chat_template", v.chat_template))))
        st = qai_gguf_writer_write(w, out_gguf);
    qai_gguf_writer_free(w);
    qai_hf_vocab_release(&v);
    return st;
}
