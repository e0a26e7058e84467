/* Internal pieces of the server: the parsed request, the error helper and the
 * metrics registry. The scheduler has its own header (scheduler.h). */
#ifndef QAI_SERVE_INTERNAL_H
#define QAI_SERVE_INTERNAL_H

#include <pthread.h>

#include "qai/collection.h"
#include "qai/grammar.h"
#include "qai/model.h"
#include "qai/serve.h"

#define QAI_SERVE_MAX_STOP 4
#define QAI_SERVE_MAX_N 16
#define QAI_SERVE_MAX_TOP_LOGPROBS 20
#define QAI_SERVE_MAX_EMBED_INPUTS 2048
#define QAI_SERVE_MAX_TOOL_CALLS 64 /* calls per choice the response reports */

/* How a chat request uses tools (tool_choice). */
enum { SERVE_TOOLS_NONE = 0, SERVE_TOOLS_AUTO, SERVE_TOOLS_REQUIRED, SERVE_TOOLS_NAMED };

/* What a chat message carried besides role and content, before the messages
 * are rendered for a template without native tool support (request.c). */
typedef struct {
    char *calls;       /* assistant: the calls as the model writes them (JSON text), or NULL */
    char **call_id;    /* assistant: each call's id (n_calls), for naming tool results */
    char **call_name;
    int n_calls;
    char *tool_call_id; /* role "tool": the call it answers */
    char *name;         /* role "tool" / "function": the function's name (may be NULL) */
} serve_msg_extra;

struct qai_serve_request {
    int kind;               /* QAI_SERVE_COMPLETIONS / QAI_SERVE_CHAT */
    char *model;            /* NULL: the default (only) model */
    char *prompt;           /* completions: the prompt text (NULL when given as token ids) */
    size_t prompt_len;
    int32_t *prompt_tokens; /* completions: prompt as token ids */
    int n_prompt_tokens;
    qai_chat_message *msgs; /* chat: role/content strings owned here, rendered for the template */
    size_t n_msgs;
    serve_msg_extra *mx;    /* chat: what each message carried besides role/content (n_mx, as received) */
    size_t n_mx;
    int max_tokens;         /* -1: not given */
    float temperature;      /* default 1 */
    float top_p;            /* default 1 */
    float presence_penalty, frequency_penalty;
    bool has_seed;
    uint64_t seed;
    int n;                  /* choices, 1..QAI_SERVE_MAX_N */
    char *stop[QAI_SERVE_MAX_STOP];
    size_t stop_len[QAI_SERVE_MAX_STOP];
    int n_stop;
    bool logprobs;          /* chat: logprobs true; completions: logprobs given (an integer) */
    int top_logprobs;       /* 0..20 (completions: the logprobs integer, at most 5) */
    bool stream;
    bool include_usage;     /* stream_options.include_usage */
    char *user;
    /* structured output: response_format json_object/json_schema, or tool
     * calls; NULL: unconstrained. Owned; http.c moves it to the job group. */
    qai_grammar *grammar;
    bool grammar_is_tools;  /* grammar is a tool-call grammar (tools mode AUTO/REQUIRED/NAMED) */
    int tools;              /* SERVE_TOOLS_* */
    bool parallel_tools;    /* parallel_tool_calls: the model writes a JSON array of calls */
    bool legacy_functions;  /* functions/function_call: answered as message.function_call */
    /* embeddings (QAI_SERVE_EMBEDDINGS): n_inputs texts or token arrays */
    int n_inputs;
    char **input_text;      /* NULL entries for token inputs */
    size_t *input_len;
    int32_t **input_tok;    /* NULL entries for text inputs */
    int *input_ntok;
    bool base64;            /* encoding_format "base64" */
    int dimensions;         /* 0: not given */
    /* chat: "retrieval": {"index", "k", "mode", "fusion", "dense_weight", "filter"}; retr.index NULL when not given */
    struct serve_retr_s {
        char *index;        /* collection name */
        char *query;        /* search endpoint: the query */
        int k;              /* passages (default 4 for retrieval, 8 for search) */
        int mode;           /* qai_retrieve_mode, -1: the collection's default */
        int fusion;         /* qai_fusion_kind, -1: RRF, or weighted when dense_weight is given */
        float dense_weight; /* weighted fusion's dense weight, NAN: not given (0.5) */
        qai_meta_filter *filters; /* keys and values owned */
        int n_filters;
    } retr;
};
typedef struct serve_retr_s serve_retr;

/* Fills *e and returns QAI_ERR_FORMAT (for the 4xx family) so parse functions
 * can `return serve_err(...)`. */
qai_status serve_err(qai_serve_error *e, int status, const char *type, const char *code, const char *param,
                     const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* ---- growable byte buffer: qai_strbuf (qai/base.h) under short names ---- */
typedef qai_strbuf sbuf;
#define sb_put qai_strbuf_put
#define sb_puts qai_strbuf_puts
#define sb_printf qai_strbuf_printf
#define sb_free qai_strbuf_free

/* ---- collections (indexes.c) ---- */

/* The collections of the server's data directory, opened lazily and cached
 * per name; reopened when CURRENT moves. Thread-safe. */
typedef struct serve_indexes serve_indexes;
qai_status serve_indexes_new(const char *data_dir, serve_indexes **out); /* data_dir NULL: qai_home_dir */
void serve_indexes_free(serve_indexes *ix);
const char *serve_indexes_dir(const serve_indexes *ix);
/* The server's loaded models, for the search endpoint's "rerank" (names and
 * models borrowed: free ix before closing them); once, before requests. */
qai_status serve_indexes_set_models(serve_indexes *ix, const char *const *names, qai_model *const *models, int n,
                                    int n_threads);
/* Parses {"index"?, "query"?, "k", "mode", "filter"} (prefix names the
 * fields in errors, e.g. "retrieval."). 400 naming the field on error; q is
 * then partly filled: free it with serve_retr_free either way. */
struct cJSON;
qai_status serve_retr_parse(const struct cJSON *o, const char *prefix, bool want_index, bool want_query, int k_default,
                            serve_retr *q, qai_serve_error *err);
void serve_retr_free(serve_retr *q);
/* Searches collection name at its CURRENT version: 404 if it does not exist,
 * 400 for a search the collection cannot do (dense without vectors). */
qai_status serve_indexes_search(serve_indexes *ix, const char *name, const char *query, const serve_retr *q,
                                const char *param, qai_collection_hit **hits, int *n, int *version, qai_serve_error *e);
/* The endpoints: the HTTP status; out holds the 200 body, err the error. */
int serve_index_search_http(serve_indexes *ix, const char *name, const char *body, size_t len, sbuf *out,
                            qai_serve_error *err);
int serve_index_upsert_http(serve_indexes *ix, const char *name, const char *body, size_t len, sbuf *out,
                            qai_serve_error *err);
/* {"object":"list","data":[hits as qai search --json],"index","version"} */
void serve_put_hits(sbuf *b, const qai_collection_hit *h, int n, const char *name, int version);
/* [{"index": 1, "source", "span", "section", "record_id", "chunk_id", "score"}, ...] */
void serve_put_citations(sbuf *b, const qai_collection_hit *h, int n);
/* qai rag's instruction followed by the numbered passages. */
void serve_put_passages(sbuf *b, const qai_collection_hit *h, int n);

/* ---- metrics (metrics.c) ---- */

/* A Prometheus registry of counters, gauges and histograms keyed by family and
 * label text. Thread-safe (one mutex; updates happen per request, not per
 * token). */
typedef struct qai_metrics qai_metrics;
qai_metrics *qai_metrics_new(void);
void qai_metrics_free(qai_metrics *m);
/* labels: Prometheus label text without braces, e.g. `model="a",kind="prompt"`. */
void qai_metrics_add(qai_metrics *m, const char *family, const char *help, const char *labels, double v);
void qai_metrics_set(qai_metrics *m, const char *family, const char *help, const char *labels, double v);
/* Histogram with the default millisecond buckets. */
void qai_metrics_observe(qai_metrics *m, const char *family, const char *help, const char *labels, double v);
/* Histogram with small-count buckets (1, 2, 4, ... 512), for batch sizes. */
void qai_metrics_observe_count(qai_metrics *m, const char *family, const char *help, const char *labels, double v);
/* The whole registry in Prometheus text exposition format 0.0.4; *out
 * allocated with qai_malloc (caller frees). */
qai_status qai_metrics_render(qai_metrics *m, char **out, size_t *len);
/* Escapes a label value (quotes, backslashes, newlines) into out (cap bytes). */
void qai_metrics_escape(const char *s, char *out, size_t cap);

/* A JSON string literal (quoted, escaped; invalid UTF-8 bytes become U+FFFD). */
void sb_json_str(sbuf *b, const char *s, size_t n);
/* Length of the longest prefix of s[0..n) that ends on a UTF-8 character
 * boundary, not cutting a sequence that may still be completed. */
size_t utf8_complete_prefix(const char *s, size_t n);
/* Standard base64 (RFC 4648, padded) of n bytes. */
void sb_base64(sbuf *b, const void *data, size_t n);

/* ---- tool-call text (util.c) ---- */

/* Where the calls are in text the tool-call grammar accepted, as far as it
 * goes: {"name": N, "arguments": A} (or a JSON array of them). */
typedef struct {
    size_t name_off, name_len; /* the name's JSON string literal, quotes included */
    bool name_done;
    size_t args_off, args_end; /* the arguments' JSON text seen so far */
    bool args_done;
} serve_tool_span;

/* Scans text: *mode is -1 while only whitespace came, 0 for free text (the
 * first other byte is not '{' / '['), 1 for calls. Returns the number of calls
 * whose name started (at most max spans are filled). */
int serve_tool_scan(const char *text, size_t n, bool parallel, serve_tool_span *calls, int max, int *mode);

#endif
