/* bench_sign — signature and hashing speed, all in one run so the numbers
 * share the machine's state:
 *   ML-DSA-44/65/87 key generation, signing (hedged) and verification per second,
 *   Ed25519 (libsodium) signing and verification per second, the qai hybrid
 *   (Ed25519 + ML-DSA-65) sign and verify per second,
 *   SHA-256 (libsodium), SHAKE256 and SHA3-256 (ours) throughput in MB/s over a
 *   64 MB buffer (bundles hash gigabytes).
 * Usage: bench_sign [seconds-per-item, default 1] [--json] [--scalar]
 * --scalar forces the scalar Keccak in ML-DSA's samplers (default: AVX2 when
 * the CPU has it). Single-threaded; each figure is the best of three rounds. */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "qai/base.h"
#include "qai/sign.h"
#include "registry/mldsa.h"
#include "registry/sha3.h"

static double budget = 1.0;
static int json;

typedef void (*op_fn)(void *arg);

/* Runs op repeatedly for about budget/3 seconds, three times; returns the best
 * rate in calls per second. */
static double rate(op_fn op, void *arg) {
    double best = 0;
    for (int round = 0; round < 3; round++) {
        uint64_t t0 = qai_time_ns(), t;
        long n = 0;
        do {
            op(arg);
            n++;
            t = qai_time_ns();
        } while ((double)(t - t0) < budget / 3 * 1e9);
        double r = n / ((t - t0) * 1e-9);
        if (r > best) best = r;
    }
    return best;
}

static const char *first = "";
static void report(const char *name, double value, const char *unit) {
    if (json) {
        printf("%s\n  \"%s\": %.1f", first, name, value);
        first = ",";
    } else
        printf("%-28s %12.1f %s\n", name, value, unit);
}

typedef struct {
    const qai_mldsa_params *p;
    uint8_t pk[QAI_MLDSA_MAX_PK_BYTES], sk[QAI_MLDSA_MAX_SK_BYTES], sig[QAI_MLDSA_MAX_SIG_BYTES];
    uint8_t msg[64];
} mldsa_arg;

static void op_mldsa_keygen(void *a) {
    mldsa_arg *m = a;
    qai_mldsa_keygen(m->p, m->pk, m->sk, NULL);
}
static void op_mldsa_sign(void *a) {
    mldsa_arg *m = a;
    m->msg[0]++; /* a new message each time: the rejection loop's length varies */
    qai_mldsa_sign(m->p, m->sk, m->p->sk_bytes, m->msg, sizeof m->msg, "bench", 5, NULL, m->sig);
}
static void op_mldsa_verify(void *a) {
    mldsa_arg *m = a;
    if (qai_mldsa_verify(m->p, m->pk, m->p->pk_bytes, m->msg, sizeof m->msg, "bench", 5, m->sig, m->p->sig_bytes))
        abort(); /* a benchmark of a failing verify would measure the wrong thing */
}

typedef struct {
    uint8_t pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES], sig[crypto_sign_BYTES], msg[64];
} ed_arg;
static void op_ed_sign(void *a) {
    ed_arg *e = a;
    e->msg[0]++;
    crypto_sign_detached(e->sig, NULL, e->msg, sizeof e->msg, e->sk);
}
static void op_ed_verify(void *a) {
    ed_arg *e = a;
    if (crypto_sign_verify_detached(e->sig, e->msg, sizeof e->msg, e->pk)) abort();
}

typedef struct {
    qai_identity *id;
    uint8_t sig[QAI_HYBRID_SIG_BYTES], msg[64];
} hy_arg;
static void op_hy_sign(void *a) {
    hy_arg *h = a;
    h->msg[0]++;
    qai_hybrid_sign(h->id, h->msg, sizeof h->msg, h->sig);
}
static void op_hy_verify(void *a) {
    hy_arg *h = a;
    if (qai_hybrid_verify(h->id, h->msg, sizeof h->msg, h->sig, sizeof h->sig)) abort();
}

typedef struct {
    uint8_t *buf;
    size_t n;
    int which;
} hash_arg;
static void op_hash(void *a) {
    hash_arg *h = a;
    uint8_t out[32];
    if (h->which == 0) qai_sha256(h->buf, h->n, out);
    else if (h->which == 1) qai_shake256(h->buf, h->n, out, 32);
    else qai_sha3_256(h->buf, h->n, out);
    h->buf[out[0] % h->n] ^= 1; /* keep the compiler from hoisting the call */
}

int main(int argc, char **argv) {
    int scalar = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) json = 1;
        else if (strcmp(argv[i], "--scalar") == 0) scalar = 1;
        else budget = atof(argv[i]) > 0 ? atof(argv[i]) : budget;
    }
    if (sodium_init() < 0) return 1;
    bool avx2 = qai_mldsa_use_avx2(!scalar);
    if (json) printf("{\n  \"mldsa_samplers\": \"%s\"", avx2 ? "avx2" : "scalar"), first = ",";
    else printf("bench_sign: operations per second (single thread), hashing in MB/s; ML-DSA samplers: %s\n",
                avx2 ? "AVX2" : "scalar");

    static mldsa_arg m;
    for (int k = 0; k < 3; k++) {
        m.p = qai_mldsa_params_get((qai_mldsa_kind)k);
        char name[64];
        qai_mldsa_keygen(m.p, m.pk, m.sk, NULL);
        snprintf(name, sizeof name, "%s keygen", m.p->name);
        report(name, rate(op_mldsa_keygen, &m), "op/s");
        qai_mldsa_keygen(m.p, m.pk, m.sk, NULL);
        snprintf(name, sizeof name, "%s sign", m.p->name);
        report(name, rate(op_mldsa_sign, &m), "op/s");
        snprintf(name, sizeof name, "%s verify", m.p->name);
        report(name, rate(op_mldsa_verify, &m), "op/s");
    }
    static ed_arg e;
    crypto_sign_keypair(e.pk, e.sk);
    report("Ed25519 sign", rate(op_ed_sign, &e), "op/s");
    report("Ed25519 verify", rate(op_ed_verify, &e), "op/s");

    static hy_arg h;
    if (qai_identity_generate("bench", &h.id) != QAI_OK) return 1;
    report("hybrid sign", rate(op_hy_sign, &h), "op/s");
    report("hybrid verify", rate(op_hy_verify, &h), "op/s");
    qai_identity_free(h.id);

    hash_arg ha = {.n = (size_t)64 << 20};
    ha.buf = malloc(ha.n);
    if (!ha.buf) return 1;
    for (size_t i = 0; i < ha.n; i++) ha.buf[i] = (uint8_t)(i * 2654435761u >> 13);
    static const char *names[3] = {"SHA-256 64MB", "SHAKE256 64MB", "SHA3-256 64MB"};
    for (int w = 0; w < 3; w++) {
        ha.which = w;
        double per_s = rate(op_hash, &ha);
        report(names[w], per_s * (double)ha.n / 1e6, "MB/s");
    }
    free(ha.buf);
    if (json) printf("\n}\n");
    return 0;
}
