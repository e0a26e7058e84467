/* The forward pass against references and against itself:
 * - stories260K (a real llama2.c model) converted with qai_convert_llama2c
 *   reproduces llama2.c run.c's greedy token sequences exactly;
 * - the llama.cpp-written GGUF of the same model gives the same logits;
 * - KV-cache decoding equals recomputing the whole sequence;
 * - batched prompt processing equals one token at a time;
 * - several sequences in one batch equal each alone;
 * - results are bit-identical across thread counts;
 * - the scalar kernels (qai_kernels_set_isa) agree with the SIMD ones;
 * - all of the above with the f16 KV cache (the default) as with f32: every path
 *   reads the stored, rounded keys and values, so prompt chunks, single steps
 *   and mixed batches agree as closely as with f32, and only the f16-vs-f32
 *   comparison carries the rounding of half precision;
 * - a KV prefix copied over a sequence that held other keys (stale block
 *   tails) continues like the original, for lengths on and off block edges;
 * - decoding steps whose batches mix sequences at random (one or two tokens
 *   each, which switches the key store in and out of the attention pass) give
 *   the logits each sequence gets alone;
 * - random-weight llama and qwen2 models of odd shapes run (GQA, biases). */
#include <cjson/cJSON.h>

#include "qai/convert.h"
#include "qai/model.h"
#include "test.h"

static char g_model[512];
static qai_type g_kv = QAI_TYPE_F32; /* KV cache type of new_ctx */

static qai_context *new_ctx(qai_model *m, int n_ctx, int n_batch, int n_seq, int n_threads) {
    qai_context_params cp = qai_context_default_params();
    cp.kv_type = g_kv;
    cp.n_ctx = n_ctx;
    cp.n_batch = n_batch;
    cp.n_seq = n_seq;
    cp.n_threads = n_threads;
    qai_context *c = NULL;
    CHECK_OK(qai_context_new(m, &cp, &c));
    return c;
}

typedef struct {
    int32_t *g;
    int n;
} sink;

static bool test_collect(void *u, int32_t t, const char *p, size_t l) {
    (void)p;
    (void)l;
    sink *s = u;
    if (s->n < 1024) s->g[s->n++] = t;
    return true;
}

static void test_greedy_reference(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/models/stories260K/greedy/manifest.json", TEST_DATA());
    char *json;
    size_t len;
    CHECK_OK(qai_file_read(path, &json, &len));
    cJSON *root = cJSON_Parse(json);
    qai_free(json);
    CHECK(root != NULL);
    if (!root) return;
    qai_model *m;
    CHECK_OK(qai_model_open(g_model, &m));
    if (!m) return;
    qai_context *c = new_ctx(m, 512, 512, 1, 2);
    const qai_tokenizer *tok = qai_model_tokenizer(m);
    cJSON *e;
    int n_entries = 0;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(root, "entries")) {
        const char *prompt = cJSON_GetObjectItem(e, "prompt")->valuestring;
        cJSON *want_prompt = cJSON_GetObjectItem(e, "prompt_token_ids");
        cJSON *want_seq = cJSON_GetObjectItem(e, "sequence_token_ids");
        int steps = cJSON_GetObjectItem(e, "steps")->valueint;
        int32_t *ids;
        size_t n;
        CHECK_OK(qai_tokenizer_encode(tok, prompt, strlen(prompt), QAI_TOK_ADD_SPECIAL, &ids, &n));
        CHECK_EQ_INT(n, cJSON_GetArraySize(want_prompt));
        for (size_t i = 0; i < n && i < (size_t)cJSON_GetArraySize(want_prompt); i++)
            CHECK_EQ_INT(ids[i], cJSON_GetArrayItem(want_prompt, (int)i)->valueint);
        /* run.c's -n counts positions: it feeds `steps` tokens (prompt included) and
         * prints the token sampled at the last one too; it stops early at BOS */
        qai_generate_params gp = {.n_predict = steps - (int)n + 1, .sampling = qai_sampler_default_params()};
        gp.sampling.temp = 0;
        int32_t got[1024];
        int n_got = 0;
        for (size_t i = 0; i < n; i++) got[n_got++] = ids[i];
        qai_generate_stats gs;
        sink s = {got, n_got};
        CHECK_OK(qai_generate(c, 0, ids, (int)n, &gp, test_collect, &s, &gs));
        n_got = s.n;
        int n_want = cJSON_GetArraySize(want_seq);
        int mism = -1;
        for (int i = 0; i < n_want && i < n_got; i++)
            if (got[i] != cJSON_GetArrayItem(want_seq, i)->valueint) {
                mism = i;
                break;
            }
        CHECK_MSG(n_got == n_want && mism < 0, "prompt '%s': %d tokens (want %d), first mismatch at %d", prompt, n_got,
                  n_want, mism);
        qai_free(ids);
        n_entries++;
    }
    CHECK(n_entries >= 4);
    cJSON_Delete(root);
    qai_context_free(c);
    qai_model_close(m);
}

/* logits of every position of tokens[0..n) computed one token at a time */
static float *logits_incremental(qai_model *m, const int32_t *toks, int n, int n_threads) {
    int V = qai_model_get_info(m)->n_vocab;
    qai_context *c = new_ctx(m, 256, 64, 1, n_threads);
    float *out = qai_malloc((size_t)n * V * sizeof(float));
    for (int i = 0; i < n; i++) {
        CHECK_OK(qai_decode_tokens(c, 0, i, &toks[i], 1));
        memcpy(out + (size_t)i * V, qai_context_logits(c, 0), (size_t)V * sizeof(float));
    }
    qai_context_free(c);
    return out;
}

static float *logits_batched(qai_model *m, const int32_t *toks, int n, int n_batch, int n_threads) {
    int V = qai_model_get_info(m)->n_vocab;
    qai_context *c = new_ctx(m, 256, n_batch, 1, n_threads);
    float *out = qai_malloc((size_t)n * V * sizeof(float));
    int8_t want[256];
    for (int i = 0; i < n; i++) want[i] = 1;
    qai_batch b = {.n = n, .token = toks, .want_logits = want};
    CHECK_OK(qai_decode(c, &b));
    for (int i = 0; i < n; i++) memcpy(out + (size_t)i * V, qai_context_logits(c, i), (size_t)V * sizeof(float));
    qai_context_free(c);
    return out;
}

static void test_consistency(const char *path, const char *what, float tol) {
    qai_model *m;
    CHECK_OK(qai_model_open(path, &m));
    if (!m) return;
    const int V = qai_model_get_info(m)->n_vocab, n = 40;
    int32_t toks[40];
    qai_rng r;
    qai_rng_seed(&r, 7);
    for (int i = 0; i < n; i++) toks[i] = (int32_t)(qai_rng_u64(&r) % (uint64_t)V);
    float *inc = logits_incremental(m, toks, n, 2);
    float *bat = logits_batched(m, toks, n, 64, 2);
    float *bat7 = logits_batched(m, toks, n, 7, 2); /* chunks of 7 tokens */
    char label[128];
    snprintf(label, sizeof label, "%s: batched vs one at a time", what);
    CHECK_CLOSE(label, bat, inc, (long)n * V, tol, tol);
    snprintf(label, sizeof label, "%s: chunks of 7 vs one batch", what);
    CHECK_CLOSE(label, bat7, bat, (long)n * V, tol, tol);
    /* thread count does not change a bit */
    for (int t = 1; t <= 3; t += 2) {
        float *bt = logits_batched(m, toks, n, 64, t);
        CHECK_MSG(!memcmp(bt, bat, (size_t)n * V * sizeof(float)), "%s: %d threads differ from 2", what, t);
        qai_free(bt);
        float *it = logits_incremental(m, toks, 8, t);
        CHECK_MSG(!memcmp(it, inc, (size_t)8 * V * sizeof(float)), "%s: incremental, %d threads differ from 2", what, t);
        qai_free(it);
    }
    /* two sequences interleaved in one batch equal each alone */
    {
        qai_context *c = new_ctx(m, 256, 128, 2, 2);
        int32_t tk[80], pos[80], seq[80];
        int8_t want[80];
        for (int i = 0; i < n; i++) {
            tk[2 * i] = toks[i], pos[2 * i] = i, seq[2 * i] = 0, want[2 * i] = 1;
            tk[2 * i + 1] = toks[n - 1 - i], pos[2 * i + 1] = i, seq[2 * i + 1] = 1, want[2 * i + 1] = 0;
        }
        qai_batch b = {.n = 2 * n, .token = tk, .pos = pos, .seq = seq, .want_logits = want};
        CHECK_OK(qai_decode(c, &b));
        float *mix = qai_malloc((size_t)n * V * sizeof(float));
        for (int i = 0; i < n; i++) memcpy(mix + (size_t)i * V, qai_context_logits(c, 2 * i), (size_t)V * sizeof(float));
        snprintf(label, sizeof label, "%s: two sequences in one batch vs alone", what);
        CHECK_CLOSE(label, mix, bat, (long)n * V, tol, tol);
        /* continue sequence 1 and compare with the reversed sequence decoded alone */
        qai_free(mix);
        CHECK(qai_context_logits(c, 1) == NULL); /* not requested */
        qai_context_free(c);
    }
    /* scalar reference kernels vs the best ISA */
    qai_isa best = qai_kernels_isa();
    qai_kernels_set_isa(QAI_ISA_SCALAR);
    float *sc = logits_batched(m, toks, n, 64, 2);
    qai_kernels_set_isa(best);
    snprintf(label, sizeof label, "%s: scalar vs %s", what, qai_kernels_describe());
    /* looser than the same-ISA checks: the SIMD exp/softmax differ from libm's
     * by an ulp or two, and for types whose activations are quantized to int8
     * (q8_0, q4_0, q4_k, q6_k) such a difference can flip one activation's
     * rounding, which moves a logit by ~scale/127 */
    CHECK_CLOSE(label, sc, bat, (long)n * V, tol * 10, tol * 10);
    qai_free(sc);
    qai_free(inc);
    qai_free(bat);
    qai_free(bat7);
    qai_model_close(m);
}

/* A prefix copied to another sequence continues exactly like the original;
 * truncating and re-decoding a position gives the same logits again. */
static void test_kv_copy_truncate(void) {
    qai_model *m;
    CHECK_OK(qai_model_open(g_model, &m));
    if (!m) return;
    const int V = qai_model_get_info(m)->n_vocab;
    qai_context *c = new_ctx(m, 64, 32, 3, 2);
    int32_t toks[12] = {1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315};
    CHECK_OK(qai_decode_tokens(c, 0, 0, toks, 10));
    float a[512], b[512];
    CHECK_OK(qai_decode_tokens(c, 0, 10, &toks[10], 1));
    memcpy(a, qai_context_logits(c, 0), (size_t)V * sizeof(float));
    qai_kv_copy(c, 0, 2, 10); /* the first 10 positions only */
    CHECK_OK(qai_decode_tokens(c, 2, 10, &toks[10], 1));
    memcpy(b, qai_context_logits(c, 0), (size_t)V * sizeof(float));
    CHECK_MSG(!memcmp(a, b, (size_t)V * sizeof(float)), "copied prefix continues differently");
    qai_kv_truncate(c, 0, 10);
    CHECK(qai_decode_tokens(c, 0, 11, &toks[11], 1) == QAI_ERR_ARG); /* position 10 is gone */
    CHECK_OK(qai_decode_tokens(c, 0, 10, &toks[10], 1));
    CHECK_MSG(!memcmp(a, qai_context_logits(c, 0), (size_t)V * sizeof(float)), "re-decoding after truncate differs");
    qai_context_free(c);
    qai_model_close(m);
}

/* qai_kv_copy over a destination that held longer, different content: block
 * tails past the copied length keep stale keys, which must never be read. */
static void test_kv_copy_blocks(void) {
    qai_model *m;
    CHECK_OK(qai_model_open(g_model, &m));
    if (!m) return;
    const int V = qai_model_get_info(m)->n_vocab;
    int32_t toks[48], other[48];
    for (int i = 0; i < 48; i++) toks[i] = 1 + (i * 37 + 11) % (V - 1), other[i] = 1 + (i * 53 + 5) % (V - 1);
    const int ns[] = {1, 15, 16, 17, 31, 33};
    for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
        const int n = ns[k];
        qai_context *c = new_ctx(m, 64, 64, 2, 2), *ref = new_ctx(m, 64, 64, 1, 2);
        CHECK_OK(qai_decode_tokens(c, 1, 0, other, 48)); /* sequence 1 full of other keys */
        CHECK_OK(qai_decode_tokens(c, 0, 0, toks, n));
        qai_kv_copy(c, 0, 1, n);
        CHECK_OK(qai_decode_tokens(c, 1, n, toks + n, 8)); /* continues in sequence 1 ... */
        CHECK_OK(qai_decode_tokens(ref, 0, 0, toks, n + 8)); /* ... like the whole text alone */
        char what[64];
        snprintf(what, sizeof what, "kv copy of %d positions, continued", n);
        CHECK_CLOSE(what, qai_context_logits(c, 7), qai_context_logits(ref, n + 7), V, 1e-4f, 1e-4f);
        qai_context_free(c);
        qai_context_free(ref);
    }
    qai_model_close(m);
}

/* Decoding steps of 4 sequences whose batches mix them at random — each step
 * gives every sequence 0, 1 or 2 tokens in a random order — equal each
 * sequence decoded alone one token at a time. */
static void test_mixed_steps(const char *path, float tol) {
    qai_model *m;
    CHECK_OK(qai_model_open(path, &m));
    if (!m) return;
    const int V = qai_model_get_info(m)->n_vocab, NS = 4, N = 40;
    int32_t toks[4][40];
    qai_rng r;
    qai_rng_seed(&r, 11);
    for (int s = 0; s < NS; s++)
        for (int i = 0; i < N; i++) toks[s][i] = (int32_t)(qai_rng_u64(&r) % (uint64_t)V);
    float *alone[4];
    for (int s = 0; s < NS; s++) alone[s] = logits_incremental(m, toks[s], N, 2);
    qai_context *c = new_ctx(m, 256, 16, NS, 2);
    int done[4] = {0}, bad = 0;
    float worst = 0;
    for (int step = 0; step < 200; step++) {
        int32_t tk[8], pos[8], seq[8];
        int8_t want[8];
        int n = 0, order[4] = {0, 1, 2, 3};
        for (int i = NS - 1; i > 0; i--) { /* shuffle the sequences' order in the batch */
            int k = (int)(qai_rng_u64(&r) % (uint64_t)(i + 1)), t = order[i];
            order[i] = order[k], order[k] = t;
        }
        for (int o = 0; o < NS; o++) {
            int s = order[o], take = (int)(qai_rng_u64(&r) % 3);
            for (int t = 0; t < take && done[s] < N; t++, done[s]++)
                tk[n] = toks[s][done[s]], pos[n] = done[s], seq[n] = s, want[n] = 1, n++;
        }
        if (n == 0) continue;
        qai_batch b = {.n = n, .token = tk, .pos = pos, .seq = seq, .want_logits = want};
        CHECK_OK(qai_decode(c, &b));
        for (int i = 0; i < n; i++) {
            const float *got = qai_context_logits(c, i), *ref = alone[seq[i]] + (size_t)pos[i] * V;
            for (int v = 0; v < V; v++) {
                float d = fabsf(got[v] - ref[v]);
                if (d > worst) worst = d;
                if (d > tol + tol * fabsf(ref[v])) bad++;
            }
        }
    }
    for (int s = 0; s < NS; s++) CHECK(done[s] == N);
    CHECK_MSG(bad == 0, "%s: randomly mixed decoding steps differ from each sequence alone (%d logits, max diff %g)",
              path, bad, (double)worst);
    qai_context_free(c);
    for (int s = 0; s < NS; s++) qai_free(alone[s]);
    qai_model_close(m);
}

static void test_llamacpp_gguf_same_logits(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/models/stories260K-gguf/stories260K.gguf", TEST_DATA());
    qai_model *a, *b;
    CHECK_OK(qai_model_open(g_model, &a));
    CHECK_OK(qai_model_open(path, &b));
    if (!a || !b) return;
    int32_t toks[] = {1, 403, 407, 261, 378, 432, 383, 286, 261, 376};
    int n = 10, V = qai_model_get_info(a)->n_vocab;
    float *la = logits_batched(a, toks, n, 64, 2), *lb = logits_batched(b, toks, n, 64, 2);
    CHECK_MSG(!memcmp(la, lb, (size_t)n * V * sizeof(float)), "converted and llama.cpp-written GGUF differ");
    qai_free(la);
    qai_free(lb);
    qai_model_close(a);
    qai_model_close(b);
}

static void test_errors(void) {
    qai_model *m;
    CHECK_OK(qai_model_open(g_model, &m));
    if (!m) return;
    qai_context *c = new_ctx(m, 16, 8, 1, 1);
    int32_t t = 5, bad = 100000;
    CHECK(qai_decode_tokens(c, 0, 0, &bad, 1) == QAI_ERR_ARG);
    CHECK(strstr(qai_last_error(), "outside the vocabulary") != NULL);
    CHECK(qai_decode_tokens(c, 0, 3, &t, 1) == QAI_ERR_ARG); /* gap */
    CHECK(qai_decode_tokens(c, 1, 0, &t, 1) == QAI_ERR_ARG); /* no such sequence */
    CHECK(qai_decode_tokens(c, 0, 16, &t, 1) != QAI_OK);     /* past the context */
    int32_t many[20] = {0};
    CHECK(qai_decode_tokens(c, 0, 0, many, 20) == QAI_ERR_RANGE);
    CHECK_OK(qai_decode_tokens(c, 0, 0, many, 16)); /* 16 tokens in chunks of 8 */
    qai_context_free(c);
    qai_model_close(m);
    CHECK(qai_model_open("/nonexistent.gguf", &m) != QAI_OK && m == NULL);
}

static void test_random_models(size_t n_cases) {
    struct {
        const char *arch;
        int dim, layers, heads, kv, ffn, vocab;
        qai_type type;
        float tol;
    } cases[] = {
        {"llama", 64, 2, 4, 2, 96, 300, QAI_TYPE_F32, 1e-4f},
        {"llama", 128, 2, 8, 2, 256, 320, QAI_TYPE_Q8_0, 2e-3f},
        {"qwen2", 64, 2, 4, 1, 128, 300, QAI_TYPE_F16, 1e-3f},
        {"llama", 256, 1, 4, 4, 512, 300, QAI_TYPE_Q4_K, 2e-3f},
        {"llama", 256, 1, 4, 2, 512, 300, QAI_TYPE_Q6_K, 2e-3f},
        {"llama", 64, 1, 2, 1, 64, 300, QAI_TYPE_Q4_0, 2e-3f},
        {"llama", 64, 1, 2, 2, 64, 300, QAI_TYPE_BF16, 1e-3f},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0] && i < n_cases; i++) {
        char path[512], what[128];
        snprintf(path, sizeof path, "%s/test_model_rand%zu.gguf", TEST_TMP(), i);
        qai_init_params p = {.arch = cases[i].arch, .dim = cases[i].dim, .layers = cases[i].layers,
                             .heads = cases[i].heads, .kv_heads = cases[i].kv, .ffn = cases[i].ffn,
                             .vocab = cases[i].vocab, .ctx = 256, .seed = 42 + i, .type = cases[i].type};
        CHECK_OK(qai_model_init_random(&p, path));
        snprintf(what, sizeof what, "%s %s d%d h%d/%d", cases[i].arch, qai_type_info(cases[i].type)->name,
                 cases[i].dim, cases[i].heads, cases[i].kv);
        test_consistency(path, what, cases[i].tol);
        if (i < 3) test_mixed_steps(path, cases[i].tol); /* R = 2, 4, 4: one to two tokens per attention task */
        remove(path);
    }
}

/* The f16 cache against the f32 one on the same tokens: close (the keys and
 * values carry a relative rounding of at most 2^-11) but not equal, and an
 * unknown type is refused. */
static void test_kv_types(const char *path, const char *what, float tol) {
    qai_model *m;
    CHECK_OK(qai_model_open(path, &m));
    if (!m) return;
    const int V = qai_model_get_info(m)->n_vocab, n = 40;
    int32_t toks[40];
    for (int i = 0; i < n; i++) toks[i] = 1 + (i * 131 + 7) % (V - 1);
    g_kv = QAI_TYPE_F32;
    float *a = logits_batched(m, toks, n, 64, 2);
    g_kv = QAI_TYPE_F16;
    float *b = logits_batched(m, toks, n, 64, 2);
    float worst = 0;
    for (long i = 0; i < (long)n * V; i++) worst = fmaxf(worst, fabsf(a[i] - b[i]));
    printf("%s: largest logit difference f16 vs f32 KV cache %g\n", what, (double)worst);
    CHECK_MSG(worst <= tol, "%s: f16 KV cache logits differ from f32 by %g (> %g)", what, (double)worst, (double)tol);
    CHECK_MSG(worst > 0, "%s: f16 KV cache gives exactly the f32 logits: nothing was rounded?", what);
    qai_free(a);
    qai_free(b);
    qai_context_params cp = qai_context_default_params();
    cp.kv_type = QAI_TYPE_Q8_0;
    qai_context *c = NULL;
    CHECK(qai_context_new(m, &cp, &c) == QAI_ERR_ARG && c == NULL);
    qai_type t;
    CHECK(qai_kv_type_parse("F16", &t) == QAI_OK && t == QAI_TYPE_F16);
    CHECK(qai_kv_type_parse("f32", &t) == QAI_OK && t == QAI_TYPE_F32);
    CHECK(qai_kv_type_parse("q8_0", &t) == QAI_ERR_ARG && strstr(qai_last_error(), "q8_0"));
    qai_model_close(m);
}

static long rss_kb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) kb = atol(line + 6);
    if (f) fclose(f);
    return kb;
}

/* Weights are used in place from the mmap: resident memory grows by about the
 * file size plus the KV cache and activations, not twice the file. */
static void test_memory(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/test_model_mem.gguf", TEST_TMP());
    qai_init_params p = {.arch = "llama", .dim = 512, .layers = 4, .heads = 8, .kv_heads = 8, .ffn = 1536,
                         .vocab = 4096, .ctx = 128, .seed = 1, .type = QAI_TYPE_F32};
    CHECK_OK(qai_model_init_random(&p, path));
    long before = rss_kb();
    qai_model *m;
    CHECK_OK(qai_model_open(path, &m));
    if (!m) return;
    qai_context *c = new_ctx(m, 128, 64, 1, 2);
    int32_t toks[64];
    for (int i = 0; i < 64; i++) toks[i] = i + 3;
    CHECK_OK(qai_decode_tokens(c, 0, 0, toks, 64));
    long grown = rss_kb() - before;
    long file_kb = (long)(qai_gguf_file_size(qai_model_gguf(m)) / 1024);
    long kv_kb = 2L * 4 * 128 * 512 * 2 / 1024; /* f16 (g_kv after test_kv_types) */
    long act_kb = 64L * (512 * 6 + 1536 * 2) * 4 / 1024 + 64L * 4096 * 4 / 1024;
    CHECK_MSG(grown < file_kb + kv_kb + act_kb + 12 * 1024, "resident memory grew by %ld KB; file %ld KB, KV %ld KB",
              grown, file_kb, kv_kb);
    qai_context_free(c);
    qai_model_close(m);
    remove(path);
}

int main(void) {
    char bin[512], tok[512];
    snprintf(bin, sizeof bin, "%s/models/stories260K/stories260K.bin", TEST_DATA());
    snprintf(tok, sizeof tok, "%s/models/stories260K/tok512.bin", TEST_DATA());
    snprintf(g_model, sizeof g_model, "%s/test_model_stories260K.gguf", TEST_TMP());
    CHECK_OK(qai_convert_llama2c(bin, tok, g_model));
    CHECK(qai_context_default_params().kv_type == QAI_TYPE_F16);
    test_errors();
    for (int t = 0; t < 2; t++) {
        g_kv = t ? QAI_TYPE_F16 : QAI_TYPE_F32;
        printf("-- KV cache %s\n", t ? "f16" : "f32");
        test_greedy_reference();
        test_llamacpp_gguf_same_logits();
        test_consistency(g_model, "stories260K", 1e-4f);
        test_kv_copy_truncate();
        test_kv_copy_blocks();
        test_mixed_steps(g_model, 1e-4f);
        /* f16: the GQA and bias shapes (the weight types do not touch the cache) */
        test_random_models(t ? 3 : 100);
    }
    test_kv_types(g_model, "stories260K", 0.05f);
    {
        char path[512];
        snprintf(path, sizeof path, "%s/test_model_kvtypes.gguf", TEST_TMP());
        qai_init_params p = {.arch = "llama", .dim = 256, .layers = 2, .heads = 4, .kv_heads = 2, .ffn = 512,
                             .vocab = 300, .ctx = 256, .seed = 9, .type = QAI_TYPE_F32, .std = 0.1f};
        CHECK_OK(qai_model_init_random(&p, path));
        test_kv_types(path, "random llama S=64", 0.05f); /* head size 64: the SIMD kernels */
        remove(path);
    }
    g_kv = QAI_TYPE_F16;
    test_memory();
    remove(g_model);
    return test_summary();
}
