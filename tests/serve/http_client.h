/* The serve tests' HTTP/1.1 client (Connection: close): one request per
 * connection, the answer read to the end, chunked bodies joined. Included by
 * each test file (static functions; a test may leave some unused). */
#ifndef QAI_TEST_HTTP_CLIENT_H
#define QAI_TEST_HTTP_CLIENT_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct {
    int status;
    char *head; /* status line and headers */
    char *body; /* de-chunked */
    size_t len;
} http_resp;

static inline __attribute__((unused)) void resp_free(http_resp *r) {
    free(r->head);
    free(r->body);
    memset(r, 0, sizeof *r);
}

static inline __attribute__((unused)) int connect_to(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) {
        close(fd);
        return -1;
    }
    return fd;
}

static inline __attribute__((unused)) void send_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0) return;
        p += w, n -= (size_t)w;
    }
}

static inline __attribute__((unused)) void send_request(int fd, const char *method, const char *path, const char *body, const char *extra) {
    char head[2048];
    size_t blen = body ? strlen(body) : 0;
    snprintf(head, sizeof head,
             "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\n"
             "Content-Length: %zu\r\n%s\r\n",
             method, path, blen, extra ? extra : "");
    send_all(fd, head, strlen(head));
    if (blen) send_all(fd, body, blen);
}

static inline __attribute__((unused)) void parse_response(char *raw, size_t n, http_resp *r) {
    char *sep = raw ? strstr(raw, "\r\n\r\n") : NULL;
    if (!sep) {
        r->status = -1;
        free(raw);
        return;
    }
    *sep = 0;
    r->head = strdup(raw);
    sscanf(raw, "HTTP/1.%*d %d", &r->status);
    char *b = sep + 4;
    size_t bn = n - (size_t)(b - raw);
    r->body = malloc(bn + 1);
    if (strcasestr(r->head, "Transfer-Encoding: chunked")) {
        size_t o = 0;
        char *p = b, *end = b + bn;
        while (p < end) {
            unsigned long sz = strtoul(p, NULL, 16);
            char *nl = strstr(p, "\r\n");
            if (!nl || sz == 0) break;
            p = nl + 2;
            if (p + sz > end) sz = (size_t)(end - p);
            memcpy(r->body + o, p, sz);
            o += sz;
            p += sz + 2;
        }
        r->len = o;
    } else {
        memcpy(r->body, b, bn);
        r->len = bn;
    }
    r->body[r->len] = 0;
    free(raw);
}

static inline __attribute__((unused)) char *read_all(int fd, size_t *n) {
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (len + 4096 > cap) buf = realloc(buf, cap *= 2);
        ssize_t r = recv(fd, buf + len, cap - len - 1, 0);
        if (r <= 0) break;
        len += (size_t)r;
    }
    buf[len] = 0;
    *n = len;
    return buf;
}

static inline __attribute__((unused)) http_resp http(int port, const char *method, const char *path, const char *body, const char *extra) {
    http_resp r = {0};
    int fd = connect_to(port);
    if (fd < 0) {
        r.status = -1;
        return r;
    }
    send_request(fd, method, path, body, extra);
    size_t n;
    char *raw = read_all(fd, &n);
    close(fd);
    parse_response(raw, n, &r);
    return r;
}

static inline __attribute__((unused)) const char *header(const http_resp *r, const char *name, char *out, size_t cap) {
    out[0] = 0;
    if (!r->head) return NULL;
    char key[64];
    snprintf(key, sizeof key, "\r\n%s: ", name);
    const char *h = strcasestr(r->head, key);
    if (!h) return NULL;
    h += strlen(key);
    size_t n = strcspn(h, "\r\n");
    snprintf(out, cap, "%.*s", (int)n, h);
    return out;
}

#endif
