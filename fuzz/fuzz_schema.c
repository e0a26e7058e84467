/* libFuzzer harness for the JSON Schema compiler and the grammar matcher
 * (qai/grammar.h). The input is a schema, a NUL byte, then a document: the
 * schema is compiled (errors are fine), the document is fed byte by byte
 * (a rejected byte is skipped, so the matcher goes on from every reachable
 * state), and token masks are computed over a small synthetic vocabulary at
 * every step. Without a NUL the whole input is the document for the any-JSON
 * grammar, and also tried as a schema, response_format and tools array.
 * Any crash, overread, leak or sanitizer report is a bug. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qai/grammar.h"
#include "qai/tokenizer.h"

static volatile uint64_t sink;
static qai_tokenizer *tok;
static qai_grammar_vocab *gv;

/* pieces a JSON generator needs, and some that cut across its tokens
 * (SentencePiece spelling: "\xe2\x96\x81" is a space, <0xXX> a byte) */
static const char *pieces[] = {"{", "}", "[", "]", ",", ":", "\"", "\\", "\xe2\x96\x81", "\n", "0", "1", "-", ".", "e",
                               "+", "true", "false", "null", "\"a\"", "\":", "\",", "\\u", "d83d", "<0xC3>", "<0xA9>",
                               "\xc3\xa9", "name", "\"name\"", "arguments", "{\"", "\"}", "[{", "}]", "12",
                               "\xe2\x96\x81\xe2\x96\x81", "\\n", "x"};

static void init_vocab(void) {
    if (gv) return;
    size_t n = sizeof pieces / sizeof *pieces;
    const char *toks[64] = {"<unk>", "<s>", "</s>"};
    int32_t types[64] = {QAI_TOKEN_UNKNOWN, QAI_TOKEN_CONTROL, QAI_TOKEN_CONTROL};
    for (size_t i = 0; i < n; i++) {
        toks[i + 3] = pieces[i];
        types[i + 3] = pieces[i][0] == '<' && pieces[i][1] == '0' ? QAI_TOKEN_BYTE : QAI_TOKEN_NORMAL;
    }
    qai_vocab_desc d;
    memset(&d, 0, sizeof d);
    d.kind = QAI_VOCAB_SPM;
    d.n_tokens = (int32_t)n + 3;
    d.tokens = toks;
    d.types = types;
    d.unk = 0, d.bos = 1, d.eos = 2;
    d.eot = d.eom = d.pad = d.sep = -1;
    if (qai_tokenizer_new(&d, &tok) == QAI_OK) qai_grammar_vocab_new(tok, &gv);
}

static void feed(const qai_grammar *g, const uint8_t *doc, size_t n) {
    qai_grammar_state *st;
    if (qai_grammar_state_new(g, gv, &st)) return;
    float logits[64];
    uint8_t allowed[64];
    int32_t V = gv ? qai_grammar_vocab_n_vocab(gv) : 0;
    for (size_t i = 0; i < n; i++) {
        if (gv && i % 4 == 0) {
            for (int32_t t = 0; t < V; t++) logits[t] = 0, allowed[t] = 1;
            sink += (uint64_t)qai_grammar_mask(st, logits);
            sink += (uint64_t)qai_grammar_allowed(st, allowed);
            /* a token the mask allows is always accepted by a copy of the run */
        }
        if (qai_grammar_accept_bytes(st, (const char *)doc + i, 1) != QAI_OK) sink++;
        sink += qai_grammar_is_complete(st);
    }
    if (gv) {
        for (int32_t t = 0; t < V; t++) logits[t] = 0;
        if (qai_grammar_mask(st, logits) > 0) {
            int32_t t = 0;
            while (t < V && logits[t] != 0) t++;
            if (t < V && qai_grammar_accept(st, t) != QAI_OK) abort(); /* mask and accept disagree */
        }
    }
    sink += qai_grammar_state_is_tool_call(st);
    qai_grammar_state_free(st);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    init_vocab();
    const uint8_t *nul = memchr(data, 0, size);
    qai_grammar *g = NULL;
    if (nul) {
        size_t ls = (size_t)(nul - data);
        if (qai_grammar_compile_json_schema((const char *)data, ls, NULL, &g) == QAI_OK) {
            feed(g, nul + 1, size - ls - 1);
            qai_grammar_free(g);
        } else {
            sink += strlen(qai_last_error());
        }
        return 0;
    }
    qai_grammar_options o = qai_grammar_default_options();
    o.max_depth = 8;
    if (qai_grammar_json_value(&o, &g) == QAI_OK) {
        feed(g, data, size);
        qai_grammar_free(g);
    }
    if (qai_grammar_compile_json_schema((const char *)data, size, NULL, &g) == QAI_OK) {
        feed(g, (const uint8_t *)"{\"a\":[1,\"x\"],\"b\":null}", 22);
        qai_grammar_free(g);
    }
    if (qai_grammar_from_response_format((const char *)data, size, NULL, &g) == QAI_OK) qai_grammar_free(g);
    if (qai_grammar_tool_calls((const char *)data, size, "\"auto\"", 6, 0, NULL, &g) == QAI_OK) {
        feed(g, (const uint8_t *)"{\"name\":\"f\",\"arguments\":{}}", 27);
        qai_grammar_free(g);
    }
    sink += strlen(qai_last_error());
    return 0;
}
