/*
 * qai/serve.h — an OpenAI-compatible HTTP server over the inference engine,
 * with continuous batching (one engine thread per model that batches the next
 * token of every running request with prompt chunks of newly admitted ones), a
 * prefix cache, bounded queues, deadlines, Prometheus metrics, traffic
 * splitting between model variants, and a hook for API keys, rate limits and
 * the audit trail.
 *
 * Endpoints: POST /v1/chat/completions, /v1/completions (plain JSON or SSE
 * streaming), POST /v1/embeddings, GET /v1/models, POST /v1/tokenize,
 * /v1/detokenize, GET /health, /ready, /metrics, and the collections of the
 * data directory: POST /v1/indexes/{name}/search and /upsert (admin scope when
 * keys are used), plus a "retrieval" option on chat completions that puts the
 * numbered passages into the system message and returns "citations". docs/serve.md has the shapes,
 * flags and metric names.
 *
 * Structured output: response_format json_object / json_schema and OpenAI tool
 * calls are enforced while decoding by a grammar (qai/grammar.h) through the
 * scheduler's per-job token mask; outputs that end with finish_reason "stop"
 * or "tool_calls" always parse and validate. Embeddings run on a separate
 * context per model (see http.c); an encoder model (qai_model_info.is_encoder)
 * is served for /v1/embeddings only, without an engine.
 *
 * What it deliberately does not do: combine response_format with tool_choice
 * "auto" (400), or run a model's own Jinja tool template (tools are described
 * in a system preamble instead). It does not store keys itself:
 * the caller passes a qai_serve_auth (the lead wires it to the registry store).
 * TLS is left to a reverse proxy.
 *
 * Usage:
 *     qai_serve_params p = qai_serve_default_params();
 *     qai_serve_model_spec ms = {.name = "tiny", .path = "tiny.gguf"};
 *     p.models = &ms; p.n_models = 1; p.port = 8080;
 *     qai_server *srv;
 *     if (qai_server_open(&p, &srv)) { fprintf(stderr, "%s\n", qai_last_error()); ... }
 *     ... qai_server_port(srv) ...  (serving happens on the server's threads)
 *     qai_server_shutdown(srv, 30000);   // stop accepting, drain running requests
 *     qai_server_close(srv);
 */
#ifndef QAI_SERVE_H
#define QAI_SERVE_H

#include "qai/base.h"
#include "qai/tensor.h" /* qai_type */

#ifdef __cplusplus
extern "C" {
#endif

/* ---- authentication, rate limits and audit (hook for the store) ---------- */

/* What authenticate() says about a key. Fields are NUL-terminated strings. */
typedef struct {
    char key_id[64]; /* stable id of the key (never the secret); goes into the audit record */
    char scope[32];  /* e.g. "inference" or "admin" (informational for the server) */
} qai_serve_key;

typedef enum { QAI_ACCOUNT_BEGIN = 0, QAI_ACCOUNT_END = 1 } qai_account_phase;

/* One finished request, for the audit trail. Strings are valid only during
 * the audit() call. */
typedef struct {
    const char *request_id; /* "chatcmpl-..." / "cmpl-..." or "req-..." */
    const char *key_id;     /* "" when no key was presented or auth is off */
    const char *endpoint;   /* "/v1/chat/completions", ... */
    const char *model;      /* the name the client asked for ("" if none) */
    const char *variant;    /* the variant that served it ("" if none) */
    const char *outcome;    /* "stop", "length", "error:<code>", "cancelled", "timeout" */
    const char *remote;     /* client address */
    int status;             /* HTTP status sent */
    int prompt_tokens, completion_tokens;
    double latency_ms;
    int64_t unix_time;      /* seconds, when the request arrived */
} qai_serve_audit;

/* All callbacks are optional (NULL: allow / do nothing) and are called from
 * HTTP connection threads, possibly concurrently: they must be thread-safe.
 * msg (cap bytes) may receive a message that goes into the error response. */
typedef struct {
    void *user;
    /* secret: the bearer token of the Authorization header (or NULL when the
     * request has none); endpoint: the path. Returns 0 and fills *key when the
     * key may call this endpoint, 401 (unknown/missing key) or 403 (key not
     * allowed here). */
    int (*authenticate)(void *user, const char *secret, const char *endpoint, qai_serve_key *key, char *msg,
                        size_t cap);
    /* Accounting. BEGIN before a generation is admitted, with the prompt
     * tokens plus the most tokens it may generate: 0 to go ahead, or 429 with
     * *retry_after_s (seconds) when the key's rate or token limit is exhausted.
     * END after it finished, with the tokens actually used (prompt +
     * completion); the return value is ignored. Not called when authenticate is
     * NULL (no key). */
    int (*account)(void *user, const qai_serve_key *key, qai_account_phase phase, int64_t tokens,
                   int *retry_after_s, char *msg, size_t cap);
    /* After every request on /v1/ (success or error), once the response is
     * decided. */
    void (*audit)(void *user, const qai_serve_audit *rec);
} qai_serve_auth;

/* The callbacks above implemented on the registry store (qai/store.h): keys
 * checked against the hashed API keys (scope "inference" for /v1/, "admin"
 * for /admin), a requests-per-minute bucket and the per-day token limit of
 * each key (429 with Retry-After), and every request appended to the audit
 * chain by a background writer that also charges the key's tokens. mode:
 * AUTO requires keys as soon as the store holds one active key, KEYS always,
 * NONE never (requests are still audited). Close after the server. */
enum { QAI_SERVE_AUTH_AUTO = 0, QAI_SERVE_AUTH_KEYS = 1, QAI_SERVE_AUTH_NONE = 2 };
typedef struct qai_serve_store_auth qai_serve_store_auth;
qai_status qai_serve_store_auth_open(const char *store_url, const char *data_dir, int mode, qai_serve_auth *auth,
                                     qai_serve_store_auth **out);
bool qai_serve_store_auth_requires_keys(const qai_serve_store_auth *a);
void qai_serve_store_auth_close(qai_serve_store_auth *a);

/* ---- server ---------------------------------------------------------------- */

typedef struct {
    const char *name;     /* model name clients use ("model" field); required */
    const char *path;     /* GGUF file; required */
    const char *template_name; /* chat format name (llama2, llama3, chatml, ...); NULL: from the GGUF */
} qai_serve_model_spec;

typedef struct {
    const char *host;       /* listen address (default "127.0.0.1") */
    int port;               /* 0: an ephemeral port (see qai_server_port) */
    const qai_serve_model_spec *models;
    int n_models;
    int parallel;           /* slots (concurrent sequences) per model (default 4) */
    int n_ctx;              /* positions per slot (0: the model's training context, at most 2048) */
    int n_threads;          /* engine threads per model (0: all CPUs) */
    qai_type kv_type;       /* KV cache elements of every engine: QAI_TYPE_F16 (default) or QAI_TYPE_F32 */
    int batch;              /* most tokens one engine iteration decodes (default 256) */
    int max_queue;          /* requests waiting per model (beyond the free slots) before 503 (default 64) */
    size_t max_body;        /* bytes of a request body before 413 (default 1 MiB) */
    double timeout_s;       /* deadline of a request from arrival (default 600; 0 = none) */
    int max_tokens_default; /* when the request gives no max_tokens (default: until the context is full) */
    /* traffic splitting: a cJSON object (cJSON * as void *, borrowed during
     * open) of routes {"name": {"variants": {"v1": {"model": "m1", "weight": 90},
     * ...}, "sticky": true}}; variants name models of `models`. NULL: none. */
    const void *routes;
    qai_serve_auth auth;
    double drain_s;         /* for callers of qai_server_shutdown (default 30) */
    bool quiet;             /* no access log lines (they are qai_log INFO lines) */
    const char *data_dir;   /* where collections/NAME/ live for /v1/indexes and "retrieval" (NULL:
                             * $QAI_HOME, else ~/.local/share/qai; see qai/collection.h) */
} qai_serve_params;

qai_serve_params qai_serve_default_params(void);

typedef struct qai_server qai_server;

/* Loads every model, starts an engine thread per model and the HTTP listener.
 * Fails (nothing left running) with a message naming the model or address. */
qai_status qai_server_open(const qai_serve_params *p, qai_server **out);
/* The port the server listens on (useful with port 0). */
int qai_server_port(const qai_server *s);
/* Replaces the traffic-splitting routes (cJSON object as in params, borrowed
 * during the call) without interrupting requests: new requests use the new
 * weights, running ones finish where they are. Fails, keeping the old routes,
 * if a route names an unknown model or a weight is invalid. Thread-safe. */
qai_status qai_server_set_routes(qai_server *s, const void *routes);
/* Paused, the engines start no queued request (running ones go on; queued
 * ones still time out or are cancelled). For maintenance and for tests that
 * need a full queue. */
void qai_server_pause(qai_server *s, bool paused);
/* Graceful shutdown: stops accepting connections, lets queued and running
 * requests finish for up to drain_ms, then aborts what is left (clients get an
 * error / a closed stream). Idempotent. */
void qai_server_shutdown(qai_server *s, int drain_ms);
/* Shuts down (drain 0 if not done yet) and frees everything. NULL is fine. */
void qai_server_close(qai_server *s);

/* ---- configuration ----------------------------------------------------------- */

/* Fills params from a parsed serve.yaml (cJSON object; see docs/serve.md):
 * host, port, parallel, ctx, threads, batch, max_queue, max_body, timeout,
 * max_tokens, template, models (a map name -> path, or name -> {path,
 * template}), routes. Strings point into cfg (keep it alive); the model array
 * is allocated into *models_out (caller frees with qai_free). Errors name the
 * key. */
qai_status qai_serve_config_apply(const void *cfg, const char *name, qai_serve_params *p,
                                  qai_serve_model_spec **models_out);

/* ---- request parsing (exposed for tests and the fuzzer) ----------------------- */

typedef struct qai_serve_request qai_serve_request;

/* An error as the API reports it: HTTP status and OpenAI's error object. */
typedef struct {
    int status;        /* 400, 401, 403, 404, 405, 413, 429, 503, 504, 500 */
    char type[40];     /* "invalid_request_error", "not_found_error", ... */
    char code[48];     /* machine-readable: "invalid_json", "invalid_type", "model_not_found", ... */
    char param[64];    /* the offending field ("" if none) */
    char message[512];
} qai_serve_error;

enum { QAI_SERVE_COMPLETIONS = 1, QAI_SERVE_CHAT = 2, QAI_SERVE_EMBEDDINGS = 3 };

/* Parses and validates a request body of /v1/completions (kind
 * QAI_SERVE_COMPLETIONS), /v1/chat/completions (QAI_SERVE_CHAT) or
 * /v1/embeddings (QAI_SERVE_EMBEDDINGS). response_format schemas and tool
 * definitions are compiled into their grammar here, so an unsupported schema
 * keyword is a 400 naming it; chat messages with tool calls and tool results
 * are rendered for templates without native tool support, with the tools
 * listed in a system preamble (docs/serve.md). On failure returns
 * QAI_ERR_FORMAT (or QAI_ERR_UNSUPPORTED) and fills *err (status 400) naming
 * the field; *out is NULL. Never reads past len. */
qai_status qai_serve_request_parse(const char *body, size_t len, int kind, qai_serve_request **out,
                                   qai_serve_error *err);
void qai_serve_request_free(qai_serve_request *r);

#ifdef __cplusplus
}
#endif
#endif
