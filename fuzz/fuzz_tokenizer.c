/* libFuzzer harness for the tokenizers. Built once: a small SentencePiece-style
 * vocabulary (byte fallback, a few merges, control tokens) and one small
 * byte-level BPE vocabulary per pre-tokenizer. The first input byte picks the
 * pre-tokenizer; the rest is the text. Every input is encoded with and without
 * special-token parsing and BOS/EOS, every id must be in range, and decoding
 * must give the text back byte for byte (SPM: unless the text holds U+2581,
 * which SentencePiece cannot tell from a space). A failure aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qai/tokenizer.h"

static const char *PRES[] = {"default", "gpt2", "llama3", "qwen2", "starcoder", "falcon", "deepseek-llm",
                             "deepseek-coder", "deepseek-v3", "poro-chat", "viking", "tekken", "chameleon-unknown"};
#define N_PRE (sizeof PRES / sizeof PRES[0])

static qai_tokenizer *spm, *bpe[N_PRE];

static void die(const char *what) {
    fprintf(stderr, "fuzz_tokenizer: %s: %s\n", what, qai_last_error());
    abort();
}

static void build(void) {
    /* SPM: <unk> <s> </s>, 256 byte tokens, then pieces with scores */
    static char bytes[256][8];
    static const char *pieces[] = {"\xe2\x96\x81", "\xe2\x96\x81t", "h", "e", "he", "\xe2\x96\x81the", "a", "n",
                                   "an", "\xe2\x96\x81" "a", "\xe2\x96\x81" "an", "d", "nd", "and", "\xe2\x96\x81" "and",
                                   "\xc3\xa9", "\xe4\xbd\xa0", "\xe2\x96\x81\xe2\x96\x81", "<|im_end|>"};
    enum { NP = sizeof pieces / sizeof pieces[0], NS = 3 + 256 + NP };
    const char *tok[NS];
    float score[NS];
    int32_t type[NS];
    tok[0] = "<unk>", tok[1] = "<s>", tok[2] = "</s>";
    type[0] = QAI_TOKEN_UNKNOWN, type[1] = type[2] = QAI_TOKEN_CONTROL;
    score[0] = score[1] = score[2] = 0;
    for (int b = 0; b < 256; b++) {
        snprintf(bytes[b], sizeof bytes[b], "<0x%02X>", b);
        tok[3 + b] = bytes[b], type[3 + b] = QAI_TOKEN_BYTE, score[3 + b] = 0;
    }
    for (int i = 0; i < NP; i++) tok[259 + i] = pieces[i], type[259 + i] = QAI_TOKEN_NORMAL, score[259 + i] = -(float)i;
    type[NS - 1] = QAI_TOKEN_CONTROL;
    qai_vocab_desc d = {.kind = QAI_VOCAB_SPM, .n_tokens = NS, .tokens = tok, .scores = score, .types = type,
                        .bos = 1, .eos = 2, .unk = 0, .eot = -1, .eom = -1, .pad = -1, .sep = -1,
                        .add_bos = true, .add_eos = true, .add_space_prefix = true};
    if (qai_tokenizer_new(&d, &spm)) die("spm");

    /* BPE: the 256 byte-level characters (GPT-2's bytes_to_unicode), a few merges, specials */
    static char chr[256][4];
    for (int b = 0, n = 0; b < 256; b++) {
        int cp = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE) ? b : 256 + n++;
        if (cp < 0x80) chr[b][0] = (char)cp;
        else chr[b][0] = (char)(0xC0 | cp >> 6), chr[b][1] = (char)(0x80 | (cp & 0x3F));
    }
    static const char *extra[] = {"\xc4\xa0t", "he", "\xc4\xa0the", "ll", "llo", "<|endoftext|>", "<|user|>",
                                  "\xc4\xa0\xc4\xa0", "xyz", "\xc4\xa0world"};
    static const char *merges[] = {"\xc4\xa0 t", "h e", "\xc4\xa0t he", "l l", "ll o", "\xc4\xa0 \xc4\xa0", "x y", "xy z"};
    enum { NE = sizeof extra / sizeof extra[0], NB = 256 + NE };
    const char *btok[NB];
    int32_t btype[NB];
    for (int b = 0; b < 256; b++) btok[b] = chr[b], btype[b] = QAI_TOKEN_NORMAL;
    for (int i = 0; i < NE; i++) btok[256 + i] = extra[i], btype[256 + i] = QAI_TOKEN_NORMAL;
    btype[256 + 5] = QAI_TOKEN_CONTROL;
    btype[256 + 6] = QAI_TOKEN_USER_DEFINED;
    for (size_t p = 0; p < N_PRE; p++) {
        qai_vocab_desc e = {.kind = QAI_VOCAB_BPE, .n_tokens = NB, .tokens = btok, .types = btype,
                            .n_merges = sizeof merges / sizeof merges[0], .merges = merges, .pre = PRES[p],
                            .bos = 256 + 5, .eos = 256 + 5, .eot = -1, .eom = -1, .unk = -1, .pad = -1, .sep = -1};
        if (qai_tokenizer_new(&e, &bpe[p]) != QAI_OK) bpe[p] = NULL; /* an unknown name must fail cleanly */
    }
    if (!bpe[0]) die("bpe");
}

static void check(const qai_tokenizer *tok, const char *text, size_t len, int flags, int dflags, bool must_round_trip) {
    int32_t *ids;
    size_t n;
    if (qai_tokenizer_encode(tok, text, len, flags, &ids, &n)) die("encode");
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= qai_tokenizer_n_vocab(tok)) die("id out of range");
    char *back;
    size_t blen;
    if (qai_tokenizer_decode(tok, ids, n, dflags, &back, &blen)) die("decode");
    if (must_round_trip && (blen != len || memcmp(back, text, len))) {
        fprintf(stderr, "fuzz_tokenizer: round trip of %zu bytes gave %zu bytes (flags %d)\n", len, blen, flags);
        abort();
    }
    for (size_t i = 0; i < n; i++) {
        char buf[8];
        qai_tokenizer_piece(tok, ids[i], QAI_DETOK_SPECIAL, buf, sizeof buf);
    }
    qai_free(back);
    qai_free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!spm) build();
    if (size == 0) return 0;
    const qai_tokenizer *b = bpe[data[0] % N_PRE] ? bpe[data[0] % N_PRE] : bpe[0];
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    bool has_2581 = false;
    for (size_t i = 0; i + 2 < len; i++)
        if ((uint8_t)text[i] == 0xE2 && (uint8_t)text[i + 1] == 0x96 && (uint8_t)text[i + 2] == 0x81) has_2581 = true;
    check(spm, text, len, 0, QAI_DETOK_STRIP_SPACE, !has_2581);
    check(spm, text, len, QAI_TOK_ADD_SPECIAL, QAI_DETOK_STRIP_SPACE, !has_2581);
    check(spm, text, len, QAI_TOK_ADD_SPECIAL | QAI_TOK_PARSE_SPECIAL, QAI_DETOK_SPECIAL, false);
    check(b, text, len, 0, QAI_DETOK_SPECIAL, true);
    check(b, text, len, QAI_TOK_PARSE_SPECIAL, QAI_DETOK_SPECIAL, true);
    check(b, text, len, QAI_TOK_ADD_SPECIAL | QAI_TOK_PARSE_SPECIAL, 0, false);
    return 0;
}
