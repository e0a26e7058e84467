/* Internal layout of a loaded model and a context: weight pointers into the
 * GGUF mapping and the buffers of the forward pass. */
#ifndef QAI_MODEL_INTERNAL_H
#define QAI_MODEL_INTERNAL_H

#include "qai/model.h"

/* A weight matrix: in place in the GGUF mapping, or (matmul weights of
 * llama/qwen2/bert models, unless QAI_NO_REPACK=1) a copy repacked at load
 * into a layout of the active kernels (type QAI_TYPE_*_R16, see
 * src/tensor/quant.h) — such a copy only serves qai_matmul, never row
 * lookups. */
typedef struct {
    const void *data; /* into the mmap, or into the model's repack arena */
    qai_type type;
    int64_t rows, cols; /* rows = output features (ne[1]), cols = ne[0] */
} qai_weight;

typedef struct {
    const float *attn_norm; /* (D) */
    qai_weight wq, wk, wv, wo;
    const float *bq, *bk, *bv; /* qwen2 only: (H*S), (G*S), (G*S) */
    const float *ffn_norm;     /* (D) */
    qai_weight w_gate, w_up, w_down;
} qai_layer;

/* A BERT encoder layer (post-norm): x = LN1(x + Wo·attn(x) + bo);
 * x = LN2(x + W_down·gelu(W_up·x + b_up) + b_down). Dimensions (D) and (F). */
typedef struct {
    qai_weight wq, wk, wv, wo, w_up, w_down;
    const float *bq, *bk, *bv, *bo, *b_up, *b_down;
    const float *ln1_w, *ln1_b; /* attn_output_norm */
    const float *ln2_w, *ln2_b; /* layer_output_norm */
} qai_bert_layer;

struct qai_model {
    qai_gguf *gguf;
    qai_model_info info;
    qai_tokenizer *tok;
    qai_weight tok_embd; /* (V, D) */
    const float *out_norm;
    qai_weight output; /* (V, D); == tok_embd when tied */
    const float *rope_freqs; /* optional per-pair frequency factors (n_rot/2) */
    qai_layer *layers;
    /* bert */
    qai_weight pos_embd;  /* (n_ctx_train, D) */
    qai_weight type_embd; /* (n_token_types, D); row 0 is added to every token */
    const float *embd_norm_w, *embd_norm_b;
    qai_bert_layer *bert_layers;
    uint8_t *repack_arena; /* every repacked weight's data (qai_alloc_huge), or NULL */
    size_t repack_arena_size;
};

struct qai_context {
    qai_model *m;
    qai_pool *pool;
    int n_ctx, n_batch, n_seq, n_threads;
    int kv_ctx;               /* n_ctx rounded up to QAI_KV_BLOCK: positions per (sequence, head) in k_cache */
    qai_type kv_type;         /* element type of k_cache and v_cache: QAI_TYPE_F16 or QAI_TYPE_F32 (encoders: F32) */
    void *k_cache;            /* (L, n_seq, G, kv_ctx/16, S, 16): blocked keys (attn.h) per layer, sequence and KV head */
    void *v_cache;            /* (L, n_seq, C, G*S) */
    int32_t *seq_block;       /* (n_seq) scratch of forward_chunk: the attention task block holding a sequence */
    int32_t *seq_len;         /* positions filled per sequence */
    int32_t *seq_len_next;    /* (n_seq) scratch of qai_decode's validation */
    int32_t *chunk_pos, *chunk_seq; /* (n_batch) the chunk being computed */
    int8_t *chunk_want;             /* (n_batch) */
    /* activations for up to n_batch tokens */
    float *x, *xn, *q, *k, *v, *att, *ffg, *ffu; /* (T, D) (T, D) (T, H*S) (T, G*S) (T, G*S) (T, H*S) (T, F) (T, F) */
    float *rope_cos, *rope_sin;                  /* (T, n_rot/2) */
    float *rope_freq;                            /* (n_rot/2) theta^(-2k/n_rot) / rope_freqs[k] */
    float *scores;                               /* (n_threads, QAI_ATTN_ROWS, C) */
    float *xout;                                 /* (T, D) rows whose logits are wanted */
    double *pool_sum;                            /* (D) while qai_embed runs: sum of final-norm rows of pool_seq */
    int pool_seq;
    float *logits;                               /* (n_logit_rows, V) */
    int n_logit_cap;
    int32_t *logit_row;                          /* batch row -> logits row or -1 */
    int logit_row_cap;
    int n_rows;                                  /* rows of the last batch */
    void *work;                                  /* matmul workspace */
    size_t work_size;
    /* encoders: per head, the keys of the chunk's texts blocked (attn.h) in
     * k_cache, each text starting on a block: (H, kv_ctx/16, S, 16) with
     * kv_ctx = 2 * n_batch rounded up; the texts of a chunk */
    int32_t *seq_off; /* (n_batch + 1) first row of each text in the chunk, then the end */
    int32_t *key_off; /* (n_batch + 1) first key position of each text in the blocked keys (multiples of 16) */
};

/* bert.c */
qai_status qai_bert_load(qai_model *m);
qai_status qai_bert_context_new(qai_model *m, const qai_context_params *p, qai_context **out);
qai_status qai_bert_embed_batch(qai_context *c, int n_texts, const int32_t *const *tokens, const int *n_tokens,
                                const qai_embed_params *p, float *out);
uint64_t qai_bert_weight_bytes(const qai_model *m);

size_t qai_weight_row_bytes(const qai_weight *w);

/* model.c: metadata and tensor lookups with the checks every loader wants
 * (shapes: ne0 = row length, ne1 = rows; vectors must be f32). */
qai_status qai_model_int_key(const qai_gguf *g, const char *arch, const char *suffix, int64_t *out, bool required,
                             int64_t dflt);
qai_status qai_model_float_key(const qai_gguf *g, const char *arch, const char *suffix, float *out, float dflt);
qai_status qai_model_vector(const qai_gguf *g, const char *name, int64_t n, bool optional, const float **out);
qai_status qai_model_matrix(const qai_gguf *g, const char *name, int64_t cols, int64_t rows, bool optional,
                            qai_weight *w);

#endif
