/* qai search — the best chunks of a collection for a query, by BM25, dense
 * vectors or both fused, optionally reranked by a GGUF model. A thin wrapper
 * over qai_collection_search_rerank. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_retrieval.h"
#include "qai/collection.h"

static const char *usage_text =
    "usage: qai search NAME \"query\" [-k 8] [--mode bm25|dense|hybrid] [--fusion rrf|weighted]\n"
    "                  [--dense-weight W] [--filter key=value]\n"
    "                  [--rerank MODEL.gguf [--rerank-k 30]] [--json]\n"
    "\n"
    "Searches the current version of collection NAME (see qai ingest). Modes: bm25\n"
    "(words), dense (the collection's embedding model; refused with another model)\n"
    "and hybrid (both lists fused); the default is hybrid when the collection has\n"
    "vectors, else bm25. Filters are applied inside the index searches.\n"
    "\n"
    "  -k N                  hits to return (default 8)\n"
    "  --mode M              bm25, dense or hybrid\n"
    "  --fusion F            hybrid: rrf (reciprocal rank fusion, k = 60; default) or\n"
    "                        weighted (min-max normalized scores, summed with weights)\n"
    "  --dense-weight W      weighted fusion (implied): the dense list's weight in [0, 1],\n"
    "                        BM25's is 1 - W (default 0.5)\n"
    "  --filter KEY=VALUE    keep chunks whose KEY matches (repeatable; all must match):\n"
    "                        source=GLOB, type=markdown|man|html|text|jsonl|csv|pdf|MIME,\n"
    "                        lang=en, section=GLOB, title=GLOB, record=ID, or any\n"
    "                        JSONL field / CSV column of the record\n"
    "  --version N           search version N instead of the current one\n"
    "  -m, --embed-model M   the query embedding model when it moved (must be the same file)\n"
    "  --rerank MODEL        re-score the best candidates with a GGUF decoder model by query\n"
    "                        likelihood (the mean log-probability of the query given the\n"
    "                        passage; docs/search.md) and order them by that score\n"
    "  --rerank-k N          candidates to rerank (default 30); the best -k of them are printed\n"
    "  -t, --threads N       threads for the query embedding and the reranker (default: all CPUs)\n"
    "  --data-dir DIR        the data directory (default $QAI_HOME or ~/.local/share/qai)\n"
    "  --json                an array of hits: source, score, span [start, end], text,\n"
    "                        section, title, chunk_id, version, ... (docs/search.md);\n"
    "                        with --rerank also rerank_score and rank_retrieval\n"
    "  -h, --help            show this help\n"
    "\n"
    "example:\n"
    "  qai search manuals \"list directory contents\" -k 3 --filter source='*/man1/*'\n"
    "\n"
    "exit codes: 0 ok, 1 failed, 2 bad usage\n";

static void print_hits_json(const qai_collection *c, const qai_collection_hit *h, int n, bool reranked) {
    printf("[");
    for (int i = 0; i < n; i++) {
        const qai_collection_hit *x = &h[i];
        printf("%s\n  {\"rank\": %d, \"chunk_id\": %llu, \"score\": %.6g, \"source\": ", i ? "," : "", i + 1,
               (unsigned long long)x->chunk_id, (double)x->score);
        cli_json_string(stdout, x->source, strlen(x->source), false);
        printf(", \"span\": [%zu, %zu], \"section\": ", x->start, x->end);
        cli_json_string(stdout, x->section, strlen(x->section), false);
        printf(", \"title\": ");
        if (x->title) cli_json_string(stdout, x->title, strlen(x->title), false);
        else printf("null");
        printf(", \"record_id\": ");
        if (x->record_id) cli_json_string(stdout, x->record_id, strlen(x->record_id), false);
        else printf("null");
        printf(", \"content_type\": ");
        cli_json_string(stdout, x->content_type ? x->content_type : "", x->content_type ? strlen(x->content_type) : 0,
                        false);
        printf(", \"lang\": ");
        cli_json_string(stdout, x->lang ? x->lang : "", x->lang ? strlen(x->lang) : 0, false);
        printf(", \"meta\": %s", x->meta_json ? x->meta_json : "null");
        printf(", \"rank_bm25\": %d, \"rank_dense\": %d, ", x->rank_bm25, x->rank_dense);
        if (x->rank_retrieval) printf("\"rerank_score\": %.6g, \"rank_retrieval\": %d, ", (double)x->rerank_score, x->rank_retrieval);
        else if (reranked) printf("\"rerank_score\": null, \"rank_retrieval\": null, ");
        printf("\"collection\": ");
        cli_json_string(stdout, qai_collection_name(c), strlen(qai_collection_name(c)), false);
        printf(", \"version\": %d, \"text\": ", qai_collection_version(c));
        cli_json_string(stdout, x->text, strlen(x->text), false);
        printf("}");
    }
    printf("%s]\n", n ? "\n" : "");
}

static void print_hits_text(const qai_collection_hit *h, int n) {
    for (int i = 0; i < n; i++) {
        const qai_collection_hit *x = &h[i];
        printf("[%d] %.4f", i + 1, (double)x->score);
        if (x->rank_retrieval) printf("  rerank %.4f (was %d)", (double)x->rerank_score, x->rank_retrieval);
        printf("  %s%s%s  bytes %zu-%zu%s%s\n", x->source,
               x->record_id ? " #" : "", x->record_id ? x->record_id : "", x->start, x->end,
               x->section[0] ? "  " : "", x->section);
        /* the first 300 bytes on one indented line, cut on a character boundary */
        size_t len = strlen(x->text), cut = len < 300 ? len : 300;
        while (cut < len && ((unsigned char)x->text[cut] & 0xC0) == 0x80) cut--;
        fputs("    ", stdout);
        for (size_t k = 0; k < cut; k++) putchar(x->text[k] == '\n' || x->text[k] == '\t' ? ' ' : x->text[k]);
        printf("%s\n", cut < len ? " ..." : "");
    }
}

int cmd_search(int argc, char **argv) {
    const char *name = NULL, *query = NULL;
    bool json = false;
    int version = 0;
    qai_search_params sp;
    qai_search_params_default(&sp);
    cli_retrieval rt;
    int rc = 0;
    if (!cli_retrieval_init(&rt, &sp, argc)) {
        rc = cli_fail("search", "out of memory");
        goto out;
    }
    for (int i = 1; i < argc; i++) {
        const char *v, *a = argv[i];
        long long iv;
        if (cli_retrieval_flag(&rt, "search", argc, argv, &i, &rc)) {
            if (rc) goto out;
        } else if (cli_flag(a, "-h", "--help")) {
            fputs(usage_text, stdout);
            goto out;
        } else if (cli_flag(a, NULL, "--json")) json = true;
        else if (cli_value(argc, argv, &i, "-k", "--top-k", &v)) {
            if (!v || !cli_parse_int(v, 1, 10000, &iv)) { rc = cli_usage_error("search", "-k needs an integer in [1, 10000]"); goto out; }
            sp.k = (int)iv;
        } else if (cli_value(argc, argv, &i, NULL, "--version", &v)) {
            if (!v || !cli_parse_int(v, 1, 100000000, &iv)) { rc = cli_usage_error("search", "--version needs a positive integer"); goto out; }
            version = (int)iv;
        } else if (cli_value(argc, argv, &i, "-m", NULL, &v)) { /* short for --embed-model */
            if (!v || !*v) { rc = cli_usage_error("search", "%s needs a GGUF file", a); goto out; }
            sp.embed_model = v;
        } else if (cli_value(argc, argv, &i, "-t", "--threads", &v)) {
            if (!v || !cli_parse_int(v, 1, 512, &iv)) { rc = cli_usage_error("search", "--threads needs an integer in [1, 512]"); goto out; }
            sp.n_threads = (int)iv;
        } else if (a[0] == '-' && a[1]) {
            rc = cli_usage_error("search", "unknown option '%s'", a);
            goto out;
        } else if (!name) name = a;
        else if (!query) query = a;
        else { rc = cli_usage_error("search", "one query please (quote it): unexpected '%s'", a); goto out; }
    }
    if (!name || !query) { rc = cli_usage_error("search", "need a collection name and a query"); goto out; }
    if (rt.rerank_model && !query[strspn(query, " \t\r\n")]) { rc = cli_usage_error("search", "--rerank needs a non-empty query"); goto out; }
    qai_collection *c;
    if (qai_collection_open(rt.data_dir, name, version, &c)) { rc = cli_fail_last("search"); goto out; }
    qai_reranker *rr = NULL;
    if (rt.rerank_model) {
        qai_rerank_params rp;
        qai_rerank_params_default(&rp);
        rp.n_threads = sp.n_threads;
        if (qai_rerank_new(rt.rerank_model, &rp, &rr)) {
            rc = cli_fail_last("search");
            qai_collection_close(c);
            goto out;
        }
    }
    qai_collection_hit *h;
    int n;
    if (qai_collection_search_rerank(c, query, &sp, rr, rt.rerank_k, &h, &n)) rc = cli_fail_last("search");
    else {
        if (json) print_hits_json(c, h, n, rr != NULL);
        else {
            if (!n) fprintf(stderr, "qai: search: no match in %s@%d\n", name, qai_collection_version(c));
            print_hits_text(h, n);
        }
        qai_collection_hits_free(h, n);
    }
    qai_rerank_free(rr);
    qai_collection_close(c);
out:
    cli_retrieval_free(&rt);
    return rc;
}
