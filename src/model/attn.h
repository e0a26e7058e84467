/* Attention of a block of up to QAI_ATTN_ROWS query rows that share one KV head
 * and one sequence, over a key cache stored in blocks of QAI_KV_BLOCK positions
 * and a value cache stored position-major, so both products are broadcast-FMA
 * loops with no horizontal sums: scores(r, p) = q_r · K[p, :] / sqrt(S);
 * softmax over p < n_keys[r]; out_r = Σ_p P(r, p) V[p, :].
 *
 * Key layout ("blocked"): the keys of one head are a sequence of blocks of
 * QAI_KV_BLOCK (16) positions; block b holds S rows of 16 floats, row d being
 * element d of positions 16b .. 16b+15:
 *
 *     key p, element d  at  kb[((p / 16) * S + d) * 16 + p % 16]
 *
 * so the scores kernel reads one 64-byte line per (block, d) — 16 positions per
 * AVX-512 vector, contiguous for the whole block — and appending one position
 * writes S floats 16 apart inside one S×16 tile (4 KB for S = 64) instead of S
 * floats a whole context apart. Positions past the last key of a block are
 * computed over but never read, so a block's tail may hold anything finite.
 *
 * Element types: keys and values are F32 or F16 (IEEE half, converted once when
 * stored, rounding to nearest even; read back exactly with F16C). With F16 one
 * (block, d) row is 32 bytes and a position's values S·2 bytes; the layouts
 * and indices are otherwise the same. Every kernel reads the stored values, so
 * a prompt and the decoding steps after it see the same rounded keys.
 *
 * Dimension letters: S head size, P keys, P16 = P rounded up to 16. */
#ifndef QAI_MODEL_ATTN_H
#define QAI_MODEL_ATTN_H

#include <stddef.h>

#include "qai/tensor.h"

#define QAI_ATTN_ROWS 4
#define QAI_KV_BLOCK 16

/* Offset of key p, element d in a blocked key array of head size S. */
static inline size_t qai_kv_block_index(int p, int d, int S) {
    return ((size_t)(p / QAI_KV_BLOCK) * (size_t)S + (size_t)d) * QAI_KV_BLOCK + (size_t)(p % QAI_KV_BLOCK);
}

/* n rounded up to a whole number of key blocks. */
static inline int qai_kv_block_round(int n) { return (n + QAI_KV_BLOCK - 1) / QAI_KV_BLOCK * QAI_KV_BLOCK; }

typedef struct {
    int n;                           /* rows in the block, 1..QAI_ATTN_ROWS */
    const float *q[QAI_ATTN_ROWS];   /* (S) each */
    float *out[QAI_ATTN_ROWS];       /* (S) each */
    int n_keys[QAI_ATTN_ROWS];       /* keys visible to each row (causal), >= 1 */
} qai_attn_block;

/* kb: blocked keys (above) of kv_type (QAI_TYPE_F32 or QAI_TYPE_F16) covering
 * at least the largest n_keys rounded up to 16; v: rows of S values of kv_type
 * with a stride of ldv elements. scratch: QAI_ATTN_ROWS rows of ld_scratch
 * floats, ld_scratch >= max n_keys rounded up to 16. S must be a multiple of 16
 * for the SIMD paths (others fall back to scalar). Every value of v for
 * positions below the largest n_keys must be finite (rows with fewer keys
 * weigh the others by an exact zero). */
void qai_attn_blocked_run(const qai_attn_block *b, const void *kb, const void *v, int ldv, int S, float scale,
                          float *scratch, int ld_scratch, qai_type kv_type, qai_isa isa);

/* Stores n floats of src as kv_type at dst, dst + stride, dst + 2 stride, ...
 * (stride in elements: 1 for a value row, QAI_KV_BLOCK for a key). F16 rounds
 * to nearest even, the same on every ISA (qai_fp32_to_fp16). */
void qai_attn_store(void *dst, size_t stride, const float *src, int n, qai_type kv_type, qai_isa isa);

/* Bytes of one cached element (4 for F32, 2 for F16). */
static inline size_t qai_kv_type_size(qai_type t) { return t == QAI_TYPE_F16 ? 2 : 4; }

#endif
