/* Sampler: greedy is argmax; filters keep what they should; penalties follow
 * llama.cpp/OpenAI semantics; a seed reproduces the draw; the draw follows the
 * distribution (chi-square-style tolerance on 20000 draws). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qai/model.h"
#include "test.h"

static qai_sampler_params greedy(void) {
    qai_sampler_params p = qai_sampler_default_params();
    p.temp = 0;
    return p;
}

/* The sampler's documented draw, written plainly: candidates sorted by logit
 * (ties by id), top-k, top-p and min-p on the untempered softmax, then one
 * uniform draw walked over the kept tokens' tempered weights. Tokens at -inf
 * never come out. */
typedef struct { int id; float logit; } ref_cand;
static int ref_cmp(const void *x, const void *y) {
    const ref_cand *a = x, *b = y;
    if (a->logit != b->logit) return a->logit > b->logit ? -1 : 1;
    return a->id - b->id;
}
static int ref_sample(const float *logits, int V, const qai_sampler_params *p, qai_rng *rng) {
    ref_cand *c = malloc((size_t)V * sizeof *c);
    int n = 0;
    for (int i = 0; i < V; i++)
        if (logits[i] != -INFINITY) c[n++] = (ref_cand){i, logits[i]};
    qsort(c, (size_t)n, sizeof *c, ref_cmp);
    if (p->top_k > 0 && p->top_k < n) n = p->top_k;
    double mx = c[0].logit, sum = 0;
    for (int i = 0; i < n; i++) sum += exp(c[i].logit - mx);
    if (p->top_p < 1) {
        double cum = 0;
        for (int i = 0; i < n; i++)
            if ((cum += exp(c[i].logit - mx) / sum) >= p->top_p) {
                n = i + 1;
                break;
            }
    }
    if (p->min_p > 0) {
        int keep = 1;
        while (keep < n && c[keep].logit >= (float)mx + logf(p->min_p)) keep++;
        n = keep;
    }
    double total = 0, acc = 0;
    for (int i = 0; i < n; i++) total += exp((c[i].logit - mx) / p->temp);
    double r = (double)qai_rng_float(rng) * total;
    int out = c[n - 1].id;
    for (int i = 0; i < n; i++)
        if (r < (acc += exp((c[i].logit - mx) / p->temp))) {
            out = c[i].id;
            break;
        }
    free(c);
    return out;
}

/* A 32k vocabulary with many tied logits, -0 and +0, and masked tokens: the
 * sampler (radix-sorted candidates) draws exactly what the plain reference
 * draws, for each filter setting. */
static void test_large_vocab_matches_reference(void) {
    enum { V = 32000 };
    static float logits[V];
    qai_rng g;
    qai_rng_seed(&g, 5);
    for (int i = 0; i < V; i++) {
        float x = roundf(qai_rng_normal(&g) * 8) / 4; /* steps of 0.25: many ties */
        logits[i] = i % 97 == 0 ? -INFINITY : (x == 0 && i % 2 ? -0.0f : x);
    }
    const struct { int top_k; float top_p, min_p, temp; } cfg[] = {
        {0, 1, 0, 1}, {0, 0.9f, 0, 0.8f}, {0, 1, 0.05f, 1.2f}, {40, 0.95f, 0.01f, 0.7f}, {0, 0.5f, 0.1f, 1}};
    for (size_t k = 0; k < sizeof cfg / sizeof cfg[0]; k++) {
        qai_sampler_params p = qai_sampler_default_params();
        p.top_k = cfg[k].top_k;
        p.top_p = cfg[k].top_p;
        p.min_p = cfg[k].min_p;
        p.temp = cfg[k].temp;
        p.seed = 1000 + k;
        qai_sampler *s = qai_sampler_new(&p, V);
        qai_rng r;
        qai_rng_seed(&r, p.seed);
        int same = 0;
        for (int i = 0; i < 200; i++) same += qai_sampler_sample(s, logits) == ref_sample(logits, V, &p, &r);
        CHECK_MSG(same == 200, "config %zu: %d of 200 draws equal the reference", k, same);
        qai_sampler_free(s);
    }
    /* everything masked but one token */
    for (int i = 0; i < V; i++) logits[i] = i == 12345 ? 0.5f : -INFINITY;
    qai_sampler_params p = qai_sampler_default_params();
    p.top_k = 0;
    qai_sampler *s = qai_sampler_new(&p, V);
    int ok = 1;
    for (int i = 0; i < 100; i++) ok &= qai_sampler_sample(s, logits) == 12345;
    CHECK(ok);
    qai_sampler_free(s);
}

int main(void) {
    float logits[8] = {0.5f, 2.0f, -1.0f, 1.9f, 0.0f, -3.0f, 1.0f, 0.2f};
    qai_sampler_params p = greedy();
    qai_sampler *s = qai_sampler_new(&p, 8);
    CHECK_EQ_INT(qai_sampler_sample(s, logits), 1);
    qai_sampler_free(s);

    /* repeat penalty: token 1 seen → 2.0/2 = 1.0 < 1.9 → token 3 */
    p.repeat_penalty = 2.0f;
    s = qai_sampler_new(&p, 8);
    qai_sampler_accept(s, 1);
    CHECK_EQ_INT(qai_sampler_sample(s, logits), 3);
    /* negative logits are multiplied: token 2 seen twice, still penalized once */
    qai_sampler_free(s);

    /* frequency penalty scales with count; presence is flat */
    p = greedy();
    p.freq_penalty = 0.06f;
    s = qai_sampler_new(&p, 8);
    qai_sampler_accept(s, 1);
    CHECK_EQ_INT(qai_sampler_sample(s, logits), 1); /* 2.0 - 0.06 = 1.94 > 1.9 */
    qai_sampler_accept(s, 1);
    CHECK_EQ_INT(qai_sampler_sample(s, logits), 3); /* 2.0 - 0.12 = 1.88 < 1.9 */
    qai_sampler_free(s);

    /* window: with repeat_last_n 2, a token three steps back is not penalized */
    p = greedy();
    p.presence_penalty = 1.0f;
    p.repeat_last_n = 2;
    s = qai_sampler_new(&p, 8);
    qai_sampler_accept(s, 1);
    qai_sampler_accept(s, 4);
    CHECK_EQ_INT(qai_sampler_sample(s, logits), 3);
    qai_sampler_accept(s, 5);
    CHECK_EQ_INT(qai_sampler_sample(s, logits), 1);
    qai_sampler_free(s);

    /* top-k 1 is greedy whatever the temperature */
    p = qai_sampler_default_params();
    p.temp = 5.0f;
    p.top_k = 1;
    p.seed = 3;
    s = qai_sampler_new(&p, 8);
    int ok = 1;
    for (int i = 0; i < 100; i++) ok &= qai_sampler_sample(s, logits) == 1;
    CHECK(ok);
    qai_sampler_free(s);

    /* min-p 0.5 keeps tokens with p >= 0.5 p_max: tokens 1 and 3 only */
    p = qai_sampler_default_params();
    p.temp = 1.0f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.5f;
    s = qai_sampler_new(&p, 8);
    ok = 1;
    for (int i = 0; i < 500; i++) {
        int t = qai_sampler_sample(s, logits);
        ok &= t == 1 || t == 3;
    }
    CHECK(ok);
    qai_sampler_free(s);

    /* top-p 0.5 keeps the smallest prefix reaching 0.5 */
    p.min_p = 0;
    p.top_p = 0.3f;
    s = qai_sampler_new(&p, 8);
    ok = 1;
    for (int i = 0; i < 500; i++) ok &= qai_sampler_sample(s, logits) == 1;
    CHECK(ok); /* p(token 1) ≈ 0.33 ≥ 0.3 */
    qai_sampler_free(s);

    /* the draw follows softmax(logits / T) and is reproducible from the seed */
    p = qai_sampler_default_params();
    p.temp = 0.7f;
    p.top_k = 0;
    p.top_p = 1;
    p.min_p = 0;
    p.seed = 99;
    int counts[8] = {0}, first[50], again[50];
    s = qai_sampler_new(&p, 8);
    for (int i = 0; i < 20000; i++) {
        int t = qai_sampler_sample(s, logits);
        counts[t]++;
        if (i < 50) first[i] = t;
    }
    qai_sampler_reset(s);
    for (int i = 0; i < 50; i++) again[i] = qai_sampler_sample(s, logits);
    CHECK(!memcmp(first, again, sizeof first));
    double z = 0, mx = 2.0;
    for (int i = 0; i < 8; i++) z += exp((logits[i] - mx) / 0.7);
    for (int i = 0; i < 8; i++) {
        double want = exp((logits[i] - mx) / 0.7) / z * 20000;
        CHECK_MSG(fabs(counts[i] - want) < 5 * sqrt(want) + 5, "token %d drawn %d times, expected %.0f", i, counts[i], want);
    }
    qai_sampler_free(s);
    test_large_vocab_matches_reference();
    return test_summary();
}
