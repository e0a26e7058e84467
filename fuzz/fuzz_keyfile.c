/* Fuzz harness for the key-file parser (src/registry/identity.c): any bytes
 * must be rejected with a message or parsed into an identity, never crash.
 * The public part is parsed always; when the input is a private key file
 * whose Argon2id cost is tiny (so the fuzzer stays fast), it is also decrypted
 * with the passphrase "fuzz" (the seed corpus's key files use it), which
 * reaches the AEAD and key re-derivation paths. A parsed identity is
 * re-serialised and must parse back to the same key id. */
#include <string.h>

#include "qai/sign.h"

static uint64_t le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    qai_identity *id = NULL, *back = NULL;
    if (qai_identity_parse(data, size, "fuzz", NULL, &id) == QAI_OK) {
        uint8_t buf[QAI_PUBKEY_FILE_BYTES];
        qai_identity_public_bytes(id, buf);
        if (qai_identity_parse(buf, sizeof buf, "fuzz-back", NULL, &back) != QAI_OK ||
            strcmp(qai_identity_key_id(id), qai_identity_key_id(back)) != 0)
            __builtin_trap(); /* serialise/parse must round-trip */
        qai_identity_free(back);
        qai_identity_free(id);
        id = NULL;
    }
    if (size == QAI_SECKEY_FILE_BYTES && memcmp(data, "QAIK", 4) == 0 &&
        data[QAI_SECKEY_OFF_OPSLIMIT] <= 2 && le64(data + QAI_SECKEY_OFF_MEMLIMIT) <= 65536) {
        if (qai_identity_parse(data, size, "fuzz", "fuzz", &id) == QAI_OK) {
            uint8_t sig[QAI_HYBRID_SIG_BYTES];
            if (qai_hybrid_sign(id, data, 16, sig) != QAI_OK || qai_hybrid_verify(id, data, 16, sig, sizeof sig) != QAI_OK)
                __builtin_trap(); /* a key that loads must sign and verify */
            qai_identity_free(id);
        }
    }
    return 0;
}
