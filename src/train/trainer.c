/*
 * The training model: one descriptor table for every parameter (which also
 * lays out gradients, AdamW moments, checkpoints and the GGUF export), the
 * fp32 forward and backward passes over a micro-batch, and the optimizer step.
 *
 * Layout of a layer, as src/model runs it (x is the residual stream, N×D):
 *   xn1 = rmsnorm(x)·w_attn_norm;  q,k,v = xn1·Wqᵀ, xn1·Wkᵀ, xn1·Wvᵀ;  rope(q,k)
 *   o = causal_attention(q,k,v);   x_mid = x + o·Woᵀ
 *   xn2 = rmsnorm(x_mid)·w_ffn_norm;  h = silu(xn2·W1ᵀ) ∘ (xn2·W3ᵀ);  x' = x_mid + h·W2ᵀ
 * then logits = rmsnorm(x_L)·w_out_norm·Woutᵀ and cross-entropy against the next token
 * (lm), or (contrastive) the final-norm output mean-pooled per sequence into
 * an embedding scored by InfoNCE (contrastive.c), the output head unused.
 *
 * Contrastive micro-batches go through the model in pieces of micro_batch
 * sequences (queries at their length, positives at theirs), twice: once
 * without activations kept to get every embedding and the loss's gradient
 * with respect to each, then again piece by piece with backward from those
 * cached gradients (GradCache, Gao et al. 2021): the loss sees all
 * batch − 1 negatives while memory holds one piece.
 *
 * What it deliberately does not do: activation recomputation (every
 * activation of a micro-batch is kept; memory is about
 * L·N·(6D + 3F + 2·H·S) + L·B·H·T² floats).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "qai/gguf.h"
#include "qai/tensor.h"
#include "train/contrastive.h"
#include "train/ops.h"
#include "train/train_internal.h"

float *qai_trainer_ptr(const qai_trainer *t, float *base, int i) {
    const qai_param_desc *d = &t->desc[i];
    return base + (d->alias ? t->desc[0].off : d->off);
}

static float *P(const qai_trainer *t, int i) { return qai_trainer_ptr(t, t->params, i); }
static float *Gr(const qai_trainer *t, int i) { return qai_trainer_ptr(t, t->grads, i); }
static int LI(int l, int j) { return 1 + l * P_PER_LAYER + j; } /* descriptor index of layer l's tensor j */

/* ---- the descriptor table ---- */

static void add_desc(qai_trainer *t, const char *name, int64_t cols, int64_t rows, bool alias) {
    qai_param_desc *d = &t->desc[t->n_desc++];
    snprintf(d->name, sizeof d->name, "%s", name);
    d->ne[0] = cols;
    d->ne[1] = rows;
    d->decay = rows > 1;
    d->alias = alias;
    d->off = alias ? 0 : t->n_floats;
    if (!alias) t->n_floats += (size_t)((cols * rows + 15) / 16 * 16); /* 64-byte aligned tensors */
}

static void build_desc(qai_trainer *t) {
    const int D = t->D, HS = t->H * t->S, GS = t->G * t->S, F = t->F, V = t->V;
    add_desc(t, "token_embd.weight", D, V, false);
    char name[64];
    for (int l = 0; l < t->L; l++) {
#define N(s) (snprintf(name, sizeof name, "blk.%d." s, l), name)
        add_desc(t, N("attn_norm.weight"), D, 1, false);
        add_desc(t, N("attn_q.weight"), D, HS, false);
        add_desc(t, N("attn_k.weight"), D, GS, false);
        add_desc(t, N("attn_v.weight"), D, GS, false);
        add_desc(t, N("attn_output.weight"), HS, D, false);
        add_desc(t, N("ffn_norm.weight"), D, 1, false);
        add_desc(t, N("ffn_gate.weight"), D, F, false);
        add_desc(t, N("ffn_up.weight"), D, F, false);
        add_desc(t, N("ffn_down.weight"), F, D, false);
#undef N
    }
    add_desc(t, "output_norm.weight", D, 1, false);
    add_desc(t, "output.weight", D, V, t->cfg.tie_embeddings);
}

int qai_trainer_n_tensors(const qai_trainer *t) { return t->n_desc; }

const char *qai_trainer_tensor(const qai_trainer *t, int i, int64_t ne[2], float **param, float **grad) {
    if (i < 0 || i >= t->n_desc) return NULL;
    if (ne) ne[0] = t->desc[i].ne[0], ne[1] = t->desc[i].ne[1];
    if (param) *param = P(t, i);
    if (grad) *grad = Gr(t, i);
    return t->desc[i].name;
}

uint64_t qai_trainer_n_params(const qai_trainer *t) {
    uint64_t n = 0;
    for (int i = 0; i < t->n_desc; i++)
        if (!t->desc[i].alias) n += (uint64_t)(t->desc[i].ne[0] * t->desc[i].ne[1]);
    return n;
}

double qai_trainer_flops_per_token(const qai_trainer *t) {
    /* 6 FLOPs per weight of every matmul (forward 2, backward 4), the
     * embedding lookup excluded; attention: QKᵀ and P·V are 2·T·S FLOPs each
     * per head and token forward, twice that backward, counted over the full
     * T×T square (the usual 6N + 12·L·T·D convention), although the blocks
     * the causal mask zeroes are skipped (ops.c). */
    double mm = 0;
    for (int i = 0; i < t->n_desc; i++)
        if (t->desc[i].ne[1] > 1 && i != 0) mm += (double)t->desc[i].ne[0] * t->desc[i].ne[1];
    if (t->cfg.tie_embeddings) mm += (double)t->D * t->V;
    if (t->contrastive) { /* no output head; GradCache runs the forward twice (8 FLOPs per weight) */
        mm -= (double)t->D * t->V;
        return 8.0 * mm + (double)t->L * t->H * (4.0 * t->T * t->S) * 4.0;
    }
    double attn = (double)t->L * t->H * (4.0 * t->T * t->S) * 3.0;
    return 6.0 * mm + attn;
}

/* ---- initialization ---- */

/* GPT-2 / llama2.c style: normal(0, 0.02); the two projections into the
 * residual stream scaled by 1/sqrt(2L); norms 1. Drawn in descriptor order
 * from one generator, so the seed fixes every weight. */
static void init_weights(qai_trainer *t, uint64_t seed) {
    qai_rng r;
    qai_rng_seed(&r, seed ^ 0x5eed1a7e11ull);
    const float resid = 0.02f / sqrtf(2.0f * t->L);
    for (int i = 0; i < t->n_desc; i++) {
        const qai_param_desc *d = &t->desc[i];
        if (d->alias) continue;
        float *p = P(t, i);
        long n = (long)(d->ne[0] * d->ne[1]);
        if (d->ne[1] == 1) {
            for (long j = 0; j < n; j++) p[j] = 1.0f;
            continue;
        }
        bool proj = strstr(d->name, "attn_output") || strstr(d->name, "ffn_down");
        float std = proj ? resid : 0.02f;
        for (long j = 0; j < n; j++) p[j] = qai_rng_normal(&r) * std;
    }
}

/* Loads weights from a GGUF of the same shape (any tensor type). */
static qai_status init_from_gguf(qai_trainer *t, const char *path) {
    qai_gguf *g;
    qai_status st = qai_gguf_open(path, &g);
    if (st) return st;
    for (int i = 0; i < t->n_desc && st == QAI_OK; i++) {
        const qai_param_desc *d = &t->desc[i];
        if (d->alias) continue;
        const qai_gguf_tensor *gt = qai_gguf_find_tensor(g, d->name);
        if (!gt) {
            st = qai_error(QAI_ERR_FORMAT, "init '%s': tensor '%s' is missing", path, d->name);
            break;
        }
        if (gt->ne[0] != d->ne[0] || (gt->n_dims > 1 ? gt->ne[1] : 1) != d->ne[1]) {
            st = qai_error(QAI_ERR_FORMAT, "init '%s': tensor '%s' is %lldx%lld, the config needs %lldx%lld", path,
                           d->name, (long long)gt->ne[0], (long long)(gt->n_dims > 1 ? gt->ne[1] : 1),
                           (long long)d->ne[0], (long long)d->ne[1]);
            break;
        }
        size_t rb = qai_row_size(gt->type, gt->ne[0]);
        for (int64_t r = 0; r < d->ne[1] && st == QAI_OK; r++)
            st = qai_dequantize_row(gt->type, (const uint8_t *)gt->data + (size_t)r * rb, P(t, i) + r * d->ne[0],
                                    d->ne[0]);
    }
    qai_gguf_close(g);
    return st;
}

/* ---- construction ---- */

static float *falloc(size_t n, bool *ok) {
    float *p = qai_aligned_alloc((n ? n : 1) * sizeof(float));
    if (!p) *ok = false;
    else memset(p, 0, (n ? n : 1) * sizeof(float));
    return p;
}

static char *own(qai_trainer *t, int slot, const char *s) {
    if (!s) return NULL;
    t->owned[slot] = qai_strdup(s);
    return t->owned[slot];
}

/* Reads shape keys of a GGUF into the config (for --init). */
static qai_status shape_from_gguf(qai_train_config *c, const char *path, int *ctx) {
    qai_gguf *g;
    qai_status st = qai_gguf_open(path, &g);
    if (st) return st;
    const char *arch = NULL;
    int64_t v;
    if (qai_gguf_get_str(g, "general.architecture", &arch) || strcmp(arch, "llama")) {
        qai_gguf_close(g);
        return qai_error(QAI_ERR_UNSUPPORTED, "init '%s': only the llama architecture can be trained", path);
    }
#define GET(key, field)                                                                                                \
    if (!st && (st = qai_gguf_get_int(g, "llama." key, &v)) == QAI_OK) c->field = (int)v;
    GET("embedding_length", dim)
    GET("block_count", layers)
    GET("attention.head_count", heads)
    GET("feed_forward_length", ffn)
#undef GET
    c->kv_heads = c->heads;
    if (!st && qai_gguf_get_int(g, "llama.attention.head_count_kv", &v) == QAI_OK) c->kv_heads = (int)v;
    const qai_gguf_tensor *emb = st ? NULL : qai_gguf_find_tensor(g, "token_embd.weight");
    if (!st && !emb) st = qai_error(QAI_ERR_FORMAT, "init '%s': no token_embd.weight", path);
    if (!st) c->vocab = (int)emb->ne[1];
    if (!st) c->tie_embeddings = qai_gguf_find_tensor(g, "output.weight") == NULL;
    if (!st && qai_gguf_get_int(g, "llama.context_length", &v) == QAI_OK && v > 0 && v < (1 << 20)) *ctx = (int)v;
    double f;
    if (!st && qai_gguf_get_float(g, "llama.rope.freq_base", &f) == QAI_OK) c->rope_theta = (float)f;
    if (!st && qai_gguf_get_float(g, "llama.attention.layer_norm_rms_epsilon", &f) == QAI_OK) c->norm_eps = (float)f;
    qai_gguf_close(g);
    return st;
}

qai_status qai_trainer_new(const qai_train_config *cfg, qai_trainer **out) {
    *out = NULL;
    qai_train_config c = *cfg;
    qai_status st;
    int init_ctx = 0;
    if (c.init && (st = shape_from_gguf(&c, c.init, &init_ctx))) return st;
    /* the embedding model tokenizes with its base's tokenizer, also after a resume (where init is gone) */
    if (c.objective == QAI_OBJECTIVE_CONTRASTIVE && !c.tokenizer) c.tokenizer = c.init;
    if ((st = qai_train_config_validate(&c))) return st;
    if (c.kv_heads == 0) c.kv_heads = c.heads;
    if (c.matmul == QAI_MATMUL_BF16 && !qai_kernels_bf16())
        return qai_error(QAI_ERR_UNSUPPORTED, "--matmul bf16 needs a CPU with AVX512_BF16; this one has %s "
                         "(use --matmul fp32)", qai_kernels_describe());

    qai_trainer *t = qai_calloc(1, sizeof *t);
    if (!t) return QAI_ERR_NOMEM;
    t->cfg = c;
    t->cfg.init = own(t, 0, c.init);
    t->cfg.data = own(t, 1, c.data);
    t->cfg.tokenizer = own(t, 2, c.tokenizer);
    t->cfg.out = own(t, 3, c.out);
    t->cfg.ckpt_dir = own(t, 4, c.ckpt_dir);
    t->cfg.pairs = own(t, 5, c.pairs);
    t->cfg.pairs_from = own(t, 6, c.pairs_from);
    t->contrastive = c.objective == QAI_OBJECTIVE_CONTRASTIVE;
    t->D = c.dim, t->L = c.layers, t->H = c.heads, t->G = c.kv_heads, t->S = c.dim / c.heads, t->F = c.ffn;
    t->V = c.vocab, t->T = c.seq, t->B = c.batch, t->N = c.seq * c.batch;
    if (t->contrastive) { /* activations for one piece: micro_batch sequences of the longest length */
        t->T = c.seq > c.query_seq ? c.seq : c.query_seq;
        t->B = c.micro_batch > 0 ? c.micro_batch : 16;
        t->N = t->T * t->B;
    }
    t->ctx_len = t->contrastive && init_ctx > t->T ? init_ctx : t->T;
    t->rope_theta = c.rope_theta, t->eps = c.norm_eps;

    /* data */
    if (t->contrastive) {
        if (!c.tokenizer) {
            st = qai_error(QAI_ERR_ARG, "the contrastive objective needs a tokenizer: --init BASE.gguf or "
                           "--tokenizer TOK.gguf");
            goto fail;
        }
        qai_gguf *tg;
        if ((st = qai_gguf_open(c.tokenizer, &tg))) goto fail;
        st = qai_tokenizer_from_gguf(tg, &t->tok);
        /* after a resume init is gone: the export's context comes from the base the tokenizer is read from */
        int64_t v;
        if (!st && !c.init && qai_gguf_get_int(tg, "llama.context_length", &v) == QAI_OK && v > t->T && v < (1 << 20))
            t->ctx_len = (int)v;
        qai_gguf_close(tg);
        if (st) goto fail;
        if (qai_tokenizer_n_vocab(t->tok) != t->V) {
            st = qai_error(QAI_ERR_ARG, "tokenizer '%s' has %d tokens but the model's vocabulary is %d", c.tokenizer,
                           qai_tokenizer_n_vocab(t->tok), t->V);
            goto fail;
        }
        if ((st = qai_pairs_load(c.pairs, c.val_share, &t->pairs))) goto fail;
        if (qai_pairs_n_units(t->pairs, 0) < c.batch) {
            st = qai_error(QAI_ERR_ARG, "pairs '%s': %d documents/pairs for training, fewer than a batch of %d",
                           c.pairs, qai_pairs_n_units(t->pairs, 0), c.batch);
            goto fail;
        }
    } else if (!c.data || !strcmp(c.data, "random")) {
        t->random_data = true;
    } else {
        if ((st = qai_dataset_open(c.data, &t->ds))) goto fail;
        if (qai_dataset_n_vocab(t->ds) != t->V) {
            st = qai_error(QAI_ERR_ARG, "the dataset '%s' has a vocabulary of %d tokens but the model has %d; "
                           "set --vocab %d", c.data, qai_dataset_n_vocab(t->ds), t->V, qai_dataset_n_vocab(t->ds));
            goto fail;
        }
        if (qai_dataset_n_tokens(t->ds, QAI_SPLIT_TRAIN) < (uint64_t)t->T + 1) {
            st = qai_error(QAI_ERR_ARG, "the dataset '%s' has %llu training tokens, fewer than one sequence (%d)",
                           c.data, (unsigned long long)qai_dataset_n_tokens(t->ds, QAI_SPLIT_TRAIN), t->T + 1);
            goto fail;
        }
    }
    qai_rng_seed(&t->data_rng, c.seed ^ 0xda7a5eedull);

    /* parameters */
    t->desc = qai_calloc((size_t)(3 + t->L * P_PER_LAYER), sizeof *t->desc);
    if (!t->desc) {
        st = QAI_ERR_NOMEM;
        goto fail;
    }
    build_desc(t);
    bool ok = true;
    t->params = falloc(t->n_floats, &ok);
    t->grads = falloc(t->n_floats, &ok);
    t->m = falloc(t->n_floats, &ok);
    t->v = falloc(t->n_floats, &ok);

    /* activations */
    const size_t N = (size_t)t->N, D = t->D, HS = (size_t)t->H * t->S, GS = (size_t)t->G * t->S, F = t->F;
    const size_t TT = (size_t)t->B * t->H * t->T * t->T;
    t->acts = qai_calloc((size_t)t->L, sizeof *t->acts);
    if (!t->acts) ok = false;
    for (int l = 0; ok && l < t->L; l++) {
        layer_acts *a = &t->acts[l];
        a->res = falloc(N * D, &ok), a->rstd1 = falloc(N, &ok), a->xn1 = falloc(N * D, &ok);
        a->q = falloc(N * HS, &ok), a->k = falloc(N * GS, &ok), a->v = falloc(N * GS, &ok);
        a->probs = falloc(TT, &ok), a->o = falloc(N * HS, &ok), a->res_mid = falloc(N * D, &ok);
        a->rstd2 = falloc(N, &ok), a->xn2 = falloc(N * D, &ok);
        a->g = falloc(N * F, &ok), a->u = falloc(N * F, &ok), a->h = falloc(N * F, &ok);
    }
    t->res_final = falloc(N * D, &ok), t->rstd_f = falloc(N, &ok), t->xn_f = falloc(N * D, &ok);
    if (!t->contrastive) t->logits = falloc(N * (size_t)t->V, &ok), t->losses = falloc(N, &ok);
    else t->emb = falloc(3 * (size_t)c.batch * D, &ok), t->demb = falloc(3 * (size_t)c.batch * D, &ok); /* q, pos, neg */
    t->dres = falloc(N * D, &ok), t->dxn = falloc(N * D, &ok);
    t->dq = falloc(N * HS, &ok), t->dk = falloc(N * GS, &ok), t->dv = falloc(N * GS, &ok), t->dO = falloc(N * HS, &ok);
    t->dg = falloc(N * F, &ok), t->du = falloc(N * F, &ok), t->dh = falloc(N * F, &ok);
    t->freq = falloc((size_t)t->S / 2, &ok);
    t->batch_tokens = qai_malloc((size_t)t->B * (t->T + 1) * sizeof(int32_t));
    t->inp = qai_malloc(N * sizeof(int32_t)), t->tgt = qai_malloc(N * sizeof(int32_t));
    t->pos = qai_malloc(N * sizeof(int32_t));
    if (!t->batch_tokens || !t->inp || !t->tgt || !t->pos) ok = false;
    int nth = c.threads > 0 ? c.threads : qai_cpu_count();
    t->pool = qai_pool_new(nth);
    t->gemm_work = qai_aligned_alloc(qai_sgemm_work_size(nth));
    t->attn_work = qai_aligned_alloc(qai_attention_work_size(nth));
    size_t scratch = (size_t)nth * t->T * t->T;
    t->dscratch = falloc(scratch, &ok);
    if (!t->pool || !t->gemm_work || !t->attn_work) ok = false;
    if (!ok) {
        st = qai_error(QAI_ERR_NOMEM, "not enough memory for the model and activations (batch %d × seq %d); "
                       "lower --batch or --seq", t->B, t->T);
        goto fail;
    }
    for (int i = 0; i < t->S / 2; i++) t->freq[i] = powf(t->rope_theta, -2.0f * i / t->S);

    if (c.init) {
        if ((st = init_from_gguf(t, c.init))) goto fail;
    } else {
        init_weights(t, c.seed);
    }
    *out = t;
    return QAI_OK;
fail:
    qai_trainer_free(t);
    return st;
}

void qai_trainer_free(qai_trainer *t) {
    if (!t) return;
    if (t->acts)
        for (int l = 0; l < t->L; l++) {
            layer_acts *a = &t->acts[l];
            float *bufs[] = {a->res, a->rstd1, a->xn1, a->q, a->k, a->v, a->probs,
                             a->o,   a->res_mid, a->rstd2, a->xn2, a->g, a->u, a->h};
            for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) qai_aligned_free(bufs[i]);
        }
    float *bufs[] = {t->params, t->grads, t->m, t->v, t->res_final, t->rstd_f, t->xn_f, t->logits, t->losses,
                     t->dres, t->dxn, t->dq, t->dk, t->dv, t->dO, t->dg, t->du, t->dh, t->dscratch, t->freq,
                     t->emb, t->demb};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) qai_aligned_free(bufs[i]);
    qai_aligned_free(t->gemm_work);
    qai_aligned_free(t->attn_work);
    qai_free(t->acts);
    qai_free(t->desc);
    qai_free(t->batch_tokens);
    qai_free(t->inp);
    qai_free(t->tgt);
    qai_free(t->pos);
    qai_pool_free(t->pool);
    qai_dataset_close(t->ds);
    qai_pairs_free(t->pairs);
    qai_tokenizer_free(t->tok);
    for (int i = 0; i < 7; i++) qai_free(t->owned[i]);
    qai_free(t);
}

const qai_train_config *qai_trainer_config(const qai_trainer *t) { return &t->cfg; }
const float *qai_trainer_logits(const qai_trainer *t) { return t->logits; }

void qai_trainer_zero_grad(qai_trainer *t) { memset(t->grads, 0, t->n_floats * sizeof(float)); }

/* ---- data ---- */

qai_status qai_trainer_next_batch(qai_trainer *t, qai_rng *rng, qai_split split, int32_t *tokens) {
    const int W = t->T + 1;
    if (t->random_data) {
        for (long i = 0; i < (long)t->B * W; i++) tokens[i] = (int32_t)(qai_rng_u64(rng) % (uint64_t)t->V);
        return QAI_OK;
    }
    if (split == QAI_SPLIT_VAL && qai_dataset_n_tokens(t->ds, QAI_SPLIT_VAL) < (uint64_t)W) split = QAI_SPLIT_TRAIN;
    uint64_t n = qai_dataset_n_tokens(t->ds, split), span = n - (uint64_t)W + 1;
    for (int b = 0; b < t->B; b++) {
        uint64_t off = qai_rng_u64(rng) % span;
        qai_status st = qai_dataset_read(t->ds, split, off, (size_t)W, tokens + (long)b * W);
        if (st) return st;
    }
    return QAI_OK;
}

/* ---- forward and backward ---- */

/* The GEMM of the linear layers: fp32, or bf16 inputs with fp32 sums (matmul:
 * bf16). Both round nothing they write: outputs and dW stay fp32. */
typedef void (*gemm_fn)(qai_pool *, bool, bool, int, int, int, const float *, int, const float *, int, float *, int,
                        bool, void *);
static gemm_fn linear_gemm(const qai_trainer *t) { return t->cfg.matmul == QAI_MATMUL_BF16 ? qai_sgemm_bf16 : qai_sgemm; }

static void linear(qai_trainer *t, float *y, const float *x, const float *w, int n_out, int n_in, bool acc) {
    linear_gemm(t)(t->pool, false, true, t->rows, n_out, n_in, x, n_in, w, n_in, y, n_out, acc, t->gemm_work);
}
/* dx (+)= dy·W;  dW += dyᵀ·x */
static void linear_backward(qai_trainer *t, float *dx, float *dw, const float *dy, const float *x, const float *w,
                            int n_out, int n_in, bool acc_dx) {
    gemm_fn gemm = linear_gemm(t);
    if (dx) gemm(t->pool, false, false, t->rows, n_in, n_out, dy, n_out, w, n_in, dx, n_in, acc_dx, t->gemm_work);
    gemm(t->pool, true, false, n_out, n_in, t->rows, dy, n_out, x, n_in, dw, n_in, true, t->gemm_work);
}

/* The model from t->inp / t->pos (B sequences × T tokens, B·T <= N) to the
 * final-norm output t->xn_f, keeping every activation for backward. */
static void model_forward(qai_trainer *t, int B, int T) {
    const int D = t->D, HS = t->H * t->S, GS = t->G * t->S, F = t->F, N = B * T;
    qai_pool *pool = t->pool;
    t->rows = N;
    qai_embed_forward(pool, t->acts[0].res, P(t, 0), t->inp, N, D);
    for (int l = 0; l < t->L; l++) {
        layer_acts *a = &t->acts[l];
        float *next = l + 1 < t->L ? t->acts[l + 1].res : t->res_final;
        qai_rmsnorm_forward(pool, a->xn1, a->rstd1, a->res, P(t, LI(l, P_ATTN_NORM)), N, D, t->eps);
        linear(t, a->q, a->xn1, P(t, LI(l, P_WQ)), HS, D, false);
        linear(t, a->k, a->xn1, P(t, LI(l, P_WK)), GS, D, false);
        linear(t, a->v, a->xn1, P(t, LI(l, P_WV)), GS, D, false);
        qai_rope(pool, a->q, t->pos, t->freq, N, t->H, t->S, false);
        qai_rope(pool, a->k, t->pos, t->freq, N, t->G, t->S, false);
        qai_attention_forward(pool, a->o, a->probs, a->q, a->k, a->v, B, T, t->H, t->G, t->S, t->attn_work);
        memcpy(a->res_mid, a->res, (size_t)N * D * sizeof(float));
        linear(t, a->res_mid, a->o, P(t, LI(l, P_WO)), D, HS, true);
        qai_rmsnorm_forward(pool, a->xn2, a->rstd2, a->res_mid, P(t, LI(l, P_FFN_NORM)), N, D, t->eps);
        linear(t, a->g, a->xn2, P(t, LI(l, P_W1)), F, D, false);
        linear(t, a->u, a->xn2, P(t, LI(l, P_W3)), F, D, false);
        qai_swiglu_forward(pool, a->h, a->g, a->u, (long)N * F);
        memcpy(next, a->res_mid, (size_t)N * D * sizeof(float));
        linear(t, next, a->h, P(t, LI(l, P_W2)), D, F, true);
    }
    qai_rmsnorm_forward(pool, t->xn_f, t->rstd_f, t->res_final, P(t, t->n_desc - 2), N, D, t->eps);
}

/* Backward of model_forward (same B, T, right after it) from t->dxn, the
 * gradient of the final-norm output; accumulates into every parameter's
 * gradient but the output head's. */
static void model_backward(qai_trainer *t, int B, int T) {
    const int D = t->D, HS = t->H * t->S, GS = t->G * t->S, F = t->F, N = B * T, i_onorm = t->n_desc - 2;
    qai_pool *pool = t->pool;
    t->rows = N;
    memset(t->dres, 0, (size_t)N * D * sizeof(float));
    qai_rmsnorm_backward(pool, t->dres, Gr(t, i_onorm), t->dxn, t->res_final, P(t, i_onorm), t->rstd_f, N, D);
    for (int l = t->L - 1; l >= 0; l--) {
        layer_acts *a = &t->acts[l];
        /* feed-forward */
        linear_backward(t, t->dh, Gr(t, LI(l, P_W2)), t->dres, a->h, P(t, LI(l, P_W2)), D, F, false);
        qai_swiglu_backward(pool, t->dg, t->du, t->dh, a->g, a->u, (long)N * F);
        linear_backward(t, t->dxn, Gr(t, LI(l, P_W1)), t->dg, a->xn2, P(t, LI(l, P_W1)), F, D, false);
        linear_backward(t, t->dxn, Gr(t, LI(l, P_W3)), t->du, a->xn2, P(t, LI(l, P_W3)), F, D, true);
        qai_rmsnorm_backward(pool, t->dres, Gr(t, LI(l, P_FFN_NORM)), t->dxn, a->res_mid, P(t, LI(l, P_FFN_NORM)),
                             a->rstd2, N, D);
        /* attention */
        linear_backward(t, t->dO, Gr(t, LI(l, P_WO)), t->dres, a->o, P(t, LI(l, P_WO)), D, HS, false);
        qai_attention_backward(pool, t->dq, t->dk, t->dv, t->dscratch, t->dO, a->probs, a->q, a->k, a->v, B, T,
                               t->H, t->G, t->S, t->attn_work);
        qai_rope(pool, t->dq, t->pos, t->freq, N, t->H, t->S, true);
        qai_rope(pool, t->dk, t->pos, t->freq, N, t->G, t->S, true);
        linear_backward(t, t->dxn, Gr(t, LI(l, P_WQ)), t->dq, a->xn1, P(t, LI(l, P_WQ)), HS, D, false);
        linear_backward(t, t->dxn, Gr(t, LI(l, P_WK)), t->dk, a->xn1, P(t, LI(l, P_WK)), GS, D, true);
        linear_backward(t, t->dxn, Gr(t, LI(l, P_WV)), t->dv, a->xn1, P(t, LI(l, P_WV)), GS, D, true);
        qai_rmsnorm_backward(pool, t->dres, Gr(t, LI(l, P_ATTN_NORM)), t->dxn, a->res, P(t, LI(l, P_ATTN_NORM)),
                             a->rstd1, N, D);
    }
    qai_embed_backward(pool, Gr(t, 0), t->dres, t->inp, N, D);
}

qai_status qai_trainer_forward_backward(qai_trainer *t, const int32_t *tokens, bool backward, float scale,
                                        float *loss) {
    if (t->contrastive)
        return qai_error(QAI_ERR_ARG, "this trainer has the contrastive objective: use qai_trainer_contrastive");
    const int D = t->D, V = t->V, N = t->N, T = t->T;
    qai_pool *pool = t->pool;
    for (int b = 0; b < t->B; b++)
        for (int i = 0; i < T; i++) {
            int32_t in = tokens[(long)b * (T + 1) + i], tg = tokens[(long)b * (T + 1) + i + 1];
            if (in < 0 || in >= V || tg < 0 || tg >= V)
                return qai_error(QAI_ERR_RANGE, "token id %d is outside the vocabulary (%d)", in < 0 || in >= V ? in : tg,
                                 V);
            t->inp[b * T + i] = in;
            t->tgt[b * T + i] = tg;
            t->pos[b * T + i] = i;
        }

    model_forward(t, t->B, T);
    const int i_out = t->n_desc - 1;
    linear(t, t->logits, t->xn_f, P(t, i_out), V, D, false);
    qai_cross_entropy(pool, t->logits, t->losses, t->tgt, N, V, backward, scale);
    double sum = 0;
    for (int i = 0; i < N; i++) sum += t->losses[i];
    *loss = (float)(sum / N);
    if (!backward) return QAI_OK;

    /* backward: t->logits now holds dlogits */
    linear_backward(t, t->dxn, Gr(t, i_out), t->logits, t->xn_f, P(t, i_out), V, D, false);
    model_backward(t, t->B, T);
    return QAI_OK;
}

/* ---- the contrastive objective ---- */

/* Loads sequences [s0, s0 + n) of one side of the batch (tokens: rows of
 * stride Tpad, lengths len) into t->inp/t->pos, padded to the longest of
 * them; returns that length. */
static int load_piece(qai_trainer *t, const int32_t *tokens, const int *len, int Tpad, int s0, int n) {
    int T = 1;
    for (int b = 0; b < n; b++) T = len[s0 + b] > T ? len[s0 + b] : T;
    for (int b = 0; b < n; b++)
        for (int i = 0; i < T; i++) {
            /* padding repeats token 0 of the row; causal attention keeps it out of the real rows */
            t->inp[b * T + i] = i < len[s0 + b] ? tokens[(size_t)(s0 + b) * Tpad + i] : tokens[(size_t)(s0 + b) * Tpad];
            t->pos[b * T + i] = i;
        }
    return T;
}

/* The sequences of one side of the batch: 0 queries, 1 positives, 2 hard negatives. */
static int side_count(const qai_pair_batch *pb, int side) { return side == 2 ? pb->Bn : pb->B; }
static const int32_t *side_tokens(const qai_pair_batch *pb, int side) { return side == 2 ? pb->n : side ? pb->d : pb->q; }
static const int *side_len(const qai_pair_batch *pb, int side) { return side == 2 ? pb->nlen : side ? pb->dlen : pb->qlen; }
static int side_pad(const qai_pair_batch *pb, int side) { return side ? pb->Td : pb->Tq; }

/* Runs the forward pass over piece [s0, s0 + n) of one side of the batch,
 * n = min(t->B, count - s0); *n_out, *len_out and the padded length returned
 * describe it. */
static int piece_forward(qai_trainer *t, const qai_pair_batch *pb, int side, int s0, int *n_out, const int **len_out) {
    const int cnt = side_count(pb, side), n = cnt - s0 < t->B ? cnt - s0 : t->B;
    const int *len = side_len(pb, side);
    int T = load_piece(t, side_tokens(pb, side), len, side_pad(pb, side), s0, n);
    model_forward(t, n, T);
    *n_out = n;
    *len_out = len + s0;
    return T;
}

qai_status qai_trainer_contrastive(qai_trainer *t, const qai_pair_batch *pb, bool backward, float scale, float *loss,
                                   float *acc) {
    if (!t->contrastive) return qai_error(QAI_ERR_ARG, "this trainer has the lm objective, not contrastive");
    const int Bp = pb->B, D = t->D;
    if (Bp < 2 || Bp > t->cfg.batch || pb->Tq < 1 || pb->Tq > t->cfg.query_seq || pb->Td < 1 || pb->Td > t->cfg.seq ||
        pb->Bn < 0 || pb->Bn > Bp || (pb->Bn && (!pb->n || !pb->nlen)))
        return qai_error(QAI_ERR_ARG, "contrastive batch of %d pairs × (%d, %d) tokens and %d negatives does not fit "
                         "the trainer (batch %d, query-seq %d, seq %d; at most one negative per pair)", Bp, pb->Tq,
                         pb->Td, pb->Bn, t->cfg.batch, t->cfg.query_seq, t->cfg.seq);
    static const char *const side_name[3] = {"query", "positive", "negative"};
    for (int side = 0; side < 3; side++) {
        const int Tp = side_pad(pb, side);
        const int32_t *tok = side_tokens(pb, side);
        const int *len = side_len(pb, side);
        for (int b = 0; b < side_count(pb, side); b++) {
            if (len[b] < 1 || len[b] > Tp)
                return qai_error(QAI_ERR_RANGE, "contrastive batch: %s %d has length %d (1..%d)", side_name[side], b,
                                 len[b], Tp);
            for (int i = 0; i < len[b]; i++)
                if (tok[(size_t)b * Tp + i] < 0 || tok[(size_t)b * Tp + i] >= t->V)
                    return qai_error(QAI_ERR_RANGE, "token id %d is outside the vocabulary (%d)",
                                     tok[(size_t)b * Tp + i], t->V);
        }
    }
    /* pass 1: every embedding, in pieces of at most t->B sequences; the
     * negatives' rows follow the positives' (the documents of the loss) */
    for (int side = 0; side < 3; side++)
        for (int s0 = 0; s0 < side_count(pb, side); s0 += t->B) {
            int n;
            const int *len;
            int T = piece_forward(t, pb, side, s0, &n, &len);
            qai_mean_pool_forward(t->emb + ((size_t)side * Bp + s0) * D, t->xn_f, len, n, T, D);
        }
    float *demb = backward ? t->demb : NULL;
    float l = qai_infonce_neg(t->emb, t->emb + (size_t)Bp * D, Bp, Bp + pb->Bn, D, t->cfg.temperature, acc, demb,
                              demb ? demb + (size_t)Bp * D : NULL, scale);
    if (isnan(l)) return QAI_ERR_NOMEM;
    *loss = l;
    if (!backward) return QAI_OK;
    /* pass 2: each piece again, backward from its cached embedding gradients */
    for (int side = 0; side < 3; side++)
        for (int s0 = 0; s0 < side_count(pb, side); s0 += t->B) {
            int n;
            const int *len;
            int T = piece_forward(t, pb, side, s0, &n, &len);
            qai_mean_pool_backward(t->dxn, t->demb + ((size_t)side * Bp + s0) * D, len, n, T, D);
            model_backward(t, n, T);
        }
    return QAI_OK;
}

const float *qai_trainer_embeddings(const qai_trainer *t) { return t->emb; }

qai_status qai_trainer_sample_pairs(qai_trainer *t, qai_rng *rng, int split, int B, qai_pair_batch *out) {
    if (!t->contrastive) return qai_error(QAI_ERR_ARG, "this trainer has no pairs (objective lm)");
    return qai_pairs_sample(t->pairs, t->tok, rng, split, B, t->cfg.query_seq, t->cfg.seq, out);
}

/* ---- steps ---- */

/* One optimizer step; micro-batches come from the data stream, or all from
 * `given` (B×(T+1) tokens) when not NULL. */
static int step_impl(qai_trainer *t, const int32_t *given) {
    uint64_t t0 = qai_time_ns();
    if (t->contrastive && given) {
        qai_error(QAI_ERR_ARG, "a contrastive trainer takes pairs, not token windows (qai_trainer_step)");
        return -1;
    }
    qai_trainer_zero_grad(t);
    const int accum = t->cfg.grad_accum;
    double loss_sum = 0, acc_sum = 0;
    uint64_t n_tokens = (uint64_t)t->N * accum;
    if (t->contrastive) n_tokens = 0;
    for (int a = 0; a < accum && t->contrastive; a++) {
        qai_pair_batch pb;
        float loss = 0, acc = 0;
        qai_status st = qai_trainer_sample_pairs(t, &t->data_rng, 0, t->cfg.batch, &pb);
        if (st) return -1;
        st = qai_trainer_contrastive(t, &pb, true, 1.0f / accum, &loss, &acc);
        for (int b = 0; b < pb.B; b++) n_tokens += (uint64_t)pb.qlen[b] + (uint64_t)pb.dlen[b];
        for (int b = 0; b < pb.Bn; b++) n_tokens += (uint64_t)pb.nlen[b];
        qai_pair_batch_release(&pb);
        if (st) return -1;
        loss_sum += loss, acc_sum += acc;
    }
    for (int a = 0; a < accum && !t->contrastive; a++) {
        float loss = 0;
        qai_status st = given ? QAI_OK : qai_trainer_next_batch(t, &t->data_rng, QAI_SPLIT_TRAIN, t->batch_tokens);
        if (st == QAI_OK)
            st = qai_trainer_forward_backward(t, given ? given : t->batch_tokens, true, 1.0f / ((float)t->N * accum),
                                              &loss);
        if (st) return -1;
        loss_sum += loss;
    }
    float norm = qai_trainer_grad_norm(t);
    float clip = t->cfg.grad_clip > 0 && norm > t->cfg.grad_clip ? t->cfg.grad_clip / norm : 1.0f;
    float lr = qai_trainer_lr(&t->cfg, t->step);
    qai_trainer_adamw(t, lr, clip);
    double dt = (double)(qai_time_ns() - t0) * 1e-9;
    t->step++;
    t->tokens_seen += n_tokens;
    t->elapsed_s += dt;
    t->last_loss = (float)(loss_sum / accum);
    t->last_acc = (float)(acc_sum / accum);
    t->last_norm = norm;
    t->last_lr = lr;
    t->last_tok_s = (double)n_tokens / dt;
    return t->step;
}

int qai_trainer_step(qai_trainer *t) { return step_impl(t, NULL); }
int qai_trainer_step_tokens(qai_trainer *t, const int32_t *tokens) { return step_impl(t, tokens); }

qai_status qai_trainer_eval(qai_trainer *t, float *loss) { return qai_trainer_eval_metrics(t, loss, NULL); }

qai_status qai_trainer_eval_metrics(qai_trainer *t, float *loss, float *acc) {
    qai_rng r; /* the same validation batches at every evaluation, so curves compare */
    qai_rng_seed(&r, t->cfg.seed ^ 0xe7a1e7a1ull);
    if (acc) *acc = -1;
    if (t->contrastive) {
        /* held-out documents; the training split when too few were held out for a batch */
        int split = qai_pairs_n_units(t->pairs, 1) >= t->cfg.batch ? 1 : 0;
        int n = t->cfg.eval_batches > 0 ? t->cfg.eval_batches : 1;
        double ls = 0, as = 0;
        for (int i = 0; i < n; i++) {
            qai_pair_batch pb;
            float l = 0, a = 0;
            qai_status st = qai_trainer_sample_pairs(t, &r, split, t->cfg.batch, &pb);
            if (!st) st = qai_trainer_contrastive(t, &pb, false, 0, &l, &a);
            qai_pair_batch_release(&pb);
            if (st) return st;
            ls += l, as += a;
        }
        *loss = (float)(ls / n);
        if (acc) *acc = (float)(as / n);
        return QAI_OK;
    }
    int32_t *tokens = qai_malloc((size_t)t->B * (t->T + 1) * sizeof(int32_t));
    if (!tokens) return QAI_ERR_NOMEM;
    double sum = 0;
    qai_status st = QAI_OK;
    int n = t->cfg.eval_batches > 0 ? t->cfg.eval_batches : 1;
    for (int i = 0; i < n && st == QAI_OK; i++) {
        float l = 0;
        st = qai_trainer_next_batch(t, &r, QAI_SPLIT_VAL, tokens);
        if (!st) st = qai_trainer_forward_backward(t, tokens, false, 0, &l);
        sum += l;
    }
    qai_free(tokens);
    if (!st) *loss = (float)(sum / n);
    return st;
}

void qai_trainer_stats(const qai_trainer *t, qai_train_stats *s) {
    memset(s, 0, sizeof *s);
    s->step = t->step;
    s->loss = t->last_loss;
    s->grad_norm = t->last_norm;
    s->lr = t->last_lr;
    s->tok_s = t->last_tok_s;
    s->tokens = t->tokens_seen;
    s->elapsed_s = t->elapsed_s;
    s->acc = t->contrastive ? t->last_acc : -1;
    double peak = qai_train_peak_flops(qai_pool_size(t->pool));
    s->mfu = peak > 0 ? t->last_tok_s * qai_trainer_flops_per_token(t) / peak : 0;
}
