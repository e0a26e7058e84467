/* Internal: the GEMM micro-kernels and the blocked driver they share.
 *
 * fp32 kernels multiply a packed A panel (kc steps of MR floats) by a packed B
 * panel (kc steps of NR floats). bf16 kernels take panels of bf16 pairs: step
 * p holds, for each row r (A) or column j (B), the two values at k = 2p and
 * 2p+1 as one 32-bit unit (low half k = 2p), which is the operand layout of
 * vdpbf16ps. Both store or add the MR×NR result into C (row stride ldc). */
#ifndef QAI_TENSOR_SGEMM_H
#define QAI_TENSOR_SGEMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qai/base.h"

typedef void (*qai_sgemm_kernel_fn)(int kc, const float *a, const float *b, float *c, int ldc, bool accumulate);
/* kp: pairs of k (kc rounded up to even, halved); a: kp × MR pairs, b: kp × NR pairs. */
typedef void (*qai_sgemm_bf16_kernel_fn)(int kp, const uint32_t *a, const uint32_t *b, float *c, int ldc,
                                         bool accumulate);

/* Packs rows [m0, m0+mr) × k [k0, k0+kc) of op(A) into a panel of MR rows (rows
 * past mr and k past kc zero), and k [k0, k0+kc) × columns [n0, n0+nr) of op(B)
 * into a panel of NR columns. */
typedef void (*qai_gemm_pack_a_fn)(void *dst, int MR, const float *A, int lda, bool trans, int m0, int mr, int k0,
                                   int kc);
typedef void (*qai_gemm_pack_b_fn)(void *dst, int NR, const float *B, int ldb, bool trans, int k0, int kc, int n0,
                                   int nr);

typedef struct {
    int mr, nr;
    qai_sgemm_kernel_fn kernel;
} qai_sgemm_ukernel;

typedef struct {
    int mr, nr;
    qai_sgemm_bf16_kernel_fn kernel;
} qai_sgemm_bf16_ukernel;

#define QAI_SGEMM_MR_MAX 12
#define QAI_SGEMM_NR_MAX 32

qai_sgemm_ukernel qai_sgemm_ukernel_avx2(void);
qai_sgemm_ukernel qai_sgemm_ukernel_avx512(void);
/* 12×32 with vdpbf16ps; only on CPUs with AVX512_BF16. */
qai_sgemm_bf16_ukernel qai_sgemm_bf16_ukernel_avx512(void);

/* bf16 packers with vcvtne2ps2bf16 (same panels as the plain ones). */
qai_gemm_pack_a_fn qai_sgemm_bf16_pack_a_avx512(void);
qai_gemm_pack_b_fn qai_sgemm_bf16_pack_b_avx512(void);

/* Runs iters iterations of 12 independent FMA chains; returns the FLOPs done. */
double qai_fma_loop_avx2(long iters);
double qai_fma_loop_avx512(long iters);

/* ---- the blocked driver (sgemm.c), shared by the fp32 and bf16 GEMMs ---- */

typedef struct {
    int mr, nr;
    int kc;       /* K block: elements of k per packed panel (kc · esize · (MC + NC) fits the work area) */
    int kstep;    /* k granularity of a panel (1 fp32, 2 bf16 pairs) */
    size_t esize; /* bytes per packed element */
    qai_gemm_pack_a_fn pack_a;
    qai_gemm_pack_b_fn pack_b;
    qai_sgemm_kernel_fn f32;       /* exactly one of the two kernels is set */
    qai_sgemm_bf16_kernel_fn bf16;
} qai_gemm_impl;

/* C (+)= op(A)·op(B) through impl, as qai_sgemm documents (work: qai_sgemm_work_size). */
void qai_gemm_run(qai_pool *pool, const qai_gemm_impl *impl, bool trans_a, bool trans_b, int M, int N, int K,
                  const float *A, int lda, const float *B, int ldb, float *C, int ldc, bool accumulate, void *work);

/* Bytes of packing area per thread (both GEMMs use the same). */
#define QAI_GEMM_MC_MAX 192
#define QAI_GEMM_NC_MAX 512
#define QAI_GEMM_PACK_BYTES (256 * 4) /* KC · esize of every impl */

#endif
