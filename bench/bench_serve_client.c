/* A load client for OpenAI-compatible servers (qai serve, llama.cpp's
 * llama-server): N concurrent clients each send R streaming /v1/completions
 * requests back to back and read the SSE stream. Prints one JSON line:
 * aggregate generated tokens per second over the wall time, and the p50/p95
 * time to the first generated text.
 *
 * usage: bench_serve_client [--host 127.0.0.1] --port P [--clients N] [--requests R]
 *                           [--max-tokens M] [--prompt-words W] [--label NAME]
 *
 * Tokens are the server's usage.completion_tokens when it reports them
 * (stream_options.include_usage), else the number of chunks carrying text (one
 * token each on llama-server). Every request asks for ignore_eos so the
 * lengths are the same on both servers; prompts differ per client and request
 * so no prompt cache helps.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char *g_host = "127.0.0.1";
static int g_port = 8080, g_clients = 1, g_requests = 2, g_max_tokens = 128, g_words = 24;

typedef struct {
    int id;
    double *ttft_ms; /* (requests) */
    long tokens;
    int failures;
} client;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static const char *WORDS[] = {"river", "stone", "lantern", "winter", "garden", "copper", "whisper", "harbor",
                              "meadow", "thunder", "candle", "orchard", "falcon", "pepper", "silver", "quiet"};

/* One streaming request; returns tokens generated (-1 on failure), sets *ttft. */
static long one_request(int cid, int r, double *ttft) {
    char prompt[2048];
    size_t o = 0;
    uint32_t x = (uint32_t)(cid * 7919 + r * 104729 + 1);
    o += (size_t)snprintf(prompt + o, sizeof prompt - o, "Story %d-%d:", cid, r);
    for (int w = 0; w < g_words && o < sizeof prompt - 16; w++) {
        x = x * 1664525u + 1013904223u;
        o += (size_t)snprintf(prompt + o, sizeof prompt - o, " %s", WORDS[(x >> 16) % 16]);
    }
    char body[4096];
    int bn = snprintf(body, sizeof body,
                      "{\"prompt\":\"%s\",\"max_tokens\":%d,\"temperature\":0,\"stream\":true,\"ignore_eos\":true,"
                      "\"stream_options\":{\"include_usage\":true},\"cache_prompt\":false}",
                      prompt, g_max_tokens);
    char req[8192];
    int rn = snprintf(req, sizeof req,
                      "POST /v1/completions HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nConnection: close\r\n"
                      "Content-Length: %d\r\n\r\n%s",
                      g_host, bn, body);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g_port)};
    inet_pton(AF_INET, g_host, &a.sin_addr);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    double t0 = now_s();
    if (connect(fd, (struct sockaddr *)&a, sizeof a) || send(fd, req, (size_t)rn, MSG_NOSIGNAL) != rn) {
        close(fd);
        return -1;
    }
    /* scan the stream for SSE events; keep a small carry for events split across reads */
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    long chunks = 0, usage = -1;
    bool first = false, ok_status = false, saw_head = false;
    size_t scan = 0;
    for (;;) {
        if (len + 8192 > cap) buf = realloc(buf, cap *= 2);
        ssize_t n = recv(fd, buf + len, cap - len - 1, 0);
        if (n <= 0) break;
        len += (size_t)n;
        buf[len] = 0;
        if (!saw_head) {
            char *e = strstr(buf, "\r\n\r\n");
            if (!e) continue;
            saw_head = true;
            ok_status = !strncmp(buf, "HTTP/1.1 200", 12) || !strncmp(buf, "HTTP/1.0 200", 12);
            scan = (size_t)(e + 4 - buf);
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
                    if (!first) {
                        first = true;
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
    free(buf);
    if (!ok_status || !first) return -1;
    return usage >= 0 ? usage : chunks;
}

static void *client_main(void *p) {
    client *c = p;
    for (int r = 0; r < g_requests; r++) {
        long n = one_request(c->id, r, &c->ttft_ms[r]);
        if (n < 0) {
            c->failures++;
            c->ttft_ms[r] = -1;
        } else
            c->tokens += n;
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
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--host")) g_host = argv[i + 1];
        else if (!strcmp(argv[i], "--port")) g_port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--clients")) g_clients = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--requests")) g_requests = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--max-tokens")) g_max_tokens = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--prompt-words")) g_words = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--label")) label = argv[i + 1];
        else {
            fprintf(stderr, "bench_serve_client: unknown option '%s'\n", argv[i]);
            return 2;
        }
    }
    if (g_clients < 1 || g_requests < 1 || g_max_tokens < 1) {
        fprintf(stderr, "bench_serve_client: clients, requests and max-tokens must be >= 1\n");
        return 2;
    }
    client *cs = calloc((size_t)g_clients, sizeof *cs);
    pthread_t *th = calloc((size_t)g_clients, sizeof *th);
    double t0 = now_s();
    for (int i = 0; i < g_clients; i++) {
        cs[i].id = i;
        cs[i].ttft_ms = calloc((size_t)g_requests, sizeof(double));
        pthread_create(&th[i], NULL, client_main, &cs[i]);
    }
    long tokens = 0;
    int fails = 0, nt = 0;
    double *tt = calloc((size_t)g_clients * g_requests, sizeof(double));
    for (int i = 0; i < g_clients; i++) {
        pthread_join(th[i], NULL);
        tokens += cs[i].tokens;
        fails += cs[i].failures;
        for (int r = 0; r < g_requests; r++)
            if (cs[i].ttft_ms[r] >= 0) tt[nt++] = cs[i].ttft_ms[r];
    }
    double wall = now_s() - t0;
    qsort(tt, (size_t)nt, sizeof(double), cmp_double);
    printf("{\"label\":\"%s\",\"clients\":%d,\"requests\":%d,\"failures\":%d,\"tokens\":%ld,\"wall_s\":%.3f,"
           "\"agg_tok_s\":%.2f,\"ttft_p50_ms\":%.1f,\"ttft_p95_ms\":%.1f}\n",
           label, g_clients, g_clients * g_requests, fails, tokens, wall, tokens / wall, pct(tt, nt, 0.5), pct(tt, nt, 0.95));
    for (int i = 0; i < g_clients; i++) free(cs[i].ttft_ms);
    free(cs);
    free(th);
    free(tt);
    return fails ? 1 : 0;
}
