/* libFuzzer harness for WordPiece ("bert" vocabularies).
 *
 * An input that starts with "GGUF" is a vocabulary file: it is opened as a
 * buffer and, if it holds a tokenizer, a few fixed texts are encoded and
 * decoded with it (reading tokenizer.ggml.* of a "bert" model, its marks and
 * casing). Any other input is text, encoded by two tokenizers built once from
 * the same vocabulary in its two spellings (llama.cpp's "▁" word starts and
 * vocab.txt's "##" continuations); they must give the same ids, every id in
 * range, [CLS]/[SEP] exactly around the text with QAI_TOK_ADD_SPECIAL, and
 * decoding must succeed. A failure aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qai/gguf.h"
#include "qai/tokenizer.h"

static qai_tokenizer *phantom, *hashed;

static void die(const char *what) {
    fprintf(stderr, "fuzz_wordpiece: %s: %s\n", what, qai_last_error());
    abort();
}

/* vocab.txt spellings; the "▁" form is derived as llama.cpp's converter does */
static const char *const VOCAB[] = {
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused0]", "a", "b", "c", "e", "h", "l", "o", "t", "x", "##a",
    "##b", "##c", "##e", "##h", "##l", "##o", "##t", "##x", "the", "hello", "##llo", "he", "##ll", "cafe", "un",
    "##aff", "##able", ",", ".", "!", "'", "-", "(", ")", "你", "好", "##你", "σ", "ς", "##ς", "##σ", "ß", "🚀", "##🚀",
    "\xe2\x96\x81", "d", "##d", "on", "##n", "n", "s", "##s"};
#define NV (int)(sizeof VOCAB / sizeof VOCAB[0])

static void build(void) {
    static char *ph[NV];
    int32_t types[NV];
    for (int i = 0; i < NV; i++) {
        const char *t = VOCAB[i];
        size_t l = strlen(t);
        types[i] = t[0] == '[' && !strstr(t, "unused") ? QAI_TOKEN_CONTROL : QAI_TOKEN_NORMAL;
        ph[i] = malloc(l + 4);
        if (t[0] == '[') memcpy(ph[i], t, l + 1);
        else if (t[0] == '#' && t[1] == '#') memcpy(ph[i], t + 2, l - 1);
        else memcpy(ph[i], "\xe2\x96\x81", 3), memcpy(ph[i] + 3, t, l + 1);
    }
    qai_vocab_desc d = {.kind = QAI_VOCAB_WPM, .n_tokens = NV, .tokens = (const char *const *)ph, .types = types,
                        .bos = 2, .sep = 3, .unk = 1, .pad = 0, .eos = -1, .eot = -1, .eom = -1, .add_bos = true};
    if (qai_tokenizer_new(&d, &phantom)) die("phantom vocabulary");
    d.tokens = VOCAB;
    if (qai_tokenizer_new(&d, &hashed)) die("## vocabulary");
}

static int32_t *encode(const qai_tokenizer *tok, const char *text, size_t len, int flags, size_t *n) {
    int32_t *ids;
    if (qai_tokenizer_encode(tok, text, len, flags, &ids, n)) die("encode");
    for (size_t i = 0; i < *n; i++)
        if (ids[i] < 0 || ids[i] >= qai_tokenizer_n_vocab(tok)) die("id out of range");
    char *back;
    size_t blen;
    if (qai_tokenizer_decode(tok, ids, *n, QAI_DETOK_STRIP_SPACE, &back, &blen)) die("decode");
    qai_free(back);
    return ids;
}

static void vocab_file(const uint8_t *data, size_t size) {
    qai_gguf *g;
    if (qai_gguf_open_buffer(data, size, "fuzz.gguf", &g)) return;
    qai_tokenizer *tok;
    if (qai_tokenizer_from_gguf(g, &tok) == QAI_OK) {
        static const char *const texts[] = {"Hello, World! caf\xc3\xa9 \xe4\xbd\xa0\xe5\xa5\xbd", "[CLS] x [SEP]",
                                            "\xce\xa3\xce\x91\xce\xa3 \x01 \t", ""};
        for (int k = 0; k < 4; k++) {
            size_t n;
            int32_t *ids = encode(tok, texts[k], strlen(texts[k]), QAI_TOK_ADD_SPECIAL | QAI_TOK_PARSE_SPECIAL, &n);
            qai_free(ids);
        }
        qai_tokenizer_free(tok);
    }
    qai_gguf_close(g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!phantom) build();
    if (size >= 4 && !memcmp(data, "GGUF", 4)) {
        vocab_file(data, size);
        return 0;
    }
    const char *text = (const char *)data;
    size_t n1, n2, n3;
    int32_t *a = encode(phantom, text, size, 0, &n1), *b = encode(hashed, text, size, 0, &n2);
    if (n1 != n2 || memcmp(a, b, n1 * sizeof *a)) {
        fprintf(stderr, "fuzz_wordpiece: the two spellings of the vocabulary disagree (%zu vs %zu ids)\n", n1, n2);
        abort();
    }
    int32_t *c = encode(phantom, text, size, QAI_TOK_ADD_SPECIAL, &n3);
    if (n3 != n1 + 2 || c[0] != 2 || c[n3 - 1] != 3 || memcmp(c + 1, a, n1 * sizeof *a)) {
        fprintf(stderr, "fuzz_wordpiece: [CLS]/[SEP] not exactly around the text\n");
        abort();
    }
    qai_free(c);
    c = encode(hashed, text, size, QAI_TOK_ADD_SPECIAL | QAI_TOK_PARSE_SPECIAL, &n3);
    qai_free(a);
    qai_free(b);
    qai_free(c);
    return 0;
}
