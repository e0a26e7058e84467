/* llama.cpp's tokenizer test vocabularies: when QAI_LLAMACPP_DIR names a
 * llama.cpp checkout, every models/ggml-vocab-X.gguf present is loaded through
 * qai_tokenizer_from_gguf and each .inp/.out pair is checked (inputs separated
 * by "\n__ggml_vocab_test__\n", one line of space-separated ids per input;
 * encoded as llama.cpp's test-tokenizer-0 does: no BOS/EOS, no special parsing).
 * Without the variable the test says so and passes. */
#include <dirent.h>

#include "qai/tokenizer.h"
#include "tokenizer/tok_internal.h"
#include "test.h"

/* Vocabularies that must match completely (the others are reported). */
static const char *const MUST_MATCH[] = {"llama-spm", "gpt-2", NULL};

static bool must_match(const char *name) {
    for (int i = 0; MUST_MATCH[i]; i++)
        if (!strcmp(MUST_MATCH[i], name)) return true;
    return false;
}

static char *read_all(const char *path, size_t *n) {
    char *d;
    if (qai_file_read(path, &d, n)) return NULL;
    return d;
}

static void check_vocab(const char *models, const char *name) {
    char path[2048], inp[2100], outp[2100];
    snprintf(path, sizeof path, "%s/ggml-vocab-%s.gguf", models, name);
    snprintf(inp, sizeof inp, "%s.inp", path);
    snprintf(outp, sizeof outp, "%s.out", path);
    size_t ni, no;
    char *in = read_all(inp, &ni), *out = read_all(outp, &no);
    if (!in || !out) {
        qai_free(in);
        qai_free(out);
        return;
    }
    qai_gguf *g;
    qai_tokenizer *tok = NULL;
    if (qai_gguf_open(path, &g)) {
        printf("%-16s cannot open: %s\n", name, qai_last_error());
        if (must_match(name)) t_fail++;
        goto end;
    }
    if (qai_tokenizer_from_gguf(g, &tok)) {
        printf("%-16s not loaded: %s\n", name, qai_last_error());
        if (must_match(name)) t_fail++;
        qai_gguf_close(g);
        goto end;
    }
    const char *sep = "\n__ggml_vocab_test__\n";
    size_t seplen = strlen(sep);
    int total = 0, ok = 0, shown = 0, rt_bad = 0;
    char *ip = in, *iend = in + ni, *op = out, *oend = out + no;
    while (ip < iend && op < oend) {
        char *next = memmem(ip, (size_t)(iend - ip), sep, seplen);
        size_t len = next ? (size_t)(next - ip) : (size_t)(iend - ip);
        char *eol = memchr(op, '\n', (size_t)(oend - op));
        if (!eol) eol = oend;
        int32_t want[4096];
        int nw = 0;
        for (char *p = op; p < eol && nw < 4096;) {
            while (p < eol && *p == ' ') p++;
            if (p >= eol) break;
            want[nw++] = (int32_t)strtol(p, &p, 10);
        }
        int32_t *ids;
        size_t n;
        total++;
        if (qai_tokenizer_encode(tok, ip, len, 0, &ids, &n) == QAI_OK) {
            bool same = (int)n == nw;
            for (size_t i = 0; same && i < n; i++) same = ids[i] == want[i];
            ok += same;
            if (!same && shown++ < 3) {
                fprintf(stderr, "%s: '%.*s'\n  got :", name, (int)(len > 60 ? 60 : len), ip);
                for (size_t i = 0; i < n && i < 40; i++) fprintf(stderr, " %d", ids[i]);
                fprintf(stderr, "\n  want:");
                for (int i = 0; i < nw && i < 40; i++) fprintf(stderr, " %d", want[i]);
                fprintf(stderr, "\n");
            }
            char *back;
            size_t blen;
            if (qai_tokenizer_decode(tok, ids, n, QAI_DETOK_STRIP_SPACE, &back, &blen) == QAI_OK) {
                if (blen != len || memcmp(back, ip, len)) rt_bad++;
                qai_free(back);
            }
            qai_free(ids);
        }
        ip = next ? next + seplen : iend;
        op = eol + 1;
    }
    printf("%-16s %3d of %3d inputs match llama.cpp (%s, pre '%s'); %d do not decode back exactly\n", name, ok, total,
           qai_tokenizer_kind(tok) == QAI_VOCAB_SPM ? "spm" : "bpe", tok->pre_name ? tok->pre_name : "-", rt_bad);
    if (must_match(name)) CHECK_MSG(ok == total, "%s: %d of %d match", name, ok, total);
    qai_tokenizer_free(tok);
    qai_gguf_close(g);
end:
    qai_free(in);
    qai_free(out);
}

int main(void) {
    const char *dir = getenv("QAI_LLAMACPP_DIR");
    if (!dir || !*dir) {
        printf("QAI_LLAMACPP_DIR not set: skipped (set it to a llama.cpp checkout to compare with its vocabularies)\n");
        return test_summary();
    }
    char models[1024];
    snprintf(models, sizeof models, "%s/models", dir);
    DIR *dd = opendir(models);
    if (!dd) {
        fprintf(stderr, "cannot open '%s'\n", models);
        return 1;
    }
    char *names[128];
    int nn = 0;
    struct dirent *e;
    while ((e = readdir(dd)) && nn < 128) {
        size_t l = strlen(e->d_name);
        if (strncmp(e->d_name, "ggml-vocab-", 11) || l < 16 || strcmp(e->d_name + l - 5, ".gguf")) continue;
        names[nn++] = strndup(e->d_name + 11, l - 16);
    }
    closedir(dd);
    for (int i = 0; i < nn; i++)
        for (int j = i + 1; j < nn; j++)
            if (strcmp(names[i], names[j]) > 0) {
                char *t = names[i];
                names[i] = names[j];
                names[j] = t;
            }
    for (int i = 0; i < nn; i++) {
        check_vocab(models, names[i]);
        free(names[i]);
    }
    return test_summary();
}
