/*
 * Forward and backward kernels of the training model (see ops.h). Elementwise
 * loops are plain C the compiler vectorizes; the matrix work inside attention
 * goes through qai_sgemm, one (sequence, head) per task.
 *
 * What it deliberately does not do: fused flash-style attention (probabilities
 * are kept, B·H·T·T floats per layer, which is cheap at the sequence lengths of
 * small models and keeps backward simple); the masked blocks of the T×T
 * products are skipped, not the memory.
 */
#include <math.h>
#include <string.h>

#include "qai/tensor.h"
#include "train/ops.h"

/* ---- parallel loops ---- */

typedef void (*range_fn)(const void *ctx, long i0, long i1, int ith);
typedef struct {
    range_fn fn;
    const void *ctx;
    long n;
} range_job;

static void range_worker(void *arg, int ith, int nth) {
    const range_job *j = arg;
    long i0 = j->n * ith / nth, i1 = j->n * (ith + 1) / nth;
    if (i0 < i1) j->fn(j->ctx, i0, i1, ith);
}

/* Splits [0, n) into one contiguous range per thread. */
static void par_for(qai_pool *pool, long n, range_fn fn, const void *ctx) {
    range_job j = {fn, ctx, n};
    if (pool && n > 1) qai_pool_run(pool, range_worker, &j);
    else fn(ctx, 0, n, 0);
}

/* Elementwise loops are compiled for AVX-512, AVX2 and plain x86-64 and the
 * loader picks one (GCC function multiversioning). The arithmetic is the same
 * in every version: C11 mode does not contract a*b+c into FMAs and sums run
 * in 16 fixed lanes, so every version gives the same bits as the plain one. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define QAI_VECTORIZE __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define QAI_VECTORIZE
#endif

/* Adds x[0..n) into 16 interleaved lanes (x[j] into lane j mod 16); a long
 * array may be fed in pieces whose lengths are multiples of 16. */
static inline void lane_add(float acc[16], const float *x, long n) {
    long j = 0;
    for (; j + 16 <= n; j += 16)
        for (int k = 0; k < 16; k++) acc[k] += x[j + k];
    for (; j < n; j++) acc[j & 15] += x[j];
}
static inline float lane_total(const float acc[16]) {
    float s = 0;
    for (int k = 0; k < 16; k++) s += acc[k];
    return s;
}
static inline float lane_sum(const float *x, long n) {
    float acc[16] = {0};
    lane_add(acc, x, n);
    return lane_total(acc);
}

/* exp(x) without errno or branches, so loops over it vectorize: 2^(x·log2 e)
 * with the fraction from a degree-6 polynomial (rel. error < 2e-7 on the
 * clamped range [-87, 88]). */
static inline float qexp(float x) {
    x = x < -87.0f ? -87.0f : x > 88.0f ? 88.0f : x;
    float n = floorf(x * 1.44269504f + 0.5f);
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    union {
        int32_t i;
        float f;
    } u = {.i = ((int32_t)n + 127) << 23};
    return p * u.f;
}

/* ---- embedding ---- */

typedef struct {
    float *out;
    const float *in;
    const int32_t *tok;
    int N, D;
} embed_ctx;

static void embed_fwd_rows(const void *c_, long i0, long i1, int ith) {
    const embed_ctx *c = c_;
    for (long i = i0; i < i1; i++) memcpy(c->out + i * c->D, c->in + (long)c->tok[i] * c->D, c->D * sizeof(float));
}

void qai_embed_forward(qai_pool *pool, float *out, const float *emb, const int32_t *tok, int N, int D) {
    embed_ctx c = {out, emb, tok, N, D};
    par_for(pool, N, embed_fwd_rows, &c);
}

/* Columns are split over threads so each gradient element has one owner and
 * rows are added in token order. */
static void embed_bwd_cols(const void *c_, long d0, long d1, int ith) {
    const embed_ctx *c = c_;
    for (int i = 0; i < c->N; i++) {
        float *dst = c->out + (long)c->tok[i] * c->D;
        const float *src = c->in + (long)i * c->D;
        for (long d = d0; d < d1; d++) dst[d] += src[d];
    }
}

void qai_embed_backward(qai_pool *pool, float *demb, const float *dout, const int32_t *tok, int N, int D) {
    embed_ctx c = {demb, dout, tok, N, D};
    par_for(pool, D, embed_bwd_cols, &c);
}

/* ---- RMSNorm ---- */

typedef struct {
    float *out, *rstd, *dx, *dw;
    const float *x, *w, *dout, *rstd_in;
    int N, D;
    float eps;
} norm_ctx;

static void norm_fwd_rows(const void *c_, long i0, long i1, int ith) {
    const norm_ctx *c = c_;
    const int D = c->D;
    for (long i = i0; i < i1; i++) {
        const float *x = c->x + i * D;
        float *y = c->out + i * D;
        float ss = 0;
        for (int d = 0; d < D; d++) ss += x[d] * x[d];
        float r = 1.0f / sqrtf(ss / D + c->eps);
        c->rstd[i] = r;
        for (int d = 0; d < D; d++) y[d] = x[d] * r * c->w[d];
    }
}

void qai_rmsnorm_forward(qai_pool *pool, float *out, float *rstd, const float *x, const float *w, int N, int D,
                         float eps) {
    norm_ctx c = {.out = out, .rstd = rstd, .x = x, .w = w, .N = N, .D = D, .eps = eps};
    par_for(pool, N, norm_fwd_rows, &c);
}

/* y = x·r·w with r = (mean x² + eps)^-1/2:
 * dx_d += r·(w_d·dy_d − x_d·r²·mean_e(w_e·dy_e·x_e)),  dw_d += Σ_rows dy_d·x_d·r */
static void norm_bwd_rows(const void *c_, long i0, long i1, int ith) {
    const norm_ctx *c = c_;
    const int D = c->D;
    for (long i = i0; i < i1; i++) {
        const float *x = c->x + i * D, *dy = c->dout + i * D;
        float *dx = c->dx + i * D;
        const float r = c->rstd_in[i];
        float dot = 0;
        for (int d = 0; d < D; d++) dot += c->w[d] * dy[d] * x[d];
        const float k = dot * r * r / D;
        for (int d = 0; d < D; d++) dx[d] += r * (c->w[d] * dy[d] - x[d] * k);
    }
}

static void norm_bwd_cols(const void *c_, long d0, long d1, int ith) {
    const norm_ctx *c = c_;
    const int D = c->D;
    for (int i = 0; i < c->N; i++) {
        const float *x = c->x + (long)i * D, *dy = c->dout + (long)i * D;
        const float r = c->rstd_in[i];
        for (long d = d0; d < d1; d++) c->dw[d] += dy[d] * x[d] * r;
    }
}

void qai_rmsnorm_backward(qai_pool *pool, float *dx, float *dw, const float *dout, const float *x, const float *w,
                          const float *rstd, int N, int D) {
    norm_ctx c = {.dx = dx, .dw = dw, .x = x, .w = w, .dout = dout, .rstd_in = rstd, .N = N, .D = D};
    par_for(pool, N, norm_bwd_rows, &c);
    par_for(pool, D, norm_bwd_cols, &c);
}

/* ---- RoPE ---- */

typedef struct {
    float *x;
    const int32_t *pos;
    const float *freq;
    int nh, S;
    float sign;
} rope_ctx;

static void rope_rows(const void *c_, long i0, long i1, int ith) {
    const rope_ctx *c = c_;
    const int half = c->S / 2;
    float cs[512], sn[512]; /* S/2 <= 512: head sizes up to 1024 */
    for (long i = i0; i < i1; i++) {
        for (int p = 0; p < half; p++) {
            float a = (float)c->pos[i] * c->freq[p];
            cs[p] = cosf(a);
            sn[p] = c->sign * sinf(a);
        }
        float *row = c->x + i * (long)c->nh * c->S;
        for (int h = 0; h < c->nh; h++) {
            float *v = row + (long)h * c->S;
            for (int p = 0; p < half; p++) {
                float a = v[2 * p], b = v[2 * p + 1];
                v[2 * p] = a * cs[p] - b * sn[p];
                v[2 * p + 1] = a * sn[p] + b * cs[p];
            }
        }
    }
}

void qai_rope(qai_pool *pool, float *x, const int32_t *pos, const float *freq, int N, int nh, int S, bool inverse) {
    rope_ctx c = {x, pos, freq, nh, S, inverse ? -1.0f : 1.0f};
    par_for(pool, N, rope_rows, &c);
}

/* ---- attention ---- */

typedef struct {
    float *out, *probs, *dq, *dk, *dv, *dscratch;
    const float *dout, *q, *k, *v;
    int B, T, H, G, S;
    char *work;
} attn_ctx;

size_t qai_attention_work_size(int n_threads) { return (size_t)n_threads * qai_sgemm_work_size(1); }

/* Row i of scores (T wide): scale, causal softmax over [0, i], zeros after. */
QAI_VECTORIZE static void causal_softmax(float *P, int T, float scale) {
    for (int i = 0; i < T; i++) {
        float *p = P + (long)i * T;
        float mx = -INFINITY;
        for (int j = 0; j <= i; j++) mx = p[j] > mx ? p[j] : mx;
        for (int j = 0; j <= i; j++) p[j] = qexp((p[j] - mx) * scale);
        float inv = 1.0f / lane_sum(p, i + 1);
        for (int j = 0; j <= i; j++) p[j] *= inv;
        for (int j = i + 1; j < T; j++) p[j] = 0;
    }
}

/* The causal mask makes the upper triangle of every T×T matrix exact zeros, so
 * the products work on blocks of QB query rows and leave out what is masked:
 * scores of row block [i0, i1) only against keys [0, i1); P·V and dS·K stop
 * their sums at i1 (trailing zero terms); Pᵀ·dO and dSᵀ·Q for key block
 * [j0, j1) start at the query row qai_sgemm's K blocking allows (a multiple of
 * QAI_SGEMM_KC at or below j0: the terms left out are exact zeros and the
 * blocks summed are the same ones). Every value is what the full products gave.
 * qai_attention_full (a test hook) turns the skipping off. */
enum { QB = 64 };
bool qai_attention_full;

static void attn_fwd_items(const void *c_, long i0, long i1, int ith) {
    const attn_ctx *c = c_;
    const int T = c->T, S = c->S, HS = c->H * S, GS = c->G * S, rep = c->H / c->G;
    const int qb = qai_attention_full ? T : QB;
    void *work = c->work + (size_t)ith * qai_sgemm_work_size(1);
    for (long it = i0; it < i1; it++) {
        int b = (int)(it / c->H), h = (int)(it % c->H), g = h / rep;
        const float *Q = c->q + (long)b * T * HS + h * S;
        const float *K = c->k + (long)b * T * GS + g * S;
        const float *V = c->v + (long)b * T * GS + g * S;
        float *P = c->probs + ((long)b * c->H + h) * T * T;
        float *O = c->out + (long)b * T * HS + h * S;
        for (int r0 = 0; r0 < T; r0 += qb) {
            int r1 = r0 + qb < T ? r0 + qb : T, n = qai_attention_full ? T : r1;
            qai_sgemm(NULL, false, true, r1 - r0, n, S, Q + (long)r0 * HS, HS, K, GS, P + (long)r0 * T, T, false, work);
        }
        causal_softmax(P, T, 1.0f / sqrtf((float)S)); /* zeros the masked part of every row */
        for (int r0 = 0; r0 < T; r0 += qb) {
            int r1 = r0 + qb < T ? r0 + qb : T, n = qai_attention_full ? T : r1;
            qai_sgemm(NULL, false, false, r1 - r0, S, n, P + (long)r0 * T, T, V, GS, O + (long)r0 * HS, HS, false,
                      work);
        }
    }
}

void qai_attention_forward(qai_pool *pool, float *out, float *probs, const float *q, const float *k, const float *v,
                           int B, int T, int H, int G, int S, void *work) {
    attn_ctx c = {.out = out, .probs = probs, .q = q, .k = k, .v = v, .B = B, .T = T, .H = H, .G = G, .S = S,
                  .work = work};
    par_for(pool, (long)B * H, attn_fwd_items, &c);
}

/* One task per (sequence, KV head), so the query heads that share K and V add
 * their gradients in a fixed order. For each query head h:
 *   dP = dO·Vᵀ, dV += Pᵀ·dO, dS = P∘(dP − rowsum(P∘dP))·scale, dQ = dS·K, dK += dSᵀ·Q */
static void attn_bwd_items(const void *c_, long i0, long i1, int ith) {
    const attn_ctx *c = c_;
    const int T = c->T, S = c->S, HS = c->H * S, GS = c->G * S, rep = c->H / c->G;
    const int qb = qai_attention_full ? T : QB;
    const float scale = 1.0f / sqrtf((float)S);
    void *work = c->work + (size_t)ith * qai_sgemm_work_size(1);
    float *dP = c->dscratch + (long)ith * T * T;
    for (long it = i0; it < i1; it++) {
        int b = (int)(it / c->G), g = (int)(it % c->G);
        const float *K = c->k + (long)b * T * GS + g * S, *V = c->v + (long)b * T * GS + g * S;
        float *dK = c->dk + (long)b * T * GS + g * S, *dV = c->dv + (long)b * T * GS + g * S;
        for (int r = 0; r < rep; r++) {
            int h = g * rep + r;
            const float *Q = c->q + (long)b * T * HS + h * S, *dO = c->dout + (long)b * T * HS + h * S;
            const float *P = c->probs + ((long)b * c->H + h) * T * T;
            float *dQ = c->dq + (long)b * T * HS + h * S;
            /* dP for query rows [r0, r1), keys [0, r1); the rest of those rows is zeroed below */
            for (int r0 = 0; r0 < T; r0 += qb) {
                int r1 = r0 + qb < T ? r0 + qb : T, n = qai_attention_full ? T : r1;
                qai_sgemm(NULL, false, true, r1 - r0, n, S, dO + (long)r0 * HS, HS, V, GS, dP + (long)r0 * T, T, false,
                          work);
            }
            /* dV rows [j0, j1) (keys) from query rows [k0, T): rows above j0 hold zeros in P's columns j0.. */
            for (int j0 = 0; j0 < T; j0 += qb) {
                int j1 = j0 + qb < T ? j0 + qb : T, k0 = qai_attention_full ? 0 : j0 / QAI_SGEMM_KC * QAI_SGEMM_KC;
                qai_sgemm(NULL, true, false, j1 - j0, S, T - k0, P + (long)k0 * T + j0, T, dO + (long)k0 * HS, HS,
                          dV + (long)j0 * GS, GS, r > 0, work);
            }
            for (int i = 0; i < T; i++) {
                const float *p = P + (long)i * T;
                float *d = dP + (long)i * T;
                float dot = 0;
                for (int j = 0; j <= i; j++) dot += p[j] * d[j];
                for (int j = 0; j <= i; j++) d[j] = p[j] * (d[j] - dot) * scale;
                for (int j = i + 1; j < T; j++) d[j] = 0;
            }
            for (int r0 = 0; r0 < T; r0 += qb) {
                int r1 = r0 + qb < T ? r0 + qb : T, n = qai_attention_full ? T : r1;
                qai_sgemm(NULL, false, false, r1 - r0, S, n, dP + (long)r0 * T, T, K, GS, dQ + (long)r0 * HS, HS, false,
                          work);
            }
            for (int j0 = 0; j0 < T; j0 += qb) {
                int j1 = j0 + qb < T ? j0 + qb : T, k0 = qai_attention_full ? 0 : j0 / QAI_SGEMM_KC * QAI_SGEMM_KC;
                qai_sgemm(NULL, true, false, j1 - j0, S, T - k0, dP + (long)k0 * T + j0, T, Q + (long)k0 * HS, HS,
                          dK + (long)j0 * GS, GS, r > 0, work);
            }
        }
    }
}
void qai_attention_backward(qai_pool *pool, float *dq, float *dk, float *dv, float *dscratch, const float *dout,
                            const float *probs, const float *q, const float *k, const float *v, int B, int T, int H,
                            int G, int S, void *work) {
    attn_ctx c = {.dq = dq, .dk = dk, .dv = dv, .dscratch = dscratch, .dout = dout, .probs = (float *)probs, .q = q, .k = k,
                  .v = v, .B = B, .T = T, .H = H, .G = G, .S = S, .work = work};
    par_for(pool, (long)B * G, attn_bwd_items, &c);
}

/* ---- SwiGLU ---- */

typedef struct {
    float *h, *dg, *du;
    const float *g, *u, *dh;
} swiglu_ctx;

QAI_VECTORIZE static void swiglu_fwd_range(const void *c_, long i0, long i1, int ith) {
    const swiglu_ctx *c = c_;
    const float *restrict gp = c->g, *restrict up = c->u;
    float *restrict hp = c->h;
    for (long i = i0; i < i1; i++) hp[i] = gp[i] / (1.0f + qexp(-gp[i])) * up[i];
}

/* h = g·σ(g)·u: dg = dh·u·σ(g)·(1 + g·(1 − σ(g))), du = dh·g·σ(g) */
QAI_VECTORIZE static void swiglu_bwd_range(const void *c_, long i0, long i1, int ith) {
    const swiglu_ctx *c = c_;
    const float *restrict gp = c->g, *restrict up = c->u, *restrict dhp = c->dh;
    float *restrict dgp = c->dg, *restrict dup = c->du;
    for (long i = i0; i < i1; i++) {
        float g = gp[i], s = 1.0f / (1.0f + qexp(-g)), dh = dhp[i];
        dgp[i] = dh * up[i] * s * (1.0f + g * (1.0f - s));
        dup[i] = dh * g * s;
    }
}

void qai_swiglu_forward(qai_pool *pool, float *h, const float *g, const float *u, long n) {
    swiglu_ctx c = {.h = h, .g = g, .u = u};
    par_for(pool, n, swiglu_fwd_range, &c);
}

void qai_swiglu_backward(qai_pool *pool, float *dg, float *du, const float *dh, const float *g, const float *u, long n) {
    swiglu_ctx c = {.dg = dg, .du = du, .dh = dh, .g = g, .u = u};
    par_for(pool, n, swiglu_bwd_range, &c);
}

/* ---- cross-entropy ---- */

typedef struct {
    float *logits, *losses;
    const int32_t *targets;
    int V;
    bool backward;
    float scale;
} ce_ctx;

QAI_VECTORIZE static void ce_rows(const void *c_, long i0, long i1, int ith) {
    const ce_ctx *c = c_;
    const int V = c->V;
    for (long i = i0; i < i1; i++) {
        float *x = c->logits + i * V;
        const int t = c->targets[i];
        const float xt = x[t];
        float mx = -INFINITY;
        for (int j = 0; j < V; j++) mx = x[j] > mx ? x[j] : mx;
        float acc[16] = {0};
        if (c->backward) { /* the row becomes exp(x - max), then the gradient */
            for (int j = 0; j < V; j++) x[j] = qexp(x[j] - mx);
            lane_add(acc, x, V);
        } else { /* logits stay; exponentials go through a buffer, summed in the same order */
            float e[1024];
            for (int j0 = 0; j0 < V; j0 += 1024) {
                int n = V - j0 < 1024 ? V - j0 : 1024;
                for (int j = 0; j < n; j++) e[j] = qexp(x[j0 + j] - mx);
                lane_add(acc, e, n);
            }
        }
        const float sum = lane_total(acc);
        c->losses[i] = mx + logf(sum) - xt;
        if (c->backward) {
            const float k = c->scale / sum;
            for (int j = 0; j < V; j++) x[j] *= k;
            x[t] -= c->scale;
        }
    }
}

void qai_cross_entropy(qai_pool *pool, float *logits, float *losses, const int32_t *targets, int N, int V,
                       bool backward, float scale) {
    ce_ctx c = {logits, losses, targets, V, backward, scale};
    par_for(pool, N, ce_rows, &c);
}
