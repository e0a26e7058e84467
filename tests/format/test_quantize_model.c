/* Tests for qai_quantize_model (src/format/quantize_model.c): a small random
 * f32 llama-shaped model is written with the GGUF writer, quantized to every
 * type, reopened, and checked for tensor types (llama.cpp's rules, including
 * q4_k_m's use_more_bits layers and the fallbacks), metadata, and values
 * (dequantized within each type's error bound; 1-D tensors bit-identical). */
#include <stdint.h>

#include "qai/gguf.h"
#include "qai/quantize.h"
#include "qai/tensor.h"
#include "test.h"

enum { DIM = 256, KV = 64, FF = 256, VOCAB = 320, LAYERS = 8 };

typedef struct {
    char name[64];
    int n_dims;
    int64_t ne[2];
    float *data;
} tensor;

static tensor tensors[128];
static int n_tensors;

static void add(qai_rng *r, const char *name, int64_t ne0, int64_t ne1) {
    tensor *t = &tensors[n_tensors++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->n_dims = ne1 ? 2 : 1;
    t->ne[0] = ne0;
    t->ne[1] = ne1 ? ne1 : 1;
    int64_t n = t->ne[0] * t->ne[1];
    t->data = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++) t->data[i] = t->n_dims == 1 ? 1.f + 0.1f * qai_rng_normal(r) : 0.02f * qai_rng_normal(r);
}

static const char *write_model(void) {
    static char path[512];
    snprintf(path, sizeof path, "%s/test_quantize_model_in.gguf", TEST_TMP());
    qai_rng r;
    qai_rng_seed(&r, 5);
    add(&r, "token_embd.weight", DIM, VOCAB);
    add(&r, "output_norm.weight", DIM, 0);
    add(&r, "output.weight", DIM, VOCAB);
    for (int l = 0; l < LAYERS; l++) {
        char n[64];
        const char *names[] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
        const int64_t rows[] = {DIM, KV, KV, DIM, FF, FF, DIM};
        const int64_t cols[] = {DIM, DIM, DIM, DIM, DIM, DIM, FF};
        snprintf(n, sizeof n, "blk.%d.attn_norm.weight", l);
        add(&r, n, DIM, 0);
        for (int k = 0; k < 7; k++) {
            snprintf(n, sizeof n, "blk.%d.%s.weight", l, names[k]);
            add(&r, n, cols[k], rows[k]);
        }
        snprintf(n, sizeof n, "blk.%d.ffn_norm.weight", l);
        add(&r, n, DIM, 0);
    }
    add(&r, "extra96.weight", 96, 8);  /* rows a multiple of 32 but not of 256 */
    add(&r, "extra100.weight", 100, 4); /* rows not a multiple of 32 */
    add(&r, "extra.bias", 96, 8);       /* 2-D but not a weight: kept */
    qai_gguf_writer *w = qai_gguf_writer_new();
    qai_gguf_set_str(w, "general.architecture", "llama");
    qai_gguf_set_u32(w, "llama.block_count", LAYERS);
    qai_gguf_set_str(w, "test.marker", "kept");
    qai_gguf_set_u32(w, "general.file_type", 0);
    for (int i = 0; i < n_tensors; i++)
        qai_gguf_add_tensor(w, tensors[i].name, QAI_TYPE_F32, tensors[i].n_dims, tensors[i].ne, tensors[i].data,
                            sizeof(float) * (size_t)(tensors[i].ne[0] * tensors[i].ne[1]));
    qai_status st = qai_gguf_writer_write(w, path);
    qai_gguf_writer_free(w);
    CHECK_OK(st);
    return path;
}

/* llama.cpp's use_more_bits for 8 layers: i < 1, i >= 7, (i - 1) % 3 == 2 -> layers 0, 3, 6, 7 */
static bool more_bits(int l) { return l == 0 || l == 3 || l == 6 || l == 7; }

static qai_type expected(const char *type_name, const tensor *t) {
    qai_type base = (qai_type)qai_type_from_name(!strcmp(type_name, "q4_k_m") ? "q4_K" : type_name);
    if (t->n_dims == 1 || !strstr(t->name, "weight")) return QAI_TYPE_F32;
    bool quant = qai_type_info(base)->quantized;
    qai_type ty = base;
    int layer = -1;
    sscanf(t->name, "blk.%d.", &layer);
    if (quant && !strcmp(t->name, "output.weight") && base != QAI_TYPE_Q8_0) ty = QAI_TYPE_Q6_K;
    if (!strcmp(type_name, "q4_k_m") && (strstr(t->name, "attn_v") || strstr(t->name, "ffn_down")) && more_bits(layer))
        ty = QAI_TYPE_Q6_K;
    if (t->ne[0] % qai_type_info(ty)->block_size) {
        ty = ty == QAI_TYPE_Q4_K || ty == QAI_TYPE_Q6_K ? QAI_TYPE_Q8_0 : QAI_TYPE_F16;
        if (t->ne[0] % qai_type_info(ty)->block_size) ty = QAI_TYPE_F16;
    }
    return ty;
}

/* relative rmse bound per stored type (gaussian data; see test_quant.c) */
static double bound(qai_type t) {
    switch (t) {
    case QAI_TYPE_F32: return 0;
    case QAI_TYPE_F16: return 3e-4;
    case QAI_TYPE_BF16: return 2.5e-3;
    case QAI_TYPE_Q8_0: return 0.006;
    case QAI_TYPE_Q6_K: return 0.02;
    case QAI_TYPE_Q4_K: return 0.08;
    case QAI_TYPE_Q4_0: return 0.095;
    default: return 0;
    }
}

int main(void) {
    const char *in = write_model();
    static const struct {
        const char *name;
        int ftype;
    } types[] = {{"f32", 0}, {"f16", 1}, {"bf16", 32}, {"q8_0", 7}, {"q4_0", 2}, {"q4_k", 14}, {"q6_k", 18}, {"q4_k_m", 15}};
    float *row = malloc(sizeof(float) * 4096);
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        char out[512];
        snprintf(out, sizeof out, "%s/test_quantize_model_%s.gguf", TEST_TMP(), types[ti].name);
        qai_quantize_summary s;
        qai_quantize_options o = {.n_threads = 2, .quiet = true};
        qai_log_level lv = qai_log_get_level();
        qai_log_set_level(QAI_LOG_ERROR); /* fallback warnings are expected */
        CHECK_OK(qai_quantize_model(in, out, types[ti].name, &o, &s));
        qai_log_set_level(lv);
        CHECK_EQ_INT(s.n_tensors, n_tensors);
        CHECK_EQ_INT(s.file_type, types[ti].ftype);
        CHECK(s.file_out > 0 && s.data_out > 0);
        qai_gguf *g;
        CHECK_OK(qai_gguf_open(out, &g));
        if (!g) continue;
        int64_t ft = -1;
        CHECK_OK(qai_gguf_get_int(g, "general.file_type", &ft));
        CHECK_EQ_INT(ft, types[ti].ftype);
        int64_t qv = -1;
        CHECK_OK(qai_gguf_get_int(g, "general.quantization_version", &qv));
        CHECK_EQ_INT(qv, 2);
        const char *mk = NULL;
        CHECK_OK(qai_gguf_get_str(g, "test.marker", &mk));
        CHECK(mk && !strcmp(mk, "kept"));
        CHECK_EQ_INT(qai_gguf_n_tensors(g), n_tensors);
        uint64_t bytes = 0;
        for (int i = 0; i < n_tensors; i++) {
            const tensor *t = &tensors[i];
            const qai_gguf_tensor *q = qai_gguf_find_tensor(g, t->name);
            CHECK_MSG(q != NULL, "%s: tensor %s missing", types[ti].name, t->name);
            if (!q) continue;
            bytes += q->size;
            qai_type want = expected(types[ti].name, t);
            CHECK_MSG(q->type == want, "%s: tensor %s is %s, expected %s", types[ti].name, t->name,
                      qai_type_info(q->type)->name, qai_type_info(want)->name);
            CHECK_EQ_INT(q->ne[0], t->ne[0]);
            CHECK_EQ_INT(q->ne[1], t->ne[1]);
            size_t rs = qai_row_size(q->type, t->ne[0]);
            double se = 0, sx = 0;
            for (int64_t r = 0; r < t->ne[1]; r++) {
                CHECK_OK(qai_dequantize_row(q->type, (const uint8_t *)q->data + r * rs, row, t->ne[0]));
                for (int64_t k = 0; k < t->ne[0]; k++) {
                    double x = t->data[r * t->ne[0] + k], e = row[k] - x;
                    se += e * e;
                    sx += x * x;
                }
            }
            double rr = sqrt(se / sx);
            CHECK_MSG(rr <= bound(q->type), "%s: tensor %s (%s): relative rmse %g > %g", types[ti].name, t->name,
                      qai_type_info(q->type)->name, rr, bound(q->type));
        }
        CHECK_EQ_INT(bytes, s.data_out);
        qai_gguf_close(g);
        remove(out);
    }
    /* errors: unknown type, missing input */
    CHECK(qai_quantize_model(in, "/nonexistent/x.gguf", "q3_k", NULL, NULL) == QAI_ERR_ARG);
    CHECK(qai_quantize_model("/nonexistent/in.gguf", "/tmp/x.gguf", "q8_0", NULL, NULL) != QAI_OK);
    CHECK_EQ_INT(qai_quantize_file_type("Q4_K_M"), 15);
    CHECK_EQ_INT(qai_quantize_file_type("q5_k"), -1);
    remove(in);
    free(row);
    for (int i = 0; i < n_tensors; i++) free(tensors[i].data);
    return test_summary();
}
