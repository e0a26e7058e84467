/*
 * Internal: helpers shared by the SIMD kernel files — the tile dispatcher that
 * turns one always-inlined tile function (NR weight rows × MR activation rows,
 * both compile-time constants) into a qai_gemm_fn for any edge size, and the
 * Q4_K scale unpacking.
 *
 * Tiles are fixed by (M, N, K, type, ISA), never by the thread count, so
 * matmul results do not depend on it. Most tile functions also give an output
 * the same value whatever NR and MR are; the exception is Q8_0 on AVX-512,
 * whose single-activation-row tiles group blocks in pairs rather than quads
 * (faster streaming at M=1), so a row computed alone may differ from the same
 * row inside a batch in the last bits (within the tested tolerance).
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

/* How far ahead (bytes) the repacked kernels prefetch their weight stream. */
#ifndef QAI_R16_PF
#define QAI_R16_PF 2048
#endif

/* Defines `void fill(qai_kernel *k)` filling k[0], k[1] with the Q8_0_R16 and
 * Q4_0_R16 kernels of an ISA file, which dispatch mr = 1..8 activation rows to
 * its `tile_r16(q4, MR, n, nr, w, x, y, ldy)` instantiations. */
#define QAI_R16_CASE(q4, mr)                                                                                           \
    case mr: tile_r16(q4, mr, n, nr, w, x, y, ldy); break;
#define QAI_R16_GEMM(name, q4)                                                                                         \
    static void gemm_##name(int64_t n, int nr, int mr, const void *w, size_t ws, const void *x, size_t xs, float *y,   \
                            int ldy) {                                                                                 \
        (void)ws, (void)xs;                                                                                            \
        switch (mr) {                                                                                                  \
            QAI_R16_CASE(q4, 1) QAI_R16_CASE(q4, 2) QAI_R16_CASE(q4, 3) QAI_R16_CASE(q4, 4)                            \
            QAI_R16_CASE(q4, 5) QAI_R16_CASE(q4, 6) QAI_R16_CASE(q4, 7) QAI_R16_CASE(q4, 8)                            \
        default: break;                                                                                                \
        }                                                                                                              \
    }
#define QAI_DEFINE_R16_KERNELS(fill)                                                                                   \
    QAI_R16_GEMM(q8_0_r16, false)                                                                                      \
    QAI_R16_GEMM(q4_0_r16, true)                                                                                       \
    void fill(qai_kernel *k) {                                                                                         \
        k[0] = (qai_kernel){NULL, NULL, gemm_q8_0_r16, QAI_R16, QAI_R16_MR};                                           \
        k[1] = (qai_kernel){NULL, NULL, gemm_q4_0_r16, QAI_R16, QAI_R16_MR};                                           \
    }

/* Software prefetch target for weight data at p (byte offset o in its row of
 * ws bytes; the tile reads NR rows side by side): the address about
 * QAI_PF_DIST bytes ahead in reading order, i.e. QAI_PF_DIST/NR further along
 * the row, continuing at the same row of a following tile past the row's end.
 * M=1 is memory bound and the hardware prefetcher alone keeps too few lines in
 * flight. ws = 0 (a lone dot product) means one long row. The divisions are
 * loop invariant and hoisted. */
#ifndef QAI_PF_DIST
#define QAI_PF_DIST 12288
#endif
typedef struct {
    size_t ws, r, j0, j1;
} qai_pfc;
/* Computed once per tile (two divisions). */
QAI_INL qai_pfc qai_pf_make(size_t ws, int NR) {
    size_t a = QAI_PF_DIST / (size_t)NR;
    if (!ws) return (qai_pfc){(size_t)-1 / 2, 0, a, a};
    size_t t = a / ws, r = a % ws;
    return (qai_pfc){ws, r, t * NR * ws + r, (t + 1) * NR * ws + r - ws};
}
QAI_INL const char *qai_pf(const void *p, size_t o, const qai_pfc *c) {
    return (const char *)p + (o + c->r < c->ws ? c->j0 : c->j1);
}

#ifdef __AVX2__
#include <immintrin.h>
/* Unpacks the 8 six-bit scales and 8 mins of a Q4_K block (layout in quant.h)
 * into bytes sc0..7, m0..7 with 32-bit lane operations; the 16-byte load at
 * the 12 scale bytes stays inside the block. */
QAI_INL __m128i qai_q4k_unpack_simd(const uint8_t *s) {
    __m128i v = _mm_loadu_si128((const __m128i *)s);
    __m128i x = _mm_shuffle_epi32(v, _MM_SHUFFLE(2, 1, 2, 0)); /* a c b c */
    __m128i y = _mm_shuffle_epi32(v, _MM_SHUFFLE(1, 1, 0, 0)); /* a a b b */
    __m128i low = _mm_and_si128(x, _mm_set1_epi32(0x3f3f3f3f));
    __m128i high = _mm_or_si128(_mm_and_si128(_mm_srlv_epi32(x, _mm_setr_epi32(0, 0, 0, 4)), _mm_set1_epi32(0x0f0f0f0f)),
                                _mm_and_si128(_mm_srli_epi32(y, 2), _mm_set1_epi32(0x30303030)));
    return _mm_blend_epi32(low, high, 0xa);
}
#endif

#endif
