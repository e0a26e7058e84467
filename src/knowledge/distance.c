/*
 * Scalar reference distance kernels and the per-ISA tables (see distance.h).
 * The references accumulate in float in index order with four partial sums,
 * the SIMD variants in wider lanes; tests compare them with a tolerance.
 */
#include "knowledge/distance.h"

#include <pthread.h>

static float dot_scalar(const float *a, const float *b, int n) {
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += a[i] * b[i];
        s1 += a[i + 1] * b[i + 1];
        s2 += a[i + 2] * b[i + 2];
        s3 += a[i + 3] * b[i + 3];
    }
    for (; i < n; i++) s0 += a[i] * b[i];
    return (s0 + s1) + (s2 + s3);
}

static float l2sq_scalar(const float *a, const float *b, int n) {
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        float d0 = a[i] - b[i], d1 = a[i + 1] - b[i + 1], d2 = a[i + 2] - b[i + 2], d3 = a[i + 3] - b[i + 3];
        s0 += d0 * d0;
        s1 += d1 * d1;
        s2 += d2 * d2;
        s3 += d3 * d3;
    }
    for (; i < n; i++) {
        float d = a[i] - b[i];
        s0 += d * d;
    }
    return (s0 + s1) + (s2 + s3);
}

static int32_t dot_u8s8_scalar(const uint8_t *a, const int8_t *b, int n) {
    int32_t s = 0;
    for (int i = 0; i < n; i++) s += (int32_t)a[i] * (int32_t)b[i];
    return s;
}

static qai_dist_kernels tables[3];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init(void) {
    tables[QAI_ISA_SCALAR] = (qai_dist_kernels){dot_scalar, l2sq_scalar, dot_u8s8_scalar};
    tables[QAI_ISA_AVX2] = tables[QAI_ISA_SCALAR];
    tables[QAI_ISA_AVX512] = tables[QAI_ISA_SCALAR];
    qai_isa best = qai_cpu_isa();
    if (best >= QAI_ISA_AVX2) {
        qai_dist_fill_avx2(&tables[QAI_ISA_AVX2]);
        tables[QAI_ISA_AVX512] = tables[QAI_ISA_AVX2];
    }
    if (best >= QAI_ISA_AVX512) qai_dist_fill_avx512(&tables[QAI_ISA_AVX512]);
}

const qai_dist_kernels *qai_dist_kernels_get(qai_isa isa) {
    pthread_once(&once, init);
    qai_isa best = qai_cpu_isa();
    if ((int)isa < 0) isa = QAI_ISA_SCALAR;
    if (isa > best) isa = best;
    return &tables[isa];
}

const qai_dist_kernels *qai_dist_kernels_active(void) { return qai_dist_kernels_get(qai_kernels_isa()); }
