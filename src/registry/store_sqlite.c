/* The store's SQLite backend: one database file, WAL mode, synchronous=FULL
 * (a committed transaction survives power loss), foreign keys on, a busy
 * timeout so several processes can share the file, and prepared statements
 * cached per handle (keyed by the address of their SQL text).
 *
 * Concurrency model: write transactions start with BEGIN IMMEDIATE, which
 * takes the database's single write lock up front, so two writers never
 * deadlock on a read-to-write upgrade and store_lock needs to do nothing. */
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "registry/store_internal.h"

#define BUSY_TIMEOUT_MS 10000

static sqlite3 *DB(qai_store *s) { return (sqlite3 *)s->db; }

static qai_status sq_error(qai_store *s, int rc, const char *what) {
    int ext = sqlite3_extended_errcode(DB(s));
    int prim = rc & 0xff;
    if (prim == SQLITE_BUSY || prim == SQLITE_LOCKED) s->err_kind = STORE_E_BUSY;
    else if (ext == SQLITE_CONSTRAINT_UNIQUE || ext == SQLITE_CONSTRAINT_PRIMARYKEY) s->err_kind = STORE_E_UNIQUE;
    else if (ext == SQLITE_CONSTRAINT_FOREIGNKEY) s->err_kind = STORE_E_FKEY;
    else if (ext == SQLITE_CONSTRAINT_CHECK || ext == SQLITE_CONSTRAINT_NOTNULL) s->err_kind = STORE_E_CHECK;
    else s->err_kind = STORE_E_OTHER;
    return qai_error(QAI_ERR_IO, "sqlite '%s': %s%s%s", s->location, sqlite3_errmsg(DB(s)), what ? " in: " : "",
                     what ? what : "");
}

static qai_status sq_exec(qai_store *s, const char *sql) {
    int rc = sqlite3_exec(DB(s), sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK) return sq_error(s, rc, NULL);
    return QAI_OK;
}

static size_t slot_of(const char *sql) {
    uintptr_t h = (uintptr_t)sql;
    h ^= h >> 17;
    h *= 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 40) % STORE_STMT_CACHE;
}

/* A prepared statement for sql (cached; *cached false means finalize after use). */
static qai_status get_stmt(qai_store *s, const char *sql, sqlite3_stmt **out, bool *cached) {
    size_t i = slot_of(sql);
    for (size_t k = 0; k < STORE_STMT_CACHE; k++, i = (i + 1) % STORE_STMT_CACHE) {
        if (s->cache[i].sql == sql) {
            *out = s->cache[i].stmt;
            *cached = true;
            return QAI_OK;
        }
        if (!s->cache[i].sql) break;
    }
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v3(DB(s), sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
    if (rc != SQLITE_OK) return sq_error(s, rc, sql);
    *out = st;
    *cached = false;
    if (!s->cache[i].sql) {
        s->cache[i].sql = sql;
        s->cache[i].stmt = st;
        *cached = true;
    }
    return QAI_OK;
}

static qai_status sq_query(qai_store *s, const char *sql, const qv *params, int n, qrows *rows, int64_t *changes) {
    sqlite3_stmt *st = NULL;
    bool cached = false;
    qai_status status = get_stmt(s, sql, &st, &cached);
    if (status != QAI_OK) return status;
    int rc = SQLITE_OK;
    for (int i = 0; i < n && rc == SQLITE_OK; i++) {
        switch (params[i].t) {
        case QV_NULL: rc = sqlite3_bind_null(st, i + 1); break;
        case QV_INT: rc = sqlite3_bind_int64(st, i + 1, params[i].i); break;
        case QV_TEXT: rc = sqlite3_bind_text64(st, i + 1, params[i].p, params[i].n, SQLITE_STATIC, SQLITE_UTF8); break;
        case QV_BLOB: rc = sqlite3_bind_blob64(st, i + 1, params[i].p, params[i].n, SQLITE_STATIC); break;
        }
    }
    if (rc != SQLITE_OK) {
        status = sq_error(s, rc, sql);
        goto done;
    }
    int ncols = sqlite3_column_count(st);
    if (rows) rows->ncols = ncols;
    qv row[32];
    if (ncols > 32) {
        status = qai_error(QAI_ERR_INTERNAL, "store: query has too many columns: %s", sql);
        goto done;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (!rows) continue;
        for (int j = 0; j < ncols; j++) {
            switch (sqlite3_column_type(st, j)) {
            case SQLITE_INTEGER: row[j] = qv_int(sqlite3_column_int64(st, j)); break;
            case SQLITE_NULL: row[j] = (qv){0}; break;
            case SQLITE_BLOB:
                row[j] = (qv){.t = QV_BLOB, .p = sqlite3_column_blob(st, j), .n = (size_t)sqlite3_column_bytes(st, j)};
                if (!row[j].p) row[j].p = "";
                break;
            default: /* TEXT, FLOAT: as text */
                row[j] = (qv){.t = QV_TEXT, .p = sqlite3_column_text(st, j), .n = (size_t)sqlite3_column_bytes(st, j)};
                if (!row[j].p) row[j].p = "";
                break;
            }
        }
        if ((status = qrows_push(rows, row)) != QAI_OK) goto done;
    }
    if (rc != SQLITE_DONE) {
        status = sq_error(s, rc, NULL);
        goto done;
    }
    if (changes) *changes = sqlite3_changes64(DB(s));
done:
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (!cached) sqlite3_finalize(st);
    return status;
}

static qai_status sq_lock(qai_store *s, int64_t key) {
    (void)s, (void)key; /* BEGIN IMMEDIATE already holds the write lock */
    return QAI_OK;
}

static void sq_close(qai_store *s) {
    for (int i = 0; i < STORE_STMT_CACHE; i++)
        if (s->cache[i].stmt) sqlite3_finalize(s->cache[i].stmt);
    sqlite3_close_v2(DB(s));
    s->db = NULL;
}

const store_backend store_sqlite_backend = {
    .name = "sqlite",
    .exec = sq_exec,
    .query = sq_query,
    .lock = sq_lock,
    .close = sq_close,
    .begin_sql = "BEGIN IMMEDIATE",
};

qai_status store_sqlite_connect(qai_store *s, const char *path) {
    s->location = qai_strdup(path);
    if (!s->location) return QAI_ERR_NOMEM;
    /* The store holds key hashes and the audit trail: create it private. Only
     * when it does not exist yet: closing any descriptor of a file drops every
     * POSIX lock this process holds on it, so opening and closing an existing
     * store that another handle of this process has open (the server's store
     * and its audit writer) would silently release that handle's locks — and
     * another process could then checkpoint and reset the WAL under it, and an
     * update it committed (a key revocation) be lost. */
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0)
        close(fd);
    else if (errno != EEXIST)
        return qai_error(QAI_ERR_IO, "store: cannot create '%s': %s", path, strerror(errno));
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        qai_status st = qai_error(QAI_ERR_IO, "store: cannot open '%s': %s", path, db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close_v2(db);
        return st;
    }
    s->db = db;
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
    /* journal_mode answers with the mode it is in: a file we cannot put in WAL
     * (e.g. on a filesystem without shared memory) is refused, not silently
     * run without the concurrency the rest of the store counts on. */
    sqlite3_stmt *st = NULL;
    rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        qai_status e = sq_error(s, rc, "PRAGMA journal_mode=WAL");
        sqlite3_finalize(st);
        return qai_error_wrap(e, "store: '%s' is not a usable SQLite database", path);
    }
    char mode[32];
    const char *m = (const char *)sqlite3_column_text(st, 0);
    snprintf(mode, sizeof mode, "%s", m ? m : "?");
    sqlite3_finalize(st);
    if (strcmp(mode, "wal"))
        return qai_error(QAI_ERR_IO, "store '%s': cannot switch to WAL mode (journal mode is '%s')", path, mode);
    qai_status e = sq_exec(s, "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;");
    if (e != QAI_OK) return qai_error_wrap(e, "store '%s'", path);
    return QAI_OK;
}
