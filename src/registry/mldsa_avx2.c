/*
 * mldsa_avx2.c — the AVX2 side of ML-DSA, compiled with -mavx2 (file name
 * suffix) and used only when the CPU has AVX2 (the choice is made in mldsa.c,
 * see qai_mldsa_use_avx2):
 *  - mldsa_arith.c's NTT kernels, included below and compiled again here so
 *    the compiler vectorizes their loops;
 *  - four Keccak-f[1600] permutations at once (lane i of instance j in 64-bit
 *    element j of vector i) for the samplers, which hash many independent
 *    seeds (ExpandA's k*l polynomials, ExpandS, ExpandMask): the same
 *    straight-line round as sha3.c, one 256-bit operation per four 64-bit ones.
 * No data-dependent branches or indices. Both are tested against their scalar
 * references in tests/registry/test_mldsa.c.
 */
#include <immintrin.h>

#include "registry/mldsa.h"
#include "registry/sha3.h"

/* The NTT-domain kernels, compiled here a second time with AVX2 enabled. */
#define QAI_MLDSA_ARITH_NAME(f) f##_avx2
#include "mldsa_arith.c"

#define ROL(v, n) _mm256_or_si256(_mm256_slli_epi64((v), (n)), _mm256_srli_epi64((v), 64 - (n)))
#define XOR5(a, b, c, d, e) \
    _mm256_xor_si256(_mm256_xor_si256(_mm256_xor_si256(a, b), _mm256_xor_si256(c, d)), e)

void qai_mldsa_keccakx4_f1600_avx2(uint64_t s[100]) {
    const uint64_t *rc = qai_keccak_rc;
    __m256i *v = (__m256i *)s;
    __m256i a0 = _mm256_loadu_si256(v + 0), a1 = _mm256_loadu_si256(v + 1), a2 = _mm256_loadu_si256(v + 2),
            a3 = _mm256_loadu_si256(v + 3), a4 = _mm256_loadu_si256(v + 4), a5 = _mm256_loadu_si256(v + 5),
            a6 = _mm256_loadu_si256(v + 6), a7 = _mm256_loadu_si256(v + 7), a8 = _mm256_loadu_si256(v + 8),
            a9 = _mm256_loadu_si256(v + 9), a10 = _mm256_loadu_si256(v + 10), a11 = _mm256_loadu_si256(v + 11),
            a12 = _mm256_loadu_si256(v + 12), a13 = _mm256_loadu_si256(v + 13), a14 = _mm256_loadu_si256(v + 14),
            a15 = _mm256_loadu_si256(v + 15), a16 = _mm256_loadu_si256(v + 16), a17 = _mm256_loadu_si256(v + 17),
            a18 = _mm256_loadu_si256(v + 18), a19 = _mm256_loadu_si256(v + 19), a20 = _mm256_loadu_si256(v + 20),
            a21 = _mm256_loadu_si256(v + 21), a22 = _mm256_loadu_si256(v + 22), a23 = _mm256_loadu_si256(v + 23),
            a24 = _mm256_loadu_si256(v + 24);
    __m256i b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11, b12, b13, b14, b15, b16, b17, b18, b19, b20, b21, b22,
        b23, b24, c0, c1, c2, c3, c4, d0, d1, d2, d3, d4;
    for (int round = 0; round < 24; round++) {
        c0 = XOR5(a0, a5, a10, a15, a20);
        c1 = XOR5(a1, a6, a11, a16, a21);
        c2 = XOR5(a2, a7, a12, a17, a22);
        c3 = XOR5(a3, a8, a13, a18, a23);
        c4 = XOR5(a4, a9, a14, a19, a24);
        d0 = _mm256_xor_si256(c4, ROL(c1, 1));
        d1 = _mm256_xor_si256(c0, ROL(c2, 1));
        d2 = _mm256_xor_si256(c1, ROL(c3, 1));
        d3 = _mm256_xor_si256(c2, ROL(c4, 1));
        d4 = _mm256_xor_si256(c3, ROL(c0, 1));
        b0 = _mm256_xor_si256(a0, d0);
        b10 = ROL(_mm256_xor_si256(a1, d1), 1);
        b20 = ROL(_mm256_xor_si256(a2, d2), 62);
        b5 = ROL(_mm256_xor_si256(a3, d3), 28);
        b15 = ROL(_mm256_xor_si256(a4, d4), 27);
        b16 = ROL(_mm256_xor_si256(a5, d0), 36);
        b1 = ROL(_mm256_xor_si256(a6, d1), 44);
        b11 = ROL(_mm256_xor_si256(a7, d2), 6);
        b21 = ROL(_mm256_xor_si256(a8, d3), 55);
        b6 = ROL(_mm256_xor_si256(a9, d4), 20);
        b7 = ROL(_mm256_xor_si256(a10, d0), 3);
        b17 = ROL(_mm256_xor_si256(a11, d1), 10);
        b2 = ROL(_mm256_xor_si256(a12, d2), 43);
        b12 = ROL(_mm256_xor_si256(a13, d3), 25);
        b22 = ROL(_mm256_xor_si256(a14, d4), 39);
        b23 = ROL(_mm256_xor_si256(a15, d0), 41);
        b8 = ROL(_mm256_xor_si256(a16, d1), 45);
        b18 = ROL(_mm256_xor_si256(a17, d2), 15);
        b3 = ROL(_mm256_xor_si256(a18, d3), 21);
        b13 = ROL(_mm256_xor_si256(a19, d4), 8);
        b14 = ROL(_mm256_xor_si256(a20, d0), 18);
        b24 = ROL(_mm256_xor_si256(a21, d1), 2);
        b9 = ROL(_mm256_xor_si256(a22, d2), 61);
        b19 = ROL(_mm256_xor_si256(a23, d3), 56);
        b4 = ROL(_mm256_xor_si256(a24, d4), 14);
        a0 = _mm256_xor_si256(b0, _mm256_andnot_si256(b1, b2));
        a1 = _mm256_xor_si256(b1, _mm256_andnot_si256(b2, b3));
        a2 = _mm256_xor_si256(b2, _mm256_andnot_si256(b3, b4));
        a3 = _mm256_xor_si256(b3, _mm256_andnot_si256(b4, b0));
        a4 = _mm256_xor_si256(b4, _mm256_andnot_si256(b0, b1));
        a5 = _mm256_xor_si256(b5, _mm256_andnot_si256(b6, b7));
        a6 = _mm256_xor_si256(b6, _mm256_andnot_si256(b7, b8));
        a7 = _mm256_xor_si256(b7, _mm256_andnot_si256(b8, b9));
        a8 = _mm256_xor_si256(b8, _mm256_andnot_si256(b9, b5));
        a9 = _mm256_xor_si256(b9, _mm256_andnot_si256(b5, b6));
        a10 = _mm256_xor_si256(b10, _mm256_andnot_si256(b11, b12));
        a11 = _mm256_xor_si256(b11, _mm256_andnot_si256(b12, b13));
        a12 = _mm256_xor_si256(b12, _mm256_andnot_si256(b13, b14));
        a13 = _mm256_xor_si256(b13, _mm256_andnot_si256(b14, b10));
        a14 = _mm256_xor_si256(b14, _mm256_andnot_si256(b10, b11));
        a15 = _mm256_xor_si256(b15, _mm256_andnot_si256(b16, b17));
        a16 = _mm256_xor_si256(b16, _mm256_andnot_si256(b17, b18));
        a17 = _mm256_xor_si256(b17, _mm256_andnot_si256(b18, b19));
        a18 = _mm256_xor_si256(b18, _mm256_andnot_si256(b19, b15));
        a19 = _mm256_xor_si256(b19, _mm256_andnot_si256(b15, b16));
        a20 = _mm256_xor_si256(b20, _mm256_andnot_si256(b21, b22));
        a21 = _mm256_xor_si256(b21, _mm256_andnot_si256(b22, b23));
        a22 = _mm256_xor_si256(b22, _mm256_andnot_si256(b23, b24));
        a23 = _mm256_xor_si256(b23, _mm256_andnot_si256(b24, b20));
        a24 = _mm256_xor_si256(b24, _mm256_andnot_si256(b20, b21));
        a0 = _mm256_xor_si256(a0, _mm256_set1_epi64x((long long)rc[round]));
    }
    _mm256_storeu_si256(v + 0, a0), _mm256_storeu_si256(v + 1, a1), _mm256_storeu_si256(v + 2, a2);
    _mm256_storeu_si256(v + 3, a3), _mm256_storeu_si256(v + 4, a4), _mm256_storeu_si256(v + 5, a5);
    _mm256_storeu_si256(v + 6, a6), _mm256_storeu_si256(v + 7, a7), _mm256_storeu_si256(v + 8, a8);
    _mm256_storeu_si256(v + 9, a9), _mm256_storeu_si256(v + 10, a10), _mm256_storeu_si256(v + 11, a11);
    _mm256_storeu_si256(v + 12, a12), _mm256_storeu_si256(v + 13, a13), _mm256_storeu_si256(v + 14, a14);
    _mm256_storeu_si256(v + 15, a15), _mm256_storeu_si256(v + 16, a16), _mm256_storeu_si256(v + 17, a17);
    _mm256_storeu_si256(v + 18, a18), _mm256_storeu_si256(v + 19, a19), _mm256_storeu_si256(v + 20, a20);
    _mm256_storeu_si256(v + 21, a21), _mm256_storeu_si256(v + 22, a22), _mm256_storeu_si256(v + 23, a23);
    _mm256_storeu_si256(v + 24, a24);
}
