/* A full training step against PyTorch: tests/data/train_ref.json (written by
 * tests/tools/train_ref.py in float64) holds the losses of 3 AdamW steps with
 * warmup, cosine decay and clipping, the gradients of step 1 and the weights
 * after step 3, for the same model and weights (from a formula). qai computes
 * in fp32: losses must agree to 1e-5 relative, gradients to 1e-4 of their
 * scale, weights after 3 steps to 5e-4 of theirs (Adam divides by sqrt(v), so
 * the fp32 rounding of a gradient near zero can move its weight by a good part
 * of lr; measured 1.4e-4 at worst). */
#include <cjson/cJSON.h>

#include "qai/train.h"
#include "test.h"

static double init_value(int ti, long j, bool is_norm) { /* as in train_ref.py */
    if (is_norm) return 1.0 + 0.1 * sin(0.7 * j + ti);
    return 0.3 * sin(0.37 * j + 1.3 * ti) * cos(0.11 * j);
}

/* max |a - ref| over a tensor, relative to max |ref| (at least 1e-3) */
static double compare(const float *a, const cJSON *ref, long n, double *scale) {
    double maxd = 0, maxr = 1e-3;
    *scale = maxr;
    if (cJSON_GetArraySize(ref) != n) return INFINITY;
    long j = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, ref) {
        maxd = fmax(maxd, fabs(a[j] - it->valuedouble));
        maxr = fmax(maxr, fabs(it->valuedouble));
        j++;
    }
    *scale = maxr;
    return maxd / maxr;
}

int main(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/train_ref.json", getenv("QAI_TESTDATA") ? getenv("QAI_TESTDATA") : "tests/data");
    char *text;
    size_t n;
    CHECK_OK(qai_file_read(path, &text, &n));
    if (!text) return test_summary();
    cJSON *j = cJSON_Parse(text);
    qai_free(text);
    CHECK(j != NULL);
    cJSON *cfg = cJSON_GetObjectItem(j, "config");
    qai_train_config c = qai_train_config_default();
    cJSON *it;
    cJSON_ArrayForEach(it, cfg) {
        char v[64];
        snprintf(v, sizeof v, "%.17g", it->valuedouble);
        CHECK_OK(qai_train_config_set(&c, it->string, v));
    }
    c.data = "random";
    c.threads = 2;
    qai_trainer *t;
    CHECK_OK(qai_trainer_new(&c, &t));
    if (!t) return test_summary();
    for (int i = 0; i < qai_trainer_n_tensors(t); i++) {
        int64_t ne[2];
        float *p;
        qai_trainer_tensor(t, i, ne, &p, NULL);
        for (long k = 0; k < ne[0] * ne[1]; k++) p[k] = (float)init_value(i, k, ne[1] == 1);
    }
    int32_t tokens[64];
    int nt = 0;
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(j, "tokens")) tokens[nt++] = it->valueint;
    CHECK_EQ_INT(nt, c.batch * (c.seq + 1));

    cJSON *losses = cJSON_GetObjectItem(j, "losses"), *norms = cJSON_GetObjectItem(j, "grad_norms");
    for (int s = 0; s < c.max_steps; s++) {
        CHECK(qai_trainer_step_tokens(t, tokens) == s + 1);
        qai_train_stats st;
        qai_trainer_stats(t, &st);
        double ref = cJSON_GetArrayItem(losses, s)->valuedouble, rn = cJSON_GetArrayItem(norms, s)->valuedouble;
        CHECK_MSG(fabs(st.loss - ref) <= 1e-5 * ref, "step %d loss %.9g, PyTorch %.9g", s + 1, st.loss, ref);
        CHECK_MSG(fabs(st.grad_norm - rn) <= 1e-4 * rn, "step %d grad norm %.9g, PyTorch %.9g", s + 1, st.grad_norm,
                  rn);
        if (s == 0) { /* gradients are still there after the step */
            cJSON *grads = cJSON_GetObjectItem(j, "grads_step1");
            for (int i = 0; i < qai_trainer_n_tensors(t); i++) {
                int64_t ne[2];
                float *g;
                const char *name = qai_trainer_tensor(t, i, ne, NULL, &g);
                double scale, d = compare(g, cJSON_GetObjectItem(grads, name), (long)(ne[0] * ne[1]), &scale);
                CHECK_MSG(d < 1e-4, "gradient of %s off by %.3g of its scale %.3g", name, d, scale);
            }
        }
    }
    cJSON *after = cJSON_GetObjectItem(j, "params_after");
    for (int i = 0; i < qai_trainer_n_tensors(t); i++) {
        int64_t ne[2];
        float *p;
        const char *name = qai_trainer_tensor(t, i, ne, &p, NULL);
        double scale, d = compare(p, cJSON_GetObjectItem(after, name), (long)(ne[0] * ne[1]), &scale);
        CHECK_MSG(d < 5e-4, "weights of %s after 3 steps off by %.3g of their scale %.3g", name, d, scale);
    }
    qai_trainer_free(t);
    cJSON_Delete(j);
    qai_train_config_release();
    return test_summary();
}
