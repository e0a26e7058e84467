/*
 * identity.c — hybrid signing identities (Ed25519 + ML-DSA-65): generation,
 * the key files (layouts in qai/sign.h), passphrase encryption of the
 * private parts, and hybrid sign/verify.
 *
 * Secrets (the two 32-byte seeds and the expanded private keys) live in one
 * sodium_malloc'd block per identity — guarded, mlock'ed where the system
 * allows, and wiped by sodium_free — rather than in qai_malloc memory; every
 * temporary copy of a secret or of the passphrase-derived key is wiped with
 * sodium_memzero before its function returns.
 *
 * What it does not do: trust, revocation or key lookup (the store does that);
 * see qai/sign.h.
 */
#include "qai/sign.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <sodium.h>
#include <utf8proc.h>

#include "registry/mldsa.h"

#define ML_SK_BYTES 4032

_Static_assert(crypto_sign_PUBLICKEYBYTES == QAI_ED25519_PUBLIC_BYTES, "Ed25519 public key size");
_Static_assert(crypto_sign_BYTES == QAI_ED25519_SIG_BYTES, "Ed25519 signature size");
_Static_assert(crypto_sign_SEEDBYTES == 32, "Ed25519 seed size");
_Static_assert(crypto_pwhash_SALTBYTES == QAI_SECKEY_SALT_BYTES, "Argon2 salt size");
_Static_assert(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES == QAI_SECKEY_NONCE_BYTES, "XChaCha20 nonce size");
_Static_assert(crypto_aead_xchacha20poly1305_ietf_ABYTES == QAI_SECKEY_TAG_BYTES, "Poly1305 tag size");
_Static_assert(crypto_aead_xchacha20poly1305_ietf_KEYBYTES == 32, "XChaCha20 key size");

/* The secret block: seeds first (what the file stores), expanded keys after. */
typedef struct {
    uint8_t ed_seed[32];
    uint8_t ml_seed[32];
    uint8_t ed_sk[crypto_sign_SECRETKEYBYTES];
    uint8_t ml_sk[ML_SK_BYTES];
} secret_block;

struct qai_identity {
    char name[QAI_IDENTITY_NAME_MAX + 1];
    int64_t created;
    uint8_t key_id[QAI_KEY_ID_BYTES];
    char key_id_hex[QAI_KEY_ID_HEX_BYTES];
    uint8_t ed_pk[QAI_ED25519_PUBLIC_BYTES];
    uint8_t ml_pk[QAI_MLDSA65_PUBLIC_BYTES];
    secret_block *secret; /* NULL for a public-only identity */
};

static const uint8_t MAGIC_PUB[4] = {'Q', 'A', 'I', 'P'};
static const uint8_t MAGIC_KEY[4] = {'Q', 'A', 'I', 'K'};
static const uint8_t MAGIC_SIG[4] = {'Q', 'A', 'I', 'S'};
#define KDF_ARGON2ID13 1u
#define OPSLIMIT_MAX 32u
#define MEMLIMIT_MIN 8192ull
#define MEMLIMIT_MAX (4ull << 30)

static const qai_mldsa_params *ml65(void) { return qai_mldsa_params_get(QAI_MLDSA_65); }

/* ---- little-endian fields ---------------------------------------------------- */

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t get32(const uint8_t *p) {
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) v = v << 8 | p[i];
    return v;
}
static uint64_t get64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

/* ---- identities ------------------------------------------------------------- */

/* NULL if fine, else what is wrong with the name. */
static const char *name_problem(const char *name, size_t n) {
    if (n > QAI_IDENTITY_NAME_MAX) return "is longer than 63 bytes";
    const utf8proc_uint8_t *s = (const utf8proc_uint8_t *)name;
    size_t i = 0;
    while (i < n) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t len = utf8proc_iterate(s + i, (utf8proc_ssize_t)(n - i), &cp);
        if (len <= 0) return "is not valid UTF-8";
        if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp < 0xA0)) return "contains a control character";
        i += (size_t)len;
    }
    return NULL;
}

static void set_key_id(qai_identity *id) {
    uint8_t h[32];
    qai_sha256_ctx c;
    qai_sha256_init(&c);
    qai_sha256_update(&c, id->ed_pk, sizeof id->ed_pk);
    qai_sha256_update(&c, id->ml_pk, sizeof id->ml_pk);
    qai_sha256_final(&c, h);
    memcpy(id->key_id, h, QAI_KEY_ID_BYTES);
    qai_hex(id->key_id, QAI_KEY_ID_BYTES, id->key_id_hex);
}

static qai_identity *identity_alloc(void) {
    qai_identity *id = qai_calloc(1, sizeof *id);
    return id;
}

/* Fills the expanded keys and public keys from the seeds in id->secret. */
static qai_status derive_keys(qai_identity *id) {
    secret_block *s = id->secret;
    if (crypto_sign_seed_keypair(id->ed_pk, s->ed_sk, s->ed_seed) != 0)
        return qai_error(QAI_ERR_INTERNAL, "Ed25519 key derivation failed");
    return qai_mldsa_keygen_seed(ml65(), s->ml_seed, id->ml_pk, s->ml_sk);
}

static qai_status new_secret(qai_identity *id) {
    id->secret = sodium_malloc(sizeof(secret_block));
    if (!id->secret) return qai_error(QAI_ERR_NOMEM, "out of memory (secure allocation of %zu bytes)",
                                      sizeof(secret_block));
    return QAI_OK;
}

qai_status qai_identity_from_seeds(const char *name, int64_t created, const uint8_t ed25519_seed[32],
                                   const uint8_t mldsa_seed[32], qai_identity **out) {
    *out = NULL;
    if (sodium_init() < 0) return qai_error(QAI_ERR_INTERNAL, "libsodium failed to initialise");
    if (!name) name = "";
    const char *why = name_problem(name, strlen(name));
    if (why) return qai_error(QAI_ERR_ARG, "identity name '%s' %s", name, why);
    qai_identity *id = identity_alloc();
    if (!id) return QAI_ERR_NOMEM;
    qai_status st = new_secret(id);
    if (st == QAI_OK) {
        memcpy(id->secret->ed_seed, ed25519_seed, 32);
        memcpy(id->secret->ml_seed, mldsa_seed, 32);
        st = derive_keys(id);
    }
    if (st) {
        qai_identity_free(id);
        return st;
    }
    strcpy(id->name, name);
    id->created = created;
    set_key_id(id);
    *out = id;
    return QAI_OK;
}

qai_status qai_identity_generate(const char *name, qai_identity **out) {
    uint8_t seeds[64];
    *out = NULL;
    if (sodium_init() < 0) return qai_error(QAI_ERR_INTERNAL, "libsodium failed to initialise");
    randombytes_buf(seeds, sizeof seeds);
    qai_status st = qai_identity_from_seeds(name, (int64_t)time(NULL), seeds, seeds + 32, out);
    sodium_memzero(seeds, sizeof seeds);
    return st;
}

void qai_identity_free(qai_identity *id) {
    if (!id) return;
    if (id->secret) sodium_free(id->secret); /* wipes before unmapping */
    qai_free(id);
}

const char *qai_identity_key_id(const qai_identity *id) { return id->key_id_hex; }
const char *qai_identity_name(const qai_identity *id) { return id->name; }
int64_t qai_identity_created(const qai_identity *id) { return id->created; }
bool qai_identity_has_private(const qai_identity *id) { return id->secret != NULL; }
const uint8_t *qai_identity_ed25519_public(const qai_identity *id) { return id->ed_pk; }
const uint8_t *qai_identity_mldsa_public(const qai_identity *id) { return id->ml_pk; }

/* ---- key files ----------------------------------------------------------------- */

qai_status qai_kdf_params_named(const char *level, qai_kdf_params *out) {
    if (!level || strcmp(level, "moderate") == 0) {
        out->opslimit = crypto_pwhash_OPSLIMIT_MODERATE;
        out->memlimit = crypto_pwhash_MEMLIMIT_MODERATE;
    } else if (strcmp(level, "interactive") == 0) {
        out->opslimit = crypto_pwhash_OPSLIMIT_INTERACTIVE;
        out->memlimit = crypto_pwhash_MEMLIMIT_INTERACTIVE;
    } else if (strcmp(level, "sensitive") == 0) {
        out->opslimit = crypto_pwhash_OPSLIMIT_SENSITIVE;
        out->memlimit = crypto_pwhash_MEMLIMIT_SENSITIVE;
    } else
        return qai_error(QAI_ERR_ARG, "unknown KDF level '%s' (use interactive, moderate or sensitive)", level);
    return QAI_OK;
}

static qai_status check_kdf(uint32_t ops, uint64_t mem, const char *where) {
    if (ops < crypto_pwhash_OPSLIMIT_MIN || ops > OPSLIMIT_MAX)
        return qai_error(QAI_ERR_FORMAT, "%sArgon2id opslimit %u is outside 1..%u", where, ops, OPSLIMIT_MAX);
    if (mem < MEMLIMIT_MIN || mem > MEMLIMIT_MAX || mem < crypto_pwhash_MEMLIMIT_MIN)
        return qai_error(QAI_ERR_FORMAT, "%sArgon2id memlimit %llu bytes is outside 8 KiB..4 GiB", where,
                         (unsigned long long)mem);
    return QAI_OK;
}

/* The 2080 bytes shared by both key files. */
static void header_bytes(const qai_identity *id, const uint8_t magic[4], uint8_t *b) {
    memset(b, 0, QAI_KEYFILE_PUBLIC_PART);
    memcpy(b + QAI_KEYFILE_OFF_MAGIC, magic, 4);
    put16(b + QAI_KEYFILE_OFF_VERSION, QAI_SIGN_FORMAT_VERSION);
    put16(b + QAI_KEYFILE_OFF_SUITE, QAI_SIGN_SUITE_ED25519_MLDSA65);
    put64(b + QAI_KEYFILE_OFF_CREATED, (uint64_t)id->created);
    memcpy(b + QAI_KEYFILE_OFF_KEY_ID, id->key_id, QAI_KEY_ID_BYTES);
    memcpy(b + QAI_KEYFILE_OFF_NAME, id->name, strlen(id->name));
    memcpy(b + QAI_KEYFILE_OFF_ED25519, id->ed_pk, QAI_ED25519_PUBLIC_BYTES);
    memcpy(b + QAI_KEYFILE_OFF_MLDSA, id->ml_pk, QAI_MLDSA65_PUBLIC_BYTES);
}

void qai_identity_public_bytes(const qai_identity *id, uint8_t buf[QAI_PUBKEY_FILE_BYTES]) {
    header_bytes(id, MAGIC_PUB, buf);
    qai_sha256(buf, QAI_PUBKEY_OFF_CHECKSUM, buf + QAI_PUBKEY_OFF_CHECKSUM);
}

/* Derives the file key from the passphrase; QAI_ERR_NOMEM if Argon2 cannot get
 * its memory. */
static qai_status derive_file_key(uint8_t key[32], const char *passphrase, const uint8_t *salt, uint32_t ops,
                                  uint64_t mem) {
    if (crypto_pwhash(key, 32, passphrase, strlen(passphrase), salt, ops, (size_t)mem, crypto_pwhash_ALG_ARGON2ID13) !=
        0)
        return qai_error(QAI_ERR_NOMEM, "Argon2id could not run with memlimit %llu bytes (out of memory?)",
                         (unsigned long long)mem);
    return QAI_OK;
}

static qai_status private_bytes(const qai_identity *id, const char *passphrase, const qai_kdf_params *kdf,
                                uint8_t buf[QAI_SECKEY_FILE_BYTES]) {
    qai_kdf_params def;
    if (!id->secret) return qai_error(QAI_ERR_ARG, "identity %s has no private key to save", id->key_id_hex);
    if (!passphrase || !*passphrase) return qai_error(QAI_ERR_ARG, "the passphrase is empty");
    if (!kdf) qai_kdf_params_named("moderate", &def), kdf = &def;
    qai_status st = check_kdf(kdf->opslimit, kdf->memlimit, "");
    if (st) return QAI_ERR_ARG; /* a caller's setting, not a file's: the message stands */
    header_bytes(id, MAGIC_KEY, buf);
    put32(buf + QAI_SECKEY_OFF_KDF, KDF_ARGON2ID13);
    put32(buf + QAI_SECKEY_OFF_OPSLIMIT, kdf->opslimit);
    put64(buf + QAI_SECKEY_OFF_MEMLIMIT, kdf->memlimit);
    randombytes_buf(buf + QAI_SECKEY_OFF_SALT, QAI_SECKEY_SALT_BYTES);
    randombytes_buf(buf + QAI_SECKEY_OFF_NONCE, QAI_SECKEY_NONCE_BYTES);
    uint8_t key[32];
    if ((st = derive_file_key(key, passphrase, buf + QAI_SECKEY_OFF_SALT, kdf->opslimit, kdf->memlimit))) return st;
    /* the seeds are the first 64 bytes of the secret block */
    crypto_aead_xchacha20poly1305_ietf_encrypt(buf + QAI_SECKEY_OFF_CIPHERTEXT, NULL, id->secret->ed_seed,
                                               QAI_SECKEY_SECRET_BYTES, buf, QAI_SECKEY_OFF_CIPHERTEXT, NULL,
                                               buf + QAI_SECKEY_OFF_NONCE, key);
    sodium_memzero(key, sizeof key);
    return QAI_OK;
}

static qai_status write_file(const char *path, const uint8_t *data, size_t n, mode_t mode) {
    qai_atomic_file af;
    qai_status st = qai_atomic_open(path, &af);
    if (st) return st;
    if (fchmod(fileno(af.f), mode) != 0) {
        int e = errno;
        qai_atomic_abort(&af);
        return qai_error(QAI_ERR_IO, "cannot set the mode of '%s': %s", path, strerror(e));
    }
    if (fwrite(data, 1, n, af.f) != n) {
        int e = errno;
        qai_atomic_abort(&af);
        return qai_error(QAI_ERR_IO, "cannot write '%s': %s", path, strerror(e));
    }
    return qai_atomic_commit(&af);
}

qai_status qai_identity_export_public(const qai_identity *id, const char *path) {
    uint8_t buf[QAI_PUBKEY_FILE_BYTES];
    qai_identity_public_bytes(id, buf);
    return write_file(path, buf, sizeof buf, 0644);
}

qai_status qai_identity_write_private(const qai_identity *id, const char *path, const char *passphrase,
                                      const qai_kdf_params *kdf) {
    uint8_t buf[QAI_SECKEY_FILE_BYTES];
    qai_status st = private_bytes(id, passphrase, kdf, buf);
    if (st == QAI_OK) st = write_file(path, buf, sizeof buf, 0600);
    return st;
}

qai_status qai_identity_save(const qai_identity *id, const char *dir, const char *passphrase,
                             const qai_kdf_params *kdf) {
    size_t n = strlen(dir) + QAI_KEY_ID_HEX_BYTES + 8;
    char *path = qai_malloc(n);
    if (!path) return QAI_ERR_NOMEM;
    uint8_t buf[QAI_SECKEY_FILE_BYTES];
    /* encrypt first: a bad passphrase or KDF setting leaves nothing behind */
    qai_status st = private_bytes(id, passphrase, kdf, buf);
    if (st == QAI_OK) st = qai_mkdirs(dir);
    if (st == QAI_OK) {
        snprintf(path, n, "%s/%s.key", dir, id->key_id_hex);
        st = write_file(path, buf, sizeof buf, 0600);
    }
    if (st == QAI_OK) {
        snprintf(path, n, "%s/%s.pub", dir, id->key_id_hex);
        st = qai_identity_export_public(id, path);
    }
    qai_free(path);
    return st;
}

/* Validates and reads the shared 2080-byte part into id. */
static qai_status parse_header(const uint8_t *b, size_t n, const char *name, size_t need, qai_identity *id) {
    if (n != need)
        return qai_error(QAI_ERR_FORMAT, "key file '%s': %zu bytes, expected %zu", name, n, need);
    uint16_t v = get16(b + QAI_KEYFILE_OFF_VERSION), suite = get16(b + QAI_KEYFILE_OFF_SUITE);
    if (v != QAI_SIGN_FORMAT_VERSION)
        return qai_error(QAI_ERR_UNSUPPORTED, "key file '%s': format version %u at offset %d is not supported (this qai reads 1)",
                         name, v, QAI_KEYFILE_OFF_VERSION);
    if (suite != QAI_SIGN_SUITE_ED25519_MLDSA65)
        return qai_error(QAI_ERR_UNSUPPORTED, "key file '%s': algorithm suite %u at offset %d is not supported", name,
                         suite, QAI_KEYFILE_OFF_SUITE);
    const uint8_t *nm = b + QAI_KEYFILE_OFF_NAME;
    size_t len = 0;
    while (len < QAI_KEYFILE_NAME_BYTES && nm[len]) len++;
    if (len == QAI_KEYFILE_NAME_BYTES)
        return qai_error(QAI_ERR_FORMAT, "key file '%s': name field at offset %d has no terminating NUL", name,
                         QAI_KEYFILE_OFF_NAME);
    for (size_t i = len; i < QAI_KEYFILE_NAME_BYTES; i++)
        if (nm[i])
            return qai_error(QAI_ERR_FORMAT, "key file '%s': nonzero padding after the name at offset %zu", name,
                             QAI_KEYFILE_OFF_NAME + i);
    const char *why = name_problem((const char *)nm, len);
    if (why) return qai_error(QAI_ERR_FORMAT, "key file '%s': the name at offset %d %s", name, QAI_KEYFILE_OFF_NAME, why);
    memcpy(id->name, nm, len);
    id->name[len] = 0;
    id->created = (int64_t)get64(b + QAI_KEYFILE_OFF_CREATED);
    memcpy(id->ed_pk, b + QAI_KEYFILE_OFF_ED25519, QAI_ED25519_PUBLIC_BYTES);
    memcpy(id->ml_pk, b + QAI_KEYFILE_OFF_MLDSA, QAI_MLDSA65_PUBLIC_BYTES);
    set_key_id(id);
    if (memcmp(id->key_id, b + QAI_KEYFILE_OFF_KEY_ID, QAI_KEY_ID_BYTES) != 0)
        return qai_error(QAI_ERR_FORMAT, "key file '%s': the key id at offset %d does not match the public keys", name,
                         QAI_KEYFILE_OFF_KEY_ID);
    return QAI_OK;
}

static qai_status parse_private(const uint8_t *b, const char *name, const char *passphrase, qai_identity *id) {
    uint32_t kdf = get32(b + QAI_SECKEY_OFF_KDF), ops = get32(b + QAI_SECKEY_OFF_OPSLIMIT);
    uint64_t mem = get64(b + QAI_SECKEY_OFF_MEMLIMIT);
    if (kdf != KDF_ARGON2ID13)
        return qai_error(QAI_ERR_UNSUPPORTED, "key file '%s': KDF %u at offset %d is not supported (1 = Argon2id)", name,
                         kdf, QAI_SECKEY_OFF_KDF);
    char where[512];
    snprintf(where, sizeof where, "key file '%s': offset %d: ", name, QAI_SECKEY_OFF_OPSLIMIT);
    qai_status st = check_kdf(ops, mem, where);
    if (st) return st;
    if (!passphrase) return QAI_OK;
    uint8_t key[32];
    if ((st = derive_file_key(key, passphrase, b + QAI_SECKEY_OFF_SALT, ops, mem))) return st;
    if ((st = new_secret(id))) {
        sodium_memzero(key, sizeof key);
        return st;
    }
    int bad = crypto_aead_xchacha20poly1305_ietf_decrypt(id->secret->ed_seed, NULL, NULL, b + QAI_SECKEY_OFF_CIPHERTEXT,
                                                         QAI_SECKEY_SECRET_BYTES + QAI_SECKEY_TAG_BYTES, b,
                                                         QAI_SECKEY_OFF_CIPHERTEXT, b + QAI_SECKEY_OFF_NONCE, key);
    sodium_memzero(key, sizeof key);
    if (bad) return qai_error(QAI_ERR_FORMAT, "key file '%s': wrong passphrase or corrupted key file", name);
    /* re-derive both key pairs; they must be the stored public keys */
    uint8_t ed_pk[QAI_ED25519_PUBLIC_BYTES], ml_pk[QAI_MLDSA65_PUBLIC_BYTES];
    memcpy(ed_pk, id->ed_pk, sizeof ed_pk);
    memcpy(ml_pk, id->ml_pk, sizeof ml_pk);
    if ((st = derive_keys(id))) return st;
    if (memcmp(ed_pk, id->ed_pk, sizeof ed_pk) != 0 || memcmp(ml_pk, id->ml_pk, sizeof ml_pk) != 0)
        return qai_error(QAI_ERR_FORMAT, "key file '%s': the private keys do not match the public keys", name);
    return QAI_OK;
}

qai_status qai_identity_parse(const uint8_t *data, size_t n, const char *name, const char *passphrase,
                              qai_identity **out) {
    *out = NULL;
    if (sodium_init() < 0) return qai_error(QAI_ERR_INTERNAL, "libsodium failed to initialise");
    if (!name) name = "<memory>";
    if (n < 4) return qai_error(QAI_ERR_FORMAT, "key file '%s': %zu bytes, too short for a key file", name, n);
    int is_pub = memcmp(data, MAGIC_PUB, 4) == 0, is_key = memcmp(data, MAGIC_KEY, 4) == 0;
    if (!is_pub && !is_key)
        return qai_error(QAI_ERR_FORMAT, "key file '%s': not a qai key file (magic at offset 0 is not QAIP or QAIK)",
                         name);
    if (is_pub && passphrase)
        return qai_error(QAI_ERR_ARG, "key file '%s' is a public key file; the private key is in the .key file", name);
    qai_identity *id = identity_alloc();
    if (!id) return QAI_ERR_NOMEM;
    qai_status st = parse_header(data, n, name, is_pub ? QAI_PUBKEY_FILE_BYTES : QAI_SECKEY_FILE_BYTES, id);
    if (st == QAI_OK && is_pub) {
        uint8_t sum[32];
        qai_sha256(data, QAI_PUBKEY_OFF_CHECKSUM, sum);
        if (memcmp(sum, data + QAI_PUBKEY_OFF_CHECKSUM, 32) != 0)
            st = qai_error(QAI_ERR_FORMAT, "key file '%s': checksum at offset %d does not match (corrupted file)", name,
                           QAI_PUBKEY_OFF_CHECKSUM);
    }
    if (st == QAI_OK && is_key) st = parse_private(data, name, passphrase, id);
    if (st) {
        qai_identity_free(id);
        return st;
    }
    *out = id;
    return QAI_OK;
}

static qai_status load(const char *path, const char *passphrase, qai_identity **out) {
    char *data;
    size_t n;
    *out = NULL;
    struct stat sb;
    if (stat(path, &sb) == 0 && sb.st_size > QAI_SECKEY_FILE_BYTES + 4096) /* do not slurp a huge file */
        return qai_error(QAI_ERR_FORMAT, "key file '%s': %lld bytes, far larger than a key file", path,
                         (long long)sb.st_size);
    qai_status st = qai_file_read(path, &data, &n);
    if (st) return st;
    st = qai_identity_parse((const uint8_t *)data, n, path, passphrase, out);
    sodium_memzero(data, n);
    qai_free(data);
    return st;
}

qai_status qai_identity_load_public(const char *path, qai_identity **out) { return load(path, NULL, out); }

qai_status qai_identity_load_private(const char *path, const char *passphrase, qai_identity **out) {
    if (!passphrase) return qai_error(QAI_ERR_ARG, "no passphrase given for '%s'", path);
    return load(path, passphrase, out);
}

/* ---- hybrid signatures ---------------------------------------------------------- */

#define DOMAIN_BYTES (sizeof QAI_SIGN_DOMAIN) /* includes the 0x00 */

/* P = domain || 0x00 || key id || msg, in a fresh heap buffer (*out, freed
 * by the caller with qai_free). */
static qai_status signed_bytes(const uint8_t key_id[QAI_KEY_ID_BYTES], const void *msg, size_t msg_len, uint8_t **out,
                               size_t *n) {
    *out = NULL;
    if (msg_len > SIZE_MAX - DOMAIN_BYTES - QAI_KEY_ID_BYTES)
        return qai_error(QAI_ERR_RANGE, "message of %zu bytes is too large to sign", msg_len);
    *n = DOMAIN_BYTES + QAI_KEY_ID_BYTES + msg_len;
    uint8_t *p = qai_malloc(*n);
    if (!p) return QAI_ERR_NOMEM;
    memcpy(p, QAI_SIGN_DOMAIN, DOMAIN_BYTES);
    memcpy(p + DOMAIN_BYTES, key_id, QAI_KEY_ID_BYTES);
    if (msg_len) memcpy(p + DOMAIN_BYTES + QAI_KEY_ID_BYTES, msg, msg_len);
    *out = p;
    return QAI_OK;
}

qai_status qai_hybrid_sign(const qai_identity *id, const void *msg, size_t msg_len,
                           uint8_t sig[QAI_HYBRID_SIG_BYTES]) {
    if (!id->secret) return qai_error(QAI_ERR_ARG, "identity %s has no private key (load the .key file)", id->key_id_hex);
    size_t n = 0;
    uint8_t *p;
    qai_status st = signed_bytes(id->key_id, msg, msg_len, &p, &n);
    if (st) return st;
    memcpy(sig + QAI_HYBRID_OFF_MAGIC, MAGIC_SIG, 4);
    put16(sig + QAI_HYBRID_OFF_VERSION, QAI_SIGN_FORMAT_VERSION);
    put16(sig + QAI_HYBRID_OFF_SUITE, QAI_SIGN_SUITE_ED25519_MLDSA65);
    memcpy(sig + QAI_HYBRID_OFF_KEY_ID, id->key_id, QAI_KEY_ID_BYTES);
    if (crypto_sign_detached(sig + QAI_HYBRID_OFF_ED25519, NULL, p, n, id->secret->ed_sk) != 0)
        st = qai_error(QAI_ERR_INTERNAL, "Ed25519 signing failed");
    if (st == QAI_OK)
        st = qai_mldsa_sign(ml65(), id->secret->ml_sk, ML_SK_BYTES, p, n, QAI_SIGN_MLDSA_CONTEXT,
                            strlen(QAI_SIGN_MLDSA_CONTEXT), NULL, sig + QAI_HYBRID_OFF_MLDSA);
    qai_free(p);
    if (st) memset(sig, 0, QAI_HYBRID_SIG_BYTES); /* never hand out half a signature */
    return st;
}

static qai_status check_sig_header(const uint8_t *sig, size_t sig_len) {
    if (sig_len != QAI_HYBRID_SIG_BYTES)
        return qai_error(QAI_ERR_FORMAT, "hybrid signature has %zu bytes, expected %d", sig_len, QAI_HYBRID_SIG_BYTES);
    if (memcmp(sig + QAI_HYBRID_OFF_MAGIC, MAGIC_SIG, 4) != 0)
        return qai_error(QAI_ERR_FORMAT, "hybrid signature: magic at offset 0 is not QAIS");
    uint16_t v = get16(sig + QAI_HYBRID_OFF_VERSION), s = get16(sig + QAI_HYBRID_OFF_SUITE);
    if (v != QAI_SIGN_FORMAT_VERSION)
        return qai_error(QAI_ERR_UNSUPPORTED, "hybrid signature: format version %u at offset %d is not supported", v,
                         QAI_HYBRID_OFF_VERSION);
    if (s != QAI_SIGN_SUITE_ED25519_MLDSA65)
        return qai_error(QAI_ERR_UNSUPPORTED, "hybrid signature: algorithm suite %u at offset %d is not supported", s,
                         QAI_HYBRID_OFF_SUITE);
    return QAI_OK;
}

qai_status qai_hybrid_signature_key_id(const uint8_t *sig, size_t sig_len, char key_id[QAI_KEY_ID_HEX_BYTES]) {
    qai_status st = check_sig_header(sig, sig_len);
    if (st) return st;
    qai_hex(sig + QAI_HYBRID_OFF_KEY_ID, QAI_KEY_ID_BYTES, key_id);
    return QAI_OK;
}

qai_status qai_hybrid_verify(const qai_identity *pub, const void *msg, size_t msg_len, const uint8_t *sig,
                             size_t sig_len) {
    qai_status st = check_sig_header(sig, sig_len);
    if (st) return st;
    if (memcmp(sig + QAI_HYBRID_OFF_KEY_ID, pub->key_id, QAI_KEY_ID_BYTES) != 0) {
        char other[QAI_KEY_ID_HEX_BYTES];
        qai_hex(sig + QAI_HYBRID_OFF_KEY_ID, QAI_KEY_ID_BYTES, other);
        return qai_error(QAI_ERR_FORMAT, "hybrid signature was made by key %s, not by key %s", other,
                         pub->key_id_hex);
    }
    size_t n = 0;
    uint8_t *p;
    if ((st = signed_bytes(pub->key_id, msg, msg_len, &p, &n))) return st;
    /* check both, always; report the first that failed */
    int ed_ok = crypto_sign_verify_detached(sig + QAI_HYBRID_OFF_ED25519, p, n, pub->ed_pk) == 0;
    qai_status ml = qai_mldsa_verify(ml65(), pub->ml_pk, QAI_MLDSA65_PUBLIC_BYTES, p, n, QAI_SIGN_MLDSA_CONTEXT,
                                     strlen(QAI_SIGN_MLDSA_CONTEXT), sig + QAI_HYBRID_OFF_MLDSA,
                                     QAI_MLDSA65_SIG_BYTES);
    qai_free(p);
    if (ml == QAI_ERR_NOMEM) return ml;
    if (!ed_ok && ml != QAI_OK)
        return qai_error(QAI_ERR_FORMAT, "hybrid signature by key %s: neither the Ed25519 nor the ML-DSA-65 signature verifies",
                         pub->key_id_hex);
    if (!ed_ok)
        return qai_error(QAI_ERR_FORMAT, "hybrid signature by key %s: the Ed25519 signature does not verify",
                         pub->key_id_hex);
    if (ml != QAI_OK)
        return qai_error_wrap(QAI_ERR_FORMAT, "hybrid signature by key %s: the ML-DSA-65 signature does not verify",
                              pub->key_id_hex);
    return QAI_OK;
}
