/*
 * Internal: helpers shared by the SIMD kernel files — the tile dispatcher that
 * turns one always-inlined tile function (NR weight rows × MR activation rows,
 * both compile-time constants) into a qai_gemm_fn for any edge size, and the
 * Q4_K scale unpacking.
 *
 * Every tile function computes each output with the same instruction sequence
 * whatever NR and MR are, so a value does not depend on the tile it falls in
 * (matmul's results are independent of M, of tiling and of the thread count
 * for a given ISA).
 */
#ifndef QAI_TENSOR_KERNELS_COMMON_H
#define QAI_TENSOR_KERNELS_COMMON_H

#include <string.h>

#include "tensor/quant.h"

#define QAI_INL static inline __attribute__((always_inline))

/* Defines `static void gemm_<name>(...)` dispatching (nr, mr) <= (4, 4) to
 * tile_<name>(n, NR, MR, ...) instantiations, and `static float dot_<name>`. */
#define QAI_TILE_CASE(name, a, b)                                                                                      \
    case (a) * 8 + (b): tile_##name(n, a, b, w, ws, x, xs, y, ldy); break;
#define QAI_DEFINE_GEMM(name)                                                                                          \
    static void gemm_##name(int64_t n, int nr, int mr, const void *w, size_t ws, const void *x, size_t xs, float *y,   \
                            int ldy) {                                                                                 \
        switch (nr * 8 + mr) {                                                                                         \
            QAI_TILE_CASE(name, 1, 1) QAI_TILE_CASE(name, 1, 2) QAI_TILE_CASE(name, 1, 3) QAI_TILE_CASE(name, 1, 4)    \
            QAI_TILE_CASE(name, 2, 1) QAI_TILE_CASE(name, 2, 2) QAI_TILE_CASE(name, 2, 3) QAI_TILE_CASE(name, 2, 4)    \
            QAI_TILE_CASE(name, 3, 1) QAI_TILE_CASE(name, 3, 2) QAI_TILE_CASE(name, 3, 3) QAI_TILE_CASE(name, 3, 4)    \
            QAI_TILE_CASE(name, 4, 1) QAI_TILE_CASE(name, 4, 2) QAI_TILE_CASE(name, 4, 3) QAI_TILE_CASE(name, 4, 4)    \
        default: break;                                                                                                \
        }                                                                                                              \
    }                                                                                                                  \
    static float dot_##name(int64_t n, const void *w, const void *x) {                                                \
        float y;                                                                                                       \
        tile_##name(n, 1, 1, w, 0, x, 0, &y, 1);                                                                       \
        return y;                                                                                                      \
    }

/* Unpacks the 8 six-bit scales and 8 mins of a Q4_K block into bytes
 * out[0..7] = scales, out[8..15] = mins (four 32-bit operations per half). */
QAI_INL void qai_q4k_unpack(const uint8_t *s, uint32_t out[4]) {
    uint32_t a, b, c;
    memcpy(&a, s, 4);
    memcpy(&b, s + 4, 4);
    memcpy(&c, s + 8, 4);
    out[0] = a & 0x3f3f3f3fu;
    out[1] = (c & 0x0f0f0f0fu) | (((a >> 6) & 0x03030303u) << 4);
    out[2] = b & 0x3f3f3f3fu;
    out[3] = ((c >> 4) & 0x0f0f0f0fu) | (((b >> 6) & 0x03030303u) << 4);
}

#endif
