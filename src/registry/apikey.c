/* API keys in the store: creation (the secret is returned once and only its
 * SHA-256 is kept), lookup by presented secret, revocation, listing, and the
 * per-day token usage that backs the tokens-per-day limit.
 *
 * Why SHA-256 and not a password hash: the secret is 32 random bytes, so
 * there is no dictionary to slow down; a fast hash keeps lookups cheap on
 * every request. Lookup finds the row by the hash (an index), then compares
 * the stored and computed hashes with sodium_memcmp (constant time), so
 * nothing about a stored hash leaks through the comparison's timing.
 *
 * The requests-per-minute limiter is in apikey_limit.c (memory only). */
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "registry/store_internal.h"

#define DAY_MS 86400000LL
#define PREFIX_LEN 12

#define FD(type, t, m) {t, offsetof(type, m), 0}
static const fdesc key_f[] = {
    FD(qai_apikey, F_STR, id),           FD(qai_apikey, F_STR, prefix),         FD(qai_apikey, F_STR, name),
    FD(qai_apikey, F_STR, scope),        FD(qai_apikey, F_I64, rate_per_min),   FD(qai_apikey, F_I64, tokens_per_day),
    FD(qai_apikey, F_I64, created_ms),   FD(qai_apikey, F_I64, revoked_ms),     FD(qai_apikey, F_I64, last_used_ms)};
#define NKEYF ((int)(sizeof key_f / sizeof key_f[0]))
#define KEY_COLS                                                                                                       \
    "SELECT id, prefix, name, scope, rate_per_min, tokens_per_day, created_ms, revoked_ms, last_used_ms, key_hash "    \
    "FROM api_keys "

static void hash_secret(const char *secret, char hex[65]) {
    uint8_t h[32];
    qai_sha256(secret, strlen(secret), h);
    qai_hex(h, 32, hex);
    sodium_memzero(h, sizeof h);
}

static bool valid_scope(const char *s) { return s && (!strcmp(s, "inference") || !strcmp(s, "admin")); }

bool qai_apikey_allows(const qai_apikey *k, const char *needed) {
    if (!k || !k->scope || !needed || k->revoked_ms) return false;
    if (!strcmp(k->scope, "admin")) return valid_scope(needed);
    return !strcmp(k->scope, "inference") && !strcmp(needed, "inference");
}

qai_status qai_apikey_create(qai_store *s, const char *scope, int64_t rate_per_min, int64_t tokens_per_day,
                             const char *name, char secret_out[QAI_APIKEY_SECRET_SIZE], qai_apikey **out) {
    if (!valid_scope(scope))
        return qai_error(QAI_ERR_ARG, "api key: scope must be 'inference' or 'admin' (not '%s')", scope ? scope : "");
    if (rate_per_min < 0 || tokens_per_day < 0)
        return qai_error(QAI_ERR_ARG, "api key: limits must be >= 0 (0 = unlimited)");
    if (sodium_init() < 0) return qai_error(QAI_ERR_INTERNAL, "api key: libsodium failed to initialize");
    uint8_t raw[32], idraw[6];
    char secret[QAI_APIKEY_SECRET_SIZE], id[4 + 12 + 1], hash[65], prefix[PREFIX_LEN + 1];
    qai_status st = QAI_OK;
    for (int attempt = 0; attempt < 4; attempt++) {
        randombytes_buf(raw, sizeof raw);
        randombytes_buf(idraw, sizeof idraw);
        memcpy(secret, "qai-", 4);
        sodium_bin2base64(secret + 4, sizeof secret - 4, raw, sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        memcpy(id, "key_", 4);
        qai_hex(idraw, sizeof idraw, id + 4);
        memcpy(prefix, secret, PREFIX_LEN);
        prefix[PREFIX_LEN] = 0;
        hash_secret(secret, hash);
        qv p[] = {qv_text(id),           qv_text(prefix),         qv_text(hash),
                  qv_text(name),         qv_text(scope),          qv_int(rate_per_min),
                  qv_int(tokens_per_day), qv_int(qai_store_now_ms())};
        store_enter(s);
        st = store_query(s,
                         "INSERT INTO api_keys (id, prefix, key_hash, name, scope, rate_per_min, tokens_per_day, "
                         "created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         p, 8, NULL, NULL);
        bool dup = st != QAI_OK && s->err_kind == STORE_E_UNIQUE && s->depth == 0;
        if (st != QAI_OK && !dup) st = store_fail(s, st, "api key '%s'", id);
        store_leave(s);
        if (!dup) break; /* a 48-bit id collision: draw again */
    }
    sodium_memzero(raw, sizeof raw);
    if (st != QAI_OK) {
        sodium_memzero(secret, sizeof secret);
        return st;
    }
    if (out) {
        st = qai_apikey_get(s, id, out);
        if (st != QAI_OK) {
            sodium_memzero(secret, sizeof secret);
            return st;
        }
    }
    memcpy(secret_out, secret, QAI_APIKEY_SECRET_SIZE);
    sodium_memzero(secret, sizeof secret);
    return QAI_OK;
}

/* The shape of a secret: "qai-" + 43 base64url characters. */
static bool well_formed(const char *secret) {
    if (!secret || strlen(secret) != QAI_APIKEY_SECRET_LEN || memcmp(secret, "qai-", 4)) return false;
    for (const char *p = secret + 4; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' ||
              *p == '_'))
            return false;
    return true;
}

qai_status qai_apikey_lookup(qai_store *s, const char *secret, qai_apikey **out) {
    *out = NULL;
    if (!well_formed(secret)) return qai_error(QAI_ERR_NOT_FOUND, "invalid api key");
    char hash[65];
    hash_secret(secret, hash);
    qrows rows;
    store_enter(s);
    qai_status st = store_query(s, KEY_COLS "WHERE key_hash = ?", (qv[]){qv_text(hash)}, 1, &rows, NULL);
    store_leave(s);
    if (st != QAI_OK) return qai_error_wrap(st, "api key lookup");
    bool match = rows.nrows == 1 && qrows_at(&rows, 0, NKEYF)->t == QV_TEXT && qrows_at(&rows, 0, NKEYF)->n == 64 &&
                 sodium_memcmp(qrows_at(&rows, 0, NKEYF)->p, hash, 64) == 0;
    if (!match) {
        qrows_free(&rows);
        return qai_error(QAI_ERR_NOT_FOUND, "invalid api key");
    }
    qai_apikey *k = NULL;
    st = store_unpack(&rows, key_f, NKEYF, sizeof *k, (void **)&k, NULL);
    qrows_free(&rows);
    if (st != QAI_OK) return st;
    if (k->revoked_ms) {
        st = qai_error(QAI_ERR_ARG, "api key '%s' was revoked", k->id);
        qai_free(k);
        return st;
    }
    *out = k;
    return QAI_OK;
}

qai_status qai_apikey_get(qai_store *s, const char *id, qai_apikey **out) {
    char what[200];
    snprintf(what, sizeof what, "api key '%s'", id ? id : "");
    store_enter(s);
    qai_status st = store_fetch_one(s, KEY_COLS "WHERE id = ?", (qv[]){qv_text(id)}, 1, key_f, NKEYF, sizeof(qai_apikey),
                                    (void **)out, what);
    store_leave(s);
    return st;
}

qai_status qai_apikey_list(qai_store *s, qai_apikey **out, size_t *n) {
    store_enter(s);
    qai_status st =
        store_fetch(s, KEY_COLS "ORDER BY created_ms, id", NULL, 0, key_f, NKEYF, sizeof(qai_apikey), (void **)out, n);
    store_leave(s);
    return st == QAI_OK ? st : qai_error_wrap(st, "api keys");
}

qai_status qai_apikey_revoke(qai_store *s, const char *id) {
    int64_t changed = 0;
    store_enter(s);
    qai_status st = store_query(s, "UPDATE api_keys SET revoked_ms = COALESCE(revoked_ms, ?) WHERE id = ?",
                                (qv[]){qv_int(qai_store_now_ms()), qv_text(id)}, 2, NULL, &changed);
    store_leave(s);
    if (st != QAI_OK) return qai_error_wrap(st, "api key '%s'", id ? id : "");
    if (!changed) return qai_error(QAI_ERR_NOT_FOUND, "api key '%s' not found", id ? id : "");
    return QAI_OK;
}

/* ---- usage ------------------------------------------------------------------------------- */

typedef struct {
    const char *id;
    int64_t tokens, now;
} charge_arg;

static qai_status charge_tx(qai_store *s, void *varg) {
    charge_arg *a = varg;
    int64_t changed = 0;
    qai_status st = store_query(s, "UPDATE api_keys SET last_used_ms = ? WHERE id = ?",
                                (qv[]){qv_int(a->now), qv_text(a->id)}, 2, NULL, &changed);
    if (st != QAI_OK) return store_fail(s, st, "api key '%s'", a->id);
    if (!changed) return qai_error(QAI_ERR_NOT_FOUND, "api key '%s' not found", a->id);
    st = store_query(s,
                     "INSERT INTO api_key_usage (key_id, day, tokens, requests) VALUES (?, ?, ?, 1) "
                     "ON CONFLICT (key_id, day) DO UPDATE SET tokens = api_key_usage.tokens + excluded.tokens, "
                     "requests = api_key_usage.requests + 1",
                     (qv[]){qv_text(a->id), qv_int(a->now / DAY_MS), qv_int(a->tokens)}, 3, NULL, NULL);
    if (st != QAI_OK) return store_fail(s, st, "usage of api key '%s'", a->id);
    return QAI_OK;
}

qai_status apikey_charge_if_known_in_tx(qai_store *s, const char *id, int64_t tokens, int64_t requests, int64_t at_ms) {
    qai_status st = store_query(s,
                                "UPDATE api_keys SET last_used_ms = ? WHERE id = ? AND "
                                "(last_used_ms IS NULL OR last_used_ms < ?)",
                                (qv[]){qv_int(at_ms), qv_text(id), qv_int(at_ms)}, 3, NULL, NULL);
    if (st != QAI_OK) return store_fail(s, st, "api key '%s'", id);
    /* the EXISTS keeps a record naming an unknown or deleted key from failing the batch */
    st = store_query(s,
                     "INSERT INTO api_key_usage (key_id, day, tokens, requests) "
                     "SELECT ?, CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS BIGINT) "
                     "WHERE EXISTS (SELECT 1 FROM api_keys WHERE id = ?) "
                     "ON CONFLICT (key_id, day) DO UPDATE SET tokens = api_key_usage.tokens + excluded.tokens, "
                     "requests = api_key_usage.requests + excluded.requests",
                     (qv[]){qv_text(id), qv_int(at_ms / DAY_MS), qv_int(tokens), qv_int(requests), qv_text(id)}, 5,
                     NULL, NULL);
    if (st != QAI_OK) return store_fail(s, st, "usage of api key '%s'", id);
    return QAI_OK;
}

qai_status qai_apikey_charge(qai_store *s, const char *id, int64_t tokens, int64_t now_ms) {
    if (tokens < 0) return qai_error(QAI_ERR_ARG, "api key '%s': negative token count", id ? id : "");
    charge_arg a = {id, tokens, now_ms ? now_ms : qai_store_now_ms()};
    return qai_store_transact(s, charge_tx, &a);
}

qai_status qai_apikey_usage(qai_store *s, const char *id, int64_t now_ms, int64_t *tokens, int64_t *requests) {
    if (!now_ms) now_ms = qai_store_now_ms();
    qrows rows;
    store_enter(s);
    qai_status st = store_query(s, "SELECT tokens, requests FROM api_key_usage WHERE key_id = ? AND day = ?",
                                (qv[]){qv_text(id), qv_int(now_ms / DAY_MS)}, 2, &rows, NULL);
    store_leave(s);
    if (st != QAI_OK) return qai_error_wrap(st, "usage of api key '%s'", id ? id : "");
    int64_t t = 0, r = 0;
    if (rows.nrows) {
        t = qrows_at(&rows, 0, 0)->i;
        r = qrows_at(&rows, 0, 1)->i;
    }
    qrows_free(&rows);
    if (tokens) *tokens = t;
    if (requests) *requests = r;
    return QAI_OK;
}

qai_status qai_apikey_check_tokens(qai_store *s, const qai_apikey *k, int64_t now_ms, int64_t *retry_after_s) {
    if (retry_after_s) *retry_after_s = 0;
    if (k->tokens_per_day <= 0) return QAI_OK;
    if (!now_ms) now_ms = qai_store_now_ms();
    int64_t used = 0;
    qai_status st = qai_apikey_usage(s, k->id, now_ms, &used, NULL);
    if (st != QAI_OK) return st;
    if (used < k->tokens_per_day) return QAI_OK;
    int64_t wait_ms = (now_ms / DAY_MS + 1) * DAY_MS - now_ms;
    if (retry_after_s) *retry_after_s = (wait_ms + 999) / 1000;
    return qai_error(QAI_ERR_RANGE, "api key '%s' used its %lld tokens for today (UTC); try again in %lld s", k->id,
                     (long long)k->tokens_per_day, (long long)((wait_ms + 999) / 1000));
}
