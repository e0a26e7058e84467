/* WordPiece ("bert" vocabularies) against an independent reference:
 * tests/tools/wordpiece_ref.py implements Hugging Face's BertTokenizer from its
 * documented algorithm (Python's unicodedata) and wrote the ids of ~380 tricky
 * strings (accents precomposed and combining, CJK, Hangul, Greek final sigma,
 * punctuation, control and format characters, Unicode spaces, emoji, private
 * use, words of 99-150 characters) over a synthetic vocabulary
 * (tests/data/bert_vocab.txt). The vocabulary is loaded both as llama.cpp's
 * converter stores it in GGUF ("▁" word starts) and in vocab.txt form ("##"
 * continuations); both must give the reference ids. Also: [CLS]/[SEP],
 * special-token parsing, decoding, cased vocabularies, bad input. */
#include "qai/model.h"
#include "qai/tokenizer.h"
#include "test.h"

#define MAX_VOCAB 4096

static char *vocab[MAX_VOCAB];
static int n_vocab;

static int32_t id_of(const char *t) {
    for (int i = 0; i < n_vocab; i++)
        if (!strcmp(vocab[i], t)) return i;
    return -1;
}

static bool read_vocab(const char *path) {
    char *d;
    size_t n;
    if (qai_file_read(path, &d, &n)) return false;
    for (size_t i = 0; i < n && n_vocab < MAX_VOCAB;) {
        size_t j = i;
        while (j < n && d[j] != '\n') j++;
        vocab[n_vocab] = qai_malloc(j - i + 1);
        memcpy(vocab[n_vocab], d + i, j - i);
        vocab[n_vocab++][j - i] = 0;
        i = j + 1;
    }
    qai_free(d);
    return n_vocab > 0;
}

static int hexv(char c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1; }

/* Checks every case of the fixture; returns the number of mismatches. */
static int check_cases(const qai_tokenizer *tok, const char *fixture, const char *label, int *n_cases) {
    char *d;
    size_t n;
    if (qai_file_read(fixture, &d, &n)) return -1;
    int bad = 0, shown = 0, cases = 0;
    char *text = qai_malloc(n + 1);
    int32_t *want = qai_malloc((n + 1) * sizeof *want);
    for (size_t i = 0; i < n;) {
        size_t e = i;
        while (e < n && d[e] != '\n') e++;
        size_t tl = 0, k = i;
        for (; k + 1 < e && d[k] != '\t'; k += 2) text[tl++] = (char)(hexv(d[k]) * 16 + hexv(d[k + 1]));
        if (k < e && d[k] == '\t') k++;
        size_t nw = 0;
        while (k < e) {
            char *end;
            long v = strtol(d + k, &end, 10);
            if (end == d + k) break;
            want[nw++] = (int32_t)v;
            k = (size_t)(end - d);
            while (k < e && d[k] == ' ') k++;
        }
        int32_t *ids;
        size_t ni;
        qai_status st = qai_tokenizer_encode(tok, text, tl, 0, &ids, &ni);
        bool ok = st == QAI_OK && ni == nw && !memcmp(ids, want, nw * sizeof *ids);
        if (!ok) {
            bad++;
            if (shown++ < 5) {
                printf("  %s: case %d '%.*s': got", label, cases, (int)tl, text);
                for (size_t q = 0; st == QAI_OK && q < ni && q < 24; q++) printf(" %d", ids[q]);
                printf(" want");
                for (size_t q = 0; q < nw && q < 24; q++) printf(" %d", want[q]);
                printf("\n");
            }
        }
        if (st == QAI_OK) qai_free(ids);
        cases++;
        i = e + 1;
    }
    qai_free(text);
    qai_free(want);
    qai_free(d);
    *n_cases = cases;
    return bad;
}

static void encode_eq(const qai_tokenizer *tok, const char *text, int flags, const int32_t *want, size_t n_want) {
    int32_t *ids;
    size_t n;
    CHECK_OK(qai_tokenizer_encode(tok, text, strlen(text), flags, &ids, &n));
    bool ok = n == n_want && !memcmp(ids, want, n * sizeof *ids);
    CHECK_MSG(ok, "'%s' (flags %d): %zu ids, first %d; want %zu, first %d", text, flags, n, n ? ids[0] : -1, n_want,
              n_want ? want[0] : -1);
    qai_free(ids);
}

int main(void) {
    const char *data = test_env("QAI_TESTDATA", "tests/data"), *tmp = test_env("QAI_TMP", "/tmp");
    char vpath[1024], fixture[1024], gpath[1024];
    snprintf(vpath, sizeof vpath, "%s/bert_vocab.txt", data);
    snprintf(fixture, sizeof fixture, "%s/bert_wordpiece.tsv", data);
    snprintf(gpath, sizeof gpath, "%s/wordpiece_vocab.gguf", tmp);
    CHECK(read_vocab(vpath));
    if (!n_vocab) return test_summary();

    /* GGUF as llama.cpp's converter writes it */
    qai_init_params ip = {.dim = 32, .layers = 1, .heads = 2, .ffn = 32, .ctx = 8, .seed = 1, .type = QAI_TYPE_F32};
    CHECK_OK(qai_bert_init_random(&ip, (const char *const *)vocab, n_vocab, 1, gpath));
    qai_gguf *g = NULL;
    qai_tokenizer *tok = NULL, *hash = NULL;
    CHECK_OK(qai_gguf_open(gpath, &g));
    if (g) CHECK_OK(qai_tokenizer_from_gguf(g, &tok));
    const char *model = NULL;
    if (g) CHECK(qai_gguf_get_str(g, "tokenizer.ggml.model", &model) == QAI_OK && !strcmp(model, "bert"));
    /* the vocab.txt form, straight from a description */
    int32_t *types = qai_malloc((size_t)n_vocab * sizeof *types);
    for (int i = 0; i < n_vocab; i++)
        types[i] = vocab[i][0] == '[' && strstr(vocab[i], "unused") == NULL ? QAI_TOKEN_CONTROL : QAI_TOKEN_NORMAL;
    qai_vocab_desc d = {.kind = QAI_VOCAB_WPM, .n_tokens = n_vocab, .tokens = (const char *const *)vocab,
                        .types = types, .bos = id_of("[CLS]"), .sep = id_of("[SEP]"), .unk = id_of("[UNK]"),
                        .pad = id_of("[PAD]"), .eos = -1, .eot = -1, .eom = -1, .add_bos = true};
    CHECK_OK(qai_tokenizer_new(&d, &hash));
    if (!tok || !hash) return test_summary();
    CHECK(qai_tokenizer_kind(tok) == QAI_VOCAB_WPM);

    int n1 = 0, n2 = 0;
    int bad1 = check_cases(tok, fixture, "gguf", &n1), bad2 = check_cases(hash, fixture, "vocab.txt", &n2);
    CHECK_MSG(n1 > 300, "fixture has only %d cases", n1);
    CHECK_MSG(bad1 == 0, "%d of %d cases differ from the reference (gguf form)", bad1, n1);
    CHECK_MSG(bad2 == 0, "%d of %d cases differ from the reference (vocab.txt form)", bad2, n2);
    printf("wordpiece: %d cases, %d + %d mismatches\n", n1, bad1, bad2);

    const int32_t CLS = id_of("[CLS]"), SEP = id_of("[SEP]"), UNK = id_of("[UNK]"), HELLO = id_of("hello"),
                  COMMA = id_of(","), WORLD = id_of("world"), BANG = id_of("!");
    /* [CLS] text [SEP]; special text parsed only when asked */
    int32_t w1[] = {CLS, HELLO, COMMA, WORLD, BANG, SEP};
    encode_eq(tok, "Hello, WORLD!", QAI_TOK_ADD_SPECIAL, w1, 6);
    encode_eq(hash, "Hello, WORLD!", QAI_TOK_ADD_SPECIAL, w1, 6);
    int32_t *ids;
    size_t n;
    int32_t w2[] = {CLS, HELLO, SEP, WORLD, SEP};
    encode_eq(tok, "hello[SEP]world", QAI_TOK_ADD_SPECIAL | QAI_TOK_PARSE_SPECIAL, w2, 5);
    CHECK_OK(qai_tokenizer_encode(tok, "[SEP]", 5, 0, &ids, &n)); /* plain text without PARSE_SPECIAL */
    CHECK(n >= 3 && ids[0] == id_of("[") && ids[n - 1] == id_of("]"));
    for (size_t i = 0; i < n; i++) CHECK(ids[i] != SEP);
    qai_free(ids);
    int32_t w4[] = {CLS, SEP};
    encode_eq(tok, " \t\x01 ", QAI_TOK_ADD_SPECIAL, w4, 2);
    int32_t w5[] = {UNK};
    encode_eq(tok, "zzzzqqqq\xe2\x82\xbf", 0, w5, 1); /* "₿" is in no piece: the whole word is [UNK] */

    /* invalid UTF-8 is dropped, never a crash */
    CHECK_OK(qai_tokenizer_encode(tok, "he\xffllo \xc3", 8, 0, &ids, &n));
    CHECK(n == 1 && ids[0] == HELLO);
    qai_free(ids);

    /* decoding: word starts get their space, the first one is dropped, spaces
     * before punctuation cleaned up as Hugging Face does */
    CHECK_OK(qai_tokenizer_encode(tok, "Unaffable, don't stop!", 22, QAI_TOK_ADD_SPECIAL, &ids, &n));
    char *text;
    size_t tl;
    CHECK_OK(qai_tokenizer_decode(tok, ids, n, QAI_DETOK_STRIP_SPACE, &text, &tl));
    CHECK_MSG(!strcmp(text, "unaffable, don't stop!"), "decoded '%s'", text);
    qai_free(text);
    CHECK_OK(qai_tokenizer_decode(hash, ids, n, QAI_DETOK_STRIP_SPACE | QAI_DETOK_SPECIAL, &text, &tl));
    CHECK_MSG(!strcmp(text, "[CLS] unaffable, don't stop! [SEP]"), "decoded with specials '%s'", text);
    qai_free(text);
    char piece[16];
    size_t pl = qai_tokenizer_piece(tok, HELLO, 0, piece, sizeof piece);
    CHECK(pl == 6 && !memcmp(piece, " hello", 6));
    pl = qai_tokenizer_piece(tok, id_of("##ing"), 0, piece, sizeof piece);
    CHECK(pl == 3 && !memcmp(piece, "ing", 3));
    qai_free(ids);

    /* round trip through text: decoding then encoding again gives the same ids
     * (for cases without [UNK]; decoding loses case, accents and spacing) */
    {
        int rt = 0, bad = 0;
        const char *samples[] = {"the quick brown fox jumps", "tokenization, embeddings & vectors!",
                                 "你好世界 αβγ σας", "qai gguf: 3.14 (x) [y]"};
        for (size_t s = 0; s < sizeof samples / sizeof samples[0]; s++) {
            int32_t *a, *b;
            size_t na, nb;
            CHECK_OK(qai_tokenizer_encode(tok, samples[s], strlen(samples[s]), 0, &a, &na));
            CHECK_OK(qai_tokenizer_decode(tok, a, na, QAI_DETOK_STRIP_SPACE, &text, &tl));
            CHECK_OK(qai_tokenizer_encode(tok, text, tl, 0, &b, &nb));
            rt++;
            if (na != nb || memcmp(a, b, na * sizeof *a)) bad++, printf("  round trip: '%s' -> '%s'\n", samples[s], text);
            qai_free(text);
            qai_free(a);
            qai_free(b);
        }
        CHECK_MSG(bad == 0, "%d of %d round trips differ", bad, rt);
    }

    /* a cased vocabulary (a piece with an uppercase letter) is neither lowercased nor stripped of accents */
    {
        const char *cv[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "Hello", "hello", "##!", "!", "caf", "##é", "##e"};
        int32_t ct[11] = {3, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1};
        qai_vocab_desc cd = {.kind = QAI_VOCAB_WPM, .n_tokens = 11, .tokens = cv, .types = ct, .bos = 2, .sep = 3,
                             .unk = 1, .pad = 0, .eos = -1, .eot = -1, .eom = -1, .add_bos = true};
        qai_tokenizer *cased;
        CHECK_OK(qai_tokenizer_new(&cd, &cased));
        int32_t c1[] = {4, 7, 5, 8, 9};
        if (cased) encode_eq(cased, "Hello! hello café", 0, c1, 5);
        qai_tokenizer_free(cased);
    }

    /* a vocabulary without [UNK] drops what it cannot cover instead of failing */
    {
        const char *uv[] = {"[CLS]", "[SEP]", "ab", "##c"};
        qai_vocab_desc ud = {.kind = QAI_VOCAB_WPM, .n_tokens = 4, .tokens = uv, .bos = 0, .sep = 1, .unk = -1,
                             .pad = -1, .eos = -1, .eot = -1, .eom = -1};
        qai_tokenizer *nounk;
        CHECK_OK(qai_tokenizer_new(&ud, &nounk));
        int32_t u1[] = {2, 3, 2};
        if (nounk) encode_eq(nounk, "abc xyz ab", 0, u1, 3);
        qai_tokenizer_free(nounk);
    }

    qai_tokenizer_free(tok);
    qai_tokenizer_free(hash);
    qai_gguf_close(g);
    qai_free(types);
    for (int i = 0; i < n_vocab; i++) qai_free(vocab[i]);
    return test_summary();
}
