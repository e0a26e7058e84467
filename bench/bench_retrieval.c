/* bench_retrieval — the man-page retrieval evaluation driver (run by
 * bench/retrieval_eval.sh).
 *
 * For each page in a list (paths exactly as they were ingested), the query is
 * the page's NAME-line description — the text after " - " (roff "\-") in its
 * NAME section, as qai's man extractor renders it — and the relevant document
 * is that page (any of its chunks; a page dropped as a duplicate counts its
 * kept twin, and a kept page its dropped twins, as the same document). Chunk
 * hits are turned into a document ranking (first chunk of each source), and
 * for each mode (bm25, dense, hybrid) we report over the queries:
 *   recall@1, recall@10   fraction of queries whose page ranks 1st / in the top 10
 *   MRR                   mean of 1/rank (0 past rank 100)
 *   nDCG@10               mean of 1/log2(1 + rank) for rank <= 10 (one relevant document)
 * Nothing is tuned: k = 100 chunks per query, RRF with k = 60, the library's
 * defaults everywhere.
 *
 * --rerank MODEL adds, for each mode, "<mode>+rerank": the same 100 chunks
 * with the first --rerank-k (default 30) reranked by query likelihood with
 * the GGUF decoder MODEL (qai_rerank_hits, default parameters), and the
 * seconds per query the reranking took.
 *
 * --weights W1,W2,... adds, for each dense weight w in [0, 1], "weighted@w":
 * the library's weighted fusion (min-max normalized scores, qai_fuse_weighted)
 * of the same candidate lists hybrid fuses (400 chunks each from bm25 and
 * dense), weighted w for dense and 1 - w for bm25, top 100. retrieval_eval.sh
 * picks w on a development collection of training pages (never on the
 * evaluation queries) and reports that w's row next to RRF's.
 *
 * --per-query FILE writes one JSON line per query, {"page", "query", "ranks":
 * {MODE: RANK, ...}} (0: not in the top 100 documents), for looking at the
 * queries one mode gets and another misses.
 *
 * --candidates FILE writes, per query, the candidate lists hybrid fuses
 * (400 chunks each from bm25 and dense): {"page", "twins": [...], "bm25":
 * [[SOURCE, SCORE], ...], "dense": [...]} — for trying fusion rules offline
 * on the same lists.
 *
 * --mine FILE writes, per query, its 20 best BM25 chunks: {"page", "query",
 * "hits": [{"source", "text"}, ...]} — the material for hard negatives
 * (retrieval_eval.sh keeps the 2 best chunks of other pages, by the rules
 * it states). No metrics are computed with it.
 *
 * --dump-queries LIST prints, for each page of LIST that has a description,
 * one JSON line {"page": PATH, "query": DESCRIPTION} and nothing else (no
 * collection is opened): the queries exactly as the evaluation cuts them, for
 * retrieval_eval.sh to build supervised training pairs from the pages that
 * are not evaluated. --export-chunks FILE (with --data-dir, --collection)
 * writes the collection's chunks as {"doc", "section", "text"} JSON lines
 * (qai_collection_export_chunks): the positives of those pairs.
 *
 * usage: bench_retrieval --data-dir D --collection NAME --pages LIST --mine FILE
 *        bench_retrieval --data-dir D --collection NAME --pages LIST [--modes bm25,dense,hybrid]
 *                        [--weights W1,W2,...] [--per-query FILE] [--candidates FILE]
 *                        [--limit N] [--label TEXT]
 *                        [--rerank MODEL [--rerank-k N] [--rerank-prompt TEMPLATE] [--threads N]]
 *                        (JSON on stdout)
 *        bench_retrieval --dump-queries LIST (JSON lines on stdout)
 *        bench_retrieval --data-dir D --collection NAME --export-chunks FILE
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qai/collection.h"
#include "qai/index.h"
#include "qai/ingest.h"

/* The description of a man page: what follows " - " in its NAME section. */
static char *page_query(const char *path) {
    qai_doc_list dl;
    if (qai_doc_read_file(path, &dl) != QAI_OK) return NULL;
    char *q = NULL;
    for (int d = 0; d < dl.n_docs && !q; d++) {
        const qai_doc *doc = &dl.docs[d];
        for (int s = 0; s < doc->n_sections && !q; s++) {
            const qai_doc_section *sec = &doc->sections[s];
            if (!sec->title || strcasecmp(sec->title, "NAME")) continue;
            size_t n = sec->end - sec->start;
            char *t = strndup(doc->text + sec->start, n);
            if (!t) break;
            /* skip the heading line */
            char *body = strchr(t, '\n');
            body = body ? body + 1 : t;
            char *dash = strstr(body, " - ");
            const char *alt = strstr(body, " \xe2\x80\x94 "); /* an em dash */
            if (!dash && alt) dash = (char *)alt + 2;
            if (dash) {
                char *start = dash + 3;
                /* one line of text: join wrapped lines */
                for (char *p = start; *p; p++)
                    if (*p == '\n' || *p == '\t') *p = ' ';
                while (isspace((unsigned char)*start)) start++;
                size_t l = strlen(start);
                while (l && isspace((unsigned char)start[l - 1])) start[--l] = 0;
                if (l >= 3) q = strdup(start);
            }
            free(t);
        }
    }
    qai_doc_list_free(&dl);
    return q;
}

/* s as a JSON string literal on f. */
static void put_json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p == '\n') fputs("\\n", f);
        else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
        else fputc(*p, f);
    }
    fputc('"', f);
}

/* --dump-queries LIST: {"page", "query"} per line for the pages with a description. */
static int dump_queries(const char *list) {
    FILE *f = fopen(list, "r");
    if (!f) {
        perror(list);
        return 1;
    }
    char line[4096];
    long n = 0, none = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (!*line) continue;
        char *q = page_query(line);
        if (!q) {
            none++;
            continue;
        }
        fputs("{\"page\": ", stdout);
        put_json_string(stdout, line);
        fputs(", \"query\": ", stdout);
        put_json_string(stdout, q);
        fputs("}\n", stdout);
        free(q);
        n++;
    }
    fclose(f);
    fprintf(stderr, "bench_retrieval: %ld descriptions, %ld pages without one\n", n, none);
    return 0;
}

typedef struct {
    char name[32];
    qai_retrieve_mode mode;
    double r1, r10, mrr, ndcg;
    int n;
    double seconds;
} mode_stats;

/* The 1-based rank of the relevant page among the documents of the hits
 * (first chunk of each source), 0 if absent. */
static int doc_rank(const qai_collection_hit *h, int nh, const char *page, char **tw, int nt) {
    int doc = 0;
    for (int i = 0; i < nh; i++) {
        bool seen = false;
        for (int j = 0; j < i && !seen; j++) seen = !strcmp(h[j].source, h[i].source);
        if (seen) continue;
        doc++;
        bool rel = !strcmp(h[i].source, page);
        for (int t = 0; t < nt && !rel; t++) rel = !strcmp(h[i].source, tw[t]);
        if (rel) return doc;
    }
    return 0;
}

static void add_rank(mode_stats *m, int rank) {
    m->n++;
    if (rank == 1) m->r1 += 1;
    if (rank && rank <= 10) {
        m->r10 += 1;
        m->ndcg += 1.0 / log2(1.0 + rank);
    }
    if (rank) m->mrr += 1.0 / rank;
}

enum { MAX_WEIGHTS = 64 };

/* The weighted-fusion modes of one query: bm25 and dense candidates (as
 * hybrid takes them), fused with each weight, ranked as documents. */
static qai_status weighted_ranks(qai_collection *c, const char *q, const char *page, char **tw, int nt,
                                 const double *w, int nw, int *ranks, FILE *cand) {
    enum { K = 100, CAND = 4 * K };
    qai_collection_hit *h[2] = {NULL, NULL};
    int nh[2] = {0, 0};
    qai_status st = QAI_OK;
    for (int m = 0; m < 2 && !st; m++) { /* 0 dense, 1 bm25 */
        qai_search_params sp;
        qai_search_params_default(&sp);
        sp.k = CAND;
        sp.mode = m ? QAI_RETRIEVE_BM25 : QAI_RETRIEVE_DENSE;
        sp.mode_given = true;
        st = qai_collection_search(c, q, &sp, &h[m], &nh[m]);
    }
    if (cand && !st) {
        fputs("{\"page\": ", cand);
        put_json_string(cand, page);
        fputs(", \"twins\": [", cand);
        for (int t = 0; t < nt; t++) {
            if (t) fputs(", ", cand);
            put_json_string(cand, tw[t]);
        }
        fputs("]", cand);
        for (int m = 1; m >= 0; m--) {
            fprintf(cand, ", \"%s\": [", m ? "bm25" : "dense");
            for (int i = 0; i < nh[m]; i++) {
                fputs(i ? ", [" : "[", cand);
                put_json_string(cand, h[m][i].source);
                fprintf(cand, ", %.6g]", h[m][i].score);
            }
            fputs("]", cand);
        }
        fputs("}\n", cand);
    }
    qai_hit *lists[2] = {NULL, NULL}, fused[K];
    qai_collection_hit out[K];
    for (int m = 0; m < 2 && !st; m++) {
        lists[m] = qai_malloc(((size_t)nh[m] + 1) * sizeof(qai_hit));
        if (!lists[m]) st = QAI_ERR_NOMEM;
        for (int i = 0; !st && i < nh[m]; i++) lists[m][i] = (qai_hit){h[m][i].chunk_id, h[m][i].score};
    }
    for (int k = 0; k < nw && !st; k++) {
        float wt[2] = {(float)w[k], (float)(1 - w[k])};
        int nf = 0;
        st = qai_fuse_weighted((const qai_hit *const *)lists, nh, wt, 2, fused, K, &nf);
        for (int i = 0; i < nf && !st; i++) { /* the source of each fused chunk, from whichever list had it */
            out[i].source = NULL;
            for (int m = 0; m < 2 && !out[i].source; m++)
                for (int j = 0; j < nh[m]; j++)
                    if (h[m][j].chunk_id == fused[i].id) {
                        out[i].source = h[m][j].source;
                        break;
                    }
            if (!out[i].source) out[i].source = "";
        }
        if (!st) ranks[k] = doc_rank(out, nf, page, tw, nt);
    }
    for (int m = 0; m < 2; m++) {
        qai_free(lists[m]);
        if (h[m]) qai_collection_hits_free(h[m], nh[m]);
    }
    return st;
}

/* --mine: the best 20 BM25 chunks of each page's description. */
static int mine_hits(qai_collection *c, const char *list, const char *path) {
    FILE *f = fopen(list, "r"), *o = fopen(path, "w");
    if (!f || !o) {
        perror(!f ? list : path);
        return 1;
    }
    char line[4096];
    long n = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        char *q = *line ? page_query(line) : NULL;
        if (!q) continue;
        qai_search_params sp;
        qai_search_params_default(&sp);
        sp.k = 20;
        sp.mode = QAI_RETRIEVE_BM25;
        sp.mode_given = true;
        qai_collection_hit *h;
        int nh;
        if (qai_collection_search(c, q, &sp, &h, &nh) != QAI_OK) {
            fprintf(stderr, "bench_retrieval: %s: %s\n", line, qai_last_error());
            return 1;
        }
        fputs("{\"page\": ", o);
        put_json_string(o, line);
        fputs(", \"query\": ", o);
        put_json_string(o, q);
        fputs(", \"hits\": [", o);
        for (int i = 0; i < nh; i++) {
            fputs(i ? ", {\"source\": " : "{\"source\": ", o);
            put_json_string(o, h[i].source);
            fputs(", \"text\": ", o);
            put_json_string(o, h[i].text ? h[i].text : "");
            fputs("}", o);
        }
        fputs("]}\n", o);
        qai_collection_hits_free(h, nh);
        free(q);
        if (++n % 1000 == 0) fprintf(stderr, "bench_retrieval: mined %ld queries\n", n);
    }
    fclose(f);
    if (fclose(o)) {
        perror(path);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    const char *data_dir = NULL, *coll = NULL, *list = NULL, *modes = "bm25,dense,hybrid", *label = "", *rerank = NULL;
    long limit = 0;
    const char *rerank_prompt = NULL;
    const char *export_path = NULL, *weights = NULL, *per_query = NULL, *candidates = NULL, *mine = NULL;
    int rerank_k = 30, threads = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--data-dir")) data_dir = argv[i + 1];
        else if (!strcmp(argv[i], "--collection")) coll = argv[i + 1];
        else if (!strcmp(argv[i], "--pages")) list = argv[i + 1];
        else if (!strcmp(argv[i], "--modes")) modes = argv[i + 1];
        else if (!strcmp(argv[i], "--limit")) limit = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--label")) label = argv[i + 1];
        else if (!strcmp(argv[i], "--rerank")) rerank = argv[i + 1];
        else if (!strcmp(argv[i], "--rerank-k")) rerank_k = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--rerank-prompt")) rerank_prompt = argv[i + 1];
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--dump-queries")) {
            qai_log_set_level(QAI_LOG_ERROR);
            return dump_queries(argv[i + 1]);
        } else if (!strcmp(argv[i], "--export-chunks")) export_path = argv[i + 1];
        else if (!strcmp(argv[i], "--weights")) weights = argv[i + 1];
        else if (!strcmp(argv[i], "--per-query")) per_query = argv[i + 1];
        else if (!strcmp(argv[i], "--candidates")) candidates = argv[i + 1];
        else if (!strcmp(argv[i], "--mine")) mine = argv[i + 1];
        else {
            fprintf(stderr, "bench_retrieval: unknown option '%s'\n", argv[i]);
            return 2;
        }
    }
    if (coll && export_path) {
        qai_log_set_level(QAI_LOG_ERROR);
        qai_collection *c;
        size_t nc = 0, nd = 0;
        qai_status st = qai_collection_open(data_dir, coll, 0, &c);
        if (!st) {
            st = qai_collection_export_chunks(c, export_path, &nc, &nd);
            qai_collection_close(c);
        }
        if (st) {
            fprintf(stderr, "bench_retrieval: %s\n", qai_last_error());
            return 1;
        }
        fprintf(stderr, "bench_retrieval: %zu chunks of %zu documents -> %s\n", nc, nd, export_path);
        return 0;
    }
    if (!coll || !list) {
        fprintf(stderr, "usage: bench_retrieval --data-dir D --collection NAME --pages LIST [--modes ...]\n");
        return 2;
    }
    double wv[MAX_WEIGHTS];
    int nw = 0;
    for (const char *p = weights; p && *p;) {
        char *end;
        double v = strtod(p, &end);
        if (end == p || !(v >= 0 && v <= 1) || nw == MAX_WEIGHTS || (*end && *end != ',')) {
            fprintf(stderr, "bench_retrieval: --weights '%s': expected up to %d numbers in [0, 1], comma-separated\n",
                    weights, MAX_WEIGHTS);
            return 2;
        }
        wv[nw++] = v;
        p = *end ? end + 1 : end;
    }
    mode_stats wm[MAX_WEIGHTS];
    memset(wm, 0, sizeof wm);
    for (int k = 0; k < nw; k++) snprintf(wm[k].name, sizeof wm[k].name, "weighted@%.2f", wv[k]);
    qai_log_set_level(QAI_LOG_ERROR);
    qai_collection *c;
    if (qai_collection_open(data_dir, coll, 0, &c) != QAI_OK) {
        fprintf(stderr, "bench_retrieval: %s\n", qai_last_error());
        return 1;
    }
    qai_reranker *rr = NULL;
    if (rerank) {
        qai_rerank_params rp;
        qai_rerank_params_default(&rp);
        rp.n_threads = threads;
        if (rerank_prompt) rp.prompt = rerank_prompt;
        if (rerank_k < 1 || qai_rerank_new(rerank, &rp, &rr) != QAI_OK) {
            fprintf(stderr, "bench_retrieval: %s\n", rerank_k < 1 ? "--rerank-k needs a positive integer" : qai_last_error());
            return 1;
        }
    }
    if (mine) return mine_hits(c, list, mine);
    FILE *f = fopen(list, "r");
    if (!f) {
        perror(list);
        return 1;
    }
    FILE *pq = per_query ? fopen(per_query, "w") : NULL, *cand = candidates ? fopen(candidates, "w") : NULL;
    if ((per_query && !pq) || (candidates && !cand)) {
        perror(per_query && !pq ? per_query : candidates);
        return 1;
    }
    mode_stats ms[3], mr[3]; /* mr: the same with reranking */
    memset(ms, 0, sizeof ms);
    memset(mr, 0, sizeof mr);
    int nm = 0;
    const char *names[] = {"bm25", "dense", "hybrid"};
    for (int k = 0; k < 3; k++)
        if (strstr(modes, names[k])) {
            snprintf(ms[nm].name, sizeof ms[nm].name, "%s", names[k]);
            snprintf(mr[nm].name, sizeof mr[nm].name, "%s+rerank", names[k]);
            ms[nm].mode = mr[nm].mode = (qai_retrieve_mode)k;
            nm++;
        }
    char line[4096];
    long n_pages = 0, n_noquery = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (!*line) continue;
        if (limit && n_pages >= limit) break;
        char *q = page_query(line);
        if (!q) {
            n_noquery++;
            continue;
        }
        n_pages++;
        char **tw = NULL;
        int nt = 0;
        qai_collection_twins(c, line, &tw, &nt);
        int qrank[6], wrank[MAX_WEIGHTS]; /* this query's ranks: modes, their reranked twins, weights */
        for (int m = 0; m < nm; m++) {
            qai_search_params sp;
            qai_search_params_default(&sp);
            sp.k = 100;
            sp.mode = ms[m].mode;
            sp.mode_given = true;
            qai_collection_hit *h;
            int nh;
            uint64_t t0 = qai_time_ns();
            if (qai_collection_search(c, q, &sp, &h, &nh) != QAI_OK) {
                fprintf(stderr, "bench_retrieval: %s: %s\n", line, qai_last_error());
                return 1;
            }
            ms[m].seconds += (double)(qai_time_ns() - t0) / 1e9;
            qrank[m] = doc_rank(h, nh, line, tw, nt);
            add_rank(&ms[m], qrank[m]);
            if (rr) {
                t0 = qai_time_ns();
                if (qai_rerank_hits(rr, q, h, nh, rerank_k) != QAI_OK) {
                    fprintf(stderr, "bench_retrieval: %s: rerank: %s\n", line, qai_last_error());
                    return 1;
                }
                mr[m].seconds += (double)(qai_time_ns() - t0) / 1e9;
                qrank[nm + m] = doc_rank(h, nh, line, tw, nt);
                add_rank(&mr[m], qrank[nm + m]);
            }
            qai_collection_hits_free(h, nh);
        }
        if (nw || cand) {
            uint64_t t0 = qai_time_ns();
            if (weighted_ranks(c, q, line, tw, nt, wv, nw, wrank, cand) != QAI_OK) {
                fprintf(stderr, "bench_retrieval: %s: weighted fusion: %s\n", line, qai_last_error());
                return 1;
            }
            double dt = nw ? (double)(qai_time_ns() - t0) / 1e9 / nw : 0;
            for (int k = 0; k < nw; k++) add_rank(&wm[k], wrank[k]), wm[k].seconds += dt;
        }
        if (pq) {
            fputs("{\"page\": ", pq);
            put_json_string(pq, line);
            fputs(", \"query\": ", pq);
            put_json_string(pq, q);
            fputs(", \"ranks\": {", pq);
            for (int m = 0; m < 2 * nm + nw; m++) {
                if (m >= nm && m < 2 * nm && !rr) continue;
                const mode_stats *x = m < nm ? &ms[m] : m < 2 * nm ? &mr[m - nm] : &wm[m - 2 * nm];
                fprintf(pq, "%s\"%s\": %d", m ? ", " : "", x->name, m < 2 * nm ? qrank[m] : wrank[m - 2 * nm]);
            }
            fputs("}}\n", pq);
        }
        qai_free(tw);
        free(q);
        if (n_pages % (rr ? 25 : 500) == 0) fprintf(stderr, "bench_retrieval: %ld queries\n", n_pages);
    }
    fclose(f);
    if ((pq && fclose(pq)) || (cand && fclose(cand))) {
        perror("bench_retrieval: --per-query/--candidates");
        return 1;
    }
    printf("{\"label\": \"%s\", \"collection\": \"%s\", \"version\": %d, \"chunks\": %zu, \"queries\": %ld, "
           "\"pages_without_description\": %ld, ",
           label, coll, qai_collection_version(c), qai_collection_n_chunks(c), n_pages, n_noquery);
    if (rr) {
        printf("\"rerank\": {\"model\": \"%s\", \"rerank_k\": %d, \"prompt\": ", rerank, rerank_k);
        const char *t = rerank_prompt ? rerank_prompt : "Passage: {passage}\nQuestion:";
        putchar('"');
        for (; *t; t++) {
            if (*t == '\n') fputs("\\n", stdout);
            else if (*t == '"' || *t == '\\') printf("\\%c", *t);
            else putchar(*t);
        }
        printf("\"}, ");
    }
    printf("\"modes\": {");
    for (int m = 0; m < 2 * nm + nw; m++) {
        const mode_stats *x = m < nm ? &ms[m] : m < 2 * nm ? &mr[m - nm] : &wm[m - 2 * nm];
        if (m >= nm && m < 2 * nm && !rr) continue;
        double n = x->n ? x->n : 1;
        printf("%s\"%s\": {\"recall@1\": %.4f, \"recall@10\": %.4f, \"mrr\": %.4f, \"ndcg@10\": %.4f, "
               "\"queries_per_s\": %.1f",
               m ? ", " : "", x->name, x->r1 / n, x->r10 / n, x->mrr / n, x->ndcg / n, x->seconds > 0 ? x->n / x->seconds : 0);
        if (m >= nm && m < 2 * nm) printf(", \"rerank_seconds_per_query\": %.4f", x->n ? x->seconds / x->n : 0);
        printf("}");
    }
    printf("}}\n");
    qai_rerank_free(rr);
    qai_collection_close(c);
    return 0;
}
