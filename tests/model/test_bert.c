/* BERT encoders ("bert" GGUF architecture) against a float64 PyTorch
 * reference: tests/tools/bert_ref.py rebuilt the weights qai_bert_init_random
 * draws (documented streams), ran BERT written out with torch ops, and wrote
 * token ids and pooled embeddings to tests/data/bert_ref.json. Checked here:
 * ids; mean, [CLS] and unnormalized pooling with f32 weights (1e-4); Q8_0
 * weights within a stated tolerance; the file's pooling_type as default; batch
 * of N = N single calls, across chunk sizes; 1 and 2 threads bit-identical;
 * decoding refused; bad input rejected. */
#include <cjson/cJSON.h>
#include <math.h>

#include "qai/model.h"
#include "test.h"

#define MAXT 16
#define MAXD 64

static char *vocab[4096];
static int n_vocab;

static double max_diff(const float *a, const double *b, int n) {
    double m = 0;
    for (int i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

static double cosine(const float *a, const double *b, int n) {
    double d = 0, na = 0, nb = 0;
    for (int i = 0; i < n; i++) d += a[i] * b[i], na += (double)a[i] * a[i], nb += b[i] * b[i];
    return d / sqrt(na * nb);
}

static void read_rows(cJSON *j, const char *key, double out[MAXT][MAXD], int nt, int D) {
    cJSON *arr = cJSON_GetObjectItem(j, key);
    for (int t = 0; t < nt; t++)
        for (int d = 0; d < D; d++) out[t][d] = cJSON_GetArrayItem(cJSON_GetArrayItem(arr, t), d)->valuedouble;
}

int main(void) {
    const char *data = test_env("QAI_TESTDATA", "tests/data"), *tmp = test_env("QAI_TMP", "/tmp");
    char path[1024], f32[1024], q8[1024];
    snprintf(path, sizeof path, "%s/bert_vocab.txt", data);
    char *vt;
    size_t vn;
    CHECK_OK(qai_file_read(path, &vt, &vn));
    if (!vt) return test_summary();
    for (size_t i = 0; i < vn && n_vocab < 4096;) {
        size_t j = i;
        while (j < vn && vt[j] != '\n') j++;
        vt[j] = 0;
        vocab[n_vocab++] = vt + i;
        i = j + 1;
    }
    snprintf(path, sizeof path, "%s/bert_ref.json", data);
    char *jt;
    size_t jn;
    CHECK_OK(qai_file_read(path, &jt, &jn));
    cJSON *j = jt ? cJSON_ParseWithLength(jt, jn) : NULL;
    CHECK(j != NULL);
    if (!j) return test_summary();
    cJSON *cfg = cJSON_GetObjectItem(j, "config");
#define CFG(k) cJSON_GetObjectItem(cfg, k)->valueint
    const int D = CFG("dim"), NT = cJSON_GetArraySize(cJSON_GetObjectItem(j, "texts"));
    CHECK(D <= MAXD && NT <= MAXT);
    qai_init_params ip = {.dim = D, .layers = CFG("layers"), .heads = CFG("heads"), .ffn = CFG("ffn"),
                          .ctx = CFG("ctx"), .seed = (uint64_t)CFG("seed"), .type = QAI_TYPE_F32,
                          .std = (float)cJSON_GetObjectItem(cfg, "std")->valuedouble};
    snprintf(f32, sizeof f32, "%s/bert_f32.gguf", tmp);
    snprintf(q8, sizeof q8, "%s/bert_q8_0.gguf", tmp);
    CHECK_OK(qai_bert_init_random(&ip, (const char *const *)vocab, n_vocab, 1, f32));
    ip.type = QAI_TYPE_Q8_0;
    CHECK_OK(qai_bert_init_random(&ip, (const char *const *)vocab, n_vocab, 2, q8));

    static double ref_mean[MAXT][MAXD], ref_cls[MAXT][MAXD], ref_raw[MAXT][MAXD];
    read_rows(j, "mean", ref_mean, NT, D);
    read_rows(j, "cls", ref_cls, NT, D);
    read_rows(j, "mean_raw", ref_raw, NT, D);

    qai_model *m = NULL;
    CHECK_OK(qai_model_open(f32, &m));
    if (!m) return test_summary();
    const qai_model_info *hp = qai_model_get_info(m);
    CHECK(hp->is_encoder && !strcmp(hp->arch, "bert") && hp->pooling == QAI_POOLING_MEAN);
    CHECK(hp->n_embd == D && hp->n_layer == ip.layers && hp->n_vocab == n_vocab && hp->n_ctx_train == ip.ctx);

    /* token ids: qai's WordPiece against the reference's */
    int32_t *ids[MAXT];
    int n_ids[MAXT];
    cJSON *jids = cJSON_GetObjectItem(j, "ids"), *texts = cJSON_GetObjectItem(j, "texts");
    for (int t = 0; t < NT; t++) {
        const char *text = cJSON_GetArrayItem(texts, t)->valuestring;
        size_t n;
        CHECK_OK(qai_tokenizer_encode(qai_model_tokenizer(m), text, strlen(text), QAI_TOK_ADD_SPECIAL, &ids[t], &n));
        n_ids[t] = (int)n;
        cJSON *want = cJSON_GetArrayItem(jids, t);
        bool same = (int)n == cJSON_GetArraySize(want);
        for (int i = 0; same && i < (int)n; i++) same = ids[t][i] == cJSON_GetArrayItem(want, i)->valueint;
        CHECK_MSG(same, "text %d '%s': ids differ from the reference", t, text);
    }

    qai_context_params cp = qai_context_default_params();
    cp.n_threads = 1;
    qai_context *c1, *c2, *cs;
    CHECK_OK(qai_context_new(m, &cp, &c1));
    cp.n_threads = 2;
    CHECK_OK(qai_context_new(m, &cp, &c2));
    cp.n_batch = 8; /* raised to n_ctx (48): chunks of a few texts */
    CHECK_OK(qai_context_new(m, &cp, &cs));
    CHECK(qai_context_n_ctx(c1) == ip.ctx);

    static float one[MAXT][MAXD], two[MAXT][MAXD], batch[MAXT][MAXD], chunked[MAXT][MAXD], cls[MAXT][MAXD],
        raw[MAXT][MAXD];
    double worst = 0;
    for (int t = 0; t < NT; t++) {
        CHECK_OK(qai_embed(c1, 0, ids[t], n_ids[t], one[t]));
        CHECK_OK(qai_embed(c2, 0, ids[t], n_ids[t], two[t]));
        double dm = max_diff(one[t], ref_mean[t], D);
        worst = fmax(worst, dm);
        CHECK_MSG(dm < 1e-4, "text %d: mean pooling differs from the reference by %.3g", t, dm);
    }
    printf("f32 mean pooling: max |qai - torch| = %.3g\n", worst);
    CHECK_MSG(!memcmp(one, two, sizeof one), "1 and 2 threads give different embeddings");

    /* batch of all texts = one by one, whatever the chunking */
    const int32_t *const *tp = (const int32_t *const *)ids;
    qai_embed_params ep = qai_embed_default_params();
    CHECK_OK(qai_embed_batch(c2, 0, NT, tp, n_ids, &ep, batch[0]));
    CHECK_OK(qai_embed_batch(cs, 0, NT, tp, n_ids, NULL, chunked[0]));
    for (int t = 0; t < NT; t++) {
        CHECK_CLOSE("batch = single", batch[t], one[t], D, 1e-6f, 1e-5f);
        CHECK_CLOSE("chunked batch = single", chunked[t], one[t], D, 1e-6f, 1e-5f);
    }
    /* [CLS] pooling and no normalization */
    ep.pooling = QAI_POOLING_CLS;
    CHECK_OK(qai_embed_batch(c2, 0, NT, tp, n_ids, &ep, cls[0]));
    ep.pooling = QAI_POOLING_MEAN;
    ep.normalize = false;
    CHECK_OK(qai_embed_batch(c1, 0, NT, tp, n_ids, &ep, raw[0]));
    for (int t = 0; t < NT; t++) {
        double dc = max_diff(cls[t], ref_cls[t], D), dr = max_diff(raw[t], ref_raw[t], D);
        CHECK_MSG(dc < 1e-4, "text %d: CLS pooling differs by %.3g", t, dc);
        CHECK_MSG(dr < 1e-4, "text %d: unnormalized mean differs by %.3g", t, dr);
        double cm = 0;
        for (int d = 0; d < D; d++) cm += fabs((double)cls[t][d] - one[t][d]);
        CHECK_MSG(n_ids[t] < 3 || cm > 1e-2, "text %d: CLS and mean pooling agree; the test cannot tell them apart", t);
    }

    /* errors: decoding, empty, too long, bad token */
    int32_t tok2[2] = {ids[0][0], ids[0][1]};
    CHECK(qai_decode_tokens(c1, 0, 0, tok2, 2) == QAI_ERR_UNSUPPORTED);
    CHECK(qai_embed(c1, 0, tok2, 0, one[0]) == QAI_ERR_ARG);
    int32_t many[64] = {0};
    CHECK(qai_embed(c1, 0, many, ip.ctx + 1, one[0]) == QAI_ERR_RANGE);
    int32_t bad[3] = {ids[0][0], n_vocab, ids[0][1]};
    CHECK(qai_embed(c1, 0, bad, 3, one[0]) == QAI_ERR_ARG);
    ep.pooling = (qai_pooling)7;
    CHECK(qai_embed_batch(c1, 0, 1, tp, n_ids, &ep, one[0]) == QAI_ERR_ARG);
    qai_context_free(c1);
    qai_context_free(c2);
    qai_context_free(cs);
    qai_model_close(m);

    /* Q8_0 weights (activations quantized to Q8_0 too), pooling_type 2 in the file */
    CHECK_OK(qai_model_open(q8, &m));
    if (m) {
        CHECK(qai_model_get_info(m)->pooling == QAI_POOLING_CLS);
        cp.n_threads = 2, cp.n_batch = 0;
        CHECK_OK(qai_context_new(m, &cp, &c1));
        double wq = 0, wc = 1;
        for (int t = 0; t < NT && c1; t++) {
            CHECK_OK(qai_embed(c1, 0, ids[t], n_ids[t], one[t]));
            wq = fmax(wq, max_diff(one[t], ref_cls[t], D));
            wc = fmin(wc, cosine(one[t], ref_cls[t], D));
        }
        printf("q8_0 CLS pooling: max |qai - torch(f32 weights)| = %.3g, min cosine %.6f\n", wq, wc);
        CHECK_MSG(wq < 1e-2 && wc > 0.9995, "q8_0: max difference %.3g, cosine %.6f (allowed 1e-2, 0.9995)", wq, wc);
        qai_context_free(c1);
        qai_model_close(m);
    }

    for (int t = 0; t < NT; t++) qai_free(ids[t]);
    cJSON_Delete(j);
    qai_free(jt);
    qai_free(vt);
    return test_summary();
}
