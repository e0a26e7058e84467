/* Byte-level BPE: a small vocabulary built here (merge order, virtual merge
 * results, ignore_merges, special tokens, BOS/EOS), pre-tokenizer splits
 * against llama.cpp's unicode_regex_split for known inputs, round trips over
 * arbitrary bytes for every pre-tokenizer, errors. */
#include "qai/tokenizer.h"
#include "test.h"
#include "tokenizer/tok_internal.h"

/* Expected splits (pieces separated by \x1f), written by llama.cpp's
 * unicode_regex_split (commit c392e509) for the same texts. */
static const char *const SPLIT_GPT2[] = {
    "Hello\x1f"" world\x1f"",\x1f"" it\x1f""'s\x1f"" 2024\x1f""!\x1f"" \x1f"" I\x1f""'m\x1f""  \x1f"" here\x1f""\x0a""\x0a""\x1f""\x09""\x1f""ok",
    " \x1f"" multiple\x1f""  \x1f"" spaces\x1f""\x0d""\x0a""\x0d""\x1f""\x0a""\x1f""CRLF\x1f""'s\x1f"" 1234567\x1f"" numbers\x1f"" ",
    "\xe6""\x97""\xa5""\xe6""\x9c""\xac""\xe8""\xaa""\x9e""\xe3""\x81""\xae""\xe3""\x83""\x86""\xe3""\x82""\xad""\xe3""\x82""\xb9""\xe3""\x83""\x88""\x1f"" \xf0""\x9f""\xa6""\x99""\x1f"" \xc3""\xa9""moji",
    "don\x1f""'\x1f""T\x1f"" WE\x1f""'\x1f""LL\x1f"" x\x1f""\xc2""\xa0""\x1f""y\x1f""\xe3""\x80""\x80""\x1f""z\x1f""  \x0a""",
    "a\x1f""+\x1f""b\x1f""=\x1f""c\x1f"";\x1f"" $\x1f""5\x1f"" ~\x1f""tilde\x1f"" |\x1f""pipe\x1f""|\x1f"" `\x1f""tick\x1f""`",
};
static const char *const SPLIT_LLAMA3[] = {
    "Hello\x1f"" world\x1f"",\x1f"" it\x1f""'s\x1f"" \x1f""202\x1f""4\x1f""!\x1f"" \x1f"" I\x1f""'m\x1f""  \x1f"" here\x1f""\x0a""\x0a""\x1f""\x09""ok",
    " \x1f"" multiple\x1f""  \x1f"" spaces\x1f""\x0d""\x0a""\x0d""\x0a""\x1f""CRLF\x1f""'s\x1f"" \x1f""123\x1f""456\x1f""7\x1f"" numbers\x1f"" ",
    "\xe6""\x97""\xa5""\xe6""\x9c""\xac""\xe8""\xaa""\x9e""\xe3""\x81""\xae""\xe3""\x83""\x86""\xe3""\x82""\xad""\xe3""\x82""\xb9""\xe3""\x83""\x88""\x1f"" \xf0""\x9f""\xa6""\x99""\x1f"" \xc3""\xa9""moji",
    "don\x1f""'T\x1f"" WE\x1f""'LL\x1f"" x\x1f""\xc2""\xa0""y\x1f""\xe3""\x80""\x80""z\x1f""  \x0a""",
    "a\x1f""+b\x1f""=c\x1f"";\x1f"" $\x1f""5\x1f"" ~\x1f""tilde\x1f"" |\x1f""pipe\x1f""|\x1f"" `\x1f""tick\x1f""`",
};
static const char *const SPLIT_QWEN2[] = {
    "Hello\x1f"" world\x1f"",\x1f"" it\x1f""'s\x1f"" \x1f""2\x1f""0\x1f""2\x1f""4\x1f""!\x1f"" \x1f"" I\x1f""'m\x1f""  \x1f"" here\x1f""\x0a""\x0a""\x1f""\x09""ok",
    " \x1f"" multiple\x1f""  \x1f"" spaces\x1f""\x0d""\x0a""\x0d""\x0a""\x1f""CRLF\x1f""'s\x1f"" \x1f""1\x1f""2\x1f""3\x1f""4\x1f""5\x1f""6\x1f""7\x1f"" numbers\x1f"" ",
    "\xe6""\x97""\xa5""\xe6""\x9c""\xac""\xe8""\xaa""\x9e""\xe3""\x81""\xae""\xe3""\x83""\x86""\xe3""\x82""\xad""\xe3""\x82""\xb9""\xe3""\x83""\x88""\x1f"" \xf0""\x9f""\xa6""\x99""\x1f"" \xc3""\xa9""moji",
    "don\x1f""'T\x1f"" WE\x1f""'LL\x1f"" x\x1f""\xc2""\xa0""y\x1f""\xe3""\x80""\x80""z\x1f""  \x0a""",
    "a\x1f""+b\x1f""=c\x1f"";\x1f"" $\x1f""5\x1f"" ~\x1f""tilde\x1f"" |\x1f""pipe\x1f""|\x1f"" `\x1f""tick\x1f""`",
};
static const char *const SPLIT_TEXTS[] = {
    "Hello world, it's 2024!  I'm   here\x0a""\x0a""\x09""ok",
    "  multiple   spaces\x0d""\x0a""\x0d""\x0a""CRLF's 1234567 numbers ",
    "\xe6""\x97""\xa5""\xe6""\x9c""\xac""\xe8""\xaa""\x9e""\xe3""\x81""\xae""\xe3""\x83""\x86""\xe3""\x82""\xad""\xe3""\x82""\xb9""\xe3""\x83""\x88"" \xf0""\x9f""\xa6""\x99"" \xc3""\xa9""moji",
    "don'T WE'LL x\xc2""\xa0""y\xe3""\x80""\x80""z  \x0a""",
    "a+b=c; $5 ~tilde |pipe| `tick`",
};

enum { T_GT = 256, T_HE, T_GTHE, T_LL, T_LLO, T_HE2, T_HELLO, T_EOT, T_USER, T_GG, T_XYZ, T_GWORLD, N_TOK };

/* The small vocabulary: the 256 byte-level characters (id = byte), then merged
 * strings and special tokens. The desc points at static storage. */
static qai_vocab_desc small_desc(const char *pre, bool add_eos) {
    static char chr[256][3];
    static uint8_t cl[256];
    static char store[256][4];
    static const char *tokens[N_TOK];
    static int32_t types[N_TOK];
    tok_byte_level_chars(chr, cl);
    for (int b = 0; b < 256; b++) {
        memcpy(store[b], chr[b], cl[b]);
        store[b][cl[b]] = 0;
        tokens[b] = store[b];
        types[b] = QAI_TOKEN_NORMAL;
    }
    static const char *extra[] = {"\xc4\xa0t", "he", "\xc4\xa0the", "ll", "llo", "He", "Hello", "<|endoftext|>",
                                  "<|user|>", "\xc4\xa0\xc4\xa0", "xyz", "\xc4\xa0world"};
    for (int i = 0; i < N_TOK - 256; i++) tokens[256 + i] = extra[i], types[256 + i] = QAI_TOKEN_NORMAL;
    types[T_EOT] = QAI_TOKEN_CONTROL;
    types[T_USER] = QAI_TOKEN_USER_DEFINED;
    static const char *merges[] = {"\xc4\xa0 t", "h e", "\xc4\xa0t he", "l l", "ll o", "H e", "He llo",
                                   "\xc4\xa0 \xc4\xa0", "x y", "xy z", "bad-merge-without-space"};
    qai_vocab_desc d = {.kind = QAI_VOCAB_BPE, .n_tokens = N_TOK, .tokens = tokens, .types = types,
                        .n_merges = (int32_t)(sizeof merges / sizeof merges[0]), .merges = merges, .pre = pre,
                        .bos = T_EOT, .eos = T_EOT, .eot = -1, .eom = -1, .unk = -1, .pad = -1, .sep = -1,
                        .add_bos = false, .add_eos = add_eos};
    return d;
}

static qai_tokenizer *small_vocab(const char *pre, bool add_eos) {
    qai_vocab_desc d = small_desc(pre, add_eos);
    qai_tokenizer *tok = NULL;
    CHECK_OK(qai_tokenizer_new(&d, &tok));
    return tok;
}

/* Every allocation failure while building, encoding and decoding is reported as
 * QAI_ERR_NOMEM and leaks nothing (ASan). */
static void alloc_failures(void) {
    qai_vocab_desc d = small_desc("llama3", true);
    const char *text = "Hello the  the<|endoftext|> it's 1234 \xff\xfe xyz <|user|>";
    int bad = 0, failed = 0;
    for (long k = 1; k < 4000; k++) {
        qai_alloc_fail_after(k);
        qai_tokenizer *tok = NULL;
        qai_status st = qai_tokenizer_new(&d, &tok);
        int32_t *ids = NULL;
        size_t n = 0;
        char *back = NULL;
        if (st == QAI_OK) st = qai_tokenizer_encode(tok, text, strlen(text), QAI_TOK_ADD_SPECIAL | QAI_TOK_PARSE_SPECIAL, &ids, &n);
        if (st == QAI_OK) st = qai_tokenizer_decode(tok, ids, n, 0, &back, NULL);
        qai_alloc_fail_after(0);
        if (st != QAI_OK && st != QAI_ERR_NOMEM) bad++;
        if (st == QAI_ERR_NOMEM) failed++;
        qai_free(back);
        qai_free(ids);
        qai_tokenizer_free(tok);
        if (st == QAI_OK) break;
    }
    CHECK_MSG(bad == 0, "%d injected allocation failures gave a status other than QAI_ERR_NOMEM", bad);
    CHECK(failed > 3);
}

static void expect(const qai_tokenizer *tok, const char *text, int flags, const int32_t *want, size_t nw) {
    int32_t *ids;
    size_t n;
    CHECK_OK(qai_tokenizer_encode(tok, text, strlen(text), flags, &ids, &n));
    bool same = n == nw;
    for (size_t i = 0; same && i < n; i++) same = ids[i] == want[i];
    if (!same) {
        fprintf(stderr, "'%s':\n  got :", text);
        for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
        fprintf(stderr, "\n  want:");
        for (size_t i = 0; i < nw; i++) fprintf(stderr, " %d", want[i]);
        fprintf(stderr, "\n");
    }
    CHECK_MSG(same, "encoding of '%s'", text);
    qai_free(ids);
}
#define EXPECT(tok, text, flags, ...)                                                                                  \
    do {                                                                                                               \
        const int32_t w_[] = {__VA_ARGS__};                                                                            \
        expect(tok, text, flags, w_, sizeof w_ / sizeof w_[0]);                                                        \
    } while (0)

static void merges(void) {
    qai_tokenizer *tok = small_vocab("gpt2", false);
    if (!tok) return;
    EXPECT(tok, "Hello the  the", 0, T_HELLO, T_GTHE, ' ', T_GTHE);
    EXPECT(tok, "hello", 0, T_HE, T_LLO);  /* "h e" (rank 1) before "l l" (3), then "ll o" (4) */
    EXPECT(tok, "xyz", 0, T_XYZ);          /* through "xy", which is not a token */
    EXPECT(tok, "xy", 0, 'x', 'y');        /* a merge result that is not a token falls back to its bytes */
    EXPECT(tok, " world", 0, ' ', 'w', 'o', 'r', 'l', 'd'); /* gpt2: no ignore_merges */
    EXPECT(tok, "\n", 0, '\n');
    /* special tokens: control ones only when parsing them, user-defined ones always */
    EXPECT(tok, "<|endoftext|>hi<|user|>", QAI_TOK_PARSE_SPECIAL, T_EOT, 'h', 'i', T_USER);
    EXPECT(tok, "<|endoftext|>", 0, '<', '|', 'e', 'n', 'd', 'o', 'f', 't', 'e', 'x', 't', '|', '>');
    EXPECT(tok, "a<|user|>", 0, 'a', T_USER);
    CHECK(qai_tokenizer_is_eog(tok, T_EOT));
    CHECK(!qai_tokenizer_is_eog(tok, T_USER));
    CHECK_EQ_INT(qai_tokenizer_token_type(tok, T_EOT), QAI_TOKEN_CONTROL);
    /* pieces and decoding */
    char buf[32];
    CHECK_EQ_INT(qai_tokenizer_piece(tok, T_GTHE, 0, buf, sizeof buf), 4);
    CHECK(!memcmp(buf, " the", 4));
    CHECK_EQ_INT(qai_tokenizer_piece(tok, 0x0A, 0, buf, sizeof buf), 1);
    CHECK(buf[0] == '\n');
    CHECK_EQ_INT(qai_tokenizer_piece(tok, T_EOT, 0, buf, sizeof buf), 0);
    CHECK_EQ_INT(qai_tokenizer_piece(tok, T_EOT, QAI_DETOK_SPECIAL, buf, sizeof buf), 13);
    const int32_t seq[] = {T_HELLO, T_EOT, T_GTHE, T_USER};
    char *text;
    size_t len;
    CHECK_OK(qai_tokenizer_decode(tok, seq, 4, 0, &text, &len));
    CHECK(!strcmp(text, "Hello the<|user|>"));
    qai_free(text);
    CHECK_OK(qai_tokenizer_decode(tok, seq, 4, QAI_DETOK_SPECIAL, &text, &len));
    CHECK(!strcmp(text, "Hello<|endoftext|> the<|user|>"));
    qai_free(text);
    CHECK_EQ_INT(qai_tokenizer_find(tok, "xy"), -1); /* virtual merge results are not vocabulary */
    CHECK_EQ_INT(qai_tokenizer_find(tok, "xyz"), T_XYZ);
    qai_tokenizer_free(tok);

    /* llama3: a pre-token that is a whole vocabulary string is that token (ignore_merges) */
    tok = small_vocab("llama3", true);
    if (!tok) return;
    EXPECT(tok, " world", 0, T_GWORLD);
    EXPECT(tok, " world", QAI_TOK_ADD_SPECIAL, T_GWORLD, T_EOT); /* add_eos */
    qai_tokenizer_free(tok);
}

typedef struct {
    char *buf;
    size_t *w;
} collect;

static qai_status collect_piece(void *a, const char *s, size_t n) {
    collect *x = a;
    if (*x->w) x->buf[(*x->w)++] = '\x1f';
    memcpy(x->buf + *x->w, s, n);
    *x->w += n;
    return QAI_OK;
}

static void splits(void) {
    struct {
        const char *name;
        const char *const *want;
    } cases[] = {{"gpt2", SPLIT_GPT2}, {"llama3", SPLIT_LLAMA3}, {"llama-bpe", SPLIT_LLAMA3}, {"qwen2", SPLIT_QWEN2}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        tok_pre *pre;
        CHECK_OK(tok_pre_new(cases[c].name, &pre));
        if (!pre) continue;
        for (size_t i = 0; i < sizeof SPLIT_TEXTS / sizeof SPLIT_TEXTS[0]; i++) {
            char got[512] = {0};
            size_t w = 0;
            collect acc = {got, &w};
            qai_status st = tok_pre_split(pre, SPLIT_TEXTS[i], strlen(SPLIT_TEXTS[i]), collect_piece, &acc);
            CHECK_OK(st);
            CHECK_MSG(!strcmp(got, cases[c].want[i]), "%s split of text %zu differs:\n  got  '%s'\n  want '%s'",
                      cases[c].name, i, got, cases[c].want[i]);
        }
        tok_pre_free(pre);
    }
    tok_pre *pre;
    CHECK(tok_pre_new("no-such-pre", &pre) == QAI_ERR_UNSUPPORTED);
    CHECK_MSG(strstr(qai_last_error(), "no-such-pre") != NULL, "%s", qai_last_error());
}

static void round_trips(void) {
    static const char *pres[] = {"default", "gpt2", "llama3", "qwen2", "starcoder", "falcon", "deepseek-llm",
                                 "deepseek-coder", "deepseek-v3", "smollm", "refact", "mpt", "poro-chat", "viking",
                                 "tekken", "chatglm-bpe"};
    qai_rng r;
    qai_rng_seed(&r, 7);
    for (size_t p = 0; p < sizeof pres / sizeof pres[0]; p++) {
        qai_tokenizer *tok = small_vocab(pres[p], false);
        if (!tok) continue;
        static const char *texts[] = {"", " ", "\n\n\t  x", "émoji 🍰🦙 CJK 你好世界", "\xff\xfe\xc3 bad \xe2\x82 utf8 \xed\xa0\x80",
                                      "it's  1234567 don't\r\n", "<|endoftext|> <|user|>  the"};
        int bad = 0;
        for (int it = 0; it < 600; it++) {
            char buf[200];
            const char *t;
            size_t len;
            if (it < 7) {
                t = texts[it];
                len = strlen(t);
            } else {
                len = qai_rng_u64(&r) % sizeof buf;
                for (size_t i = 0; i < len; i++) {
                    uint64_t x = qai_rng_u64(&r);
                    buf[i] = x % 3 == 0 ? " \n\t'a1\xc3\xa9"[x / 3 % 9] : (char)(x >> 8);
                }
                t = buf;
            }
            int32_t *ids;
            size_t n;
            char *back;
            size_t blen;
            if (qai_tokenizer_encode(tok, t, len, it % 2 ? 0 : QAI_TOK_PARSE_SPECIAL, &ids, &n) ||
                qai_tokenizer_decode(tok, ids, n, QAI_DETOK_SPECIAL, &back, &blen)) {
                bad++;
                continue;
            }
            if (blen != len || memcmp(back, t, len)) bad++;
            qai_free(ids);
            qai_free(back);
        }
        CHECK_MSG(bad == 0, "pre '%s': %d of 600 texts did not round-trip", pres[p], bad);
        qai_tokenizer_free(tok);
    }
}

/* End-of-generation tokens are recognized by their text and become control tokens. */
static void eog(void) {
    const char *tokens[] = {"a", "<|im_end|>", "<end_of_turn>", "<|eot_id|>", "<|im_start|>", "b"};
    int32_t types[] = {1, 1, 1, 3, 3, 1};
    qai_vocab_desc d = {.kind = QAI_VOCAB_BPE, .n_tokens = 6, .tokens = tokens, .types = types, .bos = -1, .eos = 5,
                        .eot = -1, .eom = -1, .unk = -1, .pad = -1, .sep = -1};
    qai_tokenizer *tok;
    CHECK_OK(qai_tokenizer_new(&d, &tok));
    if (!tok) return;
    CHECK(!qai_tokenizer_is_eog(tok, 0));
    CHECK(qai_tokenizer_is_eog(tok, 1));
    CHECK(qai_tokenizer_is_eog(tok, 2));
    CHECK(qai_tokenizer_is_eog(tok, 3));
    CHECK(!qai_tokenizer_is_eog(tok, 4));
    CHECK(qai_tokenizer_is_eog(tok, 5)); /* eos */
    CHECK(!qai_tokenizer_is_eog(tok, -1));
    CHECK(!qai_tokenizer_is_eog(tok, 6));
    CHECK_EQ_INT(qai_tokenizer_token_type(tok, 1), QAI_TOKEN_CONTROL);
    EXPECT(tok, "a<|im_start|>a<|im_end|>", QAI_TOK_PARSE_SPECIAL, 0, 4, 0, 1);
    qai_tokenizer_free(tok);
}

static void errors(void) {
    qai_tokenizer *tok;
    const char *tokens[] = {"a"};
    qai_vocab_desc d = {.kind = QAI_VOCAB_BPE, .n_tokens = 1, .tokens = tokens, .pre = "nonsense",
                        .bos = -1, .eos = -1, .eot = -1, .eom = -1, .unk = -1, .pad = -1, .sep = -1};
    CHECK(qai_tokenizer_new(&d, &tok) == QAI_ERR_UNSUPPORTED);
    CHECK(tok == NULL);
    d.pre = NULL;
    d.kind = (qai_vocab_kind)9;
    CHECK(qai_tokenizer_new(&d, &tok) == QAI_ERR_UNSUPPORTED);
    d.kind = QAI_VOCAB_BPE;
    d.n_tokens = 0;
    CHECK(qai_tokenizer_new(&d, &tok) == QAI_ERR_ARG);
    CHECK(qai_tokenizer_new(NULL, &tok) == QAI_ERR_ARG);
    /* a vocabulary without byte characters still encodes (dropping what it cannot represent) */
    d.n_tokens = 1;
    CHECK_OK(qai_tokenizer_new(&d, &tok));
    int32_t *ids;
    size_t n;
    CHECK_OK(qai_tokenizer_encode(tok, "abc", 3, 0, &ids, &n));
    CHECK_EQ_INT(n, 1);
    qai_free(ids);
    CHECK(qai_tokenizer_encode(tok, NULL, 3, 0, &ids, &n) == QAI_ERR_ARG);
    CHECK_OK(qai_tokenizer_encode(tok, NULL, 0, QAI_TOK_ADD_SPECIAL, &ids, &n));
    CHECK_EQ_INT(n, 0);
    qai_free(ids);
    qai_tokenizer_free(tok);
}

int main(void) {
    merges();
    splits();
    round_trips();
    eog();
    errors();
    alloc_failures();
    return test_summary();
}
