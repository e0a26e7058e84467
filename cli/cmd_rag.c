/* qai rag — answer a question from a collection: retrieve passages (hybrid
 * when the collection has vectors), put the numbered passages that fit the
 * context into a chat prompt, generate, and cite the sources. Without a
 * generator, or with one too small to trust, the answer is the retrieved
 * passages themselves, quoted and cited — never a made-up answer. */
#include <stdlib.h>
#include <string.h>

#include "gen_common.h"
#include "cli_retrieval.h"
#include "qai/collection.h"

static const char *usage_text =
    "usage: qai rag [-m MODEL.gguf] --index NAME \"question\" [options]\n"
    "\n"
    "Retrieves the best passages of collection NAME (hybrid when it has vectors,\n"
    "else BM25), numbers those that fit the model's context, asks the model to\n"
    "answer from them only, and prints the answer followed by its sources:\n"
    "  [1] path (bytes START-END, section)\n"
    "\n"
    "Retrieval-only answers: when no -m is given, when the model has no chat\n"
    "template qai knows (and no --template), when it is an encoder, or when it has\n"
    "fewer than --min-params parameters (default 4e8: smaller models invent more\n"
    "than they read), the answer is the best passages, quoted and cited.\n"
    "\n"
    "  --index NAME          the collection to retrieve from\n"
    "  -k N                  passages to retrieve (default 4)\n"
    "  --mode M              bm25, dense or hybrid (default: hybrid if possible)\n"
    "  --fusion F            hybrid: rrf (default) or weighted, as in qai search\n"
    "  --dense-weight W      weighted fusion: the dense list's weight in [0, 1] (default 0.5)\n"
    "  --filter KEY=VALUE    as in qai search (repeatable)\n"
    "  --rerank MODEL        rerank the best --rerank-k candidates with a GGUF decoder model\n"
    "                        (query likelihood, as qai search --rerank) before keeping -k\n"
    "  --rerank-k N          candidates to rerank (default 30)\n"
    "  --template NAME       chat format: llama2, llama3, chatml, zephyr, phi3, gemma\n"
    "  --min-params N        smallest model trusted to generate (default 400000000)\n"
    "  --embed-model M       the collection's embedding model when it moved\n"
    "  --data-dir DIR        the data directory (default $QAI_HOME or ~/.local/share/qai)\n"
    "  --json                {question, mode, reason, answer, citations[], collection,\n"
    "                        version} (docs/rag.md); citations gain rerank_score with --rerank\n"
    "%s"
    "  -h, --help            show this help\n"
    "\n"
    "Sampling is greedy (--temp 0) unless --temp is given; -n defaults to 256.\n"
    "\n"
    "example:\n"
    "  qai rag --index manuals \"how do I list hidden files?\" -k 3\n"
    "\n"
    "exit codes: 0 ok, 1 failed, 2 bad usage\n";

typedef struct {
    char *buf;
    size_t len, cap;
    bool stream;
    const char *stop; /* the chat format's end-of-turn text */
} answer_buf;

static bool on_token(void *user, int32_t token, const char *piece, size_t len) {
    (void)token;
    answer_buf *a = user;
    if (a->len + len + 1 > a->cap) {
        size_t nc = (a->cap + len + 1) * 2;
        char *nb = qai_realloc(a->buf, nc);
        if (!nb) return false;
        a->buf = nb;
        a->cap = nc;
    }
    memcpy(a->buf + a->len, piece, len);
    a->len += len;
    a->buf[a->len] = 0;
    size_t sl = a->stop ? strlen(a->stop) : 0;
    if (sl && a->len >= sl && !memcmp(a->buf + a->len - sl, a->stop, sl)) {
        a->len -= sl;
        a->buf[a->len] = 0;
        return false;
    }
    if (a->stream) {
        fwrite(piece, 1, len, stdout);
        fflush(stdout);
    }
    return true;
}

static void print_citation_line(int i, const qai_collection_hit *h) {
    printf("[%d] %s%s%s (bytes %zu-%zu%s%s)\n", i + 1, h->source, h->record_id ? " #" : "",
           h->record_id ? h->record_id : "", h->start, h->end, h->section[0] ? ", " : "", h->section);
}

static void json_citations(const qai_collection_hit *h, int n) {
    printf("[");
    for (int i = 0; i < n; i++) {
        printf("%s{\"n\": %d, \"source\": ", i ? ", " : "", i + 1);
        cli_json_string(stdout, h[i].source, strlen(h[i].source), false);
        printf(", \"span\": [%zu, %zu], \"section\": ", h[i].start, h[i].end);
        cli_json_string(stdout, h[i].section, strlen(h[i].section), false);
        printf(", \"record_id\": ");
        if (h[i].record_id) cli_json_string(stdout, h[i].record_id, strlen(h[i].record_id), false);
        else printf("null");
        printf(", \"chunk_id\": %llu, \"score\": %.6g, ", (unsigned long long)h[i].chunk_id, (double)h[i].score);
        if (h[i].rank_retrieval)
            printf("\"rerank_score\": %.6g, \"rank_retrieval\": %d, ", (double)h[i].rerank_score, h[i].rank_retrieval);
        printf("\"text\": ");
        cli_json_string(stdout, h[i].text, strlen(h[i].text), false);
        printf("}");
    }
    printf("]");
}

/* The retrieval-only answer: each passage quoted (first 600 bytes, on a
 * character boundary) with its citation number. */
static char *quoted_answer(const qai_collection_hit *h, int n) {
    size_t cap = 64;
    for (int i = 0; i < n; i++) cap += 700 + strlen(h[i].source);
    char *s = malloc(cap), *p = s;
    if (!s) return NULL;
    p += sprintf(p, "%s", n ? "The most relevant passages:\n" : "No passage matches the question.\n");
    for (int i = 0; i < n; i++) {
        size_t len = strlen(h[i].text), cut = len < 600 ? len : 600;
        while (cut < len && cut > 0 && ((unsigned char)h[i].text[cut] & 0xC0) == 0x80) cut--;
        p += sprintf(p, "\n[%d] \"", i + 1);
        for (size_t k = 0; k < cut; k++) {
            char ch = h[i].text[k] == '\n' || h[i].text[k] == '\t' ? ' ' : h[i].text[k];
            if (ch == ' ' && p[-1] == ' ') continue; /* one space for a run of blanks */
            *p++ = ch;
        }
        p += sprintf(p, "%s\"\n", cut < len ? " ..." : "");
    }
    *p = 0;
    return s;
}

/* The user message: the first n numbered passages, then the question. */
static char *build_prompt(const qai_collection_hit *h, int n, const char *question) {
    size_t cap = strlen(question) + 64;
    for (int i = 0; i < n; i++) cap += strlen(h[i].text) + strlen(h[i].source) + strlen(h[i].section) + 64;
    char *s = malloc(cap);
    if (!s) return NULL;
    size_t len = (size_t)sprintf(s, "Passages:\n");
    for (int i = 0; i < n; i++)
        len += (size_t)sprintf(s + len, "\n[%d] (%s%s%s)\n%s\n", i + 1, h[i].source, h[i].section[0] ? ", " : "",
                               h[i].section, h[i].text);
    sprintf(s + len, "\nQuestion: %s", question);
    return s;
}

int cmd_rag(int argc, char **argv) {
    gen_opts o;
    gen_opts_init(&o, 256);
    o.sp.temp = 0; /* greedy unless --temp: answers should follow the passages */
    const char *index = NULL, *question = NULL, *tmpl_name = NULL;
    bool json = false;
    long long min_params = 400000000LL;
    qai_search_params sp;
    qai_search_params_default(&sp);
    sp.k = 4;
    cli_retrieval rt;
    int rc = 0;
    if (!cli_retrieval_init(&rt, &sp, argc)) {
        rc = cli_fail("rag", "out of memory");
        goto out;
    }
    for (int i = 1; i < argc; i++) {
        const char *v, *a = argv[i];
        long long iv;
        if (cli_flag(a, "-h", "--help")) {
            printf(usage_text, gen_opts_help);
            goto out;
        }
        /* -k is ours (passages); the rest of the generation flags are shared */
        if (cli_value(argc, argv, &i, "-k", NULL, &v)) {
            if (!v || !cli_parse_int(v, 1, 100, &iv)) { rc = cli_usage_error("rag", "-k needs an integer in [1, 100]"); goto out; }
            sp.k = (int)iv;
            continue;
        }
        if (cli_retrieval_flag(&rt, "rag", argc, argv, &i, &rc)) {
            if (rc) goto out;
            continue;
        }
        int r = gen_opts_parse("rag", &o, argc, argv, &i);
        if (r == 2) { rc = 2; goto out; }
        if (r == 1) continue;
        if (cli_flag(a, NULL, "--json")) json = true;
        else if (cli_value(argc, argv, &i, NULL, "--index", &v)) {
            if (!v || !*v) { rc = cli_usage_error("rag", "--index needs a collection name"); goto out; }
            index = v;
        } else if (cli_value(argc, argv, &i, NULL, "--template", &v)) {
            if (!v || qai_chat_format_from_name(v) == QAI_CHAT_UNKNOWN) {
                rc = cli_usage_error("rag", "--template needs llama2, llama3, chatml, zephyr, phi3 or gemma");
                goto out;
            }
            tmpl_name = v;
        } else if (cli_value(argc, argv, &i, NULL, "--min-params", &v)) {
            double d;
            if (!v || !cli_parse_float(v, &d) || d < 0 || d > 1e15) { rc = cli_usage_error("rag", "--min-params needs a non-negative number"); goto out; }
            min_params = (long long)d;
        } else if (a[0] == '-' && a[1]) {
            rc = cli_usage_error("rag", "unknown option '%s'", a);
            goto out;
        } else if (!question) question = a;
        else { rc = cli_usage_error("rag", "one question please (quote it): unexpected '%s'", a); goto out; }
    }
    if (!index) { rc = cli_usage_error("rag", "no collection given (--index NAME)"); goto out; }
    if (!question || !question[strspn(question, " \t\r\n")]) { rc = cli_usage_error("rag", "no question given"); goto out; }
    sp.n_threads = o.n_threads;

    qai_collection *c = NULL;
    qai_collection_hit *hits = NULL;
    int nh = 0;
    qai_model *m = NULL;
    qai_context *ctx = NULL;
    qai_reranker *rr = NULL;
    char *answer_text = NULL, *user_msg = NULL, *prompt = NULL;
    int32_t *ids = NULL;
    answer_buf ab = {0};
    if (qai_collection_open(rt.data_dir, index, 0, &c)) { rc = cli_fail_last("rag"); goto done; }
    if (rt.rerank_model) {
        qai_rerank_params rp;
        qai_rerank_params_default(&rp);
        rp.n_threads = o.n_threads;
        if (qai_rerank_new(rt.rerank_model, &rp, &rr)) { rc = cli_fail_last("rag"); goto done; }
    }
    if (qai_collection_search_rerank(c, question, &sp, rr, rt.rerank_k, &hits, &nh)) { rc = cli_fail_last("rag"); goto done; }
    qai_rerank_free(rr); /* its context is not needed while generating */
    rr = NULL;

    /* may this model generate? */
    char reason[512] = "";
    qai_chat_format fmt = QAI_CHAT_UNKNOWN;
    if (!o.model) snprintf(reason, sizeof reason, "no generator model given (-m)");
    else {
        if (gen_open("rag", &o, &m, &ctx)) { rc = 1; goto done; }
        const qai_model_info *mi = qai_model_get_info(m);
        const char *jinja = NULL;
        qai_gguf_get_str(qai_model_gguf(m), "tokenizer.chat_template", &jinja);
        fmt = tmpl_name ? qai_chat_format_from_name(tmpl_name) : qai_chat_detect(jinja);
        if (mi->is_encoder) snprintf(reason, sizeof reason, "'%s' is an encoder (embeddings only)", o.model);
        else if ((long long)mi->n_params < min_params)
            snprintf(reason, sizeof reason, "'%s' has %.3g parameters, fewer than --min-params %.3g", o.model,
                     (double)mi->n_params, (double)min_params);
        else if (fmt == QAI_CHAT_UNKNOWN)
            snprintf(reason, sizeof reason, "'%s' %s (give --template)", o.model,
                     jinja ? "has a chat template qai does not recognize" : "has no chat template");
    }
    if (reason[0] || nh == 0) {
        if (!reason[0]) snprintf(reason, sizeof reason, "no passage matches the question");
        answer_text = quoted_answer(hits, nh);
        if (!answer_text) { rc = cli_fail("rag", "out of memory"); goto done; }
        if (json) {
            printf("{\"question\": ");
            cli_json_string(stdout, question, strlen(question), false);
            printf(", \"mode\": \"retrieval-only\", \"reason\": ");
            cli_json_string(stdout, reason, strlen(reason), false);
            printf(", \"answer\": ");
            cli_json_string(stdout, answer_text, strlen(answer_text), false);
            printf(", \"citations\": ");
            json_citations(hits, nh);
            printf(", \"collection\": ");
            cli_json_string(stdout, index, strlen(index), false);
            printf(", \"version\": %d}\n", qai_collection_version(c));
        } else {
            fprintf(stderr, "qai: rag: retrieval-only answer: %s\n", reason);
            fputs(answer_text, stdout);
            if (nh) printf("\nSources:\n");
            for (int i = 0; i < nh; i++) print_citation_line(i, &hits[i]);
        }
        goto done;
    }

    /* generation: the passages that fit, then the question */
    const qai_tokenizer *tok = qai_model_tokenizer(m);
    int n_ctx = qai_context_n_ctx(ctx);
    int reserve = o.n_predict > 0 ? o.n_predict : n_ctx / 4;
    /* passages are best first: keep as many as fit with room for the answer */
    int used = nh;
    size_t nid = 0;
    qai_chat_message msgs[2] = {
        {"system", "Answer the question using only the numbered passages. Cite the passages you use as [1], [2]. "
                   "If the passages do not contain the answer, say that you do not know."},
        {"user", NULL}};
    for (; used > 0; used--) {
        free(user_msg);
        qai_free(prompt);
        qai_free(ids);
        prompt = NULL;
        ids = NULL;
        if (!(user_msg = build_prompt(hits, used, question))) { rc = cli_fail("rag", "out of memory"); goto done; }
        msgs[1].content = user_msg;
        if (qai_chat_apply(fmt, msgs, 2, true, &prompt) ||
            qai_tokenizer_encode(tok, prompt, strlen(prompt), QAI_TOK_ADD_SPECIAL | QAI_TOK_PARSE_SPECIAL, &ids,
                                 &nid)) {
            rc = cli_fail_last("rag");
            goto done;
        }
        if ((int)nid + reserve <= n_ctx) break;
    }
    if (!used) {
        rc = cli_fail("rag", "not even one passage fits the context of %d tokens with %d tokens left for the answer; "
                             "raise -c or lower -n", n_ctx, reserve);
        goto done;
    }
    ab.stream = !json;
    ab.stop = qai_chat_end_marker(fmt);
    qai_generate_params gp = {.n_predict = o.n_predict, .sampling = o.sp};
    qai_generate_stats gs;
    if (qai_generate(ctx, 0, ids, (int)nid, &gp, on_token, &ab, &gs)) { rc = cli_fail_last("rag"); goto done; }
    if (json) {
        printf("{\"question\": ");
        cli_json_string(stdout, question, strlen(question), false);
        printf(", \"mode\": \"generated\", \"reason\": null, \"answer\": ");
        cli_json_string(stdout, ab.buf ? ab.buf : "", ab.len, false);
        printf(", \"citations\": ");
        json_citations(hits, used);
        printf(", \"collection\": ");
        cli_json_string(stdout, index, strlen(index), false);
        printf(", \"version\": %d}\n", qai_collection_version(c));
    } else {
        printf("\n\nSources:\n");
        for (int i = 0; i < used; i++) print_citation_line(i, &hits[i]);
    }
done:
    free(answer_text);
    free(user_msg);
    qai_free(prompt);
    qai_free(ids);
    qai_free(ab.buf);
    if (ctx) qai_context_free(ctx);
    if (m) qai_model_close(m);
    qai_rerank_free(rr);
    qai_collection_hits_free(hits, nh);
    qai_collection_close(c);
out:
    cli_retrieval_free(&rt);
    return rc;
}
