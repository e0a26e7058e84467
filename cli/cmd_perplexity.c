/* qai perplexity — perplexity of a model over a text, chunked as llama.cpp's
 * perplexity tool does (chunks of n_ctx tokens, the first token of each chunk
 * set to BOS, the second half of each chunk scored) so numbers compare. */
#include <math.h>
#include <string.h>

#include "cli.h"
#include "qai/model.h"

static const char *usage =
    "usage: qai perplexity -m MODEL.gguf -f TEXT.txt [--ctx N] [-t THREADS] [--chunks N] [--kv-type f16|f32] [--json]\n"
    "\n"
    "Splits the tokenized text into chunks of N tokens (default 512), evaluates each\n"
    "from an empty cache with BOS first, and scores the second half of every chunk —\n"
    "the same procedure as llama.cpp's perplexity tool, so the numbers compare.\n"
    "Prints the running estimate per chunk on stderr and the final PPL ± error.\n"
    "\n"
    "  --kv-type T  KV cache element type, f16 (default) or f32\n"
    "  --json   print {\"ppl\", \"ppl_error\", \"nll\", \"n_chunks\", \"n_ctx\", \"n_scored\"} on stdout\n"
    "\n"
    "example: qai perplexity -m model.gguf -f /usr/share/common-licenses/GPL-3 --ctx 128\n";

int cmd_perplexity(int argc, char **argv) {
    const char *model = NULL, *file = NULL;
    int n_ctx = 512, n_threads = 0, max_chunks = -1;
    bool json = false;
    qai_type kv_type = QAI_TYPE_F16;
    for (int i = 1; i < argc; i++) {
        const char *v;
        long long iv;
        const char *a = argv[i];
        if (cli_flag(a, "-h", "--help")) {
            fputs(usage, stdout);
            return 0;
        } else if (cli_value(argc, argv, &i, "-m", "--model", &v)) {
            if (!v) return cli_usage_error("perplexity", "-m needs a file");
            model = v;
        } else if (cli_value(argc, argv, &i, "-f", "--file", &v)) {
            if (!v) return cli_usage_error("perplexity", "-f needs a file");
            file = v;
        } else if (cli_value(argc, argv, &i, "-c", "--ctx", &v)) {
            if (!v || !cli_parse_int(v, 8, 1 << 20, &iv)) return cli_usage_error("perplexity", "--ctx needs an integer >= 8");
            n_ctx = (int)iv;
        } else if (cli_value(argc, argv, &i, "-t", "--threads", &v)) {
            if (!v || !cli_parse_int(v, 1, 512, &iv)) return cli_usage_error("perplexity", "-t needs 1..512");
            n_threads = (int)iv;
        } else if (cli_value(argc, argv, &i, NULL, "--chunks", &v)) {
            if (!v || !cli_parse_int(v, 1, 1 << 30, &iv)) return cli_usage_error("perplexity", "--chunks needs a positive integer");
            max_chunks = (int)iv;
        } else if (cli_value(argc, argv, &i, NULL, "--kv-type", &v)) {
            if (!v || qai_kv_type_parse(v, &kv_type)) return cli_usage_error("perplexity", "--kv-type needs f16 or f32");
        } else if (cli_flag(a, NULL, "--json")) json = true;
        else return cli_usage_error("perplexity", "unknown option '%s'", a);
    }
    if (!model || !file) return cli_usage_error("perplexity", "both -m MODEL and -f TEXT are required");
    char *text;
    size_t len;
    if (qai_file_read(file, &text, &len)) return cli_fail_last("perplexity");
    qai_model *m;
    if (qai_model_open(model, &m)) {
        qai_free(text);
        return cli_fail_last("perplexity");
    }
    const qai_tokenizer *tok = qai_model_tokenizer(m);
    int32_t *ids = NULL;
    size_t n_ids = 0;
    qai_context *ctx = NULL;
    int8_t *want = NULL;
    int rc = 0;
    if (qai_tokenizer_encode(tok, text, len, QAI_TOK_ADD_SPECIAL, &ids, &n_ids)) {
        rc = cli_fail_last("perplexity");
        goto out;
    }
    int n_chunks = (int)(n_ids / (size_t)n_ctx);
    if (max_chunks > 0 && n_chunks > max_chunks) n_chunks = max_chunks;
    if (n_chunks < 1) {
        rc = cli_fail("perplexity", "'%s' has %zu tokens; at least 2 × ctx (%d) are needed — use a longer text or a "
                      "smaller --ctx", file, n_ids, 2 * n_ctx);
        goto out;
    }
    qai_context_params cp = qai_context_default_params();
    cp.n_ctx = n_ctx;
    cp.n_batch = n_ctx < 512 ? n_ctx : 512;
    cp.n_threads = n_threads;
    cp.kv_type = kv_type;
    if (qai_context_new(m, &cp, &ctx)) {
        rc = cli_fail_last("perplexity");
        goto out;
    }
    const int V = qai_model_get_info(m)->n_vocab, first = n_ctx / 2;
    want = qai_malloc((size_t)n_ctx);
    int32_t *chunk = qai_malloc((size_t)n_ctx * sizeof(int32_t));
    if (!want || !chunk) {
        qai_free(chunk);
        rc = cli_fail_last("perplexity");
        goto out;
    }
    for (int i = 0; i < n_ctx; i++) want[i] = i >= first && i < n_ctx - 1;
    double nll = 0, nll2 = 0;
    long n_scored = 0;
    qai_progress prog;
    qai_progress_start(&prog, "perplexity", "chunks", (uint64_t)n_chunks);
    prog.quiet = json && !prog.tty;
    for (int c = 0; c < n_chunks && rc == 0; c++) {
        memcpy(chunk, ids + (size_t)c * n_ctx, (size_t)n_ctx * sizeof(int32_t));
        if (qai_tokenizer_add_bos(tok) && qai_tokenizer_bos(tok) >= 0) chunk[0] = qai_tokenizer_bos(tok);
        qai_kv_truncate(ctx, 0, 0);
        qai_batch b = {.n = n_ctx, .token = chunk, .pos = NULL, .seq = NULL, .want_logits = want};
        if (qai_decode(ctx, &b)) {
            rc = cli_fail_last("perplexity");
            break;
        }
        for (int i = first; i < n_ctx - 1; i++) {
            const float *l = qai_context_logits(ctx, i);
            float mx = l[0];
            for (int k = 1; k < V; k++) mx = l[k] > mx ? l[k] : mx;
            double s = 0;
            for (int k = 0; k < V; k++) s += exp((double)(l[k] - mx));
            double v = -((double)(l[ids[(size_t)c * n_ctx + i + 1]] - mx) - log(s));
            nll += v;
            nll2 += v * v;
            n_scored++;
        }
        qai_progress_update(&prog, (uint64_t)c + 1);
        if (!json) fprintf(stderr, "[%d]%.4f%s", c + 1, exp(nll / n_scored), c + 1 == n_chunks ? "\n" : ",");
    }
    qai_free(chunk);
    if (rc == 0) {
        double mean = nll / n_scored, var = nll2 / n_scored - mean * mean;
        double err = n_scored > 1 && var > 0 ? sqrt(var / (n_scored - 1)) : 0;
        double ppl = exp(mean), ppl_err = ppl * err;
        if (json)
            printf("{\"ppl\": %.6f, \"ppl_error\": %.6f, \"nll\": %.6f, \"n_chunks\": %d, \"n_ctx\": %d, \"n_scored\": %ld}\n",
                   ppl, ppl_err, mean, n_chunks, n_ctx, n_scored);
        else
            printf("Final estimate: PPL = %.4f +/- %.5f\n", ppl, ppl_err);
    }
out:
    qai_free(want);
    qai_free(ids);
    qai_free(text);
    qai_context_free(ctx);
    qai_model_close(m);
    return rc;
}
