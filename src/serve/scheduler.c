/* The continuous-batching engine (contract in scheduler.h).
 *
 * Locking: e->mu guards the queue, the flags and the statistics; a job's
 * output fields are guarded by its group's mutex. The engine thread alone
 * touches slots, the context and the jobs' private fields, so decoding runs
 * with no lock held. Lock order: e->mu before group->mu (the engine never
 * holds both; the HTTP side never takes e->mu while holding a group mutex). */
#include "scheduler.h"

#include <math.h>
#include <string.h>
#include <time.h>

typedef struct {
    qai_job *job;     /* NULL: idle */
    int32_t *cache;   /* (n_ctx) tokens whose keys/values are in this slot's sequence */
    int n_cache;
    bool generating;  /* the prompt is in the cache; `next` waits to be decoded */
    int32_t next;
    uint64_t last_used, ticket;
    int row;          /* batch row whose logits this slot samples from, or -1 */
    int follow;       /* slot of a sibling choice (same group, same prompt) whose prefill this one waits to
                       * copy instead of decoding the prompt again, or -1 */
} slot;

struct qai_engine {
    qai_model *m;
    qai_context *ctx;
    const qai_tokenizer *tok;
    int V, n_ctx;
    int32_t bos;
    qai_engine_params p;
    slot *slots;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    qai_job **queue; /* ring of q_cap */
    int q_head, q_n, q_cap;
    bool draining, stopping, thread_started, paused;
    pthread_t thread;
    uint64_t tick;
    int32_t *b_tok, *b_pos, *b_seq;
    int8_t *b_want;
    float *scratch; /* (V) masked logits */
    uint8_t *allowed;
    float *lsm;     /* (V) log-softmax */
    qai_engine_stats st;
};

/* ---- groups ---- */

job_group *job_group_new(int n, const int32_t *prompt, int n_prompt) {
    job_group *g = qai_calloc(1, sizeof *g);
    if (!g) return NULL;
    g->jobs = qai_calloc((size_t)n, sizeof(qai_job));
    g->prompt = qai_malloc((size_t)(n_prompt > 0 ? n_prompt : 1) * sizeof(int32_t));
    if (!g->jobs || !g->prompt) {
        qai_free(g->jobs);
        qai_free(g->prompt);
        qai_free(g);
        return NULL;
    }
    if (n_prompt > 0) memcpy(g->prompt, prompt, (size_t)n_prompt * sizeof(int32_t));
    g->n_prompt = n_prompt;
    g->n_jobs = n;
    g->refs = 1;
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    for (int i = 0; i < n; i++) {
        qai_job *j = &g->jobs[i];
        j->group = g;
        j->index = i;
        j->prompt = g->prompt;
        j->n_prompt = n_prompt;
        j->released = true; /* until submitted */
        atomic_init(&j->cancel, false);
    }
    return g;
}

static void group_free(job_group *g) {
    for (int i = 0; i < g->n_jobs; i++) {
        qai_job *j = &g->jobs[i];
        sb_free(&j->text);
        sb_free(&j->raw);
        qai_free(j->lp);
        qai_free(j->pend);
        qai_free(j->gen);
        qai_sampler_free(j->smp);
    }
    if (g->user_free) g->user_free(g->user);
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
    qai_free(g->jobs);
    qai_free(g->prompt);
    qai_free(g);
}

void job_group_unref(job_group *g) {
    if (!g) return;
    pthread_mutex_lock(&g->mu);
    int left = --g->refs;
    pthread_mutex_unlock(&g->mu);
    if (left == 0) group_free(g);
}

/* The engine is done with j: record how it ended, drop the engine's reference. */
static void job_release(qai_job *j, job_finish how, const char *err) {
    qai_sampler_free(j->smp);
    j->smp = NULL;
    job_group *g = j->group;
    pthread_mutex_lock(&g->mu);
    if (j->finish == JOB_RUNNING) j->finish = how;
    if (err) snprintf(j->error, sizeof j->error, "%s", err);
    j->released = true;
    int left = --g->refs;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    if (left == 0) group_free(g);
}

/* ---- engine lifecycle ---- */

static void *engine_main(void *arg);

qai_status qai_engine_new(qai_model *m, const qai_engine_params *p, qai_engine **out) {
    *out = NULL;
    if (p->parallel < 1 || p->parallel > 256) return qai_error(QAI_ERR_ARG, "parallel must be in [1, 256] (got %d)", p->parallel);
    if (p->batch < p->parallel)
        return qai_error(QAI_ERR_ARG, "batch (%d) must be at least parallel (%d): every slot needs a row", p->batch,
                         p->parallel);
    if (p->max_queue < 0) return qai_error(QAI_ERR_ARG, "max_queue must not be negative");
    qai_engine *e = qai_calloc(1, sizeof *e);
    if (!e) return QAI_ERR_NOMEM;
    e->m = m;
    e->p = *p;
    qai_context_params cp = qai_context_default_params();
    cp.n_ctx = p->n_ctx;
    cp.n_seq = p->parallel;
    cp.n_batch = p->batch;
    cp.n_threads = p->n_threads;
    cp.kv_type = p->kv_type;
    qai_status st = qai_context_new(m, &cp, &e->ctx);
    if (st) {
        qai_free(e);
        return st;
    }
    e->n_ctx = qai_context_n_ctx(e->ctx);
    e->tok = qai_model_tokenizer(m);
    e->V = qai_model_get_info(m)->n_vocab;
    e->bos = qai_tokenizer_bos(e->tok);
    e->slots = qai_calloc((size_t)p->parallel, sizeof(slot));
    e->q_cap = p->max_queue + p->parallel; /* waiting places plus jobs on their way to free slots */
    e->queue = qai_calloc((size_t)e->q_cap, sizeof(qai_job *));
    e->b_tok = qai_malloc((size_t)p->batch * sizeof(int32_t));
    e->b_pos = qai_malloc((size_t)p->batch * sizeof(int32_t));
    e->b_seq = qai_malloc((size_t)p->batch * sizeof(int32_t));
    e->b_want = qai_malloc((size_t)p->batch);
    e->scratch = qai_malloc((size_t)e->V * sizeof(float));
    e->allowed = qai_malloc((size_t)e->V);
    e->lsm = qai_malloc((size_t)e->V * sizeof(float));
    bool ok = e->slots && e->queue && e->b_tok && e->b_pos && e->b_seq && e->b_want && e->scratch && e->allowed && e->lsm;
    for (int i = 0; ok && i < p->parallel; i++) {
        e->slots[i].cache = qai_malloc((size_t)e->n_ctx * sizeof(int32_t));
        e->slots[i].row = -1;
        e->slots[i].follow = -1;
        ok = e->slots[i].cache != NULL;
    }
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    e->st.slots = p->parallel;
    if (!ok) {
        qai_engine_free(e);
        return qai_error(QAI_ERR_NOMEM, "out of memory for the engine's buffers");
    }
    if (pthread_create(&e->thread, NULL, engine_main, e) != 0) {
        qai_engine_free(e);
        return qai_error(QAI_ERR_INTERNAL, "cannot start the engine thread");
    }
    e->thread_started = true;
    *out = e;
    return QAI_OK;
}

void qai_engine_stop(qai_engine *e) {
    if (!e) return;
    pthread_mutex_lock(&e->mu);
    e->stopping = true;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    if (e->thread_started) pthread_join(e->thread, NULL);
    e->thread_started = false;
    /* the thread released its slots' jobs on the way out; the queue is ours now */
    pthread_mutex_lock(&e->mu);
    while (e->q_n > 0) {
        qai_job *j = e->queue[e->q_head];
        e->q_head = (e->q_head + 1) % e->q_cap;
        e->q_n--;
        job_release(j, JOB_SHUTDOWN, "the server shut down before the request ran");
    }
    e->st.queue_depth = 0;
    pthread_mutex_unlock(&e->mu);
}

void qai_engine_free(qai_engine *e) {
    if (!e) return;
    qai_engine_stop(e);
    for (int i = 0; e->slots && i < e->p.parallel; i++) {
        if (e->slots[i].job) job_release(e->slots[i].job, JOB_SHUTDOWN, "the server shut down");
        qai_free(e->slots[i].cache);
    }
    qai_free(e->slots);
    qai_free(e->queue);
    qai_free(e->b_tok);
    qai_free(e->b_pos);
    qai_free(e->b_seq);
    qai_free(e->b_want);
    qai_free(e->scratch);
    qai_free(e->allowed);
    qai_free(e->lsm);
    qai_context_free(e->ctx);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    qai_free(e);
}

qai_status qai_engine_submit(qai_engine *e, job_group *g) {
    pthread_mutex_lock(&e->mu);
    if (e->draining || e->stopping) {
        pthread_mutex_unlock(&e->mu);
        return qai_error(QAI_ERR_UNSUPPORTED, "the server is shutting down");
    }
    if (e->q_n + g->n_jobs > e->p.max_queue + (e->p.parallel - e->st.slots_busy)) {
        int q = e->q_n;
        pthread_mutex_unlock(&e->mu);
        return qai_error(QAI_ERR_RANGE, "the queue is full (%d waiting, at most %d)", q, e->p.max_queue);
    }
    pthread_mutex_lock(&g->mu);
    g->refs += g->n_jobs;
    for (int i = 0; i < g->n_jobs; i++) g->jobs[i].released = false;
    pthread_mutex_unlock(&g->mu);
    for (int i = 0; i < g->n_jobs; i++) {
        e->queue[(e->q_head + e->q_n) % e->q_cap] = &g->jobs[i];
        e->q_n++;
    }
    e->st.queue_depth = e->q_n;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    return QAI_OK;
}

void qai_engine_poke(qai_engine *e) {
    pthread_mutex_lock(&e->mu);
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

void qai_engine_pause(qai_engine *e, bool paused) {
    pthread_mutex_lock(&e->mu);
    e->paused = paused;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

void qai_engine_drain(qai_engine *e) {
    pthread_mutex_lock(&e->mu);
    e->draining = true;
    pthread_mutex_unlock(&e->mu);
}

void qai_engine_stats_get(qai_engine *e, qai_engine_stats *st) {
    pthread_mutex_lock(&e->mu);
    *st = e->st;
    pthread_mutex_unlock(&e->mu);
}

int qai_engine_n_ctx(const qai_engine *e) { return e->n_ctx; }

int qai_engine_active(qai_engine *e) {
    pthread_mutex_lock(&e->mu);
    int n = e->q_n + e->st.slots_busy;
    pthread_mutex_unlock(&e->mu);
    return n;
}

/* ---- admission and the prefix cache ---- */

static int common_prefix(const int32_t *a, int na, const int32_t *b, int nb) {
    int n = na < nb ? na : nb, i = 0;
    while (i < n && a[i] == b[i]) i++;
    return i;
}

/* A slot whose job is a sibling choice of j (same group, so the same prompt)
 * still decoding that prompt itself, or -1. */
static int prefilling_sibling(const qai_engine *e, const qai_job *j) {
    for (int i = 0; i < e->p.parallel; i++) {
        const slot *s = &e->slots[i];
        if (s->job && s->job->group == j->group && !s->generating && s->follow < 0) return i;
    }
    return -1;
}

/* Puts j on an idle slot, reusing the longest cached prefix of its prompt, or,
 * when a sibling choice of the same request is decoding that prompt right now,
 * marking it to copy the sibling's KV state and first logits once that is done
 * (share_prefill), so the n choices of a request evaluate their prompt once.
 * Returns false (job released with an error) if the sampler cannot be made. */
static bool assign(qai_engine *e, qai_job *j) {
    int best = -1, best_l = -1, src = -1, src_l = 0;
    for (int i = 0; i < e->p.parallel; i++) {
        slot *s = &e->slots[i];
        int l = common_prefix(s->cache, s->n_cache, j->prompt, j->n_prompt);
        if (!s->job && (l > best_l || (l == best_l && s->last_used < e->slots[best].last_used))) best = i, best_l = l;
        if (l > src_l) src = i, src_l = l;
    }
    const int leader = prefilling_sibling(e, j);
    slot *s = &e->slots[best];
    int keep = best_l;
    if (leader < 0 && src_l > best_l) {
        /* another slot has more of the prompt: copy it into the least recently used idle slot */
        int lru = -1;
        for (int i = 0; i < e->p.parallel; i++)
            if (!e->slots[i].job && i != src && (lru < 0 || e->slots[i].last_used < e->slots[lru].last_used)) lru = i;
        if (lru >= 0) {
            best = lru;
            s = &e->slots[best];
            int n = src_l < j->n_prompt - 1 ? src_l : j->n_prompt - 1;
            qai_kv_copy(e->ctx, src, best, n);
            memcpy(s->cache, e->slots[src].cache, (size_t)n * sizeof(int32_t));
            s->n_cache = n;
            keep = n;
        }
    }
    if (keep > j->n_prompt - 1) keep = j->n_prompt - 1; /* the last prompt token is decoded again for its logits */
    if (keep < 0) keep = 0;
    qai_kv_truncate(e->ctx, best, keep);
    s->n_cache = keep;
    s->generating = false;
    s->row = -1;
    s->follow = leader;
    s->ticket = ++e->tick;
    s->last_used = e->tick;
    j->smp = qai_sampler_new(&j->sp, e->V);
    j->cap_gen = j->max_tokens < 4096 ? j->max_tokens + 1 : 4096;
    j->gen = qai_malloc((size_t)j->cap_gen * sizeof(int32_t));
    if (!j->smp || !j->gen) {
        job_release(j, JOB_ERROR, "out of memory for the sampler");
        return false;
    }
    for (int i = 0; i < j->n_prompt; i++) qai_sampler_accept(j->smp, j->prompt[i]);
    j->n_cached = keep;
    s->job = j;
    pthread_mutex_lock(&e->mu);
    if (keep > 0) {
        e->st.prefix_hits++;
        e->st.prefix_tokens += (uint64_t)keep;
    }
    pthread_mutex_unlock(&e->mu);
    return true;
}

/* ---- publishing text ---- */

/* Stop strings and structured output: under a grammar (the mask hook is
 * qai_grammar_mask_hook) stop strings apply only to free text (tool_choice
 * auto answered in prose), never inside the JSON document the grammar
 * enforces, so a stop match cannot cut it into invalid JSON; while auto has
 * only seen whitespace, everything is held back until it is decided. */

/* Bytes at the end of raw that could start one of the stop strings. */
static size_t stop_holdback(const qai_job *j) {
    if (j->n_stop && j->mask_fn == qai_grammar_mask_hook) {
        int mode = qai_grammar_free_text(j->mask_user, j->raw.p, j->raw.n);
        if (mode < 0) return j->raw.n;
        if (mode == 0) return 0;
    }
    size_t hold = 0;
    for (int k = 0; k < j->n_stop; k++) {
        size_t L = j->stop_len[k];
        for (size_t h = L - 1 < j->raw.n ? L - 1 : j->raw.n; h > hold; h--)
            if (!memcmp(j->raw.p + j->raw.n - h, j->stop[k], h)) {
                hold = h;
                break;
            }
    }
    return hold;
}

/* Earliest complete stop string in raw at or after `from`, or SIZE_MAX. */
static size_t stop_find(const qai_job *j, size_t from) {
    if (j->mask_fn == qai_grammar_mask_hook) {
        int mode = qai_grammar_free_text(j->mask_user, j->raw.p, j->raw.n);
        if (mode <= 0) return SIZE_MAX;
        size_t k = 0; /* decided by this token: the whitespace before it was never searched */
        while (k < j->raw.n && (j->raw.p[k] == ' ' || j->raw.p[k] == '\n' || j->raw.p[k] == '\r' || j->raw.p[k] == '\t')) k++;
        if (k >= from) from = 0;
    }
    size_t best = SIZE_MAX;
    for (int k = 0; k < j->n_stop; k++) {
        size_t L = j->stop_len[k];
        size_t start = from >= L - 1 ? from - (L - 1) : 0;
        if (j->raw.n < start + L) continue;
        const char *hit = memmem(j->raw.p + start, j->raw.n - start, j->stop[k], L);
        if (hit && (size_t)(hit - j->raw.p) < best) best = (size_t)(hit - j->raw.p);
    }
    return best;
}

static bool push_lp(job_logprob **arr, int *n, int *cap, const job_logprob *lp) {
    if (*n == *cap) {
        int nc = *cap ? *cap * 2 : 16;
        job_logprob *na = qai_realloc(*arr, (size_t)nc * sizeof(job_logprob));
        if (!na) return false;
        *arr = na;
        *cap = nc;
    }
    (*arr)[(*n)++] = *lp;
    return true;
}

/* Moves raw[published..upto) and the logprobs of tokens starting before upto
 * into the job's visible output; finishes it when how != JOB_RUNNING. */
static void publish(qai_job *j, size_t upto, job_finish how) {
    job_group *g = j->group;
    pthread_mutex_lock(&g->mu);
    if (upto > j->published) {
        sb_put(&j->text, j->raw.p + j->published, upto - j->published);
        j->published = upto;
    }
    if (!j->t_first_ns) j->t_first_ns = qai_time_ns(); /* a token was sampled, even if its text is held back */
    int k = 0;
    while (k < j->n_pend && j->pend[k].text_start < upto) push_lp(&j->lp, &j->n_lp, &j->cap_lp, &j->pend[k++]);
    if (how != JOB_RUNNING) k = j->n_pend; /* tokens inside a cut stop string are dropped */
    if (k > 0 && k < j->n_pend) memmove(j->pend, j->pend + k, (size_t)(j->n_pend - k) * sizeof(job_logprob));
    j->n_pend -= k;
    if (how != JOB_RUNNING && j->finish == JOB_RUNNING) j->finish = how;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static void log_softmax(const float *x, float *out, int V) {
    float mx = -INFINITY;
    for (int i = 0; i < V; i++)
        if (x[i] > mx) mx = x[i];
    double sum = 0;
    for (int i = 0; i < V; i++) sum += x[i] == -INFINITY ? 0 : exp((double)x[i] - mx);
    float lse = mx + (float)log(sum);
    for (int i = 0; i < V; i++) out[i] = x[i] - lse;
}

static void fill_logprob(qai_engine *e, const qai_job *j, const float *logits, int32_t t, job_logprob *lp) {
    memset(lp, 0, sizeof *lp);
    log_softmax(logits, e->lsm, e->V);
    lp->token = t;
    lp->logprob = e->lsm[t];
    int k = j->top_logprobs;
    /* top-k by insertion (k <= 20), ties to the smaller id */
    for (int v = 0; v < e->V && k > 0; v++) {
        float x = e->lsm[v];
        if (lp->n_top == k && x <= lp->top_lp[k - 1]) continue;
        int pos = lp->n_top < k ? lp->n_top++ : k - 1;
        while (pos > 0 && lp->top_lp[pos - 1] < x) {
            lp->top_lp[pos] = lp->top_lp[pos - 1];
            lp->top_id[pos] = lp->top_id[pos - 1];
            pos--;
        }
        lp->top_lp[pos] = x;
        lp->top_id[pos] = v;
    }
}

/* Samples slot s's next token from logits and publishes what is safe to show.
 * Returns true if the job continues. */
static bool sample_slot(qai_engine *e, slot *s, const float *logits) {
    qai_job *j = s->job;
    const float *lg = logits;
    if (j->mask_fn) {
        memset(e->allowed, 1, (size_t)e->V);
        j->mask_fn(j->mask_user, j->gen, j->n_gen, e->allowed, e->V);
        int n_allowed = 0;
        for (int v = 0; v < e->V; v++) {
            e->scratch[v] = e->allowed[v] ? logits[v] : -INFINITY;
            n_allowed += e->allowed[v];
        }
        if (n_allowed == 0) { /* nothing can follow: a vocabulary that cannot spell what the mask needs */
            /* written before publish sets the finish under the group mutex, which the reader waits for */
            snprintf(j->error, sizeof j->error, "the output constraint allows no token of this vocabulary");
            publish(j, j->raw.n, JOB_ERROR);
            return false;
        }
        lg = e->scratch;
    }
    int32_t t = qai_sampler_sample(j->smp, lg);
    if (qai_tokenizer_is_eog(e->tok, t) || t == e->bos) {
        publish(j, j->raw.n, JOB_STOP);
        return false;
    }
    qai_sampler_accept(j->smp, t);
    if (j->n_gen == j->cap_gen) {
        int nc = j->cap_gen * 2;
        int32_t *ng = qai_realloc(j->gen, (size_t)nc * sizeof(int32_t));
        if (!ng) {
            publish(j, j->published, JOB_ERROR);
            return false;
        }
        j->gen = ng;
        j->cap_gen = nc;
    }
    j->gen[j->n_gen++] = t;
    if (j->logprobs) {
        job_logprob lp;
        fill_logprob(e, j, lg, t, &lp);
        lp.text_start = j->raw.n;
        push_lp(&j->pend, &j->n_pend, &j->cap_pend, &lp);
    }
    char piece[256];
    size_t n = qai_tokenizer_piece(e->tok, t, 0, piece, sizeof piece);
    size_t before = j->raw.n;
    sb_put(&j->raw, piece, n < sizeof piece ? n : sizeof piece);
    if (j->raw.oom) {
        publish(j, j->published, JOB_ERROR);
        return false;
    }
    size_t cut = j->n_stop ? stop_find(j, before) : SIZE_MAX;
    if (cut != SIZE_MAX) {
        publish(j, cut, JOB_STOP);
        return false;
    }
    if (j->done_fn && j->done_fn(j->mask_user, j->gen, j->n_gen, j->raw.p, j->raw.n)) {
        publish(j, j->raw.n, JOB_STOP);
        return false;
    }
    if (j->n_gen >= j->max_tokens || s->n_cache >= e->n_ctx) {
        publish(j, j->raw.n, JOB_LENGTH);
        return false;
    }
    size_t safe = j->raw.n - stop_holdback(j);
    safe = j->published + utf8_complete_prefix(j->raw.p + j->published, safe - j->published);
    publish(j, safe, JOB_RUNNING);
    s->next = t;
    s->generating = true;
    return true;
}

static void slot_finish(qai_engine *e, slot *s, job_finish how, const char *err) {
    qai_job *j = s->job;
    s->job = NULL;
    s->generating = false;
    s->row = -1;
    s->follow = -1;
    s->last_used = ++e->tick;
    pthread_mutex_lock(&e->mu); /* count the slot free at once, so a submit right after sees room */
    if (e->st.slots_busy > 0) e->st.slots_busy--;
    pthread_mutex_unlock(&e->mu);
    job_release(j, how, err);
}

/* Slot li has just decoded the last token of its prompt: every slot following
 * it (a sibling choice waiting for that prefill) gets a copy of its KV state
 * and cached tokens and samples its first token from the same logits, with its
 * own sampler. Returns how many tokens were sampled. */
static int share_prefill(qai_engine *e, int li, const float *logits) {
    const slot *ls = &e->slots[li];
    int n = 0;
    for (int k = 0; k < e->p.parallel; k++) {
        slot *s = &e->slots[k];
        if (!s->job || s->follow != li) continue;
        s->follow = -1;
        qai_kv_copy(e->ctx, li, k, ls->n_cache);
        memcpy(s->cache, ls->cache, (size_t)ls->n_cache * sizeof(int32_t));
        s->n_cache = ls->n_cache;
        s->row = -1;
        pthread_mutex_lock(&s->job->group->mu);
        s->job->n_cached = s->job->n_prompt;
        pthread_mutex_unlock(&s->job->group->mu);
        pthread_mutex_lock(&e->mu);
        e->st.prefix_hits++;
        e->st.prefix_tokens += (uint64_t)ls->n_cache;
        pthread_mutex_unlock(&e->mu);
        n++;
        if (!sample_slot(e, s, logits)) slot_finish(e, s, s->job->finish != JOB_RUNNING ? s->job->finish : JOB_STOP, NULL);
    }
    return n;
}

/* ---- the loop ---- */

static bool job_expired(const qai_job *j, uint64_t now) { return j->deadline_ns && now > j->deadline_ns; }

static void *engine_main(void *arg) {
    qai_engine *e = arg;
    const int P = e->p.parallel;
    qai_job **admit = qai_malloc((size_t)P * sizeof(qai_job *));
    qai_job **dropped = qai_malloc((size_t)e->q_cap * sizeof(qai_job *));
    job_finish *dropped_how = qai_malloc((size_t)e->q_cap * sizeof(job_finish));
    if (!admit || !dropped || !dropped_how) {
        qai_log(QAI_LOG_ERROR, "serve: engine out of memory at start");
        qai_free(admit), qai_free(dropped), qai_free(dropped_how);
        return NULL;
    }
    for (;;) {
        /* ---- under the lock: drop cancelled / expired queued jobs, admit into idle slots ---- */
        pthread_mutex_lock(&e->mu);
        for (;;) {
            int busy = 0;
            for (int i = 0; i < P; i++) busy += e->slots[i].job != NULL;
            if (e->stopping || busy > 0 || (e->q_n > 0 && !e->paused)) break;
            if (e->q_n > 0) { /* paused: still drop cancelled and expired jobs now and then */
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_nsec += 50 * 1000000L;
                if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
                pthread_cond_timedwait(&e->cv, &e->mu, &ts);
                break;
            }
            pthread_cond_wait(&e->cv, &e->mu);
        }
        if (e->stopping) {
            pthread_mutex_unlock(&e->mu);
            break;
        }
        uint64_t now = qai_time_ns();
        int n_drop = 0, n_admit = 0, kept = 0;
        for (int k = 0; k < e->q_n; k++) {
            qai_job *j = e->queue[(e->q_head + k) % e->q_cap];
            if (atomic_load(&j->cancel) || job_expired(j, now)) {
                dropped_how[n_drop] = atomic_load(&j->cancel) ? JOB_CANCELLED : JOB_TIMEOUT;
                dropped[n_drop++] = j;
            } else
                e->queue[(e->q_head + kept++) % e->q_cap] = j;
        }
        e->q_n = kept;
        int idle = 0;
        for (int i = 0; i < P; i++) idle += e->slots[i].job == NULL;
        while (!e->paused && idle > n_admit && e->q_n > 0) {
            admit[n_admit++] = e->queue[e->q_head];
            e->q_head = (e->q_head + 1) % e->q_cap;
            e->q_n--;
        }
        e->st.queue_depth = e->q_n;
        e->st.slots_busy = P - idle + n_admit;
        pthread_mutex_unlock(&e->mu);

        for (int k = 0; k < n_drop; k++)
            job_release(dropped[k], dropped_how[k], dropped_how[k] == JOB_TIMEOUT ? "the request timed out in the queue" : NULL);
        for (int k = 0; k < n_admit; k++) assign(e, admit[k]);

        /* ---- running slots: cancellation and deadlines ---- */
        for (int i = 0; i < P; i++) {
            slot *s = &e->slots[i];
            if (!s->job) continue;
            if (atomic_load(&s->job->cancel)) slot_finish(e, s, JOB_CANCELLED, NULL);
            else if (job_expired(s->job, now)) {
                publish(s->job, s->job->published, JOB_TIMEOUT);
                slot_finish(e, s, JOB_TIMEOUT, "the request timed out");
            }
        }

        /* ---- followers whose sibling stopped prefilling without finishing (cancelled,
         * failed) decode their prompt themselves ---- */
        for (int i = 0; i < P; i++) {
            slot *s = &e->slots[i];
            if (!s->job || s->follow < 0) continue;
            const slot *ls = &e->slots[s->follow];
            if (!ls->job || ls->job->group != s->job->group || ls->generating) s->follow = -1;
        }

        /* ---- one batch: generating slots first, then prompt chunks by admission order ---- */
        int n = 0;
        for (int i = 0; i < P; i++) {
            slot *s = &e->slots[i];
            s->row = -1;
            if (!s->job || !s->generating) continue;
            e->b_tok[n] = s->next, e->b_pos[n] = s->n_cache, e->b_seq[n] = i, e->b_want[n] = 1;
            s->row = n++;
        }
        int n_gen_rows = n;
        for (;;) {
            int pick = -1;
            for (int i = 0; i < P; i++) {
                slot *s = &e->slots[i];
                if (s->job && !s->generating && s->follow < 0 && s->row == -1 &&
                    (pick < 0 || s->ticket < e->slots[pick].ticket))
                    pick = i;
            }
            if (pick < 0 || n >= e->p.batch) break;
            slot *s = &e->slots[pick];
            int left = s->job->n_prompt - s->n_cache, take = e->p.batch - n < left ? e->p.batch - n : left;
            for (int k = 0; k < take; k++) {
                e->b_tok[n] = s->job->prompt[s->n_cache + k], e->b_pos[n] = s->n_cache + k, e->b_seq[n] = pick;
                e->b_want[n] = (int8_t)(k == take - 1 && take == left);
                n++;
            }
            s->row = take == left ? n - 1 : -2; /* -2: in the batch, no logits yet */
        }
        if (n == 0) continue;
        qai_batch b = {.n = n, .token = e->b_tok, .pos = e->b_pos, .seq = e->b_seq, .want_logits = e->b_want};
        qai_status st = qai_decode(e->ctx, &b);
        if (st) {
            char msg[256];
            snprintf(msg, sizeof msg, "decoding failed: %s", qai_last_error());
            qai_log(QAI_LOG_ERROR, "serve: %s", msg);
            for (int i = 0; i < P; i++)
                if (e->slots[i].job && e->slots[i].row != -1) {
                    publish(e->slots[i].job, e->slots[i].job->published, JOB_ERROR);
                    slot_finish(e, &e->slots[i], JOB_ERROR, msg);
                    qai_kv_truncate(e->ctx, i, 0);
                    e->slots[i].n_cache = 0;
                }
            continue;
        }
        /* the cache now holds every row's token */
        for (int r = 0; r < n; r++) {
            slot *s = &e->slots[e->b_seq[r]];
            s->cache[s->n_cache++] = e->b_tok[r];
        }
        uint64_t gen_tokens = 0;
        for (int i = 0; i < P; i++) {
            slot *s = &e->slots[i];
            if (!s->job || s->row < 0) continue;
            const float *logits = qai_context_logits(e->ctx, s->row);
            if (!s->generating) gen_tokens += (uint64_t)share_prefill(e, i, logits); /* its prompt is complete */
            gen_tokens++;
            if (!sample_slot(e, s, logits)) slot_finish(e, s, s->job->finish != JOB_RUNNING ? s->job->finish : JOB_STOP, NULL);
        }
        /* ---- statistics ---- */
        pthread_mutex_lock(&e->mu);
        int busy = 0;
        uint64_t used = 0;
        for (int i = 0; i < P; i++) {
            busy += e->slots[i].job != NULL;
            used += (uint64_t)e->slots[i].n_cache;
        }
        e->st.slots_busy = busy;
        e->st.kv_used_ratio = (double)used / ((double)P * e->n_ctx);
        e->st.decode_calls++;
        e->st.batch_rows += (uint64_t)n;
        e->st.last_batch_rows = n;
        e->st.gen_tokens += gen_tokens;
        e->st.prompt_tokens_decoded += (uint64_t)(n - n_gen_rows);
        pthread_mutex_unlock(&e->mu);
    }
    /* stopping: abort what runs */
    for (int i = 0; i < P; i++)
        if (e->slots[i].job) {
            publish(e->slots[i].job, e->slots[i].job->published, JOB_SHUTDOWN);
            slot_finish(e, &e->slots[i], JOB_SHUTDOWN, "the server shut down");
        }
    pthread_mutex_lock(&e->mu);
    e->st.slots_busy = 0;
    pthread_mutex_unlock(&e->mu);
    qai_free(admit);
    qai_free(dropped);
    qai_free(dropped_how);
    return NULL;
}
