/* SentencePiece-style tokenizer: the llama2.c reader, the two llama2.c encode
 * references (stories260K tok512.bin and the 32k Llama 2 tokenizer.bin),
 * round trips over arbitrary text and bytes, special tokens, decoding. */
#include <cjson/cJSON.h>

#include "qai/tokenizer.h"
#include "test.h"
#include "tokenizer/tok_internal.h"

static char *path_in(const char *dir, const char *file) {
    static char buf[4][1024];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s/%s", TEST_DATA(), dir, file);
    return buf[k];
}

static qai_tokenizer *load_llama2c(const char *dir, const char *file) {
    qai_vocab_desc d;
    qai_tokenizer *tok = NULL;
    if (qai_vocab_read_llama2c(path_in(dir, file), &d)) {
        fprintf(stderr, "cannot read %s: %s\n", file, qai_last_error());
        t_fail++;
        return NULL;
    }
    CHECK_OK(qai_tokenizer_new(&d, &tok));
    qai_vocab_release(&d);
    return tok;
}

static void print_ids(const char *what, const int32_t *v, size_t n) {
    fprintf(stderr, "  %s:", what);
    for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", v[i]);
    fprintf(stderr, "\n");
}

/* Every entry of encode_reference.json: ids with BOS, and decode(STRIP_SPACE) gives the prompt back. */
static void check_reference(qai_tokenizer *tok, const char *dir) {
    char *json;
    size_t size;
    if (qai_file_read(path_in(dir, "encode_reference.json"), &json, &size)) {
        fprintf(stderr, "%s\n", qai_last_error());
        t_fail++;
        return;
    }
    cJSON *root = cJSON_Parse(json);
    CHECK(root != NULL);
    cJSON *entries = cJSON_GetObjectItem(root, "entries");
    int n_ok = 0, n = 0;
    cJSON *e;
    cJSON_ArrayForEach(e, entries) {
        const char *prompt = cJSON_GetObjectItem(e, "prompt")->valuestring;
        cJSON *want = cJSON_GetObjectItem(e, "ids_with_bos");
        int32_t *ids;
        size_t n_ids;
        CHECK_OK(qai_tokenizer_encode(tok, prompt, strlen(prompt), QAI_TOK_ADD_SPECIAL, &ids, &n_ids));
        bool same = (int)n_ids == cJSON_GetArraySize(want);
        for (size_t i = 0; same && i < n_ids; i++) same = ids[i] == cJSON_GetArrayItem(want, (int)i)->valueint;
        n++;
        n_ok += same;
        if (!same) {
            fprintf(stderr, "%s: prompt '%s' encodes differently\n", dir, prompt);
            print_ids("got ", ids, n_ids);
            int32_t w[256];
            int nw = cJSON_GetArraySize(want);
            for (int i = 0; i < nw && i < 256; i++) w[i] = cJSON_GetArrayItem(want, i)->valueint;
            print_ids("want", w, (size_t)nw);
        }
        char *back;
        size_t blen;
        CHECK_OK(qai_tokenizer_decode(tok, ids, n_ids, QAI_DETOK_STRIP_SPACE, &back, &blen));
        CHECK_MSG(blen == strlen(prompt) && !memcmp(back, prompt, blen), "'%s' decodes to '%s'", prompt, back);
        qai_free(back);
        qai_free(ids);
    }
    CHECK_MSG(n_ok == n && n > 0, "%s: %d of %d reference prompts match", dir, n_ok, n);
    printf("%s: %d of %d reference prompts match\n", dir, n_ok, n);
    cJSON_Delete(root);
    qai_free(json);
}

static void check_round_trip(qai_tokenizer *tok, const char *text, size_t len, int flags) {
    int32_t *ids;
    size_t n;
    CHECK_OK(qai_tokenizer_encode(tok, text, len, flags, &ids, &n));
    char *back;
    size_t blen;
    CHECK_OK(qai_tokenizer_decode(tok, ids, n, QAI_DETOK_STRIP_SPACE, &back, &blen));
    CHECK_MSG(blen == len && !memcmp(back, text, len), "round trip of %zu bytes gave %zu bytes", len, blen);
    qai_free(back);
    qai_free(ids);
}

static void round_trips(qai_tokenizer *tok) {
    static const char *texts[] = {
        "", " ", "  ", "\n", "\t\t \n\n  x", "Hello world", " leading", "trailing ", "a  b   c    d",
        "émoji 🍰🦙 and CJK 你好世界 日本語 한국어", "tabs\tand\r\nCRLF", "<s> not special </s>", "<0x41>",
        "\xff\xfe invalid \xc3 utf8 \xe2\x82 \xed\xa0\x80 \xf4\x90\x80\x80 end", "nul\0inside",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        size_t len = i == sizeof texts / sizeof texts[0] - 1 ? 10 : strlen(texts[i]);
        check_round_trip(tok, texts[i], len, QAI_TOK_ADD_SPECIAL);
        check_round_trip(tok, texts[i], len, 0);
    }
    /* random bytes (no U+2581, which SentencePiece cannot tell from a space) */
    qai_rng r;
    qai_rng_seed(&r, 42);
    char buf[300];
    int bad = 0;
    for (int it = 0; it < 2000; it++) {
        size_t len = qai_rng_u64(&r) % sizeof buf;
        for (size_t i = 0; i < len; i++) {
            uint64_t x = qai_rng_u64(&r);
            buf[i] = x % 4 == 0 ? " \n\tae"[x / 4 % 5] : (char)(x >> 8);
        }
        for (size_t i = 0; i + 2 < len; i++)
            if ((uint8_t)buf[i] == 0xE2 && (uint8_t)buf[i + 1] == 0x96 && (uint8_t)buf[i + 2] == 0x81) buf[i] = 'x';
        int32_t *ids;
        size_t n;
        char *back;
        size_t blen;
        int fl = it % 2 ? QAI_TOK_ADD_SPECIAL | QAI_TOK_PARSE_SPECIAL : QAI_TOK_ADD_SPECIAL;
        if (qai_tokenizer_encode(tok, buf, len, fl, &ids, &n) || qai_tokenizer_decode(tok, ids, n, QAI_DETOK_STRIP_SPACE, &back, &blen)) {
            bad++;
            continue;
        }
        if (blen != len || memcmp(back, buf, len)) bad++;
        qai_free(back);
        qai_free(ids);
    }
    CHECK_MSG(bad == 0, "%d of 2000 random byte strings did not round-trip", bad);
}

static void special_tokens(qai_tokenizer *tok) {
    const char *t = "<s>hi</s>";
    int32_t *ids;
    size_t n;
    CHECK_OK(qai_tokenizer_encode(tok, t, strlen(t), QAI_TOK_PARSE_SPECIAL, &ids, &n));
    CHECK(n >= 3 && ids[0] == 1 && ids[n - 1] == 2);
    qai_free(ids);
    CHECK_OK(qai_tokenizer_encode(tok, t, strlen(t), 0, &ids, &n));
    bool none = true;
    for (size_t i = 0; i < n; i++) none &= ids[i] != 1 && ids[i] != 2;
    CHECK(none && n > 3);
    qai_free(ids);
    CHECK(qai_tokenizer_is_eog(tok, 2));
    CHECK(!qai_tokenizer_is_eog(tok, 1));
    char piece[16];
    CHECK_EQ_INT(qai_tokenizer_piece(tok, 1, 0, piece, sizeof piece), 0);
    CHECK_EQ_INT(qai_tokenizer_piece(tok, 1, QAI_DETOK_SPECIAL, piece, sizeof piece), 3);
    CHECK(!memcmp(piece, "<s>", 3));
    CHECK_EQ_INT(qai_tokenizer_piece(tok, 13, 0, piece, sizeof piece), 1); /* <0x0A> */
    CHECK(piece[0] == '\n');
    CHECK_EQ_INT(qai_tokenizer_find(tok, "<0x0A>"), 13);
    CHECK_EQ_INT(qai_tokenizer_find(tok, "no such token at all"), -1);
    int32_t bad = 999999;
    char *out;
    CHECK(qai_tokenizer_decode(tok, &bad, 1, 0, &out, NULL) == QAI_ERR_RANGE);
}

/* A plain O(n^2) encoder written from the description (llama2.c's loop over
 * strings): the fast encoder — heap, linked list, segment cuts — must agree. */
static size_t naive_encode(const qai_tokenizer *tok, const char *text, size_t len, int32_t *out) {
    char *sym[2048];
    int ns = 0;
    if (len == 0) return 0;
    const char *pre = "\xe2\x96\x81";
    char esc[8];
    strcpy(esc, pre);
    sym[ns++] = strdup(esc);
    for (size_t i = 0; i < len;) {
        int vl = tok_utf8_valid_len((const uint8_t *)text + i, len - i, NULL);
        size_t l = vl > 0 ? (size_t)vl : 1; /* an invalid byte is a character of its own */
        if (text[i] == ' ') sym[ns++] = strdup(pre);
        else sym[ns++] = strndup(text + i, l);
        i += l;
    }
    for (;;) {
        int best = -1;
        float best_score = 0;
        for (int i = 0; i + 1 < ns; i++) {
            char cat[512];
            snprintf(cat, sizeof cat, "%s%s", sym[i], sym[i + 1]);
            int32_t id = qai_tokenizer_find(tok, cat);
            if (id < 0) continue;
            float sc = tok->scores[id];
            if (best < 0 || sc > best_score) best = i, best_score = sc;
        }
        if (best < 0) break;
        char cat[512];
        snprintf(cat, sizeof cat, "%s%s", sym[best], sym[best + 1]);
        free(sym[best]);
        free(sym[best + 1]);
        sym[best] = strdup(cat);
        memmove(sym + best + 1, sym + best + 2, (size_t)(ns - best - 2) * sizeof *sym);
        ns--;
    }
    size_t n = 0;
    for (int i = 0; i < ns; i++) {
        int32_t id = qai_tokenizer_find(tok, sym[i]);
        if (id >= 0) out[n++] = id;
        else
            for (const char *p = sym[i]; *p; p++) out[n++] = tok->byte_id[(unsigned char)*p];
        free(sym[i]);
    }
    return n;
}

static void against_naive(qai_tokenizer *tok) {
    qai_rng r;
    qai_rng_seed(&r, 3);
    int bad = 0;
    for (int it = 0; it < 300; it++) {
        char text[600];
        size_t len = 0;
        int parts = (int)(qai_rng_u64(&r) % 12);
        for (int k = 0; k < parts; k++) {
            uint64_t x = qai_rng_u64(&r);
            if (x % 5 == 0) {
                const char *odd[] = {" ", "  ", "\n", "\xc3\xa9", "\xf0\x9f\x8d\xb0", "\xe4\xbd\xa0", "\xff", "1"};
                const char *o = odd[x / 5 % 8];
                memcpy(text + len, o, strlen(o));
                len += strlen(o);
            } else {
                int32_t id = (int32_t)(x % (uint64_t)qai_tokenizer_n_vocab(tok));
                char piece[64];
                size_t pl = qai_tokenizer_piece(tok, id, 0, piece, sizeof piece);
                if (pl > 40 || memchr(piece, 0, pl)) continue;
                memcpy(text + len, piece, pl);
                len += pl;
            }
        }
        int32_t want[2048], *ids;
        size_t nw = naive_encode(tok, text, len, want), n;
        CHECK_OK(qai_tokenizer_encode(tok, text, len, 0, &ids, &n));
        bool same = n == nw;
        for (size_t i = 0; same && i < n; i++) same = ids[i] == want[i];
        if (!same && bad++ < 3) {
            fprintf(stderr, "naive and fast encoders differ on '%.*s'\n", (int)len, text);
            print_ids("fast ", ids, n);
            print_ids("naive", want, nw);
        }
        qai_free(ids);
    }
    CHECK_MSG(bad == 0, "%d of 300 texts encode differently from the naive encoder", bad);
}

static void llama2c_errors(void) {
    const char *dir = TEST_TMP();
    char path[1024];
    snprintf(path, sizeof path, "%s/tok_truncated.bin", dir);
    FILE *f = fopen(path, "wb");
    int32_t hdr[1] = {8};
    fwrite(hdr, 4, 1, f);
    for (int i = 0; i < 3; i++) {
        float s = 0;
        int32_t len = 2;
        fwrite(&s, 4, 1, f);
        fwrite(&len, 4, 1, f);
        fwrite("ab", 1, 2, f);
    }
    float s = 0;
    int32_t len = 1000;
    fwrite(&s, 4, 1, f);
    fwrite(&len, 4, 1, f);
    fwrite("abc", 1, 3, f);
    fclose(f);
    qai_vocab_desc d;
    CHECK(qai_vocab_read_llama2c(path, &d) == QAI_ERR_FORMAT);
    CHECK_MSG(strstr(qai_last_error(), "past the end") != NULL, "%s", qai_last_error());
    CHECK(qai_vocab_read_llama2c("/nonexistent/tok.bin", &d) != QAI_OK);
    remove(path);
}

/* The same vocabulary written into GGUF by llama.cpp's converter must load to the
 * same tokenizer as our reading of tok512.bin: strings, types, scores, ids. */
static void same_as_gguf(qai_tokenizer *from_bin) {
    qai_gguf *g;
    if (qai_gguf_open(path_in("models/stories260K-gguf", "stories260K.gguf"), &g)) {
        fprintf(stderr, "stories260K.gguf: %s\n", qai_last_error());
        t_fail++;
        return;
    }
    qai_tokenizer *tok;
    CHECK_OK(qai_tokenizer_from_gguf(g, &tok));
    qai_gguf_close(g);
    if (!tok) return;
    CHECK_EQ_INT(qai_tokenizer_n_vocab(tok), qai_tokenizer_n_vocab(from_bin));
    int diff = 0;
    for (int32_t i = 0; i < qai_tokenizer_n_vocab(tok) && i < qai_tokenizer_n_vocab(from_bin); i++) {
        bool same = !strcmp(qai_tokenizer_token(tok, i), qai_tokenizer_token(from_bin, i)) &&
                    qai_tokenizer_token_type(tok, i) == qai_tokenizer_token_type(from_bin, i) &&
                    tok->scores[i] == from_bin->scores[i];
        if (!same && diff++ < 3)
            fprintf(stderr, "token %d: gguf '%s' type %d score %g, tok512.bin '%s' type %d score %g\n", i,
                    qai_tokenizer_token(tok, i), qai_tokenizer_token_type(tok, i), tok->scores[i],
                    qai_tokenizer_token(from_bin, i), qai_tokenizer_token_type(from_bin, i), from_bin->scores[i]);
    }
    CHECK_MSG(diff == 0, "%d tokens differ between stories260K.gguf and tok512.bin", diff);
    CHECK_EQ_INT(qai_tokenizer_bos(tok), 1);
    CHECK_EQ_INT(qai_tokenizer_eos(tok), 2);
    CHECK(qai_tokenizer_add_bos(tok));
    CHECK_EQ_INT(qai_tokenizer_kind(tok), QAI_VOCAB_SPM);
    check_reference(tok, "models/stories260K");
    qai_tokenizer_free(tok);
}

/* Every allocation failure while building, encoding and decoding is reported
 * as QAI_ERR_NOMEM and leaks nothing (run under ASan to see the latter). */
static void alloc_failures(void) {
    qai_vocab_desc d;
    if (qai_vocab_read_llama2c(path_in("models/stories260K", "tok512.bin"), &d)) return;
    const char *text = "Once upon a time <s> \xff there was";
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
        if (st == QAI_OK) break; /* past the last allocation */
    }
    CHECK_MSG(bad == 0, "%d injected allocation failures gave a status other than QAI_ERR_NOMEM", bad);
    CHECK(failed > 3);
    qai_vocab_release(&d);
}

int main(void) {
    qai_tokenizer *small = load_llama2c("models/stories260K", "tok512.bin");
    if (small) {
        CHECK_EQ_INT(qai_tokenizer_n_vocab(small), 512);
        CHECK(!strcmp(qai_tokenizer_token(small, 1), "<s>"));
        CHECK_EQ_INT(qai_tokenizer_token_type(small, 0), QAI_TOKEN_UNKNOWN);
        CHECK_EQ_INT(qai_tokenizer_token_type(small, 3), QAI_TOKEN_BYTE);
        CHECK(!strcmp(qai_tokenizer_token(small, 259), "\xe2\x96\x81t"));
        check_reference(small, "models/stories260K");
        round_trips(small);
        special_tokens(small);
        against_naive(small);
        same_as_gguf(small);
        qai_tokenizer_free(small);
    }
    qai_tokenizer *big = load_llama2c("models/llama2-tokenizer", "tokenizer.bin");
    if (big) {
        CHECK_EQ_INT(qai_tokenizer_n_vocab(big), 32000);
        check_reference(big, "models/llama2-tokenizer");
        round_trips(big);
        special_tokens(big);
        against_naive(big);
        qai_tokenizer_free(big);
    }
    llama2c_errors();
    alloc_failures();
    return test_summary();
}
