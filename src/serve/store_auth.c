/*
 * The server's keys, limits and audit trail on the registry store: the
 * qai_serve_auth callbacks implemented with qai_apikey_* (hashed keys and
 * scopes), an in-memory requests-per-minute bucket per key, the per-day token
 * limit, and a background audit writer that appends every request to the
 * hash chain and charges its tokens to the key in the same transaction.
 *
 * The store handle is shared by connection threads behind a mutex; audit
 * appends go through the writer's own handle, so requests never wait on an
 * fsync.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "qai/serve.h"
#include "qai/store.h"

struct qai_serve_store_auth {
    qai_store *store;
    pthread_mutex_t lock;
    qai_ratelimit *rl;
    qai_audit_writer *writer;
    bool require_keys;
};

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int authenticate(void *user, const char *secret, const char *endpoint, qai_serve_key *key, char *msg,
                        size_t cap) {
    qai_serve_store_auth *a = user;
    if (!a->require_keys) {
        snprintf(key->key_id, sizeof key->key_id, "%s", "");
        snprintf(key->scope, sizeof key->scope, "%s", "inference");
        return 0;
    }
    if (!secret || !*secret) {
        snprintf(msg, cap, "missing API key: send 'Authorization: Bearer <key>' (an admin creates one with "
                           "'qai keys create --scope inference')");
        return 401;
    }
    qai_apikey *k = NULL;
    pthread_mutex_lock(&a->lock);
    qai_status st = qai_apikey_lookup(a->store, secret, &k);
    pthread_mutex_unlock(&a->lock);
    if (st == QAI_ERR_ARG) {
        snprintf(msg, cap, "this API key has been revoked");
        return 401;
    }
    if (st) {
        snprintf(msg, cap, "invalid API key");
        return 401;
    }
    bool admin_route = !strncmp(endpoint, "/admin", 6);
    if (!qai_apikey_allows(k, admin_route ? "admin" : "inference")) {
        snprintf(msg, cap, "this API key's scope '%s' does not allow %s", k->scope, endpoint);
        qai_free(k);
        return 403;
    }
    snprintf(key->key_id, sizeof key->key_id, "%s", k->id);
    snprintf(key->scope, sizeof key->scope, "%s", k->scope);
    qai_free(k);
    return 0;
}

static int account(void *user, const qai_serve_key *key, qai_account_phase phase, int64_t tokens, int *retry_after_s,
                   char *msg, size_t cap) {
    qai_serve_store_auth *a = user;
    if (phase != QAI_ACCOUNT_BEGIN || !key->key_id[0]) return 0; /* usage is charged by the audit writer */
    qai_apikey *k = NULL;
    pthread_mutex_lock(&a->lock);
    qai_status st = qai_apikey_get(a->store, key->key_id, &k);
    int64_t retry = 0;
    if (!st && qai_apikey_check_tokens(a->store, k, now_ms(), &retry) == QAI_ERR_RANGE) {
        pthread_mutex_unlock(&a->lock);
        snprintf(msg, cap, "this API key used its %lld tokens for today", (long long)k->tokens_per_day);
        *retry_after_s = (int)retry;
        qai_free(k);
        return 429;
    }
    pthread_mutex_unlock(&a->lock);
    if (st) return 0; /* the key vanished between the two calls: let authenticate decide next time */
    if (!qai_ratelimit_take(a->rl, k->id, k->rate_per_min, qai_time_ns(), &retry)) {
        snprintf(msg, cap, "rate limit of %lld requests per minute reached", (long long)k->rate_per_min);
        *retry_after_s = (int)retry;
        qai_free(k);
        return 429;
    }
    (void)tokens;
    qai_free(k);
    return 0;
}

static void audit(void *user, const qai_serve_audit *r) {
    qai_serve_store_auth *a = user;
    qai_audit_record rec = {
        .time_ms = r->unix_time * 1000,
        .key_id = r->key_id && r->key_id[0] ? r->key_id : NULL,
        .model = r->model && r->model[0] ? r->model : NULL,
        .variant = r->variant && r->variant[0] ? r->variant : NULL,
        .endpoint = r->endpoint,
        .prompt_tokens = r->prompt_tokens,
        .completion_tokens = r->completion_tokens,
        .latency_ms = (int64_t)(r->latency_ms + 0.5),
        .status = r->status,
        .outcome = r->outcome,
    };
    if (qai_audit_writer_push(a->writer, &rec))
        qai_log(QAI_LOG_ERROR, "audit: cannot append request %s: %s", r->request_id, qai_last_error());
}

qai_status qai_serve_store_auth_open(const char *store_url, const char *data_dir, int mode, qai_serve_auth *auth,
                                     qai_serve_store_auth **out) {
    *out = NULL;
    qai_serve_store_auth *a = qai_calloc(1, sizeof *a);
    if (!a) return QAI_ERR_NOMEM;
    pthread_mutex_init(&a->lock, NULL);
    qai_status st = qai_store_open(store_url, data_dir, &a->store);
    if (!st) st = qai_audit_writer_open(store_url, data_dir, 200, 512, &a->writer);
    a->rl = qai_ratelimit_new();
    if (!st && !a->rl) st = QAI_ERR_NOMEM;
    if (!st) {
        qai_audit_writer_charge_usage(a->writer, true);
        if (mode == QAI_SERVE_AUTH_AUTO) { /* keys are required as soon as one exists */
            qai_apikey *keys = NULL;
            size_t n = 0;
            st = qai_apikey_list(a->store, &keys, &n);
            for (size_t i = 0; !st && i < n; i++) a->require_keys |= keys[i].revoked_ms == 0;
            qai_free(keys);
        } else {
            a->require_keys = mode == QAI_SERVE_AUTH_KEYS;
        }
    }
    if (st) {
        qai_serve_store_auth_close(a);
        return st;
    }
    *auth = (qai_serve_auth){.user = a, .authenticate = authenticate, .account = account, .audit = audit};
    *out = a;
    return QAI_OK;
}

bool qai_serve_store_auth_requires_keys(const qai_serve_store_auth *a) { return a && a->require_keys; }

void qai_serve_store_auth_close(qai_serve_store_auth *a) {
    if (!a) return;
    if (a->writer && qai_audit_writer_close(a->writer))
        qai_log(QAI_LOG_ERROR, "audit: %s", qai_last_error());
    qai_ratelimit_free(a->rl);
    qai_store_close(a->store);
    pthread_mutex_destroy(&a->lock);
    qai_free(a);
}
