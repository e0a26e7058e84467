/* The forward pass against references and against itself:
 * - stories260K (a real llama2.c model) converted with qai_convert_llama2c
 *   reproduces llama2.c run.c's greedy token sequences exactly;
 * - the llama.cpp-written GGUF of the same model gives the same logits;
 * - KV-cache decoding equals recomputing the whole sequence;
 * - batched prompt processing equals one token at a time;
 * - several sequences in one batch equal each alone;
 * - results are bit-identical across thread counts;
 * - the scalar kernels (qai_kernels_set_isa) agree with the SIMD ones;
 * - random-weight llama and qwen2 models of odd shapes run (GQA, biases). */
#include <cjson/cJSON.h>

#include "qai/convert.h"
#include "qai/model.h"
#include "test.h"

static char g_model[512];

static qai_context *new_ctx(qai_model *m, int n_ctx, int n_batch, int n_seq, int n_threads) {
    qai_context_params cp = qai_context_default_params();
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

static void test_random_models(void) {
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
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[512], what[128];
        snprintf(path, sizeof path, "%s/test_model_rand%zu.gguf", TEST_TMP(), i);
        qai_init_params p = {.arch = cases[i].arch, .dim = cases[i].dim, .layers = cases[i].layers,
                             .heads = cases[i].heads, .kv_heads = cases[i].kv, .ffn = cases[i].ffn,
                             .vocab = cases[i].vocab, .ctx = 256, .seed = 42 + i, .type = cases[i].type};
        CHECK_OK(qai_model_init_random(&p, path));
        snprintf(what, sizeof what, "%s %s d%d h%d/%d", cases[i].arch, qai_type_info(cases[i].type)->name,
                 cases[i].dim, cases[i].heads, cases[i].kv);
        test_consistency(path, what, cases[i].tol);
        remove(path);
    }
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
    long kv_kb = 2L * 4 * 128 * 512 * 4 / 1024;
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
    test_greedy_reference();
    test_llamacpp_gguf_same_logits();
    test_consistency(g_model, "stories260K", 1e-4f);
    test_errors();
    test_kv_copy_truncate();
    test_random_models();
    test_memory();
    remove(g_model);
    return test_summary();
}
