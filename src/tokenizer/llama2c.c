/*
 * llama2c.c — reads a llama2.c tokenizer.bin into a qai_vocab_desc.
 *
 * Layout (little-endian, no header beyond the first field, no token count):
 *   i32 max_token_length
 *   repeated until end of file: f32 score | i32 len | len bytes (not NUL-terminated)
 *
 * The result matches what llama.cpp's llama2.c converter writes into GGUF for
 * the same file: ids 0/1/2 become "<unk>"/"<s>"/"</s>" (UNKNOWN/CONTROL/CONTROL;
 * llama2.c stores "\n<s>\n" and "\n</s>\n"), empty pieces are CONTROL, pieces
 * "<0xXX>" are BYTE, every " " in a piece becomes "▁" (U+2581), scores are kept.
 *
 * What it does not do: know the model's vocab size (the file does not say; every
 * record up to the end of the file is a token).
 */
#include <string.h>

#include "qai/tokenizer.h"

static uint32_t rd_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

static bool is_byte_piece(const uint8_t *s, size_t n) {
    return n == 6 && s[0] == '<' && s[1] == '0' && s[2] == 'x' && hexval(s[3]) >= 0 && hexval(s[4]) >= 0 && s[5] == '>';
}

void qai_vocab_release(qai_vocab_desc *d) {
    if (!d) return;
    if (d->tokens)
        for (int32_t i = 0; i < d->n_tokens; i++) qai_free((void *)d->tokens[i]);
    if (d->merges)
        for (int32_t i = 0; i < d->n_merges; i++) qai_free((void *)d->merges[i]);
    qai_free((void *)d->tokens);
    qai_free((void *)d->token_lens);
    qai_free((void *)d->scores);
    qai_free((void *)d->types);
    qai_free((void *)d->merges);
    qai_free((void *)d->pre);
    memset(d, 0, sizeof *d);
}

qai_status qai_vocab_read_llama2c(const char *path, qai_vocab_desc *d) {
    if (!path || !d) return qai_error(QAI_ERR_ARG, "qai_vocab_read_llama2c: path and desc must not be NULL");
    memset(d, 0, sizeof *d);
    qai_mapped_file mf;
    qai_status st = qai_file_map(path, &mf);
    if (st) return st;
    const uint8_t *p = mf.data;
    size_t size = mf.size;
    if (size < 4) {
        qai_file_unmap(&mf);
        return qai_error(QAI_ERR_FORMAT,
                         "'%s': not a llama2.c tokenizer: %zu bytes, too short for the max_token_length field", path,
                         size);
    }
    int32_t max_len = (int32_t)rd_u32(p);
    if (max_len <= 0 || max_len > (1 << 20)) {
        qai_file_unmap(&mf);
        return qai_error(QAI_ERR_FORMAT, "'%s': not a llama2.c tokenizer: max_token_length %d at offset 0 is out of range",
                         path, max_len);
    }
    /* First pass: count and validate records. */
    size_t off = 4;
    int64_t n = 0;
    while (off < size) {
        if (size - off < 8) {
            qai_file_unmap(&mf);
            return qai_error(QAI_ERR_FORMAT,
                             "'%s': token %lld at offset %zu is truncated: %zu bytes left, a record needs at least 8",
                             path, (long long)n, off, size - off);
        }
        int32_t len = (int32_t)rd_u32(p + off + 4);
        if (len < 0 || (size_t)len > size - off - 8) {
            qai_file_unmap(&mf);
            return qai_error(QAI_ERR_FORMAT,
                             "'%s': token %lld at offset %zu has length %d, past the end of the file (%zu bytes left)",
                             path, (long long)n, off + 4, len, size - off - 8);
        }
        off += 8 + (size_t)len;
        if (++n > INT32_MAX / 2) {
            qai_file_unmap(&mf);
            return qai_error(QAI_ERR_FORMAT, "'%s': too many tokens", path);
        }
    }
    if (n < 3) {
        qai_file_unmap(&mf);
        return qai_error(QAI_ERR_FORMAT, "'%s': only %lld tokens; a llama2.c vocabulary has at least <unk>, <s>, </s>",
                         path, (long long)n);
    }
    d->kind = QAI_VOCAB_SPM;
    d->n_tokens = (int32_t)n;
    char **tokens = qai_calloc((size_t)n, sizeof *tokens);
    size_t *lens = qai_calloc((size_t)n, sizeof *lens);
    float *scores = qai_calloc((size_t)n, sizeof *scores);
    int32_t *types = qai_calloc((size_t)n, sizeof *types);
    d->tokens = (const char *const *)tokens;
    d->token_lens = lens;
    d->scores = scores;
    d->types = types;
    if (!tokens || !lens || !scores || !types) goto nomem;
    off = 4;
    for (int64_t i = 0; i < n; i++) {
        uint32_t sbits = rd_u32(p + off);
        float score;
        memcpy(&score, &sbits, 4);
        size_t len = (size_t)(int32_t)rd_u32(p + off + 4);
        const uint8_t *s = p + off + 8;
        off += 8 + len;
        scores[i] = score;
        const char *fixed = NULL;
        int32_t type = QAI_TOKEN_NORMAL;
        if (i == 0) fixed = "<unk>", type = QAI_TOKEN_UNKNOWN;
        else if (i == 1) fixed = "<s>", type = QAI_TOKEN_CONTROL;
        else if (i == 2) fixed = "</s>", type = QAI_TOKEN_CONTROL;
        else if (len == 0) type = QAI_TOKEN_CONTROL;
        else if (is_byte_piece(s, len)) type = QAI_TOKEN_BYTE;
        types[i] = type;
        if (fixed) {
            tokens[i] = qai_strdup(fixed);
            if (!tokens[i]) goto nomem;
            lens[i] = strlen(fixed);
            continue;
        }
        size_t spaces = 0;
        for (size_t k = 0; k < len; k++) spaces += s[k] == ' ';
        char *t = qai_malloc(len + 2 * spaces + 1); /* " " (1 byte) -> "▁" (3 bytes) */
        if (!t) goto nomem;
        size_t w = 0;
        for (size_t k = 0; k < len; k++) {
            if (s[k] == ' ') {
                t[w++] = (char)0xE2, t[w++] = (char)0x96, t[w++] = (char)0x81;
            } else {
                t[w++] = (char)s[k];
            }
        }
        t[w] = 0;
        tokens[i] = t;
        lens[i] = w;
    }
    qai_file_unmap(&mf);
    d->bos = 1;
    d->eos = 2;
    d->unk = 0;
    d->eot = d->eom = d->pad = d->sep = -1;
    d->add_bos = true;
    d->add_eos = false;
    d->add_space_prefix = true;
    return QAI_OK;
nomem:
    qai_file_unmap(&mf);
    qai_vocab_release(d);
    return qai_error(QAI_ERR_NOMEM, "'%s': out of memory reading the llama2.c tokenizer", path);
}
