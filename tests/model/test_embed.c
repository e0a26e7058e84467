/* Sentence embeddings (qai_embed): unit length; independent of the batch
 * chunking; leave other sequences' caches alone; and agree with the logits
 * path — mean(logits rows) = W_out · mean(final-norm states), so W_out · e
 * must point the same way as the mean of the logits. */
#include "qai/gguf.h"
#include "qai/model.h"
#include "test.h"

int main(void) {
    const char *tmp = getenv("QAI_TMP") ? getenv("QAI_TMP") : "/tmp";
    char path[512];
    snprintf(path, sizeof path, "%s/embed_model.gguf", tmp);
    qai_init_params ip = {.arch = "llama", .dim = 32, .layers = 2, .heads = 4, .kv_heads = 2, .ffn = 48, .vocab = 300,
                          .ctx = 128, .seed = 3, .type = QAI_TYPE_F32, .std = 0.2f};
    CHECK_OK(qai_model_init_random(&ip, path));
    qai_model *m;
    CHECK_OK(qai_model_open(path, &m));
    if (!m) return test_summary();
    const int D = 32, V = 300, n = 20;
    int32_t tok[20];
    for (int i = 0; i < n; i++) tok[i] = (int32_t)((i * 53 + 11) % V);

    float e1[32], e2[32];
    qai_context_params cp = qai_context_default_params();
    cp.n_ctx = 64, cp.n_seq = 2, cp.n_threads = 2, cp.n_batch = 64;
    qai_context *c1, *c2;
    CHECK_OK(qai_context_new(m, &cp, &c1));
    cp.n_batch = 3; /* chunks of 3 tokens */
    CHECK_OK(qai_context_new(m, &cp, &c2));

    /* sequence 0 of c1 holds a conversation; embedding on sequence 1 must not touch it */
    CHECK_OK(qai_decode_tokens(c1, 0, 0, tok, 5));
    float before[300];
    memcpy(before, qai_context_logits(c1, 4), sizeof before);
    CHECK_OK(qai_embed(c1, 1, tok, n, e1));
    CHECK_OK(qai_embed(c2, 0, tok, n, e2));
    double norm = 0;
    for (int d = 0; d < D; d++) norm += (double)e1[d] * e1[d];
    CHECK(fabs(norm - 1) < 1e-5);
    CHECK_CLOSE("chunked embedding", e2, e1, D, 1e-5f, 1e-4f);
    CHECK_OK(qai_decode_tokens(c1, 0, 4, tok + 4, 1)); /* recompute position 4 on sequence 0 */
    CHECK_CLOSE("sequence 0 untouched", qai_context_logits(c1, 0), before, V, 1e-5f, 1e-4f);

    /* against the logits path */
    int8_t want[20];
    int32_t pos[20], seq[20];
    for (int i = 0; i < n; i++) want[i] = 1, pos[i] = i, seq[i] = 0;
    qai_kv_truncate(c1, 0, 0);
    qai_batch b = {n, tok, pos, seq, want};
    CHECK_OK(qai_decode(c1, &b));
    double mean_logits[300] = {0};
    for (int i = 0; i < n; i++)
        for (int v = 0; v < V; v++) mean_logits[v] += qai_context_logits(c1, i)[v] / n;
    const qai_gguf_tensor *w = qai_gguf_find_tensor(qai_model_gguf(m), "output.weight");
    CHECK(w && w->type == QAI_TYPE_F32);
    if (w) {
        const float *W = w->data;
        double dot = 0, na = 0, nb = 0;
        for (int v = 0; v < V; v++) {
            double p = 0;
            for (int d = 0; d < D; d++) p += (double)W[v * D + d] * e1[d];
            dot += p * mean_logits[v], na += p * p, nb += mean_logits[v] * mean_logits[v];
        }
        double cosine = dot / sqrt(na * nb);
        CHECK_MSG(cosine > 0.99999, "W_out·e and the mean logits differ in direction: cosine %.8f", cosine);
    }
    /* errors */
    CHECK(qai_embed(c1, 0, tok, 0, e1) == QAI_ERR_ARG);
    int32_t many[65] = {0};
    CHECK(qai_embed(c1, 0, many, 65, e1) == QAI_ERR_RANGE);
    CHECK(qai_embed(c1, 2, tok, n, e1) == QAI_ERR_ARG);
    qai_context_free(c1);
    qai_context_free(c2);
    qai_model_close(m);
    return test_summary();
}
