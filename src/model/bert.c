/* BERT-style encoders (GGUF architecture "bert", as llama.cpp's converter
 * writes bge, e5 and all-MiniLM sentence-embedding models): loading, contexts
 * and the forward pass that turns token sequences into pooled sentence
 * vectors.
 *
 *   x  = LN_e(tok_embd[t] + type_embd[0] + pos_embd[p])
 *   per layer:  q, k, v = x·Wqᵀ + bq, x·Wkᵀ + bk, x·Wvᵀ + bv
 *               a = softmax(q kᵀ / sqrt(S)) v   per head, over the tokens of the same text (no mask otherwise)
 *               x = LN_1(x + a·Woᵀ + bo)
 *               x = LN_2(x + gelu(x·W_upᵀ + b_up)·W_downᵀ + b_down)     gelu(z) = z/2 (1 + erf(z/√2))
 *   pooled = mean of x over the text's tokens ([CLS] and [SEP] included), or x of its first / last token;
 *   then L2-normalized (optional).
 *
 * Dimension letters: T tokens in a chunk (several texts packed one after the
 * other), D width, H heads, S = D/H head size, F ffn width, B the chunk
 * capacity (max(n_batch, n_ctx)).
 *
 * Every op runs on the context's pool; each output element is computed by one
 * thread in a fixed order, so results do not depend on the thread count.
 * Texts never see each other: attention only spans a text's own rows.
 *
 * What it does not do: token types other than 0 (sentence pairs), causal
 * "bert" variants, nomic-bert / jina-bert (other architectures), reranker
 * heads (pooling_type 4).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "attn.h"
#include "model_internal.h"

#define BERT_MAX_POOL 3

/* ---- loading ---- */

qai_status qai_bert_load(qai_model *m) {
    qai_gguf *g = m->gguf;
    qai_model_info *hp = &m->info;
    const char *arch = "bert";
    int64_t v;
    qai_status st;
    if ((st = qai_model_int_key(g, arch, "embedding_length", &v, true, 0))) return st;
    hp->n_embd = (int)v;
    if ((st = qai_model_int_key(g, arch, "block_count", &v, true, 0))) return st;
    hp->n_layer = (int)v;
    if ((st = qai_model_int_key(g, arch, "feed_forward_length", &v, true, 0))) return st;
    hp->n_ff = (int)v;
    if ((st = qai_model_int_key(g, arch, "attention.head_count", &v, true, 0))) return st;
    hp->n_head = (int)v;
    if ((st = qai_model_int_key(g, arch, "attention.head_count_kv", &v, false, hp->n_head))) return st;
    hp->n_head_kv = (int)v;
    if ((st = qai_model_int_key(g, arch, "context_length", &v, true, 0))) return st;
    hp->n_ctx_train = (int)v;
    if (hp->n_embd <= 0 || hp->n_layer <= 0 || hp->n_head <= 0 || hp->n_ff <= 0 || hp->n_ctx_train <= 0)
        return qai_error(QAI_ERR_FORMAT,
                         "model dimensions must be positive (embd %d, layers %d, heads %d, ffn %d, context %d)",
                         hp->n_embd, hp->n_layer, hp->n_head, hp->n_ff, hp->n_ctx_train);
    if (hp->n_head_kv != hp->n_head)
        return qai_error(QAI_ERR_UNSUPPORTED, "bert with %d KV heads for %d heads is not supported", hp->n_head_kv,
                         hp->n_head);
    if (hp->n_embd % hp->n_head)
        return qai_error(QAI_ERR_FORMAT, "embedding length %d is not a multiple of the head count %d", hp->n_embd,
                         hp->n_head);
    hp->head_dim = hp->n_embd / hp->n_head;
    if ((st = qai_model_float_key(g, arch, "attention.layer_norm_epsilon", &hp->norm_eps, 1e-12f))) return st;
    if (!(hp->norm_eps >= 0) || hp->norm_eps > 1)
        return qai_error(QAI_ERR_FORMAT, "metadata key 'bert.attention.layer_norm_epsilon' has an absurd value %g",
                         (double)hp->norm_eps);
    bool causal = false;
    if (qai_gguf_get_bool(g, "bert.attention.causal", &causal) == QAI_OK && causal)
        return qai_error(QAI_ERR_UNSUPPORTED, "'bert.attention.causal' is true: causal bert models are not supported");
    if ((st = qai_model_int_key(g, arch, "pooling_type", &v, false, QAI_POOLING_MEAN))) return st;
    if (v == 0) v = QAI_POOLING_MEAN; /* "none" (token states): a sentence vector is what qai gives; mean it is */
    if (v > BERT_MAX_POOL)
        return qai_error(QAI_ERR_UNSUPPORTED,
                         "'bert.pooling_type' %lld is not supported (1 mean, 2 cls, 3 last; 4 is a reranker head)",
                         (long long)v);
    hp->pooling = (qai_pooling)v;
    hp->is_encoder = true;
    hp->n_rot = 0;
    hp->rope_theta = 0;
    hp->rope_freq_scale = 1;
    hp->qkv_bias = true;
    hp->tied_output = false;

    const qai_gguf_tensor *te = qai_gguf_find_tensor(g, "token_embd.weight");
    if (!te) return qai_error(QAI_ERR_FORMAT, "tensor 'token_embd.weight' is missing");
    hp->n_vocab = (int)te->ne[1];
    const qai_gguf_tensor *tt = qai_gguf_find_tensor(g, "token_types.weight");
    if (!tt) return qai_error(QAI_ERR_FORMAT, "tensor 'token_types.weight' is missing");
    const int D = hp->n_embd, F = hp->n_ff, V = hp->n_vocab;
    if (V <= 0 || tt->ne[1] < 1) return qai_error(QAI_ERR_FORMAT, "tensor 'token_embd.weight' or 'token_types.weight' is empty");
    if ((st = qai_model_matrix(g, "token_embd.weight", D, V, false, &m->tok_embd))) return st;
    if ((st = qai_model_matrix(g, "token_types.weight", D, tt->ne[1], false, &m->type_embd))) return st;
    if ((st = qai_model_matrix(g, "position_embd.weight", D, hp->n_ctx_train, false, &m->pos_embd))) return st;
    if ((st = qai_model_vector(g, "token_embd_norm.weight", D, false, &m->embd_norm_w))) return st;
    if ((st = qai_model_vector(g, "token_embd_norm.bias", D, false, &m->embd_norm_b))) return st;
    m->bert_layers = qai_calloc((size_t)hp->n_layer, sizeof *m->bert_layers);
    if (!m->bert_layers) return QAI_ERR_NOMEM;
    for (int l = 0; l < hp->n_layer; l++) {
        qai_bert_layer *L = &m->bert_layers[l];
        char n[96];
#define T(suffix) (snprintf(n, sizeof n, "blk.%d." suffix, l), n)
        if ((st = qai_model_matrix(g, T("attn_q.weight"), D, D, false, &L->wq))) return st;
        if ((st = qai_model_matrix(g, T("attn_k.weight"), D, D, false, &L->wk))) return st;
        if ((st = qai_model_matrix(g, T("attn_v.weight"), D, D, false, &L->wv))) return st;
        if ((st = qai_model_matrix(g, T("attn_output.weight"), D, D, false, &L->wo))) return st;
        if ((st = qai_model_vector(g, T("attn_q.bias"), D, false, &L->bq))) return st;
        if ((st = qai_model_vector(g, T("attn_k.bias"), D, false, &L->bk))) return st;
        if ((st = qai_model_vector(g, T("attn_v.bias"), D, false, &L->bv))) return st;
        if ((st = qai_model_vector(g, T("attn_output.bias"), D, false, &L->bo))) return st;
        if ((st = qai_model_vector(g, T("attn_output_norm.weight"), D, false, &L->ln1_w))) return st;
        if ((st = qai_model_vector(g, T("attn_output_norm.bias"), D, false, &L->ln1_b))) return st;
        if ((st = qai_model_matrix(g, T("ffn_up.weight"), D, F, false, &L->w_up))) return st;
        if ((st = qai_model_vector(g, T("ffn_up.bias"), F, false, &L->b_up))) return st;
        if ((st = qai_model_matrix(g, T("ffn_down.weight"), F, D, false, &L->w_down))) return st;
        if ((st = qai_model_vector(g, T("ffn_down.bias"), D, false, &L->b_down))) return st;
        if ((st = qai_model_vector(g, T("layer_output_norm.weight"), D, false, &L->ln2_w))) return st;
        if ((st = qai_model_vector(g, T("layer_output_norm.bias"), D, false, &L->ln2_b))) return st;
#undef T
    }
    return QAI_OK;
}

uint64_t qai_bert_weight_bytes(const qai_model *m) {
    uint64_t b = 0;
    for (int l = 0; l < m->info.n_layer; l++) {
        const qai_bert_layer *L = &m->bert_layers[l];
        const qai_weight *ws[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_up, &L->w_down};
        for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++) b += qai_weight_row_bytes(ws[i]) * (uint64_t)ws[i]->rows;
    }
    return b + qai_weight_row_bytes(&m->tok_embd) + qai_weight_row_bytes(&m->pos_embd);
}

/* ---- contexts ---- */

qai_status qai_bert_context_new(qai_model *m, const qai_context_params *p, qai_context **out) {
    *out = NULL;
    const qai_model_info *hp = &m->info;
    qai_context_params cp = p ? *p : qai_context_default_params();
    /* positions beyond the trained ones have no embedding */
    if (cp.n_ctx <= 0 || cp.n_ctx > hp->n_ctx_train) cp.n_ctx = hp->n_ctx_train;
    if (cp.n_batch <= 0) cp.n_batch = 512;
    if (cp.n_seq <= 0) cp.n_seq = 1;
    if (cp.n_batch > (1 << 16) || cp.n_seq > 4096)
        return qai_error(QAI_ERR_ARG, "context too large (n_batch %d, n_seq %d)", cp.n_batch, cp.n_seq);
    if (cp.n_batch < cp.n_ctx) cp.n_batch = cp.n_ctx; /* a whole text must fit one forward pass */
    qai_context *c = qai_calloc(1, sizeof *c);
    if (!c) return QAI_ERR_NOMEM;
    c->m = m;
    c->n_ctx = cp.n_ctx;
    c->n_batch = cp.n_batch;
    c->n_seq = cp.n_seq;
    c->kv_type = QAI_TYPE_F32; /* keys recomputed every call from f32 activations: nothing to save */
    c->pool = qai_pool_new(cp.n_threads);
    if (!c->pool) goto nomem;
    c->n_threads = qai_pool_size(c->pool);
    const size_t B = (size_t)c->n_batch, D = hp->n_embd, F = hp->n_ff;
    c->seq_len = qai_calloc((size_t)c->n_seq, sizeof(int32_t));
    c->seq_len_next = qai_calloc((size_t)c->n_seq, sizeof(int32_t));
    c->chunk_pos = qai_malloc(B * sizeof(int32_t));
    c->chunk_seq = qai_malloc(B * sizeof(int32_t)); /* encoders: the chunk's token ids */
    c->seq_off = qai_malloc((B + 1) * sizeof(int32_t));
    c->key_off = qai_malloc((B + 1) * sizeof(int32_t));
    c->x = qai_aligned_alloc(B * D * sizeof(float));
    c->xn = qai_aligned_alloc(B * D * sizeof(float));
    c->q = qai_aligned_alloc(B * D * sizeof(float));
    c->k = qai_aligned_alloc(B * D * sizeof(float));
    c->v = qai_aligned_alloc(B * D * sizeof(float));
    c->att = qai_aligned_alloc(B * D * sizeof(float));
    c->ffu = qai_aligned_alloc(B * F * sizeof(float));
    /* blocked keys per head; each text starts on a block, so texts waste at
     * most 15 positions each: twice the batch holds any chunk but one of many
     * tiny texts, which qai_bert_embed_batch then splits */
    c->kv_ctx = qai_kv_block_round(2 * c->n_batch);
    c->k_cache = qai_aligned_alloc((size_t)c->kv_ctx * D * sizeof(float));
    c->scores = qai_aligned_alloc((size_t)c->n_threads * QAI_ATTN_ROWS * c->kv_ctx * sizeof(float));
    size_t w = 0;
    for (int l = 0; l < hp->n_layer; l++) {
        const qai_bert_layer *L = &m->bert_layers[l];
        const qai_weight *ws[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_up, &L->w_down};
        for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++) {
            size_t s = qai_matmul_work_size(ws[i]->type, (int)B, (int)ws[i]->cols);
            if (s > w) w = s;
        }
    }
    c->work_size = w;
    c->work = qai_aligned_alloc(w ? w : 64);
    if (!c->seq_len || !c->seq_len_next || !c->chunk_pos || !c->chunk_seq || !c->seq_off || !c->key_off || !c->x || !c->xn || !c->q || !c->k ||
        !c->v || !c->att || !c->ffu || !c->k_cache || !c->scores || !c->work)
        goto nomem;
    memset(c->k_cache, 0, (size_t)c->kv_ctx * D * sizeof(float)); /* block tails are computed over, never read */
    *out = c;
    return QAI_OK;
nomem:
    qai_context_free(c);
    return qai_error(QAI_ERR_NOMEM, "not enough memory for an encoder context of %d tokens", cp.n_batch);
}

/* ---- ops (each a pool job) ---- */

typedef struct {
    qai_context *c;
    const qai_bert_layer *L;
    int T, n_texts;
    const int32_t *tok;
    const float *src, *bias, *ln_w, *ln_b;
} bert_job;

/* y = (x - mean) / sqrt(var + eps) * w + b; y may be x. */
static void layer_norm(float *y, const float *x, const float *w, const float *b, int n, float eps) {
    float mean = 0;
    for (int i = 0; i < n; i++) mean += x[i];
    mean /= (float)n;
    float var = 0;
    for (int i = 0; i < n; i++) var += (x[i] - mean) * (x[i] - mean);
    var /= (float)n;
    const float r = 1.0f / sqrtf(var + eps);
    for (int i = 0; i < n; i++) y[i] = (x[i] - mean) * r * w[i] + b[i];
}

static void job_embed(void *arg, int ith, int nth) {
    bert_job *j = arg;
    const qai_model *m = j->c->m;
    const int D = m->info.n_embd;
    const size_t rt = qai_weight_row_bytes(&m->tok_embd), rp = qai_weight_row_bytes(&m->pos_embd);
    for (int i = ith; i < j->T; i += nth) {
        float *x = j->c->x + (size_t)i * D, *tmp = j->c->xn + (size_t)i * D;
        qai_dequantize_row(m->tok_embd.type, (const uint8_t *)m->tok_embd.data + (size_t)j->tok[i] * rt, x, D);
        qai_dequantize_row(m->type_embd.type, m->type_embd.data, tmp, D); /* token type 0 */
        for (int d = 0; d < D; d++) x[d] += tmp[d];
        qai_dequantize_row(m->pos_embd.type, (const uint8_t *)m->pos_embd.data + (size_t)j->c->chunk_pos[i] * rp, tmp, D);
        for (int d = 0; d < D; d++) x[d] += tmp[d];
        layer_norm(x, x, m->embd_norm_w, m->embd_norm_b, D, m->info.norm_eps);
    }
}

/* Adds the q, k, v biases. */
static void job_qkv_bias(void *arg, int ith, int nth) {
    bert_job *j = arg;
    const int D = j->c->m->info.n_embd;
    for (int i = ith; i < j->T; i += nth) {
        float *q = j->c->q + (size_t)i * D, *k = j->c->k + (size_t)i * D, *v = j->c->v + (size_t)i * D;
        for (int d = 0; d < D; d++) q[d] += j->L->bq[d], k[d] += j->L->bk[d], v[d] += j->L->bv[d];
    }
}

/* The keys of head h, blocked (attn.h), at k_cache + h·kv_ctx·S; text s's
 * first key at position key_off[s] (a multiple of 16). One task per head. */
static float *bert_keys(const qai_context *c, int h, int s) {
    const int S = c->m->info.head_dim;
    return (float *)c->k_cache + ((size_t)h * c->kv_ctx + (size_t)c->key_off[s]) * S;
}

static void job_store_k(void *arg, int ith, int nth) {
    bert_job *j = arg;
    const qai_context *c = j->c;
    const int D = c->m->info.n_embd, H = c->m->info.n_head, S = c->m->info.head_dim;
    for (int h = ith; h < H; h += nth)
        for (int s = 0; s < j->n_texts; s++) {
            float *kb = bert_keys(c, h, s);
            const int off = c->seq_off[s], n = c->seq_off[s + 1] - off;
            for (int r = 0; r < n; r++) {
                const float *k = c->k + (size_t)(off + r) * D + (size_t)h * S;
                for (int d = 0; d < S; d++) kb[qai_kv_block_index(r, d, S)] = k[d];
            }
        }
}

/* Bidirectional attention inside each text. A task is up to QAI_ATTN_ROWS
 * consecutive query rows of one text and one head; tasks are a fixed function
 * of the chunk, handed out round-robin. */
static void job_attention(void *arg, int ith, int nth) {
    bert_job *j = arg;
    qai_context *c = j->c;
    const qai_model_info *hp = &c->m->info;
    const int D = hp->n_embd, H = hp->n_head, S = hp->head_dim;
    const float scale = 1.0f / sqrtf((float)S);
    const qai_isa isa = qai_kernels_isa();
    float *scratch = c->scores + (size_t)ith * QAI_ATTN_ROWS * c->kv_ctx;
    int task = 0;
    for (int s = 0; s < j->n_texts; s++) {
        const int off = c->seq_off[s], n = c->seq_off[s + 1] - off;
        for (int h = 0; h < H; h++)
            for (int r0 = 0; r0 < n; r0 += QAI_ATTN_ROWS, task++) {
                if (task % nth != ith) continue;
                qai_attn_block blk = {.n = 0};
                for (int r = r0; r < n && r < r0 + QAI_ATTN_ROWS; r++) {
                    blk.q[blk.n] = c->q + (size_t)(off + r) * D + (size_t)h * S;
                    blk.out[blk.n] = c->att + (size_t)(off + r) * D + (size_t)h * S;
                    blk.n_keys[blk.n] = n;
                    blk.n++;
                }
                qai_attn_blocked_run(&blk, bert_keys(c, h, s), c->v + (size_t)off * D + (size_t)h * S, D, S, scale, scratch,
                                     c->kv_ctx, QAI_TYPE_F32, isa);
            }
    }
}

/* x = LN(x + src + bias) */
static void job_residual_norm(void *arg, int ith, int nth) {
    bert_job *j = arg;
    const qai_model_info *hp = &j->c->m->info;
    const int D = hp->n_embd;
    for (int i = ith; i < j->T; i += nth) {
        float *x = j->c->x + (size_t)i * D;
        const float *s = j->src + (size_t)i * D;
        for (int d = 0; d < D; d++) x[d] += s[d] + j->bias[d];
        layer_norm(x, x, j->ln_w, j->ln_b, D, hp->norm_eps);
    }
}

static void job_gelu(void *arg, int ith, int nth) {
    bert_job *j = arg;
    const int F = j->c->m->info.n_ff;
    for (int i = ith; i < j->T; i += nth) {
        float *u = j->c->ffu + (size_t)i * F;
        for (int f = 0; f < F; f++) {
            float z = u[f] + j->L->b_up[f];
            u[f] = 0.5f * z * (1.0f + erff(z * (float)M_SQRT1_2));
        }
    }
}

static void rows(qai_context *c, qai_pool_fn fn, bert_job *j) { qai_pool_run(j->T >= 4 ? c->pool : NULL, fn, j); }

static void matmul(qai_context *c, float *y, const qai_weight *w, const float *x, int T) {
    qai_matmul(c->pool, y, (int)w->rows, w->data, w->type, x, T, (int)w->rows, (int)w->cols, c->work);
}

/* The T rows of the chunk (tokens in c->x's order: text after text, positions
 * in c->chunk_pos, text boundaries in c->seq_off) through every layer; the
 * final states are left in c->x. */
static void forward(qai_context *c, const int32_t *tok, int T, int n_texts) {
    const qai_model *m = c->m;
    bert_job j = {.c = c, .T = T, .n_texts = n_texts, .tok = tok};
    rows(c, job_embed, &j);
    for (int l = 0; l < m->info.n_layer; l++) {
        const qai_bert_layer *L = &m->bert_layers[l];
        j.L = L;
        const qai_matmul_out qkv[3] = {{c->q, (int)L->wq.rows, L->wq.data, L->wq.type, (int)L->wq.rows},
                                       {c->k, (int)L->wk.rows, L->wk.data, L->wk.type, (int)L->wk.rows},
                                       {c->v, (int)L->wv.rows, L->wv.data, L->wv.type, (int)L->wv.rows}};
        qai_matmul_multi(c->pool, qkv, 3, c->x, T, (int)L->wq.cols, c->work); /* one conversion of x, one pool run */
        rows(c, job_qkv_bias, &j);
        qai_pool_run(c->pool, job_store_k, &j);
        qai_pool_run(c->pool, job_attention, &j);
        matmul(c, c->xn, &L->wo, c->att, T);
        j.src = c->xn, j.bias = L->bo, j.ln_w = L->ln1_w, j.ln_b = L->ln1_b;
        rows(c, job_residual_norm, &j);
        matmul(c, c->ffu, &L->w_up, c->x, T);
        rows(c, job_gelu, &j);
        matmul(c, c->xn, &L->w_down, c->ffu, T);
        j.src = c->xn, j.bias = L->b_down, j.ln_w = L->ln2_w, j.ln_b = L->ln2_b;
        rows(c, job_residual_norm, &j);
    }
}

/* acc: scratch of D doubles */
static void pool_text(const qai_context *c, int s, qai_pooling pooling, bool normalize, double *acc, float *out) {
    const int D = c->m->info.n_embd;
    const int off = c->seq_off[s], n = c->seq_off[s + 1] - off;
    if (pooling == QAI_POOLING_MEAN) {
        for (int d = 0; d < D; d++) acc[d] = 0;
        for (int i = 0; i < n; i++) {
            const float *x = c->x + (size_t)(off + i) * D;
            for (int d = 0; d < D; d++) acc[d] += x[d];
        }
        for (int d = 0; d < D; d++) acc[d] /= n;
    } else {
        const float *x = c->x + (size_t)(off + (pooling == QAI_POOLING_CLS ? 0 : n - 1)) * D;
        for (int d = 0; d < D; d++) acc[d] = x[d];
    }
    double norm = 1;
    if (normalize) {
        double ss = 0;
        for (int d = 0; d < D; d++) ss += acc[d] * acc[d];
        norm = ss > 0 ? 1.0 / sqrt(ss) : 0;
    }
    for (int d = 0; d < D; d++) out[d] = (float)(acc[d] * norm);
}

qai_status qai_bert_embed_batch(qai_context *c, int n_texts, const int32_t *const *tokens, const int *n_tokens,
                                const qai_embed_params *p, float *out) {
    const qai_model_info *hp = &c->m->info;
    qai_pooling pooling = p->pooling == QAI_POOLING_DEFAULT ? hp->pooling : p->pooling;
    if (pooling != QAI_POOLING_MEAN && pooling != QAI_POOLING_CLS && pooling != QAI_POOLING_LAST)
        return qai_error(QAI_ERR_ARG, "unknown pooling %d", (int)pooling);
    for (int t = 0; t < n_texts; t++) {
        if (n_tokens[t] <= 0) return qai_error(QAI_ERR_ARG, "text %d: nothing to embed, no tokens", t);
        if (n_tokens[t] > c->n_ctx)
            return qai_error(QAI_ERR_RANGE,
                             "text %d: %d tokens do not fit the context of %d positions (the model's position "
                             "embeddings); split the text",
                             t, n_tokens[t], c->n_ctx);
        for (int i = 0; i < n_tokens[t]; i++)
            if (tokens[t][i] < 0 || tokens[t][i] >= hp->n_vocab)
                return qai_error(QAI_ERR_ARG, "text %d: token %d at position %d is outside the vocabulary (%d)", t,
                                 tokens[t][i], i, hp->n_vocab);
    }
    const int D = hp->n_embd;
    double *acc = qai_malloc((size_t)D * sizeof(double));
    if (!acc) return QAI_ERR_NOMEM;
    for (int t0 = 0; t0 < n_texts;) {
        /* as many whole texts as fit n_batch rows (each fits: n <= n_ctx <= n_batch) */
        int T = 0, k = 0, K = 0;
        while (t0 + k < n_texts && T + n_tokens[t0 + k] <= c->n_batch &&
               K + qai_kv_block_round(n_tokens[t0 + k]) <= c->kv_ctx) {
            const int n = n_tokens[t0 + k];
            c->seq_off[k] = T;
            c->key_off[k] = K;
            K += qai_kv_block_round(n);
            memcpy(c->chunk_seq + T, tokens[t0 + k], (size_t)n * sizeof(int32_t));
            for (int i = 0; i < n; i++) c->chunk_pos[T + i] = i;
            T += n;
            k++;
        }
        c->seq_off[k] = T;
        forward(c, c->chunk_seq, T, k);
        for (int s = 0; s < k; s++) pool_text(c, s, pooling, p->normalize, acc, out + (size_t)(t0 + s) * D);
        t0 += k;
    }
    qai_free(acc);
    return QAI_OK;
}
