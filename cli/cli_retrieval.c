/* The retrieval flags of qai search and qai rag (cli_retrieval.h). */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_retrieval.h"

bool cli_retrieval_init(cli_retrieval *r, qai_search_params *sp, int argc) {
    memset(r, 0, sizeof *r);
    r->sp = sp;
    r->rerank_k = 30;
    r->filters = calloc((size_t)argc + 1, sizeof *r->filters);
    sp->filters = r->filters;
    sp->n_filters = 0;
    return r->filters != NULL;
}

bool cli_retrieval_flag(cli_retrieval *r, const char *cmd, int argc, char **argv, int *i, int *rc) {
    const char *v, *a = argv[*i];
    *rc = 0;
    long long iv;
    qai_search_params *sp = r->sp;
    if (cli_value(argc, argv, i, NULL, "--mode", &v)) {
        sp->mode_given = true;
        if (!qai_retrieve_mode_from_name(v, &sp->mode)) return *rc = cli_usage_error(cmd, "--mode needs bm25, dense or hybrid"), true;
    } else if (cli_value(argc, argv, i, NULL, "--fusion", &v)) {
        if (!qai_fusion_from_name(v, &sp->fusion)) return *rc = cli_usage_error(cmd, "--fusion needs rrf or weighted"), true;
    } else if (cli_value(argc, argv, i, NULL, "--dense-weight", &v)) {
        double w;
        if (!v || !cli_parse_float(v, &w) || !(w >= 0 && w <= 1))
            return *rc = cli_usage_error(cmd, "--dense-weight needs a number in [0, 1]"), true;
        sp->dense_weight = (float)w;
        sp->fusion = QAI_FUSE_WEIGHTED;
    } else if (cli_value(argc, argv, i, NULL, "--filter", &v)) {
        const char *eq = v ? strchr(v, '=') : NULL;
        if (!eq || eq == v) return *rc = cli_usage_error(cmd, "--filter needs KEY=VALUE"), true;
        char *k = strndup(v, (size_t)(eq - v));
        if (!k) return *rc = cli_fail(cmd, "out of memory"), true;
        r->filters[sp->n_filters].key = k;
        r->filters[sp->n_filters].value = eq + 1;
        sp->n_filters++;
    } else if (cli_value(argc, argv, i, NULL, "--embed-model", &v)) {
        if (!v || !*v) return *rc = cli_usage_error(cmd, "%s needs a GGUF file", a), true;
        sp->embed_model = v;
    } else if (cli_value(argc, argv, i, NULL, "--rerank", &v)) {
        if (!v || !*v) return *rc = cli_usage_error(cmd, "--rerank needs a GGUF model"), true;
        r->rerank_model = v;
    } else if (cli_value(argc, argv, i, NULL, "--rerank-k", &v)) {
        if (!v || !cli_parse_int(v, 1, 10000, &iv)) return *rc = cli_usage_error(cmd, "--rerank-k needs an integer in [1, 10000]"), true;
        r->rerank_k = (int)iv;
    } else if (cli_value(argc, argv, i, NULL, "--data-dir", &v)) {
        if (!v || !*v) return *rc = cli_usage_error(cmd, "--data-dir needs a directory"), true;
        r->data_dir = v;
    } else
        return false;
    return true;
}

void cli_retrieval_free(cli_retrieval *r) {
    for (int k = 0; r->sp && k < r->sp->n_filters; k++) free((char *)r->filters[k].key);
    free(r->filters);
    memset(r, 0, sizeof *r);
}
