/* A load client for OpenAI-compatible servers (qai serve, llama.cpp's
 * llama-server): N concurrent clients each send R /v1/completions requests
 * back to back (streaming by default) and read the answers. Prints one JSON
 * line: aggregate generated tokens per second over the wall time, and the
 * p50/p95 time to the first generated text.
 *
 * usage: bench_serve_client [--host 127.0.0.1] --port P [--clients N] [--requests R]
 *                           [--max-tokens M] [--prompt-words W] [--label NAME]
 *                           [--api-key KEY] [--no-stream] [--statuses] [--recv-timeout S]
 *
 * Tokens are the server's usage.completion_tokens when it reports them
 * (stream_options.include_usage), else the number of chunks carrying text (one
 * token each on llama-server). Every request asks for ignore_eos so the
 * lengths are the same on both servers; prompts differ per client and request
 * so no prompt cache helps.
 *
 * Benchmark mode (the default): any answer other than a 200 with text is a
 * failure, and the exit code is 1 if there was one.
 *
 * --statuses (load-test mode, tests/serve/test_serve_load.sh): every answer
 * is tallied by HTTP status instead, and each is checked for its shape: a 200
 * must be complete (a stream ends with "data: [DONE]" and carries usage; a
 * plain answer is a JSON text_completion with usage), an error status must
 * carry OpenAI's {"error": {"message", "type", "code"}} body, and 429/503 must
 * carry a Retry-After header. The JSON line then adds "statuses" (status ->
 * count), "conn_errors" (connect or send failures, resets, timeouts, answers
 * cut short), "bad_answers" (wrong shapes) and "missing_retry_after". The exit
 * code is 1 if any of those three is non-zero.
 */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char *g_host = "127.0.0.1", *g_api_key = NULL;
static int g_port = 8080, g_clients = 1, g_requests = 2, g_max_tokens = 128, g_words = 24;
static int g_recv_timeout_s = 120;
static bool g_stream = true, g_statuses = false;

#define MAX_STATUS 600

typedef struct {
    int id;
    double *ttft_ms; /* (requests) */
    long tokens;
    int failures;
    /* --statuses */
    long status_count[MAX_STATUS];
    int conn_errors, bad_answers, missing_retry_after;
    char first_problem[256];
} client;

typedef struct {
    int status;        /* HTTP status; 0 when no complete answer arrived */
    long tokens;       /* generated tokens (-1 if none were seen) */
    bool first;        /* some text arrived */
    bool conn_error;   /* connect/send/recv failure, reset, timeout, or the answer was cut short */
    bool bad;          /* the answer's shape is wrong (see --statuses) */
    bool retry_after;  /* a Retry-After header came with it */
    char problem[200]; /* what was wrong, for the first_problem report */
} result;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static const char *WORDS[] = {"river", "stone", "lantern", "winter", "garden", "copper", "whisper", "harbor",
                              "meadow", "thunder", "candle", "orchard", "falcon", "pepper", "silver", "quiet"};

/* The value of header NAME in the head [head, head_end), or NULL; *len is its length. */
static const char *header_value(const char *head, const char *head_end, const char *name, size_t *len) {
    size_t nl = strlen(name);
    for (const char *l = strstr(head, "\r\n"); l && l + 2 < head_end; l = strstr(l + 2, "\r\n")) {
        const char *h = l + 2;
        if ((size_t)(head_end - h) > nl && !strncasecmp(h, name, nl) && h[nl] == ':') {
            const char *v = h + nl + 1;
            while (*v == ' ' || *v == '\t') v++;
            const char *e = strstr(v, "\r\n");
            if (!e || e > head_end) e = head_end;
            *len = (size_t)(e - v);
            return v;
        }
    }
    return NULL;
}

/* Decodes a chunked body in place; returns its new length, or -1 when the
 * chunks are malformed or the terminating zero-size chunk is missing. */
static long dechunk(char *b, size_t n) {
    size_t r = 0, w = 0;
    for (;;) {
        char *end;
        if (r >= n) return -1;
        unsigned long sz = strtoul(b + r, &end, 16);
        char *crlf = strstr(b + r, "\r\n");
        if (end == b + r || !crlf) return -1;
        r = (size_t)(crlf + 2 - b);
        if (sz == 0) return (long)w;
        if (sz > n - r || n - r - sz < 2 || b[r + sz] != '\r' || b[r + sz + 1] != '\n') return -1;
        memmove(b + w, b + r, sz);
        w += sz;
        r += sz + 2;
    }
}

/* The shape of an error answer: {"error": {"message": str, "type": str, "code": ...}}. */
static bool is_openai_error(const char *body) {
    cJSON *j = cJSON_Parse(body);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    bool ok = cJSON_IsObject(e) && cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "message")) &&
              cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "type")) && cJSON_GetObjectItemCaseSensitive(e, "code");
    cJSON_Delete(j);
    return ok;
}

/* Checks a complete 200 answer; returns false (with a reason) if its shape is wrong. */
static bool check_ok_body(char *body, result *res) {
    if (g_stream) {
        if (!strstr(body, "data: [DONE]")) {
            snprintf(res->problem, sizeof res->problem, "a 200 stream without data: [DONE]");
            return false;
        }
        if (strstr(body, "data: {\"error\"")) {
            snprintf(res->problem, sizeof res->problem, "a 200 stream with an error event");
            return false;
        }
        if (!strstr(body, "\"completion_tokens\":")) {
            snprintf(res->problem, sizeof res->problem, "a 200 stream without usage");
            return false;
        }
        return true;
    }
    cJSON *j = cJSON_Parse(body);
    const cJSON *obj = cJSON_GetObjectItemCaseSensitive(j, "object");
    const cJSON *choices = cJSON_GetObjectItemCaseSensitive(j, "choices");
    const cJSON *usage = cJSON_GetObjectItemCaseSensitive(j, "usage");
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(usage, "completion_tokens");
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(choices, 0), "text");
    bool ok = cJSON_IsString(obj) && !strcmp(obj->valuestring, "text_completion") && cJSON_GetArraySize(choices) == 1 &&
              cJSON_IsString(text) && cJSON_IsNumber(ct);
    if (ok) {
        res->tokens = (long)ct->valuedouble;
        res->first = text->valuestring[0] != 0;
    } else
        snprintf(res->problem, sizeof res->problem, "a 200 that is not a text_completion with usage: %.120s", body);
    cJSON_Delete(j);
    return ok;
}

/* One request; fills *res, sets *ttft when text arrived. */
static void one_request(int cid, int r, double *ttft, result *res) {
    memset(res, 0, sizeof *res);
    res->tokens = -1;
    char prompt[2048];
    size_t o = 0;
    uint32_t x = (uint32_t)(cid * 7919 + r * 104729 + 1);
    o += (size_t)snprintf(prompt + o, sizeof prompt - o, "Story %d-%d:", cid, r);
    for (int w = 0; w < g_words && o < sizeof prompt - 16; w++) {
        x = x * 1664525u + 1013904223u;
        o += (size_t)snprintf(prompt + o, sizeof prompt - o, " %s", WORDS[(x >> 16) % 16]);
    }
    char body[4096];
    int bn = g_stream ? snprintf(body, sizeof body,
                                 "{\"prompt\":\"%s\",\"max_tokens\":%d,\"temperature\":0,\"stream\":true,\"ignore_eos\":true,"
                                 "\"stream_options\":{\"include_usage\":true},\"cache_prompt\":false}",
                                 prompt, g_max_tokens)
                      : snprintf(body, sizeof body,
                                 "{\"prompt\":\"%s\",\"max_tokens\":%d,\"temperature\":0,\"ignore_eos\":true,"
                                 "\"cache_prompt\":false}",
                                 prompt, g_max_tokens);
    char auth[600] = "";
    if (g_api_key) snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", g_api_key);
    char req[8192];
    int rn = snprintf(req, sizeof req,
                      "POST /v1/completions HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nConnection: close\r\n"
                      "%sContent-Length: %d\r\n\r\n%s",
                      g_host, auth, bn, body);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        res->conn_error = true;
        snprintf(res->problem, sizeof res->problem, "socket: %s", strerror(errno));
        return;
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g_port)};
    inet_pton(AF_INET, g_host, &a.sin_addr);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct timeval tv = {.tv_sec = g_recv_timeout_s};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    double t0 = now_s();
    if (connect(fd, (struct sockaddr *)&a, sizeof a) || send(fd, req, (size_t)rn, MSG_NOSIGNAL) != rn) {
        res->conn_error = true;
        snprintf(res->problem, sizeof res->problem, "connect/send: %s", strerror(errno));
        close(fd);
        return;
    }
    /* scan the stream for SSE events; keep a small carry for events split across reads */
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    long chunks = 0, usage = -1;
    bool saw_head = false;
    size_t scan = 0, head_len = 0;
    int recv_errno = 0;
    for (;;) {
        if (len + 8192 > cap) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb) {
                recv_errno = ENOMEM;
                break;
            }
            buf = nb;
        }
        ssize_t n = recv(fd, buf + len, cap - len - 1, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) recv_errno = errno;
        if (n <= 0) break;
        len += (size_t)n;
        buf[len] = 0;
        if (!saw_head) {
            char *e = strstr(buf, "\r\n\r\n");
            if (!e) continue;
            saw_head = true;
            if (!strncmp(buf, "HTTP/1.", 7) && len > 12) res->status = atoi(buf + 9);
            scan = head_len = (size_t)(e + 4 - buf);
        }
        for (;;) {
            char *ev = strstr(buf + scan, "data: ");
            if (!ev) break;
            char *end = strstr(ev, "\n\n");
            if (!end) break;
            *end = 0;
            const char *t = strstr(ev, "\"text\":\"");
            if (!t) t = strstr(ev, "\"content\":\"");
            if (t) {
                const char *q = strchr(t, ':') + 2;
                if (*q != '"') { /* non-empty text */
                    chunks++;
                    if (!res->first) {
                        res->first = true;
                        *ttft = (now_s() - t0) * 1e3;
                    }
                }
            }
            const char *u = strstr(ev, "\"completion_tokens\":");
            if (u) usage = strtol(u + 20, NULL, 10);
            *end = '\n';
            scan = (size_t)(end + 2 - buf);
        }
    }
    close(fd);
    res->tokens = usage >= 0 ? usage : res->first ? chunks : -1;
    if (recv_errno || !saw_head || res->status < 100 || res->status >= MAX_STATUS) {
        res->conn_error = true;
        snprintf(res->problem, sizeof res->problem, "%s after %zu bytes",
                 recv_errno == EAGAIN || recv_errno == EWOULDBLOCK ? "timed out"
                 : recv_errno                                      ? strerror(recv_errno)
                                                                   : "no complete HTTP answer",
                 len);
        res->status = 0;
        free(buf);
        return;
    }
    /* the whole answer arrived (the server closed the connection): check it */
    const char *head_end = buf + head_len - 2;
    size_t vl = 0;
    const char *te = header_value(buf, head_end, "Transfer-Encoding", &vl);
    const char *cl = header_value(buf, head_end, "Content-Length", &vl);
    const char *ra = header_value(buf, head_end, "Retry-After", &vl);
    res->retry_after = ra && vl > 0 && atoi(ra) > 0;
    char *ans = buf + head_len;
    size_t blen = len - head_len;
    if (te && !strncasecmp(te, "chunked", 7)) {
        long d = dechunk(ans, blen);
        if (d < 0) {
            res->conn_error = true;
            snprintf(res->problem, sizeof res->problem, "status %d: a chunked body cut short (%zu bytes)", res->status, blen);
            free(buf);
            return;
        }
        ans[d] = 0;
    } else if (cl && strtoul(cl, NULL, 10) != blen) {
        res->conn_error = true;
        snprintf(res->problem, sizeof res->problem, "status %d: Content-Length %lu but %zu bytes", res->status,
                 strtoul(cl, NULL, 10), blen);
        free(buf);
        return;
    }
    if (res->status == 200 && (g_statuses || !g_stream)) res->bad = !check_ok_body(ans, res);
    else if (res->status != 200 && g_statuses && !is_openai_error(ans)) {
        res->bad = true;
        snprintf(res->problem, sizeof res->problem, "status %d without an OpenAI error body: %.120s", res->status, ans);
    }
    free(buf);
}

static void *client_main(void *p) {
    client *c = p;
    for (int r = 0; r < g_requests; r++) {
        result res;
        c->ttft_ms[r] = -1;
        one_request(c->id, r, &c->ttft_ms[r], &res);
        if (!g_statuses) {
            if (res.status != 200 || res.bad || !res.first || res.tokens < 0) {
                c->failures++;
                c->ttft_ms[r] = -1;
            } else
                c->tokens += res.tokens;
            continue;
        }
        if (res.status == 200 && res.tokens > 0) c->tokens += res.tokens;
        if (res.status != 200) c->ttft_ms[r] = -1;
        if (res.conn_error) c->conn_errors++;
        else
            c->status_count[res.status]++;
        if (res.bad) c->bad_answers++;
        if (!res.conn_error && (res.status == 429 || res.status == 503) && !res.retry_after) {
            c->missing_retry_after++;
            if (!res.problem[0]) snprintf(res.problem, sizeof res.problem, "status %d without Retry-After", res.status);
        }
        if (res.problem[0] && !c->first_problem[0]) snprintf(c->first_problem, sizeof c->first_problem, "%s", res.problem);
    }
    return NULL;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const double *v, int n, double q) {
    if (n == 0) return 0;
    int i = (int)(q * (n - 1) + 0.5);
    return v[i];
}

int main(int argc, char **argv) {
    const char *label = "server";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--no-stream")) {
            g_stream = false;
            continue;
        }
        if (!strcmp(argv[i], "--statuses")) {
            g_statuses = true;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "bench_serve_client: '%s' needs a value (or is unknown)\n", argv[i]);
            return 2;
        }
        if (!strcmp(argv[i], "--host")) g_host = argv[i + 1];
        else if (!strcmp(argv[i], "--port")) g_port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--clients")) g_clients = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--requests")) g_requests = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--max-tokens")) g_max_tokens = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--prompt-words")) g_words = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--label")) label = argv[i + 1];
        else if (!strcmp(argv[i], "--api-key")) g_api_key = argv[i + 1];
        else if (!strcmp(argv[i], "--recv-timeout")) g_recv_timeout_s = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "bench_serve_client: unknown option '%s'\n", argv[i]);
            return 2;
        }
        i++;
    }
    if (g_clients < 1 || g_requests < 1 || g_max_tokens < 1 || g_recv_timeout_s < 1) {
        fprintf(stderr, "bench_serve_client: clients, requests, max-tokens and recv-timeout must be >= 1\n");
        return 2;
    }
    if (g_api_key && strlen(g_api_key) > 500) {
        fprintf(stderr, "bench_serve_client: --api-key is too long\n");
        return 2;
    }
    client *cs = calloc((size_t)g_clients, sizeof *cs);
    pthread_t *th = calloc((size_t)g_clients, sizeof *th);
    double *tt = calloc((size_t)g_clients * g_requests, sizeof(double));
    if (!cs || !th || !tt) {
        fprintf(stderr, "bench_serve_client: out of memory\n");
        return 1;
    }
    double t0 = now_s();
    int started = 0;
    for (int i = 0; i < g_clients; i++) {
        cs[i].id = i;
        cs[i].ttft_ms = calloc((size_t)g_requests, sizeof(double));
        if (!cs[i].ttft_ms || pthread_create(&th[i], NULL, client_main, &cs[i])) {
            fprintf(stderr, "bench_serve_client: cannot start client %d\n", i);
            break;
        }
        started++;
    }
    long tokens = 0, status_count[MAX_STATUS] = {0};
    int fails = 0, nt = 0, conn_errors = 0, bad = 0, no_retry = 0;
    const char *problem = "";
    for (int i = 0; i < started; i++) {
        pthread_join(th[i], NULL);
        tokens += cs[i].tokens;
        fails += cs[i].failures;
        conn_errors += cs[i].conn_errors;
        bad += cs[i].bad_answers;
        no_retry += cs[i].missing_retry_after;
        if (!problem[0]) problem = cs[i].first_problem;
        for (int s = 0; s < MAX_STATUS; s++) status_count[s] += cs[i].status_count[s];
        for (int r = 0; r < g_requests; r++)
            if (cs[i].ttft_ms[r] >= 0) tt[nt++] = cs[i].ttft_ms[r];
    }
    double wall = now_s() - t0;
    qsort(tt, (size_t)nt, sizeof(double), cmp_double);
    printf("{\"label\":\"%s\",\"clients\":%d,\"requests\":%d,\"failures\":%d,\"tokens\":%ld,\"wall_s\":%.3f,"
           "\"agg_tok_s\":%.2f,\"ttft_p50_ms\":%.1f,\"ttft_p95_ms\":%.1f",
           label, g_clients, g_clients * g_requests, fails, tokens, wall, tokens / wall, pct(tt, nt, 0.5), pct(tt, nt, 0.95));
    if (g_statuses) {
        long answered = 0;
        printf(",\"statuses\":{");
        for (int s = 0, k = 0; s < MAX_STATUS; s++)
            if (status_count[s]) {
                printf("%s\"%d\":%ld", k++ ? "," : "", s, status_count[s]);
                answered += status_count[s];
            }
        cJSON *pj = cJSON_CreateString(problem);
        char *esc = pj ? cJSON_PrintUnformatted(pj) : NULL;
        cJSON_Delete(pj);
        printf("},\"answered\":%ld,\"req_s\":%.1f,\"conn_errors\":%d,\"bad_answers\":%d,\"missing_retry_after\":%d,"
               "\"first_problem\":%s",
               answered, answered / wall, conn_errors, bad, no_retry, esc ? esc : "\"\"");
        cJSON_free(esc);
    }
    printf("}\n");
    for (int i = 0; i < g_clients; i++) free(cs[i].ttft_ms);
    free(cs);
    free(th);
    free(tt);
    if (g_statuses) return conn_errors || bad || no_retry || started < g_clients ? 1 : 0;
    return fails || started < g_clients ? 1 : 0;
}
