/* The store: opening by URL, transactions with retry, schema migrations, and
 * the row plumbing (materialized results, unpacking into one heap block)
 * that the typed operations in store_entities.c, apikey.c and audit.c use.
 *
 * It does not hold SQL for entities (those files do) nor talk to a database
 * directly (store_sqlite.c, store_pg.c do). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "registry/store_internal.h"

/* ---- schema ------------------------------------------------------------------

   One definition for both dialects: ID is the auto-assigned primary key,
   I64 a 64-bit integer, BLOB binary bytes, STRICT makes SQLite enforce the
   column types as PostgreSQL does (so a value of the wrong type cannot be
   slipped into e.g. the audit log behind qai's back). Times are Unix milliseconds.
   Migration N is applied in one transaction together with the row
   (N, now) in schema_version. Never edit a released migration: add one. */
#define STORE_SCHEMA_V1(ID, I64, BLOB, STRICT)                                                                                 \
    "CREATE TABLE projects ("                                                                                          \
    " id " ID ", name TEXT NOT NULL UNIQUE, description TEXT, created_ms " I64 " NOT NULL)" STRICT ";"                            \
    "CREATE TABLE datasets ("                                                                                          \
    " id " ID ", project_id " I64 " NOT NULL REFERENCES projects(id),"                                                 \
    " name TEXT NOT NULL, version TEXT NOT NULL, manifest_sha256 TEXT NOT NULL, uri TEXT,"                             \
    " created_ms " I64 " NOT NULL, UNIQUE (project_id, name, version))" STRICT ";"                                               \
    "CREATE TABLE runs ("                                                                                              \
    " id " ID ", project_id " I64 " NOT NULL REFERENCES projects(id), name TEXT NOT NULL, config TEXT NOT NULL,"       \
    " status TEXT NOT NULL CHECK (status IN ('queued','running','succeeded','failed','cancelled')),"                   \
    " metrics TEXT, started_ms " I64 ", finished_ms " I64 ", created_ms " I64 " NOT NULL)" STRICT ";"                            \
    "CREATE TABLE run_datasets ("                                                                                      \
    " run_id " I64 " NOT NULL REFERENCES runs(id), dataset_id " I64 " NOT NULL REFERENCES datasets(id),"               \
    " PRIMARY KEY (run_id, dataset_id))" STRICT ";"                                                                              \
    "CREATE TABLE model_versions ("                                                                                    \
    " id " ID ", project_id " I64 " REFERENCES projects(id), run_id " I64 " REFERENCES runs(id),"                      \
    " parent_id " I64 " REFERENCES model_versions(id), name TEXT NOT NULL, version TEXT NOT NULL,"                     \
    " sha256 TEXT NOT NULL, bundle_sha256 TEXT, uri TEXT, meta TEXT,"                                                  \
    " stage TEXT NOT NULL DEFAULT 'none' CHECK (stage IN ('none','staging','canary','prod','retired')),"               \
    " created_ms " I64 " NOT NULL, UNIQUE (name, version))" STRICT ";"                                                           \
    "CREATE INDEX model_versions_stage ON model_versions (name, stage);"                                               \
    "CREATE UNIQUE INDEX model_versions_one_per_stage ON model_versions (name, stage)"                                 \
    " WHERE stage IN ('staging','canary','prod');"                                                                     \
    "CREATE TABLE stage_events ("                                                                                      \
    " id " ID ", model_version_id " I64 " NOT NULL REFERENCES model_versions(id), name TEXT NOT NULL,"                 \
    " from_stage TEXT NOT NULL, to_stage TEXT NOT NULL,"                                                               \
    " action TEXT NOT NULL CHECK (action IN ('promote','replace','rollback','retire')),"                               \
    " actor TEXT, reason TEXT, at_ms " I64 " NOT NULL)" STRICT ";"                                                               \
    "CREATE INDEX stage_events_name ON stage_events (name, id);"                                                       \
    "CREATE TABLE signing_keys ("                                                                                      \
    " key_id TEXT PRIMARY KEY, name TEXT NOT NULL, algorithm TEXT NOT NULL, public_key " BLOB " NOT NULL,"             \
    " created_ms " I64 " NOT NULL, revoked_ms " I64 ", revoke_reason TEXT)" STRICT ";"                                           \
    "CREATE TABLE model_signatures ("                                                                                  \
    " model_version_id " I64 " NOT NULL REFERENCES model_versions(id),"                                                \
    " key_id TEXT NOT NULL REFERENCES signing_keys(key_id), added_ms " I64 " NOT NULL,"                                \
    " PRIMARY KEY (model_version_id, key_id))" STRICT ";"                                                                        \
    "CREATE TABLE evaluations ("                                                                                       \
    " id " ID ", model_version_id " I64 " NOT NULL REFERENCES model_versions(id), suite TEXT NOT NULL,"                \
    " metrics TEXT NOT NULL, passed " I64 " NOT NULL CHECK (passed IN (-1, 0, 1)), report_sha256 TEXT,"                \
    " created_ms " I64 " NOT NULL)" STRICT ";"                                                                                   \
    "CREATE TABLE deployments ("                                                                                       \
    " id " ID ", model_version_id " I64 " NOT NULL REFERENCES model_versions(id), environment TEXT NOT NULL,"          \
    " variant TEXT, weight " I64 " NOT NULL CHECK (weight BETWEEN 0 AND 100),"                                         \
    " status TEXT NOT NULL CHECK (status IN ('active','stopped')),"                                                    \
    " created_ms " I64 " NOT NULL, updated_ms " I64 " NOT NULL)" STRICT ";"                                                      \
    "CREATE TABLE api_keys ("                                                                                          \
    " id TEXT PRIMARY KEY, prefix TEXT NOT NULL, key_hash TEXT NOT NULL UNIQUE, name TEXT,"                            \
    " scope TEXT NOT NULL CHECK (scope IN ('inference','admin')),"                                                     \
    " rate_per_min " I64 " NOT NULL, tokens_per_day " I64 " NOT NULL, created_ms " I64 " NOT NULL,"                    \
    " revoked_ms " I64 ", last_used_ms " I64 ")" STRICT ";"                                                                      \
    "CREATE TABLE api_key_usage ("                                                                                     \
    " key_id TEXT NOT NULL REFERENCES api_keys(id), day " I64 " NOT NULL, tokens " I64 " NOT NULL,"                    \
    " requests " I64 " NOT NULL, PRIMARY KEY (key_id, day))" STRICT ";"                                                          \
    "CREATE TABLE audit_log ("                                                                                         \
    " seq " I64 " PRIMARY KEY, time_ms " I64 " NOT NULL, key_id TEXT, model TEXT, variant TEXT, endpoint TEXT,"        \
    " prompt_tokens " I64 " NOT NULL, completion_tokens " I64 " NOT NULL, latency_ms " I64 " NOT NULL,"                \
    " status " I64 " NOT NULL, outcome TEXT, prev_hash TEXT NOT NULL, hash TEXT NOT NULL)" STRICT ";"                            \
    "CREATE TABLE audit_head (id " I64 " PRIMARY KEY CHECK (id = 1), seq " I64 " NOT NULL, hash TEXT NOT NULL)" STRICT ";"       \
    "INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, "                                                            \
    "'0000000000000000000000000000000000000000000000000000000000000000');"

static const char *const sqlite_migrations[] = {
    STORE_SCHEMA_V1("INTEGER PRIMARY KEY", "INTEGER", "BLOB", " STRICT"),
};
static const char *const pg_migrations[] = {
    STORE_SCHEMA_V1("BIGSERIAL PRIMARY KEY", "BIGINT", "BYTEA", ""),
};
_Static_assert(sizeof sqlite_migrations / sizeof sqlite_migrations[0] == QAI_STORE_SCHEMA_VERSION,
               "one SQLite migration per schema version");
_Static_assert(sizeof pg_migrations / sizeof pg_migrations[0] == QAI_STORE_SCHEMA_VERSION,
               "one PostgreSQL migration per schema version");

/* ---- small things ------------------------------------------------------------- */

int64_t qai_store_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *const stage_names[] = {"none", "staging", "canary", "prod", "retired"};

const char *qai_stage_name(qai_stage st) {
    return (unsigned)st < 5 ? stage_names[st] : "?";
}

int qai_stage_from_name(const char *name) {
    for (int i = 0; name && i < 5; i++)
        if (!strcmp(name, stage_names[i])) return i;
    return -1;
}

void store_enter(qai_store *s) { pthread_mutex_lock(&s->mu); }
void store_leave(qai_store *s) { pthread_mutex_unlock(&s->mu); }

const char *qai_store_backend(const qai_store *s) { return s->be->name; }
const char *qai_store_location(const qai_store *s) { return s->location; }
int qai_store_schema_version(const qai_store *s) { return s->schema_version; }

/* ---- rows ---------------------------------------------------------------------- */

void qrows_free(qrows *r) {
    if (!r->cells) return;
    for (size_t i = 0; i < r->nrows * (size_t)r->ncols; i++)
        if (r->cells[i].t == QV_TEXT || r->cells[i].t == QV_BLOB) qai_free((void *)r->cells[i].p);
    qai_free(r->cells);
    memset(r, 0, sizeof *r);
}

qai_status qrows_push(qrows *r, const qv *row) {
    if (r->nrows == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 16;
        qv *c = qai_realloc(r->cells, cap * (size_t)r->ncols * sizeof *c);
        if (!c && r->ncols) return QAI_ERR_NOMEM;
        r->cells = c;
        r->cap = cap;
    }
    qv *dst = r->cells + r->nrows * (size_t)r->ncols;
    for (int j = 0; j < r->ncols; j++) {
        dst[j] = row[j];
        if (row[j].t == QV_TEXT || row[j].t == QV_BLOB) {
            char *p = qai_malloc(row[j].n + 1);
            if (!p) {
                for (int k = 0; k < j; k++)
                    if (dst[k].t == QV_TEXT || dst[k].t == QV_BLOB) qai_free((void *)dst[k].p);
                return QAI_ERR_NOMEM;
            }
            if (row[j].n) memcpy(p, row[j].p, row[j].n);
            p[row[j].n] = 0;
            dst[j].p = p;
        }
    }
    r->nrows++;
    return QAI_OK;
}

qai_status store_unpack(const qrows *rows, const fdesc *f, int nf, size_t struct_size, void **out, size_t *n) {
    if (rows->nrows && rows->ncols < nf)
        return qai_error(QAI_ERR_INTERNAL, "store: query returned %d columns, %d expected", rows->ncols, nf);
    size_t ssz = (struct_size + 7) & ~(size_t)7;
    size_t bytes = ssz * rows->nrows;
    for (size_t r = 0; r < rows->nrows; r++)
        for (int j = 0; j < nf; j++) {
            const qv *c = qrows_at(rows, r, j);
            if ((f[j].t == F_STR || f[j].t == F_BLOB) && (c->t == QV_TEXT || c->t == QV_BLOB)) bytes += c->n + 1;
        }
    uint8_t *blk = qai_calloc(1, bytes ? bytes : 1);
    if (!blk) return QAI_ERR_NOMEM;
    uint8_t *heap = blk + ssz * rows->nrows;
    for (size_t r = 0; r < rows->nrows; r++) {
        uint8_t *st = blk + ssz * r;
        for (int j = 0; j < nf; j++) {
            const qv *c = qrows_at(rows, r, j);
            void *m = st + f[j].off;
            switch (f[j].t) {
            case F_I64: {
                int64_t v = c->t == QV_INT ? c->i : c->t == QV_TEXT ? strtoll(c->p, NULL, 10) : 0;
                memcpy(m, &v, sizeof v);
                break;
            }
            case F_INT: {
                int v = (int)(c->t == QV_INT ? c->i : c->t == QV_TEXT ? strtoll(c->p, NULL, 10) : 0);
                memcpy(m, &v, sizeof v);
                break;
            }
            case F_STAGE: {
                int v = c->t == QV_TEXT ? qai_stage_from_name(c->p) : 0;
                qai_stage sv = v < 0 ? QAI_STAGE_NONE : (qai_stage)v;
                memcpy(m, &sv, sizeof sv);
                break;
            }
            case F_HASH: {
                char *h = m;
                size_t len = c->t == QV_TEXT ? (c->n < 64 ? c->n : 64) : 0;
                if (len) memcpy(h, c->p, len);
                h[len] = 0;
                break;
            }
            case F_STR:
            case F_BLOB: {
                char *p = NULL;
                size_t len = 0;
                if (c->t == QV_TEXT || c->t == QV_BLOB) {
                    p = (char *)heap;
                    len = c->n;
                    if (len) memcpy(p, c->p, len);
                    p[len] = 0;
                    heap += len + 1;
                }
                memcpy(m, &p, sizeof p);
                if (f[j].t == F_BLOB) memcpy(st + f[j].len_off, &len, sizeof len);
                break;
            }
            }
        }
    }
    *out = blk;
    if (n) *n = rows->nrows;
    return QAI_OK;
}

qai_status store_query(qai_store *s, const char *sql, const qv *params, int n, qrows *rows, int64_t *changes) {
    s->err_kind = STORE_E_NONE;
    if (rows) memset(rows, 0, sizeof *rows);
    qai_status st = s->be->query(s, sql, params, n, rows, changes);
    if (st != QAI_OK) {
        if (rows) qrows_free(rows);
        if (s->depth > 0) s->tx_failed = true;
    }
    return st;
}

qai_status store_fetch(qai_store *s, const char *sql, const qv *p, int np, const fdesc *f, int nf, size_t struct_size,
                       void **out, size_t *n) {
    qrows rows;
    qai_status st = store_query(s, sql, p, np, &rows, NULL);
    if (st != QAI_OK) return st;
    st = store_unpack(&rows, f, nf, struct_size, out, n);
    qrows_free(&rows);
    return st;
}

qai_status store_fetch_one(qai_store *s, const char *sql, const qv *p, int np, const fdesc *f, int nf,
                           size_t struct_size, void **out, const char *what) {
    size_t n = 0;
    void *blk = NULL;
    qai_status st = store_fetch(s, sql, p, np, f, nf, struct_size, &blk, &n);
    if (st != QAI_OK) return qai_error_wrap(st, "%s", what);
    if (n != 1) {
        qai_free(blk);
        return qai_error(QAI_ERR_NOT_FOUND, "%s not found", what);
    }
    *out = blk;
    return QAI_OK;
}

qai_status store_fail(qai_store *s, qai_status st, const char *fmt, ...) {
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    switch (s->err_kind) {
    case STORE_E_UNIQUE: return qai_error(QAI_ERR_ARG, "%s already exists", what);
    case STORE_E_FKEY: return qai_error(QAI_ERR_ARG, "%s refers to a row that does not exist (%s)", what, qai_last_error());
    case STORE_E_CHECK: return qai_error(QAI_ERR_ARG, "%s: invalid value (%s)", what, qai_last_error());
    default: return qai_error_wrap(st, "%s", what);
    }
}

qai_status store_lock(qai_store *s, const char *resource) {
    if (s->depth == 0) return qai_error(QAI_ERR_INTERNAL, "store: lock '%s' outside a transaction", resource);
    /* 63-bit key from SHA-256 of the name: stable across processes and versions. */
    uint8_t h[32];
    qai_sha256(resource, strlen(resource), h);
    uint64_t u = 0;
    for (int i = 0; i < 8; i++) u = (u << 8) | h[i];
    int64_t key = (int64_t)(u & (uint64_t)INT64_MAX);
    s->err_kind = STORE_E_NONE;
    qai_status st = s->be->lock(s, key);
    if (st != QAI_OK) s->tx_failed = true;
    return st;
}

/* ---- transactions ------------------------------------------------------------ */

qai_status qai_store_begin(qai_store *s) {
    store_enter(s);
    if (s->depth++ > 0) return QAI_OK;
    s->tx_failed = false;
    s->err_kind = STORE_E_NONE;
    qai_status st = s->be->exec(s, s->be->begin_sql);
    if (st != QAI_OK) {
        s->depth--;
        store_leave(s);
        return qai_error_wrap(st, "store: cannot begin a transaction");
    }
    return QAI_OK;
}

static qai_status end_tx(qai_store *s, bool commit) {
    if (s->depth == 0) return qai_error(QAI_ERR_ARG, "store: %s without a transaction", commit ? "commit" : "rollback");
    qai_status st = QAI_OK;
    if (--s->depth > 0) {
        if (!commit) s->tx_failed = true; /* the outermost commit will roll back */
        store_leave(s);
        return QAI_OK;
    }
    if (commit && s->tx_failed) {
        commit = false;
        st = qai_error(QAI_ERR_IO, "store: transaction rolled back because a statement inside it failed");
    }
    s->err_kind = STORE_E_NONE;
    qai_status st2 = s->be->exec(s, commit ? "COMMIT" : "ROLLBACK");
    if (st2 != QAI_OK) {
        if (commit) {
            int kind = s->err_kind;
            qai_error_wrap(st2, "store: commit failed");
            /* a failed COMMIT leaves SQLite's transaction open: end it */
            char msg[512];
            snprintf(msg, sizeof msg, "%s", qai_last_error());
            s->be->exec(s, "ROLLBACK");
            s->err_kind = kind;
            st = qai_error(st2, "%s", msg);
        } else if (st == QAI_OK)
            st = st2;
    }
    s->tx_failed = false;
    store_leave(s);
    return st;
}

qai_status qai_store_commit(qai_store *s) { return end_tx(s, true); }
qai_status qai_store_rollback(qai_store *s) { return end_tx(s, false); }

qai_status qai_store_transact(qai_store *s, qai_store_tx_fn fn, void *arg) {
    store_enter(s);
    if (s->depth > 0) { /* joins the caller's transaction: no retry possible here */
        qai_status st = fn(s, arg);
        if (st != QAI_OK) s->tx_failed = true;
        store_leave(s);
        return st;
    }
    qai_status st = QAI_OK;
    unsigned seed = (unsigned)qai_time_ns() ^ (unsigned)getpid();
    for (int attempt = 0;; attempt++) {
        st = qai_store_begin(s);
        if (st == QAI_OK) {
            st = fn(s, arg);
            int kind = s->err_kind;
            if (st == QAI_OK) st = qai_store_commit(s);
            else {
                char msg[1024];
                snprintf(msg, sizeof msg, "%s", qai_last_error());
                qai_store_rollback(s);
                qai_error(st, "%s", msg);
                s->err_kind = kind;
            }
        }
        if (st == QAI_OK || s->err_kind != STORE_E_BUSY || attempt >= 9) break;
        /* contention: wait 2, 4, 8 ... ms (capped at 256) plus jitter, then run again */
        int ms = 2 << (attempt < 7 ? attempt : 7);
        ms += (int)(rand_r(&seed) % (unsigned)ms);
        struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    store_leave(s);
    return st;
}

/* ---- migrations ---------------------------------------------------------------- */

static qai_status migrate(qai_store *s, void *arg) {
    (void)arg;
    qai_status st = store_lock(s, "qai.schema");
    if (st != QAI_OK) return st;
    st = s->be->exec(s, "CREATE TABLE IF NOT EXISTS schema_version (version BIGINT PRIMARY KEY, applied_ms BIGINT NOT NULL)");
    if (st != QAI_OK) return qai_error_wrap(st, "table schema_version");
    qrows rows;
    st = store_query(s, "SELECT COALESCE(MAX(version), 0) FROM schema_version", NULL, 0, &rows, NULL);
    if (st != QAI_OK) return qai_error_wrap(st, "table schema_version");
    int64_t have = rows.nrows ? qrows_at(&rows, 0, 0)->i : 0;
    qrows_free(&rows);
    if (have > QAI_STORE_SCHEMA_VERSION)
        return qai_error(QAI_ERR_UNSUPPORTED,
                         "the database's schema is version %lld, newer than this qai understands (%d): "
                         "use a newer qai, or another store",
                         (long long)have, QAI_STORE_SCHEMA_VERSION);
    for (int64_t v = have + 1; v <= QAI_STORE_SCHEMA_VERSION; v++) {
        const char *const *m = s->be == &store_pg_backend ? pg_migrations : sqlite_migrations;
        st = s->be->exec(s, m[v - 1]);
        if (st != QAI_OK) return qai_error_wrap(st, "schema migration %lld", (long long)v);
        qv p[2] = {qv_int(v), qv_int(qai_store_now_ms())};
        st = store_query(s, "INSERT INTO schema_version (version, applied_ms) VALUES (?, ?)", p, 2, NULL, NULL);
        if (st != QAI_OK) return qai_error_wrap(st, "schema migration %lld", (long long)v);
    }
    s->schema_version = QAI_STORE_SCHEMA_VERSION;
    return QAI_OK;
}

/* ---- open / close -------------------------------------------------------------------- */

static bool has_prefix(const char *s, const char *p) { return !strncmp(s, p, strlen(p)); }

qai_status qai_store_open(const char *url, const char *data_dir, qai_store **out) {
    *out = NULL;
    char path[4096];
    const char *env = getenv("QAI_STORE");
    if (!url || !*url) url = env && *env ? env : NULL;
    bool pg = false;
    if (!url) {
        char dir[4000];
        qai_status st = qai_home_dir(data_dir, dir, sizeof dir);
        if (st != QAI_OK) return qai_error_wrap(st, "store");
        snprintf(path, sizeof path, "%s/qai.db", dir);
    } else if (has_prefix(url, "postgres://") || has_prefix(url, "postgresql://")) {
        pg = true;
    } else {
        const char *p = url;
        if (has_prefix(p, "sqlite:")) {
            p += 7;
            if (has_prefix(p, "//")) p += 2; /* sqlite:///abs/path */
        } else if (strstr(p, "://"))
            return qai_error(QAI_ERR_FORMAT,
                             "store '%s': unknown kind of URL (use sqlite:PATH, a path, or postgres://...)", url);
        if (!*p) return qai_error(QAI_ERR_FORMAT, "store '%s': empty SQLite path", url);
        if (strlen(p) >= sizeof path) return qai_error(QAI_ERR_RANGE, "store: path is too long");
        snprintf(path, sizeof path, "%s", p);
    }

    qai_store *s = qai_calloc(1, sizeof *s);
    if (!s) return QAI_ERR_NOMEM;
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&s->mu, &a);
    pthread_mutexattr_destroy(&a);

    qai_status st;
    if (pg) {
        s->be = &store_pg_backend;
        st = store_pg_connect(s, url);
    } else {
        s->be = &store_sqlite_backend;
        st = store_sqlite_connect(s, path);
    }
    if (st == QAI_OK) {
        /* the usual case, an up-to-date schema, needs no write transaction */
        qrows rows;
        int64_t have = -1;
        if (store_query(s, "SELECT MAX(version) FROM schema_version", NULL, 0, &rows, NULL) == QAI_OK) {
            if (rows.nrows && qrows_at(&rows, 0, 0)->t == QV_INT) have = qrows_at(&rows, 0, 0)->i;
            qrows_free(&rows);
        }
        if (have == QAI_STORE_SCHEMA_VERSION) s->schema_version = QAI_STORE_SCHEMA_VERSION;
        else st = qai_store_transact(s, migrate, NULL);
    }
    if (st != QAI_OK) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", qai_last_error());
        qai_store_close(s);
        return qai_error(st, "%s", msg);
    }
    *out = s;
    return QAI_OK;
}

void qai_store_close(qai_store *s) {
    if (!s) return;
    if (s->db) {
        while (s->depth > 0) qai_store_rollback(s);
        s->be->close(s);
    }
    pthread_mutex_destroy(&s->mu);
    qai_free(s->location);
    qai_free(s);
}
