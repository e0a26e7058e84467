/* Internal pieces of the server: the parsed request, the error helper and the
 * metrics registry. The scheduler has its own header (scheduler.h). */
#ifndef QAI_SERVE_INTERNAL_H
#define QAI_SERVE_INTERNAL_H

#include <pthread.h>

#include "qai/model.h"
#include "qai/serve.h"

#define QAI_SERVE_MAX_STOP 4
#define QAI_SERVE_MAX_N 16
#define QAI_SERVE_MAX_TOP_LOGPROBS 20

struct qai_serve_request {
    int kind;               /* QAI_SERVE_COMPLETIONS / QAI_SERVE_CHAT */
    char *model;            /* NULL: the default (only) model */
    char *prompt;           /* completions: the prompt text (NULL when given as token ids) */
    size_t prompt_len;
    int32_t *prompt_tokens; /* completions: prompt as token ids */
    int n_prompt_tokens;
    qai_chat_message *msgs; /* chat: role/content strings owned here */
    size_t n_msgs;
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
};

/* Fills *e and returns QAI_ERR_FORMAT (for the 4xx family) so parse functions
 * can `return serve_err(...)`. */
qai_status serve_err(qai_serve_error *e, int status, const char *type, const char *code, const char *param,
                     const char *fmt, ...) __attribute__((format(printf, 6, 7)));

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

/* ---- growable byte buffer ---- */
typedef struct {
    char *p;
    size_t n, cap;
    bool oom;
} sbuf;
void sb_put(sbuf *b, const char *s, size_t n);
void sb_puts(sbuf *b, const char *s);
void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A JSON string literal (quoted, escaped; invalid UTF-8 bytes become U+FFFD). */
void sb_json_str(sbuf *b, const char *s, size_t n);
void sb_free(sbuf *b);
/* Length of the longest prefix of s[0..n) that ends on a UTF-8 character
 * boundary, not cutting a sequence that may still be completed. */
size_t utf8_complete_prefix(const char *s, size_t n);

#endif
