/* qai bundle create — pack a model, its card, dataset manifests, evaluation
 * results and an SBOM into one bundle file (qai/bundle.h). */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "qai/bundle.h"

static const char *usage_text =
    "usage: qai bundle create --model M.gguf [--tokenizer T] [--card card.yaml]\n"
    "                         [--dataset-manifest manifest.json ...] [--eval results.json ...]\n"
    "                         [--name N] [--version V] [--policy-set P] [--level L] -o OUT.qai\n"
    "\n"
    "Writes one bundle file: a zstd-compressed tar archive holding manifest.json (the\n"
    "ModelBundle manifest with the SHA-256 and size of every member), the model, the\n"
    "tokenizer, the model card, dataset manifests, evaluation results and sbom.json.\n"
    "The file is written atomically (temporary file, fsync, rename).\n"
    "\n"
    "  --model FILE             the GGUF model (required)\n"
    "  --tokenizer FILE         a tokenizer file to carry along\n"
    "  --card FILE              the model card (YAML); must have purpose, intended_use,\n"
    "                           not_intended_use, slos, datasets (name + sha256),\n"
    "                           training (date + methods), limitations,\n"
    "                           safety_mitigations and contacts\n"
    "  --dataset-manifest FILE  a dataset manifest (JSON; qai data's manifest.json is\n"
    "                           validated in full); repeatable\n"
    "  --eval FILE              evaluation results (JSON: {\"suite\", \"metrics\": {...},\n"
    "                           \"passed\"}); repeatable\n"
    "  --name N, --version V    the model's name and version ([A-Za-z0-9._-]); default\n"
    "                           the GGUF's general.name / general.version\n"
    "  --policy-set P           safety.policySet in the manifest (default: default)\n"
    "  --level L                zstd level 1..19 (default 3)\n"
    "  -o, --output FILE        the bundle to write (NAME-VERSION.qai by convention)\n"
    "  --json                   print {\"bundle\", \"name\", \"version\", \"model_sha256\"}\n"
    "  -h, --help               show this help\n"
    "\n"
    "The creation time is $SOURCE_DATE_EPOCH when set (reproducible bundles), else now.\n"
    "\n"
    "example:\n"
    "  qai bundle create --model m.gguf --card card.yaml --name demo --version 1.0.0 -o demo-1.0.0.qai\n"
    "\n"
    "exit codes: 0 ok, 1 failed, 2 bad usage\n";

#define MAX_LIST 256

int cmd_bundle(int argc, char **argv) {
    if (argc < 2) return cli_usage_error("bundle", "which subcommand: create?");
    if (cli_flag(argv[1], "-h", "--help")) {
        fputs(usage_text, stdout);
        return 0;
    }
    if (strcmp(argv[1], "create")) return cli_usage_error("bundle", "unknown subcommand '%s'", argv[1]);
    qai_bundle_create_params p = {.tool_version = QAI_VERSION_STRING};
    const char *out = NULL, *datasets[MAX_LIST], *evals[MAX_LIST];
    size_t nd = 0, ne = 0;
    bool json = false;
    for (int i = 2; i < argc; i++) {
        const char *v, *a = argv[i];
        if (cli_flag(a, "-h", "--help")) {
            fputs(usage_text, stdout);
            return 0;
        }
        if (cli_flag(a, NULL, "--json")) json = true;
        else if (cli_value(argc, argv, &i, NULL, "--model", &v)) {
            if (!v) return cli_usage_error("bundle", "--model needs a file");
            p.model_path = v;
        } else if (cli_value(argc, argv, &i, NULL, "--tokenizer", &v)) {
            if (!v) return cli_usage_error("bundle", "--tokenizer needs a file");
            p.tokenizer_path = v;
        } else if (cli_value(argc, argv, &i, NULL, "--card", &v)) {
            if (!v) return cli_usage_error("bundle", "--card needs a file");
            p.card_path = v;
        } else if (cli_value(argc, argv, &i, NULL, "--dataset-manifest", &v)) {
            if (!v) return cli_usage_error("bundle", "--dataset-manifest needs a file");
            if (nd == MAX_LIST) return cli_usage_error("bundle", "at most %d dataset manifests", MAX_LIST);
            datasets[nd++] = v;
        } else if (cli_value(argc, argv, &i, NULL, "--eval", &v)) {
            if (!v) return cli_usage_error("bundle", "--eval needs a file");
            if (ne == MAX_LIST) return cli_usage_error("bundle", "at most %d evaluation files", MAX_LIST);
            evals[ne++] = v;
        } else if (cli_value(argc, argv, &i, NULL, "--name", &v)) {
            if (!v) return cli_usage_error("bundle", "--name needs a value");
            p.name = v;
        } else if (cli_value(argc, argv, &i, NULL, "--version", &v)) {
            if (!v) return cli_usage_error("bundle", "--version needs a value");
            p.version = v;
        } else if (cli_value(argc, argv, &i, NULL, "--policy-set", &v)) {
            if (!v || !*v) return cli_usage_error("bundle", "--policy-set needs a value");
            p.policy_set = v;
        } else if (cli_value(argc, argv, &i, NULL, "--level", &v)) {
            long long l;
            if (!cli_parse_int(v, 1, 19, &l)) return cli_usage_error("bundle", "--level needs 1..19");
            p.compression_level = (int)l;
        } else if (cli_value(argc, argv, &i, "-o", "--output", &v)) {
            if (!v) return cli_usage_error("bundle", "-o needs a file");
            out = v;
        } else if (a[0] == '-') return cli_usage_error("bundle", "unknown option '%s'", a);
        else return cli_usage_error("bundle", "unexpected argument '%s'", a);
    }
    if (!p.model_path) return cli_usage_error("bundle", "no model given (--model M.gguf)");
    if (!out) return cli_usage_error("bundle", "no output given (-o NAME-VERSION.qai)");
    p.dataset_manifests = datasets;
    p.n_datasets = nd;
    p.evals = evals;
    p.n_evals = ne;
    if (qai_bundle_create(&p, out) != QAI_OK) return cli_fail_last("bundle");
    qai_bundle_report r;
    qai_bundle_policy pol = {.no_store = true};
    /* read it back: what was written is what verifies */
    if (qai_bundle_verify(out, &pol, 0, &r) != QAI_OK) return cli_fail_last("bundle");
    if (!r.ok) {
        int rc = cli_fail("bundle", "the bundle just written does not verify: %s", r.problem);
        qai_bundle_report_release(&r);
        return rc;
    }
    if (json) {
        printf("{\"bundle\": ");
        cli_json_string(stdout, out, strlen(out), false);
        printf(", \"name\": \"%s\", \"version\": \"%s\", \"model_sha256\": \"%s\", \"members\": %zu}\n", r.name,
               r.version, r.model_sha256, r.n_members);
    } else
        fprintf(stderr, "qai: bundle: wrote %s (%s %s, %zu members, model sha256 %s)\n", out, r.name, r.version,
                r.n_members, r.model_sha256);
    qai_bundle_report_release(&r);
    return 0;
}
