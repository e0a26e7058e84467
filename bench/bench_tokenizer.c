/* Tokenizer encode/decode speed in MB/s: the 32k Llama 2 vocabulary (SPM, from
 * ../shared/data/models/llama2-tokenizer/tokenizer.bin) and GPT-2's vocabulary
 * (byte-level BPE, from $QAI_LLAMACPP_DIR/models/ggml-vocab-gpt-2.gguf when set)
 * over a few MB of English text (the files in /usr/share/common-licenses, repeated, or
 * generated text when those are missing), encoded paragraph by paragraph as a
 * training-data pipeline would.
 *
 * usage: bench_tokenizer [MB]   (default 4) */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qai/tokenizer.h"

static char *make_text(size_t want, size_t *len) {
    char *buf = malloc(want + 1);
    size_t n = 0;
    DIR *d = opendir("/usr/share/common-licenses");
    struct dirent *e;
    char *corpus = NULL;
    size_t cn = 0;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[512];
        snprintf(path, sizeof path, "/usr/share/common-licenses/%s", e->d_name);
        char *data;
        size_t size;
        if (qai_file_read(path, &data, &size)) continue;
        corpus = realloc(corpus, cn + size);
        memcpy(corpus + cn, data, size);
        cn += size;
        qai_free(data);
    }
    if (d) closedir(d);
    if (cn < 1000) { /* generated text: words from a fixed list, deterministic */
        static const char *words[] = {"the", "of", "and", "software", "license", "to", "you", "may", "copy",
                                      "distribute", "Program", "source", "code", "under", "terms", "this", "work",
                                      "conditions", "1,234", "year", "(c)", "free"};
        qai_rng r;
        qai_rng_seed(&r, 1);
        corpus = realloc(corpus, 1 << 20);
        cn = 0;
        while (cn < (1 << 20) - 32) {
            const char *w = words[qai_rng_u64(&r) % (sizeof words / sizeof words[0])];
            cn += (size_t)sprintf(corpus + cn, "%s%s", w, qai_rng_u64(&r) % 12 ? " " : ".\n\n");
        }
    }
    while (n < want) {
        size_t k = cn < want - n ? cn : want - n;
        memcpy(buf + n, corpus, k);
        n += k;
    }
    free(corpus);
    buf[n] = 0;
    *len = n;
    return buf;
}

static void bench(const char *name, const qai_tokenizer *tok, const char *text, size_t len) {
    uint64_t t0 = qai_time_ns();
    size_t n_tokens = 0;
    int32_t **all = NULL;
    size_t *counts = NULL, n_par = 0;
    for (size_t pos = 0; pos < len;) {
        const char *end = strstr(text + pos, "\n\n");
        size_t plen = end ? (size_t)(end - (text + pos)) + 2 : len - pos;
        int32_t *ids;
        size_t n;
        if (qai_tokenizer_encode(tok, text + pos, plen, 0, &ids, &n)) {
            fprintf(stderr, "%s: %s\n", name, qai_last_error());
            return;
        }
        all = realloc(all, (n_par + 1) * sizeof *all);
        counts = realloc(counts, (n_par + 1) * sizeof *counts);
        all[n_par] = ids;
        counts[n_par++] = n;
        n_tokens += n;
        pos += plen;
    }
    uint64_t t1 = qai_time_ns();
    size_t out_bytes = 0;
    for (size_t i = 0; i < n_par; i++) {
        char *back;
        size_t bl;
        qai_tokenizer_decode(tok, all[i], counts[i], QAI_DETOK_STRIP_SPACE, &back, &bl);
        out_bytes += bl;
        qai_free(back);
        qai_free(all[i]);
    }
    uint64_t t2 = qai_time_ns();
    double mb = (double)len / 1e6;
    printf("%-28s %6.2f MB  %9zu tokens (%.2f bytes/token)  encode %7.2f MB/s  decode %8.2f MB/s%s\n", name, mb,
           n_tokens, (double)len / (double)n_tokens, mb / ((double)(t1 - t0) / 1e9), mb / ((double)(t2 - t1) / 1e9),
           out_bytes == len ? "" : "  (decode length differs!)");
    free(all);
    free(counts);
}

int main(int argc, char **argv) {
    double mb = argc > 1 ? atof(argv[1]) : 4;
    size_t len;
    char *text = make_text((size_t)(mb * 1e6), &len);
    const char *data = getenv("QAI_DATA") ? getenv("QAI_DATA") : "../shared/data";
    char path[1024];
    snprintf(path, sizeof path, "%s/models/llama2-tokenizer/tokenizer.bin", data);
    qai_vocab_desc d;
    qai_tokenizer *tok;
    if (qai_vocab_read_llama2c(path, &d) == QAI_OK && qai_tokenizer_new(&d, &tok) == QAI_OK) {
        bench("llama2 32k (spm)", tok, text, len);
        qai_tokenizer_free(tok);
        qai_vocab_release(&d);
    } else {
        fprintf(stderr, "skipping SPM: %s (set QAI_DATA)\n", qai_last_error());
    }
    const char *lc = getenv("QAI_LLAMACPP_DIR");
    static const char *bpe[] = {"gpt-2", "llama-spm", "starcoder", NULL};
    for (int i = 0; lc && bpe[i]; i++) {
        snprintf(path, sizeof path, "%s/models/ggml-vocab-%s.gguf", lc, bpe[i]);
        qai_gguf *g;
        if (qai_gguf_open(path, &g)) continue;
        if (qai_tokenizer_from_gguf(g, &tok) == QAI_OK) {
            char name[64];
            snprintf(name, sizeof name, "%s (%s)", bpe[i], qai_tokenizer_kind(tok) == QAI_VOCAB_SPM ? "spm" : "bpe");
            bench(name, tok, text, len);
            qai_tokenizer_free(tok);
        }
        qai_gguf_close(g);
    }
    if (!lc) fprintf(stderr, "set QAI_LLAMACPP_DIR to a llama.cpp checkout to also measure GPT-2's BPE vocabulary\n");
    free(text);
    return 0;
}
