/*
 * qai/sign.h — signing identities and hybrid signatures.
 *
 * An identity is two key pairs used together: Ed25519 (libsodium) and
 * ML-DSA-65 (FIPS 204, implemented in libqai). A hybrid signature holds one
 * signature of each over the same bytes and is valid only if BOTH verify, so
 * it stands as long as either algorithm does (ML-DSA against a quantum
 * computer, Ed25519 against a flaw in the younger scheme).
 *
 * Identities have a key id (the first 16 bytes of SHA-256(Ed25519 public key ||
 * ML-DSA-65 public key), written as 32 lowercase hex digits), a name (UTF-8,
 * at most 63 bytes, no control characters) and a creation time. The private
 * parts are stored encrypted with a passphrase: Argon2id (crypto_pwhash, salt
 * and limits stored in the file) derives a key for XChaCha20-Poly1305, and the
 * whole public header is the AEAD's associated data, so no field of a private
 * key file can be changed without the passphrase check failing.
 *
 * What it deliberately does not do: trust decisions (which keys to believe,
 * revocation), key storage policy, or signing of streams — the caller signs a
 * manifest that hashes everything else (see docs/signatures.md).
 *
 * Usage:
 *     qai_identity *id;
 *     if (qai_identity_generate("alice@lab", &id)) ... qai_last_error() ...
 *     qai_identity_save(id, "/home/alice/.local/share/qai/keys", passphrase, NULL);
 *     uint8_t sig[QAI_HYBRID_SIG_BYTES];
 *     qai_hybrid_sign(id, manifest, manifest_len, sig);
 *
 *     qai_identity *pub;
 *     qai_identity_load_public("keys/0123...cdef.pub", &pub);
 *     if (qai_hybrid_verify(pub, manifest, manifest_len, sig, sizeof sig) != QAI_OK)
 *         fprintf(stderr, "qai: %s\n", qai_last_error());   // names what failed
 *
 * Thread safety: an identity is immutable after creation; sign and verify
 * may run on one identity from several threads at once.
 *
 * ---------------------------------------------------------------------------
 * File layouts (all integers little-endian; sizes in bytes)
 *
 * Public key file, <keyid>.pub (QAI_PUBKEY_FILE_BYTES = 2112):
 *     0     4  magic "QAIP"
 *     4     2  format version = 1
 *     6     2  algorithm suite = 1 (Ed25519 + ML-DSA-65)
 *     8     8  created, seconds since 1970 (signed)
 *    16    16  key id = SHA-256(ed25519_pk || mldsa65_pk)[0..16)
 *    32    64  name, UTF-8, NUL-padded (at least one NUL, zeros after it)
 *    96    32  Ed25519 public key
 *   128  1952  ML-DSA-65 public key (FIPS 204 pkEncode)
 *  2080    32  SHA-256 of bytes [0, 2080) (catches accidental corruption)
 *
 * Private key file, <keyid>.key, mode 0600 (QAI_SECKEY_FILE_BYTES = 2216):
 *     0     4  magic "QAIK"
 *     4   124  version, suite, created, key id, name: as the public file
 *   128  1952  ML-DSA-65 public key (the Ed25519 one is at 96 as above)
 *  2080     4  KDF = 1 (Argon2id v1.3, crypto_pwhash_ALG_ARGON2ID13)
 *  2084     4  opslimit (1..32 accepted)
 *  2088     8  memlimit in bytes (8 KiB..4 GiB accepted)
 *  2096    16  salt
 *  2112    24  XChaCha20-Poly1305 nonce
 *  2136    80  ciphertext of (Ed25519 seed 32 || ML-DSA-65 seed xi 32) + 16-byte tag;
 *              associated data = bytes [0, 2136)
 * Both key pairs are re-derived from the two seeds on load and checked against
 * the stored public keys and key id.
 *
 * Hybrid signature (QAI_HYBRID_SIG_BYTES = 3397):
 *     0     4  magic "QAIS"
 *     4     2  format version = 1
 *     6     2  algorithm suite = 1
 *     8    16  key id of the signer
 *    24    64  Ed25519 signature of P
 *    88  3309  ML-DSA-65 signature of P (FIPS 204 ML-DSA.Sign, hedged, with
 *              context string "qai-hybrid-v1")
 * where the signed bytes are P = "qai hybrid signature v1" || 0x00 || key id || message.
 * ---------------------------------------------------------------------------
 */
#ifndef QAI_SIGN_H
#define QAI_SIGN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qai/base.h"

#ifdef __cplusplus
extern "C" {
#endif

#define QAI_KEY_ID_BYTES 16
#define QAI_KEY_ID_HEX_BYTES 33 /* 32 hex digits + NUL */
#define QAI_IDENTITY_NAME_MAX 63
#define QAI_ED25519_PUBLIC_BYTES 32
#define QAI_ED25519_SIG_BYTES 64
#define QAI_MLDSA65_PUBLIC_BYTES 1952
#define QAI_MLDSA65_SIG_BYTES 3309

#define QAI_SIGN_SUITE_ED25519_MLDSA65 1
#define QAI_SIGN_FORMAT_VERSION 1
#define QAI_SIGN_MLDSA_CONTEXT "qai-hybrid-v1"
#define QAI_SIGN_DOMAIN "qai hybrid signature v1" /* followed by one 0x00 byte in P */

/* offsets of the layouts above */
enum {
    QAI_KEYFILE_OFF_MAGIC = 0,
    QAI_KEYFILE_OFF_VERSION = 4,
    QAI_KEYFILE_OFF_SUITE = 6,
    QAI_KEYFILE_OFF_CREATED = 8,
    QAI_KEYFILE_OFF_KEY_ID = 16,
    QAI_KEYFILE_OFF_NAME = 32,
    QAI_KEYFILE_NAME_BYTES = 64,
    QAI_KEYFILE_OFF_ED25519 = 96,
    QAI_KEYFILE_OFF_MLDSA = 128,
    QAI_KEYFILE_PUBLIC_PART = 2080, /* end of the fields shared by .pub and .key */
    QAI_PUBKEY_OFF_CHECKSUM = 2080,
    QAI_PUBKEY_FILE_BYTES = 2112,
    QAI_SECKEY_OFF_KDF = 2080,
    QAI_SECKEY_OFF_OPSLIMIT = 2084,
    QAI_SECKEY_OFF_MEMLIMIT = 2088,
    QAI_SECKEY_OFF_SALT = 2096,
    QAI_SECKEY_SALT_BYTES = 16,
    QAI_SECKEY_OFF_NONCE = 2112,
    QAI_SECKEY_NONCE_BYTES = 24,
    QAI_SECKEY_OFF_CIPHERTEXT = 2136,
    QAI_SECKEY_SECRET_BYTES = 64, /* Ed25519 seed || ML-DSA-65 xi */
    QAI_SECKEY_TAG_BYTES = 16,
    QAI_SECKEY_FILE_BYTES = 2216,
    QAI_HYBRID_OFF_MAGIC = 0,
    QAI_HYBRID_OFF_VERSION = 4,
    QAI_HYBRID_OFF_SUITE = 6,
    QAI_HYBRID_OFF_KEY_ID = 8,
    QAI_HYBRID_OFF_ED25519 = 24,
    QAI_HYBRID_OFF_MLDSA = 88,
    QAI_HYBRID_SIG_BYTES = 3397,
};

_Static_assert(QAI_KEYFILE_OFF_NAME + QAI_KEYFILE_NAME_BYTES == QAI_KEYFILE_OFF_ED25519, "name ends at the keys");
_Static_assert(QAI_KEYFILE_OFF_ED25519 + QAI_ED25519_PUBLIC_BYTES == QAI_KEYFILE_OFF_MLDSA, "ed25519 then ML-DSA");
_Static_assert(QAI_KEYFILE_OFF_MLDSA + QAI_MLDSA65_PUBLIC_BYTES == QAI_KEYFILE_PUBLIC_PART, "public part size");
_Static_assert(QAI_PUBKEY_OFF_CHECKSUM + 32 == QAI_PUBKEY_FILE_BYTES, "public key file size");
_Static_assert(QAI_SECKEY_OFF_SALT + QAI_SECKEY_SALT_BYTES == QAI_SECKEY_OFF_NONCE, "salt then nonce");
_Static_assert(QAI_SECKEY_OFF_NONCE + QAI_SECKEY_NONCE_BYTES == QAI_SECKEY_OFF_CIPHERTEXT, "nonce then ciphertext");
_Static_assert(QAI_SECKEY_OFF_CIPHERTEXT + QAI_SECKEY_SECRET_BYTES + QAI_SECKEY_TAG_BYTES == QAI_SECKEY_FILE_BYTES,
               "private key file size");
_Static_assert(QAI_HYBRID_OFF_KEY_ID + QAI_KEY_ID_BYTES == QAI_HYBRID_OFF_ED25519, "key id then Ed25519");
_Static_assert(QAI_HYBRID_OFF_ED25519 + QAI_ED25519_SIG_BYTES == QAI_HYBRID_OFF_MLDSA, "Ed25519 then ML-DSA");
_Static_assert(QAI_HYBRID_OFF_MLDSA + QAI_MLDSA65_SIG_BYTES == QAI_HYBRID_SIG_BYTES, "hybrid signature size");

/* An identity: public parts always, private parts when generated or loaded
 * with the passphrase. Opaque; free with qai_identity_free. */
typedef struct qai_identity qai_identity;

/* Argon2id cost of a private key file. */
typedef struct {
    uint32_t opslimit; /* passes, 1..32 */
    uint64_t memlimit; /* bytes, 8 KiB..4 GiB */
} qai_kdf_params;

/* libsodium's presets: "interactive" (2 passes, 64 MiB), "moderate" (3, 256 MiB,
 * the default, about a second on one core), "sensitive" (4, 1 GiB). */
qai_status qai_kdf_params_named(const char *level, qai_kdf_params *out);

/* Creates a fresh identity (randomness from libsodium). name may be NULL (then
 * empty); it must be valid UTF-8 of at most 63 bytes without control
 * characters. *out is owned by the caller. */
qai_status qai_identity_generate(const char *name, qai_identity **out);
/* The same from fixed seeds (for tests and reproducible fixtures only). */
qai_status qai_identity_from_seeds(const char *name, int64_t created, const uint8_t ed25519_seed[32],
                                   const uint8_t mldsa_seed[32], qai_identity **out);
/* Wipes the private parts and frees; NULL is fine. */
void qai_identity_free(qai_identity *id);

const char *qai_identity_key_id(const qai_identity *id); /* 32 lowercase hex digits */
const char *qai_identity_name(const qai_identity *id);
int64_t qai_identity_created(const qai_identity *id);
bool qai_identity_has_private(const qai_identity *id);
const uint8_t *qai_identity_ed25519_public(const qai_identity *id); /* 32 bytes */
const uint8_t *qai_identity_mldsa_public(const qai_identity *id);   /* 1952 bytes */

/* Writes <dir>/<keyid>.pub (mode 0644) and <dir>/<keyid>.key (mode 0600,
 * encrypted with passphrase; kdf NULL = "moderate"), creating dir if needed.
 * Both are written atomically (temporary file, fsync, rename). Needs the
 * private parts; the passphrase must not be empty. */
qai_status qai_identity_save(const qai_identity *id, const char *dir, const char *passphrase,
                             const qai_kdf_params *kdf);
/* Writes only the public key file / only the private key file, atomically. */
qai_status qai_identity_export_public(const qai_identity *id, const char *path);
qai_status qai_identity_write_private(const qai_identity *id, const char *path, const char *passphrase,
                                      const qai_kdf_params *kdf);
/* Serialises the public key file into buf (QAI_PUBKEY_FILE_BYTES). */
void qai_identity_public_bytes(const qai_identity *id, uint8_t buf[QAI_PUBKEY_FILE_BYTES]);

/* Reads a public key file, or the public part of a private key file (no
 * passphrase needed). Every field is validated; errors name the file, the
 * field and its byte offset. */
qai_status qai_identity_load_public(const char *path, qai_identity **out);
/* Reads a private key file and decrypts it. A wrong passphrase, or any changed
 * byte, gives QAI_ERR_FORMAT "...: wrong passphrase or corrupted key file". */
qai_status qai_identity_load_private(const char *path, const char *passphrase, qai_identity **out);
/* The same on bytes in memory (name is used in messages). passphrase NULL
 * reads only the public part (of either file kind). */
qai_status qai_identity_parse(const uint8_t *data, size_t n, const char *name, const char *passphrase,
                              qai_identity **out);

/* Signs msg (any length; it is copied once behind the domain prefix) with both
 * keys: sig gets QAI_HYBRID_SIG_BYTES. Needs the private parts. */
qai_status qai_hybrid_sign(const qai_identity *id, const void *msg, size_t msg_len,
                           uint8_t sig[QAI_HYBRID_SIG_BYTES]);
/* QAI_OK only if the signature is well-formed, names this identity's key id,
 * and both the Ed25519 and the ML-DSA-65 signatures verify. Otherwise
 * QAI_ERR_FORMAT with a message naming what failed (length, magic, version,
 * key id mismatch, "Ed25519 signature does not verify", "ML-DSA-65 signature
 * does not verify"). Both algorithms are always checked. */
qai_status qai_hybrid_verify(const qai_identity *pub, const void *msg, size_t msg_len, const uint8_t *sig,
                             size_t sig_len);
/* The signer's key id (32 hex digits) from a hybrid signature, to look up the
 * public key; fails on a malformed signature. */
qai_status qai_hybrid_signature_key_id(const uint8_t *sig, size_t sig_len, char key_id[QAI_KEY_ID_HEX_BYTES]);

#ifdef __cplusplus
}
#endif
#endif
