/* qai data — token datasets for training: prepare (text into shards + manifest)
 * and info (what a dataset holds, optionally re-hashing its shards). */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "qai/data.h"

static const char *usage_text =
    "usage: qai data prepare --tokenizer TOK.gguf [options] INPUT... -o DIR\n"
    "       qai data info [--verify] [--json] DIR\n"
    "\n"
    "prepare: tokenizes text, Markdown and JSONL into token shards plus a\n"
    "manifest.json that records every input file's sha256 and size, the\n"
    "tokenizer's sha256, token and document counts per split, the shards'\n"
    "sha256 and a manifest hash. INPUTs are files or directories; directories are\n"
    "walked recursively in name order, taking *.txt, *.text, *.md, *.markdown,\n"
    "*.rst and *.jsonl (a JSONL line's \"text\" field is one document), and man\n"
    "pages (roff, also .gz), HTML and CSV through qai ingest's extractors (a man\n"
    "page that only links to another is skipped). Each\n"
    "document is written as [BOS] tokens EOS. Documents go to the validation\n"
    "split by a hash of their text and the seed, so adding inputs never moves a\n"
    "document between splits. The same inputs, tokenizer and options always give\n"
    "byte-identical shards and manifest. Everything is written to a temporary\n"
    "directory that is renamed to DIR at the end: a failure leaves nothing behind.\n"
    "\n"
    "  --tokenizer FILE    GGUF file with the tokenizer (vocab-only is enough)\n"
    "  -o, --output DIR    the dataset directory (must not exist or be empty)\n"
    "  --val F             fraction of documents for validation, 0..0.5 (default 0.01)\n"
    "  --seed N            seed of the split hash (default 0)\n"
    "  --shard-tokens N    tokens per shard file (default 67108864)\n"
    "  --docs file|blank|line\n"
    "                      how text and Markdown files are cut into documents: the\n"
    "                      whole file (default), paragraphs between blank lines,\n"
    "                      or every non-empty line\n"
    "  -t, --threads N     tokenizing threads (default: all CPUs; output does not\n"
    "                      depend on it)\n"
    "  --skip-bad          skip binary or invalid UTF-8 files and bad JSONL lines\n"
    "                      with a warning instead of failing\n"
    "  --force             replace DIR if it holds something\n"
    "  --json              print the result as JSON\n"
    "\n"
    "info: prints a dataset's vocabulary, hashes, token and document counts.\n"
    "  --verify            also re-hash every shard against the manifest\n"
    "  --json              print {\"n_vocab\", \"bos\", \"eos\", \"token_bytes\",\n"
    "                      \"tokenizer_sha256\", \"manifest_hash\", \"train\": {\"tokens\",\n"
    "                      \"docs\", \"shards\"}, \"val\": {...}}\n"
    "\n"
    "  -h, --help          show this help\n"
    "\n"
    "examples:\n"
    "  qai data prepare --tokenizer tok.gguf --val 0.01 notes/ book.md chats.jsonl -o data/\n"
    "  qai data info --verify data/\n"
    "\n"
    "exit codes: 0 ok, 1 failed (bad input, unreadable tokenizer, verification\n"
    "failed), 2 bad usage\n";

static int prepare(int argc, char **argv) {
    qai_data_prepare_opts o;
    qai_data_prepare_opts_init(&o);
    o.progress = true;
    const char *out = NULL;
    bool json = false;
    const char **inputs = calloc((size_t)argc + 1, sizeof *inputs);
    if (!inputs) return cli_fail("data", "out of memory");
    size_t n_in = 0;
    int rc = 2;
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        long long n;
        if (argv[i][0] != '-' || !argv[i][1]) {
            inputs[n_in++] = argv[i];
            continue;
        }
        if (cli_flag(argv[i], "-h", "--help")) {
            fputs(usage_text, stdout);
            rc = 0;
            goto done;
        }
        if (cli_value(argc, argv, &i, NULL, "--tokenizer", &v)) {
            if (!v) goto missing;
            o.tokenizer = v;
        } else if (cli_value(argc, argv, &i, "-o", "--output", &v)) {
            if (!v) goto missing;
            out = v;
        } else if (cli_value(argc, argv, &i, NULL, "--val", &v)) {
            double f;
            if (!v) goto missing;
            if (!cli_parse_float(v, &f) || !(f >= 0 && f <= 0.5)) {
                rc = cli_usage_error("data", "--val must be a fraction in [0, 0.5], not '%s'", v);
                goto done;
            }
            o.val_fraction = f;
        } else if (cli_value(argc, argv, &i, NULL, "--seed", &v)) {
            char *end;
            if (!v) goto missing;
            o.seed = strtoull(v, &end, 10);
            if (!*v || *end || *v == '-') {
                rc = cli_usage_error("data", "--seed must be a non-negative integer, not '%s'", v);
                goto done;
            }
        } else if (cli_value(argc, argv, &i, NULL, "--shard-tokens", &v)) {
            if (!v) goto missing;
            if (!cli_parse_int(v, 1, 1ll << 52, &n)) {
                rc = cli_usage_error("data", "--shard-tokens must be a positive integer, not '%s'", v);
                goto done;
            }
            o.shard_tokens = (uint64_t)n;
        } else if (cli_value(argc, argv, &i, NULL, "--docs", &v)) {
            if (!v) goto missing;
            if (!strcmp(v, "file")) o.doc_split = QAI_DOCS_FILE;
            else if (!strcmp(v, "blank")) o.doc_split = QAI_DOCS_BLANK;
            else if (!strcmp(v, "line")) o.doc_split = QAI_DOCS_LINE;
            else {
                rc = cli_usage_error("data", "--docs must be file, blank or line, not '%s'", v);
                goto done;
            }
        } else if (cli_value(argc, argv, &i, "-t", "--threads", &v)) {
            if (!v) goto missing;
            if (!cli_parse_int(v, 1, 1024, &n)) {
                rc = cli_usage_error("data", "--threads must be an integer in 1..1024, not '%s'", v);
                goto done;
            }
            o.n_threads = (int)n;
        } else if (cli_flag(argv[i], NULL, "--skip-bad")) o.skip_bad = true;
        else if (cli_flag(argv[i], NULL, "--force")) o.force = true;
        else if (cli_flag(argv[i], NULL, "--json")) json = true;
        else {
            rc = cli_usage_error("data", "unknown option '%s'", argv[i]);
            goto done;
        }
    }
    if (!o.tokenizer) {
        rc = cli_usage_error("data", "prepare: --tokenizer FILE is required");
        goto done;
    }
    if (!out) {
        rc = cli_usage_error("data", "prepare: -o DIR is required");
        goto done;
    }
    if (!n_in) {
        rc = cli_usage_error("data", "prepare: no INPUT files or directories given");
        goto done;
    }
    qai_data_prepare_result r;
    if (qai_data_prepare(inputs, n_in, out, &o, &r)) {
        rc = cli_fail_last("data");
        goto done;
    }
    if (json) {
        printf("{\"output\": ");
        cli_json_string(stdout, out, strlen(out), false);
        printf(", \"files\": %llu, \"skipped_files\": %llu, \"bytes\": %llu, \"train\": {\"docs\": %llu, \"tokens\": "
               "%llu}, \"val\": {\"docs\": %llu, \"tokens\": %llu}, \"manifest_hash\": \"%s\"}\n",
               (unsigned long long)r.n_files, (unsigned long long)r.n_skipped_files, (unsigned long long)r.n_bytes,
               (unsigned long long)r.n_docs[0], (unsigned long long)r.n_tokens[0], (unsigned long long)r.n_docs[1],
               (unsigned long long)r.n_tokens[1], r.manifest_hash);
    } else {
        printf("%s: %llu files%s, %llu bytes -> train %llu docs %llu tokens, val %llu docs %llu tokens\n", out,
               (unsigned long long)r.n_files, r.n_skipped_files ? " (some skipped)" : "", (unsigned long long)r.n_bytes,
               (unsigned long long)r.n_docs[0], (unsigned long long)r.n_tokens[0], (unsigned long long)r.n_docs[1],
               (unsigned long long)r.n_tokens[1]);
        printf("manifest hash %s\n", r.manifest_hash);
    }
    rc = 0;
    goto done;
missing:
    rc = cli_usage_error("data", "%s needs a value", cli_missing_value);
done:
    free(inputs);
    return rc;
}

static int info(int argc, char **argv) {
    const char *dir = NULL;
    bool verify = false, json = false;
    for (int i = 1; i < argc; i++) {
        if (cli_flag(argv[i], "-h", "--help")) {
            fputs(usage_text, stdout);
            return 0;
        } else if (cli_flag(argv[i], NULL, "--verify")) verify = true;
        else if (cli_flag(argv[i], NULL, "--json")) json = true;
        else if (argv[i][0] == '-') return cli_usage_error("data", "unknown option '%s'", argv[i]);
        else if (dir) return cli_usage_error("data", "info: one DIR only");
        else dir = argv[i];
    }
    if (!dir) return cli_usage_error("data", "info: DIR is required");
    qai_dataset *ds;
    if (qai_dataset_open(dir, &ds)) return cli_fail_last("data");
    if (verify && qai_dataset_verify(ds)) {
        qai_dataset_close(ds);
        return cli_fail_last("data");
    }
    if (json) {
        printf("{\"n_vocab\": %d, \"bos\": %d, \"eos\": %d, \"token_bytes\": %d, \"tokenizer_sha256\": \"%s\", "
               "\"manifest_hash\": \"%s\"",
               qai_dataset_n_vocab(ds), qai_dataset_bos(ds), qai_dataset_eos(ds), qai_dataset_token_bytes(ds),
               qai_dataset_tokenizer_hash(ds), qai_dataset_manifest_hash(ds));
        for (int s = 0; s < 2; s++)
            printf(", \"%s\": {\"tokens\": %llu, \"docs\": %llu, \"shards\": %zu}", qai_split_name((qai_split)s),
                   (unsigned long long)qai_dataset_n_tokens(ds, (qai_split)s),
                   (unsigned long long)qai_dataset_n_docs(ds, (qai_split)s), qai_dataset_n_shards(ds, (qai_split)s));
        printf("}\n");
    } else {
        printf("dataset        %s\n", dir);
        printf("vocabulary     %d tokens (%d-byte ids), bos %d, eos %d\n", qai_dataset_n_vocab(ds),
               qai_dataset_token_bytes(ds), qai_dataset_bos(ds), qai_dataset_eos(ds));
        printf("tokenizer      sha256 %s\n", qai_dataset_tokenizer_hash(ds));
        printf("manifest hash  %s\n", qai_dataset_manifest_hash(ds));
        for (int s = 0; s < 2; s++)
            printf("%-14s %llu tokens, %llu documents, %zu shards\n", qai_split_name((qai_split)s),
                   (unsigned long long)qai_dataset_n_tokens(ds, (qai_split)s),
                   (unsigned long long)qai_dataset_n_docs(ds, (qai_split)s), qai_dataset_n_shards(ds, (qai_split)s));
        if (verify) printf("verified       every shard matches its sha256\n");
    }
    qai_dataset_close(ds);
    return 0;
}

int cmd_data(int argc, char **argv) {
    if (argc < 2 || cli_flag(argv[1], "-h", "--help")) {
        fputs(usage_text, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "prepare")) return prepare(argc - 1, argv + 1);
    if (!strcmp(argv[1], "info")) return info(argc - 1, argv + 1);
    return cli_usage_error("data", "unknown subcommand '%s' (prepare, info)", argv[1]);
}
