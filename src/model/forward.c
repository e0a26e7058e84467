/* The batched forward pass of Llama-family models with a KV cache.
 *
 * Dimension letters as in qai/model.h: T tokens in the chunk, D width, H query
 * heads, G KV heads, S head size, R = H/G query heads per KV head, F ffn width,
 * V vocabulary, C positions per sequence, L layers.
 *
 * Every op runs on the context's thread pool and each output element is
 * computed by exactly one thread, so results do not depend on the thread count.
 * Buffers are sized at context creation; decoding does not allocate except to
 * grow the logits buffer the first time more rows are requested. The KV cache
 * holds F16 (default) or F32 elements (attn.h): keys and values are converted
 * once, when qkv_post stores them, and attention always reads the stored
 * values, so prompt chunks and decoding steps see the same rounded keys. */
#include <math.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <string.h>
#include <strings.h>

#include "attn.h"
#include "model_internal.h"
#include "vec.h"

qai_context_params qai_context_default_params(void) {
    qai_context_params p = {.n_ctx = 0, .n_batch = 512, .n_seq = 1, .n_threads = 0, .kv_type = QAI_TYPE_F16};
    return p;
}

qai_status qai_kv_type_parse(const char *s, qai_type *out) {
    if (s && !strcasecmp(s, "f16")) *out = QAI_TYPE_F16;
    else if (s && !strcasecmp(s, "f32")) *out = QAI_TYPE_F32;
    else return qai_error(QAI_ERR_ARG, "KV cache type '%s' is not one of f16, f32", s ? s : "");
    return QAI_OK;
}

static size_t max_work(const qai_model *m, int T) {
    const qai_model_info *hp = &m->info;
    size_t w = 0;
    for (int l = 0; l < hp->n_layer; l++) {
        const qai_layer *L = &m->layers[l];
        const qai_weight *lw[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < 7; i++) {
            size_t s = qai_matmul_work_size(lw[i]->type, T, (int)lw[i]->cols);
            if (s > w) w = s;
        }
    }
    size_t s = qai_matmul_work_size(m->output.type, T, (int)m->output.cols);
    return s > w ? s : w;
}

qai_status qai_context_new(qai_model *m, const qai_context_params *p, qai_context **out) {
    *out = NULL;
    if (m->info.is_encoder) return qai_bert_context_new(m, p, out);
    const qai_model_info *hp = &m->info;
    qai_context_params cp = p ? *p : qai_context_default_params();
    if (cp.n_ctx <= 0) cp.n_ctx = hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096;
    if (cp.n_batch <= 0) cp.n_batch = 512;
    if (cp.n_seq <= 0) cp.n_seq = 1;
    if (cp.kv_type != QAI_TYPE_F16 && cp.kv_type != QAI_TYPE_F32)
        return qai_error(QAI_ERR_ARG, "KV cache type %d is not supported (f16 or f32)", (int)cp.kv_type);
    if (cp.n_ctx > (1 << 20) || cp.n_batch > (1 << 16) || cp.n_seq > 4096)
        return qai_error(QAI_ERR_ARG, "context too large (n_ctx %d, n_batch %d, n_seq %d)", cp.n_ctx, cp.n_batch,
                         cp.n_seq);
    qai_context *c = qai_calloc(1, sizeof *c);
    if (!c) return QAI_ERR_NOMEM;
    c->m = m;
    c->n_ctx = cp.n_ctx;
    c->n_batch = cp.n_batch;
    c->n_seq = cp.n_seq;
    c->kv_type = cp.kv_type;
    c->pool = qai_pool_new(cp.n_threads);
    if (!c->pool) goto nomem;
    c->n_threads = qai_pool_size(c->pool);
    const size_t T = (size_t)c->n_batch, D = hp->n_embd, HS = (size_t)hp->n_head * hp->head_dim,
                 GS = (size_t)hp->n_head_kv * hp->head_dim, F = hp->n_ff;
    c->kv_ctx = qai_kv_block_round(c->n_ctx);
    const size_t es = qai_kv_type_size(c->kv_type);
    size_t kvk = (size_t)hp->n_layer * c->n_seq * c->kv_ctx * GS, kv = (size_t)hp->n_layer * c->n_seq * c->n_ctx * GS;
    c->k_cache = qai_aligned_alloc(kvk * es);
    c->v_cache = qai_aligned_alloc(kv * es);
    c->seq_block = qai_malloc((size_t)c->n_seq * sizeof(int32_t));
    c->seq_len = qai_calloc((size_t)c->n_seq, sizeof(int32_t));
    c->seq_len_next = qai_calloc((size_t)c->n_seq, sizeof(int32_t));
    c->chunk_pos = qai_malloc(T * sizeof(int32_t));
    c->chunk_seq = qai_malloc(T * sizeof(int32_t));
    c->chunk_want = qai_malloc(T);
    c->x = qai_aligned_alloc(T * D * sizeof(float));
    c->xn = qai_aligned_alloc(T * (D > HS ? D : HS) * sizeof(float));
    c->q = qai_aligned_alloc(T * HS * sizeof(float));
    c->k = qai_aligned_alloc(T * GS * sizeof(float));
    c->v = qai_aligned_alloc(T * GS * sizeof(float));
    c->att = qai_aligned_alloc(T * HS * sizeof(float));
    c->ffg = qai_aligned_alloc(T * F * sizeof(float));
    c->ffu = qai_aligned_alloc(T * F * sizeof(float));
    c->rope_cos = qai_aligned_alloc(T * (size_t)(hp->n_rot / 2 + 1) * sizeof(float));
    c->rope_sin = qai_aligned_alloc(T * (size_t)(hp->n_rot / 2 + 1) * sizeof(float));
    c->rope_freq = qai_aligned_alloc((size_t)(hp->n_rot / 2 + 1) * sizeof(float));
    c->scores = qai_aligned_alloc((size_t)c->n_threads * QAI_ATTN_ROWS * c->kv_ctx * sizeof(float));
    c->xout = qai_aligned_alloc(T * D * sizeof(float));
    c->logit_row = qai_malloc(T * sizeof(int32_t));
    c->logit_row_cap = (int)T;
    c->work_size = max_work(m, (int)T);
    c->work = qai_aligned_alloc(c->work_size);
    if (!c->k_cache || !c->v_cache || !c->seq_block || !c->seq_len || !c->seq_len_next || !c->chunk_pos || !c->chunk_seq ||
        !c->chunk_want || !c->x || !c->xn || !c->q || !c->k || !c->v || !c->att ||
        !c->ffg || !c->ffu || !c->rope_cos || !c->rope_sin || !c->rope_freq || !c->scores || !c->xout ||
        !c->logit_row || !c->work)
        goto nomem;
    for (int k = 0; k < hp->n_rot / 2; k++) { /* per-pair frequency, the same for every token */
        c->rope_freq[k] = powf(hp->rope_theta, -(float)(2 * k) / (float)hp->n_rot);
        if (m->rope_freqs) c->rope_freq[k] /= m->rope_freqs[k];
    }
    /* zeroed so that score lanes past a row's visible keys never see NaN garbage */
    memset(c->k_cache, 0, kvk * es);
    memset(c->v_cache, 0, kv * es);
    *out = c;
    return QAI_OK;
nomem:
    qai_context_free(c);
    return qai_error(QAI_ERR_NOMEM, "not enough memory for a context of %d positions × %d sequences", cp.n_ctx,
                     cp.n_seq);
}

void qai_context_free(qai_context *c) {
    if (!c) return;
    qai_pool_free(c->pool);
    void *bufs[] = {c->k_cache, c->v_cache, c->x,        c->xn,       c->q,      c->k,    c->v,     c->att,
                    c->ffg,     c->ffu,     c->rope_cos, c->rope_sin, c->rope_freq, c->scores, c->xout, c->logits};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) qai_aligned_free(bufs[i]);
    qai_aligned_free(c->work);
    qai_free(c->seq_len);
    qai_free(c->seq_len_next);
    qai_free(c->chunk_pos);
    qai_free(c->chunk_seq);
    qai_free(c->chunk_want);
    qai_free(c->logit_row);
    qai_free(c->seq_off);
    qai_free(c->key_off);
    qai_free(c->seq_block);
    qai_free(c);
}

int qai_context_n_ctx(const qai_context *c) { return c->n_ctx; }
int qai_context_n_threads(const qai_context *c) { return c->n_threads; }
qai_model *qai_context_model(const qai_context *c) { return c->m; }

void qai_kv_truncate(qai_context *c, int seq, int pos) {
    if (seq < 0 || seq >= c->n_seq) return;
    if (pos < 0) pos = 0;
    if (c->seq_len[seq] > pos) c->seq_len[seq] = pos;
}

/* Element i of a cache of the context's kv_type. */
static void *kv_at(const qai_context *c, void *base, size_t i) {
    return (char *)base + i * qai_kv_type_size(c->kv_type);
}

/* Blocked keys (attn.h) of one layer, sequence and KV head: kv_ctx positions. */
static void *k_head(const qai_context *c, int layer, int seq, int g) {
    const qai_model_info *hp = &c->m->info;
    return kv_at(c, c->k_cache, (((size_t)layer * c->n_seq + seq) * hp->n_head_kv + g) * c->kv_ctx * hp->head_dim);
}

/* Values of one layer and sequence: (C, G*S). */
static void *v_seq(const qai_context *c, int layer, int seq) {
    const qai_model_info *hp = &c->m->info;
    return kv_at(c, c->v_cache, ((size_t)layer * c->n_seq + seq) * c->n_ctx * hp->n_head_kv * hp->head_dim);
}

void qai_kv_copy(qai_context *c, int src, int dst, int n) {
    if (src < 0 || src >= c->n_seq || dst < 0 || dst >= c->n_seq || src == dst || c->m->info.is_encoder) return;
    if (n > c->seq_len[src]) n = c->seq_len[src];
    if (n <= 0) {
        c->seq_len[dst] = 0;
        return;
    }
    const qai_model_info *hp = &c->m->info;
    const size_t S = (size_t)hp->head_dim, GS = (size_t)hp->n_head_kv * S, es = qai_kv_type_size(c->kv_type);
    /* whole key blocks: the tail of the last one is past n and never read */
    const size_t kn = (size_t)qai_kv_block_round(n) * S;
    for (int l = 0; l < hp->n_layer; l++) {
        for (int g = 0; g < hp->n_head_kv; g++) memcpy(k_head(c, l, dst, g), k_head(c, l, src, g), kn * es);
        memcpy(v_seq(c, l, dst), v_seq(c, l, src), (size_t)n * GS * es);
    }
    c->seq_len[dst] = n;
}

/* ---- ops (each a pool job) ----
 *
 * A layer is: [xn = rmsnorm(x)] q, k, v = xn·W; attention (which also adds the
 * biases, rotates q and k and stores k and v in the cache when the batch
 * allows, see post_fusable); xn = att·Wo; x += xn, xn = rmsnorm(x) in one job;
 * gate, up; swiglu; xn = ffg·Wdown; x += xn and the next layer's rmsnorm in one
 * job. Row-wise jobs of a few rows run on the caller (run_rows). */

typedef struct {
    qai_context *c;
    const qai_layer *L;
    int layer, T;
    const int32_t *token, *pos, *seq;
    const float *norm_w; /* job_embed, job_add_norm: xn = rmsnorm(x) with it afterwards (NULL: no norm) */
    const float *src;    /* job_add_norm: x += src */
    bool avx2;
    bool post_in_attention; /* job_attention does qkv_post for its own heads first */
    /* job_attention: the next task to claim, on its own cache line (claims
     * must not evict the fields above from the other cores' caches) */
    alignas(64) atomic_int next_task;
} fwd_job;

static void job_embed(void *arg, int ith, int nth) { /* x = embedding; xn = rmsnorm(x) */
    fwd_job *j = arg;
    const qai_model *m = j->c->m;
    const int D = m->info.n_embd;
    size_t rb = qai_weight_row_bytes(&m->tok_embd);
    for (int i = ith; i < j->T; i += nth) {
        float *x = j->c->x + (size_t)i * D;
        qai_dequantize_row(m->tok_embd.type, (const uint8_t *)m->tok_embd.data + (size_t)j->token[i] * rb, x, D);
        if (j->norm_w) qai_vec_rmsnorm(j->c->xn + (size_t)i * D, x, j->norm_w, D, m->info.norm_eps);
    }
}

static void job_add_norm(void *arg, int ith, int nth) { /* x += src; xn = rmsnorm(x) over T rows of D */
    fwd_job *j = arg;
    const int D = j->c->m->info.n_embd;
    const float eps = j->c->m->info.norm_eps;
    for (int i = ith; i < j->T; i += nth) {
        float *x = j->c->x + (size_t)i * D;
        const float *s = j->src + (size_t)i * D;
        for (int k = 0; k < D; k++) x[k] += s[k];
        if (j->norm_w) qai_vec_rmsnorm(j->c->xn + (size_t)i * D, x, j->norm_w, D, eps);
    }
}

static void job_swiglu(void *arg, int ith, int nth) {
    fwd_job *j = arg;
    const int F = j->c->m->info.n_ff;
    for (int i = ith; i < j->T; i += nth) qai_vec_silu_mul(j->c->ffg + (size_t)i * F, j->c->ffu + (size_t)i * F, F, j->avx2);
}

static void rope_table(qai_context *c, int T, const int32_t *pos) {
    const qai_model_info *hp = &c->m->info;
    const int half = hp->n_rot / 2;
    for (int i = 0; i < T; i++) {
        for (int k = 0; k < half; k++) {
            float theta = (float)pos[i] * hp->rope_freq_scale * c->rope_freq[k];
            c->rope_cos[(size_t)i * half + k] = cosf(theta);
            c->rope_sin[(size_t)i * half + k] = sinf(theta);
        }
    }
}

static void rope_head(const qai_model_info *hp, float *x, const float *cs, const float *sn) {
    const int half = hp->n_rot / 2;
    if (hp->rope_type == QAI_ROPE_NORM) {
        for (int k = 0; k < half; k++) {
            float a = x[2 * k], b = x[2 * k + 1];
            x[2 * k] = a * cs[k] - b * sn[k];
            x[2 * k + 1] = a * sn[k] + b * cs[k];
        }
    } else {
        for (int k = 0; k < half; k++) {
            float a = x[k], b = x[k + half];
            x[k] = a * cs[k] - b * sn[k];
            x[k + half] = a * sn[k] + b * cs[k];
        }
    }
}

/* Batch row i, KV head g: adds the biases, rotates the R query heads of g and
 * key head g, stores key and value head g in the cache. Every (i, g) is done
 * exactly once per layer, by whichever thread owns it. */
static void qkv_post(const fwd_job *j, int i, int g) {
    qai_context *c = j->c;
    const qai_model_info *hp = &c->m->info;
    const int S = hp->head_dim, H = hp->n_head, G = hp->n_head_kv, R = H / G, half = hp->n_rot / 2;
    const size_t HS = (size_t)H * S, GS = (size_t)G * S;
    float *q = c->q + (size_t)i * HS + (size_t)g * R * S, *k = c->k + (size_t)i * GS + (size_t)g * S,
          *v = c->v + (size_t)i * GS + (size_t)g * S;
    const qai_layer *L = j->L;
    if (L->bq) {
        const float *bq = L->bq + (size_t)g * R * S, *bk = L->bk + (size_t)g * S, *bv = L->bv + (size_t)g * S;
        for (int e = 0; e < R * S; e++) q[e] += bq[e];
        for (int e = 0; e < S; e++) k[e] += bk[e];
        for (int e = 0; e < S; e++) v[e] += bv[e];
    }
    const float *cs = c->rope_cos + (size_t)i * half, *sn = c->rope_sin + (size_t)i * half;
    for (int r = 0; r < R; r++) rope_head(hp, q + (size_t)r * S, cs, sn);
    rope_head(hp, k, cs, sn);
    const int p = j->pos[i];
    const qai_isa isa = qai_kernels_isa();
    /* key element d at kb[16 d] */
    qai_attn_store(kv_at(c, k_head(c, j->layer, j->seq[i], g), qai_kv_block_index(p, 0, S)), QAI_KV_BLOCK, k, S,
                   c->kv_type, isa);
    qai_attn_store(kv_at(c, v_seq(c, j->layer, j->seq[i]), (size_t)p * GS + (size_t)g * S), 1, v, S, c->kv_type, isa);
}

static void job_qkv_post(void *arg, int ith, int nth) {
    fwd_job *j = arg;
    const int G = j->c->m->info.n_head_kv;
    for (int t = ith; t < j->T * G; t += nth) qkv_post(j, t / G, t % G);
}

/* Causal attention. A task is a block of up to QAI_ATTN_ROWS query rows that
 * share a KV head and a sequence: the R query heads of one token, or, when R is
 * small, the heads of a few consecutive tokens of the same sequence, so each
 * key and value loaded serves several rows. Tasks are a fixed function of the
 * batch, and every row is computed inside one task, so the thread count does
 * not change results. Threads claim tasks from a shared counter, so sequences
 * of different lengths, or a thread that lost its core for a while, do not
 * leave the others waiting at the barrier. */
typedef struct {
    int tok_per_block, row_blocks; /* tokens per task; blocks of heads per token */
} attn_tiling;

static attn_tiling attn_tile(int R) {
    attn_tiling t;
    t.tok_per_block = R >= QAI_ATTN_ROWS ? 1 : QAI_ATTN_ROWS / R;
    t.row_blocks = (R + QAI_ATTN_ROWS - 1) / QAI_ATTN_ROWS;
    return t;
}

/* Whether each attention task can do qkv_post of its own rows first, saving a
 * pass over the pool: true when a task covers all R heads of its KV head and
 * the keys every task reads are only its own tokens' or older positions, i.e.
 * all the batch rows of one sequence fall inside one task's token block (every
 * decoding step of independent streams; not a prompt chunk). */
static bool post_fusable(qai_context *c, int T, const int32_t *seq) {
    const qai_model_info *hp = &c->m->info;
    const attn_tiling tl = attn_tile(hp->n_head / hp->n_head_kv);
    if (tl.row_blocks != 1) return false;
    for (int i = 0; i < T; i++) c->seq_block[seq[i]] = -1;
    for (int i = 0; i < T; i++) {
        int b = i / tl.tok_per_block;
        if (c->seq_block[seq[i]] < 0) c->seq_block[seq[i]] = b;
        else if (c->seq_block[seq[i]] != b) return false;
    }
    return true;
}

static void job_attention(void *arg, int ith, int nth) {
    fwd_job *j = arg;
    qai_context *c = j->c;
    const qai_model_info *hp = &c->m->info;
    const int S = hp->head_dim, H = hp->n_head, G = hp->n_head_kv, R = H / G;
    const size_t HS = (size_t)H * S, GS = (size_t)G * S;
    const float scale = 1.0f / sqrtf((float)S);
    const qai_isa isa = qai_kernels_isa();
    float *scratch = c->scores + (size_t)ith * QAI_ATTN_ROWS * c->kv_ctx;
    const attn_tiling tl = attn_tile(R);
    const int n_tok_blocks = (j->T + tl.tok_per_block - 1) / tl.tok_per_block;
    const int n_tasks = G * n_tok_blocks * tl.row_blocks;
    (void)nth;
    for (int task; (task = atomic_fetch_add_explicit(&j->next_task, 1, memory_order_relaxed)) < n_tasks;) {
        int g = task % G, rest = task / G;
        int rb = rest % tl.row_blocks, tb = rest / tl.row_blocks;
        int i0 = tb * tl.tok_per_block, i1 = i0 + tl.tok_per_block < j->T ? i0 + tl.tok_per_block : j->T;
        int r0 = rb * QAI_ATTN_ROWS, r1 = r0 + QAI_ATTN_ROWS < R ? r0 + QAI_ATTN_ROWS : R;
        if (j->post_in_attention)
            for (int i = i0; i < i1; i++) qkv_post(j, i, g);
        /* split the block where the sequence changes */
        for (int a = i0; a < i1;) {
            int bnd = a + 1;
            while (bnd < i1 && j->seq[bnd] == j->seq[a]) bnd++;
            qai_attn_block blk = {.n = 0};
            for (int i = a; i < bnd; i++)
                for (int r = r0; r < r1; r++) {
                    blk.q[blk.n] = c->q + i * HS + (size_t)(g * R + r) * S;
                    blk.out[blk.n] = c->att + i * HS + (size_t)(g * R + r) * S;
                    blk.n_keys[blk.n] = j->pos[i] + 1;
                    blk.n++;
                }
            qai_attn_blocked_run(&blk, k_head(c, j->layer, j->seq[a], g), kv_at(c, v_seq(c, j->layer, j->seq[a]), (size_t)g * S),
                                 (int)GS, S, scale, scratch, c->kv_ctx, c->kv_type, isa);
            a = bnd;
        }
    }
}

/* Row-wise ops over fewer than 32K floats (a decoding step of up to 16
 * streams' SwiGLU on a 2048-wide FFN: about 1% of the step's time in a
 * profile) cost less than a pass through the pool — waking, then waiting for,
 * the other threads, and on a shared machine a worker that lost its core makes
 * that wait a time slice: run them on the caller. Results do not change: each
 * row is computed the same way. */
static void run_rows(qai_context *c, qai_pool_fn fn, fwd_job *j, int width) {
    qai_pool_run((size_t)j->T * (size_t)width > 32768 ? c->pool : NULL, fn, j);
}

static void matmul(qai_context *c, float *y, const qai_weight *w, const float *x, int T) {
    qai_matmul(c->pool, y, (int)w->rows, w->data, w->type, x, T, (int)w->rows, (int)w->cols, c->work);
}

static qai_matmul_out mm_out(float *y, const qai_weight *w) {
    return (qai_matmul_out){y, (int)w->rows, w->data, w->type, (int)w->rows};
}

/* Several weights applied to the same x (same cols): one activation
 * conversion and one pool run. */
static void matmul_multi(qai_context *c, const qai_matmul_out *outs, int n, const float *x, int K, int T) {
    qai_matmul_multi(c->pool, outs, n, x, T, K, c->work);
}

/* One chunk of at most n_batch tokens whose validity was checked. */
static void forward_chunk(qai_context *c, int T, const int32_t *token, const int32_t *pos, const int32_t *seq,
                          const int8_t *want, int *n_out) {
    qai_model *m = c->m;
    const qai_model_info *hp = &m->info;
    const int D = hp->n_embd, F = hp->n_ff;
    fwd_job j = {.c = c, .T = T, .token = token, .pos = pos, .seq = seq, .avx2 = qai_vec_use_avx2()};
    j.post_in_attention = post_fusable(c, T, seq);
    j.norm_w = hp->n_layer > 0 ? m->layers[0].attn_norm : NULL;
    run_rows(c, job_embed, &j, D);
    rope_table(c, T, pos);
    for (int l = 0; l < hp->n_layer; l++) {
        const qai_layer *L = &m->layers[l];
        j.L = L;
        j.layer = l;
        /* xn = rmsnorm(x, attn_norm) was done by the previous add (or the embedding) */
        const qai_matmul_out qkv[3] = {mm_out(c->q, &L->wq), mm_out(c->k, &L->wk), mm_out(c->v, &L->wv)};
        matmul_multi(c, qkv, 3, c->xn, D, T);
        if (!j.post_in_attention) qai_pool_run(T >= 4 ? c->pool : NULL, job_qkv_post, &j);
        atomic_store_explicit(&j.next_task, 0, memory_order_relaxed); /* the pool run publishes it */
        qai_pool_run(c->pool, job_attention, &j);
        matmul(c, c->xn, &L->wo, c->att, T);
        j.src = c->xn, j.norm_w = L->ffn_norm;
        run_rows(c, job_add_norm, &j, D);
        const qai_matmul_out gate_up[2] = {mm_out(c->ffg, &L->w_gate), mm_out(c->ffu, &L->w_up)};
        matmul_multi(c, gate_up, 2, c->xn, D, T);
        run_rows(c, job_swiglu, &j, F);
        matmul(c, c->xn, &L->w_down, c->ffg, T);
        j.src = c->xn, j.norm_w = l + 1 < hp->n_layer ? m->layers[l + 1].attn_norm : NULL;
        run_rows(c, job_add_norm, &j, D);
    }
    if (c->pool_sum) /* qai_embed: add the final-norm state of every row of the pooled sequence */
        for (int i = 0; i < T; i++) {
            if (seq[i] != c->pool_seq) continue;
            qai_vec_rmsnorm(c->xout, c->x + (size_t)i * D, m->out_norm, D, hp->norm_eps);
            for (int d = 0; d < D; d++) c->pool_sum[d] += c->xout[d];
        }
    /* final norm and logits for the rows that want them */
    int n = 0;
    for (int i = 0; i < T; i++) {
        if (!want[i]) continue;
        qai_vec_rmsnorm(c->xout + (size_t)n * D, c->x + (size_t)i * D, m->out_norm, D, hp->norm_eps);
        n++;
    }
    if (n) matmul(c, c->logits + (size_t)*n_out * hp->n_vocab, &m->output, c->xout, n);
    *n_out += n;
}

/* The batch with defaults applied: pos0 + i and seq_default where the caller
 * gave no arrays, logits of the last token only where it gave no flags. */
static qai_status decode(qai_context *c, const qai_batch *b, int seq_default, int pos0) {
    const qai_model_info *hp = &c->m->info;
    if (hp->is_encoder)
        return qai_error(QAI_ERR_UNSUPPORTED, "'%s' is an embedding model (an encoder): it cannot generate; use qai_embed",
                         hp->arch);
    if (b->n <= 0) return qai_error(QAI_ERR_ARG, "empty batch");
#define POS(i) (b->pos ? b->pos[i] : pos0 + (i))
#define SEQ(i) (b->seq ? b->seq[i] : seq_default)
#define WANT(i) (b->want_logits ? b->want_logits[i] != 0 : (i) == b->n - 1)
    /* validate everything before touching the cache */
    int32_t *len = c->seq_len_next;
    memcpy(len, c->seq_len, (size_t)c->n_seq * sizeof(int32_t));
    int n_want = 0;
    for (int i = 0; i < b->n; i++) {
        int32_t t = b->token[i], p = POS(i), s = SEQ(i);
        if (t < 0 || t >= hp->n_vocab)
            return qai_error(QAI_ERR_ARG, "token %d at batch row %d is outside the vocabulary (%d)", t, i, hp->n_vocab);
        if (s < 0 || s >= c->n_seq)
            return qai_error(QAI_ERR_ARG, "sequence %d at batch row %d is outside the context's %d sequences", s, i,
                             c->n_seq);
        if (p < 0 || p >= c->n_ctx)
            return qai_error(QAI_ERR_RANGE, "position %d at batch row %d is past the context size %d", p, i, c->n_ctx);
        if (p > len[s])
            return qai_error(QAI_ERR_ARG, "position %d of sequence %d leaves a gap (the sequence has %d positions)", p,
                             s, len[s]);
        len[s] = p + 1;
        n_want += WANT(i);
    }
    /* the only allocations of decoding: growing the logits rows the first time
     * more are requested than before */
    if (n_want > c->n_logit_cap) {
        float *nl = qai_aligned_alloc((size_t)n_want * hp->n_vocab * sizeof(float));
        if (!nl) return QAI_ERR_NOMEM;
        qai_aligned_free(c->logits);
        c->logits = nl;
        c->n_logit_cap = n_want;
    }
    if (b->n > c->logit_row_cap) {
        int32_t *lr = qai_realloc(c->logit_row, (size_t)b->n * sizeof(int32_t));
        if (!lr) return QAI_ERR_NOMEM;
        c->logit_row = lr;
        c->logit_row_cap = b->n;
    }
    int n_out = 0;
    for (int i0 = 0; i0 < b->n; i0 += c->n_batch) {
        int T = b->n - i0 < c->n_batch ? b->n - i0 : c->n_batch;
        for (int k = 0; k < T; k++) {
            c->chunk_pos[k] = POS(i0 + k);
            c->chunk_seq[k] = SEQ(i0 + k);
            c->chunk_want[k] = (int8_t)WANT(i0 + k);
        }
        for (int k = 0, r = n_out; k < T; k++) c->logit_row[i0 + k] = c->chunk_want[k] ? r++ : -1;
        forward_chunk(c, T, b->token + i0, c->chunk_pos, c->chunk_seq, c->chunk_want, &n_out);
    }
#undef POS
#undef SEQ
#undef WANT
    memcpy(c->seq_len, len, (size_t)c->n_seq * sizeof(int32_t));
    c->n_rows = b->n;
    return QAI_OK;
}

qai_status qai_decode(qai_context *c, const qai_batch *b) { return decode(c, b, 0, 0); }

qai_status qai_decode_tokens(qai_context *c, int seq, int pos0, const int32_t *tokens, int n) {
    if (n <= 0) return qai_error(QAI_ERR_ARG, "no tokens to decode");
    qai_batch b = {.n = n, .token = tokens};
    return decode(c, &b, seq, pos0);
}

/* A decoder's sentence embedding: mean of the final-norm states. */
static qai_status embed_decoder(qai_context *c, int seq, const int32_t *tokens, int n, bool normalize, float *out) {
    const int D = c->m->info.n_embd;
    if (n <= 0) return qai_error(QAI_ERR_ARG, "nothing to embed: no tokens");
    if (n > c->n_ctx)
        return qai_error(QAI_ERR_RANGE, "%d tokens do not fit the context of %d positions; split the text", n,
                         c->n_ctx);
    if (seq < 0 || seq >= c->n_seq) return qai_error(QAI_ERR_ARG, "sequence %d is outside the context", seq);
    double *sum = qai_calloc((size_t)D, sizeof(double));
    int8_t *want = qai_calloc((size_t)n, 1); /* no logits: only the pooled states */
    if (!sum || !want) {
        qai_free(sum);
        qai_free(want);
        return QAI_ERR_NOMEM;
    }
    qai_kv_truncate(c, seq, 0);
    c->pool_sum = sum;
    c->pool_seq = seq;
    qai_batch b = {.n = n, .token = tokens, .want_logits = want};
    qai_status st = decode(c, &b, seq, 0);
    c->pool_sum = NULL;
    qai_kv_truncate(c, seq, 0);
    if (st == QAI_OK) {
        double norm = 0;
        for (int d = 0; d < D; d++) norm += (sum[d] / n) * (sum[d] / n);
        norm = !normalize ? 1.0 : norm > 0 ? 1.0 / sqrt(norm) : 0;
        for (int d = 0; d < D; d++) out[d] = (float)(sum[d] / n * norm);
    }
    qai_free(sum);
    qai_free(want);
    return st;
}

qai_embed_params qai_embed_default_params(void) {
    qai_embed_params p = {.pooling = QAI_POOLING_DEFAULT, .normalize = true};
    return p;
}

qai_status qai_embed_batch(qai_context *c, int seq, int n_texts, const int32_t *const *tokens, const int *n_tokens,
                           const qai_embed_params *p, float *out) {
    qai_embed_params dp = qai_embed_default_params();
    if (!p) p = &dp;
    if (n_texts < 0 || (n_texts > 0 && (!tokens || !n_tokens || !out)))
        return qai_error(QAI_ERR_ARG, "qai_embed_batch: %d texts but no tokens, lengths or output", n_texts);
    for (int t = 0; t < n_texts; t++)
        if (!tokens[t] && n_tokens[t] > 0) return qai_error(QAI_ERR_ARG, "qai_embed_batch: text %d has no token array", t);
    if (c->m->info.is_encoder) return qai_bert_embed_batch(c, n_texts, tokens, n_tokens, p, out);
    if (p->pooling != QAI_POOLING_DEFAULT && p->pooling != QAI_POOLING_MEAN)
        return qai_error(QAI_ERR_UNSUPPORTED, "'%s' models embed by mean pooling only (pooling %d asked)",
                         c->m->info.arch, (int)p->pooling);
    const int D = c->m->info.n_embd;
    for (int t = 0; t < n_texts; t++) {
        qai_status st = embed_decoder(c, seq, tokens[t], n_tokens[t], p->normalize, out + (size_t)t * D);
        if (st) return qai_error_wrap(st, "text %d", t);
    }
    return QAI_OK;
}

qai_status qai_embed(qai_context *c, int seq, const int32_t *tokens, int n, float *out) {
    if (!c->m->info.is_encoder) return embed_decoder(c, seq, tokens, n, true, out);
    qai_embed_params p = qai_embed_default_params();
    if (seq < 0 || seq >= c->n_seq) return qai_error(QAI_ERR_ARG, "sequence %d is outside the context", seq);
    if (n <= 0) return qai_error(QAI_ERR_ARG, "nothing to embed: no tokens");
    return qai_bert_embed_batch(c, 1, &tokens, &n, &p, out);
}

const float *qai_context_logits(const qai_context *c, int i) {
    if (i < 0 || i >= c->n_rows || !c->logits) return NULL;
    int r = c->logit_row[i];
    return r < 0 ? NULL : c->logits + (size_t)r * c->m->info.n_vocab;
}
