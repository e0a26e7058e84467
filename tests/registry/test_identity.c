/* Hybrid identities (src/registry/identity.c): generation, key files, the
 * passphrase, hybrid sign/verify and tampering.
 *  - key id = first 16 bytes of SHA-256(ed25519_pk || mldsa65_pk), checked
 *    against libsodium's SHA-256 computed here;
 *  - the Ed25519 part of a hybrid signature verifies with plain libsodium and
 *    the ML-DSA part with qai_mldsa_verify over the documented signed bytes P
 *    and context, so the layout in qai/sign.h is what the code does;
 *  - save/load round trips; file sizes and modes (0600 .key, 0644 .pub);
 *    a wrong passphrase and every corrupted region of both files are refused
 *    with a message; tampering with the message or any region of the
 *    signature fails and names the failing part;
 *  - allocation failures at every point of generate/sign/verify/load fail
 *    cleanly (no crash, no leak under ASan). */
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qai/sign.h"
#include "registry/mldsa.h"
#include "test.h"

static const qai_kdf_params FAST = {1, 8192}; /* libsodium's minimum: tests only */

static void test_generate(void) {
    qai_identity *id;
    CHECK_OK(qai_identity_generate("alice@lab", &id));
    CHECK(qai_identity_has_private(id));
    CHECK(strcmp(qai_identity_name(id), "alice@lab") == 0);
    CHECK(qai_identity_created(id) > 1700000000);
    uint8_t h[32];
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, qai_identity_ed25519_public(id), 32);
    crypto_hash_sha256_update(&st, qai_identity_mldsa_public(id), QAI_MLDSA65_PUBLIC_BYTES);
    crypto_hash_sha256_final(&st, h);
    char hex[33];
    sodium_bin2hex(hex, sizeof hex, h, 16);
    CHECK(strcmp(hex, qai_identity_key_id(id)) == 0);
    CHECK_EQ_INT(strlen(qai_identity_key_id(id)), 32);

    /* two identities differ */
    qai_identity *id2;
    CHECK_OK(qai_identity_generate(NULL, &id2));
    CHECK(strcmp(qai_identity_key_id(id), qai_identity_key_id(id2)) != 0);
    CHECK(strcmp(qai_identity_name(id2), "") == 0);
    qai_identity_free(id2);

    /* names: too long, invalid UTF-8, control characters */
    char long_name[80];
    memset(long_name, 'x', 64);
    long_name[64] = 0;
    CHECK_EQ_INT(qai_identity_generate(long_name, &id2), QAI_ERR_ARG);
    CHECK(id2 == NULL);
    long_name[63] = 0;
    CHECK_OK(qai_identity_generate(long_name, &id2)); /* 63 bytes is fine */
    qai_identity_free(id2);
    CHECK_EQ_INT(qai_identity_generate("bad\xff", &id2), QAI_ERR_ARG);
    CHECK(strstr(qai_last_error(), "UTF-8") != NULL);
    CHECK_EQ_INT(qai_identity_generate("tab\there", &id2), QAI_ERR_ARG);
    CHECK_OK(qai_identity_generate("Zoë 🔑", &id2));
    qai_identity_free(id2);
    qai_identity_free(id);
}

static void test_sign_verify(void) {
    uint8_t eds[32], mls[32];
    for (int i = 0; i < 32; i++) eds[i] = (uint8_t)i, mls[i] = (uint8_t)(255 - i);
    qai_identity *id, *same, *other;
    CHECK_OK(qai_identity_from_seeds("fixture", 1700000000, eds, mls, &id));
    CHECK_OK(qai_identity_from_seeds("fixture", 1700000000, eds, mls, &same));
    CHECK(strcmp(qai_identity_key_id(id), qai_identity_key_id(same)) == 0);
    /* the ML-DSA key is FIPS 204 KeyGen_internal of the seed */
    uint8_t pk[QAI_MLDSA65_PUBLIC_BYTES], sk[4032];
    CHECK_OK(qai_mldsa_keygen_seed(qai_mldsa_params_get(QAI_MLDSA_65), mls, pk, sk));
    CHECK(memcmp(pk, qai_identity_mldsa_public(id), sizeof pk) == 0);
    CHECK_OK(qai_identity_generate("other", &other));

    const char msg[] = "{\"apiVersion\":\"qai/v1\",\"kind\":\"ModelBundle\"}";
    size_t ml = sizeof msg - 1;
    uint8_t sig[QAI_HYBRID_SIG_BYTES], sig2[QAI_HYBRID_SIG_BYTES];
    CHECK_OK(qai_hybrid_sign(id, msg, ml, sig));
    CHECK_OK(qai_hybrid_verify(id, msg, ml, sig, sizeof sig));
    CHECK_OK(qai_hybrid_verify(same, msg, ml, sig, sizeof sig));
    char kid[QAI_KEY_ID_HEX_BYTES];
    CHECK_OK(qai_hybrid_signature_key_id(sig, sizeof sig, kid));
    CHECK(strcmp(kid, qai_identity_key_id(id)) == 0);
    CHECK(memcmp(sig, "QAIS", 4) == 0);

    /* the documented layout: P = domain || 0 || key id || msg */
    uint8_t P[256];
    size_t dl = strlen(QAI_SIGN_DOMAIN) + 1;
    memcpy(P, QAI_SIGN_DOMAIN, dl);
    memcpy(P + dl, sig + QAI_HYBRID_OFF_KEY_ID, 16);
    memcpy(P + dl + 16, msg, ml);
    size_t pl = dl + 16 + ml;
    CHECK(crypto_sign_verify_detached(sig + QAI_HYBRID_OFF_ED25519, P, pl, qai_identity_ed25519_public(id)) == 0);
    CHECK_OK(qai_mldsa_verify(qai_mldsa_params_get(QAI_MLDSA_65), qai_identity_mldsa_public(id),
                              QAI_MLDSA65_PUBLIC_BYTES, P, pl, QAI_SIGN_MLDSA_CONTEXT, strlen(QAI_SIGN_MLDSA_CONTEXT),
                              sig + QAI_HYBRID_OFF_MLDSA, QAI_MLDSA65_SIG_BYTES));

    /* empty message */
    CHECK_OK(qai_hybrid_sign(id, "", 0, sig2));
    CHECK_OK(qai_hybrid_verify(id, "", 0, sig2, sizeof sig2));
    CHECK(qai_hybrid_verify(id, "x", 1, sig2, sizeof sig2) != QAI_OK);

    /* wrong key: named by key id */
    CHECK_EQ_INT(qai_hybrid_verify(other, msg, ml, sig, sizeof sig), QAI_ERR_FORMAT);
    CHECK(strstr(qai_last_error(), qai_identity_key_id(id)) != NULL);
    /* tampered message */
    char m2[sizeof msg];
    memcpy(m2, msg, sizeof msg);
    m2[10] ^= 1;
    CHECK_EQ_INT(qai_hybrid_verify(id, m2, ml, sig, sizeof sig), QAI_ERR_FORMAT);
    CHECK(strstr(qai_last_error(), "neither") != NULL);
    /* each region of the signature: header, key id, Ed25519, ML-DSA */
    struct {
        size_t off;
        const char *want;
    } regions[] = {{0, "magic"},   {4, "version"},          {6, "suite"},
                   {8, "made by"}, {24, "Ed25519 signature"}, {88 + 100, "ML-DSA-65"},
                   {QAI_HYBRID_SIG_BYTES - 1, "ML-DSA-65"}};
    for (size_t r = 0; r < sizeof regions / sizeof regions[0]; r++) {
        memcpy(sig2, sig, sizeof sig);
        sig2[regions[r].off] ^= 0x04;
        qai_status st = qai_hybrid_verify(id, msg, ml, sig2, sizeof sig2);
        CHECK_MSG(st != QAI_OK && strstr(qai_last_error(), regions[r].want) != NULL, "offset %zu: %s",
                  regions[r].off, qai_last_error());
    }
    int accepted = 0;
    for (size_t b = 0; b < sizeof sig; b += 13) {
        memcpy(sig2, sig, sizeof sig);
        sig2[b] ^= (uint8_t)(1 << (b % 8));
        accepted += qai_hybrid_verify(id, msg, ml, sig2, sizeof sig2) == QAI_OK;
    }
    CHECK_EQ_INT(accepted, 0);
    CHECK_EQ_INT(qai_hybrid_verify(id, msg, ml, sig, sizeof sig - 1), QAI_ERR_FORMAT);
    CHECK(strstr(qai_last_error(), "bytes") != NULL);

    /* a public-only identity cannot sign */
    uint8_t pubfile[QAI_PUBKEY_FILE_BYTES];
    qai_identity_public_bytes(id, pubfile);
    qai_identity *pub;
    CHECK_OK(qai_identity_parse(pubfile, sizeof pubfile, "mem.pub", NULL, &pub));
    CHECK(!qai_identity_has_private(pub));
    CHECK_EQ_INT(qai_hybrid_sign(pub, msg, ml, sig2), QAI_ERR_ARG);
    CHECK_OK(qai_hybrid_verify(pub, msg, ml, sig, sizeof sig));
    qai_identity_free(pub);
    qai_identity_free(id);
    qai_identity_free(same);
    qai_identity_free(other);
}

static void test_files(void) {
    char dir[512], path[600], kpath[600];
    snprintf(dir, sizeof dir, "%s/test_identity.%d/keys", TEST_TMP(), (int)getpid());
    qai_identity *id, *pub, *priv, *x;
    CHECK_OK(qai_identity_generate("files", &id));
    /* refuses an empty passphrase and absurd KDF settings, writing nothing */
    CHECK_EQ_INT(qai_identity_save(id, dir, "", &FAST), QAI_ERR_ARG);
    qai_kdf_params silly = {1000, 8192};
    CHECK_EQ_INT(qai_identity_save(id, dir, "pw", &silly), QAI_ERR_ARG);
    struct stat sb;
    CHECK(stat(dir, &sb) != 0);

    CHECK_OK(qai_identity_save(id, dir, "correct horse", &FAST));
    snprintf(path, sizeof path, "%s/%s.pub", dir, qai_identity_key_id(id));
    snprintf(kpath, sizeof kpath, "%s/%s.key", dir, qai_identity_key_id(id));
    CHECK(stat(path, &sb) == 0 && sb.st_size == QAI_PUBKEY_FILE_BYTES && (sb.st_mode & 0777) == 0644);
    CHECK(stat(kpath, &sb) == 0 && sb.st_size == QAI_SECKEY_FILE_BYTES && (sb.st_mode & 0777) == 0600);

    CHECK_OK(qai_identity_load_public(path, &pub));
    CHECK(strcmp(qai_identity_key_id(pub), qai_identity_key_id(id)) == 0);
    CHECK(strcmp(qai_identity_name(pub), "files") == 0);
    CHECK_EQ_INT(qai_identity_created(pub), qai_identity_created(id));
    CHECK(!qai_identity_has_private(pub));
    /* the public part of a .key file reads without the passphrase */
    CHECK_OK(qai_identity_load_public(kpath, &x));
    CHECK(strcmp(qai_identity_key_id(x), qai_identity_key_id(id)) == 0 && !qai_identity_has_private(x));
    qai_identity_free(x);

    CHECK_OK(qai_identity_load_private(kpath, "correct horse", &priv));
    CHECK(qai_identity_has_private(priv));
    uint8_t sig[QAI_HYBRID_SIG_BYTES];
    CHECK_OK(qai_hybrid_sign(priv, "m", 1, sig));
    CHECK_OK(qai_hybrid_verify(pub, "m", 1, sig, sizeof sig));
    qai_identity_free(priv);

    CHECK_EQ_INT(qai_identity_load_private(kpath, "wrong horse", &priv), QAI_ERR_FORMAT);
    CHECK(priv == NULL);
    CHECK(strstr(qai_last_error(), "wrong passphrase or corrupted key file") != NULL);
    CHECK(qai_identity_load_private(path, "correct horse", &priv) != QAI_OK); /* a .pub has no private key */
    CHECK(strstr(qai_last_error(), "public key file") != NULL);

    /* corruption: one byte in every region of both files */
    char *data;
    size_t n;
    CHECK_OK(qai_file_read(kpath, &data, &n));
    const size_t key_offs[] = {0, 5, 7, 9, 20, 40, 100, 500, 2080, 2085, 2090, 2100, 2120, 2140, 2215};
    for (size_t i = 0; i < sizeof key_offs / sizeof key_offs[0]; i++) {
        uint8_t buf[QAI_SECKEY_FILE_BYTES];
        memcpy(buf, data, sizeof buf);
        buf[key_offs[i]] ^= 0x20;
        qai_status st = qai_identity_parse(buf, sizeof buf, "k", "correct horse", &x);
        CHECK_MSG(st != QAI_OK && x == NULL, "private key byte %zu changed but accepted", key_offs[i]);
        if (key_offs[i] == 9 || key_offs[i] >= 2112)
            CHECK_MSG(strstr(qai_last_error(), "wrong passphrase or corrupted") != NULL, "byte %zu: %s", key_offs[i],
                      qai_last_error());
    }
    uint8_t tbuf[QAI_SECKEY_FILE_BYTES + 1];
    memcpy(tbuf, data, QAI_SECKEY_FILE_BYTES);
    CHECK_EQ_INT(qai_identity_parse(tbuf, QAI_SECKEY_FILE_BYTES - 1, "short.key", NULL, &x), QAI_ERR_FORMAT);
    CHECK(strstr(qai_last_error(), "short.key") != NULL && strstr(qai_last_error(), "expected 2216") != NULL);
    tbuf[QAI_SECKEY_FILE_BYTES] = 0;
    CHECK_EQ_INT(qai_identity_parse(tbuf, QAI_SECKEY_FILE_BYTES + 1, "long.key", NULL, &x), QAI_ERR_FORMAT);
    qai_free(data);

    CHECK_OK(qai_file_read(path, &data, &n));
    const size_t pub_offs[] = {0, 4, 6, 8, 16, 32, 90, 96, 128, 2000, 2080, 2111};
    for (size_t i = 0; i < sizeof pub_offs / sizeof pub_offs[0]; i++) {
        uint8_t buf[QAI_PUBKEY_FILE_BYTES];
        memcpy(buf, data, sizeof buf);
        buf[pub_offs[i]] ^= 0x01;
        qai_status st = qai_identity_parse(buf, sizeof buf, "p.pub", NULL, &x);
        CHECK_MSG(st != QAI_OK && x == NULL, "public key byte %zu changed but accepted", pub_offs[i]);
        CHECK(strstr(qai_last_error(), "p.pub") != NULL || pub_offs[i] == 0);
    }
    /* a name without its NUL, and a name with junk after the NUL */
    uint8_t buf[QAI_PUBKEY_FILE_BYTES];
    memcpy(buf, data, sizeof buf);
    memset(buf + QAI_KEYFILE_OFF_NAME, 'a', QAI_KEYFILE_NAME_BYTES);
    CHECK_EQ_INT(qai_identity_parse(buf, sizeof buf, "p.pub", NULL, &x), QAI_ERR_FORMAT);
    CHECK(strstr(qai_last_error(), "NUL") != NULL);
    qai_free(data);
    CHECK_EQ_INT(qai_identity_parse((const uint8_t *)"QA", 2, "tiny", NULL, &x), QAI_ERR_FORMAT);
    CHECK_EQ_INT(qai_identity_load_public("/nonexistent/x.pub", &x), QAI_ERR_IO);

    /* export-public writes the same bytes as save's .pub */
    char epath[700];
    snprintf(epath, sizeof epath, "%s/exported.pub", dir);
    CHECK_OK(qai_identity_export_public(pub, epath));
    char *a, *b;
    size_t an, bn;
    CHECK_OK(qai_file_read(path, &a, &an));
    CHECK_OK(qai_file_read(epath, &b, &bn));
    CHECK(an == bn && memcmp(a, b, an) == 0);
    qai_free(a);
    qai_free(b);
    CHECK_EQ_INT(qai_identity_write_private(pub, epath, "pw", &FAST), QAI_ERR_ARG); /* no private part */

    /* the KDF presets are libsodium's */
    qai_kdf_params k;
    CHECK_OK(qai_kdf_params_named("moderate", &k));
    CHECK(k.opslimit == crypto_pwhash_OPSLIMIT_MODERATE && k.memlimit == crypto_pwhash_MEMLIMIT_MODERATE);
    CHECK_OK(qai_kdf_params_named("interactive", &k));
    CHECK(k.memlimit == crypto_pwhash_MEMLIMIT_INTERACTIVE);
    CHECK_EQ_INT(qai_kdf_params_named("extreme", &k), QAI_ERR_ARG);
    qai_identity_free(pub);
    qai_identity_free(id);
}

/* Every allocation failing in turn: clean errors, never a crash or a leak. */
static void test_alloc_failures(void) {
    int failures = 0, successes = 0;
    uint8_t eds[32] = {1}, mls[32] = {2};
    for (long n = 1; n < 40; n++) {
        qai_identity *id = NULL;
        uint8_t sig[QAI_HYBRID_SIG_BYTES];
        qai_alloc_fail_after(n);
        qai_status st = qai_identity_from_seeds("af", 0, eds, mls, &id);
        if (st == QAI_OK) st = qai_hybrid_sign(id, "x", 1, sig);
        if (st == QAI_OK) st = qai_hybrid_verify(id, "x", 1, sig, sizeof sig);
        qai_alloc_fail_after(0);
        if (st == QAI_OK) successes++;
        else if (st == QAI_ERR_NOMEM) failures++;
        else fprintf(stderr, "alloc failure %ld gave %d: %s\n", n, st, qai_last_error());
        qai_identity_free(id);
    }
    CHECK(failures > 0);
    CHECK_EQ_INT(failures + successes, 39);
}

int main(void) {
    CHECK(sodium_init() >= 0);
    test_generate();
    test_sign_verify();
    test_files();
    test_alloc_failures();
    return test_summary();
}
