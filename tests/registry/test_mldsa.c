/* ML-DSA (src/registry/mldsa.c) against independent references:
 *  - every NIST ACVP ML-DSA keyGen, sigGen and sigVer vector in
 *    $QAI_DATA/acvp/ML-DSA/ (the three *.internalProjection.json files; ACVP-Server, FIPS204
 *    revision; see that folder's README): KeyGen_internal, Sign_internal
 *    (deterministic and hedged with the given rnd) and Verify_internal;
 *  - every C2SP/Wycheproof ML-DSA file in $QAI_DATA/acvp/wycheproof/: signing
 *    from a seed and from an expanded key (external interface with context,
 *    deterministic or with the given rnd, or from a given mu), verification
 *    including malformed hints, norm violations, wrong lengths and contexts;
 *  - the arithmetic against textbook definitions: NTT products against
 *    schoolbook negacyclic multiplication, Decompose and Power2Round over every
 *    r in [0, q) against FIPS 204's formulas, SampleInBall against a plain
 *    transcription of Algorithm 29;
 *  - round trips of the external interface with contexts, and rejection after
 *    flipping one bit of the message, the context, the signature or the key;
 *  - the AVX2 builds (four-way Keccak, NTT kernels) against the scalar ones,
 *    and the ACVP vectors run once with each.
 */
#include <cjson/cJSON.h>
#include <string.h>

#include "qai/base.h"
#include "registry/mldsa.h"
#include "registry/sha3.h"
#include "test.h"

#define Q QAI_MLDSA_Q

/* ---- helpers --------------------------------------------------------------- */

static cJSON *load_json(const char *rel) {
    char path[1024];
    snprintf(path, sizeof path, "%s/acvp/%s", TEST_DATA(), rel);
    char *text;
    size_t n;
    if (qai_file_read(path, &text, &n) != QAI_OK) {
        fprintf(stderr, "cannot read %s: %s\n", path, qai_last_error());
        return NULL;
    }
    cJSON *j = cJSON_ParseWithLength(text, n);
    qai_free(text);
    if (!j) fprintf(stderr, "%s: not JSON\n", path);
    return j;
}

/* Hex string field -> heap bytes (NULL field -> len 0, non-NULL buffer). */
static uint8_t *hexfield(const cJSON *o, const char *name, size_t *len) {
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, name);
    const char *h = cJSON_IsString(f) ? f->valuestring : "";
    size_t n = strlen(h) / 2;
    uint8_t *b = malloc(n + 1);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(h + 2 * i, "%2x", &v);
        b[i] = (uint8_t)v;
    }
    *len = n;
    return b;
}

static int has(const cJSON *o, const char *name) {
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, name);
    return f && !cJSON_IsNull(f);
}

static int tcid(const cJSON *t) { return cJSON_GetObjectItemCaseSensitive(t, "tcId")->valueint; }

static const qai_mldsa_params *params_of(const cJSON *g, const char *field) {
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(g, field);
    return cJSON_IsString(f) ? qai_mldsa_params_by_name(f->valuestring) : NULL;
}

static int same(const uint8_t *a, const uint8_t *b, size_t n, const char *what, int id) {
    if (memcmp(a, b, n) == 0) return 1;
    size_t i = 0;
    while (a[i] == b[i]) i++;
    fprintf(stderr, "%s tcId %d: first difference at byte %zu of %zu\n", what, id, i, n);
    return 0;
}

/* ---- arithmetic against definitions ------------------------------------------ */

static int32_t modq(int64_t a) {
    a %= Q;
    return (int32_t)(a < 0 ? a + Q : a);
}

static void test_ntt(void) {
    qai_rng rng;
    qai_rng_seed(&rng, 204);
    int bad = 0;
    for (int trial = 0; trial < 20; trial++) {
        int32_t a[256], b[256], ah[256], bh[256], c[256];
        int64_t want[256] = {0};
        for (int i = 0; i < 256; i++) {
            a[i] = (int32_t)(qai_rng_u64(&rng) % Q) - (trial & 1 ? Q / 2 : 0);
            b[i] = (int32_t)(qai_rng_u64(&rng) % Q);
        }
        /* schoolbook product in Z_q[X]/(X^256 + 1) */
        for (int i = 0; i < 256; i++)
            for (int j = 0; j < 256; j++) {
                int64_t p = (int64_t)a[i] * b[j] % Q;
                if (i + j < 256) want[i + j] = (want[i + j] + p) % Q;
                else want[i + j - 256] = (want[i + j - 256] - p) % Q;
            }
        memcpy(ah, a, sizeof a);
        memcpy(bh, b, sizeof b);
        qai_mldsa_ntt(ah);
        qai_mldsa_ntt(bh);
        for (int i = 0; i < 256; i++)
            if (ah[i] <= -9 * Q || ah[i] >= 9 * Q) bad++;
        qai_mldsa_pointwise_mont(c, ah, bh);
        qai_mldsa_invntt_tomont(c);
        for (int i = 0; i < 256; i++) {
            if (c[i] <= -Q || c[i] >= Q) bad++;
            if (modq(c[i]) != modq(want[i])) bad++;
        }
    }
    CHECK_EQ_INT(bad, 0);
}

static void test_rounding(void) {
    /* Power2Round: r0 = r mod+- 2^13 in (-2^12, 2^12], r1 = (r - r0) / 2^13 */
    long bad = 0;
    for (int32_t r = 0; r < Q; r++) {
        int32_t r0, r1 = qai_mldsa_power2round(r, &r0);
        int32_t m = r % 8192, want0 = m > 4096 ? m - 8192 : m;
        if (r0 != want0 || r1 != (r - want0) / 8192) bad++;
    }
    CHECK_EQ_INT(bad, 0);
    /* Decompose (Algorithm 36) literally, for both gamma2 */
    const int32_t g2s[2] = {(Q - 1) / 88, (Q - 1) / 32};
    for (int g = 0; g < 2; g++) {
        int32_t g2 = g2s[g], alpha = 2 * g2;
        bad = 0;
        for (int32_t r = 0; r < Q; r++) {
            int32_t m = r % alpha, want0 = m > g2 ? m - alpha : m, want1;
            if (r - want0 == Q - 1) want1 = 0, want0 = want0 - 1;
            else want1 = (r - want0) / alpha;
            int32_t r0, r1 = qai_mldsa_decompose(r, g2, &r0);
            if (r0 != want0 || r1 != want1) {
                if (bad < 3) fprintf(stderr, "decompose(%d, %d) = %d,%d want %d,%d\n", r, g2, r1, r0, want1, want0);
                bad++;
            }
        }
        CHECK_EQ_INT(bad, 0);
        /* UseHint (Algorithm 40) on a sample */
        int32_t mm = (Q - 1) / alpha;
        bad = 0;
        for (int32_t r = 0; r < Q; r += 997) {
            int32_t r0, r1 = qai_mldsa_decompose(r, g2, &r0);
            int32_t want = r0 > 0 ? (r1 + 1) % mm : (r1 - 1 + mm) % mm;
            if (qai_mldsa_use_hint(1, r, g2) != want || qai_mldsa_use_hint(0, r, g2) != r1) bad++;
        }
        CHECK_EQ_INT(bad, 0);
    }
    /* reduce32 / mont_reduce ranges and congruences */
    qai_rng rng;
    qai_rng_seed(&rng, 7);
    bad = 0;
    for (int i = 0; i < 100000; i++) {
        int32_t a = (int32_t)(qai_rng_u64(&rng) % 4200000000u - 2100000000);
        int32_t r = qai_mldsa_reduce32(a);
        if (r < -6283008 || r > 6283008 || modq(r) != modq(a)) bad++;
        int64_t b = (int64_t)(qai_rng_u64(&rng) % ((uint64_t)Q << 31)) - ((int64_t)Q << 30);
        int32_t m = qai_mldsa_mont_reduce(b);
        /* m * 2^32 == b (mod q) */
        if (m <= -Q || m >= Q || modq((int64_t)modq(m) * (((int64_t)1 << 32) % Q)) != modq(b)) bad++;
    }
    CHECK_EQ_INT(bad, 0);
}

/* Algorithm 29 transcribed literally (branches and indexing), as a reference
 * for the masked implementation. */
static void sample_in_ball_ref(int32_t c[256], const uint8_t *rho, size_t n, int tau) {
    qai_keccak h;
    uint8_t s[8], j;
    qai_shake256_init(&h);
    qai_keccak_absorb(&h, rho, n);
    qai_keccak_squeeze(&h, s, 8);
    memset(c, 0, 256 * sizeof c[0]);
    for (int i = 256 - tau; i < 256; i++) {
        qai_keccak_squeeze(&h, &j, 1);
        while (j > i) qai_keccak_squeeze(&h, &j, 1);
        c[i] = c[j];
        int bit = (s[(i + tau - 256) / 8] >> ((i + tau - 256) % 8)) & 1;
        c[j] = bit ? -1 : 1;
    }
}

static void test_sample_in_ball(void) {
    int bad = 0;
    for (int t = 0; t < 300; t++) {
        uint8_t rho[64];
        for (int i = 0; i < 64; i++) rho[i] = (uint8_t)(t * 31 + i * 7);
        int tau = t % 3 == 0 ? 39 : t % 3 == 1 ? 49 : 60;
        size_t n = t % 3 == 0 ? 32 : t % 3 == 1 ? 48 : 64;
        int32_t c[256], ref[256];
        qai_mldsa_sample_in_ball(c, rho, n, tau);
        sample_in_ball_ref(ref, rho, n, tau);
        int nz = 0;
        for (int i = 0; i < 256; i++) nz += c[i] != 0;
        if (memcmp(c, ref, sizeof c) != 0 || nz != tau) bad++;
    }
    CHECK_EQ_INT(bad, 0);
}

static void test_sizes(void) {
    for (int k = 0; k < 3; k++) {
        const qai_mldsa_params *p = qai_mldsa_params_get((qai_mldsa_kind)k);
        int eb = p->eta == 2 ? 3 : 4, zb = p->gamma1 == (1 << 17) ? 18 : 20;
        CHECK_EQ_INT(p->pk_bytes, 32 + 320 * p->k);
        CHECK_EQ_INT(p->sk_bytes, 128 + 32 * eb * (p->k + p->l) + 416 * p->k);
        CHECK_EQ_INT(p->sig_bytes, p->lambda / 4 + 32 * zb * p->l + p->omega + p->k);
        CHECK_EQ_INT(p->beta, p->tau * p->eta);
    }
    CHECK(qai_mldsa_params_by_name("ML-DSA-65") == qai_mldsa_params_get(QAI_MLDSA_65));
    CHECK(qai_mldsa_params_by_name("ML-DSA-66") == NULL);
}

/* The AVX2 builds against the scalar references: the four-way Keccak on
 * random states, several rounds deep, and the NTT kernels on random inputs. */
static void test_keccakx4(void) {
    uint64_t a[100], b[100];
    qai_rng rng;
    qai_rng_seed(&rng, 1600);
    for (int i = 0; i < 100; i++) a[i] = b[i] = qai_rng_u64(&rng);
    /* the scalar x4 is four independent qai_keccak_f1600 on the de-interleaved lanes */
    uint64_t one[25];
    for (int i = 0; i < 25; i++) one[i] = a[4 * i + 2];
    qai_keccak_f1600(one);
    qai_mldsa_keccakx4_f1600_scalar(b);
    int bad = 0;
    for (int i = 0; i < 25; i++) bad += b[4 * i + 2] != one[i];
    CHECK_EQ_INT(bad, 0);
    if (!qai_mldsa_use_avx2(true)) {
        fprintf(stderr, "no AVX2 on this CPU: only the scalar four-way Keccak is tested\n");
        return;
    }
    memcpy(b, a, sizeof a);
    for (int r = 0; r < 5; r++) {
        qai_mldsa_keccakx4_f1600_scalar(a);
        qai_mldsa_keccakx4_f1600_avx2(b);
    }
    CHECK(memcmp(a, b, sizeof a) == 0);

    /* mldsa_arith.c built twice: the AVX2 build gives the same numbers */
    int32_t x[7 * 256], y[7 * 256], u[256], v[256];
    bad = 0;
    for (int trial = 0; trial < 50; trial++) {
        for (int i = 0; i < 7 * 256; i++) {
            x[i] = (int32_t)(qai_rng_u64(&rng) % (2 * Q - 1)) - (Q - 1); /* |x| < q */
            y[i] = (int32_t)(qai_rng_u64(&rng) % (2 * Q - 1)) - (Q - 1);
        }
        memcpy(u, x, sizeof u), memcpy(v, x, sizeof v);
        qai_mldsa_ntt_scalar(u), qai_mldsa_ntt_avx2(v);
        bad += memcmp(u, v, sizeof u) != 0;
        memcpy(u, x, sizeof u), memcpy(v, x, sizeof v);
        qai_mldsa_invntt_tomont_scalar(u), qai_mldsa_invntt_tomont_avx2(v);
        bad += memcmp(u, v, sizeof u) != 0;
        qai_mldsa_pointwise_mont_scalar(u, x, y), qai_mldsa_pointwise_mont_avx2(v, x, y);
        bad += memcmp(u, v, sizeof u) != 0;
        int n = 1 + trial % 7;
        qai_mldsa_pointwise_acc_scalar(u, x, y, n), qai_mldsa_pointwise_acc_avx2(v, x, y, n);
        bad += memcmp(u, v, sizeof u) != 0;
    }
    CHECK_EQ_INT(bad, 0);
}

/* ---- ACVP ---------------------------------------------------------------------- */

static void test_acvp_keygen(void) {
    cJSON *j = load_json("ML-DSA/key-gen.internalProjection.json");
    CHECK(j != NULL);
    if (!j) return;
    int n = 0, ok = 0;
    const cJSON *g;
    cJSON_ArrayForEach(g, cJSON_GetObjectItem(j, "testGroups")) {
        const qai_mldsa_params *p = params_of(g, "parameterSet");
        CHECK(p != NULL);
        const cJSON *t;
        cJSON_ArrayForEach(t, cJSON_GetObjectItem(g, "tests")) {
            size_t sl, pl, kl;
            uint8_t *seed = hexfield(t, "seed", &sl), *pk = hexfield(t, "pk", &pl), *sk = hexfield(t, "sk", &kl);
            uint8_t gpk[QAI_MLDSA_MAX_PK_BYTES], gsk[QAI_MLDSA_MAX_SK_BYTES];
            n++;
            if (sl == 32 && pl == p->pk_bytes && kl == p->sk_bytes && qai_mldsa_keygen_seed(p, seed, gpk, gsk) == 0 &&
                same(gpk, pk, pl, "keyGen pk", tcid(t)) && same(gsk, sk, kl, "keyGen sk", tcid(t)))
                ok++;
            free(seed), free(pk), free(sk);
        }
    }
    CHECK_EQ_INT(n, 75);
    CHECK_EQ_INT(ok, n);
    cJSON_Delete(j);
}

static void test_acvp_siggen(void) {
    cJSON *j = load_json("ML-DSA/sig-gen.internalProjection.json");
    CHECK(j != NULL);
    if (!j) return;
    int n = 0, ok = 0;
    const cJSON *g;
    cJSON_ArrayForEach(g, cJSON_GetObjectItem(j, "testGroups")) {
        const qai_mldsa_params *p = params_of(g, "parameterSet");
        int det = cJSON_IsTrue(cJSON_GetObjectItem(g, "deterministic"));
        const cJSON *t;
        cJSON_ArrayForEach(t, cJSON_GetObjectItem(g, "tests")) {
            size_t kl, ml, rl, sl;
            uint8_t *sk = hexfield(t, "sk", &kl), *msg = hexfield(t, "message", &ml), *rnd = hexfield(t, "rnd", &rl),
                    *sig = hexfield(t, "signature", &sl);
            uint8_t zero[32] = {0}, got[QAI_MLDSA_MAX_SIG_BYTES];
            n++;
            CHECK(det ? rl == 0 : rl == 32);
            qai_status st = qai_mldsa_sign_internal(p, sk, kl, msg, ml, det ? zero : rnd, got);
            if (st) fprintf(stderr, "sigGen tcId %d: %s\n", tcid(t), qai_last_error());
            if (!st && sl == p->sig_bytes && same(got, sig, sl, "sigGen", tcid(t))) ok++;
            free(sk), free(msg), free(rnd), free(sig);
        }
    }
    CHECK_EQ_INT(n, 60);
    CHECK_EQ_INT(ok, n);
    cJSON_Delete(j);
}

static void test_acvp_sigver(void) {
    cJSON *j = load_json("ML-DSA/sig-ver.internalProjection.json");
    CHECK(j != NULL);
    if (!j) return;
    int n = 0, ok = 0, n_false = 0;
    const cJSON *g;
    cJSON_ArrayForEach(g, cJSON_GetObjectItem(j, "testGroups")) {
        const qai_mldsa_params *p = params_of(g, "parameterSet");
        size_t pl;
        uint8_t *pk = hexfield(g, "pk", &pl);
        const cJSON *t;
        cJSON_ArrayForEach(t, cJSON_GetObjectItem(g, "tests")) {
            size_t ml, sl;
            uint8_t *msg = hexfield(t, "message", &ml), *sig = hexfield(t, "signature", &sl);
            int want = cJSON_IsTrue(cJSON_GetObjectItem(t, "testPassed"));
            int got = qai_mldsa_verify_internal(p, pk, pl, msg, ml, sig, sl) == QAI_OK;
            n++;
            n_false += !want;
            if (got == want) ok++;
            else
                fprintf(stderr, "sigVer tcId %d (%s): got %d want %d: %s\n", tcid(t),
                        cJSON_GetObjectItem(t, "reason")->valuestring, got, want, qai_last_error());
            free(msg), free(sig);
        }
        free(pk);
    }
    CHECK_EQ_INT(n, 45);
    CHECK(n_false > 0);
    CHECK_EQ_INT(ok, n);
    cJSON_Delete(j);
}

/* ---- Wycheproof ----------------------------------------------------------------- */

static int flag(const cJSON *t, const char *name) {
    const cJSON *f;
    cJSON_ArrayForEach(f, cJSON_GetObjectItem(t, "flags")) {
        if (cJSON_IsString(f) && strcmp(f->valuestring, name) == 0) return 1;
    }
    return 0;
}

static const char *result(const cJSON *t) { return cJSON_GetObjectItem(t, "result")->valuestring; }

/* One sign test: returns 1 if the outcome matches the expected result. */
static int wy_sign_one(const qai_mldsa_params *p, const uint8_t *sk, size_t kl, const uint8_t *pk, size_t pl,
                       const cJSON *t) {
    size_t ml, cl, rl, mul, sl;
    uint8_t *msg = hexfield(t, "msg", &ml), *ctx = hexfield(t, "ctx", &cl), *rnd = hexfield(t, "rnd", &rl);
    uint8_t *mu = hexfield(t, "mu", &mul), *sig = hexfield(t, "sig", &sl);
    uint8_t zero[32] = {0}, got[QAI_MLDSA_MAX_SIG_BYTES], gmu[64];
    int valid = strcmp(result(t), "invalid") != 0, ok = 0;
    const uint8_t *r = rl == 32 ? rnd : zero;
    qai_status st;
    if (!has(t, "msg") && mul == 64) { /* "Internal": sign the given mu */
        st = qai_mldsa_sign_mu(p, sk, kl, mu, r, got);
        if (st == 0) st = qai_mldsa_verify_mu(p, pk, pl, mu, got, p->sig_bytes);
    } else {
        st = qai_mldsa_sign(p, sk, kl, msg, ml, ctx, cl, r, got);
        if (st == 0 && mul == 64) { /* the test's mu must be ours too */
            qai_mldsa_external_mu(pk, pl, msg, ml, ctx, cl, gmu);
            if (memcmp(gmu, mu, 64) != 0) st = qai_error(QAI_ERR_INTERNAL, "mu differs");
        }
        if (st == 0) st = qai_mldsa_verify(p, pk, pl, msg, ml, ctx, cl, got, p->sig_bytes);
    }
    if (valid) ok = st == 0 && sl == p->sig_bytes && same(got, sig, sl, "wycheproof sign", tcid(t));
    else ok = st != 0;
    if (!ok)
        fprintf(stderr, "wycheproof %s sign tcId %d (%s): status %d %s\n", p->name, tcid(t),
                cJSON_GetObjectItem(t, "comment")->valuestring, st, qai_last_error());
    free(msg), free(ctx), free(rnd), free(mu), free(sig);
    return ok;
}

static void test_wycheproof_sign(const char *file, int seeded) {
    char rel[256];
    snprintf(rel, sizeof rel, "wycheproof/%s", file);
    cJSON *j = load_json(rel);
    CHECK(j != NULL);
    if (!j) return;
    const qai_mldsa_params *p = params_of(j, "algorithm");
    CHECK(p != NULL);
    int n = 0, ok = 0;
    const cJSON *g;
    cJSON_ArrayForEach(g, cJSON_GetObjectItem(j, "testGroups")) {
        size_t pl, kl;
        uint8_t *pk = hexfield(g, "publicKey", &pl), *key = hexfield(g, seeded ? "privateSeed" : "privateKey", &kl);
        uint8_t sk[QAI_MLDSA_MAX_SK_BYTES], gpk[QAI_MLDSA_MAX_PK_BYTES];
        const uint8_t *skp = key;
        size_t skl = kl;
        int key_ok = 1;
        if (seeded) {
            /* the seed is a fixed 32-byte argument of keygen_seed: a seed of
             * another length cannot be used (IncorrectPrivateKeyLength) */
            key_ok = kl == 32 && qai_mldsa_keygen_seed(p, key, gpk, sk) == 0;
            if (key_ok && pl) CHECK(same(gpk, pk, pl, "wycheproof keygen pk", 0));
            skp = sk, skl = p->sk_bytes;
        }
        const cJSON *t;
        cJSON_ArrayForEach(t, cJSON_GetObjectItem(g, "tests")) {
            n++;
            if (!key_ok) ok += strcmp(result(t), "invalid") == 0 && flag(t, "IncorrectPrivateKeyLength");
            else ok += wy_sign_one(p, skp, skl, seeded ? gpk : pk, seeded ? p->pk_bytes : pl, t);
        }
        free(pk), free(key);
    }
    CHECK_EQ_INT(n, cJSON_GetObjectItem(j, "numberOfTests")->valueint);
    CHECK_MSG(ok == n, "%s: %d of %d pass", file, ok, n);
    cJSON_Delete(j);
}

static void test_wycheproof_verify(const char *file) {
    char rel[256];
    snprintf(rel, sizeof rel, "wycheproof/%s", file);
    cJSON *j = load_json(rel);
    CHECK(j != NULL);
    if (!j) return;
    const qai_mldsa_params *p = params_of(j, "algorithm");
    int n = 0, ok = 0, n_invalid = 0;
    const cJSON *g;
    cJSON_ArrayForEach(g, cJSON_GetObjectItem(j, "testGroups")) {
        size_t pl;
        uint8_t *pk = hexfield(g, "publicKey", &pl);
        const cJSON *t;
        cJSON_ArrayForEach(t, cJSON_GetObjectItem(g, "tests")) {
            size_t ml, cl, sl;
            uint8_t *msg = hexfield(t, "msg", &ml), *ctx = hexfield(t, "ctx", &cl), *sig = hexfield(t, "sig", &sl);
            int want = strcmp(result(t), "valid") == 0, acceptable = strcmp(result(t), "acceptable") == 0;
            int got = qai_mldsa_verify(p, pk, pl, msg, ml, ctx, cl, sig, sl) == QAI_OK;
            n++;
            n_invalid += !want && !acceptable;
            if (got == want || acceptable) ok++;
            else
                fprintf(stderr, "wycheproof %s verify tcId %d (%s): got %d: %s\n", file, tcid(t),
                        cJSON_GetObjectItem(t, "comment")->valuestring, got, qai_last_error());
            free(msg), free(ctx), free(sig);
        }
        free(pk);
    }
    CHECK_EQ_INT(n, cJSON_GetObjectItem(j, "numberOfTests")->valueint);
    CHECK(n_invalid > 50);
    CHECK_MSG(ok == n, "%s: %d of %d pass", file, ok, n);
    cJSON_Delete(j);
}

/* ---- round trips and tampering ------------------------------------------------- */

static void test_roundtrip(qai_mldsa_kind kind) {
    const qai_mldsa_params *p = qai_mldsa_params_get(kind);
    uint8_t pk[QAI_MLDSA_MAX_PK_BYTES], sk[QAI_MLDSA_MAX_SK_BYTES], xi[32], pk2[QAI_MLDSA_MAX_PK_BYTES],
        sk2[QAI_MLDSA_MAX_SK_BYTES];
    uint8_t sig[QAI_MLDSA_MAX_SIG_BYTES], sig2[QAI_MLDSA_MAX_SIG_BYTES], zero[32] = {0};
    CHECK_OK(qai_mldsa_keygen(p, pk, sk, xi));
    /* the seed re-creates the same key pair */
    CHECK_OK(qai_mldsa_keygen_seed(p, xi, pk2, sk2));
    CHECK(memcmp(pk, pk2, p->pk_bytes) == 0 && memcmp(sk, sk2, p->sk_bytes) == 0);

    const char msg[] = "qai model bundle manifest v1", ctx[] = "qai-test-context";
    size_t ml = sizeof msg - 1, cl = sizeof ctx - 1;
    CHECK_OK(qai_mldsa_sign(p, sk, p->sk_bytes, msg, ml, ctx, cl, NULL, sig));
    CHECK_OK(qai_mldsa_verify(p, pk, p->pk_bytes, msg, ml, ctx, cl, sig, p->sig_bytes));
    /* hedged signatures differ from call to call; both verify */
    CHECK_OK(qai_mldsa_sign(p, sk, p->sk_bytes, msg, ml, ctx, cl, NULL, sig2));
    CHECK(memcmp(sig, sig2, p->sig_bytes) != 0);
    CHECK_OK(qai_mldsa_verify(p, pk, p->pk_bytes, msg, ml, ctx, cl, sig2, p->sig_bytes));
    /* deterministic signatures repeat */
    CHECK_OK(qai_mldsa_sign(p, sk, p->sk_bytes, msg, ml, ctx, cl, zero, sig));
    CHECK_OK(qai_mldsa_sign(p, sk, p->sk_bytes, msg, ml, ctx, cl, zero, sig2));
    CHECK(memcmp(sig, sig2, p->sig_bytes) == 0);
    /* the external interface is Sign_internal on 0 || len(ctx) || ctx || M */
    uint8_t mprime[2 + sizeof ctx + sizeof msg];
    mprime[0] = 0, mprime[1] = (uint8_t)cl;
    memcpy(mprime + 2, ctx, cl);
    memcpy(mprime + 2 + cl, msg, ml);
    CHECK_OK(qai_mldsa_sign_internal(p, sk, p->sk_bytes, mprime, 2 + cl + ml, zero, sig2));
    CHECK(memcmp(sig, sig2, p->sig_bytes) == 0);
    CHECK_OK(qai_mldsa_verify_internal(p, pk, p->pk_bytes, mprime, 2 + cl + ml, sig, p->sig_bytes));
    /* empty context and empty message */
    CHECK_OK(qai_mldsa_sign(p, sk, p->sk_bytes, "", 0, NULL, 0, NULL, sig2));
    CHECK_OK(qai_mldsa_verify(p, pk, p->pk_bytes, "", 0, NULL, 0, sig2, p->sig_bytes));
    CHECK(qai_mldsa_verify(p, pk, p->pk_bytes, "", 0, "x", 1, sig2, p->sig_bytes) != QAI_OK);
    /* a 255-byte context works, 256 bytes is refused */
    uint8_t big[256];
    memset(big, 0x5a, sizeof big);
    CHECK_OK(qai_mldsa_sign(p, sk, p->sk_bytes, msg, ml, big, 255, NULL, sig2));
    CHECK_OK(qai_mldsa_verify(p, pk, p->pk_bytes, msg, ml, big, 255, sig2, p->sig_bytes));
    CHECK_EQ_INT(qai_mldsa_sign(p, sk, p->sk_bytes, msg, ml, big, 256, NULL, sig2), QAI_ERR_ARG);
    CHECK(qai_mldsa_verify(p, pk, p->pk_bytes, msg, ml, big, 256, sig2, p->sig_bytes) != QAI_OK);

    /* one flipped bit anywhere fails: message, context, signature, key */
    int accepted = 0;
    char m2[sizeof msg];
    for (size_t bit = 0; bit < ml * 8; bit += 5) {
        memcpy(m2, msg, sizeof msg);
        m2[bit / 8] ^= (char)(1 << (bit % 8));
        accepted += qai_mldsa_verify(p, pk, p->pk_bytes, m2, ml, ctx, cl, sig, p->sig_bytes) == QAI_OK;
    }
    char c2[sizeof ctx];
    memcpy(c2, ctx, sizeof ctx);
    c2[3] ^= 0x10;
    accepted += qai_mldsa_verify(p, pk, p->pk_bytes, msg, ml, c2, cl, sig, p->sig_bytes) == QAI_OK;
    for (size_t byte = 0; byte < p->sig_bytes; byte += 37) {
        memcpy(sig2, sig, p->sig_bytes);
        sig2[byte] ^= (uint8_t)(1 << (byte % 8));
        accepted += qai_mldsa_verify(p, pk, p->pk_bytes, msg, ml, ctx, cl, sig2, p->sig_bytes) == QAI_OK;
    }
    for (size_t byte = 0; byte < p->pk_bytes; byte += 101) {
        memcpy(pk2, pk, p->pk_bytes);
        pk2[byte] ^= (uint8_t)(1 << (byte % 8));
        accepted += qai_mldsa_verify(p, pk2, p->pk_bytes, msg, ml, ctx, cl, sig, p->sig_bytes) == QAI_OK;
    }
    CHECK_EQ_INT(accepted, 0);
    /* truncated / extended signatures and keys are refused with a message */
    CHECK_EQ_INT(qai_mldsa_verify(p, pk, p->pk_bytes, msg, ml, ctx, cl, sig, p->sig_bytes - 1), QAI_ERR_FORMAT);
    CHECK(strstr(qai_last_error(), "signature has") != NULL);
    CHECK_EQ_INT(qai_mldsa_verify(p, pk, p->pk_bytes + 1, msg, ml, ctx, cl, sig, p->sig_bytes), QAI_ERR_FORMAT);
    CHECK_EQ_INT(qai_mldsa_sign(p, sk, p->sk_bytes - 1, msg, ml, NULL, 0, NULL, sig2), QAI_ERR_FORMAT);
    /* a signature under one parameter set never verifies under another key */
    const qai_mldsa_params *other = qai_mldsa_params_get((qai_mldsa_kind)((kind + 1) % 3));
    CHECK(qai_mldsa_verify(other, pk, p->pk_bytes, msg, ml, ctx, cl, sig, p->sig_bytes) != QAI_OK);
}

int main(void) {
    uint64_t t0 = qai_time_ns();
    test_sizes();
    qai_mldsa_use_avx2(false);
    test_ntt(); /* the scalar kernels against schoolbook multiplication */
    qai_mldsa_use_avx2(true);
    test_ntt(); /* and the default ones (AVX2 where available) */
    test_rounding();
    test_sample_in_ball();
    test_keccakx4();
    uint64_t t1 = qai_time_ns();
    /* the ACVP vectors with the scalar samplers, then with AVX2 (if any) */
    for (int pass = 0; pass < 2; pass++) {
        if (qai_mldsa_use_avx2(pass == 1) != (pass == 1)) break;
        test_acvp_keygen();
        test_acvp_siggen();
        test_acvp_sigver();
    }
    uint64_t t2 = qai_time_ns();
    static const char *levels[3] = {"44", "65", "87"};
    for (int i = 0; i < 3; i++) {
        char f[64];
        snprintf(f, sizeof f, "mldsa_%s_sign_seed_test.json", levels[i]);
        test_wycheproof_sign(f, 1);
        snprintf(f, sizeof f, "mldsa_%s_sign_noseed_test.json", levels[i]);
        test_wycheproof_sign(f, 0);
        snprintf(f, sizeof f, "mldsa_%s_verify_test.json", levels[i]);
        test_wycheproof_verify(f);
    }
    uint64_t t3 = qai_time_ns();
    for (int k = 0; k < 3; k++) test_roundtrip((qai_mldsa_kind)k);
    fprintf(stderr, "arithmetic %.2f s, ACVP %.2f s, Wycheproof %.2f s, round trips %.2f s\n", (t1 - t0) * 1e-9,
            (t2 - t1) * 1e-9, (t3 - t2) * 1e-9, (qai_time_ns() - t3) * 1e-9);
    return test_summary();
}
