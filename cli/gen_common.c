/* Shared model/sampling flags of run and chat. */
#include "gen_common.h"

#include <string.h>
#include <time.h>
#include <unistd.h>

const char *gen_opts_help =
    "  -m, --model FILE         GGUF model (required)\n"
    "  -n, --n-predict N        most tokens to generate (-1: until end of text or context)\n"
    "  -t, --threads N          threads (default: all CPUs)\n"
    "  -c, --ctx-size N         context size in tokens (default: the model's, at most 4096)\n"
    "      --kv-type T          KV cache element type: f16 (default) or f32\n"
    "      --temp T             temperature; 0 is greedy (default 0.8)\n"
    "      --top-k K            keep the K most likely tokens (default 40, 0 = off)\n"
    "      --top-p P            keep the smallest set with probability >= P (default 0.95, 1 = off)\n"
    "      --min-p M            drop tokens below M × the best probability (default 0.05, 0 = off)\n"
    "      --repeat-penalty R   penalize recent tokens (default 1.0 = off)\n"
    "      --repeat-last-n N    window of recent tokens for penalties (default 64, -1 = all)\n"
    "      --frequency-penalty F, --presence-penalty P   OpenAI-style penalties (default 0)\n"
    "      --seed S             random seed (default: random; printed with -v)\n";

void gen_opts_init(gen_opts *o, int n_predict_default) {
    memset(o, 0, sizeof *o);
    o->n_predict = n_predict_default;
    o->kv_type = QAI_TYPE_F16;
    o->sp = qai_sampler_default_params();
    o->sp.seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
}

int gen_opts_parse(const char *cmd, gen_opts *o, int argc, char **argv, int *i) {
    const char *v = NULL, *flag = argv[*i];
    long long iv;
    double fv;
#define INTFLAG(s, l, lo, hi, dst)                                                                                     \
    if (cli_value(argc, argv, i, s, l, &v)) {                                                                          \
        if (!v || !cli_parse_int(v, lo, hi, &iv)) {                                                                    \
            cli_usage_error(cmd, "%s needs an integer in [%lld, %lld]", flag, (long long)(lo), (long long)(hi));       \
            return 2;                                                                                                  \
        }                                                                                                              \
        dst = (int)iv;                                                                                                 \
        return 1;                                                                                                      \
    }
#define FLOATFLAG(l, lo, hi, dst)                                                                                      \
    if (cli_value(argc, argv, i, NULL, l, &v)) {                                                                       \
        if (!v || !cli_parse_float(v, &fv) || fv < (lo) || fv > (hi)) {                                              \
            cli_usage_error(cmd, "%s needs a number in [%g, %g]", flag, (double)(lo), (double)(hi));                   \
            return 2;                                                                                                  \
        }                                                                                                              \
        dst = (float)fv;                                                                                               \
        return 1;                                                                                                      \
    }
    if (cli_value(argc, argv, i, "-m", "--model", &v)) {
        if (!v) {
            cli_usage_error(cmd, "%s needs a file", flag);
            return 2;
        }
        o->model = v;
        return 1;
    }
    INTFLAG("-n", "--n-predict", -1, 1 << 30, o->n_predict)
    INTFLAG("-t", "--threads", 1, 512, o->n_threads)
    INTFLAG("-c", "--ctx-size", 1, 1 << 20, o->n_ctx)
    INTFLAG(NULL, "--top-k", 0, 1 << 30, o->sp.top_k)
    INTFLAG(NULL, "--repeat-last-n", -1, 1 << 20, o->sp.repeat_last_n)
    FLOATFLAG("--temp", 0, 100, o->sp.temp)
    FLOATFLAG("--top-p", 0, 1, o->sp.top_p)
    FLOATFLAG("--min-p", 0, 1, o->sp.min_p)
    FLOATFLAG("--repeat-penalty", 0.01, 100, o->sp.repeat_penalty)
    FLOATFLAG("--frequency-penalty", -2, 2, o->sp.freq_penalty)
    FLOATFLAG("--presence-penalty", -2, 2, o->sp.presence_penalty)
    if (cli_value(argc, argv, i, NULL, "--kv-type", &v)) {
        if (!v || qai_kv_type_parse(v, &o->kv_type)) {
            cli_usage_error(cmd, "--kv-type needs f16 or f32");
            return 2;
        }
        return 1;
    }
    if (cli_value(argc, argv, i, NULL, "--seed", &v)) {
        if (!v || !cli_parse_int(v, 0, INT64_MAX, &iv)) {
            cli_usage_error(cmd, "--seed needs a non-negative integer");
            return 2;
        }
        o->sp.seed = (uint64_t)iv;
        o->seed_given = true;
        return 1;
    }
#undef INTFLAG
#undef FLOATFLAG
    return 0;
}

int gen_open(const char *cmd, const gen_opts *o, qai_model **m, qai_context **ctx) {
    *m = NULL;
    *ctx = NULL;
    if (qai_model_open(o->model, m) != QAI_OK) return cli_fail_last(cmd);
    qai_context_params cp = qai_context_default_params();
    cp.n_ctx = o->n_ctx;
    cp.n_threads = o->n_threads;
    cp.kv_type = o->kv_type;
    if (qai_context_new(*m, &cp, ctx) != QAI_OK) {
        qai_model_close(*m);
        *m = NULL;
        return cli_fail_last(cmd);
    }
    return 0;
}
