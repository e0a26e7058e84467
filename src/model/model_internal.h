/* Internal layout of a loaded model and a context: weight pointers into the
 * GGUF mapping and the buffers of the forward pass. */
#ifndef QAI_MODEL_INTERNAL_H
#define QAI_MODEL_INTERNAL_H

#include "qai/model.h"

typedef struct {
    const void *data; /* into the mmap */
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

struct qai_model {
    qai_gguf *gguf;
    qai_model_info info;
    qai_tokenizer *tok;
    qai_weight tok_embd; /* (V, D) */
    const float *out_norm;
    qai_weight output; /* (V, D); == tok_embd when tied */
    const float *rope_freqs; /* optional per-pair frequency factors (n_rot/2) */
    qai_layer *layers;
};

struct qai_context {
    qai_model *m;
    qai_pool *pool;
    int n_ctx, n_batch, n_seq, n_threads;
    float *k_cache;           /* (L, n_seq, G*S, C): transposed, row e = element e of every position */
    float *v_cache;           /* (L, n_seq, C, G*S) */
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
};

size_t qai_weight_row_bytes(const qai_weight *w);

#endif
