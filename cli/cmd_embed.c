/* qai embed — sentence embeddings from a GGUF model (BERT-style encoders such
 * as bge/e5/MiniLM, or llama/qwen2 decoders by mean pooling). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "qai/model.h"

static const char *usage_text =
    "usage: qai embed -m MODEL [--json] [--pooling mean|cls|last] [--no-normalize]\n"
    "                 [-t N] [TEXT... | --stdin | --file FILE]\n"
    "\n"
    "Prints one sentence embedding per text: by default one line per text of\n"
    "space-separated floats, in the order the texts were given. Each TEXT\n"
    "argument is one text; with --stdin or --file every line is one text (a\n"
    "final newline does not start another). MODEL is a GGUF embedding model of\n"
    "the \"bert\" architecture (bge, e5, all-MiniLM, as llama.cpp converts them;\n"
    "[CLS] and [SEP] are added) or a llama/qwen2 model (mean of its final-norm\n"
    "states). Vectors are L2-normalized unless --no-normalize is given.\n"
    "\n"
    "  -m, --model FILE   the GGUF model\n"
    "  --json             print a JSON array with one array of floats per text\n"
    "  --pooling MODE     mean, cls or last (bert models; default: the model's\n"
    "                     bert.pooling_type, mean when absent); decoders: mean only\n"
    "  --no-normalize     print the pooled vectors as they are\n"
    "  --normalize        L2-normalize (the default)\n"
    "  --stdin            read texts from standard input, one per line\n"
    "  --file FILE        read texts from FILE, one per line\n"
    "  -t, --threads N    threads (default: all CPUs)\n"
    "  -h, --help         show this help\n"
    "\n"
    "A text longer than the model's context (bert: its position embeddings,\n"
    "usually 512 tokens) is an error naming the text; split long documents first.\n"
    "\n"
    "examples:\n"
    "  qai embed -m bge-small-en-v1.5-f16.gguf \"a sentence\" \"another one\"\n"
    "  qai embed -m model.gguf --json --file sentences.txt\n"
    "  printf 'first\\nsecond\\n' | qai embed -m model.gguf --stdin --pooling cls\n"
    "\n"
    "exit codes: 0 ok, 1 the model cannot be read or a text cannot be embedded, 2 bad usage\n";

static char *read_stream(FILE *f, size_t *n) {
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + len, 1, cap - len - 1, f);
        len += got;
        if (got == 0) break;
        if (len + 1 == cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                return NULL;
            }
            buf = nb;
            cap *= 2;
        }
    }
    if (buf) buf[len] = 0;
    *n = len;
    return buf;
}

typedef struct {
    const char **s;
    size_t *len;
    int n, cap;
} text_list;

static bool push_text(text_list *l, const char *s, size_t len) {
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 64;
        const char **ns = realloc(l->s, (size_t)cap * sizeof *ns);
        size_t *nl = realloc(l->len, (size_t)cap * sizeof *nl);
        if (ns) l->s = ns;
        if (nl) l->len = nl;
        if (!ns || !nl) return false;
        l->cap = cap;
    }
    l->s[l->n] = s;
    l->len[l->n++] = len;
    return true;
}

/* Lines of buf (\n or \r\n; a final newline does not start another line). */
static bool split_lines(text_list *l, char *buf, size_t n) {
    size_t i = 0;
    while (i < n) {
        size_t e = i;
        while (e < n && buf[e] != '\n') e++;
        size_t len = e - i;
        if (len && buf[i + len - 1] == '\r') len--;
        if (!push_text(l, buf + i, len)) return false;
        i = e + 1;
    }
    return true;
}

int cmd_embed(int argc, char **argv) {
    const char *model_path = NULL, *file = NULL;
    bool json = false, use_stdin = false;
    long long threads = 0;
    qai_embed_params ep = qai_embed_default_params();
    text_list texts = {0};
    char *input = NULL;
    int rc = 0;
    bool opts_done = false;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (opts_done || argv[i][0] != '-' || !argv[i][1]) {
            if (!push_text(&texts, argv[i], strlen(argv[i]))) {
                rc = cli_fail("embed", "out of memory");
                goto done;
            }
            continue;
        }
        if (cli_flag(argv[i], "-h", "--help")) {
            fputs(usage_text, stdout);
            goto done;
        } else if (!strcmp(argv[i], "--")) opts_done = true;
        else if (cli_value(argc, argv, &i, "-m", "--model", &v)) {
            if (!v) goto missing;
            model_path = v;
        } else if (cli_value(argc, argv, &i, NULL, "--file", &v)) {
            if (!v) goto missing;
            file = v;
        } else if (cli_value(argc, argv, &i, NULL, "--pooling", &v)) {
            if (!v) goto missing;
            if (!strcmp(v, "mean")) ep.pooling = QAI_POOLING_MEAN;
            else if (!strcmp(v, "cls")) ep.pooling = QAI_POOLING_CLS;
            else if (!strcmp(v, "last")) ep.pooling = QAI_POOLING_LAST;
            else {
                rc = cli_usage_error("embed", "--pooling must be mean, cls or last, not '%s'", v);
                goto done;
            }
        } else if (cli_value(argc, argv, &i, "-t", "--threads", &v)) {
            if (!v) goto missing;
            if (!cli_parse_int(v, 1, 1024, &threads)) {
                rc = cli_usage_error("embed", "--threads must be a number from 1 to 1024, not '%s'", v);
                goto done;
            }
        } else if (cli_flag(argv[i], NULL, "--json")) json = true;
        else if (cli_flag(argv[i], NULL, "--stdin")) use_stdin = true;
        else if (cli_flag(argv[i], NULL, "--normalize")) ep.normalize = true;
        else if (cli_flag(argv[i], NULL, "--no-normalize")) ep.normalize = false;
        else {
            rc = cli_usage_error("embed", "unknown option '%s'", argv[i]);
            goto done;
        }
    }
    if (!model_path) {
        rc = cli_usage_error("embed", "no model given (-m MODEL.gguf)");
        goto done;
    }
    if ((use_stdin || file) && texts.n) {
        rc = cli_usage_error("embed", "give the texts either as arguments or with --stdin/--file, not both");
        goto done;
    }
    if (use_stdin && file) {
        rc = cli_usage_error("embed", "give either --stdin or --file, not both");
        goto done;
    }
    if (use_stdin || file) {
        FILE *f = use_stdin ? stdin : fopen(file, "rb");
        if (!f) {
            rc = cli_fail("embed", "cannot open '%s': %s", file, strerror(errno));
            goto done;
        }
        size_t n;
        input = read_stream(f, &n);
        bool err = ferror(f);
        if (!use_stdin) fclose(f);
        if (!input || err) {
            rc = cli_fail("embed", "cannot read '%s'", use_stdin ? "stdin" : file);
            goto done;
        }
        if (!split_lines(&texts, input, n)) {
            rc = cli_fail("embed", "out of memory");
            goto done;
        }
    }
    if (!texts.n) {
        rc = cli_usage_error("embed", "no text to embed (give TEXT arguments, --stdin or --file)");
        goto done;
    }

    qai_model *m;
    if (qai_model_open(model_path, &m)) {
        rc = cli_fail_last("embed");
        goto done;
    }
    qai_context_params cp = qai_context_default_params();
    cp.n_threads = (int)threads;
    qai_context *ctx;
    if (qai_context_new(m, &cp, &ctx)) {
        rc = cli_fail_last("embed");
        qai_model_close(m);
        goto done;
    }
    const int D = qai_model_get_info(m)->n_embd;
    enum { GROUP = 64 }; /* texts per qai_embed_batch call */
    int32_t *ids[GROUP] = {0};
    int n_ids[GROUP];
    float *vec = malloc((size_t)GROUP * D * sizeof(float));
    if (!vec) rc = cli_fail("embed", "out of memory");
    if (json && !rc) fputc('[', stdout);
    for (int t0 = 0; t0 < texts.n && !rc; t0 += GROUP) {
        int g = texts.n - t0 < GROUP ? texts.n - t0 : GROUP;
        for (int k = 0; k < g && !rc; k++) {
            size_t n;
            if (qai_tokenizer_encode(qai_model_tokenizer(m), texts.s[t0 + k], texts.len[t0 + k], QAI_TOK_ADD_SPECIAL,
                                     &ids[k], &n)) {
                rc = cli_fail("embed", "text %d: %s", t0 + k + 1, qai_last_error());
                break;
            }
            n_ids[k] = (int)n;
        }
        if (!rc && qai_embed_batch(ctx, 0, g, (const int32_t *const *)ids, n_ids, &ep, vec)) {
            /* name the text by its place in the input (1-based: the argument or line) */
            const char *msg = qai_last_error(), *rest = strstr(msg, ": ");
            int bad = -1;
            if (sscanf(msg, "text %d:", &bad) == 1 && bad >= 0 && bad < g && rest)
                rc = cli_fail("embed", "text %d: %s", t0 + bad + 1, rest + 2);
            else rc = cli_fail("embed", "%s", msg);
        }
        for (int k = 0; k < g && !rc; k++) {
            const float *e = vec + (size_t)k * D;
            if (json) fputs(t0 + k ? ",\n[" : "[", stdout);
            for (int d = 0; d < D; d++) printf(json ? (d ? ", %.7g" : "%.7g") : (d ? " %.7g" : "%.7g"), (double)e[d]);
            fputs(json ? "]" : "\n", stdout);
        }
        for (int k = 0; k < g; k++) qai_free(ids[k]), ids[k] = NULL;
    }
    if (json && !rc) fputs("]\n", stdout);
    free(vec);
    qai_context_free(ctx);
    qai_model_close(m);
    if (!rc && fflush(stdout)) rc = cli_fail("embed", "cannot write the output: %s", strerror(errno));
done:
    free(texts.s);
    free(texts.len);
    free(input);
    return rc;
missing:
    rc = cli_usage_error("embed", "%s needs a value", cli_missing_value);
    goto done;
}
