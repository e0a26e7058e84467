/* qai bench — prompt-processing and generation speed, measured the way
 * llama-bench measures it (pp: N random tokens in one batch from an empty
 * cache; tg: N tokens one at a time from an empty cache; a warm-up run first;
 * mean ± sd over repetitions), with llama-bench-shaped JSON. */
#include <math.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "qai/model.h"

static const char *usage =
    "usage: qai bench -m MODEL.gguf [-t THREADS[,..]] [-p N[,..]] [-n N[,..]] [-r REPS] [--kv-type f16|f32] [--json]\n"
    "\n"
    "Measures prompt processing (ppN: N random tokens in one batch) and generation\n"
    "(tgN: N tokens one at a time) in tokens/s, mean ± sd over REPS runs after a\n"
    "warm-up, like llama-bench. Lists run every combination; -p 0 or -n 0 skips.\n"
    "\n"
    "  -t, --threads LIST   thread counts (default: all CPUs)\n"
    "  -p, --n-prompt LIST  prompt lengths (default 512)\n"
    "  -n, --n-gen LIST     generation lengths (default 128)\n"
    "  -r, --repetitions N  runs per test (default 5)\n"
    "  -b, --batch-size N   tokens per forward pass in pp (default 512)\n"
    "      --kv-type T      KV cache element type, f16 (default) or f32\n"
    "  -o json, --json      print a JSON array shaped like llama-bench's -o json (n_prompt,\n"
    "                       n_gen, n_threads, avg_ts, stddev_ts, avg_ns, samples_ts, ...)\n"
    "\n"
    "example: qai bench -m tiny-q8_0.gguf -t 2 -p 512 -n 128 -r 3\n";

#define MAXL 16

static int parse_list(const char *s, int *out, int lo) {
    int n = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *save, *tok = strtok_r(buf, ",", &save); tok && n < MAXL; tok = strtok_r(NULL, ",", &save)) {
        long long v;
        if (!cli_parse_int(tok, lo, 1 << 20, &v)) return -1;
        out[n++] = (int)v;
    }
    return n;
}

typedef struct {
    int n_prompt, n_gen, n_threads;
    double samples_ns[64];
    int reps;
} result;

static void stats(const double *x, int n, double *mean, double *sd) {
    double s = 0, s2 = 0;
    for (int i = 0; i < n; i++) s += x[i];
    *mean = s / n;
    for (int i = 0; i < n; i++) s2 += (x[i] - *mean) * (x[i] - *mean);
    *sd = n > 1 ? sqrt(s2 / (n - 1)) : 0;
}

/* A "1B"-style size label as llama.cpp prints it. */
static void size_label(uint64_t n, char *buf, size_t cap) {
    if (n >= 1000000000ull) snprintf(buf, cap, "%.0fB", n / 1e9);
    else if (n >= 1000000ull) snprintf(buf, cap, "%.0fM", n / 1e6);
    else snprintf(buf, cap, "%.0fK", n / 1e3);
}

/* The most common type of the 2-D weights, upper-case like llama.cpp ("Q8_0"). */
static void dominant_type(const qai_gguf *g, char *buf, size_t cap) {
    uint64_t count[QAI_TYPE_COUNT] = {0};
    for (int64_t i = 0; i < qai_gguf_n_tensors(g); i++) {
        const qai_gguf_tensor *t = qai_gguf_tensor_at(g, i);
        if (t->n_dims >= 2 && (int)t->type < QAI_TYPE_COUNT) count[t->type] += (uint64_t)t->ne[0] * (uint64_t)t->ne[1];
    }
    int best = 0;
    for (int i = 1; i < QAI_TYPE_COUNT; i++)
        if (count[i] > count[best]) best = i;
    const qai_type_traits *tr = qai_type_info(best);
    snprintf(buf, cap, "%s", tr ? tr->name : "?");
    for (char *p = buf; *p; p++)
        if (*p >= 'a' && *p <= 'z') *p = (char)(*p - 32);
}

int cmd_bench(int argc, char **argv) {
    const char *model = NULL;
    int threads[MAXL] = {0}, nt = 1, prompts[MAXL] = {512}, np = 1, gens[MAXL] = {128}, ng = 1, reps = 5,
        n_batch = 512;
    bool json = false;
    qai_type kv_type = QAI_TYPE_F16;
    threads[0] = qai_cpu_count();
    for (int i = 1; i < argc; i++) {
        const char *v, *a = argv[i];
        long long iv;
        if (cli_flag(a, "-h", "--help")) {
            fputs(usage, stdout);
            return 0;
        } else if (cli_value(argc, argv, &i, "-m", "--model", &v)) {
            if (!v) return cli_usage_error("bench", "-m needs a file");
            model = v;
        } else if (cli_value(argc, argv, &i, "-t", "--threads", &v)) {
            if (!v || (nt = parse_list(v, threads, 1)) <= 0) return cli_usage_error("bench", "-t needs a list of thread counts");
        } else if (cli_value(argc, argv, &i, "-p", "--n-prompt", &v)) {
            if (!v || (np = parse_list(v, prompts, 0)) <= 0) return cli_usage_error("bench", "-p needs a list of lengths");
        } else if (cli_value(argc, argv, &i, "-n", "--n-gen", &v)) {
            if (!v || (ng = parse_list(v, gens, 0)) <= 0) return cli_usage_error("bench", "-n needs a list of lengths");
        } else if (cli_value(argc, argv, &i, "-r", "--repetitions", &v)) {
            if (!v || !cli_parse_int(v, 1, 64, &iv)) return cli_usage_error("bench", "-r needs 1..64");
            reps = (int)iv;
        } else if (cli_value(argc, argv, &i, "-b", "--batch-size", &v)) {
            if (!v || !cli_parse_int(v, 1, 1 << 16, &iv)) return cli_usage_error("bench", "-b needs a positive integer");
            n_batch = (int)iv;
        } else if (cli_value(argc, argv, &i, NULL, "--kv-type", &v)) {
            if (!v || qai_kv_type_parse(v, &kv_type)) return cli_usage_error("bench", "--kv-type needs f16 or f32");
        } else if (cli_value(argc, argv, &i, "-o", "--output", &v)) {
            if (!v || strcmp(v, "json")) return cli_usage_error("bench", "-o supports only 'json'");
            json = true;
        } else if (cli_flag(a, NULL, "--json")) json = true;
        else return cli_usage_error("bench", "unknown option '%s'", a);
    }
    if (!model) return cli_usage_error("bench", "no model given (-m MODEL.gguf)");
    qai_model *m;
    if (qai_model_open(model, &m)) return cli_fail_last("bench");
    const qai_model_info *hp = qai_model_get_info(m);
    int max_p = 0, max_g = 0;
    for (int i = 0; i < np; i++) max_p = prompts[i] > max_p ? prompts[i] : max_p;
    for (int i = 0; i < ng; i++) max_g = gens[i] > max_g ? gens[i] : max_g;
    int n_ctx = (max_p > max_g ? max_p : max_g) + 1;
    int32_t *toks = qai_malloc((size_t)n_ctx * sizeof(int32_t));
    result *res = qai_calloc((size_t)nt * (np + ng), sizeof(result));
    int nres = 0, rc = 0;
    if (!toks || !res) {
        rc = cli_fail_last("bench");
        goto out;
    }
    qai_rng rng;
    qai_rng_seed(&rng, 1234);
    for (int ti = 0; ti < nt && rc == 0; ti++) {
        qai_context_params cp = qai_context_default_params();
        cp.n_ctx = n_ctx;
        cp.n_batch = n_batch;
        cp.n_threads = threads[ti];
        cp.kv_type = kv_type;
        qai_context *ctx;
        if (qai_context_new(m, &cp, &ctx)) {
            rc = cli_fail_last("bench");
            break;
        }
        for (int kind = 0; kind < 2 && rc == 0; kind++) {
            int nlen = kind == 0 ? np : ng;
            for (int li = 0; li < nlen && rc == 0; li++) {
                int n = kind == 0 ? prompts[li] : gens[li];
                if (n == 0) continue;
                result *r = &res[nres++];
                r->n_threads = qai_context_n_threads(ctx);
                r->n_prompt = kind == 0 ? n : 0;
                r->n_gen = kind == 1 ? n : 0;
                r->reps = reps;
                for (int rep = -1; rep < reps && rc == 0; rep++) { /* rep -1: warm-up */
                    for (int k = 0; k < n; k++) toks[k] = (int32_t)(qai_rng_u64(&rng) % (uint64_t)hp->n_vocab);
                    qai_kv_truncate(ctx, 0, 0);
                    uint64_t t0 = qai_time_ns();
                    qai_status st = QAI_OK;
                    if (kind == 0) st = qai_decode_tokens(ctx, 0, 0, toks, n);
                    else
                        for (int k = 0; k < n && !st; k++) st = qai_decode_tokens(ctx, 0, k, &toks[k], 1);
                    uint64_t dt = qai_time_ns() - t0;
                    if (st) rc = cli_fail_last("bench");
                    if (rep >= 0) r->samples_ns[rep] = (double)dt;
                }
                if (!json && rc == 0) {
                    double ts[64], mean, sd;
                    for (int k = 0; k < reps; k++) ts[k] = n * 1e9 / r->samples_ns[k];
                    stats(ts, reps, &mean, &sd);
                    fprintf(stderr, "qai: bench: %s%d with %d threads: %.2f ± %.2f tok/s\n", kind ? "tg" : "pp", n,
                            r->n_threads, mean, sd);
                }
            }
        }
        qai_context_free(ctx);
    }
    if (rc) goto out;
    char label[32], tname[16];
    size_label(hp->n_params, label, sizeof label);
    dominant_type(qai_model_gguf(m), tname, sizeof tname);
    char mtype[96];
    snprintf(mtype, sizeof mtype, "%s %s %s", hp->arch, label, tname);
    size_t fsize = qai_gguf_file_size(qai_model_gguf(m));
    if (json) {
        char when[32];
        time_t now = time(NULL);
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
        printf("[\n");
        for (int i = 0; i < nres; i++) {
            result *r = &res[i];
            int n = r->n_prompt + r->n_gen;
            double ts[64], mts, sts, mns, sns;
            for (int k = 0; k < r->reps; k++) ts[k] = n * 1e9 / r->samples_ns[k];
            stats(ts, r->reps, &mts, &sts);
            stats(r->samples_ns, r->reps, &mns, &sns);
            printf("  {\n    \"build_commit\": \"qai-%s\",\n    \"cpu_info\": \"%s\",\n    \"backends\": \"CPU\",\n",
                   QAI_VERSION_STRING, qai_kernels_describe());
            printf("    \"model_filename\": ");
            cli_json_string(stdout, model, strlen(model), false);
            printf(",\n    \"model_type\": ");
            cli_json_string(stdout, mtype, strlen(mtype), false);
            printf(",\n    \"model_size\": %zu,\n    \"model_n_params\": %llu,\n    \"model_weight_bytes\": %llu,\n",
                   fsize, (unsigned long long)hp->n_params, (unsigned long long)qai_model_weight_bytes(m));
            printf("    \"n_batch\": %d,\n    \"n_ubatch\": %d,\n    \"n_threads\": %d,\n    \"type_k\": \"%s\",\n"
                   "    \"type_v\": \"%s\",\n    \"use_mmap\": true,\n",
                   n_batch, n_batch, r->n_threads, qai_type_info(kv_type)->name, qai_type_info(kv_type)->name);
            printf("    \"n_prompt\": %d,\n    \"n_gen\": %d,\n    \"test_time\": \"%s\",\n", r->n_prompt, r->n_gen,
                   when);
            printf("    \"avg_ns\": %.0f,\n    \"stddev_ns\": %.0f,\n    \"avg_ts\": %.6f,\n    \"stddev_ts\": %.6f,\n",
                   mns, sns, mts, sts);
            printf("    \"samples_ns\": [");
            for (int k = 0; k < r->reps; k++) printf("%s%.0f", k ? ", " : " ", r->samples_ns[k]);
            printf(" ],\n    \"samples_ts\": [");
            for (int k = 0; k < r->reps; k++) printf("%s%.6f", k ? ", " : " ", ts[k]);
            printf(" ]\n  }%s\n", i + 1 < nres ? "," : "");
        }
        printf("]\n");
    } else {
        printf("| model | size | params | backend | threads | test | t/s |\n");
        printf("| --- | ---: | ---: | --- | ---: | ---: | ---: |\n");
        for (int i = 0; i < nres; i++) {
            result *r = &res[i];
            int n = r->n_prompt + r->n_gen;
            double ts[64], mts, sts;
            for (int k = 0; k < r->reps; k++) ts[k] = n * 1e9 / r->samples_ns[k];
            stats(ts, r->reps, &mts, &sts);
            printf("| %s | %.2f MiB | %.2f M | CPU | %d | %s%d | %.2f ± %.2f |\n", mtype, fsize / 1048576.0,
                   hp->n_params / 1e6, r->n_threads, r->n_prompt ? "pp" : "tg", n, mts, sts);
        }
    }
out:
    qai_free(toks);
    qai_free(res);
    qai_model_close(m);
    return rc;
}
