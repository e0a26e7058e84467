/*
 * mldsa_arith.c — ML-DSA's NTT-domain arithmetic: the forward and inverse NTT
 * (FIPS 204 Algorithms 41, 42) and Montgomery pointwise products.
 *
 * This file is compiled twice: on its own, for the baseline x86-64 target
 * (the scalar reference, functions named *_scalar), and #included by
 * mldsa_avx2.c, which CMake compiles with -mavx2 so that the compiler
 * vectorizes the same loops (functions named *_avx2). mldsa.c chooses one at
 * run time together with the four-way Keccak (qai_mldsa_use_avx2), and the
 * tests run the ACVP vectors through both. Branch-free: no data-dependent
 * branches or indices.
 */
#ifndef QAI_MLDSA_ARITH_NAME
#define QAI_MLDSA_ARITH_NAME(f) f##_scalar
#endif

#include <stdint.h>

#include "registry/mldsa.h"

#define AQ QAI_MLDSA_Q
#define AN QAI_MLDSA_N

/* a * 2^-32 mod q in (-q, q) for |a| < 2^31 q: t = a * q^-1 mod 2^32 (q^-1 =
 * 58728449), and a - t*q is divisible by 2^32. */
static inline int32_t mont(int64_t a) {
    int32_t t = (int32_t)((uint32_t)(uint64_t)a * 58728449u);
    return (int32_t)((a - (int64_t)t * AQ) >> 32);
}

/* zetas[k] = 1753^BitRev8(k) * 2^32 mod q, centered (FIPS 204 Appendix B
 * lists 1753^BitRev8(k); these are the same times the Montgomery factor).
 * Checked against modular exponentiation in test_mldsa.c. */
static const int32_t zetas[AN] = {
    -4186625, 25847,    -2608894, -518909,  237124,   -777960,  -876248,  466468,   1826347,  2353451,  -359251,
    -2091905, 3119733,  -2884855, 3111497,  2680103,  2725464,  1024112,  -1079900, 3585928,  -549488,  -1119584,
    2619752,  -2108549, -2118186, -3859737, -1399561, -3277672, 1757237,  -19422,   4010497,  280005,   2706023,
    95776,    3077325,  3530437,  -1661693, -3592148, -2537516, 3915439,  -3861115, -3043716, 3574422,  -2867647,
    3539968,  -300467,  2348700,  -539299,  -1699267, -1643818, 3505694,  -3821735, 3507263,  -2140649, -1600420,
    3699596,  811944,   531354,   954230,   3881043,  3900724,  -2556880, 2071892,  -2797779, -3930395, -1528703,
    -3677745, -3041255, -1452451, 3475950,  2176455,  -1585221, -1257611, 1939314,  -4083598, -1000202, -3190144,
    -3157330, -3632928, 126922,   3412210,  -983419,  2147896,  2715295,  -2967645, -3693493, -411027,  -2477047,
    -671102,  -1228525, -22981,   -1308169, -381987,  1349076,  1852771,  -1430430, -3343383, 264944,   508951,
    3097992,  44288,    -1100098, 904516,   3958618,  -3724342, -8578,    1653064,  -3249728, 2389356,  -210977,
    759969,   -1316856, 189548,   -3553272, 3159746,  -1851402, -2409325, -177440,  1315589,  1341330,  1285669,
    -1584928, -812732,  -1439742, -3019102, -3881060, -3628969, 3839961,  2091667,  3407706,  2316500,  3817976,
    -3342478, 2244091,  -2446433, -3562462, 266997,   2434439,  -1235728, 3513181,  -3520352, -3759364, -1197226,
    -3193378, 900702,   1859098,  909542,   819034,   495491,   -1613174, -43260,   -522500,  -655327,  -3122442,
    2031748,  3207046,  -3556995, -525098,  -768622,  -3595838, 342297,   286988,   -2437823, 4108315,  3437287,
    -3342277, 1735879,  203044,   2842341,  2691481,  -2590150, 1265009,  4055324,  1247620,  2486353,  1595974,
    -3767016, 1250494,  2635921,  -3548272, -2994039, 1869119,  1903435,  -1050970, -1333058, 1237275,  -3318210,
    -1430225, -451100,  1312455,  3306115,  -1962642, -1279661, 1917081,  -2546312, -1374803, 1500165,  777191,
    2235880,  3406031,  -542412,  -2831860, -1671176, -1846953, -2584293, -3724270, 594136,   -3776993, -2013608,
    2432395,  2454455,  -164721,  1957272,  3369112,  185531,   -1207385, -3183426, 162844,   1616392,  3014001,
    810149,   1652634,  -3694233, -1799107, -3038916, 3523897,  3866901,  269760,   2213111,  -975884,  1717735,
    472078,   -426683,  1723600,  -1803090, 1910376,  -1667432, -1104333, -260646,  -3833893, -2939036, -2235985,
    -420899,  -2286327, 183443,   -976891,  1612842,  -3545687, -554416,  3919660,  -48306,   -1362209, 3937738,
    1400424,  -846154,  1976782,
};

/* Algorithm 41 (NTT): Cooley-Tukey butterflies, len 128 down to 1. Each layer
 * grows |a| by less than q, so |a| < q in gives |a| < 9q out. */
void QAI_MLDSA_ARITH_NAME(qai_mldsa_ntt)(int32_t a[AN]) {
    int k = 0;
    for (int len = 128; len > 0; len >>= 1) {
        for (int start = 0; start < AN; start += 2 * len) {
            int32_t zeta = zetas[++k];
            for (int j = start; j < start + len; j++) {
                int32_t t = mont((int64_t)zeta * a[j + len]);
                a[j + len] = a[j] - t;
                a[j] = a[j] + t;
            }
        }
    }
}

/* Algorithm 42 (NTT^-1): Gentleman-Sande butterflies, len 1 up to 128, then
 * the factor f = 2^64 / 256 mod q = 41978 in Montgomery form, which divides by
 * 256 and multiplies by 2^32. The unreduced sums at most double per layer:
 * |a| < q in keeps them below 256q < 2^31. */
void QAI_MLDSA_ARITH_NAME(qai_mldsa_invntt_tomont)(int32_t a[AN]) {
    const int32_t f = 41978;
    int k = 256;
    for (int len = 1; len < AN; len <<= 1) {
        for (int start = 0; start < AN; start += 2 * len) {
            int32_t zeta = -zetas[--k];
            for (int j = start; j < start + len; j++) {
                int32_t t = a[j];
                a[j] = t + a[j + len];
                a[j + len] = t - a[j + len];
                a[j + len] = mont((int64_t)zeta * a[j + len]);
            }
        }
    }
    for (int j = 0; j < AN; j++) a[j] = mont((int64_t)f * a[j]);
}

void QAI_MLDSA_ARITH_NAME(qai_mldsa_pointwise_mont)(int32_t c[AN], const int32_t a[AN], const int32_t b[AN]) {
    for (int i = 0; i < AN; i++) c[i] = mont((int64_t)a[i] * b[i]);
}

/* c = sum over j < n of a[j] o b[j] (polynomials of AN coefficients stored one
 * after another); each product is below q, so the sum of n <= 8 fits. */
void QAI_MLDSA_ARITH_NAME(qai_mldsa_pointwise_acc)(int32_t c[AN], const int32_t *a, const int32_t *b, int n) {
    for (int i = 0; i < AN; i++) c[i] = mont((int64_t)a[i] * b[i]);
    for (int j = 1; j < n; j++)
        for (int i = 0; i < AN; i++) c[i] += mont((int64_t)a[j * AN + i] * b[j * AN + i]);
}

