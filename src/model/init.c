/* Models with random weights of any Llama shape, for tests and benchmarks (and
 * as the starting point of training). Weights are uniform with standard
 * deviation 0.02 by default (cheap to draw for a billion parameters), norms 1. The
 * vocabulary is SentencePiece-style: <unk> <s> </s>, the 256 byte tokens, then
 * filler pieces, so every text encodes and the file runs in llama.cpp too. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "qai/gguf.h"
#include "qai/model.h"
#include "qai/quantize.h"

typedef struct {
    char *name;
    void *data;
    int64_t ne[2];
    int n_dims;
    qai_type type;
} init_tensor;

static qai_status make_tensor(init_tensor *t, const char *name, int64_t cols, int64_t rows, qai_type type,
                              qai_rng *rng, float fill, float std) {
    t->name = qai_strdup(name);
    t->ne[0] = cols;
    t->ne[1] = rows;
    t->n_dims = rows > 1 ? 2 : 1;
    t->type = rows > 1 ? type : QAI_TYPE_F32;
    if (rows > 1 && cols % qai_type_info(type)->block_size) t->type = QAI_TYPE_F32;
    size_t rb = qai_row_size(t->type, cols);
    t->data = qai_aligned_alloc(rb * (size_t)rows);
    float *row = qai_malloc((size_t)cols * sizeof(float));
    if (!t->name || !t->data || !row) {
        qai_free(row);
        return QAI_ERR_NOMEM;
    }
    const float a = std * sqrtf(3.0f); /* uniform on [-a, a] has standard deviation std */
    qai_status st = QAI_OK;
    for (int64_t r = 0; r < rows && st == QAI_OK; r++) {
        for (int64_t k = 0; k < cols; k++) row[k] = fill != 0 ? fill : (2.0f * qai_rng_float(rng) - 1.0f) * a;
        st = qai_quantize_rows(t->type, row, (uint8_t *)t->data + (size_t)r * rb, 1, cols);
    }
    qai_free(row);
    return st;
}

qai_status qai_model_write_byte_vocab(qai_gguf_writer *w, int vocab) {
    if (vocab < 259) return qai_error(QAI_ERR_ARG, "a byte-level vocabulary needs at least 259 tokens, not %d", vocab);
    const int64_t V = vocab;
    char **tokens = qai_calloc((size_t)V, sizeof(char *));
    float *scores = qai_malloc((size_t)V * sizeof(float));
    int32_t *types = qai_malloc((size_t)V * sizeof(int32_t));
    qai_status st = tokens && scores && types ? QAI_OK : QAI_ERR_NOMEM;
    static const char *specials[3] = {"<unk>", "<s>", "</s>"};
    for (int64_t i = 0; i < V && st == QAI_OK; i++) {
        char buf[32];
        if (i < 3) snprintf(buf, sizeof buf, "%s", specials[i]);
        else if (i < 259) snprintf(buf, sizeof buf, "<0x%02X>", (unsigned)(i - 3));
        else snprintf(buf, sizeof buf, "\xe2\x96\x81t%lld", (long long)(i - 259));
        tokens[i] = qai_strdup(buf);
        if (!tokens[i]) st = QAI_ERR_NOMEM;
        scores[i] = i < 259 ? 0.0f : -(float)(i - 259);
        types[i] = i == 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : 1;
    }
    if (!st) st = qai_gguf_set_str(w, "tokenizer.ggml.model", "llama");
    if (!st) st = qai_gguf_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)tokens, NULL, (uint64_t)V);
    if (!st) st = qai_gguf_set_arr_data(w, "tokenizer.ggml.scores", QAI_GGUF_FLOAT32, scores, (uint64_t)V);
    if (!st) st = qai_gguf_set_arr_data(w, "tokenizer.ggml.token_type", QAI_GGUF_INT32, types, (uint64_t)V);
    if (!st) st = qai_gguf_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
    if (!st) st = qai_gguf_set_u32(w, "tokenizer.ggml.eos_token_id", 2);
    if (!st) st = qai_gguf_set_u32(w, "tokenizer.ggml.unknown_token_id", 0);
    if (!st) st = qai_gguf_set_bool(w, "tokenizer.ggml.add_bos_token", true);
    if (!st) st = qai_gguf_set_bool(w, "tokenizer.ggml.add_eos_token", false);
    if (tokens)
        for (int64_t i = 0; i < V; i++) qai_free(tokens[i]);
    qai_free(tokens);
    qai_free(scores);
    qai_free(types);
    return st;
}

qai_status qai_model_init_random(const qai_init_params *p, const char *out_path) {
    const char *arch = p->arch ? p->arch : "llama";
    if (strcmp(arch, "llama") && strcmp(arch, "qwen2"))
        return qai_error(QAI_ERR_ARG, "init: architecture '%s' is not supported (llama, qwen2)", arch);
    if (p->dim <= 0 || p->layers <= 0 || p->heads <= 0 || p->kv_heads <= 0 || p->ffn <= 0 || p->vocab <= 0)
        return qai_error(QAI_ERR_ARG, "init: every dimension must be positive");
    if (p->dim % p->heads || p->heads % p->kv_heads || (p->dim / p->heads) % 2)
        return qai_error(QAI_ERR_ARG,
                         "init: dim %d must divide into %d heads of even size, and heads into %d KV heads", p->dim,
                         p->heads, p->kv_heads);
    if (p->vocab < 259) return qai_error(QAI_ERR_ARG, "init: vocab must be at least 259 (3 specials + 256 bytes)");
    const qai_type_traits *tt = qai_type_info(p->type);
    if (!tt || !tt->supported || p->type == QAI_TYPE_Q8_K)
        return qai_error(QAI_ERR_ARG, "init: weight type %d is not supported", (int)p->type);
    const int64_t D = p->dim, S = p->dim / p->heads, HS = D, GS = S * p->kv_heads, F = p->ffn, V = p->vocab;
    const int ctx = p->ctx > 0 ? p->ctx : 2048;
    const float std = p->std > 0 ? p->std : 0.02f;

    qai_rng rng;
    qai_rng_seed(&rng, p->seed);
    size_t n_tensors = 3 + (size_t)p->layers * (9 + (strcmp(arch, "qwen2") ? 0 : 3));
    init_tensor *ts = qai_calloc(n_tensors, sizeof *ts);
    qai_gguf_writer *w = qai_gguf_writer_new();
    qai_status st = QAI_OK;
    if (!ts || !w) {
        st = QAI_ERR_NOMEM;
        goto done;
    }
    size_t nt = 0;
    qai_progress prog;
    qai_progress_start(&prog, "initializing", "tensors", n_tensors);
#define MAKE(name, cols, rows, fill)                                                                                   \
    do {                                                                                                               \
        if (st == QAI_OK) st = make_tensor(&ts[nt++], name, cols, rows, p->type, &rng, fill, std);                     \
        qai_progress_update(&prog, nt);                                                                                \
    } while (0)
    MAKE("token_embd.weight", D, V, 0);
    char name[96];
    for (int l = 0; l < p->layers; l++) {
#define N(s) (snprintf(name, sizeof name, "blk.%d." s, l), name)
        MAKE(N("attn_norm.weight"), D, 1, 1.0f);
        MAKE(N("attn_q.weight"), D, HS, 0);
        MAKE(N("attn_k.weight"), D, GS, 0);
        MAKE(N("attn_v.weight"), D, GS, 0);
        if (!strcmp(arch, "qwen2")) {
            MAKE(N("attn_q.bias"), HS, 1, 0);
            MAKE(N("attn_k.bias"), GS, 1, 0);
            MAKE(N("attn_v.bias"), GS, 1, 0);
        }
        MAKE(N("attn_output.weight"), HS, D, 0);
        MAKE(N("ffn_norm.weight"), D, 1, 1.0f);
        MAKE(N("ffn_gate.weight"), D, F, 0);
        MAKE(N("ffn_up.weight"), D, F, 0);
        MAKE(N("ffn_down.weight"), F, D, 0);
#undef N
    }
    MAKE("output_norm.weight", D, 1, 1.0f);
    MAKE("output.weight", D, V, 0);
#undef MAKE
    qai_progress_finish(&prog);
    if (st) goto done;

    char key[128];
#define K(s) (snprintf(key, sizeof key, "%s.%s", arch, s), key)
    st = qai_gguf_set_str(w, "general.architecture", arch);
    if (!st) st = qai_gguf_set_str(w, "general.name", "qai random init");
    if (!st) st = qai_gguf_set_u32(w, K("context_length"), (uint32_t)ctx);
    if (!st) st = qai_gguf_set_u32(w, K("embedding_length"), (uint32_t)D);
    if (!st) st = qai_gguf_set_u32(w, K("block_count"), (uint32_t)p->layers);
    if (!st) st = qai_gguf_set_u32(w, K("feed_forward_length"), (uint32_t)F);
    if (!st) st = qai_gguf_set_u32(w, K("rope.dimension_count"), (uint32_t)S);
    if (!st) st = qai_gguf_set_u32(w, K("attention.head_count"), (uint32_t)p->heads);
    if (!st) st = qai_gguf_set_u32(w, K("attention.head_count_kv"), (uint32_t)p->kv_heads);
    if (!st) st = qai_gguf_set_f32(w, K("attention.layer_norm_rms_epsilon"), 1e-5f);
    if (!st) st = qai_gguf_set_f32(w, K("rope.freq_base"), 10000.0f);
#undef K
    int ftype = qai_quantize_file_type(qai_type_info(p->type)->name); /* llama.cpp's LLAMA_FTYPE of the type */
    if (!st) st = qai_gguf_set_u32(w, "general.file_type", ftype >= 0 ? (uint32_t)ftype : 0);
    if (!st) st = qai_model_write_byte_vocab(w, (int)V);
    for (size_t i = 0; i < nt && !st; i++)
        st = qai_gguf_add_tensor(w, ts[i].name, ts[i].type, ts[i].n_dims, ts[i].ne, ts[i].data,
                                 qai_row_size(ts[i].type, ts[i].ne[0]) * (size_t)ts[i].ne[1]);
    if (!st) st = qai_gguf_writer_write(w, out_path);
done:
    qai_gguf_writer_free(w);
    if (ts)
        for (size_t i = 0; i < n_tensors; i++) {
            qai_free(ts[i].name);
            qai_aligned_free(ts[i].data);
        }
    qai_free(ts);
    return st;
}
