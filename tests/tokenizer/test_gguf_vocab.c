/* qai_tokenizer_from_gguf on vocabulary-only files written here: defaults per
 * model kind, keys that override them, and the errors for broken metadata. */
#include "qai/tokenizer.h"
#include "test.h"

static const char *TOKENS[] = {"a", "b", "ab", "<s>", "</s>", "<|im_end|>"};
static const float SCORES[] = {0, 0, -1, 0, 0, 0};
static const int32_t TYPES[] = {1, 1, 1, 3, 3, 3};
static const char *MERGES[] = {"a b"};

typedef enum { BROKEN_NONE, NO_MODEL, UNKNOWN_MODEL, NO_TOKENS, TOKENS_NOT_STRINGS, SHORT_SCORES, SHORT_TYPES, NO_MERGES, BAD_PRE } broken;

static qai_status load(const char *model, const char *pre, broken how, int add_bos, qai_tokenizer **tok) {
    char path[1024];
    snprintf(path, sizeof path, "%s/test_gguf_vocab.gguf", TEST_TMP());
    qai_gguf_writer *w = qai_gguf_writer_new();
    if (how != NO_MODEL) qai_gguf_set_str(w, "tokenizer.ggml.model", how == UNKNOWN_MODEL ? "t5" : model);
    if (pre) qai_gguf_set_str(w, "tokenizer.ggml.pre", how == BAD_PRE ? "no-such-pre" : pre);
    if (how == TOKENS_NOT_STRINGS) qai_gguf_set_arr_data(w, "tokenizer.ggml.tokens", QAI_GGUF_INT32, TYPES, 6);
    else if (how != NO_TOKENS) qai_gguf_set_arr_str(w, "tokenizer.ggml.tokens", TOKENS, NULL, 6);
    qai_gguf_set_arr_data(w, "tokenizer.ggml.scores", QAI_GGUF_FLOAT32, SCORES, how == SHORT_SCORES ? 5 : 6);
    qai_gguf_set_arr_data(w, "tokenizer.ggml.token_type", QAI_GGUF_INT32, TYPES, how == SHORT_TYPES ? 4 : 6);
    if (how != NO_MERGES) qai_gguf_set_arr_str(w, "tokenizer.ggml.merges", MERGES, NULL, 1);
    qai_gguf_set_u32(w, "tokenizer.ggml.bos_token_id", 3);
    qai_gguf_set_u32(w, "tokenizer.ggml.eos_token_id", 4);
    qai_gguf_set_u32(w, "tokenizer.ggml.padding_token_id", 0xFFFFFFFFu); /* out of range: ignored */
    if (add_bos >= 0) qai_gguf_set_bool(w, "tokenizer.ggml.add_bos_token", add_bos != 0);
    qai_status st = qai_gguf_writer_write(w, path);
    qai_gguf_writer_free(w);
    if (st) return st;
    qai_gguf *g;
    if ((st = qai_gguf_open(path, &g))) return st;
    st = qai_tokenizer_from_gguf(g, tok);
    qai_gguf_close(g);
    remove(path);
    return st;
}

static void expect_error(const char *model, const char *pre, broken how, qai_status want, const char *needle) {
    qai_tokenizer *tok = (qai_tokenizer *)1;
    qai_status st = load(model, pre, how, -1, &tok);
    CHECK_MSG(st == want, "case %d: status %d, want %d (%s)", (int)how, st, want, qai_last_error());
    CHECK(tok == NULL);
    CHECK_MSG(strstr(qai_last_error(), needle) != NULL, "case %d: message '%s' should mention '%s'", (int)how,
              qai_last_error(), needle);
}

int main(void) {
    qai_tokenizer *tok;
    /* SPM: add_bos defaults to true, ids from the keys */
    CHECK_OK(load("llama", NULL, BROKEN_NONE, -1, &tok));
    if (tok) {
        CHECK_EQ_INT(qai_tokenizer_kind(tok), QAI_VOCAB_SPM);
        CHECK_EQ_INT(qai_tokenizer_bos(tok), 3);
        CHECK_EQ_INT(qai_tokenizer_eos(tok), 4);
        CHECK(qai_tokenizer_add_bos(tok));
        CHECK(qai_tokenizer_is_eog(tok, 5));
        int32_t *ids;
        size_t n;
        CHECK_OK(qai_tokenizer_encode(tok, "ab", 2, QAI_TOK_ADD_SPECIAL, &ids, &n));
        /* BOS, then "▁" (not in the vocabulary, no byte tokens, no unk... unk defaults to 0 = "a") and "ab" */
        CHECK(n >= 2 && ids[0] == 3 && ids[n - 1] == 2);
        qai_free(ids);
        qai_tokenizer_free(tok);
    }
    /* BPE: add_bos defaults to false, true for llama3-style pre-tokenizers; the key wins */
    CHECK_OK(load("gpt2", "gpt-2", BROKEN_NONE, -1, &tok));
    if (tok) {
        CHECK_EQ_INT(qai_tokenizer_kind(tok), QAI_VOCAB_BPE);
        CHECK(!qai_tokenizer_add_bos(tok));
        int32_t *ids;
        size_t n;
        CHECK_OK(qai_tokenizer_encode(tok, "ab", 2, QAI_TOK_ADD_SPECIAL, &ids, &n));
        CHECK(n == 1 && ids[0] == 2);
        qai_free(ids);
        qai_tokenizer_free(tok);
    }
    CHECK_OK(load("gpt2", "llama-bpe", BROKEN_NONE, -1, &tok));
    if (tok) {
        CHECK(qai_tokenizer_add_bos(tok));
        qai_tokenizer_free(tok);
    }
    CHECK_OK(load("gpt2", "llama-bpe", BROKEN_NONE, 0, &tok));
    if (tok) {
        CHECK(!qai_tokenizer_add_bos(tok));
        qai_tokenizer_free(tok);
    }
    CHECK_OK(load("gpt2", NULL, BROKEN_NONE, -1, &tok)); /* no pre-tokenizer name: "default" */
    qai_tokenizer_free(tok);

    expect_error("llama", NULL, NO_MODEL, QAI_ERR_NOT_FOUND, "tokenizer.ggml.model");
    expect_error("llama", NULL, UNKNOWN_MODEL, QAI_ERR_UNSUPPORTED, "'t5'");
    expect_error("llama", NULL, NO_TOKENS, QAI_ERR_NOT_FOUND, "tokenizer.ggml.tokens");
    expect_error("llama", NULL, TOKENS_NOT_STRINGS, QAI_ERR_FORMAT, "not an array of strings");
    expect_error("llama", NULL, SHORT_SCORES, QAI_ERR_FORMAT, "has 5 entries but there are 6 tokens");
    expect_error("llama", NULL, SHORT_TYPES, QAI_ERR_FORMAT, "token_type");
    expect_error("gpt2", "gpt-2", NO_MERGES, QAI_ERR_NOT_FOUND, "merges");
    expect_error("gpt2", "gpt-2", BAD_PRE, QAI_ERR_UNSUPPORTED, "no-such-pre");
    CHECK(qai_tokenizer_from_gguf(NULL, &tok) == QAI_ERR_ARG);
    return test_summary();
}
