/* Sampler: greedy is argmax; filters keep what they should; penalties follow
 * llama.cpp/OpenAI semantics; a seed reproduces the draw; the draw follows the
 * distribution (chi-square-style tolerance on 20000 draws). */
#include "qai/model.h"
#include "test.h"

static qai_sampler_params greedy(void) {
    qai_sampler_params p = qai_sampler_default_params();
    p.temp = 0;
    return p;
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
    return test_summary();
}
