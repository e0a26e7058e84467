/*
 * qai/tensor.h — tensor element types (bit-compatible with GGUF/ggml block
 * layouts), quantization, and the dot/matmul kernels that run a model.
 *
 * Dimension letters: M rows of activations (tokens), N output features (weight
 * rows), K the reduced dimension (weight row length).
 *
 * Every kernel has a plain scalar reference; AVX2 and AVX-512 (with VNNI/BF16
 * where the CPU has them) variants are chosen at run time and tested against it.
 * qai_kernels_set_isa() forces a level (tests, benchmarks).
 *
 * Usage:
 *     size_t ws = qai_matmul_work_size(QAI_TYPE_Q8_0, M, K);
 *     void *work = qai_aligned_alloc(ws);
 *     qai_matmul(pool, y, N, w, QAI_TYPE_Q8_0, x, M, N, K, work);   // y = x · Wᵀ
 */
#ifndef QAI_TENSOR_H
#define QAI_TENSOR_H

#include "qai/base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Type ids are ggml's, so a GGUF tensor type maps directly. */
typedef enum {
    QAI_TYPE_F32 = 0,
    QAI_TYPE_F16 = 1,
    QAI_TYPE_Q4_0 = 2,
    QAI_TYPE_Q4_1 = 3,
    QAI_TYPE_Q5_0 = 6,
    QAI_TYPE_Q5_1 = 7,
    QAI_TYPE_Q8_0 = 8,
    QAI_TYPE_Q8_1 = 9,
    QAI_TYPE_Q2_K = 10,
    QAI_TYPE_Q3_K = 11,
    QAI_TYPE_Q4_K = 12,
    QAI_TYPE_Q5_K = 13,
    QAI_TYPE_Q6_K = 14,
    QAI_TYPE_Q8_K = 15,
    QAI_TYPE_IQ2_XXS = 16,
    QAI_TYPE_IQ2_XS = 17,
    QAI_TYPE_IQ3_XXS = 18,
    QAI_TYPE_IQ1_S = 19,
    QAI_TYPE_IQ4_NL = 20,
    QAI_TYPE_IQ3_S = 21,
    QAI_TYPE_IQ2_S = 22,
    QAI_TYPE_IQ4_XS = 23,
    QAI_TYPE_I8 = 24,
    QAI_TYPE_I16 = 25,
    QAI_TYPE_I32 = 26,
    QAI_TYPE_I64 = 27,
    QAI_TYPE_F64 = 28,
    QAI_TYPE_IQ1_M = 29,
    QAI_TYPE_BF16 = 30,
    QAI_TYPE_TQ1_0 = 34,
    QAI_TYPE_TQ2_0 = 35,
    QAI_TYPE_COUNT = 40, /* bound for tables; not every id below it exists */
    /* qai's own in-memory layouts, never in files (qai_type_info() does not
     * know them): Q8_0 / Q4_0 weights regrouped by qai_repack() for the
     * matmul kernels. Only qai_matmul, qai_matmul_multi, qai_row_size and
     * qai_matrix_size accept them. */
    QAI_TYPE_Q8_0_R16 = 64,
    QAI_TYPE_Q4_0_R16 = 65,
} qai_type;

typedef struct {
    const char *name;      /* "q8_0", "f32", ... (lowercase, as ggml names them) */
    int block_size;        /* elements per block (1 for plain types) */
    size_t type_size;      /* bytes per block */
    bool quantized;
    bool supported;        /* qai can quantize/dequantize and compute with it */
    qai_type vec_dot_type; /* the type activations are converted to for dot products */
} qai_type_traits;

/* Traits of a type id, or NULL if the id is not a known ggml type. Known but
 * unsupported types (e.g. IQ2_XXS) have sizes, so files holding them can be
 * inspected, and supported=false. */
const qai_type_traits *qai_type_info(int type);
/* Bytes of a row of n elements (n must be a multiple of the block size). */
size_t qai_row_size(qai_type type, int64_t n);
/* Bytes of a matrix of rows × cols elements: rows * qai_row_size, except
 * that the repacked types round rows up to a multiple of 16. */
size_t qai_matrix_size(qai_type type, int64_t rows, int64_t cols);
/* Parses a type name ("q4_0", "Q4_K", "f16", ...); returns -1 if unknown. */
int qai_type_from_name(const char *name);

/* Quantizes nrows rows of ncols floats into dst (nrows * qai_row_size bytes).
 * ncols must be a multiple of the block size. Uses the same algorithms as
 * ggml's reference quantizers so results are comparable. */
qai_status qai_quantize_rows(qai_type type, const float *src, void *dst, int64_t nrows, int64_t ncols);
/* Dequantizes one row of n elements. */
qai_status qai_dequantize_row(qai_type type, const void *src, float *dst, int64_t n);

/* ---- kernels ------------------------------------------------------------- */

typedef enum { QAI_ISA_SCALAR = 0, QAI_ISA_AVX2 = 1, QAI_ISA_AVX512 = 2 } qai_isa;
/* The best level this CPU supports (cpuid + OS xsave check). */
qai_isa qai_cpu_isa(void);
/* Forces kernels to use at most this level (clamped to what the CPU has);
 * returns the level now in use. Process-global; not for use while kernels run. */
qai_isa qai_kernels_set_isa(qai_isa isa);
qai_isa qai_kernels_isa(void);
/* True when the active kernels may use AVX512_BF16: the CPU has it and
 * qai_kernels_set_isa has not lowered the level below QAI_ISA_AVX512 (which is
 * how tests play a CPU without it). */
bool qai_kernels_bf16(void);
/* e.g. "avx512 (vnni, bf16)". */
const char *qai_kernels_describe(void);

/* Converts a row of n floats into the vec_dot_type of wtype (the activation side
 * of a dot product). dst holds qai_row_size(vec_dot_type, n) bytes. */
void qai_quantize_row_for_dot(qai_type wtype, const float *x, void *dst, int64_t n);
/* dot(w, x) over n elements: w a row of wtype, x a row already converted with
 * qai_quantize_row_for_dot(wtype, ...). */
float qai_vec_dot(qai_type wtype, int64_t n, const void *w, const void *x);

/* Workspace bytes qai_matmul needs for M activation rows of length K. */
size_t qai_matmul_work_size(qai_type wtype, int M, int K);
/* y[m*ldy + n] = sum_k W[n][k] * x[m*K + k] for m < M, n < N.
 * W: N rows of K elements of wtype, contiguous. x: M×K floats. work: at least
 * qai_matmul_work_size bytes, 64-byte aligned. Runs on the pool (NULL: caller
 * only). Results do not depend on the thread count. Does not allocate. */
void qai_matmul(qai_pool *pool, float *y, int ldy, const void *w, qai_type wtype, const float *x, int M, int N, int K,
                void *work);

/* Several products of the same activations: y_i = x · W_iᵀ for i < n (e.g.
 * the Q, K and V projections, or gate and up). Each W_i is N_i rows of K
 * elements. One activation conversion and one pool run cover all of them (one
 * barrier instead of 2n); each y_i is bit-identical to what qai_matmul gives.
 * work: the largest qai_matmul_work_size(W_i's type, M, K). Weights whose
 * types convert activations differently are run one qai_matmul at a time. */
typedef struct {
    float *y;
    int ldy;
    const void *w;
    qai_type wtype;
    int N;
} qai_matmul_out;
void qai_matmul_multi(qai_pool *pool, const qai_matmul_out *outs, int n, const float *x, int M, int K, void *work);

/* ---- repacked weights ------------------------------------------------------ */

/* The repacked type the active kernels prefer for weights of type t (Q8_0 ->
 * QAI_TYPE_Q8_0_R16, Q4_0 -> QAI_TYPE_Q4_0_R16 when the ISA in use has SIMD
 * kernels for it), or -1 when t should be used as it is. */
int qai_repack_type(qai_type t);
/* Rewrites rows × cols weights of type t (rows contiguous, as in a GGUF file)
 * into the layout of rt = qai_repack_type(t): dst holds
 * qai_matrix_size(rt, rows, cols) bytes, 64-byte aligned. qai_matmul on the
 * result gives the same values as on the original within the kernels'
 * tolerance (the per-block float sums use fma). Runs on the pool. */
qai_status qai_repack(qai_pool *pool, qai_type t, const void *src, int64_t rows, int64_t cols, qai_type rt, void *dst);

/* ---- fp32 GEMM (training) -------------------------------------------------- */

/* C = op(A) · op(B), or C += op(A) · op(B) with accumulate. All row-major:
 * op(A) is M×K: A itself (lda >= K) or, with trans_a, the transpose of a K×M
 * matrix A (lda >= M); op(B) is K×N: B itself (ldb >= N) or, with trans_b, the
 * transpose of an N×K matrix (ldb >= K). The three products of a linear layer
 * y = x·Wᵀ are: forward (trans_b), dx = dy·W (none), dW += dyᵀ·x (trans_a).
 * Blocked and packed, register-tiled kernels per ISA; runs on the pool (NULL:
 * caller only). Every C element is summed in the same order whatever the
 * thread count, so results do not depend on it. work: qai_sgemm_work_size(nth)
 * bytes, 64-byte aligned, where nth is the pool size (1 without a pool). */
size_t qai_sgemm_work_size(int n_threads);
/* K is summed in blocks of this many from its start (fp32; bf16 blocks are
 * twice as long), each block from zero, then added to C in order: a caller that
 * leaves out leading terms that are exact zeros gets the same bits if it starts
 * K at a multiple of it (trailing zero terms can always be left out). */
#define QAI_SGEMM_KC 256
void qai_sgemm(qai_pool *pool, bool trans_a, bool trans_b, int M, int N, int K, const float *A, int lda, const float *B,
               int ldb, float *C, int ldc, bool accumulate, void *work);
/* Peak fp32 GFLOP/s of the calling core: a register-only loop of independent
 * FMAs on the widest vectors of the active ISA, timed over ~20 ms. */
double qai_fma_peak_gflops(void);
/* The plain triple loop the kernels are tested against (double accumulation). */
void qai_sgemm_ref(bool trans_a, bool trans_b, int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                   float *C, int ldc, bool accumulate);

/* ---- bf16 GEMM (mixed-precision training) ------------------------------------ */

/* qai_sgemm with the inputs rounded to bf16 (qai_bf16_round) and the products
 * summed in fp32 — vdpbf16ps on CPUs with AVX512_BF16 (qai_kernels_bf16()),
 * otherwise a plain C kernel that computes the same bits, slowly. Same
 * arguments, workspace (qai_sgemm_work_size) and thread-count independence.
 * Compared with the exact sum of the rounded products (qai_sgemm_bf16_ref) the
 * only error is the fp32 accumulation; the instruction flushes denormal inputs
 * and results to zero and rounds after each of the two products of a pair. */
void qai_sgemm_bf16(qai_pool *pool, bool trans_a, bool trans_b, int M, int N, int K, const float *A, int lda,
                    const float *B, int ldb, float *C, int ldc, bool accumulate, void *work);
/* The plain triple loop: inputs rounded with qai_bf16_round, products and sums
 * in double. */
void qai_sgemm_bf16_ref(bool trans_a, bool trans_b, int M, int N, int K, const float *A, int lda, const float *B,
                        int ldb, float *C, int ldc, bool accumulate);
/* x rounded to bf16 and back: round to nearest even, NaN stays NaN, |x| below
 * 2^-126 becomes a signed zero (as vcvtneps2bf16 does). */
float qai_bf16_round(float x);

#ifdef __cplusplus
}
#endif
#endif
