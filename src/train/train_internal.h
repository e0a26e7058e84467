/* Internal: the trainer's state, shared by trainer.c (model, forward,
 * backward), optim.c (AdamW, schedule, clipping) and ckpt.c (checkpoints,
 * GGUF export). */
#ifndef QAI_TRAIN_INTERNAL_H
#define QAI_TRAIN_INTERNAL_H

#include "qai/data.h"
#include "qai/tokenizer.h"
#include "qai/train.h"

/* Tensors of one layer, in descriptor order. */
enum { P_ATTN_NORM, P_WQ, P_WK, P_WV, P_WO, P_FFN_NORM, P_W1, P_W3, P_W2, P_PER_LAYER };

typedef struct {
    char name[64];
    int64_t ne[2]; /* columns (inputs), rows (outputs); ne[1] = 1 for vectors */
    size_t off;    /* into params/grads/m/v, in floats */
    bool decay;    /* AdamW weight decay applies (2-D weights) */
    bool alias;    /* the tied output head: shares token_embd, owns no storage */
} qai_param_desc;

typedef struct {
    float *res, *rstd1, *xn1, *q, *k, *v, *probs, *o, *res_mid, *rstd2, *xn2, *g, *u, *h;
} layer_acts;

struct qai_trainer {
    qai_train_config cfg; /* strings point into owned copies below */
    char *owned[7];
    int D, L, H, G, S, F, V, T, B, N; /* contrastive: B sequences × T tokens of activations per forward pass */
    int rows;                         /* rows of the forward pass running (N for lm) */
    int ctx_len;                      /* llama.context_length of the export */
    float rope_theta, eps;

    int n_desc;
    qai_param_desc *desc;
    size_t n_floats; /* stored parameters */
    float *params, *grads, *m, *v;

    layer_acts *acts;                    /* L layers */
    float *res_final, *rstd_f, *xn_f, *logits, *losses;
    float *dres, *dxn, *dq, *dk, *dv, *dO, *dg, *du, *dh, *dscratch;
    int32_t *batch_tokens, *inp, *tgt, *pos;
    float *freq;

    qai_pool *pool;
    void *gemm_work, *attn_work;

    qai_dataset *ds;
    bool random_data;
    qai_rng data_rng;

    /* contrastive objective */
    bool contrastive;
    qai_pairs *pairs;
    qai_tokenizer *tok;
    float *emb, *demb; /* (2·batch, D): pooled queries then positives, and their gradients */
    float last_acc;

    int step;
    uint64_t tokens_seen;
    double elapsed_s;
    float last_loss, last_norm, last_lr;
    double last_tok_s;
};

/* qai_train_config_load on text in memory (name for messages). */
qai_status qai_train_config_parse(const char *text, size_t n, const char *name, qai_train_config *c);
/* The pointer of tensor i in a float array laid out like params. */
float *qai_trainer_ptr(const qai_trainer *t, float *base, int i);
/* Fills B×(T+1) tokens for the next micro-batch from the data stream rng. */
qai_status qai_trainer_next_batch(qai_trainer *t, qai_rng *rng, qai_split split, int32_t *tokens);
/* Global L2 norm of the gradients, summed in a fixed order. */
float qai_trainer_grad_norm(qai_trainer *t);
/* Learning rate at step s (0-based). */
float qai_trainer_lr(const qai_train_config *c, int s);
/* One AdamW update of every parameter with lr and gradient scale. */
void qai_trainer_adamw(qai_trainer *t, float lr, float grad_scale);

#endif
