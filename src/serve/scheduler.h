/* The continuous-batching scheduler: one engine thread per model owns a
 * qai_context with `parallel` sequences (slots). Each iteration builds one
 * batch holding the next token of every generating slot plus prompt chunks of
 * newly admitted jobs (at most `batch` tokens in all, generating slots first
 * so a long prompt never stalls running streams), runs qai_decode once, then
 * samples every slot whose logits came out and publishes text to its job.
 *
 * A job is one generated sequence (one "choice"); the n choices of one HTTP
 * request form a group that shares a mutex and a condition variable, which the
 * HTTP thread waits on. The engine never blocks on a client: it appends to the
 * job's buffer under the group mutex and signals.
 *
 * Prefix cache: every slot remembers the tokens in its part of the KV cache
 * after its job ends. A new job goes to the idle slot whose cache shares the
 * longest prefix with its prompt; if another slot (busy or idle) shares a
 * longer one, that prefix is copied over with qai_kv_copy. Only the rest of the
 * prompt is decoded.
 *
 * The n choices of one request share their prefill: a choice admitted while a
 * sibling is still decoding the same prompt waits (takes no batch rows), and
 * when the sibling's last prompt token comes out of the batch it gets a copy of
 * the sibling's KV state and samples its first token from the same logits with
 * its own sampler. A choice admitted later (fewer slots than choices) uses the
 * prefix cache like any request. If the sibling ends before its prompt is done
 * (cancelled, failed), the waiting choices decode the prompt themselves.
 *
 * What it does not do: preempt running jobs, swap KV to disk, or share KV
 * pages between slots (a copy is made).
 */
#ifndef QAI_SERVE_SCHEDULER_H
#define QAI_SERVE_SCHEDULER_H

#include <pthread.h>
#include <stdatomic.h>

#include "serve_internal.h"

typedef enum {
    JOB_RUNNING = 0,
    JOB_STOP,      /* EOG token or a stop string */
    JOB_LENGTH,    /* max_tokens or the context is full */
    JOB_TIMEOUT,   /* the deadline passed */
    JOB_CANCELLED, /* the client went away */
    JOB_SHUTDOWN,  /* the server stopped before it finished */
    JOB_ERROR,     /* the engine failed (message in job->error) */
} job_finish;

/* Grammar hook: called before each sampling step of a job with the tokens
 * generated so far; sets allowed[v] = 0 for every token the grammar forbids
 * (allowed starts all ones, V entries). Runs on the engine thread; must be
 * fast and must not block. */
typedef void (*qai_token_mask_fn)(void *user, const int32_t *generated, int n_generated, uint8_t *allowed, int n_vocab);
/* Completion hook: called after each generated token (engine thread) with the
 * tokens and the text generated so far; true ends the job with JOB_STOP at
 * once, as if an end-of-generation token had been sampled (a grammar whose
 * document is closed needs no further forward pass to learn that). */
typedef bool (*qai_token_done_fn)(void *user, const int32_t *generated, int n_generated, const char *text, size_t len);

typedef struct {
    int32_t token;
    float logprob;
    int n_top;
    int32_t top_id[QAI_SERVE_MAX_TOP_LOGPROBS];
    float top_lp[QAI_SERVE_MAX_TOP_LOGPROBS];
    size_t text_start; /* byte offset of the token's text in the generated text */
} job_logprob;

typedef struct job_group job_group;

typedef struct {
    /* ---- input: set before submit, read-only afterwards ---- */
    const int32_t *prompt; /* borrowed from the group */
    int n_prompt;
    int max_tokens;        /* > 0 */
    qai_sampler_params sp;
    const char *const *stop;  /* borrowed */
    const size_t *stop_len;
    int n_stop;
    bool logprobs;
    int top_logprobs;
    uint64_t deadline_ns;  /* 0: none */
    qai_token_mask_fn mask_fn;
    qai_token_done_fn done_fn; /* may be NULL; gets mask_user */
    void *mask_user;
    job_group *group;
    int index;             /* choice index */

    /* ---- output: under group->mu ---- */
    sbuf text;             /* published text (stop strings never appear in it) */
    job_logprob *lp;       /* one per token whose text is published */
    int n_lp, cap_lp;
    int n_gen;             /* tokens generated */
    int n_cached;          /* prompt tokens reused from the prefix cache */
    job_finish finish;     /* JOB_RUNNING until done */
    bool released;         /* the engine holds no reference any more */
    char error[256];
    uint64_t t_first_ns;   /* first token published (0: none yet) */

    /* ---- engine private ---- */
    atomic_bool cancel;    /* set by the HTTP side */
    sbuf raw;              /* all generated text, including what is held back */
    size_t published;      /* bytes of raw published */
    job_logprob *pend;     /* logprobs of tokens not published yet */
    int n_pend, cap_pend;
    int32_t *gen;          /* generated tokens (for the mask hook) */
    int cap_gen;
    qai_sampler *smp;
} qai_job;

struct job_group {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs;              /* the HTTP side + each job the engine still holds */
    int n_jobs;
    qai_job *jobs;
    int32_t *prompt;       /* owned */
    int n_prompt;
    uint64_t t_submit_ns;
    /* what the jobs' hooks use (e.g. grammar states), freed with the group,
     * i.e. after the engine released every job: set before submit */
    void *user;
    void (*user_free)(void *user);
};

/* A group of n jobs over one prompt (copied); refs = 1 (the caller). */
job_group *job_group_new(int n, const int32_t *prompt, int n_prompt);
/* Drops the caller's reference; frees when the engine released every job. */
void job_group_unref(job_group *g);

typedef struct qai_engine qai_engine;

typedef struct {
    int parallel, n_ctx, n_threads, batch, max_queue;
    qai_type kv_type; /* QAI_TYPE_F16 (the server's default: set it, 0 is QAI_TYPE_F32) or QAI_TYPE_F32 */
} qai_engine_params;

/* Gauges read by /metrics (a snapshot; not exact under concurrent change). */
typedef struct {
    int queue_depth, slots_busy, slots;
    double kv_used_ratio;
    uint64_t prefix_hits, prefix_tokens, decode_calls, batch_rows;
    uint64_t gen_tokens, prompt_tokens_decoded;
    double last_batch_rows;
} qai_engine_stats;

/* Opens a context on m (not owned) and starts the engine thread. */
qai_status qai_engine_new(qai_model *m, const qai_engine_params *p, qai_engine **out);
/* Queues every job of g (the engine takes one group reference per job).
 * QAI_ERR_RANGE when the jobs would not all fit into the idle slots plus
 * max_queue waiting places (nothing queued),
 * QAI_ERR_UNSUPPORTED when the engine is shutting down. */
qai_status qai_engine_submit(qai_engine *e, job_group *g);
/* Wakes the engine so it sees a job's cancel flag soon. */
void qai_engine_poke(qai_engine *e);
/* While paused, queued jobs stay in the queue (running ones continue);
 * cancelled and expired ones are still dropped. */
void qai_engine_pause(qai_engine *e, bool paused);
/* Refuses new submissions; running and queued jobs continue. */
void qai_engine_drain(qai_engine *e);
/* Aborts every job (finish JOB_SHUTDOWN) and joins the thread; afterwards
 * submit fails and poke/stats still work. Idempotent. */
void qai_engine_stop(qai_engine *e);
/* Stops (if not yet) and frees. */
void qai_engine_free(qai_engine *e);
void qai_engine_stats_get(qai_engine *e, qai_engine_stats *st);
int qai_engine_n_ctx(const qai_engine *e);
/* Jobs queued or running. */
int qai_engine_active(qai_engine *e);

#endif
