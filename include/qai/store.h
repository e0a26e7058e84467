/*
 * qai/store.h — the store: the one database every lifecycle command uses.
 *
 * What is in it: projects → datasets → training runs → model versions (with
 * their stage and promotion history) → evaluations → deployments; signing
 * keys (public parts and revocation); API keys (hashed) with per-day token
 * usage; and the hash-chained audit trail. Two backends behind the same
 * calls: SQLite (embedded, the default: one file under the data directory)
 * and PostgreSQL through libpq (a shared store for several nodes).
 *
 * What it deliberately does not do: keep private keys or bundle files (those
 * live in files next to the store), parse bundles, or talk HTTP. It stores
 * what others computed (hashes, metrics, manifests as JSON text) and keeps
 * the relations and the history consistent.
 *
 * Opening. qai_store_open(url, data_dir, &s) takes
 *   - NULL or "": $QAI_STORE if set, else "<data dir>/qai.db" (SQLite), the
 *     data directory being data_dir, else $QAI_HOME, else ~/.local/share/qai;
 *   - "sqlite:PATH" or a bare PATH (also "sqlite:///abs/path");
 *   - "postgres://..." or "postgresql://..." (a libpq connection URI).
 * Opening applies the numbered schema migrations that are missing, all in one
 * transaction, and refuses a database whose schema is newer than this code.
 * SQLite runs in WAL mode with synchronous=FULL, foreign keys on and a busy
 * timeout, so several processes can share one file.
 *
 * Threads and processes. A handle may be shared by threads: calls are
 * serialized by a lock inside it, and a transaction opened with
 * qai_store_begin belongs to the thread that opened it (other threads wait
 * until it ends). For parallel work open one handle per thread. Handles must
 * not cross fork(): a child opens its own (and ends with _exit, leaving the
 * parent's connection alone).
 *
 * Transactions. Every write call is atomic on its own. To group calls, either
 * qai_store_begin/commit/rollback, or (better) qai_store_transact(s, fn, arg),
 * which runs fn inside a transaction and, when the database says "busy"
 * (SQLite) or "serialization failure / deadlock" (PostgreSQL), rolls back and
 * runs fn again (up to ~10 times with growing, jittered waits).
 *
 * Memory. Every get/list call returns one heap block holding the structs and
 * all their strings: free it with a single qai_free(). (The string fields are
 * const char * so that the same structs can carry borrowed strings into the
 * create calls.) Times are Unix time in
 * milliseconds (UTC). Strings are UTF-8; JSON columns (config, metrics, meta)
 * hold JSON text as given (the store does not parse it).
 *
 * Errors: QAI_ERR_NOT_FOUND (no such row), QAI_ERR_ARG (invalid argument, or
 * the row already exists: the message says "already exists"), QAI_ERR_IO
 * (the database failed or is busy past the retries), QAI_ERR_UNSUPPORTED
 * (schema newer than the code), QAI_ERR_FORMAT (a URL that cannot be read).
 * The message names the table and the key.
 *
 * Usage:
 *     qai_store *s;
 *     if (qai_store_open(NULL, NULL, &s) != QAI_OK) { fprintf(stderr, "qai: %s\n", qai_last_error()); ... }
 *     int64_t proj, ds, run, mv;
 *     qai_project_create(s, "chatbot", "support bot", &proj);
 *     qai_store_dataset_create(s, &(qai_dataset_record){.project_id = proj, .name = "faq", .version = "1",
 *                                          .manifest_sha256 = hex}, &ds);
 *     qai_run_create(s, &(qai_run){.project_id = proj, .name = "sft-1", .config = "{}"}, &ds, 1, &run);
 *     qai_model_version_create(s, &(qai_model_version){.project_id = proj, .run_id = run, .name = "bot",
 *                                                       .version = "1.0.0", .sha256 = hex}, &mv);
 *     qai_model_promote(s, "bot", "1.0.0", QAI_STAGE_PROD, "alice", "passed evals");
 *     qai_store_close(s);
 */
#ifndef QAI_STORE_H
#define QAI_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qai/base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The schema version this code writes (the highest migration it knows). */
#define QAI_STORE_SCHEMA_VERSION 1

typedef struct qai_store qai_store;

/* ---- open, close, transactions -------------------------------------------- */

/* Opens (creating if needed) the store named by url (see above) and brings
 * its schema up to date. data_dir may be NULL. *out is the new handle; close
 * it with qai_store_close. */
qai_status qai_store_open(const char *url, const char *data_dir, qai_store **out);
void qai_store_close(qai_store *s);
/* "sqlite" or "postgres". */
const char *qai_store_backend(const qai_store *s);
/* What the handle was opened on: the SQLite file path, or the PostgreSQL URL
 * with any password replaced by "***". */
const char *qai_store_location(const qai_store *s);
/* The schema version found (after migrations: QAI_STORE_SCHEMA_VERSION). */
int qai_store_schema_version(const qai_store *s);

/* Explicit transactions. begin may be called again inside a transaction
 * (only the outermost commit/rollback acts). Inside an explicit transaction
 * a "busy" error cannot be retried for you: prefer qai_store_transact. */
qai_status qai_store_begin(qai_store *s);
qai_status qai_store_commit(qai_store *s);
qai_status qai_store_rollback(qai_store *s);
/* Runs fn(s, arg) in a transaction: commits if it returns QAI_OK, rolls back
 * otherwise (returning its status); retries the whole thing when the database
 * reports contention. fn may therefore run more than once: it must not have
 * effects outside the store that cannot be repeated. */
typedef qai_status (*qai_store_tx_fn)(qai_store *s, void *arg);
qai_status qai_store_transact(qai_store *s, qai_store_tx_fn fn, void *arg);

/* Wall-clock time, Unix milliseconds (UTC). */
int64_t qai_store_now_ms(void);

/* ---- projects → datasets → runs → model versions → evaluations → deployments */

typedef struct {
    int64_t id;
    const char *name;        /* unique */
    const char *description; /* may be NULL */
    int64_t created_ms;
} qai_project;
qai_status qai_project_create(qai_store *s, const char *name, const char *description, int64_t *id_out);
/* By name. */
qai_status qai_project_get(qai_store *s, const char *name, qai_project **out);
qai_status qai_project_list(qai_store *s, qai_project **out, size_t *n);

typedef struct {
    int64_t id;
    int64_t project_id;
    const char *name;
    const char *version;          /* unique with name inside the project */
    const char *manifest_sha256;  /* hex SHA-256 of the dataset manifest */
    const char *uri;              /* where the manifest lives; may be NULL */
    int64_t created_ms;
} qai_dataset_record;
/* d->id and d->created_ms are ignored (assigned). */
qai_status qai_store_dataset_create(qai_store *s, const qai_dataset_record *d, int64_t *id_out);
qai_status qai_store_dataset_get(qai_store *s, int64_t id, qai_dataset_record **out);
/* project_id 0 lists every project's datasets. Ordered by id. */
qai_status qai_store_dataset_list(qai_store *s, int64_t project_id, qai_dataset_record **out, size_t *n);

typedef struct {
    int64_t id;
    int64_t project_id;
    const char *name;
    const char *config;      /* JSON text (the training config as run) */
    const char *status;      /* "queued", "running", "succeeded", "failed", "cancelled" */
    const char *metrics;     /* JSON text; may be NULL */
    int64_t started_ms, finished_ms; /* 0 if not yet */
    int64_t created_ms;
} qai_run;
/* Creates a run that read the given datasets (dataset_ids may be NULL when
 * n_datasets is 0). r->status NULL means "queued". */
qai_status qai_run_create(qai_store *s, const qai_run *r, const int64_t *dataset_ids, size_t n_datasets,
                          int64_t *id_out);
/* Sets status and (if not NULL) metrics; "running" stamps started_ms, a
 * final status stamps finished_ms. */
qai_status qai_run_update(qai_store *s, int64_t id, const char *status, const char *metrics);
qai_status qai_run_get(qai_store *s, int64_t id, qai_run **out);
qai_status qai_run_list(qai_store *s, int64_t project_id, qai_run **out, size_t *n);
/* The ids of the datasets a run read, ascending. *ids freed with qai_free. */
qai_status qai_run_datasets(qai_store *s, int64_t run_id, int64_t **ids, size_t *n);

/* Stages of a model version. Each of staging, canary and prod holds at most
 * one version of a model at a time. */
typedef enum {
    QAI_STAGE_NONE = 0,
    QAI_STAGE_STAGING = 1,
    QAI_STAGE_CANARY = 2,
    QAI_STAGE_PROD = 3,
    QAI_STAGE_RETIRED = 4,
} qai_stage;
const char *qai_stage_name(qai_stage st); /* "none", "staging", ... */
/* -1 if name is not a stage. */
int qai_stage_from_name(const char *name);

typedef struct {
    int64_t id;
    int64_t project_id;    /* 0 = none */
    int64_t run_id;        /* the run that produced it; 0 = unknown */
    int64_t parent_id;     /* the model version it was fine-tuned/quantized from; 0 = none */
    const char *name;
    const char *version;         /* unique with name */
    const char *sha256;          /* hex SHA-256 of the model file */
    const char *bundle_sha256;   /* hex SHA-256 of the bundle; may be NULL */
    const char *uri;             /* where the bundle/model lives; may be NULL */
    const char *meta;            /* JSON text (card summary, params, quantization); may be NULL */
    qai_stage stage;
    int64_t created_ms;
} qai_model_version;
/* m->id, stage and created_ms are ignored (a new version starts at "none"). */
qai_status qai_model_version_create(qai_store *s, const qai_model_version *m, int64_t *id_out);
/* version NULL: the newest version (highest id) of that name. */
qai_status qai_model_version_get(qai_store *s, const char *name, const char *version, qai_model_version **out);
qai_status qai_model_version_get_id(qai_store *s, int64_t id, qai_model_version **out);
/* name NULL lists every model's versions. Ordered by id. */
qai_status qai_model_version_list(qai_store *s, const char *name, qai_model_version **out, size_t *n);
/* The version of a model that holds a stage now (QAI_ERR_NOT_FOUND if none). */
qai_status qai_model_in_stage(qai_store *s, const char *name, qai_stage stage, qai_model_version **out);

/* One change of stage, in the promotion history. */
typedef struct {
    int64_t id;
    int64_t model_version_id;
    const char *name, *version;
    qai_stage from_stage, to_stage;
    const char *action;   /* "promote", "replace" (pushed out of a stage by a promotion), "rollback", "retire" */
    const char *actor;    /* who (user, key id); may be NULL */
    const char *reason;   /* may be NULL */
    int64_t at_ms;
} qai_stage_event;

/* Moves name@version to stage `to` (staging, canary or prod), recording who
 * and why. The version that held `to` before goes back to "none" (recorded as
 * "replace"). Retired versions cannot be promoted. */
qai_status qai_model_promote(qai_store *s, const char *name, const char *version, qai_stage to, const char *actor,
                             const char *reason);
/* Puts back the previous promoted version of `stage`: the stage history is
 * a stack (each promote pushes, each rollback pops, a retired version drops
 * out), so rolling back twice goes two versions back. The current holder goes
 * to "none". *restored_out (may be NULL) gets the version now in the stage.
 * QAI_ERR_NOT_FOUND if there is nothing to roll back to. */
qai_status qai_model_rollback(qai_store *s, const char *name, qai_stage stage, const char *actor, const char *reason,
                              qai_model_version **restored_out);
/* Which version a rollback of `stage` would restore, without changing anything. */
qai_status qai_model_previous(qai_store *s, const char *name, qai_stage stage, qai_model_version **out);
qai_status qai_model_retire(qai_store *s, const char *name, const char *version, const char *actor,
                            const char *reason);
/* The stage history of a model (version NULL: all its versions), oldest first. */
qai_status qai_model_history(qai_store *s, const char *name, const char *version, qai_stage_event **out, size_t *n);

/* Which signing keys signed a model version's bundle. */
qai_status qai_model_signature_add(qai_store *s, int64_t model_version_id, const char *key_id);
/* *key_ids is one block (array of strings + the strings): free with qai_free. */
qai_status qai_model_signature_list(qai_store *s, int64_t model_version_id, char ***key_ids, size_t *n);

typedef struct {
    int64_t id;
    int64_t model_version_id;
    const char *suite;        /* e.g. "qa-small" */
    const char *metrics;      /* JSON text */
    int passed;         /* 1 passed its gate, 0 failed, -1 no gate */
    const char *report_sha256;/* may be NULL */
    int64_t created_ms;
} qai_evaluation;
qai_status qai_evaluation_create(qai_store *s, const qai_evaluation *e, int64_t *id_out);
qai_status qai_evaluation_get(qai_store *s, int64_t id, qai_evaluation **out);
/* model_version_id 0 lists all. */
qai_status qai_evaluation_list(qai_store *s, int64_t model_version_id, qai_evaluation **out, size_t *n);

typedef struct {
    int64_t id;
    int64_t model_version_id;
    const char *environment;  /* where: "edge-01", "prod-eu" ... */
    const char *variant;      /* traffic-split variant name; may be NULL */
    int weight;         /* traffic weight, 0..100 */
    const char *status;       /* "active", "stopped" */
    int64_t created_ms, updated_ms;
} qai_deployment;
/* d->status NULL means "active". */
qai_status qai_deployment_create(qai_store *s, const qai_deployment *d, int64_t *id_out);
qai_status qai_deployment_update(qai_store *s, int64_t id, const char *status, int weight);
qai_status qai_deployment_get(qai_store *s, int64_t id, qai_deployment **out);
/* environment NULL lists all. */
qai_status qai_deployment_list(qai_store *s, const char *environment, qai_deployment **out, size_t *n);

/* ---- signing keys (public parts only) ----------------------------------------- */

typedef struct {
    const char *key_id;        /* unique; chosen by the signing code */
    const char *name;
    const char *algorithm;     /* e.g. "ed25519+ml-dsa-65" */
    const uint8_t *public_key; /* the serialized public key(s) */
    size_t public_key_len;
    int64_t created_ms;
    int64_t revoked_ms;  /* 0 if not revoked */
    const char *revoke_reason; /* may be NULL */
} qai_signing_key;
qai_status qai_signing_key_add(qai_store *s, const qai_signing_key *k);
qai_status qai_signing_key_get(qai_store *s, const char *key_id, qai_signing_key **out);
qai_status qai_signing_key_list(qai_store *s, qai_signing_key **out, size_t *n);
/* Revoking twice keeps the first time. */
qai_status qai_signing_key_revoke(qai_store *s, const char *key_id, const char *reason);

/* ---- API keys ------------------------------------------------------------------- */

/* A secret looks like "qai-" + 43 base64url characters (32 random bytes). It
 * is returned once by qai_apikey_create and never stored: the store keeps its
 * SHA-256 (a fast hash is enough for a 256-bit random secret: there is
 * nothing to brute-force) and its first 12 characters as a public hint. */
#define QAI_APIKEY_SECRET_LEN 47
#define QAI_APIKEY_SECRET_SIZE 48 /* with the NUL */

typedef struct {
    const char *id;            /* public id, "key_" + 12 hex: what list shows and revoke takes */
    const char *prefix;        /* the secret's first 12 characters, e.g. "qai-Xy3_a9Qk" */
    const char *name;          /* may be NULL */
    const char *scope;         /* "inference" or "admin" (admin may also do inference) */
    int64_t rate_per_min;   /* requests per minute; 0 = unlimited */
    int64_t tokens_per_day; /* prompt + completion tokens per UTC day; 0 = unlimited */
    int64_t created_ms;
    int64_t revoked_ms;     /* 0 if active */
    int64_t last_used_ms;   /* 0 if never (updated by qai_apikey_charge) */
} qai_apikey;

/* Creates a key. scope must be "inference" or "admin"; limits >= 0 (0 =
 * unlimited). secret_out gets the secret (NUL-terminated; show it once);
 * *out (may be NULL) the stored record, freed with qai_free. */
qai_status qai_apikey_create(qai_store *s, const char *scope, int64_t rate_per_min, int64_t tokens_per_day,
                             const char *name, char secret_out[QAI_APIKEY_SECRET_SIZE], qai_apikey **out);
/* Finds the key a client presented: hashes it and compares with the stored
 * hash in constant time. QAI_ERR_NOT_FOUND for an unknown or malformed
 * secret ("invalid api key", never saying which part was wrong),
 * QAI_ERR_ARG for a revoked key. */
qai_status qai_apikey_lookup(qai_store *s, const char *secret, qai_apikey **out);
/* True if the key's scope covers `needed` ("inference" or "admin"). */
bool qai_apikey_allows(const qai_apikey *k, const char *needed);
qai_status qai_apikey_get(qai_store *s, const char *id, qai_apikey **out);
qai_status qai_apikey_list(qai_store *s, qai_apikey **out, size_t *n);
/* Revoking a revoked key is ok (keeps the first time). */
qai_status qai_apikey_revoke(qai_store *s, const char *id);

/* Token usage per UTC day, persisted. charge adds tokens (and one request)
 * to the day containing now_ms and stamps last_used; usage reads it. */
qai_status qai_apikey_charge(qai_store *s, const char *id, int64_t tokens, int64_t now_ms);
qai_status qai_apikey_usage(qai_store *s, const char *id, int64_t now_ms, int64_t *tokens, int64_t *requests);
/* QAI_OK if the key may spend more tokens today; QAI_ERR_RANGE when the
 * day's limit is used up, with *retry_after_s = seconds to the next UTC day. */
qai_status qai_apikey_check_tokens(qai_store *s, const qai_apikey *k, int64_t now_ms, int64_t *retry_after_s);

/* Requests-per-minute limiter: a token bucket per key id, held in memory
 * (so each server process limits on its own, and a restart refills the
 * buckets). Capacity = rate_per_min (the allowed burst), refilled at
 * rate_per_min/60 per second. Thread-safe. */
typedef struct qai_ratelimit qai_ratelimit;
qai_ratelimit *qai_ratelimit_new(void);
void qai_ratelimit_free(qai_ratelimit *rl);
/* Takes one request from key_id's bucket at time now_ns (monotonic, e.g.
 * qai_time_ns()). true = allowed; false = limited, with *retry_after_s (>= 1)
 * the whole seconds until one request is available. rate_per_min <= 0 always
 * allows. */
bool qai_ratelimit_take(qai_ratelimit *rl, const char *key_id, int64_t rate_per_min, uint64_t now_ns,
                        int64_t *retry_after_s);

/* ---- audit trail ------------------------------------------------------------------- */

/* One served request. Rows form a chain:
 *   hash(row) = SHA-256(prev_hash (32 bytes) || canonical(row))
 * where prev_hash is the previous row's hash (32 zero bytes for row 1) and
 * canonical(row) is "qai-audit-v1" followed by every field below in this
 * order, each as "<decimal length>:<bytes>," (integers in decimal, a NULL
 * string as length -1 with no bytes: "-1:,"). A separate head row (last seq
 * and hash) is updated in the same transaction, so deleting the newest rows is
 * detected too. See docs/store.md. */
typedef struct {
    int64_t seq;            /* 1, 2, 3 ... (assigned by append) */
    int64_t time_ms;        /* when; 0 on append = now */
    const char *key_id;           /* API key id; may be NULL (no auth) */
    const char *model;            /* may be NULL */
    const char *variant;          /* may be NULL */
    const char *endpoint;         /* e.g. "/v1/chat/completions" */
    int64_t prompt_tokens, completion_tokens;
    int64_t latency_ms;
    int status;             /* HTTP status */
    const char *outcome;          /* "ok", "rate_limited", "error: ...", may be NULL */
    char prev_hash[65];     /* hex; filled by append and tail */
    char hash[65];
} qai_audit_record;

/* Appends n records (one transaction; n may be large: batch for speed) and
 * fills their seq, time_ms (if 0), prev_hash and hash. Safe against other
 * threads and processes appending at the same time: the chain stays linear. */
qai_status qai_audit_append(qai_store *s, qai_audit_record *recs, size_t n);

typedef struct {
    bool ok;
    int64_t rows;           /* rows checked */
    int64_t head_seq;       /* what the head row says */
    char head_hash[65];
    int64_t bad_seq;        /* first bad row (0 if ok, or if the problem is the head) */
    char problem[256];      /* what is wrong, for people */
} qai_audit_verify_result;
/* Walks the whole chain. Returns QAI_OK when the walk ran (read r->ok for
 * the verdict): a row whose hash does not match its contents, whose
 * prev_hash is not its predecessor's hash, a gap in seq (a deleted row), or a
 * head that does not match the last row (deleted newest rows) makes ok false
 * and names the first bad row. Returns an error only if the store failed. */
qai_status qai_audit_verify(qai_store *s, qai_audit_verify_result *r);
/* The stored hash of row seq (QAI_ERR_NOT_FOUND if there is no such row): to
 * check a head recorded elsewhere earlier (an external anchor) still holds. */
qai_status qai_audit_row_hash(qai_store *s, int64_t seq, char hash[65]);
/* The last n records (oldest first), one block freed with qai_free. */
qai_status qai_audit_tail(qai_store *s, size_t n, qai_audit_record **out, size_t *count);

/* A background writer for servers: qai_audit_writer_push copies a record
 * into a queue and returns at once; a thread appends the queue in batches
 * (every flush_ms or when max_batch records wait) through its own store
 * handle, so request threads never wait for the disk. Records still queued
 * when the process dies are lost (at most flush_ms of them); close flushes.
 * url/data_dir as for qai_store_open. */
typedef struct qai_audit_writer qai_audit_writer;
qai_status qai_audit_writer_open(const char *url, const char *data_dir, int flush_ms, int max_batch,
                                 qai_audit_writer **out);
/* Thread-safe. Fails (QAI_ERR_IO) after an append failed: the message says why. */
qai_status qai_audit_writer_push(qai_audit_writer *w, const qai_audit_record *rec);
/* With on=true, the writer also charges each record's prompt + completion
 * tokens (and one request) to its key_id's usage for the UTC day of its
 * time_ms, in the same transaction as the rows (records naming an unknown key
 * are audited but not charged). A server then needs no qai_apikey_charge per
 * request (which costs a transaction, i.e. an fsync, each), at the price of
 * qai_apikey_check_tokens seeing usage up to flush_ms late. Default off. */
void qai_audit_writer_charge_usage(qai_audit_writer *w, bool on);
/* Waits until everything pushed so far is committed. */
qai_status qai_audit_writer_flush(qai_audit_writer *w);
/* Flushes, stops the thread, closes its handle. Returns the last error, if any. */
qai_status qai_audit_writer_close(qai_audit_writer *w);

#ifdef __cplusplus
}
#endif
#endif
