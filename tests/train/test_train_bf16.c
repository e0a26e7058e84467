/* matmul: bf16 — mixed-precision training (bf16 inputs to the linear layers'
 * GEMMs, fp32 sums, fp32 master weights and optimizer):
 *   - 20 steps on a tiny model follow the fp32 run's losses within a stated
 *     tolerance, and are not the fp32 run (the bf16 path is really taken);
 *   - bit-identical across 1 and 2 threads;
 *   - resume from a checkpoint continues to the bit, and refuses to switch to
 *     fp32; the config records the mode;
 *   - without AVX512_BF16 (played by lowering the kernel ISA) asking for bf16
 *     is a clear error, not a silent fallback.
 * The finite-difference and PyTorch checks (test_train_grad.c,
 * test_train_ref.c) stay fp32: bf16 rounding is far above their tolerances. */
#include <unistd.h>

#include "qai/tensor.h"
#include "qai/train.h"
#include "test.h"

enum { STEPS = 20 };
static char tmpdir[512];

static qai_train_config tiny(int threads, qai_train_matmul mm) {
    qai_train_config c = qai_train_config_default();
    c.dim = 64, c.layers = 2, c.heads = 4, c.kv_heads = 2, c.ffn = 96, c.vocab = 128;
    c.seq = 32, c.batch = 4, c.grad_accum = 1, c.max_steps = STEPS, c.warmup = 2, c.lr = 3e-3f;
    c.threads = threads, c.seed = 7, c.data = "random", c.matmul = mm;
    return c;
}

/* A learnable stream (a fixed walk through the vocabulary, so the loss falls
 * well below ln V) fed to every step; steps [from, to). */
static void run(qai_trainer *t, int from, int to, float *losses) {
    const qai_train_config *c = qai_trainer_config(t);
    int W = c->seq + 1;
    int32_t *tok = qai_malloc((size_t)c->batch * W * sizeof(int32_t));
    for (int b = 0; b < c->batch; b++)
        for (int i = 0; i < W; i++) tok[b * W + i] = (int32_t)((b * 11 + i * 7 + (i * i) % 5) % c->vocab);
    for (int s = from; s < to; s++) {
        int step = qai_trainer_step_tokens(t, tok);
        CHECK_EQ_INT(step, s + 1);
        qai_train_stats st;
        qai_trainer_stats(t, &st);
        losses[s] = st.loss;
    }
    qai_free(tok);
}

static bool same_params(qai_trainer *a, qai_trainer *b) {
    for (int i = 0; i < qai_trainer_n_tensors(a); i++) {
        int64_t ne[2];
        float *pa, *pb;
        qai_trainer_tensor(a, i, ne, &pa, NULL);
        qai_trainer_tensor(b, i, NULL, &pb, NULL);
        if (memcmp(pa, pb, (size_t)(ne[0] * ne[1]) * sizeof(float))) return false;
    }
    return true;
}

static void test_bf16_run(void) {
    float f32[STEPS], b1[STEPS], b2[STEPS], res[STEPS];
    qai_trainer *tf, *t1, *t2, *r;
    qai_train_config cf = tiny(1, QAI_MATMUL_FP32), c1 = tiny(1, QAI_MATMUL_BF16), c2 = tiny(2, QAI_MATMUL_BF16);
    CHECK_OK(qai_trainer_new(&cf, &tf));
    CHECK_OK(qai_trainer_new(&c1, &t1));
    CHECK_OK(qai_trainer_new(&c2, &t2));
    if (!tf || !t1 || !t2) return;
    run(tf, 0, STEPS, f32);
    run(t1, 0, STEPS, b1);
    run(t2, 0, STEPS, b2);

    /* Tolerance: bf16 keeps 8 significant bits (relative rounding up to 2^-9
     * per input). The step-1 loss, from identical weights, differs only by that
     * rounding through 2 layers, averaged over 128 tokens: we see 4e-6; a
     * systematic error of one bf16 rounding would be ~1e-3, the bound. Later
     * steps add the drift of slightly different updates: we see at most 2e-4
     * relative over 20 steps (the loss halves meanwhile); the bound is 10× that. */
    double worst = 0;
    int worst_step = 0;
    bool differs = false;
    for (int s = 0; s < STEPS; s++) {
        double d = fabs((double)b1[s] - f32[s]) / f32[s];
        if (d > worst) worst = d, worst_step = s + 1;
        differs |= b1[s] != f32[s];
    }
    printf("losses fp32 %.6f -> %.6f, bf16 %.6f -> %.6f; largest relative difference %.2e at step %d\n", f32[0],
           f32[STEPS - 1], b1[0], b1[STEPS - 1], worst, worst_step);
    CHECK_MSG(fabsf(b1[0] - f32[0]) < 1e-3f, "step 1: bf16 loss %.6f vs fp32 %.6f", b1[0], f32[0]);
    CHECK_MSG(worst < 2e-3, "bf16 loss differs from fp32 by %.3f%% at step %d", 100 * worst, worst_step);
    CHECK_MSG(differs, "bf16 losses are the fp32 losses to the bit: the bf16 path was not taken");
    CHECK_MSG(f32[STEPS - 1] < 0.7f * f32[0] && b1[STEPS - 1] < 0.7f * b1[0], "the loss did not fall: %.4f -> %.4f",
              b1[0], b1[STEPS - 1]);
    CHECK_MSG(!memcmp(b1, b2, sizeof b1), "bf16: 2 threads differ from 1: %.9g vs %.9g at step %d", b2[STEPS - 1],
              b1[STEPS - 1], STEPS);
    CHECK_MSG(same_params(t1, t2), "bf16: weights differ between 1 and 2 threads");

    /* resume: stop after 8 steps, save, continue in a new trainer with 2 threads */
    char ckpt[600];
    snprintf(ckpt, sizeof ckpt, "%s/bf16.qck", tmpdir);
    qai_trainer *h;
    CHECK_OK(qai_trainer_new(&c1, &h));
    if (h) {
        run(h, 0, 8, res);
        CHECK_OK(qai_trainer_save(h, ckpt));
        qai_trainer_free(h);
    }
    const char *to_fp32[] = {"matmul=fp32", NULL}, *ok[] = {"threads=2", NULL};
    r = NULL;
    CHECK(qai_trainer_resume(ckpt, to_fp32, &r) == QAI_ERR_ARG && !r);
    CHECK(strstr(qai_last_error(), "'matmul' cannot change when resuming") != NULL);
    CHECK_OK(qai_trainer_resume(ckpt, ok, &r));
    if (r) {
        CHECK(qai_trainer_config(r)->matmul == QAI_MATMUL_BF16);
        run(r, 8, STEPS, res);
        CHECK_MSG(!memcmp(res, b1, sizeof res), "bf16 resume: %.9g vs %.9g at step %d", res[STEPS - 1], b1[STEPS - 1],
                  STEPS);
        CHECK_MSG(same_params(r, t1), "bf16 resume: weights differ");
        qai_trainer_free(r);
    }
    qai_trainer_free(tf);
    qai_trainer_free(t1);
    qai_trainer_free(t2);
}

static void test_config(void) {
    qai_train_config c = qai_train_config_default();
    CHECK(c.matmul == QAI_MATMUL_FP32);
    CHECK_OK(qai_train_config_set(&c, "matmul", "bf16"));
    CHECK(c.matmul == QAI_MATMUL_BF16);
    CHECK(qai_train_config_set(&c, "matmul", "fp16") == QAI_ERR_ARG);
    CHECK(strstr(qai_last_error(), "'fp16' is not fp32 or bf16") != NULL);
    char *j = qai_train_config_to_json(&c);
    CHECK(j && strstr(j, "\"matmul\":\"bf16\""));
    qai_free(j);
    char path[600];
    snprintf(path, sizeof path, "%s/bf16.yaml", tmpdir);
    FILE *f = fopen(path, "w");
    fputs("matmul: bf16\n", f);
    fclose(f);
    c = qai_train_config_default();
    CHECK_OK(qai_train_config_load(path, &c));
    CHECK(c.matmul == QAI_MATMUL_BF16);
    f = fopen(path, "w");
    fputs("matmul: 16\n", f);
    fclose(f);
    CHECK(qai_train_config_load(path, &c) != QAI_OK && strstr(qai_last_error(), "'matmul'"));
    qai_train_config_release();
}

/* A CPU without AVX512_BF16: lower the kernels to AVX2 (or scalar). */
static void test_no_bf16_cpu(void) {
    qai_kernels_set_isa(QAI_ISA_AVX2);
    CHECK(!qai_kernels_bf16());
    qai_train_config c = tiny(1, QAI_MATMUL_BF16);
    qai_trainer *t = NULL;
    CHECK(qai_trainer_new(&c, &t) == QAI_ERR_UNSUPPORTED && !t);
    CHECK_MSG(strstr(qai_last_error(), "--matmul bf16 needs a CPU with AVX512_BF16; this one has ") != NULL, "got: %s",
              qai_last_error());
    c.matmul = QAI_MATMUL_FP32; /* fp32 still trains */
    CHECK_OK(qai_trainer_new(&c, &t));
    qai_trainer_free(t);
    qai_kernels_set_isa(qai_cpu_isa());
}

int main(void) {
    const char *tmp = getenv("QAI_TMP") ? getenv("QAI_TMP") : "/tmp";
    snprintf(tmpdir, sizeof tmpdir, "%s/train_bf16", tmp);
    qai_mkdirs(tmpdir);
    test_config();
    test_no_bf16_cpu();
    if (qai_kernels_bf16()) test_bf16_run();
    else fprintf(stderr, "note: no AVX512_BF16 on this CPU; only the refusal is tested\n");
    return test_summary();
}
