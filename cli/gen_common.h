/* Flags shared by the commands that load a model and sample from it
 * (run, chat): model, threads, context and the sampling parameters. */
#ifndef QAI_CLI_GEN_COMMON_H
#define QAI_CLI_GEN_COMMON_H

#include "cli.h"
#include "qai/model.h"

typedef struct {
    const char *model;
    int n_threads;
    int n_ctx;
    int n_predict;
    bool seed_given;
    qai_type kv_type; /* --kv-type (default f16) */
    qai_sampler_params sp;
} gen_opts;

void gen_opts_init(gen_opts *o, int n_predict_default);
/* Consumes argv[*i] (and its value) if it is one of the shared flags.
 * Returns 1 if consumed, 0 if not one of them, 2 on a bad value (message printed). */
int gen_opts_parse(const char *cmd, gen_opts *o, int argc, char **argv, int *i);
/* The help text of the shared flags. */
extern const char *gen_opts_help;
/* Opens the model and a context; prints the error and returns 1 on failure. */
int gen_open(const char *cmd, const gen_opts *o, qai_model **m, qai_context **ctx);

#endif
