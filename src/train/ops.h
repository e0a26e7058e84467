/* Internal: the forward and backward kernels of the training model. Each pair
 * has the same argument order; backward functions accumulate (+=) into the
 * gradients of parameters and of residual inputs, and write (=) intermediate
 * gradients, as each comment says. Row-parallel over the pool; every output
 * element is computed by one thread in a fixed order, so results do not depend
 * on the thread count.
 *
 * Dimension letters: N tokens (B sequences × T), D width, H query heads, G KV
 * heads, S head size, F feed-forward width, V vocabulary. */
#ifndef QAI_TRAIN_OPS_H
#define QAI_TRAIN_OPS_H

#include <stdbool.h>
#include <stdint.h>

#include "qai/base.h"

/* out(N,D) = emb[tok] */
void qai_embed_forward(qai_pool *pool, float *out, const float *emb, const int32_t *tok, int N, int D);
/* demb(V,D) += dout rows scattered by tok (columns split over threads) */
void qai_embed_backward(qai_pool *pool, float *demb, const float *dout, const int32_t *tok, int N, int D);

/* out(N,D) = x · rstd · w, rstd(N) = 1/sqrt(mean(x²) + eps) */
void qai_rmsnorm_forward(qai_pool *pool, float *out, float *rstd, const float *x, const float *w, int N, int D,
                         float eps);
/* dx(N,D) += ..., dw(D) += ... from dout(N,D) */
void qai_rmsnorm_backward(qai_pool *pool, float *dx, float *dw, const float *dout, const float *x, const float *w,
                          const float *rstd, int N, int D);

/* Rotates x(N, nh, S) in place, pairs (2i, 2i+1) by pos·freq[i] (NORM layout);
 * with inverse, by the opposite angle (the backward pass). pos(N). freq(S/2). */
void qai_rope(qai_pool *pool, float *x, const int32_t *pos, const float *freq, int N, int nh, int S, bool inverse);

/* Causal attention per sequence: q(N,H·S), k,v(N,G·S) → out(N,H·S), keeping
 * probs(B,H,T,T) for backward. work: per-thread GEMM scratch. */
void qai_attention_forward(qai_pool *pool, float *out, float *probs, const float *q, const float *k, const float *v,
                           int B, int T, int H, int G, int S, void *work);
/* dq(N,H·S), dk, dv(N,G·S) written (=) from dout(N,H·S); dscratch: B·H·T·T floats. */
void qai_attention_backward(qai_pool *pool, float *dq, float *dk, float *dv, float *dscratch, const float *dout,
                            const float *probs, const float *q, const float *k, const float *v, int B, int T, int H,
                            int G, int S, void *work);
/* Test hook: compute the full T×T products instead of skipping the blocks the
 * causal mask zeroes (the results are the same bits either way). Not for use
 * while attention runs. */
extern bool qai_attention_full;
/* Per-thread GEMM workspace bytes the attention kernels need. */
size_t qai_attention_work_size(int n_threads);

/* h(N,F) = silu(g) · u */
void qai_swiglu_forward(qai_pool *pool, float *h, const float *g, const float *u, long n);
/* dg, du written (=) from dh */
void qai_swiglu_backward(qai_pool *pool, float *dg, float *du, const float *dh, const float *g, const float *u, long n);

/* Cross-entropy of logits(N,V) against targets(N): losses(N) per row. With
 * backward, logits are replaced by dlogits = (softmax − onehot) · scale. */
void qai_cross_entropy(qai_pool *pool, float *logits, float *losses, const int32_t *targets, int N, int V,
                       bool backward, float scale);

#endif
