/* Backward passes against finite differences: each op alone (objective
 * sum(out·R) for a random R, so dout = R) and the whole model's loss with
 * respect to samples of every parameter tensor. Central differences in fp32
 * with a step of 1e-2 have an error of about 1e-4 here; the tolerances below
 * leave room for that, and a wrong backward is off by far more. */
#include "qai/tensor.h"
#include "qai/train.h"
#include "test.h"
#include "train/ops.h"

static qai_rng rng;
static float frand(void) { return qai_rng_float(&rng) * 2 - 1; }
static void fill(float *x, long n, float s) {
    for (long i = 0; i < n; i++) x[i] = frand() * s;
}
static double dotd(const float *a, const float *b, long n) {
    double s = 0;
    for (long i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/* Compares analytic and numeric gradients: |a - n| <= atol + rtol·max(|a|, |n|). */
static int grad_ok(const char *what, double ana, double num, double atol, double rtol) {
    double tol = atol + rtol * fmax(fabs(ana), fabs(num));
    if (fabs(ana - num) <= tol) return 1;
    fprintf(stderr, "  %s: analytic %.6g numeric %.6g\n", what, ana, num);
    return 0;
}

static void test_rmsnorm(qai_pool *pool) {
    enum { N = 5, D = 24 };
    float x[N * D], w[D], R[N * D], out[N * D], rstd[N], dx[N * D] = {0}, dw[D] = {0};
    fill(x, N * D, 1), fill(w, D, 1), fill(R, N * D, 1);
    qai_rmsnorm_forward(pool, out, rstd, x, w, N, D, 1e-5f);
    qai_rmsnorm_backward(pool, dx, dw, R, x, w, rstd, N, D);
    const float h = 1e-2f;
    int bad = 0;
    for (int i = 0; i < N * D; i += 7) {
        float keep = x[i];
        x[i] = keep + h;
        qai_rmsnorm_forward(pool, out, rstd, x, w, N, D, 1e-5f);
        double lp = dotd(out, R, N * D);
        x[i] = keep - h;
        qai_rmsnorm_forward(pool, out, rstd, x, w, N, D, 1e-5f);
        double lm = dotd(out, R, N * D);
        x[i] = keep;
        bad += !grad_ok("rmsnorm dx", dx[i], (lp - lm) / (2 * h), 2e-3, 2e-2);
    }
    for (int i = 0; i < D; i++) {
        float keep = w[i];
        w[i] = keep + h;
        qai_rmsnorm_forward(pool, out, rstd, x, w, N, D, 1e-5f);
        double lp = dotd(out, R, N * D);
        w[i] = keep - h;
        qai_rmsnorm_forward(pool, out, rstd, x, w, N, D, 1e-5f);
        double lm = dotd(out, R, N * D);
        w[i] = keep;
        bad += !grad_ok("rmsnorm dw", dw[i], (lp - lm) / (2 * h), 2e-3, 2e-2);
    }
    CHECK_EQ_INT(bad, 0);
}

static void test_swiglu_ce(qai_pool *pool) {
    enum { n = 64, N = 4, V = 11 };
    float g[n], u[n], R[n], hbuf[n], dg[n], du[n];
    fill(g, n, 4), fill(u, n, 2), fill(R, n, 1);
    qai_swiglu_backward(pool, dg, du, R, g, u, n);
    const float h = 1e-2f;
    int bad = 0;
    for (int i = 0; i < n; i++) {
        float keep = g[i];
        g[i] = keep + h;
        qai_swiglu_forward(pool, hbuf, g, u, n);
        double lp = dotd(hbuf, R, n);
        g[i] = keep - h;
        qai_swiglu_forward(pool, hbuf, g, u, n);
        double lm = dotd(hbuf, R, n);
        g[i] = keep;
        bad += !grad_ok("swiglu dg", dg[i], (lp - lm) / (2 * h), 1e-3, 1e-2);
        keep = u[i];
        u[i] = keep + h;
        qai_swiglu_forward(pool, hbuf, g, u, n);
        lp = dotd(hbuf, R, n);
        u[i] = keep - h;
        qai_swiglu_forward(pool, hbuf, g, u, n);
        lm = dotd(hbuf, R, n);
        u[i] = keep;
        bad += !grad_ok("swiglu du", du[i], (lp - lm) / (2 * h), 1e-3, 1e-2);
    }
    /* cross-entropy: mean loss over rows, gradient scaled by 1/N */
    float logits[N * V], work[N * V], losses[N];
    int32_t tg[N] = {0, 3, 10, 5};
    fill(logits, N * V, 3);
    memcpy(work, logits, sizeof work);
    qai_cross_entropy(pool, work, losses, tg, N, V, true, 1.0f / N);
    for (int i = 0; i < N * V; i++) {
        float tmp[N * V];
        memcpy(tmp, logits, sizeof tmp);
        tmp[i] += h;
        qai_cross_entropy(pool, tmp, losses, tg, N, V, false, 0);
        double lp = (losses[0] + losses[1] + losses[2] + losses[3]) / N;
        memcpy(tmp, logits, sizeof tmp);
        tmp[i] -= h;
        qai_cross_entropy(pool, tmp, losses, tg, N, V, false, 0);
        double lm = (losses[0] + losses[1] + losses[2] + losses[3]) / N;
        bad += !grad_ok("cross-entropy", work[i], (lp - lm) / (2 * h), 5e-4, 1e-2);
    }
    /* the loss itself: -log softmax */
    double mx = -1e30, s = 0;
    for (int j = 0; j < V; j++) mx = fmax(mx, logits[V + j]);
    for (int j = 0; j < V; j++) s += exp(logits[V + j] - mx);
    qai_cross_entropy(pool, logits, losses, tg, N, V, false, 0);
    CHECK(fabs(losses[1] - (mx + log(s) - logits[V + 3])) < 1e-5);
    CHECK_EQ_INT(bad, 0);
}

static void test_attention(qai_pool *pool) {
    enum { B = 2, T = 7, H = 4, G = 2, S = 6, N = B * T };
    float q[N * H * S], k[N * G * S], v[N * G * S], R[N * H * S], out[N * H * S], probs[B * H * T * T];
    float dq[N * H * S], dk[N * G * S], dv[N * G * S], scratch[4 * T * T];
    fill(q, N * H * S, 1), fill(k, N * G * S, 1), fill(v, N * G * S, 1), fill(R, N * H * S, 1);
    void *work = qai_aligned_alloc(qai_attention_work_size(qai_pool_size(pool)));
    qai_attention_forward(pool, out, probs, q, k, v, B, T, H, G, S, work);
    /* causality: the first token of each sequence attends only to itself */
    CHECK(fabs(probs[0] - 1.0f) < 1e-6 && probs[1] == 0);
    qai_attention_backward(pool, dq, dk, dv, scratch, R, probs, q, k, v, B, T, H, G, S, work);
    const float h = 1e-2f;
    int bad = 0;
    float *params[3] = {q, k, v}, *grads[3] = {dq, dk, dv};
    long sizes[3] = {N * H * S, N * G * S, N * G * S};
    const char *names[3] = {"attention dq", "attention dk", "attention dv"};
    for (int p = 0; p < 3; p++)
        for (long i = 0; i < sizes[p]; i += 5) {
            float keep = params[p][i];
            params[p][i] = keep + h;
            qai_attention_forward(pool, out, probs, q, k, v, B, T, H, G, S, work);
            double lp = dotd(out, R, N * H * S);
            params[p][i] = keep - h;
            qai_attention_forward(pool, out, probs, q, k, v, B, T, H, G, S, work);
            double lm = dotd(out, R, N * H * S);
            params[p][i] = keep;
            bad += !grad_ok(names[p], grads[p][i], (lp - lm) / (2 * h), 1e-3, 2e-2);
        }
    CHECK_EQ_INT(bad, 0);
    qai_aligned_free(work);
}

static void test_rope(qai_pool *pool) {
    enum { N = 6, NH = 3, S = 8 };
    float x[N * NH * S], y[N * NH * S], freq[S / 2];
    int32_t pos[N] = {0, 1, 2, 5, 9, 100};
    for (int i = 0; i < S / 2; i++) freq[i] = powf(10000.0f, -2.0f * i / S);
    fill(x, N * NH * S, 1);
    memcpy(y, x, sizeof x);
    qai_rope(pool, y, pos, freq, N, NH, S, false);
    /* a rotation: the norm stays, and the inverse (the backward pass) undoes it */
    CHECK(fabs(dotd(x, x, N * NH * S) - dotd(y, y, N * NH * S)) < 1e-4);
    CHECK(fabs(y[0] - x[0]) < 1e-7); /* position 0 is not rotated */
    qai_rope(pool, y, pos, freq, N, NH, S, true);
    float maxd = 0;
    for (int i = 0; i < N * NH * S; i++) maxd = fmaxf(maxd, fabsf(x[i] - y[i]));
    CHECK(maxd < 1e-5);
}

/* The whole model: loss(θ ± h) around samples of every tensor. */
static void test_model(int threads, bool tied) {
    qai_train_config c = qai_train_config_default();
    c.dim = 16, c.layers = 2, c.heads = 4, c.kv_heads = 2, c.ffn = 24, c.vocab = 37;
    c.seq = 6, c.batch = 2, c.threads = threads, c.tie_embeddings = tied, c.seed = 7;
    qai_trainer *t;
    CHECK_OK(qai_trainer_new(&c, &t));
    if (!t) return;
    /* larger weights than the 0.02 init, so every path carries signal */
    for (int i = 0; i < qai_trainer_n_tensors(t); i++) {
        int64_t ne[2];
        float *p;
        qai_trainer_tensor(t, i, ne, &p, NULL);
        for (long j = 0; j < ne[0] * ne[1]; j++) p[j] = ne[1] > 1 ? frand() * 0.5f : 1.0f + frand() * 0.2f;
    }
    int32_t tokens[2 * 7];
    for (int i = 0; i < 14; i++) tokens[i] = (int32_t)(qai_rng_u64(&rng) % 37);
    float loss;
    qai_trainer_zero_grad(t);
    CHECK_OK(qai_trainer_forward_backward(t, tokens, true, 1.0f / 12, &loss));
    const float h = 1e-2f;
    int bad = 0, checked = 0;
    for (int i = 0; i < qai_trainer_n_tensors(t); i++) {
        int64_t ne[2];
        float *p, *g;
        const char *name = qai_trainer_tensor(t, i, ne, &p, &g);
        long n = (long)(ne[0] * ne[1]);
        for (int s = 0; s < 6; s++) {
            long j = (long)(qai_rng_u64(&rng) % (uint64_t)n);
            if (i == 0) j = (long)tokens[s] * ne[0] + s % ne[0]; /* embedding rows that are used */
            float keep = p[j], lp, lm;
            p[j] = keep + h;
            qai_trainer_forward_backward(t, tokens, false, 0, &lp);
            p[j] = keep - h;
            qai_trainer_forward_backward(t, tokens, false, 0, &lm);
            p[j] = keep;
            char what[96];
            snprintf(what, sizeof what, "%s[%ld] (threads %d, tied %d)", name, j, threads, tied);
            bad += !grad_ok(what, g[j], ((double)lp - lm) / (2 * h), 2e-4, 3e-2);
            checked++;
        }
    }
    CHECK_MSG(bad == 0, "%d of %d gradient samples off", bad, checked);
    qai_trainer_free(t);
}

int main(void) {
    qai_rng_seed(&rng, 42);
    qai_pool *pool = qai_pool_new(2);
    test_rmsnorm(pool);
    test_swiglu_ce(pool);
    test_attention(pool);
    test_rope(pool);
    test_model(1, false);
    test_model(2, true);
    qai_pool_free(pool);
    return test_summary();
}
