/* SHA-256 wrappers over libsodium, and the data-directory helpers.
 * Kept here so the rest of libqai names one hashing interface and libsodium
 * can be swapped without touching callers. */
#include "qai/base.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

_Static_assert(sizeof(qai_sha256_ctx) >= sizeof(crypto_hash_sha256_state), "qai_sha256_ctx too small");

void qai_sha256_init(qai_sha256_ctx *c) { crypto_hash_sha256_init((crypto_hash_sha256_state *)c->state); }
void qai_sha256_update(qai_sha256_ctx *c, const void *data, size_t n) {
    crypto_hash_sha256_update((crypto_hash_sha256_state *)c->state, data, n);
}
void qai_sha256_final(qai_sha256_ctx *c, uint8_t out[32]) {
    crypto_hash_sha256_final((crypto_hash_sha256_state *)c->state, out);
}
void qai_sha256(const void *data, size_t n, uint8_t out[32]) { crypto_hash_sha256(out, data, n); }

qai_status qai_sha256_file(const char *path, uint8_t out[32], uint64_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return qai_error(QAI_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    qai_sha256_ctx c;
    qai_sha256_init(&c);
    enum { CHUNK = 1 << 20 };
    uint8_t *buf = qai_malloc(CHUNK);
    if (!buf) {
        fclose(f);
        return QAI_ERR_NOMEM;
    }
    uint64_t total = 0;
    size_t got;
    while ((got = fread(buf, 1, CHUNK, f)) > 0) {
        qai_sha256_update(&c, buf, got);
        total += got;
    }
    int err = ferror(f);
    fclose(f);
    qai_free(buf);
    if (err) return qai_error(QAI_ERR_IO, "cannot read '%s'", path);
    qai_sha256_final(&c, out);
    if (size) *size = total;
    return QAI_OK;
}

void qai_hex(const uint8_t *bytes, size_t n, char *out) {
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 15];
    }
    out[2 * n] = 0;
}

qai_status qai_mkdirs(const char *path) {
    size_t n = strlen(path);
    if (n == 0) return qai_error(QAI_ERR_ARG, "empty directory path");
    char *p = qai_strdup(path);
    if (!p) return QAI_ERR_NOMEM;
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != 0) continue;
        char c = p[i];
        p[i] = 0;
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            int e = errno;
            qai_status st = qai_error(QAI_ERR_IO, "cannot create directory '%s': %s", p, strerror(e));
            qai_free(p);
            return st;
        }
        p[i] = c;
    }
    qai_free(p);
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return qai_error(QAI_ERR_IO, "'%s' exists and is not a directory", path);
    return QAI_OK;
}

qai_status qai_home_dir(const char *override, char *out, size_t cap) {
    int len;
    const char *env = getenv("QAI_HOME");
    if (override && *override)
        len = snprintf(out, cap, "%s", override);
    else if (env && *env)
        len = snprintf(out, cap, "%s", env);
    else {
        const char *home = getenv("HOME");
        if (!home || !*home)
            return qai_error(QAI_ERR_ARG, "no data directory: set QAI_HOME or pass --data-dir (HOME is not set)");
        len = snprintf(out, cap, "%s/.local/share/qai", home);
    }
    if (len < 0 || (size_t)len >= cap) return qai_error(QAI_ERR_RANGE, "data directory path is too long");
    return qai_mkdirs(out);
}
