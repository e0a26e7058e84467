/*
 * sha3.c — Keccak-f[1600] and the FIPS 202 sponge (SHA3-256, SHA3-512,
 * SHAKE128, SHAKE256). Written from FIPS 202 sections 3 (the step mappings
 * theta, rho, pi, chi, iota), 4 (the sponge) and 6 (domain bits 01 for SHA-3
 * and 1111 for SHAKE, followed by pad10*1).
 *
 * The permutation keeps the 25 lanes in locals and runs one straight-line
 * round 24 times; lanes are loaded and stored little-endian (x86-64 and every
 * little-endian target read them directly). Nothing here branches on data.
 *
 * What it does not do: see sha3.h.
 */
#include "registry/sha3.h"

#include <string.h>

#include <sodium.h>

#define ROL64(v, n) (((v) << (n)) | ((v) >> (64 - (n))))

/* Round constants RC[i] of the iota step (FIPS 202 section 3.2.5). */
const uint64_t qai_keccak_rc[24] = {
    0x0000000000000001ULL, 0x0000000000008082ULL, 0x800000000000808AULL, 0x8000000080008000ULL,
    0x000000000000808BULL, 0x0000000080000001ULL, 0x8000000080008081ULL, 0x8000000000008009ULL,
    0x000000000000008AULL, 0x0000000000000088ULL, 0x0000000080008009ULL, 0x000000008000000AULL,
    0x000000008000808BULL, 0x800000000000008BULL, 0x8000000000008089ULL, 0x8000000000008003ULL,
    0x8000000000008002ULL, 0x8000000000000080ULL, 0x000000000000800AULL, 0x800000008000000AULL,
    0x8000000080008081ULL, 0x8000000000008080ULL, 0x0000000080000001ULL, 0x8000000080008008ULL,
};

void qai_keccak_f1600(uint64_t s[25]) {
    uint64_t a0 = s[0], a1 = s[1], a2 = s[2], a3 = s[3], a4 = s[4];
    uint64_t a5 = s[5], a6 = s[6], a7 = s[7], a8 = s[8], a9 = s[9];
    uint64_t a10 = s[10], a11 = s[11], a12 = s[12], a13 = s[13], a14 = s[14];
    uint64_t a15 = s[15], a16 = s[16], a17 = s[17], a18 = s[18], a19 = s[19];
    uint64_t a20 = s[20], a21 = s[21], a22 = s[22], a23 = s[23], a24 = s[24];
    uint64_t b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11, b12, b13, b14, b15, b16, b17, b18, b19, b20, b21,
        b22, b23, b24;
    uint64_t c0, c1, c2, c3, c4, d0, d1, d2, d3, d4;
    for (int round = 0; round < 24; round++) {
        /* theta */
        c0 = a0 ^ a5 ^ a10 ^ a15 ^ a20;
        c1 = a1 ^ a6 ^ a11 ^ a16 ^ a21;
        c2 = a2 ^ a7 ^ a12 ^ a17 ^ a22;
        c3 = a3 ^ a8 ^ a13 ^ a18 ^ a23;
        c4 = a4 ^ a9 ^ a14 ^ a19 ^ a24;
        d0 = c4 ^ ROL64(c1, 1);
        d1 = c0 ^ ROL64(c2, 1);
        d2 = c1 ^ ROL64(c3, 1);
        d3 = c2 ^ ROL64(c4, 1);
        d4 = c3 ^ ROL64(c0, 1);
        /* rho and pi: lane (x, y) moves to (y, 2x + 3y) rotated by its offset */
        b0 = a0 ^ d0;
        b10 = ROL64(a1 ^ d1, 1);
        b20 = ROL64(a2 ^ d2, 62);
        b5 = ROL64(a3 ^ d3, 28);
        b15 = ROL64(a4 ^ d4, 27);
        b16 = ROL64(a5 ^ d0, 36);
        b1 = ROL64(a6 ^ d1, 44);
        b11 = ROL64(a7 ^ d2, 6);
        b21 = ROL64(a8 ^ d3, 55);
        b6 = ROL64(a9 ^ d4, 20);
        b7 = ROL64(a10 ^ d0, 3);
        b17 = ROL64(a11 ^ d1, 10);
        b2 = ROL64(a12 ^ d2, 43);
        b12 = ROL64(a13 ^ d3, 25);
        b22 = ROL64(a14 ^ d4, 39);
        b23 = ROL64(a15 ^ d0, 41);
        b8 = ROL64(a16 ^ d1, 45);
        b18 = ROL64(a17 ^ d2, 15);
        b3 = ROL64(a18 ^ d3, 21);
        b13 = ROL64(a19 ^ d4, 8);
        b14 = ROL64(a20 ^ d0, 18);
        b24 = ROL64(a21 ^ d1, 2);
        b9 = ROL64(a22 ^ d2, 61);
        b19 = ROL64(a23 ^ d3, 56);
        b4 = ROL64(a24 ^ d4, 14);
        /* chi */
        a0 = b0 ^ (~b1 & b2);
        a1 = b1 ^ (~b2 & b3);
        a2 = b2 ^ (~b3 & b4);
        a3 = b3 ^ (~b4 & b0);
        a4 = b4 ^ (~b0 & b1);
        a5 = b5 ^ (~b6 & b7);
        a6 = b6 ^ (~b7 & b8);
        a7 = b7 ^ (~b8 & b9);
        a8 = b8 ^ (~b9 & b5);
        a9 = b9 ^ (~b5 & b6);
        a10 = b10 ^ (~b11 & b12);
        a11 = b11 ^ (~b12 & b13);
        a12 = b12 ^ (~b13 & b14);
        a13 = b13 ^ (~b14 & b10);
        a14 = b14 ^ (~b10 & b11);
        a15 = b15 ^ (~b16 & b17);
        a16 = b16 ^ (~b17 & b18);
        a17 = b17 ^ (~b18 & b19);
        a18 = b18 ^ (~b19 & b15);
        a19 = b19 ^ (~b15 & b16);
        a20 = b20 ^ (~b21 & b22);
        a21 = b21 ^ (~b22 & b23);
        a22 = b22 ^ (~b23 & b24);
        a23 = b23 ^ (~b24 & b20);
        a24 = b24 ^ (~b20 & b21);
        /* iota */
        a0 ^= qai_keccak_rc[round];
    }
    s[0] = a0, s[1] = a1, s[2] = a2, s[3] = a3, s[4] = a4;
    s[5] = a5, s[6] = a6, s[7] = a7, s[8] = a8, s[9] = a9;
    s[10] = a10, s[11] = a11, s[12] = a12, s[13] = a13, s[14] = a14;
    s[15] = a15, s[16] = a16, s[17] = a17, s[18] = a18, s[19] = a19;
    s[20] = a20, s[21] = a21, s[22] = a22, s[23] = a23, s[24] = a24;
}

/* ---- byte access to the lanes (little-endian lane order, FIPS 202 B.1) ---- */

static inline void xor_bytes(uint64_t s[25], unsigned off, const uint8_t *in, size_t n) {
    uint8_t *st = (uint8_t *)s;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    for (size_t i = 0; i < n; i++) st[off + i] ^= in[i];
#else
    for (size_t i = 0; i < n; i++) s[(off + i) / 8] ^= (uint64_t)in[i] << (8 * ((off + i) % 8));
    (void)st;
#endif
}

static inline void read_bytes(const uint64_t s[25], unsigned off, uint8_t *out, size_t n) {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(out, (const uint8_t *)s + off, n);
#else
    for (size_t i = 0; i < n; i++) out[i] = (uint8_t)(s[(off + i) / 8] >> (8 * ((off + i) % 8)));
#endif
}

static void init(qai_keccak *k, unsigned rate, uint8_t dsbyte) {
    memset(k->s, 0, sizeof k->s);
    k->rate = rate;
    k->pos = 0;
    k->dsbyte = dsbyte;
    k->squeezing = 0;
}

void qai_shake128_init(qai_keccak *k) { init(k, QAI_SHAKE128_RATE, 0x1F); }
void qai_shake256_init(qai_keccak *k) { init(k, QAI_SHAKE256_RATE, 0x1F); }
void qai_sha3_256_init(qai_keccak *k) { init(k, QAI_SHA3_256_RATE, 0x06); }
void qai_sha3_512_init(qai_keccak *k) { init(k, QAI_SHA3_512_RATE, 0x06); }

void qai_keccak_absorb(qai_keccak *k, const void *data, size_t n) {
    const uint8_t *p = data;
    if (k->squeezing) return; /* see sha3.h: absorbing after squeezing is a caller bug */
    while (n > 0) {
        size_t take = k->rate - k->pos;
        if (take > n) take = n;
        xor_bytes(k->s, k->pos, p, take);
        k->pos += (unsigned)take;
        p += take;
        n -= take;
        if (k->pos == k->rate) {
            qai_keccak_f1600(k->s);
            k->pos = 0;
        }
    }
}

/* pad10*1 with the domain bits folded into the first padding byte, then the
 * first permutation of the squeezing phase. */
static void finalize(qai_keccak *k) {
    uint8_t first = k->dsbyte, last = 0x80;
    xor_bytes(k->s, k->pos, &first, 1);
    xor_bytes(k->s, k->rate - 1, &last, 1);
    qai_keccak_f1600(k->s);
    k->pos = 0;
    k->squeezing = 1;
}

void qai_keccak_squeeze(qai_keccak *k, uint8_t *out, size_t n) {
    if (!k->squeezing) finalize(k);
    while (n > 0) {
        if (k->pos == k->rate) {
            qai_keccak_f1600(k->s);
            k->pos = 0;
        }
        size_t take = k->rate - k->pos;
        if (take > n) take = n;
        read_bytes(k->s, k->pos, out, take);
        k->pos += (unsigned)take;
        out += take;
        n -= take;
    }
}

void qai_keccak_wipe(qai_keccak *k) { sodium_memzero(k, sizeof *k); }

void qai_sha3_256(const void *data, size_t n, uint8_t out[32]) {
    qai_keccak k;
    qai_sha3_256_init(&k);
    qai_keccak_absorb(&k, data, n);
    qai_keccak_squeeze(&k, out, 32);
    qai_keccak_wipe(&k);
}

void qai_sha3_512(const void *data, size_t n, uint8_t out[64]) {
    qai_keccak k;
    qai_sha3_512_init(&k);
    qai_keccak_absorb(&k, data, n);
    qai_keccak_squeeze(&k, out, 64);
    qai_keccak_wipe(&k);
}

void qai_shake128(const void *data, size_t n, uint8_t *out, size_t out_len) {
    qai_keccak k;
    qai_shake128_init(&k);
    qai_keccak_absorb(&k, data, n);
    qai_keccak_squeeze(&k, out, out_len);
    qai_keccak_wipe(&k);
}

void qai_shake256(const void *data, size_t n, uint8_t *out, size_t out_len) {
    qai_keccak k;
    qai_shake256_init(&k);
    qai_keccak_absorb(&k, data, n);
    qai_keccak_squeeze(&k, out, out_len);
    qai_keccak_wipe(&k);
}
