/* Helpers shared by the contrastive trainer tests: gradient comparison, the
 * whole-model central-difference check of qai_trainer_contrastive, and a
 * byte-vocabulary tokenizer GGUF. Header-only (static), for tests. */
#ifndef QAI_TESTS_CONTRASTIVE_CHECK_H
#define QAI_TESTS_CONTRASTIVE_CHECK_H

#include <math.h>
#include <string.h>

#include "qai/gguf.h"
#include "qai/model.h"
#include "qai/tokenizer.h"
#include "qai/train.h"
#include "test.h"

static inline int grad_ok(const char *what, double ana, double num, double atol, double rtol) {
    double tol = atol + rtol * fmax(fabs(ana), fabs(num));
    if (fabs(ana - num) <= tol) return 1;
    fprintf(stderr, "  %s: analytic %.6g numeric %.6g\n", what, ana, num);
    return 0;
}

/* The gradient t holds (from a backward over pb) against central differences
 * of the loss over pb, at 3 parameters per tensor drawn with pick — for the
 * first tensor (the embeddings), rows of the tokens in `rows` — skipping the
 * LM head, which must have no gradient. Returns the mismatches; *checked
 * counts the comparisons. */
static inline int contrastive_grad_check(qai_trainer *t, const qai_pair_batch *pb, const int32_t *rows, qai_rng *pick,
                                         int *checked) {
    const float h = 1e-2f;
    int bad = 0;
    *checked = 0;
    for (int i = 0; i < qai_trainer_n_tensors(t); i++) {
        int64_t ne[2];
        float *p, *g;
        const char *name = qai_trainer_tensor(t, i, ne, &p, &g);
        if (!strcmp(name, "output.weight")) {
            double gs = 0;
            for (int64_t k = 0; k < ne[0] * ne[1]; k++) gs += fabs(g[k]);
            CHECK(gs == 0); /* the LM head takes no part */
            continue;
        }
        int64_t n = ne[0] * ne[1];
        for (int s = 0; s < 3; s++) {
            int64_t k = (int64_t)(qai_rng_u64(pick) % (uint64_t)n);
            if (i == 0) k = (int64_t)rows[s] * ne[0] + s; /* a used embedding row */
            float keep = p[k], lp, lm;
            p[k] = keep + h;
            CHECK_OK(qai_trainer_contrastive(t, pb, false, 0, &lp, NULL));
            p[k] = keep - h;
            CHECK_OK(qai_trainer_contrastive(t, pb, false, 0, &lm, NULL));
            p[k] = keep;
            char what[96];
            snprintf(what, sizeof what, "%s[%lld]", name, (long long)k);
            bad += !grad_ok(what, g[k], ((double)lp - lm) / (2 * h), 3e-3, 5e-2);
            ++*checked;
        }
    }
    return bad;
}

/* A vocabulary-only GGUF of `vocab` byte tokens at path, opened as *g and *tok. */
static inline void byte_tokenizer(const char *path, int vocab, qai_gguf **g, qai_tokenizer **tok) {
    *g = NULL, *tok = NULL;
    qai_gguf_writer *w = qai_gguf_writer_new();
    CHECK(w && qai_gguf_set_str(w, "general.architecture", "llama") == QAI_OK);
    CHECK_OK(qai_model_write_byte_vocab(w, vocab));
    CHECK_OK(qai_gguf_writer_write(w, path));
    qai_gguf_writer_free(w);
    CHECK_OK(qai_gguf_open(path, g));
    if (*g) CHECK_OK(qai_tokenizer_from_gguf(*g, tok));
}

#endif
