/* The HTTP side of qai serve, on libmicrohttpd: routing, request bodies with a
 * size limit, auth/accounting/audit hooks, the OpenAI response shapes (plain
 * JSON and SSE streams, tool calls as message.tool_calls / delta.tool_calls),
 * structured output (a grammar state per choice hooked into the scheduler's
 * token mask), /v1/embeddings, tokenize/detokenize, health/readiness and
 * /metrics.
 *
 * Threading: MHD runs one thread per connection, so a handler may block while
 * the engine works; it waits on its job group's condition variable with short
 * timeouts and checks in between whether the client hung up (then it cancels
 * its jobs, which frees their slots at the engine's next iteration). A stream
 * is produced by a content-reader callback that blocks the same way; the engine
 * only appends to per-job buffers and never waits for a client.
 *
 * What it does not do: TLS, HTTP/2, or request bodies other than JSON. */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <netdb.h>
#include <math.h>
#include <poll.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "routes.h"
#include "scheduler.h"

#if MHD_VERSION < 0x00097002
typedef int MHD_Result_t;
#else
typedef enum MHD_Result MHD_Result_t;
#endif

/* A loaded model. Embeddings run on their own context (emb_ctx, one
 * sequence, made on the first /v1/embeddings request, one request at a time
 * under emb_mu) rather than as jobs of the engine thread: the engine's slots,
 * their prefix caches and the running streams are untouched (an embedding is
 * one un-chunked forward pass over the whole input, which on the engine
 * thread would stall every stream for its duration), and an encoder model,
 * which has no engine at all, is served the same way. The price is a second
 * KV buffer per model once embeddings are used, and CPU shared with the
 * engine while both run (results do not depend on it). */
typedef struct {
    char *name, *path;
    qai_model *m;
    qai_engine *eng;         /* NULL for an encoder (embeddings only) */
    qai_grammar_vocab *gv;   /* token trie for structured output (NULL for an encoder) */
    qai_chat_format fmt;
    int64_t created;
    bool encoder;
    int n_ctx;               /* positions of a sequence (generation and embeddings) */
    pthread_mutex_t emb_mu;  /* guards emb_ctx and its use */
    qai_context *emb_ctx;
    int n_threads;
} served_model;

struct qai_server {
    qai_serve_params p;
    char *host;
    served_model *models;
    int n_models;
    pthread_mutex_t routes_mu;
    serve_routes *routes;
    qai_rng rng; /* under routes_mu */
    struct MHD_Daemon *d;
    int port;
    qai_metrics *metrics;
    serve_indexes *indexes; /* the data directory's collections */
    atomic_int inflight;
    atomic_bool shutting_down;
    atomic_uint_fast64_t next_id;
    bool shut;
    pthread_mutex_t shut_mu;
};

enum {
    EP_NONE = 0, EP_CHAT, EP_COMPLETIONS, EP_MODELS, EP_TOKENIZE, EP_DETOKENIZE, EP_HEALTH, EP_READY, EP_METRICS,
    EP_EMBEDDINGS, EP_INDEX_SEARCH, EP_INDEX_UPSERT
};

/* /v1/indexes/{name}/search and /upsert: the routes' names in metrics and
 * audit records (the collection's name is not part of them). */
static const char PATH_INDEX_SEARCH[] = "/v1/indexes/{name}/search", PATH_INDEX_UPSERT[] = "/v1/indexes/{name}/upsert";

static const struct {
    const char *path, *method;
    int ep;
} ROUTES[] = {
    {"/v1/chat/completions", "POST", EP_CHAT}, {"/v1/completions", "POST", EP_COMPLETIONS},
    {"/v1/models", "GET", EP_MODELS},          {"/v1/tokenize", "POST", EP_TOKENIZE},
    {"/tokenize", "POST", EP_TOKENIZE},        {"/v1/detokenize", "POST", EP_DETOKENIZE},
    {"/detokenize", "POST", EP_DETOKENIZE},    {"/health", "GET", EP_HEALTH},
    {"/ready", "GET", EP_READY},               {"/metrics", "GET", EP_METRICS},
    {"/v1/embeddings", "POST", EP_EMBEDDINGS},
};

/* Per-request state (MHD's con_cls). */
typedef struct {
    qai_server *srv;
    struct MHD_Connection *conn;
    int ep;
    const char *path; /* the route's path (static) */
    bool method_ok;
    sbuf body;
    bool too_big;
    uint64_t t0;
    int64_t unix_t0;
    /* outcome, for metrics and audit */
    int status;
    char outcome[64];
    char model[128], variant[128];
    char id[48];
    int prompt_tokens, completion_tokens;
    double ttft_ms;
    bool has_key, accounted;
    qai_serve_key key;
    /* generation */
    qai_serve_request *req;
    served_model *sm;
    job_group *g;
    int64_t created;
    /* streaming */
    sbuf out;
    size_t out_off;
    size_t *sent_text; /* per job: bytes of text sent */
    int *sent_lp;      /* per job: logprobs sent */
    bool *sent_final, *sent_role;
    bool stream_done, stream_error;
    int socket_fd;
    struct tc_stream *tcs; /* per job: tool-call deltas sent */
    char index_name[80];   /* /v1/indexes/{name}/... */
    char *citations;       /* chat with retrieval: the citations' JSON array */
} req_state;

/* Streaming tool calls of one choice: how many calls went out (id and name)
 * and how many bytes of each call's arguments. */
typedef struct tc_stream {
    int calls;
    size_t args_sent[QAI_SERVE_MAX_TOOL_CALLS];
} tc_stream;

/* ---- small helpers ---- */

static bool client_gone(int fd) {
    if (fd < 0) return false;
    struct pollfd pf = {.fd = fd, .events = POLLRDHUP};
    if (poll(&pf, 1, 0) <= 0) return false;
    return (pf.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

static MHD_Result_t send_text(req_state *rs, int status, const char *ctype, const char *text, size_t n,
                              const char *retry_after) {
    struct MHD_Response *r = MHD_create_response_from_buffer(n, (void *)text, MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", ctype);
    if (retry_after) MHD_add_response_header(r, "Retry-After", retry_after);
    if (rs->variant[0]) MHD_add_response_header(r, "X-Qai-Variant", rs->variant);
    MHD_Result_t ret = MHD_queue_response(rs->conn, (unsigned)status, r);
    MHD_destroy_response(r);
    rs->status = status;
    return ret;
}

static MHD_Result_t send_json(req_state *rs, int status, sbuf *b) {
    if (b->oom) {
        sb_free(b);
        static const char oom[] = "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\",\"param\":null,\"code\":\"out_of_memory\"}}";
        return send_text(rs, 500, "application/json", oom, sizeof oom - 1, NULL);
    }
    MHD_Result_t r = send_text(rs, status, "application/json", b->p ? b->p : "", b->n, NULL);
    sb_free(b);
    return r;
}

static void error_json(sbuf *b, const qai_serve_error *e) {
    sb_puts(b, "{\"error\":{\"message\":");
    sb_json_str(b, e->message, strlen(e->message));
    sb_puts(b, ",\"type\":");
    sb_json_str(b, e->type, strlen(e->type));
    sb_puts(b, ",\"param\":");
    if (e->param[0]) sb_json_str(b, e->param, strlen(e->param));
    else
        sb_puts(b, "null");
    sb_puts(b, ",\"code\":");
    if (e->code[0]) sb_json_str(b, e->code, strlen(e->code));
    else
        sb_puts(b, "null");
    sb_puts(b, "}}");
}

static MHD_Result_t send_error(req_state *rs, const qai_serve_error *e, const char *retry_after) {
    sbuf b = {0};
    error_json(&b, e);
    snprintf(rs->outcome, sizeof rs->outcome, "error:%s", e->code[0] ? e->code : e->type);
    if (b.oom) return send_json(rs, 500, &b);
    MHD_Result_t r = send_text(rs, e->status, "application/json", b.p, b.n, retry_after);
    sb_free(&b);
    return r;
}

static MHD_Result_t fail(req_state *rs, int status, const char *type, const char *code, const char *param,
                         const char *msg) {
    qai_serve_error e;
    serve_err(&e, status, type, code, param, "%s", msg);
    return send_error(rs, &e, status == 503 ? "1" : NULL);
}

static const char *finish_name(job_finish f) {
    switch (f) {
    case JOB_STOP: return "stop";
    case JOB_LENGTH: return "length";
    default: return NULL;
    }
}

static void token_text(const qai_tokenizer *tok, int32_t id, char *buf, size_t cap, size_t *n) {
    size_t len = qai_tokenizer_piece(tok, id, 0, buf, cap);
    *n = len < cap ? len : cap;
}

/* ---- model resolution ---- */

/* The model a request names (route or model), or NULL with *e filled. */
static served_model *resolve_model(req_state *rs, const char *name, const char *user, qai_serve_error *e) {
    qai_server *s = rs->srv;
    if (!name || !*name) {
        if (s->n_models == 1) {
            snprintf(rs->model, sizeof rs->model, "%s", s->models[0].name);
            snprintf(rs->variant, sizeof rs->variant, "%s", s->models[0].name);
            return &s->models[0];
        }
        serve_err(e, 400, "invalid_request_error", "missing_field", "model",
                  "'model' is required: this server has %d models (GET /v1/models lists them)", s->n_models);
        return NULL;
    }
    snprintf(rs->model, sizeof rs->model, "%s", name);
    pthread_mutex_lock(&s->routes_mu);
    const char *vname = NULL;
    int idx = serve_routes_pick(s->routes, name, user, qai_rng_u64(&s->rng), &vname);
    if (idx >= 0) snprintf(rs->variant, sizeof rs->variant, "%s", vname);
    pthread_mutex_unlock(&s->routes_mu);
    if (idx >= 0) return &s->models[idx];
    for (int i = 0; i < s->n_models; i++)
        if (!strcmp(s->models[i].name, name)) {
            snprintf(rs->variant, sizeof rs->variant, "%s", name);
            return &s->models[i];
        }
    rs->model[0] = 0;
    serve_err(e, 404, "not_found_error", "model_not_found", "model", "the model '%.200s' does not exist", name);
    return NULL;
}

/* ---- auth ---- */

/* 0 if the request may go on; otherwise an error response was queued. */
static int check_auth(req_state *rs, MHD_Result_t *ret) {
    qai_server *s = rs->srv;
    if (!s->p.auth.authenticate) return 0;
    const char *h = MHD_lookup_connection_value(rs->conn, MHD_HEADER_KIND, "Authorization");
    const char *secret = NULL;
    if (h && !strncasecmp(h, "Bearer ", 7)) {
        secret = h + 7;
        while (*secret == ' ') secret++;
    }
    char msg[256] = "";
    int r = s->p.auth.authenticate(s->p.auth.user, secret, rs->path, &rs->key, msg, sizeof msg);
    if (r == 0) {
        rs->has_key = true;
        return 0;
    }
    if (r == 403) *ret = fail(rs, 403, "permission_error", "forbidden", NULL, msg[0] ? msg : "this key may not call this endpoint");
    else
        *ret = fail(rs, 401, "authentication_error", "invalid_api_key", NULL,
                    msg[0] ? msg : secret ? "the API key is not valid" : "an API key is required (Authorization: Bearer KEY)");
    return -1;
}

/* ---- responses of a generation ---- */

static void put_token_obj(sbuf *b, const qai_tokenizer *tok, int32_t id, float lp) {
    char piece[256];
    size_t n;
    token_text(tok, id, piece, sizeof piece, &n);
    sb_puts(b, "{\"token\":");
    sb_json_str(b, piece, n);
    sb_printf(b, ",\"logprob\":%.6g,\"bytes\":[", (double)lp);
    for (size_t i = 0; i < n; i++) sb_printf(b, i ? ",%u" : "%u", (unsigned char)piece[i]);
    sb_puts(b, "]");
}

/* Logprobs of lp[0..n) in the chat shape {"content":[...]} or the legacy
 * completions shape {"tokens","token_logprobs","top_logprobs","text_offset"}. */
static void put_logprobs(sbuf *b, const req_state *rs, const job_logprob *lp, int n) {
    const qai_tokenizer *tok = qai_model_tokenizer(rs->sm->m);
    if (rs->ep == EP_CHAT) {
        sb_puts(b, "{\"content\":[");
        for (int i = 0; i < n; i++) {
            if (i) sb_puts(b, ",");
            put_token_obj(b, tok, lp[i].token, lp[i].logprob);
            sb_puts(b, ",\"top_logprobs\":[");
            for (int k = 0; k < lp[i].n_top; k++) {
                if (k) sb_puts(b, ",");
                put_token_obj(b, tok, lp[i].top_id[k], lp[i].top_lp[k]);
                sb_puts(b, "}");
            }
            sb_puts(b, "]}");
        }
        sb_puts(b, "]}");
        return;
    }
    char piece[256];
    size_t pn;
    sb_puts(b, "{\"tokens\":[");
    for (int i = 0; i < n; i++) {
        token_text(tok, lp[i].token, piece, sizeof piece, &pn);
        if (i) sb_puts(b, ",");
        sb_json_str(b, piece, pn);
    }
    sb_puts(b, "],\"token_logprobs\":[");
    for (int i = 0; i < n; i++) sb_printf(b, i ? ",%.6g" : "%.6g", (double)lp[i].logprob);
    sb_puts(b, "],\"top_logprobs\":[");
    for (int i = 0; i < n; i++) {
        sb_puts(b, i ? ",{" : "{");
        for (int k = 0; k < lp[i].n_top; k++) {
            token_text(tok, lp[i].top_id[k], piece, sizeof piece, &pn);
            if (k) sb_puts(b, ",");
            sb_json_str(b, piece, pn);
            sb_printf(b, ":%.6g", (double)lp[i].top_lp[k]);
        }
        sb_puts(b, "}");
    }
    sb_puts(b, "],\"text_offset\":[");
    for (int i = 0; i < n; i++) sb_printf(b, i ? ",%zu" : "%zu", lp[i].text_start);
    sb_puts(b, "]}");
}

static void put_usage(sbuf *b, int prompt, int completion) {
    sb_printf(b, "{\"prompt_tokens\":%d,\"completion_tokens\":%d,\"total_tokens\":%d}", prompt, completion,
              prompt + completion);
}

static void put_head(sbuf *b, const req_state *rs, const char *object) {
    sb_puts(b, "{\"id\":");
    sb_json_str(b, rs->id, strlen(rs->id));
    sb_printf(b, ",\"object\":\"%s\",\"created\":%lld,\"model\":", object, (long long)rs->created);
    sb_json_str(b, rs->model, strlen(rs->model));
    sb_puts(b, ",\"system_fingerprint\":\"qai\"");
}

/* ---- tool calls in the output ---- */

/* The calls in a tool-call job's published text (*mode as serve_tool_scan);
 * returns how many have a complete name (the ones a response can show). */
static int job_calls(const req_state *rs, const qai_job *j, serve_tool_span *sp, int *mode) {
    int n = serve_tool_scan(j->text.p ? j->text.p : "", j->text.n, rs->req->parallel_tools, sp, QAI_SERVE_MAX_TOOL_CALLS, mode);
    if (n > QAI_SERVE_MAX_TOOL_CALLS) n = QAI_SERVE_MAX_TOOL_CALLS;
    int named = 0;
    while (named < n && sp[named].name_done) named++;
    return named;
}

/* "call_" and 24 hex digits, the same for a call every time it is shown. */
static void put_call_id(sbuf *b, const req_state *rs, int choice, int k) {
    char seed[96], hex[65];
    uint8_t h[32];
    snprintf(seed, sizeof seed, "%s/%d/%d", rs->id, choice, k);
    qai_sha256(seed, strlen(seed), h);
    qai_hex(h, 12, hex);
    sb_printf(b, "\"call_%.24s\"", hex);
}

/* One call as OpenAI shows it: {"id","type","function":{"name","arguments"}}
 * (legacy functions: {"name","arguments"}). The name is the JSON string the
 * grammar let the model write, one of the tools' names verbatim. */
static void put_call(sbuf *b, const req_state *rs, const qai_job *j, const serve_tool_span *sp, int k) {
    if (!rs->req->legacy_functions) {
        sb_puts(b, "{\"id\":");
        put_call_id(b, rs, j->index, k);
        sb_puts(b, ",\"type\":\"function\",\"function\":");
    }
    sb_puts(b, "{\"name\":");
    sb_put(b, j->text.p + sp->name_off, sp->name_len);
    sb_puts(b, ",\"arguments\":");
    sb_json_str(b, j->text.p + sp->args_off, sp->args_end - sp->args_off);
    sb_puts(b, rs->req->legacy_functions ? "}" : "}}");
}

static const char *calls_finish(const req_state *rs) { return rs->req->legacy_functions ? "function_call" : "tool_calls"; }

/* The whole non-streaming response (group finished, caller holds g->mu). */
static void full_response(sbuf *b, const req_state *rs) {
    const job_group *g = rs->g;
    put_head(b, rs, rs->ep == EP_CHAT ? "chat.completion" : "text_completion");
    sb_puts(b, ",\"choices\":[");
    int completion = 0;
    for (int i = 0; i < g->n_jobs; i++) {
        const qai_job *j = &g->jobs[i];
        completion += j->n_gen;
        sb_printf(b, "%s{\"index\":%d,", i ? "," : "", i);
        const char *fr = finish_name(j->finish) ? finish_name(j->finish) : "stop";
        serve_tool_span sp[QAI_SERVE_MAX_TOOL_CALLS];
        int mode = 0, nc = rs->req->grammar_is_tools ? job_calls(rs, j, sp, &mode) : 0;
        if (rs->ep == EP_CHAT && mode == 1 && nc > 0) {
            sb_puts(b, "\"message\":{\"role\":\"assistant\",\"content\":null,");
            if (rs->req->legacy_functions) {
                sb_puts(b, "\"function_call\":");
                put_call(b, rs, j, &sp[0], 0);
            } else {
                sb_puts(b, "\"tool_calls\":[");
                for (int k = 0; k < nc; k++) {
                    if (k) sb_puts(b, ",");
                    put_call(b, rs, j, &sp[k], k);
                }
                sb_puts(b, "]");
            }
            sb_puts(b, ",\"refusal\":null},");
            if (j->finish == JOB_STOP) fr = calls_finish(rs);
        } else if (rs->ep == EP_CHAT) {
            sb_puts(b, "\"message\":{\"role\":\"assistant\",\"content\":");
            sb_json_str(b, j->text.p ? j->text.p : "", j->text.n);
            sb_puts(b, ",\"refusal\":null},");
        } else {
            sb_puts(b, "\"text\":");
            sb_json_str(b, j->text.p ? j->text.p : "", j->text.n);
            sb_puts(b, ",");
        }
        sb_puts(b, "\"logprobs\":");
        if (j->logprobs) put_logprobs(b, rs, j->lp, j->n_lp);
        else
            sb_puts(b, "null");
        sb_printf(b, ",\"finish_reason\":\"%s\"}", fr);
    }
    sb_puts(b, "],\"usage\":");
    put_usage(b, g->n_prompt, completion);
    if (rs->citations) {
        sb_puts(b, ",\"citations\":");
        sb_puts(b, rs->citations);
    }
    sb_puts(b, "}");
}

/* The error a group ended with, if a job ended other than stop/length. */
static bool group_error(const job_group *g, qai_serve_error *e) {
    for (int i = 0; i < g->n_jobs; i++) {
        const qai_job *j = &g->jobs[i];
        switch (j->finish) {
        case JOB_TIMEOUT:
            serve_err(e, 504, "timeout_error", "timeout", NULL, "the request did not finish within the server's timeout");
            return true;
        case JOB_SHUTDOWN:
            serve_err(e, 503, "server_error", "shutting_down", NULL, "the server is shutting down");
            return true;
        case JOB_ERROR:
            serve_err(e, 500, "server_error", "engine_error", NULL, "%s", j->error[0] ? j->error : "the engine failed");
            return true;
        case JOB_CANCELLED:
            serve_err(e, 499, "cancelled", "cancelled", NULL, "the request was cancelled");
            return true;
        default: break;
        }
    }
    return false;
}

static bool group_done(const job_group *g) {
    for (int i = 0; i < g->n_jobs; i++)
        if (g->jobs[i].finish == JOB_RUNNING) return false;
    return true;
}

static void cancel_group(req_state *rs) {
    if (!rs->g) return;
    for (int i = 0; i < rs->g->n_jobs; i++) atomic_store(&rs->g->jobs[i].cancel, true);
    qai_engine_poke(rs->sm->eng);
}

static void abs_deadline(struct timespec *ts, int ms) {
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_nsec += (long)ms * 1000000L;
    ts->tv_sec += ts->tv_nsec / 1000000000L;
    ts->tv_nsec %= 1000000000L;
}

/* Generated tokens of the group so far (caller holds g->mu). */
static void tally(req_state *rs) {
    int c = 0;
    uint64_t first = 0;
    for (int i = 0; i < rs->g->n_jobs; i++) {
        c += rs->g->jobs[i].n_gen;
        uint64_t t = rs->g->jobs[i].t_first_ns;
        if (t && (!first || t < first)) first = t;
    }
    rs->completion_tokens = c;
    if (first && first > rs->t0) rs->ttft_ms = (double)(first - rs->t0) / 1e6;
}

/* ---- streaming ---- */

static void sse_chunk_begin(sbuf *b, const req_state *rs, int index) {
    sb_puts(b, "data: ");
    put_head(b, rs, rs->ep == EP_CHAT ? "chat.completion.chunk" : "text_completion");
    sb_printf(b, ",\"choices\":[{\"index\":%d,", index);
}

/* The stream's one error event (the group's error in OpenAI's shape); the
 * request's outcome records it. */
static void put_stream_error(sbuf *b, req_state *rs, const job_group *g) {
    qai_serve_error e;
    group_error(g, &e);
    sb_puts(b, "data: ");
    error_json(b, &e);
    sb_puts(b, "\n\n");
    snprintf(rs->outcome, sizeof rs->outcome, "error:%s", e.code);
    rs->stream_error = true;
}

/* ,"logprobs":... of job i's tokens not streamed yet (null if none), so the
 * chunks of a stream carry every token's logprobs exactly once, in order, as
 * the non-streaming response has them. */
static void put_chunk_lp(sbuf *b, req_state *rs, const qai_job *j) {
    int i = j->index;
    sb_puts(b, ",\"logprobs\":");
    if (j->logprobs && j->n_lp > rs->sent_lp[i]) {
        put_logprobs(b, rs, j->lp + rs->sent_lp[i], j->n_lp - rs->sent_lp[i]);
        rs->sent_lp[i] = j->n_lp;
    } else {
        sb_puts(b, "null");
    }
}

/* Tool-call deltas of job j, as OpenAI streams them: a chunk with the role
 * (content null), then per call one chunk with its index, id, type and name
 * (arguments ""), then chunks with the new bytes of its arguments. Legacy
 * functions stream delta.function_call the same way. Each chunk carries the
 * logprobs of the tokens published since the previous one (the tokens of
 * the call's JSON around the arguments included); what is left when the
 * call ends goes with the finish chunk. */
static void stream_calls(req_state *rs, const qai_job *j, const serve_tool_span *sp, int nc) {
    sbuf *b = &rs->out;
    int i = j->index;
    tc_stream *ts = &rs->tcs[i];
    bool legacy = rs->req->legacy_functions;
    if (legacy && nc > 1) nc = 1;
    if (!rs->sent_role[i]) {
        sse_chunk_begin(b, rs, i);
        sb_puts(b, "\"delta\":{\"role\":\"assistant\",\"content\":null}");
        put_chunk_lp(b, rs, j);
        sb_puts(b, ",\"finish_reason\":null}]}\n\n");
        rs->sent_role[i] = true;
    }
    for (int k = 0; k < nc; k++) {
        if (k >= ts->calls) {
            sse_chunk_begin(b, rs, i);
            if (legacy) sb_puts(b, "\"delta\":{\"function_call\":{\"name\":");
            else {
                sb_printf(b, "\"delta\":{\"tool_calls\":[{\"index\":%d,\"id\":", k);
                put_call_id(b, rs, i, k);
                sb_puts(b, ",\"type\":\"function\",\"function\":{\"name\":");
            }
            sb_put(b, j->text.p + sp[k].name_off, sp[k].name_len);
            sb_puts(b, legacy ? ",\"arguments\":\"\"}}" : ",\"arguments\":\"\"}}]}");
            put_chunk_lp(b, rs, j);
            sb_puts(b, ",\"finish_reason\":null}]}\n\n");
            ts->calls = k + 1;
            ts->args_sent[k] = 0;
        }
        size_t have = sp[k].args_end - sp[k].args_off;
        if (have > ts->args_sent[k]) {
            sse_chunk_begin(b, rs, i);
            if (legacy) sb_puts(b, "\"delta\":{\"function_call\":{\"arguments\":");
            else
                sb_printf(b, "\"delta\":{\"tool_calls\":[{\"index\":%d,\"function\":{\"arguments\":", k);
            sb_json_str(b, j->text.p + sp[k].args_off + ts->args_sent[k], have - ts->args_sent[k]);
            sb_puts(b, legacy ? "}}" : "}}]}");
            put_chunk_lp(b, rs, j);
            sb_puts(b, ",\"finish_reason\":null}]}\n\n");
            ts->args_sent[k] = have;
        }
    }
    rs->sent_text[i] = j->text.n;
}

/* Appends to rs->out the chunks for everything new in the group (caller holds
 * g->mu). Returns true if something was added. */
static bool stream_collect(req_state *rs) {
    job_group *g = rs->g;
    sbuf *b = &rs->out;
    size_t before = b->n;
    for (int i = 0; i < g->n_jobs; i++) {
        qai_job *j = &g->jobs[i];
        if (rs->sent_final[i]) continue;
        bool has_text = j->text.n > rs->sent_text[i], has_lp = j->n_lp > rs->sent_lp[i];
        bool ended = j->finish != JOB_RUNNING;
        serve_tool_span sp[QAI_SERVE_MAX_TOOL_CALLS];
        int mode = 0, nc = 0;
        if (rs->req->grammar_is_tools) {
            nc = job_calls(rs, j, sp, &mode);
            if (mode < 0 && !ended) continue; /* only whitespace yet: text or a call? */
        }
        if (mode == 1) {
            stream_calls(rs, j, sp, nc);
            if (ended) {
                const char *fr = finish_name(j->finish);
                if (fr) {
                    if (j->finish == JOB_STOP && rs->tcs[i].calls > 0) fr = calls_finish(rs);
                    sse_chunk_begin(b, rs, i);
                    sb_puts(b, "\"delta\":{}");
                    put_chunk_lp(b, rs, j);
                    sb_printf(b, ",\"finish_reason\":\"%s\"}]}\n\n", fr);
                } else if (!rs->stream_error) {
                    put_stream_error(b, rs, g);
                }
                rs->sent_final[i] = true;
            }
            continue;
        }
        if (rs->ep == EP_CHAT && !rs->sent_role[i]) {
            sse_chunk_begin(b, rs, i);
            sb_puts(b, "\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n");
            rs->sent_role[i] = true;
        }
        if (has_text || has_lp) {
            sse_chunk_begin(b, rs, i);
            if (rs->ep == EP_CHAT) {
                sb_puts(b, "\"delta\":{\"content\":");
                sb_json_str(b, j->text.p + rs->sent_text[i], j->text.n - rs->sent_text[i]);
                sb_puts(b, "},");
            } else {
                sb_puts(b, "\"text\":");
                sb_json_str(b, j->text.p ? j->text.p + rs->sent_text[i] : "", j->text.n - rs->sent_text[i]);
                sb_puts(b, ",");
            }
            sb_puts(b, "\"logprobs\":");
            if (j->logprobs) put_logprobs(b, rs, j->lp + rs->sent_lp[i], j->n_lp - rs->sent_lp[i]);
            else
                sb_puts(b, "null");
            sb_puts(b, ",\"finish_reason\":null}]}\n\n");
            rs->sent_text[i] = j->text.n;
            rs->sent_lp[i] = j->n_lp;
        }
        if (ended) {
            const char *fr = finish_name(j->finish);
            if (fr) {
                sse_chunk_begin(b, rs, i);
                sb_printf(b, "%s,\"logprobs\":null,\"finish_reason\":\"%s\"}]}\n\n",
                          rs->ep == EP_CHAT ? "\"delta\":{}" : "\"text\":\"\"", fr);
            } else if (!rs->stream_error) {
                put_stream_error(b, rs, g);
            }
            rs->sent_final[i] = true;
        }
    }
    if (!rs->stream_done && group_done(g)) {
        bool all_sent = true;
        for (int i = 0; i < g->n_jobs; i++) all_sent &= rs->sent_final[i];
        if (all_sent) {
            tally(rs);
            if (rs->req->include_usage || rs->citations) { /* the final chunk: usage and/or citations */
                sb_puts(b, "data: ");
                put_head(b, rs, rs->ep == EP_CHAT ? "chat.completion.chunk" : "text_completion");
                sb_puts(b, ",\"choices\":[]");
                if (rs->req->include_usage) {
                    sb_puts(b, ",\"usage\":");
                    put_usage(b, g->n_prompt, rs->completion_tokens);
                }
                if (rs->citations) {
                    sb_puts(b, ",\"citations\":");
                    sb_puts(b, rs->citations);
                }
                sb_puts(b, "}\n\n");
            }
            sb_puts(b, "data: [DONE]\n\n");
            rs->stream_done = true;
            if (!rs->stream_error) {
                const char *fr = finish_name(g->jobs[0].finish);
                snprintf(rs->outcome, sizeof rs->outcome, "%s", fr ? fr : "stop");
            }
        }
    }
    return b->n > before;
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    req_state *rs = cls;
    for (;;) {
        if (rs->out_off < rs->out.n) {
            size_t n = rs->out.n - rs->out_off < max ? rs->out.n - rs->out_off : max;
            memcpy(buf, rs->out.p + rs->out_off, n);
            rs->out_off += n;
            if (rs->out_off == rs->out.n) rs->out_off = rs->out.n = 0;
            return (ssize_t)n;
        }
        if (rs->stream_done) return MHD_CONTENT_READER_END_OF_STREAM;
        if (rs->out.oom) return MHD_CONTENT_READER_END_WITH_ERROR;
        job_group *g = rs->g;
        pthread_mutex_lock(&g->mu);
        bool got = stream_collect(rs);
        while (!got) {
            struct timespec ts;
            abs_deadline(&ts, 100);
            pthread_cond_timedwait(&g->cv, &g->mu, &ts);
            got = stream_collect(rs);
            if (!got && client_gone(rs->socket_fd)) break;
        }
        pthread_mutex_unlock(&g->mu);
        if (!got) { /* the client hung up: free the slots */
            cancel_group(rs);
            snprintf(rs->outcome, sizeof rs->outcome, "cancelled");
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
}

/* ---- generation endpoints ---- */

/* The grammar of a request and one state per choice, owned by the job group
 * (the engine may use them after the HTTP side let go). */
typedef struct {
    qai_grammar *g;
    qai_grammar_state **st;
    int n;
} group_grammar;

static void group_grammar_free(void *p) {
    group_grammar *gg = p;
    for (int i = 0; i < gg->n; i++) qai_grammar_state_free(gg->st[i]);
    qai_free(gg->st);
    qai_grammar_free(gg->g);
    qai_free(gg);
}

/* Ends a choice as soon as its document is closed: complete, and the last
 * byte other than whitespace is not a digit (a number could still grow; then
 * the grammar lets the model write whitespace or end). Under tool_choice auto,
 * free text never ends this way. */
static bool grammar_done(void *user, const int32_t *gen, int n_gen, const char *text, size_t len) {
    qai_grammar_state *st = user;
    if (qai_grammar_state_sync(st, gen, n_gen)) return false; /* the mask hook then allows only the end */
    if (!qai_grammar_state_is_tool_call(st) || !qai_grammar_is_complete(st)) return false;
    while (len && (text[len - 1] == ' ' || text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == '\t')) len--;
    return len > 0 && !(text[len - 1] >= '0' && text[len - 1] <= '9');
}

/* Moves the request's grammar into its job group and hooks a state per choice
 * into the jobs. */
static qai_status attach_grammar(req_state *rs) {
    qai_serve_request *r = rs->req;
    group_grammar *gg = qai_calloc(1, sizeof *gg);
    if (!gg) return qai_error(QAI_ERR_NOMEM, "out of memory");
    gg->st = qai_calloc((size_t)r->n, sizeof *gg->st);
    gg->g = r->grammar;
    r->grammar = NULL;
    rs->g->user = gg;
    rs->g->user_free = group_grammar_free;
    if (!gg->st) return qai_error(QAI_ERR_NOMEM, "out of memory");
    for (int i = 0; i < r->n; i++) {
        qai_status st = qai_grammar_state_new(gg->g, rs->sm->gv, &gg->st[i]);
        if (st) return st;
        gg->n = i + 1;
        qai_job *j = &rs->g->jobs[i];
        j->mask_fn = qai_grammar_mask_hook;
        j->done_fn = grammar_done;
        j->mask_user = gg->st[i];
    }
    return QAI_OK;
}

static qai_status retrieval_prompt(req_state *rs, const qai_tokenizer *tok, int n_ctx, int32_t **ids_out, size_t *n_out,
                                   qai_serve_error *e);

static MHD_Result_t handle_generate(req_state *rs) {
    qai_server *s = rs->srv;
    qai_serve_error e;
    MHD_Result_t ret;
    if (check_auth(rs, &ret)) return ret;
    if (rs->too_big) return fail(rs, 413, "invalid_request_error", "request_too_large", NULL, "the request body is larger than the server's limit");
    int kind = rs->ep == EP_CHAT ? QAI_SERVE_CHAT : QAI_SERVE_COMPLETIONS;
    if (qai_serve_request_parse(rs->body.p ? rs->body.p : "", rs->body.n, kind, &rs->req, &e)) return send_error(rs, &e, NULL);
    qai_serve_request *r = rs->req;
    rs->sm = resolve_model(rs, r->model, r->user, &e);
    if (!rs->sm) return send_error(rs, &e, NULL);
    if (rs->sm->encoder) {
        serve_err(&e, 400, "invalid_request_error", "embedding_model", "model",
                  "model '%.200s' is an embedding model: it serves /v1/embeddings only", rs->sm->name);
        return send_error(rs, &e, NULL);
    }
    const qai_tokenizer *tok = qai_model_tokenizer(rs->sm->m);
    const int V = qai_tokenizer_n_vocab(tok), n_ctx = qai_engine_n_ctx(rs->sm->eng);
    /* the prompt */
    int32_t *ids = NULL;
    size_t n_ids = 0;
    const char *extra_stop = NULL;
    if (kind == QAI_SERVE_CHAT) {
        if (rs->sm->fmt == QAI_CHAT_UNKNOWN)
            return fail(rs, 400, "invalid_request_error", "no_chat_template", "model",
                        "this model has no chat template qai recognizes; use /v1/completions or start the server with --template");
        if (r->retr.index) {
            if (retrieval_prompt(rs, tok, n_ctx, &ids, &n_ids, &e)) return send_error(rs, &e, NULL);
        } else {
            char *text = NULL;
            if (qai_chat_apply(rs->sm->fmt, r->msgs, r->n_msgs, true, &text))
                return fail(rs, 400, "invalid_request_error", "invalid_value", "messages", qai_last_error());
            qai_status st = qai_tokenizer_encode(tok, text, strlen(text), QAI_TOK_ADD_SPECIAL | QAI_TOK_PARSE_SPECIAL, &ids, &n_ids);
            qai_free(text);
            if (st) return fail(rs, 400, "invalid_request_error", "invalid_value", "messages", qai_last_error());
        }
        extra_stop = qai_chat_end_marker(rs->sm->fmt);
    } else if (r->prompt) {
        if (qai_tokenizer_encode(tok, r->prompt, r->prompt_len, QAI_TOK_ADD_SPECIAL, &ids, &n_ids))
            return fail(rs, 400, "invalid_request_error", "invalid_value", "prompt", qai_last_error());
    } else {
        for (int i = 0; i < r->n_prompt_tokens; i++)
            if (r->prompt_tokens[i] >= V) {
                serve_err(&e, 400, "invalid_request_error", "invalid_value", "prompt",
                          "prompt[%d] is token %d, outside the vocabulary of %d tokens", i, r->prompt_tokens[i], V);
                return send_error(rs, &e, NULL);
            }
        ids = qai_malloc((size_t)r->n_prompt_tokens * sizeof(int32_t));
        if (!ids) return fail(rs, 500, "server_error", "out_of_memory", NULL, "out of memory");
        memcpy(ids, r->prompt_tokens, (size_t)r->n_prompt_tokens * sizeof(int32_t));
        n_ids = (size_t)r->n_prompt_tokens;
    }
    rs->prompt_tokens = (int)n_ids;
    if (n_ids == 0) {
        qai_free(ids);
        return fail(rs, 400, "invalid_request_error", "invalid_value", kind == QAI_SERVE_CHAT ? "messages" : "prompt",
                    "the prompt is empty and the model adds no BOS token");
    }
    if ((int)n_ids >= n_ctx) {
        qai_free(ids);
        serve_err(&e, 400, "invalid_request_error", "context_length_exceeded", kind == QAI_SERVE_CHAT ? "messages" : "prompt",
                  "the prompt has %zu tokens; this server's context holds %d (prompt and completion together)", n_ids, n_ctx);
        return send_error(rs, &e, NULL);
    }
    int max_tokens = r->max_tokens > 0 ? r->max_tokens : s->p.max_tokens_default > 0 ? s->p.max_tokens_default : n_ctx - (int)n_ids;
    if (max_tokens > n_ctx - (int)n_ids) max_tokens = n_ctx - (int)n_ids;
    /* accounting */
    if (rs->has_key && s->p.auth.account) {
        int retry = 1;
        char msg[256] = "";
        int rc = s->p.auth.account(s->p.auth.user, &rs->key, QAI_ACCOUNT_BEGIN, (int64_t)n_ids + (int64_t)max_tokens * r->n,
                                   &retry, msg, sizeof msg);
        if (rc) {
            qai_free(ids);
            char ra[24];
            snprintf(ra, sizeof ra, "%d", retry > 0 ? retry : 1);
            serve_err(&e, 429, "rate_limit_error", "rate_limit_exceeded", NULL, "%s",
                      msg[0] ? msg : "this key's rate or token limit is exhausted");
            return send_error(rs, &e, ra);
        }
        rs->accounted = true;
    }
    /* the jobs */
    rs->g = job_group_new(r->n, ids, (int)n_ids);
    qai_free(ids);
    if (!rs->g) return fail(rs, 500, "server_error", "out_of_memory", NULL, "out of memory");
    uint64_t seed = r->has_seed ? r->seed : qai_time_ns() ^ ((uint64_t)atomic_fetch_add(&s->next_id, 1) << 32);
    /* a grammar decides where constrained output ends; the template's end
     * marker could only cut it (free text under tool_choice auto keeps it) */
    if (r->grammar && !(r->grammar_is_tools && r->tools == SERVE_TOOLS_AUTO)) extra_stop = NULL;
    if (extra_stop && *extra_stop && r->n_stop < QAI_SERVE_MAX_STOP) {
        bool dup = false;
        for (int k = 0; k < r->n_stop; k++) dup |= !strcmp(r->stop[k], extra_stop);
        if (!dup) {
            r->stop[r->n_stop] = qai_strdup(extra_stop);
            if (r->stop[r->n_stop]) r->stop_len[r->n_stop] = strlen(extra_stop), r->n_stop++;
        }
    }
    for (int i = 0; i < r->n; i++) {
        qai_job *j = &rs->g->jobs[i];
        j->max_tokens = max_tokens;
        j->sp = qai_sampler_default_params();
        j->sp.temp = r->temperature;
        j->sp.top_k = 0;
        j->sp.top_p = r->top_p;
        j->sp.min_p = 0;
        j->sp.freq_penalty = r->frequency_penalty;
        j->sp.presence_penalty = r->presence_penalty;
        j->sp.repeat_last_n = -1;
        j->sp.seed = seed + (uint64_t)i;
        j->stop = (const char *const *)r->stop;
        j->stop_len = r->stop_len;
        j->n_stop = r->n_stop;
        j->logprobs = r->logprobs;
        j->top_logprobs = r->top_logprobs;
        j->deadline_ns = s->p.timeout_s > 0 ? rs->t0 + (uint64_t)(s->p.timeout_s * 1e9) : 0;
    }
    if (r->grammar && attach_grammar(rs)) return fail(rs, 500, "server_error", "out_of_memory", NULL, qai_last_error());
    rs->g->t_submit_ns = qai_time_ns();
    qai_status st = qai_engine_submit(rs->sm->eng, rs->g);
    if (st == QAI_ERR_RANGE) return fail(rs, 503, "server_error", "queue_full", NULL, qai_last_error());
    if (st) return fail(rs, 503, "server_error", "shutting_down", NULL, "the server is shutting down");
    rs->created = (int64_t)time(NULL);
    snprintf(rs->id, sizeof rs->id, "%s-%016llx", kind == QAI_SERVE_CHAT ? "chatcmpl" : "cmpl",
             (unsigned long long)(qai_time_ns() * 0x9E3779B97F4A7C15ull ^ atomic_fetch_add(&s->next_id, 1)));
    if (r->stream) {
        rs->sent_text = qai_calloc((size_t)r->n, sizeof(size_t));
        rs->sent_lp = qai_calloc((size_t)r->n, sizeof(int));
        rs->sent_final = qai_calloc((size_t)r->n, sizeof(bool));
        rs->sent_role = qai_calloc((size_t)r->n, sizeof(bool));
        rs->tcs = qai_calloc((size_t)r->n, sizeof(tc_stream));
        if (!rs->sent_text || !rs->sent_lp || !rs->sent_final || !rs->sent_role || !rs->tcs) {
            cancel_group(rs);
            return fail(rs, 500, "server_error", "out_of_memory", NULL, "out of memory");
        }
        struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_reader, rs, NULL);
        if (!resp) {
            cancel_group(rs);
            return MHD_NO;
        }
        MHD_add_response_header(resp, "Content-Type", "text/event-stream");
        MHD_add_response_header(resp, "Cache-Control", "no-cache");
        MHD_add_response_header(resp, "X-Qai-Variant", rs->variant);
        ret = MHD_queue_response(rs->conn, MHD_HTTP_OK, resp);
        MHD_destroy_response(resp);
        rs->status = 200;
        snprintf(rs->outcome, sizeof rs->outcome, "cancelled"); /* until the stream completes */
        return ret;
    }
    /* non-streaming: wait for every choice */
    job_group *g = rs->g;
    pthread_mutex_lock(&g->mu);
    bool gone = false;
    while (!group_done(g)) {
        struct timespec ts;
        abs_deadline(&ts, 100);
        pthread_cond_timedwait(&g->cv, &g->mu, &ts);
        if (!group_done(g) && client_gone(rs->socket_fd)) {
            gone = true;
            break;
        }
    }
    tally(rs);
    if (gone) {
        pthread_mutex_unlock(&g->mu);
        cancel_group(rs);
        snprintf(rs->outcome, sizeof rs->outcome, "cancelled");
        rs->status = 499;
        return MHD_NO;
    }
    if (group_error(g, &e)) {
        pthread_mutex_unlock(&g->mu);
        return send_error(rs, &e, e.status == 503 ? "1" : NULL);
    }
    sbuf b = {0};
    full_response(&b, rs);
    const char *fr = finish_name(g->jobs[0].finish);
    snprintf(rs->outcome, sizeof rs->outcome, "%s", fr ? fr : "stop");
    pthread_mutex_unlock(&g->mu);
    return send_json(rs, 200, &b);
}

/* ---- other endpoints ---- */

static MHD_Result_t handle_models(req_state *rs) {
    qai_server *s = rs->srv;
    MHD_Result_t ret;
    if (check_auth(rs, &ret)) return ret;
    sbuf b = {0};
    sb_puts(&b, "{\"object\":\"list\",\"data\":[");
    for (int i = 0; i < s->n_models; i++) {
        sb_puts(&b, i ? ",{\"id\":" : "{\"id\":");
        sb_json_str(&b, s->models[i].name, strlen(s->models[i].name));
        sb_printf(&b, ",\"object\":\"model\",\"created\":%lld,\"owned_by\":\"qai\"}", (long long)s->models[i].created);
    }
    pthread_mutex_lock(&s->routes_mu);
    for (int i = 0; i < serve_routes_count(s->routes); i++) {
        const char *n = serve_routes_name(s->routes, i);
        bool is_model = false;
        for (int k = 0; k < s->n_models; k++) is_model |= !strcmp(s->models[k].name, n);
        if (is_model) continue;
        sb_puts(&b, ",{\"id\":");
        sb_json_str(&b, n, strlen(n));
        sb_printf(&b, ",\"object\":\"model\",\"created\":%lld,\"owned_by\":\"qai\"}", (long long)s->models[0].created);
    }
    pthread_mutex_unlock(&s->routes_mu);
    sb_puts(&b, "]}");
    snprintf(rs->outcome, sizeof rs->outcome, "ok");
    return send_json(rs, 200, &b);
}

static MHD_Result_t handle_tokenize(req_state *rs) {
    MHD_Result_t ret;
    if (check_auth(rs, &ret)) return ret;
    if (rs->too_big) return fail(rs, 413, "invalid_request_error", "request_too_large", NULL, "the request body is larger than the server's limit");
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(rs->body.p ? rs->body.p : "", rs->body.n, &end, false);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return fail(rs, 400, "invalid_request_error", "invalid_json", NULL, "the request body must be a JSON object");
    }
    qai_serve_error e;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (model && !cJSON_IsNull(model) && !cJSON_IsString(model)) {
        cJSON_Delete(root);
        return fail(rs, 400, "invalid_request_error", "invalid_type", "model", "'model' must be a string");
    }
    rs->sm = resolve_model(rs, cJSON_IsString(model) ? model->valuestring : NULL, NULL, &e);
    if (!rs->sm) {
        cJSON_Delete(root);
        return send_error(rs, &e, NULL);
    }
    const qai_tokenizer *tok = qai_model_tokenizer(rs->sm->m);
    sbuf b = {0};
    if (rs->ep == EP_TOKENIZE) {
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(root, "content");
        const cJSON *add = cJSON_GetObjectItemCaseSensitive(root, "add_special");
        const cJSON *parse = cJSON_GetObjectItemCaseSensitive(root, "parse_special");
        const cJSON *pieces = cJSON_GetObjectItemCaseSensitive(root, "with_pieces");
        if (!cJSON_IsString(content) || (add && !cJSON_IsBool(add)) || (parse && !cJSON_IsBool(parse)) ||
            (pieces && !cJSON_IsBool(pieces))) {
            cJSON_Delete(root);
            return fail(rs, 400, "invalid_request_error", "invalid_type", cJSON_IsString(content) ? NULL : "content",
                        "expected {\"content\": string, \"add_special\": bool, \"parse_special\": bool, \"with_pieces\": bool}");
        }
        int flags = (cJSON_IsTrue(add) ? QAI_TOK_ADD_SPECIAL : 0) | (!parse || cJSON_IsTrue(parse) ? QAI_TOK_PARSE_SPECIAL : 0);
        int32_t *ids = NULL;
        size_t n = 0;
        if (qai_tokenizer_encode(tok, content->valuestring, strlen(content->valuestring), flags, &ids, &n)) {
            cJSON_Delete(root);
            return fail(rs, 400, "invalid_request_error", "invalid_value", "content", qai_last_error());
        }
        sb_puts(&b, "{\"tokens\":[");
        for (size_t i = 0; i < n; i++) {
            if (i) sb_puts(&b, ",");
            if (cJSON_IsTrue(pieces)) {
                char piece[256];
                size_t pn;
                token_text(tok, ids[i], piece, sizeof piece, &pn);
                sb_printf(&b, "{\"id\":%d,\"piece\":", ids[i]);
                sb_json_str(&b, piece, pn);
                sb_puts(&b, "}");
            } else
                sb_printf(&b, "%d", ids[i]);
        }
        sb_puts(&b, "]}");
        rs->prompt_tokens = (int)n;
        qai_free(ids);
    } else {
        const cJSON *tokens = cJSON_GetObjectItemCaseSensitive(root, "tokens");
        if (!cJSON_IsArray(tokens)) {
            cJSON_Delete(root);
            return fail(rs, 400, "invalid_request_error", "invalid_type", "tokens", "'tokens' must be an array of token ids");
        }
        int n = cJSON_GetArraySize(tokens), V = qai_tokenizer_n_vocab(tok), i = 0;
        int32_t *ids = qai_malloc((size_t)(n ? n : 1) * sizeof(int32_t));
        if (!ids) {
            cJSON_Delete(root);
            return fail(rs, 500, "server_error", "out_of_memory", NULL, "out of memory");
        }
        for (const cJSON *t = tokens->child; t; t = t->next, i++) {
            if (!cJSON_IsNumber(t) || t->valuedouble != (double)(int32_t)t->valuedouble || t->valuedouble < 0 || t->valuedouble >= V) {
                qai_free(ids);
                cJSON_Delete(root);
                serve_err(&e, 400, "invalid_request_error", "invalid_value", "tokens",
                          "'tokens[%d]' must be a token id in [0, %d)", i, V);
                return send_error(rs, &e, NULL);
            }
            ids[i] = (int32_t)t->valuedouble;
        }
        char *text = NULL;
        size_t len = 0;
        qai_status st = qai_tokenizer_decode(tok, ids, (size_t)n, 0, &text, &len);
        qai_free(ids);
        if (st) {
            cJSON_Delete(root);
            return fail(rs, 500, "server_error", "internal", NULL, qai_last_error());
        }
        sb_puts(&b, "{\"content\":");
        sb_json_str(&b, text, len);
        sb_puts(&b, "}");
        qai_free(text);
    }
    cJSON_Delete(root);
    snprintf(rs->outcome, sizeof rs->outcome, "ok");
    return send_json(rs, 200, &b);
}

/* The model's embedding context, made on first use (caller holds emb_mu). */
static qai_status embed_context(served_model *sm, qai_context **out) {
    if (!sm->emb_ctx) {
        qai_context_params cp = qai_context_default_params();
        cp.n_ctx = sm->n_ctx;
        cp.n_seq = 1;
        /* an encoder attends both ways, so its input goes through in one chunk */
        cp.n_batch = sm->encoder || sm->n_ctx < 512 ? sm->n_ctx : 512;
        cp.n_threads = sm->n_threads;
        qai_status st = qai_context_new(sm->m, &cp, &sm->emb_ctx);
        if (st) return st;
    }
    *out = sm->emb_ctx;
    return QAI_OK;
}

/* POST /v1/embeddings: each input is tokenized (BOS/CLS as the model's
 * tokenizer adds them) or taken as token ids, and embedded with qai_embed
 * (mean-pooled, L2-normalized) on the model's embedding context. */
static MHD_Result_t handle_embeddings(req_state *rs) {
    qai_server *s = rs->srv;
    qai_serve_error e;
    MHD_Result_t ret;
    if (check_auth(rs, &ret)) return ret;
    if (rs->too_big) return fail(rs, 413, "invalid_request_error", "request_too_large", NULL, "the request body is larger than the server's limit");
    if (qai_serve_request_parse(rs->body.p ? rs->body.p : "", rs->body.n, QAI_SERVE_EMBEDDINGS, &rs->req, &e))
        return send_error(rs, &e, NULL);
    qai_serve_request *r = rs->req;
    served_model *sm = rs->sm = resolve_model(rs, r->model, r->user, &e);
    if (!sm) return send_error(rs, &e, NULL);
    snprintf(rs->id, sizeof rs->id, "embd-%016llx",
             (unsigned long long)(qai_time_ns() * 0x9E3779B97F4A7C15ull ^ atomic_fetch_add(&s->next_id, 1)));
    const qai_tokenizer *tok = qai_model_tokenizer(sm->m);
    const int V = qai_tokenizer_n_vocab(tok), D = qai_model_get_info(sm->m)->n_embd;
    if (r->dimensions && r->dimensions != D) {
        serve_err(&e, 400, "invalid_request_error", "invalid_value", "dimensions",
                  "'dimensions' is %d but model '%.200s' gives %d-dimensional embeddings and cannot shorten them", r->dimensions,
                  sm->name, D);
        return send_error(rs, &e, NULL);
    }
    /* the token ids of every input, checked before any work */
    const int n_in = r->n_inputs;
    int32_t **ids = qai_calloc((size_t)n_in, sizeof(int32_t *));
    int *n_ids = qai_calloc((size_t)n_in, sizeof(int));
    float *vec = NULL;
    bool ok = ids && n_ids;
    int64_t total = 0;
    e.status = 0;
    for (int i = 0; ok && i < n_in && !e.status; i++) {
        if (r->input_text[i]) {
            size_t n = 0;
            if (qai_tokenizer_encode(tok, r->input_text[i], r->input_len[i], QAI_TOK_ADD_SPECIAL, &ids[i], &n)) {
                serve_err(&e, 400, "invalid_request_error", "invalid_value", "input", "input[%d]: %s", i, qai_last_error());
                break;
            }
            n_ids[i] = (int)n;
        } else {
            for (int k = 0; k < r->input_ntok[i]; k++)
                if (r->input_tok[i][k] >= V) {
                    serve_err(&e, 400, "invalid_request_error", "invalid_value", "input",
                              "input[%d][%d] is token %d, outside the vocabulary of %d tokens", i, k, r->input_tok[i][k], V);
                    break;
                }
            n_ids[i] = r->input_ntok[i];
        }
        if (e.status) break;
        if (n_ids[i] == 0)
            serve_err(&e, 400, "invalid_request_error", "invalid_value", "input", "input[%d] gives no tokens", i);
        else if (n_ids[i] > sm->n_ctx)
            serve_err(&e, 400, "invalid_request_error", "context_length_exceeded", "input",
                      "input[%d] has %d tokens; model '%.200s' embeds at most %d", i, n_ids[i], sm->name, sm->n_ctx);
        total += n_ids[i];
    }
    rs->prompt_tokens = (int)(total < INT32_MAX ? total : INT32_MAX);
    if (ok && !e.status && rs->has_key && s->p.auth.account) {
        int retry = 1;
        char msg[256] = "";
        if (s->p.auth.account(s->p.auth.user, &rs->key, QAI_ACCOUNT_BEGIN, total, &retry, msg, sizeof msg)) {
            char ra[24];
            snprintf(ra, sizeof ra, "%d", retry > 0 ? retry : 1);
            serve_err(&e, 429, "rate_limit_error", "rate_limit_exceeded", NULL, "%s",
                      msg[0] ? msg : "this key's rate or token limit is exhausted");
            for (int i = 0; i < n_in; i++)
                if (r->input_text[i]) qai_free(ids[i]);
            qai_free(ids);
            qai_free(n_ids);
            return send_error(rs, &e, ra);
        }
        rs->accounted = true;
    }
    if (ok && !e.status) {
        vec = qai_malloc((size_t)n_in * (size_t)D * sizeof(float));
        ok = vec != NULL;
    }
    if (ok && !e.status) {
        uint64_t deadline = s->p.timeout_s > 0 ? rs->t0 + (uint64_t)(s->p.timeout_s * 1e9) : 0;
        pthread_mutex_lock(&sm->emb_mu);
        qai_context *ctx = NULL;
        if (embed_context(sm, &ctx))
            serve_err(&e, 500, "server_error", "engine_error", NULL, "cannot make the embedding context: %s", qai_last_error());
        for (int i = 0; ctx && i < n_in && !e.status; i++) {
            if (client_gone(rs->socket_fd)) {
                serve_err(&e, 499, "cancelled", "cancelled", NULL, "the client went away");
                break;
            }
            if (deadline && qai_time_ns() > deadline) {
                serve_err(&e, 504, "timeout_error", "timeout", NULL, "the request did not finish within the server's timeout");
                break;
            }
            const int32_t *t = r->input_text[i] ? ids[i] : r->input_tok[i];
            if (qai_embed(ctx, 0, t, n_ids[i], vec + (size_t)i * D))
                serve_err(&e, 500, "server_error", "engine_error", NULL, "embedding input[%d] failed: %s", i, qai_last_error());
        }
        pthread_mutex_unlock(&sm->emb_mu);
    }
    for (int i = 0; ids && i < n_in; i++)
        if (r->input_text[i]) qai_free(ids[i]);
    qai_free(ids);
    qai_free(n_ids);
    if (!ok && !e.status) serve_err(&e, 500, "server_error", "out_of_memory", NULL, "out of memory");
    if (e.status) {
        qai_free(vec);
        if (e.status == 499) {
            snprintf(rs->outcome, sizeof rs->outcome, "cancelled");
            rs->status = 499;
            return MHD_NO;
        }
        return send_error(rs, &e, NULL);
    }
    sbuf b = {0};
    sb_puts(&b, "{\"object\":\"list\",\"data\":[");
    for (int i = 0; i < n_in; i++) {
        const float *v = vec + (size_t)i * D;
        sb_printf(&b, "%s{\"object\":\"embedding\",\"index\":%d,\"embedding\":", i ? "," : "", i);
        if (r->base64) { /* little-endian float32, as OpenAI sends them */
            uint8_t *le = qai_malloc((size_t)D * 4);
            if (!le) {
                b.oom = true;
                break;
            }
            for (int d = 0; d < D; d++) {
                uint32_t u;
                memcpy(&u, &v[d], 4);
                le[4 * d] = (uint8_t)u, le[4 * d + 1] = (uint8_t)(u >> 8), le[4 * d + 2] = (uint8_t)(u >> 16), le[4 * d + 3] = (uint8_t)(u >> 24);
            }
            sb_puts(&b, "\"");
            sb_base64(&b, le, (size_t)D * 4);
            sb_puts(&b, "\"");
            qai_free(le);
        } else {
            sb_puts(&b, "[");
            for (int d = 0; d < D; d++) /* %.9g: every float32 reads back exactly */
                sb_printf(&b, d ? ",%.9g" : "%.9g", isfinite(v[d]) ? (double)v[d] : 0.0);
            sb_puts(&b, "]");
        }
        sb_puts(&b, "}");
    }
    sb_puts(&b, "],\"model\":");
    sb_json_str(&b, rs->model, strlen(rs->model));
    sb_printf(&b, ",\"usage\":{\"prompt_tokens\":%lld,\"total_tokens\":%lld}}", (long long)total, (long long)total);
    qai_free(vec);
    snprintf(rs->outcome, sizeof rs->outcome, "ok");
    return send_json(rs, 200, &b);
}

static void engine_metrics(qai_server *s, sbuf *b) {
    static const struct {
        const char *name, *type, *help;
    } fams[] = {
        {"qai_queue_depth", "gauge", "requests waiting for a slot"},
        {"qai_slots_busy", "gauge", "slots generating or processing a prompt"},
        {"qai_slots", "gauge", "slots (parallel sequences) of the model's engine"},
        {"qai_kv_cache_used_ratio", "gauge", "fraction of the KV cache holding tokens (including cached prefixes)"},
        {"qai_batch_size", "gauge", "tokens in the engine's last batch"},
        {"qai_decode_calls_total", "counter", "forward passes run by the engine"},
        {"qai_batch_tokens_total", "counter", "tokens decoded by the engine (batch rows)"},
        {"qai_prefix_cache_hits_total", "counter", "requests that reused a cached prompt prefix"},
        {"qai_prefix_cache_tokens_total", "counter", "prompt tokens not recomputed thanks to the prefix cache"},
    };
    qai_engine_stats *st = qai_calloc((size_t)s->n_models, sizeof *st);
    if (!st) return;
    for (int i = 0; i < s->n_models; i++)
        if (s->models[i].eng) qai_engine_stats_get(s->models[i].eng, &st[i]);
    for (size_t f = 0; f < sizeof fams / sizeof fams[0]; f++) {
        sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", fams[f].name, fams[f].help, fams[f].name, fams[f].type);
        for (int i = 0; i < s->n_models; i++) {
            if (!s->models[i].eng) continue; /* an encoder has no engine */
            char esc[256];
            qai_metrics_escape(s->models[i].name, esc, sizeof esc);
            double v = 0;
            switch (f) {
            case 0: v = st[i].queue_depth; break;
            case 1: v = st[i].slots_busy; break;
            case 2: v = st[i].slots; break;
            case 3: v = st[i].kv_used_ratio; break;
            case 4: v = st[i].last_batch_rows; break;
            case 5: v = (double)st[i].decode_calls; break;
            case 6: v = (double)st[i].batch_rows; break;
            case 7: v = (double)st[i].prefix_hits; break;
            default: v = (double)st[i].prefix_tokens; break;
            }
            sb_printf(b, "%s{model=\"%s\"} %.10g\n", fams[f].name, esc, v);
        }
    }
    qai_free(st);
    sb_printf(b, "# HELP qai_ready 1 when every model is loaded and the server accepts requests\n# TYPE qai_ready gauge\nqai_ready %d\n",
              atomic_load(&s->shutting_down) ? 0 : 1);
    sb_printf(b, "# HELP qai_inflight_requests HTTP requests being handled\n# TYPE qai_inflight_requests gauge\nqai_inflight_requests %d\n",
              atomic_load(&s->inflight));
}

static MHD_Result_t handle_metrics(req_state *rs) {
    char *text = NULL;
    size_t len = 0;
    if (qai_metrics_render(rs->srv->metrics, &text, &len)) return fail(rs, 500, "server_error", "internal", NULL, qai_last_error());
    sbuf b = {.p = text, .n = len, .cap = len + 1};
    engine_metrics(rs->srv, &b);
    snprintf(rs->outcome, sizeof rs->outcome, "ok");
    MHD_Result_t r = b.oom ? fail(rs, 500, "server_error", "out_of_memory", NULL, "out of memory")
                           : send_text(rs, 200, "text/plain; version=0.0.4; charset=utf-8", b.p, b.n, NULL);
    sb_free(&b);
    return r;
}

/* ---- MHD callbacks ---- */

/* ---- collections ---- */

static MHD_Result_t handle_index(req_state *rs) {
    qai_server *s = rs->srv;
    MHD_Result_t ret;
    if (check_auth(rs, &ret)) return ret;
    bool upsert = rs->ep == EP_INDEX_UPSERT;
    /* writing a collection needs an admin key whenever keys are in use (a key
     * was presented and recognized: key_id is set) */
    if (upsert && rs->has_key && rs->key.key_id[0] && strcmp(rs->key.scope, "admin"))
        return fail(rs, 403, "permission_error", "forbidden", NULL, "adding documents to an index needs an API key with the admin scope");
    if (!qai_collection_name_ok(rs->index_name)) {
        char msg[200];
        snprintf(msg, sizeof msg, "'%.80s' is not an index name (1-64 of A-Z a-z 0-9 . _ -, not starting with '.')", rs->index_name);
        return fail(rs, 400, "invalid_request_error", "invalid_value", "name", msg);
    }
    snprintf(rs->model, sizeof rs->model, "%s", rs->index_name); /* the collection, for logs and audit */
    snprintf(rs->id, sizeof rs->id, "req-%llu", (unsigned long long)atomic_fetch_add(&s->next_id, 1));
    sbuf b = {0};
    qai_serve_error e;
    memset(&e, 0, sizeof e);
    const char *body = rs->body.p ? rs->body.p : "";
    int status = upsert ? serve_index_upsert_http(s->indexes, rs->index_name, body, rs->body.n, &b, &e)
                        : serve_index_search_http(s->indexes, rs->index_name, body, rs->body.n, &b, &e);
    if (status != 200) {
        sb_free(&b);
        return send_error(rs, &e, NULL);
    }
    if (b.oom) {
        sb_free(&b);
        return fail(rs, 500, "server_error", "out_of_memory", NULL, "out of memory");
    }
    snprintf(rs->outcome, sizeof rs->outcome, "ok");
    return send_json(rs, 200, &b);
}

/* Chat with "retrieval": searches the collection with the last user message,
 * and puts qai rag's instruction and the numbered passages into the system
 * message (prepended to the client's own system message, if any). Passages
 * are dropped from the end until the prompt leaves room to answer (at least
 * a quarter of the context or 64 positions). On success *prompt_ids holds
 * the tokenized prompt and rs->citations the passages used. */
static qai_status retrieval_prompt(req_state *rs, const qai_tokenizer *tok, int n_ctx, int32_t **ids_out, size_t *n_out,
                                   qai_serve_error *e) {
    qai_serve_request *r = rs->req;
    const char *query = NULL;
    for (size_t i = 0; i < r->n_msgs; i++)
        if (!strcmp(r->msgs[i].role, "user")) query = r->msgs[i].content;
    qai_collection_hit *h = NULL;
    int nh = 0, version = 0;
    if (!query || !query[strspn(query, " \t\r\n")])
        return serve_err(e, 400, "invalid_request_error", "invalid_value", "messages", "the last user message (the retrieval query) is empty");
    qai_status st = serve_indexes_search(rs->srv->indexes, r->retr.index, query, &r->retr, "retrieval.index", &h, &nh, &version, e);
    if (st) return st;
    bool has_sys = r->n_msgs && !strcmp(r->msgs[0].role, "system");
    qai_chat_message *m = qai_calloc(r->n_msgs + 1, sizeof *m);
    if (!m) {
        qai_collection_hits_free(h, nh);
        return serve_err(e, 500, "server_error", "out_of_memory", NULL, "out of memory");
    }
    size_t nm = 0;
    m[nm++].role = "system";
    for (size_t i = has_sys ? 1 : 0; i < r->n_msgs; i++) m[nm++] = r->msgs[i];
    int reserve = n_ctx / 4 > 64 ? n_ctx / 4 : 64;
    if (r->max_tokens > 0 && r->max_tokens < reserve) reserve = r->max_tokens;
    st = QAI_OK;
    for (int used = nh;; used--) {
        sbuf sys = {0};
        serve_put_passages(&sys, h, used);
        if (has_sys && r->msgs[0].content[0]) {
            sb_puts(&sys, "\n");
            sb_puts(&sys, r->msgs[0].content);
        }
        if (sys.oom) {
            sb_free(&sys);
            st = serve_err(e, 500, "server_error", "out_of_memory", NULL, "out of memory");
            break;
        }
        m[0].content = sys.p;
        char *text = NULL;
        int32_t *ids = NULL;
        size_t n_ids = 0;
        st = qai_chat_apply(rs->sm->fmt, m, nm, true, &text);
        if (!st) st = qai_tokenizer_encode(tok, text, strlen(text), QAI_TOK_ADD_SPECIAL | QAI_TOK_PARSE_SPECIAL, &ids, &n_ids);
        qai_free(text);
        sb_free(&sys);
        if (st) {
            serve_err(e, 400, "invalid_request_error", "invalid_value", "messages", "%s", qai_last_error());
            break;
        }
        if ((int)n_ids + reserve <= n_ctx || used == 0) {
            *ids_out = ids;
            *n_out = n_ids;
            sbuf c = {0};
            serve_put_citations(&c, h, used);
            if (c.oom) {
                sb_free(&c);
                qai_free(ids);
                st = serve_err(e, 500, "server_error", "out_of_memory", NULL, "out of memory");
            } else
                rs->citations = c.p;
            break;
        }
        qai_free(ids);
    }
    qai_free(m);
    qai_collection_hits_free(h, nh);
    return st;
}

static MHD_Result_t on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                               const char *version, const char *upload_data, size_t *upload_size, void **con_cls) {
    (void)version;
    qai_server *s = cls;
    req_state *rs = *con_cls;
    if (!rs) {
        rs = qai_calloc(1, sizeof *rs);
        if (!rs) return MHD_NO;
        *con_cls = rs;
        atomic_fetch_add(&s->inflight, 1);
        rs->srv = s;
        rs->conn = conn;
        rs->t0 = qai_time_ns();
        rs->unix_t0 = (int64_t)time(NULL);
        rs->socket_fd = -1;
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (ci) rs->socket_fd = ci->connect_fd;
        rs->path = url;
        bool path_known = false;
        if (!strncmp(url, "/v1/indexes/", 12)) {
            const char *nm = url + 12, *sl = strchr(nm, '/');
            if (sl && sl > nm && (!strcmp(sl, "/search") || !strcmp(sl, "/upsert")) &&
                (size_t)(sl - nm) < sizeof rs->index_name) {
                memcpy(rs->index_name, nm, (size_t)(sl - nm));
                rs->index_name[sl - nm] = 0;
                path_known = true;
                bool search = !strcmp(sl, "/search");
                rs->path = search ? PATH_INDEX_SEARCH : PATH_INDEX_UPSERT;
                if (!strcmp(method, "POST")) {
                    rs->ep = search ? EP_INDEX_SEARCH : EP_INDEX_UPSERT;
                    rs->method_ok = true;
                }
            }
        }
        for (size_t i = 0; i < sizeof ROUTES / sizeof ROUTES[0]; i++) {
            if (strcmp(url, ROUTES[i].path)) continue;
            path_known = true;
            rs->path = ROUTES[i].path;
            if (!strcmp(method, ROUTES[i].method) || (!strcmp(method, "HEAD") && !strcmp(ROUTES[i].method, "GET"))) {
                rs->ep = ROUTES[i].ep;
                rs->method_ok = true;
            }
        }
        /* unknown paths share one label (bounded metrics); those under /v1/
         * keep theirs so they are audited like every /v1/ request */
        if (!path_known) rs->path = strncmp(url, "/v1/", 4) ? "other" : "/v1/other";
        else if (!rs->method_ok)
            rs->ep = -1; /* 405 */
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > s->p.max_body) rs->too_big = true;
        if (rs->too_big) { /* answer before reading the body; MHD closes the connection afterwards */
            char msg[128];
            snprintf(msg, sizeof msg, "the request body is larger than the server's limit of %zu bytes", s->p.max_body);
            return fail(rs, 413, "invalid_request_error", "request_too_large", NULL, msg);
        }
        return MHD_YES;
    }
    if (*upload_size) {
        if (!rs->too_big && rs->body.n + *upload_size > s->p.max_body) {
            rs->too_big = true;
            sb_free(&rs->body);
        }
        if (!rs->too_big) sb_put(&rs->body, upload_data, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    if (rs->status) return MHD_YES; /* already answered (413 up front) */
    if (rs->too_big) {
        char msg[128];
        snprintf(msg, sizeof msg, "the request body is larger than the server's limit of %zu bytes", s->p.max_body);
        return fail(rs, 413, "invalid_request_error", "request_too_large", NULL, msg);
    }
    if (rs->body.oom) return fail(rs, 500, "server_error", "out_of_memory", NULL, "out of memory reading the body");
    if (rs->ep == 0) {
        char msg[300];
        snprintf(msg, sizeof msg, "no route %.16s %.200s", method, url);
        return fail(rs, 404, "not_found_error", "not_found", NULL, msg);
    }
    if (rs->ep < 0) {
        char msg[300];
        snprintf(msg, sizeof msg, "%.16s is not allowed on %.200s", method, url);
        struct MHD_Response *r;
        sbuf b = {0};
        qai_serve_error e;
        serve_err(&e, 405, "invalid_request_error", "method_not_allowed", NULL, "%s", msg);
        error_json(&b, &e);
        r = MHD_create_response_from_buffer(b.n, b.p, MHD_RESPMEM_MUST_COPY);
        sb_free(&b);
        if (!r) return MHD_NO;
        MHD_add_response_header(r, "Content-Type", "application/json");
        for (size_t i = 0; i < sizeof ROUTES / sizeof ROUTES[0]; i++)
            if (!strcmp(url, ROUTES[i].path)) MHD_add_response_header(r, "Allow", ROUTES[i].method);
        if (rs->index_name[0]) MHD_add_response_header(r, "Allow", "POST");
        MHD_Result_t ret = MHD_queue_response(conn, 405, r);
        MHD_destroy_response(r);
        rs->status = 405;
        snprintf(rs->outcome, sizeof rs->outcome, "error:method_not_allowed");
        return ret;
    }
    switch (rs->ep) {
    case EP_HEALTH: {
        static const char ok[] = "{\"status\":\"ok\"}";
        snprintf(rs->outcome, sizeof rs->outcome, "ok");
        return send_text(rs, 200, "application/json", ok, sizeof ok - 1, NULL);
    }
    case EP_READY: {
        static const char ready[] = "{\"status\":\"ready\"}", down[] = "{\"status\":\"shutting_down\"}";
        bool stopping = atomic_load(&s->shutting_down);
        snprintf(rs->outcome, sizeof rs->outcome, stopping ? "not_ready" : "ok");
        return stopping ? send_text(rs, 503, "application/json", down, sizeof down - 1, "1")
                        : send_text(rs, 200, "application/json", ready, sizeof ready - 1, NULL);
    }
    case EP_METRICS: return handle_metrics(rs);
    case EP_MODELS: return handle_models(rs);
    case EP_TOKENIZE:
    case EP_DETOKENIZE: return handle_tokenize(rs);
    case EP_EMBEDDINGS: return handle_embeddings(rs);
    case EP_INDEX_SEARCH:
    case EP_INDEX_UPSERT: return handle_index(rs);
    default: return handle_generate(rs);
    }
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)conn;
    qai_server *s = cls;
    req_state *rs = *con_cls;
    if (!rs) return;
    *con_cls = NULL;
    if (rs->g) {
        pthread_mutex_lock(&rs->g->mu);
        bool done = group_done(rs->g);
        tally(rs);
        pthread_mutex_unlock(&rs->g->mu);
        if (!done) cancel_group(rs);
        if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && (!rs->stream_done || !rs->req->stream))
            snprintf(rs->outcome, sizeof rs->outcome, "cancelled");
    }
    if (!rs->status) rs->status = 499; /* the client went away before an answer */
    double ms = (double)(qai_time_ns() - rs->t0) / 1e6;
    char model[260], variant[260], ep[64], labels[700];
    qai_metrics_escape(rs->model, model, sizeof model);
    qai_metrics_escape(rs->variant, variant, sizeof variant);
    qai_metrics_escape(rs->path, ep, sizeof ep);
    snprintf(labels, sizeof labels, "endpoint=\"%s\",model=\"%s\",variant=\"%s\",status=\"%d\"", ep, model, variant, rs->status);
    qai_metrics_add(s->metrics, "qai_requests_total", "HTTP requests by endpoint, model, variant and status", labels, 1);
    bool gen = rs->ep == EP_CHAT || rs->ep == EP_COMPLETIONS;
    if (gen && rs->sm) {
        snprintf(labels, sizeof labels, "model=\"%s\",variant=\"%s\",kind=\"prompt\"", model, variant);
        qai_metrics_add(s->metrics, "qai_tokens_total", "tokens by kind (prompt, completion, embedding)", labels, rs->g ? rs->prompt_tokens : 0);
        snprintf(labels, sizeof labels, "model=\"%s\",variant=\"%s\",kind=\"completion\"", model, variant);
        qai_metrics_add(s->metrics, "qai_tokens_total", "tokens by kind (prompt, completion, embedding)", labels, rs->completion_tokens);
        if (rs->g && rs->status == 200) {
            snprintf(labels, sizeof labels, "model=\"%s\",variant=\"%s\"", model, variant);
            qai_metrics_observe(s->metrics, "qai_infer_latency_ms", "end-to-end latency of generation requests (ms)", labels, ms);
            if (rs->ttft_ms > 0)
                qai_metrics_observe(s->metrics, "qai_ttft_ms", "time from arrival to the first generated token (ms)", labels, rs->ttft_ms);
            qai_metrics_observe_count(s->metrics, "qai_completion_tokens", "completion tokens per request", labels,
                                      rs->completion_tokens);
        }
    }
    if (rs->ep == EP_EMBEDDINGS && rs->sm) {
        snprintf(labels, sizeof labels, "model=\"%s\",variant=\"%s\",kind=\"embedding\"", model, variant);
        qai_metrics_add(s->metrics, "qai_tokens_total", "tokens by kind (prompt, completion, embedding)", labels,
                        rs->status == 200 ? rs->prompt_tokens : 0);
        snprintf(labels, sizeof labels, "model=\"%s\",variant=\"%s\"", model, variant);
        qai_metrics_add(s->metrics, "qai_embedding_inputs_total", "inputs embedded by /v1/embeddings", labels,
                        rs->status == 200 && rs->req ? rs->req->n_inputs : 0);
        if (rs->status == 200)
            qai_metrics_observe(s->metrics, "qai_embed_latency_ms", "end-to-end latency of embedding requests (ms)", labels, ms);
    }
    if (rs->accounted && s->p.auth.account) {
        int retry = 0;
        char msg[64];
        s->p.auth.account(s->p.auth.user, &rs->key, QAI_ACCOUNT_END, (int64_t)rs->prompt_tokens + rs->completion_tokens,
                          &retry, msg, sizeof msg);
    }
    /* every /v1/ request, and the key-checked /tokenize and /detokenize aliases */
    if (s->p.auth.audit &&
        (!strncmp(rs->path, "/v1/", 4) || !strcmp(rs->path, "/tokenize") || !strcmp(rs->path, "/detokenize"))) {
        qai_serve_audit a = {.request_id = rs->id[0] ? rs->id : "",
                             .key_id = rs->has_key ? rs->key.key_id : "",
                             .endpoint = rs->path,
                             .model = rs->model,
                             .variant = rs->variant,
                             .outcome = rs->outcome[0] ? rs->outcome : "unknown",
                             .remote = "",
                             .status = rs->status,
                             .prompt_tokens = rs->prompt_tokens,
                             .completion_tokens = rs->completion_tokens,
                             .latency_ms = ms,
                             .unix_time = rs->unix_t0};
        char addr[INET6_ADDRSTRLEN] = "";
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(rs->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (ci && ci->client_addr) {
            if (ci->client_addr->sa_family == AF_INET)
                inet_ntop(AF_INET, &((const struct sockaddr_in *)ci->client_addr)->sin_addr, addr, sizeof addr);
            else if (ci->client_addr->sa_family == AF_INET6)
                inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ci->client_addr)->sin6_addr, addr, sizeof addr);
        }
        a.remote = addr;
        s->p.auth.audit(s->p.auth.user, &a);
    }
    if (!s->p.quiet)
        qai_log(QAI_LOG_INFO, "serve: %s %d %.1f ms model=%s variant=%s tokens=%d+%d %s", rs->path, rs->status, ms,
                rs->model, rs->variant, rs->prompt_tokens, rs->completion_tokens, rs->outcome);
    job_group_unref(rs->g);
    qai_serve_request_free(rs->req);
    sb_free(&rs->body);
    sb_free(&rs->out);
    qai_free(rs->sent_text);
    qai_free(rs->sent_lp);
    qai_free(rs->sent_final);
    qai_free(rs->sent_role);
    qai_free(rs->tcs);
    qai_free(rs->citations);
    qai_free(rs);
    atomic_fetch_sub(&s->inflight, 1);
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n') msg[--n] = 0;
    qai_log(QAI_LOG_DEBUG, "serve: microhttpd: %s", msg);
}

/* ---- lifecycle ---- */

qai_serve_params qai_serve_default_params(void) {
    qai_serve_params p = {.host = "127.0.0.1", .port = 8080, .parallel = 4, .n_ctx = 0, .n_threads = 0, .batch = 256,
                          .kv_type = QAI_TYPE_F16,
                          .max_queue = 64, .max_body = 1 << 20, .timeout_s = 600, .max_tokens_default = 0, .drain_s = 30};
    return p;
}

static void server_free(qai_server *s) {
    if (s->d) MHD_stop_daemon(s->d);
    serve_indexes_free(s->indexes); /* first: its rerankers' contexts use the models */
    s->indexes = NULL;
    for (int i = 0; i < s->n_models; i++) {
        qai_engine_free(s->models[i].eng);
        qai_context_free(s->models[i].emb_ctx);
        qai_grammar_vocab_free(s->models[i].gv);
        if (s->models[i].m) pthread_mutex_destroy(&s->models[i].emb_mu);
        qai_model_close(s->models[i].m);
        qai_free(s->models[i].name);
        qai_free(s->models[i].path);
    }
    qai_free(s->models);
    serve_routes_free(s->routes);
    qai_metrics_free(s->metrics);
    serve_indexes_free(s->indexes);
    qai_free(s->host);
    pthread_mutex_destroy(&s->routes_mu);
    pthread_mutex_destroy(&s->shut_mu);
    qai_free(s);
}

qai_status qai_server_open(const qai_serve_params *pp, qai_server **out) {
    *out = NULL;
    if (!pp->models || pp->n_models <= 0) return qai_error(QAI_ERR_ARG, "serve: no model given");
    if (pp->max_body == 0) return qai_error(QAI_ERR_ARG, "serve: max_body must be positive");
    for (int i = 0; i < pp->n_models; i++) {
        if (!pp->models[i].name || !*pp->models[i].name || !pp->models[i].path)
            return qai_error(QAI_ERR_ARG, "serve: model %d needs a name and a path", i);
        for (int k = 0; k < i; k++)
            if (!strcmp(pp->models[i].name, pp->models[k].name))
                return qai_error(QAI_ERR_ARG, "serve: the model name '%s' is given twice", pp->models[i].name);
    }
    qai_server *s = qai_calloc(1, sizeof *s);
    if (!s) return QAI_ERR_NOMEM;
    s->p = *pp;
    s->p.models = NULL;
    s->p.routes = NULL;
    pthread_mutex_init(&s->routes_mu, NULL);
    pthread_mutex_init(&s->shut_mu, NULL);
    qai_rng_seed(&s->rng, qai_time_ns());
    atomic_init(&s->inflight, 0);
    atomic_init(&s->shutting_down, false);
    atomic_init(&s->next_id, 1);
    s->host = qai_strdup(pp->host ? pp->host : "127.0.0.1");
    s->metrics = qai_metrics_new();
    s->models = qai_calloc((size_t)pp->n_models, sizeof(served_model));
    if (!s->host || !s->metrics || !s->models) {
        server_free(s);
        return qai_error(QAI_ERR_NOMEM, "serve: out of memory");
    }
    qai_status st = serve_indexes_new(pp->data_dir, &s->indexes);
    s->p.data_dir = NULL; /* borrowed: the copy is in s->indexes */
    if (st) {
        server_free(s);
        return qai_error_wrap(st, "serve: the data directory");
    }
    const char **names = qai_calloc((size_t)pp->n_models, sizeof(char *));
    if (!names) {
        server_free(s);
        return QAI_ERR_NOMEM;
    }
    for (int i = 0; i < pp->n_models && !st; i++) {
        const qai_serve_model_spec *ms = &pp->models[i];
        served_model *sm = &s->models[i];
        sm->name = qai_strdup(ms->name);
        sm->path = qai_strdup(ms->path);
        s->n_models = i + 1;
        names[i] = sm->name;
        if (!sm->name || !sm->path) {
            st = QAI_ERR_NOMEM;
            break;
        }
        if ((st = qai_model_open(ms->path, &sm->m))) {
            qai_error_wrap(st, "serve: model '%s'", ms->name);
            break;
        }
        const qai_model_info *info = qai_model_get_info(sm->m);
        sm->encoder = info->is_encoder;
        sm->n_threads = pp->n_threads;
        pthread_mutex_init(&sm->emb_mu, NULL);
        if (sm->encoder) { /* embeddings only: no template, no engine, no slots */
            int n_ctx = info->n_ctx_train > 0 ? info->n_ctx_train : 512;
            if (pp->n_ctx > 0 && pp->n_ctx < n_ctx) n_ctx = pp->n_ctx;
            sm->n_ctx = n_ctx;
            sm->created = (int64_t)time(NULL);
            continue;
        }
        if (ms->template_name) {
            sm->fmt = qai_chat_format_from_name(ms->template_name);
            if (sm->fmt == QAI_CHAT_UNKNOWN) {
                st = qai_error(QAI_ERR_ARG, "serve: model '%s': unknown template '%s' (llama2, llama3, chatml, zephyr, phi3, gemma)",
                               ms->name, ms->template_name);
                break;
            }
        } else {
            const char *jinja = NULL;
            qai_gguf_get_str(qai_model_gguf(sm->m), "tokenizer.chat_template", &jinja);
            sm->fmt = qai_chat_detect(jinja);
        }
        int n_ctx = pp->n_ctx;
        if (n_ctx <= 0) {
            n_ctx = info->n_ctx_train;
            if (n_ctx <= 0 || n_ctx > 2048) n_ctx = 2048;
        }
        qai_engine_params ep = {.parallel = pp->parallel, .n_ctx = n_ctx, .n_threads = pp->n_threads,
                                .batch = pp->batch, .max_queue = pp->max_queue, .kv_type = pp->kv_type};
        if ((st = qai_engine_new(sm->m, &ep, &sm->eng))) {
            qai_error_wrap(st, "serve: model '%s'", ms->name);
            break;
        }
        sm->n_ctx = qai_engine_n_ctx(sm->eng);
        if ((st = qai_grammar_vocab_new(qai_model_tokenizer(sm->m), &sm->gv))) {
            qai_error_wrap(st, "serve: model '%s': the token trie for structured output", ms->name);
            break;
        }
        sm->created = (int64_t)time(NULL);
    }
    if (!st && (st = serve_routes_build(pp->routes, names, s->n_models, &s->routes))) qai_error_wrap(st, "serve");
    if (!st) { /* the search endpoint's "rerank" uses the loaded models */
        qai_model **ms = qai_calloc((size_t)s->n_models, sizeof *ms);
        for (int i = 0; ms && i < s->n_models; i++) ms[i] = s->models[i].m;
        st = ms ? serve_indexes_set_models(s->indexes, names, ms, s->n_models, pp->n_threads) : QAI_ERR_NOMEM;
        qai_free(ms);
        if (st) qai_error_wrap(st, "serve: the models for reranking");
    }
    qai_free(names);
    if (st) {
        server_free(s);
        return st;
    }
    /* listen */
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *ai = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", pp->port);
    int gai = getaddrinfo(s->host, port, &hints, &ai);
    if (gai || !ai) {
        st = qai_error(QAI_ERR_ARG, "serve: cannot use the address '%s' (give an IPv4/IPv6 address or a name in /etc/hosts): %s", s->host,
                       gai_strerror(gai));
        server_free(s);
        return st;
    }
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    s->d = MHD_start_daemon(flags, (uint16_t)pp->port, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)1024, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
                            MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!s->d) {
        st = qai_error(QAI_ERR_IO, "serve: cannot listen on %s:%d (in use, or not an address of this machine)", s->host,
                       pp->port);
        server_free(s);
        return st;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_LISTEN_FD);
    s->port = pp->port;
    if (di) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        if (!getsockname(di->listen_fd, (struct sockaddr *)&ss, &sl))
            s->port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                               : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    }
    *out = s;
    return QAI_OK;
}

int qai_server_port(const qai_server *s) { return s->port; }

void qai_server_pause(qai_server *s, bool paused) {
    for (int i = 0; i < s->n_models; i++)
        if (s->models[i].eng) qai_engine_pause(s->models[i].eng, paused);
}

qai_status qai_server_set_routes(qai_server *s, const void *routes) {
    const char **names = qai_calloc((size_t)s->n_models, sizeof(char *));
    if (!names) return QAI_ERR_NOMEM;
    for (int i = 0; i < s->n_models; i++) names[i] = s->models[i].name;
    serve_routes *rt = NULL;
    qai_status st = serve_routes_build(routes, names, s->n_models, &rt);
    qai_free(names);
    if (st) return st;
    pthread_mutex_lock(&s->routes_mu);
    serve_routes *old = s->routes;
    s->routes = rt;
    pthread_mutex_unlock(&s->routes_mu);
    serve_routes_free(old);
    return QAI_OK;
}

void qai_server_shutdown(qai_server *s, int drain_ms) {
    if (!s) return;
    pthread_mutex_lock(&s->shut_mu);
    if (s->shut) {
        pthread_mutex_unlock(&s->shut_mu);
        return;
    }
    s->shut = true;
    atomic_store(&s->shutting_down, true);
    /* stop accepting: new connections are refused from here on */
    MHD_socket lfd = MHD_quiesce_daemon(s->d);
    if (lfd != MHD_INVALID_SOCKET) close(lfd);
    for (int i = 0; i < s->n_models; i++) /* requests arriving now get 503 */
        if (s->models[i].eng) qai_engine_drain(s->models[i].eng);
    uint64_t end = qai_time_ns() + (uint64_t)(drain_ms > 0 ? drain_ms : 0) * 1000000ull;
    for (;;) {
        int busy = atomic_load(&s->inflight);
        for (int i = 0; i < s->n_models; i++)
            if (s->models[i].eng) busy += qai_engine_active(s->models[i].eng);
        if (busy == 0 || qai_time_ns() >= end) break;
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    /* what is left is aborted: handlers wake up with JOB_SHUTDOWN and answer */
    for (int i = 0; i < s->n_models; i++) qai_engine_stop(s->models[i].eng);
    MHD_stop_daemon(s->d);
    s->d = NULL;
    pthread_mutex_unlock(&s->shut_mu);
}

void qai_server_close(qai_server *s) {
    if (!s) return;
    qai_server_shutdown(s, 0);
    server_free(s);
}
