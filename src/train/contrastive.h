/* Internal: the contrastive objective's pieces — mean pooling over real
 * tokens, L2 normalization and symmetric in-batch InfoNCE, forward and
 * backward. (The pair sampler, pairs.c, is public: qai/train.h.)
 *
 * Dimension letters: B pairs (or sequences), T tokens per padded sequence,
 * D width. */
#ifndef QAI_TRAIN_CONTRASTIVE_H
#define QAI_TRAIN_CONTRASTIVE_H

#include "qai/tokenizer.h"
#include "qai/train.h"

/* emb(B,D) = mean of rows [0, len[b]) of x(B,T,D) (summed in double, in row
 * order: thread-count independent). len[b] in [1, T]. */
void qai_mean_pool_forward(float *emb, const float *x, const int *len, int B, int T, int D);
/* dx(B,T,D) = demb[b] / len[b] on the real rows, 0 on the padding (written =). */
void qai_mean_pool_backward(float *dx, const float *demb, const int *len, int B, int T, int D);

/* Symmetric InfoNCE over raw (unnormalized) embeddings q(B,D), d(B,D):
 *   u = q/|q|, v = d/|d|, S = u·vᵀ/tau,
 *   loss = (mean_i CE(S[i,:], i) + mean_j CE(S[:,j], j)) / 2.
 * Returns the loss; acc (may be NULL) gets the share of rows i whose largest
 * S[i,j] is j = i (ties count as misses). With dq, dd not NULL they get (=)
 * scale · ∂loss/∂q and ∂loss/∂d. Single-threaded, double sums: B is small. */
float qai_infonce(const float *q, const float *d, int B, int D, float tau, float *acc, float *dq, float *dd,
                  float scale);
/* The same with hard negatives: d(Bd,D) holds the B positives, then Bd − B
 * negatives (Bd >= B). Query i is scored against all Bd documents (its
 * positive at column i); each positive j against the B queries, as above —
 * a negative has no query of its own:
 *   loss = (mean_i CE(S[i, 0..Bd), i) + mean_j CE(S[0..B), j], j)) / 2.
 * Bd = B is qai_infonce. acc counts a query right when its positive beats
 * every other document, negatives included. dd gets Bd rows. NAN (with the
 * error set) for B < 1, Bd < B or no memory. */
float qai_infonce_neg(const float *q, const float *d, int B, int Bd, int D, float tau, float *acc, float *dq,
                      float *dd, float scale);


#endif
