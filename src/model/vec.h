/* Small vector routines of the forward pass (attention, norms, activations):
 * a scalar reference and an AVX2+FMA variant each, chosen by the kernel ISA
 * level of qai/tensor.h, so qai_kernels_set_isa(QAI_ISA_SCALAR) runs the
 * reference everywhere. */
#ifndef QAI_MODEL_VEC_H
#define QAI_MODEL_VEC_H

#include <stdbool.h>

/* Set once per call site from qai_kernels_isa() >= QAI_ISA_AVX2. */
bool qai_vec_use_avx2(void);

float qai_vec_dot_f32(const float *a, const float *b, int n, bool avx2);
/* y += a * x */
void qai_vec_axpy_f32(float a, const float *x, float *y, int n, bool avx2);
/* x = exp(x - max) / sum, returns nothing; n >= 1. */
void qai_vec_softmax(float *x, int n, bool avx2);
/* g = silu(g) * u */
void qai_vec_silu_mul(float *g, const float *u, int n, bool avx2);
/* y = x / rms(x) * w, rms = sqrt(mean(x^2) + eps) */
void qai_vec_rmsnorm(float *y, const float *x, const float *w, int n, float eps);
/* y *= a */
void qai_vec_scale(float *y, float a, int n);

#endif
