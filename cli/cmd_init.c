/* qai init — a model with random weights of any Llama shape, or a BERT encoder. */
#include <string.h>

#include "cli.h"
#include "qai/model.h"

static const char *usage =
    "usage: qai init [--arch llama|qwen2|bert] --dim D --layers L --heads H [--kv-heads K] --ffn F --vocab V\n"
    "                [--ctx C] [--type f32|f16|bf16|q8_0|q4_0|q4_k|q6_k] [--seed S] [--std X] [--pooling mean|cls]\n"
    "                OUT.gguf\n"
    "\n"
    "Writes a model with random weights (uniform, std 0.02 or --std; norms 1) and a byte-level\n"
    "SentencePiece-style vocabulary of V tokens (V >= 259). For tests, benchmarks and\n"
    "as a starting point for training. The file runs in qai and in llama.cpp.\n"
    "--arch bert writes an encoder for 'qai embed' instead, laid out as llama.cpp's\n"
    "converter writes BERT embedding models, with a synthetic WordPiece vocabulary of\n"
    "V tokens (V >= 400), --ctx positions and --pooling (default mean).\n"
    "\n"
    "example (TinyLlama's shape, 1.1B parameters, Q8_0):\n"
    "  qai init --dim 2048 --layers 22 --heads 32 --kv-heads 4 --ffn 5632 --vocab 32000 --type q8_0 tiny.gguf\n";

int cmd_init(int argc, char **argv) {
    qai_init_params p = {.arch = "llama", .type = QAI_TYPE_F32, .ctx = 2048};
    const char *out = NULL;
    int pooling = 1; /* bert: 1 mean, 2 CLS */
    for (int i = 1; i < argc; i++) {
        const char *v;
        long long iv;
        int *dst = NULL;
        if (cli_flag(argv[i], "-h", "--help")) {
            fputs(usage, stdout);
            return 0;
        }
        if (cli_value(argc, argv, &i, NULL, "--arch", &v)) {
            if (!v) return cli_usage_error("init", "--arch needs a value");
            p.arch = v;
            continue;
        }
        if (cli_value(argc, argv, &i, NULL, "--pooling", &v)) {
            if (v && !strcmp(v, "mean")) pooling = 1;
            else if (v && !strcmp(v, "cls")) pooling = 2;
            else return cli_usage_error("init", "--pooling needs mean or cls");
            continue;
        }
        if (cli_value(argc, argv, &i, NULL, "--type", &v)) {
            int t = v ? qai_type_from_name(v) : -1;
            if (t < 0) return cli_usage_error("init", "--type needs a weight type such as f32, f16, q8_0, q4_0");
            p.type = (qai_type)t;
            continue;
        }
        if (cli_value(argc, argv, &i, NULL, "--std", &v)) {
            double d;
            if (!v || !cli_parse_float(v, &d) || d <= 0 || d > 100)
                return cli_usage_error("init", "--std needs a positive number");
            p.std = (float)d;
            continue;
        }
        if (cli_value(argc, argv, &i, NULL, "--seed", &v)) {
            if (!v || !cli_parse_int(v, 0, INT64_MAX, &iv)) return cli_usage_error("init", "--seed needs a number");
            p.seed = (uint64_t)iv;
            continue;
        }
        const char *a = argv[i];
        if (cli_value(argc, argv, &i, NULL, "--dim", &v)) dst = &p.dim;
        else if (cli_value(argc, argv, &i, NULL, "--layers", &v)) dst = &p.layers;
        else if (cli_value(argc, argv, &i, NULL, "--heads", &v)) dst = &p.heads;
        else if (cli_value(argc, argv, &i, NULL, "--kv-heads", &v)) dst = &p.kv_heads;
        else if (cli_value(argc, argv, &i, NULL, "--ffn", &v)) dst = &p.ffn;
        else if (cli_value(argc, argv, &i, NULL, "--vocab", &v)) dst = &p.vocab;
        else if (cli_value(argc, argv, &i, NULL, "--ctx", &v)) dst = &p.ctx;
        if (dst) {
            if (!v || !cli_parse_int(v, 1, 1 << 24, &iv)) return cli_usage_error("init", "%s needs a positive integer", a);
            *dst = (int)iv;
        } else if (a[0] == '-' && a[1]) return cli_usage_error("init", "unknown option '%s'", a);
        else if (out) return cli_usage_error("init", "more than one output file given");
        else out = a;
    }
    if (!out) return cli_usage_error("init", "no output file given");
    if (!p.kv_heads) p.kv_heads = p.heads;
    if (!p.dim || !p.layers || !p.heads || !p.ffn || !p.vocab)
        return cli_usage_error("init", "--dim, --layers, --heads, --ffn and --vocab are required");
    bool ctx_given = false;
    for (int i = 1; i < argc; i++) ctx_given |= !strcmp(argv[i], "--ctx") || !strncmp(argv[i], "--ctx=", 6);
    if (!strcmp(p.arch, "bert") && !ctx_given) p.ctx = 512; /* BERT's positions */
    qai_status st = !strcmp(p.arch, "bert") ? qai_bert_init_random(&p, NULL, 0, pooling, out)
                                            : qai_model_init_random(&p, out);
    if (st != QAI_OK) return cli_fail_last("init");
    fprintf(stderr, "qai: init: wrote '%s'\n", out);
    return 0;
}
