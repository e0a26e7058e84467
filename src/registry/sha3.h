/*
 * sha3.h — SHA-3 and SHAKE (FIPS 202) on Keccak-f[1600], internal to libqai.
 *
 * One sponge type serves all four functions: SHA3-256 and SHA3-512 (fixed
 * output) and the extendable-output functions SHAKE128 and SHAKE256 (ML-DSA's
 * G and H). The API is incremental: absorb any number of times, then squeeze
 * any number of times; once squeezing has started no more input is accepted
 * (an absorb after a squeeze is a programming error and is ignored by design:
 * it cannot come from outside input).
 *
 * What it deliberately does not do: cSHAKE/KMAC/TupleHash (SP 800-185), bit-
 * (not byte-) granular messages, or multi-lane SIMD Keccak.
 *
 * Usage:
 *     qai_keccak k;
 *     qai_shake256_init(&k);
 *     qai_keccak_absorb(&k, seed, 32);
 *     qai_keccak_absorb(&k, nonce, 2);
 *     qai_keccak_squeeze(&k, out, 136);   // may be called again for more
 *
 * Thread safety: a qai_keccak is plain data owned by the caller; distinct
 * objects may be used from different threads.
 */
#ifndef QAI_REGISTRY_SHA3_H
#define QAI_REGISTRY_SHA3_H

#include <stddef.h>
#include <stdint.h>

#define QAI_SHAKE128_RATE 168 /* bytes per Keccak block (1600 - 2*128 bits) */
#define QAI_SHAKE256_RATE 136
#define QAI_SHA3_256_RATE 136
#define QAI_SHA3_512_RATE 72

typedef struct {
    uint64_t s[25];     /* the state A[x + 5y], lanes little-endian */
    unsigned rate;      /* block size in bytes */
    unsigned pos;       /* absorb: bytes of the current block taken; squeeze: bytes of it given out */
    uint8_t dsbyte;     /* domain bits + first padding bit: 0x06 SHA-3, 0x1F SHAKE */
    uint8_t squeezing;  /* 0 while absorbing */
} qai_keccak;

/* The iota step's round constants RC[0..23] (FIPS 202 section 3.2.5). */
extern const uint64_t qai_keccak_rc[24];

/* The Keccak-f[1600] permutation (24 rounds), in place. */
void qai_keccak_f1600(uint64_t s[25]);

void qai_shake128_init(qai_keccak *k);
void qai_shake256_init(qai_keccak *k);
void qai_sha3_256_init(qai_keccak *k);
void qai_sha3_512_init(qai_keccak *k);
/* Absorbs n bytes (n may be 0). */
void qai_keccak_absorb(qai_keccak *k, const void *data, size_t n);
/* Squeezes n bytes; the first call pads and switches to squeezing. For the
 * SHA3 functions squeeze exactly the digest length (32 or 64 bytes) once. */
void qai_keccak_squeeze(qai_keccak *k, uint8_t *out, size_t n);
/* Wipes the state (it may hold secret material). */
void qai_keccak_wipe(qai_keccak *k);

/* One-shot helpers. */
void qai_sha3_256(const void *data, size_t n, uint8_t out[32]);
void qai_sha3_512(const void *data, size_t n, uint8_t out[64]);
void qai_shake128(const void *data, size_t n, uint8_t *out, size_t out_len);
void qai_shake256(const void *data, size_t n, uint8_t *out, size_t out_len);

#endif
