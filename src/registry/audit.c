/* The audit trail: a hash chain of served requests in the store.
 *
 *   hash(row) = SHA-256(prev_hash (32 raw bytes) || canonical(row))
 *   canonical(row) = "qai-audit-v1" then, in this order, seq, time_ms, key_id,
 *     model, variant, endpoint, prompt_tokens, completion_tokens, latency_ms,
 *     status, outcome; each as "<decimal length>:<bytes>," (integers in
 *     decimal ASCII; a NULL string as "-1:,").
 *   Row 1's prev_hash is 32 zero bytes. Hashes are stored as lowercase hex.
 *
 * Length prefixes make the serialization injective (no two different rows
 * serialize alike), and seq inside the hashed bytes ties each row to its
 * place. The audit_head row (last seq and hash) is updated in the same
 * transaction as the rows, so deleting the newest rows shows up as a head
 * that points past the end of the chain.
 *
 * Appends are serialized by the store's write lock (SQLite) or an advisory
 * lock (PostgreSQL): concurrent appenders, threads or processes or nodes,
 * always extend one linear chain.
 *
 * What this does not protect against: someone who can write the database and
 * recomputes every hash from the edit onward and the head as well. Against
 * that, keep the head (printed by `qai audit verify`) somewhere else, e.g. in a
 * signed report, and check it later with qai_audit_row_hash. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "registry/store_internal.h"

#define FD(type, t, m) {t, offsetof(type, m), 0}
static const fdesc rec_f[] = {
    FD(qai_audit_record, F_I64, seq),           FD(qai_audit_record, F_I64, time_ms),
    FD(qai_audit_record, F_STR, key_id),        FD(qai_audit_record, F_STR, model),
    FD(qai_audit_record, F_STR, variant),       FD(qai_audit_record, F_STR, endpoint),
    FD(qai_audit_record, F_I64, prompt_tokens), FD(qai_audit_record, F_I64, completion_tokens),
    FD(qai_audit_record, F_I64, latency_ms),    FD(qai_audit_record, F_INT, status),
    FD(qai_audit_record, F_STR, outcome),       FD(qai_audit_record, F_HASH, prev_hash),
    FD(qai_audit_record, F_HASH, hash)};
#define NRECF ((int)(sizeof rec_f / sizeof rec_f[0]))
#define REC_COLS                                                                                                       \
    "SELECT seq, time_ms, key_id, model, variant, endpoint, prompt_tokens, completion_tokens, latency_ms, status, "     \
    "outcome, prev_hash, hash FROM audit_log "

static const char zero_hash[65] = "0000000000000000000000000000000000000000000000000000000000000000";

static void put_bytes(qai_sha256_ctx *c, const char *s) {
    char len[24];
    if (!s) {
        qai_sha256_update(c, "-1:,", 4);
        return;
    }
    size_t n = strlen(s);
    int k = snprintf(len, sizeof len, "%zu:", n);
    qai_sha256_update(c, len, (size_t)k);
    qai_sha256_update(c, s, n);
    qai_sha256_update(c, ",", 1);
}

static void put_int(qai_sha256_ctx *c, int64_t v) {
    char num[24];
    snprintf(num, sizeof num, "%" PRId64, v);
    put_bytes(c, num);
}

static int unhex(const char *hex, uint8_t out[32]) {
    for (int i = 0; i < 32; i++) {
        int v = 0;
        for (int k = 0; k < 2; k++) {
            char ch = hex[2 * i + k];
            int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
            if (d < 0) return -1;
            v = v * 16 + d;
        }
        out[i] = (uint8_t)v;
    }
    return hex[64] ? -1 : 0;
}

/* hash of r chained to prev_hex (64 hex digits); false if prev_hex is not hex. */
static bool row_hash(const qai_audit_record *r, const char *prev_hex, char out[65]) {
    uint8_t prev[32], h[32];
    if (strlen(prev_hex) != 64 || unhex(prev_hex, prev)) return false;
    qai_sha256_ctx c;
    qai_sha256_init(&c);
    qai_sha256_update(&c, prev, 32);
    qai_sha256_update(&c, "qai-audit-v1", 12);
    put_int(&c, r->seq);
    put_int(&c, r->time_ms);
    put_bytes(&c, r->key_id);
    put_bytes(&c, r->model);
    put_bytes(&c, r->variant);
    put_bytes(&c, r->endpoint);
    put_int(&c, r->prompt_tokens);
    put_int(&c, r->completion_tokens);
    put_int(&c, r->latency_ms);
    put_int(&c, r->status);
    put_bytes(&c, r->outcome);
    qai_sha256_final(&c, h);
    qai_hex(h, 32, out);
    return true;
}

typedef struct {
    qai_audit_record *recs;
    size_t n;
} append_arg;

static qai_status read_head(qai_store *s, int64_t *seq, char hash[65]) {
    qrows rows;
    qai_status st = store_query(s, "SELECT seq, hash FROM audit_head WHERE id = 1", NULL, 0, &rows, NULL);
    if (st != QAI_OK) return qai_error_wrap(st, "audit head");
    if (rows.nrows != 1 || qrows_at(&rows, 0, 1)->t != QV_TEXT || qrows_at(&rows, 0, 1)->n != 64) {
        qrows_free(&rows);
        return qai_error(QAI_ERR_FORMAT, "audit head: the row is missing or malformed (table audit_head)");
    }
    *seq = qrows_at(&rows, 0, 0)->i;
    memcpy(hash, qrows_at(&rows, 0, 1)->p, 64);
    hash[64] = 0;
    qrows_free(&rows);
    return QAI_OK;
}

static qai_status append_tx(qai_store *s, void *varg) {
    append_arg *a = varg;
    qai_status st = store_lock(s, "qai.audit");
    if (st != QAI_OK) return st;
    int64_t seq;
    char prev[65];
    if ((st = read_head(s, &seq, prev)) != QAI_OK) return st;
    int64_t now = qai_store_now_ms();
    for (size_t i = 0; i < a->n; i++) {
        qai_audit_record *r = &a->recs[i];
        r->seq = ++seq;
        if (!r->time_ms) r->time_ms = now;
        memcpy(r->prev_hash, prev, 65);
        if (!row_hash(r, prev, r->hash))
            return qai_error(QAI_ERR_FORMAT, "audit head: hash '%s' is not 64 hex digits", prev);
        qv p[] = {qv_int(r->seq),           qv_int(r->time_ms),       qv_text(r->key_id),
                  qv_text(r->model),        qv_text(r->variant),      qv_text(r->endpoint),
                  qv_int(r->prompt_tokens), qv_int(r->completion_tokens), qv_int(r->latency_ms),
                  qv_int(r->status),        qv_text(r->outcome),      qv_text(r->prev_hash),
                  qv_text(r->hash)};
        st = store_query(s,
                         "INSERT INTO audit_log (seq, time_ms, key_id, model, variant, endpoint, prompt_tokens, "
                         "completion_tokens, latency_ms, status, outcome, prev_hash, hash) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         p, 13, NULL, NULL);
        if (st != QAI_OK) return store_fail(s, st, "audit row %lld", (long long)r->seq);
        memcpy(prev, r->hash, 65);
    }
    st = store_query(s, "UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1", (qv[]){qv_int(seq), qv_text(prev)}, 2,
                     NULL, NULL);
    if (st != QAI_OK) return store_fail(s, st, "audit head");
    return QAI_OK;
}

static qai_status check_records(const qai_audit_record *recs, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (recs[i].prompt_tokens < 0 || recs[i].completion_tokens < 0 || recs[i].latency_ms < 0)
            return qai_error(QAI_ERR_ARG, "audit record %zu: negative token count or latency", i);
    return QAI_OK;
}

qai_status qai_audit_append(qai_store *s, qai_audit_record *recs, size_t n) {
    if (n == 0) return QAI_OK;
    qai_status st = check_records(recs, n);
    if (st != QAI_OK) return st;
    append_arg a = {recs, n};
    return qai_store_transact(s, append_tx, &a);
}

qai_status audit_append_in_tx(qai_store *s, qai_audit_record *recs, size_t n) {
    qai_status st = check_records(recs, n);
    if (st != QAI_OK) return st;
    append_arg a = {recs, n};
    return n ? append_tx(s, &a) : QAI_OK;
}

/* ---- verify ---------------------------------------------------------------------------- */

#define PAGE 2000 /* rows per query while walking; the LIMIT below says the same */

static void bad(qai_audit_verify_result *r, int64_t seq, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void bad(qai_audit_verify_result *r, int64_t seq, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->problem, sizeof r->problem, fmt, ap);
    va_end(ap);
    r->ok = false;
    r->bad_seq = seq;
}

/* Checks rows after *last (hash *last_hash) up to the end of the table.
 * *progress is set when at least one row was read. */
static qai_status walk(qai_store *s, qai_audit_verify_result *r, int64_t *last, char last_hash[65], bool *progress) {
    *progress = false;
    for (;;) {
        qai_audit_record *rows = NULL;
        size_t n = 0;
        qai_status st = store_fetch(s, REC_COLS "WHERE seq > ? ORDER BY seq LIMIT 2000", (qv[]){qv_int(*last)}, 1,
                                    rec_f, NRECF, sizeof *rows, (void **)&rows, &n);
        if (st != QAI_OK) return qai_error_wrap(st, "audit verify");
        for (size_t i = 0; i < n && r->ok; i++) {
            const qai_audit_record *row = &rows[i];
            char h[65];
            if (row->seq != *last + 1)
                bad(r, row->seq,
                    *last + 1 == row->seq - 1
                        ? "row %lld: its predecessor, row %lld, is missing (deleted)"
                        : "row %lld: its predecessors from row %lld on are missing (deleted)",
                    (long long)row->seq, (long long)(*last + 1));
            else if (strcmp(row->prev_hash, last_hash))
                bad(r, row->seq,
                    "row %lld: prev_hash does not match the hash of row %lld (a row was replaced, reordered or rewritten)",
                    (long long)row->seq, (long long)*last);
            else if (!row_hash(row, row->prev_hash, h) || strcmp(h, row->hash))
                bad(r, row->seq, "row %lld: its contents do not match its hash (the row was edited)", (long long)row->seq);
            else {
                *last = row->seq;
                memcpy(last_hash, row->hash, 65);
                r->rows++;
                *progress = true;
            }
        }
        qai_free(rows);
        if (!r->ok || n < PAGE) return QAI_OK;
    }
}

qai_status qai_audit_verify(qai_store *s, qai_audit_verify_result *r) {
    memset(r, 0, sizeof *r);
    r->ok = true;
    int64_t last = 0;
    char last_hash[65];
    memcpy(last_hash, zero_hash, 65);
    store_enter(s);
    qai_status st = QAI_OK;
    /* Appends may run while we walk. Rows and head are committed together and
     * the head only moves forward, so, per round: the head read before the walk
     * must not be past the walk's end (else rows were deleted) and must match
     * the row it names; the head read after the walk must cover every row the
     * walk saw (else rows were added behind qai's back). When the two heads
     * differ, appends happened: walk the new rows in another round. */
    for (int round = 0;; round++) {
        int64_t hs, hs2;
        char hh[65], hh2[65];
        if ((st = read_head(s, &hs, hh)) != QAI_OK) {
            if (st == QAI_ERR_FORMAT) { /* tampering, not a failure of the store */
                bad(r, 0, "%s", qai_last_error());
                st = QAI_OK;
            }
            break;
        }
        r->head_seq = hs;
        memcpy(r->head_hash, hh, 65);
        bool progress;
        st = walk(s, r, &last, last_hash, &progress);
        if (st != QAI_OK || !r->ok) break;
        if (hs > last) {
            bad(r, last + 1, "the chain ends at row %lld but the head says %lld: rows %lld to %lld were deleted",
                (long long)last, (long long)hs, (long long)last + 1, (long long)hs);
            break;
        }
        char at[65];
        if (hs == last) memcpy(at, last_hash, 65);
        else if (hs == 0) memcpy(at, zero_hash, 65);
        else if ((st = qai_audit_row_hash(s, hs, at)) != QAI_OK) break;
        if (strcmp(hh, at)) {
            bad(r, 0, "the head (row %lld, hash %.16s...) does not match that row's hash %.16s...", (long long)hs, hh, at);
            break;
        }
        if (hs == last) break;
        if ((st = read_head(s, &hs2, hh2)) != QAI_OK) {
            if (st == QAI_ERR_FORMAT) {
                bad(r, 0, "%s", qai_last_error());
                st = QAI_OK;
            }
            break;
        }
        if (hs2 < last) {
            bad(r, hs2 + 1, "rows %lld to %lld lie past the head (row %lld): they were added outside qai",
                (long long)hs2 + 1, (long long)last, (long long)hs2);
            break;
        }
        if (round >= 100) break; /* appends never pause: what was walked is verified */
    }
    store_leave(s);
    return st;
}

qai_status qai_audit_tail(qai_store *s, size_t n, qai_audit_record **out, size_t *count) {
    qai_audit_record *rows = NULL;
    size_t k = 0;
    store_enter(s);
    qai_status st = store_fetch(s, REC_COLS "ORDER BY seq DESC LIMIT ?", (qv[]){qv_int((int64_t)n)}, 1, rec_f, NRECF,
                                sizeof *rows, (void **)&rows, &k);
    store_leave(s);
    if (st != QAI_OK) return qai_error_wrap(st, "audit tail");
    for (size_t i = 0; i < k / 2; i++) { /* oldest first; strings live in the block, so swapping structs is fine */
        qai_audit_record t = rows[i];
        rows[i] = rows[k - 1 - i];
        rows[k - 1 - i] = t;
    }
    *out = rows;
    *count = k;
    return QAI_OK;
}

qai_status qai_audit_row_hash(qai_store *s, int64_t seq, char hash[65]) {
    qrows rows;
    store_enter(s);
    qai_status st = store_query(s, "SELECT hash FROM audit_log WHERE seq = ?", (qv[]){qv_int(seq)}, 1, &rows, NULL);
    store_leave(s);
    if (st != QAI_OK) return qai_error_wrap(st, "audit row %lld", (long long)seq);
    if (rows.nrows != 1 || qrows_at(&rows, 0, 0)->t != QV_TEXT || qrows_at(&rows, 0, 0)->n != 64) {
        qrows_free(&rows);
        return qai_error(QAI_ERR_NOT_FOUND, "audit row %lld not found", (long long)seq);
    }
    memcpy(hash, qrows_at(&rows, 0, 0)->p, 64);
    hash[64] = 0;
    qrows_free(&rows);
    return QAI_OK;
}
