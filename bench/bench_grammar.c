/* Token-mask speed of constrained decoding (qai/grammar.h).
 *
 * For each vocabulary — the llama2 32k SentencePiece vocabulary
 * ($QAI_DATA/models/llama2-tokenizer/tokenizer.bin, or --llama2c FILE), any
 * GGUF tokenizer (--gguf FILE), and a byte-level BPE trained here on text files
 * (--bpe-train N FILE...) — it builds the trie, then replays realistic
 * documents token by token under their grammar (a JSON Schema, json_object,
 * a tool call, strings with patterns, numeric ranges and string formats) and
 * times qai_grammar_mask at every position (median of
 * --reps repeats). It prints the distribution over positions (mean, p50, p90,
 * p99, max in microseconds) and the share of allowed tokens, per grammar.
 *
 * Usage: bench_grammar [--reps N] [--llama2c FILE] [--gguf FILE] [--bpe-train VOCAB FILE...] [--show]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qai/gguf.h"
#include "qai/grammar.h"
#include "qai/tokenizer.h"
#include "qai/tokenizer_train.h"

static const char *schema =
    "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},\"age\":{\"type\":\"integer\"},"
    "\"email\":{\"type\":\"string\",\"maxLength\":64},\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}},"
    "\"address\":{\"type\":\"object\",\"properties\":{\"street\":{\"type\":\"string\"},\"city\":{\"type\":\"string\"},"
    "\"zip\":{\"type\":[\"string\",\"null\"]}},\"required\":[\"street\",\"city\"]},\"score\":{\"type\":\"number\"},"
    "\"status\":{\"enum\":[\"active\",\"inactive\",\"banned\"]}},\"required\":[\"name\",\"age\",\"status\"]}";
static const char *schema_doc =
    "{\"name\": \"Ada Lovelace, Countess of Lovelace\", \"age\": 36, \"email\": \"ada@example.org\", \"tags\": "
    "[\"mathematics\", \"analytical engine\", \"poetry of science\"], \"address\": {\"street\": \"12 St James's "
    "Square\", \"city\": \"London\", \"zip\": null}, \"score\": 99.5, \"status\": \"active\"}";
static const char *pattern_schema =
    "{\"type\":\"object\",\"properties\":{\"email\":{\"type\":\"string\",\"pattern\":"
    "\"^[a-z0-9._%+-]+@[a-z0-9.-]+\\\\.[a-z]{2,}$\"},\"note\":{\"type\":\"string\",\"pattern\":\"ok\"}},"
    "\"required\":[\"email\",\"note\"]}";
static const char *pattern_doc =
    "{\"email\": \"ada.lovelace@example.org\", \"note\": \"this is ok, or so the analytical engine says\"}";
static const char *range_schema =
    "{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"integer\",\"minimum\":-40,\"maximum\":125},"
    "\"p\":{\"type\":\"number\",\"exclusiveMinimum\":0,\"maximum\":1},\"day\":{\"type\":\"string\",\"format\":\"date\"},"
    "\"id\":{\"type\":\"string\",\"format\":\"uuid\"},\"mail\":{\"type\":\"string\",\"format\":\"email\"}},"
    "\"required\":[\"n\",\"p\",\"day\",\"id\",\"mail\"]}";
static const char *range_doc =
    "{\"n\": 42, \"p\": 0.25, \"day\": \"2024-02-29\", \"id\": \"123e4567-e89b-12d3-a456-426614174000\", "
    "\"mail\": \"ada.lovelace@example.org\"}";
static const char *object_doc =
    "{\"summary\": \"The quick brown fox jumps over the lazy dog. It was the best of times, it was the worst of "
    "times.\", \"items\": [{\"id\": 1, \"ok\": true}, {\"id\": 2, \"ok\": false, \"note\": \"caf\xc3\xa9 \\u00e9\\n\"}], "
    "\"total\": -12.5e3}";
static const char *tools =
    "[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"parameters\":{\"type\":\"object\",\"properties\":"
    "{\"city\":{\"type\":\"string\"},\"unit\":{\"enum\":[\"celsius\",\"fahrenheit\"]}},\"required\":[\"city\"]}}},"
    "{\"type\":\"function\",\"function\":{\"name\":\"search_web\",\"parameters\":{\"type\":\"object\",\"properties\":"
    "{\"query\":{\"type\":\"string\"},\"max_results\":{\"type\":\"integer\"}},\"required\":[\"query\"]}}}]";
static const char *tool_doc =
    "{\"name\": \"search_web\", \"arguments\": {\"query\": \"constrained decoding for small language models on CPUs\", "
    "\"max_results\": 5}}";

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Greedy longest-piece tokenization of text against the trie's pieces, so the
 * documents spell exactly the bytes (encoders may add a dummy-prefix space). */
static int32_t *spell(const qai_tokenizer *tok, const char *text, size_t *n_out) {
    int32_t V = qai_tokenizer_n_vocab(tok);
    size_t n = strlen(text), k = 0;
    int32_t *ids = malloc(n * sizeof(int32_t));
    char piece[512];
    for (size_t i = 0; i < n;) {
        int32_t best = -1;
        size_t best_len = 0;
        for (int32_t t = 0; t < V; t++) {
            int32_t ty = qai_tokenizer_token_type(tok, t);
            if (ty == QAI_TOKEN_CONTROL || ty == QAI_TOKEN_UNKNOWN || ty == QAI_TOKEN_UNUSED) continue;
            size_t l = qai_tokenizer_piece(tok, t, 0, piece, sizeof piece);
            if (l > best_len && l <= n - i && l <= sizeof piece && !memcmp(piece, text + i, l)) best = t, best_len = l;
        }
        if (best < 0) {
            free(ids);
            return NULL;
        }
        ids[k++] = best;
        i += best_len;
    }
    *n_out = k;
    return ids;
}

static void run(const char *vocab_name, const qai_tokenizer *tok, const qai_grammar_vocab *gv, const char *gname,
                const qai_grammar *g, const char *doc, int reps, int show) {
    size_t n;
    int32_t *ids = spell(tok, doc, &n);
    if (!ids) {
        printf("%s/%s: the vocabulary cannot spell the document\n", vocab_name, gname);
        return;
    }
    int32_t V = qai_tokenizer_n_vocab(tok);
    float *logits = malloc((size_t)V * sizeof(float));
    uint64_t *t = malloc((n + 1) * sizeof(uint64_t)), *r = malloc((size_t)reps * sizeof(uint64_t));
    qai_grammar_state *st;
    if (qai_grammar_state_new(g, gv, &st)) {
        fprintf(stderr, "bench_grammar: %s\n", qai_last_error());
        exit(1);
    }
    double allowed = 0;
    for (size_t i = 0; i <= n; i++) {
        int a = 0;
        for (int k = 0; k < reps; k++) {
            memset(logits, 0, (size_t)V * sizeof(float));
            uint64_t t0 = qai_time_ns();
            a = qai_grammar_mask(st, logits);
            r[k] = qai_time_ns() - t0;
        }
        qsort(r, (size_t)reps, sizeof *r, cmp_u64);
        t[i] = r[reps / 2];
        allowed += (double)a / V;
        if (show) {
            char piece[64];
            size_t l = i < n ? qai_tokenizer_piece(tok, ids[i], 0, piece, sizeof piece - 1) : 0;
            piece[l < sizeof piece ? l : sizeof piece - 1] = 0;
            printf("  %4zu  %8.1f us  %6d allowed  next '%s'\n", i, t[i] / 1e3, a, piece);
        }
        if (i < n && qai_grammar_accept(st, ids[i])) {
            fprintf(stderr, "bench_grammar: %s/%s: token %zu: %s\n", vocab_name, gname, i, qai_last_error());
            exit(1);
        }
    }
    if (!qai_grammar_is_complete(st)) fprintf(stderr, "bench_grammar: %s/%s: document incomplete\n", vocab_name, gname);
    double sum = 0;
    for (size_t i = 0; i <= n; i++) sum += (double)t[i];
    qsort(t, n + 1, sizeof *t, cmp_u64);
#define PCT(p) (t[(size_t)((double)(p) / 100.0 * (double)n)] / 1e3)
    printf("%-14s %-12s %5zu positions  mean %7.1f  p50 %7.1f  p90 %7.1f  p99 %7.1f  max %7.1f us  allowed %5.1f%%\n",
           vocab_name, gname, n + 1, sum / (double)(n + 1) / 1e3, PCT(50), PCT(90), PCT(99), t[n] / 1e3,
           100.0 * allowed / (double)(n + 1));
    qai_grammar_state_free(st);
    free(ids);
    free(logits);
    free(t);
    free(r);
}

static void bench_vocab(const char *name, const qai_tokenizer *tok, int reps, int show) {
    uint64_t t0 = qai_time_ns();
    qai_grammar_vocab *gv;
    if (qai_grammar_vocab_new(tok, &gv)) {
        fprintf(stderr, "bench_grammar: %s\n", qai_last_error());
        exit(1);
    }
    printf("%s: %d tokens, trie built in %.1f ms\n", name, qai_tokenizer_n_vocab(tok), (qai_time_ns() - t0) / 1e6);
    qai_grammar *gs, *go, *gt, *gp, *gr;
    if (qai_grammar_compile_json_schema(schema, strlen(schema), NULL, &gs) || qai_grammar_json_object(NULL, &go) ||
        qai_grammar_compile_json_schema(range_schema, strlen(range_schema), NULL, &gr) ||
        qai_grammar_compile_json_schema(pattern_schema, strlen(pattern_schema), NULL, &gp) ||
        qai_grammar_tool_calls(tools, strlen(tools), "\"required\"", 10, 0, NULL, &gt)) {
        fprintf(stderr, "bench_grammar: %s\n", qai_last_error());
        exit(1);
    }
    run(name, tok, gv, "json_schema", gs, schema_doc, reps, show);
    run(name, tok, gv, "json_object", go, object_doc, reps, show);
    run(name, tok, gv, "tool_call", gt, tool_doc, reps, show);
    run(name, tok, gv, "pattern", gp, pattern_doc, reps, show);
    run(name, tok, gv, "ranges_formats", gr, range_doc, reps, show);
    qai_grammar_free(gr);
    qai_grammar_free(gp);
    qai_grammar_free(gs);
    qai_grammar_free(go);
    qai_grammar_free(gt);
    qai_grammar_vocab_free(gv);
}

int main(int argc, char **argv) {
    int reps = 9, show = 0;
    const char *data = getenv("QAI_DATA") ? getenv("QAI_DATA") : "../shared/data";
    char l2[1024];
    snprintf(l2, sizeof l2, "%s/models/llama2-tokenizer/tokenizer.bin", data);
    const char *llama2c = l2, *gguf = NULL;
    int bpe_vocab = 0, bpe_first = 0, bpe_n = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--llama2c") && i + 1 < argc) llama2c = argv[++i];
        else if (!strcmp(argv[i], "--gguf") && i + 1 < argc) gguf = argv[++i];
        else if (!strcmp(argv[i], "--show")) show = 1;
        else if (!strcmp(argv[i], "--bpe-train") && i + 2 < argc) {
            bpe_vocab = atoi(argv[++i]);
            bpe_first = i + 1;
            bpe_n = argc - bpe_first;
            break;
        } else {
            fprintf(stderr, "usage: bench_grammar [--reps N] [--llama2c FILE] [--gguf FILE] [--bpe-train VOCAB FILE...] [--show]\n");
            return 2;
        }
    }
    if (reps < 1) reps = 1;
    qai_vocab_desc d;
    qai_tokenizer *tok;
    if (qai_vocab_read_llama2c(llama2c, &d) == QAI_OK && qai_tokenizer_new(&d, &tok) == QAI_OK) {
        qai_vocab_release(&d);
        bench_vocab("llama2-32k", tok, reps, show);
        qai_tokenizer_free(tok);
    } else {
        fprintf(stderr, "bench_grammar: skipping llama2: %s\n", qai_last_error());
    }
    if (gguf) {
        qai_gguf *g;
        if (qai_gguf_open(gguf, &g) || qai_tokenizer_from_gguf(g, &tok)) {
            fprintf(stderr, "bench_grammar: %s\n", qai_last_error());
            return 1;
        }
        bench_vocab("gguf", tok, reps, show);
        qai_tokenizer_free(tok);
        qai_gguf_close(g);
    }
    if (bpe_n > 0) {
        qai_toktrain_opts o;
        qai_toktrain_opts_init(&o);
        o.type = QAI_TOKTRAIN_BYTEBPE;
        o.vocab_size = bpe_vocab;
        uint64_t t0 = qai_time_ns();
        if (qai_tokenizer_train_files((const char *const *)argv + bpe_first, (size_t)bpe_n, &o, &d, NULL) ||
            qai_tokenizer_new(&d, &tok)) {
            fprintf(stderr, "bench_grammar: %s\n", qai_last_error());
            return 1;
        }
        fprintf(stderr, "bench_grammar: trained a byte-level BPE of %d tokens in %.1f s\n", d.n_tokens,
                (qai_time_ns() - t0) / 1e9);
        qai_vocab_release(&d);
        char name[32];
        snprintf(name, sizeof name, "bytebpe-%dk", qai_tokenizer_n_vocab(tok) / 1000);
        bench_vocab(name, tok, reps, show);
        qai_tokenizer_free(tok);
    }
    return 0;
}
