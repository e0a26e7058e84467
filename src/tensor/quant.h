/*
 * Internal: quantized block layouts (bit-compatible with ggml/GGUF) and the
 * kernel table the dispatcher fills per ISA level.
 *
 * Layouts (little-endian, no padding; fp16 = IEEE half):
 *   Q8_0  (32 elems, 34 B): fp16 d | int8 q[32]                  x = d*q
 *   Q4_0  (32 elems, 18 B): fp16 d | u8 qs[16]                   x = d*(nib-8);
 *         element j<16 is the low nibble of qs[j], element j+16 its high nibble
 *   Q4_K (256 elems, 144 B): fp16 d | fp16 dmin | u8 scales[12] | u8 qs[128]
 *         8 sub-blocks of 32 with 6-bit scale sc and min m packed in scales[12]:
 *         j<4: sc = s[j]&63, m = s[j+4]&63;
 *         j>=4: sc = (s[j+4]&15) | (s[j-4]>>6)<<4, m = (s[j+4]>>4) | (s[j]>>6)<<4.
 *         qs: 4 chunks of 32 bytes; chunk c low nibbles are sub-block 2c, high
 *         nibbles sub-block 2c+1.  x = d*sc*q - dmin*m
 *   Q6_K (256 elems, 210 B): u8 ql[128] | u8 qh[64] | int8 scales[16] | fp16 d
 *         two halves of 128; in half h (ql += 64h, qh += 32h), for l<32:
 *           q[l]    = (ql[l]    & 15) | ((qh[l]>>0)&3)<<4
 *           q[l+32] = (ql[l+32] & 15) | ((qh[l]>>2)&3)<<4
 *           q[l+64] = (ql[l]    >> 4) | ((qh[l]>>4)&3)<<4
 *           q[l+96] = (ql[l+32] >> 4) | ((qh[l]>>6)&3)<<4
 *         x = d * scales[i/16] * (q - 32)
 *   Q8_K (256 elems, 292 B): f32 d | int8 q[256] | int16 bsums[16] (sums of 16 q's)
 */
#ifndef QAI_TENSOR_QUANT_H
#define QAI_TENSOR_QUANT_H

#include <stdint.h>

#include "qai/tensor.h"

#define QAI_QK 32
#define QAI_QK_K 256

typedef struct {
    uint16_t d;
    int8_t qs[32];
} qai_block_q8_0;

typedef struct {
    uint16_t d;
    uint8_t qs[16];
} qai_block_q4_0;

typedef struct {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[12];
    uint8_t qs[128];
} qai_block_q4_K;

typedef struct {
    uint8_t ql[128];
    uint8_t qh[64];
    int8_t scales[16];
    uint16_t d;
} qai_block_q6_K;

typedef struct {
    float d;
    int8_t qs[256];
    int16_t bsums[16];
} qai_block_q8_K;

_Static_assert(sizeof(qai_block_q8_0) == 2 + 32, "q8_0 block size");
_Static_assert(sizeof(qai_block_q4_0) == 2 + 16, "q4_0 block size");
_Static_assert(sizeof(qai_block_q4_K) == 4 + 12 + 128, "q4_K block size");
_Static_assert(sizeof(qai_block_q6_K) == 128 + 64 + 16 + 2, "q6_K block size");
_Static_assert(sizeof(qai_block_q8_K) == 4 + 256 + 32, "q8_K block size");

/* Round to nearest, ties to even, for |v| < 2^22 (what the quantizers need;
 * larger or NaN inputs are clamped by callers first). */
static inline int qai_nearest_int(float v) {
    /* adding 1.5 * 2^23 leaves no fraction bits, so the FPU rounds (to even) for us */
    float t = v + 12582912.f; /* not folded: no -ffast-math */
    return (int)(t - 12582912.f);
}

/* Reference row quantizers / dequantizers (quant.c). n is a multiple of the block size. */
void qai_quantize_row_q8_0_ref(const float *x, qai_block_q8_0 *y, int64_t n);
void qai_quantize_row_q4_0_ref(const float *x, qai_block_q4_0 *y, int64_t n);
void qai_quantize_row_q4_K_ref(const float *x, qai_block_q4_K *y, int64_t n);
void qai_quantize_row_q6_K_ref(const float *x, qai_block_q6_K *y, int64_t n);
void qai_quantize_row_q8_K_ref(const float *x, qai_block_q8_K *y, int64_t n);
void qai_dequantize_row_q8_0(const qai_block_q8_0 *x, float *y, int64_t n);
void qai_dequantize_row_q4_0(const qai_block_q4_0 *x, float *y, int64_t n);
void qai_dequantize_row_q4_K(const qai_block_q4_K *x, float *y, int64_t n);
void qai_dequantize_row_q6_K(const qai_block_q6_K *x, float *y, int64_t n);
void qai_dequantize_row_q8_K(const qai_block_q8_K *x, float *y, int64_t n);

/* Unpacks the 6-bit scale and min of sub-block j (0..7) of a Q4_K block. */
static inline void qai_q4k_scale_min(int j, const uint8_t *s, uint8_t *sc, uint8_t *m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (uint8_t)((s[j + 4] & 15) | ((s[j - 4] >> 6) << 4));
        *m = (uint8_t)((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
    }
}

/* ---- kernel table ---- */

/* dot of one weight row (wtype) with one converted activation row. */
typedef float (*qai_vec_dot_fn)(int64_t n, const void *w, const void *x);
/* Converts a float row into the vec_dot_type. */
typedef void (*qai_from_float_fn)(const float *x, void *y, int64_t n);
/* Tile kernel for matmul: y[m*ldy + j] = dot(W row j, X row m) for j < nr weight
 * rows (stride wstride bytes), m < mr activation rows (stride xstride bytes).
 * Must give the same value per element as vec_dot (bit for bit) so results do
 * not depend on how rows are tiled. */
typedef void (*qai_gemm_fn)(int64_t n, int nr, int mr, const void *w, size_t wstride, const void *x, size_t xstride,
                            float *y, int ldy);

typedef struct {
    qai_vec_dot_fn vec_dot;
    qai_from_float_fn from_float; /* into vec_dot_type */
    qai_gemm_fn gemm;             /* optional: NULL falls back to vec_dot */
    int gemm_nr, gemm_mr;         /* preferred tile (weight rows, activation rows) */
} qai_kernel;

/* ---- repacked ("R16") weights (repack.c) ----
 *
 * QAI_TYPE_Q8_0_R16 / QAI_TYPE_Q4_0_R16 hold the same blocks as Q8_0 / Q4_0,
 * regrouped at load time so the matmul kernels need no horizontal sums or
 * scale shuffles: 16 weight rows form a group (the last group of a matrix is
 * padded with zero rows); a group stores its K/32 block columns in pairs
 * (a last odd block alone), each pair as
 *     fp16 d[16] of block b | fp16 d[16] of block b+1 | quants of b | quants of b+1
 * where the quants of a block are, for each 4-element group g of the block,
 * 64 bytes: the 4 consecutive quant bytes of rows 0..15 in row order.
 *   Q8_0_R16: per block 8 groups (512 bytes) of q XOR 0x80 = q + 128 as u8,
 *             so one vpdpbusd (u8 weights x s8 activations) against a
 *             broadcast activation dword gives the 16 rows' partial sums;
 *   Q4_0_R16: per block 4 groups (256 bytes) of the original qs bytes: the low
 *             nibbles of group g are elements 4g..4g+3, the high nibbles
 *             elements 16+4g..16+4g+3, values w + 8.
 * So a group is exactly 16 rows of the file type (34 resp. 18 bytes a block).
 * The +128 / +8 offsets are taken back with the activation block sums:
 * sum (w+o)x = sum wx + o*sum x.
 *
 * Activations for these types ("R16 activations"): the Q8_0 activation
 * quantization (q int8, d the fp16 scale widened to f32) plus the offset
 * corrections c8 = -128 s and c4 = -8 s (s = the sum of the block's 32 q),
 * with the M rows in groups of 8 (the last group holds the M % 8 rest). A
 * group of R rows stores, for each block b,
 *     int8 q[R][32] | f32 d[R] | int32 c8[R] | int32 c4[R]      (44 R bytes)
 * so one pointer walks all R rows at compile-time offsets when the tile has
 * R = MR rows; group j starts at byte 352 * nb * j.
 *
 * Per output, block by block in order: acc = fma((float)I_b, dw_b * dx_b, acc)
 * with I_b the exact int32 dot; the scalar reference does exactly this with
 * fmaf, so every ISA gives the same bits, and the result does not depend on
 * which tile (or M) a row is computed in. */
#define QAI_R16 16
static inline bool qai_type_is_r16(qai_type t) { return t == QAI_TYPE_Q8_0_R16 || t == QAI_TYPE_Q4_0_R16; }
#define QAI_R16_MR 8
#define QAI_R16_ACT_BLOCK 44 /* bytes per block and activation row */
/* Bytes of the R16 activations of M rows of n elements. */
static inline size_t qai_r16_act_size(int M, int64_t n) { return (size_t)M * QAI_R16_ACT_BLOCK * (size_t)(n / QAI_QK); }
/* Converts float row m (of M) of length n into the R16 activations at act
 * (uses the active Q8_0 converter, so the bytes are the same on every ISA). */
void qai_r16_act_row(const float *x, void *act, int m, int M, int64_t n);
/* R16 kernels have the qai_gemm_fn signature with w the start of a weight
 * group (ws unused), x the start of an activation group of exactly mr rows
 * (xs unused), nr <= 16 rows of the group stored, mr <= 8. vec_dot is NULL. */
void qai_kernels_fill_r16_scalar(qai_kernel *k /* [2]: Q8_0_R16, Q4_0_R16 */);
void qai_kernels_fill_r16_avx2(qai_kernel *k);
void qai_kernels_fill_r16_avx512(qai_kernel *k);

/* Per-ISA tables (dot_scalar.c, dot_avx2.c, dot_avx512.c): fill k[type]. */
void qai_kernels_fill_scalar(qai_kernel *k);
void qai_kernels_fill_avx2(qai_kernel *k);
void qai_kernels_fill_avx512(qai_kernel *k, bool has_bf16);

/* The active table (cpu.c). */
const qai_kernel *qai_kernel_for(qai_type wtype);

/* Scalar from_float helpers shared by the ISA files. */
void qai_from_float_f32(const float *x, void *y, int64_t n);
void qai_from_float_bf16(const float *x, void *y, int64_t n);

#endif
