/*
 * mldsa.h — ML-DSA (FIPS 204) signatures: ML-DSA-44, ML-DSA-65, ML-DSA-87.
 * Internal to libqai; the public face is the hybrid identity in qai/sign.h.
 *
 * Both interfaces of the standard are here:
 *  - the internal one (Algorithms 6-8: ML-DSA.KeyGen_internal, Sign_internal,
 *    Verify_internal) that takes the formatted message M' directly, as NIST's
 *    ACVP vectors do; plus the "external mu" form that takes
 *    mu = H(tr || M', 64) (Wycheproof's "Internal" vectors);
 *  - the external pure one (Algorithms 1-3: ML-DSA.KeyGen, Sign, Verify) that
 *    signs M' = 0 || len(ctx) || ctx || M with a context string of 0-255 bytes.
 * Signing is hedged (fresh 32-byte rnd from libsodium's randombytes) unless
 * the caller passes rnd (32 zero bytes = the deterministic variant).
 *
 * Keys and signatures are the byte strings of FIPS 204 (pkEncode, skEncode,
 * sigEncode). Secret data is handled without secret-dependent branches or
 * table indices (NTT, Montgomery/Barrett reductions, bit unpacking, Decompose,
 * MakeHint, the norm checks, SampleInBall's swaps); what the rejection loop
 * reveals is only how many iterations it took, as the standard allows.
 * Secret intermediates are wiped with sodium_memzero.
 *
 * What it deliberately does not do: HashML-DSA (the pre-hash variant), key
 * formats other than FIPS 204's raw bytes (no PKCS#8/DER), hand-written SIMD NTTs
 * (the AVX2 build of the NTT is the compiler's vectorization of the scalar code).
 *
 * Speed: the samplers (ExpandA, ExpandS, ExpandMask) run four SHAKE instances
 * side by side, with an AVX2 Keccak when the CPU has one (mldsa_avx2.c) and
 * the scalar permutation otherwise; both produce identical bytes.
 *
 * Thread safety: every function is reentrant; the only global is the
 * AVX2-or-scalar choice (an atomic, see qai_mldsa_use_avx2). Each call
 * allocates one workspace (~150 KB for ML-DSA-87) with qai_malloc.
 */
#ifndef QAI_REGISTRY_MLDSA_H
#define QAI_REGISTRY_MLDSA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qai/base.h"

typedef enum { QAI_MLDSA_44 = 0, QAI_MLDSA_65 = 1, QAI_MLDSA_87 = 2 } qai_mldsa_kind;

/* Parameter set (FIPS 204 Table 1) and derived byte sizes (Table 2). */
typedef struct {
    const char *name; /* "ML-DSA-44" ... */
    int k, l;         /* matrix A is k x l */
    int eta;          /* private key range */
    int tau;          /* number of +-1 in the challenge c */
    int beta;         /* tau * eta */
    int omega;        /* max number of 1s in the hint h */
    int lambda;       /* collision strength; c~ has lambda/4 bytes */
    int32_t gamma1;   /* y coefficient range */
    int32_t gamma2;   /* low-order rounding range */
    size_t pk_bytes, sk_bytes, sig_bytes;
} qai_mldsa_params;

#define QAI_MLDSA_SEED_BYTES 32
#define QAI_MLDSA_RND_BYTES 32
#define QAI_MLDSA_MU_BYTES 64
#define QAI_MLDSA_MAX_PK_BYTES 2592
#define QAI_MLDSA_MAX_SK_BYTES 4896
#define QAI_MLDSA_MAX_SIG_BYTES 4627
#define QAI_MLDSA_MAX_CTX_BYTES 255

const qai_mldsa_params *qai_mldsa_params_get(qai_mldsa_kind kind);
/* "ML-DSA-44", "ML-DSA-65", "ML-DSA-87" (case-sensitive); NULL if unknown. */
const qai_mldsa_params *qai_mldsa_params_by_name(const char *name);

/* ML-DSA.KeyGen_internal (Algorithm 6): pk (p->pk_bytes) and sk (p->sk_bytes)
 * from the 32-byte seed xi. Fails only on allocation failure. */
qai_status qai_mldsa_keygen_seed(const qai_mldsa_params *p, const uint8_t xi[32], uint8_t *pk, uint8_t *sk);
/* ML-DSA.KeyGen (Algorithm 1): a fresh seed from randombytes. If xi_out is not
 * NULL the seed is copied there (it is the whole private key: keygen_seed
 * re-creates pk and sk from it); otherwise it is wiped. */
qai_status qai_mldsa_keygen(const qai_mldsa_params *p, uint8_t *pk, uint8_t *sk, uint8_t *xi_out);

/* ML-DSA.Sign (Algorithm 2): signs msg with context ctx (ctx_len <= 255, ctx
 * may be NULL when ctx_len is 0). rnd: NULL for hedged signing with fresh
 * randomness, or 32 caller bytes (all zero = deterministic ML-DSA). sig gets
 * p->sig_bytes. Errors: sk of the wrong length or with out-of-range s1/s2
 * coefficients (QAI_ERR_FORMAT), ctx too long (QAI_ERR_ARG), no memory. */
qai_status qai_mldsa_sign(const qai_mldsa_params *p, const uint8_t *sk, size_t sk_len, const void *msg, size_t msg_len,
                          const void *ctx, size_t ctx_len, const uint8_t *rnd, uint8_t *sig);
/* ML-DSA.Verify (Algorithm 3). QAI_OK if the signature is valid; otherwise a
 * negative status with a message saying why: a wrong length of pk or sig, a
 * context over 255 bytes, a malformed hint encoding, z out of range, or "the
 * signature does not match" (all QAI_ERR_FORMAT, ctx too long QAI_ERR_ARG). */
qai_status qai_mldsa_verify(const qai_mldsa_params *p, const uint8_t *pk, size_t pk_len, const void *msg,
                            size_t msg_len, const void *ctx, size_t ctx_len, const uint8_t *sig, size_t sig_len);

/* ML-DSA.Sign_internal / Verify_internal (Algorithms 7, 8) on the formatted
 * message M' (no context prefix added). rnd as above but required. */
qai_status qai_mldsa_sign_internal(const qai_mldsa_params *p, const uint8_t *sk, size_t sk_len, const uint8_t *mprime,
                                   size_t mprime_len, const uint8_t rnd[32], uint8_t *sig);
qai_status qai_mldsa_verify_internal(const qai_mldsa_params *p, const uint8_t *pk, size_t pk_len,
                                     const uint8_t *mprime, size_t mprime_len, const uint8_t *sig, size_t sig_len);
/* The same with mu = H(tr || M', 64) computed by the caller ("external mu"). */
qai_status qai_mldsa_sign_mu(const qai_mldsa_params *p, const uint8_t *sk, size_t sk_len, const uint8_t mu[64],
                             const uint8_t rnd[32], uint8_t *sig);
qai_status qai_mldsa_verify_mu(const qai_mldsa_params *p, const uint8_t *pk, size_t pk_len, const uint8_t mu[64],
                               const uint8_t *sig, size_t sig_len);
/* mu for the external interface: H(H(pk, 64) || 0 || len(ctx) || ctx || msg, 64). */
qai_status qai_mldsa_external_mu(const uint8_t *pk, size_t pk_len, const void *msg, size_t msg_len, const void *ctx,
                                 size_t ctx_len, uint8_t mu[64]);

/* ---- the arithmetic, exposed for tests (tests/registry/test_mldsa.c) ---- */

#define QAI_MLDSA_Q 8380417
#define QAI_MLDSA_N 256

/* Forward NTT in place: standard-order coefficients (|a| < q) to the NTT
 * domain in FIPS 204's bit-reversed order; outputs |a| < 9q. */
void qai_mldsa_ntt(int32_t a[256]);
/* Inverse NTT times the Montgomery factor 2^32 (so that it undoes the 2^-32 of
 * one Montgomery pointwise product); input |a| < q, output |a| < q. */
void qai_mldsa_invntt_tomont(int32_t a[256]);
/* c = a * b * 2^-32 coefficient-wise (Montgomery). */
void qai_mldsa_pointwise_mont(int32_t c[256], const int32_t a[256], const int32_t b[256]);
/* a * 2^-32 mod q, in (-q, q), for |a| < 2^31 * q. */
int32_t qai_mldsa_mont_reduce(int64_t a);
/* Representative in [-6283008, 6283008] of a (|a| < 2^31 - 2^22). */
int32_t qai_mldsa_reduce32(int32_t a);
/* Power2Round (Algorithm 35) of r in [0, q): r1 returned, r0 in *r0. */
int32_t qai_mldsa_power2round(int32_t r, int32_t *r0);
/* Decompose (Algorithm 36) of r in [0, q) for gamma2 = (q-1)/88 or (q-1)/32. */
int32_t qai_mldsa_decompose(int32_t r, int32_t gamma2, int32_t *r0);
/* UseHint (Algorithm 40). */
int32_t qai_mldsa_use_hint(int32_t h, int32_t r, int32_t gamma2);
/* SampleInBall (Algorithm 29) from c~ (clen bytes): tau coefficients +-1. */
void qai_mldsa_sample_in_ball(int32_t c[256], const uint8_t *ctilde, size_t clen, int tau);


/* Four Keccak-f[1600] permutations at once; lane i of instance j is
 * s[4*i + j]. The AVX2 one (mldsa_avx2.c) needs a CPU with AVX2; the scalar
 * one is the reference it is tested against. */
void qai_mldsa_keccakx4_f1600_avx2(uint64_t s[100]);
/* mldsa_arith.c's kernels under both names (scalar reference, AVX2 build);
 * pointwise_acc: c = sum_{j<n} a[j] o b[j] (Montgomery), n polynomials each. */
void qai_mldsa_ntt_scalar(int32_t a[256]);
void qai_mldsa_ntt_avx2(int32_t a[256]);
void qai_mldsa_invntt_tomont_scalar(int32_t a[256]);
void qai_mldsa_invntt_tomont_avx2(int32_t a[256]);
void qai_mldsa_pointwise_mont_scalar(int32_t c[256], const int32_t a[256], const int32_t b[256]);
void qai_mldsa_pointwise_mont_avx2(int32_t c[256], const int32_t a[256], const int32_t b[256]);
void qai_mldsa_pointwise_acc_scalar(int32_t c[256], const int32_t *a, const int32_t *b, int n);
void qai_mldsa_pointwise_acc_avx2(int32_t c[256], const int32_t *a, const int32_t *b, int n);
void qai_mldsa_keccakx4_f1600_scalar(uint64_t s[100]);
/* The samplers use the AVX2 permutation when the CPU has it (decided at first
 * use). enable = false forces the scalar one, true restores the default;
 * returns whether AVX2 is now used. For tests and benchmarks: call it before
 * signing starts on other threads. */
bool qai_mldsa_use_avx2(bool enable);

#endif
