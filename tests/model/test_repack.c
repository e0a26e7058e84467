/* Load-time weight repacking (src/model/model.c, qai_repack):
 *  - on a CPU whose kernels use the repacked layouts, Q8_0 / Q4_0 matmul
 *    weights of a llama model are repacked, the token embedding is not (its
 *    rows are looked up), and QAI_NO_REPACK=1 keeps every weight in place;
 *  - the logits of a batched prompt and of single-token steps agree with the
 *    in-place model within 1e-5 of the largest logit (measured: ~1e-7) (the repacked kernels
 *    round each block's float sum once with fma, the file-layout kernels
 *    twice, so the last bits differ and the differences grow through layers);
 *  - the repacked model gives identical logits with 1 and 3 threads;
 *  - a model with a tied output head (stories260K quantized to Q8_0): the
 *    head gets its own repacked copy while tok_embd stays, same logits;
 *  - all repacked copies share one arena (qai_alloc_huge), 64-byte aligned,
 *    each inside it;
 *  - the same with the kernels lowered to AVX2 (its own R16 kernels), against
 *    the in-place model run with the best kernels. */
#include <math.h>
#include <stdlib.h>

#include "model/model_internal.h"
#include "qai/convert.h"
#include "qai/model.h"
#include "qai/quantize.h"
#include "test.h"

static qai_model *open_model(const char *path, bool repack) {
    if (repack) unsetenv("QAI_NO_REPACK");
    else
        setenv("QAI_NO_REPACK", "1", 1);
    qai_model *m = NULL;
    CHECK_OK(qai_model_open(path, &m));
    unsetenv("QAI_NO_REPACK");
    return m;
}

/* Logits of a 13-token prompt (batched, every position) and then 3 single
 * tokens, concatenated into out (16 * V floats). */
static void run(qai_model *m, int n_threads, float *out) {
    const int V = qai_model_get_info(m)->n_vocab;
    qai_context_params cp = qai_context_default_params();
    cp.n_ctx = 64;
    cp.n_batch = 16;
    cp.n_threads = n_threads;
    qai_context *c = NULL;
    CHECK_OK(qai_context_new(m, &cp, &c));
    if (!c) return;
    int32_t tok[16], pos[16], seq[16];
    int8_t want[16];
    for (int i = 0; i < 16; i++) tok[i] = (i * 37 + 5) % (V - 3) + 3, pos[i] = i, seq[i] = 0, want[i] = 1;
    qai_batch b = {13, tok, pos, seq, want};
    CHECK_OK(qai_decode(c, &b));
    for (int i = 0; i < 13; i++) memcpy(out + (size_t)i * V, qai_context_logits(c, i), sizeof(float) * V);
    for (int i = 13; i < 16; i++) {
        CHECK_OK(qai_decode_tokens(c, 0, i, &tok[i], 1));
        memcpy(out + (size_t)i * V, qai_context_logits(c, 0), sizeof(float) * V);
    }
    qai_context_free(c);
}

static void compare(const char *what, const float *a, const float *b, size_t n) {
    float amax = 0, dmax = 0;
    for (size_t i = 0; i < n; i++) {
        amax = fmaxf(amax, fabsf(b[i]));
        float d = fabsf(a[i] - b[i]);
        if (!(d <= dmax)) dmax = d; /* NaN sticks */
    }
    printf("%s: largest |logit| %.4g, largest difference %.3g\n", what, amax, dmax);
    CHECK_MSG(amax > 0 && dmax <= 1e-5f * amax, "%s: repacked logits differ by %g (largest logit %g)", what, dmax, amax);
}

static bool repacked(const qai_weight *w) { return w->type == QAI_TYPE_Q8_0_R16 || w->type == QAI_TYPE_Q4_0_R16; }

/* The repacked model is loaded and run with the kernels at isa; the in-place
 * reference always with the best kernels. */
static void test_model(const char *path, const char *what, bool tied, qai_isa isa) {
    const qai_isa best = qai_cpu_isa();
    qai_model *in_place = open_model(path, false);
    qai_kernels_set_isa(isa);
    bool simd = qai_repack_type(QAI_TYPE_Q8_0) >= 0;
    qai_model *rp = open_model(path, true);
    qai_kernels_set_isa(best);
    if (!in_place || !rp) goto done;
    const qai_model_info *hp = qai_model_get_info(rp);
    /* which weights were repacked */
    const qai_layer *L = &rp->layers[0], *L0 = &in_place->layers[0];
    CHECK(!repacked(&L0->wq) && !repacked(&in_place->output) && !in_place->repack_arena);
    CHECK_MSG(repacked(&L->wq) == (simd && qai_repack_type(L0->wq.type) >= 0), "%s: attn_q repacked? %d", what,
              (int)L->wq.type);
    CHECK_MSG(repacked(&rp->output) == (simd && qai_repack_type(in_place->output.type) >= 0),
              "%s: output repacked? %d", what, (int)rp->output.type);
    CHECK(!repacked(&rp->tok_embd));
    CHECK(!rp->repack_arena || (const uint8_t *)rp->tok_embd.data < rp->repack_arena ||
          (const uint8_t *)rp->tok_embd.data >= rp->repack_arena + rp->repack_arena_size);
    CHECK_EQ_INT((int)rp->tok_embd.type, (int)in_place->tok_embd.type);
    CHECK_EQ_INT(hp->tied_output, tied);
    if (tied && repacked(&rp->output)) CHECK(rp->output.data != rp->tok_embd.data);
    if (repacked(&L->wq)) {
        /* one arena: every repacked weight's data inside the model's arena */
        const qai_weight *ws[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down, &rp->output};
        const uint8_t *base = rp->repack_arena;
        CHECK(base != NULL);
        for (size_t i = 0; base && i < sizeof ws / sizeof ws[0]; i++) {
            if (!repacked(ws[i])) continue;
            const uint8_t *d = ws[i]->data;
            CHECK_MSG((uintptr_t)d % 64 == 0, "%s: weight %zu not 64-byte aligned", what, i);
            CHECK_MSG(d >= base && d + qai_matrix_size(ws[i]->type, ws[i]->rows, ws[i]->cols) <= base + rp->repack_arena_size,
                      "%s: weight %zu outside the arena", what, i);
        }
    }
    CHECK_EQ_INT((long)qai_model_weight_bytes(rp), (long)qai_model_weight_bytes(in_place));

    const size_t n = (size_t)16 * hp->n_vocab;
    float *a = qai_malloc(n * sizeof(float)), *b = qai_malloc(n * sizeof(float)), *c = qai_malloc(n * sizeof(float));
    run(in_place, 2, a);
    qai_kernels_set_isa(isa);
    run(rp, 1, b);
    run(rp, 3, c);
    qai_kernels_set_isa(best);
    compare(what, b, a, n);
    CHECK_MSG(!memcmp(b, c, n * sizeof(float)), "%s: repacked logits differ between 1 and 3 threads", what);
    qai_free(a);
    qai_free(b);
    qai_free(c);
done:
    qai_model_close(in_place);
    qai_model_close(rp);
}

int main(void) {
    char path[512];
    printf("kernels: %s, repack Q8_0: %s\n", qai_kernels_describe(),
           qai_repack_type(QAI_TYPE_Q8_0) >= 0 ? "yes" : "no (kernels keep the file layout)");
    /* random llama models: 300 vocabulary rows (not a multiple of 16), odd block counts (dim 224 = 7 blocks) */
    const struct {
        const char *arch;
        qai_type type;
        int dim, heads, kv, ffn;
    } cases[] = {{"llama", QAI_TYPE_Q8_0, 256, 4, 2, 704}, {"qwen2", QAI_TYPE_Q4_0, 224, 4, 4, 640}};
    const qai_isa best = qai_cpu_isa();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(path, sizeof path, "%s/test_repack_%zu.gguf", TEST_TMP(), i);
        qai_init_params p = {.arch = cases[i].arch, .dim = cases[i].dim, .layers = 2, .heads = cases[i].heads,
                             .kv_heads = cases[i].kv, .ffn = cases[i].ffn, .vocab = 300, .ctx = 64, .seed = 5 + i,
                             .type = cases[i].type};
        CHECK_OK(qai_model_init_random(&p, path));
        test_model(path, cases[i].arch, false, best);
        if (best > QAI_ISA_AVX2) { /* the AVX2 R16 kernels inside a whole model */
            char what[64];
            snprintf(what, sizeof what, "%s (avx2)", cases[i].arch);
            test_model(path, what, false, QAI_ISA_AVX2);
        }
        remove(path);
    }
    /* tied head */
    char bin[512], tokp[512], f32[512];
    snprintf(bin, sizeof bin, "%s/models/stories260K/stories260K.bin", TEST_DATA());
    snprintf(tokp, sizeof tokp, "%s/models/stories260K/tok512.bin", TEST_DATA());
    snprintf(f32, sizeof f32, "%s/test_repack_s260.gguf", TEST_TMP());
    snprintf(path, sizeof path, "%s/test_repack_s260_q8.gguf", TEST_TMP());
    CHECK_OK(qai_convert_llama2c(bin, tokp, f32));
    qai_quantize_options qo = {.n_threads = 1, .quiet = true};
    CHECK_OK(qai_quantize_model(f32, path, "q8_0", &qo, NULL));
    test_model(path, "stories260K q8_0 (tied head)", true, best);
    remove(f32);
    remove(path);
    return test_summary();
}
