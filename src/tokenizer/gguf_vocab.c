/*
 * gguf_vocab.c — a tokenizer from a GGUF file's tokenizer.ggml.* metadata.
 *
 * Keys read (as llama.cpp writes and reads them):
 *   tokenizer.ggml.model        "llama" (SPM), "gpt2" (byte-level BPE) or "bert" (WordPiece)
 *   tokenizer.ggml.pre          BPE pre-tokenizer name (default "default")
 *   tokenizer.ggml.tokens       string[n]
 *   tokenizer.ggml.scores       f32[n]   (optional)
 *   tokenizer.ggml.token_type   i32[n]   (optional)
 *   tokenizer.ggml.merges       string[] (gpt2: required)
 *   tokenizer.ggml.{bos,eos,eot,eom,unknown,padding,seperator,cls}_token_id
 *   tokenizer.ggml.add_bos_token, add_eos_token, add_space_prefix
 * Defaults are llama.cpp's for each model kind (SPM: bos 1, eos 2, unk 0, add
 * BOS and the dummy prefix; BPE: bos = eos = 11, no prefix, add BOS only for
 * the llama3-style pre-tokenizers; bert: [CLS] = cls_token_id, else
 * bos_token_id, else the token "[CLS]", else 101 as in llama.cpp; [SEP], [UNK]
 * likewise from seperator/unknown_token_id, "[SEP]"/"[UNK]", 102/100). An id
 * outside the vocabulary keeps the default, as in llama.cpp.
 *
 * What it does not do: "t5" or "rwkv" vocabularies.
 */
#include <ctype.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

static const char *K_MODEL = "tokenizer.ggml.model";
static const char *K_TOKENS = "tokenizer.ggml.tokens";

static bool is_int_type(qai_gguf_type t) {
    return t == QAI_GGUF_UINT8 || t == QAI_GGUF_INT8 || t == QAI_GGUF_UINT16 || t == QAI_GGUF_INT16 ||
           t == QAI_GGUF_UINT32 || t == QAI_GGUF_INT32 || t == QAI_GGUF_UINT64 || t == QAI_GGUF_INT64;
}

static void get_id(const qai_gguf *g, const char *key, int32_t n, int32_t *id) {
    int64_t v;
    if (qai_gguf_get_int(g, key, &v) == QAI_OK && v >= 0 && v < n) *id = (int32_t)v;
}

static void get_flag(const qai_gguf *g, const char *key, bool *b) {
    bool v;
    if (qai_gguf_get_bool(g, key, &v) == QAI_OK) *b = v;
}

/* Id of the token whose text is name, or dflt (if in range, else -1). */
static int32_t find_token(const char *const *tokens, const size_t *lens, int32_t n, const char *name, int32_t dflt) {
    size_t l = strlen(name);
    for (int32_t i = 0; i < n; i++)
        if (lens[i] == l && !memcmp(tokens[i], name, l)) return i;
    return dflt < n ? dflt : -1;
}

static bool contains_ci(const char *hay, const char *needle) {
    size_t n = strlen(needle);
    for (const char *p = hay; *p; p++) {
        size_t k = 0;
        while (k < n && p[k] && tolower((unsigned char)p[k]) == needle[k]) k++;
        if (k == n) return true;
    }
    return false;
}

qai_status qai_tokenizer_from_gguf(const qai_gguf *g, qai_tokenizer **out) {
    if (!out) return qai_error(QAI_ERR_ARG, "qai_tokenizer_from_gguf: out must not be NULL");
    *out = NULL;
    if (!g) return qai_error(QAI_ERR_ARG, "qai_tokenizer_from_gguf: no GGUF file given");
    const char *where = qai_gguf_path(g) ? qai_gguf_path(g) : "gguf";
    const char *model;
    qai_status st = qai_gguf_get_str(g, K_MODEL, &model);
    if (st == QAI_ERR_NOT_FOUND)
        return qai_error(QAI_ERR_NOT_FOUND, "'%s': no tokenizer in this file (key '%s' missing)", where, K_MODEL);
    if (st) return st;
    qai_vocab_desc d = {0};
    if (!strcmp(model, "llama")) d.kind = QAI_VOCAB_SPM;
    else if (!strcmp(model, "gpt2")) d.kind = QAI_VOCAB_BPE;
    else if (!strcmp(model, "bert")) d.kind = QAI_VOCAB_WPM;
    else
        return qai_error(QAI_ERR_UNSUPPORTED,
                         "'%s': tokenizer model '%s' (%s) is not supported; qai reads 'llama', 'gpt2' and 'bert'",
                         where, model, K_MODEL);

    int64_t ti = qai_gguf_find_kv(g, K_TOKENS);
    if (ti < 0) return qai_error(QAI_ERR_NOT_FOUND, "'%s': token list '%s' is missing", where, K_TOKENS);
    if (qai_gguf_kv_type(g, ti) != QAI_GGUF_ARRAY || qai_gguf_arr_type(g, ti) != QAI_GGUF_STRING)
        return qai_error(QAI_ERR_FORMAT, "'%s': '%s' is not an array of strings", where, K_TOKENS);
    uint64_t n64 = qai_gguf_arr_len(g, ti);
    if (n64 == 0 || n64 > INT32_MAX / 2)
        return qai_error(QAI_ERR_FORMAT, "'%s': '%s' has %llu tokens", where, K_TOKENS, (unsigned long long)n64);
    int32_t n = (int32_t)n64;

    int64_t si = qai_gguf_find_kv(g, "tokenizer.ggml.scores");
    int64_t yi = qai_gguf_find_kv(g, "tokenizer.ggml.token_type");
    int64_t mi = qai_gguf_find_kv(g, "tokenizer.ggml.merges");
    if (si >= 0) {
        qai_gguf_type t = qai_gguf_arr_type(g, si);
        if (qai_gguf_kv_type(g, si) != QAI_GGUF_ARRAY || (t != QAI_GGUF_FLOAT32 && t != QAI_GGUF_FLOAT64 && !is_int_type(t)))
            return qai_error(QAI_ERR_FORMAT, "'%s': 'tokenizer.ggml.scores' is not an array of numbers", where);
        if (qai_gguf_arr_len(g, si) != n64)
            return qai_error(QAI_ERR_FORMAT, "'%s': 'tokenizer.ggml.scores' has %llu entries but there are %d tokens", where,
                             (unsigned long long)qai_gguf_arr_len(g, si), n);
    }
    if (yi >= 0) {
        if (qai_gguf_kv_type(g, yi) != QAI_GGUF_ARRAY || !is_int_type(qai_gguf_arr_type(g, yi)))
            return qai_error(QAI_ERR_FORMAT, "'%s': 'tokenizer.ggml.token_type' is not an array of integers", where);
        if (qai_gguf_arr_len(g, yi) != n64)
            return qai_error(QAI_ERR_FORMAT, "'%s': 'tokenizer.ggml.token_type' has %llu entries but there are %d tokens",
                             where, (unsigned long long)qai_gguf_arr_len(g, yi), n);
    }
    if (d.kind == QAI_VOCAB_BPE) {
        if (mi < 0) return qai_error(QAI_ERR_NOT_FOUND, "'%s': gpt2 tokenizer without 'tokenizer.ggml.merges'", where);
        if (qai_gguf_kv_type(g, mi) != QAI_GGUF_ARRAY || qai_gguf_arr_type(g, mi) != QAI_GGUF_STRING)
            return qai_error(QAI_ERR_FORMAT, "'%s': 'tokenizer.ggml.merges' is not an array of strings", where);
        if (qai_gguf_arr_len(g, mi) > INT32_MAX / 2)
            return qai_error(QAI_ERR_FORMAT, "'%s': 'tokenizer.ggml.merges' is too long", where);
    }

    const char **tokens = qai_calloc((size_t)n, sizeof *tokens);
    size_t *lens = qai_calloc((size_t)n, sizeof *lens);
    float *scores = si >= 0 ? qai_calloc((size_t)n, sizeof *scores) : NULL;
    int32_t *types = yi >= 0 ? qai_calloc((size_t)n, sizeof *types) : NULL;
    const char **merges = NULL;
    int32_t n_merges = 0;
    if (d.kind == QAI_VOCAB_BPE) {
        n_merges = (int32_t)qai_gguf_arr_len(g, mi);
        merges = qai_calloc((size_t)n_merges + 1, sizeof *merges);
    }
    if (!tokens || !lens || (si >= 0 && !scores) || (yi >= 0 && !types) || (d.kind == QAI_VOCAB_BPE && !merges)) {
        st = qai_error(QAI_ERR_NOMEM, "'%s': out of memory reading a %d-token vocabulary", where, n);
        goto done;
    }
    for (int32_t i = 0; i < n; i++) {
        tokens[i] = qai_gguf_arr_str(g, ti, (uint64_t)i);
        lens[i] = qai_gguf_arr_str_len(g, ti, (uint64_t)i);
        if (scores) scores[i] = (float)qai_gguf_arr_float(g, si, (uint64_t)i);
        if (types) types[i] = (int32_t)qai_gguf_arr_int(g, yi, (uint64_t)i);
    }
    for (int32_t i = 0; i < n_merges; i++) merges[i] = qai_gguf_arr_str(g, mi, (uint64_t)i);

    const char *pre = NULL;
    if (qai_gguf_get_str(g, "tokenizer.ggml.pre", &pre) != QAI_OK) pre = NULL;
    d.n_tokens = n;
    d.tokens = tokens;
    d.token_lens = lens;
    d.scores = scores;
    d.types = types;
    d.merges = merges;
    d.n_merges = n_merges;
    d.pre = pre;
    d.eot = d.eom = d.pad = d.sep = -1;
    if (d.kind == QAI_VOCAB_SPM) {
        d.bos = 1, d.eos = 2, d.unk = 0;
        d.add_bos = true, d.add_eos = false, d.add_space_prefix = true;
    } else if (d.kind == QAI_VOCAB_WPM) {
        d.bos = find_token(tokens, lens, n, "[CLS]", 101);
        d.sep = find_token(tokens, lens, n, "[SEP]", 102);
        d.unk = find_token(tokens, lens, n, "[UNK]", 100);
        d.pad = find_token(tokens, lens, n, "[PAD]", 0);
        d.eos = -1;
        d.add_bos = true, d.add_eos = false, d.add_space_prefix = false;
    } else {
        d.bos = 11, d.eos = 11, d.unk = -1;
        d.add_bos = false, d.add_eos = false, d.add_space_prefix = false;
        if (pre && (!strcmp(pre, "llama3") || !strcmp(pre, "llama-v3") || !strcmp(pre, "llama-bpe") ||
                    !strcmp(pre, "falcon3") || !strcmp(pre, "tekken") || !strcmp(pre, "chameleon")))
            d.add_bos = true;
        if (pre && !strcmp(pre, "chatglm-bpe")) d.bos = -1;
    }
    if (d.bos >= n) d.bos = -1;
    if (d.eos >= n) d.eos = -1;
    if (d.unk >= n) d.unk = -1;
    get_flag(g, "tokenizer.ggml.add_space_prefix", &d.add_space_prefix);
    get_id(g, "tokenizer.ggml.bos_token_id", n, &d.bos);
    get_id(g, "tokenizer.ggml.eos_token_id", n, &d.eos);
    get_id(g, "tokenizer.ggml.eot_token_id", n, &d.eot);
    get_id(g, "tokenizer.ggml.eom_token_id", n, &d.eom);
    get_id(g, "tokenizer.ggml.unknown_token_id", n, &d.unk);
    get_id(g, "tokenizer.ggml.seperator_token_id", n, &d.sep);
    get_id(g, "tokenizer.ggml.padding_token_id", n, &d.pad);
    if (d.kind == QAI_VOCAB_WPM) get_id(g, "tokenizer.ggml.cls_token_id", n, &d.bos); /* newer converters' name for it */
    get_flag(g, "tokenizer.ggml.add_bos_token", &d.add_bos);
    get_flag(g, "tokenizer.ggml.add_eos_token", &d.add_eos);

    qai_tokenizer *tok;
    st = qai_tokenizer_new(&d, &tok);
    if (st) {
        qai_error_wrap(st, "'%s'", where);
        goto done;
    }
    /* llama.cpp: Phi-3's special tokens swallow the whitespace after them */
    const char *name;
    if (qai_gguf_get_str(g, "general.name", &name) == QAI_OK && (contains_ci(name, "phi-3") || contains_ci(name, "phi3"))) {
        for (int32_t k = 0; k < tok->n_special; k++) tok->attrs[tok->special[k]] |= TOK_ATTR_RSTRIP;
        int32_t id = qai_tokenizer_find(tok, "</s>");
        if (id >= 0) tok->attrs[id] |= TOK_ATTR_RSTRIP;
        static const char *const keep[] = {"<unk>", "<s>", "<|endoftext|>"};
        for (int k = 0; k < 3; k++)
            if ((id = qai_tokenizer_find(tok, keep[k])) >= 0) tok->attrs[id] &= (uint8_t)~TOK_ATTR_RSTRIP;
    }
    *out = tok;
done:
    qai_free(tokens);
    qai_free(lens);
    qai_free(scores);
    qai_free(types);
    qai_free(merges);
    return st;
}
