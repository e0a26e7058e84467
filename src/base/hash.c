/* SHA-256 wrappers over libsodium, and the data-directory helpers.
 * Kept here so the rest of libqai names one hashing interface and libsodium
 * can be swapped without touching callers. */
#include "qai/base.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#endif

/* Where the CPU has the SHA extensions, blocks go through sha256_shani.c
 * (several times faster); otherwise through libsodium. The context holds
 * either state, tagged. */
void qai_sha256_shani_blocks(uint32_t state[8], const uint8_t *data, size_t blocks);

typedef struct {
    uint32_t h[8];
    uint64_t len;
    uint8_t buf[64];
    uint32_t used;
} shani_state;

typedef struct {
    uint32_t mode; /* 1: SHA-NI, 2: libsodium */
    uint32_t pad;
    union {
        shani_state ni;
        crypto_hash_sha256_state na;
    } u;
} sha_ctx;
_Static_assert(sizeof(qai_sha256_ctx) >= sizeof(sha_ctx), "qai_sha256_ctx too small");

static int sha_mode = -1; /* -1 unknown; set once (benign race: every thread computes the same value) */

static bool cpu_has_shani(void) {
#if defined(__x86_64__) && defined(__GNUC__)
    unsigned a, b, c, d;
    if (!__get_cpuid_max(0, NULL) || __get_cpuid_max(0, NULL) < 7) return false;
    __cpuid_count(7, 0, a, b, c, d);
    bool sha = b & (1u << 29);
    __cpuid(1, a, b, c, d);
    bool sse41 = c & (1u << 19), ssse3 = c & (1u << 9);
    return sha && sse41 && ssse3;
#else
    return false;
#endif
}

bool qai_sha256_set_hardware(bool on) {
    sha_mode = on && cpu_has_shani() ? 1 : 2;
    return sha_mode == 1;
}

void qai_sha256_init(qai_sha256_ctx *c) {
    sha_ctx *x = (sha_ctx *)c->state;
    if (sha_mode < 0) qai_sha256_set_hardware(true);
    x->mode = (uint32_t)sha_mode;
    if (x->mode == 2) {
        crypto_hash_sha256_init(&x->u.na);
        return;
    }
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(x->u.ni.h, iv, sizeof iv);
    x->u.ni.len = 0;
    x->u.ni.used = 0;
}

void qai_sha256_update(qai_sha256_ctx *c, const void *data, size_t n) {
    sha_ctx *x = (sha_ctx *)c->state;
    if (x->mode == 2) {
        crypto_hash_sha256_update(&x->u.na, data, n);
        return;
    }
    shani_state *s = &x->u.ni;
    const uint8_t *p = data;
    s->len += n;
    if (s->used) {
        size_t take = 64 - s->used < n ? 64 - s->used : n;
        memcpy(s->buf + s->used, p, take);
        s->used += (uint32_t)take, p += take, n -= take;
        if (s->used < 64) return;
        qai_sha256_shani_blocks(s->h, s->buf, 1);
        s->used = 0;
    }
    if (n >= 64) {
        qai_sha256_shani_blocks(s->h, p, n / 64);
        p += n / 64 * 64;
        n %= 64;
    }
    memcpy(s->buf, p, n);
    s->used = (uint32_t)n;
}

void qai_sha256_final(qai_sha256_ctx *c, uint8_t out[32]) {
    sha_ctx *x = (sha_ctx *)c->state;
    if (x->mode == 2) {
        crypto_hash_sha256_final(&x->u.na, out);
        return;
    }
    shani_state *s = &x->u.ni;
    uint64_t bits = s->len * 8;
    uint8_t pad[72] = {0x80};
    size_t padn = (s->used < 56 ? 56 : 120) - s->used;
    for (int i = 0; i < 8; i++) pad[padn + i] = (uint8_t)(bits >> (56 - 8 * i));
    qai_sha256_update(c, pad, padn + 8);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(s->h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(s->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(s->h[i] >> 8);
        out[4 * i + 3] = (uint8_t)s->h[i];
    }
    sodium_memzero(x, sizeof *x);
}

void qai_sha256(const void *data, size_t n, uint8_t out[32]) {
    qai_sha256_ctx c;
    qai_sha256_init(&c);
    qai_sha256_update(&c, data, n);
    qai_sha256_final(&c, out);
}

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
