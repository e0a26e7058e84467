/* qai serve's collection endpoints over real HTTP (127.0.0.1, ephemeral
 * port), on a tiny collection built in the test with the library and a small
 * random model:
 * - POST /v1/indexes/{name}/search answers the same hits (chunk ids, sources,
 *   spans, scores, order) as qai_collection_search with the same parameters,
 *   with filters too;
 * - /upsert makes version N+1 (CURRENT moves; the library opens it), the new
 *   document is found by the next search (the cached collection is reopened);
 * - errors: unknown index 404, bad fields 400 naming the field, bad names,
 *   methods, missing keys 401, an inference key on /upsert 403;
 * - chat "retrieval": the citations are the library's top hits for the last
 *   user message, and the prompt the server tokenized is exactly the chat
 *   template applied to qai rag's instruction + numbered passages as the system
 *   message (checked by counting prompt tokens); streamed too;
 * - search with "rerank": the hits are the library's, reranked by
 *   qai_rerank_hits with the same model (order, rerank_score, rank_retrieval);
 *   an unknown model 404, an encoder or an ambiguous model 400, bad fields 400
 *   naming the field. */
#include <arpa/inet.h>
#include <math.h>
#include <cjson/cJSON.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "qai/collection.h"
#include "qai/model.h"
#include "qai/serve.h"
#include "serve/http_client.h"
#include "test.h"

static char g_root[512], g_home[600], g_model[700];
static qai_model *g_model_h;

/* The key goes in as a bearer token (NULL: none). */
static http_resp http_key(int port, const char *method, const char *path, const char *body, const char *key) {
    char auth[160] = "";
    if (key) snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", key);
    return http(port, method, path, body, auth);
}

/* status, OpenAI's error shape, and the param it names (NULL: not checked) */
static void check_error(const http_resp *r, int status, const char *param) {
    CHECK_MSG(r->status == status, "status %d, expected %d (body %s)", r->status, status, r->body ? r->body : "");
    cJSON *j = cJSON_Parse(r->body ? r->body : "");
    const cJSON *e = cJSON_GetObjectItem(j, "error");
    CHECK_MSG(cJSON_IsObject(e) && cJSON_IsString(cJSON_GetObjectItem(e, "message")) &&
                  cJSON_IsString(cJSON_GetObjectItem(e, "type")) && cJSON_HasObjectItem(e, "code"),
              "not an error object: %s", r->body ? r->body : "");
    if (param) {
        const cJSON *p = cJSON_GetObjectItem(e, "param");
        CHECK_MSG(cJSON_IsString(p) && !strcmp(p->valuestring, param), "param %s, expected %s (%s)",
                  cJSON_IsString(p) ? p->valuestring : "null", param, r->body ? r->body : "");
    }
    cJSON_Delete(j);
}

/* ---- keys: sk-admin (admin), sk-inf (inference) ---- */

static int t_authenticate(void *user, const char *secret, const char *endpoint, qai_serve_key *key, char *msg, size_t cap) {
    (void)user, (void)endpoint, (void)msg, (void)cap;
    if (!secret) return 401;
    if (!strcmp(secret, "sk-admin") || !strcmp(secret, "sk-inf")) {
        bool admin = !strcmp(secret, "sk-admin");
        snprintf(key->key_id, sizeof key->key_id, "%s", admin ? "k-admin" : "k-inf");
        snprintf(key->scope, sizeof key->scope, "%s", admin ? "admin" : "inference");
        return 0;
    }
    return 401;
}

/* ---- the collection ---- */

static const char *DOCS[][2] = {
    {"ls.txt", "ls lists directory contents. Use ls -a to show hidden files whose names start with a dot.\n"},
    {"cp.txt", "cp copies files and directories. cp -r copies a directory recursively.\n"},
    {"grep.txt", "grep searches files for lines matching a regular expression pattern.\n"},
    {"tar.txt", "tar stores many files in one archive and extracts them again; tar -x extracts.\n"},
};

static void build_collection(void) {
    char corpus[700];
    snprintf(corpus, sizeof corpus, "%s/corpus", g_root);
    CHECK_OK(qai_mkdirs(corpus));
    for (size_t i = 0; i < sizeof DOCS / sizeof DOCS[0]; i++) {
        char p[800];
        snprintf(p, sizeof p, "%s/%s", corpus, DOCS[i][0]);
        FILE *f = fopen(p, "wb");
        CHECK(f != NULL);
        if (!f) return;
        fputs(DOCS[i][1], f);
        fclose(f);
    }
    qai_ingest_opts o;
    qai_ingest_opts_default(&o);
    o.data_dir = g_home;
    o.n_threads = 1;
    const char *paths[] = {corpus};
    qai_ingest_result r;
    CHECK_OK(qai_collection_ingest("docs", paths, 1, &o, &r));
    CHECK_EQ_INT(r.version, 1);
    qai_ingest_result_release(&r);
}

/* The library's hits for a query (bm25, k, optional filter). */
static int lib_search(const char *query, int k, const char *fkey, const char *fval, qai_collection_hit **h, int *version) {
    qai_collection *c;
    *h = NULL;
    if (qai_collection_open(g_home, "docs", 0, &c)) return -1;
    qai_search_params sp;
    qai_search_params_default(&sp);
    sp.k = k;
    sp.mode = QAI_RETRIEVE_BM25;
    sp.mode_given = true;
    qai_meta_filter f = {fkey, fval};
    if (fkey) sp.filters = &f, sp.n_filters = 1;
    int n = -1;
    CHECK_OK(qai_collection_search(c, query, &sp, h, &n));
    *version = qai_collection_version(c);
    qai_collection_close(c);
    return n;
}

/* The server's hits equal the library's (same order, chunk ids, sources, spans, scores, text). */
static void check_same_hits(const http_resp *r, const qai_collection_hit *h, int n, int version) {
    CHECK_MSG(r->status == 200, "search: status %d (%s)", r->status, r->body ? r->body : "");
    cJSON *j = cJSON_Parse(r->body ? r->body : "");
    const cJSON *d = cJSON_GetObjectItem(j, "data");
    CHECK(cJSON_IsString(cJSON_GetObjectItem(j, "object")) && !strcmp(cJSON_GetObjectItem(j, "object")->valuestring, "list"));
    CHECK(cJSON_IsString(cJSON_GetObjectItem(j, "index")) && !strcmp(cJSON_GetObjectItem(j, "index")->valuestring, "docs"));
    CHECK(cJSON_GetObjectItem(j, "version") && cJSON_GetObjectItem(j, "version")->valueint == version);
    CHECK_EQ_INT(cJSON_GetArraySize(d), n);
    for (int i = 0; i < n && i < cJSON_GetArraySize(d); i++) {
        const cJSON *x = cJSON_GetArrayItem(d, i), *sp = cJSON_GetObjectItem(x, "span");
        CHECK(cJSON_GetObjectItem(x, "chunk_id")->valuedouble == (double)h[i].chunk_id);
        CHECK(!strcmp(cJSON_GetObjectItem(x, "source")->valuestring, h[i].source));
        CHECK(!strcmp(cJSON_GetObjectItem(x, "text")->valuestring, h[i].text));
        CHECK(!strcmp(cJSON_GetObjectItem(x, "section")->valuestring, h[i].section));
        CHECK(cJSON_GetArraySize(sp) == 2 && cJSON_GetArrayItem(sp, 0)->valuedouble == (double)h[i].start &&
              cJSON_GetArrayItem(sp, 1)->valuedouble == (double)h[i].end);
        double got = cJSON_GetObjectItem(x, "score")->valuedouble; /* printed with 6 significant digits */
        CHECK_MSG(fabs(got - h[i].score) <= 1e-5 * (1 + fabs(h[i].score)), "score %g, library %g", got, (double)h[i].score);
        CHECK(cJSON_GetObjectItem(x, "version")->valueint == version);
    }
    cJSON_Delete(j);
}

static void test_search(int port) {
    const char *q = "show hidden files in a directory";
    qai_collection_hit *h;
    int version, n = lib_search(q, 3, NULL, NULL, &h, &version);
    CHECK(n >= 2 && strstr(h[0].source, "ls.txt"));
    http_resp r = http_key(port, "POST", "/v1/indexes/docs/search",
                       "{\"query\": \"show hidden files in a directory\", \"k\": 3, \"mode\": \"bm25\"}", "sk-inf");
    check_same_hits(&r, h, n, version);
    resp_free(&r);
    /* fusion fields are accepted (they apply to hybrid; bm25 hits are unchanged) */
    r = http_key(port, "POST", "/v1/indexes/docs/search",
                 "{\"query\": \"show hidden files in a directory\", \"k\": 3, \"mode\": \"bm25\", \"fusion\": \"weighted\", "
                 "\"dense_weight\": 0.3}", "sk-inf");
    check_same_hits(&r, h, n, version);
    resp_free(&r);
    qai_collection_hits_free(h, n);
    /* filters as in qai search --filter */
    n = lib_search("files", 8, "source", "*cp.txt", &h, &version);
    CHECK_EQ_INT(n, 1);
    r = http_key(port, "POST", "/v1/indexes/docs/search", "{\"query\": \"files\", \"mode\": \"bm25\", \"filter\": {\"source\": \"*cp.txt\"}}",
             "sk-inf");
    check_same_hits(&r, h, n, version);
    resp_free(&r);
    qai_collection_hits_free(h, n);
    /* errors */
    r = http_key(port, "POST", "/v1/indexes/nope/search", "{\"query\": \"x\"}", "sk-inf");
    check_error(&r, 404, NULL);
    CHECK(r.body && strstr(r.body, "index_not_found"));
    resp_free(&r);
    struct {
        const char *body, *param;
    } bad[] = {
        {"{\"k\": 3}", "query"},
        {"{\"query\": 5}", "query"},
        {"{\"query\": \"  \"}", "query"},
        {"{\"query\": \"x\", \"k\": 0}", "k"},
        {"{\"query\": \"x\", \"k\": 2.5}", "k"},
        {"{\"query\": \"x\", \"mode\": \"fuzzy\"}", "mode"},
        {"{\"query\": \"x\", \"mode\": \"dense\"}", "mode"}, /* no vectors in this collection */
        {"{\"query\": \"x\", \"fusion\": \"max\"}", "fusion"},
        {"{\"query\": \"x\", \"fusion\": 1}", "fusion"},
        {"{\"query\": \"x\", \"dense_weight\": 1.5}", "dense_weight"},
        {"{\"query\": \"x\", \"dense_weight\": \"0.3\"}", "dense_weight"},
        {"{\"query\": \"x\", \"fusion\": \"rrf\", \"dense_weight\": 0.3}", "dense_weight"},
        {"{\"query\": \"x\", \"filter\": [1]}", "filter"},
        {"{\"query\": \"x\", \"filter\": {\"source\": {}}}", "filter"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = http_key(port, "POST", "/v1/indexes/docs/search", bad[i].body, "sk-inf");
        check_error(&r, 400, bad[i].param);
        resp_free(&r);
    }
    r = http_key(port, "POST", "/v1/indexes/docs/search", "{\"query\": ", "sk-inf");
    check_error(&r, 400, NULL);
    resp_free(&r);
    r = http_key(port, "POST", "/v1/indexes/.hidden/search", "{\"query\": \"x\"}", "sk-inf");
    check_error(&r, 400, "name");
    resp_free(&r);
    r = http_key(port, "GET", "/v1/indexes/docs/search", NULL, "sk-inf");
    check_error(&r, 405, NULL);
    resp_free(&r);
    r = http_key(port, "POST", "/v1/indexes/docs/delete", "{}", "sk-inf");
    check_error(&r, 404, NULL);
    resp_free(&r);
    r = http_key(port, "POST", "/v1/indexes/docs/search", "{\"query\": \"x\"}", NULL);
    check_error(&r, 401, NULL);
    resp_free(&r);
}

static void test_upsert(int port) {
    const char *body = "{\"documents\": [{\"id\": \"rsync-1\", \"text\": \"rsync synchronizes folders between machines over ssh.\","
                       " \"metadata\": {\"team\": \"ops\"}}]}";
    http_resp r = http_key(port, "POST", "/v1/indexes/docs/upsert", body, "sk-inf");
    check_error(&r, 403, NULL);
    resp_free(&r);
    r = http_key(port, "POST", "/v1/indexes/docs/upsert", body, NULL);
    check_error(&r, 401, NULL);
    resp_free(&r);
    struct {
        const char *body, *param;
    } bad[] = {
        {"{}", "documents"},
        {"{\"documents\": []}", "documents"},
        {"{\"documents\": {}}", "documents"},
        {"{\"documents\": [{\"id\": \"a\"}]}", "documents[0].text"},
        {"{\"documents\": [{\"text\": \"ok\"}, {\"text\": \"\"}]}", "documents[1].text"},
        {"{\"documents\": [{\"text\": \"ok\", \"id\": 7}]}", "documents[0].id"},
        {"{\"documents\": [{\"text\": \"ok\", \"metadata\": \"x\"}]}", "documents[0].metadata"},
        {"{\"documents\": [{\"text\": \"ok\", \"metadata\": {\"text\": \"x\"}}]}", "documents[0].metadata"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = http_key(port, "POST", "/v1/indexes/docs/upsert", bad[i].body, "sk-admin");
        check_error(&r, 400, bad[i].param);
        resp_free(&r);
    }
    qai_collection_info ci;
    CHECK_OK(qai_collection_stat(g_home, "docs", &ci));
    CHECK_EQ_INT(ci.current, 1); /* nothing changed so far */
    /* search once so the server caches version 1, then upsert */
    r = http_key(port, "POST", "/v1/indexes/docs/search", "{\"query\": \"rsync machines\", \"mode\": \"bm25\"}", "sk-inf");
    CHECK(r.status == 200 && r.body && strstr(r.body, "\"data\":[]"));
    resp_free(&r);
    r = http_key(port, "POST", "/v1/indexes/docs/upsert", body, "sk-admin");
    CHECK_MSG(r.status == 200, "upsert: %d %s", r.status, r.body ? r.body : "");
    cJSON *j = cJSON_Parse(r.body ? r.body : "");
    CHECK(cJSON_GetObjectItem(j, "version") && cJSON_GetObjectItem(j, "version")->valueint == 2);
    CHECK(cJSON_GetObjectItem(j, "added") && cJSON_GetObjectItem(j, "added")->valueint == 1);
    CHECK(cJSON_IsString(cJSON_GetObjectItem(j, "index")) && !strcmp(cJSON_GetObjectItem(j, "index")->valuestring, "docs"));
    cJSON_Delete(j);
    resp_free(&r);
    CHECK_OK(qai_collection_stat(g_home, "docs", &ci));
    CHECK_EQ_INT(ci.current, 2);
    /* the new document is found (the server reopened the collection), with its metadata, and the old ones stay */
    qai_collection_hit *h;
    int version, n = lib_search("rsync machines", 8, NULL, NULL, &h, &version);
    CHECK_EQ_INT(version, 2);
    CHECK(n == 1 && h[0].record_id && !strcmp(h[0].record_id, "rsync-1"));
    r = http_key(port, "POST", "/v1/indexes/docs/search", "{\"query\": \"rsync machines\", \"mode\": \"bm25\"}", "sk-inf");
    check_same_hits(&r, h, n, 2);
    CHECK(r.body && strstr(r.body, "\"team\":\"ops\"") && strstr(r.body, "\"record_id\":\"rsync-1\""));
    resp_free(&r);
    qai_collection_hits_free(h, n);
    r = http_key(port, "POST", "/v1/indexes/docs/search", "{\"query\": \"machines tar archive\", \"mode\": \"bm25\", \"filter\": {\"team\": \"ops\"}}",
             "sk-inf");
    CHECK(r.status == 200 && r.body && strstr(r.body, "rsync-1") && !strstr(r.body, "tar.txt"));
    resp_free(&r);
    r = http_key(port, "POST", "/v1/indexes/docs/search", "{\"query\": \"tar archive\", \"mode\": \"bm25\"}", "sk-inf");
    CHECK(r.status == 200 && r.body && strstr(r.body, "tar.txt") && strstr(r.body, "\"version\":2"));
    resp_free(&r);
    /* a new index by upsert */
    r = http_key(port, "POST", "/v1/indexes/fresh/upsert", "{\"documents\": [{\"text\": \"zebras have stripes\"}]}", "sk-admin");
    CHECK(r.status == 200 && r.body && strstr(r.body, "\"version\":1"));
    resp_free(&r);
}

typedef struct {
    unsigned char b[4096];
    size_t n;
    double lp0; /* log-probability of the first (greedy) token */
} bytes_out;

static bool collect(void *user, int32_t token, const char *piece, size_t len) {
    (void)token;
    bytes_out *o = user;
    if (o->n + len < sizeof o->b) memcpy(o->b + o->n, piece, len), o->n += len;
    return true;
}

/* The prompt tokens of a chat whose system message is qai rag's instruction
 * and the passages (built here independently of the server); *gen gets the
 * bytes of qai_generate's greedy continuation (n_predict tokens). */
static int expected_prompt_tokens(const qai_collection_hit *h, int n, const char *question, int n_predict, bytes_out *gen) {
    char sys[8192];
    size_t len = (size_t)snprintf(sys, sizeof sys, "%s",
                                  "Answer the question using only the numbered passages. Cite the passages you use as [1], [2]. "
                                  "If the passages do not contain the answer, say that you do not know.\n\nPassages:\n");
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(sys + len, sizeof sys - len, "\n[%d] (%s%s%s)\n%s\n", i + 1, h[i].source,
                                h[i].section[0] ? ", " : "", h[i].section, h[i].text);
    qai_chat_message m[2] = {{"system", sys}, {"user", question}};
    char *prompt = NULL;
    int32_t *ids = NULL;
    size_t nid = 0;
    CHECK_OK(qai_chat_apply(QAI_CHAT_CHATML, m, 2, true, &prompt));
    CHECK_OK(qai_tokenizer_encode(qai_model_tokenizer(g_model_h), prompt, strlen(prompt),
                                  QAI_TOK_ADD_SPECIAL | QAI_TOK_PARSE_SPECIAL, &ids, &nid));
    qai_free(prompt);
    memset(gen, 0, sizeof *gen);
    qai_context_params cp = qai_context_default_params();
    cp.n_ctx = 2048, cp.n_threads = 1;
    qai_context *ctx = NULL;
    CHECK_OK(qai_context_new(g_model_h, &cp, &ctx));
    qai_generate_params gp = {.n_predict = n_predict};
    gp.sampling = qai_sampler_default_params();
    gp.sampling.temp = 0;
    if (ctx) {
        CHECK_OK(qai_decode_tokens(ctx, 0, 0, ids, (int)nid));
        const float *lg = qai_context_logits(ctx, (int)nid - 1);
        int V = qai_model_get_info(g_model_h)->n_vocab;
        double mx = -1e30, sum = 0;
        for (int v = 0; v < V; v++) mx = lg[v] > mx ? lg[v] : mx;
        for (int v = 0; v < V; v++) sum += exp(lg[v] - mx);
        gen->lp0 = -log(sum); /* the greedy token's logit is mx */
        qai_kv_truncate(ctx, 0, 0);
        CHECK_OK(qai_generate(ctx, 0, ids, (int)nid, &gp, collect, gen, NULL));
    }
    qai_context_free(ctx);
    qai_free(ids);
    return (int)nid;
}

static void check_citations(const cJSON *c, const qai_collection_hit *h, int n) {
    CHECK_MSG(cJSON_IsArray(c) && cJSON_GetArraySize(c) == n, "citations: %d, expected %d", cJSON_GetArraySize(c), n);
    for (int i = 0; i < n && i < cJSON_GetArraySize(c); i++) {
        const cJSON *x = cJSON_GetArrayItem(c, i), *sp = cJSON_GetObjectItem(x, "span");
        CHECK(cJSON_GetObjectItem(x, "index")->valueint == i + 1);
        CHECK(!strcmp(cJSON_GetObjectItem(x, "source")->valuestring, h[i].source));
        CHECK(!strcmp(cJSON_GetObjectItem(x, "section")->valuestring, h[i].section));
        CHECK(cJSON_GetArraySize(sp) == 2 && cJSON_GetArrayItem(sp, 0)->valuedouble == (double)h[i].start &&
              cJSON_GetArrayItem(sp, 1)->valuedouble == (double)h[i].end);
    }
}

static void test_retrieval(int port) {
    const char *q = "how do I copy a directory recursively?";
    char body[2048];
    qai_collection_hit *h;
    int version, n = lib_search(q, 2, NULL, NULL, &h, &version);
    CHECK(n == 2 && strstr(h[0].source, "cp.txt"));
    bytes_out ref;
    int want = expected_prompt_tokens(h, n, q, 6, &ref);
    /* without retrieval: the plain prompt */
    snprintf(body, sizeof body, "{\"messages\": [{\"role\": \"user\", \"content\": \"%s\"}], \"max_tokens\": 4, \"temperature\": 0}", q);
    http_resp r = http_key(port, "POST", "/v1/chat/completions", body, "sk-inf");
    cJSON *j = cJSON_Parse(r.body ? r.body : "");
    CHECK(r.status == 200 && !cJSON_HasObjectItem(j, "citations"));
    int plain = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "usage"), "prompt_tokens")
                    ? cJSON_GetObjectItem(cJSON_GetObjectItem(j, "usage"), "prompt_tokens")->valueint : -1;
    cJSON_Delete(j);
    resp_free(&r);
    /* with retrieval */
    snprintf(body, sizeof body,
             "{\"messages\": [{\"role\": \"user\", \"content\": \"hello\"}, {\"role\": \"assistant\", \"content\": \"hi\"},"
             " {\"role\": \"user\", \"content\": \"%s\"}], \"max_tokens\": 4, \"temperature\": 0,"
             " \"retrieval\": {\"index\": \"docs\", \"k\": 2, \"mode\": \"bm25\"}}", q);
    r = http_key(port, "POST", "/v1/chat/completions", body, "sk-inf");
    CHECK_MSG(r.status == 200, "retrieval chat: %d %s", r.status, r.body ? r.body : "");
    j = cJSON_Parse(r.body ? r.body : "");
    check_citations(cJSON_GetObjectItem(j, "citations"), h, n);
    cJSON_Delete(j);
    resp_free(&r);
    /* the prompt: exactly system(instruction + passages) + user question (one turn, to count tokens) */
    snprintf(body, sizeof body,
             "{\"messages\": [{\"role\": \"user\", \"content\": \"%s\"}], \"max_tokens\": 6, \"temperature\": 0,"
             " \"logprobs\": true, \"retrieval\": {\"index\": \"docs\", \"k\": 2, \"mode\": \"bm25\"}}", q);
    r = http_key(port, "POST", "/v1/chat/completions", body, "sk-inf");
    j = cJSON_Parse(r.body ? r.body : "");
    /* greedy generation from exactly that prompt: the bytes of the generated tokens equal qai_generate's */
    const cJSON *lpc = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0), "logprobs"),
                                           "content");
    bytes_out got = {0};
    const cJSON *tk;
    cJSON_ArrayForEach(tk, lpc) {
        const cJSON *by;
        cJSON_ArrayForEach(by, cJSON_GetObjectItem(tk, "bytes")) if (got.n < sizeof got.b) got.b[got.n++] = (unsigned char)by->valueint;
    }
    /* the first token's log-probability depends on every prompt token */
    const cJSON *lp0 = cJSON_GetObjectItem(cJSON_GetArrayItem(lpc, 0), "logprob");
    CHECK_MSG(lp0 && fabs(lp0->valuedouble - ref.lp0) <= 1e-4 * (1 + fabs(ref.lp0)), "first logprob %.6g, reference %.6g",
              lp0 ? lp0->valuedouble : 0.0, ref.lp0);
    CHECK_MSG(cJSON_GetArraySize(lpc) > 0 && got.n == ref.n && !memcmp(got.b, ref.b, ref.n),
              "generated %zu bytes over %d tokens, qai_generate %zu bytes", got.n, cJSON_GetArraySize(lpc), ref.n);
    const cJSON *pt = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "usage"), "prompt_tokens");
    CHECK_MSG(pt && pt->valueint == want, "prompt tokens %d, expected %d", pt ? pt->valueint : -1, want);
    CHECK(pt && pt->valueint > plain + 20);
    check_citations(cJSON_GetObjectItem(j, "citations"), h, n);
    cJSON_Delete(j);
    resp_free(&r);
    /* streamed: the final chunk carries the citations, then [DONE] */
    snprintf(body, sizeof body,
             "{\"messages\": [{\"role\": \"user\", \"content\": \"%s\"}], \"max_tokens\": 4, \"temperature\": 0, \"stream\": true,"
             " \"retrieval\": {\"index\": \"docs\", \"k\": 2, \"mode\": \"bm25\"}}", q);
    r = http_key(port, "POST", "/v1/chat/completions", body, "sk-inf");
    CHECK(r.status == 200 && r.body);
    char *last = NULL, *done = r.body ? strstr(r.body, "data: [DONE]") : NULL;
    for (char *p = r.body; p && (p = strstr(p, "data: {")) && (!done || p < done); p++) last = p;
    CHECK(done && last);
    if (done && last) {
        *done = 0;
        j = cJSON_Parse(last + 6);
        check_citations(cJSON_GetObjectItem(j, "citations"), h, n);
        cJSON_Delete(j);
    }
    resp_free(&r);
    qai_collection_hits_free(h, n);
    /* errors */
    struct {
        const char *retr, *param;
        int status;
    } bad[] = {
        {"{\"index\": \"nope\"}", "retrieval.index", 404},
        {"{\"k\": 2}", "retrieval.index", 400},
        {"{\"index\": \"docs\", \"k\": 0}", "retrieval.k", 400},
        {"{\"index\": \"docs\", \"mode\": 3}", "retrieval.mode", 400},
        {"{\"index\": \"docs\", \"dense_weight\": -1}", "retrieval.dense_weight", 400},
        {"{\"index\": \"docs\", \"filter\": 1}", "retrieval.filter", 400},
        {"\"docs\"", "retrieval", 400},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(body, sizeof body, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"max_tokens\": 2, \"retrieval\": %s}",
                 bad[i].retr);
        r = http_key(port, "POST", "/v1/chat/completions", body, "sk-inf");
        check_error(&r, bad[i].status, bad[i].param);
        resp_free(&r);
    }
    r = http_key(port, "POST", "/v1/completions", "{\"prompt\": \"x\", \"max_tokens\": 2, \"retrieval\": {\"index\": \"docs\"}}", "sk-inf");
    check_error(&r, 400, "retrieval");
    resp_free(&r);
}

/* ---- rerank ---- */

static void test_rerank(int port) {
    const char *q = "copy files in a directory";
    qai_collection_hit *h;
    int version, n = lib_search(q, 4, NULL, NULL, &h, &version);
    CHECK(n >= 3);
    qai_rerank_params rp;
    qai_rerank_params_default(&rp);
    rp.n_threads = 1;
    qai_reranker *rr;
    CHECK_OK(qai_rerank_new_from_model(g_model_h, &rp, &rr));
    CHECK_OK(qai_rerank_hits(rr, q, h, n, 4));
    qai_rerank_free(rr);
    http_resp r = http_key(port, "POST", "/v1/indexes/docs/search",
                           "{\"query\": \"copy files in a directory\", \"k\": 2, \"mode\": \"bm25\", \"rerank\": true, "
                           "\"rerank_k\": 4}", "sk-inf");
    check_same_hits(&r, h, 2, version); /* the first two of the library's reranked list */
    cJSON *j = cJSON_Parse(r.body ? r.body : "");
    const cJSON *d = cJSON_GetObjectItem(j, "data");
    for (int i = 0; i < 2 && i < cJSON_GetArraySize(d); i++) {
        const cJSON *x = cJSON_GetArrayItem(d, i), *rs = cJSON_GetObjectItem(x, "rerank_score"),
                    *rk = cJSON_GetObjectItem(x, "rank_retrieval");
        CHECK_MSG(cJSON_IsNumber(rs) && fabs(rs->valuedouble - h[i].rerank_score) <= 1e-5 * (1 + fabs(h[i].rerank_score)),
                  "hit %d: rerank_score %s, library %g", i, r.body, (double)h[i].rerank_score);
        CHECK(cJSON_IsNumber(rk) && rk->valueint == h[i].rank_retrieval && rk->valueint >= 1);
    }
    cJSON_Delete(j);
    resp_free(&r);
    qai_collection_hits_free(h, n);
    /* without "rerank": no rerank fields */
    r = http_key(port, "POST", "/v1/indexes/docs/search", "{\"query\": \"copy\", \"mode\": \"bm25\", \"rerank\": false}", "sk-inf");
    CHECK(r.status == 200 && r.body && !strstr(r.body, "rerank_score"));
    resp_free(&r);
    struct {
        const char *body, *param;
        int status;
    } bad[] = {
        {"{\"query\": \"x\", \"rerank\": \"yes\"}", "rerank", 400},
        {"{\"query\": \"x\", \"rerank\": true, \"rerank_k\": 0}", "rerank_k", 400},
        {"{\"query\": \"x\", \"rerank\": true, \"rerank_k\": 1.5}", "rerank_k", 400},
        {"{\"query\": \"x\", \"rerank\": true, \"model\": 5}", "model", 400},
        {"{\"query\": \"x\", \"rerank\": true, \"model\": \"nope\"}", "model", 404},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = http_key(port, "POST", "/v1/indexes/docs/search", bad[i].body, "sk-inf");
        check_error(&r, bad[i].status, bad[i].param);
        resp_free(&r);
    }
}

/* A server with a decoder and an encoder: "model" is needed, the encoder is refused. */
static void test_rerank_two_models(const qai_serve_params *base) {
    char enc[800];
    snprintf(enc, sizeof enc, "%s/enc.gguf", g_root);
    qai_init_params ip = {.dim = 32, .layers = 1, .heads = 2, .kv_heads = 2, .ffn = 64, .vocab = 500, .ctx = 64,
                          .seed = 3, .type = QAI_TYPE_F32};
    CHECK_OK(qai_bert_init_random(&ip, NULL, 0, 1, enc));
    qai_serve_model_spec ms[2] = {{.name = "tiny", .path = g_model, .template_name = "chatml"}, {.name = "enc", .path = enc}};
    qai_serve_params p = *base;
    p.models = ms, p.n_models = 2;
    qai_server *srv;
    CHECK_OK(qai_server_open(&p, &srv));
    if (!srv) return;
    int port = qai_server_port(srv);
    http_resp r = http_key(port, "POST", "/v1/indexes/docs/search", "{\"query\": \"copy\", \"rerank\": true}", "sk-inf");
    check_error(&r, 400, "model");
    resp_free(&r);
    r = http_key(port, "POST", "/v1/indexes/docs/search", "{\"query\": \"copy\", \"rerank\": true, \"model\": \"enc\"}", "sk-inf");
    check_error(&r, 400, "model");
    CHECK_MSG(r.body && strstr(r.body, "encoder"), "%s", r.body ? r.body : "");
    resp_free(&r);
    r = http_key(port, "POST", "/v1/indexes/docs/search", "{\"query\": \"copy\", \"rerank\": true, \"model\": \"tiny\"}", "sk-inf");
    CHECK_MSG(r.status == 200 && r.body && strstr(r.body, "\"rerank_score\""), "status %d: %s", r.status, r.body ? r.body : "");
    resp_free(&r);
    qai_server_close(srv);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    snprintf(g_root, sizeof g_root, "%s/test_serve_indexes.%d", TEST_TMP(), (int)getpid());
    snprintf(g_home, sizeof g_home, "%s/home", g_root);
    snprintf(g_model, sizeof g_model, "%s/tiny.gguf", g_root);
    CHECK_OK(qai_mkdirs(g_home));
    qai_log_set_level(QAI_LOG_ERROR);
    build_collection();
    qai_init_params ip = {.arch = "llama", .dim = 64, .layers = 2, .heads = 4, .kv_heads = 2, .ffn = 128, .vocab = 512,
                          .ctx = 2048, .seed = 7, .type = QAI_TYPE_F32, .std = 0.1f};
    CHECK_OK(qai_model_init_random(&ip, g_model));
    CHECK_OK(qai_model_open(g_model, &g_model_h));
    if (!g_model_h) return test_summary();
    qai_serve_params p = qai_serve_default_params();
    qai_serve_model_spec ms = {.name = "tiny", .path = g_model, .template_name = "chatml"};
    p.models = &ms, p.n_models = 1, p.port = 0, p.parallel = 2, p.n_ctx = 2048, p.n_threads = 1, p.quiet = true;
    p.data_dir = g_home;
    p.auth = (qai_serve_auth){.authenticate = t_authenticate};
    qai_server *srv;
    CHECK_OK(qai_server_open(&p, &srv));
    if (srv) {
        int port = qai_server_port(srv);
        test_search(port);
        test_upsert(port);
        test_retrieval(port);
        test_rerank(port);
        qai_server_close(srv);
    }
    test_rerank_two_models(&p);
    qai_model_close(g_model_h);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_root);
    if (!t_fail && system(cmd)) fprintf(stderr, "could not remove %s\n", g_root);
    return test_summary();
}
