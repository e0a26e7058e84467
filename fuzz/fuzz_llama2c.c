/* Fuzz harness for the llama2.c importers: the input is split at its first
 * 4 KiB into a tokenizer.bin and a checkpoint; both parsers must reject
 * malformed input with a message (never crash), and a vocabulary that loads
 * must build a tokenizer that encodes and decodes. Files go through a memfd so
 * the path-based APIs are exercised as users call them. */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "qai/convert.h"
#include "qai/tokenizer.h"

static int to_memfd(const uint8_t *data, size_t size, char *path, size_t cap) {
    int fd = memfd_create("fuzz", 0);
    if (fd < 0) return -1;
    if (size && write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return -1;
    }
    snprintf(path, cap, "/proc/self/fd/%d", fd);
    return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    size_t split = size < 4096 ? size : 4096;
    char tok_path[64], bin_path[64];
    int tfd = to_memfd(data, split, tok_path, sizeof tok_path);
    int bfd = to_memfd(data + split, size - split, bin_path, sizeof bin_path);
    if (tfd < 0 || bfd < 0) goto out;
    qai_vocab_desc d;
    if (qai_vocab_read_llama2c(tok_path, &d) == QAI_OK) {
        qai_tokenizer *tok;
        if (qai_tokenizer_new(&d, &tok) == QAI_OK) {
            int32_t *ids;
            size_t n;
            if (qai_tokenizer_encode(tok, "Once upon a time", 16, QAI_TOK_ADD_SPECIAL, &ids, &n) == QAI_OK) {
                char *text;
                size_t len;
                if (qai_tokenizer_decode(tok, ids, n, 0, &text, &len) == QAI_OK) qai_free(text);
                qai_free(ids);
            }
            qai_tokenizer_free(tok);
        }
        qai_vocab_release(&d);
    }
    /* the converter writes only if both parse; send output nowhere useful */
    qai_convert_llama2c(bin_path, tok_path, "/dev/null/none.gguf");
out:
    if (tfd >= 0) close(tfd);
    if (bfd >= 0) close(bfd);
    return 0;
}
