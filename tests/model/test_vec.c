/* The forward pass's own SIMD routines against their scalar references:
 * dot, axpy, softmax, silu·mul (AVX2 exp polynomial vs libm). The attention
 * kernel is tested in test_model.c (test_attention_blocked). */
#include "model/vec.h"
#include "qai/tensor.h"
#include "test.h"

static void fill(float *x, int n, qai_rng *r, float scale) {
    for (int i = 0; i < n; i++) x[i] = qai_rng_normal(r) * scale;
}

static void test_vec(void) {
    if (qai_cpu_isa() < QAI_ISA_AVX2) {
        printf("no AVX2: vector routines run the scalar path only\n");
        return;
    }
    qai_rng r;
    qai_rng_seed(&r, 1);
    float a[1000], b[1000], s1[1000], s2[1000], u[1000];
    for (int n = 1; n < 1000; n += 37) {
        fill(a, n, &r, 1);
        fill(b, n, &r, 1);
        float d1 = qai_vec_dot_f32(a, b, n, false), d2 = qai_vec_dot_f32(a, b, n, true);
        CHECK_CLOSE("dot", &d2, &d1, 1, 1e-4f * n, 1e-5f);
        memcpy(s1, b, sizeof(float) * n);
        memcpy(s2, b, sizeof(float) * n);
        qai_vec_axpy_f32(0.37f, a, s1, n, false);
        qai_vec_axpy_f32(0.37f, a, s2, n, true);
        CHECK_CLOSE("axpy", s2, s1, n, 1e-6f, 1e-6f);
        fill(s1, n, &r, 20); /* softmax over a wide range, incl. exp underflow */
        memcpy(s2, s1, sizeof(float) * n);
        qai_vec_softmax(s1, n, false);
        qai_vec_softmax(s2, n, true);
        CHECK_CLOSE("softmax", s2, s1, n, 1e-7f, 2e-6f);
        fill(s1, n, &r, 10);
        memcpy(s2, s1, sizeof(float) * n);
        fill(u, n, &r, 1);
        qai_vec_silu_mul(s1, u, n, false);
        qai_vec_silu_mul(s2, u, n, true);
        CHECK_CLOSE("silu_mul", s2, s1, n, 1e-6f, 2e-6f);
    }
    /* extremes: large negative (silu → -0), large positive, zero */
    float x[8] = {-100, -88, -20, 0, 20, 88, 100, -0.5f}, y[8], one[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    memcpy(y, x, sizeof x);
    qai_vec_silu_mul(x, one, 8, false);
    qai_vec_silu_mul(y, one, 8, true);
    CHECK_CLOSE("silu extremes", y, x, 8, 1e-6f, 2e-6f);
}

int main(void) {
    test_vec();
    return test_summary();
}
