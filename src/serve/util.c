/* Small helpers of the server: a growable byte buffer with JSON string
 * escaping, UTF-8 boundaries, and the API error filler. */
#include <stdarg.h>
#include <string.h>

#include "serve_internal.h"

void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < b->n + n + 1) nc *= 2;
        char *np = qai_realloc(b->p, nc);
        if (!np) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = nc;
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

void sb_puts(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

void sb_printf(sbuf *b, const char *fmt, ...) {
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof tmp) {
        sb_put(b, tmp, (size_t)n);
        return;
    }
    char *big = qai_malloc((size_t)n + 1);
    if (!big) {
        b->oom = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb_put(b, big, (size_t)n);
    qai_free(big);
}

void sb_free(sbuf *b) {
    qai_free(b->p);
    memset(b, 0, sizeof *b);
}

/* Length of the valid UTF-8 sequence at s, 0 if invalid (overlongs,
 * surrogates, > U+10FFFF), or -1 if it is a valid but truncated start. */
static int utf8_seq(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    int len;
    unsigned min;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) len = 2, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, min = 0x10000;
    else
        return 0;
    unsigned cp = c & (0x3F >> (len - 1));
    for (int i = 1; i < len; i++) {
        if ((size_t)i >= n) return -1;
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

size_t utf8_complete_prefix(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        int l = utf8_seq(u + i, n - i);
        if (l < 0) return i; /* may still be completed by the next token */
        i += l ? (size_t)l : 1;
    }
    return n;
}

void sb_json_str(sbuf *b, const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    sb_put(b, "\"", 1);
    size_t i = 0;
    while (i < n) {
        unsigned c = u[i];
        if (c < 0x80) {
            char esc[8];
            switch (c) {
            case '"': sb_put(b, "\\\"", 2); break;
            case '\\': sb_put(b, "\\\\", 2); break;
            case '\n': sb_put(b, "\\n", 2); break;
            case '\r': sb_put(b, "\\r", 2); break;
            case '\t': sb_put(b, "\\t", 2); break;
            default:
                if (c < 0x20 || c == 0x7F) {
                    snprintf(esc, sizeof esc, "\\u%04x", c);
                    sb_put(b, esc, 6);
                } else
                    sb_put(b, (const char *)u + i, 1);
            }
            i++;
            continue;
        }
        int l = utf8_seq(u + i, n - i);
        if (l > 0) {
            sb_put(b, (const char *)u + i, (size_t)l);
            i += (size_t)l;
        } else {
            sb_put(b, "\xEF\xBF\xBD", 3); /* U+FFFD */
            i++;
        }
    }
    sb_put(b, "\"", 1);
}

qai_status serve_err(qai_serve_error *e, int status, const char *type, const char *code, const char *param,
                     const char *fmt, ...) {
    if (!e) return QAI_ERR_FORMAT;
    e->status = status;
    snprintf(e->type, sizeof e->type, "%s", type);
    snprintf(e->code, sizeof e->code, "%s", code ? code : "");
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return status == 400 && !strcmp(e->code, "unsupported") ? QAI_ERR_UNSUPPORTED : QAI_ERR_FORMAT;
}
