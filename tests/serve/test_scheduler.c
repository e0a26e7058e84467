/* The continuous-batching engine without HTTP, against qai_generate as the
 * reference (greedy, same model):
 * - chunked prefill (a batch budget much smaller than the prompts) and many
 *   sequences sharing each forward pass give the same tokens as one sequence
 *   decoded alone;
 * - the prefix cache: a prompt that extends one already in a slot, and a
 *   prompt whose prefix is only in a busy slot (copied with qai_kv_copy), give
 *   the same tokens, and the hits are counted;
 * - the n choices of one request decode their prompt once: the others copy
 *   its KV state and first logits (the engine's prompt-token counter says the
 *   prompt was evaluated once), and every choice still equals the reference,
 *   also when the first choice is cancelled before it runs and when there are
 *   fewer slots than choices;
 * - the grammar hook: an allowed-token mask restricts every sampled token;
 * - stop strings are cut and held back across token boundaries;
 * - more jobs than slots + queue are refused; a cancelled job frees its slot. */
#include <pthread.h>
#include <time.h>

#include "serve/scheduler.h"
#include "test.h"

static qai_model *g_m;
static qai_context *g_ref;

typedef struct {
    int32_t *out;
    int n;
} tok_acc;

static bool on_tok(void *user, int32_t t, const char *piece, size_t len) {
    (void)piece, (void)len;
    tok_acc *a = user;
    a->out[a->n++] = t;
    return true;
}

static int reference(const int32_t *prompt, int n, int n_predict, int32_t *out) {
    qai_generate_params gp = {.n_predict = n_predict};
    gp.sampling = qai_sampler_default_params();
    gp.sampling.temp = 0;
    tok_acc a = {out, 0};
    CHECK_OK(qai_generate(g_ref, 0, prompt, n, &gp, on_tok, &a, NULL));
    return a.n;
}

static job_group *make(const int32_t *prompt, int n, int n_jobs, int max_tokens) {
    job_group *g = job_group_new(n_jobs, prompt, n);
    for (int i = 0; i < n_jobs; i++) {
        qai_job *j = &g->jobs[i];
        j->max_tokens = max_tokens;
        j->sp = qai_sampler_default_params();
        j->sp.temp = 0;
    }
    return g;
}

static void wait_done(job_group *g) {
    pthread_mutex_lock(&g->mu);
    for (;;) {
        bool done = true;
        for (int i = 0; i < g->n_jobs; i++) done &= g->jobs[i].finish != JOB_RUNNING;
        if (done) break;
        pthread_cond_wait(&g->cv, &g->mu);
    }
    pthread_mutex_unlock(&g->mu);
}

static void prompt_of(int k, int n, int32_t *p) {
    p[0] = 1;
    for (int i = 1; i < n; i++) p[i] = 3 + (int32_t)((k * 131 + i * 17 + i * i) % 500);
}

static void test_batching(void) {
    qai_engine_params ep = {.parallel = 4, .n_ctx = 256, .n_threads = 2, .batch = 16, .max_queue = 8, .kv_type = QAI_TYPE_F16};
    qai_engine *e;
    CHECK_OK(qai_engine_new(g_m, &ep, &e));
    if (!e) return;
    enum { N = 6, L = 40, G = 24 };
    int32_t prompt[N][L], want[N][G + 1];
    int n_want[N];
    job_group *g[N];
    for (int k = 0; k < N; k++) {
        prompt_of(k, L - k * 3, prompt[k]);
        n_want[k] = reference(prompt[k], L - k * 3, G, want[k]);
    }
    /* 6 jobs on 4 slots with a budget of 16 tokens per pass: prompts in chunks, queued jobs join later */
    for (int k = 0; k < N; k++) {
        g[k] = make(prompt[k], L - k * 3, 1, G);
        CHECK_OK(qai_engine_submit(e, g[k]));
    }
    for (int k = 0; k < N; k++) {
        wait_done(g[k]);
        qai_job *j = &g[k]->jobs[0];
        CHECK_EQ_INT(j->n_gen, n_want[k]);
        CHECK_MSG(!memcmp(j->gen, want[k], (size_t)n_want[k] * sizeof(int32_t)), "job %d: batched tokens differ from alone", k);
        CHECK(j->finish == (n_want[k] == G ? JOB_LENGTH : JOB_STOP));
        job_group_unref(g[k]);
    }
    qai_engine_stats st;
    qai_engine_stats_get(e, &st);
    CHECK_MSG(st.batch_rows > st.decode_calls, "no pass batched more than one token (%llu rows, %llu calls)",
              (unsigned long long)st.batch_rows, (unsigned long long)st.decode_calls);

    /* prefix cache: the last prompt (whose slot nobody took since) extended reuses its slot's cache */
    uint64_t hits0 = st.prefix_hits;
    const int LL = L - (N - 1) * 3;
    int32_t ext[L + 8], want_ext[G + 1];
    memcpy(ext, prompt[N - 1], (size_t)LL * sizeof(int32_t));
    for (int i = 0; i < 8; i++) ext[LL + i] = 100 + i;
    int n_ext = reference(ext, LL + 8, G, want_ext);
    job_group *h = make(ext, LL + 8, 1, G);
    CHECK_OK(qai_engine_submit(e, h));
    wait_done(h);
    CHECK_EQ_INT(h->jobs[0].n_gen, n_ext);
    CHECK(!memcmp(h->jobs[0].gen, want_ext, (size_t)n_ext * sizeof(int32_t)));
    CHECK_MSG(h->jobs[0].n_cached >= LL, "reused %d of %d prompt tokens", h->jobs[0].n_cached, LL);
    job_group_unref(h);
    qai_engine_stats_get(e, &st);
    CHECK(st.prefix_hits == hits0 + 1);
    /* n = 3 over one prompt: every choice equals the reference (greedy) */
    h = make(prompt[1], L - 3, 3, G);
    CHECK_OK(qai_engine_submit(e, h));
    wait_done(h);
    for (int i = 0; i < 3; i++) CHECK(h->jobs[i].n_gen == n_want[1] && !memcmp(h->jobs[i].gen, want[1], (size_t)n_want[1] * sizeof(int32_t)));
    job_group_unref(h);
    qai_engine_free(e);
}

/* A prefix held only by a busy slot is copied into the new job's slot. */
static void test_prefix_copy(void) {
    qai_engine_params ep = {.parallel = 2, .n_ctx = 256, .n_threads = 1, .batch = 64, .max_queue = 4, .kv_type = QAI_TYPE_F16};
    qai_engine *e;
    CHECK_OK(qai_engine_new(g_m, &ep, &e));
    if (!e) return;
    int32_t a[50], b[56], want_b[41];
    prompt_of(9, 50, a);
    memcpy(b, a, sizeof a);
    for (int i = 0; i < 6; i++) b[50 + i] = 200 + i;
    int nb = reference(b, 56, 40, want_b);
    job_group *ga = make(a, 50, 1, 150); /* long: still running when b arrives */
    CHECK_OK(qai_engine_submit(e, ga));
    /* wait until a's prompt is in its slot (its first token published) */
    pthread_mutex_lock(&ga->mu);
    while (!ga->jobs[0].t_first_ns && ga->jobs[0].finish == JOB_RUNNING) pthread_cond_wait(&ga->cv, &ga->mu);
    pthread_mutex_unlock(&ga->mu);
    job_group *gb = make(b, 56, 1, 40);
    CHECK_OK(qai_engine_submit(e, gb));
    wait_done(gb);
    CHECK_EQ_INT(gb->jobs[0].n_gen, nb);
    CHECK_MSG(!memcmp(gb->jobs[0].gen, want_b, (size_t)nb * sizeof(int32_t)), "tokens after a prefix copy differ");
    CHECK_MSG(gb->jobs[0].n_cached >= 50 || ga->jobs[0].finish != JOB_RUNNING, "copied %d tokens", gb->jobs[0].n_cached);
    wait_done(ga);
    job_group_unref(ga);
    job_group_unref(gb);
    qai_engine_free(e);
}

/* n choices over one prompt on a fresh engine (no prefix cached anywhere) */
static void n_share_case(int parallel, int n_choices, bool cancel_first, int expect_decoded_extra) {
    qai_engine_params ep = {.parallel = parallel, .n_ctx = 256, .n_threads = 2, .batch = 16, .max_queue = 8, .kv_type = QAI_TYPE_F16};
    qai_engine *e;
    CHECK_OK(qai_engine_new(g_m, &ep, &e));
    if (!e) return;
    enum { L = 45, G = 20 };
    int32_t prompt[L], want[G + 1];
    prompt_of(11, L, prompt);
    int nw = reference(prompt, L, G, want);
    job_group *g = make(prompt, L, n_choices, G);
    if (cancel_first) { /* dropped from the queue before it runs: choice 1 leads instead */
        qai_engine_pause(e, true);
        atomic_store(&g->jobs[0].cancel, true);
    }
    CHECK_OK(qai_engine_submit(e, g));
    if (cancel_first) qai_engine_pause(e, false);
    wait_done(g);
    for (int i = cancel_first; i < n_choices; i++) {
        qai_job *j = &g->jobs[i];
        CHECK_MSG(j->n_gen == nw && !memcmp(j->gen, want, (size_t)nw * sizeof(int32_t)),
                  "parallel %d, n %d%s: choice %d differs from the reference (%d tokens, want %d)", parallel, n_choices,
                  cancel_first ? ", first cancelled" : "", i, j->n_gen, nw);
    }
    if (cancel_first) CHECK(g->jobs[0].finish == JOB_CANCELLED);
    /* the engine's statistics are final once it counted every slot free again */
    for (int i = 0; i < 10000 && qai_engine_active(e) > 0; i++) {
        struct timespec ts = {0, 1000000L};
        nanosleep(&ts, NULL);
    }
    qai_engine_stats st;
    qai_engine_stats_get(e, &st);
    CHECK_MSG(st.prompt_tokens_decoded == (uint64_t)(L + expect_decoded_extra),
              "parallel %d, n %d: %llu prompt tokens decoded for a prompt of %d (each choice prefilled separately?)",
              parallel, n_choices, (unsigned long long)st.prompt_tokens_decoded, L);
    const int live = n_choices - cancel_first;
    CHECK_MSG(st.gen_tokens == (uint64_t)live * (uint64_t)nw + (nw < G ? (uint64_t)live : 0),
              "gen_tokens %llu for %d choices of %d tokens", (unsigned long long)st.gen_tokens, live, nw);
    job_group_unref(g);
    qai_engine_free(e);
}

static void test_n_share(void) {
    n_share_case(4, 3, false, 0); /* all three in slots at once: two wait for the first's prefill */
    n_share_case(4, 4, true, 0);  /* the first cancelled in the queue: the second leads */
    /* two slots for three choices: the third runs after one ends, copying the
     * cached prompt but its last token, which it decodes again for its logits */
    n_share_case(2, 3, false, 1);
}

static void only_token(void *user, const int32_t *gen, int n, uint8_t *allowed, int V) {
    (void)gen, (void)n;
    int32_t t = *(const int32_t *)user;
    memset(allowed, 0, (size_t)V);
    allowed[t] = 1;
    allowed[t + 1] = 1;
}

static void test_mask_stop_cancel(void) {
    qai_engine_params ep = {.parallel = 1, .n_ctx = 256, .n_threads = 1, .batch = 32, .max_queue = 1, .kv_type = QAI_TYPE_F16};
    qai_engine *e;
    CHECK_OK(qai_engine_new(g_m, &ep, &e));
    if (!e) return;
    int32_t p[10];
    prompt_of(3, 10, p);
    /* the mask allows two tokens only */
    int32_t allowed = 300;
    job_group *g = make(p, 10, 1, 20);
    g->jobs[0].mask_fn = only_token;
    g->jobs[0].mask_user = &allowed;
    g->jobs[0].sp.temp = 1.0f;
    g->jobs[0].sp.top_k = 0, g->jobs[0].sp.top_p = 1, g->jobs[0].sp.min_p = 0;
    g->jobs[0].sp.seed = 5;
    CHECK_OK(qai_engine_submit(e, g));
    wait_done(g);
    CHECK_EQ_INT(g->jobs[0].n_gen, 20);
    for (int i = 0; i < g->jobs[0].n_gen; i++) CHECK(g->jobs[0].gen[i] == 300 || g->jobs[0].gen[i] == 301);
    job_group_unref(g);
    /* stop string over token boundaries: the text of the greedy run, cut at the second piece's middle */
    int32_t want[30];
    int nw = reference(p, 10, 30, want);
    const qai_tokenizer *tok = qai_model_tokenizer(g_m);
    char full[2048] = "";
    size_t fl = 0;
    for (int i = 0; i < nw; i++) fl += qai_tokenizer_piece(tok, want[i], 0, full + fl, sizeof full - fl);
    if (fl > 8) {
        size_t at = fl / 2;
        char stop[4] = {full[at], full[at + 1], full[at + 2], 0};
        const char *hit = memmem(full, fl, stop, 3);
        size_t first = hit ? (size_t)(hit - full) : fl;
        const char *stops[1] = {stop};
        size_t lens[1] = {3};
        g = make(p, 10, 1, 30);
        g->jobs[0].stop = stops, g->jobs[0].stop_len = lens, g->jobs[0].n_stop = 1;
        CHECK_OK(qai_engine_submit(e, g));
        wait_done(g);
        CHECK_EQ_INT(g->jobs[0].text.n, first);
        CHECK(g->jobs[0].text.n == 0 || !memcmp(g->jobs[0].text.p, full, first));
        CHECK(g->jobs[0].finish == JOB_STOP);
        job_group_unref(g);
    }
    /* with the slot taken and one place in the queue, a third job is refused; a cancelled one frees the slot.
     * First let the engine count the slot free again (it does so at the end of the iteration that finished
     * the last job, after the job's waiter already woke up). */
    for (int i = 0; i < 10000 && qai_engine_active(e) > 0; i++) {
        struct timespec ts = {0, 1000000L};
        nanosleep(&ts, NULL);
    }
    qai_engine_pause(e, true);
    job_group *q1 = make(p, 10, 1, 200), *q2 = make(p, 10, 1, 4), *q3 = make(p, 10, 1, 4);
    qai_status s1 = qai_engine_submit(e, q1), s2 = qai_engine_submit(e, q2);
    CHECK_OK(s1);
    CHECK_OK(s2);
    CHECK(qai_engine_submit(e, q3) == QAI_ERR_RANGE);
    if (s1 || s2) { /* never queued: waiting for them would hang */
        qai_engine_free(e);
        job_group_unref(q1), job_group_unref(q2), job_group_unref(q3);
        return;
    }
    atomic_store(&q1->jobs[0].cancel, true);
    qai_engine_pause(e, false);
    wait_done(q1);
    CHECK(q1->jobs[0].finish == JOB_CANCELLED);
    wait_done(q2);
    CHECK(q2->jobs[0].finish == JOB_LENGTH && q2->jobs[0].n_gen == 4);
    job_group_unref(q1);
    job_group_unref(q2);
    job_group_unref(q3);
    /* a deadline in the past ends a job with a timeout */
    g = make(p, 10, 1, 4);
    g->jobs[0].deadline_ns = 1;
    CHECK_OK(qai_engine_submit(e, g));
    wait_done(g);
    CHECK(g->jobs[0].finish == JOB_TIMEOUT);
    job_group_unref(g);
    /* jobs still queued when the engine stops end with JOB_SHUTDOWN */
    qai_engine_pause(e, true);
    g = make(p, 10, 1, 4);
    CHECK_OK(qai_engine_submit(e, g));
    qai_engine_free(e);
    wait_done(g);
    CHECK(g->jobs[0].finish == JOB_SHUTDOWN);
    job_group_unref(g);
}

int main(void) {
    const char *tmp = getenv("QAI_TMP");
    char path[512];
    snprintf(path, sizeof path, "%s/sched_tiny.gguf", tmp ? tmp : "/tmp");
    qai_init_params ip = {.arch = "llama", .dim = 64, .layers = 2, .heads = 4, .kv_heads = 2, .ffn = 128, .vocab = 512,
                          .ctx = 512, .seed = 7, .type = QAI_TYPE_Q8_0, .std = 0.5f};
    CHECK_OK(qai_model_init_random(&ip, path));
    CHECK_OK(qai_model_open(path, &g_m));
    if (!g_m) return test_summary();
    qai_context_params cp = qai_context_default_params();
    cp.n_ctx = 256, cp.n_threads = 1;
    CHECK_OK(qai_context_new(g_m, &cp, &g_ref));
    test_batching();
    test_prefix_copy();
    test_n_share();
    test_mask_stop_cancel();
    qai_context_free(g_ref);
    qai_model_close(g_m);
    return test_summary();
}
