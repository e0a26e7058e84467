/* The retrieval flags `qai search` and `qai rag` share, parsed one way:
 * --mode bm25|dense|hybrid, --fusion rrf|weighted, --dense-weight W (implies
 * weighted), --filter KEY=VALUE (repeatable), --embed-model FILE, --rerank
 * MODEL, --rerank-k N, --data-dir DIR. */
#ifndef QAI_CLI_RETRIEVAL_H
#define QAI_CLI_RETRIEVAL_H

#include "qai/collection.h"

typedef struct {
    qai_search_params *sp;    /* the command's: mode, fusion, filters and embed_model are set here */
    qai_meta_filter *filters; /* sp->filters points here; keys are allocated */
    const char *rerank_model; /* NULL: no reranking */
    int rerank_k;             /* candidates reranked (default 30) */
    const char *data_dir;
} cli_retrieval;

/* For a command line of argc words; returns false when out of memory. */
bool cli_retrieval_init(cli_retrieval *r, qai_search_params *sp, int argc);
/* Whether argv[*i] is one of these flags (its value taken too); *rc is then
 * 0, or the exit code of an error already printed for cmd (2 bad usage, 1
 * out of memory). */
bool cli_retrieval_flag(cli_retrieval *r, const char *cmd, int argc, char **argv, int *i, int *rc);
void cli_retrieval_free(cli_retrieval *r);

#endif
