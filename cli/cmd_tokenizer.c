/* qai tokenizer — tokenizer tools: train (BPE from text files into a vocab-only
 * GGUF). More subcommands can join the table below. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "qai/tokenizer_train.h"
#include "qai/train.h"

static const char *usage_text =
    "usage: qai tokenizer train --vocab N [options] FILE|DIR... -o TOK.gguf\n"
    "\n"
    "subcommands:\n"
    "  train   learn a BPE vocabulary from text files\n"
    "\n"
    "train: learns a tokenizer from the text of FILEs and writes it as a\n"
    "vocabulary-only GGUF file that 'qai tokenize -m', 'qai data prepare',\n"
    "'qai train' and llama.cpp read. The same files and options always give a\n"
    "byte-identical file, whatever --threads is. Inputs are read as 'qai data\n"
    "prepare' reads them: a DIR is walked recursively in name order for .txt,\n"
    ".text, .md, .markdown, .rst and .jsonl files (others and hidden ones are\n"
    "skipped); a .jsonl file gives the \"text\" field of each line; man pages (roff,\n"
    "also .gz), HTML and CSV give the text qai ingest's extractors find in them.\n"
    "\n"
    "  --vocab N           vocabulary size, including special and byte tokens\n"
    "  --type bpe|bytebpe  bpe (default): SentencePiece-style BPE with byte\n"
    "                      fallback (GGUF model \"llama\": \"\xe2\x96\x81\" for spaces,\n"
    "                      <0xXX> byte tokens, <unk> <s> </s> at ids 0 1 2; every\n"
    "                      line is a sentence); bytebpe: GPT-2-style byte-level BPE\n"
    "                      (GGUF model \"gpt2\", pre-tokenizer \"gpt-2\", merges;\n"
    "                      <|endoftext|> at id 0 is BOS and EOS)\n"
    "  --special LIST      comma-separated user-defined special tokens, e.g.\n"
    "                      \"<|user|>,<|assistant|>\": always one token, even in plain\n"
    "                      text\n"
    "  --control LIST      comma-separated control tokens (matched only when special\n"
    "                      tokens are parsed, as chat templates do)\n"
    "  -t, --threads N     counting threads (default: all CPUs)\n"
    "  --max-chars N       read at most N bytes of the input (whole lines)\n"
    "  --coverage F        bpe: share of character occurrences whose characters\n"
    "                      become tokens; rarer ones fall back to bytes (default 0.9995)\n"
    "  --max-piece N       bpe: longest token in characters (default 16)\n"
    "  -o, --output FILE   the GGUF file to write\n"
    "  --json              print statistics as JSON\n"
    "  -h, --help          show this help\n"
    "\n"
    "examples:\n"
    "  qai tokenizer train --vocab 8000 corpus.txt -o tok.gguf\n"
    "  qai tokenizer train --vocab 4096 docs/ notes.jsonl -o tok.gguf\n"
    "  qai tokenizer train --vocab 4096 --type bytebpe --special \"<|user|>,<|assistant|>\" notes/*.md -o tok.gguf\n"
    "  qai tokenize -m tok.gguf \"Hello world\"\n"
    "\n"
    "exit codes: 0 ok, 1 failed (unreadable or empty input, vocabulary too small),\n"
    "2 bad usage\n";

/* Splits a comma-separated list in place into *out (pointers into s). */
static int split_list(char *s, const char ***out, size_t *n) {
    size_t cap = 1;
    for (char *p = s; *p; p++) cap += *p == ',';
    const char **v = calloc(cap, sizeof *v);
    if (!v) return -1;
    size_t k = 0;
    for (char *tok = strtok(s, ","); tok; tok = strtok(NULL, ",")) v[k++] = tok;
    *out = v;
    *n = k;
    return 0;
}

static int train(int argc, char **argv) {
    qai_toktrain_opts o;
    qai_toktrain_opts_init(&o);
    o.progress = true;
    o.vocab_size = 0;
    const char *out = NULL;
    bool json = false;
    char *special = NULL, *control = NULL;
    const char **files = calloc((size_t)argc + 1, sizeof *files);
    const char **user = NULL, **ctrl = NULL;
    if (!files) return cli_fail("tokenizer", "out of memory");
    size_t n_files = 0;
    int rc = 2;
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        long long n;
        if (argv[i][0] != '-' || !argv[i][1]) {
            files[n_files++] = argv[i];
        } else if (cli_flag(argv[i], "-h", "--help")) {
            fputs(usage_text, stdout);
            rc = 0;
            goto done;
        } else if (cli_value(argc, argv, &i, NULL, "--vocab", &v)) {
            if (!v) goto missing;
            if (!cli_parse_int(v, 1, 1 << 24, &n)) {
                rc = cli_usage_error("tokenizer", "--vocab must be a positive integer, not '%s'", v);
                goto done;
            }
            o.vocab_size = (int32_t)n;
        } else if (cli_value(argc, argv, &i, NULL, "--type", &v)) {
            if (!v) goto missing;
            if (!strcmp(v, "bpe")) o.type = QAI_TOKTRAIN_SPM;
            else if (!strcmp(v, "bytebpe")) o.type = QAI_TOKTRAIN_BYTEBPE;
            else {
                rc = cli_usage_error("tokenizer", "--type must be bpe or bytebpe, not '%s'", v);
                goto done;
            }
        } else if (cli_value(argc, argv, &i, NULL, "--special", &v)) {
            if (!v) goto missing;
            special = (char *)v;
        } else if (cli_value(argc, argv, &i, NULL, "--control", &v)) {
            if (!v) goto missing;
            control = (char *)v;
        } else if (cli_value(argc, argv, &i, "-t", "--threads", &v)) {
            if (!v) goto missing;
            if (!cli_parse_int(v, 1, 1024, &n)) {
                rc = cli_usage_error("tokenizer", "--threads must be an integer in 1..1024, not '%s'", v);
                goto done;
            }
            o.n_threads = (int)n;
        } else if (cli_value(argc, argv, &i, NULL, "--max-chars", &v)) {
            if (!v) goto missing;
            if (!cli_parse_int(v, 1, 1ll << 60, &n)) {
                rc = cli_usage_error("tokenizer", "--max-chars must be a positive integer, not '%s'", v);
                goto done;
            }
            o.max_bytes = (uint64_t)n;
        } else if (cli_value(argc, argv, &i, NULL, "--coverage", &v)) {
            double f;
            if (!v) goto missing;
            if (!cli_parse_float(v, &f) || !(f > 0 && f <= 1)) {
                rc = cli_usage_error("tokenizer", "--coverage must be in (0, 1], not '%s'", v);
                goto done;
            }
            o.coverage = f;
        } else if (cli_value(argc, argv, &i, NULL, "--max-piece", &v)) {
            if (!v) goto missing;
            if (!cli_parse_int(v, 1, 256, &n)) {
                rc = cli_usage_error("tokenizer", "--max-piece must be an integer in 1..256, not '%s'", v);
                goto done;
            }
            o.max_piece_chars = (int)n;
        } else if (cli_value(argc, argv, &i, "-o", "--output", &v)) {
            if (!v) goto missing;
            out = v;
        } else if (cli_flag(argv[i], NULL, "--json")) {
            json = true;
        } else {
            rc = cli_usage_error("tokenizer", "unknown option '%s'", argv[i]);
            goto done;
        }
    }
    if (!o.vocab_size) {
        rc = cli_usage_error("tokenizer", "train: --vocab N is required");
        goto done;
    }
    if (!out) {
        rc = cli_usage_error("tokenizer", "train: -o FILE is required");
        goto done;
    }
    if (!n_files) {
        rc = cli_usage_error("tokenizer", "train: no input FILEs or DIRs given");
        goto done;
    }
    if ((special && split_list(special, &user, &o.n_user_tokens)) ||
        (control && split_list(control, &ctrl, &o.n_control_tokens))) {
        rc = cli_fail("tokenizer", "out of memory");
        goto done;
    }
    o.user_tokens = user;
    o.control_tokens = ctrl;
    qai_vocab_desc d;
    qai_toktrain_stats s;
    uint64_t t0 = qai_time_ns();
    if (qai_tokenizer_train_inputs(files, n_files, &o, &d, &s, NULL)) {
        rc = cli_fail_last("tokenizer");
        goto done;
    }
    qai_status st = qai_vocab_write_gguf(&d, out);
    int32_t nv = d.n_tokens;
    qai_vocab_release(&d);
    if (st) {
        rc = cli_fail_last("tokenizer");
        goto done;
    }
    double secs = (double)(qai_time_ns() - t0) * 1e-9;
    if (json) {
        printf("{\"output\": ");
        cli_json_string(stdout, out, strlen(out), false);
        printf(", \"type\": \"%s\", \"vocab\": %d, \"bytes\": %llu, \"words\": %llu, \"unique_words\": %llu, "
               "\"chars\": %d, \"merges\": %d, \"seconds\": %.3f}\n",
               o.type == QAI_TOKTRAIN_SPM ? "bpe" : "bytebpe", nv, (unsigned long long)s.n_bytes,
               (unsigned long long)s.n_words, (unsigned long long)s.n_unique, s.n_chars, s.n_merges, secs);
    } else {
        printf("%s: %d tokens (%s) from %llu bytes, %llu words (%llu distinct), %d merges in %.2f s\n", out, nv,
               o.type == QAI_TOKTRAIN_SPM ? "bpe" : "bytebpe", (unsigned long long)s.n_bytes,
               (unsigned long long)s.n_words, (unsigned long long)s.n_unique, s.n_merges, secs);
        if (nv < o.vocab_size)
            fprintf(stderr, "qai: tokenizer: the text ran out of pairs to merge: %d tokens instead of %d\n", nv,
                    o.vocab_size);
    }
    rc = 0;
    goto done;
missing:
    rc = cli_usage_error("tokenizer", "%s needs a value", cli_missing_value);
done:
    free(files);
    free(user);
    free(ctrl);
    return rc;
}

static const struct {
    const char *name;
    int (*fn)(int, char **);
} subcommands[] = {
    {"train", train},
};

int cmd_tokenizer(int argc, char **argv) {
    if (argc < 2 || cli_flag(argv[1], "-h", "--help")) {
        fputs(usage_text, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
        if (!strcmp(argv[1], subcommands[i].name)) return subcommands[i].fn(argc - 1, argv + 1);
    return cli_usage_error("tokenizer", "unknown subcommand '%s' (train)", argv[1]);
}
