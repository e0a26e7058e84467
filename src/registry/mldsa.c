/*
 * mldsa.c — ML-DSA-44/65/87 (FIPS 204): key generation, signing and
 * verification, written from the standard's pseudocode (section numbers and
 * algorithm numbers below are FIPS 204's, August 2024).
 *
 * Arithmetic: coefficients are int32 modulo q = 8380417. Products go through
 * Montgomery reduction (R = 2^32) and sums through a Barrett-style reduce32,
 * both branch-free; the NTT kernels and their Montgomery-form twiddles are in
 * mldsa_arith.c (scalar and AVX2 builds). Bounds are noted where they matter
 * (|a| < k*q means "absolute value below").
 *
 * Side channels: nothing branches on, or indexes memory with, secret data:
 * sk unpacking, ExpandS's bounded sampler (candidates are written
 * unconditionally and the write position advances by a 0/1 flag), the NTTs,
 * Decompose (multiply-shift division), MakeHint, the norm checks (which scan
 * every coefficient) and SampleInBall (its swap at a data-dependent position
 * is done with masks over the whole prefix). What leaks is the number of
 * rejection-loop iterations and of rejected sampler bytes; the values of a
 * rejected iteration's z, h and r0 are never released (its workspace is
 * overwritten and finally wiped).
 *
 * What it does not do: see mldsa.h.
 */
#include "registry/mldsa.h"

#include <stdatomic.h>
#include <string.h>

#include <sodium.h>

#include "registry/sha3.h"

#define Q QAI_MLDSA_Q
#define N QAI_MLDSA_N
#define QINV 58728449 /* q^-1 mod 2^32 */
#define D 13          /* dropped bits of t */
#define MAXK 8
#define MAXL 7

/* FIPS 204 Table 1. Byte sizes (Table 2): pk = 32 + 320k; sk = 128 +
 * 32*bitlen(2 eta)*(k + l) + 416k; sig = lambda/4 + 32*(1 + bitlen(gamma1 - 1))*l
 * + omega + k; tests/registry/test_mldsa.c checks them against the formulas. */
static const qai_mldsa_params PARAMS[3] = {
    {"ML-DSA-44", 4, 4, 2, 39, 78, 80, 128, 1 << 17, (Q - 1) / 88, 1312, 2560, 2420},
    {"ML-DSA-65", 6, 5, 4, 49, 196, 55, 192, 1 << 19, (Q - 1) / 32, 1952, 4032, 3309},
    {"ML-DSA-87", 8, 7, 2, 60, 120, 75, 256, 1 << 19, (Q - 1) / 32, 2592, 4896, 4627},
};

const qai_mldsa_params *qai_mldsa_params_get(qai_mldsa_kind kind) {
    if ((int)kind < 0 || (int)kind > 2) return NULL;
    return &PARAMS[kind];
}

const qai_mldsa_params *qai_mldsa_params_by_name(const char *name) {
    for (int i = 0; i < 3; i++)
        if (name && strcmp(name, PARAMS[i].name) == 0) return &PARAMS[i];
    return NULL;
}

typedef struct {
    int32_t c[N];
} poly;

/* ---- modular arithmetic ------------------------------------------------ */

int32_t qai_mldsa_mont_reduce(int64_t a) {
    /* t = a * q^-1 mod 2^32 (as a signed value); a - t*q is divisible by 2^32 */
    int32_t t = (int32_t)((uint32_t)(uint64_t)a * (uint32_t)QINV);
    return (int32_t)((a - (int64_t)t * Q) >> 32);
}

int32_t qai_mldsa_reduce32(int32_t a) {
    /* 2^23 is just below q: subtract round(a / 2^23) multiples of q */
    int32_t t = (a + (1 << 22)) >> 23;
    return a - t * Q;
}

/* Adds q if a is negative. */
static inline int32_t caddq(int32_t a) { return a + ((a >> 31) & Q); }
/* The representative in [0, q) (for |a| < 2^31 - 2^22). */
static inline int32_t freeze(int32_t a) { return caddq(qai_mldsa_reduce32(a)); }

/* The NTT-domain kernels live in mldsa_arith.c, built as a scalar reference
 * and again with AVX2 (see there); these pick one like the Keccak does. */
static int use_avx2_now(void);

void qai_mldsa_ntt(int32_t a[N]) {
    if (use_avx2_now()) qai_mldsa_ntt_avx2(a);
    else qai_mldsa_ntt_scalar(a);
}

void qai_mldsa_invntt_tomont(int32_t a[N]) {
    if (use_avx2_now()) qai_mldsa_invntt_tomont_avx2(a);
    else qai_mldsa_invntt_tomont_scalar(a);
}

void qai_mldsa_pointwise_mont(int32_t c[N], const int32_t a[N], const int32_t b[N]) {
    if (use_avx2_now()) qai_mldsa_pointwise_mont_avx2(c, a, b);
    else qai_mldsa_pointwise_mont_scalar(c, a, b);
}

static void poly_reduce(poly *a) {
    for (int i = 0; i < N; i++) a->c[i] = qai_mldsa_reduce32(a->c[i]);
}

static void poly_freeze(poly *a) {
    for (int i = 0; i < N; i++) a->c[i] = freeze(a->c[i]);
}

/* acc = sum_j a[j] o b[j] in the NTT domain (each product |.| < q, so the sum
 * of at most 7 stays below 7q). */
static void matvec_row(poly *out, const poly *a, const poly *b, int l) {
    if (use_avx2_now()) qai_mldsa_pointwise_acc_avx2(out->c, a[0].c, b[0].c, l);
    else qai_mldsa_pointwise_acc_scalar(out->c, a[0].c, b[0].c, l);
}

/* NTT^-1(a o b) for one product, reduced to (-q, q). */
static void mul_invntt(poly *out, const poly *ahat, const poly *bhat) {
    qai_mldsa_pointwise_mont(out->c, ahat->c, bhat->c);
    qai_mldsa_invntt_tomont(out->c);
}

/* ---- rounding (section 7.4) ---------------------------------------------- */

int32_t qai_mldsa_power2round(int32_t r, int32_t *r0) {
    /* r1 = ceil((r - 2^12) / 2^13) = floor((r + 2^12 - 1) / 2^13) gives r0 in (-2^12, 2^12] */
    int32_t r1 = (r + (1 << (D - 1)) - 1) >> D;
    *r0 = r - (r1 << D);
    return r1;
}

int32_t qai_mldsa_decompose(int32_t r, int32_t gamma2, int32_t *r0) {
    /* r1 = floor((r + gamma2 - 1) / (2 gamma2)) puts r0 = r - r1*2gamma2 in
     * (-gamma2, gamma2]. The division is a multiply-shift by ceil(2^48 / d),
     * exact for every r + gamma2 < 2^24 because 2^24 * d < 2^48. */
    int32_t two_g2, m;
    uint64_t magic;
    if (gamma2 == (Q - 1) / 88) {
        two_g2 = 190464, m = 44, magic = 1477838210u;
    } else {
        two_g2 = 523776, m = 16, magic = 537395713u;
    }
    int32_t r1 = (int32_t)(((uint64_t)(uint32_t)(r + gamma2 - 1) * magic) >> 48);
    int32_t lo = r - r1 * two_g2;
    /* the wrap-around case r - r0 = q - 1 (r1 == m): r1 = 0, r0 = r0 - 1 */
    int32_t wrap = (m - 1 - r1) >> 31; /* -1 iff r1 == m (r1 <= m always) */
    *r0 = lo + wrap;
    return r1 & ~wrap;
}

int32_t qai_mldsa_use_hint(int32_t h, int32_t r, int32_t gamma2) {
    int32_t m = (Q - 1) / (2 * gamma2), r0;
    int32_t r1 = qai_mldsa_decompose(r, gamma2, &r0);
    if (!h) return r1;
    if (r0 > 0) return r1 == m - 1 ? 0 : r1 + 1;
    return r1 == 0 ? m - 1 : r1 - 1;
}

/* 1 if |a| >= bound, for a reduced by reduce32 and bound <= (q-1)/8: then a
 * equals the centered representative whenever that is below the bound (the
 * other representatives are beyond q - bound > 6283008). Branch-free. */
static inline uint32_t exceeds(int32_t a, int32_t bound) {
    int32_t abs = a - ((a >> 31) & (2 * a));
    return (uint32_t)(bound - 1 - abs) >> 31;
}

static uint32_t poly_exceeds(const poly *a, int32_t bound) {
    uint32_t bad = 0;
    for (int i = 0; i < N; i++) bad |= exceeds(a->c[i], bound);
    return bad;
}

/* ---- bit packing (section 7.1): little-endian bit order ------------------- */

/* Packs 256 values of `bits` bits each (256*bits is a multiple of 8). */
static void pack_bits(uint8_t *out, const uint32_t v[N], int bits) {
    uint64_t acc = 0;
    int nacc = 0;
    for (int i = 0; i < N; i++) {
        acc |= (uint64_t)v[i] << nacc;
        nacc += bits;
        while (nacc >= 8) {
            *out++ = (uint8_t)acc;
            acc >>= 8;
            nacc -= 8;
        }
    }
}

static void unpack_bits(uint32_t v[N], const uint8_t *in, int bits) {
    uint64_t acc = 0;
    int nacc = 0;
    uint32_t mask = (1u << bits) - 1;
    for (int i = 0; i < N; i++) {
        while (nacc < bits) {
            acc |= (uint64_t)*in++ << nacc;
            nacc += 8;
        }
        v[i] = (uint32_t)acc & mask;
        acc >>= bits;
        nacc -= bits;
    }
}

/* BitPack(w, a, b) stores b - w_i; SimpleBitPack (b = 0, sign +1) stores w_i. */
static void poly_pack(uint8_t *out, const poly *a, int bits, int32_t b, int sub) {
    uint32_t v[N];
    for (int i = 0; i < N; i++) v[i] = (uint32_t)(sub ? b - a->c[i] : a->c[i]);
    pack_bits(out, v, bits);
}

static void poly_unpack(poly *a, const uint8_t *in, int bits, int32_t b, int sub) {
    uint32_t v[N];
    unpack_bits(v, in, bits);
    for (int i = 0; i < N; i++) a->c[i] = sub ? b - (int32_t)v[i] : (int32_t)v[i];
}

static int bitlen(uint32_t x) {
    int n = 0;
    while (x) n++, x >>= 1;
    return n;
}

/* Layout helpers derived from the parameters. */
static int eta_bits(const qai_mldsa_params *p) { return bitlen((uint32_t)(2 * p->eta)); }
static int z_bits(const qai_mldsa_params *p) { return 1 + bitlen((uint32_t)(p->gamma1 - 1)); }
static int w1_bits(const qai_mldsa_params *p) { return bitlen((uint32_t)((Q - 1) / (2 * p->gamma2) - 1)); }
static size_t ctilde_bytes(const qai_mldsa_params *p) { return (size_t)p->lambda / 4; }

/* ---- sampling (section 7.3) ------------------------------------------------ */

/* ---- four-way SHAKE for the samplers -------------------------------------- */

/* The samplers hash many independent seeds of equal length, so they run four
 * Keccak instances side by side: lane i of instance j is s[4*i + j]. The
 * permutation is AVX2 when the CPU has it, else four scalar permutations
 * (the reference); both give the same bytes. */
static atomic_int g_avx2 = -1; /* -1 not yet decided, 0 scalar, 1 AVX2 */

static int cpu_has_avx2(void) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") != 0;
#else
    return 0;
#endif
}

bool qai_mldsa_use_avx2(bool enable) {
    int v = enable && cpu_has_avx2();
    atomic_store(&g_avx2, v);
    return v != 0;
}

void qai_mldsa_keccakx4_f1600_scalar(uint64_t s[100]) {
    uint64_t one[25];
    for (int j = 0; j < 4; j++) {
        for (int i = 0; i < 25; i++) one[i] = s[4 * i + j];
        qai_keccak_f1600(one);
        for (int i = 0; i < 25; i++) s[4 * i + j] = one[i];
    }
    sodium_memzero(one, sizeof one);
}

static int use_avx2_now(void) {
    int v = atomic_load_explicit(&g_avx2, memory_order_relaxed);
    if (v < 0) {
        v = cpu_has_avx2();
        atomic_store(&g_avx2, v);
    }
    return v;
}

static void x4_permute(uint64_t s[100]) {
#if defined(__x86_64__)
    if (use_avx2_now()) {
        qai_mldsa_keccakx4_f1600_avx2(s);
        return;
    }
#endif
    qai_mldsa_keccakx4_f1600_scalar(s);
}

/* Absorbs four inputs of inlen < rate bytes each and pads them (SHAKE's
 * domain bits 1111 then pad10*1); the first squeeze permutes. */
static void x4_absorb(uint64_t s[100], unsigned rate, const uint8_t *const in[4], size_t inlen) {
    memset(s, 0, 100 * sizeof s[0]);
    for (int j = 0; j < 4; j++) {
        for (size_t i = 0; i < inlen; i++) s[4 * (i / 8) + j] ^= (uint64_t)in[j][i] << (8 * (i % 8));
        s[4 * (inlen / 8) + j] ^= (uint64_t)0x1F << (8 * (inlen % 8));
        s[4 * ((rate - 1) / 8) + j] ^= (uint64_t)0x80 << (8 * ((rate - 1) % 8));
    }
}

/* Permutes, then writes the next rate bytes of each instance to out[j]. */
static void x4_squeeze_block(uint64_t s[100], unsigned rate, uint8_t *const out[4]) {
    x4_permute(s);
    for (int j = 0; j < 4; j++)
        for (unsigned i = 0; i < rate / 8; i++) {
            uint64_t v = s[4 * i + j];
            for (int b = 0; b < 8; b++) out[j][8 * i + b] = (uint8_t)(v >> (8 * b));
        }
}

/* ---- sampling (section 7.3) ------------------------------------------------ */

/* Algorithm 30 RejNTTPoly's inner step: coefficients from 3-byte groups
 * (CoeffFromThreeBytes, Algorithm 14) until a has N; returns the new count.
 * A 168-byte SHAKE128 block is exactly 56 groups. A is public. */
static int rej_uniform(int32_t *a, int j, const uint8_t *buf, size_t len) {
    for (size_t i = 0; i + 3 <= len && j < N; i += 3) {
        int32_t z = buf[i] | (buf[i + 1] << 8) | ((buf[i + 2] & 0x7F) << 16);
        if (z < Q) a[j++] = z;
    }
    return j;
}

/* Algorithm 32 ExpandA: A[r][s] = RejNTTPoly(rho || s || r), already in the
 * NTT domain; four polynomials per pass (a last partial pass repeats a seed
 * and drops the copy). */
static void expand_a(poly *A, const uint8_t rho[32], const qai_mldsa_params *p) {
    int total = p->k * p->l;
    uint64_t st[100];
    uint8_t seed[4][34], buf[4][QAI_SHAKE128_RATE];
    const uint8_t *in[4] = {seed[0], seed[1], seed[2], seed[3]};
    uint8_t *out[4] = {buf[0], buf[1], buf[2], buf[3]};
    for (int base = 0; base < total; base += 4) {
        int cnt[4] = {0, 0, 0, 0}, live = total - base < 4 ? total - base : 4;
        for (int t = 0; t < 4; t++) {
            int e = base + (t < live ? t : 0);
            memcpy(seed[t], rho, 32);
            seed[t][32] = (uint8_t)(e % p->l); /* s */
            seed[t][33] = (uint8_t)(e / p->l); /* r */
        }
        x4_absorb(st, QAI_SHAKE128_RATE, in, 34);
        for (;;) {
            int done = 1;
            for (int t = 0; t < live; t++) done &= cnt[t] == N;
            if (done) break;
            x4_squeeze_block(st, QAI_SHAKE128_RATE, out);
            for (int t = 0; t < live; t++) cnt[t] = rej_uniform(A[base + t].c, cnt[t], buf[t], sizeof buf[t]);
        }
    }
}

/* Algorithm 31 RejBoundedPoly's inner step with CoeffFromHalfByte (Algorithm
 * 15), branch-free in the nibble values: every candidate is written at
 * position j of tmp (N + 2 entries) and j advances by its 0/1 validity flag,
 * so the accepted coefficients never steer control flow; only the count of
 * accepted values (not secret) ends the loop. */
static int rej_bounded(int32_t *tmp, int j, const uint8_t *buf, size_t len, int eta) {
    for (size_t i = 0; i < len && j < N; i++) {
        for (int half = 0; half < 2 && j < N; half++) {
            int32_t b = half ? buf[i] >> 4 : buf[i] & 15;
            int32_t valid, val;
            if (eta == 2) {
                valid = (int32_t)((uint32_t)(b - 15) >> 31); /* b < 15 */
                val = 2 - (b - 5 * ((b * 205) >> 10));       /* 2 - (b mod 5) */
            } else {
                valid = (int32_t)((uint32_t)(b - 9) >> 31); /* b < 9 */
                val = 4 - b;
            }
            tmp[j] = val;
            j += valid;
        }
    }
    return j;
}

/* Algorithm 33 ExpandS: s1[r] from rho || r (r < l), s2[r] from rho || r + l,
 * with 16-bit little-endian nonces; four polynomials per pass. */
static void expand_s(poly *s1, poly *s2, const uint8_t rho[64], const qai_mldsa_params *p) {
    int total = p->l + p->k;
    uint64_t st[100];
    uint8_t seed[4][66], buf[4][QAI_SHAKE256_RATE];
    int32_t tmp[4][N + 2];
    const uint8_t *in[4] = {seed[0], seed[1], seed[2], seed[3]};
    uint8_t *out[4] = {buf[0], buf[1], buf[2], buf[3]};
    for (int base = 0; base < total; base += 4) {
        int cnt[4] = {0, 0, 0, 0}, live = total - base < 4 ? total - base : 4;
        for (int t = 0; t < 4; t++) {
            int r = base + (t < live ? t : 0);
            memcpy(seed[t], rho, 64);
            seed[t][64] = (uint8_t)r;
            seed[t][65] = (uint8_t)(r >> 8);
        }
        x4_absorb(st, QAI_SHAKE256_RATE, in, 66);
        for (;;) {
            int done = 1;
            for (int t = 0; t < live; t++) done &= cnt[t] == N;
            if (done) break;
            x4_squeeze_block(st, QAI_SHAKE256_RATE, out);
            for (int t = 0; t < live; t++) cnt[t] = rej_bounded(tmp[t], cnt[t], buf[t], sizeof buf[t], p->eta);
        }
        for (int t = 0; t < live; t++) {
            int r = base + t;
            memcpy(r < p->l ? s1[r].c : s2[r - p->l].c, tmp[t], N * sizeof(int32_t));
        }
    }
    sodium_memzero(st, sizeof st);
    sodium_memzero(seed, sizeof seed);
    sodium_memzero(buf, sizeof buf);
    sodium_memzero(tmp, sizeof tmp);
}

/* Algorithm 34 ExpandMask: y[r] = BitUnpack(H(rho || kappa + r, 32c), gamma1 - 1,
 * gamma1); 32c <= 640 bytes, five SHAKE256 blocks. */
static void expand_mask(poly *y, const uint8_t rho[64], int kappa, const qai_mldsa_params *p) {
    int c = z_bits(p);
    uint64_t st[100];
    uint8_t seed[4][66], buf[4][5 * QAI_SHAKE256_RATE];
    const uint8_t *in[4] = {seed[0], seed[1], seed[2], seed[3]};
    for (int base = 0; base < p->l; base += 4) {
        int live = p->l - base < 4 ? p->l - base : 4;
        for (int t = 0; t < 4; t++) {
            int n = kappa + base + (t < live ? t : 0);
            memcpy(seed[t], rho, 64);
            seed[t][64] = (uint8_t)n;
            seed[t][65] = (uint8_t)(n >> 8);
        }
        x4_absorb(st, QAI_SHAKE256_RATE, in, 66);
        for (int blk = 0; blk < 5; blk++) {
            uint8_t *out[4] = {buf[0] + blk * QAI_SHAKE256_RATE, buf[1] + blk * QAI_SHAKE256_RATE,
                               buf[2] + blk * QAI_SHAKE256_RATE, buf[3] + blk * QAI_SHAKE256_RATE};
            x4_squeeze_block(st, QAI_SHAKE256_RATE, out);
        }
        for (int t = 0; t < live; t++) poly_unpack(&y[base + t], buf[t], c, p->gamma1, 1);
    }
    sodium_memzero(st, sizeof st);
    sodium_memzero(seed, sizeof seed);
    sodium_memzero(buf, sizeof buf);
}

void qai_mldsa_sample_in_ball(int32_t c[N], const uint8_t *ctilde, size_t clen, int tau) {
    qai_keccak h;
    uint8_t buf[QAI_SHAKE256_RATE];
    qai_shake256_init(&h);
    qai_keccak_absorb(&h, ctilde, clen);
    qai_keccak_squeeze(&h, buf, sizeof buf);
    uint64_t signs = 0;
    for (int i = 0; i < 8; i++) signs |= (uint64_t)buf[i] << (8 * i);
    size_t pos = 8;
    memset(c, 0, N * sizeof c[0]);
    for (int i = N - tau; i < N; i++) {
        int32_t j;
        do {
            if (pos == sizeof buf) {
                qai_keccak_squeeze(&h, buf, sizeof buf);
                pos = 0;
            }
            j = buf[pos++];
        } while (j > i);
        /* c[i] = c[j]; c[j] = (-1)^sign, without indexing by j */
        int32_t cj = 0, sgn = 1 - 2 * (int32_t)(signs & 1);
        signs >>= 1;
        for (int t = 0; t <= i; t++) {
            int32_t sel = -(int32_t)((uint32_t)((t ^ j) - 1) >> 31); /* -1 iff t == j */
            cj |= c[t] & sel;
            c[t] = (c[t] & ~sel) | (sgn & sel);
        }
        /* when j == i the new sign lands on c[i]; otherwise c[i] takes old c[j] */
        int32_t same = -(int32_t)((uint32_t)((i ^ j) - 1) >> 31);
        c[i] = (cj & ~same) | (sgn & same);
    }
    qai_keccak_wipe(&h);
    sodium_memzero(buf, sizeof buf);
}

/* ---- encodings (section 7.2) ---------------------------------------------- */

/* Algorithm 22 pkEncode: rho || SimpleBitPack(t1[i], 2^10 - 1). */
static void pk_encode(uint8_t *pk, const uint8_t rho[32], const poly *t1, const qai_mldsa_params *p) {
    memcpy(pk, rho, 32);
    for (int i = 0; i < p->k; i++) poly_pack(pk + 32 + 320 * i, &t1[i], 10, 0, 0);
}

static void pk_decode(const uint8_t *pk, uint8_t rho[32], poly *t1, const qai_mldsa_params *p) {
    memcpy(rho, pk, 32);
    for (int i = 0; i < p->k; i++) poly_unpack(&t1[i], pk + 32 + 320 * i, 10, 0, 0);
}

/* Algorithm 24 skEncode: rho || K || tr || BitPack(s1, eta, eta) ||
 * BitPack(s2, eta, eta) || BitPack(t0, 2^12 - 1, 2^12). */
static void sk_encode(uint8_t *sk, const uint8_t rho[32], const uint8_t K[32], const uint8_t tr[64], const poly *s1,
                      const poly *s2, const poly *t0, const qai_mldsa_params *p) {
    int eb = eta_bits(p);
    uint8_t *o = sk;
    memcpy(o, rho, 32), o += 32;
    memcpy(o, K, 32), o += 32;
    memcpy(o, tr, 64), o += 64;
    for (int i = 0; i < p->l; i++, o += 32 * eb) poly_pack(o, &s1[i], eb, p->eta, 1);
    for (int i = 0; i < p->k; i++, o += 32 * eb) poly_pack(o, &s2[i], eb, p->eta, 1);
    for (int i = 0; i < p->k; i++, o += 32 * D) poly_pack(o, &t0[i], D, 1 << (D - 1), 1);
}

/* Algorithm 25 skDecode. Returns nonzero if a coefficient of s1 or s2 is out
 * of [-eta, eta] (the encoding has room for values up to 2^bits - 1); the
 * check scans everything before answering. */
static uint32_t sk_decode(const uint8_t *sk, uint8_t rho[32], uint8_t K[32], uint8_t tr[64], poly *s1, poly *s2,
                          poly *t0, const qai_mldsa_params *p) {
    int eb = eta_bits(p);
    const uint8_t *in = sk;
    uint32_t bad = 0;
    memcpy(rho, in, 32), in += 32;
    memcpy(K, in, 32), in += 32;
    memcpy(tr, in, 64), in += 64;
    for (int i = 0; i < p->l + p->k; i++, in += 32 * eb) {
        poly *a = i < p->l ? &s1[i] : &s2[i - p->l];
        poly_unpack(a, in, eb, p->eta, 1);
        for (int j = 0; j < N; j++) bad |= exceeds(a->c[j], p->eta + 1);
    }
    for (int i = 0; i < p->k; i++, in += 32 * D) poly_unpack(&t0[i], in, D, 1 << (D - 1), 1);
    return bad;
}

/* Algorithm 28 w1Encode. */
static size_t w1_encode(uint8_t *out, const poly *w1, const qai_mldsa_params *p) {
    int b = w1_bits(p);
    for (int i = 0; i < p->k; i++) poly_pack(out + (size_t)i * 32 * b, &w1[i], b, 0, 0);
    return (size_t)p->k * 32 * b;
}

/* Algorithm 26 sigEncode with HintBitPack (Algorithm 20). z is centered. */
static void sig_encode(uint8_t *sig, const uint8_t *ctilde, const poly *z, const poly *h, const qai_mldsa_params *p) {
    size_t cb = ctilde_bytes(p);
    int zb = z_bits(p);
    memcpy(sig, ctilde, cb);
    uint8_t *o = sig + cb;
    for (int i = 0; i < p->l; i++, o += 32 * zb) poly_pack(o, &z[i], zb, p->gamma1, 1);
    memset(o, 0, (size_t)(p->omega + p->k));
    int index = 0;
    for (int i = 0; i < p->k; i++) {
        for (int j = 0; j < N; j++)
            if (h[i].c[j]) o[index++] = (uint8_t)j;
        o[p->omega + i] = (uint8_t)index;
    }
}

/* Algorithm 27 sigDecode with HintBitUnpack (Algorithm 21): fails (with a
 * message) on a malformed hint section. The signature is public. */
static qai_status sig_decode(const uint8_t *sig, poly *z, poly *h, const qai_mldsa_params *p) {
    size_t cb = ctilde_bytes(p);
    int zb = z_bits(p);
    const uint8_t *in = sig + cb;
    for (int i = 0; i < p->l; i++, in += 32 * zb) poly_unpack(&z[i], in, zb, p->gamma1, 1);
    size_t hoff = (size_t)(in - sig);
    memset(h, 0, sizeof(poly) * (size_t)p->k);
    int index = 0;
    for (int i = 0; i < p->k; i++) {
        int limit = in[p->omega + i];
        if (limit < index || limit > p->omega)
            return qai_error(QAI_ERR_FORMAT, "%s signature: hint count %d at byte %zu is out of order or above omega=%d",
                             p->name, limit, hoff + (size_t)(p->omega + i), p->omega);
        int first = index;
        while (index < limit) {
            if (index > first && in[index - 1] >= in[index])
                return qai_error(QAI_ERR_FORMAT, "%s signature: hint positions not strictly increasing at byte %zu",
                                 p->name, hoff + (size_t)index);
            h[i].c[in[index]] = 1;
            index++;
        }
    }
    for (int i = index; i < p->omega; i++)
        if (in[i] != 0)
            return qai_error(QAI_ERR_FORMAT, "%s signature: nonzero padding in the hint section at byte %zu", p->name,
                             hoff + (size_t)i);
    return QAI_OK;
}

/* ---- key generation (Algorithm 6) ----------------------------------------- */

typedef struct {
    poly A[MAXK * MAXL];
    poly s1[MAXL], s1hat[MAXL], s2[MAXK], t[MAXK], t1[MAXK], t0[MAXK];
    uint8_t seed[128]; /* rho || rho' || K */
    uint8_t tr[64];
} keygen_ws;

qai_status qai_mldsa_keygen_seed(const qai_mldsa_params *p, const uint8_t xi[32], uint8_t *pk, uint8_t *sk) {
    if (!p || !xi || !pk || !sk) return qai_error(QAI_ERR_ARG, "ML-DSA keygen: missing argument");
    keygen_ws *w = qai_malloc(sizeof *w);
    if (!w) return QAI_ERR_NOMEM;
    uint8_t in[34];
    memcpy(in, xi, 32);
    in[32] = (uint8_t)p->k;
    in[33] = (uint8_t)p->l;
    qai_shake256(in, sizeof in, w->seed, 128);
    sodium_memzero(in, sizeof in);
    const uint8_t *rho = w->seed, *rhop = w->seed + 32, *K = w->seed + 96;

    expand_a(w->A, rho, p);
    expand_s(w->s1, w->s2, rhop, p);
    for (int j = 0; j < p->l; j++) {
        w->s1hat[j] = w->s1[j];
        qai_mldsa_ntt(w->s1hat[j].c);
    }
    for (int i = 0; i < p->k; i++) {
        matvec_row(&w->t[i], &w->A[i * p->l], w->s1hat, p->l);
        poly_reduce(&w->t[i]);
        qai_mldsa_invntt_tomont(w->t[i].c);
        for (int n = 0; n < N; n++) {
            int32_t t = freeze(w->t[i].c[n] + w->s2[i].c[n]);
            w->t1[i].c[n] = qai_mldsa_power2round(t, &w->t0[i].c[n]);
        }
    }
    pk_encode(pk, rho, w->t1, p);
    qai_shake256(pk, p->pk_bytes, w->tr, 64);
    sk_encode(sk, rho, K, w->tr, w->s1, w->s2, w->t0, p);
    sodium_memzero(w, sizeof *w);
    qai_free(w);
    return QAI_OK;
}

qai_status qai_mldsa_keygen(const qai_mldsa_params *p, uint8_t *pk, uint8_t *sk, uint8_t *xi_out) {
    uint8_t xi[32];
    randombytes_buf(xi, sizeof xi);
    qai_status st = qai_mldsa_keygen_seed(p, xi, pk, sk);
    if (xi_out && st == QAI_OK) memcpy(xi_out, xi, sizeof xi);
    sodium_memzero(xi, sizeof xi);
    return st;
}

/* ---- signing (Algorithm 7) -------------------------------------------------- */

typedef struct {
    poly A[MAXK * MAXL];
    poly s1hat[MAXL], s2hat[MAXK], t0hat[MAXK];
    poly y[MAXL], yhat[MAXL], z[MAXL];
    poly w[MAXK], w1[MAXK], r[MAXK], ct0[MAXK], h[MAXK];
    poly c, chat, tmp;
    uint8_t rho[32], K[32], tr[64], rhopp[64];
    uint8_t w1buf[MAXK * 32 * 6];
    uint8_t ctilde[64];
} sign_ws;

static qai_status check_sk(const qai_mldsa_params *p, size_t sk_len) {
    if (!p) return qai_error(QAI_ERR_ARG, "ML-DSA: no parameter set");
    if (sk_len != p->sk_bytes)
        return qai_error(QAI_ERR_FORMAT, "%s private key has %zu bytes, expected %zu", p->name, sk_len, p->sk_bytes);
    return QAI_OK;
}

qai_status qai_mldsa_sign_mu(const qai_mldsa_params *p, const uint8_t *sk, size_t sk_len, const uint8_t mu[64],
                             const uint8_t rnd[32], uint8_t *sig) {
    qai_status st = check_sk(p, sk_len);
    if (st) return st;
    if (!mu || !rnd || !sig) return qai_error(QAI_ERR_ARG, "%s signing: mu, rnd and sig are required", p->name);
    sign_ws *w = qai_malloc(sizeof *w);
    if (!w) return QAI_ERR_NOMEM;
    poly *s1 = w->y, *s2 = w->w, *t0 = w->r; /* decode into scratch that is overwritten later */
    if (sk_decode(sk, w->rho, w->K, w->tr, s1, s2, t0, p)) {
        sodium_memzero(w, sizeof *w);
        qai_free(w);
        return qai_error(QAI_ERR_FORMAT, "%s private key: a coefficient of s1 or s2 is outside [-%d, %d]", p->name,
                         p->eta, p->eta);
    }
    for (int j = 0; j < p->l; j++) w->s1hat[j] = s1[j], qai_mldsa_ntt(w->s1hat[j].c);
    for (int i = 0; i < p->k; i++) w->s2hat[i] = s2[i], qai_mldsa_ntt(w->s2hat[i].c);
    for (int i = 0; i < p->k; i++) w->t0hat[i] = t0[i], qai_mldsa_ntt(w->t0hat[i].c);
    expand_a(w->A, w->rho, p);

    /* rho'' = H(K || rnd || mu, 64) */
    qai_keccak hk;
    qai_shake256_init(&hk);
    qai_keccak_absorb(&hk, w->K, 32);
    qai_keccak_absorb(&hk, rnd, 32);
    qai_keccak_absorb(&hk, mu, 64);
    qai_keccak_squeeze(&hk, w->rhopp, 64);

    const size_t cb = ctilde_bytes(p);
    st = QAI_ERR_INTERNAL;
    /* kappa is encoded in 16 bits; reaching its end has probability ~0 */
    for (int kappa = 0; kappa + p->l <= 65535; kappa += p->l) {
        expand_mask(w->y, w->rhopp, kappa, p);
        for (int j = 0; j < p->l; j++) w->yhat[j] = w->y[j], qai_mldsa_ntt(w->yhat[j].c);
        for (int i = 0; i < p->k; i++) {
            matvec_row(&w->w[i], &w->A[i * p->l], w->yhat, p->l);
            poly_reduce(&w->w[i]);
            qai_mldsa_invntt_tomont(w->w[i].c);
            poly_freeze(&w->w[i]);
            for (int n = 0; n < N; n++) {
                int32_t r0;
                w->w1[i].c[n] = qai_mldsa_decompose(w->w[i].c[n], p->gamma2, &r0);
            }
        }
        size_t wl = w1_encode(w->w1buf, w->w1, p);
        qai_shake256_init(&hk);
        qai_keccak_absorb(&hk, mu, 64);
        qai_keccak_absorb(&hk, w->w1buf, wl);
        qai_keccak_squeeze(&hk, w->ctilde, cb);
        qai_mldsa_sample_in_ball(w->c.c, w->ctilde, cb, p->tau);
        w->chat = w->c;
        qai_mldsa_ntt(w->chat.c);

        uint32_t reject = 0;
        for (int j = 0; j < p->l; j++) { /* z = y + <<c s1>> */
            mul_invntt(&w->tmp, &w->chat, &w->s1hat[j]);
            for (int n = 0; n < N; n++) w->z[j].c[n] = qai_mldsa_reduce32(w->y[j].c[n] + w->tmp.c[n]);
            reject |= poly_exceeds(&w->z[j], p->gamma1 - p->beta);
        }
        for (int i = 0; i < p->k; i++) { /* r = w - <<c s2>>, r0 = LowBits(r) */
            mul_invntt(&w->tmp, &w->chat, &w->s2hat[i]);
            for (int n = 0; n < N; n++) {
                int32_t r0;
                w->r[i].c[n] = freeze(w->w[i].c[n] - w->tmp.c[n]);
                qai_mldsa_decompose(w->r[i].c[n], p->gamma2, &r0);
                reject |= exceeds(r0, p->gamma2 - p->beta);
            }
        }
        if (reject) continue;
        int32_t ones = 0;
        for (int i = 0; i < p->k; i++) {
            mul_invntt(&w->ct0[i], &w->chat, &w->t0hat[i]);
            poly_reduce(&w->ct0[i]);
            reject |= poly_exceeds(&w->ct0[i], p->gamma2);
            /* h = MakeHint(-<<c t0>>, r + <<c t0>>): do HighBits(r + ct0) and
             * HighBits(r) differ? (Algorithm 39) */
            for (int n = 0; n < N; n++) {
                int32_t r0, a1, b1;
                a1 = qai_mldsa_decompose(freeze(w->r[i].c[n] + w->ct0[i].c[n]), p->gamma2, &r0);
                b1 = qai_mldsa_decompose(w->r[i].c[n], p->gamma2, &r0);
                uint32_t d = (uint32_t)(a1 ^ b1);
                w->h[i].c[n] = (int32_t)((d | (0u - d)) >> 31);
                ones += w->h[i].c[n];
            }
        }
        if (reject || ones > p->omega) continue;
        sig_encode(sig, w->ctilde, w->z, w->h, p);
        st = QAI_OK;
        break;
    }
    if (st != QAI_OK) qai_error(st, "%s signing: the rejection loop did not finish", p->name);
    qai_keccak_wipe(&hk);
    sodium_memzero(w, sizeof *w);
    qai_free(w);
    return st;
}

/* mu = H(tr || prefix || msg, 64) where prefix is empty (internal) or
 * 0 || len(ctx) || ctx (external, Algorithm 2 line 5 / Algorithm 3 line 5). */
static void compute_mu(const uint8_t tr[64], int external, const void *ctx, size_t ctx_len, const void *msg,
                       size_t msg_len, uint8_t mu[64]) {
    qai_keccak hk;
    qai_shake256_init(&hk);
    qai_keccak_absorb(&hk, tr, 64);
    if (external) {
        uint8_t pre[2] = {0, (uint8_t)ctx_len};
        qai_keccak_absorb(&hk, pre, 2);
        qai_keccak_absorb(&hk, ctx, ctx_len);
    }
    qai_keccak_absorb(&hk, msg, msg_len);
    qai_keccak_squeeze(&hk, mu, 64);
    qai_keccak_wipe(&hk);
}

qai_status qai_mldsa_sign_internal(const qai_mldsa_params *p, const uint8_t *sk, size_t sk_len, const uint8_t *mprime,
                                   size_t mprime_len, const uint8_t rnd[32], uint8_t *sig) {
    qai_status st = check_sk(p, sk_len);
    if (st) return st;
    if (!rnd) return qai_error(QAI_ERR_ARG, "%s Sign_internal: rnd is required", p->name);
    uint8_t mu[64];
    compute_mu(sk + 64, 0, NULL, 0, mprime, mprime_len, mu);
    return qai_mldsa_sign_mu(p, sk, sk_len, mu, rnd, sig);
}

qai_status qai_mldsa_sign(const qai_mldsa_params *p, const uint8_t *sk, size_t sk_len, const void *msg, size_t msg_len,
                          const void *ctx, size_t ctx_len, const uint8_t *rnd, uint8_t *sig) {
    qai_status st = check_sk(p, sk_len);
    if (st) return st;
    if (ctx_len > QAI_MLDSA_MAX_CTX_BYTES)
        return qai_error(QAI_ERR_ARG, "%s: context string has %zu bytes, at most 255 are allowed", p->name, ctx_len);
    uint8_t mu[64], fresh[32];
    compute_mu(sk + 64, 1, ctx, ctx_len, msg, msg_len, mu);
    if (!rnd) {
        randombytes_buf(fresh, sizeof fresh);
        rnd = fresh;
    }
    st = qai_mldsa_sign_mu(p, sk, sk_len, mu, rnd, sig);
    sodium_memzero(fresh, sizeof fresh);
    return st;
}

/* ---- verification (Algorithm 8) ------------------------------------------- */

typedef struct {
    poly A[MAXK * MAXL];
    poly t1hat[MAXK], z[MAXL], h[MAXK], w1[MAXK];
    poly c, chat, tmp;
    uint8_t rho[32];
    uint8_t w1buf[MAXK * 32 * 6];
    uint8_t ctilde[64];
} verify_ws;

static qai_status check_pk_sig(const qai_mldsa_params *p, size_t pk_len, size_t sig_len) {
    if (!p) return qai_error(QAI_ERR_ARG, "ML-DSA: no parameter set");
    if (pk_len != p->pk_bytes)
        return qai_error(QAI_ERR_FORMAT, "%s public key has %zu bytes, expected %zu", p->name, pk_len, p->pk_bytes);
    if (sig_len != p->sig_bytes)
        return qai_error(QAI_ERR_FORMAT, "%s signature has %zu bytes, expected %zu", p->name, sig_len, p->sig_bytes);
    return QAI_OK;
}

qai_status qai_mldsa_verify_mu(const qai_mldsa_params *p, const uint8_t *pk, size_t pk_len, const uint8_t mu[64],
                               const uint8_t *sig, size_t sig_len) {
    qai_status st = check_pk_sig(p, pk_len, sig_len);
    if (st) return st;
    verify_ws *w = qai_malloc(sizeof *w);
    if (!w) return QAI_ERR_NOMEM;
    const size_t cb = ctilde_bytes(p);
    st = sig_decode(sig, w->z, w->h, p);
    if (st) goto out;
    for (int j = 0; j < p->l; j++) {
        /* decoded z is in (gamma1 - 2^bits, gamma1]: |z| < q, exact check */
        if (poly_exceeds(&w->z[j], p->gamma1 - p->beta)) {
            st = qai_error(QAI_ERR_FORMAT, "%s signature: a coefficient of z is out of range (|z| >= gamma1 - beta)",
                           p->name);
            goto out;
        }
    }
    pk_decode(pk, w->rho, w->t1hat, p);
    expand_a(w->A, w->rho, p);
    qai_mldsa_sample_in_ball(w->c.c, sig, cb, p->tau);
    w->chat = w->c;
    qai_mldsa_ntt(w->chat.c);
    for (int j = 0; j < p->l; j++) qai_mldsa_ntt(w->z[j].c);
    for (int i = 0; i < p->k; i++) {
        for (int n = 0; n < N; n++) w->t1hat[i].c[n] <<= D; /* t1 * 2^d < 2^23 < q */
        qai_mldsa_ntt(w->t1hat[i].c);
    }
    for (int i = 0; i < p->k; i++) {
        /* w'_approx = NTT^-1(A z - c t1 2^d) */
        matvec_row(&w->w1[i], &w->A[i * p->l], w->z, p->l);
        qai_mldsa_pointwise_mont(w->tmp.c, w->chat.c, w->t1hat[i].c);
        for (int n = 0; n < N; n++) w->w1[i].c[n] -= w->tmp.c[n];
        poly_reduce(&w->w1[i]);
        qai_mldsa_invntt_tomont(w->w1[i].c);
        for (int n = 0; n < N; n++)
            w->w1[i].c[n] = qai_mldsa_use_hint(w->h[i].c[n], freeze(w->w1[i].c[n]), p->gamma2);
    }
    size_t wl = w1_encode(w->w1buf, w->w1, p);
    qai_keccak hk;
    qai_shake256_init(&hk);
    qai_keccak_absorb(&hk, mu, 64);
    qai_keccak_absorb(&hk, w->w1buf, wl);
    qai_keccak_squeeze(&hk, w->ctilde, cb);
    if (sodium_memcmp(w->ctilde, sig, cb) != 0)
        st = qai_error(QAI_ERR_FORMAT, "%s signature does not match the message and public key", p->name);
out:
    sodium_memzero(w, sizeof *w);
    qai_free(w);
    return st;
}

qai_status qai_mldsa_verify_internal(const qai_mldsa_params *p, const uint8_t *pk, size_t pk_len,
                                     const uint8_t *mprime, size_t mprime_len, const uint8_t *sig, size_t sig_len) {
    qai_status st = check_pk_sig(p, pk_len, sig_len);
    if (st) return st;
    uint8_t tr[64], mu[64];
    qai_shake256(pk, pk_len, tr, 64);
    compute_mu(tr, 0, NULL, 0, mprime, mprime_len, mu);
    return qai_mldsa_verify_mu(p, pk, pk_len, mu, sig, sig_len);
}

qai_status qai_mldsa_external_mu(const uint8_t *pk, size_t pk_len, const void *msg, size_t msg_len, const void *ctx,
                                 size_t ctx_len, uint8_t mu[64]) {
    if (ctx_len > QAI_MLDSA_MAX_CTX_BYTES)
        return qai_error(QAI_ERR_ARG, "ML-DSA: context string has %zu bytes, at most 255 are allowed", ctx_len);
    uint8_t tr[64];
    qai_shake256(pk, pk_len, tr, 64);
    compute_mu(tr, 1, ctx, ctx_len, msg, msg_len, mu);
    return QAI_OK;
}

qai_status qai_mldsa_verify(const qai_mldsa_params *p, const uint8_t *pk, size_t pk_len, const void *msg,
                            size_t msg_len, const void *ctx, size_t ctx_len, const uint8_t *sig, size_t sig_len) {
    qai_status st = check_pk_sig(p, pk_len, sig_len);
    if (st) return st;
    uint8_t mu[64];
    if ((st = qai_mldsa_external_mu(pk, pk_len, msg, msg_len, ctx, ctx_len, mu))) return st;
    return qai_mldsa_verify_mu(p, pk, pk_len, mu, sig, sig_len);
}
