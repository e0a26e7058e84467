/* Attention of a block of up to QAI_ATTN_ROWS query rows that share one KV head
 * and one sequence, over a key cache stored transposed (d-major) and a value
 * cache stored position-major, so both products are broadcast-FMA loops with no
 * horizontal sums: scores(r, p) = q_r · K[:, p] / sqrt(S); softmax over
 * p < n_keys[r]; out_r = Σ_p P(r, p) V[p, :].
 *
 * Dimension letters: S head size, C cache capacity (positions), P keys. */
#ifndef QAI_MODEL_ATTN_H
#define QAI_MODEL_ATTN_H

#include "qai/tensor.h"

#define QAI_ATTN_ROWS 4

typedef struct {
    int n;                           /* rows in the block, 1..QAI_ATTN_ROWS */
    const float *q[QAI_ATTN_ROWS];   /* (S) each */
    float *out[QAI_ATTN_ROWS];       /* (S) each */
    int n_keys[QAI_ATTN_ROWS];       /* keys visible to each row (causal), >= 1 */
} qai_attn_block;

/* kt: (S, C) with row stride ldk = C; v: rows of S floats with stride ldv.
 * scratch: QAI_ATTN_ROWS × C floats. S must be a multiple of 16 for the SIMD
 * paths (others fall back to scalar). */
void qai_attn_block_run(const qai_attn_block *b, const float *kt, int ldk, const float *v, int ldv, int S, float scale,
                        float *scratch, qai_isa isa);

#endif
