/* The forward pass's own SIMD routines against their scalar references:
 * dot, axpy, softmax, silu·mul (AVX2 exp polynomial vs libm) and the attention
 * block kernel (AVX2, AVX-512) against a naive double-precision attention, on
 * odd key counts, several head sizes and 1..4 rows. */
#include "model/attn.h"
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

static void test_attention(void) {
    qai_rng r;
    qai_rng_seed(&r, 2);
    const int C = 200, C16 = 208; /* keys; rounded up to whole key blocks */
    int sizes[] = {16, 48, 64, 80, 128};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        const int S = sizes[si], ldv = S * 3; /* v rows interleaved with other heads */
        float *kt = qai_aligned_alloc((size_t)S * C * sizeof(float));
        float *v = qai_aligned_alloc((size_t)C * ldv * sizeof(float));
        float q[4][128], out[4][128], want[4][128];
        float *kb = qai_aligned_alloc((size_t)S * C16 * sizeof(float)); /* kt in key blocks (attn.h) */
        float *scratch = qai_aligned_alloc((size_t)QAI_ATTN_ROWS * C16 * sizeof(float));
        fill(kt, S * C, &r, 1);
        fill(v, C * ldv, &r, 1);
        memset(kb, 0, (size_t)S * C16 * sizeof(float));
        for (int d = 0; d < S; d++)
            for (int p = 0; p < C; p++) kb[qai_kv_block_index(p, d, S)] = kt[(size_t)d * C + p];
        for (int rows = 1; rows <= 4; rows++) {
            qai_attn_block b = {.n = rows};
            for (int k = 0; k < rows; k++) {
                fill(q[k], S, &r, 0.5f);
                b.q[k] = q[k];
                b.out[k] = out[k];
                b.n_keys[k] = (int[]){1, 37, 200, 113}[k];
            }
            float scale = 1.0f / sqrtf((float)S);
            /* naive reference in double */
            for (int k = 0; k < rows; k++) {
                double sc[200], mx = -1e30, sum = 0;
                for (int p = 0; p < b.n_keys[k]; p++) {
                    double s = 0;
                    for (int d = 0; d < S; d++) s += (double)q[k][d] * kt[(size_t)d * C + p];
                    sc[p] = s * scale;
                    mx = sc[p] > mx ? sc[p] : mx;
                }
                for (int p = 0; p < b.n_keys[k]; p++) sum += (sc[p] = exp(sc[p] - mx));
                for (int d = 0; d < S; d++) {
                    double o = 0;
                    for (int p = 0; p < b.n_keys[k]; p++) o += sc[p] / sum * v[(size_t)p * ldv + d];
                    want[k][d] = (float)o;
                }
            }
            for (int isa = 0; isa <= (int)qai_cpu_isa(); isa++) {
                qai_attn_blocked_run(&b, kb, v, ldv, S, scale, scratch, C16, (qai_isa)isa);
                char what[64];
                for (int k = 0; k < rows; k++) {
                    snprintf(what, sizeof what, "attention S=%d rows=%d row %d isa %d", S, rows, k, isa);
                    CHECK_CLOSE(what, out[k], want[k], S, 1e-5f, 1e-4f);
                }
            }
        }
        qai_aligned_free(kt);
        qai_aligned_free(kb);
        qai_aligned_free(v);
        qai_aligned_free(scratch);
    }
}

int main(void) {
    test_vec();
    test_attention();
    return test_summary();
}
