/* Training runs: resume from a checkpoint equals the uninterrupted run to the
 * bit; thread count and reruns change nothing; the exported GGUF gives the
 * training forward pass's logits in the inference engine; corrupted
 * checkpoints and impossible configs are refused. */
#include <unistd.h>

#include "qai/model.h"
#include "qai/train.h"
#include "test.h"

static char tmpdir[512];

static qai_train_config small(int threads) {
    qai_train_config c = qai_train_config_default();
    c.dim = 32, c.layers = 2, c.heads = 4, c.kv_heads = 2, c.ffn = 48, c.vocab = 300;
    c.seq = 16, c.batch = 3, c.grad_accum = 2, c.max_steps = 8, c.warmup = 2, c.lr = 3e-3f;
    c.threads = threads, c.seed = 99, c.data = "random";
    return c;
}

/* Runs steps [from, to) and records the loss bits. */
static void run_steps(qai_trainer *t, int to, float *losses) {
    qai_train_stats s;
    for (;;) {
        qai_trainer_stats(t, &s);
        if (s.step >= to) break;
        int step = qai_trainer_step(t);
        CHECK(step > 0);
        if (step <= 0) break;
        qai_trainer_stats(t, &s);
        losses[step - 1] = s.loss;
    }
}

static void params_equal(qai_trainer *a, qai_trainer *b, const char *what) {
    bool same = qai_trainer_n_tensors(a) == qai_trainer_n_tensors(b);
    for (int i = 0; same && i < qai_trainer_n_tensors(a); i++) {
        int64_t ne[2];
        float *pa, *pb;
        qai_trainer_tensor(a, i, ne, &pa, NULL);
        qai_trainer_tensor(b, i, NULL, &pb, NULL);
        same = !memcmp(pa, pb, (size_t)(ne[0] * ne[1]) * sizeof(float));
    }
    CHECK_MSG(same, "%s: weights differ", what);
}

static void test_resume_threads(void) {
    float straight[8], resumed[8], two[8];
    qai_train_config c = small(1);
    qai_trainer *a, *b, *r, *t2;
    CHECK_OK(qai_trainer_new(&c, &a));
    run_steps(a, 8, straight);
    CHECK(straight[7] < straight[0] + 1.0f && isfinite(straight[7]));

    /* stop after 3 steps, save, resume in a new trainer */
    char ckpt[600];
    snprintf(ckpt, sizeof ckpt, "%s/resume.qck", tmpdir);
    CHECK_OK(qai_trainer_new(&c, &b));
    run_steps(b, 3, resumed);
    CHECK_OK(qai_trainer_save(b, ckpt));
    qai_trainer_free(b);
    const char *bad_over[] = {"lr=0.5", NULL}, *over[] = {"max-steps=8", "threads=1", NULL};
    CHECK(qai_trainer_resume(ckpt, bad_over, &r) == QAI_ERR_ARG && !r);
    CHECK_OK(qai_trainer_resume(ckpt, over, &r));
    if (r) {
        run_steps(r, 8, resumed);
        CHECK_MSG(!memcmp(straight, resumed, sizeof straight), "resumed losses differ: %.9g vs %.9g at step 8",
                  straight[7], resumed[7]);
        params_equal(a, r, "resume");
        qai_trainer_free(r);
    }

    /* 2 threads: same bits */
    qai_train_config c2 = small(2);
    CHECK_OK(qai_trainer_new(&c2, &t2));
    run_steps(t2, 8, two);
    CHECK_MSG(!memcmp(straight, two, sizeof straight), "2 threads differ: %.9g vs %.9g", straight[7], two[7]);
    params_equal(a, t2, "threads");
    qai_trainer_free(t2);
    qai_trainer_free(a);

    /* a corrupted checkpoint is refused, a truncated one too */
    FILE *f = fopen(ckpt, "r+b");
    fseek(f, 4000, SEEK_SET);
    int ch = fgetc(f);
    fseek(f, 4000, SEEK_SET);
    fputc(ch ^ 1, f);
    fclose(f);
    qai_trainer *bad = NULL;
    CHECK(qai_trainer_resume(ckpt, NULL, &bad) == QAI_ERR_FORMAT && !bad);
    CHECK(strstr(qai_last_error(), "corrupted") != NULL);
    CHECK(truncate(ckpt, 100) == 0);
    CHECK(qai_trainer_resume(ckpt, NULL, &bad) == QAI_ERR_FORMAT && !bad);
    CHECK(strstr(qai_last_error(), "truncated") != NULL);
}

static void test_export_logits(bool tied) {
    qai_train_config c = small(2);
    c.batch = 1, c.seq = 12, c.tie_embeddings = tied, c.kv_heads = 2, c.max_steps = 3;
    qai_trainer *t;
    CHECK_OK(qai_trainer_new(&c, &t));
    if (!t) return;
    float losses[3];
    run_steps(t, 3, losses); /* trained weights, not just the init */
    int32_t tokens[13];
    for (int i = 0; i < 13; i++) tokens[i] = (int32_t)((i * 37 + 5) % 300);
    float loss;
    CHECK_OK(qai_trainer_forward_backward(t, tokens, false, 0, &loss));
    char path[600];
    snprintf(path, sizeof path, "%s/export%d.gguf", tmpdir, tied);
    CHECK_OK(qai_trainer_export_gguf(t, path));
    qai_model *m;
    CHECK_OK(qai_model_open(path, &m));
    if (!m) {
        qai_trainer_free(t);
        return;
    }
    qai_context_params cp = qai_context_default_params();
    cp.n_ctx = 16;
    cp.n_threads = 1;
    qai_context *ctx;
    CHECK_OK(qai_context_new(m, &cp, &ctx));
    int32_t pos[12], seq[12];
    int8_t want[12];
    for (int i = 0; i < 12; i++) pos[i] = i, seq[i] = 0, want[i] = 1;
    qai_batch b = {12, tokens, pos, seq, want};
    CHECK_OK(qai_decode(ctx, &b));
    const float *train_logits = qai_trainer_logits(t);
    double maxd = 0, maxv = 0;
    for (int i = 0; i < 12; i++) {
        const float *inf = qai_context_logits(ctx, i);
        for (int v = 0; v < 300; v++) {
            maxd = fmax(maxd, fabs(inf[v] - train_logits[i * 300 + v]));
            maxv = fmax(maxv, fabs(train_logits[i * 300 + v]));
        }
    }
    CHECK_MSG(maxd < 1e-4 * fmax(1, maxv), "exported model's logits differ by %g (tied %d)", maxd, tied);
    qai_context_free(ctx);
    qai_model_close(m);
    qai_trainer_free(t);
}

static void test_bad_config(void) {
    qai_train_config c = small(1);
    qai_trainer *t = NULL;
    c.heads = 5;
    CHECK(qai_trainer_new(&c, &t) == QAI_ERR_ARG && !t);
    CHECK(strstr(qai_last_error(), "heads (5) must divide dim (32)") != NULL);
    c = small(1);
    c.kv_heads = 3;
    CHECK(qai_trainer_new(&c, &t) == QAI_ERR_ARG);
    c = small(1);
    c.data = "/nonexistent/dataset";
    CHECK(qai_trainer_new(&c, &t) != QAI_OK && !t);
    CHECK(qai_train_config_set(&c, "lr", "fast") == QAI_ERR_ARG);
    CHECK(qai_train_config_set(&c, "no-such-key", "1") == QAI_ERR_ARG);
    CHECK_OK(qai_train_config_set(&c, "grad-accum", "4"));
    CHECK_EQ_INT(c.grad_accum, 4);

    char path[600];
    snprintf(path, sizeof path, "%s/cfg.yaml", tmpdir);
    FILE *f = fopen(path, "w");
    fputs("dim: 64\nheads: 4\nlr: 2.5e-4\ndata: random\ntie-embeddings: true\nseed: 18446744073709551615\n", f);
    fclose(f);
    c = qai_train_config_default();
    CHECK_OK(qai_train_config_load(path, &c));
    CHECK(c.dim == 64 && c.heads == 4 && fabsf(c.lr - 2.5e-4f) < 1e-10f && c.tie_embeddings);
    CHECK(c.seed == 18446744073709551615ull);
    f = fopen(path, "w");
    fputs("dim: sixty\n", f);
    fclose(f);
    CHECK(qai_train_config_load(path, &c) != QAI_OK && strstr(qai_last_error(), "dim"));
    f = fopen(path, "w");
    fputs("dimm: 3\n", f);
    fclose(f);
    CHECK(qai_train_config_load(path, &c) != QAI_OK && strstr(qai_last_error(), "unknown key 'dimm'"));
    qai_train_config_release();
}

int main(void) {
    const char *tmp = getenv("QAI_TMP") ? getenv("QAI_TMP") : "/tmp";
    snprintf(tmpdir, sizeof tmpdir, "%s/train", tmp);
    qai_mkdirs(tmpdir);
    test_resume_threads();
    test_export_logits(false);
    test_export_logits(true);
    test_bad_config();
    return test_summary();
}
