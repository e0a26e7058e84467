/* Causal attention skips the blocks of its T×T products that the mask zeroes;
 * forward and backward must give exactly the bits of the full products (the
 * left-out terms are exact zeros and qai_sgemm's K blocks stay the same) — for
 * sequence lengths below, at and past the block size and past QAI_SGEMM_KC,
 * with grouped-query heads, on 1 and 2 threads; and a few training steps of a
 * small model give the same losses and weights both ways. */
#include "qai/train.h"
#include "test.h"
#include "train/ops.h"

static float *rnd(qai_rng *r, long n) {
    float *x = qai_aligned_alloc((size_t)n * sizeof(float));
    for (long i = 0; i < n; i++) x[i] = qai_rng_float(r) * 2 - 1;
    return x;
}

static void check(qai_pool *pool, int B, int T, int H, int G, int S) {
    qai_rng r;
    qai_rng_seed(&r, (uint64_t)T * 131 + S * 7 + G);
    const long NH = (long)B * T * H * S, NG = (long)B * T * G * S, TT = (long)B * H * T * T;
    float *q = rnd(&r, NH), *k = rnd(&r, NG), *v = rnd(&r, NG), *dout = rnd(&r, NH);
    float *out[2], *probs[2], *dq[2], *dk[2], *dv[2];
    int nth = pool ? qai_pool_size(pool) : 1;
    void *work = qai_aligned_alloc(qai_attention_work_size(nth));
    float *scratch = qai_aligned_alloc((size_t)nth * T * T * sizeof(float));
    for (int full = 0; full < 2; full++) {
        qai_attention_full = full;
        out[full] = rnd(&r, NH), probs[full] = rnd(&r, TT); /* garbage in: everything must be written */
        dq[full] = rnd(&r, NH), dk[full] = rnd(&r, NG), dv[full] = rnd(&r, NG);
        for (long i = 0; i < (long)nth * T * T; i++) scratch[i] = 1e30f;
        qai_attention_forward(pool, out[full], probs[full], q, k, v, B, T, H, G, S, work);
        qai_attention_backward(pool, dq[full], dk[full], dv[full], scratch, dout, probs[full], q, k, v, B, T, H, G, S,
                               work);
    }
    qai_attention_full = false;
    const char *names[5] = {"out", "probs", "dq", "dk", "dv"};
    float **bufs[5] = {out, probs, dq, dk, dv};
    long sizes[5] = {NH, TT, NH, NG, NG};
    for (int i = 0; i < 5; i++) {
        long first = -1;
        for (long j = 0; j < sizes[i] && first < 0; j++)
            if (memcmp(&bufs[i][0][j], &bufs[i][1][j], sizeof(float))) first = j;
        CHECK_MSG(first < 0, "B%d T%d H%d G%d S%d threads %d: %s differs from the full products at %ld: %a vs %a", B, T,
                  H, G, S, nth, names[i], first, first < 0 ? 0.0 : bufs[i][0][first], first < 0 ? 0.0 : bufs[i][1][first]);
    }
    /* and it is attention: row 0 attends to itself only */
    CHECK_MSG(fabsf(probs[0][0] - 1.0f) < 1e-6f, "row 0 attends to itself with %g", probs[0][0]);
    for (int f = 0; f < 2; f++) {
        qai_aligned_free(out[f]), qai_aligned_free(probs[f]), qai_aligned_free(dq[f]);
        qai_aligned_free(dk[f]), qai_aligned_free(dv[f]);
    }
    qai_aligned_free(q), qai_aligned_free(k), qai_aligned_free(v), qai_aligned_free(dout);
    qai_aligned_free(work), qai_aligned_free(scratch);
}

static void run(bool full, float *losses, qai_trainer **out) {
    qai_attention_full = full;
    qai_train_config c = qai_train_config_default();
    c.dim = 32, c.layers = 2, c.heads = 4, c.kv_heads = 2, c.ffn = 48, c.vocab = 64;
    c.seq = 150, c.batch = 2, c.max_steps = 3, c.warmup = 1, c.threads = 2, c.seed = 3, c.data = "random";
    qai_trainer *t;
    CHECK_OK(qai_trainer_new(&c, &t));
    *out = t;
    for (int s = 0; t && s < 3; s++) {
        CHECK(qai_trainer_step(t) == s + 1);
        qai_train_stats st;
        qai_trainer_stats(t, &st);
        losses[s] = st.loss;
    }
    qai_attention_full = false;
}

int main(void) {
    qai_pool *p2 = qai_pool_new(2);
    static const int shapes[][5] = {{1, 1, 2, 1, 8},   {2, 5, 4, 2, 8},  {1, 64, 2, 2, 16}, {2, 65, 4, 1, 8},
                                    {1, 130, 2, 1, 16}, {1, 300, 2, 2, 8}, {1, 520, 1, 1, 8}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        check(NULL, shapes[i][0], shapes[i][1], shapes[i][2], shapes[i][3], shapes[i][4]);
        check(p2, shapes[i][0], shapes[i][1], shapes[i][2], shapes[i][3], shapes[i][4]);
    }
    qai_pool_free(p2);

    float skip[3], full[3];
    qai_trainer *a = NULL, *b = NULL;
    run(false, skip, &a);
    run(true, full, &b);
    CHECK_MSG(!memcmp(skip, full, sizeof skip), "training losses differ: %.9g vs %.9g", skip[2], full[2]);
    bool same = a && b;
    for (int i = 0; same && i < qai_trainer_n_tensors(a); i++) {
        int64_t ne[2];
        float *pa, *pb;
        qai_trainer_tensor(a, i, ne, &pa, NULL);
        qai_trainer_tensor(b, i, NULL, &pb, NULL);
        same = !memcmp(pa, pb, (size_t)(ne[0] * ne[1]) * sizeof(float));
    }
    CHECK_MSG(same, "weights differ after 3 steps with and without skipping");
    qai_trainer_free(a);
    qai_trainer_free(b);
    return test_summary();
}
