/*
 * The optimizer step: learning-rate schedule (linear warmup, cosine decay to
 * min_lr), the global gradient norm (for clipping and logs) and AdamW with
 * decoupled weight decay on 2-D weights. Also the FMA peak used for MFU.
 *
 * Determinism: the norm is summed over fixed 4096-element chunks whose
 * partial sums are added in order, so it does not depend on the thread count.
 */
#include <math.h>
#include <string.h>

#include "qai/tensor.h"
#include "train/train_internal.h"

float qai_trainer_lr(const qai_train_config *c, int s) {
    if (c->warmup > 0 && s < c->warmup) return c->lr * (float)(s + 1) / (float)c->warmup;
    int decay_steps = c->max_steps - c->warmup;
    if (decay_steps <= 0) return c->lr;
    float progress = (float)(s - c->warmup) / (float)decay_steps;
    if (progress > 1) progress = 1;
    return c->min_lr + 0.5f * (c->lr - c->min_lr) * (1.0f + cosf(3.14159265358979f * progress));
}

enum { CHUNK = 4096 };

typedef struct {
    const float *g;
    size_t n;
    double *partial; /* one per chunk */
} norm_job;

static void norm_worker(void *arg, int ith, int nth) {
    norm_job *j = arg;
    size_t chunks = (j->n + CHUNK - 1) / CHUNK;
    for (size_t c = chunks * ith / nth; c < chunks * (ith + 1) / nth; c++) {
        size_t e = (c + 1) * CHUNK < j->n ? (c + 1) * CHUNK : j->n;
        float s = 0;
        for (size_t i = c * CHUNK; i < e; i++) s += j->g[i] * j->g[i];
        j->partial[c] = s;
    }
}

float qai_trainer_grad_norm(qai_trainer *t) {
    size_t chunks = (t->n_floats + CHUNK - 1) / CHUNK;
    double *partial = qai_malloc(chunks * sizeof(double));
    if (!partial) return NAN;
    norm_job j = {t->grads, t->n_floats, partial};
    qai_pool_run(t->pool, norm_worker, &j);
    double sum = 0;
    for (size_t c = 0; c < chunks; c++) sum += partial[c];
    qai_free(partial);
    return (float)sqrt(sum);
}

typedef struct {
    qai_trainer *t;
    float lr, grad_scale, bc1, bc2;
} adam_job;

static void adam_range(const adam_job *j, float *p, float *g, float *m, float *v, size_t n, bool decay) {
    const qai_train_config *c = &j->t->cfg;
    const float b1 = c->beta1, b2 = c->beta2, eps = c->eps, lr = j->lr, gs = j->grad_scale;
    const float wd = decay ? c->weight_decay : 0.0f;
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] * gs;
        m[i] = b1 * m[i] + (1 - b1) * gi;
        v[i] = b2 * v[i] + (1 - b2) * gi * gi;
        float mh = m[i] / j->bc1, vh = v[i] / j->bc2;
        p[i] -= lr * (mh / (sqrtf(vh) + eps) + wd * p[i]);
    }
}

static void adam_worker(void *arg, int ith, int nth) {
    const adam_job *j = arg;
    qai_trainer *t = j->t;
    for (int i = 0; i < t->n_desc; i++) {
        const qai_param_desc *d = &t->desc[i];
        if (d->alias) continue;
        size_t n = (size_t)(d->ne[0] * d->ne[1]);
        size_t a = n * ith / nth, b = n * (ith + 1) / nth;
        size_t o = d->off + a;
        adam_range(j, t->params + o, t->grads + o, t->m + o, t->v + o, b - a, d->decay);
    }
}

void qai_trainer_adamw(qai_trainer *t, float lr, float grad_scale) {
    int s = t->step + 1;
    adam_job j = {t, lr, grad_scale, 1.0f - powf(t->cfg.beta1, (float)s), 1.0f - powf(t->cfg.beta2, (float)s)};
    qai_pool_run(t->pool, adam_worker, &j);
}

/* ---- peak FLOP/s ---- */

typedef struct {
    double gflops[64];
} peak_job;

static void peak_worker(void *arg, int ith, int nth) {
    peak_job *j = arg;
    j->gflops[ith < 64 ? ith : 63] = qai_fma_peak_gflops();
}

double qai_train_peak_flops(int n_threads) {
    static double cached[65];
    if (n_threads < 1) n_threads = 1;
    if (n_threads > 64) n_threads = 64;
    if (cached[n_threads] > 0) return cached[n_threads];
    qai_pool *pool = qai_pool_new(n_threads);
    peak_job j;
    memset(&j, 0, sizeof j);
    if (pool) qai_pool_run(pool, peak_worker, &j);
    qai_pool_free(pool);
    double sum = 0;
    for (int i = 0; i < n_threads; i++) sum += j.gflops[i];
    cached[n_threads] = sum * 1e9;
    return cached[n_threads];
}
