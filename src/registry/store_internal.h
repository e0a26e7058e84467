/* The store's insides, shared by store.c (open, transactions, migrations,
 * row unpacking), the two backends (store_sqlite.c, store_pg.c) and the
 * files that implement typed operations (store_entities.c, apikey.c,
 * audit.c). Not installed.
 *
 * SQL is written once, in the SQLite dialect with '?' parameters, and is
 * accepted by both backends: the PostgreSQL backend rewrites '?' to $1, $2 ...
 * and prepares each statement once per connection. What the two dialects do
 * not share is kept behind calls here: schema DDL (one macro, two type
 * spellings, see store.c) and row locks (store_lock: a no-op on SQLite,
 * whose BEGIN IMMEDIATE already holds the database's write lock; an
 * advisory transaction lock on PostgreSQL). */
#ifndef QAI_STORE_INTERNAL_H
#define QAI_STORE_INTERNAL_H

#include <pthread.h>

#include "qai/store.h"

/* A value: a parameter (p borrowed) or a result cell (p owned by the rows). */
typedef enum { QV_NULL = 0, QV_INT, QV_TEXT, QV_BLOB } qv_type;
typedef struct {
    qv_type t;
    int64_t i;
    const void *p; /* text: NUL-terminated; blob: n bytes */
    size_t n;
} qv;

static inline qv qv_int(int64_t i) { return (qv){.t = QV_INT, .i = i}; }
/* NULL text becomes SQL NULL. */
static inline qv qv_text(const char *s) { return s ? (qv){.t = QV_TEXT, .p = s, .n = __builtin_strlen(s)} : (qv){0}; }
static inline qv qv_blob(const void *p, size_t n) { return p ? (qv){.t = QV_BLOB, .p = p, .n = n} : (qv){0}; }
/* 0 becomes SQL NULL (for optional foreign keys and times). */
static inline qv qv_int_or_null(int64_t i) { return i ? qv_int(i) : (qv){0}; }

/* A materialized result: nrows x ncols cells, row-major. */
typedef struct {
    int ncols;
    size_t nrows, cap;
    qv *cells;
} qrows;
void qrows_free(qrows *r);
qai_status qrows_push(qrows *r, const qv *row); /* copies the row's text/blob bytes */
static inline const qv *qrows_at(const qrows *r, size_t row, int col) { return &r->cells[row * (size_t)r->ncols + col]; }

/* What kind of failure the last backend call had (besides the message). */
enum {
    STORE_E_NONE = 0,
    STORE_E_BUSY,   /* SQLITE_BUSY/LOCKED, PostgreSQL 40001/40P01: retry the transaction */
    STORE_E_UNIQUE, /* a unique or primary key constraint */
    STORE_E_FKEY,   /* a foreign key constraint */
    STORE_E_CHECK,  /* a CHECK / NOT NULL constraint */
    STORE_E_OTHER,
};

typedef struct store_backend {
    const char *name;
    /* Runs SQL text without parameters (may hold several statements). */
    qai_status (*exec)(qai_store *s, const char *sql);
    /* Runs one statement with parameters. sql must be a string with static
     * storage duration: its address keys the prepared-statement cache. rows
     * (may be NULL) receives the result; *changes (may be NULL) the number of
     * rows changed. */
    qai_status (*query)(qai_store *s, const char *sql, const qv *params, int n, qrows *rows, int64_t *changes);
    /* Takes a transaction-scoped lock named by key (see store_lock). */
    qai_status (*lock)(qai_store *s, int64_t key);
    void (*close)(qai_store *s);
    const char *begin_sql; /* how a write transaction starts */
} store_backend;

#define STORE_STMT_CACHE 512

struct qai_store {
    const store_backend *be;
    void *db; /* sqlite3 * or PGconn * */
    pthread_mutex_t mu; /* recursive; held from begin to commit/rollback */
    int depth;          /* nested begin count */
    bool tx_failed;     /* an inner call failed: the outer commit must roll back */
    int err_kind;       /* STORE_E_* of the last failure */
    int schema_version;
    char *location;
    struct {
        const char *sql;
        void *stmt; /* sqlite3_stmt *, or (PostgreSQL) non-NULL once prepared */
    } cache[STORE_STMT_CACHE];
    int n_prepared; /* PostgreSQL: names prepared statements "q<n>" */
};

extern const store_backend store_sqlite_backend;
extern const store_backend store_pg_backend;
qai_status store_sqlite_connect(qai_store *s, const char *path);
qai_status store_pg_connect(qai_store *s, const char *url);

/* Runs a statement (see store_backend.query); resets err_kind first. */
qai_status store_query(qai_store *s, const char *sql, const qv *params, int n, qrows *rows, int64_t *changes);
/* Locks a named resource until the transaction ends (serializes e.g. audit
 * appenders across processes on PostgreSQL). Must be inside a transaction. */
qai_status store_lock(qai_store *s, const char *resource);

/* Row unpacking into one heap block (structs + strings + blobs), freed with
 * one qai_free. Each field maps result column i to a struct member. */
typedef enum { F_I64, F_INT, F_STR, F_BLOB, F_STAGE, F_HASH } ftype; /* F_HASH: text into char[65] */
typedef struct {
    ftype t;
    size_t off;     /* offsetof the member */
    size_t len_off; /* F_BLOB: offsetof the size_t length member */
} fdesc;
qai_status store_unpack(const qrows *rows, const fdesc *f, int nf, size_t struct_size, void **out, size_t *n);
/* Runs a query and unpacks it. For _one: exactly one row, else
 * QAI_ERR_NOT_FOUND with "<what> not found". */
qai_status store_fetch(qai_store *s, const char *sql, const qv *p, int np, const fdesc *f, int nf, size_t struct_size,
                       void **out, size_t *n);
qai_status store_fetch_one(qai_store *s, const char *sql, const qv *p, int np, const fdesc *f, int nf,
                           size_t struct_size, void **out, const char *what);

/* Turns a failed constraint into a clear message: "<what> already exists",
 * "<what> refers to a missing ..."; other failures keep the database's
 * message prefixed with what. Returns a status for the caller to return. */
qai_status store_fail(qai_store *s, qai_status st, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Inside a transaction: the audit append (audit.c) and a usage charge that
 * silently skips unknown key ids (apikey.c), for the audit writer, which does
 * both in one transaction per batch. */
qai_status audit_append_in_tx(qai_store *s, qai_audit_record *recs, size_t n);
qai_status apikey_charge_if_known_in_tx(qai_store *s, const char *id, int64_t tokens, int64_t requests, int64_t at_ms);

/* Lock the handle for the duration of a call (recursive). */
void store_enter(qai_store *s);
void store_leave(qai_store *s);

#endif
