/* The store's PostgreSQL backend, through libpq: for several nodes sharing one
 * registry and audit trail.
 *
 * The store's SQL uses '?' parameters; here they become $1, $2 ... and each
 * statement is prepared once per connection (named "q<n>"). Integers and text
 * travel in text format, blobs (bytea) in binary; results come back in text
 * format and are typed by column (int2/4/8 -> integer, bytea -> bytes).
 *
 * Concurrency model: transactions run at READ COMMITTED; what must be
 * serialized (audit appends, stage changes of one model, migrations) takes a
 * transaction-scoped advisory lock (store_lock). Deadlocks and serialization
 * failures are reported as "busy" so qai_store_transact retries them. A
 * connection that dropped is reset once, outside a transaction.
 *
 * It does not print: server notices are dropped (logged at debug level). */
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry/store_internal.h"

#define OID_BOOL 16
#define OID_BYTEA 17
#define OID_INT8 20
#define OID_INT2 21
#define OID_INT4 23

static PGconn *CONN(qai_store *s) { return (PGconn *)s->db; }

static void trim(char *m) {
    size_t n = strlen(m);
    while (n && (m[n - 1] == '\n' || m[n - 1] == ' ')) m[--n] = 0;
}

static qai_status pg_error(qai_store *s, PGresult *res, const char *what) {
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    s->err_kind = STORE_E_OTHER;
    if (state) {
        if (!strcmp(state, "40001") || !strcmp(state, "40P01") || !strcmp(state, "55P03")) s->err_kind = STORE_E_BUSY;
        else if (!strcmp(state, "23505")) s->err_kind = STORE_E_UNIQUE;
        else if (!strcmp(state, "23503")) s->err_kind = STORE_E_FKEY;
        else if (!strcmp(state, "23514") || !strcmp(state, "23502")) s->err_kind = STORE_E_CHECK;
    }
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", res && *PQresultErrorMessage(res) ? PQresultErrorMessage(res) : PQerrorMessage(CONN(s)));
    trim(msg);
    const char *table = res ? PQresultErrorField(res, PG_DIAG_TABLE_NAME) : NULL;
    (void)what;
    return qai_error(QAI_ERR_IO, "postgres '%s': %s%s%s%s", s->location, msg, table ? " (table " : "",
                     table ? table : "", table ? ")" : "");
}

static void forget_prepared(qai_store *s);

static qai_status pg_exec(qai_store *s, const char *sql) {
    for (int attempt = 0;; attempt++) {
        PGresult *res = PQexec(CONN(s), sql);
        ExecStatusType es = PQresultStatus(res);
        qai_status st = QAI_OK;
        if (es != PGRES_COMMAND_OK && es != PGRES_TUPLES_OK) st = pg_error(s, res, sql);
        PQclear(res);
        /* the server went away since the last call: a transaction about to start
         * has lost nothing, so reconnect once and start it on the new session */
        if (st != QAI_OK && attempt == 0 && PQstatus(CONN(s)) == CONNECTION_BAD && !strcmp(sql, "BEGIN")) {
            PQreset(CONN(s));
            forget_prepared(s);
            if (PQstatus(CONN(s)) == CONNECTION_OK) continue;
        }
        return st;
    }
}

/* '?' -> $n outside quoted literals and identifiers. Caller frees. */
static char *translate(const char *sql) {
    size_t n = strlen(sql), q = 0;
    for (size_t i = 0; i < n; i++) q += sql[i] == '?';
    char *out = qai_malloc(n + q * 5 + 1);
    if (!out) return NULL;
    char *o = out;
    int k = 0;
    char quote = 0;
    for (size_t i = 0; i < n; i++) {
        char c = sql[i];
        if (quote) {
            if (c == quote) quote = 0;
        } else if (c == '\'' || c == '"') quote = c;
        else if (c == '?') {
            o += sprintf(o, "$%d", ++k);
            continue;
        }
        *o++ = c;
    }
    *o = 0;
    return out;
}

static size_t slot_of(const char *sql) {
    uintptr_t h = (uintptr_t)sql;
    h ^= h >> 17;
    h *= 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 40) % STORE_STMT_CACHE;
}

static void forget_prepared(qai_store *s) {
    memset(s->cache, 0, sizeof s->cache);
    s->n_prepared = 0;
}

static qai_status run(qai_store *s, const char *sql, const qv *params, int n, PGresult **out) {
    *out = NULL;
    /* find or prepare */
    char name[24] = "";
    size_t i = slot_of(sql);
    bool found = false;
    for (size_t k = 0; k < STORE_STMT_CACHE; k++, i = (i + 1) % STORE_STMT_CACHE) {
        if (s->cache[i].sql == sql) {
            found = true;
            break;
        }
        if (!s->cache[i].sql) break;
    }
    if (found) snprintf(name, sizeof name, "q%d", (int)(intptr_t)s->cache[i].stmt);
    char *text = NULL;
    if (!found) {
        text = translate(sql);
        if (!text) return QAI_ERR_NOMEM;
        if (!s->cache[i].sql) {
            snprintf(name, sizeof name, "q%d", ++s->n_prepared);
            PGresult *res = PQprepare(CONN(s), name, text, n, NULL);
            if (PQresultStatus(res) != PGRES_COMMAND_OK) {
                qai_status st = pg_error(s, res, sql);
                PQclear(res);
                qai_free(text);
                return st;
            }
            PQclear(res);
            s->cache[i].sql = sql;
            s->cache[i].stmt = (void *)(intptr_t)s->n_prepared;
            qai_free(text);
            text = NULL;
        }
    }
    const char *vals[32];
    int lens[32], fmts[32];
    char nums[32][24];
    if (n > 32) {
        qai_free(text);
        return qai_error(QAI_ERR_INTERNAL, "store: too many parameters");
    }
    for (int j = 0; j < n; j++) {
        lens[j] = 0;
        fmts[j] = 0;
        switch (params[j].t) {
        case QV_NULL: vals[j] = NULL; break;
        case QV_INT:
            snprintf(nums[j], sizeof nums[j], "%" PRId64, params[j].i);
            vals[j] = nums[j];
            break;
        case QV_TEXT: vals[j] = params[j].p; break;
        case QV_BLOB:
            vals[j] = params[j].n ? params[j].p : "";
            lens[j] = (int)params[j].n;
            fmts[j] = 1;
            break;
        }
    }
    PGresult *res = text ? PQexecParams(CONN(s), text, n, NULL, vals, lens, fmts, 0)
                         : PQexecPrepared(CONN(s), name, n, vals, lens, fmts, 0);
    qai_free(text);
    ExecStatusType es = PQresultStatus(res);
    if (es != PGRES_COMMAND_OK && es != PGRES_TUPLES_OK) {
        qai_status st = pg_error(s, res, sql);
        PQclear(res);
        return st;
    }
    *out = res;
    return QAI_OK;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static qai_status pg_query(qai_store *s, const char *sql, const qv *params, int n, qrows *rows, int64_t *changes) {
    PGresult *res;
    qai_status st = run(s, sql, params, n, &res);
    if (st != QAI_OK && PQstatus(CONN(s)) == CONNECTION_BAD && s->depth == 0) {
        /* the server went away between calls: reconnect once and try again */
        PQreset(CONN(s));
        forget_prepared(s);
        if (PQstatus(CONN(s)) == CONNECTION_OK) st = run(s, sql, params, n, &res);
    }
    if (st != QAI_OK) return st;
    int ncols = PQnfields(res), nrows = PQntuples(res);
    if (changes) {
        const char *c = PQcmdTuples(res);
        *changes = c && *c ? strtoll(c, NULL, 10) : 0;
    }
    if (rows) {
        rows->ncols = ncols;
        qv row[32];
        if (ncols > 32) st = qai_error(QAI_ERR_INTERNAL, "store: query has too many columns");
        uint8_t *buf = NULL;
        for (int r = 0; r < nrows && st == QAI_OK; r++) {
            for (int j = 0; j < ncols; j++) {
                if (PQgetisnull(res, r, j)) {
                    row[j] = (qv){0};
                    continue;
                }
                const char *v = PQgetvalue(res, r, j);
                size_t len = (size_t)PQgetlength(res, r, j);
                Oid t = PQftype(res, j);
                if (t == OID_INT8 || t == OID_INT4 || t == OID_INT2) row[j] = qv_int(strtoll(v, NULL, 10));
                else if (t == OID_BOOL) row[j] = qv_int(v[0] == 't');
                else if (t == OID_BYTEA) {
                    /* hex output format: \x0a1b... */
                    if (len < 2 || v[0] != '\\' || v[1] != 'x' || len % 2) {
                        st = qai_error(QAI_ERR_FORMAT, "postgres: bytea column %d: unexpected text form", j);
                        break;
                    }
                    size_t nb = (len - 2) / 2;
                    uint8_t *b = qai_realloc(buf, nb + 1);
                    if (!b) {
                        st = QAI_ERR_NOMEM;
                        break;
                    }
                    buf = b;
                    for (size_t k = 0; k < nb; k++) {
                        int hi = hexval(v[2 + 2 * k]), lo = hexval(v[3 + 2 * k]);
                        if (hi < 0 || lo < 0) {
                            st = qai_error(QAI_ERR_FORMAT, "postgres: bytea column %d: bad hex", j);
                            break;
                        }
                        buf[k] = (uint8_t)(hi << 4 | lo);
                    }
                    row[j] = (qv){.t = QV_BLOB, .p = buf, .n = nb};
                    /* one buffer is enough: at most one bytea column per query here */
                } else
                    row[j] = (qv){.t = QV_TEXT, .p = v, .n = len};
            }
            if (st == QAI_OK) st = qrows_push(rows, row);
        }
        qai_free(buf);
    }
    PQclear(res);
    return st;
}

static qai_status pg_lock(qai_store *s, int64_t key) {
    qv p = qv_int(key);
    return pg_query(s, "SELECT pg_advisory_xact_lock(?)", &p, 1, NULL, NULL);
}

static void pg_close(qai_store *s) {
    PQfinish(CONN(s));
    s->db = NULL;
}

const store_backend store_pg_backend = {
    .name = "postgres",
    .exec = pg_exec,
    .query = pg_query,
    .lock = pg_lock,
    .close = pg_close,
    .begin_sql = "BEGIN",
};

static void drop_notice(void *arg, const char *message) {
    (void)arg;
    qai_log(QAI_LOG_DEBUG, "postgres: %s", message);
}

/* The URL for messages, with a password in it replaced by "***". */
static char *mask_url(const char *url) {
    char *m = qai_malloc(strlen(url) + 4);
    if (!m) return NULL;
    const char *auth = strstr(url, "://");
    auth = auth ? auth + 3 : url;
    const char *end = auth + strcspn(auth, "/?");
    const char *at = NULL;
    for (const char *p = auth; p < end; p++)
        if (*p == '@') at = p;
    const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
    if (colon) sprintf(m, "%.*s***%s", (int)(colon + 1 - url), url, at);
    else strcpy(m, url);
    return m;
}

qai_status store_pg_connect(qai_store *s, const char *url) {
    s->location = mask_url(url);
    if (!s->location) return QAI_ERR_NOMEM;
    PGconn *c = PQconnectdb(url);
    if (!c) return qai_error(QAI_ERR_NOMEM, "store '%s': cannot allocate a connection", s->location);
    if (PQstatus(c) != CONNECTION_OK) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", PQerrorMessage(c));
        trim(msg);
        PQfinish(c);
        return qai_error(QAI_ERR_IO, "store '%s': cannot connect: %s", s->location, msg);
    }
    PQsetNoticeProcessor(c, drop_notice, NULL);
    s->db = c;
    qai_status st = pg_exec(s, "SET client_min_messages = warning");
    return st;
}
