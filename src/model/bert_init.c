/* Random "bert" encoders for tests and benchmarks, laid out as llama.cpp's
 * converter writes BERT sentence-embedding models (tensor names, metadata, the
 * "▁"-marked WordPiece vocabulary), so the same file runs in qai and in
 * llama.cpp. The weight streams are documented in qai/model.h so a script can
 * rebuild them exactly (tests/tools/bert_ref.py).
 *
 * What it does not do: train or convert anything; weights are noise. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "qai/gguf.h"
#include "qai/model.h"

static uint64_t fnv1a64(const char *s) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 0x100000001b3ULL;
    return h;
}

static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

typedef enum { FILL_UNIFORM, FILL_NORM_W, FILL_NORM_B } fill_kind;

typedef struct {
    char name[64];
    void *data;
    size_t size;
    int64_t ne[2];
    int n_dims;
    qai_type type;
} bert_tensor;

/* rows × cols values of the stream of `name`, stored as type (f32 if a row is
 * not a whole number of blocks). */
static qai_status make(bert_tensor *t, const char *name, int64_t cols, int64_t rows, qai_type type, fill_kind kind,
                       double a, uint64_t seed) {
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ne[0] = cols, t->ne[1] = rows;
    t->n_dims = rows > 1 ? 2 : 1;
    t->type = rows > 1 && cols % qai_type_info(type)->block_size == 0 ? type : QAI_TYPE_F32;
    float *v = qai_malloc((size_t)(rows * cols) * sizeof(float));
    t->size = qai_row_size(t->type, cols) * (size_t)rows;
    t->data = qai_aligned_alloc(t->size);
    if (!v || !t->data) {
        qai_free(v);
        return QAI_ERR_NOMEM;
    }
    uint64_t st = seed ^ fnv1a64(name);
    for (int64_t i = 0; i < rows * cols; i++) {
        double u = (double)(splitmix64(&st) >> 40) / 16777216.0, x = 2.0 * u - 1.0;
        v[i] = (float)(kind == FILL_UNIFORM ? x * a : kind == FILL_NORM_W ? 1.0 + 0.2 * x : 0.1 * x);
    }
    qai_status s = qai_quantize_rows(t->type, v, t->data, rows, cols);
    qai_free(v);
    return s;
}

/* BERT's layout: [PAD] 0, [unused0..] 1-99, [UNK] 100, [CLS] 101, [SEP] 102,
 * [MASK] 103, then single characters, their "##" forms and filler words. */
static char *synthetic_token(int i) {
    char buf[48];
    static const char *const sp[] = {"[UNK]", "[CLS]", "[SEP]", "[MASK]"};
    if (i == 0) return qai_strdup("[PAD]");
    if (i >= 100 && i <= 103) return qai_strdup(sp[i - 100]);
    if (i < 100) snprintf(buf, sizeof buf, "[unused%d]", i - 1);
    else if (i < 104 + 94) snprintf(buf, sizeof buf, "%c", 33 + (i - 104)); /* ASCII ! .. ~ */
    else if (i < 104 + 188) snprintf(buf, sizeof buf, "##%c", 33 + (i - 104 - 94));
    else {
        /* filler: words of 2-7 letters from the index, and their ## forms */
        int k = i - 292;
        char w[16];
        int n = 2 + k % 6;
        unsigned x = (unsigned)k;
        for (int j = 0; j < n; j++) w[j] = (char)('a' + (x = x * 7u + 3u + (unsigned)j) % 26u);
        w[n] = 0;
        snprintf(buf, sizeof buf, k % 3 == 2 ? "##%s%d" : "%s%d", w, k / 3);
    }
    return qai_strdup(buf);
}

qai_status qai_bert_init_random(const qai_init_params *p, const char *const *vocab, int n_vocab, int pooling,
                                const char *out_path) {
    const int D = p->dim, L = p->layers, H = p->heads, F = p->ffn, C = p->ctx;
    const int V = vocab ? n_vocab : p->vocab;
    if (D <= 0 || L <= 0 || H <= 0 || F <= 0 || C <= 0 || D % H)
        return qai_error(QAI_ERR_ARG, "bert: bad shape (dim %d, layers %d, heads %d, ffn %d, ctx %d)", D, L, H, F, C);
    if (V < (vocab ? 1 : 400)) return qai_error(QAI_ERR_ARG, "bert: a vocabulary of %d tokens is too small", V);
    if (pooling != 1 && pooling != 2) return qai_error(QAI_ERR_ARG, "bert: pooling %d (1 mean, 2 cls)", pooling);
    const double a = (p->std > 0 ? p->std : 0.02) * sqrt(3.0);
    const uint64_t seed = p->seed;
    const int n_t = 5 + 16 * L;
    bert_tensor *ts = qai_calloc((size_t)n_t, sizeof *ts);
    char **toks = qai_calloc((size_t)V, sizeof *toks);
    int32_t *types = qai_calloc((size_t)V, sizeof *types);
    qai_gguf_writer *w = qai_gguf_writer_new();
    qai_status st = ts && toks && types && w ? QAI_OK : QAI_ERR_NOMEM;
    int k = 0;
#define MK(name, cols, rows, type, kind) \
    if (st == QAI_OK) st = make(&ts[k++], name, cols, rows, type, kind, a, seed)
    MK("token_embd.weight", D, V, p->type, FILL_UNIFORM);
    MK("token_types.weight", D, 2, QAI_TYPE_F32, FILL_UNIFORM);
    MK("position_embd.weight", D, C, QAI_TYPE_F32, FILL_UNIFORM);
    MK("token_embd_norm.weight", D, 1, QAI_TYPE_F32, FILL_NORM_W);
    MK("token_embd_norm.bias", D, 1, QAI_TYPE_F32, FILL_NORM_B);
    for (int l = 0; l < L && st == QAI_OK; l++) {
        char n[64];
#define N(suffix) (snprintf(n, sizeof n, "blk.%d." suffix, l), n)
        MK(N("attn_q.weight"), D, D, p->type, FILL_UNIFORM);
        MK(N("attn_q.bias"), D, 1, QAI_TYPE_F32, FILL_UNIFORM);
        MK(N("attn_k.weight"), D, D, p->type, FILL_UNIFORM);
        MK(N("attn_k.bias"), D, 1, QAI_TYPE_F32, FILL_UNIFORM);
        MK(N("attn_v.weight"), D, D, p->type, FILL_UNIFORM);
        MK(N("attn_v.bias"), D, 1, QAI_TYPE_F32, FILL_UNIFORM);
        MK(N("attn_output.weight"), D, D, p->type, FILL_UNIFORM);
        MK(N("attn_output.bias"), D, 1, QAI_TYPE_F32, FILL_UNIFORM);
        MK(N("attn_output_norm.weight"), D, 1, QAI_TYPE_F32, FILL_NORM_W);
        MK(N("attn_output_norm.bias"), D, 1, QAI_TYPE_F32, FILL_NORM_B);
        MK(N("ffn_up.weight"), D, F, p->type, FILL_UNIFORM);
        MK(N("ffn_up.bias"), F, 1, QAI_TYPE_F32, FILL_UNIFORM);
        MK(N("ffn_down.weight"), F, D, p->type, FILL_UNIFORM);
        MK(N("ffn_down.bias"), D, 1, QAI_TYPE_F32, FILL_UNIFORM);
        MK(N("layer_output_norm.weight"), D, 1, QAI_TYPE_F32, FILL_NORM_W);
        MK(N("layer_output_norm.bias"), D, 1, QAI_TYPE_F32, FILL_NORM_B);
#undef N
    }
#undef MK
    /* the vocabulary in llama.cpp's form: "##x" -> "x", "x" -> "▁x", "[X]" kept */
    int32_t cls = -1, sep = -1, unk = -1, pad = -1;
    for (int i = 0; i < V && st == QAI_OK; i++) {
        const char *t = vocab ? vocab[i] : NULL;
        char *syn = vocab ? NULL : synthetic_token(i);
        if (!vocab) t = syn;
        if (!t) {
            st = QAI_ERR_NOMEM;
            break;
        }
        size_t l = strlen(t);
        bool bracket = l >= 2 && t[0] == '[' && t[l - 1] == ']';
        if (bracket || l == 0) toks[i] = qai_strdup(t);
        else if (l > 2 && t[0] == '#' && t[1] == '#') toks[i] = qai_strdup(t + 2);
        else {
            toks[i] = qai_malloc(l + 4);
            if (toks[i]) memcpy(toks[i], "\xe2\x96\x81", 3), memcpy(toks[i] + 3, t, l + 1);
        }
        types[i] = QAI_TOKEN_NORMAL;
        if (!strcmp(t, "[CLS]")) cls = i, types[i] = QAI_TOKEN_CONTROL;
        if (!strcmp(t, "[SEP]")) sep = i, types[i] = QAI_TOKEN_CONTROL;
        if (!strcmp(t, "[UNK]")) unk = i, types[i] = QAI_TOKEN_CONTROL;
        if (!strcmp(t, "[PAD]")) pad = i, types[i] = QAI_TOKEN_CONTROL;
        if (!strcmp(t, "[MASK]")) types[i] = QAI_TOKEN_CONTROL;
        qai_free(syn);
        if (!toks[i]) st = QAI_ERR_NOMEM;
    }
    if (st == QAI_OK && (cls < 0 || sep < 0 || unk < 0))
        st = qai_error(QAI_ERR_ARG, "bert: the vocabulary needs [CLS], [SEP] and [UNK]");
    if (st == QAI_OK) {
        qai_gguf_set_str(w, "general.architecture", "bert");
        qai_gguf_set_str(w, "general.name", "qai random bert");
        qai_gguf_set_u32(w, "bert.context_length", (uint32_t)C);
        qai_gguf_set_u32(w, "bert.embedding_length", (uint32_t)D);
        qai_gguf_set_u32(w, "bert.feed_forward_length", (uint32_t)F);
        qai_gguf_set_u32(w, "bert.block_count", (uint32_t)L);
        qai_gguf_set_u32(w, "bert.attention.head_count", (uint32_t)H);
        qai_gguf_set_f32(w, "bert.attention.layer_norm_epsilon", 1e-12f);
        qai_gguf_set_bool(w, "bert.attention.causal", false);
        qai_gguf_set_u32(w, "bert.pooling_type", (uint32_t)pooling);
        qai_gguf_set_u32(w, "general.file_type", p->type == QAI_TYPE_F32 ? 0 : p->type == QAI_TYPE_F16 ? 1 : 7);
        qai_gguf_set_str(w, "tokenizer.ggml.model", "bert");
        qai_gguf_set_u32(w, "tokenizer.ggml.token_type_count", 2);
        st = qai_gguf_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)toks, NULL, (uint64_t)V);
        if (st == QAI_OK) st = qai_gguf_set_arr_data(w, "tokenizer.ggml.token_type", QAI_GGUF_INT32, types, (uint64_t)V);
        /* [CLS] under both names: llama.cpp takes it as BOS */
        qai_gguf_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)cls);
        qai_gguf_set_u32(w, "tokenizer.ggml.cls_token_id", (uint32_t)cls);
        qai_gguf_set_u32(w, "tokenizer.ggml.seperator_token_id", (uint32_t)sep);
        qai_gguf_set_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)unk);
        if (pad >= 0) qai_gguf_set_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)pad);
    }
    for (int i = 0; i < k && st == QAI_OK; i++)
        st = qai_gguf_add_tensor(w, ts[i].name, ts[i].type, ts[i].n_dims, ts[i].ne, ts[i].data, ts[i].size);
    if (st == QAI_OK) st = qai_gguf_writer_write(w, out_path);
    if (st == QAI_ERR_NOMEM) qai_error(st, "bert: out of memory writing '%s'", out_path);
    qai_gguf_writer_free(w);
    for (int i = 0; ts && i < n_t; i++) qai_aligned_free(ts[i].data);
    for (int i = 0; toks && i < V; i++) qai_free(toks[i]);
    qai_free(ts);
    qai_free(toks);
    qai_free(types);
    return st;
}
