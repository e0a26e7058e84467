/*
 * The contrastive objective's math (contrastive.h): mean pooling over each
 * sequence's real tokens, L2 normalization and symmetric in-batch InfoNCE
 * (CLIP / E5 style), with their backward passes.
 *
 * Pooling matches inference (src/model/forward.c, embed_decoder): the mean of
 * the final-RMSNorm outputs (norm weight applied) of every token of the text,
 * BOS included, then L2 normalization.
 *
 * Hard negatives (qai_infonce_neg): extra documents after the B positives
 * that only the query → document direction scores against.
 *
 * What it deliberately does not do: a learned temperature, or
 * gathering negatives across micro-batches of grad_accum (each micro-batch is
 * its own InfoNCE problem; the trainer's forward passes over the sequences of
 * one micro-batch share one loss through cached embedding gradients).
 */
#include <math.h>
#include <string.h>

#include "train/contrastive.h"

void qai_mean_pool_forward(float *emb, const float *x, const int *len, int B, int T, int D) {
    for (int b = 0; b < B; b++) {
        float *e = emb + (size_t)b * D;
        for (int d = 0; d < D; d++) {
            double s = 0;
            for (int t = 0; t < len[b]; t++) s += x[((size_t)b * T + t) * D + d];
            e[d] = (float)(s / len[b]);
        }
    }
}

void qai_mean_pool_backward(float *dx, const float *demb, const int *len, int B, int T, int D) {
    for (int b = 0; b < B; b++) {
        const float inv = 1.0f / (float)len[b];
        for (int t = 0; t < T; t++) {
            float *row = dx + ((size_t)b * T + t) * D;
            if (t < len[b])
                for (int d = 0; d < D; d++) row[d] = demb[(size_t)b * D + d] * inv;
            else memset(row, 0, (size_t)D * sizeof(float));
        }
    }
}

/* u = x/|x| (rows), keeping |x| for backward. */
static void normalize_rows(double *u, double *norm, const float *x, int B, int D) {
    for (int b = 0; b < B; b++) {
        double s = 0;
        for (int d = 0; d < D; d++) s += (double)x[(size_t)b * D + d] * x[(size_t)b * D + d];
        norm[b] = sqrt(s) > 1e-12 ? sqrt(s) : 1e-12;
        for (int d = 0; d < D; d++) u[(size_t)b * D + d] = x[(size_t)b * D + d] / norm[b];
    }
}

/* dx = (du − u·(u·du)) / |x| */
static void normalize_backward(float *dx, const double *du, const double *u, const double *norm, int B, int D,
                               float scale) {
    for (int b = 0; b < B; b++) {
        const double *ub = u + (size_t)b * D, *gb = du + (size_t)b * D;
        double dot = 0;
        for (int d = 0; d < D; d++) dot += ub[d] * gb[d];
        for (int d = 0; d < D; d++) dx[(size_t)b * D + d] = (float)(scale * (gb[d] - ub[d] * dot) / norm[b]);
    }
}

float qai_infonce(const float *q, const float *d, int B, int D, float tau, float *acc, float *dq, float *dd,
                  float scale) {
    return qai_infonce_neg(q, d, B, B, D, tau, acc, dq, dd, scale);
}

float qai_infonce_neg(const float *q, const float *d, int B, int Bd, int D, float tau, float *acc, float *dq,
                      float *dd, float scale) {
    if (B < 1 || Bd < B) {
        qai_error(QAI_ERR_ARG, "contrastive loss: %d queries and %d documents (need 1 <= queries <= documents)", B, Bd);
        return NAN;
    }
    double *u = qai_malloc((size_t)B * D * sizeof(double)), *v = qai_malloc((size_t)Bd * D * sizeof(double));
    double *S = qai_malloc((size_t)B * Bd * sizeof(double)), *G = qai_calloc((size_t)B * Bd, sizeof(double));
    double *nq = qai_malloc((size_t)B * sizeof(double)), *nd = qai_malloc((size_t)Bd * sizeof(double));
    double *gu = qai_calloc((size_t)B * D, sizeof(double)), *gv = qai_calloc((size_t)Bd * D, sizeof(double));
    if (!u || !v || !S || !G || !nq || !nd || !gu || !gv) {
        qai_free(u), qai_free(v), qai_free(S), qai_free(G), qai_free(nq), qai_free(nd), qai_free(gu), qai_free(gv);
        qai_error(QAI_ERR_NOMEM, "out of memory in the contrastive loss (batch %d, %d documents)", B, Bd);
        return NAN;
    }
    normalize_rows(u, nq, q, B, D);
    normalize_rows(v, nd, d, Bd, D);
    int hits = 0;
    for (int i = 0; i < B; i++) {
        for (int j = 0; j < Bd; j++) {
            double s = 0;
            for (int k = 0; k < D; k++) s += u[(size_t)i * D + k] * v[(size_t)j * D + k];
            S[(size_t)i * Bd + j] = s / tau;
        }
        bool best = true;
        for (int j = 0; j < Bd; j++)
            if (j != i && S[(size_t)i * Bd + j] >= S[(size_t)i * Bd + i]) best = false;
        hits += best;
    }
    /* G = ∂loss/∂S. pass 0: each query against every document (positives
     * and negatives); pass 1: each positive against the B queries. Each
     * direction averaged over B, the two halved. */
    double loss = 0;
    const double w = 0.5 / B;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < B; i++) {
            const int n = pass ? B : Bd;
            double mx = -INFINITY, sum = 0;
            for (int j = 0; j < n; j++) {
                double s = pass ? S[(size_t)j * Bd + i] : S[(size_t)i * Bd + j];
                mx = s > mx ? s : mx;
            }
            for (int j = 0; j < n; j++) sum += exp((pass ? S[(size_t)j * Bd + i] : S[(size_t)i * Bd + j]) - mx);
            loss += w * (mx + log(sum) - S[(size_t)i * Bd + i]);
            for (int j = 0; j < n; j++) {
                size_t ij = pass ? (size_t)j * Bd + i : (size_t)i * Bd + j;
                G[ij] += w * (exp(S[ij] - mx) / sum - (i == j));
            }
        }
    if (acc) *acc = (float)hits / B;
    if (dq && dd) {
        for (int i = 0; i < B; i++)
            for (int j = 0; j < Bd; j++) {
                double g = G[(size_t)i * Bd + j] / tau;
                if (g == 0) continue;
                for (int k = 0; k < D; k++) {
                    gu[(size_t)i * D + k] += g * v[(size_t)j * D + k];
                    gv[(size_t)j * D + k] += g * u[(size_t)i * D + k];
                }
            }
        normalize_backward(dq, gu, u, nq, B, D, scale);
        normalize_backward(dd, gv, v, nd, Bd, D, scale);
    }
    qai_free(u), qai_free(v), qai_free(S), qai_free(G), qai_free(nq), qai_free(nd), qai_free(gu), qai_free(gv);
    return (float)loss;
}
