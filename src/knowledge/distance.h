/*
 * Internal: distance kernels of the dense indexes — float dot product and
 * squared L2 distance, and the exact integer dot product of a u8 query with
 * s8 stored vectors used by the int8 mode — as a table per ISA level (scalar
 * reference, AVX2, AVX-512 VNNI), picked at run time like the tensor kernels.
 *
 * Float kernels take any n; the integer kernel takes n a multiple of 64 (int8
 * rows are zero-padded to that). Integer results are exact, so every ISA gives
 * the same value; float results differ from the scalar reference only by
 * summation order.
 */
#ifndef QAI_KNOWLEDGE_DISTANCE_H
#define QAI_KNOWLEDGE_DISTANCE_H

#include <stdint.h>

#include "qai/tensor.h"

typedef struct {
    float (*dot)(const float *a, const float *b, int n);
    float (*l2sq)(const float *a, const float *b, int n);
    int32_t (*dot_u8s8)(const uint8_t *a, const int8_t *b, int n); /* n % 64 == 0 */
} qai_dist_kernels;

/* The table for isa, clamped to what this CPU supports. */
const qai_dist_kernels *qai_dist_kernels_get(qai_isa isa);
/* The table for the level the tensor kernels currently use (qai_kernels_isa). */
const qai_dist_kernels *qai_dist_kernels_active(void);

void qai_dist_fill_avx2(qai_dist_kernels *k);
void qai_dist_fill_avx512(qai_dist_kernels *k);

#endif
