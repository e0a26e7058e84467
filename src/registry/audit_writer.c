/* A background audit writer for servers: request threads push records into a
 * queue (a copy, no I/O); one thread appends them in batches through its own
 * store handle. One transaction (one fsync on SQLite) then covers a whole
 * batch, which is what makes hundreds of audited requests per second cheap.
 *
 * Trade-off, stated in store.h: records not yet committed when the process
 * dies are lost (at most about flush_ms worth). If an append fails (database
 * locked for too long, server gone), the batch stays queued and is retried
 * every flush_ms; push refuses new records only when the queue grows past
 * QUEUE_MAX, so a long outage surfaces as an error instead of unbounded
 * memory. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "registry/store_internal.h"

#define QUEUE_MAX 100000

struct qai_audit_writer {
    qai_store *store;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t wake, done;
    qai_audit_record *q; /* owned copies */
    size_t n, cap;
    uint64_t pushed, committed, failures, lost;
    bool stop, flush_req;
    bool charge; /* also charge tokens to the keys' daily usage (see store.h) */
    int flush_ms, max_batch;
    char error[512]; /* last append failure, "" if the last append worked */
};

static void free_rec(qai_audit_record *r) {
    qai_free((void *)r->key_id);
    qai_free((void *)r->model);
    qai_free((void *)r->variant);
    qai_free((void *)r->endpoint);
    qai_free((void *)r->outcome);
}

static void deadline(struct timespec *ts, int ms) {
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) ts->tv_sec++, ts->tv_nsec -= 1000000000L;
}

typedef struct {
    qai_audit_record *recs;
    size_t n;
    bool charge;
} batch_arg;

/* One transaction: the rows, and (if charging) each key's tokens and requests
 * per UTC day summed over the batch. */
static qai_status batch_tx(qai_store *s, void *varg) {
    batch_arg *a = varg;
    qai_status st = audit_append_in_tx(s, a->recs, a->n);
    if (st != QAI_OK || !a->charge) return st;
    for (size_t i = 0; i < a->n && st == QAI_OK; i++) {
        const qai_audit_record *r = &a->recs[i];
        if (!r->key_id) continue;
        int64_t day = r->time_ms / 86400000LL;
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = a->recs[j].key_id && !strcmp(a->recs[j].key_id, r->key_id) && a->recs[j].time_ms / 86400000LL == day;
        if (seen) continue;
        int64_t tokens = 0, requests = 0, last = 0;
        for (size_t j = i; j < a->n; j++) {
            const qai_audit_record *q = &a->recs[j];
            if (q->key_id && !strcmp(q->key_id, r->key_id) && q->time_ms / 86400000LL == day) {
                tokens += q->prompt_tokens + q->completion_tokens;
                requests++;
                if (q->time_ms > last) last = q->time_ms;
            }
        }
        st = apikey_charge_if_known_in_tx(s, r->key_id, tokens, requests, last);
    }
    return st;
}

static void *writer_main(void *arg) {
    qai_audit_writer *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        if (w->n == 0 && w->stop) break;
        if (w->n < (size_t)w->max_batch && !w->stop && !w->flush_req) {
            struct timespec ts;
            deadline(&ts, w->flush_ms);
            /* wait for a full batch, the deadline, a flush request or stop */
            while (w->n < (size_t)w->max_batch && !w->stop && !w->flush_req &&
                   pthread_cond_timedwait(&w->wake, &w->mu, &ts) != ETIMEDOUT) {
            }
        }
        w->flush_req = false;
        if (w->n == 0) {
            pthread_cond_broadcast(&w->done);
            continue;
        }
        /* take the whole queue: pushers start a new one meanwhile */
        qai_audit_record *batch = w->q;
        size_t bn = w->n, done = 0;
        w->q = NULL;
        w->n = w->cap = 0;
        bool charge = w->charge;
        pthread_mutex_unlock(&w->mu);
        qai_status st = QAI_OK;
        char msg[512] = "";
        while (done < bn && st == QAI_OK) {
            size_t take = bn - done < (size_t)w->max_batch ? bn - done : (size_t)w->max_batch;
            batch_arg ba = {batch + done, take, charge};
            st = qai_store_transact(w->store, batch_tx, &ba);
            if (st == QAI_OK) done += take;
            else snprintf(msg, sizeof msg, "%s", qai_last_error());
        }
        for (size_t i = 0; i < done; i++) free_rec(&batch[i]);
        pthread_mutex_lock(&w->mu);
        w->committed += done;
        if (st == QAI_OK) {
            qai_free(batch);
            w->error[0] = 0;
        } else {
            /* put what failed back in front of what was pushed meanwhile */
            size_t left = bn - done, total = left + w->n;
            memmove(batch, batch + done, left * sizeof *batch);
            qai_audit_record *q = qai_realloc(batch, total * sizeof *q + 1);
            if (q) {
                if (w->n) memcpy(q + left, w->q, w->n * sizeof *q);
                qai_free(w->q);
                w->q = q;
                w->n = w->cap = total;
            } else { /* cannot even requeue: these records are lost, say so */
                for (size_t i = 0; i < left; i++) free_rec(&batch[i]);
                qai_free(batch);
                w->lost += left;
            }
            w->failures++;
            snprintf(w->error, sizeof w->error, "audit writer: %s", msg);
            pthread_cond_broadcast(&w->done);
            if (w->stop) break; /* closing: give up on what is left (close reports it) */
            struct timespec ts;
            deadline(&ts, w->flush_ms);
            pthread_cond_timedwait(&w->wake, &w->mu, &ts);
            continue;
        }
        pthread_cond_broadcast(&w->done);
    }
    pthread_cond_broadcast(&w->done);
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

qai_status qai_audit_writer_open(const char *url, const char *data_dir, int flush_ms, int max_batch,
                                 qai_audit_writer **out) {
    *out = NULL;
    if (flush_ms <= 0) flush_ms = 50;
    if (max_batch <= 0) max_batch = 512;
    qai_audit_writer *w = qai_calloc(1, sizeof *w);
    if (!w) return QAI_ERR_NOMEM;
    qai_status st = qai_store_open(url, data_dir, &w->store);
    if (st != QAI_OK) {
        qai_free(w);
        return qai_error_wrap(st, "audit writer");
    }
    w->flush_ms = flush_ms;
    w->max_batch = max_batch;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->wake, NULL);
    pthread_cond_init(&w->done, NULL);
    if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
        qai_store_close(w->store);
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->wake);
        pthread_cond_destroy(&w->done);
        qai_free(w);
        return qai_error(QAI_ERR_INTERNAL, "audit writer: cannot start its thread");
    }
    *out = w;
    return QAI_OK;
}

static char *dup_or_null(const char *s, bool *fail) {
    if (!s) return NULL;
    char *d = qai_strdup(s);
    if (!d) *fail = true;
    return d;
}

qai_status qai_audit_writer_push(qai_audit_writer *w, const qai_audit_record *rec) {
    qai_audit_record r = *rec;
    bool fail = false;
    r.key_id = dup_or_null(rec->key_id, &fail);
    r.model = dup_or_null(rec->model, &fail);
    r.variant = dup_or_null(rec->variant, &fail);
    r.endpoint = dup_or_null(rec->endpoint, &fail);
    r.outcome = dup_or_null(rec->outcome, &fail);
    if (!r.time_ms) r.time_ms = qai_store_now_ms(); /* when it happened, not when the batch was written */
    if (fail) {
        free_rec(&r);
        return QAI_ERR_NOMEM;
    }
    pthread_mutex_lock(&w->mu);
    qai_status st = QAI_OK;
    if (w->stop) st = qai_error(QAI_ERR_ARG, "audit writer: push after close");
    else if (w->n >= QUEUE_MAX)
        st = qai_error(QAI_ERR_IO, "audit writer: %zu records waiting, appends are failing: %s", w->n,
                       w->error[0] ? w->error : "?");
    else if (w->n == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 256;
        qai_audit_record *q = qai_realloc(w->q, cap * sizeof *q);
        if (!q) st = QAI_ERR_NOMEM;
        else w->q = q, w->cap = cap;
    }
    if (st == QAI_OK) {
        w->q[w->n++] = r;
        w->pushed++;
        if (w->n >= (size_t)w->max_batch) pthread_cond_signal(&w->wake);
    }
    pthread_mutex_unlock(&w->mu);
    if (st != QAI_OK) free_rec(&r);
    return st;
}

void qai_audit_writer_charge_usage(qai_audit_writer *w, bool on) {
    pthread_mutex_lock(&w->mu);
    w->charge = on;
    pthread_mutex_unlock(&w->mu);
}

qai_status qai_audit_writer_flush(qai_audit_writer *w) {
    pthread_mutex_lock(&w->mu);
    uint64_t target = w->pushed, failures = w->failures;
    w->flush_req = true;
    pthread_cond_signal(&w->wake);
    while (w->committed < target && w->failures == failures) pthread_cond_wait(&w->done, &w->mu);
    qai_status st = w->committed >= target ? QAI_OK : qai_error(QAI_ERR_IO, "%s", w->error);
    pthread_mutex_unlock(&w->mu);
    return st;
}

qai_status qai_audit_writer_close(qai_audit_writer *w) {
    if (!w) return QAI_OK;
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    qai_status st = QAI_OK;
    if (w->n) st = qai_error(QAI_ERR_IO, "audit writer: %zu records were not written: %s", w->n, w->error);
    for (size_t i = 0; i < w->n; i++) free_rec(&w->q[i]);
    qai_free(w->q);
    qai_store_close(w->store);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->wake);
    pthread_cond_destroy(&w->done);
    qai_free(w);
    return st;
}
