/* Internal: the fp32 GEMM micro-kernels. A kernel multiplies a packed A panel
 * (kc steps of MR floats) by a packed B panel (kc steps of NR floats) and
 * stores or adds the MR×NR result into C (row stride ldc). */
#ifndef QAI_TENSOR_SGEMM_H
#define QAI_TENSOR_SGEMM_H

#include <stdbool.h>

typedef void (*qai_sgemm_kernel_fn)(int kc, const float *a, const float *b, float *c, int ldc, bool accumulate);

typedef struct {
    int mr, nr;
    qai_sgemm_kernel_fn kernel;
} qai_sgemm_ukernel;

#define QAI_SGEMM_MR_MAX 12
#define QAI_SGEMM_NR_MAX 32

qai_sgemm_ukernel qai_sgemm_ukernel_avx2(void);
qai_sgemm_ukernel qai_sgemm_ukernel_avx512(void);

/* Runs iters iterations of 12 independent FMA chains; returns the FLOPs done. */
double qai_fma_loop_avx2(long iters);
double qai_fma_loop_avx512(long iters);

#endif
