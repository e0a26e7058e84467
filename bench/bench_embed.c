/* Sentence embeddings per second for a BERT encoder of all-MiniLM-L6-v2's
 * shape (random weights: dim 384, 6 layers, 12 heads, ffn 1536, vocab 30522,
 * 512 positions), texts of 64 tokens, F32 and Q8_0 weights, 1 and 2 threads,
 * one text per call (qai_embed) and 8 texts per call (qai_embed_batch); also
 * 12-token texts (short queries), where batching matters most.
 *
 * usage: bench_embed [DIR]   (the two GGUF files are written to DIR, default
 * /tmp, and kept, so llama.cpp's llama-embedding can run on the same files:
 *   llama-embedding -m DIR/bench_minilm_f32.gguf -p "$(64-token text)" --pooling mean -t N) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qai/model.h"

static double now(void) { return (double)qai_time_ns() * 1e-9; }

static double run(qai_context *c, int per_call, const int32_t *const *tok, const int *n, float *out, double secs) {
    int done = 0;
    double t0 = now(), t;
    do {
        if (per_call == 1) qai_embed(c, 0, tok[0], n[0], out);
        else qai_embed_batch(c, 0, per_call, tok, n, NULL, out);
        done += per_call;
    } while ((t = now() - t0) < secs);
    return done / t;
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "/tmp";
    const char *names[2] = {"f32", "q8_0"};
    const qai_type types[2] = {QAI_TYPE_F32, QAI_TYPE_Q8_0};
    printf("# bert MiniLM-L6 shape, 64-token texts, embeddings/s (%s)\n", qai_kernels_describe());
    for (int k = 0; k < 2; k++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/bench_minilm_%s.gguf", dir, names[k]);
        qai_init_params p = {.dim = 384, .layers = 6, .heads = 12, .ffn = 1536, .vocab = 30522, .ctx = 512,
                             .seed = 1, .type = types[k], .std = 0.05f};
        if (qai_bert_init_random(&p, NULL, 0, 1, path)) {
            fprintf(stderr, "bench_embed: %s\n", qai_last_error());
            return 1;
        }
        qai_model *m;
        if (qai_model_open(path, &m)) {
            fprintf(stderr, "bench_embed: %s\n", qai_last_error());
            return 1;
        }
        /* 64 tokens: [CLS] 62 word pieces [SEP] */
        const char *text = "the quick brown fox jumps over the lazy dog while a sentence embedding model reads "
                           "every word of this text and turns it into one vector that search can use later on "
                           "for ranking documents by meaning rather than spelling alone";
        int32_t *ids;
        size_t n;
        qai_tokenizer_encode(qai_model_tokenizer(m), text, strlen(text), QAI_TOK_ADD_SPECIAL, &ids, &n);
        const int32_t *tok[8];
        int lens[8];
        float *out = malloc(8 * 384 * sizeof(float));
        static const int lengths[2] = {64, 12}; /* a passage; a short query */
        for (int li = 0; li < 2; li++) {
            int nt = (int)n < lengths[li] ? (int)n : lengths[li];
            for (int i = 0; i < 8; i++) tok[i] = ids, lens[i] = nt;
            for (int th = 1; th <= 2; th++) {
                qai_context_params cp = qai_context_default_params();
                cp.n_threads = th;
                qai_context *c;
                if (qai_context_new(m, &cp, &c)) return 1;
                run(c, 1, tok, lens, out, 0.3); /* warm up */
                double one = run(c, 1, tok, lens, out, 2.0), eight = run(c, 8, tok, lens, out, 2.0);
                printf("%-5s threads %d  tokens %2d  single %6.1f/s  batch-of-8 %6.1f/s\n", names[k], th, nt, one, eight);
                fflush(stdout);
                qai_context_free(c);
            }
        }
        free(out);
        qai_free(ids);
        qai_model_close(m);
    }
    return 0;
}
