/* libFuzzer harness for the Hugging Face tokenizer.json importer
 * (src/format/hf_tokenizer.c).
 *
 * The input is a tokenizer.json, optionally followed by a NUL byte and a
 * tokenizer_config.json. Parsing must either fail with a message or give a
 * vocabulary whose every string and id is in range; such a vocabulary must
 * build a tokenizer that encodes a few fixed texts to ids inside the
 * vocabulary and decodes them again. A failure aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qai/convert.h"
#include "qai/tokenizer.h"

static void fail(const char *what) {
    fprintf(stderr, "fuzz_hf_tokenizer: %s (%s)\n", what, qai_last_error());
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *json = (const char *)data, *config = NULL;
    size_t jn = size, cn = 0;
    const uint8_t *nul = memchr(data, 0, size);
    if (nul) {
        jn = (size_t)(nul - data);
        config = (const char *)nul + 1;
        cn = size - jn - 1;
    }
    qai_hf_vocab v;
    if (qai_hf_vocab_parse(json, jn, "fuzz.json", config, cn, "fuzz_config.json", NULL, &v)) {
        if (!qai_last_error()[0]) fail("parse failed without a message");
        if (v.desc.tokens || v.pre || v.chat_template) fail("a failed parse left memory behind");
        return 0;
    }
    const qai_vocab_desc *d = &v.desc;
    if (d->n_tokens <= 0 || !d->tokens || !d->types) fail("empty vocabulary accepted");
    for (int32_t i = 0; i < d->n_tokens; i++)
        if (!d->tokens[i] || d->types[i] < QAI_TOKEN_NORMAL || d->types[i] > QAI_TOKEN_BYTE) fail("bad token");
    const int32_t ids[] = {d->bos, d->eos, d->unk, d->pad, d->sep};
    for (int k = 0; k < 5; k++)
        if (ids[k] < -1 || ids[k] >= d->n_tokens) fail("special id out of range");
    if (d->kind == QAI_VOCAB_BPE && !d->pre) fail("byte-level vocabulary without a pre-tokenizer");
    qai_tokenizer *tok;
    if (qai_tokenizer_new(d, &tok)) fail("an accepted vocabulary does not build a tokenizer");
    static const char *const texts[] = {"Hello world", " it's  12345\n\n", "caf\xc3\xa9 \xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x9a\x80",
                                        "\xff\xfe bad", ""};
    for (size_t t = 0; t < sizeof texts / sizeof texts[0]; t++) {
        int32_t *out;
        size_t n;
        if (qai_tokenizer_encode(tok, texts[t], strlen(texts[t]), QAI_TOK_ADD_SPECIAL | QAI_TOK_PARSE_SPECIAL, &out, &n))
            fail("encode failed");
        for (size_t i = 0; i < n; i++)
            if (out[i] < 0 || out[i] >= d->n_tokens) fail("id out of range");
        char *text;
        if (qai_tokenizer_decode(tok, out, n, 0, &text, NULL)) fail("decode failed");
        qai_free(text);
        qai_free(out);
    }
    qai_tokenizer_free(tok);
    qai_hf_vocab_release(&v);
    return 0;
}
