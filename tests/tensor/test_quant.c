/* Tests for src/tensor/types.c and quant.c: type traits against ggml's sizes,
 * hand-computed Q8_0/Q4_0 blocks, quantize -> dequantize error bounds per type,
 * special values, fp16/bf16 conversions. */
#include <stdint.h>

#include "qai/tensor.h"
#include "test.h"

/* ---- traits ---- */

static void test_traits(void) {
    /* (id, name, block size, bytes) from ggml's ggml-common.h block structs */
    static const struct {
        int id;
        const char *name;
        int bs;
        size_t ts;
    } want[] = {
        {0, "f32", 1, 4},          {1, "f16", 1, 2},           {2, "q4_0", 32, 18},       {3, "q4_1", 32, 20},
        {6, "q5_0", 32, 22},       {7, "q5_1", 32, 24},        {8, "q8_0", 32, 34},       {9, "q8_1", 32, 36},
        {10, "q2_K", 256, 84},     {11, "q3_K", 256, 110},     {12, "q4_K", 256, 144},    {13, "q5_K", 256, 176},
        {14, "q6_K", 256, 210},    {15, "q8_K", 256, 292},     {16, "iq2_xxs", 256, 66},  {17, "iq2_xs", 256, 74},
        {18, "iq3_xxs", 256, 98},  {19, "iq1_s", 256, 50},     {20, "iq4_nl", 32, 18},    {21, "iq3_s", 256, 110},
        {22, "iq2_s", 256, 82},    {23, "iq4_xs", 256, 136},   {24, "i8", 1, 1},          {25, "i16", 1, 2},
        {26, "i32", 1, 4},         {27, "i64", 1, 8},          {28, "f64", 1, 8},         {29, "iq1_m", 256, 56},
        {30, "bf16", 1, 2},        {34, "tq1_0", 256, 54},     {35, "tq2_0", 256, 66},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const qai_type_traits *t = qai_type_info(want[i].id);
        CHECK_MSG(t != NULL, "type %d", want[i].id);
        if (!t) continue;
        CHECK_MSG(!strcmp(t->name, want[i].name), "type %d name %s", want[i].id, t->name);
        CHECK_EQ_INT(t->block_size, want[i].bs);
        CHECK_EQ_INT(t->type_size, want[i].ts);
        CHECK_EQ_INT(qai_type_from_name(want[i].name), want[i].id);
    }
    /* ids ggml removed or never used */
    int gone[] = {-1, 4, 5, 31, 32, 33, 36, 37, 38, 39, 40, 1000};
    for (size_t i = 0; i < sizeof gone / sizeof gone[0]; i++) CHECK(qai_type_info(gone[i]) == NULL);
    CHECK_EQ_INT(qai_type_from_name("Q4_K"), QAI_TYPE_Q4_K);
    CHECK_EQ_INT(qai_type_from_name("q4_k"), QAI_TYPE_Q4_K);
    CHECK_EQ_INT(qai_type_from_name("BF16"), QAI_TYPE_BF16);
    CHECK_EQ_INT(qai_type_from_name("q4"), -1);
    CHECK_EQ_INT(qai_type_from_name("q4_k_m"), -1);
    CHECK_EQ_INT(qai_type_from_name(""), -1);
    CHECK_EQ_INT(qai_row_size(QAI_TYPE_Q4_0, 4096), 128 * 18);
    CHECK_EQ_INT(qai_row_size(QAI_TYPE_Q6_K, 2048), 8 * 210);
    CHECK_EQ_INT(qai_row_size(QAI_TYPE_F16, 7), 14);
    /* supported set and activation types */
    int sup[] = {QAI_TYPE_F32, QAI_TYPE_F16, QAI_TYPE_BF16, QAI_TYPE_Q8_0, QAI_TYPE_Q4_0, QAI_TYPE_Q4_K, QAI_TYPE_Q6_K,
                 QAI_TYPE_Q8_K};
    int nsup = 0;
    for (int i = 0; i < QAI_TYPE_COUNT; i++) {
        const qai_type_traits *t = qai_type_info(i);
        if (t && t->supported) nsup++;
    }
    CHECK_EQ_INT(nsup, (int)(sizeof sup / sizeof sup[0]));
    for (size_t i = 0; i < sizeof sup / sizeof sup[0]; i++) CHECK(qai_type_info(sup[i])->supported);
    CHECK_EQ_INT(qai_type_info(QAI_TYPE_Q4_0)->vec_dot_type, QAI_TYPE_Q8_0);
    CHECK_EQ_INT(qai_type_info(QAI_TYPE_Q8_0)->vec_dot_type, QAI_TYPE_Q8_0);
    CHECK_EQ_INT(qai_type_info(QAI_TYPE_Q4_K)->vec_dot_type, QAI_TYPE_Q8_K);
    CHECK_EQ_INT(qai_type_info(QAI_TYPE_Q6_K)->vec_dot_type, QAI_TYPE_Q8_K);
    /* errors */
    float x[32] = {0};
    uint8_t buf[64];
    CHECK(qai_quantize_rows(QAI_TYPE_Q4_0, x, buf, 1, 31) == QAI_ERR_ARG);
    CHECK(qai_quantize_rows(QAI_TYPE_IQ2_XXS, x, buf, 1, 256) == QAI_ERR_UNSUPPORTED);
    CHECK(qai_dequantize_row((qai_type)4, buf, x, 32) == QAI_ERR_ARG);
}

/* ---- hand-computed blocks ---- */

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

static void test_known_blocks(void) {
    float x[32], y[32];
    uint8_t b[34];
    for (int j = 0; j < 32; j++) x[j] = (float)(j - 16); /* -16 .. 15 */

    /* Q8_0: d = 16/127 -> fp16 0x3008 (0.1259765625); q = round-half-away(x*127/16):
     * -16 -> -127, -8 -> -63.5 -> -64, 8 -> 63.5 -> 64, 1 -> 7.9375 -> 8, 15 -> 119.06 -> 119 */
    CHECK_OK(qai_quantize_rows(QAI_TYPE_Q8_0, x, b, 1, 32));
    CHECK_EQ_INT(rd16(b), 0x3008);
    const int8_t *q = (const int8_t *)(b + 2);
    CHECK_EQ_INT(q[0], -127);
    CHECK_EQ_INT(q[8], -64);
    CHECK_EQ_INT(q[16], 0);
    CHECK_EQ_INT(q[17], 8);
    CHECK_EQ_INT(q[24], 64);
    CHECK_EQ_INT(q[31], 119);
    CHECK_OK(qai_dequantize_row(QAI_TYPE_Q8_0, b, y, 32));
    CHECK(y[0] == -127 * 0.1259765625f);
    CHECK(y[24] == 64 * 0.1259765625f);

    /* Q4_0: largest magnitude is -16, so d = -16/-8 = 2 (fp16 0x4000), q = min(15, trunc(x/2 + 8.5)).
     * qs[j] = q(x[j]) | q(x[j+16]) << 4: qs[0] = 0 | 8<<4, qs[1] = 1 | 9<<4, qs[15] = 8 | 15<<4 */
    CHECK_OK(qai_quantize_rows(QAI_TYPE_Q4_0, x, b, 1, 32));
    CHECK_EQ_INT(rd16(b), 0x4000);
    CHECK_EQ_INT(b[2 + 0], 0x80);
    CHECK_EQ_INT(b[2 + 1], 0x91);
    CHECK_EQ_INT(b[2 + 7], 0xc4); /* x=-9 -> 4, x=7 -> 12 */
    CHECK_EQ_INT(b[2 + 15], 0xf8);
    CHECK_OK(qai_dequantize_row(QAI_TYPE_Q4_0, b, y, 32));
    CHECK(y[0] == -16 && y[16] == 0 && y[1] == -14 && y[17] == 2 && y[31] == 14);
}

/* ---- error bounds on random data ---- */

typedef struct {
    qai_type type;
    double max_rel_rmse; /* rmse / rms(x) over the whole row set, gaussian data */
    double max_err_vs_block; /* max |err| / max|x| of its block (block = 32 or 256 elements) */
} bound;

static void test_error_bounds(void) {
    /* bounds measured with margin; they are what the formats give:
     * Q8_0 half a step (max/127/2 plus fp16 rounding of d); Q4_0 one step
     * (max/8, the top value clamps from +8 to +7); Q4_K/Q6_K from their 4/6-bit grids. */
    static const bound bounds[] = {
        {QAI_TYPE_F32, 0, 0},           {QAI_TYPE_F16, 2.5e-4, 5e-4},  {QAI_TYPE_BF16, 2e-3, 4e-3},
        {QAI_TYPE_Q8_0, 0.006, 0.0045}, {QAI_TYPE_Q4_0, 0.095, 0.1265}, {QAI_TYPE_Q4_K, 0.08, 0.1},
        {QAI_TYPE_Q6_K, 0.02, 0.02},    {QAI_TYPE_Q8_K, 0.008, 0.004},
    };
    enum { R = 16, K = 1024 };
    static float x[R * K], y[R * K];
    static uint8_t q[R * K * 4];
    qai_rng rng;
    for (int dist = 0; dist < 2; dist++) {
        qai_rng_seed(&rng, 42 + dist);
        for (int i = 0; i < R * K; i++) x[i] = dist ? qai_rng_float(&rng) * 2 - 1 : qai_rng_normal(&rng) * 0.02f;
        for (size_t bi = 0; bi < sizeof bounds / sizeof bounds[0]; bi++) {
            const bound *bd = &bounds[bi];
            const qai_type_traits *t = qai_type_info(bd->type);
            size_t rs = qai_row_size(bd->type, K);
            CHECK_OK(qai_quantize_rows(bd->type, x, q, R, K));
            for (int r = 0; r < R; r++) CHECK_OK(qai_dequantize_row(bd->type, q + r * rs, y + r * K, K));
            double se = 0, sx = 0, worst = 0;
            int bs = t->block_size > 1 ? t->block_size : 32; /* plain types: relative to 32-element groups */
            for (int i0 = 0; i0 < R * K; i0 += bs) {
                double bmax = 0;
                for (int i = i0; i < i0 + bs; i++) bmax = fmax(bmax, fabs(x[i]));
                for (int i = i0; i < i0 + bs; i++) {
                    double e = fabs((double)y[i] - x[i]);
                    se += e * e;
                    sx += (double)x[i] * x[i];
                    double rel = bmax > 0 ? e / bmax : e;
                    if (rel > worst) worst = rel;
                }
            }
            double rrmse = sqrt(se / sx);
            CHECK_MSG(rrmse <= bd->max_rel_rmse, "%s (%s data): relative rmse %.5f > %.5f", t->name,
                      dist ? "uniform" : "gaussian", rrmse, bd->max_rel_rmse);
            CHECK_MSG(worst <= bd->max_err_vs_block, "%s (%s data): max error / block max %.5f > %.5f", t->name,
                      dist ? "uniform" : "gaussian", worst, bd->max_err_vs_block);
            if (getenv("QAI_TEST_VERBOSE"))
                printf("%-5s %-8s rel rmse %.5f  max err/block max %.5f\n", t->name, dist ? "uniform" : "gaussian",
                       rrmse, worst);
        }
    }
}

/* ---- special values ---- */

static void test_special(void) {
    const qai_type types[] = {QAI_TYPE_Q8_0, QAI_TYPE_Q4_0, QAI_TYPE_Q4_K, QAI_TYPE_Q6_K, QAI_TYPE_Q8_K,
                              QAI_TYPE_F16,  QAI_TYPE_BF16};
    enum { K = 512 };
    static float x[K], y[K];
    static uint8_t q[K * 4];
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        qai_type ty = types[ti];
        const char *nm = qai_type_info(ty)->name;
        /* zeros stay zeros */
        memset(x, 0, sizeof x);
        CHECK_OK(qai_quantize_rows(ty, x, q, 1, K));
        CHECK_OK(qai_dequantize_row(ty, q, y, K));
        int ok = 1;
        for (int i = 0; i < K; i++) ok &= y[i] == 0;
        CHECK_MSG(ok, "%s: zeros", nm);
        /* constant rows (positive and negative): within 0.5% */
        for (int s = -1; s <= 1; s += 2) {
            for (int i = 0; i < K; i++) x[i] = 3.25f * s;
            CHECK_OK(qai_quantize_rows(ty, x, q, 1, K));
            CHECK_OK(qai_dequantize_row(ty, q, y, K));
            char what[64];
            snprintf(what, sizeof what, "%s constant %g", nm, 3.25 * s);
            CHECK_CLOSE(what, y, x, K, 0, 0.005f);
        }
        /* huge and tiny magnitudes: finite, and within the type's step */
        static const float mags[] = {3e4f, 1e-3f};
        for (int mi = 0; mi < 2; mi++) {
            qai_rng rng;
            qai_rng_seed(&rng, 7);
            for (int i = 0; i < K; i++) x[i] = (qai_rng_float(&rng) * 2 - 1) * mags[mi];
            CHECK_OK(qai_quantize_rows(ty, x, q, 1, K));
            CHECK_OK(qai_dequantize_row(ty, q, y, K));
            int finite = 1;
            double worst = 0;
            for (int i = 0; i < K; i++) {
                finite &= isfinite(y[i]);
                worst = fmax(worst, fabs((double)y[i] - x[i]) / mags[mi]);
            }
            CHECK_MSG(finite, "%s magnitude %g: non-finite output", nm, mags[mi]);
            /* 1e-3 pushes d into fp16 subnormals for the k-quants' sub-scales: looser */
            double lim = ty == QAI_TYPE_Q8_0 || ty == QAI_TYPE_Q8_K ? 0.01 : ty == QAI_TYPE_F16 || ty == QAI_TYPE_BF16 ? 0.004 : 0.15;
            if (mi == 1 && (ty == QAI_TYPE_Q4_K || ty == QAI_TYPE_Q6_K)) lim = 0.2;
            CHECK_MSG(worst <= lim, "%s magnitude %g: max error %.4f of magnitude > %.4f", nm, mags[mi], worst, lim);
        }
    }
}

/* ---- fp16 / bf16 ---- */

static void test_half(void) {
    CHECK_EQ_INT(qai_fp32_to_fp16(1.0f), 0x3c00);
    CHECK_EQ_INT(qai_fp32_to_fp16(-2.0f), 0xc000);
    CHECK_EQ_INT(qai_fp32_to_fp16(65504.f), 0x7bff);
    CHECK_EQ_INT(qai_fp32_to_fp16(65520.f), 0x7c00); /* rounds up to inf */
    CHECK_EQ_INT(qai_fp32_to_fp16(5.9604645e-8f), 0x0001);
    CHECK_EQ_INT(qai_fp32_to_fp16(1e-9f), 0x0000);
    CHECK_EQ_INT(qai_fp32_to_fp16(1.0f + 1.0f / 2048), 0x3c00); /* tie -> even */
    CHECK_EQ_INT(qai_fp32_to_fp16(1.0f + 3.0f / 2048), 0x3c02);
    /* every finite half survives half -> float -> half */
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) continue; /* NaN */
        if (qai_fp32_to_fp16(qai_fp16_to_fp32((uint16_t)h)) != h) bad++;
    }
    CHECK_EQ_INT(bad, 0);
    CHECK(qai_fp16_to_fp32(0x7bff) == 65504.f);
    CHECK(isinf(qai_fp16_to_fp32(0x7c00)));
    CHECK(isnan(qai_fp16_to_fp32(0x7e00)));
    CHECK_EQ_INT(qai_fp32_to_bf16(1.0f), 0x3f80);
    CHECK_EQ_INT(qai_fp32_to_bf16(1.00390625f), 0x3f80);   /* 1 + 2^-8: tie -> even */
    CHECK_EQ_INT(qai_fp32_to_bf16(1.01171875f), 0x3f82);   /* 1 + 3*2^-8: tie -> even (up) */
    CHECK_EQ_INT(qai_fp32_to_bf16(-3.0e38f) & 0x8000, 0x8000);
    CHECK(isnan(qai_bf16_to_fp32(qai_fp32_to_bf16(NAN))));
    CHECK(qai_bf16_to_fp32(0x4049) == 3.140625f);
    bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        if ((h & 0x7f80) == 0x7f80 && (h & 0x7f)) continue;
        if (qai_fp32_to_bf16(qai_bf16_to_fp32((uint16_t)h)) != h) bad++;
    }
    CHECK_EQ_INT(bad, 0);
}

int main(void) {
    test_traits();
    test_known_blocks();
    test_error_bounds();
    test_special();
    test_half();
    return test_summary();
}
