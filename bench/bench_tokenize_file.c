/* Encoding speed and compression of a tokenizer on a text file, the way
 * spm_encode works: every line is encoded on its own (no BOS/EOS, the newline
 * not encoded), so the token counts compare with `spm_encode --output_format=id`
 * (one line of ids per input line).
 *
 * usage: bench_tokenize_file MODEL.gguf FILE [--repeat N] [--print-ids]
 * prints: bytes, lines, tokens, tokens/byte, seconds (best of N), MB/s.
 * --print-ids writes the ids of each line as spm_encode does (space-separated,
 * one line per input line) to stdout instead. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qai/gguf.h"
#include "qai/tokenizer.h"

int main(int argc, char **argv) {
    if (argc < 3) { /* make bench runs every bench_* without arguments: nothing to do then */
        fprintf(stderr, "usage: %s MODEL.gguf FILE [--repeat N] [--print-ids] (see bench/tokenizer_vs_spm.sh)\n",
                argv[0]);
        return argc == 1 ? 0 : 2;
    }
    int repeat = 3;
    bool print_ids = false;
    for (int i = 3; i < argc; i++) {
        if (!strcmp(argv[i], "--repeat") && i + 1 < argc) repeat = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--print-ids")) print_ids = true;
        else {
            fprintf(stderr, "unknown option '%s'\n", argv[i]);
            return 2;
        }
    }
    qai_gguf *g;
    qai_tokenizer *tok;
    if (qai_gguf_open(argv[1], &g) || qai_tokenizer_from_gguf(g, &tok)) {
        fprintf(stderr, "%s\n", qai_last_error());
        return 1;
    }
    qai_gguf_close(g);
    qai_mapped_file mf;
    if (qai_file_map(argv[2], &mf)) {
        fprintf(stderr, "%s\n", qai_last_error());
        return 1;
    }
    const char *s = (const char *)mf.data;
    size_t n = mf.size;
    double best = 1e30;
    size_t n_tokens = 0, n_lines = 0;
    for (int r = 0; r < (print_ids ? 1 : repeat); r++) {
        uint64_t t0 = qai_time_ns();
        n_tokens = n_lines = 0;
        for (size_t i = 0; i < n;) {
            const char *nl = memchr(s + i, '\n', n - i);
            size_t e = nl ? (size_t)(nl - s) : n;
            int32_t *ids;
            size_t k;
            if (qai_tokenizer_encode(tok, s + i, e - i, 0, &ids, &k)) {
                fprintf(stderr, "%s\n", qai_last_error());
                return 1;
            }
            if (print_ids) {
                for (size_t j = 0; j < k; j++) printf(j ? " %d" : "%d", ids[j]);
                putchar('\n');
            }
            n_tokens += k;
            n_lines++;
            qai_free(ids);
            i = e + 1;
        }
        double sec = (double)(qai_time_ns() - t0) * 1e-9;
        if (sec < best) best = sec;
    }
    if (!print_ids)
        printf("bytes %zu lines %zu tokens %zu tokens_per_byte %.5f seconds %.4f MB_s %.3f\n", n, n_lines, n_tokens,
               (double)n_tokens / (double)n, best, (double)n / 1e6 / best);
    qai_file_unmap(&mf);
    qai_tokenizer_free(tok);
    return 0;
}
